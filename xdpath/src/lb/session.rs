//! One balancer control call: lock the namespace's state, read it, let the
//! command change it, then plan, install and save. The lock is the
//! filter's, so filter and balancer commands never interleave.

use std::fs::File;
use std::path::PathBuf;

use super::compile::{plan, Plan};
use super::install::bytes_of;
use super::state::{LbState, LB_STATE_FILE};
use super::LbError;
use crate::control::kernel::KernelMaps;
use crate::control::session::lock_state_dir;
use crate::control::state;
use xdpath_core::lb::{Backend, LbConfig, LbCounter, VipKey, CONN_HITS, CONN_MISSES, LB_ENABLED};

/// The balancer state of this namespace, locked, with its maps.
pub struct LbSession {
    /// The desired state; commands change it, [`LbSession::commit`]
    /// installs it.
    pub state: LbState,
    /// What the maps hold.
    installed: LbState,
    /// The maps hold none of it: write everything.
    fresh: bool,
    maps: KernelMaps,
    path: PathBuf,
    _lock: File,
}

/// Words of an [`LbCounter`].
const COUNTER_WORDS: usize = size_of::<LbCounter>() / 8;

impl LbSession {
    /// Locks and reads this namespace's balancer state and opens (or
    /// creates) the shared maps.
    pub fn open() -> Result<Self, LbError> {
        let (dir, lock) = lock_state_dir()?;
        let path = dir.join(LB_STATE_FILE);
        let loaded: LbState = state::load(&path)?;
        let (maps, created) = KernelMaps::open_shared()?;
        // The maps may have been made again by another command since the
        // state was saved (after a reboot, or once every interface was
        // detached): then they hold no VIP although the state has some.
        let fresh = created || (!loaded.vips.is_empty() && !lb_enabled(&maps)?);
        let installed = if fresh {
            LbState::default()
        } else {
            loaded.clone()
        };
        Ok(Self {
            state: loaded,
            installed,
            fresh,
            maps,
            path,
            _lock: lock,
        })
    }

    /// Plans the change (refusing an invalid state before any write),
    /// installs it and saves the state.
    pub fn commit(mut self) -> Result<(), LbError> {
        if !self.fresh && self.state == self.installed {
            return Ok(());
        }
        let plan = plan(&self.installed, &mut self.state, self.fresh)?;
        if self.fresh {
            self.maps.clear_map("VIPS", size_of::<VipKey>())?;
        }
        install(&self.maps, &plan)?;
        state::save(&self.path, &self.state)?;
        Ok(())
    }

    /// A VIP's packets, bytes and new flows.
    pub fn vip_counter(&self, slot: u32) -> Result<LbCounter, LbError> {
        self.counter("VIP_STATS", slot)
    }

    /// A backend's packets, bytes and new flows.
    pub fn backend_counter(&self, index: u32) -> Result<LbCounter, LbError> {
        self.counter("BACKEND_STATS", index)
    }

    /// Connection-table hits and misses.
    pub fn connection_counters(&self) -> Result<(u64, u64), LbError> {
        Ok((
            self.maps.per_cpu_sum("CONN_STATS", CONN_HITS)?,
            self.maps.per_cpu_sum("CONN_STATS", CONN_MISSES)?,
        ))
    }

    fn counter(&self, map: &'static str, index: u32) -> Result<LbCounter, LbError> {
        let words = self.maps.per_cpu_words(map, index, COUNTER_WORDS)?;
        let word = |at: usize| words.get(at).copied().unwrap_or(0);
        Ok(LbCounter {
            packets: word(0),
            bytes: word(1),
            new_flows: word(2),
        })
    }
}

fn lb_enabled(maps: &KernelMaps) -> Result<bool, LbError> {
    let mut config = [0u8; size_of::<LbConfig>()];
    maps.lookup("LB_CONFIG", &0u32.to_ne_bytes(), &mut config)?;
    let flags = u32::from_ne_bytes([config[0], config[1], config[2], config[3]]);
    Ok(flags & LB_ENABLED != 0)
}

/// Writes a plan in the order that keeps every live pointer valid:
/// counters of new slots zeroed, then tables, backends, VIPs and config,
/// then retired VIPs deleted and retired backend slots cleared.
fn install(maps: &KernelMaps, plan: &Plan) -> Result<(), LbError> {
    for slot in &plan.new_vip_slots {
        maps.per_cpu_zero_words("VIP_STATS", *slot, COUNTER_WORDS)?;
    }
    for index in &plan.new_backend_slots {
        maps.per_cpu_zero_words("BACKEND_STATS", *index, COUNTER_WORDS)?;
    }
    plan.compiled.install_kernel(maps)?;
    for key in &plan.retired_vips {
        maps.delete("VIPS", bytes_of(key))?;
    }
    let empty = Backend::default();
    for index in &plan.retired_backends {
        maps.update("BACKENDS", &index.to_ne_bytes(), bytes_of(&empty))?;
    }
    Ok(())
}
