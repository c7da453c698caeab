//! The flow a frame belongs to ([`Flow`]), including the flow an ICMP
//! "fragmentation needed" / "packet too big" error quotes, written word by
//! word for the eBPF stack.

use crate::packet::Packet;
use crate::parse::FlowKey;
use crate::wire::protocol;

/// ICMP "destination unreachable / fragmentation needed", as
/// `FlowKey::destination_port` holds it (`type << 8 | code`).
const ICMP_FRAGMENTATION_NEEDED: u16 = 3 << 8 | 4;
/// ICMPv6 "packet too big" (type 2).
const ICMPV6_PACKET_TOO_BIG: u8 = 2;

/// The flow a frame belongs to, client → VIP. Aligned, addresses first,
/// for the eBPF stack.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub(super) struct Flow {
    pub(super) source: [u8; 16],
    pub(super) destination: [u8; 16],
    pub(super) source_port: u16,
    pub(super) destination_port: u16,
    pub(super) protocol: u8,
    /// An ICMP error quoting the flow, not one of its packets.
    pub(super) icmp_error: bool,
}

impl Flow {
    /// The frame's own flow. The addresses are copied as two 64-bit words
    /// each: copied as arrays, the eBPF build moved the destination byte by
    /// byte (32 instructions a frame to a VIP: the compiler does not know
    /// the key's fields are 8-aligned).
    #[inline(always)]
    pub(super) fn of(key: &FlowKey) -> Self {
        let mut flow = Self {
            source: [0; 16],
            destination: [0; 16],
            source_port: key.source_port,
            destination_port: key.destination_port,
            protocol: key.protocol,
            icmp_error: false,
        };
        let (high, low) = words_of(&key.source);
        set_words(&mut flow.source, high, low);
        let (high, low) = words_of(&key.destination);
        set_words(&mut flow.destination, high, low);
        flow
    }
}

/// An address's two memory words.
#[inline(always)]
fn words_of(address: &[u8; 16]) -> (u64, u64) {
    let words = address.as_ptr().cast::<u64>();
    // SAFETY: 16 readable bytes; unaligned reads (one 64-bit load each
    // where the target allows it, as the eBPF build's does).
    unsafe {
        (
            core::ptr::read_unaligned(words),
            core::ptr::read_unaligned(words.add(1)),
        )
    }
}

#[inline(always)]
pub(super) fn l3_offset(key: &FlowKey) -> usize {
    14 + 4 * usize::from(key.vlan_count)
}

/// Whether the frame may be an ICMP error quoting a flow (the cheap test
/// before [`quoted_flow`], which tests the rest).
#[inline(always)]
pub(super) fn may_quote(key: &FlowKey) -> bool {
    key.protocol == protocol::ICMP || key.protocol == protocol::ICMPV6
}

/// For "fragmentation needed" / "packet too big": the flow of the quoted
/// header (a VIP's packet to its client), turned round, written into
/// `flow`; false when the frame is not such an error. Only for ICMPv6
/// straight after the fixed header. Not inlined (a stack frame of its own),
/// and writing words straight into the caller's `Flow`: byte arrays on the
/// eBPF stack cost frames the verifier adds up.
#[inline(never)]
pub(super) fn quoted_flow<P: Packet>(packet: &P, key: &FlowKey, flow: &mut Flow) -> bool {
    quoted_flow_into(packet, key, flow).is_some()
}

#[inline(always)]
fn quoted_flow_into<P: Packet>(packet: &P, key: &FlowKey, flow: &mut Flow) -> Option<()> {
    let l3 = l3_offset(key);
    let l4 = if key.ip_version == 4 {
        if key.protocol != protocol::ICMP || key.destination_port != ICMP_FRAGMENTATION_NEEDED {
            return None;
        }
        let version_ihl: u8 = packet.load(l3)?;
        l3 + 4 * usize::from(version_ihl & 0x0f)
    } else {
        if key.protocol != protocol::ICMPV6
            || (key.destination_port >> 8) as u8 != ICMPV6_PACKET_TOO_BIG
        {
            return None;
        }
        let next_header: u8 = packet.load(l3 + 6)?;
        if next_header != protocol::ICMPV6 {
            return None;
        }
        l3 + 40
    };
    let quoted = l4 + 8;
    // The quoted packet went VIP → client: its destination is our source.
    let ports_at = if key.ip_version == 4 {
        let version_ihl: u8 = packet.load(quoted)?;
        flow.protocol = packet.load(quoted + 9)?;
        let vip: u32 = packet.load(quoted + 12)?;
        let client: u32 = packet.load(quoted + 16)?;
        set_ipv4_mapped(&mut flow.destination, vip);
        set_ipv4_mapped(&mut flow.source, client);
        quoted + 4 * usize::from(version_ihl & 0x0f)
    } else {
        flow.protocol = packet.load(quoted + 6)?;
        set_words(
            &mut flow.destination,
            packet.load(quoted + 8)?,
            packet.load(quoted + 16)?,
        );
        set_words(
            &mut flow.source,
            packet.load(quoted + 24)?,
            packet.load(quoted + 32)?,
        );
        quoted + 40
    };
    let vip_port: u16 = packet.load(ports_at)?;
    let client_port: u16 = packet.load(ports_at + 2)?;
    flow.destination_port = u16::from_be(vip_port);
    flow.source_port = u16::from_be(client_port);
    flow.icmp_error = true;
    Some(())
}

/// Sets an 8-aligned address from its two memory words.
#[inline(always)]
fn set_words(address: &mut [u8; 16], high: u64, low: u64) {
    let words = address.as_mut_ptr().cast::<u64>();
    // SAFETY: 16 writable bytes, 8-aligned (a first or third field of the
    // 8-aligned `Flow`).
    unsafe {
        core::ptr::write(words, high);
        core::ptr::write(words.add(1), low);
    }
}

/// Sets an 8-aligned address to `::ffff:` and an IPv4 address (as its
/// memory word).
#[inline(always)]
fn set_ipv4_mapped(address: &mut [u8; 16], ipv4: u32) {
    let marker = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
    let words = address.as_mut_ptr().cast::<u32>();
    // SAFETY: as for `set_words`.
    unsafe {
        core::ptr::write(words, 0);
        core::ptr::write(words.add(1), 0);
        core::ptr::write(words.add(2), marker);
        core::ptr::write(words.add(3), ipv4);
    }
}
