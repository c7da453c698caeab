//! The decapsulation fixtures' frames: inner packets, IPIP and GUE tunnels
//! to this backend or another, and damaged outer headers.

use super::*;

pub(crate) const GUE_PORT: u16 = 6080;
pub(crate) const LOCAL4: [u8; 4] = [10, 0, 0, 1];
pub(crate) const OTHER4: [u8; 4] = [10, 0, 0, 2];
pub(crate) const BALANCER4: [u8; 4] = [172, 16, 0, 5];

pub(crate) fn local6() -> [u8; 16] {
    doc_v6(1)
}

pub(crate) fn other6() -> [u8; 16] {
    doc_v6(2)
}

pub(crate) fn balancer6() -> [u8; 16] {
    doc_v6(0xff05)
}

// ---- frames

/// A client's IPv4 TCP packet (no L2 header).
pub(crate) fn inner4() -> Vec<u8> {
    FrameSpec::new(
        Network::V4([192, 0, 2, 1], [203, 0, 113, 10]),
        Transport::tcp(40000, 80, FLAG_SYN),
    )
    .with_payload(b"GET / HTTP/1.1\r\n\r\n")
    .build()[14..]
        .to_vec()
}

/// A client's IPv6 UDP packet (no L2 header).
pub(crate) fn inner6() -> Vec<u8> {
    FrameSpec::new(
        Network::V6(doc_v6(0x77), doc_v6(0x10)),
        Transport::udp(5000, 53),
    )
    .with_payload(&[5; 33])
    .build()[14..]
        .to_vec()
}

/// IPIP's protocol number for an inner packet: 41 for IPv6, else 4.
pub(crate) fn ipip_protocol(inner: &[u8]) -> u8 {
    match inner.first() {
        Some(first) if first >> 4 == 6 => 41,
        _ => 4,
    }
}

pub(crate) fn outer(network: Network, transport: Transport, inner: &[u8]) -> FrameSpec {
    FrameSpec::new(network, transport).with_payload(inner)
}

pub(crate) fn ipip4(destination: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let transport = Transport::Other(ipip_protocol(inner));
    outer(Network::V4(BALANCER4, destination), transport, inner).build()
}

pub(crate) fn ipip6(destination: [u8; 16], inner: &[u8]) -> Vec<u8> {
    let transport = Transport::Other(ipip_protocol(inner));
    outer(Network::V6(balancer6(), destination), transport, inner).build()
}

pub(crate) fn gue4(destination: [u8; 4], port: u16, inner: &[u8]) -> Vec<u8> {
    let transport = Transport::udp(0x8123, port);
    outer(Network::V4(BALANCER4, destination), transport, inner).build()
}

pub(crate) fn gue6(destination: [u8; 16], port: u16, inner: &[u8]) -> Vec<u8> {
    let transport = Transport::udp(0x8123, port);
    outer(Network::V6(balancer6(), destination), transport, inner).build()
}

/// The outer IPv4 header given four bytes of options (NOPs): IHL 6.
pub(crate) fn with_ipv4_options(mut frame: Vec<u8>) -> Vec<u8> {
    frame.splice(34..34, [1, 1, 1, 1]);
    frame[14] = 0x46;
    let total = u16::from_be_bytes([frame[16], frame[17]]) + 4;
    frame[16..18].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum(&mut frame);
    frame
}

/// The outer IPv4 header made a fragment (MF, offset in 8-byte units).
pub(crate) fn ipv4_fragment(mut frame: Vec<u8>, more: bool, offset: u16) -> Vec<u8> {
    let field = offset | if more { 0x2000 } else { 0 };
    frame[20..22].copy_from_slice(&field.to_be_bytes());
    fix_ipv4_checksum(&mut frame);
    frame
}

/// An IPv6 packet to the local address with one extension header
/// (`kind`: hop-by-hop 0 or fragment 44, 8 bytes) before `inner` as IPIP.
pub(crate) fn ipip6_behind(kind: u8, inner: &[u8]) -> Vec<u8> {
    let next = ipip_protocol(inner);
    let mut payload = match kind {
        // Hop-by-hop: PadN over the 6 option bytes.
        0 => vec![next, 0, 1, 4, 0, 0, 0, 0],
        // Fragment: offset 0, M set.
        _ => vec![next, 0, 0, 1, 0, 0, 0, 9],
    };
    payload.extend_from_slice(inner);
    outer(
        Network::V6(balancer6(), local6()),
        Transport::Other(kind),
        &payload,
    )
    .build()
}

/// What a decapsulated frame is: the L2 header of `frame` up to its
/// EtherType, the inner family's EtherType, the inner packet.
pub(crate) fn decapsulated(frame: &[u8], l3: usize, inner: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if inner[0] >> 4 == 4 { 0x0800 } else { 0x86dd };
    let mut output = frame[..l3 - 2].to_vec();
    output.extend_from_slice(&ethertype.to_be_bytes());
    output.extend_from_slice(inner);
    output
}
