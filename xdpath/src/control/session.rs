//! One control call: lock the namespace's state, read it, read back what
//! the kernel's maps really hold, let the command change the state, then
//! compile, install what differs and save.
//!
//! What is installed is found by reading the maps back
//! ([`super::readback`]), never assumed from the state file: after a
//! reboot, lost pins, a crash half-way through an earlier change or a map
//! emptied by another tool, the next change installs everything the kernel
//! lacks and removes everything it holds that the state does not.

use super::apply::{apply, prepare, FilterTarget, InstallError};
use super::compile::{compile_rules, compile_settings, LimitPlace};
use super::features;
use super::kernel::KernelMaps;
pub use super::lock::{lock_state_dir, StateLock};
use super::locked_state::LockedState;
use super::readback::{self, InstalledView};
use super::state::{FilterState, STATE_FILE};
use super::{interface_index, wall_now, ControlError};

/// The state of this namespace, locked, with its kernel maps.
pub struct Session {
    /// The desired state; commands change it, [`Session::commit`] installs it.
    pub state: FilterState,
    /// What the maps hold (read back), and how it differs from what the
    /// state file held; none for a read-only session.
    installed: Option<InstalledView>,
    /// The state file as it was read, the maps and the lock.
    locked: LockedState<FilterState>,
    /// What the running user-space runtimes counted, read once.
    userspace: std::cell::OnceCell<crate::userspace::RunningCounts>,
}

impl Session {
    /// Locks and reads this namespace's state, opens (or creates) its
    /// filter maps and reads them back. Expired blocklist entries are swept
    /// from the state; the next commit removes them from the map.
    pub fn open() -> Result<Self, ControlError> {
        let (locked, installed) = LockedState::for_change(STATE_FILE, read_back)?;
        let mut state = locked.loaded.clone();
        state.sweep_expired(wall_now());
        Ok(Self {
            state,
            installed: Some(installed),
            locked,
            userspace: std::cell::OnceCell::new(),
        })
    }

    /// Locks and reads this namespace's state for a command that only
    /// reads: the maps are opened if they exist (never created) and not
    /// read back; [`Session::commit`] changes nothing.
    pub fn read() -> Result<Self, ControlError> {
        let locked = LockedState::<FilterState>::for_reading(STATE_FILE)?;
        Ok(Self {
            state: locked.loaded.clone(),
            installed: None,
            locked,
            userspace: std::cell::OnceCell::new(),
        })
    }

    /// The maps, for reading counters; none when this namespace has none.
    pub fn maps(&self) -> Option<&KernelMaps> {
        self.locked.maps.as_ref()
    }

    /// How the kernel's maps differ from the state file, one line each
    /// (empty: the kernel enforces the state). A read-only session reads
    /// the maps back now.
    pub fn differences(&self) -> Result<Vec<String>, ControlError> {
        if let Some(installed) = &self.installed {
            return Ok(installed.differences.clone());
        }
        match &self.locked.maps {
            Some(maps) => Ok(read_back(maps, &self.locked.loaded)?.differences),
            None if self.locked.loaded == FilterState::default() => Ok(Vec::new()),
            None => Ok(vec![super::kernel::partly_pinned_line().unwrap_or_else(|| {
                "the kernel has no filter maps in this network namespace (nothing is attached since they were lost): nothing of this state is enforced".into()
            })]),
        }
    }

    /// Checks the desired state as [`Session::commit`] would before its
    /// first write (rules and settings compiled), writing nothing: for a
    /// change that must be checked whole with another.
    pub fn check(&self) -> Result<(), ControlError> {
        let resolve = |name: &str| interface_index(name);
        let rules = compile_rules(&self.state.rules, &resolve)?;
        compile_settings(&self.state, &rules)?;
        self.refuse_unenforced()
    }

    /// Refuses entries the change brings that an attached program loaded
    /// by an older build would not enforce (`control::features`).
    fn refuse_unenforced(&self) -> Result<(), ControlError> {
        features::refuse_new(|| features::filter_change_needs(&self.locked.loaded, &self.state))
    }

    /// Whether [`Session::commit`] would write anything.
    pub fn pending(&self) -> bool {
        self.state != self.locked.loaded
            || self
                .installed
                .as_ref()
                .is_some_and(|view| !view.differences.is_empty())
    }

    /// The state as the file held it when the session was opened.
    pub fn loaded(&self) -> &FilterState {
        &self.locked.loaded
    }

    /// Compiles the state (refusing it before any write if it is invalid),
    /// installs what differs from what the maps hold and saves it. The
    /// maps are written first and the file last: a crash between the two
    /// leaves a state file the kernel does not match, which the next
    /// session finds by reading back and puts right.
    pub fn commit(mut self) -> Result<(), ControlError> {
        let (Some(installed), Some(mut maps)) = (self.installed.take(), self.locked.maps.take())
        else {
            return Ok(());
        };
        if installed.differences.is_empty() && self.state == self.locked.loaded {
            return Ok(());
        }
        self.refuse_unenforced()?;
        let resolve = |name: &str| interface_index(name);
        let mut prepared = prepare(
            &maps,
            &installed.state,
            &self.state,
            &resolve,
            installed.rules_differ,
        )
        .map_err(install_error)?;
        prepared.force_limits = installed.limits_differ;
        let marker = self.locked.begin_commit()?;
        let written = apply(
            &mut maps,
            &installed.state,
            &self.state,
            &prepared,
            wall_now(),
        )
        .map_err(ControlError::from)
        .and_then(|()| self.locked.save_committed(&self.state));
        if let Err(error) = written {
            // The maps may hold part of the change (or all of it: the rules
            // switch buffers before the old buffer is cleared, and a failed
            // save comes after every write). Put the saved state back now,
            // so the failed command changes nothing; if that fails too, the
            // mark stays and the next command does it.
            if self.put_back(&mut maps) {
                marker.end();
            }
            return Err(error);
        }
        marker.end();
        Ok(())
    }

    /// Installs the state the file holds into `maps`, from what they hold
    /// (read back), after a write of a change failed part way; whether the
    /// maps now hold exactly that state (read back again).
    fn put_back(&self, maps: &mut KernelMaps) -> bool {
        let saved = &self.locked.loaded;
        let restored = read_back(maps, saved).and_then(|view| {
            let resolve = |name: &str| interface_index(name);
            let mut prepared = prepare(maps, &view.state, saved, &resolve, view.rules_differ)
                .map_err(install_error)?;
            prepared.force_limits = view.limits_differ;
            apply(maps, &view.state, saved, &prepared, wall_now())?;
            Ok(())
        });
        restored.is_ok() && read_back(maps, saved).is_ok_and(|view| view.differences.is_empty())
    }

    /// How the kernel's maps differ from `state` (for rebuilding a state
    /// file from them); the maps must exist.
    pub fn differences_from_kernel(state: &FilterState) -> Result<Vec<String>, ControlError> {
        match KernelMaps::open_existing()? {
            Some(maps) => Ok(read_back(&maps, state)?.differences),
            None => Ok(vec![
                "the kernel has no filter maps in this namespace".into()
            ]),
        }
    }

    /// Hits of a rule id: the kernel maps' (none without maps) and the
    /// running user-space runtimes'.
    pub fn rule_hits(&self, id: u32) -> Result<u64, ControlError> {
        let kernel = match &self.locked.maps {
            Some(maps) => super::apply::FilterTarget::rule_hits(maps, id)?,
            None => 0,
        };
        let userspace = self.userspace().rule_hits.get(&id).copied().unwrap_or(0);
        Ok(kernel.saturating_add(userspace))
    }

    /// Drops of each rate limit of the state, in its order: the kernel
    /// maps' (none without maps) and the running user-space runtimes'.
    pub fn limit_drops(&self) -> Result<Vec<u64>, ControlError> {
        let limits = &self.state.rate_limits;
        let places = super::compile::limit_places(limits);
        let running = self.userspace();
        // The address table in one batch read rather than a lookup a limit.
        let table: std::collections::HashMap<_, _> = match &self.locked.maps {
            Some(maps)
                if places
                    .iter()
                    .any(|place| matches!(place, LimitPlace::Address(_))) =>
            {
                FilterTarget::address_limit_entries(maps)?
                    .into_iter()
                    .collect()
            }
            _ => std::collections::HashMap::new(),
        };
        let mut out = Vec::with_capacity(limits.len());
        for (limit, place) in limits.iter().zip(places) {
            let (kernel, userspace) = match place {
                LimitPlace::Slot(slot) => (
                    match &self.locked.maps {
                        Some(maps) => FilterTarget::limit_drops(maps, slot)?,
                        None => 0,
                    },
                    running.limit_drops.get(&slot),
                ),
                LimitPlace::Address(key) => (
                    table
                        .get(&key)
                        .filter(|entry| entry.limit.id == limit.id)
                        .map_or(0, |entry| entry.drops),
                    running.address_drops.get(&limit.id),
                ),
            };
            out.push(kernel.saturating_add(userspace.copied().unwrap_or(0)));
        }
        Ok(out)
    }

    fn userspace(&self) -> &crate::userspace::RunningCounts {
        self.userspace
            .get_or_init(crate::userspace::running_filter_counts)
    }
}

/// Reads the maps back against `desired`.
fn read_back(maps: &KernelMaps, desired: &FilterState) -> Result<InstalledView, ControlError> {
    let resolve = |name: &str| interface_index(name);
    let rules = compile_rules(&desired.rules, &resolve)?;
    let settings = compile_settings(desired, &rules)?;
    Ok(readback::compare(
        maps,
        desired,
        &rules,
        &settings,
        wall_now(),
    )?)
}

fn install_error(error: InstallError) -> ControlError {
    match error {
        InstallError::Compile(error) => ControlError::Compile(error),
        InstallError::Apply(error) => ControlError::from(error),
    }
}
