//! Attaching, detaching and reading the pinned state of an interface.

use std::time::{SystemTime, UNIX_EPOCH};
use xdpath_core::abi;

use aya::maps::{Array, Map, MapData, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::ProgramInfo;
use xdpath_core::{AttachMeta, Counter, InterfaceConfig};

use super::program::sum_counters;
use super::*;

/// Checks, without changing anything, that `interface` is a valid name of
/// an interface of this namespace that xdpath is not attached to.
pub fn check_attachable(interface: &str) -> Result<(), DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    if if_index(interface).is_none() {
        return Err(DataplaneError::UnknownInterface {
            name: interface.into(),
        });
    }
    if pins.attached() && !link_gone(&pins)? {
        return Err(DataplaneError::AlreadyAttached {
            name: interface.into(),
        });
    }
    Ok(())
}

/// Attaches a fresh xdpath instance to `interface` and pins it.
///
/// On any error nothing is left behind: no attachment, no pins.
pub fn attach(
    interface: &str,
    choice: ModeChoice,
    config: InterfaceConfig,
) -> Result<AttachedMode, DataplaneError> {
    let (pins, ifindex) = target(interface)?;
    if pins.attached() {
        // Only pins known to be stale are removed: a pin that cannot be
        // read (a failed call) may be of a live link.
        if !link_gone(&pins)? {
            return Err(DataplaneError::AlreadyAttached {
                name: interface.into(),
            });
        }
        // Stale pins of an interface that was deleted and made again.
        remove_pins(&pins)?;
    }
    // A failed attach must change nothing: if this call is the one that
    // creates the namespace's shared maps, it removes them again.
    let shared = shared_dir()?;
    let shared_existed = shared.exists();
    let result = LoadedProgram::load_shared(config)
        .and_then(|mut loaded| attach_loaded(interface, ifindex, choice, &mut loaded, &pins));
    if result.is_err() && !shared_existed {
        let _ = std::fs::remove_dir_all(&shared);
    }
    result
}

/// Attaches `interface`, now running xdpath in the mode `running`, again
/// in the mode `choice` asks for. The new program is loaded (the
/// verifier's seconds) while the old one still runs, so the interface runs
/// none only between the detach and the attach; if the new mode is refused
/// there, the same program goes back in `running` at once, and the error
/// is returned.
pub fn reattach(
    interface: &str,
    choice: ModeChoice,
    config: InterfaceConfig,
    running: ModeChoice,
) -> Result<AttachedMode, DataplaneError> {
    let (pins, ifindex) = target(interface)?;
    let mut loaded = LoadedProgram::load_shared(config)?;
    detach(interface)?;
    attach_loaded(interface, ifindex, choice, &mut loaded, &pins).inspect_err(|_| {
        let _ = attach_loaded(interface, ifindex, running, &mut loaded, &pins);
    })
}

/// The pins and index of an interface to attach to, bpffs mounted.
fn target(interface: &str) -> Result<(InterfacePins, u32), DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    let ifindex = if_index(interface).ok_or_else(|| DataplaneError::UnknownInterface {
        name: interface.into(),
    })?;
    ensure_bpffs()?;
    Ok((pins, ifindex))
}

fn attach_loaded(
    interface: &str,
    ifindex: u32,
    choice: ModeChoice,
    loaded: &mut LoadedProgram,
    pins: &InterfacePins,
) -> Result<AttachedMode, DataplaneError> {
    let candidates: &[AttachedMode] = match choice {
        ModeChoice::Auto => &[AttachedMode::Native, AttachedMode::Generic],
        ModeChoice::Native => &[AttachedMode::Native],
        ModeChoice::Generic => &[AttachedMode::Generic],
        ModeChoice::Offload => &[AttachedMode::Offload],
    };
    let mut last_error = None;
    let mut attached = None;
    for &mode in candidates {
        match loaded
            .program()
            .attach_to_if_index(ifindex, mode.xdp_mode())
        {
            Ok(link_id) => {
                attached = Some((mode, link_id));
                break;
            }
            Err(error) => last_error = Some((mode, error)),
        }
    }
    let (mode, link_id) = match attached {
        Some(found) => found,
        None => {
            let (mode, source) = last_error.expect("at least one mode was tried");
            if is_busy(&source) {
                if let Some(pid) = owner::userspace_owner(interface) {
                    return Err(DataplaneError::UserspaceOwner {
                        name: interface.into(),
                        pid,
                    });
                }
                return Err(DataplaneError::ForeignProgram {
                    name: interface.into(),
                });
            }
            return Err(DataplaneError::ModeUnsupported {
                name: interface.into(),
                mode: mode.name(),
                source,
            });
        }
    };
    let result = pin_all(loaded, pins, mode, ifindex, link_id);
    if result.is_err() {
        let _ = remove_pins(pins);
    }
    result.map(|()| mode)
}

fn is_busy(error: &aya::programs::ProgramError) -> bool {
    let text = format!("{error:?}");
    text.contains("EBUSY")
        || text.contains("Device or resource busy")
        || text.contains("File exists")
        || text.contains("os error 16")
        || text.contains("os error 17")
}

fn pin_all(
    loaded: &mut LoadedProgram,
    pins: &InterfacePins,
    mode: AttachedMode,
    ifindex: u32,
    link_id: aya::programs::xdp::XdpLinkId,
) -> Result<(), DataplaneError> {
    crate::private_files::create_directory(&pins.dir).map_err(io_error(&pins.dir))?;
    let attached_at_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let meta = AttachMeta {
        attached_at_ns,
        ifindex,
        mode: mode.code(),
    };
    loaded.set_first_entry(abi::map::META, PodMeta(meta))?;
    super::features::write_word(loaded)?;
    for name in [
        abi::map::CONFIG,
        abi::map::COUNTERS,
        abi::map::META,
        abi::map::FEATURES,
        abi::map::STAGES,
    ] {
        let path = pins.path(name);
        let map = loaded.ebpf.map(name).ok_or(DataplaneError::Map {
            name: "pin",
            source: aya::maps::MapError::InvalidName { name: name.into() },
        })?;
        map.pin(&path)
            .map_err(|source| DataplaneError::Pin { path, source })?;
    }
    let program_path = pins.path("program");
    loaded
        .program()
        .pin(&program_path)
        .map_err(|source| DataplaneError::Pin {
            path: program_path,
            source,
        })?;
    let link = loaded
        .program()
        .take_link(link_id)
        .map_err(|error| DataplaneError::Load(Box::new(error)))?;
    let fd_link = FdLink::try_from(link).map_err(|error| DataplaneError::Load(Box::new(error)))?;
    let link_path = pins.path("link");
    fd_link
        .pin(&link_path)
        .map_err(|source| DataplaneError::Pin {
            path: link_path,
            source,
        })?;
    Ok(())
}

pub(super) fn read_meta(pins: &InterfacePins) -> Option<AttachMeta> {
    read_meta_or_why(pins).ok()
}

fn read_meta_or_why(pins: &InterfacePins) -> Result<AttachMeta, String> {
    let data = MapData::from_pin(pins.path(abi::map::META)).map_err(|error| error.to_string())?;
    let array =
        Array::<MapData, PodMeta>::try_from(Map::Array(data)).map_err(|error| error.to_string())?;
    array
        .get(&0, 0)
        .map(|meta| meta.0)
        .map_err(|error| error.to_string())
}

/// What an interface's pins say of its link.
pub(super) enum LinkState {
    /// Attached to the interface it was made for.
    Alive,
    /// No link pin, the interface gone or made again (a new index), or
    /// the link detached by another tool.
    Gone,
    /// The META pin is there but could not be read (why): a failure of this
    /// call, not a fact about the link — nothing may be removed for it.
    Unknown(String),
    /// The link runs on the device it was made for, which now has this
    /// other name: not gone (attaching the old name afresh would take the
    /// program off the renamed device), not healthy either.
    Renamed(String),
}

/// The kernel detaches an XDP link when its device goes away; a device
/// made again under the same name gets a new index.
pub(super) fn link_state(pins: &InterfacePins) -> LinkState {
    if !pins.attached() {
        return LinkState::Gone;
    }
    let Some(ifindex) = if_index(&pins.interface) else {
        return renamed_or_gone(pins);
    };
    // The interface the pins were made for, and the kernel's word that
    // the link is still attached there (another tool may have detached it).
    let meta = match read_meta_or_why(pins) {
        Ok(meta) => meta,
        Err(_) if !pins.path(abi::map::META).exists() => return LinkState::Gone,
        Err(why) => return LinkState::Unknown(why),
    };
    let linked = super::link_info::xdp_link_ifindex(&pins.path("link"));
    if meta.ifindex == ifindex && linked.is_none_or(|linked| linked == ifindex) {
        LinkState::Alive
    } else {
        renamed_or_gone(pins)
    }
}

/// For pins whose name no longer names their device: [`LinkState::Renamed`]
/// when the pinned link is still attached to the device they were made
/// for, under another name; else gone.
fn renamed_or_gone(pins: &InterfacePins) -> LinkState {
    let Ok(meta) = read_meta_or_why(pins) else {
        return LinkState::Gone;
    };
    let linked = super::link_info::xdp_link_ifindex(&pins.path("link"));
    if linked != Some(meta.ifindex) {
        return LinkState::Gone;
    }
    match crate::observe::capture::interface_name(meta.ifindex) {
        Some(now) if now != pins.interface => LinkState::Renamed(now),
        _ => LinkState::Gone,
    }
}

/// True unless the link is known to be gone ([`link_state`]).
pub(super) fn link_alive(pins: &InterfacePins) -> bool {
    !matches!(link_state(pins), LinkState::Gone)
}

/// Whether the pins are of a link known to be gone (stale, to be
/// removed); an error when they cannot be read.
pub(super) fn link_gone(pins: &InterfacePins) -> Result<bool, DataplaneError> {
    match link_state(pins) {
        LinkState::Alive => Ok(false),
        LinkState::Gone => Ok(true),
        LinkState::Unknown(why) => Err(DataplaneError::PinnedObject {
            path: pins.path(abi::map::META),
            source: format!("cannot tell whether the link is attached: {why}").into(),
        }),
        LinkState::Renamed(now) => Err(DataplaneError::Renamed {
            name: pins.interface.clone(),
            now,
        }),
    }
}

/// An attached interface's mode and config, as a config's plan reads
/// them: `None` when its link is known to be gone (it is attached afresh);
/// an error when its pins cannot be read, which must be taken for neither
/// a gone link nor a healthy one (an apply would reattach a running
/// interface, or plan against settings it does not run).
pub fn attached_state(
    interface: &str,
) -> Result<Option<(AttachedMode, InterfaceConfig)>, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    // A renamed interface still runs its program: it is attached as
    // recorded (a change to it is then refused by name, saying so), not
    // an error that would stop every apply, plan and rollback of the
    // namespace.
    if !matches!(link_state(&pins), LinkState::Renamed(_)) && link_gone(&pins)? {
        return Ok(None);
    }
    let unreadable = |why: String| DataplaneError::PinnedObject {
        path: pins.path(abi::map::META),
        source: format!("cannot read the attach mode: {why}").into(),
    };
    let meta = read_meta_or_why(&pins).map_err(unreadable)?;
    let mode = AttachedMode::from_code(meta.mode)
        .ok_or_else(|| unreadable(format!("unknown mode {}", meta.mode)))?;
    Ok(Some((mode, read_interface_config(interface)?)))
}

/// The data-path features ([`abi::feature`]) the program running on
/// `interface` knows (see [`super::features`]); `None` when no xdpath
/// program runs there (not attached, or the device is gone).
pub fn program_features(interface: &str) -> Result<Option<u64>, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    if !link_alive(&pins) {
        return Ok(None);
    }
    super::features::running_features(&pins).map(Some)
}

/// Takes an exclusive `flock` on a directory; released when the file is
/// dropped.
pub(super) fn lock_dir(dir: &Path) -> Result<std::fs::File, DataplaneError> {
    let file = std::fs::File::open(dir).map_err(io_error(dir))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
        return Err(DataplaneError::Lock {
            path: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(file)
}

fn remove_pins(pins: &InterfacePins) -> Result<(), DataplaneError> {
    if pins.dir.exists() {
        std::fs::remove_dir_all(&pins.dir).map_err(io_error(&pins.dir))?;
    }
    Ok(())
}

/// Detaches xdpath from `interface` and removes its pins.
pub fn detach(interface: &str) -> Result<(), DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    if !pins.dir.exists() {
        return Err(DataplaneError::NotAttached {
            name: interface.into(),
        });
    }
    // Waits for a reload of the interface to finish: it renames pins here.
    let _lock = lock_dir(&pins.dir)?;
    if let Ok(pinned) = PinnedLink::from_pin(pins.path("link")) {
        let link = pinned.unpin().map_err(io_error(&pins.path("link")))?;
        // Dropping the last reference to the link detaches the program.
        drop(link);
    }
    remove_pins(&pins)
}

/// Every interface with xdpath pins in this network namespace.
pub fn attached_interfaces() -> Result<Vec<String>, DataplaneError> {
    let dir = namespace_dir()?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            return Err(DataplaneError::NeedsRoot {
                what: format!("listing {}", dir.display()),
            })
        }
        Err(_) => return Ok(Vec::new()),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| valid_interface_name(name))
        .collect();
    names.sort();
    Ok(names)
}

/// The status of one attached interface.
pub fn status(interface: &str) -> Result<InterfaceStatus, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    if !pins.dir.exists() {
        return Err(DataplaneError::NotAttached {
            name: interface.into(),
        });
    }
    let meta = read_meta(&pins);
    // A link whose pins cannot be read is not reported gone (that would
    // say to detach it) but degraded, saying why.
    let (healthy, degraded) = match link_state(&pins) {
        LinkState::Alive => (true, None),
        LinkState::Gone => (false, None),
        LinkState::Unknown(why) => (
            true,
            Some(format!(
                "cannot tell whether the link is attached ({}: {why})",
                pins.path(abi::map::META).display()
            )),
        ),
        LinkState::Renamed(now) => (
            true,
            Some(
                DataplaneError::Renamed {
                    name: interface.to_string(),
                    now,
                }
                .to_string(),
            ),
        ),
    };
    let config = read_interface_config(interface).unwrap_or_default();
    let info = ProgramInfo::from_pin(pins.path("program")).ok();
    Ok(InterfaceStatus {
        interface: interface.to_string(),
        ifindex: if_index(interface),
        mode: meta.and_then(|meta| AttachedMode::from_code(meta.mode)),
        program_id: info.as_ref().map(ProgramInfo::id),
        program_tag: info.as_ref().map(|info| format!("{:016x}", info.tag())),
        attached_since: meta.map(|meta| meta.attached_at_ns / 1_000_000_000),
        malformed: match config.malformed_policy() {
            xdpath_core::MalformedPolicy::Drop => "drop".into(),
            xdpath_core::MalformedPolicy::Pass => "pass".into(),
        },
        monitor: config.monitor != 0,
        forward: config.forward != 0,
        steer: config.steer != 0,
        sample_rate: config.sample_rate,
        healthy,
        degraded,
        older_program: None,
    })
}

/// The config an attached interface's program runs with.
pub fn read_interface_config(interface: &str) -> Result<InterfaceConfig, DataplaneError> {
    config_in(&interface_config_map(interface)?)
}

/// Changes an attached interface's config in place (one map write, seen
/// by the next frame); returns the config written.
pub fn update_interface_config(
    interface: &str,
    change: impl FnOnce(&mut InterfaceConfig),
) -> Result<InterfaceConfig, DataplaneError> {
    let mut array = interface_config_map(interface)?;
    let mut config = config_in(&array)?;
    change(&mut config);
    array
        .set(0, PodConfig(config), 0)
        .map_err(DataplaneError::of_map(abi::map::CONFIG))?;
    Ok(config)
}

/// The config in an interface's `CONFIG` map.
fn config_in(array: &Array<MapData, PodConfig>) -> Result<InterfaceConfig, DataplaneError> {
    array
        .get(&0, 0)
        .map(|config| config.0)
        .map_err(DataplaneError::of_map(abi::map::CONFIG))
}

fn interface_config_map(interface: &str) -> Result<Array<MapData, PodConfig>, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    if !pins.dir.exists() {
        return Err(DataplaneError::NotAttached {
            name: interface.into(),
        });
    }
    let path = pins.path(abi::map::CONFIG);
    open_pinned_map(abi::map::CONFIG, &path, Map::Array, Array::try_from)
}

/// The counters of an attached interface, summed over CPUs.
pub fn interface_counters(interface: &str) -> Result<Vec<Counter>, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    if !pins.dir.exists() {
        return Err(DataplaneError::NotAttached {
            name: interface.into(),
        });
    }
    let path = pins.path(abi::map::COUNTERS);
    let array: PerCpuArray<MapData, PodCounter> = open_pinned_map(
        abi::map::COUNTERS,
        &path,
        Map::PerCpuArray,
        PerCpuArray::try_from,
    )?;
    sum_counters(&array)
}
