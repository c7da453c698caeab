//! What the filter's and the balancer's sessions are both made of: a
//! state file of the namespace, locked and read, with the namespace's
//! maps, and the end of every commit (the file saved, the commit's mark
//! removed).

use std::path::PathBuf;

use super::commit_marker::CommitMarker;
use super::kernel::KernelMaps;
use super::lock::{lock_state_dir, StateLock};
use super::state::{self, StateFile};
use super::ControlError;

/// A namespace's state file, locked and read, with the namespace's maps.
pub struct LockedState<T> {
    /// What the file held when it was read (the empty state when there
    /// was none).
    pub loaded: T,
    /// The namespace's shared maps; none when a read-only session found
    /// none.
    pub maps: Option<KernelMaps>,
    path: PathBuf,
    _lock: StateLock,
}

impl<T: StateFile + PartialEq> LockedState<T> {
    /// For a change: locks the namespace's state directory, reads `file`
    /// in it and opens the shared maps, creating them when missing. Also
    /// returns what `read_back` makes of the maps against the loaded
    /// state (what the kernel really holds).
    pub fn for_change<V, E: From<ControlError>>(
        file: &str,
        read_back: impl FnOnce(&KernelMaps, &T) -> Result<V, E>,
    ) -> Result<(Self, V), E> {
        let mut locked = Self::lock_and_load(file)?;
        let (maps, _created) = KernelMaps::open_shared().map_err(ControlError::from)?;
        let view = read_back(&maps, &locked.loaded)?;
        locked.maps = Some(maps);
        Ok((locked, view))
    }

    /// For a command that only reads: locks and reads `file`; the maps
    /// are opened if they exist, never created.
    pub fn for_reading(file: &str) -> Result<Self, ControlError> {
        let mut locked = Self::lock_and_load(file)?;
        locked.maps = KernelMaps::open_existing()?;
        Ok(locked)
    }

    fn lock_and_load(file: &str) -> Result<Self, ControlError> {
        let (dir, lock) = lock_state_dir()?;
        let path = dir.join(file);
        let loaded = state::load(&path)?;
        Ok(Self {
            loaded,
            maps: None,
            path,
            _lock: lock,
        })
    }

    /// Marks a commit as under way, before its first map write: a writer
    /// killed before [`LockedState::finish_commit`] leaves the mark, and
    /// the next command installs the saved file again.
    pub fn begin_commit(&self) -> Result<CommitMarker, ControlError> {
        Ok(CommitMarker::begin(&self.path)?)
    }

    /// Once the maps hold `desired`: saves it (when it differs from what
    /// the file held) with the copy of the state last installed, then
    /// removes the commit's mark.
    pub fn finish_commit(&self, desired: &T, marker: CommitMarker) -> Result<(), ControlError> {
        let changed = *desired != self.loaded;
        if changed {
            state::save(&self.path, desired)?;
        }
        state::save_installed_copy(&self.path, desired, changed)?;
        marker.end();
        Ok(())
    }
}
