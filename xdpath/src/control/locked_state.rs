//! What the filter's and the balancer's sessions are both made of: a
//! state file of the namespace, locked and read, with the namespace's
//! maps, and the end of every commit (the copy and the file saved, in
//! that order, so a failed save leaves the file as it was).

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
    /// killed before the caller ends it (after
    /// [`LockedState::save_committed`]) leaves the mark, and the next
    /// command installs the saved file again.
    pub fn begin_commit(&self) -> Result<CommitMarker, ControlError> {
        Ok(CommitMarker::begin(&self.path)?)
    }

    /// Once the maps hold `desired`: saves the copy of the state last
    /// installed, then the file (when `desired` differs from what it held).
    /// The file goes last, so on an error it still holds what it held
    /// before and the caller puts the maps back to that: a command that
    /// could not save its change (a full disk) changes nothing. The one
    /// exception is a file renamed into place whose directory then failed
    /// to sync: it holds `desired`, so the change stands.
    pub fn save_committed(&self, desired: &T) -> Result<(), ControlError> {
        let changed = *desired != self.loaded;
        state::save_installed_copy(&self.path, desired, changed)?;
        if !changed {
            return Ok(());
        }
        let Err(error) = state::save(&self.path, desired) else {
            return Ok(());
        };
        if state::load::<T>(&self.path).is_ok_and(|held| held == *desired) {
            return Ok(());
        }
        // Best effort: a copy ahead of the file is never used (a rebuild
        // takes it only when the kernel holds exactly it), but one that
        // matches the file still can be.
        let _ = state::save_installed_copy(&self.path, &self.loaded, true);
        Err(error.into())
    }
}
