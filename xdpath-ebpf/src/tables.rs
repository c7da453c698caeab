//! [`Tables`] over the maps.

use aya_ebpf::{
    bindings::{bpf_fib_lookup, xdp_md},
    helpers::{bpf_fib_lookup, bpf_ktime_get_coarse_ns},
    maps::lpm_trie::Key,
};
use xdpath_core::filter::{
    address_words, charge_bucket, lengths_slot, words_family, BlockEntry, BoundCells, BucketBound,
    BucketKey, BucketTable, Charge, FilterConfig, PrefixHashKey, PrefixKey, RateLimit, Rule,
    RuleChain, DIRECTION_DESTINATION, DIRECTION_SOURCE, MAX_PREFIX_LENGTHS, NO_RULE,
};
use xdpath_core::forward::Route;
use xdpath_core::lb::{
    Backend, Connection, ConnectionKey, ConnectionTable, DecapConfig, LbConfig, LbTables, NextHop,
    Vip, VipKey, DECAP_ENABLED, MAX_RINGS, MAX_RING_SIZE, NO_BACKEND,
};
use xdpath_core::{stats::counter_index, Action, InterfaceConfig, Reason, Tables};

use crate::maps::*;

pub struct MapTables {
    /// The run's context; the ingress interface is read from it only when a
    /// rule asks (it costs three dependent loads).
    pub ctx: *mut aya_ebpf::bindings::xdp_md,
    /// What matched the frame, for its sample: a rule or VIP
    /// (`xdpath_core::observe::MATCHED_*`).
    pub matched: u32,
    /// False when this program knows the frame was not chosen for a
    /// sample or capture (the entry program, which chose): its exit then
    /// skips looking at the record. Tail-called stages do not know.
    pub maybe_chosen: bool,
}

impl MapTables {
    /// The tables of one run.
    #[inline(always)]
    pub fn new(ctx: *mut aya_ebpf::bindings::xdp_md) -> Self {
        Self {
            ctx,
            matched: 0,
            maybe_chosen: true,
        }
    }
}

#[inline(always)]
fn bit_set(map: &aya_ebpf::maps::Array<u64>, bit: u16) -> bool {
    match map.get(u32::from(bit >> 6)) {
        Some(word) => *word & (1u64 << (bit & 63)) != 0,
        None => false,
    }
}

/// This CPU's trie key slot, set to `address/prefix_len`.
#[inline(always)]
fn trie_key(address: &[u8; 16], prefix_len: u32) -> Option<&'static Key<[u8; 16]>> {
    let slot = LPM_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's slot; XDP runs do not nest on a CPU, and the
    // reference is dropped before the next call overwrites the slot.
    unsafe {
        (*slot).prefix_len = prefix_len;
        (*slot).data = *address;
        Some(&*slot)
    }
}

#[inline(always)]
fn full_key(address: &[u8; 16]) -> Option<&'static Key<[u8; 16]>> {
    trie_key(address, 128)
}

// Double-buffered maps are picked by a const parameter, never at run time:
// each instantiation below names one map, so the verifier inlines an array
// lookup and calls a hash map's lookup directly. A map chosen at run time
// goes through `bpf_map_lookup_elem`'s indirect call instead, a retpoline
// on kernels with Spectre v2 mitigations: about 15 ns a lookup here, which
// was most of the filter's cost.

/// The chain of the longest rule prefix holding `address` in `direction`.
#[inline(always)]
fn prefix_chain(buffer: u32, direction: u8, address: &[u8; 16]) -> Option<&'static RuleChain> {
    if buffer == 0 {
        prefix_chain_in::<0>(direction, address)
    } else {
        prefix_chain_in::<1>(direction, address)
    }
}

/// [`prefix_chain`] in buffer `BUFFER`.
///
/// Not inlined, and the probe loop's result a plain index: every way out of
/// the loop then reaches the chain fetch in one verifier state, so what
/// comes after (the other direction, the chain walk) is verified once
/// rather than once per loop exit.
#[inline(never)]
fn prefix_chain_in<const BUFFER: u32>(
    direction: u8,
    address: &[u8; 16],
) -> Option<&'static RuleChain> {
    let chain = longest_prefix::<BUFFER>(direction, address);
    if chain == NO_RULE {
        return None;
    }
    let chains = if BUFFER == 0 { &CHAINS_0 } else { &CHAINS_1 };
    chains.get(chain)
}

/// The chain index of the longest rule prefix holding `address`, or
/// `NO_RULE`: one hash probe per prefix length present in the address's
/// family, longest first, then the family's whole-space chain.
#[inline(always)]
fn longest_prefix<const BUFFER: u32>(direction: u8, address: &[u8; 16]) -> u32 {
    let (lengths, prefixes) = if BUFFER == 0 {
        (&PREFIX_LENGTHS_0, &PREFIXES_0)
    } else {
        (&PREFIX_LENGTHS_1, &PREFIXES_1)
    };
    let words = address_words(address);
    let Some(lengths) = lengths.get(lengths_slot(direction, words_family(words))) else {
        return NO_RULE;
    };
    for index in 0..MAX_PREFIX_LENGTHS {
        if index as u32 >= lengths.count {
            break;
        }
        let (Some(&length), Some(&masks)) = (lengths.lengths.get(index), lengths.masks.get(index))
        else {
            break;
        };
        let key = PrefixHashKey::from_words(words, masks, length, direction);
        // SAFETY: a lookup by a key on our stack; the value is a plain u32.
        if let Some(chain) = unsafe { prefixes.get(&key) } {
            return *chain;
        }
    }
    lengths.any_chain()
}

/// Rule `index` of buffer `BUFFER`.
#[inline(never)]
fn rule_in<const BUFFER: u32>(index: u32) -> Option<&'static Rule> {
    let rules = if BUFFER == 0 { &RULES_0 } else { &RULES_1 };
    rules.get(index)
}

/// The cells of `BUCKET_BOUNDS`.
struct KernelBounds;

impl BoundCells for KernelBounds {
    #[inline(always)]
    fn cell(&mut self, index: u32) -> Option<&mut BucketBound> {
        // SAFETY: a live array slot. Concurrent CPUs may race on a cell;
        // the bound is then approximate (bounds.rs), never unsafe.
        BUCKET_BOUNDS
            .get_ptr_mut(index)
            .map(|cell| unsafe { &mut *cell })
    }
}

/// Charges a frame to the bucket of `key` in one bucket table (a const
/// parameter, for the reason above), starting it from its bounds when the
/// table holds none.
#[inline(never)]
fn take_tokens_in<const DESTINATION: bool>(key: &BucketKey, charge: &Charge) -> bool {
    // The limit where the map keeps it: see `filter::check_limit`.
    let Some(limit) = RATE_LIMITS.get(charge.slot) else {
        return true;
    };
    let map = if DESTINATION {
        &DST_BUCKETS
    } else {
        &SRC_BUCKETS
    };
    // Slot 0 of a per-CPU array always exists; the check is the verifier's.
    let Some(scratch) = BUCKET_SCRATCH.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: live map values: this CPU's scratch slot, and the table's
    // bucket. Concurrent CPUs may race on one bucket; the limit is then
    // approximate, never unsafe.
    let (scratch, bucket) = unsafe {
        (
            &mut *scratch,
            map.get_ptr_mut(key).map(|bucket| &mut *bucket),
        )
    };
    let charged = charge_bucket(&mut KernelBounds, bucket, scratch, limit, charge);
    if charged.started {
        let _ = map.insert(key, scratch, 0);
    }
    charged.allowed
}

impl Tables for MapTables {
    #[inline(always)]
    fn interface_config(&self) -> InterfaceConfig {
        match CONFIG.get(0) {
            Some(config) => *config,
            None => InterfaceConfig::default(),
        }
    }

    #[inline(always)]
    fn count(&mut self, action: Action, reason: Reason, bytes: u64) {
        if let Some(counter) = COUNTERS.get_ptr_mut(counter_index(action, reason)) {
            // SAFETY: a per-CPU slot is only touched by this CPU, and XDP
            // programs do not preempt one another on a CPU.
            unsafe {
                (*counter).packets += 1;
                (*counter).bytes += bytes;
            }
        }
        // The single exit of every program: the frame's record, if it was
        // chosen, goes out with the verdict.
        if self.maybe_chosen {
            crate::observe::finish(action, reason, self.matched);
        }
    }

    #[inline(always)]
    fn ifindex(&self) -> u32 {
        // SAFETY: ctx is the kernel's xdp_md for this run.
        unsafe { (*self.ctx).ingress_ifindex }
    }

    #[inline(always)]
    fn now_ns(&self) -> u64 {
        // CLOCK_MONOTONIC_COARSE: the same time base user space writes
        // expiries in, at tick resolution, for a fraction of the cost of
        // bpf_ktime_get_ns (a clock-source read, dear in a VM).
        // SAFETY: a helper with no arguments. Kernel 5.11 or later.
        unsafe { bpf_ktime_get_coarse_ns() }
    }

    #[inline(always)]
    fn filter_config(&self) -> FilterConfig {
        match FILTER_CONFIG.get(0) {
            Some(config) => *config,
            None => FilterConfig::default(),
        }
    }

    #[inline(always)]
    fn source_chain(&self, buffer: u32, address: &[u8; 16]) -> Option<&RuleChain> {
        prefix_chain(buffer, DIRECTION_SOURCE, address)
    }

    #[inline(always)]
    fn destination_chain(&self, buffer: u32, address: &[u8; 16]) -> Option<&RuleChain> {
        prefix_chain(buffer, DIRECTION_DESTINATION, address)
    }

    #[inline(always)]
    fn rule(&self, buffer: u32, index: u32) -> Option<&Rule> {
        if buffer == 0 {
            rule_in::<0>(index)
        } else {
            rule_in::<1>(index)
        }
    }

    #[inline(always)]
    fn count_rule_hit(&mut self, id: u32) {
        self.matched =
            xdpath_core::observe::MATCHED_RULE | (id & xdpath_core::observe::MATCHED_ID_MASK);
        if let Some(hits) = RULE_HITS.get_ptr_mut(id) {
            // SAFETY: a per-CPU slot, touched only by this CPU.
            unsafe { *hits += 1 };
        }
    }

    #[inline(always)]
    fn blocklist_entry(&self, address: &[u8; 16]) -> Option<BlockEntry> {
        BLOCKLIST.get(full_key(address)?).copied()
    }

    #[inline(always)]
    fn remove_blocklist_entry(&mut self, key: PrefixKey) {
        if let Some(key) = trie_key(&key.address, key.prefix_len) {
            let _ = BLOCKLIST.remove(key);
        }
    }

    #[inline(always)]
    fn rate_limit(&self, index: u32) -> Option<&RateLimit> {
        RATE_LIMITS.get(index)
    }

    #[inline(always)]
    fn take_tokens(&mut self, table: BucketTable, key: &BucketKey, charge: &Charge) -> bool {
        match table {
            BucketTable::Source => take_tokens_in::<false>(key, charge),
            BucketTable::Destination => take_tokens_in::<true>(key, charge),
        }
    }

    #[inline(always)]
    fn count_limit_drop(&mut self, index: u32) {
        if let Some(drops) = LIMIT_DROPS.get_ptr_mut(index) {
            // SAFETY: a per-CPU slot, touched only by this CPU.
            unsafe { *drops += 1 };
        }
    }

    #[inline(always)]
    fn is_reflection_port(&self, port: u16) -> bool {
        bit_set(&REFLECTION_PORTS, port)
    }

    #[inline(always)]
    fn expects_reflection(&self, destination: &[u8; 16]) -> bool {
        full_key(destination).is_some_and(|key| REFLECTION_OK.get(key).is_some())
    }

    #[inline(always)]
    fn is_management_source(&self, source: &[u8; 16]) -> bool {
        full_key(source).is_some_and(|key| MGMT_SOURCES.get(key).is_some())
    }

    #[inline(always)]
    fn is_management_port(&self, port: u16) -> bool {
        bit_set(&MGMT_PORTS, port)
    }
}

/// Records a flow in one connection table, named by a const parameter
/// and not inlined: the two tables' inserts, one chosen by the flow's
/// flags, would otherwise merge into one call on a map chosen at run time.
#[inline(never)]
fn insert_connection_in<const NEW: bool>(key: &ConnectionKey, connection: &Connection) {
    let map = if NEW { &NEW_CONNECTIONS } else { &CONNECTIONS };
    let _ = map.insert(key, connection, 0);
}

impl LbTables for MapTables {
    #[inline(always)]
    fn lb_config(&self) -> LbConfig {
        match LB_CONFIG.get(0) {
            Some(config) => *config,
            None => LbConfig::default(),
        }
    }

    #[inline(always)]
    fn vip(&self, key: &VipKey) -> Option<Vip> {
        // SAFETY: a lookup by a key on our stack; the value is plain data.
        unsafe { VIPS.get(key) }.copied()
    }

    #[inline(always)]
    fn ring_slot(&self, ring: u32, slot: u32) -> u32 {
        if ring >= MAX_RINGS || slot >= MAX_RING_SIZE {
            return NO_BACKEND;
        }
        match MAGLEV_RINGS.get(ring * MAX_RING_SIZE + slot) {
            Some(backend) => *backend,
            None => NO_BACKEND,
        }
    }

    #[inline(always)]
    fn backend(&self, index: u32) -> Option<Backend> {
        BACKENDS.get(index).copied()
    }

    #[inline(always)]
    fn connection(&mut self, table: ConnectionTable, key: &ConnectionKey) -> Option<Connection> {
        // SAFETY: as for `vip`. Two call sites, each naming its map: the
        // lookups stay inlined (see the note on maps picked at run time).
        match table {
            ConnectionTable::Established => unsafe { CONNECTIONS.get(key) }.copied(),
            ConnectionTable::New => unsafe { NEW_CONNECTIONS.get(key) }.copied(),
        }
    }

    #[inline(always)]
    fn insert_connection(
        &mut self,
        table: ConnectionTable,
        key: &ConnectionKey,
        connection: &Connection,
    ) {
        match table {
            ConnectionTable::Established => insert_connection_in::<false>(key, connection),
            ConnectionTable::New => insert_connection_in::<true>(key, connection),
        }
    }

    #[inline(always)]
    fn count_lb(&mut self, vip: u32, backend: u32, bytes: u64, new_flow: bool) {
        self.matched =
            xdpath_core::observe::MATCHED_VIP | (vip & xdpath_core::observe::MATCHED_ID_MASK);
        for counter in [
            VIP_STATS.get_ptr_mut(vip),
            BACKEND_STATS.get_ptr_mut(backend),
        ]
        .into_iter()
        .flatten()
        {
            // SAFETY: a per-CPU slot, touched only by this CPU.
            unsafe {
                (*counter).packets += 1;
                (*counter).bytes += bytes;
                (*counter).new_flows += u64::from(new_flow);
            }
        }
    }

    #[inline(always)]
    fn count_connection(&mut self, slot: u32) {
        if let Some(count) = CONN_STATS.get_ptr_mut(slot) {
            // SAFETY: a per-CPU slot, touched only by this CPU.
            unsafe { *count += 1 };
        }
    }

    #[inline(always)]
    fn next_hop(&mut self, address: &[u8; 16], ipv4: bool) -> NextHop {
        fib_next_hop(self.ctx, address, ipv4)
    }

    #[inline(always)]
    fn decap_config(&self) -> DecapConfig {
        let config = self.interface_config();
        DecapConfig {
            flags: if config.decap != 0 { DECAP_ENABLED } else { 0 },
            gue_port: config.decap_gue_port,
            reserved: 0,
        }
    }

    #[inline(always)]
    fn is_local_address(&self, address: &[u8; 16]) -> bool {
        // SAFETY: as for `vip`.
        unsafe { LOCAL_ADDRESSES.get(address) }.is_some()
    }
}

/// `AF_INET`, `AF_INET6`.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// The kernel's route and neighbour towards a backend
/// (`bpf_fib_lookup`, kernel 4.18): out of the ingress interface with
/// XDP_TX, or redirected to another. Not inlined: its 64-byte argument
/// block is its own stack frame.
#[inline(never)]
fn fib_next_hop(ctx: *mut xdp_md, address: &[u8; 16], ipv4: bool) -> NextHop {
    // SAFETY: all-zero is a valid bpf_fib_lookup.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    // SAFETY: ctx is the kernel's xdp_md for this run.
    let ingress = unsafe { (*ctx).ingress_ifindex };
    params.ifindex = ingress;
    // Two aligned words (the address lives in an 8-aligned struct): byte
    // picks let LLVM merge them into unaligned loads the verifier refuses.
    let words = address.as_ptr().cast::<u64>();
    // SAFETY: 16 readable bytes, 8-aligned (the address is the first field
    // of an 8-aligned struct); volatile keeps LLVM from re-splitting them.
    let (high, low) = unsafe {
        (
            core::ptr::read_volatile(words),
            core::ptr::read_volatile(words.add(1)),
        )
    };
    let [h0, h1, h2, h3, h4, h5, h6, h7] = high.to_ne_bytes();
    let [l0, l1, l2, l3, l4, l5, l6, l7] = low.to_ne_bytes();
    if ipv4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = 0;
        params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes([l4, l5, l6, l7]);
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_4.ipv6_dst = [
            u32::from_ne_bytes([h0, h1, h2, h3]),
            u32::from_ne_bytes([h4, h5, h6, h7]),
            u32::from_ne_bytes([l0, l1, l2, l3]),
            u32::from_ne_bytes([l4, l5, l6, l7]),
        ];
    }
    // SAFETY: params is a bpf_fib_lookup on our stack, its size passed.
    let result = unsafe {
        bpf_fib_lookup(
            ctx.cast(),
            &mut params,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    if result != 0 {
        return NextHop::Unreachable;
    }
    let destination = mac_of(&params.dmac);
    let source = mac_of(&params.smac);
    if params.ifindex == ingress {
        NextHop::Tx {
            destination,
            source,
        }
    } else {
        NextHop::Redirect {
            ifindex: params.ifindex,
            destination,
            source,
        }
    }
}

/// A MAC from the FIB's answer, byte by byte: the array sits at an odd
/// stack offset, where a wider load is refused.
#[inline(always)]
fn mac_of(bytes: &[u8; 6]) -> u64 {
    let mut value = 0u64;
    for byte in bytes {
        // SAFETY: a read of our own stack; volatile keeps it one byte wide.
        value = value << 8 | u64::from(unsafe { core::ptr::read_volatile(byte) });
    }
    value
}

impl xdpath_core::forward::ForwardTables for MapTables {
    #[inline(always)]
    fn forwarding_enabled(&self) -> bool {
        self.interface_config().forward != 0
    }

    #[inline(always)]
    fn route(&mut self, key: &xdpath_core::FlowKey, frame_len: u32) -> Route {
        fib_route(self.ctx, key, frame_len)
    }

    #[inline(always)]
    fn is_forward_port(&self, ifindex: u32) -> bool {
        FORWARD_PORTS.get_ifindex(ifindex).is_some()
    }
}

/// `bpf_fib_lookup` answers (include/uapi/linux/bpf.h).
const FIB_SUCCESS: i64 = 0;
const FIB_NO_NEIGHBOUR: i64 = 7;

/// The kernel's route for a flow to forward (`bpf_fib_lookup`, kernel
/// 4.18), checked against the egress MTU with the frame's IP length. Not
/// inlined: its 64-byte argument block is its own stack frame.
#[inline(never)]
fn fib_route(ctx: *mut xdp_md, key: &xdpath_core::FlowKey, frame_len: u32) -> Route {
    // SAFETY: all-zero is a valid bpf_fib_lookup.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    // SAFETY: ctx is the kernel's xdp_md for this run.
    params.ifindex = unsafe { (*ctx).ingress_ifindex };
    params.l4_protocol = key.protocol;
    params.sport = key.source_port.to_be();
    params.dport = key.destination_port.to_be();
    // Host order, unlike the ports: the kernel compares it with the MTU.
    params.__bindgen_anon_1.tot_len = frame_len.saturating_sub(14) as u16;
    let words = |address: &[u8; 16]| {
        let words = address.as_ptr().cast::<u64>();
        // SAFETY: 16 readable bytes, 8-aligned (both addresses sit at
        // 8-aligned offsets of the 8-aligned key); volatile keeps LLVM from
        // splitting them into unaligned pieces.
        unsafe {
            (
                core::ptr::read_volatile(words).to_ne_bytes(),
                core::ptr::read_volatile(words.add(1)).to_ne_bytes(),
            )
        }
    };
    let ([s0, s1, s2, s3, s4, s5, s6, s7], [s8, s9, s10, s11, s12, s13, s14, s15]) =
        words(&key.source);
    let ([d0, d1, d2, d3, d4, d5, d6, d7], [d8, d9, d10, d11, d12, d13, d14, d15]) =
        words(&key.destination);
    if key.ip_version == 4 {
        params.family = AF_INET;
        params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes([s12, s13, s14, s15]);
        params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes([d12, d13, d14, d15]);
    } else {
        params.family = AF_INET6;
        params.__bindgen_anon_3.ipv6_src = [
            u32::from_ne_bytes([s0, s1, s2, s3]),
            u32::from_ne_bytes([s4, s5, s6, s7]),
            u32::from_ne_bytes([s8, s9, s10, s11]),
            u32::from_ne_bytes([s12, s13, s14, s15]),
        ];
        params.__bindgen_anon_4.ipv6_dst = [
            u32::from_ne_bytes([d0, d1, d2, d3]),
            u32::from_ne_bytes([d4, d5, d6, d7]),
            u32::from_ne_bytes([d8, d9, d10, d11]),
            u32::from_ne_bytes([d12, d13, d14, d15]),
        ];
    }
    // SAFETY: params is a bpf_fib_lookup on our stack, its size passed.
    let result = unsafe {
        bpf_fib_lookup(
            ctx.cast(),
            &mut params,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    match result {
        FIB_SUCCESS => Route::Forward {
            ifindex: params.ifindex,
            destination_mac: mac_of(&params.dmac),
            source_mac: mac_of(&params.smac),
        },
        FIB_NO_NEIGHBOUR => Route::NoNeighbour,
        _ => Route::NotForwarded,
    }
}
