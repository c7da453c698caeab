//! `xdpath replay` on the formats real tools write: corpus captures
//! converted to pcapng by editcap and tshark; `xdpath capture -w` output
//! (pcapng) replayed with new rules; and captures made here, in the bed's
//! namespace B, by `tcpdump -i any` (Linux cooked, SLL and SLL2), dumpcap
//! (pcapng) and tcpdump on the veth (the Ethernet reference), which must
//! give every frame, compared by its IP-level bytes, the same verdict.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{bed, json, xdpath_ok, XDPATH};
use serde_json::Value;
use xdpath::pcap::{PcapReader, Record};
use xdpath_lab::testenv::{Side, TestBed};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "xdpath-replay-formats-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A rule file (the `filter load` format) of `lines`.
    fn rules(&self, name: &str, lines: &[&str]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, lines.join("\n") + "\n").expect("write rules");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// `xdpath --json replay FILE --rules RULES [--write-pass PASSED]`: its
/// report.
fn replay(file: &Path, rules: &Path, passed: Option<&Path>) -> Value {
    let mut args = vec!["--json", "replay", text(file), "--rules", text(rules)];
    if let Some(passed) = passed {
        args.extend(["--write-pass", text(passed)]);
    }
    let output = Command::new(XDPATH)
        .args(&args)
        .output()
        .expect("run xdpath");
    assert!(output.status.success(), "{args:?}: {output:?}");
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

/// Runs a tool to its end, successfully.
fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("run {program} (scripts/setup.sh installs it): {error}"));
    assert!(output.status.success(), "{program} {args:?}: {output:?}");
}

fn records(path: &Path) -> Vec<Record> {
    PcapReader::open(path)
        .expect("opens")
        .collect::<Result<_, _>>()
        .expect("reads")
}

/// The report's parts that say what the pipeline did.
fn verdicts(report: &Value) -> Value {
    serde_json::json!({
        "packets": report["packets"],
        "bytes": report["bytes"],
        "passed": report["passed"],
        "dropped": report["dropped"],
        "counters": report["counters"],
        "rule_hits": report["rule_hits"],
    })
}

#[test]
fn corpus_captures_converted_to_pcapng_replay_like_the_originals() {
    let dir = TempDir::new("convert");
    let rules = dir.rules(
        "rules.txt",
        &[
            "--src 0.0.0.0/0 --proto tcp --dport 80 --action drop",
            "--src ::/0 --proto udp --action drop",
        ],
    );
    let captures = [
        "realworld/ppp__ExamplesTest__pcap_examples__many-protocols.pcap",
        "realworld/ppp__Packet_Test__PacketExamples__ArpRequestWithVlan.pcap",
        "realworld/ppp__ExamplesTest__pcap_examples__ipv6-frag.pcap",
        "realworld/ppp__ExamplesTest__pcap_examples__http-packets.pcap",
    ];
    for capture in captures {
        let original = Path::new(TESTDATA).join(capture);
        let by_editcap = dir.path("editcap.pcapng");
        let by_tshark = dir.path("tshark.pcapng");
        run(
            "editcap",
            &["-F", "pcapng", text(&original), text(&by_editcap)],
        );
        run(
            "tshark",
            &[
                "-n",
                "-r",
                text(&original),
                "-F",
                "pcapng",
                "-w",
                text(&by_tshark),
            ],
        );
        let expected = replay(&original, &rules, None);
        assert!(expected["packets"].as_u64() > Some(0), "{capture}");
        assert_eq!(expected["format"], "pcap");
        let frames = records(&original);
        for converted in [&by_editcap, &by_tshark] {
            let report = replay(converted, &rules, None);
            assert_eq!(report["format"], "pcapng", "{capture}");
            assert_eq!(report["skipped"], serde_json::json!([]), "{capture}");
            assert_eq!(verdicts(&report), verdicts(&expected), "{capture}");
            let again = records(converted);
            assert_eq!(again.len(), frames.len());
            for (before, after) in frames.iter().zip(&again) {
                assert_eq!(before.data, after.data, "{capture} frame {}", before.number);
                assert_eq!(before.original_len, after.original_len);
                assert_eq!(
                    before.timestamp.in_precision(after.timestamp.precision),
                    after.timestamp
                );
            }
        }
    }
}

/// A capture tool in namespace B, in the background once it said `ready`
/// on stderr.
fn start(bed: &TestBed, side: Side, program: &str, args: &[&str], ready: &str) -> Child {
    let mut child = bed
        .command(side, program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("start {program}: {error}"));
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains(ready) => break,
            Some(Ok(_)) => continue,
            _ => panic!("{program} {args:?} ended before it was ready"),
        }
    }
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

/// SIGINT to each (a capture tool then writes out what it has), then
/// their ends.
fn stop<const N: usize>(children: [Child; N]) {
    for child in &children {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    }
    for mut child in children {
        let status = child.wait().expect("wait");
        assert!(status.success() || status.code().is_none(), "{status}");
    }
}

/// hping3 from B: `count` UDP frames to A's `port`, 2 ms apart.
fn send_udp(bed: &TestBed, port: u16, count: u32) {
    let target = bed.a().ipv4.to_string();
    let (count, port) = (count.to_string(), port.to_string());
    // hping3 exits non-zero when nothing answers; the captures count.
    bed.exec(
        Side::B,
        "hping3",
        [
            "--udp", "-q", "-c", &count, "-i", "u2000", "-p", &port, &target,
        ],
    )
    .expect("run hping3");
}

#[test]
fn capture_w_output_replays_with_new_rules() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let a = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &a]);
    let deny = "--src 0.0.0.0/0 --proto udp --dport 9998 --action drop";
    let added = json(&xdpath_ok(
        &bed,
        &[
            &["--json", "filter", "add"][..],
            &deny.split(' ').collect::<Vec<_>>(),
        ]
        .concat(),
    ));
    assert!(added["id"].as_u64().is_some(), "{added}");
    let dir = TempDir::new("capture");
    let file = dir.path("drops.pcapng");
    let capture = start(
        &bed,
        Side::A,
        XDPATH,
        &[
            "--json",
            "capture",
            "--iface",
            &a,
            "--verdict",
            "drop",
            "-w",
            text(&file),
        ],
        "capturing",
    );
    send_udp(&bed, 9998, 10);
    send_udp(&bed, 9999, 20);
    let deadline = Instant::now() + Duration::from_secs(5);
    while records_or_none(&file) < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop([capture]);
    assert_eq!(records(&file).len(), 10, "the 10 frames dropped, captured");

    // The same rule: every captured frame dropped again, by it.
    let same = replay(&file, &dir.rules("same.txt", &[deny]), None);
    assert_eq!(same["format"], "pcapng");
    assert_eq!(
        (&same["packets"], &same["dropped"]),
        (&10.into(), &10.into())
    );
    assert_eq!(
        same["rule_hits"],
        serde_json::json!([{"id": 1, "hits": 10}])
    );
    // New rules that spare that port: what would they have done?
    let new = dir.rules(
        "new.txt",
        &["--src 0.0.0.0/0 --proto udp --dport 7777 --action drop"],
    );
    let passed = dir.path("passed.pcap");
    let report = replay(&file, &new, Some(&passed));
    assert_eq!(
        (&report["passed"], &report["dropped"]),
        (&10.into(), &0.into())
    );
    // Written as nanosecond pcap, frame for frame.
    assert_eq!(records(&passed), records(&file));
}

/// How many records `path` holds so far (0 while it cannot be read).
fn records_or_none(path: &Path) -> usize {
    PcapReader::open(path).map_or(0, |reader| reader.filter_map(Result::ok).count())
}

/// The IP-level bytes of an Ethernet frame: past its header and VLAN
/// tags, up to the IP packet's own length (no Ethernet padding).
fn ip_content(frame: &[u8]) -> Vec<u8> {
    let mut at = 12;
    while matches!(frame.get(at..at + 2), Some([0x81, 0x00] | [0x88, 0xa8])) {
        at += 4;
    }
    let payload = frame.get(at + 2..).unwrap_or_default();
    let length = match payload.first().map(|byte| byte >> 4) {
        Some(4) if payload.len() >= 4 => usize::from(u16::from_be_bytes([payload[2], payload[3]])),
        Some(6) if payload.len() >= 6 => {
            40 + usize::from(u16::from_be_bytes([payload[4], payload[5]]))
        }
        _ => payload.len(),
    };
    payload[..length.min(payload.len())].to_vec()
}

/// Each IP-level content and how often it occurs.
fn contents(records: &[Record]) -> BTreeMap<Vec<u8>, usize> {
    let mut counts = BTreeMap::new();
    for record in records {
        *counts.entry(ip_content(&record.data)).or_default() += 1;
    }
    counts
}

#[test]
fn cooked_and_dumpcap_captures_replay_like_ethernet() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let dir = TempDir::new("cooked");
    let b = bed.b().interface.clone();
    // Echo requests and replies of ICMPv6, not neighbour discovery, which
    // comes when it likes (and could fall between two tools' ends).
    let filter = "udp or icmp or (icmp6 and (ip6[40] == 128 or ip6[40] == 129))";
    let (ethernet, sll, sll2, ng) = (
        dir.path("veth.pcap"),
        dir.path("any.pcap"),
        dir.path("any-sll2.pcap"),
        dir.path("dumpcap.pcapng"),
    );
    let tcpdump = |interface: &str, extra: &[&str], file: &Path| {
        let args = [
            &["-Z", "root", "-n", "-i", interface][..],
            extra,
            &["-w", text(file), filter],
        ]
        .concat();
        start(&bed, Side::B, "tcpdump", &args, "listening on")
    };
    let tools = [
        tcpdump(&b, &[], &ethernet),
        // tcpdump 4.99 writes LINUX_SLL2 for "any" unless told otherwise.
        tcpdump("any", &["-y", "LINUX_SLL"], &sll),
        tcpdump("any", &["-y", "LINUX_SLL2"], &sll2),
        start(
            &bed,
            Side::B,
            "dumpcap",
            &["-q", "-i", &b, "-i", "lo", "-f", filter, "-w", text(&ng)],
            "Capturing on",
        ),
    ];
    // "listening on" can come a moment before the filter is in place.
    std::thread::sleep(Duration::from_millis(500));
    send_udp(&bed, 9998, 10);
    send_udp(&bed, 9999, 10);
    for target in [bed.a().ipv4.to_string(), bed.a().ipv6.to_string()] {
        bed.exec_ok(Side::B, "ping", ["-c", "3", "-i", "0.05", &target])
            .expect("ping");
    }
    std::thread::sleep(Duration::from_millis(500));
    stop(tools);

    let rules = dir.rules(
        "rules.txt",
        &["--src 0.0.0.0/0 --proto udp --dport 9998 --action drop"],
    );
    let reference_report = replay(&ethernet, &rules, Some(&dir.path("veth-passed.pcap")));
    let reference = contents(&records(&ethernet));
    let reference_passed = contents(&records(&dir.path("veth-passed.pcap")));
    // 10 + 10 UDP, 3 + 3 pings each way, and what port-unreachable
    // answers A's rate limit lets out.
    assert!(
        reference_report["packets"].as_u64() >= Some(32),
        "{reference_report}"
    );
    assert!(
        reference_report["dropped"].as_u64() >= Some(10),
        "{reference_report}"
    );
    for (file, link_type) in [(&sll, 113), (&sll2, 276)] {
        let reader = PcapReader::open(file).expect("opens");
        assert_eq!(
            reader.header().map(|header| header.link_type),
            Some(link_type)
        );
    }
    for (file, format) in [(&sll, "pcap"), (&sll2, "pcap"), (&ng, "pcapng")] {
        let passed = dir.path("passed.pcap");
        let _ = std::fs::remove_file(&passed);
        let report = replay(file, &rules, Some(&passed));
        let name = file.display();
        assert_eq!(report["format"], format, "{name}");
        assert_eq!(report["skipped"], serde_json::json!([]), "{name}");
        for field in ["packets", "passed", "dropped", "rule_hits"] {
            assert_eq!(report[field], reference_report[field], "{name}: {field}");
        }
        assert_eq!(contents(&records(file)), reference, "{name}: frames");
        assert_eq!(
            contents(&records(&passed)),
            reference_passed,
            "{name}: passed frames"
        );
    }
}
