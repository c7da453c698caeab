//! The exporters against the real collectors (needs root): known flows
//! from namespace B through xdpath on A's veth, IPFIX to nfcapd (read back
//! with nfdump) and pmacct's nfacctd, sFlow to pmacct's sfacctd, all in B;
//! what each collector reports is compared with what was sent, flow by
//! flow, at 1 in 1 (exactly) and at 1 in `RATE` (within a stated bound),
//! with the sampling rate each collector shows.

#[path = "collectors_e2e/collectors.rs"]
mod collectors;
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use collectors::{FlowKey, Reported, Scratch};
use common::{bed, json, xdpath_ok, XDPATH};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

/// The sampled runs' rate.
const RATE: u64 = 10;
/// Frames of each flow: exact runs, sampled runs.
const EXACT_FRAMES: u64 = 300;
const SAMPLED_FRAMES: u64 = 4000;

/// A flow hping3 sends from B to A.
struct Flow {
    source_port: u16,
    destination_port: u16,
    protocol: u8,
    /// hping3's mode options.
    mode: &'static [&'static str],
    /// IP length of each packet (hping3 sends no payload).
    ip_len: u64,
    /// The TCP flags of every packet.
    tcp_flags: u8,
}

const FLOWS: [Flow; 3] = [
    Flow {
        source_port: 5555,
        destination_port: 9999,
        protocol: 17,
        mode: &["--udp"],
        ip_len: 28,
        tcp_flags: 0,
    },
    Flow {
        source_port: 5556,
        destination_port: 9998,
        protocol: 17,
        mode: &["--udp"],
        ip_len: 28,
        tcp_flags: 0,
    },
    Flow {
        source_port: 6000,
        destination_port: 7000,
        protocol: 6,
        mode: &["-S", "-A", "-P"],
        ip_len: 40,
        tcp_flags: 0x1a,
    },
];

impl Flow {
    fn key(&self) -> FlowKey {
        (self.source_port, self.destination_port, self.protocol)
    }
}

/// Sends `frames` of every flow at once, `gap_us` apart within a flow;
/// returns how many hping3 says it sent of each.
fn send_flows(bed: &TestBed, frames: u64, gap_us: u64) -> Vec<u64> {
    let target = bed.a().ipv4.to_string();
    // Resolve A's address first: frames queued behind ARP may be lost,
    // and every frame sent must be counted.
    let _ = bed.exec(Side::B, "ping", ["-c", "1", "-W", "1", &target]);
    let senders: Vec<Child> = FLOWS
        .iter()
        .map(|flow| {
            bed.command(Side::B, "hping3")
                .args(flow.mode)
                .args(["-q", "-c", &frames.to_string(), "-i", &format!("u{gap_us}")])
                .args(["-s", &flow.source_port.to_string(), "-k"])
                .args(["-p", &flow.destination_port.to_string(), &target])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start hping3")
        })
        .collect();
    // hping3 exits non-zero when nothing answers: its own count of what
    // it sent is what counts.
    senders
        .into_iter()
        .map(|sender| {
            let output = sender.wait_with_output().expect("wait for hping3");
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            transmitted(&text).unwrap_or_else(|| panic!("hping3 said: {text}"))
        })
        .collect()
}

/// The count in hping3's "N packets transmitted" summary.
fn transmitted(text: &str) -> Option<u64> {
    let at = text.find(" packets transmitted")?;
    text[..at]
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `xdpath export` in A, killed on drop; [`Exporter::stop`] ends it with
/// SIGINT (it sends what it holds) and returns its `--json` counts.
struct Exporter(Option<Child>);

impl Exporter {
    fn start(
        bed: &TestBed,
        protocol: &str,
        rate: u64,
        collectors: &[u16],
        options: &[&str],
    ) -> Self {
        let mut command = bed.command(Side::A, XDPATH);
        command.args(["--json", "export", protocol, "--rate", &rate.to_string()]);
        for port in collectors {
            command.args(["--collector", &format!("{}:{port}", bed.b().ipv4)]);
        }
        let mut child = command
            .args(options)
            .arg(&bed.a().interface)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xdpath export");
        let stderr = child.stderr.take().expect("stderr");
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let exporter = Self(Some(child));
        assert!(line.contains("exporting"), "xdpath export: {line}");
        exporter
    }

    fn stop(mut self) -> Value {
        let child = self.0.take().expect("running");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let output = child.wait_with_output().expect("wait for xdpath");
        assert!(output.status.success(), "{output:?}");
        json(&String::from_utf8_lossy(&output.stdout))
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The largest gap allowed between a sampled estimate of `frames` and
/// `frames`, in frames: 5 standard deviations of `RATE` times a binomial
/// count of `frames / RATE` (a false failure about once in 1.7 million
/// flows).
fn sampled_bound(frames: u64) -> f64 {
    let p = 1.0 / RATE as f64;
    5.0 * (frames as f64 * p * (1.0 - p)).sqrt() * RATE as f64
}

/// Checks `reported` (already scaled by the collector or by its shown
/// rate) against what was sent of every flow; each packet counts its IP
/// length and `overhead` bytes.
fn check_flows(
    collector: &str,
    (rate, sent, overhead): (u64, &[u64], u64),
    reported: &BTreeMap<FlowKey, Reported>,
    scale: impl Fn(&Reported) -> (u64, u64),
) {
    for (flow, &frames) in FLOWS.iter().zip(sent) {
        let Some(seen) = reported.get(&flow.key()) else {
            panic!(
                "{collector} at 1 in {rate}: no flow {:?} in {reported:?}",
                flow.key()
            );
        };
        let (packets, bytes) = scale(seen);
        if rate == 1 {
            assert_eq!(packets, frames, "{collector}: packets of {:?}", flow.key());
        } else {
            let gap = (packets as f64 - frames as f64).abs();
            assert!(
                gap <= sampled_bound(frames),
                "{collector} at 1 in {rate}: {packets} packets of {:?}, sent {frames} (bound {})",
                flow.key(),
                sampled_bound(frames)
            );
        }
        // Every packet of a flow has the same length.
        assert_eq!(
            bytes,
            packets * (flow.ip_len + overhead),
            "{collector}: bytes of {:?}",
            flow.key()
        );
        assert_eq!(
            seen.tcp_flags,
            flow.tcp_flags,
            "{collector}: TCP flags of {:?}",
            flow.key()
        );
    }
}

fn attached_bed() -> TestBed {
    let bed = bed();
    xdpath_ok(&bed, &["attach", &bed.a().interface]);
    bed
}

fn ipfix_run(bed: &TestBed, rate: u64) {
    let (frames, gap) = if rate == 1 {
        (EXACT_FRAMES, 1000)
    } else {
        (SAMPLED_FRAMES, 250)
    };
    let nfcapd_dir = Scratch::new(&format!("nfcapd-{rate}"));
    let pmacct_dir = Scratch::new(&format!("nfacctd-{rate}"));
    let nfcapd = collectors::nfcapd(bed, 4739, &nfcapd_dir.0);
    let nfacctd = collectors::pmacct(bed, "nfacctd", 4740, &pmacct_dir.0);
    let exporter = Exporter::start(bed, "ipfix", rate, &[4739, 4740], &["--idle-timeout", "1"]);
    let sent = send_flows(bed, frames, gap);
    eprintln!("sent: {sent:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let stats = exporter.stop();
    // pmacct's print plugin writes every second.
    std::thread::sleep(Duration::from_millis(2500));
    nfcapd.stop();
    nfacctd.stop();
    eprintln!("1 in {rate}: {stats}");
    if rate == 1 {
        assert_eq!(stats["ring_lost"], 0, "{stats}");
    }
    let nfdump = collectors::nfdump_flows(&nfcapd_dir.0);
    let pmacct = collectors::pmacct_flows(&pmacct_dir.0);
    eprintln!("nfdump: {nfdump:?}\npmacct: {pmacct:?}");
    // nfdump scales by the announced interval itself.
    check_flows("nfdump", (rate, &sent, 0), &nfdump, |seen| {
        (seen.packets, seen.bytes)
    });
    // pmacct shows the counts as exported and the rate to scale them by.
    check_flows("pmacct", (rate, &sent, 0), &pmacct, |seen| {
        assert_eq!(seen.sampling_rate, rate, "pmacct's SAMPLING_RATE");
        (seen.packets * rate, seen.bytes * rate)
    });
    for flow in &FLOWS {
        // Both read the same records: no collector scaled twice.
        let (ours, theirs) = (&nfdump[&flow.key()], &pmacct[&flow.key()]);
        assert_eq!(ours.packets, theirs.packets * rate, "{:?}", flow.key());
    }
    let exporters = collectors::nfdump_exporters(&nfcapd_dir.0);
    eprintln!("nfdump -E:\n{exporters}");
    if rate > 1 {
        assert!(
            exporters.contains(&format!("{rate}")),
            "nfdump -E shows no sampler: {exporters}"
        );
    }
}

#[test]
fn ipfix_flows_in_nfdump_and_pmacct_match_what_was_sent() {
    xdpath_lab::needs_root!();
    let bed = attached_bed();
    for rate in [1, RATE] {
        ipfix_run(&bed, rate);
    }
}

fn sflow_run(bed: &TestBed, rate: u64) {
    let (frames, gap) = if rate == 1 {
        (EXACT_FRAMES, 1000)
    } else {
        (SAMPLED_FRAMES, 250)
    };
    let dir = Scratch::new(&format!("sfacctd-{rate}"));
    let sfacctd = collectors::pmacct(bed, "sfacctd", 6343, &dir.0);
    let agent = bed.a().ipv4.to_string();
    let exporter = Exporter::start(
        bed,
        "sflow",
        rate,
        &[6343],
        &["--agent", &agent, "--counter-interval", "1"],
    );
    let sent = send_flows(bed, frames, gap);
    eprintln!("sent: {sent:?}");
    std::thread::sleep(Duration::from_millis(1500));
    let stats = exporter.stop();
    std::thread::sleep(Duration::from_millis(2500));
    sfacctd.stop();
    eprintln!("1 in {rate}: {stats}");
    if rate == 1 {
        assert_eq!(stats["ring_lost"], 0, "{stats}");
    }
    let datagrams = stats["sflow"]["datagrams"].as_u64().unwrap_or(0);
    let samples = stats["sflow"]["samples"].as_u64().unwrap_or(0);
    // Samples share datagrams: far fewer datagrams than samples.
    assert!(
        samples >= 3 * datagrams,
        "{samples} samples in {datagrams} datagrams"
    );
    let flows = collectors::pmacct_flows(&dir.0);
    eprintln!("sfacctd: {flows:?}");
    // pmacct counts sFlow's frame length: Ethernet header, IP packet and
    // the 4 bytes of FCS the spec counts.
    check_flows("sfacctd", (rate, &sent, 14 + 4), &flows, |seen| {
        assert_eq!(seen.sampling_rate, rate, "sfacctd's SAMPLING_RATE");
        (seen.packets * rate, seen.bytes * rate)
    });
    let counters = collectors::sflow_counters(&dir.0);
    eprintln!("counters: {counters:?}");
    let Some(last) = counters
        .iter()
        .rev()
        .find(|record| record["sf_cnt_type"] == "sflow_cnt_generic")
    else {
        panic!("no generic counter sample in sfacctd's log: {counters:?}");
    };
    // State and speed as A's namespace sees them (the exporter runs under
    // `nsenter --net`, where /sys/class/net is the host's): admin and oper
    // up, a veth's 10 Gb/s.
    assert_eq!(last["ifStatus"], 3, "{last}");
    assert_eq!(last["ifSpeed"], 10_000_000_000u64, "{last}");
    // Output counters xdpath cannot see: the spec's "unknown", all ones
    // (pmacct prints the 64-bit one signed).
    assert!(
        last["ifOutOctets"] == -1 || last["ifOutOctets"] == u64::MAX,
        "{last}"
    );
    assert_eq!(last["ifOutUcastPkts"], u64::from(u32::MAX), "{last}");
    let seen = last["ifInUcastPkts"].as_u64().unwrap_or(0);
    assert!(
        seen >= sent.iter().sum::<u64>() % (1 << 32),
        "ifInUcastPkts {seen}"
    );
}

#[test]
fn sflow_flows_and_counters_in_sfacctd_match_what_was_sent() {
    xdpath_lab::needs_root!();
    let bed = attached_bed();
    for rate in [1, RATE] {
        sflow_run(&bed, rate);
    }
}
