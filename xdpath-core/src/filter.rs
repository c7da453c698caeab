//! The filter stage: management guard → rules (LPM on source, then on
//! destination) → blocklist → stateless guards (fragments, TCP flags,
//! amplification) → rate limits. It returns a drop (with a reason, and
//! whether it is only monitored) or "continue".
//!
//! The stateless guards run before the rate limits (DESIGN.md lists them
//! after): a frame a guard drops anyway should not spend a legitimate
//! source's tokens.
//!
//! Everything it reads comes through [`crate::Tables`]; the shared types
//! below are `#[repr(C)]` map keys and values.
//!
//! `rules`, `blocked` and `rate_limits` are `#[inline(never)]`: in the eBPF
//! build each becomes a BPF subprogram whose scratch values die at its
//! return, so the verifier can prune the states after it. Fully inlined,
//! the loops over chains and limits made the verifier walk over its
//! million-instruction limit.

use crate::parse::FlowKey;
use crate::stats::Reason;
use crate::wire::protocol;
use crate::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN, FLAG_URG};
use crate::Tables;

/// Rules per buffer (the rule set is double-buffered for atomic swaps).
pub const MAX_RULES: u32 = 65_536;
/// Distinct rule chains per buffer.
pub const MAX_CHAINS: u32 = 65_536;
/// Prefixes per buffer of each rule trie (source and destination).
pub const MAX_PREFIXES: u32 = 1_048_576;
/// Rules one prefix can lead to: its own, then those of the prefixes that
/// cover it, most specific first.
pub const MAX_CHAIN: usize = 8;
/// End of a chain.
pub const NO_RULE: u32 = u32::MAX;
/// Blocklist entries.
pub const MAX_BLOCKLIST: u32 = 1_048_576;
/// Configured rate limits.
pub const MAX_RATE_LIMITS: u32 = 16;
/// Management prefixes.
pub const MAX_MANAGEMENT_PREFIXES: u32 = 1024;

/// `FilterConfig::flags`: source-prefix rules are installed.
pub const FILTER_SOURCE_RULES: u32 = 1 << 0;
/// Destination-prefix rules are installed.
pub const FILTER_DESTINATION_RULES: u32 = 1 << 1;
/// The default action is drop.
pub const FILTER_DEFAULT_DROP: u32 = 1 << 2;
/// The blocklist has entries.
pub const FILTER_BLOCKLIST: u32 = 1 << 3;
/// Management prefixes are configured.
pub const FILTER_MANAGEMENT_SOURCES: u32 = 1 << 4;
/// Management ports are configured.
pub const FILTER_MANAGEMENT_PORTS: u32 = 1 << 5;
/// The TCP flag-anomaly guard is on.
pub const FILTER_TCP_FLAGS: u32 = 1 << 6;
/// The amplification guard is on.
pub const FILTER_AMPLIFICATION: u32 = 1 << 7;
/// SYN-cookie mode is on (kernel only).
pub const FILTER_SYN_COOKIES: u32 = 1 << 8;
/// The default action (drop) is only monitored.
pub const FILTER_DEFAULT_MONITOR: u32 = 1 << 9;

/// The global filter configuration: one entry of the `FILTER_CONFIG` array.
/// All zero means no filtering: the stage then costs one array read.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// `FILTER_*` bits.
    pub flags: u32,
    /// Which rule buffer is live, 0 or 1.
    pub active: u32,
    /// Configured rate limits, the first `rate_limits` of `RATE_LIMITS`.
    pub rate_limits: u32,
    /// A [`FragmentPolicy`] for IPv4.
    pub fragments_v4: u8,
    /// A [`FragmentPolicy`] for IPv6.
    pub fragments_v6: u8,
    /// Reserved, zero.
    pub reserved: [u8; 2],
}

/// What to do with IP fragments.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FragmentPolicy {
    /// Pass them all (default).
    #[default]
    Pass = 0,
    /// Drop the fragments that carry no transport header.
    DropLater = 1,
    /// Drop every fragment.
    DropAll = 2,
}

/// A prefix key of the rule, blocklist and management tries: the layout of
/// the kernel's `struct bpf_lpm_trie_key` with a 16-byte address. IPv4 is
/// IPv4-mapped (`::ffff:a.b.c.d/96+len`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrefixKey {
    /// Prefix length in bits, 0 to 128.
    pub prefix_len: u32,
    /// The address, network byte order.
    pub address: [u8; 16],
}

/// The most distinct prefix lengths the rule prefixes of one direction may
/// use. A lookup probes one hash table entry per length present, longest
/// first (so a typical feed of /24s and /32s costs two probes, where the
/// kernel's LPM trie walks some twenty nodes for 100,000 prefixes).
pub const MAX_PREFIX_LENGTHS: usize = 32;

/// [`PrefixHashKey::direction`] of source prefixes.
pub const DIRECTION_SOURCE: u8 = 0;
/// [`PrefixHashKey::direction`] of destination prefixes.
pub const DIRECTION_DESTINATION: u8 = 1;

/// The key of the rule-prefix hash tables: a masked address, its length and
/// its direction. Aligned to 8 (24 bytes): the eBPF build keeps it on the
/// stack.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PrefixHashKey {
    /// The address masked to `prefix_len` (IPv4-mapped for IPv4).
    pub address: [u8; 16],
    /// Prefix length in bits, 0 to 128.
    pub prefix_len: u8,
    /// `DIRECTION_SOURCE` or `DIRECTION_DESTINATION`.
    pub direction: u8,
    /// Reserved, zero.
    pub reserved: [u8; 6],
}

impl PrefixHashKey {
    /// The key of `address/prefix_len` (masked here) in `direction`.
    #[inline(always)]
    pub fn new(address: &[u8; 16], prefix_len: u8, direction: u8) -> Self {
        Self {
            address: mask(address, prefix_len),
            prefix_len,
            direction,
            reserved: [0; 6],
        }
    }

    /// The same key from the address as memory words and the length's
    /// precomputed mask words (see [`PrefixLengths::masks`]): no branches,
    /// which keeps the eBPF verifier's walk over the probe loop short.
    #[inline(always)]
    pub fn from_words(address: [u64; 2], masks: [u64; 2], prefix_len: u8, direction: u8) -> Self {
        let tail = u64::from_ne_bytes([prefix_len, direction, 0, 0, 0, 0, 0, 0]);
        let words = [address[0] & masks[0], address[1] & masks[1], tail];
        // SAFETY: PrefixHashKey is 24 bytes of plain data, aligned to 8: the
        // same layout as three words (address, then length, direction and
        // six zero bytes).
        unsafe { core::mem::transmute::<[u64; 3], Self>(words) }
    }
}

/// The memory words of an address.
#[inline(always)]
pub fn address_words(address: &[u8; 16]) -> [u64; 2] {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = *address;
    [
        u64::from_ne_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    ]
}

/// The prefix lengths present in one direction, longest first, with their
/// address masks as memory words.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixLengths {
    /// How many of `lengths` are used.
    pub count: u32,
    /// Lengths in bits, descending.
    pub lengths: [u8; MAX_PREFIX_LENGTHS],
    /// Reserved, zero.
    pub reserved: u32,
    /// For each length, its mask as the two memory words of an address.
    pub masks: [[u64; 2]; MAX_PREFIX_LENGTHS],
}

impl Default for PrefixLengths {
    fn default() -> Self {
        Self {
            count: 0,
            lengths: [0; MAX_PREFIX_LENGTHS],
            reserved: 0,
            masks: [[0; 2]; MAX_PREFIX_LENGTHS],
        }
    }
}

impl PrefixLengths {
    /// The lengths given (longest first), with their masks.
    pub fn from_descending(lengths: &[u8]) -> Self {
        let mut out = Self::default();
        for (index, length) in lengths.iter().take(MAX_PREFIX_LENGTHS).enumerate() {
            if let (Some(slot), Some(mask_slot)) =
                (out.lengths.get_mut(index), out.masks.get_mut(index))
            {
                *slot = *length;
                *mask_slot = address_words(&mask(&[0xff; 16], *length));
            }
            out.count += 1;
        }
        out
    }
}

/// A rule's action.
pub const RULE_ALLOW: u8 = 0;
/// A rule's action.
pub const RULE_DENY: u8 = 1;

/// `Rule::flags`: the rule only counts what it would drop.
pub const RULE_MONITOR: u8 = 1 << 0;
/// The rule narrows by destination port range.
pub const RULE_PORTS: u8 = 1 << 1;
/// The rule narrows by TCP flags.
pub const RULE_TCP_FLAGS: u8 = 1 << 2;
/// The rule narrows by a destination prefix (source rules only).
pub const RULE_DESTINATION: u8 = 1 << 3;

/// One rule: what it matches beyond its prefix, and its action.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// The rule's id, as the CLI shows it; hits are counted under it.
    pub id: u32,
    /// Only on this interface index; 0: every interface.
    pub ifindex: u32,
    /// Lowest destination port (with `RULE_PORTS`).
    pub port_low: u16,
    /// Highest destination port (with `RULE_PORTS`).
    pub port_high: u16,
    /// Destination prefix (with `RULE_DESTINATION`), masked.
    pub destination: [u8; 16],
    /// Its length in bits.
    pub destination_len: u8,
    /// IP protocol; 0: any.
    pub protocol: u8,
    /// `RULE_ALLOW` or `RULE_DENY`.
    pub action: u8,
    /// `RULE_*` bits.
    pub flags: u8,
    /// TCP flags that must be set or clear (with `RULE_TCP_FLAGS`).
    pub tcp_flags_mask: u8,
    /// Their required values.
    pub tcp_flags_value: u8,
    /// Reserved, zero.
    pub reserved: [u8; 2],
}

impl Rule {
    /// Whether the rule's narrowing matches the flow.
    #[inline(always)]
    pub fn matches(&self, key: &FlowKey, ifindex: u32) -> bool {
        if self.ifindex != 0 && self.ifindex != ifindex {
            return false;
        }
        if self.protocol != 0 && self.protocol != key.protocol {
            return false;
        }
        if self.flags & RULE_PORTS != 0 {
            let ported = key.protocol == protocol::TCP || key.protocol == protocol::UDP;
            if !ported
                || key.destination_port < self.port_low
                || key.destination_port > self.port_high
            {
                return false;
            }
        }
        if self.flags & RULE_TCP_FLAGS != 0
            && (key.protocol != protocol::TCP
                || key.tcp_flags & self.tcp_flags_mask != self.tcp_flags_value)
        {
            return false;
        }
        if self.flags & RULE_DESTINATION != 0
            && !prefix_contains(&self.destination, self.destination_len, &key.destination)
        {
            return false;
        }
        true
    }
}

/// The rules one prefix leads to, in order; `NO_RULE` ends it early.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleChain {
    /// Indices into the rule array.
    pub rules: [u32; MAX_CHAIN],
}

impl Default for RuleChain {
    fn default() -> Self {
        Self {
            rules: [NO_RULE; MAX_CHAIN],
        }
    }
}

/// A blocklist entry (value of the `BLOCKLIST` trie).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockEntry {
    /// When it stops matching, CLOCK_MONOTONIC ns (`bpf_ktime_get_ns`); 0: never.
    pub expires_at_ns: u64,
    /// The entry's own prefix length, so the data path can delete it once
    /// expired (a trie lookup does not say which prefix matched).
    pub prefix_len: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// `RateLimit::flags`: key by destination, not source.
pub const LIMIT_DESTINATION: u8 = 1 << 0;
/// Only TCP SYNs (without ACK) count.
pub const LIMIT_SYN_ONLY: u8 = 1 << 1;
/// Only count what would be dropped.
pub const LIMIT_MONITOR: u8 = 1 << 2;

/// A token-bucket limit (one entry of `RATE_LIMITS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Packets per second; 0: no packet limit.
    pub packets_per_second: u64,
    /// Bucket size in packets.
    pub burst_packets: u64,
    /// Bytes per second; 0: no byte limit.
    pub bytes_per_second: u64,
    /// Bucket size in bytes.
    pub burst_bytes: u64,
    /// Only addresses inside this prefix are limited (masked).
    pub scope: [u8; 16],
    /// Its length (0: everything).
    pub scope_len: u8,
    /// Aggregate IPv4 addresses to this prefix length (e.g. 24), 0 to 32.
    pub aggregate_v4: u8,
    /// Aggregate IPv6 addresses to this prefix length (e.g. 64), 0 to 128.
    pub aggregate_v6: u8,
    /// IP protocol; 0: any.
    pub protocol: u8,
    /// `LIMIT_*` bits.
    pub flags: u8,
    /// Reserved, zero.
    pub reserved: [u8; 3],
}

/// The key of a token bucket: the aggregated address and which limit.
/// Aligned to 8 (24 bytes): the eBPF build keeps it on the stack, where
/// the verifier refuses unaligned 64-bit accesses.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BucketKey {
    /// The address masked to the limit's aggregation.
    pub address: [u8; 16],
    /// Index of the limit.
    pub limit: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// A token bucket. Tokens are kept in billionths so that refilling needs no
/// division: `elapsed_ns × rate` is exactly the tokens earned × 10⁹.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Packet tokens × 10⁹.
    pub packet_tokens: u64,
    /// Byte tokens × 10⁹.
    pub byte_tokens: u64,
    /// When the bucket was last refilled, CLOCK_MONOTONIC ns.
    pub last_ns: u64,
}

const NANOS: u64 = 1_000_000_000;
/// Refill at most this much idle time at once, so `elapsed × rate` cannot
/// overflow (4 × 10⁹ ns × 4 × 10⁹ /s < 2⁶⁴). Plain multiplications with
/// capped operands: the BPF target has no 128-bit multiply, which
/// `saturating_mul` would need.
const MAX_REFILL_NS: u64 = 4 * NANOS;
/// The largest rate, per second.
const MAX_RATE: u64 = 4 * NANOS;
/// The largest burst (packets or bytes): × 10⁹ still fits in 64 bits.
pub const MAX_BURST: u64 = 16 * NANOS;
/// Frames are charged at most this many bytes.
const MAX_FRAME: u64 = 1 << 20;

#[inline(always)]
const fn at_most(value: u64, cap: u64) -> u64 {
    if value > cap {
        cap
    } else {
        value
    }
}

impl Bucket {
    /// A full bucket for `limit`.
    #[inline(always)]
    pub fn full(limit: &RateLimit, now_ns: u64) -> Self {
        Self {
            packet_tokens: at_most(limit.burst_packets, MAX_BURST) * NANOS,
            byte_tokens: at_most(limit.burst_bytes, MAX_BURST) * NANOS,
            last_ns: now_ns,
        }
    }

    /// Refills for the time since the last call and takes one packet of
    /// `bytes`; false (and nothing taken) when either bucket is short.
    ///
    /// Not inlined: each capping step is a branch, and inlined the eBPF
    /// verifier would walk every combination of them at every limit.
    #[inline(never)]
    pub fn take(&mut self, limit: &RateLimit, bytes: u64, now_ns: u64) -> bool {
        let elapsed = at_most(now_ns.saturating_sub(self.last_ns), MAX_REFILL_NS);
        self.last_ns = now_ns;
        let packet_cap = at_most(limit.burst_packets, MAX_BURST) * NANOS;
        let byte_cap = at_most(limit.burst_bytes, MAX_BURST) * NANOS;
        let packets = self
            .packet_tokens
            .saturating_add(elapsed * at_most(limit.packets_per_second, MAX_RATE));
        self.packet_tokens = at_most(packets, packet_cap);
        let bytes_now = self
            .byte_tokens
            .saturating_add(elapsed * at_most(limit.bytes_per_second, MAX_RATE));
        self.byte_tokens = at_most(bytes_now, byte_cap);
        let packet_cost = NANOS;
        let byte_cost = at_most(bytes, MAX_FRAME) * NANOS;
        let packets_ok = limit.packets_per_second == 0 || self.packet_tokens >= packet_cost;
        let bytes_ok = limit.bytes_per_second == 0 || self.byte_tokens >= byte_cost;
        if !(packets_ok && bytes_ok) {
            return false;
        }
        if limit.packets_per_second != 0 {
            self.packet_tokens -= packet_cost;
        }
        if limit.bytes_per_second != 0 {
            self.byte_tokens -= byte_cost;
        }
        true
    }
}

/// Which bucket table a limit uses: sources and destinations are kept apart
/// so that a flood of spoofed sources cannot evict the few destination
/// buckets that protect a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketTable {
    /// Per-source buckets.
    Source,
    /// Per-destination buckets.
    Destination,
}

impl RateLimit {
    /// Whether the limit applies to the flow.
    #[inline(always)]
    pub fn applies(&self, key: &FlowKey) -> bool {
        if self.protocol != 0 && self.protocol != key.protocol {
            return false;
        }
        if self.flags & LIMIT_SYN_ONLY != 0
            && (key.protocol != protocol::TCP || key.tcp_flags & (FLAG_SYN | FLAG_ACK) != FLAG_SYN)
        {
            return false;
        }
        let address = if self.flags & LIMIT_DESTINATION != 0 {
            &key.destination
        } else {
            &key.source
        };
        prefix_contains(&self.scope, self.scope_len, address)
    }

    /// The bucket key of the flow under this limit.
    #[inline(always)]
    pub fn bucket_key(&self, index: u32, key: &FlowKey) -> BucketKey {
        let address = if self.flags & LIMIT_DESTINATION != 0 {
            key.destination
        } else {
            key.source
        };
        let length = if key.ip_version == 4 {
            96 + self.aggregate_v4
        } else {
            self.aggregate_v6
        };
        BucketKey {
            address: mask(&address, length),
            limit: index,
            reserved: 0,
        }
    }
}

/// The 128-bit address as two big-endian halves.
#[inline(always)]
fn halves(address: &[u8; 16]) -> (u64, u64) {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = *address;
    (
        u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    )
}

/// The masks of a prefix length over the two halves. Two 64-bit shifts
/// instead of a byte loop: byte by byte, the unrolled loop spills most of
/// the eBPF stack.
#[inline(always)]
fn half_masks(length: u8) -> (u64, u64) {
    let length = if length > 128 { 128 } else { length as u32 };
    let high = if length >= 64 {
        u64::MAX
    } else {
        !(u64::MAX.checked_shr(length).unwrap_or(0))
    };
    let low = if length <= 64 {
        0
    } else {
        !(u64::MAX.checked_shr(length - 64).unwrap_or(0))
    };
    (high, low)
}

/// `address` with all bits past `length` cleared.
#[inline(always)]
pub fn mask(address: &[u8; 16], length: u8) -> [u8; 16] {
    let (high, low) = halves(address);
    let (high_mask, low_mask) = half_masks(length);
    let [a0, a1, a2, a3, a4, a5, a6, a7] = (high & high_mask).to_be_bytes();
    let [b0, b1, b2, b3, b4, b5, b6, b7] = (low & low_mask).to_be_bytes();
    [
        a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7,
    ]
}

/// Whether `address` lies in `prefix/length` (`prefix` already masked).
#[inline(always)]
pub fn prefix_contains(prefix: &[u8; 16], length: u8, address: &[u8; 16]) -> bool {
    let (high, low) = halves(address);
    let (prefix_high, prefix_low) = halves(prefix);
    let (high_mask, low_mask) = half_masks(length);
    high & high_mask == prefix_high && low & low_mask == prefix_low
}

/// A drop the filter decided: the reason, and whether it is only
/// monitored (counted as a pass).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FilterDrop {
    /// Why.
    pub reason: Reason,
    /// True when a monitor flag turns the drop into a counted pass.
    pub monitor: bool,
}

/// Runs the filter stage on a parsed flow. `None` means continue.
#[inline(always)]
pub fn filter<T: Tables>(key: &FlowKey, frame_len: u64, tables: &mut T) -> Option<FilterDrop> {
    let config = tables.filter_config();
    if !crate::pipeline::filter_enabled(&config) {
        return None;
    }
    if config.flags & FILTER_MANAGEMENT_SOURCES != 0 && tables.is_management_source(&key.source) {
        return None;
    }
    if config.flags & FILTER_MANAGEMENT_PORTS != 0
        && (key.protocol == protocol::TCP || key.protocol == protocol::UDP)
        && tables.is_management_port(key.destination_port)
    {
        return None;
    }
    match rules(&config, key, tables) {
        RulesVerdict::Allow => return None,
        RulesVerdict::Deny(drop) => return Some(drop),
        RulesVerdict::NoMatch => {}
    }
    if config.flags & FILTER_DEFAULT_DROP != 0 {
        return Some(FilterDrop {
            reason: Reason::DefaultDeny,
            monitor: config.flags & FILTER_DEFAULT_MONITOR != 0,
        });
    }
    if config.flags & FILTER_BLOCKLIST != 0 && blocked(key, tables) {
        return Some(FilterDrop {
            reason: Reason::Blocklisted,
            monitor: false,
        });
    }
    if let Some(reason) = guards(&config, key, tables) {
        return Some(FilterDrop {
            reason,
            monitor: false,
        });
    }
    if config.rate_limits != 0 {
        return rate_limits(&config, key, frame_len, tables);
    }
    None
}

enum RulesVerdict {
    Allow,
    Deny(FilterDrop),
    NoMatch,
}

#[inline(never)]
fn rules<T: Tables>(config: &FilterConfig, key: &FlowKey, tables: &mut T) -> RulesVerdict {
    let buffer = config.active & 1;
    if config.flags & FILTER_SOURCE_RULES != 0 {
        if let Some(chain) = tables.source_chain(buffer, &key.source).copied() {
            if let Some(verdict) = walk_chain(buffer, &chain, key, tables) {
                return verdict;
            }
        }
    }
    if config.flags & FILTER_DESTINATION_RULES != 0 {
        if let Some(chain) = tables.destination_chain(buffer, &key.destination).copied() {
            if let Some(verdict) = walk_chain(buffer, &chain, key, tables) {
                return verdict;
            }
        }
    }
    RulesVerdict::NoMatch
}

#[inline(always)]
fn walk_chain<T: Tables>(
    buffer: u32,
    chain: &RuleChain,
    key: &FlowKey,
    tables: &mut T,
) -> Option<RulesVerdict> {
    let ifindex = tables.ifindex();
    for index in chain.rules {
        if index == NO_RULE {
            break;
        }
        let code = check_rule(buffer, index, key, ifindex, tables);
        if code == RULE_NO_MATCH {
            continue;
        }
        if code == RULE_MISSING {
            break;
        }
        let (id, action, flags) = (code as u32, (code >> 32) as u8, (code >> 40) as u8);
        tables.count_rule_hit(id);
        return Some(if action == RULE_DENY {
            RulesVerdict::Deny(FilterDrop {
                reason: Reason::RuleDeny,
                monitor: flags & RULE_MONITOR != 0,
            })
        } else {
            RulesVerdict::Allow
        });
    }
    None
}

const RULE_NO_MATCH: u64 = u64::MAX;
const RULE_MISSING: u64 = u64::MAX - 1;

/// One rule of a chain against the flow: `RULE_NO_MATCH`, `RULE_MISSING`,
/// or the rule's id, action and flags packed as `id | action << 32 |
/// flags << 40`. Not inlined, and returning a plain code: however the
/// rule's narrowing branched, the chain walk goes on from one verifier
/// state, so eight rules cost the verifier eight checks, not eight powers.
#[inline(never)]
fn check_rule<T: Tables>(buffer: u32, index: u32, key: &FlowKey, ifindex: u32, tables: &T) -> u64 {
    match tables.rule(buffer, index) {
        Some(rule) if rule.matches(key, ifindex) => {
            u64::from(rule.id) | u64::from(rule.action) << 32 | u64::from(rule.flags) << 40
        }
        Some(_) => RULE_NO_MATCH,
        None => RULE_MISSING,
    }
}

#[inline(never)]
fn blocked<T: Tables>(key: &FlowKey, tables: &mut T) -> bool {
    let Some(entry) = tables.blocklist_entry(&key.source) else {
        return false;
    };
    if entry.expires_at_ns == 0 || tables.now_ns() < entry.expires_at_ns {
        return true;
    }
    // Expired: it stops matching now, and goes so the trie stays small.
    tables.remove_blocklist_entry(PrefixKey {
        prefix_len: entry.prefix_len,
        address: mask(&key.source, entry.prefix_len as u8),
    });
    false
}

/// The stateless guards: fragments, TCP flag anomalies, amplification.
#[inline(always)]
fn guards<T: Tables>(config: &FilterConfig, key: &FlowKey, tables: &T) -> Option<Reason> {
    let policy = if key.ip_version == 4 {
        config.fragments_v4
    } else {
        config.fragments_v6
    };
    if policy != FragmentPolicy::Pass as u8 {
        let later = key.fragment == crate::Fragment::Later as u8;
        let first = key.fragment == crate::Fragment::First as u8;
        if later || (first && policy == FragmentPolicy::DropAll as u8) {
            return Some(Reason::Fragment);
        }
    }
    if config.flags & FILTER_TCP_FLAGS != 0
        && key.protocol == protocol::TCP
        && key.fragment != crate::Fragment::Later as u8
    {
        if let Some(reason) = tcp_flag_anomaly(key.tcp_flags) {
            return Some(reason);
        }
    }
    if config.flags & FILTER_AMPLIFICATION != 0
        && key.protocol == protocol::UDP
        && key.fragment != crate::Fragment::Later as u8
        && tables.is_reflection_port(key.source_port)
        && !tables.expects_reflection(&key.destination)
    {
        return Some(Reason::Amplification);
    }
    None
}

/// The TCP flag combinations no legitimate stack sends.
#[inline(always)]
pub const fn tcp_flag_anomaly(flags: u8) -> Option<Reason> {
    if flags & (FLAG_SYN | FLAG_FIN) == FLAG_SYN | FLAG_FIN {
        Some(Reason::TcpSynFin)
    } else if flags & (FLAG_SYN | FLAG_RST) == FLAG_SYN | FLAG_RST {
        Some(Reason::TcpSynRst)
    } else if flags & (FLAG_SYN | FLAG_FIN | FLAG_RST | FLAG_PSH | FLAG_ACK | FLAG_URG) == 0 {
        Some(Reason::TcpNullFlags)
    } else if flags & (FLAG_FIN | FLAG_PSH | FLAG_URG) != 0 && flags & FLAG_ACK == 0 {
        Some(Reason::TcpNoAck)
    } else {
        None
    }
}

#[inline(never)]
fn rate_limits<T: Tables>(
    config: &FilterConfig,
    key: &FlowKey,
    frame_len: u64,
    tables: &mut T,
) -> Option<FilterDrop> {
    let now = tables.now_ns();
    for index in 0..MAX_RATE_LIMITS {
        if index >= config.rate_limits {
            break;
        }
        let verdict = check_limit(index, key, frame_len, now, tables);
        if verdict == LIMIT_PASS {
            continue;
        }
        if verdict == LIMIT_END {
            break;
        }
        let reason = if verdict & LIMIT_VERDICT_SYN != 0 {
            Reason::SynRateLimited
        } else {
            Reason::RateLimited
        };
        return Some(FilterDrop {
            reason,
            monitor: verdict & LIMIT_VERDICT_MONITOR != 0,
        });
    }
    None
}

const LIMIT_PASS: u32 = 0;
const LIMIT_END: u32 = 1;
const LIMIT_VERDICT_DROP: u32 = 2;
const LIMIT_VERDICT_SYN: u32 = 4;
const LIMIT_VERDICT_MONITOR: u32 = 8;

/// One limit against one frame, as a code: pass, end of the limits, or a
/// drop with its flags. Not inlined: in the eBPF build the verifier then
/// sees a few return values per limit instead of every path through the
/// bucket arithmetic.
#[inline(never)]
fn check_limit<T: Tables>(
    index: u32,
    key: &FlowKey,
    frame_len: u64,
    now: u64,
    tables: &mut T,
) -> u32 {
    let limit = match tables.rate_limit(index) {
        Some(limit) if limit.applies(key) => *limit,
        Some(_) => return LIMIT_PASS,
        None => return LIMIT_END,
    };
    let table = if limit.flags & LIMIT_DESTINATION != 0 {
        BucketTable::Destination
    } else {
        BucketTable::Source
    };
    let bucket_key = limit.bucket_key(index, key);
    if tables.take_tokens(table, &bucket_key, &limit, frame_len, now) {
        return LIMIT_PASS;
    }
    tables.count_limit_drop(index);
    let mut verdict = LIMIT_VERDICT_DROP;
    if limit.flags & LIMIT_SYN_ONLY != 0 {
        verdict |= LIMIT_VERDICT_SYN;
    }
    if limit.flags & LIMIT_MONITOR != 0 {
        verdict |= LIMIT_VERDICT_MONITOR;
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_contains() {
        let address = [
            0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(
            mask(&address, 32),
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(mask(&address, 36)[4], 0xf0);
        assert_eq!(mask(&address, 128), address);
        assert_eq!(mask(&address, 0), [0; 16]);
        assert!(prefix_contains(&mask(&address, 48), 48, &address));
        assert!(!prefix_contains(&mask(&[0xff; 16], 48), 48, &address));
    }

    #[test]
    fn token_bucket_refills_and_caps() {
        let limit = RateLimit {
            packets_per_second: 10,
            burst_packets: 5,
            ..Default::default()
        };
        let mut bucket = Bucket::full(&limit, 0);
        for _ in 0..5 {
            assert!(bucket.take(&limit, 100, 0));
        }
        assert!(!bucket.take(&limit, 100, 0));
        // 100 ms later: one token at 10/s.
        assert!(bucket.take(&limit, 100, 100_000_000));
        assert!(!bucket.take(&limit, 100, 100_000_000));
        // A long idle time refills to the burst, not beyond.
        let later = 3_600 * NANOS;
        for _ in 0..5 {
            assert!(bucket.take(&limit, 100, later));
        }
        assert!(!bucket.take(&limit, 100, later));
    }

    #[test]
    fn byte_bucket() {
        let limit = RateLimit {
            bytes_per_second: 1000,
            burst_bytes: 1500,
            ..Default::default()
        };
        let mut bucket = Bucket::full(&limit, 0);
        assert!(bucket.take(&limit, 1000, 0));
        assert!(!bucket.take(&limit, 1000, 0));
        assert!(bucket.take(&limit, 500, 0));
        assert!(bucket.take(&limit, 1000, NANOS));
    }

    #[test]
    fn tcp_anomalies() {
        assert_eq!(
            tcp_flag_anomaly(FLAG_SYN | FLAG_FIN),
            Some(Reason::TcpSynFin)
        );
        assert_eq!(
            tcp_flag_anomaly(FLAG_SYN | FLAG_RST),
            Some(Reason::TcpSynRst)
        );
        assert_eq!(tcp_flag_anomaly(0), Some(Reason::TcpNullFlags));
        assert_eq!(tcp_flag_anomaly(FLAG_FIN), Some(Reason::TcpNoAck));
        assert_eq!(tcp_flag_anomaly(FLAG_PSH), Some(Reason::TcpNoAck));
        assert_eq!(tcp_flag_anomaly(FLAG_SYN), None);
        assert_eq!(tcp_flag_anomaly(FLAG_SYN | FLAG_ACK), None);
        assert_eq!(tcp_flag_anomaly(FLAG_FIN | FLAG_ACK), None);
        assert_eq!(tcp_flag_anomaly(FLAG_RST), None);
        assert_eq!(tcp_flag_anomaly(FLAG_PSH | FLAG_ACK), None);
    }
}
