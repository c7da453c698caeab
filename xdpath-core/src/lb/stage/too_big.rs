//! A frame to a VIP too big for the path to its backend once encapsulated
//! (the outer headers add 20 to 48 bytes): answered with ICMP
//! "fragmentation needed" (RFC 792, RFC 1191) or ICMPv6 "packet too big"
//! (RFC 4443) announcing the inner MTU that fits, so the client's path-MTU
//! discovery lowers its packets; else the device would drop the grown
//! frame while it was counted as forwarded, and TCP uploads through the
//! balancer would stall (a black hole).
//!
//! The stage decides ([`exceeded`], [`verdict`]); the answer is written by
//! [`answer`], which the native pipeline calls after the stage and the
//! kernel build runs in a program of its own (`xdpath_too_big`, reached
//! by tail call), so that the balancing program's verifier work and stack
//! do not grow.

use super::flow::l3_offset;
use super::rewrite::write_tags;
use super::LbVerdict;
use crate::lb::{store_be16, LbConfig, LbTables};
use crate::packet::{Packet, PacketMut};
use crate::parse::{FlowKey, Fragment};
use crate::stats::{Action, Reason};
use crate::verdict::Outcome;
use crate::wire::checksum;
use crate::wire::ipv4::FLAG_DONT_FRAGMENT;
use crate::wire::protocol;

/// The smallest MTU a Linux Ethernet device takes (`ETH_MIN_MTU`): an
/// outer packet this short fits every device, so the device is not asked
/// (a helper call; most ACKs are this short).
pub const MIN_DEVICE_MTU: u32 = 68;

/// Bytes of the too-big packet an answer quotes at most: within both
/// RFC 1812's 576-byte ICMP datagram and RFC 4443's 1280-byte minimum
/// MTU, and enough for any IP header with its options or extension
/// headers and the transport header the sender finds its socket by.
pub const QUOTE_MAX: usize = 512;

/// Answers a CPU sends a second at most, per interface (natively, per
/// worker thread): ICMPv6 errors must be rate-limited (RFC 4443 §2.4 f),
/// and a flood of big frames with forged sources would otherwise aim the
/// VIP at whoever they name (an answer's IP packet, at most 540 bytes over
/// IPv4 and 560 over IPv6, is shorter than any packet answered under the
/// smallest MTUs announced: no amplification, but no bound in packets
/// either). Linux's own limit, `icmp_msgs_per_sec`, is the same figure.
pub const ANSWERS_PER_SECOND: u64 = 1000;

/// The smallest MTU worth announcing: IPv6's minimum (RFC 8200), and for
/// IPv4 Linux's smallest path MTU (`ip_rt_min_pmtu`; a sender told less
/// sends 552-byte packets without DF, which would not fit either). Below
/// it the frame is dropped, not answered.
const MIN_ANNOUNCED_V6: u32 = 1280;
/// See [`MIN_ANNOUNCED_V6`].
const MIN_ANNOUNCED_V4: u32 = 552;

/// The answers sent in the current second (one per CPU and interface in
/// the kernel, one per worker thread natively). Plain words, for map
/// memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerBudget {
    /// The second (of the monotonic clock) the count is for.
    pub second: u64,
    /// Answers sent in it.
    pub answers: u64,
}

impl AnswerBudget {
    /// Whether one more answer may go at `now_ns`; counts it if so.
    #[inline(always)]
    pub fn take(&mut self, now_ns: u64) -> bool {
        let second = now_ns / 1_000_000_000;
        if second != self.second {
            self.second = second;
            self.answers = 0;
        }
        if self.answers >= ANSWERS_PER_SECOND {
            return false;
        }
        self.answers += 1;
        true
    }
}

/// An answer's IPv4 and ICMP headers.
const ICMP_HEADERS: usize = 20 + 8;
/// An answer's IPv6 and ICMPv6 headers.
const ICMPV6_HEADERS: usize = 40 + 8;
/// The answer's hop limit (Linux's default).
const HOP_LIMIT: u8 = 64;

/// The inner MTU to announce when the frame, grown by `overhead` bytes of
/// outer headers, is longer than the egress device's MTU (interface
/// `egress`, 0 for the receiving one) or the balancer's `--mtu`; `None`
/// when it fits. Lengths are the IP packet's (the frame less its L2
/// header), as an MTU counts.
#[inline(always)]
pub(super) fn exceeded<P: Packet, T: LbTables>(
    packet: &P,
    key: &FlowKey,
    overhead: u32,
    config: &LbConfig,
    egress: u32,
    tables: &T,
) -> Option<u32> {
    let inner = (packet.len() as u32).saturating_sub(l3_offset(key) as u32);
    let outer = inner + overhead;
    if outer <= MIN_DEVICE_MTU {
        return None;
    }
    let mut limit = tables.egress_mtu(egress);
    if config.mtu != 0 && u32::from(config.mtu) < limit {
        limit = u32::from(config.mtu);
    }
    (outer > limit).then(|| limit.saturating_sub(overhead))
}

/// The verdict on a frame too big for the path: answered (tx, with the
/// MTU to announce) when an answer may be sent, else dropped. No answer
/// to an IPv4 packet that may be fragmented (the sender does no path-MTU
/// discovery on it; XDP cannot fragment), to an ICMP error (RFC 1122
/// §3.2.2, RFC 4443 §2.4), to an IPv4 fragment or a later IPv6 one (a
/// first IPv6 fragment is answered: its sender fragments smaller), to a
/// frame sent to a link-layer group address or from a source that is no
/// one host's, or with an MTU below what the sender would take
/// ([`MIN_ANNOUNCED_V6`]).
#[inline(always)]
pub(super) fn verdict<P: Packet>(packet: &P, key: &FlowKey, mtu: u32) -> LbVerdict {
    let (fragment_answered, smallest) = if key.ip_version == 4 {
        (key.fragment == Fragment::None as u8, MIN_ANNOUNCED_V4)
    } else {
        (key.fragment != Fragment::Later as u8, MIN_ANNOUNCED_V6)
    };
    // An error quoting a VIP's flow (the stage's `Flow::icmp_error`) is
    // one of these.
    let answered = !icmp_error(key)
        && fragment_answered
        && mtu >= smallest
        && one_host(key)
        && to_one_station(packet)
        && (key.ip_version == 6 || dont_fragment(packet, key));
    LbVerdict {
        outcome: Outcome {
            action: if answered { Action::Tx } else { Action::Drop },
            reason: Reason::LbTooBig,
        },
        redirect_ifindex: 0,
        announced_mtu: if answered { mtu } else { 0 },
    }
}

/// Whether the frame is an ICMP or ICMPv6 error message.
#[inline(always)]
fn icmp_error(key: &FlowKey) -> bool {
    let icmp_type = (key.destination_port >> 8) as u8;
    match key.protocol {
        protocol::ICMP => matches!(icmp_type, 3 | 4 | 5 | 11 | 12),
        protocol::ICMPV6 => icmp_type < 128,
        _ => false,
    }
}

/// Whether the source is one host's: not unspecified, multicast or
/// broadcast (RFC 1812 §4.3.2.7, RFC 4443 §2.4).
#[inline(always)]
fn one_host(key: &FlowKey) -> bool {
    let [a, _, _, _, _, _, _, _, _, _, _, _, first_v4, ..] = key.source;
    if key.ip_version == 4 {
        first_v4 != 0 && first_v4 < 224
    } else {
        a != 0xff && key.source != [0; 16]
    }
}

/// Whether the frame was sent to one station: its destination MAC's
/// group bit is clear (RFC 1122 §3.2.2: no error for a link-layer
/// broadcast or multicast; the answer's source MAC would be the group).
#[inline(always)]
fn to_one_station<P: Packet>(packet: &P) -> bool {
    packet.load::<u8>(0).is_some_and(|first| first & 1 == 0)
}

/// Whether an IPv4 packet has DF set.
#[inline(always)]
fn dont_fragment<P: Packet>(packet: &P, key: &FlowKey) -> bool {
    packet
        .load::<u16>(l3_offset(key) + 6)
        .is_some_and(|flags| u16::from_be(flags) & FLAG_DONT_FRAGMENT != 0)
}

/// Rewrites a frame [`verdict`] answered into its answer, sent back where
/// it came from: the Ethernet addresses swapped (VLAN tags kept), from the
/// VIP to the client, announcing `mtu`, quoting the frame's IP packet up
/// to [`QUOTE_MAX`] bytes, which are copied into `quote` for the
/// checksum (map memory in the kernel build: more than its stack holds).
/// False when the frame could not be rewritten (then it is dropped: it
/// may be half rewritten).
#[inline(always)]
pub fn answer<P: PacketMut>(
    packet: &mut P,
    key: &FlowKey,
    mtu: u32,
    quote: &mut [u8; QUOTE_MAX],
) -> bool {
    answer_parts(packet, key, mtu, quote).is_some()
}

#[inline(always)]
fn answer_parts<P: PacketMut>(
    packet: &mut P,
    key: &FlowKey,
    mtu: u32,
    quote: &mut [u8; QUOTE_MAX],
) -> Option<()> {
    let l3 = l3_offset(key);
    let ipv4 = key.ip_version == 4;
    let destination_mac: [u8; 6] = packet.load(0)?;
    let source_mac: [u8; 6] = packet.load(6)?;
    let tags: u64 = if key.vlan_count == 0 {
        0
    } else {
        packet.load(12)?
    };
    let inner_len = if ipv4 {
        usize::from(u16::from_be(packet.load(l3 + 2)?))
    } else {
        usize::from(u16::from_be(packet.load(l3 + 4)?)) + 40
    };
    let quote_len = inner_len
        .min(QUOTE_MAX)
        .min(packet.len().saturating_sub(l3));
    if quote_len == 0 || !packet.load_bytes(l3, quote.get_mut(..quote_len)?) {
        return None;
    }
    if let Some(pad) = quote.get_mut(quote_len) {
        *pad = 0;
    }
    let quote_sum = checksum::sum_padded(quote, quote_len);
    let headers = if ipv4 { ICMP_HEADERS } else { ICMPV6_HEADERS };
    // The client and the VIP, read before the head moves (IPv4 in the
    // first four bytes).
    let (client, vip): ([u8; 16], [u8; 16]) = if ipv4 {
        let [a, b, c, d]: [u8; 4] = packet.load(l3 + 12)?;
        let [e, f, g, h]: [u8; 4] = packet.load(l3 + 16)?;
        (
            [a, b, c, d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [e, f, g, h, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        )
    } else {
        (packet.load(l3 + 8)?, packet.load(l3 + 24)?)
    };
    if !packet.adjust_head(-(headers as i32)) {
        return None;
    }
    // The quoted packet now starts where the answer's payload goes.
    let length = l3 + headers + quote_len;
    let delta = length as i32 - packet.len() as i32;
    if delta != 0 && !packet.adjust_tail(delta) {
        return None;
    }
    let ethertype = if ipv4 { 0x0800 } else { 0x86dd };
    let written = packet.store(0, source_mac)
        && packet.store(6, destination_mac)
        && write_tags(packet, key.vlan_count, tags)
        && store_be16(packet, l3 - 2, ethertype);
    if !written {
        return None;
    }
    let stored = if ipv4 {
        packet.store(
            l3,
            icmp_headers(&vip, &client, mtu as u16, quote_len as u16, quote_sum),
        )
    } else {
        packet.store(
            l3,
            icmpv6_headers(&vip, &client, mtu, quote_len as u16, quote_sum),
        )
    };
    stored.then_some(())
}

/// An IPv4 header from the VIP to the client and an ICMP "fragmentation
/// needed" header announcing `mtu`, both with their checksums (the
/// addresses in their first four bytes).
#[inline(always)]
fn icmp_headers(
    vip: &[u8; 16],
    client: &[u8; 16],
    mtu: u16,
    quote_len: u16,
    quote_sum: u32,
) -> [u8; ICMP_HEADERS] {
    let [t0, t1] = (ICMP_HEADERS as u16 + quote_len).to_be_bytes();
    let [m0, m1] = mtu.to_be_bytes();
    let [v0, v1, v2, v3, ..] = *vip;
    let [k0, k1, k2, k3, ..] = *client;
    #[rustfmt::skip]
    let ip = [
        0x45, 0, t0, t1, 0, 0, 0, 0, HOP_LIMIT, protocol::ICMP, 0, 0,
        v0, v1, v2, v3, k0, k1, k2, k3,
    ];
    let [c0, c1] = checksum::finish(checksum::sum_bytes(&ip, 0, ip.len())).to_be_bytes();
    let icmp_sum = checksum::sum_words(&[0x0304, u16::from_be_bytes([m0, m1])]) + quote_sum;
    let [i0, i1] = checksum::finish(icmp_sum).to_be_bytes();
    #[rustfmt::skip]
    let headers = [
        0x45, 0, t0, t1, 0, 0, 0, 0, HOP_LIMIT, protocol::ICMP, c0, c1,
        v0, v1, v2, v3, k0, k1, k2, k3,
        3, 4, i0, i1, 0, 0, m0, m1,
    ];
    headers
}

/// An IPv6 header from the VIP to the client and an ICMPv6 "packet too
/// big" header announcing `mtu`, its checksum over the pseudo-header.
#[inline(always)]
fn icmpv6_headers(
    vip: &[u8; 16],
    client: &[u8; 16],
    mtu: u32,
    quote_len: u16,
    quote_sum: u32,
) -> [u8; ICMPV6_HEADERS] {
    let payload = 8 + quote_len;
    let [p0, p1] = payload.to_be_bytes();
    let [m0, m1, m2, m3] = mtu.to_be_bytes();
    let pseudo = checksum::sum_bytes(vip, 0, 16)
        + checksum::sum_bytes(client, 0, 16)
        + u32::from(payload)
        + u32::from(protocol::ICMPV6);
    let icmp_sum = checksum::sum_words(&[
        0x0200,
        u16::from_be_bytes([m0, m1]),
        u16::from_be_bytes([m2, m3]),
    ]);
    let [c0, c1] = checksum::finish(pseudo + icmp_sum + quote_sum).to_be_bytes();
    let [v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15] = *vip;
    let [k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15] = *client;
    #[rustfmt::skip]
    let headers = [
        0x60, 0, 0, 0, p0, p1, protocol::ICMPV6, HOP_LIMIT,
        v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15,
        k0, k1, k2, k3, k4, k5, k6, k7, k8, k9, k10, k11, k12, k13, k14, k15,
        2, 0, c0, c1, m0, m1, m2, m3,
    ];
    headers
}
