//! Placeholder: replaced by the benchmark implementation.
/// Options.
#[derive(Debug, clap::Args)]
pub struct BenchOptions {}
/// Report.
#[derive(Debug, serde::Serialize)]
pub struct BenchReport {}
impl BenchReport {
    /// Prints.
    pub fn print(&self) {}
}
/// Runs.
pub fn run(_options: &BenchOptions) -> Result<BenchReport, std::io::Error> {
    Err(std::io::Error::other("bench: not built yet"))
}
