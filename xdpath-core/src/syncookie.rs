//! The SYN-cookie reply: the SYN-ACK built from a SYN's headers, a cookie
//! and an MSS. The cookie itself is the kernel's (keyed by its secret, see
//! `xdpath-ebpf/src/syncookie.rs`); everything else is here, built once for
//! both builds, so the kernel's replies can be checked byte for byte
//! against this code given the same cookie (`xdpath-cli/tests/syncookie.rs`).
//!
//! The reply: addresses and ports swapped, IP options, IPv6 extension
//! headers and payload dropped; seq = the cookie, ack = the client's seq +
//! 1, one MSS option, TTL / hop limit 64, window 65,535 (a cookie SYN-ACK
//! carries no window scaling).

use crate::wire::tcp::{FLAG_ACK, FLAG_SYN};
use crate::wire::{checksum, protocol, Ipv4Header, Ipv6Header};

/// The reply's TTL / hop limit.
pub const REPLY_TTL: u8 = 64;
/// The reply's window.
pub const REPLY_WINDOW: u16 = 65_535;
/// The reply's TCP header: 20 bytes and one MSS option.
pub const REPLY_TCP_LEN: usize = 24;
/// Room for the IP header as read (40: IPv6; IPv4 uses the first 20).
pub const IP_ROOM: usize = 40;
/// Room for the TCP header as read (at most 60 bytes with options).
pub const TCP_ROOM: usize = 64;
/// Room for the reply's IP and TCP headers (at most 40 + 24).
pub const OUT_ROOM: usize = 64;

/// Writes the SYN-ACK's IP and TCP headers into `out` and returns their
/// length: `ip` holds the SYN's IP header (20 or 40 bytes), `tcp` its TCP
/// header (ports and sequence number are read). Bounded loops and checked
/// writes into fixed arrays: the eBPF build keeps these in map memory,
/// where the verifier sees constant offsets only.
#[inline(always)]
pub fn build_reply(
    ip: &[u8; IP_ROOM],
    tcp: &[u8; TCP_ROOM],
    v6: bool,
    cookie: u32,
    mss: u16,
    out: &mut [u8; OUT_ROOM],
) -> usize {
    let ip_len: usize = if v6 { 40 } else { 20 };
    let mut sum: u32 = 0;
    if v6 {
        put(out, 0, &[0x60, 0, 0, 0]);
        put16(out, Ipv6Header::PAYLOAD_LENGTH, REPLY_TCP_LEN as u16);
        put(out, Ipv6Header::NEXT_HEADER, &[protocol::TCP, REPLY_TTL]);
        copy(out, Ipv6Header::SOURCE, ip, Ipv6Header::DESTINATION, 16);
        copy(out, Ipv6Header::DESTINATION, ip, Ipv6Header::SOURCE, 16);
        sum += checksum::sum_bytes(out, Ipv6Header::SOURCE, 32);
    } else {
        put(
            out,
            0,
            &[0x45, 0, 0, 0, 0, 0, 0x40, 0, REPLY_TTL, protocol::TCP, 0, 0],
        );
        put16(out, Ipv4Header::TOTAL_LENGTH, (20 + REPLY_TCP_LEN) as u16);
        copy(out, Ipv4Header::SOURCE, ip, Ipv4Header::DESTINATION, 4);
        copy(out, Ipv4Header::DESTINATION, ip, Ipv4Header::SOURCE, 4);
        let header = checksum::finish(checksum::sum_bytes(out, 0, Ipv4Header::LEN));
        put16(out, Ipv4Header::CHECKSUM, header);
        sum += checksum::sum_bytes(out, Ipv4Header::SOURCE, 8);
    }
    sum += u32::from(protocol::TCP) + REPLY_TCP_LEN as u32;
    let t = ip_len;
    let byte = |at: usize| tcp.get(at).copied().unwrap_or(0);
    let client_seq = u32::from_be_bytes([byte(4), byte(5), byte(6), byte(7)]);
    put(out, t, &[byte(2), byte(3), byte(0), byte(1)]);
    put(out, t + 4, &cookie.to_be_bytes());
    put(out, t + 8, &client_seq.wrapping_add(1).to_be_bytes());
    put(out, t + 12, &[0x60, FLAG_SYN | FLAG_ACK]);
    put16(out, t + 14, REPLY_WINDOW);
    put(out, t + 16, &[0, 0, 0, 0, 2, 4]);
    put16(out, t + 22, mss);
    sum += checksum::sum_bytes(out, t, REPLY_TCP_LEN);
    put16(out, t + 16, checksum::finish(sum));
    ip_len + REPLY_TCP_LEN
}

/// Writes `bytes` at `at`.
#[inline(always)]
fn put<const N: usize>(out: &mut [u8; OUT_ROOM], at: usize, bytes: &[u8; N]) {
    let mut index = 0;
    while index < N {
        if let (Some(slot), Some(byte)) = (out.get_mut(at + index), bytes.get(index)) {
            *slot = *byte;
        }
        index += 1;
    }
}

/// Writes a big-endian u16 at `at`.
#[inline(always)]
fn put16(out: &mut [u8; OUT_ROOM], at: usize, value: u16) {
    put(out, at, &value.to_be_bytes());
}

/// Copies `len` bytes of `from` at `from_at` to `out` at `at`.
#[inline(always)]
fn copy(out: &mut [u8; OUT_ROOM], at: usize, from: &[u8; IP_ROOM], from_at: usize, len: usize) {
    let mut index = 0;
    while index < len {
        if let (Some(slot), Some(byte)) = (out.get_mut(at + index), from.get(from_at + index)) {
            *slot = *byte;
        }
        index += 1;
    }
}

/// The whole reply frame to a SYN frame whose IP header starts at `l3`
/// (after the Ethernet header and its VLAN tags): MACs swapped, tags kept,
/// then [`build_reply`]'s headers. `None` when the frame is too short.
#[cfg(any(feature = "std", test))]
pub fn reply_frame(syn: &[u8], l3: usize, cookie: u32, mss: u16) -> Option<std::vec::Vec<u8>> {
    let version = syn.get(l3)? >> 4;
    let v6 = version == 6;
    let ip_len = if v6 {
        40
    } else {
        usize::from(syn.get(l3)? & 0x0f) * 4
    };
    let mut ip = [0u8; IP_ROOM];
    let fixed = if v6 { 40 } else { 20 };
    ip.get_mut(..fixed)?
        .copy_from_slice(syn.get(l3..l3 + fixed)?);
    let mut tcp = [0u8; TCP_ROOM];
    tcp.get_mut(..20)?
        .copy_from_slice(syn.get(l3 + ip_len..l3 + ip_len + 20)?);
    let mut out = [0u8; OUT_ROOM];
    let len = build_reply(&ip, &tcp, v6, cookie, mss, &mut out);
    let mut frame = std::vec::Vec::with_capacity(l3 + len);
    frame.extend_from_slice(syn.get(6..12)?);
    frame.extend_from_slice(syn.get(0..6)?);
    frame.extend_from_slice(syn.get(12..l3)?);
    frame.extend_from_slice(out.get(..len)?);
    Some(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{FrameSpec, Network, Transport};
    use crate::wire::checksum;

    fn syn(network: Network) -> std::vec::Vec<u8> {
        FrameSpec::new(
            network,
            Transport::Tcp {
                source_port: 40_000,
                destination_port: 80,
                flags: FLAG_SYN,
            },
        )
        .build()
    }

    #[test]
    fn ipv4_reply_swaps_and_checks() {
        let frame = syn(Network::V4([192, 0, 2, 1], [198, 51, 100, 2]));
        let reply = reply_frame(&frame, 14, 0x1234_5678, 1460).expect("a reply");
        assert_eq!(reply.len(), 14 + 20 + 24);
        assert_eq!(&reply[0..6], &frame[6..12], "to the sender's MAC");
        assert_eq!(
            &reply[26..30],
            &[198, 51, 100, 2],
            "from the SYN's destination"
        );
        assert_eq!(&reply[30..34], &[192, 0, 2, 1]);
        assert_eq!(reply[22], REPLY_TTL);
        assert_eq!(checksum::of(&reply[14..34]), 0, "IPv4 header checksum");
        let tcp = &reply[34..];
        assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), 80);
        assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 40_000);
        assert_eq!(
            &tcp[4..8],
            &0x1234_5678u32.to_be_bytes(),
            "seq is the cookie"
        );
        let syn_seq = u32::from_be_bytes([frame[38], frame[39], frame[40], frame[41]]);
        assert_eq!(&tcp[8..12], &syn_seq.wrapping_add(1).to_be_bytes());
        assert_eq!(tcp[13], FLAG_SYN | FLAG_ACK);
        assert_eq!(&tcp[20..24], &[2, 4, 0x05, 0xb4], "MSS 1460");
        let mut pseudo = std::vec::Vec::new();
        pseudo.extend_from_slice(&reply[26..34]);
        pseudo.extend_from_slice(&[0, protocol::TCP, 0, REPLY_TCP_LEN as u8]);
        assert_eq!(checksum::of_parts(&[&pseudo, tcp]), 0, "TCP checksum");
    }

    #[test]
    fn ipv6_reply_swaps_and_checks() {
        let client = crate::build::doc_v6(1);
        let server = crate::build::doc_v6(2);
        let frame = syn(Network::V6(client, server));
        let reply = reply_frame(&frame, 14, 7, 1220).expect("a reply");
        assert_eq!(reply.len(), 14 + 40 + 24);
        assert_eq!(&reply[22..38], &server);
        assert_eq!(&reply[38..54], &client);
        assert_eq!(reply[21], REPLY_TTL, "hop limit");
        let tcp = &reply[54..];
        let mut pseudo = std::vec::Vec::new();
        pseudo.extend_from_slice(&reply[22..54]);
        pseudo.extend_from_slice(&[0, 0, 0, REPLY_TCP_LEN as u8, 0, 0, 0, protocol::TCP]);
        assert_eq!(checksum::of_parts(&[&pseudo, tcp]), 0, "TCP checksum");
    }

    #[test]
    fn a_short_frame_has_no_reply() {
        let frame = syn(Network::V4([192, 0, 2, 1], [198, 51, 100, 2]));
        assert!(reply_frame(&frame[..40], 14, 1, 1460).is_none());
    }
}
