//! One control call: lock the namespace's state, read it, sweep expired
//! blocklist entries, let the command change it, then compile, install
//! and save.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use super::apply::{apply, prepare, FilterTarget, InstallError};
use super::kernel::KernelMaps;
use super::state::{self, FilterState, STATE_FILE};
use super::{interface_index, wall_now, ControlError};

/// The state of this namespace, locked, with its kernel maps.
pub struct Session {
    /// The desired state; commands change it, [`Session::commit`] installs it.
    pub state: FilterState,
    /// What the maps hold.
    installed: FilterState,
    /// The maps were just created: everything must be written.
    fresh: bool,
    maps: KernelMaps,
    path: PathBuf,
    _lock: File,
}

impl Session {
    /// Locks and reads this namespace's state and opens (or creates) its
    /// filter maps. Expired blocklist entries are swept from the state;
    /// the next commit removes them from the map.
    pub fn open() -> Result<Self, ControlError> {
        let (dir, lock) = lock_state_dir()?;
        let path = dir.join(STATE_FILE);
        let loaded: FilterState = state::load(&path)?;
        let (maps, fresh) = KernelMaps::open_shared()?;
        let installed = if fresh {
            FilterState::default()
        } else {
            loaded.clone()
        };
        let mut state = loaded;
        state.sweep_expired(wall_now());
        Ok(Self {
            state,
            installed,
            fresh,
            maps,
            path,
            _lock: lock,
        })
    }

    /// The maps, for reading counters.
    pub fn maps(&self) -> &KernelMaps {
        &self.maps
    }

    /// Compiles the state (refusing it before any write if it is invalid),
    /// installs what changed and saves it.
    pub fn commit(mut self) -> Result<(), ControlError> {
        if !self.fresh && self.state == self.installed {
            return Ok(());
        }
        let resolve = |name: &str| interface_index(name);
        let prepared = prepare(
            &self.maps,
            &self.installed,
            &self.state,
            &resolve,
            self.fresh,
        )
        .map_err(install_error)?;
        apply(
            &mut self.maps,
            &self.installed,
            &self.state,
            &prepared,
            wall_now(),
        )?;
        state::save(&self.path, &self.state)?;
        Ok(())
    }

    /// Hits of a rule id.
    pub fn rule_hits(&self, id: u32) -> Result<u64, ControlError> {
        Ok(self.maps.rule_hits(id)?)
    }

    /// Drops of the rate limit at `index`.
    pub fn limit_drops(&self, index: u32) -> Result<u64, ControlError> {
        Ok(self.maps.limit_drops(index)?)
    }
}

fn install_error(error: InstallError) -> ControlError {
    match error {
        InstallError::Compile(error) => ControlError::Compile(error),
        InstallError::Apply(error) => ControlError::Apply(error),
    }
}

/// Creates and locks this namespace's state directory; every control call
/// holds the lock until it has installed and saved its change. Returns the
/// directory and the lock (released when dropped).
pub fn lock_state_dir() -> Result<(PathBuf, File), ControlError> {
    let dir = state::state_dir()?;
    crate::private_files::create_directory(&dir).map_err(|source| state::StateError::Io {
        path: dir.clone(),
        source,
    })?;
    let lock_path = dir.join("lock");
    // Private: anyone who could open it could hold the lock.
    let lock = crate::private_files::open_private(&lock_path, false).map_err(|source| {
        ControlError::Lock {
            path: lock_path.clone(),
            source,
        }
    })?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(ControlError::Lock {
            path: lock_path,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok((dir, lock))
}
