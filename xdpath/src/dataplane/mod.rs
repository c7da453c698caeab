//! Loading, attaching and pinning the XDP program; typed access to its maps.
//!
//! Each attached interface gets its own instance of the program and maps,
//! pinned under `/sys/fs/bpf/xdpath/<netns id>/<interface>/`:
//!
//! | pin        | what |
//! |------------|------|
//! | `link`     | the bpf_link holding the attachment (kernel ≥ 5.9) |
//! | `program`  | the program, for `status` (id, tag) |
//! | `CONFIG`   | the interface config |
//! | `COUNTERS` | the per-CPU counters |
//! | `META`     | mode and time of the attach |
//! | `FEATURES` | the features the program's object knows (`features.rs`) |
//! | `STAGES`   | the tail-call table of the program's later stages |
//!
//! The pinned link keeps the program attached after the CLI exits; detach
//! unpins everything. [`reload`] swaps in this build's program over the
//! same maps (kernel ≥ 5.9), keeping config and counters.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use xdpath_core::abi;

use aya::programs::XdpMode;
use aya::Pod;
use xdpath_core::{AttachMeta, Counter, InterfaceConfig};

mod attach;
mod conn_table;
mod error;
mod features;
pub mod forward;
mod held_maps;
mod link_info;
pub mod owner;
mod program;
mod reload;
mod retired;
pub mod steer;

pub use attach::{
    attach, attached_interfaces, attached_state, check_attachable, detach, interface_counters,
    program_features, read_interface_config, reattach, status, update_interface_config,
};
pub use conn_table::{
    pinned_connection_table, set_connection_table, ConnectionTable, BPF_F_NO_COMMON_LRU,
};
pub use error::DataplaneError;
pub use held_maps::{stale_interfaces, StaleInterface};
pub use program::LoadedProgram;
pub use reload::{reload, ReloadReport};

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// The root of xdpath's pins.
pub const PIN_ROOT: &str = "/sys/fs/bpf/xdpath";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum ModeChoice {
    /// Native, falling back to generic.
    Auto,
    /// In the driver.
    Native,
    /// In the kernel's generic (skb) path: works everywhere, slower.
    Generic,
    /// On the NIC.
    Offload,
}

/// The mode a program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachedMode {
    /// In the driver.
    Native,
    /// In the generic (skb) path.
    Generic,
    /// On the NIC.
    Offload,
}

impl AttachedMode {
    fn code(self) -> u32 {
        match self {
            Self::Native => 1,
            Self::Generic => 2,
            Self::Offload => 3,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::Native),
            2 => Some(Self::Generic),
            3 => Some(Self::Offload),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Generic => "generic",
            Self::Offload => "offload",
        }
    }

    fn xdp_mode(self) -> XdpMode {
        match self {
            Self::Native => XdpMode::Driver,
            Self::Generic => XdpMode::Skb,
            Self::Offload => XdpMode::Hardware,
        }
    }
}

/// `Pod` wrappers: aya's trait is foreign to the core's types.
#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodCounter(Counter);
// SAFETY: Counter is #[repr(C)] with two u64 fields and no padding.
unsafe impl Pod for PodCounter {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodConfig(InterfaceConfig);
// SAFETY: InterfaceConfig is #[repr(C)]: bytes, a u16 and two u32s laid
// out with no padding (16 bytes).
unsafe impl Pod for PodConfig {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodMeta(AttachMeta);
// SAFETY: AttachMeta is #[repr(C)] u64, u32, u32: no padding.
unsafe impl Pod for PodMeta {}

/// An attached interface as `status` reports it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct InterfaceStatus {
    /// Interface name.
    pub interface: String,
    /// Its index now, or none if it is gone.
    pub ifindex: Option<u32>,
    /// The attach mode.
    pub mode: Option<AttachedMode>,
    /// Kernel program id.
    pub program_id: Option<u32>,
    /// Kernel program tag, hex.
    pub program_tag: Option<String>,
    /// Attach time, seconds since the Unix epoch.
    pub attached_since: Option<u64>,
    /// The malformed-frame policy.
    pub malformed: String,
    /// Monitor mode: drops are counted as passes, nothing is dropped.
    pub monitor: bool,
    /// L3 forwarding at XDP (`xdpath forward`).
    pub forward: bool,
    /// Steering to CPUs (`xdpath steer`).
    pub steer: bool,
    /// Sampling 1 in this many frames (0: off).
    pub sample_rate: u32,
    /// False when the pins are left but the attachment is gone (the
    /// interface was deleted); `detach` cleans up.
    pub healthy: bool,
    /// Why the interface does not enforce its namespace's saved state
    /// (the kernel's maps differ from it, or it cannot be read); none when
    /// it does. Filled in by `status` from [`crate::reconcile::check`].
    pub degraded: Option<String>,
    /// The data-path features of this build that the running program
    /// does not know (it was loaded by an older build: `xdpath reload`
    /// replaces it); none when it knows them all. Filled in by `status`
    /// and xdpathd's `/v1/interfaces` (`control::features::older_program`).
    pub older_program: Option<String>,
}

/// The pins of one interface in the current network namespace.
#[derive(Clone, Debug)]
pub struct InterfacePins {
    interface: String,
    dir: PathBuf,
}

impl InterfacePins {
    /// The pin directory of `interface` in this thread's network namespace.
    /// The name must be one the kernel could give an interface
    /// ([`valid_interface_name`]): it becomes a path component.
    pub fn new(interface: &str) -> Result<Self, DataplaneError> {
        if !valid_interface_name(interface) {
            return Err(DataplaneError::InvalidInterfaceName {
                name: interface.to_string(),
            });
        }
        Ok(Self {
            interface: interface.to_string(),
            dir: namespace_dir()?.join(interface),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn attached(&self) -> bool {
        self.path("link").exists()
    }
}

/// Fails with [`DataplaneError::NeedsRoot`] when this process may not
/// open `interface`'s pins (opening a pinned map needs the rights on the
/// pin and, usually, CAP_BPF): without the check, `status` run by a user
/// shows a healthy interface as gone.
pub fn check_pin_access(interface: &str) -> Result<(), DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    match aya::maps::MapData::from_pin(pins.path(abi::map::META)) {
        Err(aya::maps::MapError::SyscallError(error))
            if error.io_error.kind() == io::ErrorKind::PermissionDenied =>
        {
            Err(DataplaneError::NeedsRoot {
                what: format!("reading the pins of {interface} in {}", pins.dir.display()),
            })
        }
        // Missing or stale pins are for `status` to report.
        _ => Ok(()),
    }
}

/// Whether `name` can be an interface's name, by the kernel's rules
/// (`dev_valid_name`: 1-15 bytes, not `.` or `..`, no `/`, `:` or white
/// space) and without control characters. Every name that becomes a pin
/// path goes through it: `..` would be the pin root, `:shared` the
/// namespace's shared maps.
///
/// # Examples
///
/// ```
/// use xdpath::dataplane::valid_interface_name;
/// assert!(valid_interface_name("eth0"));
/// assert!(valid_interface_name("veth-a.10"));
/// for bad in ["", ".", "..", ":shared", "a/b", "a b", "a\nb", "sixteen-chars-xx"] {
///     assert!(!valid_interface_name(bad), "{bad:?}");
/// }
/// ```
pub fn valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

/// Where this namespace's shared maps are pinned: `<namespace dir>/:shared`.
/// Interface pins live in dirs named after interfaces beside it; no
/// interface name can hold a `:` (and bpffs refuses names with a `.`).
pub fn shared_dir() -> Result<PathBuf, DataplaneError> {
    Ok(namespace_dir()?.join(SHARED_DIR_NAME))
}

/// The name of the shared-maps dir inside a namespace dir.
pub const SHARED_DIR_NAME: &str = ":shared";

/// This namespace's pin directory: `/sys/fs/bpf/xdpath/<namespace key>`
/// (see [`crate::netns`] for the key).
pub fn namespace_dir() -> Result<PathBuf, DataplaneError> {
    let key = crate::netns::current_key().map_err(|source| {
        // A user may not read PID 1's namespace to tell the host's apart.
        if source.kind() == io::ErrorKind::PermissionDenied {
            DataplaneError::NeedsRoot {
                what: "telling this network namespace from the host's (/proc/1/ns/net)".into(),
            }
        } else {
            DataplaneError::Io {
                path: "/proc/thread-self/ns/net".into(),
                source,
            }
        }
    })?;
    Ok(namespace_dir_of(&key))
}

/// The pin directory of the namespace with this key.
pub fn namespace_dir_of(key: &crate::netns::NamespaceKey) -> PathBuf {
    Path::new(PIN_ROOT).join(key.as_str())
}

/// Mounts bpffs at /sys/fs/bpf unless it is there already. Refuses in a
/// mount namespace made for this process ([`private_mount_namespace`])
/// where it is not mounted: such a namespace is one command's own (`ip
/// netns exec`), and a mount made in it goes with it — xdpath would
/// report an attach whose program is gone the moment it exits. (In a
/// container the parent shares the namespace, so it mounts as before.)
pub fn ensure_bpffs() -> Result<(), DataplaneError> {
    let path = CString::new(BPFFS).expect("no NUL");
    // SAFETY: statfs writes into the zeroed struct we pass.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } == 0 && stat.f_type as i64 == BPF_FS_MAGIC
    {
        return Ok(());
    }
    if private_mount_namespace() {
        return Err(DataplaneError::PrivateMountNamespace);
    }
    let source = CString::new("bpf").expect("no NUL");
    // SAFETY: plain mount(2) call with valid C strings.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            path.as_ptr(),
            source.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(DataplaneError::Mount(io::Error::last_os_error()));
    }
    Ok(())
}

fn if_index(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads a valid C string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Whether this process runs in a mount namespace of its own, made for
/// it: one other than its parent's (`ip netns exec` unshares one, then
/// execs the command) or, when the parent's cannot be read, PID 1's.
/// Unknown (neither readable, as for PID 1 in some VMs): no.
fn private_mount_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    let namespace = |pid: &str| {
        std::fs::metadata(format!("/proc/{pid}/ns/mnt")).map(|meta| (meta.dev(), meta.ino()))
    };
    let Ok(own) = namespace("self") else {
        return false;
    };
    let parent = std::os::unix::process::parent_id().to_string();
    namespace(&parent)
        .or_else(|_| namespace("1"))
        .is_ok_and(|other| other != own)
}

/// The map `name` pinned at `path`, typed: `wrap` names its kind
/// (`Map::Array`, ...) and `convert` makes the typed map of it
/// (`Array::try_from`, ...).
pub(crate) fn open_pinned_map<T>(
    name: &'static str,
    path: &Path,
    wrap: impl FnOnce(aya::maps::MapData) -> aya::maps::Map,
    convert: impl FnOnce(aya::maps::Map) -> Result<T, aya::maps::MapError>,
) -> Result<T, DataplaneError> {
    let data = aya::maps::MapData::from_pin(path).map_err(DataplaneError::of_map(name))?;
    convert(wrap(data)).map_err(DataplaneError::of_map(name))
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> DataplaneError + '_ {
    move |source| DataplaneError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; raise it so
/// loading works there too. Newer kernels ignore it.
fn raise_memlock_limit() {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct; failure is harmless here.
    unsafe {
        libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit);
    }
}
