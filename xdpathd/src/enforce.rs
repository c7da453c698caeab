//! The daemon's watch over what the kernel enforces: at start and every
//! [`CHECK_INTERVAL`], the namespace's saved state is compared with the
//! kernel's maps, read back, and whatever differs (pins removed, a map
//! emptied by another tool, a change a crash left half-done) is installed
//! again, logged and counted in `/metrics`. An interface whose program was
//! loaded by an older build and does not enforce entries of the state is
//! logged when that starts or changes, and clears `xdpath_state_enforced`
//! until `xdpath reload` replaces the program.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Time between two checks: a divergence is repaired within it.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Checks that found the kernel diverged from the saved state (and
/// repaired it).
pub static DIVERGENCES: AtomicU64 = AtomicU64::new(0);
/// Checks that could not compare or repair.
pub static FAILURES: AtomicU64 = AtomicU64::new(0);
/// Whether the last check left the kernel enforcing the saved state.
pub static ENFORCED: AtomicU64 = AtomicU64::new(0);

/// The older programs' gaps the last check found, so each is logged once.
static GAPS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// One check: finishes an interrupted apply, then repairs what differs.
pub fn check_once() {
    xdpath::recovery::finish_interrupted();
    match xdpath::reconcile::repair() {
        Ok(differences) if differences.is_empty() => ENFORCED.store(1, Ordering::Relaxed),
        Ok(differences) => {
            DIVERGENCES.fetch_add(1, Ordering::Relaxed);
            ENFORCED.store(1, Ordering::Relaxed);
            for line in differences.lines() {
                tracing::warn!(difference = %line.escape_debug(), "the kernel diverged from the saved state; installed it again");
            }
        }
        Err(error) => {
            FAILURES.fetch_add(1, Ordering::Relaxed);
            ENFORCED.store(0, Ordering::Relaxed);
            tracing::error!(error = %error.to_string().escape_debug(), "the saved state cannot be installed; the kernel may not enforce it");
        }
    }
    match xdpath::reconcile::program_gaps() {
        Ok(gaps) => {
            if !gaps.is_empty() {
                ENFORCED.store(0, Ordering::Relaxed);
            }
            let mut last = GAPS.lock().unwrap_or_else(PoisonError::into_inner);
            if *last != gaps {
                for line in &gaps {
                    tracing::warn!(difference = %line.escape_debug(), "a program loaded by an older xdpath does not enforce the saved state");
                }
                *last = gaps;
            }
        }
        Err(error) => {
            FAILURES.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %error.to_string().escape_debug(), "what the attached programs enforce cannot be read");
        }
    }
    // Changes made through the API (sampling, forwarding, steering) are
    // recorded here, so a lost program comes back with them.
    if let Err(error) = xdpath::control::interfaces::sync() {
        tracing::warn!(error = %error.to_string().escape_debug(), "recording the interfaces' settings failed");
    }
}

/// Checks now and then every [`CHECK_INTERVAL`], forever.
pub async fn run() {
    loop {
        if tokio::task::spawn_blocking(check_once).await.is_err() {
            FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(CHECK_INTERVAL).await;
    }
}

/// The metrics of the watch, in the Prometheus text format.
pub fn metrics(out: &mut String) {
    use std::fmt::Write;
    for (name, kind, help, value) in [
        (
            "xdpath_state_divergences_total",
            "counter",
            "Checks that found the kernel's maps differing from the saved state (each repaired).",
            DIVERGENCES.load(Ordering::Relaxed),
        ),
        (
            "xdpath_state_check_failures_total",
            "counter",
            "Checks that could not compare the saved state with the kernel or install it.",
            FAILURES.load(Ordering::Relaxed),
        ),
        (
            "xdpath_state_enforced",
            "gauge",
            "1 while the last check left the kernel enforcing the saved state exactly.",
            ENFORCED.load(Ordering::Relaxed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}
