//! One balancer control call: lock the namespace's state, read it, let the
//! command change it, then plan, install and save. The lock is the
//! filter's, so filter and balancer commands never interleave.

use xdpath_core::abi;

use super::compile::{plan, Plan};
use super::install::bytes_of;
use super::state::{LbState, LB_STATE_FILE};
use super::LbError;
use crate::control::features;
use crate::control::kernel::KernelMaps;
use crate::control::locked_state::LockedState;
use xdpath_core::lb::{Backend, LbCounter, CONN_HITS, CONN_MISSES};

/// The balancer state of this namespace, locked, with its maps.
pub struct LbSession {
    /// The desired state; commands change it, [`LbSession::commit`]
    /// installs it.
    pub state: LbState,
    /// How the maps differ from what the state file held (read back);
    /// none for a read-only session.
    differences: Option<Vec<String>>,
    /// The state file as it was read, the maps and the lock.
    locked: LockedState<LbState>,
}

/// Words of an [`LbCounter`].
const COUNTER_WORDS: usize = size_of::<LbCounter>() / 8;

impl LbSession {
    /// Locks and reads this namespace's balancer state, opens (or
    /// creates) the shared maps and reads them back.
    pub fn open() -> Result<Self, LbError> {
        let (locked, differences) =
            LockedState::for_change(LB_STATE_FILE, super::readback::compare)?;
        Ok(Self {
            state: locked.loaded.clone(),
            differences: Some(differences),
            locked,
        })
    }

    /// Locks and reads the state for a command that only reads: the maps
    /// are opened if they exist (never created) and not read back;
    /// [`LbSession::commit`] changes nothing.
    pub fn read() -> Result<Self, LbError> {
        let locked = LockedState::<LbState>::for_reading(LB_STATE_FILE)?;
        Ok(Self {
            state: locked.loaded.clone(),
            differences: None,
            locked,
        })
    }

    /// The namespace's maps, if there are any (a read-only session over a
    /// namespace that never had them has none).
    pub fn maps(&self) -> Option<&KernelMaps> {
        self.locked.maps.as_ref()
    }

    /// Checks the desired state as [`LbSession::commit`] would before its
    /// first write (outer sources, table sizes, allow lists), writing
    /// nothing: for a change that must be checked whole with another.
    pub fn check(&self) -> Result<(), LbError> {
        plan(&self.locked.loaded, &mut self.state.clone(), false)?;
        self.refuse_unenforced()
    }

    /// Refuses what the change brings that an attached program loaded by
    /// an older build would not enforce (`control::features`), and the
    /// addresses no change may bring (`edit::refuse_new_addresses`), and
    /// a pool its table could not hold with every backend up
    /// (`edit::refuse_overfull_tables`).
    fn refuse_unenforced(&self) -> Result<(), LbError> {
        super::edit::refuse_new_addresses(&self.locked.loaded, &self.state)?;
        super::edit::refuse_overfull_tables(&self.locked.loaded, &self.state)?;
        super::edit::refuse_new_portless_checks(&self.locked.loaded, &self.state)?;
        Ok(features::refuse_new(|| {
            features::lb_change_needs(&self.locked.loaded, &self.state)
        })?)
    }

    /// The state as the file held it when the session was opened.
    pub fn loaded(&self) -> &LbState {
        &self.locked.loaded
    }

    /// Whether the state differs from the saved file or the kernel from
    /// it: whether [`LbSession::commit`] would write anything.
    pub fn pending(&self) -> bool {
        self.state != self.locked.loaded
            || self
                .differences
                .as_ref()
                .is_some_and(|list| !list.is_empty())
    }

    /// How the kernel's maps differ from the state file, one line each.
    pub fn differences(&self) -> Result<Vec<String>, LbError> {
        if let Some(differences) = &self.differences {
            return Ok(differences.clone());
        }
        let loaded = &self.locked.loaded;
        match &self.locked.maps {
            Some(maps) => super::readback::compare(maps, loaded),
            None if loaded.vips.is_empty() => Ok(Vec::new()),
            None => Ok(vec![no_maps_line(loaded.vips.len())]),
        }
    }

    /// Plans the change (refusing an invalid state before any write),
    /// installs it and saves the state. When the maps differ from the state
    /// file, everything is written again and what the maps hold beyond the
    /// state is removed.
    pub fn commit(mut self) -> Result<(), LbError> {
        let (Some(differences), Some(maps)) = (self.differences.take(), self.locked.maps.as_ref())
        else {
            return Ok(());
        };
        if differences.is_empty() && self.state == self.locked.loaded {
            return Ok(());
        }
        self.refuse_unenforced()?;
        let fresh = !differences.is_empty();
        let installed = if fresh {
            LbState::default()
        } else {
            self.locked.loaded.clone()
        };
        let plan = plan(&installed, &mut self.state, fresh)?;
        let marker = self.locked.begin_commit()?;
        let written = install(maps, &plan, fresh)
            .and_then(|()| Ok(self.locked.save_committed(&self.state)?));
        if let Err(error) = written {
            // The maps may hold part of the change (a VIP already on its
            // new ring), or all of it when the save failed. Put the saved
            // state back now, as the next command would, so the failed
            // command changes nothing; if that fails too, the mark stays
            // and the next command does it.
            if self.put_back(maps) {
                marker.end();
            }
            return Err(error);
        }
        marker.end();
        Ok(())
    }

    /// Installs the state the file holds into `maps` whole, as a repair
    /// does, after a write of a change failed part way; whether the maps
    /// now hold exactly that state (read back).
    fn put_back(&self, maps: &KernelMaps) -> bool {
        let mut saved = self.locked.loaded.clone();
        let Ok(plan) = plan(&LbState::default(), &mut saved, true) else {
            return false;
        };
        install(maps, &plan, true).is_ok()
            && saved == self.locked.loaded
            && super::readback::compare(maps, &saved).is_ok_and(|lines| lines.is_empty())
    }

    /// How the kernel's maps differ from `state` (for rebuilding a state
    /// file from them).
    pub fn differences_from_kernel(state: &LbState) -> Result<Vec<String>, LbError> {
        match KernelMaps::open_existing()? {
            Some(maps) => super::readback::compare(&maps, state),
            None => Ok(vec![
                "the kernel has no balancer maps in this namespace".into()
            ]),
        }
    }

    /// A VIP's packets, bytes and new flows.
    pub fn vip_counter(&self, slot: u32) -> Result<LbCounter, LbError> {
        self.counter(abi::map::VIP_STATS, slot)
    }

    /// A backend's packets, bytes and new flows.
    pub fn backend_counter(&self, index: u32) -> Result<LbCounter, LbError> {
        self.counter(abi::map::BACKEND_STATS, index)
    }

    /// Connection-table hits and misses.
    pub fn connection_counters(&self) -> Result<(u64, u64), LbError> {
        let Some(maps) = &self.locked.maps else {
            return Ok((0, 0));
        };
        Ok((
            maps.per_cpu_sum(abi::map::CONN_STATS, CONN_HITS)?,
            maps.per_cpu_sum(abi::map::CONN_STATS, CONN_MISSES)?,
        ))
    }

    fn counter(&self, map: &'static str, index: u32) -> Result<LbCounter, LbError> {
        let Some(maps) = &self.locked.maps else {
            return Ok(LbCounter::default());
        };
        let words = maps.per_cpu_words(map, index, COUNTER_WORDS)?;
        let word = |at: usize| words.get(at).copied().unwrap_or(0);
        Ok(LbCounter {
            packets: word(0),
            bytes: word(1),
            new_flows: word(2),
        })
    }
}

/// Why the maps could not be read back: none pinned, or some missing.
fn no_maps_line(vips: usize) -> String {
    crate::control::kernel::partly_pinned_line().unwrap_or_else(|| {
        format!(
            "the kernel has no balancer maps in this network namespace: none of the state's {vips} VIPs is balanced"
        )
    })
}

/// Writes a plan in the order that keeps every live pointer valid and
/// never needs more than [`MAX_VIPS`](xdpath_core::lb::MAX_VIPS) entries
/// in the VIP hash map: the VIPs by slot that change cleared first, the
/// VIPs leaving (retired ones, or with `fresh`
/// every entry the state does not hold) deleted next, then counters of
/// new slots zeroed, tables, backends, VIPs and config written, then
/// retired backend slots cleared.
///
/// Deleting first is what lets a full map swap one VIP for another (the
/// map refuses a 33rd key), and it also means a slot or backend index a
/// new VIP reuses is no longer pointed at by its old VIP while its ring
/// and counters are rewritten. Meanwhile a leaving VIP's frames are not
/// balanced, as after the change. A writer killed in between leaves the
/// commit mark, and the next command installs the saved state with
/// `fresh`, which again deletes before it writes.
fn install(maps: &KernelMaps, plan: &Plan, fresh: bool) -> Result<(), LbError> {
    plan.compiled.clear_changed_vip_slots(maps)?;
    if fresh {
        super::readback::remove_extra_vips(maps, &plan.compiled)?;
    }
    for key in &plan.retired_vips {
        maps.delete(abi::map::VIPS, bytes_of(key))?;
    }
    for slot in &plan.new_vip_slots {
        maps.per_cpu_zero_words(abi::map::VIP_STATS, *slot, COUNTER_WORDS)?;
        // Its drops by reason too: else a new VIP reports the drops of
        // every earlier VIP of its slot.
        for reason in xdpath_core::lb::VIP_DROP_REASONS {
            if let Some(index) = xdpath_core::lb::vip_drop_index(*slot, reason) {
                maps.per_cpu_zero_words(abi::map::VIP_DROPS, index, 1)?;
            }
        }
    }
    for index in &plan.new_backend_slots {
        maps.per_cpu_zero_words(abi::map::BACKEND_STATS, *index, COUNTER_WORDS)?;
    }
    plan.compiled.install_kernel(maps)?;
    let empty = Backend::default();
    for index in &plan.retired_backends {
        maps.update(abi::map::BACKENDS, &index.to_ne_bytes(), bytes_of(&empty))?;
    }
    Ok(())
}
