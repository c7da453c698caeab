//! The fixtures' frames: TCP, UDP, ICMP errors quoting a flow, fragments
//! and raw IP packets, client → VIP.

use super::*;

pub(crate) fn tcp4(source_port: u16, destination: [u8; 4]) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(CLIENT4, destination),
        Transport::Tcp {
            source_port,
            destination_port: 80,
            flags: FLAG_SYN,
        },
    )
    .with_payload(b"GET / HTTP/1.1\r\n\r\n")
    .build()
}

/// A later segment (ACK) of the flow `tcp4(source_port, VIP4)` opens.
pub(crate) fn ack4(source_port: u16) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(CLIENT4, VIP4),
        Transport::tcp(source_port, 80, FLAG_ACK),
    )
    .with_payload(b"GET / HTTP/1.1\r\n\r\n")
    .build()
}

pub(crate) fn tcp6(source_port: u16) -> Vec<u8> {
    FrameSpec::new(
        Network::V6(client6(), vip6()),
        Transport::Tcp {
            source_port,
            destination_port: 443,
            flags: FLAG_SYN,
        },
    )
    .build()
}

pub(crate) fn udp4(source: [u8; 4], port: u16) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(source, VIP4),
        Transport::Udp {
            source_port: 5000,
            destination_port: port,
        },
    )
    .with_payload(&[7; 40])
    .build()
}

pub(crate) fn udp6(source: [u8; 16]) -> Vec<u8> {
    FrameSpec::new(Network::V6(source, vip6_all()), Transport::udp(5000, 5353))
        .with_payload(&[9; 30])
        .build()
}

/// What a VIP sent its client, as an ICMP error quotes it: the IP header
/// (its length the whole 1,400-byte packet's) and 8 transport bytes.
pub(crate) fn reply(network: Network, transport: Transport) -> Vec<u8> {
    let header = match network {
        Network::V4(..) => 20,
        Network::V6(..) => 40,
    };
    let frame = FrameSpec::new(network, transport)
        .with_payload(&[0; 1400])
        .build();
    frame[14..14 + header + 8].to_vec()
}

/// An ICMP error from a router to `destination` quoting `quoted`.
pub(crate) fn icmp4(destination: [u8; 4], kind: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    // Next-hop MTU 1400 (meaningful for "fragmentation needed" only).
    let mut message = vec![kind, code, 0, 0, 0, 0, 0x05, 0x78];
    message.extend_from_slice(quoted);
    FrameSpec::new(Network::V4(ROUTER4, destination), Transport::Other(1))
        .with_payload(&message)
        .build()
}

/// An ICMPv6 error from a router to `destination` quoting `quoted`.
pub(crate) fn icmp6(destination: [u8; 16], kind: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    // MTU 1280 (meaningful for "packet too big" only).
    let mut message = vec![kind, code, 0, 0, 0, 0, 0x05, 0x00];
    message.extend_from_slice(quoted);
    FrameSpec::new(Network::V6(router6(), destination), Transport::Other(58))
        .with_payload(&message)
        .build()
}

/// ICMP "fragmentation needed" (3/4) to VIP4 about its reply to
/// `client:client_port` from `vip_port`.
pub(crate) fn too_big4(client: [u8; 4], transport: Transport) -> Vec<u8> {
    icmp4(VIP4, 3, 4, &reply(Network::V4(VIP4, client), transport))
}

/// ICMPv6 "packet too big" (2/0) to `vip` about its reply to `client`.
pub(crate) fn too_big6(vip: [u8; 16], client: [u8; 16], transport: Transport) -> Vec<u8> {
    icmp6(vip, 2, 0, &reply(Network::V6(vip, client), transport))
}

/// An IPv4 frame made a fragment (MF, offset in 8-byte units), its header
/// checksum redone.
pub(crate) fn fragment4(mut frame: Vec<u8>, more: bool, offset: u16) -> Vec<u8> {
    let field = offset | if more { 0x2000 } else { 0 };
    frame[20..22].copy_from_slice(&field.to_be_bytes());
    frame[24..26].fill(0);
    let checksum = checksum::of_parts(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// An IPv4 packet carrying `protocol` with `body` and no transport header
/// of its own (a later fragment's payload).
pub(crate) fn raw4(source: [u8; 4], protocol: u8, body: &[u8]) -> Vec<u8> {
    FrameSpec::new(Network::V4(source, VIP4), Transport::Other(protocol))
        .with_payload(body)
        .build()
}

/// An IPv6 packet with a fragment header (offset in 8-byte units) before
/// `next_header` and `body`.
pub(crate) fn fragment6(
    network: Network,
    next_header: u8,
    offset: u16,
    more: bool,
    body: &[u8],
) -> Vec<u8> {
    let field = offset << 3 | u16::from(more);
    let mut payload = vec![next_header, 0];
    payload.extend_from_slice(&field.to_be_bytes());
    payload.extend_from_slice(&0x1234_5678_u32.to_be_bytes());
    payload.extend_from_slice(body);
    FrameSpec::new(network, Transport::Other(44))
        .with_payload(&payload)
        .build()
}

// ---- what the balancer should do with a frame

pub(crate) fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

pub(crate) fn mapped(bytes: &[u8]) -> [u8; 16] {
    ipv4_mapped(bytes[..4].try_into().expect("4 bytes"))
}

/// IPv4 flows from `ports` to `VIP4` opened and established (each SYN,
/// then its ACK) on `builds`: each port with its backend's index.
pub(crate) fn establish(builds: &mut Builds, ports: std::ops::Range<u16>) -> Vec<(u16, usize)> {
    ports
        .map(|port| {
            builds.run("a flow's SYN", &tcp4(port, VIP4));
            let ran = builds.run("its ACK", &ack4(port));
            (port, backend_index(outer_destination(&ran.output)))
        })
        .collect()
}
