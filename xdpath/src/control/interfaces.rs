//! The interfaces a namespace runs xdpath on, saved beside its state
//! (`interfaces.json`): each one's attach mode and program config
//! (malformed policy, monitor, decapsulation, forwarding, steering,
//! sampling) and the namespace's steering CPUs. The record follows the
//! kernel while the program is attached ([`sync`] after every change) and
//! is what puts an interface back when its program is lost, as after a
//! reboot: `attach` takes the settings no flag of its own sets from it,
//! and `state check --repair` (so xdpathd, every 2 s) attaches again every
//! recorded interface that exists and has no program. `detach` forgets.
//! A sampling rate an export set for its run is not recorded: the
//! operator's is (`observe::rates`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use xdpath_core::InterfaceConfig;

use super::state::{self, StateError, StateFile};
use crate::dataplane::{self, AttachedMode, ModeChoice};

/// The record's file in a namespace's state directory.
pub const INTERFACES_FILE: &str = "interfaces.json";

/// One interface as it was attached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceRecord {
    /// The mode it runs in: native, generic or offload.
    pub mode: String,
    /// Its program's config, field by field.
    pub malformed: u8,
    /// Monitor mode.
    pub monitor: u8,
    /// Decapsulation.
    pub decap: u8,
    /// The GUE port decapsulated.
    pub decap_gue_port: u16,
    /// Forwarding.
    pub forward: u8,
    /// Steering to CPUs.
    pub steer: u8,
    /// Sampling 1 in this many frames.
    pub sample_rate: u32,
}

impl InterfaceRecord {
    fn of(mode: AttachedMode, config: &InterfaceConfig) -> Self {
        Self {
            mode: mode.name().to_string(),
            malformed: config.malformed,
            monitor: config.monitor,
            decap: config.decap,
            decap_gue_port: config.decap_gue_port,
            forward: config.forward,
            steer: config.steer,
            sample_rate: config.sample_rate,
        }
    }

    /// The program config recorded.
    pub fn config(&self) -> InterfaceConfig {
        let mut config = InterfaceConfig {
            malformed: self.malformed,
            monitor: self.monitor,
            ..InterfaceConfig::default()
        };
        self.carry_into(&mut config);
        config
    }

    /// Puts the settings `attach` has no flag for into `config`.
    pub fn carry_into(&self, config: &mut InterfaceConfig) {
        config.decap = self.decap;
        config.decap_gue_port = self.decap_gue_port;
        config.forward = self.forward;
        config.steer = self.steer;
        config.sample_rate = self.sample_rate;
    }

    /// The mode to attach in again.
    pub fn mode_choice(&self) -> ModeChoice {
        match self.mode.as_str() {
            "native" => ModeChoice::Native,
            "offload" => ModeChoice::Offload,
            "generic" => ModeChoice::Generic,
            _ => ModeChoice::Auto,
        }
    }
}

/// The namespace's steering CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringRecord {
    /// The CPUs, in order.
    pub cpus: Vec<u32>,
    /// Each CPU entry's queue size.
    pub queue_size: u32,
}

/// Every interface of a namespace, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedInterfaces {
    /// The interfaces.
    pub interfaces: BTreeMap<String, InterfaceRecord>,
    /// The steering CPUs, when any interface steers.
    pub steering: Option<SteeringRecord>,
}

impl StateFile for SavedInterfaces {
    const KIND: &'static str = "interfaces";
    // No file of this kind was written before format versions existed.
    const LEGACY_KEYS: &'static [&'static str] = &[];
}

fn path() -> Result<PathBuf, StateError> {
    Ok(state::state_dir()?.join(INTERFACES_FILE))
}

/// The record (empty when there is none).
pub fn load() -> Result<SavedInterfaces, StateError> {
    state::load(&path()?)
}

/// Records what the kernel runs on every attached interface (those whose
/// program is lost keep their record). Writes only when something
/// changed, under the state lock.
pub fn sync() -> Result<(), super::ControlError> {
    let (dir, _lock) = super::session::lock_state_dir()?;
    let path = path()?;
    let before: SavedInterfaces = state::load(&path)?;
    let mut after = before.clone();
    // An export's rate is the run's, not the interface's: the operator's
    // is recorded (`observe::rates`).
    let operators = crate::observe::rates::saved_rates(&dir);
    for name in dataplane::attached_interfaces()? {
        let Ok(status) = dataplane::status(&name) else {
            continue;
        };
        let (Some(mode), true) = (status.mode, status.healthy) else {
            continue;
        };
        let Ok(mut config) = dataplane::read_interface_config(&name) else {
            continue;
        };
        if let Some(rate) = operators.get(&name) {
            config.sample_rate = *rate;
        }
        after
            .interfaces
            .insert(name, InterfaceRecord::of(mode, &config));
    }
    let cpus: Vec<u32> = dataplane::steer::steered()
        .map(|steered| steered.into_iter().map(|(cpu, _)| cpu).collect())
        .unwrap_or_default();
    if !cpus.is_empty() {
        after.steering = Some(SteeringRecord {
            cpus,
            queue_size: dataplane::steer::queue_size()
                .unwrap_or(dataplane::steer::DEFAULT_QUEUE_SIZE),
        });
    }
    if after != before {
        state::save(&path, &after)?;
    }
    Ok(())
}

/// Whether `interface` has a record.
pub fn is_recorded(interface: &str) -> bool {
    load().is_ok_and(|saved| saved.interfaces.contains_key(interface))
}

/// Forgets `interface` (it was detached on purpose).
pub fn forget(interface: &str) -> Result<(), super::ControlError> {
    let (_dir, _lock) = super::session::lock_state_dir()?;
    let path = path()?;
    let mut saved: SavedInterfaces = state::load(&path)?;
    if saved.interfaces.remove(interface).is_some() {
        state::save(&path, &saved)?;
    }
    Ok(())
}

/// Recorded interfaces that exist here and have no program of xdpath's.
pub fn lost() -> Result<Vec<(String, InterfaceRecord)>, StateError> {
    Ok(load()?
        .interfaces
        .into_iter()
        .filter(|(name, _)| crate::control::interface_index(name).is_some())
        .filter(|(name, _)| !dataplane::status(name).is_ok_and(|status| status.healthy))
        .collect())
}

/// Attaches `interface` again as recorded, with the namespace's steering.
pub fn reattach(
    interface: &str,
    record: &InterfaceRecord,
    steering: Option<&SteeringRecord>,
) -> Result<(), dataplane::DataplaneError> {
    let mut config = record.config();
    let steer = config.steer != 0;
    // Steering is turned on once the CPU list is back.
    config.steer = 0;
    dataplane::attach(interface, record.mode_choice(), config)?;
    if let (true, Some(steering)) = (steer, steering) {
        restore_steering(interface, steering)?;
    }
    Ok(())
}

/// Turns steering on for `interface` with the recorded CPUs.
pub fn restore_steering(
    interface: &str,
    steering: &SteeringRecord,
) -> Result<(), dataplane::DataplaneError> {
    let cpus: Vec<String> = steering.cpus.iter().map(u32::to_string).collect();
    dataplane::steer::set_steering(
        interface,
        true,
        Some(&cpus.join(",")),
        Some(steering.queue_size),
    )?;
    Ok(())
}
