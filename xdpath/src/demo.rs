//! Placeholder: replaced by the demo implementation.
/// Runs the demo.
pub fn run(_json: bool) -> Result<(), std::io::Error> {
    Err(std::io::Error::other("demo: not built yet"))
}
