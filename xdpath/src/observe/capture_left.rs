//! A capture filter left on by a capture that died.
//!
//! The data path copies every frame the capture filter matches into the
//! capture ring until someone turns the filter off. `xdpath capture` turns
//! it off on every way out it controls, but a SIGKILL, an OOM kill or a
//! crash leaves it on, with nobody reading: the kernel would copy frames
//! nobody asked for, for ever. So a capture marks its run (`capture-on`
//! in the namespace's state directory, holding its pid) before it turns
//! the filter on, and removes the mark only after it turned the filter
//! off; all along it holds the capture ring's reader lock, which the
//! kernel drops however the process dies. A mark whose lock nobody holds
//! is a capture that died: the next command and xdpathd's 2-second check
//! ([`recover`], from `recovery::finish_interrupted`) turn the filter off
//! and say so. `state check` and `status` read the filter itself
//! ([`abandoned`]), so a filter on with no capture running is reported
//! even without a mark.

use std::path::Path;

use xdpath_core::observe::CaptureConfig;

use super::ring::{self, Ring, RingError};

/// The mark of a running capture, in a namespace's state directory.
pub const CAPTURE_MARK: &str = "capture-on";

/// Marks a capture about to turn the filter on; the caller holds the
/// capture ring's reader lock.
pub(crate) fn mark(dir: &Path) -> Result<(), RingError> {
    let path = dir.join(CAPTURE_MARK);
    std::fs::write(&path, format!("{}\n", std::process::id()))
        .map_err(|source| RingError::Io { path, source })
}

/// The capture turned the filter off.
pub(crate) fn unmark(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(CAPTURE_MARK));
}

/// Whether a capture's mark is there (it runs, or died): cheap, for
/// every command to look.
pub fn marked(dir: &Path) -> bool {
    dir.join(CAPTURE_MARK).exists()
}

/// Turns off a capture filter left on by a capture that died, and says
/// so; nothing while a capture runs.
pub fn recover(dir: &Path) {
    let Ok(Some(_free)) = ring::reader_lock_if_free(Ring::Capture) else {
        return;
    };
    let pid = std::fs::read_to_string(dir.join(CAPTURE_MARK)).unwrap_or_default();
    let pid = pid.trim();
    let on = ring::capture_config().is_ok_and(|config| config.is_some_and(|c| c.enabled != 0));
    if !on {
        unmark(dir);
        return;
    }
    match ring::set_capture(CaptureConfig::default()) {
        Ok(()) => {
            unmark(dir);
            log::warn!("a capture (pid {pid}) ended without turning its filter off (killed?): the data path was still copying frames into the capture ring; turned off");
        }
        Err(error) => log::warn!("a capture (pid {pid}) ended without turning its filter off (killed?), and turning it off failed: {error}; the data path keeps copying frames into the capture ring"),
    }
}

/// The capture filter on while no capture runs, as a line for
/// `state check`; none when it is off, a capture runs, or there are no
/// maps.
pub fn abandoned() -> Result<Option<String>, RingError> {
    let Some(config) = ring::capture_config()? else {
        return Ok(None);
    };
    if config.enabled == 0 {
        return Ok(None);
    }
    Ok(ring::reader_lock_if_free(Ring::Capture)?.map(|_free| {
        "capture: the data path copies frames into the capture ring and no capture runs (one was killed)".to_string()
    }))
}

/// Turns off a capture filter no capture runs; returns what was wrong.
pub fn repair() -> Result<Option<String>, RingError> {
    let Some(config) = ring::capture_config()? else {
        return Ok(None);
    };
    if config.enabled == 0 {
        return Ok(None);
    }
    let Some(_free) = ring::reader_lock_if_free(Ring::Capture)? else {
        return Ok(None);
    };
    ring::set_capture(CaptureConfig::default())?;
    if let Ok(dir) = crate::control::state::state_dir() {
        unmark(&dir);
    }
    Ok(Some(
        "capture: the data path copied frames into the capture ring and no capture ran (one was killed)".to_string(),
    ))
}
