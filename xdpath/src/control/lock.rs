//! The lock of a namespace's state directory: every control call (filter,
//! balancer, config, attach) holds it from reading the state until the
//! change is installed and saved, so two writers never interleave.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::ThreadId;

use super::state;
use super::ControlError;

/// The held lock of a namespace's state directory. Released when the
/// last handle of it is dropped.
#[derive(Clone)]
pub struct StateLock {
    _file: Arc<File>,
}

/// The state locks each thread holds, so that a thread that holds its
/// namespace's lock (an attach installing the state before it attaches,
/// an apply attaching under it) can open sessions without waiting for
/// itself: `flock` would block on a second descriptor of the same file.
static HELD: Mutex<Vec<(ThreadId, PathBuf, Weak<File>)>> = Mutex::new(Vec::new());

/// Creates and locks this namespace's state directory; every control call
/// holds the lock until it has installed and saved its change. Returns the
/// directory and the lock (released when dropped; taken again by the same
/// thread, it is shared, not waited for). Temporary files a killed writer
/// left are removed under the lock.
pub fn lock_state_dir() -> Result<(PathBuf, StateLock), ControlError> {
    let dir = state::state_dir()?;
    let thread = std::thread::current().id();
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    held.retain(|(_, _, file)| file.strong_count() > 0);
    let mine = held
        .iter()
        .find(|(owner, path, _)| *owner == thread && *path == dir)
        .and_then(|(_, _, file)| file.upgrade());
    if let Some(file) = mine {
        return Ok((dir, StateLock { _file: file }));
    }
    drop(held);
    let file = Arc::new(take_lock(&dir)?);
    HELD.lock().unwrap_or_else(PoisonError::into_inner).push((
        thread,
        dir.clone(),
        Arc::downgrade(&file),
    ));
    Ok((dir, StateLock { _file: file }))
}

fn take_lock(dir: &std::path::Path) -> Result<File, ControlError> {
    crate::private_files::create_directory(dir).map_err(|source| state::StateError::Io {
        path: dir.to_path_buf(),
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
    state::remove_stale_temporaries(dir);
    Ok(lock)
}
