//! What this network namespace has now, in the form of a config: the
//! interfaces xdpath is attached to (from their pins), and the filter's and
//! balancer's state files. Reading changes nothing (no map is created).

use xdpath_core::{InterfaceConfig, MalformedPolicy};

use super::{ConfigError, DesiredConfig, InterfaceSpec, Malformed, Mode};
use crate::control::session::lock_state_dir;
use crate::control::state::{self, FilterState, STATE_FILE};
use crate::control::wall_now;
use crate::dataplane::{self, AttachedMode};
use crate::lb::state::{LbState, LB_STATE_FILE};

/// This namespace's data path now, as a config holds it. Expired
/// blocklist entries are left out (the next control call sweeps them), and
/// so are the VIPs, rate limits and filter rules an owner made (`lb::owner`): a config
/// neither shows nor changes them.
pub fn current() -> Result<DesiredConfig, ConfigError> {
    let (dir, _lock) = lock_state_dir()?;
    let mut filter: FilterState = state::load(&dir.join(STATE_FILE))?;
    filter.sweep_expired(wall_now());
    filter.rate_limits.retain(|limit| limit.owner.is_none());
    filter.rules.retain(|rule| rule.owner.is_none());
    let mut lb: LbState = state::load(&dir.join(LB_STATE_FILE))?;
    lb.vips.retain(|vip| vip.owner.is_none());
    let observe = super::observe::load_saved(&dir)?;
    Ok(DesiredConfig {
        interfaces: interfaces()?,
        filter,
        lb,
        observe,
        steering: super::steering::current(),
    })
}

/// The interfaces xdpath has pins for, as attached: one whose link is
/// gone is stale (attached afresh by an apply); one whose pins cannot be
/// read fails the reading, so that an apply changes nothing rather than
/// take a running interface for a stale one.
pub fn interfaces() -> Result<Vec<InterfaceSpec>, ConfigError> {
    let mut list = Vec::new();
    for name in dataplane::attached_interfaces()? {
        let attached = dataplane::attached_state(&name)?;
        let (mode, config) = match attached {
            Some((AttachedMode::Native, config)) => (Mode::Native, config),
            Some((AttachedMode::Generic, config)) => (Mode::Generic, config),
            Some((AttachedMode::Offload, config)) => (Mode::Offload, config),
            None => (Mode::Auto, InterfaceConfig::default()),
        };
        list.push(InterfaceSpec {
            name,
            mode,
            malformed: match config.malformed_policy() {
                MalformedPolicy::Drop => Malformed::Drop,
                MalformedPolicy::Pass => Malformed::Pass,
            },
            monitor: config.monitor != 0,
            decap: config.decap != 0,
            sample_rate: config.sample_rate,
            forward: config.forward != 0,
            steer: config.steer != 0,
            gue_port: if config.decap != 0 {
                config.decap_gue_port
            } else {
                0
            },
            stale: attached.is_none(),
        });
    }
    Ok(list)
}
