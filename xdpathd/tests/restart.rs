//! `kill -9` of xdpathd loses nothing (needs root, curl, python3, nginx):
//! the daemon holds no data-path state, everything lives in pinned maps and
//! `/var/lib/xdpath/<netns>/*.json`. While a client in namespace B makes HTTP
//! requests to nginx in namespace A and B pings A from a blocklisted
//! address, the daemon is killed with SIGKILL. No request fails, the
//! blocklist keeps dropping while the daemon is down, a new daemon on the
//! same socket path (the stale socket file replaced) answers with exactly
//! the state the old one had, and changes through it take effect.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath::servers::Nginx;
use xdpath::testenv::{Side, TestBed};

const XDPATHD: &str = env!("CARGO_BIN_EXE_xdpathd");

/// The `xdpath` CLI, built beside the daemon in the same target directory.
fn xdpath_cli() -> PathBuf {
    let path = PathBuf::from(XDPATHD).with_file_name("xdpath");
    assert!(
        path.exists(),
        "{} is missing: build it first (cargo build --release -p xdpath)",
        path.display()
    );
    path
}

/// The client goes on until told to stop and until it has made at least
/// this many requests.
const MIN_REQUESTS: u64 = 300;
/// How long the daemon stays dead.
const DOWN: Duration = Duration::from_secs(2);

/// An HTTP client for namespace B: one request per new connection, 2 s
/// timeout each, until the stop file exists and at least `least` requests
/// were made; prints a JSON summary.
const CLIENT: &str = r#"
import http.client, json, os, sys, time
host, stop, least = sys.argv[1], sys.argv[2], int(sys.argv[3])
ok = failed = 0
worst = 0.0
errors = []
while not os.path.exists(stop) or ok + failed < least:
    started = time.monotonic()
    try:
        connection = http.client.HTTPConnection(host, 80, timeout=2)
        connection.request("GET", "/", headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        connection.close()
        if response.status == 200 and body == b"ok\n":
            ok += 1
        else:
            failed += 1
            errors.append("status %d" % response.status)
    except Exception as error:
        failed += 1
        errors.append(repr(error))
    worst = max(worst, time.monotonic() - started)
print(json.dumps({"ok": ok, "failed": failed, "worst_ms": worst * 1000, "errors": errors[:5]}))
"#;

/// A child killed (SIGKILL) and reaped when dropped, so a failed assertion
/// leaves nothing running.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon's directory (its socket); removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn socket(dir: &Path) -> PathBuf {
    dir.join("api.sock")
}

/// Starts xdpathd in namespace A on `dir/api.sock` and waits until it
/// answers. `nsenter` execs the daemon, so the child is the daemon itself.
fn start_daemon(bed: &TestBed, dir: &Path) -> Running {
    let child = bed
        .command(Side::A, XDPATHD)
        .arg("--socket")
        .arg(socket(dir))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xdpathd");
    let mut daemon = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while call(bed, dir, "GET", "/v1/config", None).0 != 200 {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            panic!("xdpathd exited: {status}");
        }
        assert!(Instant::now() < deadline, "xdpathd did not answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon
}

/// Calls the API over the Unix socket with curl from namespace A; returns
/// the status (0 when nothing answered) and the body.
fn call(bed: &TestBed, dir: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut command = bed.command(Side::A, "curl");
    command
        .args([
            "-s",
            "--max-time",
            "5",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ])
        .arg("--unix-socket")
        .arg(socket(dir));
    if let Some(body) = body {
        command.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let output = command
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
    (status.trim().parse().unwrap_or(0), value)
}

fn ok(bed: &TestBed, dir: &Path, method: &str, path: &str, body: Option<&str>) -> Value {
    let (status, value) = call(bed, dir, method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {value}"
    );
    value
}

/// The state the API reports. The blocklist's `remaining_seconds` is
/// left out: it counts down (its `expires_at` stays).
fn snapshot(bed: &TestBed, dir: &Path) -> Vec<(&'static str, Value)> {
    let mut snapshot: Vec<(&'static str, Value)> = [
        "/v1/rules",
        "/v1/blocklist",
        "/v1/vips",
        "/v1/backends",
        "/v1/interfaces",
    ]
    .into_iter()
    .map(|path| (path, ok(bed, dir, "GET", path, None)))
    .collect();
    for (_, value) in &mut snapshot {
        for entry in value.as_array_mut().into_iter().flatten() {
            if let Some(object) = entry.as_object_mut() {
                object.remove("remaining_seconds");
            }
        }
    }
    snapshot
}

/// Blocklisted drops in `xdpath --json stats`, run in namespace A.
fn blocklisted_drops(bed: &TestBed) -> u64 {
    let output = bed
        .exec(Side::A, xdpath_cli(), ["--json", "stats"])
        .expect("xdpath stats");
    assert!(
        output.status.success(),
        "xdpath stats: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stats: Value = serde_json::from_slice(&output.stdout).expect("stats JSON");
    xdpath::stats::packets_in_json(&stats, "drop", Some("blocklisted"))
}

/// Stops a `ping` with SIGINT and returns (transmitted, received) from
/// its summary.
fn stop_ping(mut ping: Running) -> (u64, u64) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(ping.0.id() as i32, libc::SIGINT) };
    let mut output = String::new();
    if let Some(mut stdout) = ping.0.stdout.take() {
        use std::io::Read;
        let _ = stdout.read_to_string(&mut output);
    }
    let _ = ping.0.wait();
    // "2199 packets transmitted, 0 received, 100% packet loss, time 23828ms"
    let numbers: Vec<u64> = output
        .lines()
        .find(|line| line.contains("packets transmitted"))
        .map(|line| {
            line.split(',')
                .filter_map(|part| part.split_whitespace().next()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    match numbers[..] {
        [transmitted, received, ..] => (transmitted, received),
        _ => panic!("no summary from ping: {output}"),
    }
}

/// Pings A's IPv6 address from B three times; true if any answer came.
fn ping6_answered(bed: &TestBed) -> bool {
    let target = bed.a().ipv6.to_string();
    bed.exec(
        Side::B,
        "ping",
        ["-6", "-c", "3", "-i", "0.2", "-W", "1", &target],
    )
    .map(|output| output.status.success())
    .unwrap_or(false)
}

#[test]
fn kill_9_of_the_daemon_loses_no_traffic_and_no_state() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
    let bed = TestBed::new().expect("bed");
    let _nginx = Nginx::start(&bed, 128).expect("nginx in namespace A");
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "xdpathd-restart-{}-{}",
        std::process::id(),
        bed.number()
    )));
    std::fs::create_dir_all(&scratch.0).expect("dir");
    let dir = scratch.0.as_path();
    let mut daemon = start_daemon(&bed, dir);

    let interface = bed.a().interface.clone();
    let attach = bed
        .exec(
            Side::A,
            xdpath_cli(),
            ["attach", &interface, "--mode", "native"],
        )
        .expect("xdpath attach");
    assert!(
        attach.status.success(),
        "attach: {}",
        String::from_utf8_lossy(&attach.stderr)
    );
    // The balancer needs an outer source prefix before a backend can be
    // added (the API has no route for that setting).
    let lb_config = bed
        .exec(
            Side::A,
            xdpath_cli(),
            ["lb", "config", "--source-v4", "172.16.0.0/16"],
        )
        .expect("xdpath lb config");
    assert!(
        lb_config.status.success(),
        "lb config: {}",
        String::from_utf8_lossy(&lb_config.stderr)
    );
    let blocked = format!("{}/128", bed.b().ipv6);
    let blocked_body = format!(r#"{{"prefix":"{blocked}"}}"#);
    for (path, body) in [
        (
            "/v1/rules",
            r#"{"src":"198.51.100.0/24","proto":"tcp","dport":"22","action":"drop"}"#,
        ),
        ("/v1/rules", r#"{"src":"203.0.113.0/24","action":"drop"}"#),
        ("/v1/blocklist", blocked_body.as_str()),
        ("/v1/blocklist", r#"{"prefix":"192.0.2.0/24","ttl":"1h"}"#),
        ("/v1/vips", r#"{"vip":"203.0.113.10:80/tcp"}"#),
        (
            "/v1/backends",
            r#"{"vip":"203.0.113.10:80/tcp","address":"10.0.0.11"}"#,
        ),
    ] {
        ok(&bed, dir, "POST", path, Some(body));
    }
    assert!(!ping6_answered(&bed), "the blocklisted source is dropped");
    let before = snapshot(&bed, dir);
    assert_eq!(before[0].1.as_array().map(Vec::len), Some(2), "{before:?}");
    assert_eq!(before[1].1.as_array().map(Vec::len), Some(2), "{before:?}");
    assert_eq!(before[2].1.as_array().map(Vec::len), Some(1), "{before:?}");

    // Traffic: pings from the blocked address, asked for every millisecond
    // (unanswered, ping sends about 100 a second here), and the HTTP client.
    let target_v6 = bed.a().ipv6.to_string();
    let pings = Running(
        bed.command(Side::B, "ping")
            .args(["-6", "-q", "-i", "0.001", "-w", "120", &target_v6])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ping in namespace B"),
    );
    let stop = scratch.0.join("stop-client");
    let mut client = Running(
        bed.command(Side::B, "python3")
            .args(["-c", CLIENT, &bed.a().ipv4.to_string()])
            .arg(&stop)
            .arg(MIN_REQUESTS.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 in namespace B"),
    );
    std::thread::sleep(Duration::from_millis(500));

    // kill -9: no cleanup runs, the socket file stays behind.
    let pid = daemon.0.id();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let status = daemon.0.wait().expect("reap xdpathd");
    assert!(!status.success(), "xdpathd was killed: {status}");
    assert!(socket(dir).exists(), "SIGKILL leaves the socket file");
    assert_eq!(
        call(&bed, dir, "GET", "/v1/config", None).0,
        0,
        "nothing answers while the daemon is down"
    );
    let drops_at_kill = blocklisted_drops(&bed);
    std::thread::sleep(DOWN);
    let drops_while_down = blocklisted_drops(&bed);
    assert!(
        drops_while_down > drops_at_kill,
        "the blocklist drops while the daemon is down ({drops_at_kill} -> {drops_while_down})"
    );

    // A new daemon on the same path: the stale socket is replaced and the
    // state is the same, read from the pins and the state files.
    let restarted_at = Instant::now();
    daemon = start_daemon(&bed, dir);
    let answered_after = restarted_at.elapsed();
    let after = snapshot(&bed, dir);
    for ((path, old), (_, new)) in before.iter().zip(&after) {
        assert_eq!(old, new, "GET {path} is the same after the restart");
    }

    std::fs::write(&stop, b"").expect("stop file");
    let mut output = String::new();
    if let Some(mut stdout) = client.0.stdout.take() {
        use std::io::Read;
        stdout.read_to_string(&mut output).expect("client output");
    }
    let exit = client.0.wait().expect("client");
    assert!(exit.success(), "the HTTP client failed: {output}");
    let (pings_sent, pings_answered) = stop_ping(pings);
    let summary: Value = serde_json::from_str(output.trim()).expect("client JSON");
    let requests = summary["ok"].as_u64().expect("ok");
    let failed = summary["failed"].as_u64().expect("failed");
    eprintln!(
        "restart: daemon down {} ms, answering again {} ms after the restart; \
         {requests} HTTP requests, {failed} failed, slowest {:.1} ms; blocklisted drops \
         while down {}; {pings_sent} pings from the blocked source, {pings_answered} answered",
        DOWN.as_millis(),
        answered_after.as_millis(),
        summary["worst_ms"].as_f64().unwrap_or(0.0),
        drops_while_down - drops_at_kill
    );
    assert_eq!(failed, 0, "no request fails: {summary}");
    assert!(requests >= MIN_REQUESTS, "{requests} requests");
    assert!(pings_sent > 100, "{pings_sent} blocked pings were sent");
    assert_eq!(pings_answered, 0, "the blocklist held all along");

    // The restarted daemon changes the same state: unblocked, the pings pass.
    ok(
        &bed,
        dir,
        "DELETE",
        &format!("/v1/blocklist?prefix={blocked}"),
        None,
    );
    assert!(ping6_answered(&bed), "unblocked through the new daemon");

    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.0.id() as i32, libc::SIGTERM) };
    let _ = daemon.0.wait();
}
