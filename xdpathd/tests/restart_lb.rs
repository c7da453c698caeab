//! `kill -9` of xdpathd on a load balancer under traffic: HTTP requests
//! from the client go through the balancer to three nginx backends, each
//! on a new connection, while hping3 floods the balancer from a blocked
//! prefix. The daemon is killed, stays down, and starts again on the same
//! socket (its stale file replaced): no request fails, the flood is dropped at XDP all along (also
//! while no daemon runs), and the API shows the same state afterwards.
//!
//! Needs root, nginx, python3 and hping3.

mod common;

use std::time::Duration;

use serde_json::Value;
use xdpath_lab::testenv::lb::{LbBed, Role, GUE_PORT, INTERFACE, VIP4};

use common::Daemon;

/// HTTP requests on new connections for `seconds`; prints the count of
/// answered and failed ones.
const LOOP: &str = r#"
import socket, sys, time
vip, seconds = sys.argv[1], float(sys.argv[2])
done = failed = 0
end = time.time() + seconds
while time.time() < end:
    try:
        with socket.create_connection((vip, 80), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        if data.startswith(b"HTTP/1.1 200"):
            done += 1
        else:
            failed += 1
    except OSError:
        failed += 1
print(done, failed)
"#;

fn blocklisted(daemon: &Daemon) -> u64 {
    let stats: Value =
        serde_json::from_str(&daemon.xdpath(&["--json", "stats"])).expect("stats JSON");
    xdpath::stats::packets_in_json(&stats, "drop", Some("blocklisted"))
}

fn state(daemon: &Daemon) -> Vec<Value> {
    [
        "/v1/rules",
        "/v1/blocklist",
        "/v1/vips",
        "/v1/backends",
        "/v1/interfaces",
    ]
    .iter()
    .map(|path| {
        let mut value = daemon.ok("GET", path, None);
        // Counters (a VIP's drops and connection-table entries too) and
        // the time left move by themselves.
        if let Some(rows) = value.as_array_mut() {
            for row in rows {
                if let Some(object) = row.as_object_mut() {
                    for key in [
                        "counters",
                        "remaining_seconds",
                        "hits",
                        "drops",
                        "active_connections",
                    ] {
                        object.remove(key);
                    }
                }
            }
        }
        value
    })
    .collect()
}

#[test]
fn kill_9_under_balanced_traffic_and_a_flood_loses_nothing() {
    xdpath_lab::needs_root!();
    let mut bed = LbBed::new().expect("bed");
    for role in Role::BACKENDS {
        let gue = GUE_PORT.to_string();
        let output = bed
            .exec(
                role,
                common::xdpath_cli(),
                ["decap", INTERFACE, "--gue-port", &gue],
            )
            .expect("decap");
        assert!(output.status.success());
    }
    bed.start_backends().expect("nginx");
    let path = bed.host(Role::Lb1).path.clone();
    let enter = move || {
        let path = path.clone();
        Box::new(move |program: &str| {
            let mut command = std::process::Command::new("nsenter");
            command
                .arg(format!("--net={}", path.display()))
                .arg(program);
            command
        }) as Box<dyn Fn(&str) -> std::process::Command>
    };
    let mut daemon = Daemon::start("restart-lb", enter(), &[]);
    let vip = format!("{VIP4}:80/tcp");
    daemon.xdpath(&["attach", INTERFACE]);
    daemon.xdpath(&["lb", "config", "--source-v4", "172.16.0.0/16"]);
    daemon.xdpath(&["lb", "vip", "add", &vip]);
    for role in Role::BACKENDS {
        daemon.xdpath(&[
            "lb",
            "backend",
            "add",
            &vip,
            &bed.host(role).ipv4.to_string(),
        ]);
    }
    daemon.xdpath(&["block", "add", "198.18.0.0/15"]);
    let before = state(&daemon);

    let client = bed
        .command(Role::Client, "/usr/bin/python3")
        .args(["-c", LOOP, &VIP4.to_string(), "8"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("client");
    let target = bed.host(Role::Lb1).ipv4.to_string();
    let mut flood = bed
        .command(Role::Client, "hping3")
        .args([
            "-q",
            "-S",
            "-p",
            "80",
            "-i",
            "u200",
            "-a",
            "198.18.0.1",
            &target,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("hping3");
    std::thread::sleep(Duration::from_secs(2));
    daemon.kill_hard();
    // Gone without cleaning up: the socket file stays, nothing answers.
    let socket = daemon.dir.join("api.sock");
    assert!(socket.exists(), "a killed daemon leaves its socket file");
    assert_eq!(
        daemon.call("GET", "/v1/config", None).0,
        0,
        "nothing answers"
    );
    let at_kill = blocklisted(&daemon);
    std::thread::sleep(Duration::from_secs(2));
    let while_down = blocklisted(&daemon) - at_kill;
    let daemon = Daemon::start("restart-lb", enter(), &[]);
    let output = client.wait_with_output().expect("client");
    xdpath_lab::servers::stop_nginx(&mut flood);
    let text = String::from_utf8_lossy(&output.stdout);
    let counts: Vec<u64> = text
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    eprintln!(
        "requests answered, failed: {counts:?}; flood frames dropped while the daemon was down: {while_down}"
    );
    assert_eq!(counts.len(), 2, "{text}");
    assert!(counts[0] > 50, "requests went through: {counts:?}");
    assert_eq!(counts[1], 0, "no request failed");
    assert!(
        while_down > 1000,
        "the flood kept being dropped: {while_down}"
    );
    assert_eq!(state(&daemon), before, "the same state after the restart");
}
