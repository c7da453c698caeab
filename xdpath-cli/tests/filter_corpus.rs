//! Kernel/native parity of the filter on tcpdump's test captures: every
//! packet through `BPF_PROG_TEST_RUN` and through the native build, both
//! with the same non-trivial filter state (source and destination rules,
//! port and TCP-flag rules, the TCP-flag, amplification and fragment
//! guards, a blocklist, rate limits whose bursts no capture exhausts):
//! the same verdict for every packet, the same counters, rule hits and
//! limit drops overall.
//!
//! Needs root and a kernel with BPF.

mod common;

use common::pcap_files;
use xdpath::control::apply::{install_fresh, FilterTarget};
use xdpath::control::kernel::{monotonic_now_ns, KernelMaps};
use xdpath::control::parse::parse_cidr;
use xdpath::control::rulefile::parse_rules;
use xdpath::control::state::{BlockSpec, FilterState, FragmentChoice, LimitKey, LimitSpec};
use xdpath::control::wall_now;
use xdpath::dataplane::LoadedProgram;
use xdpath::pcap::PcapReader;
use xdpath_core::{pipeline, Action, InterfaceConfig, NativeTables, SlicePacket};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tcpdump");
const ETH_HLEN: usize = 14;
/// Frames up to this length reach the program whole in a test run (one
/// page of linear data minus headroom and tailroom is well above it).
const LINEAR: usize = 3000;

const RULES: &str = "\
--src 10.0.0.0/8 --proto tcp --dport 0-1023 --action drop
--src 10.1.0.0/16 --action pass
--src 192.168.0.0/16 --proto udp --action drop
--src 192.168.1.0/24 --proto udp --dport 53 --action pass
--dst 224.0.0.0/4 --action drop
--src fe80::/10 --proto icmpv6 --action pass
--src 2001:db8::/32 --action drop
--src 0.0.0.0/0 --dst 172.16.0.0/12 --proto tcp --dport 80 --tcp-flags syn,!ack --action drop
--dst ff02::/16 --proto udp --action drop --monitor
";

fn limit(id: u32, per: LimitKey, syn_only: bool) -> LimitSpec {
    LimitSpec {
        id,
        packets_per_second: Some(1_000),
        burst_packets: 1_000_000_000,
        bytes_per_second: Some(1_000_000),
        burst_bytes: 1_000_000_000,
        per,
        aggregate_v4: 24,
        aggregate_v6: 64,
        scope: None,
        protocol: None,
        syn_only,
        monitor: false,
        vip: None,
        to: None,
        owner: None,
        vni: None,
        labels: Default::default(),
        table: Default::default(),
    }
}

fn state() -> FilterState {
    let mut rules = parse_rules(RULES).expect("valid rules");
    for (index, rule) in rules.iter_mut().enumerate() {
        rule.id = index as u32 + 1;
    }
    let mut state = FilterState {
        rules,
        ..FilterState::default()
    };
    state.guards.tcp_flags = true;
    state.guards.amplification.enabled = true;
    state.guards.amplification.expect = vec![parse_cidr("192.168.1.0/24").expect("valid")];
    state.guards.fragments_v4 = FragmentChoice::DropLater;
    state.guards.fragments_v6 = FragmentChoice::DropAll;
    state.blocklist = vec![
        BlockSpec {
            prefix: parse_cidr("172.16.0.0/12").expect("valid"),
            expires_at: None,
            vni: None,
        },
        BlockSpec {
            prefix: parse_cidr("8.8.8.0/24").expect("valid"),
            expires_at: Some(wall_now() + 86_400),
            vni: None,
        },
        BlockSpec {
            prefix: parse_cidr("2001:4860::/32").expect("valid"),
            expires_at: None,
            vni: None,
        },
    ];
    state.rate_limits = vec![
        limit(1, LimitKey::Src, false),
        limit(2, LimitKey::Dst, true),
    ];
    state
}

fn no_interfaces(_: &str) -> Option<u32> {
    None
}

#[test]
fn corpus_kernel_and_native_agree_under_a_rule_set() {
    xdpath_lab::needs_root!();
    let state = state();
    let config = InterfaceConfig::default();
    let mut program = LoadedProgram::load(config).expect("load the XDP program (needs root)");
    let mut maps = KernelMaps::of_program(&program).expect("filter maps");
    let wall = wall_now();
    install_fresh(&mut maps, &state, &no_interfaces, wall).expect("install in the kernel");
    let mut native = NativeTables::new(config);
    native.ifindex = 1;
    native.set_now_ns(monotonic_now_ns());
    install_fresh(&mut native, &state, &no_interfaces, wall).expect("install natively");
    let before = program.counters().expect("counters");
    let (mut runs, mut filtered) = (0u64, 0u64);
    let mut failures = Vec::new();
    for path in pcap_files(CORPUS) {
        let Ok(reader) = PcapReader::open(&path) else {
            continue;
        };
        for record in reader {
            let Ok(record) = record else { break };
            let frame = record.data.as_slice();
            if frame.len() < ETH_HLEN || frame.len() > LINEAR {
                continue;
            }
            let code = program.test_run(frame).expect("test run");
            let outcome = pipeline::process(&SlicePacket::new(frame), &mut native);
            runs += 1;
            if outcome.reason.is_filter() {
                filtered += 1;
            }
            if Action::from_u32(code) != Some(outcome.action) {
                failures.push(format!(
                    "{} #{}: kernel {code}, native {}/{}",
                    path.display(),
                    record.number,
                    outcome.action.name(),
                    outcome.reason.name()
                ));
            }
        }
    }
    let after = program.counters().expect("counters");
    let kernel = xdpath::stats::difference(&before, &after);
    if kernel != native.counters() {
        failures.push("the counters differ".into());
    }
    for rule in &state.rules {
        let kernel = maps.rule_hits(rule.id).expect("hits");
        let native_hits = native.rule_hits.get(rule.id);
        if kernel != native_hits {
            failures.push(format!(
                "rule {}: kernel {kernel} hits, native {native_hits}",
                rule.id
            ));
        }
    }
    for index in 0..state.rate_limits.len() as u32 {
        let (kernel, native_drops) = (
            maps.limit_drops(index).expect("drops"),
            native.limit_drops[index as usize],
        );
        if kernel != native_drops {
            failures.push(format!(
                "limit {index}: kernel {kernel} drops, native {native_drops}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(runs > 1_000, "only {runs} packets ran");
    assert!(filtered > 0, "the rule set filtered nothing");
    eprintln!("{runs} packets, {filtered} with a filter reason");
}
