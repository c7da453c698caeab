//! The load balancer end to end, on one L2 segment: a client, two
//! balancers (xdpath attached on a stick, next hop from the kernel's FIB
//! and static neighbours) and three backends running nginx behind
//! `xdpath decap` (the VIPs on their loopback, direct server return). See
//! `xdpath_lab::testenv::lb`.
//!
//! Needs root, nginx, curl and python3.

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath_lab::testenv::lb::{
    big_file, LbBed, LineBed, Role, BIG_FILE_BYTES, GUE_PORT, INTERFACE, LINE_CLIENT_SIDE,
    PY_ASK_BACKEND, VIP4, VIP6,
};

const XDPATH: &str = env!("CARGO_BIN_EXE_xdpath");

/// Runs xdpath in `role`'s namespace; panics with its error unless it
/// succeeds.
fn xdpath(bed: &LbBed, role: Role, args: &[&str]) -> String {
    let output = bed.exec(role, XDPATH, args).expect("run xdpath");
    assert!(
        output.status.success(),
        "xdpath {args:?} in {}: {}",
        role.name(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json(bed: &LbBed, role: Role, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&xdpath(bed, role, &all)).expect("JSON")
}

/// `count` HTTP requests to `url` from the client, each on a new
/// connection (one curl, `Connection: close`); answers by backend name.
fn spread(bed: &LbBed, url: &str, count: usize) -> BTreeMap<String, usize> {
    let mut args: Vec<String> = ["-sg", "--max-time", "60", "-H", "Connection: close"]
        .map(String::from)
        .to_vec();
    args.extend((1..=count).map(|request| format!("{url}?{request}")));
    let output = bed.exec(Role::Client, "curl", &args).expect("curl");
    let mut answers = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        *answers.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    let total: usize = answers.values().sum();
    assert_eq!(total, count, "every request answered: {answers:?}");
    answers
}

/// One HTTP request per source port `first..first + count` to `vip:port`
/// from the client (closed with a reset, so the ports can be used again at
/// once; above the kernel's ephemeral range, so no other connection holds
/// them); the backend of each. Run after [`PY_ASK_BACKEND`].
const FLOWS: &str = r#"
import socket, struct, sys
vip, port, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
family = socket.AF_INET6 if ":" in vip else socket.AF_INET
for source in range(first, first + count):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(5)
    backend = "error"
    try:
        s.bind(("", source))
        s.connect((vip, port))
        backend = ask(s)
    except OSError as error:
        backend = "error:" + type(error).__name__ + ":" + str(error.errno)
    finally:
        s.close()
    print(source, backend)
"#;

fn flows(bed: &LbBed, vip: &str, port: u16, first: u16, count: u16) -> BTreeMap<u16, String> {
    let (port, first, count) = (port.to_string(), first.to_string(), count.to_string());
    let output = bed
        .exec(
            Role::Client,
            "/usr/bin/python3",
            [
                "-c",
                &format!("{PY_ASK_BACKEND}{FLOWS}"),
                vip,
                &port,
                &first,
                &count,
            ],
        )
        .expect("python3");
    let map: BTreeMap<u16, String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter_map(|(port, backend)| Some((port.parse().ok()?, backend.to_string())))
        .collect();
    assert_eq!(map.len(), usize::from(count.parse::<u16>().unwrap_or(0)));
    assert!(
        map.values().all(|backend| backend.starts_with('b')),
        "every flow answered: {:?}",
        map.iter()
            .filter(|(_, backend)| !backend.starts_with('b'))
            .collect::<Vec<_>>()
    );
    map
}

/// Per-backend `new_flows` of a VIP on a balancer, by backend address.
fn new_flows(bed: &LbBed, lb: Role, vip: &str) -> HashMap<String, u64> {
    let rows = json(bed, lb, &["lb", "backend", "list", vip]);
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row["backend"].as_str().unwrap_or_default().to_string(),
                row["counters"]["new_flows"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn backend_of(bed: &LbBed, address: &str) -> String {
    Role::BACKENDS
        .iter()
        .find(|role| {
            let host = bed.host(**role);
            host.ipv4.to_string() == address || host.ipv6.to_string() == address
        })
        .map_or("?".into(), |role| role.name().to_string())
}

/// Configures a balancer: the IPv4 VIP on port 80 (connection table) and
/// 8080 (pure Maglev), IPIP, weights 1, 2, 3; the IPv6 VIP with GUE to a
/// pool of two IPv6 backends and one IPv4 one. `order` is the order the
/// backends are added in; `decoy` first adds and removes a VIP and a
/// backend so that slots differ from the other balancer's.
fn configure(bed: &LbBed, lb: Role, order: [Role; 3], decoy: bool) {
    xdpath(bed, lb, &["attach", INTERFACE]);
    xdpath(
        bed,
        lb,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--source-v6",
            "fd00:172::/64",
        ],
    );
    if decoy {
        xdpath(bed, lb, &["lb", "vip", "add", "198.51.100.1:53/udp"]);
        xdpath(
            bed,
            lb,
            &["lb", "backend", "add", "198.51.100.1:53/udp", "192.0.2.1"],
        );
    }
    let vip80 = format!("{VIP4}:80/tcp");
    let vip8080 = format!("{VIP4}:8080/tcp");
    let vip6 = format!("[{VIP6}]:80/tcp");
    xdpath(bed, lb, &["lb", "vip", "add", &vip80]);
    xdpath(
        bed,
        lb,
        &["lb", "vip", "add", &vip8080, "--flags", "no-conntrack"],
    );
    let gue = GUE_PORT.to_string();
    xdpath(
        bed,
        lb,
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
    for role in order {
        let host = bed.host(role);
        let weight = match role {
            Role::B1 => "1",
            Role::B2 => "2",
            _ => "3",
        };
        let v4 = host.ipv4.to_string();
        for vip in [&vip80, &vip8080] {
            xdpath(
                bed,
                lb,
                &["lb", "backend", "add", vip, &v4, "--weight", weight],
            );
        }
        // 6in6 to b1 and b2, 6in4 to b3.
        let inner = if role == Role::B3 {
            v4
        } else {
            host.ipv6.to_string()
        };
        xdpath(bed, lb, &["lb", "backend", "add", &vip6, &inner]);
    }
    if decoy {
        xdpath(bed, lb, &["lb", "vip", "del", "198.51.100.1:53/udp"]);
    }
}

#[test]
fn balances_http_across_backends_in_namespaces() {
    xdpath_lab::needs_root!();
    let mut bed = LbBed::new().expect("bed");
    for role in Role::BACKENDS {
        let gue = GUE_PORT.to_string();
        xdpath(&bed, role, &["decap", INTERFACE, "--gue-port", &gue]);
    }
    bed.start_backends().expect("nginx");
    configure(&bed, Role::Lb1, [Role::B1, Role::B2, Role::B3], false);
    configure(&bed, Role::Lb2, [Role::B3, Role::B1, Role::B2], true);

    spread_by_weight(&bed);
    ecmp_balancers_agree(&bed);
    removal_moves_only_its_flows(&bed);
    long_transfer_keeps_its_backend(&bed);
    ipv6_vip_with_gue(&bed);
}

/// 1,000 requests: shares follow the weights 1:2:3, and the balancer's
/// per-backend new-flow counters match what the client saw.
fn spread_by_weight(bed: &LbBed) {
    let vip = format!("{VIP4}:80/tcp");
    let before = new_flows(bed, Role::Lb1, &vip);
    let answers = spread(bed, &format!("http://{VIP4}/"), 1000);
    let after = new_flows(bed, Role::Lb1, &vip);
    eprintln!("1000 requests: {answers:?}");
    for (name, weight) in [("b1", 1.0_f64), ("b2", 2.0), ("b3", 3.0)] {
        let count = answers.get(name).copied().unwrap_or(0) as f64;
        let expected = 1000.0 * weight / 6.0;
        // Four standard deviations of a binomial count.
        let tolerance = 4.0 * (1000.0 * weight / 6.0 * (1.0 - weight / 6.0)).sqrt();
        assert!(
            (count - expected).abs() <= tolerance,
            "{name}: {count} requests, expected {expected:.0} ± {tolerance:.0}"
        );
    }
    for (address, flows) in &after {
        let placed = flows - before.get(address).copied().unwrap_or(0);
        let name = backend_of(bed, address);
        assert_eq!(
            placed as usize,
            answers.get(&name).copied().unwrap_or(0),
            "new flows counted for {name}"
        );
    }
}

/// The same flows through either balancer reach the same backend, though
/// the balancers got their backends in different orders and slots.
fn ecmp_balancers_agree(bed: &LbBed) {
    let vip = VIP4.to_string();
    let through_first = flows(bed, &vip, 8080, 61_000, 300);
    bed.route_via(Role::Lb2).expect("route");
    let through_second = flows(bed, &vip, 8080, 61_000, 300);
    let fresh_on_second = flows(bed, &vip, 80, 61_500, 100);
    bed.route_via(Role::Lb1).expect("route");
    let fresh_on_first = flows(bed, &vip, 80, 61_500, 100);
    assert_eq!(through_first, through_second, "pure Maglev VIP");
    assert_eq!(fresh_on_first, fresh_on_second, "connection-table VIP");
    let used: std::collections::BTreeSet<_> = through_first.values().collect();
    assert_eq!(used.len(), 3, "all backends used: {used:?}");
}

/// Removing b2 moves b2's flows and (almost) nothing else: exactly nothing
/// on the connection-table VIP, Maglev's small collateral on the pure one.
fn removal_moves_only_its_flows(bed: &LbBed) {
    let vip = VIP4.to_string();
    let b2 = bed.host(Role::B2).ipv4.to_string();
    let pure_before = flows(bed, &vip, 8080, 62_000, 400);
    let tracked_before = flows(bed, &vip, 80, 63_000, 400);
    for port in ["80", "8080"] {
        let spec = format!("{VIP4}:{port}/tcp");
        xdpath(bed, Role::Lb1, &["lb", "backend", "del", &spec, &b2]);
    }
    let pure_after = flows(bed, &vip, 8080, 62_000, 400);
    let tracked_after = flows(bed, &vip, 80, 63_000, 400);
    for (label, before, after, allowed) in [
        ("connection table", &tracked_before, &tracked_after, 0.0),
        ("pure Maglev", &pure_before, &pure_after, 0.03),
    ] {
        let mut others = 0;
        let mut collateral = 0;
        for (port, backend) in before.iter() {
            let now = after.get(port).map(String::as_str).unwrap_or("?");
            if backend == "b2" {
                assert_ne!(
                    now, "b2",
                    "{label}: flow {port} still on the removed backend"
                );
            } else {
                others += 1;
                collateral += usize::from(now != backend);
            }
        }
        eprintln!("{label}: removing b2 moved {collateral} of {others} other flows");
        assert!(
            collateral as f64 <= allowed * others as f64,
            "{label}: {collateral} of {others} flows of other backends moved"
        );
    }
    for port in ["80", "8080"] {
        let spec = format!("{VIP4}:{port}/tcp");
        xdpath(
            bed,
            Role::Lb1,
            &["lb", "backend", "add", &spec, &b2, "--weight", "2"],
        );
    }
}

/// A slow download keeps its backend while backends are removed and added
/// and its own is drained; once drained, that backend gets no new flow.
fn long_transfer_keeps_its_backend(bed: &LbBed) {
    let vip = format!("{VIP4}:80/tcp");
    let dir = std::env::temp_dir().join(format!("xdpath-lb-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (body, headers) = (dir.join("big"), dir.join("headers"));
    let url = format!("http://{VIP4}/big");
    let mut curl = bed.command(Role::Client, "curl");
    curl.args(["-s", "--limit-rate", "1500k", "--max-time", "60", "-o"])
        .arg(&body)
        .arg("-D")
        .arg(&headers)
        .arg(&url)
        .stdin(Stdio::null());
    let mut child = curl.spawn().expect("curl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let serving = loop {
        let text = std::fs::read_to_string(&headers).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|line| line.to_lowercase().starts_with("x-backend:"))
        {
            break line["x-backend:".len()..].trim().to_string();
        }
        assert!(Instant::now() < deadline, "no response headers");
        std::thread::sleep(Duration::from_millis(20));
    };
    let serving_role = *Role::BACKENDS
        .iter()
        .find(|role| role.name() == serving)
        .expect("a known backend");
    let other = *Role::BACKENDS
        .iter()
        .find(|role| **role != serving_role)
        .expect("another backend");
    let other_address = bed.host(other).ipv4.to_string();
    let serving_address = bed.host(serving_role).ipv4.to_string();
    xdpath(
        bed,
        Role::Lb1,
        &["lb", "backend", "del", &vip, &other_address],
    );
    std::thread::sleep(Duration::from_millis(500));
    xdpath(
        bed,
        Role::Lb1,
        &[
            "lb",
            "backend",
            "add",
            &vip,
            &other_address,
            "--weight",
            "5",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    xdpath(
        bed,
        Role::Lb1,
        &["lb", "backend", "set-weight", &vip, &serving_address, "0"],
    );
    let status = child.wait().expect("curl");
    let received = std::fs::read(&body).expect("body");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "curl: {status}");
    assert_eq!(received.len(), BIG_FILE_BYTES, "complete");
    assert!(
        received == big_file(serving_role),
        "intact, all from {serving}"
    );

    let answers = spread(bed, &format!("http://{VIP4}/"), 300);
    assert!(
        !answers.contains_key(&serving),
        "drained {serving} got new flows: {answers:?}"
    );
    let rows = json(bed, Role::Lb1, &["lb", "backend", "list", &vip]);
    let state = rows
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|row| row["backend"] == serving_address.as_str())
        })
        .map(|row| row["state"].clone());
    assert_eq!(state, Some(Value::from("drained")));
}

/// The IPv6 VIP: GUE, 6in6 to b1 and b2 and 6in4 to b3.
fn ipv6_vip_with_gue(bed: &LbBed) {
    let answers = spread(bed, &format!("http://[{VIP6}]/"), 200);
    assert_eq!(answers.len(), 3, "every backend answers: {answers:?}");
    let stats = json(bed, Role::Lb1, &["lb", "stats"]);
    let vip = stats["vips"]
        .as_array()
        .and_then(|vips| {
            vips.iter()
                .find(|vip| vip["vip"] == format!("[{VIP6}]:80/tcp").as_str())
        })
        .cloned()
        .expect("the IPv6 VIP");
    assert!(vip["counters"]["new_flows"].as_u64() >= Some(200), "{vip}");
    assert!(stats["connection_table"]["hits"].as_u64() > Some(0));
}

/// Refused commands: a clear error, exit status 1, nothing changed.
#[test]
fn refused_lb_commands_change_nothing() {
    xdpath_lab::needs_root!();
    let bed = LbBed::new().expect("bed");
    let lb = Role::Lb1;
    xdpath(&bed, lb, &["lb", "config", "--source-v4", "172.16.0.0/16"]);
    xdpath(&bed, lb, &["lb", "vip", "add", "203.0.113.10:80/tcp"]);
    xdpath(
        &bed,
        lb,
        &["lb", "backend", "add", "203.0.113.10:80/tcp", "10.0.0.1"],
    );
    let snapshot = |bed: &LbBed| {
        (
            json(bed, lb, &["lb", "vip", "list"]),
            json(bed, lb, &["lb", "backend", "list"]),
            json(bed, lb, &["lb", "config"]),
        )
    };
    let before = snapshot(&bed);
    for (args, expected) in [
        (
            vec!["lb", "vip", "add", "203.0.113.10:80/tcp"],
            "already exists",
        ),
        (
            vec!["lb", "backend", "add", "203.0.113.99:80/tcp", "10.0.0.2"],
            "no VIP 203.0.113.99:80/tcp",
        ),
        (
            vec![
                "lb",
                "backend",
                "add",
                "203.0.113.10:80/tcp",
                "10.0.0.2",
                "--weight",
                "1001",
            ],
            "out of range",
        ),
        (
            vec![
                "lb",
                "backend",
                "set-weight",
                "203.0.113.10:80/tcp",
                "10.0.0.1",
                "-1",
            ],
            "unexpected argument",
        ),
        (
            vec!["lb", "backend", "add", "203.0.113.10:80/tcp", "2001:db8::2"],
            "no IPv6 outer source",
        ),
        (
            vec!["lb", "backend", "add", "203.0.113.10:80/tcp", "10.0.0.1"],
            "already in VIP",
        ),
        (
            vec!["lb", "backend", "del", "203.0.113.10:80/tcp", "10.0.0.9"],
            "has no backend",
        ),
        (vec!["lb", "vip", "add", "203.0.113.10/tcp"], "invalid VIP"),
        (
            vec![
                "lb",
                "vip",
                "add",
                "203.0.113.11:80/tcp",
                "--ring-size",
                "65536",
            ],
            "not a prime",
        ),
        (
            vec!["lb", "vip", "add", "203.0.113.11:80/tcp", "--encap", "gue"],
            "--gue-port",
        ),
        (
            vec![
                "lb",
                "vip",
                "add",
                "203.0.113.11:80/tcp",
                "--flags",
                "sticky",
            ],
            "unknown VIP flag",
        ),
        (
            vec!["lb", "config", "--source-v4", "none"],
            "no IPv4 outer source",
        ),
        (
            vec!["lb", "config", "--source-v6", "10.0.0.0/8"],
            "needs an IPv6 prefix",
        ),
        (
            vec!["lb", "config", "--next-hop", "01:00:5e:00:00:01"],
            "invalid MAC",
        ),
    ] {
        let output = bed.exec(lb, XDPATH, &args).expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(if expected == "unexpected argument" {
                2
            } else {
                1
            }),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert_eq!(snapshot(&bed), before, "{args:?} changed the state");
    }
    // And the maps were not touched: the VIP still has its one backend.
    let rows = json(&bed, lb, &["lb", "backend", "list"]);
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
}

/// The backend behind another interface of the balancer: the FIB names
/// that interface and frames leave by redirect.
#[test]
fn redirects_when_the_backend_is_behind_another_interface() {
    xdpath_lab::needs_root!();
    let mut bed = LineBed::new().expect("line bed");
    let [client, lb, backend] = bed.paths.clone();
    let run = |path: &std::path::Path, args: &[&str]| {
        let output = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    run(&backend, &[XDPATH, "decap", INTERFACE]);
    bed.start_backend().expect("nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = format!("http://{VIP4}/");
    loop {
        let answer = std::process::Command::new("nsenter")
            .arg(format!("--net={}", backend.display()))
            .args(["curl", "-s", "--max-time", "1", &url])
            .output()
            .expect("curl");
        if String::from_utf8_lossy(&answer.stdout).trim() == "b1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nginx did not start: {}",
            bed.server_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let address = bed.backend_address().expect("address");
    let vip = format!("{VIP4}:80/tcp");
    run(&lb, &[XDPATH, "attach", LINE_CLIENT_SIDE]);
    run(
        &lb,
        &[XDPATH, "lb", "config", "--source-v4", "172.16.0.0/16"],
    );
    run(&lb, &[XDPATH, "lb", "vip", "add", &vip]);
    run(&lb, &[XDPATH, "lb", "backend", "add", &vip, &address]);

    let mut args = vec![
        "curl".to_string(),
        "-s".into(),
        "--max-time".into(),
        "30".into(),
    ];
    args.extend((0..50).map(|request| format!("{url}?{request}")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let answers = run(&client, &args);
    assert_eq!(
        answers.lines().filter(|line| *line == "b1").count(),
        50,
        "{answers}"
    );

    let stats: Value =
        serde_json::from_str(&run(&lb, &[XDPATH, "--json", "stats", LINE_CLIENT_SIDE]))
            .expect("JSON");
    let redirected = stats[0]["counters"]
        .as_array()
        .expect("counters")
        .iter()
        .find(|row| row["action"] == "redirect" && row["reason"] == "lb-forwarded")
        .and_then(|row| row["packets"].as_u64())
        .unwrap_or(0);
    assert!(redirected >= 50, "{stats}");
}
