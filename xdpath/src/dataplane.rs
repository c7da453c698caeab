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
//!
//! The pinned link keeps the program attached after the CLI exits; detach
//! unpins everything.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aya::maps::{Array, Map, MapData, PerCpuArray, ProgramArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{ProgramInfo, TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader, Pod};
use xdpath_core::{Action, AttachMeta, Counter, InterfaceConfig, COUNTER_SLOTS};

use crate::objects;

/// Where bpffs is mounted.
pub const BPFFS: &str = "/sys/fs/bpf";
/// The root of xdpath's pins.
pub const PIN_ROOT: &str = "/sys/fs/bpf/xdpath";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Errors of loading, attaching, detaching and reading pinned state.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// No interface of that name in this network namespace.
    #[error("interface {name} does not exist in this network namespace")]
    UnknownInterface {
        /// The name asked for.
        name: String,
    },
    /// xdpath is attached there already.
    #[error("xdpath is already attached to {name}; run `xdpath detach {name}` first")]
    AlreadyAttached {
        /// The interface.
        name: String,
    },
    /// Nothing of xdpath's is attached there.
    #[error("xdpath is not attached to {name}")]
    NotAttached {
        /// The interface.
        name: String,
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
    #[error("loading the XDP program failed: {0}")]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
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
// SAFETY: InterfaceConfig is #[repr(C)], 8 bytes of u8 with no padding.
unsafe impl Pod for PodConfig {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodMeta(AttachMeta);
// SAFETY: AttachMeta is #[repr(C)] u64, u32, u32: no padding.
unsafe impl Pod for PodMeta {}

/// An instance of the xdpath program loaded into the kernel, with its maps.
pub struct LoadedProgram {
    ebpf: Ebpf,
    main: String,
}

impl LoadedProgram {
    /// Loads a fresh instance of the xdpath program with `config`.
    ///
    /// # Minimum kernel
    /// 5.9 for bpf_link attachment; `BPF_PROG_TEST_RUN` for XDP: 4.15.
    pub fn load(config: InterfaceConfig) -> Result<Self, DataplaneError> {
        Self::load_object(objects::XDPATH, objects::XDPATH_PROGRAM, config)
    }

    fn load_object(
        object: &[u8],
        program: &str,
        config: InterfaceConfig,
    ) -> Result<Self, DataplaneError> {
        Self::load_object_with(object, program, config, None)
    }

    /// Loads the object; with `shared`, the filter maps are opened from (or
    /// created and pinned at) `shared/<MAP>`, so every instance of a
    /// namespace sees one rule set.
    fn load_object_with(
        object: &[u8],
        program: &str,
        config: InterfaceConfig,
        shared: Option<&Path>,
    ) -> Result<Self, DataplaneError> {
        raise_memlock_limit();
        let mut loader = EbpfLoader::new();
        let paths: Vec<(&str, PathBuf)> = match shared {
            Some(dir) => SHARED_MAPS
                .iter()
                .map(|name| (*name, dir.join(name)))
                .collect(),
            None => Vec::new(),
        };
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(object)
            .map_err(|error| DataplaneError::Load(Box::new(error)))?;
        let names: Vec<String> = ebpf.programs().map(|(name, _)| name.to_string()).collect();
        if !names.iter().any(|name| name == program) {
            return Err(DataplaneError::Load(
                format!("no program {program} in the object").into(),
            ));
        }
        for name in &names {
            let xdp: &mut Xdp = ebpf
                .program_mut(name)
                .ok_or_else(|| {
                    DataplaneError::Load(format!("no program {name} in the object").into())
                })?
                .try_into()
                .map_err(|error: aya::programs::ProgramError| {
                    DataplaneError::Load(Box::new(error))
                })?;
            xdp.load()
                .map_err(|error| DataplaneError::Load(Box::new(error)))?;
        }
        let mut loaded = Self {
            ebpf,
            main: program.to_string(),
        };
        if loaded.ebpf.map("CONFIG").is_some() {
            loaded.set_config(config)?;
        }
        if loaded.ebpf.map("STAGES").is_some() {
            loaded.link_stages()?;
        }
        Ok(loaded)
    }

    /// Puts the later stages into the main program's tail-call table: the
    /// filter stage, and the SYN-cookie stage (kernel only) when the object
    /// has one.
    fn link_stages(&mut self) -> Result<(), DataplaneError> {
        let filter_fd = self
            .stage_fd(objects::FILTER_PROGRAM)?
            .ok_or_else(|| DataplaneError::Load("no filter stage in the object".into()))?;
        let syncookie_fd = self.stage_fd(objects::SYNCOOKIE_PROGRAM)?;
        let map = self.ebpf.map_mut("STAGES").ok_or(DataplaneError::Map {
            name: "STAGES",
            source: aya::maps::MapError::InvalidName {
                name: "STAGES".into(),
            },
        })?;
        let mut stages: ProgramArray<&mut MapData> =
            ProgramArray::try_from(map).map_err(|source| DataplaneError::Map {
                name: "STAGES",
                source,
            })?;
        let map_error = |source| DataplaneError::Map {
            name: "STAGES",
            source,
        };
        stages.set(STAGE_FILTER, &filter_fd, 0).map_err(map_error)?;
        if let Some(fd) = syncookie_fd {
            stages.set(STAGE_SYNCOOKIE, &fd, 0).map_err(map_error)?;
        }
        Ok(())
    }

    /// A loaded stage program's fd, or `None` when the object has no such
    /// program.
    fn stage_fd(&self, name: &str) -> Result<Option<aya::programs::ProgramFd>, DataplaneError> {
        let Some(program) = self.ebpf.program(name) else {
            return Ok(None);
        };
        let program: &Xdp = program
            .try_into()
            .map_err(|error: aya::programs::ProgramError| DataplaneError::Load(Box::new(error)))?;
        let fd = program
            .fd()
            .map_err(|error| DataplaneError::Load(Box::new(error)))?
            .try_clone()
            .map_err(|source| DataplaneError::Io {
                path: "program fd".into(),
                source,
            })?;
        Ok(Some(fd))
    }

    /// Loads the xdpath program with the filter maps of this namespace
    /// (created and pinned if they are not there yet).
    pub fn load_shared(config: InterfaceConfig) -> Result<Self, DataplaneError> {
        ensure_bpffs()?;
        let dir = shared_dir()?;
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        Self::load_object_with(objects::XDPATH, objects::XDPATH_PROGRAM, config, Some(&dir))
    }

    /// The loaded object, for typed access to its maps.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// A new file descriptor of one of the program's maps (the filter's
    /// control plane writes the maps of a program loaded for tests).
    pub fn map_fd(&self, name: &'static str) -> Result<std::os::fd::OwnedFd, DataplaneError> {
        let missing = || DataplaneError::Map {
            name,
            source: aya::maps::MapError::InvalidName { name: name.into() },
        };
        let data = match self.ebpf.map(name).ok_or_else(missing)? {
            Map::Array(data)
            | Map::PerCpuArray(data)
            | Map::LpmTrie(data)
            | Map::LruHashMap(data)
            | Map::HashMap(data)
            | Map::ProgramArray(data) => data,
            _ => return Err(missing()),
        };
        std::os::fd::AsFd::as_fd(data.fd())
            .try_clone_to_owned()
            .map_err(|source| DataplaneError::Io {
                path: format!("map {name}").into(),
                source,
            })
    }

    /// Loads the empty program (`return XDP_PASS`), for benchmarks.
    pub fn load_empty() -> Result<Self, DataplaneError> {
        Self::load_object(
            objects::EMPTY,
            objects::EMPTY_PROGRAM,
            InterfaceConfig::default(),
        )
    }

    /// Loads an XDP program from an object file (a peer's, for benchmarks).
    pub fn load_file(path: &Path, program: &str) -> Result<Self, DataplaneError> {
        let bytes = std::fs::read(path).map_err(|source| DataplaneError::Io {
            path: path.into(),
            source,
        })?;
        Self::load_object(&bytes, program, InterfaceConfig::default())
    }

    fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(&self.main)
            .and_then(|program| <&mut Xdp>::try_from(program).ok())
            .expect("load_object checked the program is XDP")
    }

    /// Writes the interface config.
    pub fn set_config(&mut self, config: InterfaceConfig) -> Result<(), DataplaneError> {
        let map = self.ebpf.map_mut("CONFIG").ok_or(DataplaneError::Map {
            name: "CONFIG",
            source: aya::maps::MapError::InvalidName {
                name: "CONFIG".into(),
            },
        })?;
        let mut array: Array<&mut MapData, PodConfig> =
            Array::try_from(map).map_err(|source| DataplaneError::Map {
                name: "CONFIG",
                source,
            })?;
        array
            .set(0, PodConfig(config), 0)
            .map_err(|source| DataplaneError::Map {
                name: "CONFIG",
                source,
            })
    }

    /// Runs the program once on `frame` through `BPF_PROG_TEST_RUN`.
    pub fn test_run(&mut self, frame: &[u8]) -> Result<u32, DataplaneError> {
        let mut options = TestRunOptions::new();
        options.data_in = Some(frame);
        let result = self
            .program()
            .test_run(options)
            .map_err(DataplaneError::TestRun)?;
        Ok(result.return_value)
    }

    /// Runs the program once on `frame` through `BPF_PROG_TEST_RUN` and
    /// returns the action code and the frame as the program left it (for
    /// `XDP_TX` answers such as SYN-cookie SYN-ACKs).
    pub fn test_run_output(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>), DataplaneError> {
        // Room for a frame the program grows with bpf_xdp_adjust_tail.
        let mut out = vec![0u8; frame.len() + 256];
        let mut options = TestRunOptions::new();
        options.data_in = Some(frame);
        options.data_out = Some(&mut out);
        let result = self
            .program()
            .test_run(options)
            .map_err(DataplaneError::TestRun)?;
        let len = (result.data_size_out as usize).min(out.len());
        out.truncate(len);
        Ok((result.return_value, out))
    }

    /// Runs the program `repeat` times on `frame` in the kernel and returns
    /// the kernel's average time per run.
    pub fn time_run(&mut self, frame: &[u8], repeat: u32) -> Result<Duration, DataplaneError> {
        let mut options = TestRunOptions::new();
        options.data_in = Some(frame);
        options.repeat = repeat;
        let result = self
            .program()
            .test_run(options)
            .map_err(DataplaneError::TestRun)?;
        Ok(result.duration)
    }

    /// The counters, summed over CPUs, indexed by `counter_index`.
    pub fn counters(&self) -> Result<Vec<Counter>, DataplaneError> {
        let map = self.ebpf.map("COUNTERS").ok_or(DataplaneError::Map {
            name: "COUNTERS",
            source: aya::maps::MapError::InvalidName {
                name: "COUNTERS".into(),
            },
        })?;
        let array: PerCpuArray<&MapData, PodCounter> =
            PerCpuArray::try_from(map).map_err(|source| DataplaneError::Map {
                name: "COUNTERS",
                source,
            })?;
        sum_counters(&array)
    }
}

fn sum_counters<T: std::borrow::Borrow<MapData>>(
    array: &PerCpuArray<T, PodCounter>,
) -> Result<Vec<Counter>, DataplaneError> {
    let mut sums = vec![Counter::default(); COUNTER_SLOTS as usize];
    for (index, sum) in sums.iter_mut().enumerate() {
        let values = array
            .get(&(index as u32), 0)
            .map_err(|source| DataplaneError::Map {
                name: "COUNTERS",
                source,
            })?;
        for value in values.iter() {
            sum.packets += value.0.packets;
            sum.bytes += value.0.bytes;
        }
    }
    Ok(sums)
}

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
    /// False when the pins are left but the attachment is gone (the
    /// interface was deleted); `detach` cleans up.
    pub healthy: bool,
}

/// The pins of one interface in the current network namespace.
#[derive(Clone, Debug)]
pub struct InterfacePins {
    interface: String,
    dir: PathBuf,
}

impl InterfacePins {
    /// The pin directory of `interface` in this thread's network namespace.
    pub fn new(interface: &str) -> Result<Self, DataplaneError> {
        if interface.is_empty()
            || interface.contains('/')
            || interface.len() > 15
            || interface.contains('\0')
        {
            return Err(DataplaneError::UnknownInterface {
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

/// The maps every interface of a namespace shares (the filter's).
pub const SHARED_MAPS: [&str; 20] = [
    "FILTER_CONFIG",
    "RULES_0",
    "RULES_1",
    "CHAINS_0",
    "CHAINS_1",
    "PREFIXES_0",
    "PREFIXES_1",
    "PREFIX_LENGTHS_0",
    "PREFIX_LENGTHS_1",
    "RULE_HITS",
    "BLOCKLIST",
    "RATE_LIMITS",
    "SRC_BUCKETS",
    "DST_BUCKETS",
    "LIMIT_DROPS",
    "REFLECTION_PORTS",
    "REFLECTION_OK",
    "MGMT_SOURCES",
    "MGMT_PORTS",
    "SYNCOOKIE_PORTS",
];

/// Slot of the filter stage in the `STAGES` tail-call table.
pub const STAGE_FILTER: u32 = 0;
/// Slot of the SYN-cookie stage (kernel only; reached from the filter
/// stage) in the `STAGES` tail-call table.
pub const STAGE_SYNCOOKIE: u32 = 1;

/// Where this namespace's shared maps are pinned: `<namespace dir>/:shared`.
/// Interface pins live in dirs named after interfaces beside it; no
/// interface name can hold a `:` (and bpffs refuses names with a `.`).
pub fn shared_dir() -> Result<PathBuf, DataplaneError> {
    Ok(namespace_dir()?.join(SHARED_DIR_NAME))
}

/// The name of the shared-maps dir inside a namespace dir.
pub const SHARED_DIR_NAME: &str = ":shared";

/// This namespace's pin directory: `/sys/fs/bpf/xdpath/<netns id>`.
pub fn namespace_dir() -> Result<PathBuf, DataplaneError> {
    let id = crate::netns::current_id().map_err(|source| DataplaneError::Io {
        path: "/proc/thread-self/ns/net".into(),
        source,
    })?;
    Ok(Path::new(PIN_ROOT).join(id.to_string()))
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

/// Attaches a fresh xdpath instance to `interface` and pins it.
///
/// On any error nothing is left behind: no attachment, no pins.
pub fn attach(
    interface: &str,
    choice: ModeChoice,
    config: InterfaceConfig,
) -> Result<AttachedMode, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    let ifindex = if_index(interface).ok_or_else(|| DataplaneError::UnknownInterface {
        name: interface.into(),
    })?;
    ensure_bpffs()?;
    if pins.attached() {
        if link_alive(&pins) {
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
    let result = attach_loaded(interface, ifindex, choice, config, &pins);
    if result.is_err() && !shared_existed {
        let _ = std::fs::remove_dir_all(&shared);
    }
    result
}

fn attach_loaded(
    interface: &str,
    ifindex: u32,
    choice: ModeChoice,
    config: InterfaceConfig,
    pins: &InterfacePins,
) -> Result<AttachedMode, DataplaneError> {
    let mut loaded = LoadedProgram::load_shared(config)?;
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
    let result = pin_all(&mut loaded, pins, mode, ifindex, link_id);
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
    std::fs::create_dir_all(&pins.dir).map_err(io_error(&pins.dir))?;
    let attached_at_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    {
        let map = loaded.ebpf.map_mut("META").ok_or(DataplaneError::Map {
            name: "META",
            source: aya::maps::MapError::InvalidName {
                name: "META".into(),
            },
        })?;
        let mut meta: Array<&mut MapData, PodMeta> =
            Array::try_from(map).map_err(|source| DataplaneError::Map {
                name: "META",
                source,
            })?;
        meta.set(
            0,
            PodMeta(AttachMeta {
                attached_at_ns,
                ifindex,
                mode: mode.code(),
            }),
            0,
        )
        .map_err(|source| DataplaneError::Map {
            name: "META",
            source,
        })?;
    }
    for name in ["CONFIG", "COUNTERS", "META", "STAGES"] {
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

fn read_meta(pins: &InterfacePins) -> Option<AttachMeta> {
    let data = MapData::from_pin(pins.path("META")).ok()?;
    let array = Array::<MapData, PodMeta>::try_from(Map::Array(data)).ok()?;
    array.get(&0, 0).ok().map(|meta| meta.0)
}

/// True while the interface the program was attached to still exists. The
/// kernel detaches an XDP link when its device goes away; a device made
/// again under the same name gets a new index.
fn link_alive(pins: &InterfacePins) -> bool {
    pins.attached()
        && read_meta(pins).is_some_and(|meta| if_index(&pins.interface) == Some(meta.ifindex))
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
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir() && entry.file_name() != SHARED_DIR_NAME)
        .filter_map(|entry| entry.file_name().into_string().ok())
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
    let config = MapData::from_pin(pins.path("CONFIG"))
        .ok()
        .and_then(|data| Array::<MapData, PodConfig>::try_from(Map::Array(data)).ok())
        .and_then(|array| array.get(&0, 0).ok())
        .map(|config| config.0)
        .unwrap_or_default();
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
        healthy: link_alive(&pins),
    })
}

/// The counters of an attached interface, summed over CPUs.
pub fn interface_counters(interface: &str) -> Result<Vec<Counter>, DataplaneError> {
    let pins = InterfacePins::new(interface)?;
    if !pins.dir.exists() {
        return Err(DataplaneError::NotAttached {
            name: interface.into(),
        });
    }
    let path = pins.path("COUNTERS");
    let data = MapData::from_pin(&path).map_err(|source| DataplaneError::Map {
        name: "COUNTERS",
        source,
    })?;
    let array =
        PerCpuArray::<MapData, PodCounter>::try_from(Map::PerCpuArray(data)).map_err(|source| {
            DataplaneError::Map {
                name: "COUNTERS",
                source,
            }
        })?;
    sum_counters(&array)
}

/// Decodes a test-run return value.
pub fn action_of(code: u32) -> Option<Action> {
    Action::from_u32(code)
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
