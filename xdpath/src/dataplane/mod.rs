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
pub mod forward;
mod link_info;
pub mod owner;
mod program;
mod reload;
pub mod steer;

pub use attach::{
    attach, attached_interfaces, check_attachable, detach, interface_counters,
    read_interface_config, status, update_interface_config,
};
pub use program::LoadedProgram;
pub use reload::{reload, ReloadReport};

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// The root of xdpath's pins.
pub const PIN_ROOT: &str = "/sys/fs/bpf/xdpath";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Errors of loading, attaching, detaching and reading pinned state.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// Forwarding cannot be turned on as asked.
    #[error("{0}")]
    Forward(String),
    /// No interface of that name in this network namespace.
    #[error(
        "interface {} does not exist in this network namespace",
        crate::text::quote(name)
    )]
    UnknownInterface {
        /// The name asked for.
        name: String,
    },
    /// A name no interface can have.
    #[error("{} is not a valid interface name (1-15 characters, not . or .., without /, :, spaces or control characters)", crate::text::quote(name))]
    InvalidInterfaceName {
        /// The name as given (quoted, escaped and cut when shown).
        name: String,
    },
    /// xdpath is attached there already.
    #[error("xdpath is already attached to {name}; run `xdpath detach {name}` first")]
    AlreadyAttached {
        /// The interface.
        name: String,
    },
    /// Nothing of xdpath's is attached there.
    #[error("xdpath is not attached to {}", crate::text::quote(name))]
    NotAttached {
        /// The interface.
        name: String,
    },
    /// An object file could not be read.
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// The pins cannot be read without privileges.
    #[error("needs root: {what} (permission denied)")]
    NeedsRoot {
        /// What could not be read.
        what: String,
    },
    /// `xdpath run --userspace` serves the interface.
    #[error(
        "{name} is served by `xdpath run --userspace` (pid {pid}); stop it first, then attach"
    )]
    UserspaceOwner {
        /// The interface.
        name: String,
        /// The runtime's process.
        pid: u32,
    },
    /// The interface has an XDP program that is not xdpath's.
    #[error("{name} already has an XDP program that xdpath did not attach; remove it first (e.g. `ip link set dev {name} xdp off`)")]
    ForeignProgram {
        /// The interface.
        name: String,
    },
    /// The requested mode is not available on the device.
    #[error(
        "{name} cannot run XDP in {mode} mode: {}{}",
        error_chain(source),
        mode_hint(mode)
    )]
    ModeUnsupported {
        /// The interface.
        name: String,
        /// The mode asked for.
        mode: &'static str,
        /// What the kernel said.
        source: aya::programs::ProgramError,
    },
    /// The kernel refused to load the program.
    #[error("loading the XDP program failed: {}", with_causes(.0.as_ref()))]
    Load(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A map is missing from the object or has the wrong type.
    #[error("map {name}: {source}")]
    Map {
        /// The map.
        name: &'static str,
        /// Why.
        source: aya::maps::MapError,
    },
    /// bpffs could not be mounted.
    #[error("mounting bpffs at {BPFFS} failed: {0} (xdpath needs root)")]
    Mount(#[source] io::Error),
    /// A pin or file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Pinning failed.
    #[error("pinning {path}: {source}")]
    Pin {
        /// The pin path.
        path: PathBuf,
        /// Why.
        source: aya::pin::PinError,
    },
    /// A test run failed.
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    TestRun(#[source] aya::programs::ProgramError),
    /// The pins are there but the interface they were made for is gone.
    #[error("the interface xdpath was attached to as {name} is gone; run `xdpath detach {name}` to clean up")]
    InterfaceGone {
        /// The interface.
        name: String,
    },
    /// Some of an interface's pins are missing (made by an older xdpath,
    /// or removed by hand): there is nothing complete to reload.
    #[error("the pins of {name} are incomplete (missing: {missing}); run `xdpath detach {name}` and attach again")]
    IncompletePins {
        /// The interface.
        name: String,
        /// The missing pins, comma-separated.
        missing: String,
    },
    /// A pinned object could not be opened or is not what it should be.
    #[error("{path}: {source}")]
    PinnedObject {
        /// The pin.
        path: PathBuf,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The kernel refused to swap the program on the link.
    #[error("replacing the program on {name} failed (BPF_LINK_UPDATE; needs Linux 5.9 or later): {source}{}", link_update_hint(source))]
    LinkUpdate {
        /// The interface.
        name: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Locking an interface's pin directory failed.
    #[error("locking {path}: {source}")]
    Lock {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// EPERM from `BPF_LINK_UPDATE` with `BPF_F_REPLACE`: the link ran another
/// program than the one read a moment before.
fn link_update_hint(error: &io::Error) -> &'static str {
    if error.raw_os_error() == Some(libc::EPERM) {
        " (the program was replaced by someone else meanwhile; nothing was changed)"
    } else {
        " (nothing was changed; the old program keeps running)"
    }
}

/// An error and its causes, `: `-separated. aya's own text can be as bare
/// as `netlink error: []`, with the kernel's answer only in the source.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(error) = current {
        let text = error.to_string();
        if !text.is_empty() && text != "netlink error: []" && !parts.contains(&text) {
            parts.push(text);
        }
        current = error.source();
    }
    parts.join(": ")
}

/// What to try instead when a mode is refused.
fn mode_hint(mode: &str) -> &'static str {
    match mode {
        "offload" => {
            " (XDP offload needs a NIC whose driver supports it; use --mode native or generic)"
        }
        "native" => " (the driver may lack native XDP; --mode generic works on any device)",
        _ => "",
    }
}

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

/// An error and its causes on one line: aya's "pinning failed" says why
/// only in its source.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let more = next.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = next.source();
    }
    text
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

/// Mounts bpffs at /sys/fs/bpf unless it is there already.
pub fn ensure_bpffs() -> Result<(), DataplaneError> {
    let path = CString::new(BPFFS).expect("no NUL");
    // SAFETY: statfs writes into the zeroed struct we pass.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut stat) } == 0 && stat.f_type as i64 == BPF_FS_MAGIC
    {
        return Ok(());
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
