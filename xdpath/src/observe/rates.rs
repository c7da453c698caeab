//! Temporary sampling rates: `export --rate N` samples its interfaces at
//! N while it runs and puts the operator's rates back when it ends.
//!
//! The operator's rate is the one recorded (`interfaces.json`, what a
//! lost program comes back with), never the run's: before it changes a
//! rate, the export writes `export-rates.json` in the namespace's state
//! directory, under the state lock, with the operator's rate of each
//! interface, and `control::interfaces::sync` records those while the
//! file is there. The export holds `export-rates.lock` (a `flock`, which
//! the kernel drops however the process dies) for its whole life. When
//! it ends it puts the rates back and removes the file; when it was
//! killed (or the machine rebooted), the next command that takes the
//! state lock and xdpathd's 2-second check ([`recover`], from
//! `recovery::finish_interrupted`) find the file with its lock free, put
//! the rates back and say so. An operator's `sample` (or an `apply` that
//! sets a rate) while the export runs takes that interface out of the
//! file: the operator's newer rate stays when the export ends.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::control::lock::lock_state_dir;
use crate::control::state::{self, StateError};
use crate::control::ControlError;
use crate::dataplane::{self, DataplaneError};
use xdpath_core::InterfaceConfig;

/// The operator's rates of a running export's interfaces.
pub const RATES_MARK: &str = "export-rates.json";
/// Held (`flock`) by the export that wrote [`RATES_MARK`].
pub const RATES_LOCK: &str = "export-rates.lock";

/// Errors of temporary and operator's rates.
#[derive(Debug, thiserror::Error)]
pub enum TemporaryRateError {
    /// The state directory or its lock.
    #[error(transparent)]
    Control(Box<ControlError>),
    /// The mark.
    #[error(transparent)]
    State(#[from] StateError),
    /// An interface's rate.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// Another export's rates are in force.
    #[error("an export with --rate (pid {0}) runs in this namespace: stop it first")]
    Busy(u32),
    /// The lock file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl From<ControlError> for TemporaryRateError {
    fn from(error: ControlError) -> Self {
        Self::Control(Box::new(error))
    }
}

/// What [`RATES_MARK`] holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct RatesMark {
    /// The export's pid, for the operator.
    pid: u32,
    /// The run's rate.
    rate: u32,
    /// The operator's rate of each interface whose rate the run set.
    saved: BTreeMap<String, u32>,
}

fn read_mark(dir: &Path) -> Option<RatesMark> {
    let bytes = std::fs::read(dir.join(RATES_MARK)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Opens the lock and `flock`s it exclusively without waiting; none when
/// an export holds it.
fn try_lock(dir: &Path) -> Result<Option<File>, TemporaryRateError> {
    let path = dir.join(RATES_LOCK);
    let io = |source| TemporaryRateError::Io {
        path: path.clone(),
        source,
    };
    crate::private_files::create_directory(dir).map_err(io)?;
    let file = crate::private_files::open_private(&path, false).map_err(io)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(io(error))
    }
}

/// A run's rates in force; the operator's come back when it is dropped.
pub struct TemporaryRates {
    _lock: File,
}

impl TemporaryRates {
    /// Samples each of `interfaces` (with its operator's rate) at `rate`,
    /// marked first so that a kill leaves the operator's rates recorded
    /// and put back by the next command.
    pub fn set(interfaces: &[(String, u32)], rate: u32) -> Result<Self, TemporaryRateError> {
        let (dir, _state) = lock_state_dir()?;
        let Some(lock) = try_lock(&dir)? else {
            return Err(TemporaryRateError::Busy(
                read_mark(&dir).map_or(0, |mark| mark.pid),
            ));
        };
        // The operator's rates as they are now, under the state lock: a
        // `sample` between the caller's read and this lock would else be
        // undone when the export ends.
        let saved = interfaces
            .iter()
            .map(|(interface, read)| {
                let now = dataplane::read_interface_config(interface)
                    .map_or(*read, |config| config.sample_rate);
                (interface.clone(), now)
            })
            .collect();
        let mark = RatesMark {
            pid: std::process::id(),
            rate,
            saved,
        };
        state::save_plain(&dir.join(RATES_MARK), &mark)?;
        // From here a failure drops `rates`: what was set is put back.
        let rates = Self { _lock: lock };
        for (interface, _) in interfaces {
            dataplane::update_interface_config(interface, |config| config.sample_rate = rate)?;
        }
        Ok(rates)
    }
}

impl Drop for TemporaryRates {
    fn drop(&mut self) {
        // Failing, the mark stays and the lock goes with this process:
        // the next command puts the rates back.
        if let Ok((dir, _state)) = lock_state_dir() {
            put_back(&dir);
        }
    }
}

/// Puts the marked interfaces' operator's rates back and removes the
/// mark; the caller holds the state lock. Returns the mark and the
/// interfaces whose rate could not be put back, with why.
fn put_back(dir: &Path) -> Option<(RatesMark, Vec<String>)> {
    let mark = read_mark(dir);
    let mut failed = Vec::new();
    for (interface, rate) in mark.iter().flat_map(|mark| &mark.saved) {
        match dataplane::update_interface_config(interface, |config| config.sample_rate = *rate) {
            // Detached meanwhile, or not yet attached again after a
            // reboot (it comes back with its recorded rate, this one).
            Ok(_) | Err(DataplaneError::NotAttached { .. }) => {}
            Err(error) => failed.push(format!("{interface}: {error}")),
        }
    }
    if failed.is_empty() {
        let _ = std::fs::remove_file(dir.join(RATES_MARK));
    }
    mark.map(|mark| (mark, failed))
}

/// Whether an export's rates are marked (it runs, or died): cheap, for
/// every command to look.
pub fn marked(dir: &Path) -> bool {
    dir.join(RATES_MARK).exists()
}

/// Puts back the operator's rates an export left in force when it died,
/// and says so; nothing while it runs. The caller holds the state lock.
pub fn recover(dir: &Path) {
    let Ok(Some(_free)) = try_lock(dir) else {
        return;
    };
    let Some((mark, failed)) = put_back(dir) else {
        let _ = std::fs::remove_file(dir.join(RATES_MARK));
        return;
    };
    if mark.saved.is_empty() {
        // The operator set every rate since: nothing was put back.
        return;
    }
    let rates: Vec<String> = mark
        .saved
        .iter()
        .map(|(interface, rate)| format!("{interface} 1 in {rate}"))
        .collect();
    if failed.is_empty() {
        log::warn!(
            "an export (pid {}) ended without putting the sampling rates back (killed?): its rate 1 in {} is replaced by the saved ones ({})",
            mark.pid,
            mark.rate,
            rates.join(", ")
        );
    } else {
        log::warn!(
            "an export (pid {}) ended without putting the sampling rates back (killed?), and putting them back failed ({}); the kernel samples at its rate 1 in {}",
            mark.pid,
            failed.join("; "),
            mark.rate
        );
    }
}

/// The operator's rates of the interfaces a running (or killed) export
/// samples at its own rate: what is recorded for them. The caller holds
/// the state lock.
pub fn saved_rates(dir: &Path) -> BTreeMap<String, u32> {
    read_mark(dir).map(|mark| mark.saved).unwrap_or_default()
}

/// The operator's rate for `interface` (`xdpath sample`): in force now,
/// and kept when an export sampling it at its own rate ends.
pub fn set_rate(interface: &str, rate: u32) -> Result<InterfaceConfig, TemporaryRateError> {
    let (dir, _state) = lock_state_dir()?;
    let config = dataplane::update_interface_config(interface, |config| {
        config.sample_rate = rate;
    })?;
    operator_set(&dir, interface)?;
    Ok(config)
}

/// An operator set `interface`'s rate: no export puts an older one back.
/// The caller holds the state lock.
pub fn operator_set(dir: &Path, interface: &str) -> Result<(), TemporaryRateError> {
    let Some(mut mark) = read_mark(dir) else {
        return Ok(());
    };
    if mark.saved.remove(interface).is_some() {
        state::save_plain(&dir.join(RATES_MARK), &mark)?;
    }
    Ok(())
}
