//! [`LbTables`] over the maps: the balancer's configuration, VIPs,
//! backends, Maglev rings, connection tables and counters.

use xdpath_core::lb::{
    Backend, Connection, ConnectionKey, ConnectionTable, DecapConfig, LbConfig, LbTables, NextHop,
    Vip, VipKey, DECAP_ENABLED, MAX_RINGS, MAX_RING_SIZE, NO_BACKEND,
};
use xdpath_core::Tables;

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
    fn count_lb(&mut self, vip: u32, backend: u32, bytes: u64, new_flow: bool) {
        self.matched =
            xdpath_core::observe::MATCHED_VIP | (vip & xdpath_core::observe::MATCHED_ID_MASK);
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
