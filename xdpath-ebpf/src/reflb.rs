//! The reference balancer, the balancer benchmark's peer: a minimal XDP
//! program doing the per-packet work of Katran's balancer (its
//! `balancer_kern.c` read to learn what a frame costs it), written for this
//! project (not Katran's code). See `xdpath_core::reflb` for the maps'
//! layouts (Katran's key sizes) and the hash.
//!
//! Per frame to a VIP (IPv4, TCP or UDP, no IP options, no fragment), as
//! Katran: the VIP lookup (a 20-byte key; again with port 0 if none), the
//! frame-size check, the VIP-packets counter; unless the frame is a SYN,
//! the connection lookup (a 40-byte key) in an LRU hash with one LRU list
//! per CPU (`BPF_F_NO_COMMON_LRU`: Katran keeps one LRU map per CPU), for
//! UDP with its idle check; the backend (array). On a miss: the TCP-miss
//! counter, the new-connection rate check (a counter and the clock), the
//! jhash of source and ports, the Maglev ring slot (array), the backend,
//! the insert (skipped past the rate) and the miss counter. Then the next
//! hop (array), the VIP's and the backend's packet and byte counters,
//! `bpf_xdp_adjust_head` and an outer IPv4 header with its checksum,
//! `XDP_TX`. Other frames pass.
//!
//! Not reproduced: Katran finds its per-CPU LRU map through an array of
//! maps (`lru_mapping`, a lookup the verifier inlines); aya 0.14 cannot
//! create one, so the reference's one table has per-CPU LRU lists instead.
#![no_std]
#![no_main]

mod object;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_ktime_get_ns, bpf_xdp_adjust_head},
    macros::{map, xdp},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use xdpath_core::reflb::{
    flow_hash, outer_source, ring_slot, Ctl, FlowKey, Real, RealPos, Stat, VipKey, VipMeta,
    DEFAULT_LRU_SIZE, MAX_CONN_RATE, MAX_PACKET_SIZE, MAX_REALS, MAX_VIPS, OUTER_TTL, RING_SIZE,
    STAT_CONN_RATE, STAT_LRU, STAT_LRU_MISS, STAT_SLOTS, UDP_TIMEOUT_NS,
};

/// One LRU list per CPU for the connection table.
const BPF_F_NO_COMMON_LRU: u32 = 2;
const ETHERNET: usize = 14;
const IPV4: usize = 20;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const TCP_FLAGS: usize = ETHERNET + IPV4 + 13;
const TCP_SYN: u8 = 0x02;
const ONE_SECOND_NS: u64 = 1_000_000_000;

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

/// Per-VIP packets and bytes, then the counters `STAT_LRU`,
/// `STAT_LRU_MISS` and `STAT_CONN_RATE`.
#[map]
static REFLB_STATS: PerCpuArray<Stat> = PerCpuArray::with_max_entries(STAT_SLOTS, 0);

/// Per-backend packets and bytes.
#[map]
static REFLB_REAL_STATS: PerCpuArray<Stat> = PerCpuArray::with_max_entries(MAX_REALS, 0);

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

/// This CPU's counters of a `REFLB_STATS` slot.
#[inline(always)]
fn stat(slot: u32) -> Option<*mut Stat> {
    REFLB_STATS.get_ptr_mut(slot)
}

/// Adds `v1` and `v2` to a per-CPU counter pair.
#[inline(always)]
fn add(stat: *mut Stat, v1: u64, v2: u64) {
    // SAFETY: this CPU's value of a per-CPU slot; no other user on it
    // while the program runs.
    unsafe {
        (*stat).v1 += v1;
        (*stat).v2 += v2;
    }
}

#[xdp]
pub fn xdpath_reflb(ctx: XdpContext) -> u32 {
    balance(&ctx).unwrap_or(xdp_action::XDP_DROP)
}

/// A map key built of 64-bit words on an 8-aligned stack slot. The build
/// lets LLVM use misaligned accesses (`allows-misaligned-mem-access`, for
/// the packet's); a key built field by field had its zero words merged
/// into 64-bit stores at 4-aligned stack offsets, which the verifier
/// refuses ("misaligned stack access").
#[repr(C, align(8))]
struct Words<const N: usize>([u64; N]);

impl Words<5> {
    /// Katran's `flow_key` of an IPv4 flow (addresses and ports as the
    /// frame holds them): source, destination, ports and protocol.
    #[inline(always)]
    fn flow(source: u32, destination: u32, ports: u32, protocol: u8) -> Self {
        let last = u64::from(ports) | u64::from(protocol) << 32;
        Self([u64::from(source), 0, u64::from(destination), 0, last])
    }

    #[inline(always)]
    fn key(&self) -> &FlowKey {
        // SAFETY: 40 initialised bytes, 8-aligned, laid out as `FlowKey`
        // (little-endian: a word's low half is its first four bytes).
        unsafe { &*self.0.as_ptr().cast::<FlowKey>() }
    }
}

impl Words<3> {
    /// Katran's `vip_definition` of an IPv4 VIP (bytes 20-23 unused).
    #[inline(always)]
    fn vip(address: u64, port: u16, protocol: u8) -> Self {
        Self([address, 0, u64::from(port) | u64::from(protocol) << 16])
    }

    #[inline(always)]
    fn key(&self) -> &VipKey {
        // SAFETY: its first 20 bytes initialised, 8-aligned, laid out as
        // `VipKey`.
        unsafe { &*self.0.as_ptr().cast::<VipKey>() }
    }
}

/// The parsed frame: its flow and whether it is a SYN.
struct Frame {
    flow: Words<5>,
    syn: bool,
    protocol: u8,
    /// The IP packet's length.
    length: u16,
}

/// The whole path; `XDP_PASS` for what is not to a VIP, `None` (drop) for
/// what Katran drops.
#[inline(always)]
fn balance(ctx: &XdpContext) -> Option<u32> {
    let Some(mut frame) = parse(ctx)? else {
        return Some(xdp_action::XDP_PASS);
    };
    let [_, _, destination, _, last] = frame.flow.0;
    let port = (last >> 16) as u16;
    let mut key = Words::<3>::vip(destination, port, frame.protocol);
    // SAFETY: the values are read at once, not kept across calls.
    let vip = match unsafe { REFLB_VIPS.get(key.key()) } {
        Some(vip) => *vip,
        None => {
            key = Words::<3>::vip(destination, 0, frame.protocol);
            let Some(vip) = (unsafe { REFLB_VIPS.get(key.key()) }) else {
                return Some(xdp_action::XDP_PASS);
            };
            // A VIP of every port: its flows ignore the destination port.
            frame.flow.0[4] &= !0xffff_0000;
            *vip
        }
    };
    if ctx.data_end() - ctx.data() > usize::from(MAX_PACKET_SIZE) {
        return None;
    }
    let lru = stat(STAT_LRU)?;
    add(lru, 1, 0);
    let position = match known_backend(&frame) {
        Some(position) => position,
        None => {
            let position = place(&frame, vip.number)?;
            add(lru, 0, 1);
            position
        }
    };
    let real = *REFLB_REALS.get(position)?;
    let ctl = *REFLB_CTL.get(0)?;
    let bytes = u64::from(frame.length);
    add(stat(vip.number)?, 1, bytes);
    add(REFLB_REAL_STATS.get_ptr_mut(position)?, 1, bytes);
    encapsulate(ctx, &frame, &real, &ctl)?;
    Some(xdp_action::XDP_TX)
}

/// The frame's flow: `Some(None)` for a frame to pass (not IPv4 TCP or
/// UDP), `None` for one to drop (IP options or a fragment, as Katran).
#[inline(always)]
fn parse(ctx: &XdpContext) -> Option<Option<Frame>> {
    if u16::from_be(load::<u16>(ctx, 12)?) != ETHERTYPE_IPV4 {
        return Some(None);
    }
    let version: u8 = load(ctx, ETHERNET)?;
    let fragment = u16::from_be(load::<u16>(ctx, ETHERNET + 6)?);
    if version != 0x45 || fragment & 0x3fff != 0 {
        return None;
    }
    let protocol: u8 = load(ctx, ETHERNET + 9)?;
    let syn = match protocol {
        IPPROTO_TCP => load::<u8>(ctx, TCP_FLAGS)? & TCP_SYN != 0,
        IPPROTO_UDP => false,
        _ => return Some(None),
    };
    Some(Some(Frame {
        flow: Words::<5>::flow(
            load(ctx, ETHERNET + 12)?,
            load(ctx, ETHERNET + 16)?,
            load(ctx, ETHERNET + IPV4)?,
            protocol,
        ),
        syn,
        protocol,
        length: u16::from_be(load::<u16>(ctx, ETHERNET + 2)?),
    }))
}

/// The backend the connection table holds for the flow (a SYN is not
/// looked up: Katran places every SYN afresh); a UDP entry idle past
/// `UDP_TIMEOUT_NS` is not used, a fresh one has its time renewed.
#[inline(always)]
fn known_backend(frame: &Frame) -> Option<u32> {
    if frame.syn {
        return None;
    }
    let entry = REFLB_LRU.get_ptr_mut(frame.flow.key())?;
    if frame.protocol == IPPROTO_UDP {
        // SAFETY: the helper has no preconditions.
        let now = unsafe { bpf_ktime_get_ns() };
        // SAFETY: the map's value, valid while the program runs.
        unsafe {
            if now.wrapping_sub((*entry).atime) > UDP_TIMEOUT_NS {
                return None;
            }
            (*entry).atime = now;
        }
    }
    // SAFETY: as above.
    Some(unsafe { (*entry).position })
}

/// A flow the table does not hold: counted, routed by the Maglev ring and
/// (below the new-connection rate) inserted. `None`: no ring slot.
#[inline(always)]
fn place(frame: &Frame, vip: u32) -> Option<u32> {
    if frame.protocol == IPPROTO_TCP {
        let (syn, other) = if frame.syn { (1, 0) } else { (0, 1) };
        add(stat(STAT_LRU_MISS)?, syn, other);
    }
    let (flood, now) = under_flood();
    let position = *REFLB_RING.get(ring_slot(vip, flow_hash(frame.flow.key())))?;
    if !flood {
        let atime = if frame.protocol == IPPROTO_UDP {
            now
        } else {
            0
        };
        let entry = RealPos {
            position,
            pad: 0,
            atime,
        };
        // A full table evicts: the insert does not fail for want of room.
        let _ = REFLB_LRU.insert(frame.flow.key(), &entry, 0);
    }
    Some(position)
}

/// Counts a new connection in this CPU's second; true past
/// `MAX_CONN_RATE` (and when the counter cannot be read). Also returns
/// the time read.
#[inline(always)]
fn under_flood() -> (bool, u64) {
    let Some(rate) = stat(STAT_CONN_RATE) else {
        return (true, 0);
    };
    // SAFETY: the helper has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // SAFETY: this CPU's value of a per-CPU slot.
    let flood = unsafe {
        if now.wrapping_sub((*rate).v2) > ONE_SECOND_NS {
            (*rate).v1 = 1;
            (*rate).v2 = now;
            false
        } else {
            (*rate).v1 += 1;
            (*rate).v1 > MAX_CONN_RATE
        }
    };
    (flood, now)
}

/// Prepends the outer IPv4 header (protocol IPIP) and rewrites the
/// Ethernet header: to the next hop, from the frame's old destination.
#[inline(always)]
fn encapsulate(ctx: &XdpContext, frame: &Frame, real: &Real, ctl: &Ctl) -> Option<()> {
    let old_destination: [u8; 6] = load(ctx, 0)?;
    let tos: u8 = load(ctx, ETHERNET + 1)?;
    // SAFETY: the helper checks the headroom itself.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(IPV4 as i32)) } != 0 {
        return None;
    }
    let total = frame.length.wrapping_add(IPV4 as u16).to_be_bytes();
    let flow = frame.flow.key();
    let mut words: [u32; 5] = [
        u32::from_ne_bytes([0x45, tos, total[0], total[1]]),
        0,
        u32::from_ne_bytes([OUTER_TTL, IPPROTO_IPIP, 0, 0]),
        outer_source(ctl.source_prefix, flow.source[0], flow.ports),
        real.address[0],
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
