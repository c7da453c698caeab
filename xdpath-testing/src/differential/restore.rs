//! Putting a program's tables back as they were after setup, so that one
//! loaded program serves many rounds (a load costs seconds of verifier
//! time; a round of 4,096 frames, about a tenth of one).
//!
//! What the data path writes lives in hash tables: the connection table,
//! the token buckets (LRU hashes), the blocklist (expired entries go on
//! first match); and in one array, the balancer's new-flow table
//! (`NEW_FLOW_TABLE`, slots a bare SYN writes). Every hash-like map of the
//! namespace's shared set is snapshot after setup and restored before each
//! round: entries added since are deleted, the setup's entries written
//! back; the new-flow slots written since are put back as they were. The
//! counters and statistics (arrays) are not reset but read before and after
//! a round.

use std::collections::BTreeMap;
use xdpath_core::abi;

use aya::maps::{Map, MapType};

use xdpath::control::kernel::KernelMaps;
use xdpath::dataplane::LoadedProgram;

/// Why a snapshot or a restore failed.
#[derive(Debug, thiserror::Error)]
#[error("{map}: {detail}")]
pub struct RestoreError {
    /// The map.
    pub map: &'static str,
    /// What went wrong.
    pub detail: String,
}

struct Table {
    name: &'static str,
    key_size: usize,
    value_size: usize,
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The hash tables of a program as they were, and its new-flow slots.
pub struct Snapshot {
    tables: Vec<Table>,
    new_flows: Vec<u8>,
}

/// Bytes of one new-flow slot.
const NEW_FLOW_SLOT: usize = size_of::<xdpath_core::lb::NewFlowSlot>();

/// Every slot of the new-flow table, back to back.
fn new_flow_slots(maps: &KernelMaps) -> Result<Vec<u8>, RestoreError> {
    maps.read_array(
        abi::map::NEW_FLOW_TABLE,
        xdpath_core::lb::NEW_FLOW_SLOTS,
        NEW_FLOW_SLOT,
    )
    .map_err(|error| failed(abi::map::NEW_FLOW_TABLE)(error.to_string()))
}

fn failed(map: &'static str) -> impl Fn(String) -> RestoreError {
    move |detail| RestoreError { map, detail }
}

/// Every key of a hash-like map.
fn keys(
    maps: &KernelMaps,
    map: &'static str,
    key_size: usize,
) -> Result<Vec<Vec<u8>>, RestoreError> {
    let mut keys = Vec::new();
    let mut previous: Option<Vec<u8>> = None;
    while let Some(key) = maps
        .next_key(map, previous.as_deref(), key_size)
        .map_err(|error| failed(map)(error.to_string()))?
    {
        keys.push(key.clone());
        previous = Some(key);
    }
    Ok(keys)
}

/// Whether the data path may write a map of this type: hashes (plain and
/// LRU) and tries. Per-CPU hashes are not used by the program.
fn is_table(map_type: MapType) -> bool {
    matches!(
        map_type,
        MapType::Hash | MapType::LruHash | MapType::LpmTrie
    )
}

impl Snapshot {
    /// Reads every hash-like shared map of `program`.
    pub fn take(program: &mut LoadedProgram, maps: &KernelMaps) -> Result<Self, RestoreError> {
        let mut tables = Vec::new();
        for name in abi::SHARED_MAPS {
            let error = failed(name);
            let data = match program.ebpf_mut().map(name) {
                Some(Map::HashMap(data) | Map::LruHashMap(data) | Map::LpmTrie(data)) => data,
                _ => continue,
            };
            let info = data.info().map_err(|e| error(e.to_string()))?;
            if !is_table(info.map_type().map_err(|e| error(e.to_string()))?) {
                continue;
            }
            let (key_size, value_size) = (info.key_size() as usize, info.value_size() as usize);
            let mut entries = BTreeMap::new();
            for key in keys(maps, name, key_size)? {
                let mut value = vec![0u8; value_size];
                if maps
                    .lookup(name, &key, &mut value)
                    .map_err(|e| error(e.to_string()))?
                {
                    entries.insert(key, value);
                }
            }
            tables.push(Table {
                name,
                key_size,
                value_size,
                entries,
            });
        }
        let new_flows = new_flow_slots(maps)?;
        Ok(Self { tables, new_flows })
    }

    /// Puts every table back; returns how many entries were deleted.
    pub fn restore(&self, maps: &KernelMaps) -> Result<usize, RestoreError> {
        let mut deleted = 0;
        for table in &self.tables {
            let error = failed(table.name);
            for key in keys(maps, table.name, table.key_size)? {
                if !table.entries.contains_key(&key) {
                    maps.delete(table.name, &key)
                        .map_err(|e| error(e.to_string()))?;
                    deleted += 1;
                }
            }
            let mut current = vec![0u8; table.value_size];
            for (key, value) in &table.entries {
                let present = maps
                    .lookup(table.name, key, &mut current)
                    .map_err(|e| error(e.to_string()))?;
                if !present || current != *value {
                    maps.update(table.name, key, value)
                        .map_err(|e| error(e.to_string()))?;
                }
            }
        }
        // The new-flow slots written in the round (a bare SYN writes one):
        // a flow a later round's frames repeat must miss there, as it does
        // in the native build's fresh tables.
        let now = new_flow_slots(maps)?;
        let slots = now
            .chunks_exact(NEW_FLOW_SLOT)
            .zip(self.new_flows.chunks_exact(NEW_FLOW_SLOT));
        for (index, (current, was)) in slots.enumerate() {
            if current != was {
                maps.update(abi::map::NEW_FLOW_TABLE, &(index as u32).to_ne_bytes(), was)
                    .map_err(|e| failed(abi::map::NEW_FLOW_TABLE)(e.to_string()))?;
            }
        }
        Ok(deleted)
    }
}
