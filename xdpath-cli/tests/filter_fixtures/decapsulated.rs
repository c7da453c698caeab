//! Rows on a backend (`xdpath decap`: IPIP and GUE to 10.0.0.1 stripped):
//! a decapsulated packet is judged on its inner headers too, as if it had
//! arrived so. Before, the filter judged only the outer headers (the
//! balancer's address), so one layer of IPIP or GUE from any host got past
//! every deny rule and blocklist entry of the backend.

use super::*;

/// The GUE port of the rows' decapsulator.
pub(crate) const GUE_PORT: u16 = 6080;
/// The backend's own address: tunnels to it are stripped.
pub(crate) const LOCAL4: [u8; 4] = [10, 0, 0, 1];

/// An IPv4 packet (no L2 header) from `source` to 203.0.113.10.
fn inner(source: [u8; 4], transport: Transport) -> Vec<u8> {
    FrameSpec::new(Network::V4(source, [203, 0, 113, 10]), transport).build()[14..].to_vec()
}

fn syn_to(port: u16) -> Transport {
    Transport::tcp(40000, port, FLAG_SYN)
}

/// `inner` in IPIP from a balancer (172.16.0.5) to the backend.
fn ipip(inner: &[u8]) -> Vec<u8> {
    FrameSpec::new(Network::V4([172, 16, 0, 5], LOCAL4), Transport::Other(4))
        .with_payload(inner)
        .build()
}

/// `inner` in GUE from a balancer to the backend.
fn gue(inner: &[u8]) -> Vec<u8> {
    let transport = Transport::udp(0x8123, GUE_PORT);
    FrameSpec::new(Network::V4([172, 16, 0, 5], LOCAL4), transport)
        .with_payload(inner)
        .build()
}

/// A decapsulating row.
fn decap_row(description: &'static str, state: FilterState, steps: Vec<Step>) -> Row {
    Row {
        decap: true,
        ..row(description, state, steps)
    }
}

/// The rows.
pub(crate) fn decapsulated_rows() -> Vec<Row> {
    const CLIENT: [u8; 4] = [192, 0, 2, 1];
    const BLOCKED: [u8; 4] = [198, 51, 100, 7];
    let deny_8080 = || rules("--dst 203.0.113.10/32 --proto tcp --dport 8080 --action drop");
    let mut monitored = decap_row(
        "a monitored interface passes the inner packet a rule denies, counted by the rule",
        deny_8080(),
        vec![pass(ipip(&inner(CLIENT, syn_to(8080))), Reason::RuleDeny)],
    );
    monitored.monitor_interface = true;
    vec![
        decap_row(
            "a deny rule drops the inner packet it meets, in IPIP and in GUE",
            deny_8080(),
            vec![
                drop(ipip(&inner(CLIENT, syn_to(8080))), Reason::RuleDeny),
                drop(gue(&inner(CLIENT, syn_to(8080))), Reason::RuleDeny),
                pass(ipip(&inner(CLIENT, syn_to(80))), Reason::DecapIpip),
                pass(gue(&inner(CLIENT, syn_to(80))), Reason::DecapGue),
            ],
        ),
        decap_row(
            "a blocklisted inner source is dropped, its tunnel from an allowed balancer or not",
            blocked("198.51.100.7/32", None),
            vec![
                drop(ipip(&inner(BLOCKED, syn_to(80))), Reason::Blocklisted),
                drop(gue(&inner(BLOCKED, syn_to(80))), Reason::Blocklisted),
                pass(ipip(&inner(CLIENT, syn_to(80))), Reason::DecapIpip),
            ],
        ),
        decap_row(
            "with anything in the filter, an inner packet the parser refuses is dropped",
            blocked("198.51.100.7/32", None),
            vec![
                drop(ipip(&[0x45]), Reason::TruncatedIpv4),
                drop(
                    ipip(&nine_destination_options()[14..]),
                    Reason::TooManyIpv6Extensions,
                ),
            ],
        ),
        decap_row(
            "with nothing in the filter, the inner packet is the stack's to check",
            FilterState::default(),
            vec![
                pass(ipip(&[0x45]), Reason::DecapIpip),
                pass(ipip(&inner(BLOCKED, syn_to(8080))), Reason::DecapIpip),
            ],
        ),
        monitored,
    ]
}
