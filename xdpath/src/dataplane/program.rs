//! [`LoadedProgram`]: an instance of the xdpath object in the kernel, its
//! stages linked, its maps typed; run through `BPF_PROG_TEST_RUN` by the
//! tests and benchmarks, attached by [`super::attach`].

use std::path::{Path, PathBuf};
use std::time::Duration;
use xdpath_core::abi;

use aya::maps::{Array, Map, MapData, PerCpuArray, ProgramArray};
use aya::programs::{TestRun, TestRunOptions, Xdp};
use aya::{Ebpf, EbpfLoader};
use xdpath_core::{Counter, InterfaceConfig, COUNTER_SLOTS};

use crate::objects;

use super::conn_table::object_with_table;
use super::*;

/// An instance of the xdpath program loaded into the kernel, with its maps.
pub struct LoadedProgram {
    pub(super) ebpf: Ebpf,
    pub(super) main: String,
}

impl LoadedProgram {
    /// Loads a fresh instance of the xdpath program with `config`.
    ///
    /// # Minimum kernel
    /// 5.9 for bpf_link attachment; `BPF_PROG_TEST_RUN` for XDP: 4.15.
    pub fn load(config: InterfaceConfig) -> Result<Self, DataplaneError> {
        Self::load_object(objects::XDPATH, abi::program::XDPATH, config)
    }

    /// [`LoadedProgram::load`] with the connection tables of kind `table`
    /// (see [`ConnectionTable`]).
    pub fn load_with_table(
        config: InterfaceConfig,
        table: ConnectionTable,
    ) -> Result<Self, DataplaneError> {
        let object = object_with_table(objects::XDPATH, table)?;
        Self::load_object(&object, abi::program::XDPATH, config)
    }

    fn load_object(
        object: &[u8],
        program: &str,
        config: InterfaceConfig,
    ) -> Result<Self, DataplaneError> {
        Self::load_object_with(object, program, Some(config), &[], &[])
    }

    /// Loads the object. Each map named in `pins` is opened from (or
    /// created and pinned at) its path, so that several instances share it:
    /// the namespace's filter maps, so every instance of a namespace sees
    /// one rule set; on a reload also the interface's own maps. With
    /// `config`, the `CONFIG` map is written; without, it is left as it is
    /// (a reload keeps the interface's pinned config).
    fn load_object_with(
        object: &[u8],
        program: &str,
        config: Option<InterfaceConfig>,
        pins: &[(&'static str, PathBuf)],
        sizes: &[(&'static str, u32)],
    ) -> Result<Self, DataplaneError> {
        raise_memlock_limit();
        check_pins_open(pins)?;
        let mut loader = EbpfLoader::new();
        for (name, path) in pins {
            loader.map_pin_path(name, path.as_path());
        }
        for (name, size) in sizes {
            loader.map_max_entries(name, *size);
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
        if let Some(config) = config {
            if loaded.ebpf.map(abi::map::CONFIG).is_some() {
                loaded.set_config(config)?;
            }
        }
        if loaded.ebpf.map(abi::map::STAGES).is_some() {
            loaded.link_stages()?;
        }
        Ok(loaded)
    }

    /// Puts the later stages into the main program's tail-call table: the
    /// filter stage, and the SYN-cookie (kernel only) and balancing stages
    /// when the object has them.
    fn link_stages(&mut self) -> Result<(), DataplaneError> {
        let filter_fd = self
            .stage_fd(abi::program::FILTER)?
            .ok_or_else(|| DataplaneError::Load("no filter stage in the object".into()))?;
        let syncookie_fd = self.stage_fd(abi::program::SYNCOOKIE)?;
        let balance_fd = self.stage_fd(abi::program::BALANCE)?;
        let forward_fd = self.stage_fd(abi::program::FORWARD)?;
        let steer_fd = self.stage_fd(abi::program::STEER)?;
        let decapsulated_fd = self.stage_fd(abi::program::DECAPSULATED)?;
        let too_big_fd = self.stage_fd(abi::program::TOO_BIG)?;
        let limits_fd = self.stage_fd(abi::program::LIMITS)?;
        let map_error = DataplaneError::of_map(abi::map::STAGES);
        let map = self.object_map_mut(abi::map::STAGES)?;
        let mut stages: ProgramArray<&mut MapData> =
            ProgramArray::try_from(map).map_err(&map_error)?;
        for (slot, fd) in [
            (abi::stage::FILTER, Some(filter_fd)),
            (abi::stage::SYNCOOKIE, syncookie_fd),
            (abi::stage::BALANCE, balance_fd),
            (abi::stage::FORWARD, forward_fd),
            (abi::stage::STEER, steer_fd),
            (abi::stage::DECAPSULATED, decapsulated_fd),
            (abi::stage::TOO_BIG, too_big_fd),
            (abi::stage::LIMITS, limits_fd),
        ] {
            if let Some(fd) = fd {
                stages.set(slot, &fd, 0).map_err(&map_error)?;
            }
        }
        Ok(())
    }

    /// The map `name` of the object, to be typed.
    fn object_map_mut(&mut self, name: &'static str) -> Result<&mut Map, DataplaneError> {
        self.ebpf
            .map_mut(name)
            .ok_or_else(|| DataplaneError::missing_map(name))
    }

    /// Writes `value` into the first entry of the array map `name` (a
    /// one-entry map: the config, the attach note, a plan).
    pub(super) fn set_first_entry<V: aya::Pod>(
        &mut self,
        name: &'static str,
        value: V,
    ) -> Result<(), DataplaneError> {
        let map = self.object_map_mut(name)?;
        let mut array: Array<&mut MapData, V> =
            Array::try_from(map).map_err(DataplaneError::of_map(name))?;
        array.set(0, value, 0).map_err(DataplaneError::of_map(name))
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

    /// Creates and pins this namespace's shared maps, those not there yet,
    /// without loading a program: aya creates an object's maps at parse
    /// time and verifies a program only when it is loaded. Loading the
    /// stages as well verified all of them for a namespace's first rule
    /// (about 4.5 s of kernel time a load on this project's 2-core VM,
    /// session 7's profile of the suite).
    pub fn create_shared_maps() -> Result<(), DataplaneError> {
        ensure_bpffs()?;
        let dir = shared_dir()?;
        crate::private_files::create_directory(&dir).map_err(io_error(&dir))?;
        raise_memlock_limit();
        let pins = shared_pins(&dir);
        let mut loader = EbpfLoader::new();
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let object = object_with_table(objects::XDPATH, configured_table())?;
        drop(
            loader
                .load(&object)
                .map_err(|error| DataplaneError::Load(Box::new(error)))?,
        );
        super::retired::unpin_retired_maps(&dir);
        Ok(())
    }

    /// Loads the xdpath program with the filter maps of this namespace
    /// (created and pinned if they are not there yet).
    pub fn load_shared(config: InterfaceConfig) -> Result<Self, DataplaneError> {
        ensure_bpffs()?;
        let dir = shared_dir()?;
        crate::private_files::create_directory(&dir).map_err(io_error(&dir))?;
        let object = object_with_table(objects::XDPATH, configured_table())?;
        let loaded = Self::load_object_with(
            &object,
            abi::program::XDPATH,
            Some(config),
            &shared_pins(&dir),
            &[],
        )?;
        super::retired::unpin_retired_maps(&dir);
        Ok(loaded)
    }

    /// Loads this build's xdpath program for a reload of the interface
    /// pinned at `interface_dir`: the namespace's shared maps and the
    /// interface's own `CONFIG`, `COUNTERS` and `META` are the pinned ones
    /// (so config, counters and attach time carry over, and nothing is
    /// written to them); the tail-call table `STAGES` is a fresh one,
    /// filled with this load's stages (see [`super::reload`] for why).
    pub(super) fn load_reusing(interface_dir: &Path) -> Result<Self, DataplaneError> {
        let mut pins = shared_pins(&shared_dir()?);
        pins.extend(
            abi::INTERFACE_REUSED_MAPS
                .iter()
                .map(|name| (*name, interface_dir.join(name))),
        );
        let object = object_with_table(objects::XDPATH, configured_table())?;
        Self::load_object_with(&object, abi::program::XDPATH, None, &pins, &[])
    }

    /// The loaded object, for typed access to its maps.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// The loaded object, to read its maps.
    pub fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    /// A new file descriptor of one of the program's maps (the filter's
    /// control plane writes the maps of a program loaded for tests).
    pub fn map_fd(&self, name: &'static str) -> Result<std::os::fd::OwnedFd, DataplaneError> {
        let missing = || DataplaneError::missing_map(name);
        let data = match self.ebpf.map(name).ok_or_else(missing)? {
            Map::Array(data)
            | Map::PerCpuArray(data)
            | Map::LpmTrie(data)
            | Map::LruHashMap(data)
            | Map::HashMap(data)
            | Map::ProgramArray(data)
            | Map::RingBuf(data)
            | Map::DevMapHash(data)
            | Map::CpuMap(data)
            | Map::XskMap(data) => data,
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
            abi::program::EMPTY,
            InterfaceConfig::default(),
        )
    }

    /// Loads an XDP program from an object file (a peer's, for benchmarks).
    pub fn load_file(path: &Path, program: &str) -> Result<Self, DataplaneError> {
        // xdpath's own object is about 1 MiB with its debug information.
        const MAX_OBJECT_BYTES: u64 = 64 << 20;
        let bytes = crate::input::read_bytes(path, MAX_OBJECT_BYTES)?;
        Self::load_object(&bytes, program, InterfaceConfig::default())
    }

    /// Loads an xdpath object from a file (another build of it, for
    /// benchmarks) with its connection tables of kind `table`.
    pub fn load_file_with_table(
        path: &Path,
        table: ConnectionTable,
    ) -> Result<Self, DataplaneError> {
        const MAX_OBJECT_BYTES: u64 = 64 << 20;
        let bytes = crate::input::read_bytes(path, MAX_OBJECT_BYTES)?;
        let object = object_with_table(&bytes, table)?;
        Self::load_object(&object, abi::program::XDPATH, InterfaceConfig::default())
    }

    pub(super) fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(&self.main)
            .and_then(|program| <&mut Xdp>::try_from(program).ok())
            .expect("load_object checked the program is XDP")
    }

    /// Writes the interface config.
    pub fn set_config(&mut self, config: InterfaceConfig) -> Result<(), DataplaneError> {
        self.set_first_entry(abi::map::CONFIG, PodConfig(config))
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

    /// Runs the program `repeat` times on `frame` as live frames
    /// (`BPF_F_TEST_XDP_LIVE_FRAMES`, kernel 5.18): its redirects and TX
    /// really send, in batches of 64. `ctx` is the `xdp_md` it sees (the
    /// ingress interface). Returns the kernel's time per run and the wall
    /// time of the whole call.
    pub fn run_live(
        &mut self,
        frame: &[u8],
        ctx: &[u8],
        repeat: u32,
    ) -> Result<(Duration, Duration), DataplaneError> {
        let mut options = TestRunOptions::new();
        options.data_in = Some(frame);
        options.ctx_in = Some(ctx);
        options.repeat = repeat;
        options.attrs = aya::programs::TestRunAttrs::new().xdp_live_frames(64);
        let started = std::time::Instant::now();
        let result = self
            .program()
            .test_run(options)
            .map_err(DataplaneError::TestRun)?;
        Ok((result.duration, started.elapsed()))
    }

    /// Runs the program once on `frame` with `ctx` as its `xdp_md` (not
    /// live); returns its action code.
    pub fn test_run_ctx(&mut self, frame: &[u8], ctx: &[u8]) -> Result<u32, DataplaneError> {
        let mut options = TestRunOptions::new();
        options.data_in = Some(frame);
        options.ctx_in = Some(ctx);
        let result = self
            .program()
            .test_run(options)
            .map_err(DataplaneError::TestRun)?;
        Ok(result.return_value)
    }

    /// Loads the minimal redirect program, sending every frame to
    /// `ifindex` (the forwarding benchmark's peer).
    pub fn load_redirect(ifindex: u32) -> Result<Self, DataplaneError> {
        let mut loaded = Self::load_object(
            objects::REDIRECT,
            abi::program::REDIRECT,
            InterfaceConfig::default(),
        )?;
        loaded.set_first_entry(abi::map::REDIRECT_TO, ifindex)?;
        Ok(loaded)
    }

    /// Loads the reference balancer (the balancer benchmark's peer) with a
    /// connection table of `lru_entries` entries, its other maps empty.
    pub fn load_reflb(lru_entries: u32) -> Result<Self, DataplaneError> {
        Self::load_object_with(
            objects::REFLB,
            abi::program::REFLB,
            None,
            &[],
            &[(abi::map::REFLB_LRU, lru_entries)],
        )
    }

    /// Loads the flood generator of the end-to-end tests with its plan
    /// (see `xdpath_lab::flood`).
    pub fn load_flood(plan: &xdpath_core::flood::FloodPlan) -> Result<Self, DataplaneError> {
        let mut loaded = Self::load_object(
            objects::FLOOD,
            abi::program::FLOOD,
            InterfaceConfig::default(),
        )?;
        loaded.set_first_entry(abi::map::FLOOD_PLAN, plan.to_bytes())?;
        Ok(loaded)
    }

    /// Takes a ring-buffer map (`SAMPLES` or `CAPTURE_RING`) out of the
    /// program, to read what this instance writes to it.
    pub fn take_ring(
        &mut self,
        name: &'static str,
    ) -> Result<aya::maps::RingBuf<MapData>, DataplaneError> {
        let map = self
            .ebpf
            .take_map(name)
            .ok_or_else(|| DataplaneError::missing_map(name))?;
        aya::maps::RingBuf::try_from(map).map_err(DataplaneError::of_map(name))
    }

    /// The counters, summed over CPUs, indexed by `counter_index`.
    pub fn counters(&self) -> Result<Vec<Counter>, DataplaneError> {
        let map = self
            .ebpf
            .map(abi::map::COUNTERS)
            .ok_or_else(|| DataplaneError::missing_map(abi::map::COUNTERS))?;
        let array: PerCpuArray<&MapData, PodCounter> =
            PerCpuArray::try_from(map).map_err(DataplaneError::of_map(abi::map::COUNTERS))?;
        sum_counters(&array)
    }
}

/// Opens each pin that is there once before the load: aya takes a pin it
/// cannot open (a failed `BPF_OBJ_GET`, ENOMEM say) for none, creates the
/// map afresh and fails to pin it, so the error said `BPF_OBJ_PIN failed:
/// File exists` and hid the cause. (The load opens them again; this only
/// names the cause when the first open fails.)
fn check_pins_open(pins: &[(&'static str, PathBuf)]) -> Result<(), DataplaneError> {
    for (_, path) in pins {
        if path.exists() {
            MapData::from_pin(path).map_err(|error| DataplaneError::PinnedObject {
                path: path.clone(),
                source: format!(
                    "cannot open the pinned map: {}",
                    super::error::error_chain(&error)
                )
                .into(),
            })?;
        }
    }
    Ok(())
}

/// The pin paths of the namespace's shared maps in `dir`.
fn shared_pins(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    abi::SHARED_MAPS
        .iter()
        .map(|name| (*name, dir.join(name)))
        .collect()
}

pub(super) fn sum_counters<T: std::borrow::Borrow<MapData>>(
    array: &PerCpuArray<T, PodCounter>,
) -> Result<Vec<Counter>, DataplaneError> {
    let mut sums = vec![Counter::default(); COUNTER_SLOTS as usize];
    for (index, sum) in sums.iter_mut().enumerate() {
        let values = array
            .get(&(index as u32), 0)
            .map_err(DataplaneError::of_map(abi::map::COUNTERS))?;
        for value in values.iter() {
            sum.packets += value.0.packets;
            sum.bytes += value.0.bytes;
        }
    }
    Ok(sums)
}

/// The connection-table kind this namespace's balancer settings ask for
/// (`lb config --connection-table`), for maps about to be created; the
/// default when there are no settings yet or they cannot be read (an
/// unreadable state file fails the control call that reads it for real).
fn configured_table() -> ConnectionTable {
    crate::lb::state::saved_connection_table().unwrap_or_default()
}
