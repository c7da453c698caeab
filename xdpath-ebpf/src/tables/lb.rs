//! [`LbTables`] over the maps: the balancer's configuration, VIPs,
//! backends, Maglev rings, connection tables and counters.

use aya_ebpf::maps::lpm_trie::Key;
use xdpath_core::lb::{
    vip_drop_index, AllowKey, Backend, Connection, ConnectionKey, ConnectionTable, DecapConfig,
    LbConfig, LbTables, NewFlowPlace, NewFlowSlot, NextHop, Vip, VipKey, DECAP_ENABLED, MAX_RINGS,
    MAX_RING_SIZE, MAX_VIPS, NO_BACKEND,
};
use xdpath_core::{Reason, Tables};

use super::fib::fib_next_hop;
use super::MapTables;
use crate::maps::*;

/// Records a flow in the established table. Not inlined: its key and
/// value sit in a stack frame of their own.
#[inline(never)]
fn insert_established(key: &ConnectionKey, connection: &Connection) {
    let _ = CONNECTIONS.insert(key, connection, 0);
}

/// Records a flow in its slot of the new-flow table. The check word is
/// cleared first and written last, each store volatile (in program order;
/// x86 keeps stores in that order for other CPUs): a reader that meets
/// the slot half written finds a check that does not match.
#[inline(never)]
fn insert_new_flow(key: &ConnectionKey, connection: &Connection) {
    // The key is read again after the lookup (volatile loads), and the
    // slot written in place word by word, not built on the stack first:
    // words kept across the helper call sit in this frame, and the
    // stage's combined frame (balancing stage, `pick_backend`, this) is
    // at the verifier's 512 bytes (a slot on the stack: 56 bytes more;
    // the key's words kept: 16).
    let place = NewFlowPlace::of(key);
    let check = place.check(connection);
    let connection = u64::from(connection.backend) | u64::from(connection.generation) << 32;
    let Some(slot) = NEW_FLOW_TABLE.get_ptr_mut(place.slot) else {
        return;
    };
    let from = (key as *const ConnectionKey).cast::<u64>();
    // SAFETY: `slot` is a live 56-byte, 8-aligned map value: the key's
    // five words, then the connection's, then the check word (see
    // `NewFlowSlot`); `from` the key's five aligned words.
    unsafe {
        let to = slot.cast::<u64>();
        core::ptr::write_volatile(to.add(CHECK_WORD), 0);
        let mut index = 0;
        while index < KEY_WORDS {
            core::ptr::write_volatile(to.add(index), core::ptr::read_volatile(from.add(index)));
            index += 1;
        }
        core::ptr::write_volatile(to.add(KEY_WORDS), connection);
        core::ptr::write_volatile(to.add(CHECK_WORD), check);
    }
}

/// Words of a `NewFlowSlot`: the key's, then the connection's, then the
/// check word.
const KEY_WORDS: usize = core::mem::size_of::<ConnectionKey>() / 8;
const CHECK_WORD: usize = KEY_WORDS + 1;
const _: () = assert!(core::mem::size_of::<NewFlowSlot>() == (CHECK_WORD + 1) * 8);

/// The connection the new-flow table holds for `key`, if its slot holds
/// this flow. Not inlined, and the answer packed in one word (`NO_FLOW`:
/// none), so the lookup's temporaries take no room in the balancing
/// stage's nearly full stack.
#[inline(never)]
fn new_flow(key: &ConnectionKey) -> u64 {
    let place = NewFlowPlace::of(key);
    match NEW_FLOW_TABLE
        .get(place.slot)
        .and_then(|slot| slot.connection_for(key, &place))
    {
        Some(found) => u64::from(found.backend) | u64::from(found.generation) << 32,
        None => NO_FLOW,
    }
}

/// `new_flow`'s answer when the table holds no entry for the flow (no
/// backend index is `u32::MAX`).
const NO_FLOW: u64 = u64::MAX;

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
            ConnectionTable::New => match new_flow(key) {
                NO_FLOW => None,
                found => Some(Connection {
                    backend: found as u32,
                    generation: (found >> 32) as u32,
                }),
            },
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
            ConnectionTable::Established => insert_established(key, connection),
            ConnectionTable::New => insert_new_flow(key, connection),
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
