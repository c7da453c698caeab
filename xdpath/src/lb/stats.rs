//! What the kernel's balancer maps say beyond the per-VIP and per-backend
//! counters: the frames to each VIP it did not forward (by reason), an
//! estimate of each VIP's active connections from the connection tables,
//! and a VIP's live Maglev table as the kernel holds it.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};

use serde_json::{json, Value};
use xdpath_core::abi;
use xdpath_core::lb::{
    vip_drop_index, Backend, Connection, ConnectionKey, NewFlowPlace, NewFlowSlot, Vip,
    MAX_RING_SIZE, NEW_FLOW_SLOTS, VIP_DROP_REASONS,
};

use super::compile::vip_key;
use super::install::{bytes_of, new_flow_seed};
use super::state::{LbState, VipId, VipSpec};
use super::LbError;
use crate::control::kernel::KernelMaps;

/// The frames to VIP slot `slot` that were not forwarded, by reason
/// (`lb-not-allowed`, `lb-no-backend`, …; `lb-no-route` frames went to the
/// stack), as a JSON object.
pub fn vip_drops(maps: Option<&KernelMaps>, slot: u32) -> Result<Value, LbError> {
    let mut drops = serde_json::Map::new();
    for reason in VIP_DROP_REASONS {
        let count = match (maps, vip_drop_index(slot, reason)) {
            (Some(maps), Some(index)) => maps.per_cpu_sum(abi::map::VIP_DROPS, index)?,
            _ => 0,
        };
        let name = reason.name().trim_start_matches("lb-").replace('-', "_");
        drops.insert(name, json!(count));
    }
    Ok(Value::Object(drops))
}

/// Reads one field of a plain map value.
fn word<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(slice) = bytes.get(at..at + N) {
        out.copy_from_slice(slice);
    }
    out
}

/// The connection a slot of the new-flow table holds (backend,
/// generation); `None` for a slot never written. A slot holds a tag, not
/// its flow's key: its VIP is the one whose pool holds its backend.
fn new_flow_connection(slot: &[u8]) -> Option<(u32, u32)> {
    let tag = u64::from_ne_bytes(word(slot, 0));
    (tag != 0).then(|| {
        (
            u32::from_ne_bytes(word(slot, 8)),
            u32::from_ne_bytes(word(slot, 12)),
        )
    })
}

/// The index of the new-flow slot that still holds the established flow
/// `key` → `value` (its SYN's slot, not yet taken by another flow), if
/// any. `seed` is the table's (zero: the table is unused).
fn slot_still_held(key: &[u8], value: &[u8], slots: &[u8], seed: u64) -> Option<usize> {
    if seed == 0 {
        return None;
    }
    let key = ConnectionKey::new(
        &word(key, 0),
        &word(key, 16),
        u16::from_ne_bytes(word(key, 32)),
        u16::from_ne_bytes(word(key, 34)),
        key.get(36).copied().unwrap_or(0),
    );
    let connection = Connection {
        backend: u32::from_ne_bytes(word(value, 0)),
        generation: u32::from_ne_bytes(word(value, 4)),
    };
    let place = NewFlowPlace::of(&key, seed);
    let slot = place.slot as usize;
    let at = slot * size_of::<NewFlowSlot>();
    let tag = u64::from_ne_bytes(word(slots.get(at..)?, 0));
    (tag == place.tag(&connection)).then_some(slot)
}

/// An address as the data path stores it, back to an `IpAddr`.
fn address_of(bytes: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(bytes);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

/// Per VIP, the connection-table entries (both tables) whose flow is to it
/// and whose backend still holds its slot, a flow in both tables (promoted
/// by its first ACK, its SYN's slot not yet reused) once: an estimate of
/// its active connections. The tables have no timeouts, so a flow that ended stays
/// counted until it is evicted (or its new-flow slot overwritten), and a
/// source-hashed VIP has one entry per client rather than per connection.
pub fn active_connections(
    maps: Option<&KernelMaps>,
    state: &LbState,
) -> Result<HashMap<VipId, u64>, LbError> {
    let mut counts = HashMap::new();
    let Some(maps) = maps else {
        return Ok(counts);
    };
    let mut vips: HashMap<([u8; 16], u16, u8), &VipSpec> = HashMap::new();
    for vip in &state.vips {
        let key = vip_key(vip);
        vips.insert((key.address, key.port, key.protocol), vip);
    }
    let mut count = |key: &[u8], value: &[u8]| {
        let destination: [u8; 16] = word(key, 16);
        let port = u16::from_ne_bytes(word(key, 34));
        let protocol = key.get(36).copied().unwrap_or(0);
        let backend = u32::from_ne_bytes(word(value, 0));
        let generation = u32::from_ne_bytes(word(value, 4));
        let live = |vip: &VipSpec| {
            vip.backends
                .iter()
                .any(|b| b.index == backend && b.generation == generation)
        };
        let found = vips
            .get(&(destination, port, protocol))
            .filter(|vip| live(vip))
            .or_else(|| {
                vips.get(&(destination, 0, protocol))
                    .filter(|vip| live(vip))
            })
            .copied()
            .or_else(|| {
                // A source-hashed port VIP keys its entries without ports.
                (port == 0)
                    .then(|| {
                        state.vips.iter().find(|vip| {
                            vip.source_hash
                                && vip_key(vip).address == destination
                                && vip_key(vip).protocol == protocol
                                && live(vip)
                        })
                    })
                    .flatten()
            });
        if let Some(vip) = found {
            *counts.entry(vip.id).or_insert(0) += 1;
        }
    };
    let (key_size, value_size) = (size_of::<ConnectionKey>(), size_of::<Connection>());
    let (keys, values) = maps.read_hash(abi::map::CONNECTIONS, key_size, value_size)?;
    let slot_size = size_of::<NewFlowSlot>();
    let slots = maps.read_array(abi::map::NEW_FLOW_TABLE, NEW_FLOW_SLOTS, slot_size)?;
    let seed = new_flow_seed(maps)?;
    // A flow promoted to the established table keeps its new-flow slot
    // until another SYN takes it: counted once, by its established entry.
    let mut promoted = vec![false; slots.len() / slot_size];
    for (key, value) in keys
        .chunks_exact(key_size)
        .zip(values.chunks_exact(value_size))
    {
        count(key, value);
        if let Some(slot) = slot_still_held(key, value, &slots, seed) {
            if let Some(flag) = promoted.get_mut(slot) {
                *flag = true;
            }
        }
    }
    // A slot's VIP is the one whose pool holds its backend: looked up in
    // a map, as a flood can fill all 131,072 slots.
    let mut owners: HashMap<(u32, u32), &VipSpec> = HashMap::new();
    for vip in &state.vips {
        for backend in &vip.backends {
            owners
                .entry((backend.index, backend.generation))
                .or_insert(vip);
        }
    }
    for connection in slots
        .chunks_exact(slot_size)
        .zip(promoted)
        .filter(|(_, promoted)| !promoted)
        .filter_map(|(slot, _)| new_flow_connection(slot))
    {
        if let Some(vip) = owners.get(&connection) {
            *counts.entry(vip.id).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// A VIP's live Maglev table as the kernel holds it: its VIP entry's ring,
/// each slot's backend address read from the backend array. `None` when
/// the kernel has no entry for the VIP.
pub fn live_table(
    maps: &KernelMaps,
    vip: &VipSpec,
) -> Result<Option<Vec<Option<IpAddr>>>, LbError> {
    let mut entry = [0u8; size_of::<Vip>()];
    if !maps.lookup(abi::map::VIPS, bytes_of(&vip_key(vip)), &mut entry)? {
        return Ok(None);
    }
    let ring = u32::from_ne_bytes(word(&entry, 4));
    let size = u32::from_ne_bytes(word(&entry, 8)).min(MAX_RING_SIZE);
    let slots = maps.read_array_from(
        abi::map::MAGLEV_RINGS,
        ring.saturating_mul(MAX_RING_SIZE),
        size,
        4,
    )?;
    let mut addresses: HashMap<u32, Option<IpAddr>> = HashMap::new();
    let mut table = Vec::with_capacity(size as usize);
    for slot in slots.chunks_exact(4) {
        let index = u32::from_ne_bytes(word(slot, 0));
        if let Some(address) = addresses.get(&index) {
            table.push(*address);
            continue;
        }
        let mut backend = [0u8; size_of::<Backend>()];
        let found = maps.lookup(abi::map::BACKENDS, &index.to_ne_bytes(), &mut backend)?;
        let family = backend.get(20).copied().unwrap_or(0);
        let address = (found && family != 0).then(|| address_of(word(&backend, 0)));
        addresses.insert(index, address);
        table.push(address);
    }
    Ok(Some(table))
}

/// A table's digest: FNV-1a (64 bits) over each slot's backend address as
/// 16 bytes (IPv4-mapped; zeros for an empty slot). Equal tables, as
/// addresses, give equal digests on every host whatever the backends'
/// slots there.
pub fn table_digest(table: &[Option<IpAddr>]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for slot in table {
        let bytes = match slot {
            Some(IpAddr::V4(v4)) => v4.to_ipv6_mapped().octets(),
            Some(IpAddr::V6(v6)) => v6.octets(),
            None => [0; 16],
        };
        for byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// A live table as JSON: size, digest, slots per backend, and with
/// `slots`, each slot's backend (null for none).
pub fn table_json(vip: &VipSpec, table: &[Option<IpAddr>], slots: bool) -> Value {
    let mut shares: BTreeMap<String, u64> = BTreeMap::new();
    for address in table.iter().flatten() {
        *shares.entry(address.to_string()).or_insert(0) += 1;
    }
    let mut value = json!({
        "vip": vip.id.to_string(),
        "size": table.len(),
        "digest": table_digest(table),
        "backends": shares,
    });
    if slots {
        value["slots"] = json!(table
            .iter()
            .map(|slot| slot.map(|address| address.to_string()))
            .collect::<Vec<_>>());
    }
    value
}

/// `lb vip table` and `GET /v1/vips/table`: a VIP's table as the kernel
/// holds it. A VIP the state has but the kernel's maps do not (no maps
/// in this namespace, or an install that did not happen) is reported as
/// `"in_kernel": false` with no digest, never as an empty live table.
pub fn vip_table(
    state: &LbState,
    maps: Option<&KernelMaps>,
    vip: &str,
    slots: bool,
) -> Result<Value, LbError> {
    let id = super::edit::parse_vip(vip)?;
    let spec = state.vip(&id).ok_or(LbError::NoSuchVip { vip: id })?;
    let live = match maps {
        Some(maps) => live_table(maps, spec)?,
        None => None,
    };
    Ok(match live {
        Some(table) => {
            let mut value = table_json(spec, &table, slots);
            value["in_kernel"] = json!(true);
            value
        }
        None => json!({ "vip": spec.id.to_string(), "in_kernel": false, "digest": null }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn digests_depend_on_the_addresses_in_order() {
        let a = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        let b = Some(IpAddr::V6("2001:db8::1".parse().expect("v6")));
        assert_eq!(table_digest(&[a, b, None]), table_digest(&[a, b, None]));
        assert_ne!(table_digest(&[a, b, None]), table_digest(&[b, a, None]));
        assert_ne!(table_digest(&[a, None]), table_digest(&[a]));
        let mapped = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1];
        assert_eq!(Some(address_of(mapped)), a);
    }

    /// A table of `NEW_FLOW_SLOTS` slots with `slots` written.
    fn table_with(slots: &[(u32, NewFlowSlot)]) -> Vec<u8> {
        let size = size_of::<NewFlowSlot>();
        let mut table = vec![0u8; NEW_FLOW_SLOTS as usize * size];
        for (at, slot) in slots {
            let at = *at as usize * size;
            table[at..at + size].copy_from_slice(bytes_of(slot));
        }
        table
    }

    #[test]
    fn an_established_flow_finds_the_slot_its_syn_still_holds() {
        const SEED: u64 = 0x5eed_0123_4567_89ab;
        let connection = Connection {
            backend: 7,
            generation: 3,
        };
        let other = Connection {
            backend: 7,
            generation: 4,
        };
        for key in [
            ConnectionKey::new(&[1; 16], &[2; 16], 40000, 80, 6),
            // A source-hashed VIP's key: no ports.
            ConnectionKey::new(&[1; 16], &[2; 16], 0, 0, 6),
        ] {
            let place = NewFlowPlace::of(&key, SEED);
            let held = table_with(&[(place.slot, NewFlowSlot::new(&place, &connection))]);
            let (key, value) = (bytes_of(&key), bytes_of(&connection));
            assert_eq!(
                slot_still_held(key, value, &held, SEED),
                Some(place.slot as usize)
            );
            // No seed: the table is unused.
            assert_eq!(slot_still_held(key, value, &held, 0), None);
            // Another seed, another connection, an empty or reused slot.
            assert_eq!(slot_still_held(key, value, &held, SEED ^ 1), None);
            assert_eq!(slot_still_held(key, bytes_of(&other), &held, SEED), None);
            assert_eq!(slot_still_held(key, value, &table_with(&[]), SEED), None);
            let taken = NewFlowPlace::of(&ConnectionKey::new(&[3; 16], &[2; 16], 1, 80, 6), SEED);
            let reused = table_with(&[(place.slot, NewFlowSlot::new(&taken, &connection))]);
            assert_eq!(slot_still_held(key, value, &reused, SEED), None);
        }
    }

    #[test]
    fn a_vip_the_kernel_lacks_is_not_shown_as_an_empty_live_table() {
        use crate::lb::edit::{add_vip, parse_vip, VipOptions};
        use crate::lb::state::Encap;
        let mut state = LbState::default();
        let id = parse_vip("203.0.113.10:80/tcp").expect("vip");
        let options = VipOptions {
            encap: Encap::Ipip,
            gue_port: None,
            source_hash: false,
            no_conntrack: false,
            ring_size: None,
            sample_rate: 0,
        };
        add_vip(&mut state, id, options).expect("add");
        // No maps in this namespace: the state has the VIP, the kernel not.
        let table = vip_table(&state, None, "203.0.113.10:80/tcp", true).expect("table");
        assert_eq!(
            table,
            json!({"vip": "203.0.113.10:80/tcp", "in_kernel": false, "digest": null})
        );
        assert!(matches!(
            vip_table(&state, None, "203.0.113.11:80/tcp", false),
            Err(LbError::NoSuchVip { .. })
        ));
    }
}
