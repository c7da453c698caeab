//! Which of the namespace's shared maps the programs an interface runs
//! really hold. A program holds the maps it was loaded with for as long as
//! it runs; the pins are only names. A change that replaces a shared map
//! (the connection table's kind: `conn_table`) unpins the old one and
//! reloads every interface over the new one, and a kill in between leaves
//! a running program on a map nobody can read or write any more (hostile
//! lb F6: `state check` then read the new, empty pinned map and said the
//! kernel enforced the state). This reads the truth: the link's program,
//! the stage programs of the tail-call table *that* program holds, and
//! the maps each of them holds, by kernel id.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use aya::maps::MapInfo;
use xdpath_core::abi;

use super::{DataplaneError, InterfacePins};
use crate::bpf_syscall::{bpf, command, ElementAttr};

/// `BPF_PROG_GET_FD_BY_ID`.
const PROG_GET_FD_BY_ID: libc::c_long = 13;
/// `bpf_prog_info.nr_map_ids` and `.map_ids`: after type, id, tag[8],
/// two lengths, two instruction pointers, the load time and the uid.
const NR_MAP_IDS_OFFSET: usize = 52;
const MAP_IDS_OFFSET: usize = 56;
/// The kernel keeps a map's name to `BPF_OBJ_NAME_LEN - 1` bytes.
const KERNEL_NAME_LEN: usize = 15;

/// The namespace's shared maps as pinned: kernel name and id (none: no
/// pin). Names the kernel cuts alike (`PREFIX_LENGTHS_0` and `_1`) are
/// told apart by the ids pinned under either.
type Pinned = Vec<(&'static str, Option<u32>)>;

fn pinned_ids() -> Result<Pinned, DataplaneError> {
    let shared = super::shared_dir()?;
    Ok(abi::SHARED_MAPS
        .iter()
        .map(|name| {
            let id = MapInfo::from_pin(shared.join(name))
                .ok()
                .map(|info| info.id());
            (kernel_name(name), id)
        })
        .collect())
}

/// The shared maps the programs `interface` runs hold that are not this
/// namespace's pinned ones (`pinned`; or have no pin at all), by name;
/// empty when the interface runs no program (a lost interface is
/// reported apart).
fn stale_against(interface: &str, pinned: &Pinned) -> Result<Vec<&'static str>, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    let link = pins.path("link");
    if !link.exists() {
        return Ok(Vec::new());
    }
    let unreadable = |why: String| DataplaneError::PinnedObject {
        path: link.clone(),
        source: format!("cannot read which maps the running programs hold: {why}").into(),
    };
    let entry = super::link_info::link_program_id(&link).map_err(unreadable)?;
    let held = held_map_ids(entry).map_err(|error| unreadable(error.to_string()))?;
    let mut stale = Vec::new();
    for name in abi::SHARED_MAPS {
        let cut = kernel_name(name);
        let is_pinned = |id: u32| {
            pinned
                .iter()
                .any(|(other, pin)| *other == cut && *pin == Some(id))
        };
        let other = held
            .iter()
            .any(|(id, held_name)| held_name.as_str() == cut && !is_pinned(*id));
        if other {
            stale.push(name);
        }
    }
    Ok(stale)
}

/// An attached interface whose programs do not hold the pinned shared
/// maps, or whose maps could not be told.
pub struct StaleInterface {
    /// The interface.
    pub interface: String,
    /// What to report.
    pub line: String,
    /// Whether a reload puts it right (false: it could not be read).
    pub reload: bool,
}

/// How often the programs of an interface are read before it is taken
/// as unreadable: a reload or detach at the same time frees the programs
/// and maps being read (ENOENT by id), which says nothing about them.
const READS: usize = 3;

/// The attached interfaces whose programs hold shared maps that are not
/// the pinned ones (see `stale_against`); reads only. Only those
/// whose device is there and runs the recorded link: a gone, renamed or
/// detached interface is reported (and reattached) as lost.
pub fn stale_interfaces() -> Result<Vec<StaleInterface>, DataplaneError> {
    let pinned = pinned_ids()?;
    let mut found = Vec::new();
    for interface in super::attached_interfaces()? {
        if !super::status(&interface).is_ok_and(|status| status.healthy) {
            continue;
        }
        let mut read = stale_against(&interface, &pinned);
        for _ in 1..READS {
            if read.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            read = stale_against(&interface, &pinned);
        }
        let (line, reload) = match read {
            Ok(stale) if stale.is_empty() => continue,
            Ok(stale) => (stale_line(&interface, &stale), true),
            Err(error) => (
                format!(
                    "{}: whether its programs use this namespace's maps cannot be told: {error}",
                    crate::text::quote(&interface)
                ),
                false,
            ),
        };
        found.push(StaleInterface {
            interface,
            line,
            reload,
        });
    }
    Ok(found)
}

fn stale_line(interface: &str, stale: &[&str]) -> String {
    format!(
        "{} runs on shared maps that are not this namespace's pinned ones ({}): its program does not see the saved state (a change that replaces them did not finish, or a pin was removed); `xdpath state check --repair` reloads it",
        crate::text::quote(interface),
        stale.join(", ")
    )
}

/// Every map the program `entry` and the stage programs of its tail-call
/// table hold, as (id, kernel name).
fn held_map_ids(entry: u32) -> std::io::Result<Vec<(u32, String)>> {
    let mut programs = vec![entry];
    let mut maps = named_maps(&map_ids_of(entry)?);
    let stages = maps
        .iter()
        .find(|(_, name)| name.as_str() == kernel_name(abi::map::STAGES))
        .map(|(id, _)| *id);
    if let Some(stages) = stages {
        for slot in 0..abi::stage::SLOTS {
            if let Some(program) = program_in_slot(stages, slot)? {
                programs.push(program);
            }
        }
    }
    // The stage programs share most of their maps: each is named once
    // (xdpathd reads this every check).
    let mut ids = Vec::new();
    for program in programs.iter().skip(1) {
        ids.extend(map_ids_of(*program)?);
    }
    ids.sort_unstable();
    ids.dedup();
    ids.retain(|id| !maps.iter().any(|(known, _)| known == id));
    maps.extend(named_maps(&ids));
    Ok(maps)
}

/// `name` as the kernel keeps it.
fn kernel_name(name: &str) -> &str {
    name.get(..KERNEL_NAME_LEN).unwrap_or(name)
}

/// The maps of `ids` still there, with their names (one gone since the
/// program's info was read holds nothing).
fn named_maps(ids: &[u32]) -> Vec<(u32, String)> {
    ids.iter()
        .filter_map(|id| MapInfo::from_id(*id).ok())
        .map(|info| (info.id(), info.name_as_str().unwrap_or("").to_string()))
        .collect()
}

/// The program in slot `slot` of the program array `stages` (the kernel
/// answers a lookup of a program array with the program's id).
fn program_in_slot(stages: u32, slot: u32) -> std::io::Result<Option<u32>> {
    let map = MapInfo::from_id(stages)
        .and_then(|info| info.fd())
        .map_err(std::io::Error::other)?;
    let mut id = 0u32;
    let mut attr = ElementAttr {
        map_fd: map.as_fd().as_raw_fd() as u32,
        pad: 0,
        key: std::ptr::from_ref(&slot) as u64,
        value: std::ptr::from_mut(&mut id) as u64,
        flags: 0,
    };
    // SAFETY: a lookup's attr; key and value point at 4-byte locals alive
    // for the call (a program array's key and value are 4 bytes).
    match unsafe { bpf(command::MAP_LOOKUP_ELEM, &mut attr) } {
        Ok(_) => Ok(Some(id)),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(error) => Err(error),
    }
}

#[repr(C)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The ids of the maps the program `id` holds.
fn map_ids_of(id: u32) -> std::io::Result<Vec<u32>> {
    let mut attr = GetFdByIdAttr {
        id,
        next_id: 0,
        open_flags: 0,
    };
    // SAFETY: `BPF_PROG_GET_FD_BY_ID` reads the id; it returns a new fd.
    let fd = unsafe { bpf(PROG_GET_FD_BY_ID, &mut attr) }?;
    // SAFETY: the kernel just made this fd for us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut info = [0u8; 128];
    let count = {
        info_by_fd(&fd, &mut info)?;
        word(&info, NR_MAP_IDS_OFFSET)
    };
    let mut ids = vec![0u32; count as usize];
    info = [0u8; 128];
    put_word(&mut info, NR_MAP_IDS_OFFSET, count);
    info.get_mut(MAP_IDS_OFFSET..MAP_IDS_OFFSET + 8)
        .ok_or_else(short)?
        .copy_from_slice(&(ids.as_mut_ptr() as u64).to_ne_bytes());
    info_by_fd(&fd, &mut info)?;
    // The program cannot gain maps, but say so rather than read past.
    ids.truncate(word(&info, NR_MAP_IDS_OFFSET).min(count) as usize);
    Ok(ids)
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info` (the kernel writes through the
/// pointers `info` holds: the caller keeps their targets alive).
fn info_by_fd(fd: &OwnedFd, info: &mut [u8; 128]) -> std::io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: info.len() as u32,
        info: info.as_mut_ptr() as u64,
    };
    // SAFETY: `info` is 128 writable bytes; a map_ids pointer in it was
    // set to a buffer of nr_map_ids u32s the caller keeps alive.
    unsafe { bpf(command::OBJ_GET_INFO_BY_FD, &mut attr) }.map(drop)
}

fn word(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|slice| <[u8; 4]>::try_from(slice).ok())
        .map_or(0, u32::from_ne_bytes)
}

fn put_word(bytes: &mut [u8], at: usize, value: u32) {
    if let Some(slice) = bytes.get_mut(at..at + 4) {
        slice.copy_from_slice(&value.to_ne_bytes());
    }
}

fn short() -> std::io::Error {
    std::io::Error::other("the program's info is short")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_are_cut_at_fifteen_bytes() {
        assert_eq!(kernel_name(abi::map::CONNECTIONS), abi::map::CONNECTIONS);
        assert_eq!(kernel_name(abi::map::TUNNEL_BLOCKLIST).len(), 15);
    }

    #[test]
    fn the_names_the_kernel_cuts_alike_are_few_and_known() {
        let mut alike: Vec<&str> = abi::SHARED_MAPS
            .iter()
            .filter(|name| {
                abi::SHARED_MAPS
                    .iter()
                    .any(|other| other != *name && kernel_name(other) == kernel_name(name))
            })
            .copied()
            .collect();
        alike.sort_unstable();
        assert_eq!(
            alike,
            [abi::map::PREFIX_LENGTHS_0, abi::map::PREFIX_LENGTHS_1]
        );
    }
}
