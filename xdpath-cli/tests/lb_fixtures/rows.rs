//! The fixture rows: what each frame must give (verdict, output,
//! connection-table effect), the basic table and the connection-tracking
//! rows.

use super::*;

/// What a row's output must be.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Output {
    /// Encapsulated (checked field by field) to the backend the Maglev
    /// table gives the flow.
    Encapsulated,
    /// Encapsulated (checked field by field) to row `n`'s backend.
    SameBackendAs(usize),
    /// Row `n`'s output, byte for byte (checked field by field too).
    SameAs(usize),
    /// The input, unchanged.
    Unchanged,
    /// None (dropped).
    Dropped,
}

/// What a row does to the connection table and the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    /// Not consulted: state as it was.
    Untouched,
    /// A miss placing the flow: one connection more, a new flow counted.
    NewFlow,
    /// A hit on the flow's connection: packets and bytes counted.
    Hit,
    /// An ICMP error of a flow the table does not hold: a miss, nothing
    /// recorded, packets and bytes counted but no new flow.
    IcmpMiss,
    /// A miss with no backend: nothing else.
    NoBackend,
    /// A VIP without a connection table: no lookup, nothing recorded;
    /// every frame is placed by the Maglev table and counted a new flow.
    Stateless,
}

pub(crate) struct Row {
    pub(crate) description: String,
    pub(crate) frame: Vec<u8>,
    pub(crate) action: Action,
    pub(crate) reason: Reason,
    pub(crate) output: Output,
    pub(crate) table: Table,
}

pub(crate) fn forwarded(
    description: impl Into<String>,
    frame: Vec<u8>,
    output: Output,
    table: Table,
) -> Row {
    Row {
        description: description.into(),
        frame,
        action: Action::Tx,
        reason: Reason::LbForwarded,
        output,
        table,
    }
}

pub(crate) fn passed(description: impl Into<String>, frame: Vec<u8>, reason: Reason) -> Row {
    Row {
        description: description.into(),
        frame,
        action: Action::Pass,
        reason,
        output: Output::Unchanged,
        table: Table::Untouched,
    }
}

pub(crate) fn dropped(
    description: impl Into<String>,
    frame: Vec<u8>,
    reason: Reason,
    table: Table,
) -> Row {
    Row {
        description: description.into(),
        frame,
        action: Action::Drop,
        reason,
        output: Output::Dropped,
        table,
    }
}

/// Rows, and where the basic ones are (for later rows to refer to).
#[derive(Default)]
pub(crate) struct Rows {
    pub(crate) rows: Vec<Row>,
    pub(crate) tcp4: Vec<usize>,
    pub(crate) tcp6: Vec<usize>,
    pub(crate) udp4: Vec<usize>,
    pub(crate) udp6: Vec<usize>,
}

impl Rows {
    pub(crate) fn add(&mut self, row: Row) -> usize {
        self.rows.push(row);
        self.rows.len() - 1
    }
}

pub(crate) const UDP4_SOURCES: [[u8; 4]; 3] = [[192, 0, 2, 7], [198, 51, 100, 9], [192, 0, 2, 200]];

pub(crate) fn udp6_sources() -> [[u8; 16]; 3] {
    [doc_v6(7), doc_v6(0x900), doc_v6(0xc8)]
}

/// New flows of every kind, and frames that are not for a VIP.
// Long (about 100 lines): a table of fixture rows.
pub(crate) fn basic_rows() -> Rows {
    let mut rows = Rows::default();
    for port in 40000..=40005 {
        let row = forwarded(
            format!("ipv4 tcp to the IPIP VIP from port {port}"),
            tcp4(port, VIP4),
            Output::Encapsulated,
            Table::NewFlow,
        );
        let id = rows.add(row);
        rows.tcp4.push(id);
        let row = forwarded(
            format!("ipv6 tcp to the GUE VIP from port {port}"),
            tcp6(port),
            Output::Encapsulated,
            Table::NewFlow,
        );
        let id = rows.add(row);
        rows.tcp6.push(id);
    }
    for source in UDP4_SOURCES {
        let row = forwarded(
            format!("udp from {source:?} to the all-ports VIP"),
            udp4(source, 9999),
            Output::Encapsulated,
            Table::NewFlow,
        );
        let id = rows.add(row);
        rows.udp4.push(id);
    }
    for source in udp6_sources() {
        let row = forwarded(
            format!("ipv6 udp from {source:x?} to the all-ports GUE VIP"),
            udp6(source),
            Output::Encapsulated,
            Table::NewFlow,
        );
        let id = rows.add(row);
        rows.udp6.push(id);
    }
    for port in 40000..=40005 {
        let frame = FrameSpec::new(
            Network::V4(CLIENT4, GUE_VIP4),
            Transport::tcp(port, 443, FLAG_SYN),
        );
        rows.add(forwarded(
            format!("ipv4 tcp to the GUE VIP from port {port}"),
            frame.build(),
            Output::Encapsulated,
            Table::NewFlow,
        ));
        let frame = FrameSpec::new(
            Network::V6(client6(), ipip_vip6()),
            Transport::tcp(port, 80, FLAG_SYN),
        );
        rows.add(forwarded(
            format!("ipv6 tcp to the IPIP VIP from port {port}"),
            frame.with_payload(&[3; 10]).build(),
            Output::Encapsulated,
            Table::NewFlow,
        ));
    }
    let vlan = FrameSpec::new(
        Network::V4(CLIENT4, VIP4),
        Transport::tcp(40100, 80, FLAG_SYN),
    )
    .with_vlans(&[42])
    .build();
    rows.add(forwarded(
        "ipv4 tcp with an 802.1Q tag to the IPIP VIP",
        vlan,
        Output::Encapsulated,
        Table::NewFlow,
    ));
    let qinq = FrameSpec::new(
        Network::V6(client6(), vip6()),
        Transport::tcp(40100, 443, FLAG_SYN),
    )
    .with_vlans(&[42, 7])
    .build();
    rows.add(forwarded(
        "ipv6 tcp with two VLAN tags to the GUE VIP",
        qinq,
        Output::Encapsulated,
        Table::NewFlow,
    ));
    let other_port = FrameSpec::new(Network::V4(CLIENT4, VIP4), Transport::tcp(1, 81, FLAG_SYN));
    rows.add(passed(
        "tcp to a port the VIP does not serve",
        other_port.build(),
        Reason::Ipv4Tcp,
    ));
    rows.add(passed(
        "tcp to an address that is no VIP",
        tcp4(40000, [203, 0, 113, 99]),
        Reason::Ipv4Tcp,
    ));
    rows.add(dropped(
        "a VIP with no backend",
        tcp4(40000, NO_BACKEND_VIP4),
        Reason::LbNoBackend,
        Table::NoBackend,
    ));
    rows
}

/// A flow's later packets hit the connection table.
pub(crate) fn conntrack_rows(rows: &mut Rows) {
    let first = rows.tcp4[0];
    rows.add(forwarded(
        "the same ipv4 frame again: a hit, the same output",
        tcp4(40000, VIP4),
        Output::SameAs(first),
        Table::Hit,
    ));
    let ack = FrameSpec::new(
        Network::V6(client6(), vip6()),
        Transport::tcp(40002, 443, FLAG_ACK),
    )
    .with_payload(&[1; 100])
    .build();
    let first = rows.tcp6[2];
    rows.add(forwarded(
        "a later ipv6 segment of the flow from 40002: a hit",
        ack,
        Output::SameBackendAs(first),
        Table::Hit,
    ));
    let first = rows.tcp4[4];
    rows.add(forwarded(
        "the ACK of an ipv4 flow seen only as its SYN: a hit, copied to the established table",
        ack4(40004),
        Output::SameBackendAs(first),
        Table::Hit,
    ));
    rows.add(forwarded(
        "a SYN from that flow's port again, its backend in the ring: a hit in the established table",
        tcp4(40004, VIP4),
        Output::SameAs(first),
        Table::Hit,
    ));
    rows.add(forwarded(
        "an ACK of a flow the tables do not hold: placed in the established table",
        ack4(40050),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    let first = rows.udp4[1];
    rows.add(forwarded(
        "the udp flow from 198.51.100.9 again: a hit",
        udp4(UDP4_SOURCES[1], 9999),
        Output::SameAs(first),
        Table::Hit,
    ));
    let first = rows.udp4[1];
    rows.add(forwarded(
        "udp from 198.51.100.9 to another port: the client's entry, a hit",
        udp4(UDP4_SOURCES[1], 53),
        Output::SameBackendAs(first),
        Table::Hit,
    ));
    let first = rows.udp6[0];
    rows.add(forwarded(
        "the ipv6 udp flow from 2001:db8::7 again: a hit",
        udp6(udp6_sources()[0]),
        Output::SameAs(first),
        Table::Hit,
    ));
    // Two flows of one new-flow slot: the second SYN takes the slot, so
    // the first flow's ACK finds nothing there and is placed afresh (on
    // the same backend: the Maglev table has not changed).
    let (held, taker) = slot_sharing_ports();
    let first = rows.add(forwarded(
        format!("a SYN from port {held}, whose new-flow slot the next flow takes"),
        tcp4(held, VIP4),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    rows.add(forwarded(
        format!("a SYN from port {taker}, of the same new-flow slot: it takes the slot"),
        tcp4(taker, VIP4),
        Output::Encapsulated,
        Table::NewFlow,
    ));
    rows.add(forwarded(
        "the first flow's ACK, its slot taken: a miss, placed in the established table",
        ack4(held),
        Output::SameBackendAs(first),
        Table::NewFlow,
    ));
    let first = rows.add(forwarded(
        "tcp to the VIP without a connection table",
        tcp4(40000, STATELESS_VIP4),
        Output::Encapsulated,
        Table::Stateless,
    ));
    rows.add(forwarded(
        "the same frame again: still no connection table",
        tcp4(40000, STATELESS_VIP4),
        Output::SameAs(first),
        Table::Stateless,
    ));
}

/// Two source ports of `CLIENT4` whose TCP flows to `VIP4` port 80 share
/// a slot of the new-flow table.
fn slot_sharing_ports() -> (u16, u16) {
    let slot = |port: u16| {
        let key = ConnectionKey::new(&ipv4_mapped(CLIENT4), &ipv4_mapped(VIP4), port, 80, 6);
        NewFlowPlace::of(&key, FIXTURE_SEED).slot
    };
    (40070..40200)
        .find_map(|held| {
            (47_000..=u16::MAX)
                .find(|&taker| taker != held && slot(taker) == slot(held))
                .map(|taker| (held, taker))
        })
        .expect("two ports of one new-flow slot")
}
