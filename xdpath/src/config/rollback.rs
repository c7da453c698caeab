//! `apply --confirm DURATION` and `confirm`: a snapshot of the state from
//! before an apply is kept in `/var/lib/xdpath/<netns id>/rollback/pending.json`
//! with a deadline, and a detached process of this same binary
//! (`xdpath apply --rollback-at UNIX_TIME`, in its own session, in the same
//! network namespace) waits for it without holding the state lock. At the
//! deadline, unless `confirm` has removed the snapshot, it applies the
//! snapshot back and records the outcome in `rollback/last.json`.
//!
//! An apply with `--confirm` while a rollback is pending keeps the older
//! snapshot (the state before the first unconfirmed apply) and moves the
//! deadline; the earlier waiter sees the new deadline and leaves.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{apply, current, ConfigError, DesiredConfig};
use crate::control::session::lock_state_dir;
use crate::control::state::{self, state_dir};

/// The directory of pending rollbacks, inside a namespace's state dir.
pub const ROLLBACK_DIR: &str = "rollback";
/// The pending snapshot.
pub const PENDING_FILE: &str = "pending.json";
/// What the last rollback did.
pub const LAST_FILE: &str = "last.json";

/// How often the waiter looks whether it was confirmed.
const POLL: Duration = Duration::from_millis(200);

/// A rollback waiting for its deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// When it rolls back, seconds since the Unix epoch.
    pub deadline: u64,
    /// The state to put back.
    pub snapshot: DesiredConfig,
}

/// What the last rollback did (`rollback/last.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The deadline it was due at.
    pub deadline: u64,
    /// When it ran.
    pub finished_at: u64,
    /// How many changes it made.
    pub changes: usize,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A rollback armed by [`arm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Armed {
    /// When it rolls back, seconds since the Unix epoch.
    pub deadline: u64,
    /// False when it extends a rollback that was already pending.
    pub fresh: bool,
}

fn io_error(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// This namespace's rollback directory.
pub fn rollback_dir() -> Result<PathBuf, ConfigError> {
    Ok(state_dir()?.join(ROLLBACK_DIR))
}

fn read_pending(path: &std::path::Path) -> Result<Option<Pending>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ConfigError::Snapshot {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io_error(path)(source)),
    }
}

/// The rollback pending in this namespace, if any.
pub fn pending() -> Result<Option<Pending>, ConfigError> {
    read_pending(&rollback_dir()?.join(PENDING_FILE))
}

/// Saves the current state to be put back in `seconds` (rounded up to a
/// whole second) unless confirmed, and starts the waiter.
pub fn arm(seconds: u64) -> Result<Armed, ConfigError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline = now.as_secs() + seconds + u64::from(now.subsec_nanos() > 0);
    let snapshot = current()?;
    let (dir, _lock) = lock_state_dir()?;
    let path = dir.join(ROLLBACK_DIR).join(PENDING_FILE);
    let earlier = read_pending(&path)?;
    let fresh = earlier.is_none();
    let pending = Pending {
        deadline,
        snapshot: earlier.map_or(snapshot, |earlier| earlier.snapshot),
    };
    state::save_plain(&path, &pending)?;
    if let Err(error) = spawn_waiter(deadline) {
        let _ = std::fs::remove_file(&path);
        return Err(error);
    }
    Ok(Armed { deadline, fresh })
}

/// Removes the pending rollback armed with `deadline` (after a failed
/// apply, which has put the old state back itself).
pub fn disarm(deadline: u64) -> Result<(), ConfigError> {
    let (dir, _lock) = lock_state_dir()?;
    let path = dir.join(ROLLBACK_DIR).join(PENDING_FILE);
    if read_pending(&path)?.is_some_and(|pending| pending.deadline == deadline) {
        std::fs::remove_file(&path).map_err(io_error(&path))?;
    }
    Ok(())
}

/// `xdpath confirm`: cancels the pending rollback; returns it, or none if
/// nothing was pending.
pub fn confirm() -> Result<Option<Pending>, ConfigError> {
    let (dir, _lock) = lock_state_dir()?;
    let path = dir.join(ROLLBACK_DIR).join(PENDING_FILE);
    let pending = read_pending(&path)?;
    if pending.is_some() {
        std::fs::remove_file(&path).map_err(io_error(&path))?;
    }
    Ok(pending)
}

/// Starts `xdpath apply --rollback-at DEADLINE` detached: its own session,
/// no terminal, standard streams on /dev/null. It inherits this network
/// namespace.
fn spawn_waiter(deadline: u64) -> Result<(), ConfigError> {
    let exe = std::env::current_exe().map_err(io_error(std::path::Path::new("/proc/self/exe")))?;
    let mut command = Command::new(&exe);
    command
        .args(["apply", "--rollback-at", &deadline.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Not waited for: it outlives this process and is reaped by init.
    command.spawn().map(drop).map_err(io_error(&exe))
}

/// The waiter: sleeps until `deadline` (leaving early if the rollback is
/// confirmed or re-armed), then puts the snapshot back. Returns what it
/// did, none if there was nothing to do.
pub fn wait_and_roll_back(deadline: u64) -> Result<Option<Outcome>, ConfigError> {
    let path = rollback_dir()?.join(PENDING_FILE);
    loop {
        match read_pending(&path)? {
            Some(pending) if pending.deadline == deadline => {}
            _ => return Ok(None),
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let due = Duration::from_secs(deadline);
        if now >= due {
            break;
        }
        std::thread::sleep(POLL.min(due - now));
    }
    let pending = {
        let (_dir, _lock) = lock_state_dir()?;
        match read_pending(&path)? {
            Some(pending) if pending.deadline == deadline => {
                std::fs::remove_file(&path).map_err(io_error(&path))?;
                pending
            }
            _ => return Ok(None),
        }
    };
    let result = apply(&pending.snapshot);
    let outcome = Outcome {
        deadline,
        finished_at: crate::control::wall_now(),
        changes: result.as_ref().map_or(0, |plan| plan.len()),
        error: result.err().map(|error| error.to_string()),
    };
    state::save_plain(&rollback_dir()?.join(LAST_FILE), &outcome)?;
    Ok(Some(outcome))
}
