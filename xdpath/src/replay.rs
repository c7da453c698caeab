//! Placeholder: replaced by the replay implementation.
use std::path::Path;
use xdpath_core::InterfaceConfig;

/// What a replay found.
#[derive(Debug, serde::Serialize)]
pub struct ReplayReport {}

impl ReplayReport {
    /// Prints the report.
    pub fn print(&self) {}
}

/// Replays a capture.
pub fn run(_path: &Path, _write_pass: Option<&Path>, _config: InterfaceConfig) -> Result<ReplayReport, std::io::Error> {
    Err(std::io::Error::other("replay: not built yet"))
}
