//! The load balancer end to end, on one L2 segment: a client, two
//! balancers (xdpath attached on a stick, next hop from the kernel's FIB
//! and static neighbours) and three backends running nginx behind
//! `xdpath decap` (the VIPs on their loopback, direct server return). See
//! `xdpath_lab::testenv::lb`.
//!
//! Needs root, nginx, curl and python3.

mod common;
#[path = "lb_e2e/harness.rs"]
mod harness;
#[path = "lb_e2e/scenarios.rs"]
mod scenarios;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath_lab::testenv::lb::{
    big_file, LbBed, LineBed, Role, BIG_FILE_BYTES, GUE_PORT, INTERFACE, LINE_CLIENT_SIDE,
    PY_ASK_BACKEND, VIP4, VIP6,
};

use common::{xdpath_ok_in, XDPATH};
use harness::*;
use scenarios::*;

#[test]
fn balances_http_across_backends_in_namespaces() {
    xdpath_lab::needs_root!();
    let mut bed = LbBed::new().expect("bed");
    for role in Role::BACKENDS {
        let gue = GUE_PORT.to_string();
        xdpath_ok_in(&bed, role, &["decap", INTERFACE, "--gue-port", &gue]);
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

/// Refused commands: a clear error, exit status 1, nothing changed.
// Long: a table of refused commands and the error each must give.
#[test]
fn refused_lb_commands_change_nothing() {
    xdpath_lab::needs_root!();
    let bed = LbBed::new().expect("bed");
    let lb = Role::Lb1;
    xdpath_ok_in(&bed, lb, &["lb", "config", "--source-v4", "172.16.0.0/16"]);
    xdpath_ok_in(&bed, lb, &["lb", "vip", "add", "203.0.113.10:80/tcp"]);
    xdpath_ok_in(
        &bed,
        lb,
        &["lb", "backend", "add", "203.0.113.10:80/tcp", "10.0.0.1"],
    );
    xdpath_ok_in(&bed, lb, &["lb", "vip", "add", "203.0.113.10:*/tcp"]);
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
            // The prober could never check it (hostile lb F8).
            vec!["lb", "vip", "health", "203.0.113.10:*/tcp", "http"],
            "no port to check (an all-ports VIP needs a check port)",
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
        (
            vec!["lb", "config", "--mtu", "599"],
            "xdpath: error: --mtu 599 is out of range: 0 (only the egress device's MTU) or 600 to 65535",
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
