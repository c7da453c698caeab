//! [`Tables`] over the maps: the filter's lookups and rate limits here,
//! the balancer's ([`LbTables`](xdpath_core::lb::LbTables)) in `lb`, the
//! kernel's FIB (next hops, forwarding routes) in `fib`.

mod fib;
mod lb;

use aya_ebpf::{helpers::bpf_ktime_get_coarse_ns, maps::lpm_trie::Key};
use xdpath_core::filter::{
    address_words, charge_bucket, lengths_slot, words_family, AddressCharge, AddressLimitKey,
    BlockEntry, BoundCells, BucketBound, BucketKey, BucketTable, Charge, FilterConfig,
    PrefixHashKey, PrefixKey, RateLimit, Rule, RuleChain, TunnelPrefixKey, DIRECTION_DESTINATION,
    DIRECTION_SOURCE, MAX_PREFIX_LENGTHS, NO_RULE, VNI_KEY_BITS,
};
use xdpath_core::{stats::counter_index, Action, InterfaceConfig, Reason, Tables};

use crate::maps::*;

/// Adds one to a counter every CPU shares, with the BPF atomic add (a
/// plain increment would lose concurrent drops). Rust's atomics are not
/// offered on the BPF target, so the instruction is written out.
#[inline(always)]
fn atomic_increment(counter: &mut u64) {
    let one: u64 = 1;
    // SAFETY: `counter` is an aligned u64 of a live map value; the
    // instruction writes only it.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({0} + 0) += {1}",
            in(reg) counter as *mut u64,
            in(reg) one,
        );
    }
}

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

/// Copies an address into a map value word by word. `data = *address`
/// copied it byte by byte (32 instructions a lookup: the trie key's data
/// sits at offset 4, and the compiler does not know the source's
/// alignment); 4-aligned words in a map value are what the verifier takes.
#[inline(always)]
fn copy_address(to: *mut [u8; 16], address: &[u8; 16]) {
    let from = address.as_ptr().cast::<u32>();
    let to = to.cast::<u32>();
    // SAFETY: 16 bytes readable at `from` and writable at `to`; unaligned
    // accesses (one 32-bit access each in this build).
    unsafe {
        for word in 0..4 {
            core::ptr::write_unaligned(to.add(word), core::ptr::read_unaligned(from.add(word)));
        }
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
        copy_address(core::ptr::addr_of_mut!((*slot).data), address);
        Some(&*slot)
    }
}

#[inline(always)]
fn full_key(address: &[u8; 16]) -> Option<&'static Key<[u8; 16]>> {
    trie_key(address, 128)
}

/// This CPU's tunnel trie key slot, set to `vni` then `address` with
/// `prefix_len` bits (the VNI's 32 counted).
#[inline(always)]
fn tunnel_trie_key(
    vni: [u8; 4],
    address: &[u8; 16],
    prefix_len: u32,
) -> Option<&'static Key<[u8; 20]>> {
    let slot = TUNNEL_LPM_SCRATCH.get_ptr_mut(0)?;
    let data = TunnelPrefixKey {
        prefix_len,
        vni,
        address: *address,
    }
    .data();
    // SAFETY: as in `trie_key`.
    unsafe {
        (*slot).prefix_len = prefix_len;
        (*slot).data = data;
        Some(&*slot)
    }
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
    fn tunnel_blocklist_entry(&self, vni: u32, address: &[u8; 16]) -> Option<BlockEntry> {
        let key = tunnel_trie_key(vni.to_be_bytes(), address, VNI_KEY_BITS + 128)?;
        TUNNEL_BLOCKLIST.get(key).copied()
    }

    #[inline(always)]
    fn remove_tunnel_blocklist_entry(&mut self, key: TunnelPrefixKey) {
        if let Some(key) = tunnel_trie_key(key.vni, &key.address, key.prefix_len) {
            let _ = TUNNEL_BLOCKLIST.remove(key);
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
    fn hold_limit_verdict(&mut self, verdict: u32) {
        crate::limits::hold_verdict(verdict);
    }

    #[inline(always)]
    fn take_limit_verdict(&mut self) -> u32 {
        crate::limits::take_verdict()
    }

    #[inline(always)]
    fn charge_address_limit(
        &mut self,
        key: &AddressLimitKey,
        bytes: u64,
        now_ns: u64,
    ) -> AddressCharge {
        let Some(entry) = ADDRESS_LIMITS.get_ptr_mut(key) else {
            return AddressCharge::Unlimited;
        };
        // SAFETY: a live map value; CPUs race on the bucket as they do on
        // the bucket tables' (a frame or two more may pass at once).
        let entry = unsafe { &mut *entry };
        if entry.charge(bytes, now_ns) {
            return AddressCharge::Fits;
        }
        atomic_increment(&mut entry.drops);
        AddressCharge::Over {
            monitor: entry.monitored(),
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
