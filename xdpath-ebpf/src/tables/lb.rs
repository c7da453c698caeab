//! [`LbTables`] over the maps: the balancer's configuration, VIPs,
//! backends, Maglev rings, connection tables and counters.

use aya_ebpf::maps::lpm_trie::Key;
use xdpath_core::lb::{
    vip_drop_index, AllowKey, Backend, Connection, ConnectionKey, ConnectionTable, DecapConfig,
    LbConfig, LbTables, NextHop, Vip, VipKey, DECAP_ENABLED, MAX_RINGS, MAX_RING_SIZE, MAX_VIPS,
    NO_BACKEND,
};
use xdpath_core::{Reason, Tables};

use super::fib::fib_next_hop;
use super::MapTables;
use crate::maps::*;

/// Records a flow in one connection table, named by a const parameter
/// and not inlined: the two tables' inserts, one chosen by the flow's
/// flags, would otherwise merge into one call on a map chosen at run time.
#[inline(never)]
fn insert_connection_in<const NEW: bool>(key: &ConnectionKey, connection: &Connection) {
    let map = if NEW { &NEW_CONNECTIONS } else { &CONNECTIONS };
    let _ = map.insert(key, connection, 0);
}

/// Whether `source` is in VIP slot `vip`'s allow list: one trie lookup.
/// Not inlined, so the key has a stack frame of its own rather than
/// bytes of the balancing stage's, which is nearly full.
#[inline(never)]
fn allowed_in(vip: u32, family: u8, source: &[u8; 16]) -> bool {
    if vip >= MAX_VIPS {
        return false;
    }
    let key = AllowKey::new(vip, family, source, 128);
    // SAFETY: `AllowKey` is `Key<[u8; 20]>`'s layout (a u32 bit count,
    // then 20 bytes of data), aligned to 8 where `Key` needs 1.
    let key = unsafe { &*(&key as *const AllowKey).cast::<Key<[u8; 20]>>() };
    VIP_ALLOW.get(key).is_some()
}

/// Counts a frame to a VIP that was not forwarded.
#[inline(always)]
fn count_vip_drop(vip: u32, reason: Reason) {
    let Some(index) = vip_drop_index(vip, reason) else {
        return;
    };
    if let Some(count) = VIP_DROPS.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot, touched only by this CPU.
        unsafe { *count += 1 };
    }
}

impl LbTables for MapTables {
    #[inline(always)]
    fn lb_config(&self) -> LbConfig {
        match LB_CONFIG.get(0) {
            Some(config) => *config,
            None => LbConfig::default(),
        }
    }

    #[inline(always)]
    fn vip(&self, key: &VipKey) -> Option<Vip> {
        // SAFETY: a lookup by a key on our stack; the value is plain data.
        unsafe { VIPS.get(key) }.copied()
    }

    #[inline(always)]
    fn ring_slot(&self, ring: u32, slot: u32) -> u32 {
        if ring >= MAX_RINGS || slot >= MAX_RING_SIZE {
            return NO_BACKEND;
        }
        match MAGLEV_RINGS.get(ring * MAX_RING_SIZE + slot) {
            Some(backend) => *backend,
            None => NO_BACKEND,
        }
    }

    #[inline(always)]
    fn backend(&self, index: u32) -> Option<Backend> {
        BACKENDS.get(index).copied()
    }

    #[inline(always)]
    fn connection(&mut self, table: ConnectionTable, key: &ConnectionKey) -> Option<Connection> {
        // SAFETY: as for `vip`. Two call sites, each naming its map: the
        // lookups stay inlined (see the note on maps picked at run time).
        match table {
            ConnectionTable::Established => unsafe { CONNECTIONS.get(key) }.copied(),
            ConnectionTable::New => unsafe { NEW_CONNECTIONS.get(key) }.copied(),
        }
    }

    #[inline(always)]
    fn insert_connection(
        &mut self,
        table: ConnectionTable,
        key: &ConnectionKey,
        connection: &Connection,
    ) {
        match table {
            ConnectionTable::Established => insert_connection_in::<false>(key, connection),
            ConnectionTable::New => insert_connection_in::<true>(key, connection),
        }
    }

    #[inline(always)]
    fn source_allowed(&self, vip: u32, family: u8, source: &[u8; 16]) -> bool {
        allowed_in(vip, family, source)
    }

    #[inline(always)]
    fn sample_vip<P: xdpath_core::packet::Packet>(&mut self, packet: &P, vip: u32) {
        crate::observe::sample_for_vip(self.ctx, vip, packet.len() as u32);
    }

    #[inline(always)]
    fn count_vip(&mut self, vip: u32, backend: u32, reason: Reason, bytes: u64, new_flow: bool) {
        self.matched =
            xdpath_core::observe::MATCHED_VIP | (vip & xdpath_core::observe::MATCHED_ID_MASK);
        if reason != Reason::LbForwarded {
            count_vip_drop(vip, reason);
            return;
        }
        for counter in [
            VIP_STATS.get_ptr_mut(vip),
            BACKEND_STATS.get_ptr_mut(backend),
        ]
        .into_iter()
        .flatten()
        {
            // SAFETY: a per-CPU slot, touched only by this CPU.
            unsafe {
                (*counter).packets += 1;
                (*counter).bytes += bytes;
                (*counter).new_flows += u64::from(new_flow);
            }
        }
    }

    #[inline(always)]
    fn count_connection(&mut self, slot: u32) {
        if let Some(count) = CONN_STATS.get_ptr_mut(slot) {
            // SAFETY: a per-CPU slot, touched only by this CPU.
            unsafe { *count += 1 };
        }
    }

    #[inline(always)]
    fn next_hop(&mut self, address: &[u8; 16], ipv4: bool) -> NextHop {
        fib_next_hop(self.ctx, address, ipv4)
    }

    #[inline(always)]
    fn decap_config(&self) -> DecapConfig {
        let config = self.interface_config();
        DecapConfig {
            flags: if config.decap != 0 { DECAP_ENABLED } else { 0 },
            gue_port: config.decap_gue_port,
            reserved: 0,
        }
    }

    #[inline(always)]
    fn is_local_address(&self, address: &[u8; 16]) -> bool {
        // SAFETY: as for `vip`.
        unsafe { LOCAL_ADDRESSES.get(address) }.is_some()
    }
}
