//! The allow-list rows: a VIP with an allow list takes the sources in it
//! and drops the others (`lb-not-allowed`, counted for the VIP), before
//! any connection-table lookup; the lists of the two families are apart;
//! an ICMP error is judged by the client of the flow it quotes.

use super::*;

/// Rows for VIPs 8 (IPv4, 192.0.2.0/25 and `::/0`) and 9 (IPv6,
/// 2001:db8::/124 and `0.0.0.0/0`).
pub(crate) fn allow_rows(rows: &mut Rows) {
    allow_rows4(rows);
    allow_rows6(rows);
}

/// VIP 8's rows.
fn allow_rows4(rows: &mut Rows) {
    let to_vip4 = |source: [u8; 4], port: u16, flags: u8| {
        FrameSpec::new(
            Network::V4(source, ALLOW_VIP4),
            Transport::tcp(port, 80, flags),
        )
        .with_payload(b"GET / HTTP/1.1\r\n\r\n")
        .build()
    };
    let first = rows.add(forwarded(
        "ipv4 tcp from 192.0.2.1, inside the VIP's 192.0.2.0/25",
        to_vip4(CLIENT4, 41000, FLAG_SYN),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    rows.add(forwarded(
        "that flow's ACK: a hit",
        to_vip4(CLIENT4, 41000, FLAG_ACK),
        Output::SameBackendAs(first),
        Table::Hit,
    ));
    for source in [[192, 0, 2, 200], [192, 0, 2, 128], [198, 51, 100, 9]] {
        rows.add(dropped(
            format!("ipv4 tcp from {source:?}, outside the VIP's list"),
            to_vip4(source, 41000, FLAG_SYN),
            Reason::LbNotAllowed,
            Table::Untouched,
        ));
    }
    rows.add(dropped(
        "an ACK from outside the list is refused as its SYN was",
        to_vip4([192, 0, 2, 200], 41000, FLAG_ACK),
        Reason::LbNotAllowed,
        Table::Untouched,
    ));
    rows.add(forwarded(
        "icmp frag-needed about the VIP's reply to 192.0.2.1:41000: the client is allowed",
        icmp4(
            ALLOW_VIP4,
            3,
            4,
            &reply(
                Network::V4(ALLOW_VIP4, CLIENT4),
                Transport::tcp(80, 41000, FLAG_ACK),
            ),
        ),
        Output::SameBackendAs(first),
        Table::Hit,
    ));
    rows.add(dropped(
        "icmp frag-needed about the VIP's reply to 198.51.100.9: the client is not",
        icmp4(
            ALLOW_VIP4,
            3,
            4,
            &reply(
                Network::V4(ALLOW_VIP4, [198, 51, 100, 9]),
                Transport::tcp(80, 41000, FLAG_ACK),
            ),
        ),
        Reason::LbNotAllowed,
        Table::Untouched,
    ));
}

/// VIP 9's rows, and a port of VIP 8's address that is no VIP.
fn allow_rows6(rows: &mut Rows) {
    let to_vip6 = |source: [u8; 16], port: u16| {
        FrameSpec::new(
            Network::V6(source, allow_vip6()),
            Transport::tcp(port, 443, FLAG_SYN),
        )
        .build()
    };
    rows.add(forwarded(
        "ipv6 tcp from 2001:db8::1, inside the VIP's 2001:db8::/124",
        to_vip6(client6(), 41000),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    rows.add(forwarded(
        "ipv6 tcp from 2001:db8::f, the list's last address",
        to_vip6(doc_v6(0xf), 41000),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    rows.add(dropped(
        "ipv6 tcp from 2001:db8::10, just outside the list",
        to_vip6(doc_v6(0x10), 41000),
        Reason::LbNotAllowed,
        Table::Untouched,
    ));
    rows.add(passed(
        "ipv6 tcp from ::ffff:192.0.2.1: refused by the parser before the balancer \
         (never valid on the wire), so no allow list can take it for IPv4; \
         with no filter it goes to the stack, not to a backend",
        to_vip6(ipv4_mapped(CLIENT4), 41000),
        Reason::Ipv6MappedAddress,
    ));
    rows.add(passed(
        "ipv6 tcp to ::ffff:203.0.113.10, an IPv4 VIP's address IPv4-mapped: \
         refused by the parser, not balanced as the IPv4 VIP",
        FrameSpec::new(
            Network::V6(client6(), ipv4_mapped(VIP4)),
            Transport::tcp(41000, 80, FLAG_SYN),
        )
        .build(),
        Reason::Ipv6MappedAddress,
    ));
    rows.add(passed(
        "tcp to a port of the allow-listed address that is no VIP: not the balancer's",
        FrameSpec::new(
            Network::V4([198, 51, 100, 9], ALLOW_VIP4),
            Transport::tcp(41000, 81, FLAG_SYN),
        )
        .build(),
        Reason::Ipv4Tcp,
    ));
}
