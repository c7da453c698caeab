//! Backend health checks end to end: xdpathd on a balancer of the
//! load-balancing bed checks three nginx backends over HTTP; stopping one
//! takes it out of the table within interval × fall, and clients stop
//! reaching it; starting it again brings it back within interval × rise.
//!
//! Needs root, nginx and curl.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath_lab::testenv::lb::{LbBed, Role, GUE_PORT, INTERFACE, VIP4};

use common::Daemon;

const INTERVAL_MS: u64 = 300;
const RISE: u64 = 2;
const FALL: u64 = 2;

fn state_of(daemon: &Daemon, address: &str) -> String {
    let rows: Value =
        serde_json::from_str(&daemon.xdpath(&["--json", "lb", "backend", "list"])).expect("JSON");
    rows.as_array()
        .and_then(|rows| rows.iter().find(|row| row["backend"] == address))
        .and_then(|row| row["state"].as_str())
        .unwrap_or("?")
        .to_string()
}

/// Waits until `address` is in `state`; returns how long it took.
fn wait_for(daemon: &Daemon, address: &str, state: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    while state_of(daemon, address) != state {
        assert!(
            start.elapsed() < limit,
            "{address} not {state} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn requests(bed: &LbBed, count: usize) -> BTreeMap<String, usize> {
    let mut args: Vec<String> = ["-s", "--max-time", "30", "-H", "Connection: close"]
        .map(String::from)
        .to_vec();
    args.extend((0..count).map(|request| format!("http://{VIP4}/?{request}")));
    let output = bed.exec(Role::Client, "curl", &args).expect("curl");
    let mut answers = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        *answers.entry(line.to_string()).or_insert(0) += 1;
    }
    assert_eq!(answers.values().sum::<usize>(), count, "{answers:?}");
    answers
}

/// One request from client port `port`: the backend's answer, or why
/// nothing answered.
fn request_from(bed: &LbBed, port: u16) -> Result<String, String> {
    let args = [
        "-sS".to_string(),
        "--max-time".into(),
        "3".into(),
        "--local-port".into(),
        port.to_string(),
        "-H".into(),
        "Connection: close".into(),
        format!("http://{VIP4}/"),
    ];
    let output = bed.exec(Role::Client, "curl", &args).expect("curl");
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if output.status.success() && !answer.is_empty() {
        Ok(answer)
    } else {
        Err(format!(
            "curl {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// xdpathd on the balancer host, its interface attached and `vip` (added
/// with `options`) balancing over every backend host.
fn balancing_daemon(bed: &LbBed, name: &str, vip: &str, options: &[&str]) -> Daemon {
    let path = bed.host(Role::Lb1).path.clone();
    let enter = Box::new(move |program: &str| common::in_namespace(&path, program));
    let daemon = Daemon::start(name, enter, &[]);
    daemon.xdpath(&["attach", INTERFACE]);
    daemon.xdpath(&["lb", "config", "--source-v4", "172.16.0.0/16"]);
    let mut add = vec!["lb", "vip", "add", vip];
    add.extend_from_slice(options);
    daemon.xdpath(&add);
    for role in Role::BACKENDS {
        let backend = bed.host(role).ipv4.to_string();
        daemon.xdpath(&["lb", "backend", "add", vip, &backend]);
    }
    daemon
}

#[test]
fn a_failing_backend_leaves_the_table_and_comes_back() {
    xdpath_lab::needs_root!();
    let mut bed = LbBed::new().expect("bed");
    for role in Role::BACKENDS {
        let output = bed
            .exec(
                role,
                common::xdpath_cli(),
                ["decap", INTERFACE, "--gue-port", &GUE_PORT.to_string()],
            )
            .expect("decap");
        assert!(output.status.success());
    }
    bed.start_backends().expect("nginx");
    let vip = format!("{VIP4}:80/tcp");
    let daemon = balancing_daemon(&bed, "health", &vip, &[]);
    let interval = format!("{INTERVAL_MS}ms");
    daemon.xdpath(&[
        "lb",
        "vip",
        "health",
        &vip,
        "http",
        "--path",
        "/",
        "--interval",
        &interval,
        "--timeout",
        "200ms",
        "--rise",
        &RISE.to_string(),
        "--fall",
        &FALL.to_string(),
    ]);
    // Every backend checked and healthy.
    let start = Instant::now();
    loop {
        let board = daemon.ok("GET", "/v1/health", None);
        let entries = board.as_array().cloned().unwrap_or_default();
        if entries.len() == 3
            && entries
                .iter()
                .all(|entry| entry["healthy"] == true && entry["checks"].as_u64() >= Some(1))
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{board}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(requests(&bed, 60).len(), 3);
    // A client port whose flow the balancer placed on b2: its connection-
    // table entry outlives the connection. The client keeps no TIME_WAIT
    // (it may close first), so that the port can be used again at once.
    let output = bed
        .exec(
            Role::Client,
            "sysctl",
            ["-qw", "net.ipv4.tcp_max_tw_buckets=0"],
        )
        .expect("sysctl");
    assert!(output.status.success(), "{output:?}");
    let pinned = (41_000..41_100)
        .find(|port| request_from(&bed, *port).as_deref() == Ok("b2"))
        .expect("a client port placed on b2");

    let b2 = bed.host(Role::B2).ipv4.to_string();
    bed.stop_backend(Role::B2);
    // The last probe before the stop may have just passed: up to one more
    // interval, then `fall` failures; plus the time to rebuild the table.
    let bound = Duration::from_millis(INTERVAL_MS * (FALL + 1) + 700);
    let took = wait_for(&daemon, &b2, "down", bound);
    eprintln!("b2 out of the table {took:?} after its server stopped (bound {bound:?})");
    let answers = requests(&bed, 100);
    assert!(!answers.contains_key("b2"), "{answers:?}");
    // The same 5-tuple again: its entry named b2, which is down, so the flow
    // is placed again on a healthy backend instead of reaching b2.
    let again = request_from(&bed, pinned);
    assert!(
        again.as_deref().is_ok_and(|answer| answer != "b2"),
        "client port {pinned} after b2 failed: {again:?}"
    );
    let metrics = daemon.ok("GET", "/metrics", None);
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains(&format!(
            "xdpath_lb_backend_healthy{{vip=\"{vip}\",backend=\"{b2}\"}} 0"
        )),
        "{text}"
    );
    let board = daemon.ok("GET", "/v1/health", None);
    let entry = board
        .as_array()
        .and_then(|entries| entries.iter().find(|entry| entry["backend"] == b2.as_str()))
        .cloned()
        .expect("b2 on the board");
    assert_eq!(entry["healthy"], false);
    assert!(
        entry["last_error"]
            .as_str()
            .is_some_and(|why| !why.is_empty()),
        "{entry}"
    );

    bed.restart_backend(Role::B2).expect("nginx again");
    let bound = Duration::from_millis(INTERVAL_MS * (RISE + 1) + 1500);
    let took = wait_for(&daemon, &b2, "active", bound);
    eprintln!("b2 back in the table {took:?} after its server started (bound {bound:?})");
    let answers = requests(&bed, 120);
    assert!(answers.contains_key("b2"), "{answers:?}");
}

/// Health states that could never be, refused with nothing changed:
/// - a table of size 7 holds 3 weighted backends. With the 3 down (nothing
///   listens on their check port), a 4th was accepted, as the table's
///   check counted only the backends in it; none of the 3 could then come
///   back (hostile lb F10). It is refused, counting the backends down;
/// - a TCP/HTTP/UDP check without a port on an all-ports VIP was accepted
///   through the API, then failed every backend (hostile lb F8).
#[test]
fn health_states_that_could_never_be_are_refused() {
    xdpath_lab::needs_root!();
    let bed = LbBed::new().expect("bed");
    let vip = format!("{VIP4}:8090/tcp");
    let daemon = balancing_daemon(&bed, "overfull", &vip, &["--ring-size", "7"]);
    let backends: Vec<String> = Role::BACKENDS
        .iter()
        .map(|role| bed.host(*role).ipv4.to_string())
        .collect();
    // Nothing listens on 8090 on the backends: every check is refused.
    daemon.xdpath(&[
        "lb",
        "vip",
        "health",
        &vip,
        "tcp",
        "--interval",
        "100ms",
        "--timeout",
        "100ms",
        "--fall",
        "1",
    ]);
    for backend in &backends {
        wait_for(&daemon, backend, "down", Duration::from_secs(10));
    }
    let before = daemon.xdpath(&["--json", "lb", "backend", "list"]);
    let fourth = bed.host(Role::Lb2).ipv4.to_string();
    let output = daemon
        .command(&common::xdpath_cli().display().to_string())
        .args(["lb", "backend", "add", &vip, &fourth])
        .output()
        .expect("xdpath");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("xdpath: error: ")
            && stderr.trim_end().lines().count() == 1
            && stderr.contains("4 weighted backends for table size 7")
            && stderr.contains("health check count"),
        "{stderr}"
    );
    let after = daemon.xdpath(&["--json", "lb", "backend", "list"]);
    let rows = |text: &str| -> Vec<Value> {
        serde_json::from_str::<Value>(text)
            .expect("JSON")
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|row| row["vip"] == vip.as_str())
            .map(|row| row["backend"].clone())
            .collect()
    };
    assert_eq!(
        rows(&after),
        rows(&before),
        "the refused add changed the pool"
    );
    assert_eq!(rows(&after).len(), 3);

    let every_port = format!("{VIP4}:*/tcp");
    daemon.xdpath(&["lb", "vip", "add", &every_port]);
    let body = format!(r#"{{"vip":"{every_port}","kind":"http"}}"#);
    let (status, answer) = daemon.call("PUT", "/v1/vips/health", Some(&body));
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_request")),
        "{answer}"
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|why| why.contains("no port to check")),
        "{answer}"
    );
    let vips: Value =
        serde_json::from_str(&daemon.xdpath(&["--json", "lb", "vip", "list"])).expect("JSON");
    let unchecked = vips.as_array().and_then(|vips| {
        vips.iter()
            .find(|row| row["vip"] == every_port.as_str())
            .map(|row| row["health"].is_null())
    });
    assert_eq!(unchecked, Some(true), "{vips}");
}

/// The state directory made immutable (`chattr +i`: no file can be made
/// in it, so every change fails at its start and writes nothing) until
/// dropped, a panic included.
struct Unsavable(std::path::PathBuf);

impl Unsavable {
    fn new(dir: std::path::PathBuf) -> Self {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&dir)
            .status()
            .expect("chattr");
        assert!(status.success(), "chattr +i {}", dir.display());
        Self(dir)
    }
}

impl Drop for Unsavable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// The checker's board entry of `address`.
fn board_entry(daemon: &Daemon, address: &str) -> Value {
    let board = daemon.ok("GET", "/v1/health", None);
    board
        .as_array()
        .and_then(|entries| entries.iter().find(|entry| entry["backend"] == address))
        .cloned()
        .unwrap_or(Value::Null)
}

/// A verdict whose change fails is not lost (hostile lb F10): b2 fails
/// its checks while no change can be saved; it stays in the table, the
/// checker shows the change pending, and once changes can be saved again
/// it leaves the table. (The checker used to try once, on the flip, and
/// never again: b2 stayed in the table for good, the checker saying down.)
#[test]
fn a_verdict_whose_change_failed_lands_later() {
    xdpath_lab::needs_root!();
    let mut bed = LbBed::new().expect("bed");
    bed.start_backends().expect("nginx");
    let vip = format!("{VIP4}:80/tcp");
    let daemon = balancing_daemon(&bed, "pending", &vip, &[]);
    daemon.xdpath(&[
        "lb",
        "vip",
        "health",
        &vip,
        "tcp",
        "--interval",
        "100ms",
        "--timeout",
        "100ms",
        "--fall",
        "2",
        "--rise",
        "2",
    ]);
    let b2 = bed.host(Role::B2).ipv4.to_string();
    let start = Instant::now();
    while board_entry(&daemon, &b2)["checks"].as_u64() < Some(2) {
        assert!(start.elapsed() < Duration::from_secs(10), "b2 not checked");
        std::thread::sleep(Duration::from_millis(50));
    }
    let key = bed
        .host(Role::Lb1)
        .netns_key
        .as_ref()
        .expect("namespace key");
    let unsavable = Unsavable::new(xdpath::control::state::state_dir_of(key));
    bed.stop_backend(Role::B2);
    let start = Instant::now();
    let pending = loop {
        let entry = board_entry(&daemon, &b2);
        if entry["healthy"] == false {
            // Past the flip and its failed change: a second look.
            std::thread::sleep(Duration::from_millis(300));
            break board_entry(&daemon, &b2);
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{entry}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(state_of(&daemon, &b2), "active", "no change could be saved");
    drop(unsavable);
    let took = wait_for(&daemon, &b2, "down", Duration::from_secs(10));
    eprintln!("b2 out of the table {took:?} after changes could be saved again");
    assert!(
        pending["table_pending"]
            .as_str()
            .is_some_and(|why| !why.is_empty()),
        "the failed change was not shown: {pending}"
    );
    let settled = board_entry(&daemon, &b2);
    assert_eq!(settled["table_pending"], Value::Null, "{settled}");
    assert!(
        daemon.log().contains("the table at last"),
        "{}",
        daemon.log()
    );
}
