//! Installing a compiled state into a [`FilterTarget`]: the kernel's maps
//! ([`super::kernel::KernelMaps`]) or the native build's
//! [`NativeTables`]. Both go through [`apply`], so one state is installed
//! identically in both builds.
//!
//! Rules change atomically: the whole set is written into the inactive
//! buffer, the hit counters of new rule ids are zeroed, one write of
//! `FilterConfig` (with `active` flipped) makes it live, and the old buffer
//! is then cleared. Everything is compiled, and so validated, before the
//! first write.

use std::collections::HashMap;

pub(crate) mod address_limits;

use xdpath_core::filter::{
    prefix_family, AddressLimit, AddressLimitKey, BlockEntry, FilterConfig, PrefixKey, RateLimit,
    TunnelPrefixKey, FILTER_ADDRESS_LIMITS_DESTINATION, FILTER_ADDRESS_LIMITS_SOURCE,
    FILTER_DESTINATION_RULES, FILTER_SOURCE_RULES,
};
use xdpath_core::native::RuleBuffer;
use xdpath_core::NativeTables;
use xdpath_core::Tables;

use super::compile::{
    compile_rules, compile_settings, CompileError, CompiledRules, CompiledSettings,
    InterfaceResolver,
};
use super::state::{BlockKey, BlockSpec, FilterState};

/// Errors writing to a target.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A map could not be opened, read or written.
    #[error("map {map}: {source}")]
    Map {
        /// The map.
        map: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The shared maps could not be created.
    #[error("creating the filter maps: {0}")]
    Dataplane(#[from] crate::dataplane::DataplaneError),
}

/// The port bitmaps of the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortSet {
    /// `REFLECTION_PORTS`.
    Reflection,
    /// `MGMT_PORTS`.
    Management,
    /// `SYNCOOKIE_PORTS`.
    SynCookie,
}

/// The small prefix sets of the filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefixSet {
    /// `REFLECTION_OK`.
    ReflectionExpected,
    /// `MGMT_SOURCES`.
    Management,
}

/// Where filter state is installed.
pub trait FilterTarget {
    /// The live configuration.
    fn read_config(&self) -> Result<FilterConfig, ApplyError>;
    /// Replaces the configuration.
    fn write_config(&mut self, config: FilterConfig) -> Result<(), ApplyError>;
    /// Empties rule buffer `buffer`: rules, chains, both tries.
    fn clear_buffer(&mut self, buffer: u32) -> Result<(), ApplyError>;
    /// Writes a compiled rule set into the (empty) buffer `buffer`.
    fn write_buffer(&mut self, buffer: u32, rules: &CompiledRules) -> Result<(), ApplyError>;
    /// Zeroes the hit counter of a rule id.
    fn zero_rule_hits(&mut self, id: u32) -> Result<(), ApplyError>;
    /// The hits of a rule id (summed over CPUs).
    fn rule_hits(&self, id: u32) -> Result<u64, ApplyError>;
    /// Inserts or replaces a blocklist entry (of the tunnel blocklist when
    /// the key has a VNI).
    fn insert_block(&mut self, key: BlockKey, entry: BlockEntry) -> Result<(), ApplyError>;
    /// Removes a blocklist entry (absent is fine).
    fn remove_block(&mut self, key: BlockKey) -> Result<(), ApplyError>;
    /// Writes the rate limits from index 0.
    fn write_rate_limits(&mut self, limits: &[RateLimit]) -> Result<(), ApplyError>;
    /// Zeroes the drop counter of limit `index`.
    fn zero_limit_drops(&mut self, index: u32) -> Result<(), ApplyError>;
    /// The drops of limit `index` (summed over CPUs).
    fn limit_drops(&self, index: u32) -> Result<u64, ApplyError>;
    /// Inserts or replaces the address limit at `key`.
    fn write_address_limit(
        &mut self,
        key: &AddressLimitKey,
        entry: AddressLimit,
    ) -> Result<(), ApplyError>;
    /// Removes the address limit at `key` (absent is fine).
    fn remove_address_limit(&mut self, key: &AddressLimitKey) -> Result<(), ApplyError>;
    /// Every address limit with its key: in the kernel one batch read
    /// (`BPF_MAP_LOOKUP_BATCH`, a few calls for 65,536 entries, where a
    /// walk took two calls an entry: about a second a change at 60,000).
    fn address_limit_entries(&self) -> Result<Vec<(AddressLimitKey, AddressLimit)>, ApplyError>;
    /// Replaces a port bitmap (1024 words).
    fn write_ports(&mut self, set: PortSet, bitmap: &[u64]) -> Result<(), ApplyError>;
    /// Adds a prefix to a set.
    fn insert_prefix(&mut self, set: PrefixSet, key: PrefixKey) -> Result<(), ApplyError>;
    /// Removes a prefix from a set (absent is fine).
    fn remove_prefix(&mut self, set: PrefixSet, key: PrefixKey) -> Result<(), ApplyError>;
    /// Now on the clock the data path compares block expiry with (ns).
    fn monotonic_now_ns(&self) -> u64;
}

/// A state compiled and checked, ready to go in.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The rules, when they changed.
    pub rules: Option<CompiledRules>,
    /// Everything else.
    pub settings: CompiledSettings,
    /// Write the rate limits even if `previous` has the same: the kernel's
    /// were read back different (`readback::InstalledView::limits_differ`;
    /// with no limits in the state, the view cannot say so otherwise).
    pub force_limits: bool,
}

/// Why a state could not be installed: it does not compile, or a write
/// failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The state is refused; nothing was written.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// A write failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
}

/// Compiles `next` against what the target holds (`previous`): the rules
/// only when they changed (or `force_rules`).
pub fn prepare(
    target: &dyn FilterTarget,
    previous: &FilterState,
    next: &FilterState,
    resolve: InterfaceResolver<'_>,
    force_rules: bool,
) -> Result<Prepared, InstallError> {
    let rules = if force_rules || previous.rules != next.rules {
        Some(compile_rules(&next.rules, resolve)?)
    } else {
        None
    };
    let settings = match &rules {
        Some(rules) => compile_settings(next, rules)?,
        None => {
            let live = target.read_config()?;
            let mut settings = compile_settings(next, &CompiledRules::default())?;
            settings.config.flags |= live.flags & (FILTER_SOURCE_RULES | FILTER_DESTINATION_RULES);
            settings
        }
    };
    Ok(Prepared {
        rules,
        settings,
        force_limits: false,
    })
}

/// Wall-clock Unix seconds → the data path's monotonic ns. An expiry in
/// the past becomes a monotonic time in the past (never 0, "no expiry").
pub fn monotonic_expiry(expires_at: Option<u64>, wall_now: u64, monotonic_now_ns: u64) -> u64 {
    let Some(expires_at) = expires_at else {
        return 0;
    };
    let expiry = if expires_at >= wall_now {
        let ahead = (expires_at - wall_now).saturating_mul(1_000_000_000);
        monotonic_now_ns.saturating_add(ahead)
    } else {
        let behind = (wall_now - expires_at).saturating_mul(1_000_000_000);
        monotonic_now_ns.saturating_sub(behind)
    };
    expiry.max(1)
}

/// Installs `next` into a target that holds `previous`.
pub fn apply(
    target: &mut dyn FilterTarget,
    previous: &FilterState,
    next: &FilterState,
    prepared: &Prepared,
    wall_now: u64,
) -> Result<(), ApplyError> {
    let live = target.read_config()?;
    let mut config = prepared.settings.config;
    config.active = live.active & 1;
    let old_buffer = live.active & 1;
    if let Some(rules) = &prepared.rules {
        let new_buffer = old_buffer ^ 1;
        write_inactive_rules(target, previous, next, rules, new_buffer)?;
        config.active = new_buffer;
    }
    apply_blocklist(target, previous, next, wall_now)?;
    let settings = &prepared.settings;
    let limits_changed = apply_rate_limits(target, previous, next, prepared, &live)?;
    target.write_ports(PortSet::Reflection, &settings.reflection_ports)?;
    target.write_ports(PortSet::Management, &settings.management_ports)?;
    target.write_ports(PortSet::SynCookie, &settings.syncookie_ports)?;
    let previous_settings = previous_prefix_sets(previous);
    // New prefixes go in before the config switches, old ones out after.
    let prefix_sets = [
        (
            PrefixSet::ReflectionExpected,
            &previous_settings.0,
            &settings.reflection_expected,
        ),
        (
            PrefixSet::Management,
            &previous_settings.1,
            &settings.management_prefixes,
        ),
    ];
    for (set, old, new) in prefix_sets {
        for key in new.iter().filter(|key| !old.contains(key)) {
            target.insert_prefix(set, *key)?;
        }
    }
    target.write_config(config)?;
    for (set, old, new) in prefix_sets {
        for key in old.iter().filter(|key| !new.contains(key)) {
            target.remove_prefix(set, *key)?;
        }
    }
    if limits_changed {
        // After the config: a limit leaving the table for a general slot
        // is enforced there only once the config counts that slot.
        address_limits::remove_stale_address_limits(target, &settings.address_limits)?;
    }
    if prepared.rules.is_some() {
        target.clear_buffer(old_buffer)?;
    }
    Ok(())
}

/// Writes `rules` into the inactive buffer `new_buffer` (cleared first) and
/// zeroes the hit counters of rule ids `previous` did not have.
fn write_inactive_rules(
    target: &mut dyn FilterTarget,
    previous: &FilterState,
    next: &FilterState,
    rules: &CompiledRules,
    new_buffer: u32,
) -> Result<(), ApplyError> {
    // Normally empty already; a crash half-way may have left entries.
    target.clear_buffer(new_buffer)?;
    target.write_buffer(new_buffer, rules)?;
    let old_ids: std::collections::HashSet<u32> =
        previous.rules.iter().map(|rule| rule.id).collect();
    for rule in next.rules.iter().filter(|rule| !old_ids.contains(&rule.id)) {
        target.zero_rule_hits(rule.id)?;
    }
    Ok(())
}

/// Removes the blocklist entries `next` lacks, then writes those that are
/// new or whose expiry changed.
fn apply_blocklist(
    target: &mut dyn FilterTarget,
    previous: &FilterState,
    next: &FilterState,
    wall_now: u64,
) -> Result<(), ApplyError> {
    // Blocklist entries do not depend on each other or on the config:
    // the ones going away go first, so a set that replaces another fits
    // the map even when the two together would not.
    let monotonic_now = target.monotonic_now_ns();
    let old_blocks: HashMap<BlockKey, Option<u64>> = previous
        .blocklist
        .iter()
        .map(|entry| (entry.key(), entry.expires_at))
        .collect();
    let new_keys: std::collections::HashSet<BlockKey> =
        next.blocklist.iter().map(BlockSpec::key).collect();
    for key in old_blocks.keys().filter(|key| !new_keys.contains(*key)) {
        target.remove_block(*key)?;
    }
    for entry in &next.blocklist {
        let key = entry.key();
        if old_blocks.get(&key) != Some(&entry.expires_at) {
            let value = BlockEntry {
                expires_at_ns: monotonic_expiry(entry.expires_at, wall_now, monotonic_now),
                prefix_len: key.prefix.prefix_len,
                reserved: 0,
            };
            target.insert_block(key, value)?;
        }
    }
    Ok(())
}

/// Writes the rate limits when they changed, zeroing the drop counters of
/// general slots that now hold another limit, and makes the address table
/// hold the limits of one address.
///
/// The table's new entries go in first, and the lookups of a side the
/// table did not hold are switched on (`live`'s config with their flags)
/// before the general slots are rewritten: a limit moving from those to
/// the table is never enforced nowhere. Its stale entries go after the
/// config (`apply`). Whether the limits changed.
fn apply_rate_limits(
    target: &mut dyn FilterTarget,
    previous: &FilterState,
    next: &FilterState,
    prepared: &Prepared,
    live: &FilterConfig,
) -> Result<bool, ApplyError> {
    if previous.rate_limits == next.rate_limits && !prepared.force_limits {
        return Ok(false);
    }
    let settings = &prepared.settings;
    let old_slots = super::compile::slot_ids(&previous.rate_limits);
    address_limits::write_address_limits(target, &settings.address_limits)?;
    let sides = FILTER_ADDRESS_LIMITS_DESTINATION | FILTER_ADDRESS_LIMITS_SOURCE;
    let new_sides = settings.config.flags & sides & !live.flags;
    if new_sides != 0 {
        target.write_config(FilterConfig {
            flags: live.flags | new_sides,
            ..*live
        })?;
    }
    target.write_rate_limits(&settings.rate_limits)?;
    for (slot, id) in super::compile::slot_ids(&next.rate_limits)
        .into_iter()
        .enumerate()
    {
        if old_slots.get(slot) != Some(&id) {
            target.zero_limit_drops(slot as u32)?;
        }
    }
    Ok(true)
}

fn previous_prefix_sets(previous: &FilterState) -> (Vec<PrefixKey>, Vec<PrefixKey>) {
    (
        previous
            .guards
            .amplification
            .expect
            .iter()
            .map(|cidr| cidr.key())
            .collect(),
        previous
            .management
            .prefixes
            .iter()
            .map(|cidr| cidr.key())
            .collect(),
    )
}

/// Compiles and installs `state` into a target that holds nothing yet.
pub fn install_fresh(
    target: &mut dyn FilterTarget,
    state: &FilterState,
    resolve: InterfaceResolver<'_>,
    wall_now: u64,
) -> Result<(), InstallError> {
    let empty = FilterState::default();
    let prepared = prepare(target, &empty, state, resolve, true)?;
    apply(target, &empty, state, &prepared, wall_now)?;
    Ok(())
}

impl FilterTarget for NativeTables {
    fn read_config(&self) -> Result<FilterConfig, ApplyError> {
        Ok(self.filter)
    }

    fn write_config(&mut self, config: FilterConfig) -> Result<(), ApplyError> {
        self.filter = config;
        Ok(())
    }

    fn clear_buffer(&mut self, buffer: u32) -> Result<(), ApplyError> {
        if let Some(slot) = self.buffers.get_mut(buffer as usize) {
            *slot = RuleBuffer::default();
        }
        Ok(())
    }

    fn write_buffer(&mut self, buffer: u32, rules: &CompiledRules) -> Result<(), ApplyError> {
        let Some(slot) = self.buffers.get_mut(buffer as usize) else {
            return Ok(());
        };
        slot.rules = rules.rules.clone();
        slot.chains = rules.chains.clone();
        for (maps, entries) in [
            (&mut slot.source_prefixes, &rules.sources),
            (&mut slot.destination_prefixes, &rules.destinations),
        ] {
            for &(key, chain) in entries {
                let family = prefix_family(&key.address, key.prefix_len as u8);
                if let Some(map) = maps.get_mut(usize::from(family)) {
                    map.insert(key, chain);
                }
            }
        }
        Ok(())
    }

    fn zero_rule_hits(&mut self, id: u32) -> Result<(), ApplyError> {
        self.rule_hits.remove(id);
        Ok(())
    }

    fn rule_hits(&self, id: u32) -> Result<u64, ApplyError> {
        Ok(self.rule_hits.get(id))
    }

    fn insert_block(&mut self, key: BlockKey, entry: BlockEntry) -> Result<(), ApplyError> {
        match key.vni {
            None => self.blocklist.insert(key.prefix, entry),
            Some(vni) => self
                .tunnel_blocklist
                .entry(vni)
                .or_default()
                .insert(key.prefix, entry),
        }
        Ok(())
    }

    fn remove_block(&mut self, key: BlockKey) -> Result<(), ApplyError> {
        match key.vni {
            None => {
                self.blocklist.remove(key.prefix);
            }
            Some(vni) => self.remove_tunnel_blocklist_entry(TunnelPrefixKey::new(vni, key.prefix)),
        }
        Ok(())
    }

    fn write_rate_limits(&mut self, limits: &[RateLimit]) -> Result<(), ApplyError> {
        self.rate_limits = limits.to_vec();
        Ok(())
    }

    fn zero_limit_drops(&mut self, index: u32) -> Result<(), ApplyError> {
        if let Some(drops) = self.limit_drops.get_mut(index as usize) {
            *drops = 0;
        }
        Ok(())
    }

    fn limit_drops(&self, index: u32) -> Result<u64, ApplyError> {
        Ok(self.limit_drops.get(index as usize).copied().unwrap_or(0))
    }

    fn write_address_limit(
        &mut self,
        key: &AddressLimitKey,
        entry: AddressLimit,
    ) -> Result<(), ApplyError> {
        self.set_address_limit(*key, entry);
        Ok(())
    }

    fn remove_address_limit(&mut self, key: &AddressLimitKey) -> Result<(), ApplyError> {
        NativeTables::remove_address_limit(self, key);
        Ok(())
    }

    fn address_limit_entries(&self) -> Result<Vec<(AddressLimitKey, AddressLimit)>, ApplyError> {
        Ok(NativeTables::address_limit_keys(self)
            .into_iter()
            .filter_map(|key| Some((key, NativeTables::address_limit(self, &key)?)))
            .collect())
    }

    fn write_ports(&mut self, set: PortSet, bitmap: &[u64]) -> Result<(), ApplyError> {
        let ports = (0..=u16::MAX)
            .filter(|&port| {
                bitmap
                    .get(usize::from(port >> 6))
                    .is_some_and(|word| word & (1u64 << (port & 63)) != 0)
            })
            .collect();
        match set {
            PortSet::Reflection => self.reflection_ports = ports,
            PortSet::Management => self.management_ports = ports,
            // The native build has no SYN-cookie mode.
            PortSet::SynCookie => {}
        }
        Ok(())
    }

    fn insert_prefix(&mut self, set: PrefixSet, key: PrefixKey) -> Result<(), ApplyError> {
        match set {
            PrefixSet::ReflectionExpected => self.reflection_expected.insert(key, 1),
            PrefixSet::Management => self.management_sources.insert(key, 1),
        }
        Ok(())
    }

    fn remove_prefix(&mut self, set: PrefixSet, key: PrefixKey) -> Result<(), ApplyError> {
        match set {
            PrefixSet::ReflectionExpected => self.reflection_expected.remove(key),
            PrefixSet::Management => self.management_sources.remove(key),
        };
        Ok(())
    }

    fn monotonic_now_ns(&self) -> u64 {
        self.now_ns
    }
}
