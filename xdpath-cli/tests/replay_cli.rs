//! `xdpath replay` as a user runs it: the built binary on corpus captures
//! and on captures made here, good and bad.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use xdpath::pcap::pcapng::PcapngWriter;
use xdpath::pcap::{PcapReader, Precision, Record, Timestamp};
use xdpath::stats;
use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::{pipeline, Action, InterfaceConfig, MalformedPolicy, NativeTables, SlicePacket};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tcpdump");
const XDPATH: &str = env!("CARGO_BIN_EXE_xdpath");

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("xdpath-replay-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read temp dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn xdpath(args: &[&str]) -> Output {
    Command::new(XDPATH)
        .args(args)
        .output()
        .expect("run xdpath")
}

fn corpus(name: &str) -> PathBuf {
    Path::new(CORPUS).join(name)
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

fn policy_name(policy: MalformedPolicy) -> &'static str {
    match policy {
        MalformedPolicy::Pass => "pass",
        MalformedPolicy::Drop => "drop",
    }
}

/// A direct native run: the records and the tables they leave.
fn native_run(path: &Path, policy: MalformedPolicy) -> (Vec<Record>, Vec<Action>, NativeTables) {
    let records: Vec<Record> = PcapReader::open(path)
        .expect("open")
        .collect::<Result<_, _>>()
        .expect("a valid capture");
    let mut tables = NativeTables::new(InterfaceConfig::new(policy));
    let actions = records
        .iter()
        .map(|record| pipeline::process(&SlicePacket::new(&record.data), &mut tables).action)
        .collect();
    (records, actions, tables)
}

fn replay_json(
    path: &Path,
    policy: MalformedPolicy,
    write_pass: Option<&Path>,
) -> serde_json::Value {
    let mut args = vec![
        "--json",
        "replay",
        text(path),
        "--malformed",
        policy_name(policy),
    ];
    if let Some(output) = write_pass {
        args.extend(["--write-pass", text(output)]);
    }
    let output = xdpath(&args);
    assert!(
        output.status.success(),
        "xdpath {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

fn check_report_matches_native(path: &Path, policy: MalformedPolicy) {
    let report = replay_json(path, policy, None);
    let (records, _, tables) = native_run(path, policy);
    let counters = tables.counters();
    let bytes: usize = records.iter().map(|record| record.data.len()).sum();
    let truncated = records
        .iter()
        .filter(|record| record.is_truncated())
        .count();
    assert_eq!(report["file"], text(path));
    assert_eq!(
        report["packets"],
        records.len() as u64,
        "{}",
        path.display()
    );
    assert_eq!(report["bytes"], bytes as u64);
    assert_eq!(report["truncated_records"], truncated as u64);
    assert_eq!(report["passed"], stats::total(counters, Action::Pass));
    assert_eq!(report["dropped"], stats::total(counters, Action::Drop));
    assert_eq!(
        report["counters"],
        serde_json::to_value(stats::rows(counters)).expect("rows")
    );
    assert_eq!(report["malformed"], policy_name(policy));
    assert!(report["written"].is_null());
    assert!(report["elapsed_seconds"].as_f64().expect("elapsed") >= 0.0);
    assert!(report["packets_per_second"].as_f64().expect("rate") >= 0.0);
}

#[test]
fn json_report_matches_a_direct_native_run() {
    // UDP fragments (whose first fragments' UDP length covers the whole
    // datagram: not malformed); records cut to the snapshot length, with
    // malformed frames; a big-endian file.
    for name in ["afs.pcap", "pim-packet-assortment.pcap", "isup.pcap"] {
        for policy in [MalformedPolicy::Pass, MalformedPolicy::Drop] {
            check_report_matches_native(&corpus(name), policy);
        }
    }
    let report = replay_json(&corpus("afs.pcap"), MalformedPolicy::Drop, None);
    assert_eq!(
        report["dropped"].as_u64(),
        Some(0),
        "afs.pcap's first UDP fragments are well-formed"
    );
    let report = replay_json(
        &corpus("pim-packet-assortment.pcap"),
        MalformedPolicy::Drop,
        None,
    );
    assert!(
        report["dropped"].as_u64().expect("dropped") > 0,
        "pim-packet-assortment.pcap has malformed frames"
    );
}

#[test]
fn text_report_has_the_counter_table() {
    let output = xdpath(&["replay", text(&corpus("afs.pcap"))]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("601 packets"), "{stdout}");
    assert!(
        stdout.contains("VERDICT") && stdout.contains("ipv4-udp"),
        "{stdout}"
    );
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A nanosecond, big-endian capture of well-formed and malformed frames.
fn crafted_capture() -> (Vec<u8>, Vec<(Timestamp, Vec<u8>)>) {
    let v4 = Network::V4([10, 0, 0, 1], [10, 0, 0, 2]);
    let v6 = Network::V6(doc_v6(1), doc_v6(2));
    let tcp = FrameSpec::new(
        v4,
        Transport::Tcp {
            source_port: 1,
            destination_port: 80,
            flags: 2,
        },
    )
    .build();
    let udp6 = FrameSpec::new(
        v6,
        Transport::Udp {
            source_port: 5,
            destination_port: 53,
        },
    )
    .with_payload(b"q")
    .build();
    let mut bad_version = tcp.clone();
    bad_version[14] = 0x55;
    let frames = vec![
        tcp.clone(),
        vec![0u8; 10], // truncated Ethernet
        udp6,
        bad_version,
        FrameSpec::new(v4, Transport::EchoRequest)
            .with_vlans(&[42])
            .build(),
        tcp[..40].to_vec(), // IPv4 length beyond the frame
    ];
    let mut file = Vec::new();
    file.extend_from_slice(&0xa1b2_3c4du32.to_be_bytes());
    file.extend_from_slice(&2u16.to_be_bytes());
    file.extend_from_slice(&4u16.to_be_bytes());
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&65535u32.to_be_bytes());
    file.extend_from_slice(&1u32.to_be_bytes());
    let mut records = Vec::new();
    for (index, frame) in frames.into_iter().enumerate() {
        let timestamp = Timestamp {
            seconds: 1_700_000_000 + index as u32,
            fraction: 123_456_789,
            precision: Precision::Nanosecond,
        };
        for field in [
            timestamp.seconds,
            timestamp.fraction,
            frame.len() as u32,
            frame.len() as u32 + 4,
        ] {
            file.extend_from_slice(&field.to_be_bytes());
        }
        file.extend_from_slice(&frame);
        records.push((timestamp, frame));
    }
    (file, records)
}

#[test]
fn write_pass_writes_the_passed_frames() {
    let dir = TempDir::new("write-pass");
    let (bytes, frames) = crafted_capture();
    let input = dir.path("mixed.pcap");
    std::fs::write(&input, bytes).expect("write input");

    for policy in [MalformedPolicy::Pass, MalformedPolicy::Drop] {
        let output = dir.path(&format!("passed-{}.pcap", policy_name(policy)));
        let report = replay_json(&input, policy, Some(&output));
        let (records, actions, _) = native_run(&input, policy);
        assert_eq!(records.len(), frames.len());
        let expected: Vec<&Record> = records
            .iter()
            .zip(&actions)
            .filter(|(_, action)| **action == Action::Pass)
            .map(|(record, _)| record)
            .collect();
        assert_eq!(report["passed"], expected.len() as u64);
        assert_eq!(report["written"]["packets"], expected.len() as u64);
        assert_eq!(report["written"]["path"], text(&output));
        assert_eq!(report["written"]["precision"], "nanosecond");
        assert_eq!(report["truncated_records"], frames.len() as u64);

        let reader = PcapReader::open(&output).expect("a valid pcap");
        assert_eq!(reader.precision(), Precision::Nanosecond);
        let written: Vec<Record> = reader.collect::<Result<_, _>>().expect("valid records");
        assert_eq!(written.len(), expected.len());
        for (written, original) in written.iter().zip(expected) {
            assert_eq!(written.data, original.data);
            assert_eq!(written.timestamp, original.timestamp);
            assert_eq!(written.original_len, original.original_len);
        }
    }
    // Under Pass everything is written, under Drop the three well-formed frames.
    let count = |name: &str| PcapReader::open(&dir.path(name)).expect("open").count();
    assert_eq!(count("passed-pass.pcap"), 6);
    assert_eq!(count("passed-drop.pcap"), 3);
    assert_eq!(
        dir.entries(),
        ["mixed.pcap", "passed-drop.pcap", "passed-pass.pcap"]
    );

    // Replaying what was written passes all of it, in either policy.
    let again = replay_json(&dir.path("passed-drop.pcap"), MalformedPolicy::Drop, None);
    assert_eq!(
        (again["packets"].as_u64(), again["dropped"].as_u64()),
        (Some(3), Some(0))
    );
}

/// Runs `replay --write-pass` on a bad input and checks the failure.
fn check_rejected(dir: &TempDir, input: &Path, expected: &[&str]) {
    let before = dir.entries();
    let output_path = dir.path("out.pcap");
    for json in [false, true] {
        let mut args = vec!["replay", text(input), "--write-pass", text(&output_path)];
        if json {
            args.insert(0, "--json");
        }
        let output = xdpath(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_ne!(output.status.code(), Some(0));
        assert_eq!(stderr.lines().count(), 1, "{args:?}: stderr {stderr:?}");
        assert!(stderr.starts_with("xdpath: error: "), "{stderr:?}");
        for part in expected {
            assert!(stderr.contains(part), "{stderr:?} lacks {part:?}");
        }
        assert!(
            !output_path.exists(),
            "{args:?} left {}",
            output_path.display()
        );
        assert_eq!(dir.entries(), before, "{args:?} left files behind");
        if json {
            let value: serde_json::Value =
                serde_json::from_slice(&output.stdout).expect("JSON error on stdout");
            assert!(value["error"]
                .as_str()
                .is_some_and(|message| message.contains(expected[0])));
        } else {
            assert!(output.stdout.is_empty());
        }
    }
}

#[test]
fn bad_inputs_fail_cleanly() {
    let dir = TempDir::new("bad");
    let (capture, _) = crafted_capture();

    let not_pcap = dir.path("notes.txt");
    std::fs::write(&not_pcap, "these are not packets\n").expect("write");
    check_rejected(
        &dir,
        &not_pcap,
        &["notes.txt", "not a pcap or pcapng file (magic 0x74686573)"],
    );

    let pcapng = dir.path("capture.pcapng");
    std::fs::write(
        &pcapng,
        [
            0x0a, 0x0d, 0x0d, 0x0a, 0x1c, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a,
        ],
    )
    .expect("write");
    check_rejected(
        &dir,
        &pcapng,
        &[
            "capture.pcapng",
            "pcapng section header block at byte offset 0 is cut off",
        ],
    );

    let empty = dir.path("empty.pcap");
    std::fs::write(&empty, []).expect("write");
    check_rejected(&dir, &empty, &["empty.pcap", "empty file"]);

    let short_header = dir.path("short.pcap");
    std::fs::write(&short_header, &capture[..20]).expect("write");
    check_rejected(
        &dir,
        &short_header,
        &["short.pcap", "20 bytes", "pcap header"],
    );

    // Cut inside the third record's data: two records are fine first.
    let truncated = dir.path("truncated.pcap");
    let third = 24 + (16 + 54) + (16 + 10);
    std::fs::write(&truncated, &capture[..third + 16 + 5]).expect("write");
    check_rejected(
        &dir,
        &truncated,
        &[
            "truncated.pcap",
            &format!("record 3 at byte offset {third}"),
            "cut off",
        ],
    );

    // Cut inside a record header.
    let cut_header = dir.path("cut-header.pcap");
    std::fs::write(&cut_header, &capture[..third + 3]).expect("write");
    check_rejected(&dir, &cut_header, &["record 3", "cut off"]);

    // Cut inside a pcapng block after a good section header.
    let mut cut_block = pcapng_capture();
    cut_block.truncate(cut_block.len() - 6);
    let cut_ng = dir.path("cut.pcapng");
    std::fs::write(&cut_ng, &cut_block).expect("write");
    check_rejected(
        &dir,
        &cut_ng,
        &[
            "cut.pcapng",
            "pcapng enhanced packet block at byte offset",
            "cut off",
        ],
    );

    let mut huge = capture.clone();
    huge[24 + 8..24 + 12].copy_from_slice(&0x4000_0000u32.to_be_bytes());
    let corrupt = dir.path("corrupt.pcap");
    std::fs::write(&corrupt, &huge).expect("write");
    check_rejected(&dir, &corrupt, &["corrupt.pcap", "record 1", "1073741824"]);

    let missing = dir.path("missing.pcap");
    check_rejected(&dir, &missing, &["missing.pcap", "No such file"]);

    let directory = dir.path("a-directory");
    std::fs::create_dir(&directory).expect("mkdir");
    check_rejected(&dir, &directory, &["a-directory"]);
}

/// A pcapng capture of one Ethernet frame, by xdpath's own writer.
fn pcapng_capture() -> Vec<u8> {
    let mut writer = PcapngWriter::new(Vec::new()).expect("a writer");
    let interface = writer.add_interface("eth0", 0).expect("an interface");
    let frame = FrameSpec::new(
        Network::V4([10, 0, 0, 1], [10, 0, 0, 2]),
        Transport::EchoRequest,
    )
    .build();
    writer
        .write_packet(interface, 1_000_000_000, frame.len() as u32, &frame, None)
        .expect("a packet");
    writer.finish().expect("finished")
}

/// A classic capture of a link type replay has no Ethernet form for is
/// no error: its frames are counted as skipped, per reason.
#[test]
fn frames_of_other_link_types_are_reported_not_replayed() {
    let dir = TempDir::new("other-link");
    let (mut capture, frames) = crafted_capture();
    capture[20..24].copy_from_slice(&105u32.to_be_bytes());
    let input = dir.path("wifi.pcap");
    std::fs::write(&input, &capture).expect("write");
    let output = xdpath(&["replay", text(&input)]);
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = format!(
        "  {} frames skipped: link type 105 (IEEE 802.11)\n",
        frames.len()
    );
    assert!(stdout.contains(&line), "{stdout}");
    let output = xdpath(&["--json", "replay", text(&input)]);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["packets"], 0);
    assert_eq!(report["skipped"][0]["frames"], frames.len() as u64);
    assert_eq!(report["skipped"][0]["reason"]["link_type"], 105);
}

#[test]
fn unwritable_output_fails_cleanly() {
    let dir = TempDir::new("unwritable");
    let (capture, _) = crafted_capture();
    let input = dir.path("in.pcap");
    std::fs::write(&input, capture).expect("write");
    let output_path = dir.path("no-such-dir/out.pcap");
    let output = xdpath(&["replay", text(&input), "--write-pass", text(&output_path)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("xdpath: error: cannot write ") && stderr.contains("out.pcap"),
        "{stderr:?}"
    );
    assert_eq!(dir.entries(), ["in.pcap"]);
}

#[test]
fn writing_over_the_input_is_safe() {
    // The output is renamed into place only after the input is read.
    let dir = TempDir::new("in-place");
    let (capture, _) = crafted_capture();
    let input = dir.path("in.pcap");
    std::fs::write(&input, capture).expect("write");
    let report = replay_json(&input, MalformedPolicy::Drop, Some(&input));
    assert_eq!(report["packets"], 6);
    assert_eq!(PcapReader::open(&input).expect("valid").count(), 3);
    assert_eq!(dir.entries(), ["in.pcap"]);
}
