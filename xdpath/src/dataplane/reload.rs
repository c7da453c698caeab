//! Replacing the program running on an interface with this build's, in
//! place and without a gap: [`reload`].
//!
//! The new instance is loaded over the pinned maps of the old one: the
//! namespace's shared maps (rules, blocklist, limits, balancer) and the
//! interface's `CONFIG`, `COUNTERS` and `META`. So the interface keeps its
//! config (malformed policy, monitor, decapsulation), its counters go on
//! from where they were and its attach time stays. Its `FEATURES` word is
//! the new instance's own (`features.rs`), renamed over the old one after
//! the swap. The pinned XDP link is then pointed at the new program with
//! one `BPF_LINK_UPDATE`: the kernel swaps the device's program pointer, so
//! every frame runs either the old program or the new one, none runs
//! neither.
//!
//! The tail-call table `STAGES` is the one interface map that is *not*
//! shared between the two instances: the new main program gets a fresh
//! table holding the new stages, which replaces the pinned one. Refilling
//! the old table in place would, until the link is updated, send frames of
//! the old main program to the new stages, which read the flow key from
//! their own per-CPU scratch map, not the one the old program wrote it to;
//! and a new build's stages need not even agree with the old build's key
//! layout. With a table per instance each frame goes through the stages of
//! the program it entered.
//!
//! # Minimum kernel
//! Linux 5.9: XDP bpf_links and `BPF_LINK_UPDATE` on them (with
//! `BPF_F_REPLACE`, so a concurrent change is refused rather than undone).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xdpath_core::abi;

use aya::maps::MapData;
use aya::programs::links::{FdLink, LinkType, PinnedLink};

use super::attach::{link_gone, read_meta};
use super::*;
use crate::bpf_syscall::{bpf, command};

/// What [`reload`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReloadReport {
    /// The interface.
    pub interface: String,
    /// The kernel id of the program that ran before.
    pub old_program_id: u32,
    /// The kernel id of the program that runs now.
    pub new_program_id: u32,
    /// The attach mode, unchanged by the reload.
    pub mode: Option<AttachedMode>,
}

/// Where the new program and its tail-call table are pinned until the
/// link points at them; then they are renamed over `program` and `STAGES`.
/// bpffs refuses names with a `.`, hence the `:`.
const NEXT_PROGRAM: &str = "program:next";
const NEXT_STAGES: &str = "STAGES:next";
/// The new program's feature word, renamed over `FEATURES` after the swap.
const NEXT_FEATURES: &str = "FEATURES:next";

/// Loads this build's xdpath program for `interface` (which xdpath must be
/// attached to) over its pinned maps and swaps it in atomically.
///
/// The interface keeps its config, counters, mode and attach time; rules,
/// blocklist, rate-limit buckets, connection table and the other shared
/// maps are the same maps before and after. Frames keep flowing: there is
/// no moment without a program, and no frame runs half of each.
///
/// On any error before the swap nothing has changed and the old program
/// keeps running; a failure after it (renaming the pins) swaps the old
/// program back.
///
/// Not carried over: the SYN-cookie stage's per-port "last SYN passed to
/// the kernel" times, so right after a reload at most one extra SYN per
/// protected port goes to the kernel.
///
/// # Minimum kernel
/// Linux 5.9 (`BPF_LINK_UPDATE` on an XDP link).
pub fn reload(interface: &str) -> Result<ReloadReport, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    if !pins.dir.exists() {
        return Err(DataplaneError::NotAttached {
            name: interface.into(),
        });
    }
    // One reload (or detach) of an interface at a time: both rename and
    // remove pins in its directory.
    let _lock = super::attach::lock_dir(&pins.dir)?;
    check_reloadable(interface, &pins)?;

    // The link and the program it runs now. The link's own record is the
    // truth: the `program` pin may lag if a reload was killed between the
    // swap and the renames.
    let link_path = pins.path("link");
    let old_id = linked_program_id(&link_path)?;
    let link = obj_get(&link_path).map_err(io_error(&link_path))?;
    let old_program = program_fd(old_id)?;
    // Held until the old program can no longer run (see `retire`).
    let stages_path = pins.path(abi::map::STAGES);
    let old_stages =
        MapData::from_pin(&stages_path).map_err(DataplaneError::of_map(abi::map::STAGES))?;

    // Leftovers of a reload that was killed: nobody else uses these names
    // while we hold the lock. If it was killed after its swap, the running
    // program's table is the one at `STAGES:next`: held open like the old
    // table until the swap below, so it is not emptied under that program.
    let leftover_stages = MapData::from_pin(pins.path(NEXT_STAGES)).ok();
    for name in [NEXT_PROGRAM, NEXT_STAGES, NEXT_FEATURES] {
        remove_if_present(&pins.path(name))?;
    }
    // A new build may bring a shared map the namespace does not have yet;
    // the load creates and pins it. Remembered so a failure removes it.
    let new_shared = missing_shared_maps()?;

    let result = load_and_swap(&pins, link.as_fd(), old_program.as_fd(), &old_stages);
    let new_id = match result {
        Ok(id) => id,
        Err(error) => {
            remove_new_pins(&pins, &new_shared);
            return Err(error);
        }
    };
    retire([Some(old_stages), leftover_stages]);
    Ok(ReloadReport {
        interface: interface.to_string(),
        old_program_id: old_id,
        new_program_id: new_id,
        mode: read_meta(&pins).and_then(|meta| AttachedMode::from_code(meta.mode)),
    })
}

/// Refuses an interface xdpath is not attached to, whose device is gone,
/// or whose directory lacks a pin the reload reuses.
fn check_reloadable(interface: &str, pins: &InterfacePins) -> Result<(), DataplaneError> {
    if !pins.attached() {
        return Err(DataplaneError::NotAttached {
            name: interface.into(),
        });
    }
    if link_gone(pins)? {
        return Err(DataplaneError::InterfaceGone {
            name: interface.into(),
        });
    }
    let missing: Vec<&str> = abi::INTERFACE_REUSED_MAPS
        .iter()
        .chain(&[abi::map::STAGES, "program", "link"])
        .copied()
        .filter(|name| !pins.path(name).exists())
        .collect();
    if !missing.is_empty() {
        return Err(DataplaneError::IncompletePins {
            name: interface.into(),
            missing: missing.join(", "),
        });
    }
    Ok(())
}

/// The id of the program the pinned XDP link at `link_path` runs.
fn linked_program_id(link_path: &Path) -> Result<u32, DataplaneError> {
    let link_info = FdLink::from(PinnedLink::from_pin(link_path).map_err(|error| {
        DataplaneError::PinnedObject {
            path: link_path.into(),
            source: Box::new(error),
        }
    })?)
    .info()
    .map_err(|error| DataplaneError::PinnedObject {
        path: link_path.into(),
        source: Box::new(error),
    })?;
    if !matches!(link_info.link_type(), Ok(LinkType::Xdp)) {
        return Err(DataplaneError::PinnedObject {
            path: link_path.into(),
            source: "not an XDP link".into(),
        });
    }
    Ok(link_info.program_id())
}

/// The shared maps this build has that the namespace does not pin yet.
fn missing_shared_maps() -> Result<Vec<PathBuf>, DataplaneError> {
    let shared = shared_dir()?;
    Ok(abi::SHARED_MAPS
        .iter()
        .map(|name| shared.join(name))
        .filter(|path| !path.exists())
        .collect())
}

/// After a failed load or swap: removes the new program's pins and the
/// shared maps it created (`new_shared`).
fn remove_new_pins(pins: &InterfacePins, new_shared: &[PathBuf]) {
    for name in [NEXT_PROGRAM, NEXT_STAGES, NEXT_FEATURES] {
        let _ = std::fs::remove_file(pins.path(name));
    }
    for path in new_shared {
        let _ = std::fs::remove_file(path);
    }
}

/// Loads the new instance, pins it beside the old one, swaps the link and
/// renames the new pins over the old. Returns the new program's id.
fn load_and_swap(
    pins: &InterfacePins,
    link: BorrowedFd<'_>,
    old_program: BorrowedFd<'_>,
    old_stages: &MapData,
) -> Result<u32, DataplaneError> {
    let mut loaded = LoadedProgram::load_reusing(&pins.dir)?;
    let next_program = pins.path(NEXT_PROGRAM);
    loaded
        .program()
        .pin(&next_program)
        .map_err(|source| DataplaneError::Pin {
            path: next_program.clone(),
            source,
        })?;
    let next_stages = pins.path(NEXT_STAGES);
    loaded
        .ebpf
        .map(abi::map::STAGES)
        .ok_or_else(|| DataplaneError::missing_map(abi::map::STAGES))?
        .pin(&next_stages)
        .map_err(|source| DataplaneError::Pin {
            path: next_stages.clone(),
            source,
        })?;
    let new_program = loaded
        .program()
        .fd()
        .map_err(|error| DataplaneError::Load(Box::new(error)))?
        .try_clone()
        .map_err(io_error(&next_program))?;
    // The new program's feature word, pinned beside the old one's. Until
    // the rename below the old word names the old program, so after the
    // swap the interface reads as knowing none of the newer features (the
    // careful side) rather than more than it runs.
    let new_id = super::features::write_word(&mut loaded)?;
    let next_features = pins.path(NEXT_FEATURES);
    loaded
        .ebpf
        .map(abi::map::FEATURES)
        .ok_or_else(|| DataplaneError::missing_map(abi::map::FEATURES))?
        .pin(&next_features)
        .map_err(|source| DataplaneError::Pin {
            path: next_features.clone(),
            source,
        })?;

    // The commit point. Before it nothing the running program uses has
    // changed; `BPF_F_REPLACE` makes the kernel refuse if the link no
    // longer runs the program we read (another tool replaced it).
    link_update(link, new_program.as_fd(), old_program).map_err(|source| {
        DataplaneError::LinkUpdate {
            name: pins.interface.clone(),
            source,
        }
    })?;

    let renamed = std::fs::rename(&next_stages, pins.path(abi::map::STAGES))
        .map_err(io_error(&next_stages))
        .and_then(|()| {
            std::fs::rename(&next_program, pins.path("program")).map_err(io_error(&next_program))
        });
    if let Err(error) = renamed {
        // Undo: the old program back on the link, its table back at its pin
        // (the table of a program array is emptied when its last pin or fd
        // goes, which would leave the old program without its stages).
        let _ = link_update(link, old_program, new_program.as_fd());
        // The new table goes when `loaded` does; no frame may be left in
        // the new program then (see `retire`).
        wait_for_rcu_grace_period();
        let stages_path = pins.path(abi::map::STAGES);
        let _ = std::fs::remove_file(&stages_path);
        let _ = old_stages.pin(&stages_path);
        let program_path = pins.path("program");
        if !program_path.exists() {
            let _ = std::fs::rename(&next_program, &program_path);
        }
        return Err(error);
    }
    // The swap stands even if this fails: the interface then reads as
    // knowing none of the newer features, and `state check` says so.
    let _ = std::fs::rename(&next_features, pins.path(abi::map::FEATURES));
    Ok(new_id)
}

/// Lets go of the old instance's tail-call tables once the old program can
/// no longer be running: the kernel empties a program array when its last
/// user reference (pin or fd) goes, and a frame still in the old program
/// on another CPU would then find no filter stage and pass unfiltered.
/// XDP runs inside RCU read-side sections, so one RCU grace period after
/// the swap no frame is in the old program.
fn retire<const N: usize>(tables: [Option<MapData>; N]) {
    wait_for_rcu_grace_period();
    drop(tables);
}

/// `membarrier(MEMBARRIER_CMD_GLOBAL)` waits for an RCU grace period
/// (`synchronize_rcu`). It is refused on `nohz_full` kernels; there a
/// short sleep, far longer than a NAPI poll, stands in.
fn wait_for_rcu_grace_period() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_int = 1;
    // SAFETY: membarrier takes two integers and touches no memory of ours.
    let rc = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0) };
    if rc != 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A new fd of the loaded program with kernel id `id`.
fn program_fd(id: u32) -> Result<aya::programs::ProgramFd, DataplaneError> {
    // A program that goes away while the list is read is skipped; but a
    // failed read of the list is no word that the program is gone.
    let mut failure = None;
    for info in aya::programs::loaded_programs() {
        let info = match info {
            Ok(info) => info,
            Err(error) => {
                failure = Some(error);
                continue;
            }
        };
        if info.id() == id {
            return info
                .fd()
                .map_err(|error| DataplaneError::Load(Box::new(error)));
        }
    }
    Err(DataplaneError::Load(match failure {
        Some(error) => {
            format!("program {id}, which the link runs, could not be found: {error}").into()
        }
        None => format!("program {id}, which the link runs, is gone").into(),
    }))
}

fn remove_if_present(path: &Path) -> Result<(), DataplaneError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(io_error(path)(error)),
        _ => Ok(()),
    }
}

// ---- the two bpf(2) commands aya 0.14 does not offer in the form needed

const BPF_F_REPLACE: u32 = 1 << 2;

/// `union bpf_attr` for `BPF_OBJ_GET`: its first fields; the kernel treats
/// the rest as zero.
#[repr(C)]
struct ObjGetAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `union bpf_attr` for `BPF_LINK_UPDATE`.
#[repr(C)]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

/// Opens a pinned object. aya's `PinnedLink` keeps its fd to itself.
pub(super) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = ObjGetAttr {
        pathname: c_path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    // SAFETY: bpf(2) reads `attr` (and the path it points to, alive for
    // the call) and returns a new fd.
    let fd = unsafe { bpf(command::OBJ_GET, &mut attr) }?;
    // SAFETY: the kernel just gave us this fd (O_CLOEXEC); we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Points `link` at `new_program` if it runs `old_program` now. aya 0.14's
/// `Xdp::attach_to_link` updates without `BPF_F_REPLACE`, so it would
/// silently undo a concurrent change.
fn link_update(
    link: BorrowedFd<'_>,
    new_program: BorrowedFd<'_>,
    old_program: BorrowedFd<'_>,
) -> io::Result<()> {
    let mut attr = LinkUpdateAttr {
        link_fd: link.as_raw_fd() as u32,
        new_prog_fd: new_program.as_raw_fd() as u32,
        flags: BPF_F_REPLACE,
        old_prog_fd: old_program.as_raw_fd() as u32,
    };
    // SAFETY: bpf(2) reads `attr`, which holds no pointer, and changes no
    // memory of ours.
    unsafe { bpf(command::LINK_UPDATE, &mut attr) }.map(drop)
}
