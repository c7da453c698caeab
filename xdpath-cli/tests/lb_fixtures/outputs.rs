//! Checking one output: the flow a frame belongs to, the backend the
//! Maglev table picks for it, and an encapsulated output field by field
//! (outer IPv4 or IPv6 header, GUE).

use super::*;

/// A flow, client → VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tuple {
    pub(crate) source: [u8; 16],
    pub(crate) destination: [u8; 16],
    pub(crate) source_port: u16,
    pub(crate) destination_port: u16,
    pub(crate) protocol: u8,
}

impl Tuple {
    /// The connection-table key's bytes (`ConnectionKey`, host order).
    pub(crate) fn key_bytes(&self) -> Vec<u8> {
        let mut bytes = self.source.to_vec();
        bytes.extend_from_slice(&self.destination);
        bytes.extend_from_slice(&self.source_port.to_ne_bytes());
        bytes.extend_from_slice(&self.destination_port.to_ne_bytes());
        bytes.extend_from_slice(&[self.protocol, 0, 0, 0]);
        bytes
    }
}

/// The flow the balancer places a frame by: for ICMP "fragmentation
/// needed" and ICMPv6 "packet too big", the quoted header (the VIP's reply)
/// turned round; else the frame's own. Read here independently of the
/// data path's `quoted_flow`.
pub(crate) fn tuple_of(frame: &[u8]) -> Tuple {
    let parsed = parse(&SlicePacket::new(frame)).expect("a well-formed frame");
    let key = parsed.key;
    if !is_too_big(frame) {
        return Tuple {
            source: key.source,
            destination: key.destination,
            source_port: key.source_port,
            destination_port: key.destination_port,
            protocol: key.protocol,
        };
    }
    let quoted = &frame[usize::from(parsed.l4_offset) + 8..];
    let (source, destination, protocol, ports) = if quoted[0] >> 4 == 4 {
        let header = 4 * usize::from(quoted[0] & 0x0f);
        (
            mapped(&quoted[16..]),
            mapped(&quoted[12..]),
            quoted[9],
            &quoted[header..],
        )
    } else {
        (
            quoted[24..40].try_into().expect("16 bytes"),
            quoted[8..24].try_into().expect("16 bytes"),
            quoted[6],
            &quoted[40..],
        )
    };
    Tuple {
        source,
        destination,
        source_port: be16(&ports[2..]),
        destination_port: be16(ports),
        protocol,
    }
}

/// Whether `frame` is an ICMP "fragmentation needed" or ICMPv6 "packet too
/// big" (steered by the flow it quotes).
pub(crate) fn is_too_big(frame: &[u8]) -> bool {
    let Ok(parsed) = parse(&SlicePacket::new(frame)) else {
        return false; // a row of a frame the parser refuses
    };
    let key = parsed.key;
    match (key.ip_version, key.protocol) {
        (4, 1) => key.destination_port == 3 << 8 | 4,
        (6, 58) => key.destination_port >> 8 == 2,
        _ => false,
    }
}

/// Whether `frame` is a bare TCP SYN (SYN without ACK): it places its flow
/// in the new-flow table, and does not copy it to the established one.
pub(crate) fn is_bare_syn(frame: &[u8]) -> bool {
    let Ok(parsed) = parse(&SlicePacket::new(frame)) else {
        return false; // a row of a frame the parser refuses
    };
    let key = parsed.key;
    key.protocol == 6 && key.tcp_flags & (FLAG_SYN | FLAG_ACK) == FLAG_SYN
}

/// Whether a frame is TCP.
pub(crate) fn is_tcp(frame: &[u8]) -> bool {
    parse(&SlicePacket::new(frame)).is_ok_and(|parsed| parsed.key.protocol == 6)
}

/// The VIP of a flow: its port's, else its all-ports one.
pub(crate) fn vip_of(tuple: &Tuple) -> Vip {
    let vips = vips();
    let find = |port: u16| {
        vips.iter()
            .find(|(key, _)| {
                key.address == tuple.destination
                    && key.port == port
                    && key.protocol == tuple.protocol
            })
            .map(|(_, vip)| *vip)
    };
    find(tuple.destination_port)
        .or_else(|| find(0))
        .expect("a flow to a VIP")
}

/// The Maglev hash of a flow (the ring slot).
pub(crate) fn hash_of(tuple: &Tuple, vip: &Vip) -> u32 {
    flow_hash(
        &tuple.source,
        tuple.source_port,
        tuple.destination_port,
        tuple.protocol,
        vip.flags & VIP_SOURCE_HASH != 0,
    )
}

/// The hash the outer headers draw on.
pub(crate) fn encap_hash_of(tuple: &Tuple, vip: &Vip) -> u32 {
    encap_hash(
        &tuple.source,
        tuple.source_port,
        tuple.destination_port,
        vip.flags & VIP_SOURCE_HASH != 0,
    )
}

/// The backend `table` gives the flow of `frame`.
pub(crate) fn maglev_pick(table: &[u32], frame: &[u8]) -> [u8; 16] {
    let tuple = tuple_of(frame);
    let slot = hash_of(&tuple, &vip_of(&tuple)) % RING;
    let index = table[slot as usize];
    backends()[index as usize].1
}

/// The outer destination (the backend) of an encapsulated frame.
pub(crate) fn outer_destination(output: &[u8]) -> [u8; 16] {
    match be16(&output[12..]) {
        0x0800 => mapped(&output[30..]),
        _ => output[38..54].try_into().expect("16 bytes"),
    }
}

pub(crate) fn backend_index(address: [u8; 16]) -> usize {
    backends()
        .iter()
        .position(|(_, backend)| *backend == address)
        .expect("a backend")
}

/// Checks an encapsulated frame field by field and returns its backend.
/// The outer source, IPv6 flow label and GUE source port must come from
/// the flow's encapsulation hash; the inner packet must be the input's IP packet, byte
/// for byte; the L2 header keeps the input's VLAN tags.
pub(crate) fn check_output(description: &str, input: &[u8], output: &[u8]) -> [u8; 16] {
    let l3 = usize::from(
        parse(&SlicePacket::new(input))
            .expect("a well-formed frame")
            .l3_offset,
    );
    let tuple = tuple_of(input);
    let vip = vip_of(&tuple);
    let hash = encap_hash_of(&tuple, &vip);
    let inner = &input[l3..];
    let inner_ipv4 = inner[0] >> 4 == 4;
    let tos = if inner_ipv4 {
        inner[1]
    } else {
        inner[0] << 4 | inner[1] >> 4
    };
    let protocol = match (vip.encap, inner_ipv4) {
        (ENCAP_GUE, _) => 17,
        (_, true) => 4,
        (_, false) => 41,
    };
    assert_eq!(&output[..6], &NEXT_HOP, "{description}: next hop MAC");
    assert_eq!(&output[6..12], &input[..6], "{description}: our MAC");
    assert_eq!(
        &output[12..l3 - 2],
        &input[12..l3 - 2],
        "{description}: VLAN tags kept"
    );
    let outer = &output[l3..];
    let (mut at, backend) = match be16(&output[l3 - 2..]) {
        0x0800 => (20, check_outer_v4(description, outer, protocol, tos, hash)),
        0x86dd => (40, check_outer_v6(description, outer, protocol, tos, hash)),
        other => panic!("{description}: outer EtherType {other:#x}"),
    };
    assert!(
        backends().iter().any(|(_, address)| *address == backend),
        "{description}: outer destination is a backend"
    );
    if vip.encap == ENCAP_GUE {
        check_gue(description, &outer[at..], vip.gue_port, hash);
        at += 8;
    }
    assert_eq!(&outer[at..], inner, "{description}: inner packet unchanged");
    backend
}

/// The outer IPv4 header (`outer` runs to the frame's end); returns the
/// destination.
pub(crate) fn check_outer_v4(
    description: &str,
    outer: &[u8],
    protocol: u8,
    tos: u8,
    hash: u32,
) -> [u8; 16] {
    let header = &outer[..20];
    assert_eq!(header[0], 0x45, "{description}: IPv4, IHL 5");
    assert_eq!(header[1], tos, "{description}: TOS of the inner packet");
    assert_eq!(
        usize::from(be16(&header[2..])),
        outer.len(),
        "{description}: total length"
    );
    assert_eq!(&header[4..8], &[0; 4], "{description}: id 0, no flags");
    assert_eq!(header[8], 64, "{description}: TTL");
    assert_eq!(header[9], protocol, "{description}: protocol");
    assert_eq!(checksum::of(header), 0, "{description}: checksum");
    let config = lb_config();
    let source = outer_source(&config.source_v4, config.source_v4_len, hash);
    assert_eq!(&header[12..14], &[172, 16], "{description}: source prefix");
    assert_eq!(
        &header[12..16],
        &source[12..],
        "{description}: source host bits from the encapsulation hash"
    );
    mapped(&header[16..])
}

/// The outer IPv6 header; returns the destination.
pub(crate) fn check_outer_v6(
    description: &str,
    outer: &[u8],
    protocol: u8,
    tos: u8,
    hash: u32,
) -> [u8; 16] {
    let header = &outer[..40];
    let first = u32::from_be_bytes(header[..4].try_into().expect("4 bytes"));
    assert_eq!(first >> 28, 6, "{description}: IPv6");
    assert_eq!((first >> 20) as u8, tos, "{description}: traffic class");
    assert_eq!(
        first & 0xf_ffff,
        hash & 0xf_ffff,
        "{description}: flow label from the encapsulation hash"
    );
    assert_eq!(
        usize::from(be16(&header[4..])),
        outer.len() - 40,
        "{description}: payload length"
    );
    assert_eq!(header[6], protocol, "{description}: next header");
    assert_eq!(header[7], 64, "{description}: hop limit");
    let config = lb_config();
    let source = outer_source(&config.source_v6, config.source_v6_len, hash);
    assert_eq!(&header[8..16], &doc_v6(0xff00)[..8], "{description}: /64");
    assert_eq!(
        &header[8..24],
        &source,
        "{description}: source host bits from the encapsulation hash"
    );
    header[24..40].try_into().expect("16 bytes")
}

/// The GUE UDP header (`udp` runs to the frame's end).
pub(crate) fn check_gue(description: &str, udp: &[u8], port: u16, hash: u32) {
    assert_eq!(
        be16(udp),
        0x8000 | (hash as u16 & 0x7fff),
        "{description}: ephemeral source port from the encapsulation hash"
    );
    assert_eq!(be16(&udp[2..]), port, "{description}: GUE port");
    assert_eq!(
        usize::from(be16(&udp[4..])),
        udp.len(),
        "{description}: UDP length"
    );
    assert_eq!(be16(&udp[6..]), 0, "{description}: UDP checksum 0");
}

// ---- both builds
