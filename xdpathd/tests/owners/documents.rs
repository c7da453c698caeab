//! Documents applied, applied again, applied on two hosts, finished after
//! a crash, applied through the CLI, and deleted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::*;

pub(crate) const VIP1: &str = "203.0.113.50:80/tcp";
pub(crate) const VIP2: &str = "[2001:db8::50]:443/tcp";

/// The driver's document for one load balancer: two listeners (an IPv4
/// VIP with an allow list, an IPv6 GUE VIP hashed on the source), their
/// members with weights, and a per-source packet limit on the first.
pub(crate) fn document() -> Value {
    json!({
        "vips": [
            { "vip": VIP1, "allow": ["2001:db8::/32", "198.51.100.0/24"] },
            { "vip": VIP2, "encap": "gue", "gue_port": 6080, "flags": ["source-hash"], "ring_size": 65537, "sample_rate": 50 },
        ],
        "backends": [
            { "vip": VIP1, "address": "10.0.0.1", "weight": 1 },
            { "vip": VIP1, "address": "10.0.0.2", "weight": 2 },
            { "vip": VIP1, "address": "2001:db8:1::3", "weight": 3 },
            { "vip": VIP2, "address": "10.0.0.1" },
            { "vip": VIP2, "address": "2001:db8:1::4", "weight": 5 },
        ],
        "limits": [{ "vip": VIP1, "pps": "1000", "burst": "2000" }],
    })
}

fn owner_path(owner: &str) -> String {
    format!("/v1/owners/{owner}")
}

/// The state files of a namespace, as text.
pub(crate) fn state_files(bed: &TestBed, side: Side) -> (String, String) {
    let dir = bed.side(side).state_dir();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    (read("lb.json"), read("filter.json"))
}

/// Applied once: in force, read back as sent; applied again (and its own
/// read-back applied): nothing written.
pub(crate) fn applied_again_changes_nothing(bed: &TestBed, daemon: &Daemon) {
    let path = owner_path(OWNER);
    let answer = driver_ok(daemon, "PUT", &path, Some(&document()));
    assert_eq!(answer["changed"], true, "{answer}");
    assert_eq!(answer["vips"], json!([VIP1, VIP2]));
    let view = driver_ok(daemon, "GET", &path, None);
    assert_eq!(view["in_force"], true, "{view}");
    assert_eq!(view["differences"], json!([]));
    let held = &view["document"];
    assert_eq!(
        held["vips"][0]["allow"],
        json!(["198.51.100.0/24", "2001:db8::/32"]),
        "sorted, as installed"
    );
    assert_eq!(held["vips"][1]["gue_port"], 6080);
    assert_eq!(
        held["vips"][1]["sample_rate"], 50,
        "the VIP's own sample rate"
    );
    assert_eq!(
        held["vips"][0]["sample_rate"],
        Value::Null,
        "the interface's rate"
    );
    assert_eq!(held["vips"][0]["owner"], OWNER);
    assert_eq!(held["backends"].as_array().map(Vec::len), Some(5));
    assert_eq!(held["limits"][0]["pps"], "1000");
    assert_eq!(held["limits"][0]["vip"], VIP1);
    let limits = driver_ok(daemon, "GET", "/v1/ratelimits", None);
    assert!(limits.to_string().contains(OWNER), "{limits}");
    let files = state_files(bed, Side::A);
    let modified = std::fs::metadata(bed.a().state_dir().join("lb.json"))
        .and_then(|meta| meta.modified())
        .expect("lb.json");
    for again in [document(), held.clone()] {
        let answer = driver_ok(daemon, "PUT", &path, Some(&again));
        assert_eq!(answer["changed"], false, "{answer}");
    }
    assert_eq!(state_files(bed, Side::A), files, "nothing rewritten");
    let still = std::fs::metadata(bed.a().state_dir().join("lb.json"))
        .and_then(|meta| meta.modified())
        .expect("lb.json");
    assert_eq!(still, modified, "lb.json untouched");
    assert_eq!(
        driver_ok(daemon, "GET", &path, None)["tables"],
        view["tables"]
    );
    let owners = driver_ok(daemon, "GET", "/v1/owners", None);
    assert_eq!(
        owners,
        json!([{ "owner": OWNER, "vips": 2, "limits": 1, "rules": 0 }])
    );
}

/// Host B gets the same document with its members in another order, after
/// an unowned VIP and backend took the first slots: its kernel's tables
/// are the same as A's, slot for slot.
pub(crate) fn two_hosts_build_the_same_tables(a: &Daemon, b: &Daemon) {
    driver_ok(
        b,
        "POST",
        "/v1/vips",
        Some(&json!({ "vip": "192.0.2.200:53/udp" })),
    );
    driver_ok(
        b,
        "POST",
        "/v1/backends",
        Some(&json!({ "vip": "192.0.2.200:53/udp", "address": "10.9.9.9" })),
    );
    let mut shuffled = document();
    if let Some(backends) = shuffled["backends"].as_array_mut() {
        backends.reverse();
    }
    driver_ok(b, "PUT", &owner_path(OWNER), Some(&shuffled));
    let view = |daemon: &Daemon| driver_ok(daemon, "GET", &owner_path(OWNER), None);
    let (on_a, on_b) = (view(a), view(b));
    assert_eq!(on_a["tables"], on_b["tables"], "digests and shares");
    for vip in [VIP1, VIP2] {
        let path = format!("/v1/vips/table?vip={}&slots=true", urlencoded(vip));
        let (table_a, table_b) = (
            driver_ok(a, "GET", &path, None),
            driver_ok(b, "GET", &path, None),
        );
        let slots = table_a["slots"].as_array().expect("slots");
        assert_eq!(slots.len(), 65537, "{vip}");
        assert!(
            slots.iter().all(|slot| slot.is_string()),
            "{vip}: every slot has a backend"
        );
        assert_eq!(table_a["slots"], table_b["slots"], "{vip}: slot for slot");
        assert_eq!(table_a["digest"], table_b["digest"]);
    }
    // The shares follow the weights 1:2:3.
    let shares = &on_a["tables"][0]["backends"];
    let share = |address: &str| shares[address].as_f64().unwrap_or(0.0) / 65537.0;
    for (address, weight) in [("10.0.0.1", 1.0), ("10.0.0.2", 2.0), ("2001:db8:1::3", 3.0)] {
        assert!(
            (share(address) - weight / 6.0).abs() < 0.01,
            "{address}: {shares}"
        );
    }
    let digests: BTreeSet<String> = on_a["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|table| table["digest"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        digests.len(),
        2,
        "two tables, two digests: {}",
        on_a["tables"]
    );
}

/// `text` percent-encoded for a query string.
pub(crate) fn urlencoded(text: &str) -> String {
    xdpath::api::daemon::query_value(text)
}

/// A journal as a call killed half-way leaves it: the daemon's next check
/// (within 2 s) installs the document and removes the journal.
pub(crate) fn an_interrupted_call_is_finished(bed: &TestBed, daemon: &Daemon) {
    let target = json!({
        "vips": [{ "vip": "203.0.113.70:80/tcp" }],
        "backends": [{ "vip": "203.0.113.70:80/tcp", "address": "10.0.0.7", "weight": 7 }],
    });
    let journal = json!({
        "format": 1, "kind": "owner-journal", "owner": "lb-9", "target": target, "before": {},
    });
    let path = bed.b().state_dir().join("owner-journal.json");
    std::fs::write(&path, journal.to_string()).expect("journal");
    let start = Instant::now();
    loop {
        let (status, view) = driver(daemon, "GET", "/v1/owners/lb-9", None);
        if status == 200 && !path.exists() {
            assert_eq!(view["document"]["backends"][0]["weight"], 7, "{view}");
            assert_eq!(view["in_force"], true, "{view}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{status} {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.log().contains("lb-9"), "the recovery is logged");
}

/// `xdpath lb owner apply` goes through the daemon (its generation counts
/// it) and prints one line; a bad name is one `xdpath: error:` line.
pub(crate) fn the_cli_applies_documents_through_the_daemon(bed: &TestBed, daemon: &Daemon) {
    let file = daemon.dir.join("lb-cli.json");
    let cli_document = json!({
        "vips": [{ "vip": "203.0.113.90:443/tcp", "allow": ["192.0.2.0/24"] }],
        "backends": [{ "vip": "203.0.113.90:443/tcp", "address": "10.0.0.9" }],
    });
    std::fs::write(&file, cli_document.to_string()).expect("document");
    let generation = |daemon: &Daemon| daemon.ok("GET", "/v1/config", None)["generation"].as_u64();
    let before = generation(daemon);
    let file_text = file.display().to_string();
    let said = daemon.xdpath(&["lb", "owner", "apply", "lb-cli", &file_text]);
    assert!(said.contains("1 VIPs"), "{said}");
    assert_eq!(generation(daemon), before.map(|at| at + 1));
    let said = daemon.xdpath(&["lb", "owner", "apply", "lb-cli", &file_text]);
    assert!(said.contains("nothing changed"), "{said}");
    let listed: Value =
        serde_json::from_str(&daemon.xdpath(&["--json", "lb", "owner", "list"])).expect("JSON");
    assert!(listed.to_string().contains("lb-cli"), "{listed}");
    let refused = daemon
        .command(&common::xdpath_cli().display().to_string())
        .args(["lb", "owner", "apply", "no/such", &file_text])
        .output()
        .expect("xdpath");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("xdpath: error: invalid owner"),
        "{stderr}"
    );
    let said = daemon.xdpath(&["lb", "owner", "delete", "lb-cli"]);
    assert!(said.contains("removed"), "{said}");
    let (lb, _) = state_files(bed, Side::A);
    assert!(!lb.contains("lb-cli"), "{lb}");
}

/// DELETE removes the owner's VIPs and limits and nothing else; again, it
/// changes nothing.
pub(crate) fn deleting_an_owner_removes_what_it_made(daemon: &Daemon) {
    let path = owner_path(OWNER);
    let answer = driver_ok(daemon, "DELETE", &path, None);
    assert_eq!(answer["changed"], true, "{answer}");
    let (status, error) = driver(daemon, "GET", &path, None);
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("no_such_owner"))
    );
    let vips = driver_ok(daemon, "GET", "/v1/vips", None).to_string();
    assert!(
        !vips.contains(OWNER) && !vips.contains("203.0.113.50"),
        "{vips}"
    );
    assert!(
        vips.contains("203.0.113.60"),
        "the unowned VIP stays: {vips}"
    );
    let limits = driver_ok(daemon, "GET", "/v1/ratelimits", None).to_string();
    assert!(!limits.contains(OWNER), "{limits}");
    let again = driver_ok(daemon, "DELETE", &path, None);
    assert_eq!(again["changed"], false, "{again}");
}
