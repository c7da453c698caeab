//! The reference balancer, the balancer benchmark's peer: a minimal XDP
//! program doing the per-packet work of Katran as its documentation and
//! paper describe it, written for this project (not Katran's code). See
//! `xdpath_core::reflb` for the maps' layouts and the hash.
//!
//! Per frame to a VIP (IPv4, TCP or UDP, no IP options, no fragment):
//! the VIP lookup (hash), the VIP's per-CPU counters, the connection
//! lookup in an LRU hash with one LRU list per CPU (`BPF_F_NO_COMMON_LRU`:
//! Katran keeps one LRU map per CPU); on a miss the 5-tuple jhash, the
//! Maglev ring slot (array) and the insert; the backend (array), the
//! fixed next hop (array), `bpf_xdp_adjust_head` and an outer IPv4 header
//! with its checksum, then `XDP_TX`. Other frames pass.
#![no_std]
#![no_main]

mod object;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use xdpath_core::reflb::{
    flow_hash, outer_source, ring_slot, Ctl, FlowKey, Real, RealPos, Stat, VipKey, VipMeta,
    DEFAULT_LRU_SIZE, MAX_PACKET_SIZE, MAX_REALS, MAX_VIPS, OUTER_TTL, RING_SIZE, STAT_LRU_MISSES,
    STAT_SLOTS,
};

/// One LRU list per CPU for the connection table.
const BPF_F_NO_COMMON_LRU: u32 = 2;
const ETHERNET: usize = 14;
const IPV4: usize = 20;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// The VIPs: (address, port, protocol) → number.
#[map]
static REFLB_VIPS: HashMap<VipKey, VipMeta> = HashMap::with_max_entries(MAX_VIPS, 0);

/// The connection table: 5-tuple → backend position. User space may
/// resize it before the load.
#[map]
static REFLB_LRU: LruHashMap<FlowKey, RealPos> =
    LruHashMap::with_max_entries(DEFAULT_LRU_SIZE, BPF_F_NO_COMMON_LRU);

/// The Maglev rings, `RING_SIZE` slots per VIP: backend positions.
#[map]
static REFLB_RING: Array<u32> = Array::with_max_entries(MAX_VIPS * RING_SIZE, 0);

/// The backends.
#[map]
static REFLB_REALS: Array<Real> = Array::with_max_entries(MAX_REALS, 0);

/// The fixed next hop and outer source prefix.
#[map]
static REFLB_CTL: Array<Ctl> = Array::with_max_entries(1, 0);

/// Per-VIP packets and bytes, and the connection-table misses.
#[map]
static REFLB_STATS: PerCpuArray<Stat> = PerCpuArray::with_max_entries(STAT_SLOTS, 0);

/// Reads a `T` at `offset` of the frame, or `None` past its end.
#[inline(always)]
fn load<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    let at = ctx.data() + offset;
    if at + core::mem::size_of::<T>() > ctx.data_end() {
        return None;
    }
    // SAFETY: [at, at + size_of::<T>()) lies inside the frame (checked).
    Some(unsafe { core::ptr::read_unaligned(at as *const T) })
}

/// Writes `value` at `offset` of the frame; false past its end.
#[inline(always)]
fn store<T: Copy>(ctx: &XdpContext, offset: usize, value: T) -> bool {
    let at = ctx.data() + offset;
    if at + core::mem::size_of::<T>() > ctx.data_end() {
        return false;
    }
    // SAFETY: inside the frame (checked just above).
    unsafe { core::ptr::write_unaligned(at as *mut T, value) };
    true
}

#[xdp]
pub fn xdpath_reflb(ctx: XdpContext) -> u32 {
    balance(&ctx)
}

/// The whole path; `XDP_PASS` for what is not to a VIP.
#[inline(always)]
fn balance(ctx: &XdpContext) -> u32 {
    let Some(flow) = parse(ctx) else {
        return xdp_action::XDP_PASS;
    };
    let Some(flow) = flow else {
        return xdp_action::XDP_DROP;
    };
    let key = VipKey {
        address: flow.destination,
        port: (flow.ports >> 16) as u16,
        protocol: flow.protocol,
        pad: 0,
    };
    // SAFETY: the value is read at once, not kept across calls.
    let Some(vip) = (unsafe { REFLB_VIPS.get(&key) }).copied() else {
        return xdp_action::XDP_PASS;
    };
    let Some(length) = load::<u16>(ctx, ETHERNET + 2).map(u16::from_be) else {
        return xdp_action::XDP_PASS;
    };
    if length > MAX_PACKET_SIZE {
        return xdp_action::XDP_DROP;
    }
    count(vip.number, u64::from(length));
    match forward(ctx, &flow, vip.number, length) {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_DROP,
    }
}

/// The 5-tuple of an IPv4 TCP or UDP frame: `None` for a frame to pass,
/// `Some(None)` for one to drop (IP options or a fragment, as Katran).
#[inline(always)]
fn parse(ctx: &XdpContext) -> Option<Option<FlowKey>> {
    if u16::from_be(load::<u16>(ctx, 12)?) != ETHERTYPE_IPV4 {
        return None;
    }
    let version: u8 = load(ctx, ETHERNET)?;
    let fragment = u16::from_be(load::<u16>(ctx, ETHERNET + 6)?);
    let protocol: u8 = load(ctx, ETHERNET + 9)?;
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
        return None;
    }
    if version != 0x45 || fragment & 0x3fff != 0 {
        return Some(None);
    }
    Some(Some(FlowKey {
        source: load(ctx, ETHERNET + 12)?,
        destination: load(ctx, ETHERNET + 16)?,
        ports: load(ctx, ETHERNET + IPV4)?,
        protocol,
        pad: [0; 3],
    }))
}

/// Adds a packet of `bytes` to the stats slot `slot`.
#[inline(always)]
fn count(slot: u32, bytes: u64) {
    if let Some(stat) = REFLB_STATS.get_ptr_mut(slot) {
        // SAFETY: this CPU's value of the slot; no other user on this CPU.
        unsafe {
            (*stat).packets += 1;
            (*stat).bytes += bytes;
        }
    }
}

/// The connection's backend (a lookup, or on a miss the Maglev ring and an
/// insert), then the encapsulation.
#[inline(always)]
fn forward(ctx: &XdpContext, flow: &FlowKey, vip: u32, length: u16) -> Option<()> {
    // SAFETY: the value is read at once.
    let position = match unsafe { REFLB_LRU.get(flow) } {
        Some(known) => known.position,
        None => {
            let position = *REFLB_RING.get(ring_slot(vip, flow_hash(flow)))?;
            let entry = RealPos { position, atime: 0 };
            // A full table evicts: the insert does not fail for want of room.
            let _ = REFLB_LRU.insert(flow, &entry, 0);
            count(STAT_LRU_MISSES, 0);
            position
        }
    };
    let real = *REFLB_REALS.get(position)?;
    let ctl = *REFLB_CTL.get(0)?;
    encapsulate(ctx, flow, &real, &ctl, length)
}

/// Prepends the outer IPv4 header (protocol IPIP) and rewrites the
/// Ethernet header: to the next hop, from the frame's old destination.
#[inline(always)]
fn encapsulate(
    ctx: &XdpContext,
    flow: &FlowKey,
    real: &Real,
    ctl: &Ctl,
    length: u16,
) -> Option<()> {
    let old_destination: [u8; 6] = load(ctx, 0)?;
    let tos: u8 = load(ctx, ETHERNET + 1)?;
    // SAFETY: the helper checks the headroom itself.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(IPV4 as i32)) } != 0 {
        return None;
    }
    let total = length.wrapping_add(IPV4 as u16).to_be_bytes();
    let mut words: [u32; 5] = [
        u32::from_ne_bytes([0x45, tos, total[0], total[1]]),
        0,
        u32::from_ne_bytes([OUTER_TTL, IPPROTO_IPIP, 0, 0]),
        outer_source(ctl.source_prefix, flow.source, flow.ports),
        real.address,
    ];
    words[2] |= u32::from(checksum(&words));
    let written = store(ctx, 0, ctl.mac)
        && store(ctx, 6, old_destination)
        && store(ctx, 12, ETHERTYPE_IPV4.to_be())
        && store(ctx, ETHERNET, words);
    written.then_some(())
}

/// The header checksum of five words as memory holds them (a one's
/// complement sum reads the same in either byte order), ready to be
/// or-ed into the third word (whose upper half, in memory order the
/// checksum's bytes, is zero).
#[inline(always)]
fn checksum(words: &[u32; 5]) -> u32 {
    let mut sum: u32 = 0;
    for word in words {
        sum += (word & 0xffff) + (word >> 16);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (!sum & 0xffff) << 16
}
