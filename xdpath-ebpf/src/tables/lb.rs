//! [`LbTables`] over the maps: the balancer's configuration, VIPs,
//! backends, Maglev rings, connection tables and counters.

use aya_ebpf::maps::lpm_trie::Key;
use xdpath_core::lb::{
    vip_drop_index, AllowKey, Backend, Connection, ConnectionKey, ConnectionTable, DecapConfig,
    LbConfig, LbTables, NewFlowPlace, NextHop, Vip, VipKey, VipSlot, DECAP_ENABLED, MAX_RINGS,
    MAX_RING_SIZE, MAX_VIPS, NEW_FLOW_SEED, NO_BACKEND,
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

/// Forgets a flow in the established table. Not inlined, as
/// [`insert_established`].
#[inline(never)]
fn remove_established(key: &ConnectionKey) {
    let _ = CONNECTIONS.remove(key);
}

/// Records a flow in its slot of the new-flow table (none while the
/// table has no seed). The slot is written by a function of its own, so
/// that what it keeps across the map call sits in this frame rather than
/// the balancing stage's. (It works the flow's place out again after the
/// lookup did: handing the lookup's place over measured no faster,
/// BENCHMARKS.md, ninth session.)
#[inline(never)]
fn insert_new_flow(key: &ConnectionKey, connection: &Connection) {
    let seed = new_flow_seed();
    if seed == 0 {
        return;
    }
    let place = NewFlowPlace::of(key, seed);
    store_new_flow(place.slot, place.tag(connection), connection.to_word());
}

/// Writes slot `slot`: the tag cleared first and written last, each store
/// volatile, so a reader on another CPU mostly finds the slot empty or
/// whole. Correctness does not rest on that order (which arm64 does not
/// keep for other CPUs): the tag covers the connection, so a slot mixed
/// from two writes matches neither flow but once in 2⁶⁴.
#[inline(never)]
fn store_new_flow(slot: u32, tag: u64, connection: u64) {
    let Some(slot) = NEW_FLOW_TABLE.get_ptr_mut(slot) else {
        return;
    };
    // SAFETY: a live 16-byte, 8-aligned map value: the tag's word, then
    // the connection's (see `NewFlowSlot`).
    unsafe {
        let words = slot.cast::<u64>();
        core::ptr::write_volatile(words, 0);
        core::ptr::write_volatile(words.add(1), connection);
        core::ptr::write_volatile(words, tag);
    }
}

/// The connection the new-flow table holds for `key`, if its slot holds
/// this flow. Not inlined, and the answer packed in one word
/// ([`Connection::to_word`]; `NO_FLOW`: none), so the lookup's temporaries
/// take no room in the balancing stage's stack.
#[inline(never)]
fn new_flow(key: &ConnectionKey) -> u64 {
    let seed = new_flow_seed();
    if seed == 0 {
        return NO_FLOW;
    }
    let place = NewFlowPlace::of(key, seed);
    match NEW_FLOW_TABLE
        .get(place.slot)
        .and_then(|slot| slot.connection_for(&place))
    {
        Some(found) => found.to_word(),
        None => NO_FLOW,
    }
}

/// The new-flow table's seed (zero: none yet, the table unused).
#[inline(always)]
fn new_flow_seed() -> u64 {
    NEW_FLOW_TABLE
        .get(NEW_FLOW_SEED)
        .map_or(0, |entry| entry.tag)
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
    type Config = &'static LbConfig;

    #[inline(always)]
    fn lb_config(&self) -> Option<&'static LbConfig> {
        LB_CONFIG.get(0)
    }

    #[inline(always)]
    fn vip(&self, key: &VipKey) -> Option<Vip> {
        // SAFETY: a lookup by a key on our stack; the value is plain data.
        unsafe { VIPS.get(key) }.copied()
    }

    const VIPS_BY_SLOT: bool = true;

    #[inline(always)]
    fn vip_in_slot(&self, slot: u32, address: &[u8; 16], port: u16, protocol: u8) -> Option<Vip> {
        // An array's value is written in place, so the slot is read once
        // and a slot read while it is cleared or written is not whole
        // (`VipSlot::read`).
        let entry = VIPS_BY_SLOT.get_ptr(slot)?;
        // SAFETY: a map value of this array: 48 readable bytes, aligned.
        unsafe { VipSlot::read(entry, address, port, protocol) }
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
                found => Some(Connection::from_word(found)),
            },
        }
    }

    #[inline(always)]
    fn remove_established(&mut self, key: &ConnectionKey) {
        remove_established(key);
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
    fn egress_mtu(&self, ifindex: u32) -> u32 {
        let mut mtu = 0u32;
        // SAFETY: a helper writing one u32 (kernel 5.12). With a length of
        // 0 it reports the device's MTU whatever the frame's length.
        let found = unsafe {
            aya_ebpf::helpers::generated::bpf_check_mtu(self.ctx.cast(), ifindex, &mut mtu, 0, 0)
        };
        if found < 0 || mtu == 0 {
            u32::MAX
        } else {
            mtu
        }
    }

    #[inline(always)]
    fn take_answer(&mut self, now_ns: u64) -> bool {
        match crate::too_big::TOO_BIG_SCRATCH.get_ptr_mut(0) {
            // SAFETY: this CPU's slot; XDP runs do not nest on a CPU.
            Some(scratch) => unsafe { (*scratch).budget.take(now_ns) },
            None => false,
        }
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
