//! [`FilterTarget`] for [`KernelMaps`]: the filter's operations (config,
//! rule buffers, counters, blocklist, rate limits, ports, prefix sets) as
//! element operations on the kernel's maps.

use xdpath_core::abi;
use xdpath_core::filter::{
    lengths_slot, AddressLimit, AddressLimitKey, BlockEntry, FilterConfig, PrefixHashKey,
    PrefixKey, RateLimit, Rule, RuleChain, TunnelPrefixKey, DIRECTION_DESTINATION,
    DIRECTION_SOURCE, FAMILY_V4, FAMILY_V6, LENGTHS_SLOTS, MAX_CHAINS, MAX_RULES,
};

use super::{
    buffer_maps, hash_key, lengths_bytes, monotonic_now_ns, trie_key, tunnel_trie_key,
    FromPlainBytes, KernelMaps, PlainBytes, LENGTHS_SIZE,
};
use crate::control::apply::{ApplyError, FilterTarget, PortSet, PrefixSet};
use crate::control::compile::{CompiledRules, PORT_WORDS};
use crate::control::state::BlockKey;

impl KernelMaps {
    /// Writes `entries` to the array `map` from index 0, in batches.
    fn write_table<T: PlainBytes>(
        &self,
        map: &'static str,
        entries: &[T],
    ) -> Result<(), ApplyError> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = entries
            .iter()
            .flat_map(|entry| entry.bytes().to_vec())
            .collect();
        self.write_array(map, 0, &bytes, std::mem::size_of::<T>())
    }
}

impl FilterTarget for KernelMaps {
    fn read_config(&self) -> Result<FilterConfig, ApplyError> {
        let mut bytes = [0u8; std::mem::size_of::<FilterConfig>()];
        if self.lookup(abi::map::FILTER_CONFIG, &0u32.to_ne_bytes(), &mut bytes)? {
            return Ok(FilterConfig::from_ne_bytes(&bytes));
        }
        Ok(FilterConfig::default())
    }

    fn write_config(&mut self, config: FilterConfig) -> Result<(), ApplyError> {
        self.update(abi::map::FILTER_CONFIG, &0u32.to_ne_bytes(), config.bytes())
    }

    fn clear_buffer(&mut self, buffer: u32) -> Result<(), ApplyError> {
        let [rules, chains, prefixes, lengths] = buffer_maps(buffer);
        // Lengths first: the (inactive) buffer stops probing before its
        // entries go. A zeroed slot probes nothing and has no /0 chain.
        for slot in 0..LENGTHS_SLOTS {
            self.update(lengths, &slot.to_ne_bytes(), &[0u8; LENGTHS_SIZE])?;
        }
        self.clear_hash(prefixes, std::mem::size_of::<PrefixHashKey>(), 4)?;
        self.clear_array_head(chains, std::mem::size_of::<RuleChain>(), MAX_CHAINS)?;
        self.clear_array_head(rules, std::mem::size_of::<Rule>(), MAX_RULES)
    }

    fn write_buffer(&mut self, buffer: u32, compiled: &CompiledRules) -> Result<(), ApplyError> {
        let [rules, chains, prefixes, lengths] = buffer_maps(buffer);
        // Whole tables in a few batch calls, not one call an entry.
        self.write_table(rules, &compiled.rules)?;
        self.write_table(chains, &compiled.chains)?;
        for (direction, entries, present) in [
            (
                DIRECTION_SOURCE,
                &compiled.sources,
                &compiled.source_lengths,
            ),
            (
                DIRECTION_DESTINATION,
                &compiled.destinations,
                &compiled.destination_lengths,
            ),
        ] {
            let mut keys = Vec::with_capacity(entries.len() * 24);
            let mut values = Vec::with_capacity(entries.len() * 4);
            for (key, chain) in entries {
                keys.extend_from_slice(&hash_key(key, direction));
                values.extend_from_slice(&chain.to_ne_bytes());
            }
            self.write_hash(prefixes, &keys, &values, entries.len())?;
            for family in [FAMILY_V4, FAMILY_V6] {
                self.update(
                    lengths,
                    &lengths_slot(direction, family).to_ne_bytes(),
                    &lengths_bytes(&present[usize::from(family)]),
                )?;
            }
        }
        Ok(())
    }

    fn zero_rule_hits(&mut self, id: u32) -> Result<(), ApplyError> {
        self.per_cpu_zero(abi::map::RULE_HITS, id)
    }

    fn rule_hits(&self, id: u32) -> Result<u64, ApplyError> {
        self.per_cpu_sum(abi::map::RULE_HITS, id)
    }

    fn insert_block(&mut self, key: BlockKey, entry: BlockEntry) -> Result<(), ApplyError> {
        match key.vni {
            None => self.update(abi::map::BLOCKLIST, &trie_key(&key.prefix), entry.bytes()),
            Some(vni) => self.update(
                abi::map::TUNNEL_BLOCKLIST,
                &tunnel_trie_key(&TunnelPrefixKey::new(vni, key.prefix)),
                entry.bytes(),
            ),
        }
    }

    fn remove_block(&mut self, key: BlockKey) -> Result<(), ApplyError> {
        match key.vni {
            None => self.delete(abi::map::BLOCKLIST, &trie_key(&key.prefix)),
            Some(vni) => self.delete(
                abi::map::TUNNEL_BLOCKLIST,
                &tunnel_trie_key(&TunnelPrefixKey::new(vni, key.prefix)),
            ),
        }
    }

    fn write_rate_limits(&mut self, limits: &[RateLimit]) -> Result<(), ApplyError> {
        let empty = RateLimit::default();
        for index in 0..xdpath_core::filter::MAX_RATE_LIMITS {
            let limit = limits.get(index as usize).unwrap_or(&empty);
            self.update(abi::map::RATE_LIMITS, &index.to_ne_bytes(), limit.bytes())?;
        }
        Ok(())
    }

    fn zero_limit_drops(&mut self, index: u32) -> Result<(), ApplyError> {
        self.per_cpu_zero(abi::map::LIMIT_DROPS, index)
    }

    fn limit_drops(&self, index: u32) -> Result<u64, ApplyError> {
        self.per_cpu_sum(abi::map::LIMIT_DROPS, index)
    }

    fn write_address_limit(
        &mut self,
        key: &AddressLimitKey,
        entry: AddressLimit,
    ) -> Result<(), ApplyError> {
        self.update(abi::map::ADDRESS_LIMITS, key.bytes(), entry.bytes())
    }

    fn remove_address_limit(&mut self, key: &AddressLimitKey) -> Result<(), ApplyError> {
        self.delete(abi::map::ADDRESS_LIMITS, key.bytes())
    }

    fn address_limit_entries(&self) -> Result<Vec<(AddressLimitKey, AddressLimit)>, ApplyError> {
        let (key_size, value_size) = (size_of::<AddressLimitKey>(), size_of::<AddressLimit>());
        let (keys, values) = self.read_hash(abi::map::ADDRESS_LIMITS, key_size, value_size)?;
        Ok(keys
            .chunks_exact(key_size)
            .zip(values.chunks_exact(value_size))
            .filter_map(|(key, value)| {
                Some((
                    AddressLimitKey::from_plain_bytes(key)?,
                    AddressLimit::from_plain_bytes(value)?,
                ))
            })
            .collect())
    }

    fn write_ports(&mut self, set: PortSet, bitmap: &[u64]) -> Result<(), ApplyError> {
        let map = match set {
            PortSet::Reflection => abi::map::REFLECTION_PORTS,
            PortSet::Management => abi::map::MGMT_PORTS,
            PortSet::SynCookie => abi::map::SYNCOOKIE_PORTS,
        };
        // One read of the whole bitmap, then only the words that differ:
        // most changes touch no port set at all.
        let current = self.read_array(map, PORT_WORDS as u32, 8)?;
        for (index, word) in current.chunks_exact(8).enumerate() {
            let wanted = bitmap.get(index).copied().unwrap_or(0);
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            if u64::from_ne_bytes(bytes) != wanted {
                self.update(map, &(index as u32).to_ne_bytes(), &wanted.to_ne_bytes())?;
            }
        }
        Ok(())
    }

    fn insert_prefix(&mut self, set: PrefixSet, key: PrefixKey) -> Result<(), ApplyError> {
        self.update(prefix_map(set), &trie_key(&key), &[1u8])
    }

    fn remove_prefix(&mut self, set: PrefixSet, key: PrefixKey) -> Result<(), ApplyError> {
        self.delete(prefix_map(set), &trie_key(&key))
    }

    fn monotonic_now_ns(&self) -> u64 {
        monotonic_now_ns()
    }
}

pub(crate) fn prefix_map(set: PrefixSet) -> &'static str {
    match set {
        PrefixSet::ReflectionExpected => abi::map::REFLECTION_OK,
        PrefixSet::Management => abi::map::MGMT_SOURCES,
    }
}
