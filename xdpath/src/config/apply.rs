//! Making this namespace match a config, changing only what differs:
//! the filter through its [`Session`] (which writes only what changed),
//! the balancer through the `lb` commands' edits on its [`LbSession`] (so
//! backends that stay keep their slots and generations, and established
//! flows their backend), interfaces by detaching and attaching.
//!
//! The sessions take the namespace's state lock one after the other
//! (the lock is shared by re-entry from the same thread, see
//! `control::lock`); interfaces are changed under it too.

use std::collections::{BTreeMap, BTreeSet};

use xdpath_core::InterfaceConfig;

use super::edit_lb::edit_lb;
use super::journal::SavedStates;
use super::merge::merge_filter;
use super::plan::{plan, Action, Plan};
use super::{current, ConfigError, DesiredConfig, InterfaceSpec, Malformed, Mode};
use crate::control::kernel::KernelMaps;
use crate::control::session::{lock_state_dir, Session};
use crate::control::wall_now;
use crate::dataplane::{self, ModeChoice};
use crate::lb::decap::{local_addresses, sync_local_addresses};
use crate::lb::session::LbSession;

/// Applies `desired` (checked by [`super::load`]) and returns what
/// changed. If a step fails, the state from before is put back.
///
/// The kernel's maps are read back, not trusted: what they lack of the
/// saved state is part of the plan and installed too. The whole apply runs
/// under the namespace's lock with a journal (the config before and the
/// config asked for) written first: a crash half-way is finished by the
/// next [`recover_interrupted`], so a config is in force whole or not at
/// all. A failure puts the old state back and checks, by reading the maps
/// back, that the kernel holds exactly it.
pub fn apply(desired: &DesiredConfig) -> Result<Plan, ConfigError> {
    let (dir, _lock) = lock_state_dir()?;
    recover_interrupted(&dir);
    let before = current()?;
    let saved = SavedStates::read(&dir)?;
    let mut changes = plan(&before, desired);
    changes.kernel = kernel_differences();
    if changes.is_empty() {
        return Ok(changes);
    }
    super::refuse::refusals(desired, &changes)?;
    let journal = super::journal::ApplyJournalFile::write(
        &dir,
        super::journal::ApplyJournal {
            before: before.clone(),
            target: desired.clone(),
            saved: Some(saved.clone()),
        },
    )?;
    let result = apply_plan(desired, &changes).and_then(|()| repair());
    let Err(error) = result else {
        journal.finish();
        return Ok(changes);
    };
    let error = Box::new(error);
    let restore = restore(&before, Some(&saved));
    journal.finish();
    Err(match restore {
        Ok(()) => ConfigError::Restored { error },
        Err(restore) => ConfigError::RestoreFailed {
            error,
            restore: Box::new(restore),
        },
    })
}

/// Puts `before` back and checks by reading the maps back that the
/// kernel holds exactly it. With `saved`, the filter's and the balancer's
/// state files are then written back as they were and installed: putting
/// back `before` alone re-plans them from a config's view, which puts an
/// owner's rules after the others (a drop behind a pass is a pass),
/// moves backends to new generations and spends ids.
fn restore(before: &DesiredConfig, saved: Option<&SavedStates>) -> Result<(), ConfigError> {
    // The files first, installed into the maps at once: then the plan
    // below finds the filter and the balancer as `before` has them and
    // changes only the rest, so the re-planned order is never enforced,
    // not even for the time the restore takes. If they cannot be written,
    // the plan still puts back what it can, and the error is reported.
    let files = saved.map_or(Ok(()), |saved| {
        saved.write_back().and_then(|()| {
            crate::reconcile::repair_maps()
                .map(drop)
                .map_err(reconcile_error)
        })
    });
    let now = current()?;
    apply_plan(before, &plan(&now, before))?;
    files?;
    repair()?;
    let left = crate::reconcile::check().map_err(reconcile_error)?;
    // What older programs enforce of it is no part of the apply: only the
    // maps and the interfaces are put back.
    if left.maps_match() {
        Ok(())
    } else {
        Err(ConfigError::Usage(format!(
            "the kernel still differs from the previous state: {}",
            left.lines().join("; ")
        )))
    }
}

fn repair() -> Result<(), ConfigError> {
    crate::reconcile::repair()
        .map(drop)
        .map_err(reconcile_error)
}

fn reconcile_error(error: crate::reconcile::ReconcileError) -> ConfigError {
    use crate::reconcile::ReconcileError;
    match error {
        ReconcileError::Control(error) => (*error).into(),
        ReconcileError::Lb(error) => error.into(),
        ReconcileError::Dataplane(error) => error.into(),
        other => ConfigError::Usage(other.to_string()),
    }
}

/// Where the kernel's maps differ from the saved state, one line each; a
/// state that cannot even be read is one line saying so.
pub fn kernel_differences() -> Vec<String> {
    match crate::reconcile::check() {
        Ok(differences) => differences.lines(),
        Err(error) => vec![format!("cannot be compared with the saved state: {error}")],
    }
}

/// Finishes an apply a crash interrupted (its journal is still there):
/// the config it was applying is applied, or, if that fails, the config
/// from before. Either way the journal goes, so a failure is reported once
/// (on stderr) and not retried forever.
pub fn recover_interrupted(dir: &std::path::Path) {
    let Some(journal) = super::journal::ApplyJournalFile::read(dir) else {
        return;
    };
    let super::journal::ApplyJournal {
        before,
        target,
        saved,
    } = journal.content();
    let outcome = current().and_then(|now| {
        let result = apply_plan(target, &plan(&now, target)).and_then(|()| repair());
        match result {
            Ok(()) => Ok("the config it was applying is now in force"),
            Err(_) => restore(before, saved.as_ref())
                .map(|()| "the config from before it is back in force"),
        }
    });
    match outcome {
        Ok(what) => log::warn!("an apply was interrupted (a crash or kill); {what}"),
        Err(error) => log::warn!("an apply was interrupted and finishing it failed: {error}; `xdpath state check` shows what the kernel holds"
        ),
    }
    journal.finish();
}

/// Makes the changes of `plan`, a plan towards `desired`.
fn apply_plan(desired: &DesiredConfig, plan: &Plan) -> Result<(), ConfigError> {
    // Interfaces that keep their mode keep their program: their settings
    // change in place.
    let attached = super::current::interfaces()?;
    let steering_before = super::steering::current();
    let in_place = in_place_interfaces(desired, plan, &attached);
    let swapped = swapped_interfaces(plan, &attached, &in_place);
    {
        let (dir, _lock) = lock_state_dir()?;
        for name in plan.interfaces_with(&[Action::Remove, Action::Change]) {
            if !swapped.contains_key(name) {
                detach_or_update(name, desired, &attached, &in_place)?;
            }
        }
        if !plan.observe.is_empty() {
            super::observe::save(&dir, &desired.observe).map_err(ConfigError::from)?;
        }
    }
    if !plan.filter.is_empty() {
        let mut session = Session::open()?;
        session.state = merge_filter(
            &session.state,
            &desired.filter,
            wall_now(),
            crate::control::features::address_table_usable(),
        );
        session.commit()?;
    }
    if !plan.lb.is_empty() {
        // Held across the table swap (see `lb::ops::configure`).
        let _lock = lock_state_dir()?;
        let mut session = LbSession::open()?;
        edit_lb(&mut session.state, &desired.lb)?;
        let table = session.state.settings.connection_table;
        session.commit()?;
        crate::lb::ops::apply_connection_table(table)?;
    }
    let _lock = lock_state_dir()?;
    let decap_in_place = in_place.iter().any(|name| {
        desired
            .interfaces
            .iter()
            .any(|spec| spec.name == *name && spec.decap)
    });
    let decap = attach_interfaces(desired, plan, &in_place, &swapped)? || decap_in_place;
    if !plan.steering.is_empty() {
        // A new CPU list or queue size reaches every steering interface
        // through the same operation as `xdpath steer enable`.
        for spec in desired.interfaces.iter().filter(|spec| spec.steer) {
            set_steering(&spec.name, true, &desired.steering)?;
        }
        super::steering::apply_flows(&steering_before, &desired.steering)
            .map_err(ConfigError::Usage)?;
    }
    if decap {
        sync_decap_addresses()?;
    }
    Ok(())
}

/// The changed interfaces that keep their program (what changes needs no
/// reattach): they are updated in place.
fn in_place_interfaces<'a>(
    desired: &DesiredConfig,
    plan: &'a Plan,
    attached: &[InterfaceSpec],
) -> BTreeSet<&'a str> {
    plan.interfaces_with(&[Action::Change])
        .filter(|name| {
            let now = attached.iter().find(|spec| spec.name == *name);
            let wanted = desired.interfaces.iter().find(|spec| spec.name == *name);
            matches!((now, wanted), (Some(now), Some(wanted))
                if !super::plan::needs_reattach(now, wanted))
        })
        .collect()
}

/// A removed or changed interface: updated in place (sample rate, then
/// forwarding and steering where they differ) when it is in `in_place`,
/// else detached and forgotten.
fn detach_or_update(
    name: &str,
    desired: &DesiredConfig,
    attached: &[InterfaceSpec],
    in_place: &BTreeSet<&str>,
) -> Result<(), ConfigError> {
    if let Some(spec) = desired.interfaces.iter().find(|spec| spec.name == name) {
        if in_place.contains(name) {
            // What the program reads per frame, in one write; forwarding
            // and steering have their own operations (below).
            let wanted = interface_config(spec);
            dataplane::update_interface_config(name, |config| {
                config.malformed = wanted.malformed;
                config.monitor = wanted.monitor;
                config.decap = wanted.decap;
                config.decap_gue_port = wanted.decap_gue_port;
                config.sample_rate = wanted.sample_rate;
            })?;
            // The config's rate stays when an export sampling at its own
            // rate ends.
            if let Ok(dir) = crate::control::state::state_dir() {
                if let Err(error) = crate::observe::rates::operator_set(&dir, name) {
                    log::warn!("{name}: a running export may put its older sampling rate back when it ends: {error}");
                }
            }
            let now = attached.iter().find(|now| now.name == name);
            if now.is_some_and(|now| now.forward != spec.forward) {
                dataplane::forward::set_forwarding(name, spec.forward)?;
            }
            if now.is_some_and(|now| now.steer != spec.steer) {
                set_steering(name, spec.steer, &desired.steering)?;
            }
            return Ok(());
        }
    }
    dataplane::detach(name)?;
    crate::control::interfaces::forget(name)?;
    Ok(())
}

/// The changed interfaces that need another mode and run a healthy
/// program now, with the mode it runs in: attached again by
/// [`dataplane::reattach`], which loads the new program before it detaches
/// the old one. (One whose program is not healthy, its mode unknown, is
/// detached first and attached afresh.)
fn swapped_interfaces<'a>(
    plan: &'a Plan,
    attached: &[InterfaceSpec],
    in_place: &BTreeSet<&str>,
) -> BTreeMap<&'a str, ModeChoice> {
    plan.interfaces_with(&[Action::Change])
        .filter(|name| !in_place.contains(name))
        .filter_map(|name| {
            let now = attached.iter().find(|spec| spec.name == name)?;
            (!now.stale && now.mode != Mode::Auto).then(|| (name, mode_choice(now.mode)))
        })
        .collect()
}

/// Attaches the added interfaces and the changed ones not updated in place
/// (`swapped`: those attached again from a running mode), with their
/// forwarding and steering; true when one of them decapsulates.
fn attach_interfaces(
    desired: &DesiredConfig,
    plan: &Plan,
    in_place: &BTreeSet<&str>,
    swapped: &BTreeMap<&str, ModeChoice>,
) -> Result<bool, ConfigError> {
    let mut decap = false;
    for name in plan.interfaces_with(&[Action::Add, Action::Change]) {
        if in_place.contains(name) {
            continue;
        }
        let Some(spec) = desired.interfaces.iter().find(|spec| spec.name == name) else {
            continue;
        };
        let (choice, config) = (mode_choice(spec.mode), interface_config(spec));
        match swapped.get(name) {
            Some(running) => dataplane::reattach(name, choice, config, *running)?,
            None => dataplane::attach(name, choice, config)?,
        };
        if spec.forward {
            // The flag came with the config; the device map entry (and the
            // checks) come from the same operation as `xdpath forward`.
            dataplane::forward::set_forwarding(name, true)?;
        }
        if spec.steer {
            set_steering(name, true, &desired.steering)?;
        }
        decap |= spec.decap;
    }
    Ok(decap)
}

/// As `xdpath decap`: this host's addresses are what is decapsulated.
fn sync_decap_addresses() -> Result<(), ConfigError> {
    let addresses = local_addresses().map_err(|source| {
        ConfigError::Usage(format!("cannot list this host's addresses: {source}"))
    })?;
    let (maps, _) = KernelMaps::open_shared().map_err(crate::control::ControlError::from)?;
    sync_local_addresses(&maps, &addresses)?;
    Ok(())
}

fn mode_choice(mode: Mode) -> ModeChoice {
    match mode {
        Mode::Auto => ModeChoice::Auto,
        Mode::Native => ModeChoice::Native,
        Mode::Generic => ModeChoice::Generic,
        Mode::Offload => ModeChoice::Offload,
    }
}

/// The program config of an interface, as `attach` and `decap` make it.
pub fn interface_config(spec: &InterfaceSpec) -> InterfaceConfig {
    let malformed = match spec.malformed {
        Malformed::Pass => xdpath_core::MalformedPolicy::Pass,
        Malformed::Drop => xdpath_core::MalformedPolicy::Drop,
    };
    InterfaceConfig::new(malformed)
        .with_monitor(spec.monitor)
        .with_decap(spec.decap, if spec.decap { spec.gue_port } else { 0 })
        .with_sample_rate(spec.sample_rate)
        .with_forward(spec.forward)
}

/// Steering on or off for an attached interface, with the config's CPU
/// list and queue size (as `xdpath steer enable|disable`).
fn set_steering(
    name: &str,
    on: bool,
    steering: &super::steering::SteeringSpec,
) -> Result<(), ConfigError> {
    let cpus: Vec<String> = steering.cpus.iter().map(u32::to_string).collect();
    dataplane::steer::set_steering(name, on, Some(&cpus.join(",")), Some(steering.queue_size))?;
    Ok(())
}
