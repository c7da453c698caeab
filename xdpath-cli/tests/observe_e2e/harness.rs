//! The harness of the observation tests: a bed with xdpath attached, UDP
//! traffic from B, a collector and tshark captures in B, xdpath in the
//! background, and the exporters' datagrams decoded.

use super::*;

/// The flow xdpath passes, and how many frames of it are sent.
pub(crate) const PASSED_PORT: u16 = 9999;
pub(crate) const PASSED_FRAMES: u64 = 20;
/// The flow a deny rule drops.
pub(crate) const DENIED_PORT: u16 = 9998;
pub(crate) const DENIED_FRAMES: u64 = 10;
/// hping3's UDP frames: Ethernet, IPv4, UDP, no data.
pub(crate) const UDP_FRAME_LEN: u64 = 14 + 20 + 8;

pub(crate) fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xdpath-observe-{}-{name}", std::process::id()))
}

/// A bed with xdpath on A and a rule dropping UDP to `DENIED_PORT`;
/// returns the rule id.
pub(crate) fn attached_bed() -> (TestBed, u64) {
    let bed = bed();
    xdpath_ok(&bed, &["attach", &bed.a().interface]);
    let port = DENIED_PORT.to_string();
    let added = json(&xdpath_ok(
        &bed,
        &[
            "--json",
            "filter",
            "add",
            "--src",
            "0.0.0.0/0",
            "--proto",
            "udp",
            "--dport",
            &port,
            "--action",
            "drop",
        ],
    ));
    let id = added["id"].as_u64().expect("rule id");
    (bed, id)
}

/// Sends `count` UDP frames from B (source port `source_port`) to A's
/// `port`, 2 ms apart.
pub(crate) fn send_udp(bed: &TestBed, source_port: u16, port: u16, count: u64) {
    let target = bed.a().ipv4.to_string();
    // hping3 exits non-zero when nothing answers; what counts is what
    // xdpath saw, checked by the callers.
    bed.exec(
        Side::B,
        "hping3",
        [
            "--udp",
            "-q",
            "-c",
            &count.to_string(),
            "-i",
            "u2000",
            "-s",
            &source_port.to_string(),
            "-k",
            "-p",
            &port.to_string(),
            &target,
        ],
    )
    .expect("run hping3");
}

/// A collector in B: a socket bound to `port` (so B answers no datagram
/// with "port unreachable") and tshark capturing its traffic into `path`.
pub(crate) struct Collector {
    pub(crate) sink: Child,
    pub(crate) tshark: Child,
}

impl Collector {
    pub(crate) fn stop(mut self) {
        std::thread::sleep(Duration::from_millis(300));
        interrupt(&mut self.tshark);
        let _ = self.sink.kill();
        let _ = self.sink.wait();
    }
}

pub(crate) fn collector(bed: &TestBed, port: u16, path: &Path) -> Collector {
    let sink = bed
        .command(Side::B, "python3")
        .args([
            "-c",
            &format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
                 s.bind(('0.0.0.0', {port}))\nwhile True: s.recv(65535)"
            ),
        ])
        .spawn()
        .expect("start the collector socket");
    let tshark = tshark_capture(bed, &format!("udp port {port}"), path);
    Collector { sink, tshark }
}

/// tshark capturing `filter` on B's interface into `path`.
pub(crate) fn tshark_capture(bed: &TestBed, filter: &str, path: &Path) -> Child {
    let command = bed.command(Side::B, "tshark");
    common::tshark::live_capture(command, &bed.b().interface, filter, path)
}

pub(crate) fn interrupt(child: &mut Child) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert!(status.success() || status.code().is_none(), "{status}");
}

/// `xdpath ARGS` in A in the background; returns once it printed `ready`
/// on stderr.
pub(crate) fn background_xdpath(bed: &TestBed, args: &[&str], ready: &str) -> Child {
    let mut child = bed
        .command(Side::A, XDPATH)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xdpath");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    match lines.next() {
        Some(Ok(line)) if line.contains(ready) => {}
        Some(Ok(line)) => panic!("xdpath {args:?}: {line}"),
        _ => panic!("xdpath {args:?} ended before it was ready"),
    }
    child
}

pub(crate) fn finished(child: Child) -> String {
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).expect("UTF-8")
}

pub(crate) fn ifindex(bed: &TestBed) -> String {
    // sysfs shows the host's interfaces: ask `ip` inside the namespace.
    let output = bed
        .exec_ok(
            Side::A,
            "ip",
            ["-j", "link", "show", "dev", &bed.a().interface],
        )
        .expect("ip link");
    let links = json(&String::from_utf8_lossy(&output.stdout));
    links[0]["ifindex"].as_u64().expect("ifindex").to_string()
}

/// The flow samples of sFlow datagrams whose sampled header is UDP from
/// B to A's `port`.
pub(crate) fn flow_samples_to<'a>(
    packets: &'a [Value],
    bed: &TestBed,
    port: u16,
) -> Vec<&'a Value> {
    packets
        .iter()
        .flat_map(|packet| objects_with(packet, "sflow.flow_sample.sampling_rate"))
        .filter(|flow| {
            strings(flow, "udp.dstport") == [port.to_string()]
                && strings(flow, "ip.src") == [bed.b().ipv4.to_string()]
        })
        .collect()
}

/// Runs `xdpath export PROTOCOL` (1 in 1, plus `options`) on A towards a
/// collector in B while the passed and denied flows are sent; returns the
/// exporter's counts and what tshark decoded at the collector, checked to
/// be clean and to hold every datagram the exporter counted.
pub(crate) fn export_to_collector(
    bed: &TestBed,
    protocol: &str,
    options: &[&str],
) -> (Value, Vec<Value>) {
    let (port, decode_as, sent) = match protocol {
        "sflow" => (6343, "udp.port==6343,sflow", "/sflow/datagrams"),
        _ => (4739, "udp.port==4739,cflow", "/ipfix/messages"),
    };
    let pcap = scratch(&format!("{protocol}.pcap"));
    let collector = collector(bed, port, &pcap);
    let address = format!("{}:{port}", bed.b().ipv4);
    let mut args = vec![
        "--json",
        "export",
        protocol,
        "--collector",
        &address,
        "--rate",
        "1",
    ];
    args.extend_from_slice(options);
    args.push(&bed.a().interface);
    let exporter = background_xdpath(bed, &args, "exporting");
    send_udp(bed, 5555, PASSED_PORT, PASSED_FRAMES);
    send_udp(bed, 5556, DENIED_PORT, DENIED_FRAMES);
    let stats = json(&finished(exporter));
    collector.stop();
    let packets = tshark(&pcap, decode_as);
    assert!(
        !packets.is_empty(),
        "no {protocol} datagram reached the collector"
    );
    assert_clean(&packets);
    assert_eq!(
        Some(packets.len() as u64),
        stats.pointer(sent).and_then(Value::as_u64),
        "{stats}"
    );
    (stats, packets)
}
