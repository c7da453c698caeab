//! The checks behind xdpath's fuzz targets. Each takes arbitrary bytes,
//! feeds them to one entry point the way its real caller does, and panics
//! (the fuzzer's finding) on a panic inside or on a broken invariant: a
//! round trip that does not come back, something accepted that then fails
//! to install, an error message of more than one line.
//!
//! `cargo fuzz run TARGET` (see `scripts/fuzz.sh`) runs them under
//! libFuzzer; `tests/replay.rs` runs every input kept under
//! `fuzz/corpus/TARGET/` through them in the normal test suite.

mod api;
mod packet;
mod pcap;
mod text;

pub use api::api_request;
pub use packet::{packet, pipeline};
pub use pcap::{pcap_reader, pcapng_reader, pcapng_writer};
pub use text::{config, rule_file};

/// One fuzz target's check.
pub type Check = fn(&[u8]);

/// Every target, by the name `cargo fuzz` knows it by.
pub const TARGETS: [(&str, Check); 8] = [
    ("packet", packet),
    ("pipeline", pipeline),
    ("rule_file", rule_file),
    ("config", config),
    ("pcap_reader", pcap_reader),
    ("pcapng_reader", pcapng_reader),
    ("pcapng_writer", pcapng_writer),
    ("api_request", api_request),
];

/// Errors are one line (the CLI prints them after `xdpath: error:`, the
/// API as a JSON string).
fn assert_one_line(message: &str) {
    assert!(
        !message.contains('\n'),
        "a multi-line error message: {message:?}"
    );
}
