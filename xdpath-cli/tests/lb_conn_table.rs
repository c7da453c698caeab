//! The connection tables with one LRU list per CPU (`lb config
//! --connection-table per-cpu`, `BPF_F_NO_COMMON_LRU`) beside the shared
//! LRU, through `BPF_PROG_TEST_RUN` on pinned CPUs: the option loads
//! (the kernel's map says so), balances like the shared table, and an
//! established flow whose frames move to another CPU (what RSS does when
//! its indirection table changes) stays on its backend, because the hash
//! table is one for all CPUs and only the LRU lists are per CPU; when the
//! flow's backend is replaced in between, the next frame goes to the
//! backend Maglev picks now. The reference balancer's table (per-CPU LRU
//! lists too) behaves the same way.
//!
//! `lb config --connection-table` on a namespace with an attached
//! interface re-creates the pinned tables of the kind asked for.
//!
//! Needs root, a kernel with BPF and two CPUs this process may run on.

mod common;

use std::os::fd::AsRawFd;

use aya::maps::Map;
use xdpath::control::kernel::KernelMaps;
use xdpath::dataplane::{ConnectionTable, LoadedProgram, BPF_F_NO_COMMON_LRU};
use xdpath_core::abi;
use xdpath_core::build::{FrameSpec, Network, Transport};
use xdpath_core::lb::{CONN_HITS, CONN_MISSES};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_SYN};
use xdpath_core::InterfaceConfig;
use xdpath_lab::bench::lb::{bench_state, reference, VIP4};

const XDP_TX: u32 = 3;

/// Runs `work` on a thread pinned to `cpu`.
fn on_cpu<T: Send>(cpu: usize, work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                xdpath::userspace::pin_thread_to(cpu).expect("pin to the CPU");
                // SAFETY: no arguments.
                assert_eq!(unsafe { libc::sched_getcpu() }, cpu as i32);
                work()
            })
            .join()
            .expect("the pinned thread")
    })
}

/// Two CPUs this process may run on.
fn two_cpus() -> (usize, usize) {
    // SAFETY: cpu_set_t is plain data; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a pointer to a cpu_set_t of the size given.
    let read = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) };
    assert_eq!(read, 0);
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: every index is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    assert!(cpus.len() >= 2, "these tests need two CPUs: {cpus:?}");
    (cpus[0], cpus[1])
}

fn flow(flags: u8) -> Vec<u8> {
    FrameSpec::new(
        Network::V4([10, 77, 1, 2], VIP4),
        Transport::Tcp {
            source_port: 33_333,
            destination_port: 80,
            flags,
        },
    )
    .build()
}

/// Runs `frame` on `cpu`: the outer destination of the IPIP packet sent.
fn backend_on(program: &mut LoadedProgram, cpu: usize, frame: &[u8]) -> [u8; 4] {
    let (action, output) = on_cpu(cpu, || program.test_run_output(frame).expect("test run"));
    assert_eq!(action, XDP_TX, "balanced");
    assert_eq!(output[23], 4, "IPIP");
    output[30..34].try_into().expect("4 bytes")
}

fn counts(maps: &KernelMaps) -> (u64, u64) {
    let read = |slot| maps.per_cpu_sum(abi::map::CONN_STATS, slot).expect("stats");
    (read(CONN_HITS), read(CONN_MISSES))
}

fn table_flags(program: &LoadedProgram, name: &str) -> u32 {
    match program.ebpf().map(name) {
        Some(Map::LruHashMap(data)) => data.info().expect("map info").map_flags(),
        _ => panic!("{name} is not an LRU hash"),
    }
}

#[test]
fn both_table_kinds_keep_a_flow_on_its_backend_across_cpus() {
    xdpath_lab::needs_root!();
    let (first, second) = two_cpus();
    for kind in [ConnectionTable::Shared, ConnectionTable::PerCpu] {
        let mut program =
            LoadedProgram::load_with_table(InterfaceConfig::default(), kind).expect("load");
        let flags = table_flags(&program, abi::map::CONNECTIONS);
        assert_eq!(ConnectionTable::of_flags(flags), kind, "{flags:#x}");
        let maps = KernelMaps::of_program(&program).expect("maps");
        let mut state = bench_state(0).expect("state");
        state.install_kernel(&maps).expect("install");
        let chosen = backend_on(&mut program, first, &flow(FLAG_SYN));
        assert_eq!(backend_on(&mut program, first, &flow(FLAG_ACK)), chosen);
        assert_eq!(counts(&maps), (1, 1), "{kind}: a miss, then a hit");
        // RSS moves the flow: its next frames run on the other CPU.
        assert_eq!(backend_on(&mut program, second, &flow(FLAG_ACK)), chosen);
        assert_eq!(counts(&maps), (2, 1), "{kind}: found from the other CPU");

        // The flow's backend replaced (another server, same slot, a new
        // generation; the ring no longer names it): the next frame, on
        // either CPU, goes where Maglev points now.
        let (index, _) = state
            .backends
            .iter()
            .find(|(_, backend)| backend.address == ipv4_mapped(chosen))
            .copied()
            .expect("the chosen backend");
        let other = state
            .backends
            .iter()
            .find(|(at, backend)| *at != index && backend.family == 4)
            .map(|(at, _)| *at)
            .expect("another IPv4 backend");
        for (_, slots) in &mut state.rings {
            for slot in slots.iter_mut().filter(|slot| **slot == index) {
                *slot = other;
            }
        }
        for (_, backend) in state.backends.iter_mut().filter(|(at, _)| *at == index) {
            backend.generation += 1;
        }
        state.install_kernel(&maps).expect("install the change");
        let moved = backend_on(&mut program, second, &flow(FLAG_ACK));
        assert_ne!(moved, chosen, "{kind}: the replaced backend is not used");
        let expected = state
            .backends
            .iter()
            .find(|(at, _)| *at == other)
            .map(|(_, backend)| backend.address)
            .expect("other");
        assert_eq!(ipv4_mapped(moved), expected);
        assert_eq!(backend_on(&mut program, first, &flow(FLAG_ACK)), moved);
    }
}

#[test]
fn the_reference_balancers_table_is_found_from_every_cpu() {
    xdpath_lab::needs_root!();
    let (first, second) = two_cpus();
    let mut program = reference::load_configured(1 << 17).expect("load the reference");
    assert_eq!(
        table_flags(&program, abi::map::REFLB_LRU) & BPF_F_NO_COMMON_LRU,
        BPF_F_NO_COMMON_LRU
    );
    let chosen = backend_on(&mut program, first, &flow(FLAG_SYN));
    assert_eq!(reference::misses(&program).expect("stats"), 1);
    assert_eq!(backend_on(&mut program, second, &flow(FLAG_ACK)), chosen);
    assert_eq!(
        reference::misses(&program).expect("stats"),
        1,
        "a hit from the other CPU"
    );
}

/// Runs `work` on a thread inside the network namespace `name` (the
/// thread's own: `setns` on a thread changes only that thread's).
fn in_namespace<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> T {
    let path = format!("{}/{name}", xdpath_lab::testenv::NETNS_DIR);
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let file = std::fs::File::open(&path).expect("the namespace's file");
                // SAFETY: a namespace file descriptor and its type.
                let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(entered, 0, "setns {path}");
                work()
            })
            .join()
            .expect("the thread in the namespace")
    })
}

#[test]
fn lb_config_recreates_the_pinned_tables_of_the_kind_asked_for() {
    xdpath_lab::needs_root!();
    let bed = common::bed();
    let namespace = bed.a().namespace.clone();
    let pinned = || {
        in_namespace(&namespace, || {
            xdpath::dataplane::pinned_connection_table().expect("read the pin")
        })
    };
    common::xdpath_ok(&bed, &["lb", "config", "--source-v4", "172.16.0.0/16"]);
    let interface = bed.a().interface.clone();
    common::xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    assert_eq!(pinned(), Some(ConnectionTable::Shared), "the default");
    let program_id = |bed: &xdpath_lab::testenv::TestBed| {
        let status = common::json(&common::xdpath_ok(bed, &["--json", "status"]));
        let attached = status.as_array().and_then(|list| list.first()).cloned();
        attached.expect("one interface")["program_id"].clone()
    };
    let before = program_id(&bed);
    let shown = common::json(&common::xdpath_ok(
        &bed,
        &["--json", "lb", "config", "--connection-table", "per-cpu"],
    ));
    assert_eq!(shown["connection_table"], "per-cpu", "{shown}");
    assert_eq!(pinned(), Some(ConnectionTable::PerCpu));
    let after = program_id(&bed);
    assert_ne!(
        before, after,
        "the program was reloaded over the new tables"
    );
    // A state asking for the other kind (a change whose reload failed part
    // way) is reported as a difference from the kernel, never shown as done.
    let complaint = in_namespace(&namespace, || {
        let mut state = xdpath::lb::session::LbSession::read()
            .expect("the state")
            .state
            .clone();
        state.settings.connection_table = ConnectionTable::Shared;
        xdpath::lb::session::LbSession::differences_from_kernel(&state).expect("compare")
    });
    assert!(
        complaint
            .iter()
            .any(|line| line.contains("the kernel's are per-cpu, the state asks for shared")),
        "{complaint:?}"
    );
    // The same setting again changes nothing.
    common::xdpath_ok(&bed, &["lb", "config", "--connection-table", "per-cpu"]);
    assert_eq!(program_id(&bed), after);
    common::xdpath_ok(&bed, &["lb", "config", "--connection-table", "shared"]);
    assert_eq!(pinned(), Some(ConnectionTable::Shared));
    common::xdpath_ok(&bed, &["detach", &interface]);
}
