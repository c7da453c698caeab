//! Tenant traffic in VXLAN end to end (needs root): namespace B sends real
//! VXLAN through Linux `vxlan` devices to namespace A, where xdpath runs on
//! the underlay veth with one rule, `--vni 1001 --src 192.168.1.2/32
//! --action drop`. The overlay pings from 192.168.1.2 in VNI 1001 are
//! dropped at XDP (counted as the rule's hits); those from another inner
//! source (192.168.1.3) in the same VNI are answered; those from the same
//! inner source in VNI 1002 (a `vxlan` device of B's moved to a third
//! namespace, so the tenants' addresses overlap) pass XDP untouched. With
//! the rule deleted, 192.168.1.2 is answered again; then the same with a
//! blocklist entry for VNI 1001 in place of the rule.

mod common;

use std::process::Command;

use common::{json, xdpath_ok};
use xdpath_lab::testenv::{Side, TestBed, NAMESPACE_PREFIX};

/// Pings sent per probe.
const PINGS: u32 = 5;
/// A's overlay address, and the MACs the overlay's static neighbours use.
const A_OVERLAY: &str = "192.168.1.1";
const A_VXLAN_MAC: &str = "02:19:00:00:00:01";
const B_VXLAN_MAC: &str = "02:19:00:00:00:02";
/// The inner source the rule names, and another in the same VNI.
const X: &str = "192.168.1.2";
const OTHER: &str = "192.168.1.3";

/// A namespace of the test's own (the VNI 1002 tenant), removed on drop.
struct Tenant {
    name: String,
}

impl Tenant {
    fn new(bed: &TestBed) -> Self {
        let name = format!(
            "{NAMESPACE_PREFIX}{}-{}-c",
            std::process::id(),
            bed.number()
        );
        run(&["netns", "add", &name]);
        let tenant = Self { name };
        tenant.sysctl("net.ipv6.conf.default.disable_ipv6=1");
        tenant.sysctl("net.ipv6.conf.all.disable_ipv6=1");
        tenant
    }

    fn sysctl(&self, setting: &str) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.name, "sysctl", "-q", "-w", setting])
            .status()
            .expect("sysctl");
        assert!(status.success(), "sysctl {setting} in {}", self.name);
    }
}

impl Drop for Tenant {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `ip ARGS` on the host; it must succeed.
fn run(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("ip");
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `ip -n NAMESPACE ARGS`.
fn ip_in(namespace: &str, args: &[&str]) {
    let mut all = vec!["-n", namespace];
    all.extend_from_slice(args);
    run(&all);
}

/// A VXLAN device `name` with `vni` in `side`'s namespace, over the bed's
/// veth toward the other side.
fn vxlan(bed: &TestBed, side: Side, name: &str, vni: u32, mac: &str) {
    let (local, remote) = match side {
        Side::A => (bed.a(), bed.b()),
        Side::B => (bed.b(), bed.a()),
    };
    ip_in(
        &local.namespace,
        &[
            "link",
            "add",
            name,
            "address",
            mac,
            "type",
            "vxlan",
            "id",
            &vni.to_string(),
            "local",
            &local.ipv4.to_string(),
            "remote",
            &remote.ipv4.to_string(),
            "dstport",
            "4789",
            "dev",
            &local.interface,
        ],
    );
}

/// Brings `device` up in `namespace` with `addresses` and a permanent
/// neighbour for `peer` (no ARP in the overlay: every frame is counted).
fn overlay(namespace: &str, device: &str, addresses: &[&str], peer: (&str, &str)) {
    for address in addresses {
        ip_in(
            namespace,
            &["addr", "add", &format!("{address}/24"), "dev", device],
        );
    }
    ip_in(namespace, &["link", "set", device, "up"]);
    ip_in(
        namespace,
        &[
            "neigh",
            "replace",
            peer.0,
            "lladdr",
            peer.1,
            "dev",
            device,
            "nud",
            "permanent",
        ],
    );
}

/// Pings A's overlay address from `source` in `namespace`; the replies.
fn ping(namespace: &str, source: &str) -> u32 {
    let output = Command::new("ip")
        .args(["netns", "exec", namespace, "ping", "-n", "-q", "-c"])
        .arg(PINGS.to_string())
        .args(["-i", "0.1", "-W", "1", "-I", source, A_OVERLAY])
        .output()
        .expect("ping");
    let text = String::from_utf8_lossy(&output.stdout);
    text.split(", ")
        .find_map(|part| part.strip_suffix(" received"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or_else(|| panic!("ping's summary: {text}"))
}

/// The rule's hits, and the packets xdpath passed as UDP over IPv4.
fn observed(bed: &TestBed) -> (u64, u64) {
    let rules = json(&xdpath_ok(bed, &["--json", "filter", "list"]));
    let hits = rules["rules"]
        .as_array()
        .and_then(|rules| rules.first())
        .map_or(0, |rule| rule["hits"].as_u64().expect("hits"));
    let stats = json(&xdpath_ok(bed, &["--json", "stats"]));
    let passed = common::counted(&stats, "pass", "ipv4-udp");
    (hits, passed)
}

#[test]
fn a_vni_rule_drops_its_inner_source_in_its_vni_and_nothing_else() {
    xdpath_lab::needs_root!();
    let bed = common::bed();
    let tenant = Tenant::new(&bed);
    let (a, b) = (bed.a().namespace.clone(), bed.b().namespace.clone());
    vxlan(&bed, Side::A, "vx1001", 1001, A_VXLAN_MAC);
    overlay(&a, "vx1001", &[A_OVERLAY], (X, B_VXLAN_MAC));
    ip_in(
        &a,
        &[
            "neigh",
            "replace",
            OTHER,
            "lladdr",
            B_VXLAN_MAC,
            "dev",
            "vx1001",
            "nud",
            "permanent",
        ],
    );
    vxlan(&bed, Side::B, "vx1001", 1001, B_VXLAN_MAC);
    overlay(&b, "vx1001", &[X, OTHER], (A_OVERLAY, A_VXLAN_MAC));
    // VNI 1002: made in B (its underlay stays B's), moved to the tenant's
    // namespace, where it has X's address too.
    vxlan(&bed, Side::B, "vx1002", 1002, B_VXLAN_MAC);
    ip_in(&b, &["link", "set", "vx1002", "netns", &tenant.name]);
    overlay(&tenant.name, "vx1002", &[X], (A_OVERLAY, A_VXLAN_MAC));

    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "native"]);
    assert_eq!(
        ping(&b, X),
        PINGS,
        "before the rule, X is answered over VNI 1001"
    );
    let id = xdpath_ok(
        &bed,
        &[
            "filter",
            "add",
            "--vni",
            "1001",
            "--src",
            "192.168.1.2/32",
            "--action",
            "drop",
        ],
    );
    assert!(!id.trim().is_empty(), "filter add prints the id");

    let (hits, _) = observed(&bed);
    assert_eq!(ping(&b, X), 0, "X in VNI 1001 is dropped");
    let (after_x, passed) = observed(&bed);
    assert_eq!(
        after_x - hits,
        u64::from(PINGS),
        "each of X's pings hit the rule"
    );

    assert_eq!(
        ping(&b, OTHER),
        PINGS,
        "another inner source in VNI 1001 is answered"
    );
    let (after_other, passed_other) = observed(&bed);
    assert_eq!(after_other, after_x, "no hit for another inner source");
    assert_eq!(
        passed_other - passed,
        u64::from(PINGS),
        "its frames were passed"
    );

    // A has no VNI 1002 device, so no answers: xdpath's counters show the
    // frames passed the filter.
    assert_eq!(ping(&tenant.name, X), 0, "VNI 1002 has no peer in A");
    let (after_tenant, passed_tenant) = observed(&bed);
    assert_eq!(after_tenant, after_x, "no hit for X in VNI 1002");
    assert_eq!(
        passed_tenant - passed_other,
        u64::from(PINGS),
        "X's frames in VNI 1002 passed"
    );

    xdpath_ok(&bed, &["filter", "del", id.trim()]);
    assert_eq!(ping(&b, X), PINGS, "without the rule X is answered again");

    block_by_vni(&bed, &b, &tenant);
}

/// The blocklist by VNI on the same traffic: X blocked in VNI 1001 is
/// dropped (counted as blocklisted), OTHER and X in VNI 1002 are not; the
/// entry is listed with its VNI and removed only by naming it.
fn block_by_vni(bed: &TestBed, b: &str, tenant: &Tenant) {
    let blocked = |bed: &TestBed| {
        let stats = json(&xdpath_ok(bed, &["--json", "stats"]));
        common::counted(&stats, "drop", "blocklisted")
    };
    xdpath_ok(
        bed,
        &[
            "block",
            "add",
            "192.168.1.2/32",
            "--vni",
            "1001",
            "--ttl",
            "1h",
        ],
    );
    xdpath_ok(bed, &["block", "add", "10.255.0.0/16"]);
    let list = json(&xdpath_ok(bed, &["--json", "block", "list"]));
    assert_eq!(list[0]["prefix"], "192.168.1.2/32");
    assert_eq!(list[0]["vni"], 1001);
    assert_eq!(list[1]["vni"], serde_json::Value::Null);
    let check = json(&xdpath_ok(bed, &["--json", "state", "check"]));
    assert_eq!(
        check["differences"],
        serde_json::json!([]),
        "the kernel's tries read back as the state"
    );
    let before = blocked(bed);
    assert_eq!(ping(b, X), 0, "X is blocked in VNI 1001");
    assert_eq!(
        blocked(bed) - before,
        u64::from(PINGS),
        "counted as blocklisted"
    );
    assert_eq!(ping(b, OTHER), PINGS, "OTHER is not in the blocked prefix");
    assert_eq!(ping(&tenant.name, X), 0, "VNI 1002 has no peer in A");
    assert_eq!(
        blocked(bed) - before,
        u64::from(PINGS),
        "X in VNI 1002 is not blocked"
    );
    let refused = common::xdpath(bed, &["block", "del", "192.168.1.2/32"]);
    assert!(!refused.status.success(), "the plain entry does not exist");
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.starts_with("xdpath: error:") && message.contains("not on the blocklist"),
        "{message}"
    );
    assert_eq!(ping(b, X), 0, "a refused del changes nothing");
    xdpath_ok(bed, &["block", "del", "192.168.1.2/32", "--vni", "1001"]);
    assert_eq!(ping(b, X), PINGS, "unblocked, X is answered again");
}
