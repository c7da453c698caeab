//! The filter's fixture table: each row is a filter state and a sequence of
//! frames with the verdict and reason each must get. Every row runs through
//! the kernel (`BPF_PROG_TEST_RUN` on a program as freshly loaded: a
//! pooled one with every map put back, see `xdpath_testing::reuse`; its
//! maps then hold the state, installed by the control plane) and through
//! the native build (`NativeTables` with the same state installed the
//! same way); both must match the table, and each other's rule hit
//! counts.
//!
//! Needs root and a kernel with BPF.

#[path = "filter_fixtures/address_limits.rs"]
mod address_limits;
#[path = "filter_fixtures/admit.rs"]
mod admit;
#[path = "filter_fixtures/decapsulated.rs"]
mod decapsulated;
#[path = "filter_fixtures/frames.rs"]
mod frames;
#[path = "filter_fixtures/malformed.rs"]
mod malformed;
#[path = "filter_fixtures/monitored_limits.rs"]
mod monitored_limits;
#[path = "filter_fixtures/non_ip.rs"]
mod non_ip;
#[path = "filter_fixtures/table.rs"]
mod table;
#[path = "filter_fixtures/tunnels.rs"]
mod tunnels;

use aya::maps::{HashMap as BpfHashMap, MapData};
use xdpath::control::apply::{install_fresh, FilterTarget};
use xdpath::control::compile::{limit_places, LimitPlace};
use xdpath::control::kernel::{monotonic_now_ns, KernelMaps};
use xdpath::control::parse::parse_cidr;
use xdpath::control::rulefile::parse_rules;
use xdpath::control::state::{
    BlockSpec, FilterState, FragmentChoice, LimitKey, LimitSpec, RuleAction,
};
use xdpath::control::wall_now;
use xdpath::dataplane::LoadedProgram;
use xdpath_core::abi;
use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::stats::counter_index;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN};
use xdpath_core::{
    pipeline, Action, Counter, FrameBuffer, InterfaceConfig, NativeTables, Reason, SlicePacket,
};
use xdpath_testing::reuse::Reused;

use frames::*;
use table::*;

fn no_interfaces_but_lo(name: &str) -> Option<u32> {
    (name == "lo").then_some(1)
}

fn changed(before: &[Counter], after: &[Counter]) -> Vec<usize> {
    (0..after.len())
        .filter(|&slot| after[slot] != before[slot])
        .collect()
}

#[test]
fn the_table_covers_every_filter_reason() {
    let rows = table();
    for reason in Reason::ALL.iter().filter(|reason| reason.is_filter()) {
        if matches!(reason, Reason::SynCookieSent | Reason::SynCookieInvalid) {
            continue; // SYN-cookie mode has its own tests.
        }
        assert!(
            rows.iter()
                .flat_map(|row| &row.steps)
                .any(|step| step.reason == *reason),
            "no row for {}",
            reason.name()
        );
    }
}

#[test]
fn kernel_and_native_match_the_filter_table() {
    xdpath_lab::needs_root!();
    check_rows(&table());
}

/// VXLAN and Geneve frames, well-formed, malformed and truncated, against
/// rules and limits with and without a VNI: the same verdicts in both
/// builds, as the table says.
#[test]
fn kernel_and_native_match_the_tunnel_table() {
    xdpath_lab::needs_root!();
    check_rows(&tunnels::tunnel_rows());
}

/// Limits of one address each, in the address table, alone, by the
/// dozen beside a general limit, twice for one address, and under admit
/// and allow rules: the same verdicts and drops in both builds.
#[test]
fn kernel_and_native_match_the_address_limit_table() {
    xdpath_lab::needs_root!();
    check_rows(&address_limits::address_rows());
}

/// Monitored limits (general, and of one address) over their rates beside
/// enforcing ones: the enforcing ones still drop, the same in both builds.
#[test]
fn kernel_and_native_match_the_monitored_limit_table() {
    xdpath_lab::needs_root!();
    check_rows(&monitored_limits::monitored_rows());
}

/// Frames that are not IP under rules, blocks and limits of `::`
/// prefixes: untouched in both builds.
#[test]
fn kernel_and_native_leave_frames_that_are_not_ip_alone() {
    xdpath_lab::needs_root!();
    check_rows(&non_ip::non_ip_rows());
}

/// The address rows test the address table: their limits of one address
/// are placed there (but the second of one address), the others not.
#[test]
fn the_address_rows_use_the_address_table() {
    let rows = address_limits::address_rows();
    let placed = |row: &Row| -> Vec<bool> {
        limit_places(&row.state.rate_limits)
            .iter()
            .map(|place| matches!(place, LimitPlace::Address(_)))
            .collect()
    };
    for row in &rows {
        let places = placed(row);
        let general = places.iter().filter(|address| !**address).count();
        let expected = match row.description {
            "forty limits of one address each beside a general limit: a bucket each"
            | "two limits of one address: the second among the general ones"
            | "a monitored general limit over its rate does not switch the address limits off" => 1,
            _ => 0,
        };
        assert_eq!(general, expected, "{}: {places:?}", row.description);
    }
    // The monitored rows: the address row's limits in the table, the
    // others' among the general ones.
    for row in &monitored_limits::monitored_rows() {
        let places = placed(row);
        let in_table = row.description.contains("of one address");
        assert!(
            places.iter().all(|address| *address == in_table),
            "{}: {places:?}",
            row.description
        );
    }
}

/// Frames the parser refuses, with the filter empty, holding something,
/// and on a monitored interface: the same verdicts in both builds.
#[test]
fn kernel_and_native_match_the_malformed_table() {
    xdpath_lab::needs_root!();
    check_rows(&malformed::malformed_rows());
}

/// IPIP and GUE a backend strips, against rules and the blocklist: the
/// inner packet judged, the same verdicts in both builds.
#[test]
fn kernel_and_native_match_the_decapsulated_table() {
    xdpath_lab::needs_root!();
    check_rows(&decapsulated::decapsulated_rows());
}

/// Blocklist entries with a VNI beside the plain blocklist, rules and
/// expiry: the same verdicts in both builds, as the table says.
#[test]
fn kernel_and_native_match_the_tunnel_blocklist_table() {
    xdpath_lab::needs_root!();
    check_rows(&tunnels::tunnel_block_rows(wall_now()));
}

/// Runs `rows` through both builds; fails with every mismatch. The
/// kernel's verifier takes seconds a load (about 4.5 s here), a row a few
/// milliseconds: each row runs on a pooled program whose maps are put
/// back as they were after its load ([`Reused`]), by one thread per core.
fn check_rows(rows: &[Row]) {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|first| {
                scope.spawn(move || {
                    rows.iter()
                        .skip(first)
                        .step_by(threads)
                        .flat_map(|row| check_row(row).0)
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a row's thread"))
            .collect()
    });
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// The maps the rows do not write, nor the data path: the Maglev rings
/// (16 MiB, a third of a second to read back), not put back between rows;
/// `a_row_sees_nothing_of_the_rows_before_it` reads them to prove it.
const SPARED: &[&str] = &[abi::map::MAGLEV_RINGS];

/// What the kernel made of a row: each frame's action code and the
/// counter slots it bumped, then each rule's hits and each limit's drops.
#[derive(Debug, PartialEq)]
struct KernelSaw {
    frames: Vec<(u32, Vec<usize>)>,
    rule_hits: Vec<u64>,
    limit_drops: Vec<u64>,
}

/// Runs one row through a program as freshly loaded and the native build;
/// the mismatches, what the kernel did, and how many map entries were put
/// back before it.
fn check_row(row: &Row) -> (Vec<String>, KernelSaw, usize) {
    let mut failures = Vec::new();
    let mut saw = KernelSaw {
        frames: Vec::new(),
        rule_hits: Vec::new(),
        limit_drops: Vec::new(),
    };
    let mut config = InterfaceConfig::default().with_monitor(row.monitor_interface);
    if row.decap {
        config = config.with_decap(true, decapsulated::GUE_PORT);
    }
    let mut program =
        Reused::take_sparing(config, SPARED).expect("a fresh XDP program (needs root)");
    let restored = program.restored();
    let mut maps = KernelMaps::of_program(&program).expect("filter maps");
    let wall = wall_now();
    install_fresh(&mut maps, &row.state, &no_interfaces_but_lo, wall)
        .expect("install in the kernel");
    let mut native = NativeTables::new(config);
    if row.decap {
        let local = ipv4_mapped(decapsulated::LOCAL4);
        let map = program.ebpf_mut().map_mut(abi::map::LOCAL_ADDRESSES);
        let mut addresses = BpfHashMap::<&mut MapData, [u8; 16], u8>::try_from(
            map.expect(abi::map::LOCAL_ADDRESSES),
        )
        .expect(abi::map::LOCAL_ADDRESSES);
        addresses.insert(local, 1, 0).expect("a local address");
        native.lb.local_addresses.insert(local);
    }
    native.ifindex = 1;
    native.set_now_ns(monotonic_now_ns());
    install_fresh(&mut native, &row.state, &no_interfaces_but_lo, wall).expect("install natively");
    for (index, step) in row.steps.iter().enumerate() {
        let before = program.counters().expect("counters");
        let code = program.test_run(&step.frame).expect("test run");
        let after = program.counters().expect("counters");
        let kernel_slots = changed(&before, &after);
        let native_before = native.counter(step.action, step.reason).bytes;
        let outcome = if row.decap {
            let mut buffer = FrameBuffer::new(&step.frame);
            pipeline::process_frame(&mut buffer, &mut native).outcome
        } else {
            pipeline::process(&SlicePacket::new(&step.frame), &mut native)
        };
        let expected = counter_index(step.action, step.reason) as usize;
        // Each frame is counted with the length it arrived with, in both
        // builds (a decapsulated one too, stripped in between).
        let kernel_bytes = after[expected].bytes - before[expected].bytes;
        let native_bytes = native.counter(step.action, step.reason).bytes - native_before;
        let length = step.frame.len() as u64;
        if (kernel_bytes, native_bytes) != (length, length) {
            failures.push(format!(
                "{} (frame {}): counted {kernel_bytes} bytes in the kernel, {native_bytes} natively, of {length}",
                row.description,
                index + 1,
            ));
        }
        let native_slot = counter_index(outcome.action, outcome.reason) as usize;
        if code != step.action as u32 || kernel_slots != [expected] || native_slot != expected {
            failures.push(format!(
                "{} (frame {}): expected {}/{}, kernel returned {code} counting {kernel_slots:?}, native {}/{} (slot {expected})",
                row.description, index + 1, step.action.name(), step.reason.name(),
                outcome.action.name(), outcome.reason.name(),
            ));
        }
        saw.frames.push((code, kernel_slots));
    }
    for rule in &row.state.rules {
        let kernel = maps.rule_hits(rule.id).expect("rule hits");
        let native_hits = native.rule_hits.get(rule.id);
        if kernel != native_hits {
            failures.push(format!(
                "{}: rule {} hits: kernel {kernel}, native {native_hits}",
                row.description, rule.id
            ));
        }
        saw.rule_hits.push(kernel);
    }
    let places = limit_places(&row.state.rate_limits);
    let table: std::collections::HashMap<_, _> = maps
        .address_limit_entries()
        .expect("the address table")
        .into_iter()
        .collect();
    for (limit, place) in row.state.rate_limits.iter().zip(places) {
        let (kernel, native_drops) = match place {
            LimitPlace::Slot(slot) => (
                maps.limit_drops(slot).expect("limit drops"),
                native.limit_drops[slot as usize],
            ),
            LimitPlace::Address(key) => (
                table.get(&key).map_or(u64::MAX, |entry| entry.drops),
                native
                    .address_limit(&key)
                    .map_or(u64::MAX, |entry| entry.drops),
            ),
        };
        if kernel != native_drops {
            failures.push(format!(
                "{}: limit {} drops: kernel {kernel}, native {native_drops}",
                row.description, limit.id
            ));
        }
        saw.limit_drops.push(kernel);
    }
    (failures, saw, restored)
}

/// The rows share programs, so each must see nothing of the rows before
/// it: run one after another on one thread (so on pooled programs that
/// ran other rows), first in table order, then in reverse order, every
/// row passes and the kernel does the same with each row both times. The
/// puts-back between rows are real work: the rows leave rules, buckets
/// and counters behind. After each pass, every map of a pooled program
/// (the spared ones too) holds what the load left.
#[test]
fn a_row_sees_nothing_of_the_rows_before_it() {
    xdpath_lab::needs_root!();
    let rows = table();
    let mut restored = 0;
    let mut run = |order: Vec<&Row>| -> Vec<KernelSaw> {
        order
            .into_iter()
            .map(|row| {
                let (failures, saw, put_back) = check_row(row);
                assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
                restored += put_back;
                saw
            })
            .collect()
    };
    let untouched = || {
        let mut program =
            Reused::take_sparing(InterfaceConfig::default(), SPARED).expect("a fresh XDP program");
        let differences = program.differences().expect("read every map");
        assert!(differences.is_empty(), "left behind: {differences:?}");
    };
    let forward = run(rows.iter().collect());
    untouched();
    let mut backward = run(rows.iter().rev().collect());
    untouched();
    backward.reverse();
    for ((row, forward), backward) in rows.iter().zip(&forward).zip(&backward) {
        assert_eq!(
            forward, backward,
            "{}: the kernel did otherwise after other rows",
            row.description
        );
    }
    assert!(restored > 0, "no row left anything to put back");
}

#[test]
fn rule_hits_count_the_matching_rule() {
    xdpath_lab::needs_root!();
    let state = rules("192.0.2.0/24\n--src 192.0.2.0/28 --proto tcp --dport 22 --action pass");
    let mut program = LoadedProgram::load(InterfaceConfig::default()).expect("load");
    let mut maps = KernelMaps::of_program(&program).expect("maps");
    install_fresh(&mut maps, &state, &no_interfaces_but_lo, wall_now()).expect("install");
    for _ in 0..3 {
        program.test_run(&tcp(22, SYN)).expect("run");
    }
    program.test_run(&tcp(80, SYN)).expect("run");
    assert_eq!(maps.rule_hits(2).expect("hits"), 3);
    assert_eq!(maps.rule_hits(1).expect("hits"), 1);
}

/// Empties the kernel program's per-source bucket table, as a flood of
/// random sources makes its LRU do; returns how many buckets it held.
fn evict_source_buckets(program: &mut LoadedProgram) -> usize {
    let map = program
        .ebpf_mut()
        .map_mut(abi::map::SRC_BUCKETS)
        .expect(abi::map::SRC_BUCKETS);
    let mut table =
        aya::maps::HashMap::<&mut aya::maps::MapData, [u8; 24], [u8; 24]>::try_from(map)
            .expect("SRC_BUCKETS is a hash map");
    let keys: Vec<[u8; 24]> = table.keys().map(|key| key.expect("key")).collect();
    for key in &keys {
        table.remove(key).expect("remove");
    }
    keys.len()
}

/// A source that spent its burst, whose bucket the table then loses (issue
/// 14, item 13: a flood of random sources churns the kernel's LRU), starts
/// again from its bounds, not from a full bucket: it stays limited, in
/// both builds. A source that spent nothing starts full.
#[test]
fn a_drained_source_whose_bucket_is_evicted_stays_limited() {
    xdpath_lab::needs_root!();
    let state = limit(Some(1), None, 3, LimitKey::Src, false);
    let mut program = LoadedProgram::load(InterfaceConfig::default()).expect("load");
    let mut maps = KernelMaps::of_program(&program).expect("maps");
    install_fresh(&mut maps, &state, &no_interfaces_but_lo, wall_now()).expect("install");
    let mut native = NativeTables::new(InterfaceConfig::default());
    native.set_now_ns(monotonic_now_ns());
    install_fresh(&mut native, &state, &no_interfaces_but_lo, wall_now()).expect("install");
    let run = |program: &mut LoadedProgram,
               native: &mut NativeTables,
               frame: &[u8],
               expected: Action,
               what: &str| {
        let code = program.test_run(frame).expect("test run");
        let outcome = pipeline::process(&SlicePacket::new(frame), native);
        assert_eq!(
            (code, outcome.action),
            (expected as u32, expected),
            "{what}: kernel returned {code}, native {outcome:?}"
        );
    };
    let source = tcp(80, ACK);
    for _ in 0..3 {
        run(
            &mut program,
            &mut native,
            &source,
            Action::Pass,
            "the burst",
        );
    }
    run(
        &mut program,
        &mut native,
        &source,
        Action::Drop,
        "over the burst",
    );
    assert_eq!(
        evict_source_buckets(&mut program),
        1,
        "the kernel held the bucket"
    );
    native.clear_buckets();
    run(
        &mut program,
        &mut native,
        &source,
        Action::Drop,
        "after the eviction",
    );
    let other = tcp_frame(OTHER4, B4, 80, ACK);
    for _ in 0..3 {
        run(
            &mut program,
            &mut native,
            &other,
            Action::Pass,
            "another source's burst",
        );
    }
    assert_eq!(
        (maps.limit_drops(0).expect("drops"), native.limit_drops[0]),
        (2, 2)
    );
}
