//! Reading the kernel's filter maps back and comparing them with a desired
//! state: what the kernel really enforces, not what a state file or a
//! cached generation says it should.
//!
//! [`compare`] returns every difference, in operator terms, and an
//! [`InstalledView`]: the kernel's content in the shape of a
//! [`FilterState`], so that [`super::apply::apply`] from that view to the
//! desired state writes exactly what is missing and removes exactly what is
//! extra. The same path serves `attach` after a reboot (the maps are empty),
//! a failed change (what it half-wrote is found and undone), `plan`
//! ("the kernel has nothing"), and the daemon's periodic check.

use std::collections::{HashMap, HashSet};
use xdpath_core::abi;

use xdpath_core::filter::{
    BlockEntry, PrefixKey, RateLimit, Rule, RuleChain, TunnelPrefixKey, FILTER_DESTINATION_RULES,
    FILTER_SOURCE_RULES, LENGTHS_SLOTS, MAX_CHAINS, MAX_RATE_LIMITS, MAX_RULES,
};

use super::apply::{ApplyError, FilterTarget, PrefixSet};
use super::compile::{CompiledRules, CompiledSettings, PORT_WORDS};
use super::kernel::{
    buffer_maps, hash_key, lengths_bytes, monotonic_now_ns, prefix_map, trie_key, tunnel_trie_key,
    KernelMaps, PlainBytes, LENGTHS_SIZE,
};
use super::parse::Cidr;
use super::state::{BlockKey, BlockSpec, FilterState};
use xdpath_core::filter::{
    DIRECTION_DESTINATION, DIRECTION_SOURCE, FAMILY_V4, FAMILY_V6, VNI_KEY_BITS,
};

/// How far a blocklist entry's expiry in the kernel may be from the one the
/// state asks for (the wall clock is read again for each install).
const EXPIRY_TOLERANCE_NS: u64 = 2_000_000_000;

/// The kernel's filter content, shaped as the state it holds, and what
/// differs from the desired state.
#[derive(Debug, Default)]
pub struct InstalledView {
    /// What the maps hold, as a state: apply from it to the desired state.
    pub state: FilterState,
    /// The active rule set is not the desired one: rewrite it.
    pub rules_differ: bool,
    /// The rate limits (general slots or address table) are not the
    /// desired ones: rewrite them (`apply::Prepared::force_limits`).
    pub limits_differ: bool,
    /// Every difference, one line each, in operator terms.
    pub differences: Vec<String>,
}

/// Reads the filter maps back and compares them with `desired`, compiled
/// as `rules` and `settings`.
pub fn compare(
    maps: &KernelMaps,
    desired: &FilterState,
    rules: &CompiledRules,
    settings: &CompiledSettings,
    wall_now: u64,
) -> Result<InstalledView, ApplyError> {
    let mut view = InstalledView::default();
    let active = compare_config(maps, rules, settings, &mut view.differences)?;
    let rule_difference = compare_rules(maps, active & 1, rules)?;
    view.rules_differ = rule_difference.is_some();
    view.differences.extend(rule_difference);
    view.state.rules = if view.rules_differ {
        Vec::new()
    } else {
        desired.rules.clone()
    };
    view.state.blocklist = compare_blocklist(maps, desired, wall_now, &mut view.differences)?;
    if compare_rate_limits(maps, settings)? {
        view.state.rate_limits = desired.rate_limits.clone();
    } else {
        view.limits_differ = true;
        view.differences.push(format!(
            "rate limits: the kernel's differ from the state's {}",
            desired.rate_limits.len()
        ));
    }
    compare_port_sets(maps, settings, &mut view.differences)?;
    view.state.guards.amplification.expect = compare_prefix_set(
        maps,
        PrefixSet::ReflectionExpected,
        &settings.reflection_expected,
        &mut view.differences,
    )?;
    view.state.management.prefixes = compare_prefix_set(
        maps,
        PrefixSet::Management,
        &settings.management_prefixes,
        &mut view.differences,
    )?;
    Ok(view)
}

/// The filter config against the compiled settings and rule flags (a
/// difference is pushed to `differences`); returns the kernel's active
/// rule buffer word.
fn compare_config(
    maps: &KernelMaps,
    rules: &CompiledRules,
    settings: &CompiledSettings,
    differences: &mut Vec<String>,
) -> Result<u32, ApplyError> {
    let live = maps.read_config()?;
    let mut wanted = settings.config;
    wanted.flags |= rule_flags(rules);
    let config_same = live.flags == wanted.flags
        && live.rate_limits == wanted.rate_limits
        && live.fragments_v4 == wanted.fragments_v4
        && live.fragments_v6 == wanted.fragments_v6
        && live.tunnel_limits == wanted.tunnel_limits;
    if !config_same {
        differences.push(if live == Default::default() {
            "filter settings: the kernel has none (its maps are new or were emptied)".into()
        } else {
            "filter settings (guards, fragment policy, default action) differ".into()
        });
    }
    Ok(live.active)
}

/// True when the rate limit array holds exactly the compiled general
/// limits (the slots past them empty) and the address table exactly the
/// limits of one address.
fn compare_rate_limits(maps: &KernelMaps, settings: &CompiledSettings) -> Result<bool, ApplyError> {
    let limits = maps.read_array(
        abi::map::RATE_LIMITS,
        MAX_RATE_LIMITS,
        size_of::<RateLimit>(),
    )?;
    let wanted_limits: Vec<u8> = (0..MAX_RATE_LIMITS as usize)
        .flat_map(|index| {
            settings
                .rate_limits
                .get(index)
                .copied()
                .unwrap_or_default()
                .bytes()
                .to_vec()
        })
        .collect();
    Ok(limits == wanted_limits
        && super::apply::address_limits::address_limits_match(maps, &settings.address_limits)?)
}

/// The amplification guard's, management and SYN-cookie port bitmaps
/// against the compiled ones; each that differs is pushed to `differences`.
fn compare_port_sets(
    maps: &KernelMaps,
    settings: &CompiledSettings,
    differences: &mut Vec<String>,
) -> Result<(), ApplyError> {
    for (name, bitmap) in [
        (abi::map::REFLECTION_PORTS, &settings.reflection_ports),
        (abi::map::MGMT_PORTS, &settings.management_ports),
        (abi::map::SYNCOOKIE_PORTS, &settings.syncookie_ports),
    ] {
        let words = maps.read_array(name, PORT_WORDS as u32, 8)?;
        let wanted: Vec<u8> = (0..PORT_WORDS)
            .flat_map(|index| bitmap.get(index).copied().unwrap_or(0).to_ne_bytes())
            .collect();
        if words != wanted {
            differences.push(format!("{}: port set differs", port_set_name(name)));
        }
    }
    Ok(())
}

fn rule_flags(rules: &CompiledRules) -> u32 {
    let mut flags = 0;
    if !rules.sources.is_empty() {
        flags |= FILTER_SOURCE_RULES;
    }
    if !rules.destinations.is_empty() {
        flags |= FILTER_DESTINATION_RULES;
    }
    flags
}

fn port_set_name(map: &str) -> &'static str {
    match map {
        abi::map::REFLECTION_PORTS => "amplification guard",
        abi::map::MGMT_PORTS => "management ports",
        _ => "SYN-cookie ports",
    }
}

/// The active rule buffer against the compiled rules; `Some(why)` when
/// they differ.
fn compare_rules(
    maps: &KernelMaps,
    buffer: u32,
    compiled: &CompiledRules,
) -> Result<Option<String>, ApplyError> {
    let [rules_map, chains_map, prefixes_map, lengths_map] = buffer_maps(buffer);
    let head = |count: usize, max: u32| (count as u32 + 1).min(max);
    let rules = maps.read_array(
        rules_map,
        head(compiled.rules.len(), MAX_RULES),
        size_of::<Rule>(),
    )?;
    let chains = maps.read_array(
        chains_map,
        head(compiled.chains.len(), MAX_CHAINS),
        size_of::<RuleChain>(),
    )?;
    let (keys, values) = maps.read_hash(prefixes_map, 24, 4)?;
    let in_kernel = keys.len() / 24;
    let wanted_prefixes = compiled.sources.len() + compiled.destinations.len();
    let prefixes_same =
        in_kernel == wanted_prefixes && rule_prefixes_same(&keys, &values, compiled);
    let lengths = maps.read_array(lengths_map, LENGTHS_SLOTS, LENGTHS_SIZE)?;
    let rules_same = same_head(
        &rules,
        compiled
            .rules
            .iter()
            .flat_map(|rule| rule.bytes().to_vec())
            .collect(),
    );
    let chains_same = same_head(
        &chains,
        compiled
            .chains
            .iter()
            .flat_map(|chain| chain.bytes().to_vec())
            .collect(),
    );
    if rules_same && chains_same && prefixes_same && lengths == wanted_lengths(compiled) {
        return Ok(None);
    }
    Ok(Some(format!(
        "rules: the kernel's active rule set differs from the state's {} rules ({in_kernel} of {wanted_prefixes} rule prefixes in the kernel)",
        compiled.rules.len()
    )))
}

/// True when the rule prefix hash (`keys` and `values` laid end to end)
/// maps every compiled source and destination prefix to its chain.
fn rule_prefixes_same(keys: &[u8], values: &[u8], compiled: &CompiledRules) -> bool {
    let kernel: HashMap<&[u8], &[u8]> = keys.chunks_exact(24).zip(values.chunks_exact(4)).collect();
    [
        (DIRECTION_SOURCE, &compiled.sources),
        (DIRECTION_DESTINATION, &compiled.destinations),
    ]
    .into_iter()
    .all(|(direction, entries)| {
        entries.iter().all(|(key, chain)| {
            kernel.get(&hash_key(key, direction)[..]) == Some(&&chain.to_ne_bytes()[..])
        })
    })
}

/// The prefix length array the compiled rules need, every slot laid out.
fn wanted_lengths(compiled: &CompiledRules) -> Vec<u8> {
    [DIRECTION_SOURCE, DIRECTION_DESTINATION]
        .into_iter()
        .flat_map(|direction| [FAMILY_V4, FAMILY_V6].map(|family| (direction, family)))
        .map(|(direction, family)| {
            let present = if direction == DIRECTION_SOURCE {
                &compiled.source_lengths
            } else {
                &compiled.destination_lengths
            };
            let slot = xdpath_core::filter::lengths_slot(direction, family);
            (slot, lengths_bytes(&present[usize::from(family)]))
        })
        .fold(
            vec![0u8; LENGTHS_SLOTS as usize * LENGTHS_SIZE],
            |mut all, (slot, bytes)| {
                let start = slot as usize * LENGTHS_SIZE;
                if let Some(place) = all.get_mut(start..start + LENGTHS_SIZE) {
                    place.copy_from_slice(&bytes);
                }
                all
            },
        )
}

/// True when `read` starts with `wanted` and is zero after it.
fn same_head(read: &[u8], wanted: Vec<u8>) -> bool {
    read.len() >= wanted.len()
        && read[..wanted.len()] == wanted[..]
        && read[wanted.len()..].iter().all(|byte| *byte == 0)
}

/// The blocklist tries (plain and tunnel) against the desired blocklist.
/// Returns the kernel's entries as block specs: a desired entry where the
/// kernel holds it as asked, otherwise one whose expiry can match nothing
/// (so apply rewrites or removes it).
fn compare_blocklist(
    maps: &KernelMaps,
    desired: &FilterState,
    wall_now: u64,
    differences: &mut Vec<String>,
) -> Result<Vec<BlockSpec>, ApplyError> {
    let monotonic_now = monotonic_now_ns();
    let wanted: HashMap<BlockKey, &BlockSpec> = desired
        .blocklist
        .iter()
        .map(|entry| (entry.key(), entry))
        .collect();
    let (mut extra, mut different) = (0usize, 0usize);
    let mut seen = HashSet::with_capacity(wanted.len());
    let mut view = Vec::new();
    for (entry, kernel_expiry) in kernel_blocklist(maps)? {
        let Some(entry) = entry else {
            extra += 1;
            continue;
        };
        let key = entry.key();
        seen.insert(key);
        match wanted.get(&key) {
            Some(wanted) => {
                let expected =
                    super::apply::monotonic_expiry(wanted.expires_at, wall_now, monotonic_now);
                if (expected == 0) == (kernel_expiry == 0)
                    && expected.abs_diff(kernel_expiry) <= EXPIRY_TOLERANCE_NS
                {
                    view.push(**wanted);
                } else {
                    different += 1;
                    view.push(entry);
                }
            }
            None => {
                extra += 1;
                view.push(entry);
            }
        }
    }
    let missing = wanted.keys().filter(|key| !seen.contains(*key)).count();
    if missing + extra + different > 0 {
        differences.push(format!(
            "blocklist: {missing} of the state's {} entries missing from the kernel, {extra} in the kernel that the state does not hold, {different} with another expiry",
            desired.blocklist.len()
        ));
    }
    Ok(view)
}

/// Both blocklist tries' entries with their expiry (monotonic ns), each as
/// a block spec whose expiry can match nothing (so apply rewrites or
/// removes it unless the state holds it as it is); `None` for a key
/// xdpath did not write.
fn kernel_blocklist(maps: &KernelMaps) -> Result<Vec<(Option<BlockSpec>, u64)>, ApplyError> {
    let expiry = |value: &[u8]| {
        value
            .get(..8)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, u64::from_ne_bytes)
    };
    let unmatchable = |vni: Option<u32>, prefix: Cidr| BlockSpec {
        prefix,
        expires_at: Some(u64::MAX),
        vni,
    };
    let mut entries = Vec::new();
    for (key, value) in maps.entries(abi::map::BLOCKLIST, 20, size_of::<BlockEntry>())? {
        let entry = prefix_from_trie_key(&key).map(|prefix| unmatchable(None, prefix));
        entries.push((entry, expiry(&value)));
    }
    for (key, value) in maps.entries(abi::map::TUNNEL_BLOCKLIST, 24, size_of::<BlockEntry>())? {
        let entry =
            prefix_from_tunnel_trie_key(&key).map(|(vni, prefix)| unmatchable(Some(vni), prefix));
        entries.push((entry, expiry(&value)));
    }
    Ok(entries)
}

/// The VNI and prefix of a `TUNNEL_BLOCKLIST` key.
fn prefix_from_tunnel_trie_key(key: &[u8]) -> Option<(u32, Cidr)> {
    let length = u32::from_ne_bytes(key.get(..4)?.try_into().ok()?);
    let vni = u32::from_be_bytes(key.get(4..8)?.try_into().ok()?);
    let mut plain = [0u8; 20];
    for (slot, byte) in plain.iter_mut().zip(
        length
            .checked_sub(VNI_KEY_BITS)?
            .to_ne_bytes()
            .iter()
            .chain(key.get(8..24)?),
    ) {
        *slot = *byte;
    }
    let prefix = prefix_from_trie_key(&plain)?;
    // As there: the key must be the one xdpath would write.
    let written = tunnel_trie_key(&TunnelPrefixKey::new(vni, prefix.key()));
    (key.get(..24) == Some(&written[..])).then_some((vni, prefix))
}

/// A small prefix set (a trie of prefix → 1) against the wanted keys;
/// returns the kernel's prefixes.
fn compare_prefix_set(
    maps: &KernelMaps,
    set: PrefixSet,
    wanted: &[PrefixKey],
    differences: &mut Vec<String>,
) -> Result<Vec<Cidr>, ApplyError> {
    let map = prefix_map(set);
    let kernel: Vec<Cidr> = maps
        .entries(map, 20, 1)?
        .iter()
        .filter_map(|(key, _)| prefix_from_trie_key(key))
        .collect();
    let have: HashSet<PrefixKey> = kernel.iter().map(Cidr::key).collect();
    let want: HashSet<PrefixKey> = wanted.iter().copied().collect();
    if have != want {
        let name = match set {
            PrefixSet::ReflectionExpected => "amplification guard's expected destinations",
            PrefixSet::Management => "management prefixes",
        };
        differences.push(format!(
            "{name}: the kernel holds {} of the state's {} ({} extra)",
            have.intersection(&want).count(),
            want.len(),
            have.difference(&want).count()
        ));
    }
    Ok(kernel)
}

/// The prefix of a `bpf_lpm_trie_key` with a 16-byte address (IPv4 as
/// IPv4-mapped with length 96 + n).
pub(crate) fn prefix_from_trie_key(key: &[u8]) -> Option<Cidr> {
    let length = u32::from_ne_bytes(key.get(..4)?.try_into().ok()?);
    let address: [u8; 16] = key.get(4..20)?.try_into().ok()?;
    let mapped = address[..10].iter().all(|byte| *byte == 0) && address[10..12] == [0xff, 0xff];
    let (ipv4, length) = if mapped && length >= 96 {
        (true, length - 96)
    } else {
        (false, length)
    };
    let cidr = Cidr {
        address,
        length: u8::try_from(length).ok().filter(|length| *length <= 128)?,
        ipv4,
    };
    // The key of what was read must be the key read: anything else is not
    // an entry xdpath wrote.
    (trie_key(&cidr.key())[..] == key[..20]).then_some(cidr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_keys_read_back_as_the_prefixes_written() {
        for text in [
            "10.0.0.0/8",
            "192.0.2.7/32",
            "0.0.0.0/0",
            "2001:db8::/32",
            "::/0",
        ] {
            let cidr: Cidr = text.parse().expect("prefix");
            let back = prefix_from_trie_key(&trie_key(&cidr.key())).expect("read back");
            assert_eq!(back, cidr, "{text}");
        }
        assert!(prefix_from_trie_key(&[0u8; 3]).is_none());
    }

    #[test]
    fn tunnel_trie_keys_read_back_as_the_vni_and_prefix_written() {
        for (vni, text) in [
            (1001, "10.0.0.0/8"),
            (0, "192.0.2.7/32"),
            (16_777_215, "2001:db8::/32"),
        ] {
            let cidr: Cidr = text.parse().expect("prefix");
            let key = tunnel_trie_key(&TunnelPrefixKey::new(vni, cidr.key()));
            assert_eq!(
                prefix_from_tunnel_trie_key(&key),
                Some((vni, cidr)),
                "{text}"
            );
        }
        // A length shorter than the VNI's bits is no key xdpath writes.
        let mut short = tunnel_trie_key(&TunnelPrefixKey::new(
            7,
            "10.0.0.0/8".parse::<Cidr>().expect("prefix").key(),
        ));
        short[..4].copy_from_slice(&16u32.to_ne_bytes());
        assert!(prefix_from_tunnel_trie_key(&short).is_none());
        assert!(prefix_from_tunnel_trie_key(&[0u8; 20]).is_none());
    }
}
