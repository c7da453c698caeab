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
//!
//! Who carries a rollback out: the waiter, while it runs. It holds a
//! shared `flock` on `rollback/waiter.lock` for its whole life, which the
//! kernel drops however it dies (a pid could be reused, or belong to
//! another pid namespace than the daemon's). A rollback past its deadline
//! whose lock nobody holds (the waiter was killed), or past it by more than
//! [`GRACE`] seconds (the waiter is stopped or stuck), is carried out by
//! the next command that takes the state lock ([`recover_overdue`], from
//! `recovery::finish_interrupted`, so also by xdpathd within its 2 s
//! check), and said so on stderr. Both sides take the rollback only under
//! the state lock and remove `pending.json` only after the snapshot is
//! back in force, so it is carried out once, and a kill in the middle
//! leaves the apply's journal and the pending rollback for the next
//! command to finish.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{apply, current, ConfigError, DesiredConfig};
use crate::control::session::lock_state_dir;
use crate::control::state::{self, state_dir};
use crate::control::wall_now;

/// The directory of pending rollbacks, inside a namespace's state dir.
pub const ROLLBACK_DIR: &str = "rollback";
/// The pending snapshot.
pub const PENDING_FILE: &str = "pending.json";
/// What the last rollback did.
pub const LAST_FILE: &str = "last.json";
/// Held (shared) by every running waiter.
pub const WAITER_LOCK: &str = "waiter.lock";

/// How often the waiter looks whether it was confirmed.
const POLL: Duration = Duration::from_millis(200);

/// Seconds past its deadline that a rollback stays its running waiter's:
/// a waiter polls every 200 ms and then waits for the state lock, so a
/// live one that has not acted by then is stopped or stuck.
pub const GRACE: u64 = 10;

/// A rollback waiting for its deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// When it rolls back, seconds since the Unix epoch.
    pub deadline: u64,
    /// The state to put back.
    pub snapshot: DesiredConfig,
}

/// The deadline of `pending.json` alone: every command looks whether a
/// rollback is overdue, and the snapshot can be megabytes.
#[derive(Deserialize)]
struct DeadlineOnly {
    deadline: u64,
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

/// What [`confirm`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirmed {
    /// The pending rollback is cancelled.
    Cancelled(Box<Pending>),
    /// None was pending; the last rollback carried out, if any.
    Nothing(Option<Outcome>),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// This namespace's rollback directory.
pub fn rollback_dir() -> Result<PathBuf, ConfigError> {
    Ok(state_dir()?.join(ROLLBACK_DIR))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, ConfigError> {
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

fn read_pending(path: &Path) -> Result<Option<Pending>, ConfigError> {
    read_json(path)
}

/// The rollback pending in this namespace, if any.
pub fn pending() -> Result<Option<Pending>, ConfigError> {
    read_pending(&rollback_dir()?.join(PENDING_FILE))
}

/// `HH:MM:SS` of a Unix time, UTC.
pub fn format_time(seconds: u64) -> String {
    let rest = seconds % 86_400;
    format!("{:02}:{:02}:{:02}", rest / 3600, rest / 60 % 60, rest % 60)
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

/// `xdpath confirm`: cancels the pending rollback. One past its deadline
/// is not cancelled: it is carried out now if its waiter is gone (as any
/// command would), else refused, its waiter being about to act.
pub fn confirm() -> Result<Confirmed, ConfigError> {
    // An overdue rollback without a waiter was carried out before this
    // command, by `recovery::finish_interrupted` (once: it warns).
    let (dir, _lock) = lock_state_dir()?;
    let rollback = dir.join(ROLLBACK_DIR);
    let path = rollback.join(PENDING_FILE);
    match read_pending(&path)? {
        Some(pending) if wall_now() >= pending.deadline => Err(ConfigError::Usage(format!(
            "the rollback due at {} UTC (Unix time {}) is overdue and cannot be cancelled: its waiter is putting the state from before back",
            format_time(pending.deadline),
            pending.deadline
        ))),
        Some(pending) => {
            std::fs::remove_file(&path).map_err(io_error(&path))?;
            Ok(Confirmed::Cancelled(Box::new(pending)))
        }
        None => Ok(Confirmed::Nothing(
            read_json(&rollback.join(LAST_FILE)).ok().flatten(),
        )),
    }
}

/// Starts `xdpath apply --rollback-at DEADLINE` detached: its own session,
/// no terminal, standard streams on /dev/null. It inherits this network
/// namespace.
fn spawn_waiter(deadline: u64) -> Result<(), ConfigError> {
    let exe = std::env::current_exe().map_err(io_error(Path::new("/proc/self/exe")))?;
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

/// Opens the waiters' lock file and `flock`s it with `operation`; none if
/// it is held the other way (with `LOCK_NB`).
fn waiter_lock(
    rollback: &Path,
    operation: libc::c_int,
) -> Result<Option<std::fs::File>, ConfigError> {
    let path = rollback.join(WAITER_LOCK);
    crate::private_files::create_directory(rollback).map_err(io_error(rollback))?;
    let file = crate::private_files::open_private(&path, false).map_err(io_error(&path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        return Ok(Some(file));
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(io_error(&path)(error))
    }
}

/// The waiter: sleeps until `deadline` (leaving early if the rollback is
/// confirmed or re-armed), then puts the snapshot back. Returns what it
/// did, none if there was nothing to do.
pub fn wait_and_roll_back(deadline: u64) -> Result<Option<Outcome>, ConfigError> {
    let rollback = rollback_dir()?;
    // Held until this process ends: the rollback is this waiter's.
    let _alive = waiter_lock(&rollback, libc::LOCK_SH)?;
    let path = rollback.join(PENDING_FILE);
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
    let (_dir, _lock) = lock_state_dir()?;
    match read_pending(&path)? {
        Some(pending) if pending.deadline == deadline => roll_back(&rollback, &pending).map(Some),
        _ => Ok(None),
    }
}

/// Puts `pending`'s snapshot back and records the outcome; the caller
/// holds the state lock. `pending.json` goes after the apply: a kill
/// during it leaves the apply's journal and the rollback, both finished by
/// the next command (the rollback's apply then changing nothing).
fn roll_back(rollback: &Path, pending: &Pending) -> Result<Outcome, ConfigError> {
    let result = apply(&pending.snapshot);
    let path = rollback.join(PENDING_FILE);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error(&path)(error))
        }
        _ => {}
    }
    let outcome = Outcome {
        deadline: pending.deadline,
        finished_at: wall_now(),
        changes: result.as_ref().map_or(0, |plan| plan.len()),
        error: result.err().map(|error| error.to_string()),
    };
    state::save_plain(&rollback.join(LAST_FILE), &outcome)?;
    Ok(outcome)
}

/// Whether a rollback is past its deadline (cheap: one file looked up,
/// its deadline alone parsed, when one is pending).
pub fn overdue(dir: &Path) -> bool {
    read_json::<DeadlineOnly>(&dir.join(ROLLBACK_DIR).join(PENDING_FILE))
        .ok()
        .flatten()
        .is_some_and(|pending| wall_now() >= pending.deadline)
}

/// Carries out a rollback past its deadline that its waiter cannot (it is
/// gone, or has not acted [`GRACE`] seconds past the deadline), and says
/// so on stderr. The caller holds the state lock.
pub fn recover_overdue(dir: &Path) {
    let rollback = dir.join(ROLLBACK_DIR);
    let pending = match read_pending(&rollback.join(PENDING_FILE)) {
        Ok(Some(pending)) if wall_now() >= pending.deadline => pending,
        Ok(_) => return,
        Err(error) => {
            log::warn!(
                "a rollback is pending but cannot be read: {error}; it will not be carried out"
            );
            return;
        }
    };
    let due = format_time(pending.deadline);
    // Held while this rollback runs; none: a waiter is alive.
    let no_waiter = match waiter_lock(&rollback, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(lock) => lock,
        Err(error) => {
            log::warn!("the rollback due at {due} UTC is overdue and whether its waiter runs cannot be told: {error}");
            return;
        }
    };
    let late = wall_now().saturating_sub(pending.deadline);
    let why = match &no_waiter {
        Some(_) => "its waiter is gone (killed?)",
        None if late > GRACE => "its waiter is still running but has not acted",
        None => {
            if late >= 2 {
                log::warn!("the rollback due at {due} UTC is {late}s overdue; its waiter is still running and should carry it out (any command does {GRACE}s past the deadline)");
            }
            return;
        }
    };
    match roll_back(&rollback, &pending) {
        Ok(Outcome { error: None, changes, .. }) => log::warn!(
            "the rollback due at {due} UTC was {late}s overdue and {why}: carried out now, the state from before `apply --confirm` is back in force ({changes} change{})",
            if changes == 1 { "" } else { "s" }
        ),
        Ok(Outcome { error: Some(error), .. }) => log::warn!(
            "the rollback due at {due} UTC was {late}s overdue and {why}: putting the state from before `apply --confirm` back failed: {error}"
        ),
        Err(error) => log::warn!(
            "the rollback due at {due} UTC was {late}s overdue and {why}: carrying it out failed: {error}; `xdpath state check` shows what the kernel holds"
        ),
    }
}
