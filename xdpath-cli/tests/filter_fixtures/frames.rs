//! The rows' frames: TCP and UDP over IPv4 and IPv6, and fragments.

use super::*;

pub(crate) const A4: [u8; 4] = [192, 0, 2, 1];
pub(crate) const B4: [u8; 4] = [198, 51, 100, 2];
pub(crate) const OTHER4: [u8; 4] = [203, 0, 113, 9];

pub(crate) fn tcp_frame(source: [u8; 4], destination: [u8; 4], port: u16, flags: u8) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(source, destination),
        Transport::Tcp {
            source_port: 40000,
            destination_port: port,
            flags,
        },
    )
    .build()
}

pub(crate) fn tcp(port: u16, flags: u8) -> Vec<u8> {
    tcp_frame(A4, B4, port, flags)
}

pub(crate) fn udp(source_port: u16, destination: [u8; 4]) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(A4, destination),
        Transport::Udp {
            source_port,
            destination_port: 33000,
        },
    )
    .build()
}

pub(crate) fn tcp6(port: u16, flags: u8) -> Vec<u8> {
    FrameSpec::new(
        Network::V6(doc_v6(1), doc_v6(2)),
        Transport::Tcp {
            source_port: 40000,
            destination_port: port,
            flags,
        },
    )
    .build()
}

/// An IPv4 UDP frame made a fragment: `offset` in 8-byte units.
pub(crate) fn fragment_v4(offset: u16, more: bool) -> Vec<u8> {
    let mut frame = udp(5000, B4);
    let field = offset | if more { 0x2000 } else { 0 };
    frame[20..22].copy_from_slice(&field.to_be_bytes());
    frame
}

/// An IPv6 UDP frame with a fragment header after the fixed header.
pub(crate) fn fragment_v6(offset: u16, more: bool) -> Vec<u8> {
    let mut frame = FrameSpec::new(
        Network::V6(doc_v6(1), doc_v6(2)),
        Transport::Udp {
            source_port: 5000,
            destination_port: 33000,
        },
    )
    .build();
    let next = frame[20];
    frame[20] = 44;
    let payload = u16::from_be_bytes([frame[18], frame[19]]) + 8;
    frame[18..20].copy_from_slice(&payload.to_be_bytes());
    let field = (offset << 3) | u16::from(more);
    let mut header = vec![next, 0];
    header.extend_from_slice(&field.to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 1]);
    frame.splice(54..54, header);
    frame
}

/// An IPv4 ICMP message of type `kind` and `code`, A4 to B4.
pub(crate) fn icmp(kind: u8, code: u8) -> Vec<u8> {
    FrameSpec::new(Network::V4(A4, B4), Transport::Icmp { kind, code }).build()
}

/// An ICMPv6 message of type `kind` and `code`.
pub(crate) fn icmp6(kind: u8, code: u8) -> Vec<u8> {
    FrameSpec::new(
        Network::V6(doc_v6(1), doc_v6(2)),
        Transport::Icmp { kind, code },
    )
    .build()
}

/// An IPv4 ICMP echo reply (type 0, code 0) made a later fragment: its
/// flow key's type and code are zero though it carries no ICMP header.
pub(crate) fn icmp_later_fragment() -> Vec<u8> {
    let mut frame = icmp(0, 0);
    frame[20..22].copy_from_slice(&185u16.to_be_bytes());
    frame
}

/// Bytes from hexadecimal text.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).expect("hex"))
        .collect()
}

/// An IPv6 UDP frame (fd09::2 to fd09::1 port 9999) behind nine
/// destination-options headers: Linux delivers it, the parser allows
/// eight extension headers.
pub(crate) fn nine_destination_options() -> Vec<u8> {
    hex("02000000000102000000000286dd6000000000603c40fd090000000000000000000000000002fd090000000000000000000000000001\
         3c000104000000003c000104000000003c000104000000003c000104000000003c000104000000003c000104000000003c00010400000000\
         3c000104000000001100010400000000\
         0457270f0018b601434841494e392d392d4453544f505453")
}

/// The first fragment of an IPv4 TCP SYN to port 2222 holding only 8
/// bytes of its TCP header (no flags): Linux reassembles it with the next.
pub(crate) fn tiny_first_fragment() -> Vec<u8> {
    hex("02000000000102000000000208004500001c004d20004006467b0a0900020a090001c35308ae000003e8")
}
