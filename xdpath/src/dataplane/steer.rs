//! `xdpath steer enable|disable`: software receive-side scaling. Frames an
//! interface passes to the stack are handed, by flow hash, to one of the
//! namespace's steering CPUs through a CPU map, so one receive queue's
//! traffic is processed by the stack on several CPUs. Every frame of a
//! flow goes to the same CPU, so flows stay in order.

use crate::text::quote;
use aya::maps::xdp::CpuMap;
use aya::maps::{Array, Map, MapData, PerCpuArray};
use xdpath_core::abi;

use super::{
    open_pinned_map, read_interface_config, shared_dir, update_interface_config, DataplaneError,
};

/// Queue size of each CPU's entry when none is given.
pub const DEFAULT_QUEUE_SIZE: u32 = 2048;

/// What `steer` did, and the namespace's steering now.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SteerReport {
    /// The interface.
    pub interface: String,
    /// Steering on or off for it now.
    pub steer: bool,
    /// The namespace's steering CPUs.
    pub cpus: Vec<u32>,
    /// Each CPU entry's queue size, frames.
    pub queue_size: u32,
    /// Frames steered to each CPU so far (by target CPU).
    pub steered: Vec<(u32, u64)>,
}

fn error(message: String) -> DataplaneError {
    DataplaneError::Forward(message)
}

/// Parses a CPU list: `all`, or numbers and ranges, `0,2-3`.
///
/// # Examples
///
/// ```
/// use xdpath::dataplane::steer::parse_cpus;
/// assert_eq!(parse_cpus("0,2-3", 4).unwrap(), [0, 2, 3]);
/// assert_eq!(parse_cpus("all", 2).unwrap(), [0, 1]);
/// assert!(parse_cpus("5", 4).is_err());
/// ```
pub fn parse_cpus(text: &str, online: u32) -> Result<Vec<u32>, DataplaneError> {
    if text == "all" {
        return Ok((0..online.min(abi::MAX_STEER_CPUS)).collect());
    }
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let bad = || {
            error(format!(
                "CPU list {}: {} is not a CPU number or range",
                quote(text),
                quote(part)
            ))
        };
        let (low, high) = match part.split_once('-') {
            Some((low, high)) => (low.trim().parse::<u32>(), high.trim().parse::<u32>()),
            None => (part.trim().parse::<u32>(), part.trim().parse::<u32>()),
        };
        let (low, high) = (low.map_err(|_| bad())?, high.map_err(|_| bad())?);
        if low > high {
            return Err(bad());
        }
        for cpu in low..=high {
            if cpu >= online || cpu >= abi::MAX_STEER_CPUS {
                return Err(error(format!(
                    "CPU {cpu} does not exist: this host has CPUs 0-{}",
                    online.saturating_sub(1)
                )));
            }
            if !cpus.contains(&cpu) {
                cpus.push(cpu);
            }
        }
    }
    if cpus.is_empty() {
        return Err(error(format!("CPU list {} names no CPU", quote(text))));
    }
    Ok(cpus)
}

fn open<T>(
    name: &'static str,
    wrap: impl FnOnce(MapData) -> Map,
    convert: impl FnOnce(Map) -> Result<T, aya::maps::MapError>,
) -> Result<T, DataplaneError> {
    open_pinned_map(name, &shared_dir()?.join(name), wrap, convert)
}

/// Turns steering on (with `cpus` and `queue_size`, which become the
/// namespace's list) or off for an attached interface.
///
/// # Minimum kernel
///
/// 4.15 (`BPF_MAP_TYPE_CPUMAP`); queue sizes per entry: 5.9.
pub fn set_steering(
    interface: &str,
    on: bool,
    cpus: Option<&str>,
    queue_size: Option<u32>,
) -> Result<SteerReport, DataplaneError> {
    read_interface_config(interface)?;
    let online = aya::util::nr_cpus().map_or(1, |count| count as u32);
    let queue_size = queue_size.unwrap_or(DEFAULT_QUEUE_SIZE);
    if on && !(8..=16_384).contains(&queue_size) {
        return Err(error(format!(
            "queue size {queue_size} is out of range 8..=16384"
        )));
    }
    let mut list: Array<MapData, u32> = open(abi::map::STEER_CPUS, Map::Array, Array::try_from)?;
    let mut cpu_map: CpuMap<MapData> = open(abi::map::CPU_MAP, Map::CpuMap, CpuMap::try_from)?;
    if on {
        let cpus = parse_cpus(cpus.unwrap_or("all"), online)?;
        for cpu in &cpus {
            cpu_map
                .set(*cpu, queue_size, None, 0)
                .map_err(|error| self::error(format!("CPU_MAP entry of CPU {cpu}: {error}")))?;
        }
        // The list first, its length last: the data path never reads a
        // slot past the length.
        for (slot, cpu) in cpus.iter().enumerate() {
            list.set(1 + slot as u32, *cpu, 0)
                .map_err(DataplaneError::of_map(abi::map::STEER_CPUS))?;
        }
        list.set(0, cpus.len() as u32, 0)
            .map_err(DataplaneError::of_map(abi::map::STEER_CPUS))?;
    }
    update_interface_config(interface, |config| config.steer = u8::from(on))?;
    report(interface, on, queue_size)
}

fn report(interface: &str, on: bool, queue_size: u32) -> Result<SteerReport, DataplaneError> {
    let list: Array<MapData, u32> = open(abi::map::STEER_CPUS, Map::Array, Array::try_from)?;
    let count = list.get(&0, 0).unwrap_or(0).min(abi::MAX_STEER_CPUS);
    let cpus: Vec<u32> = (1..=count)
        .filter_map(|slot| list.get(&slot, 0).ok())
        .collect();
    let stats: PerCpuArray<MapData, u64> = open(
        abi::map::STEER_STATS,
        Map::PerCpuArray,
        PerCpuArray::try_from,
    )?;
    let steered = cpus
        .iter()
        .map(|cpu| {
            let total = stats
                .get(cpu, 0)
                .map(|values| values.iter().sum())
                .unwrap_or(0);
            (*cpu, total)
        })
        .collect();
    Ok(SteerReport {
        interface: interface.into(),
        steer: on,
        cpus,
        queue_size,
        steered,
    })
}

/// Frames steered to each CPU of the namespace's list so far.
pub fn steered() -> Result<Vec<(u32, u64)>, DataplaneError> {
    Ok(report("", true, 0)?.steered)
}

/// The queue size of the namespace's steering CPUs (that of the first in
/// the list); `None` when nothing steers or xdpath is not attached.
pub fn queue_size() -> Option<u32> {
    let list: Array<MapData, u32> = open(abi::map::STEER_CPUS, Map::Array, Array::try_from).ok()?;
    if list.get(&0, 0).ok()? == 0 {
        return None;
    }
    let first = list.get(&1, 0).ok()?;
    let cpu_map: CpuMap<MapData> = open(abi::map::CPU_MAP, Map::CpuMap, CpuMap::try_from).ok()?;
    cpu_map.get(first, 0).ok().map(|value| value.queue_size)
}
