//! [`ProgramImage`]: every map of a loaded program as it was, and the
//! means to put it back, so that one load (seconds of verifier time)
//! serves many fixture rows that must each see a fresh program.

use std::collections::BTreeMap;
use std::os::fd::AsFd;

use aya::maps::{Map, MapData, MapType, RingBuf};
use xdpath::dataplane::LoadedProgram;

use super::raw::RawMap;
use super::ReuseError;

/// What a map held.
enum Contents {
    /// An array's values, index by index, back to back.
    Array { entries: u32, values: Vec<u8> },
    /// A hash, LRU hash or trie's entries.
    Keyed(BTreeMap<Vec<u8>, Vec<u8>>),
    /// A ring buffer: put back by reading it empty.
    Ring(Box<RingBuf<MapData>>),
    /// An AF_XDP socket map, which user space cannot read: put back by
    /// deleting every slot (a load leaves it empty).
    Sockets { entries: u32 },
}

struct MapCopy {
    name: String,
    raw: RawMap,
    contents: Contents,
}

/// A snapshot of every map of one loaded program.
pub struct ProgramImage {
    maps: Vec<MapCopy>,
}

fn failed<'a>(
    name: &'a str,
    operation: &'static str,
) -> impl Fn(std::io::Error) -> ReuseError + 'a {
    move |source| ReuseError::Map {
        map: name.to_string(),
        operation,
        source,
    }
}

fn data_of(map: &Map) -> Option<&MapData> {
    match map {
        Map::Array(data)
        | Map::PerCpuArray(data)
        | Map::HashMap(data)
        | Map::LruHashMap(data)
        | Map::PerCpuHashMap(data)
        | Map::PerCpuLruHashMap(data)
        | Map::LpmTrie(data)
        | Map::ProgramArray(data)
        | Map::RingBuf(data)
        | Map::CpuMap(data)
        | Map::DevMapHash(data)
        | Map::XskMap(data) => Some(data),
        _ => None,
    }
}

/// The bytes a lookup of one value writes: per-CPU maps hold one value,
/// rounded up to 8 bytes, per possible CPU.
fn stored_value_size(map_type: MapType, value_size: usize) -> Result<usize, ReuseError> {
    let per_cpu = matches!(
        map_type,
        MapType::PerCpuArray | MapType::PerCpuHash | MapType::LruPerCpuHash
    );
    if !per_cpu {
        return Ok(value_size);
    }
    let cpus = aya::util::nr_cpus().map_err(|(what, source)| ReuseError::Map {
        map: what.to_string(),
        operation: "count the possible CPUs",
        source,
    })?;
    Ok(value_size.div_ceil(8) * 8 * cpus)
}

impl MapCopy {
    /// Reads the map `name`; `None` for the tail-call table, which only
    /// the loader writes.
    fn take(name: &str, map: &Map) -> Result<Option<Self>, ReuseError> {
        let unsupported = || ReuseError::Unsupported {
            map: name.to_string(),
            kind: format!("{map:?}")
                .split('(')
                .next()
                .unwrap_or("?")
                .to_string(),
        };
        let data = data_of(map).ok_or_else(unsupported)?;
        let info = data
            .info()
            .map_err(|error| failed(name, "read its info")(std::io::Error::other(error)))?;
        let map_type = info
            .map_type()
            .map_err(|error| failed(name, "read its type")(std::io::Error::other(error)))?;
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(failed(name, "clone its descriptor"))?;
        let value_size = stored_value_size(map_type, info.value_size() as usize)?;
        let raw = RawMap::new(fd, info.key_size() as usize, value_size);
        let contents = match map_type {
            MapType::ProgramArray => return Ok(None),
            MapType::Array | MapType::PerCpuArray => Contents::Array {
                entries: info.max_entries(),
                values: raw
                    .read_array(info.max_entries())
                    .map_err(failed(name, "read it"))?,
            },
            MapType::Hash
            | MapType::LruHash
            | MapType::PerCpuHash
            | MapType::LruPerCpuHash
            | MapType::LpmTrie
            | MapType::CpuMap
            | MapType::DevMapHash => Contents::Keyed(read_entries(name, &raw)?),
            MapType::XskMap => Contents::Sockets {
                entries: info.max_entries(),
            },
            MapType::RingBuf => Contents::Ring(Box::new(own_ring(name, &raw)?)),
            _ => return Err(unsupported()),
        };
        Ok(Some(Self {
            name: name.to_string(),
            raw,
            contents,
        }))
    }

    /// Puts the map back and reads back what it wrote; the number of
    /// entries written or deleted (or records read out of a ring).
    fn restore(&mut self) -> Result<usize, ReuseError> {
        let name = self.name.as_str();
        let not_restored = |detail: String| ReuseError::NotRestored {
            differences: format!("{name}: {detail}"),
        };
        match &mut self.contents {
            Contents::Array { entries, values } => {
                let size = self.raw.value_size;
                let mut written = 0;
                for index in changed_indices(name, &self.raw, *entries, values)? {
                    let Some(was) = values.get(index * size..(index + 1) * size) else {
                        continue;
                    };
                    let key = (index as u32).to_ne_bytes();
                    self.raw.update(&key, was).map_err(failed(name, "write"))?;
                    let back = self.raw.lookup(&key).map_err(failed(name, "read back"))?;
                    if back.as_deref() != Some(was) {
                        return Err(not_restored(format!("entry {index} reads back otherwise")));
                    }
                    written += 1;
                }
                Ok(written)
            }
            Contents::Keyed(entries) => {
                let now = read_entries(name, &self.raw)?;
                let mut changed = 0;
                for key in now.keys().filter(|key| !entries.contains_key(*key)) {
                    self.raw.delete(key).map_err(failed(name, "delete"))?;
                    changed += 1;
                }
                for (key, value) in entries.iter() {
                    if now.get(key) != Some(value) {
                        self.raw.update(key, value).map_err(failed(name, "write"))?;
                        changed += 1;
                    }
                }
                if changed > 0 && read_entries(name, &self.raw)? != *entries {
                    return Err(not_restored("its entries read back otherwise".into()));
                }
                Ok(changed)
            }
            Contents::Ring(ring) => {
                let mut records = 0;
                while ring.next().is_some() {
                    records += 1;
                }
                Ok(records)
            }
            Contents::Sockets { entries } => {
                for index in 0..*entries {
                    self.raw
                        .delete(&index.to_ne_bytes())
                        .map_err(failed(name, "delete"))?;
                }
                Ok(0)
            }
        }
    }

    /// Whether the map holds what the image says (rings: nothing unread).
    fn difference(&mut self) -> Result<Option<String>, ReuseError> {
        let name = self.name.as_str();
        let differs = match &mut self.contents {
            Contents::Array { entries, values } => {
                let indices = changed_indices(name, &self.raw, *entries, values)?;
                (!indices.is_empty()).then(|| format!("entries {indices:?} differ"))
            }
            Contents::Keyed(entries) => {
                let now = read_entries(name, &self.raw)?;
                (now != *entries)
                    .then(|| format!("{} entries, {} in the image", now.len(), entries.len()))
            }
            Contents::Ring(ring) => ring
                .next()
                .map(|record| format!("an unread record of {} bytes", record.len())),
            // Not readable from user space; every slot was just deleted.
            Contents::Sockets { .. } => None,
        };
        Ok(differs.map(|detail| format!("{name}: {detail}")))
    }
}

/// The indices of an array's entries that differ from `values` (the
/// image's, back to back).
fn changed_indices(
    name: &str,
    raw: &RawMap,
    entries: u32,
    values: &[u8],
) -> Result<Vec<usize>, ReuseError> {
    let now = raw.read_array(entries).map_err(failed(name, "read it"))?;
    if now == values {
        return Ok(Vec::new());
    }
    let size = raw.value_size;
    Ok(values
        .chunks(size)
        .zip(now.chunks(size))
        .enumerate()
        .filter(|(_, (was, is))| was != is)
        .map(|(index, _)| index)
        .collect())
}

fn read_entries(name: &str, raw: &RawMap) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, ReuseError> {
    let mut entries = BTreeMap::new();
    for key in raw.keys().map_err(failed(name, "list its keys"))? {
        if let Some(value) = raw.lookup(&key).map_err(failed(name, "read an entry"))? {
            entries.insert(key, value);
        }
    }
    Ok(entries)
}

/// A consumer of the ring of its own (on a new descriptor), to read it
/// empty between rows.
fn own_ring(name: &str, raw: &RawMap) -> Result<RingBuf<MapData>, ReuseError> {
    let fd = raw
        .fd()
        .try_clone()
        .map_err(failed(name, "clone its descriptor"))?;
    let data = MapData::from_fd(fd)
        .map_err(|error| failed(name, "open it")(std::io::Error::other(error)))?;
    RingBuf::try_from(Map::RingBuf(data))
        .map_err(|error| failed(name, "map it")(std::io::Error::other(error)))
}

impl ProgramImage {
    /// Reads every map of `program`. Fails on a map of a kind it cannot
    /// put back, so that no map is silently left out.
    pub fn take(program: &LoadedProgram) -> Result<Self, ReuseError> {
        let mut maps = Vec::new();
        for (name, map) in program.ebpf().maps() {
            if let Some(copy) = MapCopy::take(name, map)? {
                maps.push(copy);
            }
        }
        Ok(Self { maps })
    }

    /// The names of the maps the image holds.
    pub fn map_names(&self) -> Vec<&str> {
        self.maps.iter().map(|map| map.name.as_str()).collect()
    }

    /// Puts back every map for which `skip` is false, reading back what
    /// it writes. Returns how many entries (and ring records) it put back.
    pub fn restore(&mut self, skip: impl Fn(&str) -> bool) -> Result<usize, ReuseError> {
        let mut changed = 0;
        for map in self.maps.iter_mut().filter(|map| !skip(&map.name)) {
            changed += map.restore()?;
        }
        Ok(changed)
    }

    /// The maps that differ from the image, and how: every map read
    /// whole (the Maglev rings are 16 MiB, a third of a second).
    pub fn differences(&mut self) -> Result<Vec<String>, ReuseError> {
        let mut differences = Vec::new();
        for map in &mut self.maps {
            differences.extend(map.difference()?);
        }
        Ok(differences)
    }
}
