//! Rows of frames the parser refuses, under the interface policy `pass`:
//! handed to the stack while the filter holds nothing, dropped once it
//! holds anything (the stack accepts some of them, so passing them would
//! let a frame past a filter that cannot judge it), passed when the
//! interface is monitored.

use super::*;

/// The frames: shapes the stack accepts (nine IPv6 extension headers, a
/// tiny IPv4 first fragment) and one it drops (cut in its IPv4 header;
/// `BPF_PROG_TEST_RUN` takes no frame shorter than an Ethernet header).
fn refused_frames(action: fn(Vec<u8>, Reason) -> Step) -> Vec<Step> {
    vec![
        action(nine_destination_options(), Reason::TooManyIpv6Extensions),
        action(tiny_first_fragment(), Reason::TruncatedTcp),
        action(
            hex("020000000001020000000002080045000014"),
            Reason::TruncatedIpv4,
        ),
    ]
}

/// The rows.
pub(crate) fn malformed_rows() -> Vec<Row> {
    let blocking = || blocked("fd09::2/128", None);
    let mut monitored = row(
        "a monitored interface passes them",
        blocking(),
        refused_frames(pass),
    );
    monitored.monitor_interface = true;
    vec![
        row(
            "with nothing in the filter, frames the parser refuses go to the stack",
            FilterState::default(),
            refused_frames(pass),
        ),
        row(
            "with anything in the filter, they are dropped: a blocklisted source cannot reshape its way past it",
            blocking(),
            refused_frames(drop),
        ),
        row(
            "a port rule is not passed by a tiny first fragment",
            rules("--dst 10.9.0.1/32 --proto tcp --dport 2222 --action drop"),
            vec![drop(tiny_first_fragment(), Reason::TruncatedTcp)],
        ),
        monitored,
    ]
}
