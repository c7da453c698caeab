//! The filter stage: management guard → rules (the longest matching source
//! prefix's chain, then the longest destination prefix's) → default action
//! → blocklist → stateless guards (fragments, TCP flags, amplification) →
//! rate limits. It returns a drop (with a reason, and whether it is only
//! monitored) or "continue". An allow rule ends the stage: what an operator
//! allows explicitly is not then blocklisted or limited. An admit rule ends
//! only the rules (and so the default action): the blocklist, the guards and
//! the rate limits still judge the frame, as a tenant's allow rule (an
//! OpenStack security group's) must leave the operator's defences in force.
//!
//! The stateless guards run before the rate limits (DESIGN.md lists them
//! after): a frame a guard drops anyway should not spend a legitimate
//! source's tokens.
//!
//! Everything it reads comes through [`crate::Tables`]; the shared types
//! (`types`, `limits`) are `#[repr(C)]` map keys and values.
//!
//! `rules`, `inner_rules`, `check_rule`, `blocked`, `tunnel_blocked`,
//! `rate_limits` and `check_limit` are `#[inline(never)]`: in the eBPF
//! build each becomes a BPF subprogram whose scratch values die at its
//! return, so the verifier can prune the states after it. Fully inlined, the loops over chains and limits made
//! the verifier walk past its million-instruction limit.

mod address;
mod address_limits;
mod bounds;
mod general_limits;
mod limits;
mod types;

pub use address::{
    address_family, address_words, family_any_length, kernel_accepts_source, mask, prefix_contains,
    prefix_family, words_family, FAMILY_V4, FAMILY_V6,
};
pub use address_limits::{AddressCharge, AddressLimit, AddressLimitKey, MAX_ADDRESS_LIMITS};
pub use bounds::{
    charge_bucket, BoundCells, BucketBound, Charge, Charged, BOUND_CELLS, BOUND_ROWS, BOUND_SET,
    BOUND_WIDTH,
};
pub use limits::*;
pub use types::*;

use crate::packet::Packet;
use crate::parse::FlowKey;
use crate::stats::Reason;
use crate::tunnel::InnerFrame;
use crate::wire::protocol;
use crate::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN, FLAG_URG};
pub mod tables;

pub use tables::Tables;

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
///
/// With `FILTER_TUNNELS` (a rule, limit or tunnel blocklist entry names a
/// VNI), a tunnelled frame is judged once per layer: its inner headers
/// (parsed into the key `inner_slot` lends, with the VNI) by the rules,
/// limits and tunnel blocklist entries that name its VNI, its outer
/// headers by everything else, exactly as a frame that is not tunnelled.
/// It passes only if both layers pass; in each, an allow rule ends that
/// layer's checks. The inner rules and blocklist go first (a tenant's drop
/// spends no outer tokens); the default action, the blocklist of plain
/// prefixes and the guards are the outer layer's alone.
///
/// [`judge`] then [`limits`]: the eBPF build runs them in two programs.
#[inline(always)]
pub fn filter<'s, P: Packet, T: Tables>(
    packet: &P,
    key: &FlowKey,
    frame_len: u64,
    tables: &mut T,
    inner_slot: impl FnOnce() -> Option<&'s mut FlowKey>,
) -> Option<FilterDrop> {
    let slot = move || inner_slot().map(|slot| &mut *slot);
    match judge(packet, key, tables, slot) {
        Judged::Decided(drop) => drop,
        Judged::Limits(layers) => limits(&tables.filter_config(), &layers, frame_len, tables),
    }
}

/// What the filter decided before its rate limits.
pub enum Judged<'k> {
    /// The frame's verdict: no rate limit is to see it.
    Decided(Option<FilterDrop>),
    /// The rate limits decide, on these keys.
    Limits(Layers<'k>),
}

/// The filter up to its rate limits ([`filter`]).
#[inline(always)]
pub fn judge<'k, P: Packet, T: Tables>(
    packet: &P,
    key: &'k FlowKey,
    tables: &mut T,
    inner_slot: impl FnOnce() -> Option<&'k mut FlowKey>,
) -> Judged<'k> {
    // The filter judges IP frames. A frame that is not IP (ARP, LLDP)
    // has no addresses (the parser leaves them zero: `::`), so rules,
    // blocks and limits of `::/0` or `::/128` matched it, and a default
    // drop took ARP with it: an operator's "drop all IPv6" or default
    // drop cut the host's IPv4 neighbour resolution.
    if key.ip_version == 0 {
        return Judged::Decided(None);
    }
    let config = tables.filter_config();
    if !filter_enabled(&config) {
        return Judged::Decided(None);
    }
    if config.flags & FILTER_MANAGEMENT_SOURCES != 0 && tables.is_management_source(&key.source) {
        return Judged::Decided(None);
    }
    if config.flags & FILTER_MANAGEMENT_PORTS != 0
        && (key.protocol == protocol::TCP || key.protocol == protocol::UDP)
        && tables.is_management_port(key.destination_port)
    {
        return Judged::Decided(None);
    }
    let mut inner: Option<&'k FlowKey> = None;
    if config.flags & FILTER_TUNNELS != 0 && crate::tunnel::may_be_tunnel(key) {
        if let Some(slot) = inner_slot() {
            match crate::tunnel::inner_key(packet, key, slot) {
                // A tunnelled frame that is not IP (ARP across the
                // overlay) has no inner addresses: no inner rule, block or
                // limit judges it, as none judges an outer one.
                InnerFrame::Parsed if slot.ip_version != 0 => inner = Some(slot),
                InnerFrame::Malformed(reason) => {
                    return Judged::Decided(Some(FilterDrop {
                        reason,
                        monitor: false,
                    }))
                }
                InnerFrame::Parsed | InnerFrame::NotTunnel => {}
            }
        }
    }
    let mut inner_allowed = false;
    if let Some(inner) = inner {
        match inner_rules(&config, inner, tables) {
            RulesVerdict::Allow => inner_allowed = true,
            RulesVerdict::Deny(drop) => return Judged::Decided(Some(drop)),
            RulesVerdict::Admit | RulesVerdict::NoMatch => {}
        }
    }
    let (outer_allowed, outer_admitted) = match rules(&config, key, tables) {
        RulesVerdict::Allow => (true, false),
        RulesVerdict::Admit => (false, true),
        RulesVerdict::Deny(drop) => return Judged::Decided(Some(drop)),
        RulesVerdict::NoMatch => (false, false),
    };
    if !outer_allowed {
        if let Some(drop) = outer_checks(&config, key, tables, outer_admitted) {
            return Judged::Decided(Some(drop));
        }
    }
    if config.rate_limits == 0 && !address_limited(&config) {
        return Judged::Decided(None);
    }
    let layers = Layers {
        outer: (!outer_allowed).then_some(key),
        inner: inner.filter(|_| !inner_allowed),
    };
    // Allowed in every layer: no limit sees the frame (and the eBPF build
    // makes no tail call for it).
    if layers.outer.is_none() && layers.inner.is_none() {
        return Judged::Decided(None);
    }
    Judged::Limits(layers)
}

/// Whether the address table holds limits of either side.
#[inline(always)]
fn address_limited(config: &FilterConfig) -> bool {
    config.flags & (FILTER_ADDRESS_LIMITS_DESTINATION | FILTER_ADDRESS_LIMITS_SOURCE) != 0
}

/// The rate limits ([`filter`]): the general ones, then the address
/// table's.
#[inline(always)]
pub fn limits<T: Tables>(
    config: &FilterConfig,
    layers: &Layers<'_>,
    frame_len: u64,
    tables: &mut T,
) -> Option<FilterDrop> {
    let general = if config.rate_limits != 0 {
        general_limits::rate_limits(config, layers, frame_len, tables)
    } else {
        None
    };
    // A general limit's monitored verdict does not end the checks: a
    // limit of one address still drops (a monitored `/0` limit, the usual
    // trial of a new limit, must not switch the floating IPs' off).
    if !address_limited(config) || general.is_some_and(|drop| !drop.monitor) {
        return general;
    }
    match address_limits::address_limits(config, layers, frame_len, tables) {
        Some(drop) if !drop.monitor => Some(drop),
        address => general.or(address),
    }
}

/// The keys the rate limits see: the outer one unless an outer rule
/// allowed the frame, the inner one of a tunnelled frame unless an inner
/// rule allowed it.
pub struct Layers<'k> {
    /// The frame's key, unless an outer rule allowed it.
    pub outer: Option<&'k FlowKey>,
    /// A tunnelled frame's inner key, unless an inner rule allowed it.
    pub inner: Option<&'k FlowKey>,
}

/// What only the outer layer has: the default action (not for a frame a
/// rule admitted), the blocklist and the stateless guards.
#[inline(always)]
fn outer_checks<T: Tables>(
    config: &FilterConfig,
    key: &FlowKey,
    tables: &mut T,
    admitted: bool,
) -> Option<FilterDrop> {
    if config.flags & FILTER_DEFAULT_DROP != 0 && !admitted {
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
    guards(config, key, tables).map(|reason| FilterDrop {
        reason,
        monitor: false,
    })
}

enum RulesVerdict {
    Allow,
    Admit,
    Deny(FilterDrop),
    NoMatch,
}

/// The inner layer's rules, then, unless one allowed the frame, the
/// blocklist of its VNI. The inner layer has no default action: admitted
/// is as unmatched, its blocklist and limits still apply. One subprogram,
/// so the verifier meets one call with the rules' outcomes: with the
/// blocklist check inline after the rules' call, the program went past
/// the verifier's million instructions.
#[inline(never)]
fn inner_rules<T: Tables>(config: &FilterConfig, inner: &FlowKey, tables: &mut T) -> RulesVerdict {
    match rules(config, inner, tables) {
        RulesVerdict::Admit | RulesVerdict::NoMatch => {}
        decided => return decided,
    }
    if config.flags & FILTER_TUNNEL_BLOCKLIST != 0 && tunnel_blocked(inner, tables) {
        return RulesVerdict::Deny(FilterDrop {
            reason: Reason::Blocklisted,
            monitor: false,
        });
    }
    RulesVerdict::NoMatch
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
    for index in chain.rules {
        if index == NO_RULE {
            break;
        }
        let code = check_rule(buffer, index, key, tables);
        if code == RULE_NO_MATCH {
            continue;
        }
        if code == RULE_MISSING {
            break;
        }
        let (id, action, flags) = (code as u32, (code >> 32) as u8, (code >> 40) as u8);
        tables.count_rule_hit(id);
        return Some(match action {
            RULE_DENY => RulesVerdict::Deny(FilterDrop {
                reason: Reason::RuleDeny,
                monitor: flags & RULE_MONITOR != 0,
            }),
            RULE_ADMIT => RulesVerdict::Admit,
            _ => RulesVerdict::Allow,
        });
    }
    None
}

/// The ingress interface, read only for a rule bound to one (in the eBPF
/// build three dependent loads through the context); any other rule
/// ignores it.
#[inline(always)]
fn rule_ifindex<T: Tables>(rule: &Rule, tables: &T) -> u32 {
    if rule.ifindex == 0 {
        0
    } else {
        tables.ifindex()
    }
}

const RULE_NO_MATCH: u64 = u64::MAX;
const RULE_MISSING: u64 = u64::MAX - 1;

/// One rule of a chain against the flow: `RULE_NO_MATCH`, `RULE_MISSING`,
/// or the rule's id, action and flags packed as `id | action << 32 |
/// flags << 40`. Not inlined, and returning a plain code: however the
/// rule's narrowing branched, the chain walk goes on from one verifier
/// state, so eight rules cost the verifier eight checks, not eight powers.
#[inline(never)]
fn check_rule<T: Tables>(buffer: u32, index: u32, key: &FlowKey, tables: &T) -> u64 {
    match tables.rule(buffer, index) {
        Some(rule) if rule.matches(key, rule_ifindex(rule, tables)) => {
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

/// Whether the inner source of a tunnelled frame is on the tunnel
/// blocklist for its VNI; an expired entry is deleted as in [`blocked`].
#[inline(never)]
fn tunnel_blocked<T: Tables>(inner: &FlowKey, tables: &mut T) -> bool {
    // `tunnel` is the VNI plus one (zero: not tunnelled).
    let Some(vni) = inner.tunnel.checked_sub(1) else {
        return false;
    };
    let Some(entry) = tables.tunnel_blocklist_entry(vni, &inner.source) else {
        return false;
    };
    if entry.expires_at_ns == 0 || tables.now_ns() < entry.expires_at_ns {
        return true;
    }
    tables.remove_tunnel_blocklist_entry(TunnelPrefixKey::new(
        vni,
        PrefixKey {
            prefix_len: entry.prefix_len,
            address: mask(&inner.source, entry.prefix_len as u8),
        },
    ));
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

/// Whether the filter stage has anything to do.
#[inline(always)]
pub fn filter_enabled(config: &FilterConfig) -> bool {
    config.flags != 0
        || config.rate_limits != 0
        || config.fragments_v4 != 0
        || config.fragments_v6 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

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
