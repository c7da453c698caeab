//! The native build's load-balancer tables.

use std::collections::HashMap;
use std::vec::Vec;

use crate::filter::prefix_contains;
use crate::lb::{
    vip_drop_index, Backend, Connection, ConnectionKey, ConnectionTable, DecapConfig, LbConfig,
    LbCounter, LbTables, NewFlowPlace, NewFlowSlot, NextHop, Vip, VipKey, ALLOW_KEY_HEAD_BITS,
    CONN_HITS, DECAP_ENABLED, MAX_CONNECTIONS, MAX_RING_SIZE, NO_BACKEND,
};
use crate::native::{NativeTables, OperatorMap, OperatorSet};
use crate::stats::Reason;

/// The allow lists by (VIP slot, family): (masked prefix, length in the
/// 128-bit form) each.
pub type AllowLists = OperatorMap<(u8, u8), Vec<([u8; 16], u8)>>;

/// The balancer's state in plain collections.
#[derive(Clone, Debug, Default)]
pub struct NativeLb {
    /// Global settings.
    pub config: LbConfig,
    /// VIPs.
    pub vips: OperatorMap<VipKey, Vip>,
    /// Maglev rings by ring number (each `MAX_RING_SIZE` long or shorter).
    pub rings: OperatorMap<u32, Vec<u32>>,
    /// Backends by index.
    pub backends: OperatorMap<u32, Backend>,
    /// The established connection table (std's SipHash: a sender chooses
    /// its keys, see [`OperatorMap`]). Bounded like the kernel's; when
    /// full, an arbitrary entry goes (the kernel's LRU evicts the least
    /// recent).
    pub connections: HashMap<ConnectionKey, Connection>,
    /// The new-flow table (flows seen as bare SYNs or in one datagram): the kernel's
    /// array of slots, by slot index, holding the slots written so far.
    pub new_flows: HashMap<u32, NewFlowSlot>,
    /// The new-flow table's seed (`lb::NEW_FLOW_SEED`); zero: the table is
    /// not used, as in the kernel.
    pub new_flow_seed: u64,
    /// Statistics per VIP index.
    pub vip_stats: OperatorMap<u32, LbCounter>,
    /// Statistics per backend index.
    pub backend_stats: OperatorMap<u32, LbCounter>,
    /// Frames to a VIP not forwarded, by `vip_drop_index` slot.
    pub vip_drops: OperatorMap<u32, u64>,
    /// The allow lists: the kernel trie's keys (`AllowKey`), as (VIP slot,
    /// family) → (masked prefix, length in the 128-bit form).
    pub allow: AllowLists,
    /// Connection-table hits and misses.
    pub connection_stats: [u64; 2],
    /// Next hops by backend address (the native build has no FIB).
    pub neighbours: OperatorMap<[u8; 16], NextHop>,
    /// This host's addresses, for decapsulation.
    pub local_addresses: OperatorSet<[u8; 16]>,
    /// The sample rates of VIPs with `VIP_SAMPLED`, by VIP slot.
    pub sample_rates: OperatorMap<u32, u32>,
    /// Interfaces' MTUs by index (0: the one frames come in on); one not
    /// here takes any length (a capture replayed has no devices).
    pub egress_mtus: OperatorMap<u32, u32>,
    /// The ICMP too-big answers sent this second.
    pub answer_budget: crate::lb::AnswerBudget,
}

impl NativeLb {
    /// Adds an allow-list entry as the kernel's trie holds it.
    pub fn allow(&mut self, key: &crate::lb::AllowKey) {
        let length = key.prefix_len.saturating_sub(ALLOW_KEY_HEAD_BITS).min(128) as u8;
        self.allow
            .entry((key.vip, key.family))
            .or_default()
            .push((key.address, length));
    }
}

/// The native tables' balancer settings, handed out as a copy (the
/// stage holds them across calls that borrow the tables mutably).
pub struct CopiedConfig(LbConfig);

impl core::ops::Deref for CopiedConfig {
    type Target = LbConfig;

    fn deref(&self) -> &LbConfig {
        &self.0
    }
}

impl LbTables for NativeTables {
    type Config = CopiedConfig;

    fn lb_config(&self) -> Option<CopiedConfig> {
        Some(CopiedConfig(self.lb.config))
    }

    fn vip(&self, key: &VipKey) -> Option<Vip> {
        self.lb.vips.get(key).copied()
    }

    /// The native build looks every VIP up by its key: its VIP lookup is
    /// one probe of a hash map in process memory, and the kernel ≡ native
    /// tests then hold the kernel's fast path to the usual order.
    const VIPS_BY_SLOT: bool = false;

    fn vip_in_slot(
        &self,
        _slot: u32,
        _address: &[u8; 16],
        _port: u16,
        _protocol: u8,
    ) -> Option<Vip> {
        None
    }

    fn ring_slot(&self, ring: u32, slot: u32) -> u32 {
        if slot >= MAX_RING_SIZE {
            return NO_BACKEND;
        }
        self.lb
            .rings
            .get(&ring)
            .and_then(|ring| ring.get(slot as usize))
            .copied()
            .unwrap_or(NO_BACKEND)
    }

    fn backend(&self, index: u32) -> Option<Backend> {
        Some(self.lb.backends.get(&index).copied().unwrap_or_default())
    }

    fn connection(&mut self, table: ConnectionTable, key: &ConnectionKey) -> Option<Connection> {
        match table {
            ConnectionTable::Established => self.lb.connections.get(key).copied(),
            ConnectionTable::New => {
                if self.lb.new_flow_seed == 0 {
                    return None;
                }
                let place = NewFlowPlace::of(key, self.lb.new_flow_seed);
                let slot = self.lb.new_flows.get(&place.slot)?;
                slot.connection_for(&place)
            }
        }
    }

    fn remove_established(&mut self, key: &ConnectionKey) {
        self.lb.connections.remove(key);
    }

    fn insert_connection(
        &mut self,
        table: ConnectionTable,
        key: &ConnectionKey,
        connection: &Connection,
    ) {
        if table == ConnectionTable::New {
            if self.lb.new_flow_seed == 0 {
                return;
            }
            let place = NewFlowPlace::of(key, self.lb.new_flow_seed);
            let slot = NewFlowSlot::new(&place, connection);
            self.lb.new_flows.insert(place.slot, slot);
            return;
        }
        let connections = &mut self.lb.connections;
        if connections.len() >= MAX_CONNECTIONS as usize && !connections.contains_key(key) {
            if let Some(victim) = connections.keys().next().copied() {
                connections.remove(&victim);
            }
        }
        connections.insert(*key, *connection);
    }

    fn source_allowed(&self, vip: u32, family: u8, source: &[u8; 16]) -> bool {
        let Ok(slot) = u8::try_from(vip) else {
            return false;
        };
        self.lb.allow.get(&(slot, family)).is_some_and(|prefixes| {
            prefixes
                .iter()
                .any(|(prefix, length)| prefix_contains(prefix, *length, source))
        })
    }

    fn sample_vip<P: crate::packet::Packet>(&mut self, packet: &P, vip: u32) {
        let rate = self.lb.sample_rates.get(&vip).copied().unwrap_or(0);
        self.observer
            .sample_again(packet, rate, self.ifindex, self.now_ns);
    }

    fn count_vip(&mut self, vip: u32, backend: u32, reason: Reason, bytes: u64, new_flow: bool) {
        self.matched = crate::observe::MATCHED_VIP | (vip & crate::observe::MATCHED_ID_MASK);
        if reason != Reason::LbForwarded {
            if let Some(index) = vip_drop_index(vip, reason) {
                *self.lb.vip_drops.entry(index).or_default() += 1;
            }
            return;
        }
        for counter in [
            self.lb.vip_stats.entry(vip).or_default(),
            self.lb.backend_stats.entry(backend).or_default(),
        ] {
            counter.packets += 1;
            counter.bytes += bytes;
            counter.new_flows += u64::from(new_flow);
        }
    }

    fn count_connection(&mut self, slot: u32) {
        let index = usize::from(slot != CONN_HITS);
        if let Some(count) = self.lb.connection_stats.get_mut(index) {
            *count += 1;
        }
    }

    fn next_hop(&mut self, address: &[u8; 16], _ipv4: bool) -> NextHop {
        self.lb
            .neighbours
            .get(address)
            .copied()
            .unwrap_or(NextHop::Unreachable)
    }

    fn egress_mtu(&self, ifindex: u32) -> u32 {
        self.lb
            .egress_mtus
            .get(&ifindex)
            .copied()
            .unwrap_or(u32::MAX)
    }

    fn take_answer(&mut self, now_ns: u64) -> bool {
        self.lb.answer_budget.take(now_ns)
    }

    fn decap_config(&self) -> DecapConfig {
        DecapConfig {
            flags: if self.config.decap != 0 {
                DECAP_ENABLED
            } else {
                0
            },
            gue_port: self.config.decap_gue_port,
            reserved: 0,
        }
    }

    fn is_local_address(&self, address: &[u8; 16]) -> bool {
        self.lb.local_addresses.contains(address)
    }
}
