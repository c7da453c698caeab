//! From the desired state to the kernel's representation: rule arrays,
//! deduplicated rule chains and the two prefix tries, the global
//! [`FilterConfig`], rate limits and port bitmaps.
//!
//! A rule with source prefixes goes into the source trie (narrowed by its
//! destination with `RULE_DESTINATION`); a rule with only a destination
//! goes into the destination trie. The chain of a prefix is its own rules,
//! in rule order, then the chain of the nearest covering prefix that has
//! rules: the longest prefix is tried first, and a narrower rule that does
//! not match falls back to the prefixes around it.

use std::collections::HashMap;

use xdpath_core::filter::{
    family_any_length, prefix_family, AddressLimitKey, FilterConfig, PrefixKey, PrefixLengths,
    RateLimit, Rule, RuleChain, FAMILY_V4, FAMILY_V6, MAX_ADDRESS_LIMITS, MAX_CHAIN, MAX_CHAINS,
    MAX_PREFIXES, MAX_PREFIX_LENGTHS, MAX_RATE_LIMITS, MAX_RULES, NO_RULE, RULE_ADMIT, RULE_ALLOW,
    RULE_DENY, RULE_DESTINATION, RULE_ICMP_TYPE, RULE_MONITOR, RULE_PORTS, RULE_TCP_FLAGS,
};

use super::parse::Cidr;
use super::state::{RuleAction, RuleSpec};

mod places;
mod settings;
pub use places::{address_key, limit_places, of_one_address, slot_ids, LimitPlace};
pub use settings::{compile_limit, compile_settings, port_bitmap};

/// The largest rate a limit takes, per second (the data path caps there).
pub const MAX_RATE: u64 = 4_000_000_000;
/// Words of a 65,536-bit port set.
pub const PORT_WORDS: usize = 1024;

/// Why a state cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// More rules than one buffer holds.
    #[error("too many rules: {count} (at most {MAX_RULES})")]
    TooManyRules {
        /// Rules asked for.
        count: usize,
    },
    /// A rule id outside 1..MAX_RULES (hits are counted by id).
    #[error("rule id {id} is out of range (1-{})", MAX_RULES - 1)]
    RuleIdOutOfRange {
        /// The id.
        id: u32,
    },
    /// More prefix lengths than the data path probes.
    #[error(
        "{family} {trie} prefixes use {count} different prefix lengths; at most {MAX_PREFIX_LENGTHS} besides /0 are supported (aggregate prefixes)"
    )]
    TooManyPrefixLengths {
        /// "source" or "destination".
        trie: &'static str,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// Distinct lengths found.
        count: usize,
    },
    /// More prefixes than a rule buffer holds.
    #[error("too many {trie} prefixes: {count} (at most {MAX_PREFIXES})")]
    TooManyPrefixes {
        /// `source` or `destination`.
        trie: &'static str,
        /// Prefixes asked for.
        count: usize,
    },
    /// More distinct chains than a buffer holds.
    #[error("too many distinct rule chains: {count} (at most {MAX_CHAINS})")]
    TooManyChains {
        /// Chains needed.
        count: usize,
    },
    /// A prefix would lead to more rules than a chain holds.
    #[error("prefix {prefix} leads to more than {MAX_CHAIN} rules (its own and those of covering prefixes)")]
    ChainTooLong {
        /// The prefix.
        prefix: Cidr,
    },
    /// A rule without a source or destination prefix.
    #[error("rule {id} needs --src or --dst")]
    NoPrefix {
        /// The rule.
        id: u32,
    },
    /// IPv4 and IPv6 prefixes mixed in one rule.
    #[error("rule {id}: --src {source_prefix} and --dst {destination} are of different address families")]
    FamilyMismatch {
        /// The rule.
        id: u32,
        /// A source prefix.
        source_prefix: Cidr,
        /// The destination.
        destination: Cidr,
    },
    /// A rate limit with nothing to limit or values out of range.
    #[error("rate limit {id}: {why}")]
    BadLimit {
        /// The limit.
        id: u32,
        /// What is wrong.
        why: String,
    },
    /// More general rate limits than the data path holds.
    #[error(
        "too many rate limits: {count} (at most {MAX_RATE_LIMITS} beside those of one address each, which a table of {MAX_ADDRESS_LIMITS} holds: --scope ADDRESS/32 or /128 without --proto, --syn or --vip)"
    )]
    TooManyLimits {
        /// Limits asked for.
        count: usize,
    },
    /// A port guard turned on with an empty port list: it would show as
    /// on and guard nothing.
    #[error("the {guard} guard is on with no ports; give it ports or turn it off")]
    GuardWithoutPorts {
        /// `SYN-cookie` or `amplification`.
        guard: &'static str,
    },
    /// A prefix list over its map's size.
    #[error("too many {what}: {count} (at most {max})")]
    TooMany {
        /// Which list.
        what: &'static str,
        /// Entries asked for.
        count: usize,
        /// The most it holds.
        max: u32,
    },
}

/// One rule buffer's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompiledRules {
    /// Rules by index.
    pub rules: Vec<Rule>,
    /// Chains by index.
    pub chains: Vec<RuleChain>,
    /// Source prefix → chain index.
    pub sources: Vec<(PrefixKey, u32)>,
    /// Destination prefix → chain index.
    pub destinations: Vec<(PrefixKey, u32)>,
    /// The prefix lengths among `sources`, per family (`FAMILY_V4`,
    /// `FAMILY_V6`).
    pub source_lengths: [PrefixLengths; 2],
    /// The prefix lengths among `destinations`, per family.
    pub destination_lengths: [PrefixLengths; 2],
}

/// The probe list of one family of `entries`: the distinct prefix lengths,
/// longest first, without the family's whole space (whose chain is held
/// apart); `Err` with the count of lengths when there are more than the
/// data path probes.
pub fn prefix_lengths(entries: &[(PrefixKey, u32)], family: u8) -> Result<PrefixLengths, usize> {
    let any_length = u32::from(family_any_length(family));
    let mut distinct = std::collections::BTreeSet::new();
    let mut any_chain = None;
    for (key, chain) in entries {
        if prefix_family(&key.address, key.prefix_len as u8) != family {
            continue;
        }
        if key.prefix_len == any_length {
            any_chain = Some(*chain);
        } else {
            distinct.insert(key.prefix_len);
        }
    }
    if distinct.len() > MAX_PREFIX_LENGTHS {
        return Err(distinct.len());
    }
    let descending: Vec<u8> = distinct.iter().rev().map(|length| *length as u8).collect();
    let mut lengths = PrefixLengths::from_descending(&descending);
    lengths.any_chain_plus_one = any_chain.map_or(0, |chain| chain + 1);
    Ok(lengths)
}

/// A 65,536-bit port set, word `port / 64`, bit `port % 64`.
pub type PortBitmap = Vec<u64>;

/// Everything but the rules and the blocklist (which needs a clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledSettings {
    /// The global config; `active` is left 0 (apply sets it).
    pub config: FilterConfig,
    /// The general rate limits, in slot order.
    pub rate_limits: Vec<RateLimit>,
    /// The limits of the address table, by key.
    pub address_limits: Vec<(AddressLimitKey, RateLimit)>,
    /// Reflection source ports.
    pub reflection_ports: PortBitmap,
    /// Destinations that expect reflection traffic.
    pub reflection_expected: Vec<PrefixKey>,
    /// Management prefixes.
    pub management_prefixes: Vec<PrefixKey>,
    /// Management ports.
    pub management_ports: PortBitmap,
    /// SYN-cookie ports.
    pub syncookie_ports: PortBitmap,
}

/// Looks up an interface index by name (none: no such interface).
pub type InterfaceResolver<'a> = &'a dyn Fn(&str) -> Option<u32>;

/// The index a rule gets for an interface that does not exist: matches no
/// frame.
pub const MISSING_INTERFACE: u32 = u32::MAX;

/// Compiles the rules of `state`.
pub fn compile_rules(
    rules: &[RuleSpec],
    resolve: InterfaceResolver<'_>,
) -> Result<CompiledRules, CompileError> {
    if rules.len() > MAX_RULES as usize {
        return Err(CompileError::TooManyRules { count: rules.len() });
    }
    let mut compiled = CompiledRules::default();
    let mut source_entries: Vec<Entry> = Vec::new();
    let mut destination_entries: Vec<Entry> = Vec::new();
    for (index, spec) in rules.iter().enumerate() {
        let index = index as u32;
        if spec.id == 0 || spec.id >= MAX_RULES {
            return Err(CompileError::RuleIdOutOfRange { id: spec.id });
        }
        let sources = effective_sources(spec)?;
        let mut rule = kernel_rule(spec, resolve);
        if sources.is_empty() {
            let Some(destination) = spec.destination else {
                return Err(CompileError::NoPrefix { id: spec.id });
            };
            destination_entries.push(Entry::new(&destination, index));
        } else {
            if let Some(destination) = spec.destination {
                rule.flags |= RULE_DESTINATION;
                rule.destination = destination.address;
                rule.destination_len = destination.mapped_length();
            }
            source_entries.reserve(sources.len());
            source_entries.extend(sources.iter().map(|source| Entry::new(source, index)));
        }
        compiled.rules.push(rule);
    }
    for (trie, entries) in [
        ("source", &source_entries),
        ("destination", &destination_entries),
    ] {
        if entries.len() > MAX_PREFIXES as usize {
            return Err(CompileError::TooManyPrefixes {
                trie,
                count: entries.len(),
            });
        }
    }
    let mut chain_index: HashMap<RuleChain, u32> = HashMap::new();
    compiled.sources = build_tries(source_entries, &mut compiled.chains, &mut chain_index)?;
    compiled.destinations =
        build_tries(destination_entries, &mut compiled.chains, &mut chain_index)?;
    for (trie, entries) in [
        ("source", &compiled.sources),
        ("destination", &compiled.destinations),
    ] {
        if entries.len() > MAX_PREFIXES as usize {
            return Err(CompileError::TooManyPrefixes {
                trie,
                count: entries.len(),
            });
        }
    }
    for (trie, entries, lengths) in [
        ("source", &compiled.sources, &mut compiled.source_lengths),
        (
            "destination",
            &compiled.destinations,
            &mut compiled.destination_lengths,
        ),
    ] {
        for family in [FAMILY_V4, FAMILY_V6] {
            let slot = &mut lengths[usize::from(family)];
            *slot = prefix_lengths(entries, family).map_err(|count| {
                CompileError::TooManyPrefixLengths {
                    trie,
                    family: family_name(family),
                    count,
                }
            })?;
        }
    }
    Ok(compiled)
}

/// The source prefixes that put a rule in the source trie: an explicit
/// `0.0.0.0/0` or `::/0` beside a destination means "any source".
fn effective_sources(spec: &RuleSpec) -> Result<&[Cidr], CompileError> {
    if let (Some(destination), Some(source)) = (spec.destination, spec.sources.first()) {
        if let Some(source) = spec.sources.iter().find(|s| s.ipv4 != destination.ipv4) {
            return Err(CompileError::FamilyMismatch {
                id: spec.id,
                source_prefix: *source,
                destination,
            });
        }
        if spec.sources.len() == 1 && source.is_any() {
            return Ok(&[]);
        }
    }
    Ok(&spec.sources)
}

fn kernel_rule(spec: &RuleSpec, resolve: InterfaceResolver<'_>) -> Rule {
    let mut rule = Rule {
        id: spec.id,
        protocol: spec.protocol.unwrap_or(0),
        action: match spec.action {
            RuleAction::Pass => RULE_ALLOW,
            RuleAction::Drop => RULE_DENY,
            RuleAction::Admit => RULE_ADMIT,
        },
        tunnel: spec.vni.map_or(0, |vni| vni + 1),
        ..Rule::default()
    };
    if let Some(name) = &spec.interface {
        rule.ifindex = resolve(name).unwrap_or(MISSING_INTERFACE);
    }
    if spec.monitor {
        rule.flags |= RULE_MONITOR;
    }
    if let Some(ports) = spec.ports {
        rule.flags |= RULE_PORTS;
        rule.port_low = ports.low;
        rule.port_high = ports.high;
    }
    if let Some(icmp_type) = spec.icmp_type {
        rule.flags |= RULE_ICMP_TYPE;
        (rule.port_low, rule.port_high) = icmp_type.range();
    }
    if let Some(flags) = spec.tcp_flags {
        rule.flags |= RULE_TCP_FLAGS;
        rule.tcp_flags_mask = flags.mask;
        rule.tcp_flags_value = flags.value;
    }
    rule
}

/// A (prefix, rule index) pair, sorted by address then length: the
/// pre-order of the prefix tree, so every prefix follows those covering it.
#[derive(Clone, Copy)]
struct Entry {
    address: [u8; 16],
    length: u8,
    rule: u32,
}

impl Entry {
    fn new(cidr: &Cidr, rule: u32) -> Self {
        Self {
            address: cidr.address,
            length: cidr.mapped_length(),
            rule,
        }
    }

    fn contains(&self, other: &Entry) -> bool {
        self.length <= other.length
            && xdpath_core::filter::mask(&other.address, self.length) == self.address
    }
}

fn family_name(family: u8) -> &'static str {
    if family == FAMILY_V4 {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// [`build_trie`] per address family: an IPv4 prefix inherits only the
/// rules of IPv4 prefixes around it (`::/0` does not cover IPv4).
fn build_tries(
    entries: Vec<Entry>,
    chains: &mut Vec<RuleChain>,
    chain_index: &mut HashMap<RuleChain, u32>,
) -> Result<Vec<(PrefixKey, u32)>, CompileError> {
    let (v4, v6): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|entry| prefix_family(&entry.address, entry.length) == FAMILY_V4);
    let mut out = build_trie(v4, chains, chain_index)?;
    out.extend(build_trie(v6, chains, chain_index)?);
    Ok(out)
}

/// Groups entries by prefix and gives each prefix its chain (deduplicated
/// into `chains`). One sort and one pass with a stack of open prefixes.
fn build_trie(
    mut entries: Vec<Entry>,
    chains: &mut Vec<RuleChain>,
    chain_index: &mut HashMap<RuleChain, u32>,
) -> Result<Vec<(PrefixKey, u32)>, CompileError> {
    entries.sort_unstable_by_key(|entry| (entry.address, entry.length, entry.rule));
    let mut out: Vec<(PrefixKey, u32)> = Vec::with_capacity(entries.len());
    // (the prefix, its chain) of the prefixes covering the current one.
    let mut open: Vec<(Entry, RuleChain)> = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let head = entries[start];
        let mut end = start + 1;
        while end < entries.len()
            && entries[end].length == head.length
            && entries[end].address == head.address
        {
            end += 1;
        }
        while open
            .last()
            .is_some_and(|(prefix, _)| !prefix.contains(&head))
        {
            open.pop();
        }
        let mut chain = RuleChain::default();
        let mut used = 0;
        let own = entries[start..end].iter().map(|entry| entry.rule);
        let inherited = open
            .last()
            .map(|(_, parent)| parent.rules)
            .unwrap_or([NO_RULE; MAX_CHAIN]);
        for rule in own.chain(inherited.into_iter().take_while(|&rule| rule != NO_RULE)) {
            if chain.rules[..used].contains(&rule) {
                continue;
            }
            if used == MAX_CHAIN {
                return Err(CompileError::ChainTooLong {
                    prefix: Cidr::from_key(&PrefixKey {
                        prefix_len: u32::from(head.length),
                        address: head.address,
                    }),
                });
            }
            chain.rules[used] = rule;
            used += 1;
        }
        let index = match chain_index.get(&chain) {
            Some(&index) => index,
            None => {
                let index = chains.len() as u32;
                if index >= MAX_CHAINS {
                    return Err(CompileError::TooManyChains {
                        count: chains.len() + 1,
                    });
                }
                chains.push(chain);
                chain_index.insert(chain, index);
                index
            }
        };
        out.push((
            PrefixKey {
                prefix_len: u32::from(head.length),
                address: head.address,
            },
            index,
        ));
        open.push((head, chain));
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
