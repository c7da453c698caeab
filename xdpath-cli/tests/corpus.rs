//! Every packet of the repository's two corpora, tcpdump's test captures
//! (`testdata/tcpdump`, 8,236 frames, many malformed on purpose) and the
//! real-world captures of suricata-verify, zeek and PcapPlusPlus
//! (`testdata/realworld`, 17,925 frames), through the kernel
//! (`BPF_PROG_TEST_RUN`) and the native build, under both malformed-frame
//! policies: the same verdict for every packet, the same counters for every
//! file (so the same reasons), never `XDP_ABORTED`, never a panic.
//!
//! Needs root and a kernel with BPF (it loads the XDP program).
//!
//! Two things keep the kernel from seeing a frame as the native build does,
//! and both are handled explicitly and counted:
//!
//! - `BPF_PROG_TEST_RUN` refuses frames shorter than an Ethernet header
//!   (`EINVAL`); those run natively only, and must be `TruncatedEthernet`.
//! - Frames longer than one page's worth of linear data are handed to the
//!   program as a multi-buffer `xdp_buff`: the program (not frags-aware)
//!   sees only the linear part. Those are compared with a native run over
//!   the same linear part; frames too large for a test run at all (`ENOMEM`)
//!   run natively only.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::pcap_files;
use xdpath::dataplane::LoadedProgram;
use xdpath::pcap::{PcapError, PcapReader, Record};
use xdpath_core::stats::counter_index;
use xdpath_core::{
    pipeline, Action, InterfaceConfig, MalformedPolicy, NativeTables, Reason, SlicePacket,
    REASON_SLOTS,
};

const CORPORA: [&str; 2] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tcpdump"),
    concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/realworld"),
];

/// `ETH_HLEN`: the shortest frame `BPF_PROG_TEST_RUN` takes.
const ETH_HLEN: usize = 14;

/// A capture as read: its records, and the error that stopped the reader,
/// if any.
struct Capture {
    path: PathBuf,
    records: Vec<Record>,
    error: Option<PcapError>,
}

fn read_capture(path: &Path) -> Capture {
    let mut capture = Capture {
        path: path.into(),
        records: Vec::new(),
        error: None,
    };
    match PcapReader::open(path) {
        Err(error) => capture.error = Some(error),
        Ok(reader) => {
            for record in reader {
                match record {
                    Ok(record) => capture.records.push(record),
                    Err(error) => capture.error = Some(error),
                }
            }
        }
    }
    capture
}

/// A rejection is fine when the file really is not something we read.
fn is_format_problem(error: &PcapError) -> bool {
    !matches!(error, PcapError::Io { .. })
}

fn slot_name(index: usize) -> String {
    let action = Action::from_u32(index as u32 / REASON_SLOTS).map_or("?", Action::name);
    let reason = Reason::from_u8((index as u32 % REASON_SLOTS) as u8).map_or("?", Reason::name);
    format!("{action}/{reason}")
}

/// What one policy's run over the corpus found.
#[derive(Default)]
struct Tally {
    packets: u64,
    kernel_runs: u64,
    /// Shorter than ETH_HLEN: native only.
    short: u64,
    /// Longer than the linear part the kernel hands the program.
    linearized: u64,
    /// Of those, the ones whose native reason over the whole frame differs
    /// from the reason over the linear part (what the program sees).
    linearized_differs: u64,
    /// Refused by BPF_PROG_TEST_RUN for their size: native only.
    too_large: Vec<String>,
    reasons: BTreeMap<(Action, Reason), u64>,
    failures: Vec<String>,
}

/// How many bytes of a long frame the program sees in a test run: probed
/// with a frame well beyond one page.
fn probe_linear_limit(program: &mut LoadedProgram) -> usize {
    let mut frame = vec![0u8; 8192];
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental EtherType
    let before = program.counters().expect("counters");
    let code = program
        .test_run(&frame)
        .expect("test run of an 8 KiB frame");
    assert_eq!(code, Action::Pass as u32);
    let after = program.counters().expect("counters");
    let slot = counter_index(Action::Pass, Reason::NonIp) as usize;
    let seen = (after[slot].bytes - before[slot].bytes) as usize;
    assert!((ETH_HLEN..=8192).contains(&seen), "probe saw {seen} bytes");
    seen
}

fn run_policy(policy: MalformedPolicy, captures: &[Capture]) -> Tally {
    let config = InterfaceConfig::new(policy);
    let mut program =
        LoadedProgram::load(config).expect("load the XDP program (needs root and BPF)");
    let linear_limit = probe_linear_limit(&mut program);
    let mut tally = Tally::default();
    for capture in captures {
        let name = capture
            .path
            .file_name()
            .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
        let mut native = NativeTables::new(config);
        let before = program.counters().expect("counters");
        for record in &capture.records {
            tally.packets += 1;
            let frame = record.data.as_slice();
            let full = pipeline::process(&SlicePacket::new(frame), &mut NativeTables::new(config));
            *tally.reasons.entry((full.action, full.reason)).or_default() += 1;
            if frame.len() < ETH_HLEN {
                tally.short += 1;
                if full.reason != Reason::TruncatedEthernet {
                    tally.failures.push(format!(
                        "{name} #{}: short frame gave {full:?}",
                        record.number
                    ));
                }
                continue;
            }
            let seen = &frame[..frame.len().min(linear_limit)];
            let code = match program.test_run(frame) {
                Ok(code) => code,
                Err(error) if frame.len() > linear_limit => {
                    tally.too_large.push(format!(
                        "{name} #{} ({} bytes): {error}",
                        record.number,
                        frame.len()
                    ));
                    continue;
                }
                Err(error) => panic!("{name} #{}: test_run: {error}", record.number),
            };
            tally.kernel_runs += 1;
            let expected = pipeline::process(&SlicePacket::new(seen), &mut native);
            if seen.len() < frame.len() {
                tally.linearized += 1;
                if expected != full {
                    tally.linearized_differs += 1;
                }
            }
            if code == Action::Aborted as u32 || Action::from_u32(code) != Some(expected.action) {
                tally.failures.push(format!(
                    "{name} #{}: kernel returned {code}, native {:?}/{:?}",
                    record.number, expected.action, expected.reason
                ));
            }
        }
        let after = program.counters().expect("counters");
        let kernel = xdpath::stats::difference(&before, &after);
        if kernel != native.counters() {
            let differences: Vec<String> = kernel
                .iter()
                .zip(native.counters())
                .enumerate()
                .filter(|(_, (kernel, native))| kernel != native)
                .map(|(slot, (kernel, native))| {
                    format!("{}: kernel {kernel:?} native {native:?}", slot_name(slot))
                })
                .collect();
            tally.failures.push(format!(
                "{name}: counters differ: {}",
                differences.join("; ")
            ));
            tally.failures.extend(pinpoint(
                &mut program,
                config,
                &name,
                &capture.records,
                linear_limit,
            ));
        }
    }
    tally
}

/// Reruns a file packet by packet, reading the counters around each test
/// run, to name the packets whose kernel reason differs.
fn pinpoint(
    program: &mut LoadedProgram,
    config: InterfaceConfig,
    name: &str,
    records: &[Record],
    linear_limit: usize,
) -> Vec<String> {
    let mut found = Vec::new();
    for record in records
        .iter()
        .filter(|record| record.data.len() >= ETH_HLEN)
    {
        let before = program.counters().expect("counters");
        if program.test_run(&record.data).is_err() {
            continue;
        }
        let after = program.counters().expect("counters");
        let seen = &record.data[..record.data.len().min(linear_limit)];
        let native = pipeline::process(&SlicePacket::new(seen), &mut NativeTables::new(config));
        let expected = counter_index(native.action, native.reason) as usize;
        let changed: Vec<usize> = (0..after.len())
            .filter(|slot| after[*slot] != before[*slot])
            .collect();
        if changed != [expected] {
            found.push(format!(
                "{name} #{}: kernel counted {:?}, native {}",
                record.number,
                changed
                    .iter()
                    .map(|slot| slot_name(*slot))
                    .collect::<Vec<_>>(),
                slot_name(expected)
            ));
        }
    }
    found
}

#[test]
fn corpus_kernel_and_native_agree() {
    xdpath_lab::needs_root!();
    let started = Instant::now();
    let mut files = Vec::new();
    for (dir, at_least) in CORPORA.into_iter().zip([447, 678]) {
        let found = pcap_files(dir);
        assert!(
            found.len() >= at_least,
            "expected {at_least} captures at {dir}, found {}",
            found.len()
        );
        files.extend(found);
    }
    let captures: Vec<Capture> = files.iter().map(|path| read_capture(path)).collect();

    let rejected: Vec<&Capture> = captures
        .iter()
        .filter(|capture| capture.error.is_some())
        .collect();
    for capture in &rejected {
        let error = capture.error.as_ref().expect("rejected");
        eprintln!(
            "rejected {} after {} records: {error}",
            capture
                .path
                .file_name()
                .expect("file name")
                .to_string_lossy(),
            capture.records.len()
        );
        assert!(
            is_format_problem(error),
            "{}: {error:?}",
            capture.path.display()
        );
    }
    assert!(
        rejected.len() * 50 <= captures.len(),
        "{} of {} files rejected",
        rejected.len(),
        captures.len()
    );
    let truncated: usize = captures
        .iter()
        .map(|capture| {
            capture
                .records
                .iter()
                .filter(|record| record.is_truncated())
                .count()
        })
        .sum();

    let (pass, drop) = std::thread::scope(|scope| {
        let pass = scope.spawn(|| run_policy(MalformedPolicy::Pass, &captures));
        let drop = scope.spawn(|| run_policy(MalformedPolicy::Drop, &captures));
        (
            pass.join().expect("pass run"),
            drop.join().expect("drop run"),
        )
    });

    for (policy, tally) in [("pass", &pass), ("drop", &drop)] {
        eprintln!(
            "malformed={policy}: {} files, {} packets ({truncated} truncated records), {} test runs, \
             {} frames under {ETH_HLEN} bytes (native only), {} frames longer than the linear part \
             ({} of them classified differently whole), {} too large to test-run",
            captures.len(),
            tally.packets,
            tally.kernel_runs,
            tally.short,
            tally.linearized,
            tally.linearized_differs,
            tally.too_large.len()
        );
    }
    for frame in &pass.too_large {
        eprintln!("  not test-run: {frame}");
    }
    for ((action, reason), packets) in &drop.reasons {
        eprintln!("  {:<5} {:<26} {packets}", action.name(), reason.name());
    }
    let failures: Vec<&String> = pass.failures.iter().chain(&drop.failures).collect();
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(pass.packets, drop.packets);
    assert!(pass.packets > 8000);
    // Under the Pass policy nothing is dropped; under Drop, exactly the
    // malformed frames.
    assert!(pass
        .reasons
        .keys()
        .all(|(action, _)| *action == Action::Pass));
    assert!(drop
        .reasons
        .keys()
        .all(|(action, reason)| (*action == Action::Drop) == reason.is_malformed()));
    eprintln!("corpus run took {:.1} s", started.elapsed().as_secs_f64());
}
