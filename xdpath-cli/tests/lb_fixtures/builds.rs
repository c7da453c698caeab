//! Running a frame through both builds and reading back their balancer
//! state (connection tables, hits and misses, per-VIP and per-backend
//! counters) as one [`Snapshot`] each.

use super::*;

/// One frame's result, the same in both builds.
pub(crate) struct Ran {
    pub(crate) action: Action,
    pub(crate) reason: Reason,
    pub(crate) output: Vec<u8>,
}

/// The balancer's state: the established and the new-flow tables (key
/// bytes, backend, generation), hits and misses, `[packets, bytes, new
/// flows]` per VIP and per backend slot, and each VIP's drops by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) hits: u64,
    pub(crate) misses: u64,
    pub(crate) connections: BTreeSet<(Vec<u8>, u32, u32)>,
    /// The new-flow table's written slots: (slot, tag, backend, generation).
    pub(crate) new_connections: BTreeSet<(u32, u64, u32, u32)>,
    /// The new-flow table's seed.
    pub(crate) seed: u64,
    pub(crate) vips: Vec<[u64; 3]>,
    pub(crate) backends: Vec<[u64; 3]>,
    /// Frames to each VIP not forwarded, by `vip_drop_index` slot.
    pub(crate) drops: Vec<u64>,
}

pub(crate) fn bpf_map<'a>(ebpf: &'a Ebpf, name: &str) -> &'a Map {
    ebpf.map(name)
        .unwrap_or_else(|| panic!("no map {name} in the object"))
}

/// A per-CPU u64 slot summed over CPUs.
pub(crate) fn per_cpu_u64(ebpf: &Ebpf, name: &str, slot: u32) -> u64 {
    let array = PerCpuArray::<&MapData, u64>::try_from(bpf_map(ebpf, name)).expect("per-CPU u64");
    array.get(&slot, 0).expect("slot").iter().sum()
}

/// A per-CPU `LbCounter` (three u64: packets, bytes, new flows) summed.
pub(crate) fn per_cpu_counter(ebpf: &Ebpf, name: &str, slot: u32) -> [u64; 3] {
    let array =
        PerCpuArray::<&MapData, [u64; 3]>::try_from(bpf_map(ebpf, name)).expect("LbCounter");
    array
        .get(&slot, 0)
        .expect("slot")
        .iter()
        .fold([0; 3], |sum, cpu| {
            [sum[0] + cpu[0], sum[1] + cpu[1], sum[2] + cpu[2]]
        })
}

/// A connection table of the kernel's as (key bytes, backend, generation).
pub(crate) fn kernel_table(ebpf: &Ebpf, name: &str) -> BTreeSet<(Vec<u8>, u32, u32)> {
    // ConnectionKey is 40 bytes, Connection two u32.
    let table = BpfHashMap::<&MapData, [u8; 40], [u32; 2]>::try_from(bpf_map(ebpf, name))
        .unwrap_or_else(|error| panic!("{name}: {error}"));
    table
        .iter()
        .map(|entry| {
            let (key, value) = entry.expect("connection");
            (key.to_vec(), value[0], value[1])
        })
        .collect()
}

/// The new-flow table's written slots as (slot, tag, backend,
/// generation).
pub(crate) fn new_flow_entries(
    slots: impl Iterator<Item = (u32, NewFlowSlot)>,
) -> BTreeSet<(u32, u64, u32, u32)> {
    slots
        .filter(|(_, slot)| slot.tag != 0)
        .map(|(index, slot)| {
            let connection = slot.connection;
            (index, slot.tag, connection.backend, connection.generation)
        })
        .collect()
}

/// The slot a flow (key bytes, backend, generation) takes in the new-flow
/// table, as [`new_flow_entries`] lists it.
pub(crate) fn new_flow_entry(flow: &(Vec<u8>, u32, u32), seed: u64) -> (u32, u64, u32, u32) {
    let (bytes, backend, generation) = flow;
    let field = |at: usize, len: usize| bytes.get(at..at + len).expect("a 40-byte key");
    let address = |at| <[u8; 16]>::try_from(field(at, 16)).expect("16 bytes");
    let port = |at| u16::from_ne_bytes(field(at, 2).try_into().expect("2 bytes"));
    let key = ConnectionKey::new(
        &address(0),
        &address(16),
        port(32),
        port(34),
        field(36, 1)[0],
    );
    let place = NewFlowPlace::of(&key, seed);
    let connection = Connection {
        backend: *backend,
        generation: *generation,
    };
    (place.slot, place.tag(&connection), *backend, *generation)
}

/// The key bytes of a connection key, as the kernel's tables hold them.
fn key_bytes(key: &ConnectionKey) -> Vec<u8> {
    assert_eq!(key.reserved, [0; 3], "reserved bytes of a connection key");
    Tuple {
        source: key.source,
        destination: key.destination,
        source_port: key.source_port,
        destination_port: key.destination_port,
        protocol: key.protocol,
    }
    .key_bytes()
}

/// The kernel's new-flow table (read in batches: it has 131,072 slots).
pub(crate) fn kernel_new_flows(maps: &KernelMaps) -> BTreeSet<(u32, u64, u32, u32)> {
    const SIZE: usize = size_of::<NewFlowSlot>();
    let bytes = maps
        .read_array(abi::map::NEW_FLOW_TABLE, NEW_FLOW_SLOTS, SIZE)
        .expect("the new-flow table");
    new_flow_entries(bytes.chunks_exact(SIZE).enumerate().map(|(index, raw)| {
        // SAFETY: a `NewFlowSlot` is plain words (`#[repr(C)]`, no
        // padding), and `raw` holds exactly one.
        let slot = unsafe { core::ptr::read_unaligned(raw.as_ptr().cast::<NewFlowSlot>()) };
        (index as u32, slot)
    }))
}

/// The new-flow seed both builds use in these fixtures.
pub(crate) const FIXTURE_SEED: u64 = 0x5eed_0123_4567_89ab;

/// The kernel's new-flow seed.
pub(crate) fn kernel_seed(maps: &KernelMaps) -> u64 {
    xdpath::lb::install::new_flow_seed(maps).expect("the new-flow seed")
}

pub(crate) fn kernel_snapshot(ebpf: &Ebpf, maps: &KernelMaps) -> Snapshot {
    Snapshot {
        hits: per_cpu_u64(ebpf, abi::map::CONN_STATS, 0),
        misses: per_cpu_u64(ebpf, abi::map::CONN_STATS, 1),
        connections: kernel_table(ebpf, abi::map::CONNECTIONS),
        new_connections: kernel_new_flows(maps),
        seed: kernel_seed(maps),
        vips: (0..VIP_SLOTS)
            .map(|slot| per_cpu_counter(ebpf, abi::map::VIP_STATS, slot))
            .collect(),
        backends: (0..BACKEND_SLOTS)
            .map(|slot| per_cpu_counter(ebpf, abi::map::BACKEND_STATS, slot))
            .collect(),
        drops: (0..VIP_SLOTS * VIP_DROP_SLOTS)
            .map(|slot| per_cpu_u64(ebpf, abi::map::VIP_DROPS, slot))
            .collect(),
    }
}

/// A connection table of the native build's, as [`kernel_table`].
pub(crate) fn native_table(
    table: &std::collections::HashMap<ConnectionKey, Connection>,
) -> BTreeSet<(Vec<u8>, u32, u32)> {
    table
        .iter()
        .map(|(key, value)| (key_bytes(key), value.backend, value.generation))
        .collect()
}

pub(crate) fn native_snapshot(tables: &NativeTables) -> Snapshot {
    let counter = |stats: &xdpath_core::native::OperatorMap<u32, xdpath_core::lb::LbCounter>,
                   slot| {
        stats
            .get(&slot)
            .map_or([0; 3], |c| [c.packets, c.bytes, c.new_flows])
    };
    Snapshot {
        hits: tables.lb.connection_stats[0],
        misses: tables.lb.connection_stats[1],
        connections: native_table(&tables.lb.connections),
        seed: tables.lb.new_flow_seed,
        new_connections: new_flow_entries(
            tables
                .lb
                .new_flows
                .iter()
                .map(|(index, slot)| (*index, *slot)),
        ),
        vips: (0..VIP_SLOTS)
            .map(|slot| counter(&tables.lb.vip_stats, slot))
            .collect(),
        backends: (0..BACKEND_SLOTS)
            .map(|slot| counter(&tables.lb.backend_stats, slot))
            .collect(),
        drops: (0..VIP_SLOTS * VIP_DROP_SLOTS)
            .map(|slot| tables.lb.vip_drops.get(&slot).copied().unwrap_or(0))
            .collect(),
    }
}

/// The kernel program (pooled, as freshly loaded) and the native tables,
/// fed the same frames.
pub(crate) struct Builds {
    pub(crate) program: Reused,
    pub(crate) native: NativeTables,
}

impl Builds {
    /// A balancer with `table` as its Maglev ring.
    pub(crate) fn balancer(table: Vec<u32>) -> Self {
        let program =
            Reused::take(InterfaceConfig::default()).expect("a fresh program (needs root)");
        let mut builds = Self {
            program,
            native: NativeTables::default(),
        };
        builds.install(&state(0, table));
        builds
    }

    /// A backend decapsulating IPIP and GUE (to `GUE_PORT`) addressed to
    /// `local`.
    pub(crate) fn decapsulator(local: &[[u8; 16]]) -> Self {
        let config = InterfaceConfig::default().with_decap(true, GUE_PORT);
        let mut program = Reused::take(config).expect("a fresh program (needs root)");
        let map = program
            .ebpf_mut()
            .map_mut(abi::map::LOCAL_ADDRESSES)
            .expect(abi::map::LOCAL_ADDRESSES);
        let mut addresses = BpfHashMap::<&mut MapData, [u8; 16], u8>::try_from(map)
            .expect(abi::map::LOCAL_ADDRESSES);
        let mut native = NativeTables::new(config);
        for address in local {
            addresses.insert(address, 1, 0).expect("insert");
            native.lb.local_addresses.insert(*address);
        }
        Self { program, native }
    }

    pub(crate) fn install(&mut self, state: &CompiledLb) {
        let maps = KernelMaps::of_program(&self.program).expect("maps");
        state.install_kernel(&maps).expect("install");
        state.install_native(&mut self.native);
        // Both new-flow tables keyed alike, with a seed the rows know (the
        // install wrote a random one), so that a row can pick two flows of
        // one slot.
        let seed = NewFlowSlot {
            tag: FIXTURE_SEED,
            ..NewFlowSlot::default()
        };
        // SAFETY: `NewFlowSlot` is plain words (`#[repr(C)]`, no padding).
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&seed as *const NewFlowSlot).cast::<u8>(),
                size_of::<NewFlowSlot>(),
            )
        };
        maps.update(
            abi::map::NEW_FLOW_TABLE,
            &NEW_FLOW_SEED.to_ne_bytes(),
            bytes,
        )
        .expect("the fixtures' seed");
        self.native.lb.new_flow_seed = kernel_seed(&maps);
        assert_eq!(self.native.lb.new_flow_seed, FIXTURE_SEED);
    }

    /// Runs `frame` through both builds: the action, the reason (the
    /// kernel's from the one counter slot it bumped) and the output bytes
    /// must agree.
    pub(crate) fn run(&mut self, description: &str, frame: &[u8]) -> Ran {
        let before = self.program.counters().expect("counters");
        let (code, output) = self.program.test_run_output(frame).expect("test run");
        let after = self.program.counters().expect("counters");
        let mut buffer = FrameBuffer::new(frame);
        let verdict = pipeline::process_frame(&mut buffer, &mut self.native);
        let (action, reason) = (verdict.outcome.action, verdict.outcome.reason);
        assert_eq!(
            code, action as u32,
            "{description}: kernel action (native: {action:?}, {reason:?})"
        );
        let bumped: Vec<usize> = (0..before.len())
            .filter(|&slot| before[slot] != after[slot])
            .collect();
        assert_eq!(
            bumped,
            vec![counter_index(action, reason) as usize],
            "{description}: kernel reason (native: {reason:?})"
        );
        assert_eq!(
            output,
            buffer.bytes(),
            "{description}: kernel and native output"
        );
        Ran {
            action,
            reason,
            output,
        }
    }

    /// The balancer state, equal in both builds.
    pub(crate) fn snapshot(&mut self, description: &str) -> Snapshot {
        let maps = KernelMaps::of_program(&self.program).expect("maps");
        let kernel = kernel_snapshot(self.program.ebpf_mut(), &maps);
        let native = native_snapshot(&self.native);
        assert_eq!(kernel, native, "{description}: kernel and native state");
        native
    }
}

// ---- fixture rows
