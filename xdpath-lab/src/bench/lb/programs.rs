//! The programs the section measures, the balancer state installed in one
//! of them, and its connection table: counters, emptying, description.

use aya::maps::{Map, MapData};
use xdpath_core::abi;
use xdpath_core::lb::{
    Connection, ConnectionKey, NewFlowSlot, CONN_HITS, CONN_MISSES, NEW_FLOW_SLOTS,
};

use super::state::bench_state;
use super::testrun::{load_xdpath, Subject};
use super::{LbBenchError, LbBenchOptions};
use xdpath::control::kernel::KernelMaps;
use xdpath::dataplane::LoadedProgram;

/// The peer's entry point in `xdpfilt_alw_all.o`.
const PEER_PROGRAM: &str = "xdpfilt_alw_all";

/// Every program of the section, loaded.
pub(super) struct Programs {
    /// xdpath with [`bench_state`] installed.
    pub(super) balancer: Subject,
    /// The balancer's maps.
    pub(super) maps: KernelMaps,
    /// The measured connection table in words.
    pub(super) connection_table: String,
    /// The reference balancer (Katran's per-packet work), its connection
    /// table as large as xdpath's established one.
    pub(super) reference: Subject,
    /// xdpath without LB state.
    pub(super) plain: Subject,
    /// The empty program.
    pub(super) empty: Subject,
    /// xdp-filter, when it loaded.
    pub(super) peer: Option<Subject>,
    /// Why xdp-filter did not load, if it did not.
    pub(super) peer_skipped: Option<String>,
}

impl Programs {
    /// Loads them all and installs the balancer state.
    pub(super) fn load(options: &LbBenchOptions) -> Result<Self, LbBenchError> {
        let object = options.object.as_deref();
        let table = options.connection_table;
        let mut balancer = load_xdpath(object, table, "xdpath + LB")?;
        let maps = KernelMaps::of_program(&balancer.program)
            .map_err(|error| LbBenchError::Maps(format!("open: {error}")))?;
        bench_state(options.allow)?
            .install_kernel(&maps)
            .map_err(|error| LbBenchError::Maps(format!("install the balancer state: {error}")))?;
        let connection_table = describe_connection_table(&mut balancer.program);
        let reference = super::reference::load(connection_table_size(&mut balancer.program)?)?;
        let plain = load_xdpath(object, table, "xdpath, no LB state")?;
        let empty = LoadedProgram::load_empty().map_err(|source| LbBenchError::Program {
            program: "empty".into(),
            source: Box::new(source),
        })?;
        let empty = Subject::new("empty", empty, abi::program::EMPTY)?;
        let (peer, peer_skipped) = match LoadedProgram::load_file(&options.peer, PEER_PROGRAM) {
            Ok(program) => (
                Some(Subject::new("xdp-filter", program, PEER_PROGRAM)?),
                None,
            ),
            Err(error) => (None, Some(format!("{}: {error}", options.peer.display()))),
        };
        Ok(Self {
            balancer,
            maps,
            connection_table,
            reference,
            plain,
            empty,
            peer,
            peer_skipped,
        })
    }
}

/// Kernel-counted connection-table (hits, misses), summed over CPUs.
pub(super) fn connection_counts(maps: &KernelMaps) -> Result<(u64, u64), LbBenchError> {
    let read = |slot| {
        maps.per_cpu_sum(abi::map::CONN_STATS, slot)
            .map_err(|error| LbBenchError::Maps(format!("read CONN_STATS: {error}")))
    };
    Ok((read(CONN_HITS)?, read(CONN_MISSES)?))
}

/// The new-flow table's seed, which the balancer's install wrote.
pub(super) fn new_flow_seed(maps: &KernelMaps) -> Result<u64, LbBenchError> {
    xdpath::lb::install::new_flow_seed(maps)
        .map_err(|error| LbBenchError::Maps(format!("read the new-flow seed: {error}")))
}

/// The connection table's key and value as the map stores them.
type ConnectionTable<'a> = aya::maps::HashMap<
    &'a mut MapData,
    [u8; size_of::<ConnectionKey>()],
    [u8; size_of::<Connection>()],
>;

/// Empties the two connection tables (`CONNECTIONS`, the slots of
/// `NEW_FLOW_TABLE`), so every round starts from empty tables (as many free
/// entries for both LRU variants, and no flow of an earlier pass to be
/// found); returns how many entries the established table held.
pub(super) fn clear_connections(
    program: &mut LoadedProgram,
    maps: &KernelMaps,
) -> Result<usize, LbBenchError> {
    let held = clear_table(program, abi::map::CONNECTIONS)?;
    clear_new_flows(maps)?;
    Ok(held)
}

/// Zeroes every written slot of the new-flow table (not its seed).
fn clear_new_flows(maps: &KernelMaps) -> Result<(), LbBenchError> {
    const SLOT: usize = size_of::<NewFlowSlot>();
    let name = abi::map::NEW_FLOW_TABLE;
    let failed =
        |error: xdpath::control::apply::ApplyError| LbBenchError::Maps(format!("{name}: {error}"));
    let slots = maps
        .read_array(name, NEW_FLOW_SLOTS, SLOT)
        .map_err(failed)?;
    for (index, slot) in slots.chunks_exact(SLOT).enumerate() {
        if slot.iter().any(|byte| *byte != 0) {
            maps.update(name, &(index as u32).to_ne_bytes(), &[0u8; SLOT])
                .map_err(failed)?;
        }
    }
    Ok(())
}

/// Empties one connection table; returns how many entries it held.
pub(super) fn clear_table(
    program: &mut LoadedProgram,
    name: &'static str,
) -> Result<usize, LbBenchError> {
    let map_error = |error: aya::maps::MapError| LbBenchError::Maps(format!("{name}: {error}"));
    let map = program
        .ebpf_mut()
        .map_mut(name)
        .ok_or_else(|| LbBenchError::Maps(format!("no map {name} in the object")))?;
    let mut table = ConnectionTable::try_from(map).map_err(map_error)?;
    // Listed first, then deleted: deleting while walking would restart the
    // walk.
    let keys = table
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_error)?;
    for key in &keys {
        table.remove(key).map_err(map_error)?;
    }
    Ok(keys.len())
}

/// The entries of the measured object's established-connection table.
fn connection_table_size(program: &mut LoadedProgram) -> Result<u32, LbBenchError> {
    let name = abi::map::CONNECTIONS;
    let data = match program.ebpf_mut().map(name) {
        Some(Map::LruHashMap(data) | Map::PerCpuLruHashMap(data) | Map::HashMap(data)) => data,
        _ => {
            return Err(LbBenchError::Maps(format!(
                "no hash map {name} in the object"
            )))
        }
    };
    data.info()
        .map(|info| info.max_entries())
        .map_err(|error| LbBenchError::Maps(format!("{name}: map info: {error}")))
}

/// The measured object's connection table in words (from the kernel's
/// own description of the map, so a variant object is labelled by what it
/// is, not by what it was meant to be).
fn describe_connection_table(program: &mut LoadedProgram) -> String {
    const BPF_F_NO_COMMON_LRU: u32 = 2;
    let (kind, data) = match program.ebpf_mut().map(abi::map::CONNECTIONS) {
        Some(Map::LruHashMap(data)) => ("LRU hash", data),
        Some(Map::PerCpuLruHashMap(data)) => ("per-CPU LRU hash (a value per CPU)", data),
        Some(Map::HashMap(data)) => ("hash", data),
        Some(_) => return "CONNECTIONS: an unexpected map type".into(),
        None => return "no CONNECTIONS map".into(),
    };
    match data.info() {
        Ok(info) => {
            let flags = info.map_flags();
            let lists = if flags & BPF_F_NO_COMMON_LRU != 0 {
                "per-CPU LRU lists (BPF_F_NO_COMMON_LRU)"
            } else {
                "one LRU list shared by all CPUs"
            };
            format!(
                "CONNECTIONS: {kind}, {} entries, flags {flags:#x}: {lists}",
                info.max_entries()
            )
        }
        Err(error) => format!("CONNECTIONS: {kind} (map info: {error})"),
    }
}
