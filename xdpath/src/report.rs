//! How the library tells a person something without printing: warnings
//! and notes go through the `log` facade (`log::warn!`, `log::info!`), and
//! each front end installs a logger that keeps only xdpath's own records
//! ([`is_ours`]). The CLI installs [`StderrLogger`] (one line on stderr,
//! `xdpath: warning: ...` or `xdpath: note: ...`); the daemon passes them
//! to its own log. Either way a warning the kernel's state depends on (an
//! interrupted change, a refused reload) is never lost silently.

/// One line on stderr per warning or note.
#[derive(Debug)]
pub struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        is_ours(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let kind = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            _ => "note",
        };
        eprintln!("xdpath: {kind}: {}", record.args());
    }

    fn flush(&self) {}
}

/// Whether a record is one of xdpath's own warnings or notes: the
/// libraries below (aya among them) log through the same facade, and
/// their notes (a BTF blob the kernel refused, with its whole dump) are
/// not the operator's business.
pub fn is_ours(metadata: &log::Metadata<'_>) -> bool {
    metadata.level() <= log::Level::Info
        && metadata.target().split("::").next() == Some(env!("CARGO_CRATE_NAME"))
}

/// Installs [`StderrLogger`] for this process (once; later calls keep the
/// first logger).
pub fn install_stderr_logger() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_xdpaths_own_warnings_and_notes_are_shown() {
        let metadata = |target, level| {
            log::MetadataBuilder::new()
                .target(target)
                .level(level)
                .build()
        };
        assert!(is_ours(&metadata(
            "xdpath::config::apply",
            log::Level::Warn
        )));
        assert!(is_ours(&metadata("xdpath", log::Level::Info)));
        assert!(!is_ours(&metadata("xdpath::netns", log::Level::Debug)));
        assert!(!is_ours(&metadata("aya::bpf", log::Level::Warn)));
        assert!(!is_ours(&metadata("xdpathd", log::Level::Warn)));
    }
}
