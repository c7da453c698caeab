//! The ICMP and fragment rows: too-big errors steered to the backend of
//! the flow they quote, errors about unknown or unsteered flows, and the
//! fragment policy.

use super::*;

/// ICMP too-big steering (mod.rs): sent to the backend of the flow it
/// quotes, never recorded as a flow of its own; other ICMP is not for a
/// VIP.
pub(crate) fn icmp_rows(rows: &mut Rows) {
    let quoted = Transport::tcp(80, 40001, FLAG_ACK);
    let established = rows.tcp4[1];
    rows.add(forwarded(
        "icmp frag-needed about the IPIP VIP's reply to 192.0.2.1:40001",
        too_big4(CLIENT4, quoted),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    let quoted = Transport::tcp(443, 40001, FLAG_ACK);
    let established = rows.tcp6[1];
    rows.add(forwarded(
        "icmpv6 too-big about the GUE VIP's reply to [2001:db8::1]:40001",
        too_big6(vip6(), client6(), quoted),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    // The quoted header with 4 bytes of options (IHL 6): the ports follow.
    let mut quoted = reply(
        Network::V4(VIP4, CLIENT4),
        Transport::tcp(80, 40003, FLAG_ACK),
    );
    quoted.splice(20..20, [1, 1, 1, 1]);
    quoted[0] = 0x46;
    let established = rows.tcp4[3];
    rows.add(forwarded(
        "icmp frag-needed quoting a header with IPv4 options (IHL 6)",
        icmp4(VIP4, 3, 4, &quoted),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    let established = rows.udp4[0];
    rows.add(forwarded(
        "icmp frag-needed about the all-ports VIP's udp reply to 192.0.2.7:5000",
        too_big4(UDP4_SOURCES[0], Transport::udp(9999, 5000)),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    let established = rows.udp6[1];
    rows.add(forwarded(
        "icmpv6 too-big about the all-ports GUE VIP's udp reply",
        too_big6(vip6_all(), udp6_sources()[1], Transport::udp(5353, 5000)),
        Output::SameBackendAs(established),
        Table::Hit,
    ));
    unknown_flow_icmp_rows(rows);
    unsteered_icmp_rows(rows);
}

/// Too-big for flows the table does not hold: balanced like the flow, not
/// recorded (the flow's first packet afterwards is a miss).
pub(crate) fn unknown_flow_icmp_rows(rows: &mut Rows) {
    let icmp = rows.add(forwarded(
        "icmp frag-needed about a flow the table does not hold (port 45000)",
        too_big4(CLIENT4, Transport::tcp(80, 45000, FLAG_ACK)),
        Output::Encapsulated,
        Table::IcmpMiss,
    ));
    rows.add(forwarded(
        "that flow's first packet afterwards: a miss, the same backend",
        tcp4(45000, VIP4),
        Output::SameBackendAs(icmp),
        Table::NewFlow,
    ));
    let icmp = rows.add(forwarded(
        "icmpv6 too-big about a flow the table does not hold (port 45000)",
        too_big6(vip6(), client6(), Transport::tcp(443, 45000, FLAG_ACK)),
        Output::Encapsulated,
        Table::IcmpMiss,
    ));
    rows.add(forwarded(
        "that ipv6 flow's first packet afterwards: a miss, the same backend",
        tcp6(45000),
        Output::SameBackendAs(icmp),
        Table::NewFlow,
    ));
    rows.add(dropped(
        "icmp frag-needed about the reply of a VIP with no backend",
        icmp4(
            NO_BACKEND_VIP4,
            3,
            4,
            &reply(
                Network::V4(NO_BACKEND_VIP4, CLIENT4),
                Transport::tcp(80, 40000, FLAG_ACK),
            ),
        ),
        Reason::LbNoBackend,
        Table::NoBackend,
    ));
}

/// ICMP that is not too-big about a VIP's flow goes to the stack as it is.
pub(crate) fn unsteered_icmp_rows(rows: &mut Rows) {
    rows.add(passed(
        "icmp frag-needed about a port the VIP does not serve",
        too_big4(CLIENT4, Transport::tcp(81, 40001, FLAG_ACK)),
        Reason::Ipv4Icmp,
    ));
    rows.add(passed(
        "icmpv6 too-big about a port the VIP does not serve",
        too_big6(vip6(), client6(), Transport::tcp(444, 40001, FLAG_ACK)),
        Reason::Ipv6Icmp,
    ));
    let quoted = reply(
        Network::V4(VIP4, CLIENT4),
        Transport::tcp(80, 40001, FLAG_ACK),
    );
    rows.add(passed(
        "icmp port-unreachable (3/3) about a served flow: only too-big is steered",
        icmp4(VIP4, 3, 3, &quoted),
        Reason::Ipv4Icmp,
    ));
    rows.add(passed(
        "icmp frag-needed whose quote stops before the ports",
        icmp4(VIP4, 3, 4, &quoted[..20]),
        Reason::Ipv4Icmp,
    ));
    let quoted = reply(
        Network::V6(vip6(), client6()),
        Transport::tcp(443, 40001, FLAG_ACK),
    );
    rows.add(passed(
        "icmpv6 destination-unreachable (1/4) about a served flow",
        icmp6(vip6(), 1, 4, &quoted),
        Reason::Ipv6Icmp,
    ));
    rows.add(passed(
        "icmpv6 too-big whose quote stops before the ports",
        icmp6(vip6(), 2, 0, &quoted[..40]),
        Reason::Ipv6Icmp,
    ));
    // Destination options (PadN) before the ICMPv6 header: the quote is
    // only looked for straight after the fixed header (stage.rs).
    let mut message = vec![58, 0, 1, 4, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0x05, 0x00];
    message.extend_from_slice(&quoted);
    let behind_options = FrameSpec::new(Network::V6(router6(), vip6()), Transport::Other(60))
        .with_payload(&message)
        .build();
    rows.add(passed(
        "icmpv6 too-big behind an extension header",
        behind_options,
        Reason::Ipv6Icmp,
    ));
}

/// The fragment policy (mod.rs): a VIP that hashes on ports drops the
/// fragments it sees (`lb-fragment`); later fragments carry no port, so
/// only an all-ports VIP sees them; a source-hashed VIP balances every
/// fragment (with the source's other flows).
pub(crate) fn fragment_rows(rows: &mut Rows) {
    rows.add(dropped(
        "ipv4 first fragment of tcp to the port VIP",
        fragment4(tcp4(46000, VIP4), true, 0),
        Reason::LbFragment,
        Table::Untouched,
    ));
    rows.add(passed(
        "ipv4 later fragment of tcp to the port VIP: no port, not the VIP's",
        fragment4(raw4(CLIENT4, 6, &[0xab; 64]), false, 185),
        Reason::Ipv4Tcp,
    ));
    let network = Network::V6(client6(), vip6());
    rows.add(dropped(
        "ipv6 first fragment of tcp to the port VIP",
        fragment6(network, 6, 0, true, &tcp6(46000)[54..]),
        Reason::LbFragment,
        Table::Untouched,
    ));
    rows.add(passed(
        "ipv6 later fragment of tcp to the port VIP: no port, not the VIP's",
        fragment6(network, 6, 185, false, &[0xab; 64]),
        Reason::Ipv6Tcp,
    ));
    rows.add(forwarded(
        "ipv6 atomic fragment (offset 0, M clear) to the port VIP: no fragment",
        fragment6(network, 6, 0, false, &tcp6(46001)[54..]),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    let source = UDP4_SOURCES[0];
    let later = rows.add(forwarded(
        "ipv4 later fragment of udp from 192.0.2.7 to the all-ports VIP: the client's entry",
        fragment4(raw4(source, 17, &[0xcd; 64]), false, 185),
        Output::SameBackendAs(rows.udp4[0]),
        Table::Hit,
    ));
    rows.add(forwarded(
        "another later udp fragment from 192.0.2.7: a hit",
        fragment4(raw4(source, 17, &[0xef; 32]), true, 370),
        Output::SameBackendAs(later),
        Table::Hit,
    ));
    let network = Network::V6(udp6_sources()[2], vip6_all());
    rows.add(forwarded(
        "ipv6 later fragment of udp to the all-ports GUE VIP: the client's entry",
        fragment6(network, 17, 185, false, &[0xcd; 64]),
        Output::SameBackendAs(rows.udp6[2]),
        Table::Hit,
    ));
}
