//! The balancer's established-connection table as one LRU shared by all
//! CPUs or one LRU list per CPU (`BPF_F_NO_COMMON_LRU`), chosen when the
//! map is created. (The new-flow table, `NEW_FLOW_TABLE`, is an array of slots
//! with no LRU order: the choice does not apply to it.)
//!
//! aya's loader can size a map before the load but not change its flags,
//! so for per-CPU lists the object's own definition of `CONNECTIONS`
//! (aya-ebpf's legacy `maps` section: a `bpf_map_def` per map, its
//! `map_flags` at byte 16) is patched in a copy of the object before it is
//! loaded. A map opened from its pin keeps the flags it was created with.

use std::borrow::Cow;

use object::{Object, ObjectSection, ObjectSymbol};
use serde::{Deserialize, Serialize};
use xdpath_core::abi;

use super::DataplaneError;

/// One LRU list per CPU (kernel 4.10).
pub const BPF_F_NO_COMMON_LRU: u32 = 2;
/// Where `map_flags` sits in a `bpf_map_def` (type, key size, value size,
/// max entries, flags).
const MAP_FLAGS_OFFSET: u64 = 16;
/// The section aya-ebpf puts its map definitions in.
const MAPS_SECTION: &str = "maps";
/// The maps the choice applies to.
const TABLES: [&str; 1] = [abi::map::CONNECTIONS];

/// How the established-connection table keeps its least-recently-used order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
// Read from a string of its own (not serde's enum form): a value of
// another type (`"connection_table": 0`) is then refused as that, not as
// a JSON syntax error ("expected value at line 1 column 22").
#[serde(rename_all = "kebab-case", try_from = "String")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ConnectionTable {
    /// One LRU list for all CPUs: every CPU may use every entry, and an
    /// established flow is found from any CPU; the list's lock is shared.
    #[default]
    Shared,
    /// One LRU list per CPU (`BPF_F_NO_COMMON_LRU`): no shared lock, but
    /// each CPU holds only its share of the entries and evicts only its
    /// own; a flow moved to another CPU by RSS is looked up afresh there
    /// (and, with its VIP's backends unchanged, Maglev picks the same
    /// backend again).
    PerCpu,
}

impl ConnectionTable {
    /// The flags the maps are created with.
    pub const fn map_flags(self) -> u32 {
        match self {
            ConnectionTable::Shared => 0,
            ConnectionTable::PerCpu => BPF_F_NO_COMMON_LRU,
        }
    }

    /// The kind a map created with `flags` is.
    pub const fn of_flags(flags: u32) -> Self {
        if flags & BPF_F_NO_COMMON_LRU != 0 {
            ConnectionTable::PerCpu
        } else {
            ConnectionTable::Shared
        }
    }

    /// Its name in the config and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            ConnectionTable::Shared => "shared",
            ConnectionTable::PerCpu => "per-cpu",
        }
    }
}

impl TryFrom<String> for ConnectionTable {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        [ConnectionTable::Shared, ConnectionTable::PerCpu]
            .into_iter()
            .find(|table| table.name() == text)
            .ok_or_else(|| {
                format!(
                    "connection table {} is not shared or per-cpu",
                    crate::text::quote(&text)
                )
            })
    }
}

impl std::fmt::Display for ConnectionTable {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The kind of this namespace's pinned established-connection table, `None` while
/// there are none.
pub fn pinned_connection_table() -> Result<Option<ConnectionTable>, DataplaneError> {
    let path = super::shared_dir()?.join(abi::map::CONNECTIONS);
    if !path.exists() {
        return Ok(None);
    }
    let map = aya::maps::MapData::from_pin(&path)
        .map_err(DataplaneError::of_map(abi::map::CONNECTIONS))?;
    let info = map
        .info()
        .map_err(DataplaneError::of_map(abi::map::CONNECTIONS))?;
    Ok(Some(ConnectionTable::of_flags(info.map_flags())))
}

/// Makes this namespace's established-connection table of kind `wanted` (which the
/// saved balancer settings must already ask for: maps are created as they
/// say). A pinned table of that kind, or none yet, changes nothing; else
/// the table is unpinned and the program of every attached interface
/// reloaded over a new, empty one (the first reload creates and pins
/// it), or without an attached interface the shared maps created
/// afresh. Returns the interfaces reloaded.
///
/// The established flows' entries are dropped with the old table: each
/// flow's next frame misses and is placed by Maglev again, on the same
/// backend while its VIP's backends are unchanged.
pub fn set_connection_table(wanted: ConnectionTable) -> Result<Vec<String>, DataplaneError> {
    match pinned_connection_table()? {
        None => return Ok(Vec::new()),
        Some(kind) if kind == wanted => return Ok(Vec::new()),
        Some(_) => {}
    }
    let dir = super::shared_dir()?;
    for name in TABLES {
        let path = dir.join(name);
        if let Err(source) = std::fs::remove_file(&path) {
            if source.kind() != std::io::ErrorKind::NotFound {
                return Err(DataplaneError::Io { path, source });
            }
        }
    }
    // Those running the recorded link on their device: a gone, renamed or
    // detached one is lost, and reattached over the new table.
    let interfaces: Vec<String> = super::attached_interfaces()?
        .into_iter()
        .filter(|name| super::status(name).is_ok_and(|status| status.healthy))
        .collect();
    // Each on its own: one that fails does not keep the others on the
    // old table (the read-back reports it; a repair reloads it).
    let mut failed = None;
    for interface in &interfaces {
        if let Err(error) = super::reload(interface) {
            failed.get_or_insert(error);
        }
    }
    if interfaces.is_empty() {
        super::LoadedProgram::create_shared_maps()?;
    }
    match failed {
        Some(error) => Err(error),
        None => Ok(interfaces),
    }
}

/// `object` with its established-connection table defined as `table` asks: borrowed
/// when the definitions say so already.
pub(super) fn object_with_table(
    object: &[u8],
    table: ConnectionTable,
) -> Result<Cow<'_, [u8]>, DataplaneError> {
    let mut patched: Option<Vec<u8>> = None;
    for name in TABLES {
        let at = map_flags_offset(object, name)?;
        let current = read_u32(object, at).ok_or_else(|| bad_object(name, "flags out of range"))?;
        let wanted = (current & !BPF_F_NO_COMMON_LRU) | table.map_flags();
        if wanted != current {
            let bytes = patched.get_or_insert_with(|| object.to_vec());
            if let Some(slot) = bytes.get_mut(at..at + 4) {
                slot.copy_from_slice(&wanted.to_le_bytes());
            }
        }
    }
    Ok(match patched {
        Some(bytes) => Cow::Owned(bytes),
        None => Cow::Borrowed(object),
    })
}

/// The file offset of map `name`'s `map_flags` in the ELF object.
fn map_flags_offset(object: &[u8], name: &'static str) -> Result<usize, DataplaneError> {
    let file = object::File::parse(object).map_err(|error| bad_object(name, &error.to_string()))?;
    let symbol = file
        .symbols()
        .find(|symbol| symbol.name() == Ok(name))
        .ok_or_else(|| bad_object(name, "no such symbol"))?;
    let index = symbol
        .section_index()
        .ok_or_else(|| bad_object(name, "not in a section"))?;
    let section = file
        .section_by_index(index)
        .map_err(|error| bad_object(name, &error.to_string()))?;
    if section.name() != Ok(MAPS_SECTION) {
        return Err(bad_object(name, "not in the maps section"));
    }
    let (start, size) = section
        .file_range()
        .ok_or_else(|| bad_object(name, "the maps section has no bytes"))?;
    let within = symbol.address() + MAP_FLAGS_OFFSET;
    if within + 4 > size {
        return Err(bad_object(name, "definition past the section's end"));
    }
    usize::try_from(start + within).map_err(|_| bad_object(name, "offset too large"))
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let slice = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(slice.try_into().ok()?))
}

fn bad_object(map: &'static str, why: &str) -> DataplaneError {
    DataplaneError::Load(format!("the object's definition of {map}: {why}").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects;

    #[test]
    fn per_cpu_lists_patch_the_table_and_nothing_else() {
        let shared = object_with_table(objects::XDPATH, ConnectionTable::Shared).expect("shared");
        assert!(
            matches!(shared, Cow::Borrowed(_)),
            "the object is shared already"
        );
        let per_cpu = object_with_table(objects::XDPATH, ConnectionTable::PerCpu).expect("per-cpu");
        let changed: Vec<usize> = objects::XDPATH
            .iter()
            .zip(per_cpu.iter())
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(at, _)| at)
            .collect();
        assert_eq!(
            changed.len(),
            1,
            "one byte of the table's flags: {changed:?}"
        );
        for name in TABLES {
            let at = map_flags_offset(&per_cpu, name).expect("offset");
            assert_eq!(read_u32(&per_cpu, at), Some(BPF_F_NO_COMMON_LRU));
        }
        let back = object_with_table(&per_cpu, ConnectionTable::Shared).expect("back");
        assert_eq!(&*back, objects::XDPATH);
    }

    #[test]
    fn a_table_kind_round_trips_through_its_flags_and_name() {
        for kind in [ConnectionTable::Shared, ConnectionTable::PerCpu] {
            assert_eq!(ConnectionTable::of_flags(kind.map_flags()), kind);
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.name()));
        }
    }

    #[test]
    fn the_kind_reads_from_its_name_only() {
        for table in [ConnectionTable::Shared, ConnectionTable::PerCpu] {
            let text = serde_json::to_string(&table).expect("json");
            assert_eq!(text, format!("\"{table}\""));
            assert_eq!(
                serde_json::from_str::<ConnectionTable>(&text).expect("back"),
                table
            );
        }
        let wrong_type = serde_json::from_str::<ConnectionTable>("0").expect_err("a number");
        assert!(wrong_type.is_data(), "{wrong_type}");
        let unknown = serde_json::from_str::<ConnectionTable>("\"lru\"").expect_err("unknown");
        assert!(
            unknown
                .to_string()
                .contains("\"lru\" is not shared or per-cpu"),
            "{unknown}"
        );
    }
}
