//! The reference balancer (`xdpath-ebpf/src/reflb.rs`, Katran's
//! per-packet work) loaded as the section's peer: its maps configured from
//! user space like xdpath's IPv4 VIP (the same VIP, backends, Maglev ring
//! and next hop, a connection table of the same size), its counters read
//! back and its table emptied between rounds.

use aya::maps::{Array, HashMap, MapData, PerCpuArray};
use xdpath_core::abi;
use xdpath_core::reflb::{Ctl, Real, Stat, VipKey, VipMeta, STAT_LRU};

use super::testrun::Subject;
use super::{LbBenchError, NEXT_HOP, RING_SIZE, VIP4};
use xdpath::dataplane::LoadedProgram;
use xdpath::lb::maglev::{build_table, MaglevBackend};

/// The reference's backends: xdpath's IPv4 VIP's (10.0.0.1-3), in the
/// same order, so one Maglev table (seed 7, as `bench_state`) serves both.
pub const BACKENDS: [[u8; 4]; 3] = [[10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 3]];
/// The outer source prefix (172.16.0.0/16, as xdpath's bench config).
pub const SOURCE_PREFIX: [u8; 4] = [172, 16, 0, 0];
/// The Maglev seed of xdpath's bench state.
const SEED: u64 = 7;

fn map_error(name: &'static str) -> impl Fn(aya::maps::MapError) -> LbBenchError {
    move |error| LbBenchError::Maps(format!("{name}: {error}"))
}

fn map_of<'a>(
    program: &'a mut LoadedProgram,
    name: &'static str,
) -> Result<&'a mut aya::maps::Map, LbBenchError> {
    program
        .ebpf_mut()
        .map_mut(name)
        .ok_or_else(|| LbBenchError::Maps(format!("no map {name} in the reference object")))
}

/// Loads the reference with a connection table of `lru_entries` entries
/// and configures it: the IPv4 VIP 203.0.113.10:80/tcp, three backends,
/// the Maglev ring of size `RING_SIZE`, the fixed next hop.
pub fn load_configured(lru_entries: u32) -> Result<LoadedProgram, LbBenchError> {
    let mut program =
        LoadedProgram::load_reflb(lru_entries).map_err(|source| LbBenchError::Program {
            program: "reference balancer".into(),
            source: Box::new(source),
        })?;
    configure(&mut program)?;
    Ok(program)
}

/// [`load_configured`], as a subject of the section's passes.
pub(super) fn load(lru_entries: u32) -> Result<Subject, LbBenchError> {
    Subject::new(
        "reference LB",
        load_configured(lru_entries)?,
        abi::program::REFLB,
    )
}

/// The Maglev table the reference's ring holds: positions in
/// [`BACKENDS`].
pub fn ring() -> Result<Vec<u32>, LbBenchError> {
    let pool: Vec<MaglevBackend> = BACKENDS
        .iter()
        .map(|&address| MaglevBackend {
            address: xdpath_core::parse::ipv4_mapped(address),
            weight: 1,
        })
        .collect();
    Ok(build_table(&pool, RING_SIZE, SEED)?)
}

/// Writes the VIP, the ring, the backends and the next hop.
fn configure(program: &mut LoadedProgram) -> Result<(), LbBenchError> {
    let ring = ring()?;
    let key = VipKey::ipv4(u32::from_ne_bytes(VIP4), 80u16.to_be(), 6);
    let meta = VipMeta {
        number: 0,
        flags: 0,
    };
    let name = abi::map::REFLB_VIPS;
    let mut vips: HashMap<&mut MapData, [u8; 20], [u8; 8]> =
        HashMap::try_from(map_of(program, name)?).map_err(map_error(name))?;
    vips.insert(key.to_bytes(), meta.to_bytes(), 0)
        .map_err(map_error(name))?;
    let name = abi::map::REFLB_RING;
    let mut slots: Array<&mut MapData, u32> =
        Array::try_from(map_of(program, name)?).map_err(map_error(name))?;
    for (slot, backend) in (0u32..).zip(&ring) {
        slots.set(slot, backend, 0).map_err(map_error(name))?;
    }
    let name = abi::map::REFLB_REALS;
    let mut reals: Array<&mut MapData, [u8; 20]> =
        Array::try_from(map_of(program, name)?).map_err(map_error(name))?;
    for (index, address) in (0u32..).zip(BACKENDS) {
        let real = Real::ipv4(u32::from_ne_bytes(address));
        reals
            .set(index, real.to_bytes(), 0)
            .map_err(map_error(name))?;
    }
    let name = abi::map::REFLB_CTL;
    let mut ctl: Array<&mut MapData, [u8; 12]> =
        Array::try_from(map_of(program, name)?).map_err(map_error(name))?;
    let value = Ctl {
        mac: NEXT_HOP,
        pad: [0; 2],
        source_prefix: u32::from_ne_bytes(SOURCE_PREFIX),
    };
    ctl.set(0, value.to_bytes(), 0).map_err(map_error(name))
}

/// The reference's connection-table misses (the frames the Maglev ring
/// routed), summed over CPUs.
pub fn misses(program: &LoadedProgram) -> Result<u64, LbBenchError> {
    stat(program, STAT_LRU).map(|stat| stat.v2)
}

/// The reference's connection-table (hits, misses), summed over CPUs: the
/// VIP frames less the misses, and the misses.
pub fn hits_and_misses(program: &LoadedProgram) -> Result<(u64, u64), LbBenchError> {
    let lru = stat(program, STAT_LRU)?;
    Ok((lru.v1.saturating_sub(lru.v2), lru.v2))
}

/// One `REFLB_STATS` slot, summed over CPUs.
pub fn stat(program: &LoadedProgram, slot: u32) -> Result<Stat, LbBenchError> {
    let name = abi::map::REFLB_STATS;
    let map = program
        .ebpf()
        .map(name)
        .ok_or_else(|| LbBenchError::Maps(format!("no map {name} in the reference object")))?;
    let stats: PerCpuArray<&MapData, [u8; 16]> =
        PerCpuArray::try_from(map).map_err(map_error(name))?;
    let values = stats.get(&slot, 0).map_err(map_error(name))?;
    Ok(values
        .iter()
        .map(|bytes| Stat::from_bytes(*bytes))
        .fold(Stat::default(), |sum, stat| Stat {
            v1: sum.v1.saturating_add(stat.v1),
            v2: sum.v2.saturating_add(stat.v2),
        }))
}

/// Empties the reference's connection table; returns how many entries it
/// held.
pub fn clear(program: &mut LoadedProgram) -> Result<usize, LbBenchError> {
    let name = abi::map::REFLB_LRU;
    let mut table: HashMap<&mut MapData, [u8; 40], [u8; 16]> =
        HashMap::try_from(map_of(program, name)?).map_err(map_error(name))?;
    let keys = table
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_error(name))?;
    for key in &keys {
        table.remove(key).map_err(map_error(name))?;
    }
    Ok(keys.len())
}
