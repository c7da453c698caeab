//! The filter's tables as the kernel holds them: configuration, rules,
//! chains, prefix keys and the blocklist entry (`#[repr(C)]`, shared with
//! user space).

use super::address::{address_words, mask, prefix_contains};
use crate::parse::{FlowKey, Fragment};
use crate::wire::protocol;

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
/// Blocklist entries of tunnelled traffic (a VNI and an inner source prefix).
pub const MAX_TUNNEL_BLOCKLIST: u32 = 262_144;
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
/// A rule or rate limit names a VNI: tunnelled frames are looked inside
/// (`crate::tunnel`).
pub const FILTER_TUNNELS: u32 = 1 << 10;
/// The blocklist of tunnelled traffic has entries (set with
/// `FILTER_TUNNELS`, which makes the inner headers parsed).
pub const FILTER_TUNNEL_BLOCKLIST: u32 = 1 << 11;
/// `ADDRESS_LIMITS` holds limits of destination addresses.
pub const FILTER_ADDRESS_LIMITS_DESTINATION: u32 = 1 << 12;
/// `ADDRESS_LIMITS` holds limits of source addresses.
pub const FILTER_ADDRESS_LIMITS_SOURCE: u32 = 1 << 13;

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
    /// Bit `i` set: rate limit `i` names a VNI (it limits the inner
    /// headers of tunnelled frames), so the limit loop picks each slot's
    /// key without reading the limit.
    pub tunnel_limits: u16,
}

const _: () = assert!(core::mem::size_of::<FilterConfig>() == 16);

impl FilterConfig {
    /// The config from its bytes as the `FILTER_CONFIG` map holds them.
    pub fn from_ne_bytes(bytes: &[u8; 16]) -> Self {
        let [f0, f1, f2, f3, a0, a1, a2, a3, r0, r1, r2, r3, v4, v6, t0, t1] = *bytes;
        Self {
            flags: u32::from_ne_bytes([f0, f1, f2, f3]),
            active: u32::from_ne_bytes([a0, a1, a2, a3]),
            rate_limits: u32::from_ne_bytes([r0, r1, r2, r3]),
            fragments_v4: v4,
            fragments_v6: v6,
            tunnel_limits: u16::from_ne_bytes([t0, t1]),
        }
    }
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

/// The `PREFIX_LENGTHS_*` slot of a direction and address family: rule
/// prefixes are probed per family, so an IPv6 frame never pays for the
/// lengths of IPv4 prefixes, nor the other way round.
#[inline(always)]
pub const fn lengths_slot(direction: u8, family: u8) -> u32 {
    direction as u32 * 2 + family as u32
}

/// Slots of `PREFIX_LENGTHS_*`: two directions × two families.
pub const LENGTHS_SLOTS: u32 = 4;

/// The prefix lengths present in one direction and family, longest first,
/// with their address masks as memory words. The family's whole space
/// (`0.0.0.0/0`, `::/0`) is not probed: its chain is held here.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixLengths {
    /// How many of `lengths` are used.
    pub count: u32,
    /// Lengths in bits, descending.
    pub lengths: [u8; MAX_PREFIX_LENGTHS],
    /// One more than the chain index of the family's whole address space,
    /// 0 for none (so a zeroed slot matches nothing): rules with
    /// `--src 0.0.0.0/0` (say) cost no probe.
    pub any_chain_plus_one: u32,
    /// For each length, its mask as the two memory words of an address.
    pub masks: [[u64; 2]; MAX_PREFIX_LENGTHS],
}

impl Default for PrefixLengths {
    fn default() -> Self {
        Self {
            count: 0,
            lengths: [0; MAX_PREFIX_LENGTHS],
            any_chain_plus_one: 0,
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

    /// The chain of the whole address space, if any.
    #[inline(always)]
    pub const fn any_chain(&self) -> u32 {
        self.any_chain_plus_one.wrapping_sub(1)
    }
}

/// A rule's action.
pub const RULE_ALLOW: u8 = 0;
/// A rule's action.
pub const RULE_DENY: u8 = 1;
/// A rule's action: the rules let the frame in (no later rule, no default
/// drop), but the blocklist, the guards and the rate limits still judge it.
pub const RULE_ADMIT: u8 = 2;

/// `Rule::flags`: the rule only counts what it would drop.
pub const RULE_MONITOR: u8 = 1 << 0;
/// The rule narrows by destination port range.
pub const RULE_PORTS: u8 = 1 << 1;
/// The rule narrows by TCP flags.
pub const RULE_TCP_FLAGS: u8 = 1 << 2;
/// The rule narrows by a destination prefix (source rules only).
pub const RULE_DESTINATION: u8 = 1 << 3;
/// The rule narrows by ICMP or ICMPv6 type and code: `port_low` to
/// `port_high` bound `type << 8 | code` (as [`FlowKey::destination_port`]
/// holds it). Frames without an ICMP header (other protocols, later
/// fragments) never match.
pub const RULE_ICMP_TYPE: u8 = 1 << 4;

/// One rule: what it matches beyond its prefix, and its action.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// The rule's id, as the CLI shows it; hits are counted under it.
    pub id: u32,
    /// Only on this interface index; 0: every interface.
    pub ifindex: u32,
    /// Lowest destination port (with `RULE_PORTS`), or lowest
    /// `type << 8 | code` (with `RULE_ICMP_TYPE`).
    pub port_low: u16,
    /// Highest destination port, or `type << 8 | code`.
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
    /// The layer the rule judges: 0, the outer headers of every frame;
    /// VNI + 1, the inner headers of tunnelled frames with that VNI
    /// (compared with [`FlowKey::tunnel`]).
    pub tunnel: u32,
}

impl Rule {
    /// Whether the rule's narrowing matches the flow.
    #[inline(always)]
    pub fn matches(&self, key: &FlowKey, ifindex: u32) -> bool {
        if self.ifindex != 0 && self.ifindex != ifindex {
            return false;
        }
        if self.tunnel != key.tunnel {
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
        if self.flags & RULE_ICMP_TYPE != 0 {
            let icmp = (key.protocol == protocol::ICMP && key.ip_version == 4)
                || (key.protocol == protocol::ICMPV6 && key.ip_version == 6);
            if !icmp
                || key.fragment == Fragment::Later as u8
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

/// The bits of a [`TunnelPrefixKey`] before its address: the VNI's.
pub const VNI_KEY_BITS: u32 = 32;

/// A key of the `TUNNEL_BLOCKLIST` trie: the layout of the kernel's
/// `struct bpf_lpm_trie_key` with 20 bytes of data, the VNI (network
/// order, 4 bytes) then the inner source address. Its prefix length
/// counts the VNI's 32 bits first, so an entry holds one VNI exactly and a
/// prefix of the addresses inside it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelPrefixKey {
    /// [`VNI_KEY_BITS`] plus the address's prefix length, 32 to 160.
    pub prefix_len: u32,
    /// The VNI, network byte order.
    pub vni: [u8; 4],
    /// The address, network byte order (IPv4 IPv4-mapped).
    pub address: [u8; 16],
}

impl TunnelPrefixKey {
    /// The key of `prefix` inside `vni`.
    pub fn new(vni: u32, prefix: PrefixKey) -> Self {
        Self {
            prefix_len: VNI_KEY_BITS + prefix.prefix_len.min(128),
            vni: vni.to_be_bytes(),
            address: prefix.address,
        }
    }

    /// The key's data as the trie sees it: the VNI then the address.
    pub fn data(&self) -> [u8; 20] {
        let mut data = [0; 20];
        for (slot, byte) in data.iter_mut().zip(self.vni.iter().chain(&self.address)) {
            *slot = *byte;
        }
        data
    }
}

/// A blocklist entry (value of the `BLOCKLIST` and `TUNNEL_BLOCKLIST`
/// tries; in the latter, `prefix_len` is the address's alone).
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

#[cfg(test)]
mod tests {
    use super::FilterConfig;

    #[test]
    fn filter_config_from_its_map_bytes() {
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&7u32.to_ne_bytes());
        bytes[4..8].copy_from_slice(&1u32.to_ne_bytes());
        bytes[8..12].copy_from_slice(&3u32.to_ne_bytes());
        bytes[12] = 1;
        bytes[13] = 2;
        bytes[14..].copy_from_slice(&0x0105u16.to_ne_bytes());
        let config = FilterConfig::from_ne_bytes(&bytes);
        assert_eq!(
            config,
            FilterConfig {
                flags: 7,
                active: 1,
                rate_limits: 3,
                fragments_v4: 1,
                fragments_v6: 2,
                tunnel_limits: 0x0105,
            }
        );
    }
}
