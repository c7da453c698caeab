//! The native build's tables: plain Rust collections behind [`Tables`].

/// The rate limits' token buckets, owned or shared between threads.
pub mod buckets;
/// The operator's hash maps, the longest-prefix map, rule hit counts.
mod collections;
/// The balancer's in-memory tables, a part of [`NativeTables`].
pub mod lb;

pub use collections::{FamilyPrefixMap, OperatorMap, OperatorSet, PrefixMap, RuleHits};

use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

use crate::config::InterfaceConfig;
use crate::filter::Tables;
use crate::filter::{
    address_family, AddressCharge, AddressLimit, AddressLimitKey, BlockEntry, BucketKey,
    BucketTable, Charge, FilterConfig, PrefixKey, RateLimit, Rule, RuleChain, TunnelPrefixKey,
    MAX_RATE_LIMITS, VNI_KEY_BITS,
};
use crate::stats::{counter_index, Action, Counter, Reason, COUNTER_SLOTS};
use buckets::{BucketState, Buckets};

/// One rule buffer: rules, chains and the two prefix maps.
#[derive(Clone, Debug, Default)]
pub struct RuleBuffer {
    /// Rules by index.
    pub rules: Vec<Rule>,
    /// Chains by index.
    pub chains: Vec<RuleChain>,
    /// Source prefix → chain index, per address family (`FAMILY_V4`,
    /// `FAMILY_V6`): a prefix matches only addresses of its own family.
    pub source_prefixes: [PrefixMap<u32>; 2],
    /// Destination prefix → chain index, per address family.
    pub destination_prefixes: [PrefixMap<u32>; 2],
}

/// The native build's tables: one interface's config and counters and the
/// filter state, in ordinary collections.
#[derive(Clone, Debug)]
pub struct NativeTables {
    /// The interface configuration.
    pub config: InterfaceConfig,
    /// The interface index rules see.
    pub ifindex: u32,
    /// Now, as the filter sees it: CLOCK_MONOTONIC ns, set by the runtime
    /// (a live runtime per batch, replay from capture time, tests frozen).
    pub now_ns: u64,
    /// The filter configuration.
    pub filter: FilterConfig,
    /// The two rule buffers; `filter.active` picks one.
    pub buffers: [RuleBuffer; 2],
    /// Hits per rule id.
    pub rule_hits: RuleHits,
    /// The blocklist.
    pub blocklist: PrefixMap<BlockEntry>,
    /// The blocklist of tunnelled traffic: VNI → inner source prefixes.
    pub tunnel_blocklist: BTreeMap<u32, PrefixMap<BlockEntry>>,
    /// Rate limits (`filter.rate_limits` of them are live).
    pub rate_limits: Vec<RateLimit>,
    /// Drops per rate limit.
    pub limit_drops: Vec<u64>,
    buckets: Buckets,
    /// Reflection source ports.
    pub reflection_ports: BTreeSet<u16>,
    /// Destinations that expect reflection-port traffic.
    pub reflection_expected: PrefixMap<u8>,
    /// Management prefixes.
    pub management_sources: PrefixMap<u8>,
    /// Management ports.
    pub management_ports: BTreeSet<u16>,
    /// The load balancer's state.
    pub lb: lb::NativeLb,
    /// Sampling and capture.
    pub observer: crate::native_observe::NativeObserver,
    /// The FIB the forwarding stage asks: destination prefix → route,
    /// per family as the kernel's.
    pub routes: FamilyPrefixMap<crate::forward::Route>,
    /// Interfaces forwarding may send out of (the kernel's device map).
    pub forward_ports: BTreeSet<u32>,
    /// What matched the frame in flight (`crate::observe::MATCHED_*`).
    pub matched: u32,
    /// A monitored general limit's verdict held for the frame in flight
    /// ([`Tables::hold_limit_verdict`]).
    held_limit_verdict: u32,
    counters: Vec<Counter>,
}

impl Default for NativeTables {
    fn default() -> Self {
        Self::new(InterfaceConfig::default())
    }
}

impl NativeTables {
    /// Tables with the given config, no filter state and zeroed counters.
    pub fn new(config: InterfaceConfig) -> Self {
        Self {
            config,
            ifindex: 0,
            now_ns: 0,
            filter: FilterConfig::default(),
            buffers: [RuleBuffer::default(), RuleBuffer::default()],
            rule_hits: RuleHits::default(),
            blocklist: PrefixMap::default(),
            tunnel_blocklist: BTreeMap::new(),
            rate_limits: Vec::new(),
            limit_drops: std::vec![0; MAX_RATE_LIMITS as usize],
            buckets: Buckets::default(),
            reflection_ports: BTreeSet::new(),
            reflection_expected: PrefixMap::default(),
            management_sources: PrefixMap::default(),
            management_ports: BTreeSet::new(),
            lb: lb::NativeLb::default(),
            observer: crate::native_observe::NativeObserver::default(),
            routes: FamilyPrefixMap::default(),
            forward_ports: BTreeSet::new(),
            matched: 0,
            held_limit_verdict: 0,
            counters: std::vec![Counter::default(); COUNTER_SLOTS as usize],
        }
    }

    /// Sets the time the filter sees.
    pub fn set_now_ns(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
    }

    /// One (action, reason) counter.
    pub fn counter(&self, action: Action, reason: Reason) -> Counter {
        self.counters
            .get(counter_index(action, reason) as usize)
            .copied()
            .unwrap_or_default()
    }

    /// All counter slots, indexed by [`crate::stats::counter_index`].
    pub fn counters(&self) -> &[Counter] {
        &self.counters
    }

    /// The live rule buffer.
    pub fn active_buffer_mut(&mut self) -> &mut RuleBuffer {
        let index = (self.filter.active & 1) as usize;
        &mut self.buffers[index]
    }

    /// Forgets every token bucket, as a flood that churns the kernel's
    /// bucket tables makes them forget (their bounds stay).
    pub fn clear_buckets(&mut self) {
        self.buckets.with(BucketState::clear);
    }

    /// Puts the rate limits' buckets behind a lock and returns the handle:
    /// these tables and every clone made from now on charge one set of
    /// buckets, as the kernel's CPUs share its bucket tables. The buckets
    /// so far are kept. Made for the serving threads of the user-space
    /// runtime; a single thread keeps them owned, without the lock.
    pub fn share_buckets(&mut self) -> std::sync::Arc<std::sync::Mutex<BucketState>> {
        self.buckets.share()
    }

    /// Whether the buckets are shared ([`Self::share_buckets`]).
    pub fn buckets_shared(&self) -> bool {
        self.buckets.is_shared()
    }

    /// The address limit at `key` (a copy), as `ADDRESS_LIMITS` holds it.
    pub fn address_limit(&self, key: &AddressLimitKey) -> Option<AddressLimit> {
        self.buckets
            .read(|state| state.address_limits.get(key).copied())
    }

    /// Inserts or replaces the address limit at `key`.
    pub fn set_address_limit(&mut self, key: AddressLimitKey, value: AddressLimit) {
        self.buckets.with(|state| {
            state.address_limits.insert(key, value);
        });
    }

    /// Removes the address limit at `key` (absent is fine).
    pub fn remove_address_limit(&mut self, key: &AddressLimitKey) {
        self.buckets.with(|state| {
            state.address_limits.remove(key);
        });
    }

    /// The drops of each address limit that has any, by limit id.
    pub fn address_limit_drops(&self) -> Vec<(u32, u64)> {
        self.buckets.read(|state| {
            state
                .address_limits
                .values()
                .filter(|entry| entry.drops != 0)
                .map(|entry| (entry.limit.id, entry.drops))
                .collect()
        })
    }

    /// The keys of every address limit.
    pub fn address_limit_keys(&self) -> Vec<AddressLimitKey> {
        self.buckets
            .read(|state| state.address_limits.keys().copied().collect())
    }
}

impl Tables for NativeTables {
    fn interface_config(&self) -> InterfaceConfig {
        self.config
    }

    fn count(&mut self, action: Action, reason: Reason, bytes: u64) {
        if let Some(counter) = self
            .counters
            .get_mut(counter_index(action, reason) as usize)
        {
            counter.packets += 1;
            counter.bytes += bytes;
        }
        if self.observer.is_pending() {
            self.observer.finish(action, reason, self.matched);
        }
        // A rule or VIP noted for this frame is not the next one's.
        self.matched = 0;
    }

    #[inline(always)]
    fn observe_arrival<P: crate::packet::Packet>(&mut self, packet: &P) {
        self.observer
            .arrive(packet, self.config.sample_rate, self.ifindex, self.now_ns);
    }

    fn ifindex(&self) -> u32 {
        self.ifindex
    }

    fn now_ns(&self) -> u64 {
        self.now_ns
    }

    fn filter_config(&self) -> FilterConfig {
        self.filter
    }

    fn source_chain(&self, buffer: u32, address: &[u8; 16]) -> Option<&RuleChain> {
        let buffer = self.buffers.get(buffer as usize)?;
        let family = usize::from(address_family(address));
        let chain = buffer.source_prefixes.get(family)?.longest_match(address)?;
        buffer.chains.get(chain as usize)
    }

    fn destination_chain(&self, buffer: u32, address: &[u8; 16]) -> Option<&RuleChain> {
        let buffer = self.buffers.get(buffer as usize)?;
        let family = usize::from(address_family(address));
        let chain = buffer
            .destination_prefixes
            .get(family)?
            .longest_match(address)?;
        buffer.chains.get(chain as usize)
    }

    fn rule(&self, buffer: u32, index: u32) -> Option<&Rule> {
        self.buffers.get(buffer as usize)?.rules.get(index as usize)
    }

    fn count_rule_hit(&mut self, id: u32) {
        self.matched = crate::observe::MATCHED_RULE | (id & crate::observe::MATCHED_ID_MASK);
        self.rule_hits.add(id);
    }

    fn blocklist_entry(&self, address: &[u8; 16]) -> Option<BlockEntry> {
        self.blocklist.longest_match(address)
    }

    fn remove_blocklist_entry(&mut self, key: PrefixKey) {
        self.blocklist.remove(key);
    }

    fn tunnel_blocklist_entry(&self, vni: u32, address: &[u8; 16]) -> Option<BlockEntry> {
        self.tunnel_blocklist.get(&vni)?.longest_match(address)
    }

    fn remove_tunnel_blocklist_entry(&mut self, key: TunnelPrefixKey) {
        let vni = u32::from_be_bytes(key.vni);
        let Some(prefixes) = self.tunnel_blocklist.get_mut(&vni) else {
            return;
        };
        prefixes.remove(PrefixKey {
            prefix_len: key.prefix_len.saturating_sub(VNI_KEY_BITS),
            address: key.address,
        });
        if prefixes.is_empty() {
            self.tunnel_blocklist.remove(&vni);
        }
    }

    fn rate_limit(&self, index: u32) -> Option<&RateLimit> {
        self.rate_limits.get(index as usize)
    }

    fn take_tokens(&mut self, table: BucketTable, key: &BucketKey, charge: &Charge) -> bool {
        let Some(limit) = self.rate_limits.get(charge.slot as usize).copied() else {
            return true;
        };
        self.buckets
            .with(|state| state.take(table, key, &limit, charge))
    }

    fn count_limit_drop(&mut self, index: u32) {
        if let Some(drops) = self.limit_drops.get_mut(index as usize) {
            *drops += 1;
        }
    }

    fn hold_limit_verdict(&mut self, verdict: u32) {
        if self.held_limit_verdict == 0 {
            self.held_limit_verdict = verdict;
        }
    }

    fn take_limit_verdict(&mut self) -> u32 {
        core::mem::take(&mut self.held_limit_verdict)
    }

    fn charge_address_limit(
        &mut self,
        key: &AddressLimitKey,
        bytes: u64,
        now_ns: u64,
    ) -> AddressCharge {
        self.buckets
            .with(|state| state.charge_address(key, bytes, now_ns))
    }

    fn is_reflection_port(&self, port: u16) -> bool {
        self.reflection_ports.contains(&port)
    }

    fn expects_reflection(&self, destination: &[u8; 16]) -> bool {
        self.reflection_expected
            .longest_match(destination)
            .is_some()
    }

    fn is_management_source(&self, source: &[u8; 16]) -> bool {
        self.management_sources.longest_match(source).is_some()
    }

    fn is_management_port(&self, port: u16) -> bool {
        self.management_ports.contains(&port)
    }
}

impl crate::forward::ForwardTables for NativeTables {
    fn forwarding_enabled(&self) -> bool {
        self.config.forward != 0
    }

    fn route(&mut self, key: &crate::parse::FlowKey, _frame_len: u32) -> crate::forward::Route {
        self.routes
            .longest_match(&key.destination)
            .unwrap_or(crate::forward::Route::NotForwarded)
    }

    fn claim_egress(&mut self, ifindex: u32) -> bool {
        self.forward_ports.contains(&ifindex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::{ForwardTables, Route};

    #[test]
    fn an_ipv4_destination_takes_ipv4_routes_only() {
        let mut tables = NativeTables::default();
        let out = |ifindex| Route::Forward {
            ifindex,
            destination_mac: 1,
            source_mac: 2,
        };
        tables.routes.insert(
            PrefixKey {
                prefix_len: 0,
                address: [0; 16],
            },
            out(6),
        );
        let mut v4 = crate::parse::FlowKey::default();
        v4.set_destination_words(crate::parse::ipv4_mapped_words([198, 51, 100, 7]));
        let v6 = crate::parse::FlowKey {
            destination: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ..Default::default()
        };
        assert_eq!(tables.route(&v4, 64), Route::NotForwarded, "::/0 is IPv6's");
        assert_eq!(tables.route(&v6, 64), out(6));
        tables.routes.insert(
            PrefixKey {
                prefix_len: 96,
                address: crate::parse::ipv4_mapped([0, 0, 0, 0]),
            },
            out(4),
        );
        assert_eq!(tables.route(&v4, 64), out(4), "0.0.0.0/0 is IPv4's");
        assert_eq!(tables.route(&v6, 64), out(6));
    }
}
