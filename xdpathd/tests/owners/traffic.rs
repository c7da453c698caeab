//! An owner's VIP on real traffic: xdpath attached to side A's veth, side
//! B routing the VIP through A. A source outside the VIP's allow list is
//! dropped at XDP (`lb-not-allowed`) and counted in the VIP's drops; once
//! the list holds it, its SYNs are forwarded, counted as packets and new
//! flows, and the connection table's entries show as active connections.

use std::time::{Duration, Instant};

use super::*;

const VIP: &str = "203.0.113.80:80/tcp";
const OWNER_T: &str = "lb-traffic";

fn document(allow: &[String]) -> Value {
    json!({
        "vips": [{ "vip": VIP, "allow": allow }],
        "backends": [{ "vip": VIP, "address": "10.0.0.1", "weight": 1 }],
    })
}

/// The owner's row of its VIP.
fn vip_row(daemon: &Daemon) -> Value {
    let view = driver_ok(daemon, "GET", &format!("/v1/owners/{OWNER_T}"), None);
    view["vips"][0].clone()
}

/// A connection attempt from B to the VIP (a SYN, retried within the
/// second); nothing answers.
fn connect_from_b(bed: &TestBed) {
    let output = bed
        .exec(
            Side::B,
            "curl",
            [
                "-s",
                "--max-time",
                "1",
                &format!("http://{}/", VIP.trim_end_matches(":80/tcp")),
            ],
        )
        .expect("curl");
    assert!(!output.status.success(), "nothing answers for the VIP");
}

/// Waits until `test` holds for the VIP's row.
fn wait_for_row(daemon: &Daemon, what: &str, test: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let row = vip_row(daemon);
        if test(&row) {
            return row;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: {row}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn allow_lists_and_counters(bed: &TestBed, daemon: &Daemon) {
    daemon.xdpath(&["attach", &bed.a().interface]);
    let settings = json!({ "source_v4": "172.16.0.0/16", "next_hop": bed.b().mac_string() });
    driver_ok(daemon, "PUT", "/v1/lb/config", Some(&settings));
    let vip_address = VIP.trim_end_matches(":80/tcp");
    bed.exec_ok(
        Side::B,
        "ip",
        [
            "route",
            "add",
            &format!("{vip_address}/32"),
            "via",
            &bed.a().ipv4.to_string(),
        ],
    )
    .expect("a route to the VIP through A");
    driver_ok(
        daemon,
        "PUT",
        &format!("/v1/owners/{OWNER_T}"),
        Some(&document(&["198.51.100.0/24".to_string()])),
    );
    connect_from_b(bed);
    let refused = wait_for_row(daemon, "B's SYNs refused", |row| {
        row["drops"]["not_allowed"].as_u64() >= Some(1)
    });
    assert_eq!(refused["counters"]["packets"], 0, "{refused}");
    assert_eq!(refused["active_connections"], 0, "{refused}");
    let stats = daemon.ok("GET", "/v1/stats", None).to_string();
    assert!(stats.contains("lb-not-allowed"), "{stats}");
    let metrics = daemon.ok("GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default();
    let sample = format!("xdpath_lb_vip_drops_total{{vip=\"{VIP}\",reason=\"not_allowed\"}} ");
    let counted = metrics
        .lines()
        .find_map(|line| line.strip_prefix(sample.as_str()))
        .and_then(|value| value.trim().parse::<u64>().ok());
    assert!(counted >= Some(1), "{sample} in:\n{metrics}");
    let not_allowed = refused["drops"]["not_allowed"].as_u64().unwrap_or(0);

    let b_only = format!("{}/32", bed.b().ipv4);
    driver_ok(
        daemon,
        "PUT",
        &format!("/v1/owners/{OWNER_T}"),
        Some(&document(&[b_only])),
    );
    connect_from_b(bed);
    let forwarded = wait_for_row(daemon, "B's SYNs forwarded", |row| {
        row["counters"]["packets"].as_u64() >= Some(1)
    });
    assert!(
        forwarded["counters"]["new_flows"].as_u64() >= Some(1),
        "{forwarded}"
    );
    assert!(
        forwarded["counters"]["bytes"].as_u64() >= Some(54),
        "{forwarded}"
    );
    assert!(
        forwarded["active_connections"].as_u64() >= Some(1),
        "{forwarded}"
    );
    assert_eq!(
        forwarded["drops"]["not_allowed"].as_u64(),
        Some(not_allowed),
        "{forwarded}"
    );
    let listed = daemon.xdpath(&["lb", "vip", "list"]);
    assert!(
        listed.contains(&format!("allow {}/32", bed.b().ipv4)),
        "{listed}"
    );
    driver_ok(daemon, "DELETE", &format!("/v1/owners/{OWNER_T}"), None);
    daemon.xdpath(&["detach", &bed.a().interface]);
}
