//! Uploads through the balancer larger than its path MTU (lb F15): every
//! link of the bed has an MTU of 1500, so a client's full-size segment,
//! grown by the encapsulation (IPIP 20 bytes, GUE over IPv6 48), no longer
//! fits the balancer's device. The balancer must answer it with ICMP
//! "fragmentation needed" / ICMPv6 "packet too big", so that the client's
//! kernel lowers its segment size and the upload arrives whole; before,
//! the grown frames were dropped by the device while counted as
//! forwarded, and the upload stalled.
//!
//! The backend is a Python server counting what it receives (on the VIP,
//! behind `xdpath decap`); the client a Python sender. Needs root and
//! python3.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath_lab::testenv::lb::{LbBed, Role, GUE_PORT, INTERFACE, VIP4, VIP6};

use common::{xdpath_ok_in, XDPATH};

/// The upload: 400 kB, hundreds of full-size segments.
const UPLOAD_BYTES: usize = 400_000;
/// The port of the counting server.
const PORT: u16 = 7000;

/// Counts what each connection sends and answers with the count.
const PY_COUNTER: &str = r#"
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
server = socket.socket(family, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(4)
while True:
    connection, _ = server.accept()
    connection.settimeout(20)
    total = 0
    try:
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        connection.sendall(str(total).encode())
    except OSError:
        pass
    connection.close()
"#;

/// Sends `argv[3]` bytes and prints the server's count ("timeout" if the
/// upload stalls).
const PY_UPLOAD: &str = r#"
import socket, sys
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.settimeout(15)
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
    s.sendall(b"x" * int(sys.argv[3]))
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        chunk = s.recv(100)
        if not chunk:
            break
        answer += chunk
    print(answer.decode())
except socket.timeout:
    print("timeout")
"#;

/// The counting server in a backend, killed when dropped.
struct Counter(Vec<Child>);

impl Drop for Counter {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_counter(bed: &LbBed, role: Role) -> Counter {
    let children = [VIP4.to_string(), VIP6.to_string()]
        .into_iter()
        .map(|address| {
            bed.command(role, "python3")
                .args(["-c", PY_COUNTER, &address, &PORT.to_string()])
                .stdout(Stdio::null())
                .spawn()
                .expect("python3")
        })
        .collect();
    Counter(children)
}

/// Uploads from the client to `vip`; the server's count (or "timeout").
fn upload(bed: &LbBed, vip: &str) -> String {
    let output = bed
        .exec(
            Role::Client,
            "python3",
            [
                "-c",
                PY_UPLOAD,
                vip,
                &PORT.to_string(),
                &UPLOAD_BYTES.to_string(),
            ],
        )
        .expect("python3");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The balancer's count of `reason` with `action` on its interface.
fn counted(bed: &LbBed, action: &str, reason: &str) -> u64 {
    let output = bed
        .exec(Role::Lb1, XDPATH, ["--json", "stats", INTERFACE])
        .expect("xdpath stats");
    let stats: Value = serde_json::from_slice(&output.stdout).expect("stats JSON");
    xdpath::stats::packets_in_json(&stats, action, Some(reason))
}

/// Waits until a short upload to `vip` is counted (the server listens).
fn wait_for_server(bed: &LbBed, vip: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let output = bed
            .exec(
                Role::Client,
                "python3",
                ["-c", PY_UPLOAD, vip, &PORT.to_string(), "10"],
            )
            .expect("python3");
        if String::from_utf8_lossy(&output.stdout).trim() == "10" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the counting server on {vip} never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn uploads_larger_than_the_path_mtu_arrive_whole() {
    xdpath_lab::needs_root!();
    let bed = LbBed::new().expect("bed");
    let gue = GUE_PORT.to_string();
    xdpath_ok_in(&bed, Role::B1, &["decap", INTERFACE, "--gue-port", &gue]);
    let _counter = start_counter(&bed, Role::B1);
    xdpath_ok_in(&bed, Role::Lb1, &["attach", INTERFACE]);
    xdpath_ok_in(
        &bed,
        Role::Lb1,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--source-v6",
            "fd00:172::/64",
        ],
    );
    let backend = bed.host(Role::B1);
    let vip4 = format!("{VIP4}:{PORT}/tcp");
    let vip6 = format!("[{VIP6}]:{PORT}/tcp");
    xdpath_ok_in(&bed, Role::Lb1, &["lb", "vip", "add", &vip4]);
    xdpath_ok_in(
        &bed,
        Role::Lb1,
        &[
            "lb",
            "vip",
            "add",
            &vip6,
            "--encap",
            "gue",
            "--gue-port",
            &gue,
        ],
    );
    let (v4, v6) = (backend.ipv4.to_string(), backend.ipv6.to_string());
    xdpath_ok_in(&bed, Role::Lb1, &["lb", "backend", "add", &vip4, &v4]);
    xdpath_ok_in(&bed, Role::Lb1, &["lb", "backend", "add", &vip6, &v6]);
    bed.route_via(Role::Lb1).expect("route via lb1");

    // First the device's MTU bounds (1500), then a lower `--mtu`: each
    // time the client's segments are answered until they fit.
    for mtu in ["0", "1400"] {
        xdpath_ok_in(&bed, Role::Lb1, &["lb", "config", "--mtu", mtu]);
        let settings: Value =
            serde_json::from_str(&xdpath_ok_in(&bed, Role::Lb1, &["--json", "lb", "config"]))
                .expect("lb config JSON");
        assert_eq!(settings["mtu"].to_string(), mtu, "{settings}");
        let shown = xdpath_ok_in(&bed, Role::Lb1, &["lb", "config"]);
        let expected = if mtu == "0" { "device" } else { mtu };
        assert!(
            shown
                .lines()
                .any(|line| line.split_whitespace().eq(["mtu", expected])),
            "{shown}"
        );
        for vip in [VIP4.to_string(), VIP6.to_string()] {
            wait_for_server(&bed, &vip);
            let answered = counted(&bed, "tx", "lb-too-big");
            assert_eq!(
                upload(&bed, &vip),
                UPLOAD_BYTES.to_string(),
                "the upload to {vip} arrives whole (--mtu {mtu})"
            );
            assert!(
                counted(&bed, "tx", "lb-too-big") > answered,
                "the upload to {vip} was answered with ICMP too-big at least once (--mtu {mtu})"
            );
        }
    }
    assert_eq!(
        counted(&bed, "drop", "lb-too-big"),
        0,
        "nothing dropped for size"
    );
}
