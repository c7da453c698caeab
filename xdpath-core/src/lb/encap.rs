//! The flow hash and the outer headers.

use crate::wire::checksum;

/// A 32-bit mix (murmur3's block step and finaliser): the same in both
/// builds and on every host, so several balancers place a flow alike.
#[inline(always)]
const fn mix(hash: u32, value: u32) -> u32 {
    let value = value.wrapping_mul(0xcc9e_2d51).rotate_left(15);
    let value = value.wrapping_mul(0x1b87_3593);
    (hash ^ value)
        .rotate_left(13)
        .wrapping_mul(5)
        .wrapping_add(0xe654_6b64)
}

#[inline(always)]
const fn finish(mut hash: u32) -> u32 {
    hash ^= hash >> 16;
    hash = hash.wrapping_mul(0x85eb_ca6b);
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(0xc2b2_ae35);
    hash ^ (hash >> 16)
}

#[inline(always)]
fn word(address: &[u8; 16], at: usize) -> u32 {
    match address.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// The flow hash: the client address, and unless `source_only`, the ports
/// and protocol too. It picks the Maglev slot.
#[inline(always)]
pub fn flow_hash(
    source: &[u8; 16],
    source_port: u16,
    destination_port: u16,
    protocol: u8,
    source_only: bool,
) -> u32 {
    let mut hash = 0x9747_b28c;
    hash = mix(hash, word(source, 0));
    hash = mix(hash, word(source, 4));
    hash = mix(hash, word(source, 8));
    hash = mix(hash, word(source, 12));
    if !source_only {
        hash = mix(
            hash,
            u32::from(source_port) << 16 | u32::from(destination_port),
        );
        hash = mix(hash, u32::from(protocol));
    }
    finish(hash)
}

/// The hash the outer headers draw on — the outer source's host bits, the
/// GUE source port, the IPv6 flow label: stable per flow (per client for a
/// source-hashed VIP, as [`flow_hash`]) and cheap, as every frame to a VIP
/// pays for it, hit or miss: murmur3's finaliser over the source's words
/// and the ports folded together (about 20 instructions, where
/// [`flow_hash`], which picks the Maglev slot and so runs only on a miss,
/// is about 60).
#[inline(always)]
pub fn encap_hash(
    source: &[u8; 16],
    source_port: u16,
    destination_port: u16,
    source_only: bool,
) -> u32 {
    let ports = if source_only {
        0
    } else {
        u32::from(source_port) << 16 | u32::from(destination_port)
    };
    finish(
        word(source, 0).rotate_left(8)
            ^ word(source, 4).rotate_left(16)
            ^ word(source, 8).rotate_left(24)
            ^ word(source, 12)
            ^ ports,
    )
}

/// The outer source address: the configured prefix, its host bits from the
/// flow hash. Whole 64-bit halves: byte loops spill the eBPF stack.
#[inline(always)]
pub fn outer_source(prefix: &[u8; 16], prefix_len: u8, hash: u32) -> [u8; 16] {
    let [p0, p1, p2, p3, p4, p5, p6, p7, q0, q1, q2, q3, q4, q5, q6, q7] = *prefix;
    let high = u64::from_be_bytes([p0, p1, p2, p3, p4, p5, p6, p7]);
    let low = u64::from_be_bytes([q0, q1, q2, q3, q4, q5, q6, q7]);
    let length = u32::from(if prefix_len > 128 { 128 } else { prefix_len });
    let high_keep = if length >= 64 {
        u64::MAX
    } else {
        !(u64::MAX.checked_shr(length).unwrap_or(0))
    };
    let low_keep = if length <= 64 {
        0
    } else {
        !(u64::MAX.checked_shr(length - 64).unwrap_or(0))
    };
    let host = u64::from(hash) | u64::from(hash) << 32;
    let high = (high & high_keep) | (host & !high_keep);
    let low = (low & low_keep) | (host & !low_keep);
    let [a0, a1, a2, a3, a4, a5, a6, a7] = high.to_be_bytes();
    let [b0, b1, b2, b3, b4, b5, b6, b7] = low.to_be_bytes();
    [
        a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7,
    ]
}

/// What the outer headers say. Aligned, addresses first: the eBPF build
/// keeps it on the stack, where the verifier refuses unaligned accesses.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug)]
pub struct OuterSpec {
    /// Outer source (IPv4-mapped for IPv4).
    pub source: [u8; 16],
    /// Outer destination, the backend.
    pub destination: [u8; 16],
    /// The flow hash (UDP source port, IPv6 flow label).
    pub hash: u32,
    /// The inner IP packet's length.
    pub inner_length: u16,
    /// GUE: a UDP header to this port follows (source port from `hash`,
    /// checksum zero: RFC 6935 allows it for tunnels over IPv6, RFC 768
    /// over IPv4). 0: plain IPIP.
    pub gue_port: u16,
    /// The outer family (the backend's).
    pub outer_ipv4: bool,
    /// The inner packet's family.
    pub inner_ipv4: bool,
    /// Traffic class to copy from the inner header.
    pub tos: u8,
}

/// IPv4 protocol / IPv6 next-header numbers.
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_UDP: u8 = 17;
const OUTER_TTL: u8 = 64;

impl OuterSpec {
    /// Bytes of outer headers: 20 or 40, and 8 more for GUE.
    #[inline(always)]
    pub const fn length(&self) -> usize {
        Self::overhead(self.outer_ipv4, self.gue_port != 0) as usize
    }

    /// The bytes outer headers add: an IPv4 or IPv6 header, and a UDP
    /// header for GUE.
    #[inline(always)]
    pub const fn overhead(outer_ipv4: bool, gue: bool) -> u32 {
        let ip = if outer_ipv4 { 20 } else { 40 };
        if gue {
            ip + 8
        } else {
            ip
        }
    }

    /// The outer EtherType, host order.
    #[inline(always)]
    pub const fn ethertype(&self) -> u16 {
        if self.outer_ipv4 {
            0x0800
        } else {
            0x86dd
        }
    }

    #[inline(always)]
    const fn protocol(&self) -> u8 {
        if self.gue_port != 0 {
            IPPROTO_UDP
        } else if self.inner_ipv4 {
            IPPROTO_IPIP
        } else {
            IPPROTO_IPV6
        }
    }
}

/// Writes the outer headers at `at`, in network byte order, a whole header
/// a store (words, not byte arrays: the eBPF verifier refuses unaligned
/// stack accesses). False when a write falls outside the frame.
#[inline(always)]
pub fn write_outer<P: crate::packet::PacketMut>(
    packet: &mut P,
    at: usize,
    spec: &OuterSpec,
) -> bool {
    // Every write returns at once when it fails: accumulating a flag would
    // give the eBPF verifier two states per write to walk.
    let udp_length: u16 = if spec.gue_port != 0 { 8 } else { 0 };
    let ip_length = if spec.outer_ipv4 {
        let total = 20 + udp_length + spec.inner_length;
        let source = word(&spec.source, 12);
        let destination = word(&spec.destination, 12);
        let first = 0x4500 | u16::from(spec.tos);
        let ttl_protocol = u16::from(OUTER_TTL) << 8 | u16::from(spec.protocol());
        let checksum = checksum::finish(checksum::sum_words(&[
            first,
            total,
            0,
            0,
            ttl_protocol,
            (source >> 16) as u16,
            source as u16,
            (destination >> 16) as u16,
            destination as u16,
        ]));
        // One 20-byte store, not seven: in the eBPF build every store
        // reads the frame's bounds afresh and checks them (see
        // `XdpFrame`), about ten instructions a store.
        let header: [u32; 5] = [
            (u32::from(first) << 16 | u32::from(total)).to_be(),
            0,
            (u32::from(ttl_protocol) << 16 | u32::from(checksum)).to_be(),
            source.to_be(),
            destination.to_be(),
        ];
        if !packet.store(at, header) {
            return false;
        }
        20
    } else {
        let flow_label = spec.hash & 0x000f_ffff;
        let payload_length = udp_length + spec.inner_length;
        let next_header = u16::from(spec.protocol()) << 8 | u16::from(OUTER_TTL);
        // One 40-byte store (see the IPv4 header's).
        let header: [u32; 10] = [
            (6 << 28 | u32::from(spec.tos) << 20 | flow_label).to_be(),
            (u32::from(payload_length) << 16 | u32::from(next_header)).to_be(),
            word(&spec.source, 0).to_be(),
            word(&spec.source, 4).to_be(),
            word(&spec.source, 8).to_be(),
            word(&spec.source, 12).to_be(),
            word(&spec.destination, 0).to_be(),
            word(&spec.destination, 4).to_be(),
            word(&spec.destination, 8).to_be(),
            word(&spec.destination, 12).to_be(),
        ];
        if !packet.store(at, header) {
            return false;
        }
        40
    };
    if spec.gue_port != 0 {
        let udp = at + ip_length;
        // Source ports 32768-65535, spread by flow for the receiver's RSS;
        // the checksum zero. One store.
        let header: [u16; 4] = [
            (0x8000 | (spec.hash as u16 & 0x7fff)).to_be(),
            spec.gue_port.to_be(),
            (8 + spec.inner_length).to_be(),
            0,
        ];
        if !packet.store(udp, header) {
            return false;
        }
    }
    true
}

/// Stores a 16-bit value in network byte order.
#[inline(always)]
pub fn store_be16<P: crate::packet::PacketMut>(packet: &mut P, at: usize, value: u16) -> bool {
    packet.store(at, value.to_be())
}

/// Stores a 32-bit value in network byte order.
#[inline(always)]
pub fn store_be32<P: crate::packet::PacketMut>(packet: &mut P, at: usize, value: u32) -> bool {
    packet.store(at, value.to_be())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_source_keeps_the_prefix() {
        let prefix = crate::parse::ipv4_mapped([10, 255, 0, 0]);
        let source = outer_source(&prefix, 96 + 16, 0xdead_beef);
        assert_eq!(&source[..14], &prefix[..14]);
        assert_ne!(&source[14..], &[0, 0]);
        let other = outer_source(&prefix, 96 + 16, 0x1234_5678);
        assert_ne!(source, other, "flows spread over the prefix");
    }

    #[test]
    fn encap_hash_spreads_flows_and_keeps_a_client_together_when_asked() {
        let client = crate::parse::ipv4_mapped([192, 0, 2, 1]);
        let other = crate::parse::ipv4_mapped([192, 0, 2, 2]);
        assert_ne!(
            encap_hash(&client, 1000, 80, false),
            encap_hash(&client, 1001, 80, false)
        );
        assert_ne!(
            encap_hash(&client, 1000, 80, false),
            encap_hash(&other, 1000, 80, false)
        );
        assert_eq!(
            encap_hash(&client, 1000, 80, true),
            encap_hash(&client, 1001, 443, true)
        );
        // Its low 16 bits (an IPv4 outer source's host half) take many
        // values over a client's ports.
        let spread: std::collections::BTreeSet<u16> = (0..1000)
            .map(|port| encap_hash(&client, 20_000 + port, 80, false) as u16)
            .collect();
        assert!(spread.len() > 990, "{} distinct of 1000", spread.len());
    }

    #[test]
    fn flow_hash_depends_on_ports_unless_source_only() {
        let client = crate::parse::ipv4_mapped([192, 0, 2, 1]);
        assert_ne!(
            flow_hash(&client, 1000, 80, 6, false),
            flow_hash(&client, 1001, 80, 6, false)
        );
        assert_eq!(
            flow_hash(&client, 1000, 80, 6, true),
            flow_hash(&client, 1001, 443, 17, true)
        );
    }
}
