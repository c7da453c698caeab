//! The desired state is on disk and outlives the data path: with the
//! namespace's pins gone (as after a reboot, bpffs being in memory), a
//! starting daemon installs the saved blocklist, rules and VIPs into new
//! maps and attaches the interface again, so the blocked address is
//! dropped at XDP once more with nothing done by hand.
//!
//! Needs root and ping.

mod common;

use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

use common::Daemon;

fn blocklisted(daemon: &Daemon) -> u64 {
    let stats: Value =
        serde_json::from_str(&daemon.xdpath(&["--json", "stats"])).expect("stats JSON");
    xdpath::stats::packets_in_json(&stats, "drop", Some("blocklisted"))
}

fn ping_answered(bed: &TestBed) -> bool {
    let target = bed.a().ipv4.to_string();
    bed.exec(
        Side::B,
        "ping",
        ["-c", "3", "-i", "0.2", "-W", "1", &target],
    )
    .map(|output| output.status.success())
    .unwrap_or(false)
}

#[test]
fn saved_state_is_installed_into_new_maps() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let path = bed.a().path.clone();
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
    let interface = bed.a().interface.clone();
    let blocked = format!("{}/32", bed.b().ipv4);
    {
        let daemon = Daemon::start("reboot-1", enter(), &[]);
        daemon.xdpath(&["attach", &interface]);
        daemon.ok(
            "POST",
            "/v1/blocklist",
            Some(&format!(r#"{{"prefix":"{blocked}"}}"#)),
        );
        daemon.ok(
            "POST",
            "/v1/rules",
            Some(r#"{"src":"198.51.100.0/24","action":"drop"}"#),
        );
        daemon.xdpath(&["lb", "config", "--source-v4", "172.16.0.0/16"]);
        daemon.ok("POST", "/v1/vips", Some(r#"{"vip":"203.0.113.10:80/tcp"}"#));
        assert!(!ping_answered(&bed), "blocked before the reboot");
        assert!(blocklisted(&daemon) > 0);
    }
    // "Reboot": the data path is gone (links, programs, maps), the saved
    // state on disk is not.
    let pins = bed.a().pin_dir();
    std::fs::remove_dir_all(&pins).expect("remove the pins");
    assert!(ping_answered(&bed), "no data path, no drops");

    let daemon = Daemon::start("reboot-2", enter(), &[]);
    let blocks = daemon.ok("GET", "/v1/blocklist", None);
    assert_eq!(blocks[0]["prefix"], blocked.as_str(), "{blocks}");
    let rules = daemon.ok("GET", "/v1/rules", None);
    assert_eq!(rules[0]["sources"][0], "198.51.100.0/24", "{rules}");
    let vips = daemon.ok("GET", "/v1/vips", None);
    assert_eq!(vips[0]["vip"], "203.0.113.10:80/tcp", "{vips}");
    // The daemon attached the interface again itself, as it was, before
    // it answered: nothing for the operator to do after a reboot.
    let status = daemon.xdpath(&["--json", "status"]);
    assert!(status.contains(&interface), "{status}");
    assert!(!ping_answered(&bed), "the saved blocklist drops again");
    assert!(blocklisted(&daemon) > 0, "counted as blocklisted");
}

/// The daemon's watch: a kernel that diverges from the saved state behind
/// its back — every pin removed (maps and program gone), then the
/// interface's link detached by another tool (`bpftool link detach`) — is
/// put right within a few seconds, logged and counted in `/metrics`.
#[test]
fn a_kernel_that_diverges_is_repaired_within_seconds() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let path = bed.a().path.clone();
    let daemon = Daemon::start(
        "diverge",
        Box::new(move |program: &str| common::in_namespace(&path, program)),
        &[],
    );
    let interface = bed.a().interface.clone();
    daemon.xdpath(&["attach", &interface, "--mode", "generic"]);
    let blocked = format!("{}/32", bed.b().ipv4);
    daemon.ok(
        "POST",
        "/v1/blocklist",
        Some(&format!(r#"{{"prefix":"{blocked}"}}"#)),
    );
    assert!(!ping_answered(&bed), "blocked");
    let divergences = |daemon: &Daemon| -> u64 {
        let (_, metrics) = daemon.call("GET", "/metrics", None);
        metrics
            .as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("xdpath_state_divergences_total "))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    let repaired_within = |what: &str, before: u64| {
        let started = std::time::Instant::now();
        while divergences(&daemon) <= before {
            assert!(
                // Making the maps and attaching load the program twice
                // (about 4.5 s of verifier each here), after up to 2 s.
                started.elapsed() < std::time::Duration::from_secs(20),
                "{what}: not repaired within 20 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert!(!ping_answered(&bed), "{what}: blocked again");
        eprintln!("{what}: repaired after {:?}", started.elapsed());
    };

    let before = divergences(&daemon);
    std::fs::remove_dir_all(bed.a().pin_dir()).expect("remove the pins");
    repaired_within("pins removed", before);

    let before = divergences(&daemon);
    let link = bed.a().pin_dir().join(&interface).join("link");
    let detached = std::process::Command::new("bpftool")
        .args(["link", "detach", "pinned"])
        .arg(&link)
        .status()
        .expect("bpftool");
    assert!(detached.success(), "bpftool link detach");
    repaired_within("link detached by another tool", before);
    assert!(
        daemon
            .log()
            .contains("the kernel diverged from the saved state"),
        "{}",
        daemon.log()
    );
}
