//! The balancer commands the Octavia work added, run by the CLI on the
//! state itself (no daemon): `lb vip set` (idempotent), `lb vip allow`,
//! `lb vip health` with a list of statuses, `lb config`, `lb vip table`,
//! `ratelimit add --vip`, and `lb owner apply|show|list|delete`. The same
//! owner document in namespaces A and B gives the same table digests; a
//! refusal is one `xdpath: error:` line and changes nothing.
//!
//! Every command runs in a namespace of its own test bed (needs root).

mod common;

use common::cli::{one_error, run_in, QUICK};
use common::{bed, json, xdpath_in};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

const VIP: &str = "203.0.113.40:443/tcp";
/// A fixed next hop: no warning that forwarding is off.
const NEXT_HOP: &str = "02:00:00:00:00:01";

/// `xdpath ARGS` in `side`; it must succeed quietly. Its stdout.
fn ok(bed: &TestBed, side: Side, args: &[&str]) -> String {
    let output = xdpath_in(bed, side, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.is_empty(),
        "xdpath {args:?}: {stderr}"
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn vip_row(bed: &TestBed, side: Side, vip: &str) -> Value {
    let rows = json(&ok(bed, side, &["--json", "lb", "vip", "list"]));
    rows.as_array()
        .and_then(|rows| rows.iter().find(|row| row["vip"] == vip))
        .cloned()
        .unwrap_or(Value::Null)
}

/// What a refused command must leave alone.
fn snapshot(bed: &TestBed) -> Vec<Value> {
    [
        &["lb", "config"][..],
        &["lb", "vip", "list"],
        &["lb", "backend", "list"],
        &["ratelimit", "list"],
        &["lb", "owner", "list"],
    ]
    .iter()
    .map(|args| {
        let mut args = args.to_vec();
        args.insert(0, "--json");
        json(&ok(bed, Side::A, &args))
    })
    .collect()
}

fn refused(bed: &TestBed, args: &[&str], needles: &[&str]) {
    let before = snapshot(bed);
    let run = run_in(bed, Side::A, args, QUICK);
    one_error(&run, 1, needles);
    assert_eq!(snapshot(bed), before, "{args:?} changed the state");
}

/// A command line's words.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn vip_settings_allow_lists_health_and_limits() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let a = Side::A;
    let config =
        format!("--json lb config --source-v4 172.16.0.0/16 --seed 9 --next-hop {NEXT_HOP}");
    let settings = json(&ok(&bed, a, &words(&config)));
    assert_eq!(settings["seed"], 9, "{settings}");
    let set = |allow: &str| {
        ok(
            &bed,
            a,
            &words(&format!("lb vip set {VIP} --allow {allow}")),
        )
    };
    let said = set("198.51.100.0/24,2001:db8::/32");
    assert!(said.contains("added"), "{said}");
    let said = set("2001:db8::/32,198.51.100.0/24");
    assert!(said.contains("as asked"), "{said}");
    let sorted = serde_json::json!(["198.51.100.0/24", "2001:db8::/32"]);
    assert_eq!(vip_row(&bed, a, VIP)["allow"], sorted);
    let said = ok(&bed, a, &words(&format!("lb vip allow {VIP} 192.0.2.7")));
    assert!(said.contains("1 allowed source"), "{said}");
    let host = serde_json::json!(["192.0.2.7/32"]);
    assert_eq!(vip_row(&bed, a, VIP)["allow"], host);
    let listed = ok(&bed, a, &words("lb vip list"));
    assert!(listed.contains("allow 192.0.2.7/32"), "{listed}");
    ok(
        &bed,
        a,
        &words(&format!("lb backend add {VIP} 10.0.0.5 --weight 3")),
    );
    let health = format!("lb vip health {VIP} http --status 200-204,301 --interval 1s");
    let said = ok(&bed, a, &words(&health));
    assert!(said.contains("200-204,301"), "{said}");
    let shown = vip_row(&bed, a, VIP)["health"].clone();
    assert!(
        shown
            .as_str()
            .is_some_and(|text| text.contains("200-204,301")),
        "{shown}"
    );
    let id = ok(
        &bed,
        a,
        &words(&format!("ratelimit add --pps 100 --vip {VIP} --owner lb-x")),
    );
    let limits = json(&ok(&bed, a, &words("--json ratelimit list")));
    let limit = &limits[0];
    assert_eq!(
        limit["id"].as_u64().map(|id| id.to_string()),
        Some(id.trim().to_string())
    );
    assert_eq!(limit["vip"], VIP, "{limit}");
    assert_eq!(limit["to"], "203.0.113.40/32", "{limit}");
    assert_eq!(limit["protocol"], 6, "{limit}");
    let table = json(&ok(&bed, a, &words(&format!("--json lb vip table {VIP}"))));
    assert_eq!(table["backends"]["10.0.0.5"], 65537, "{table}");
    assert_eq!(table["in_kernel"], true, "{table}");
    assert!(table["slots"].is_null(), "slots only when asked");
    refusals(&bed);
}

/// Each refused with one line naming what is wrong, changing nothing.
fn refusals(bed: &TestBed) {
    let cases = [
        (format!("lb vip allow {VIP} 10.0.0.1/8"), "10.0.0.1/8"),
        ("lb vip allow 203.0.113.41:443/tcp".to_string(), "no VIP"),
        (
            format!("lb vip health {VIP} http --status 200-600"),
            "200-600",
        ),
        (format!("lb vip set {VIP} --owner lb-x"), "unowned"),
        (
            "lb vip add 203.0.113.42:80/tcp --owner a/b".to_string(),
            "invalid owner",
        ),
        (
            format!("ratelimit add --pps 5 --vip {VIP} --scope 10.0.0.0/8"),
            "--scope",
        ),
        (
            format!("ratelimit add --pps 5 --vip {VIP} --proto udp"),
            "--proto",
        ),
        (
            "lb config --source-v4 2001:db8::/64".to_string(),
            "--source-v4",
        ),
    ];
    for (line, needle) in &cases {
        refused(bed, &words(line), &[needle]);
    }
}

/// The owner document of one load balancer, written to a file.
fn document_file(bed: &TestBed, name: &str, reverse: bool) -> String {
    let mut backends = vec![
        serde_json::json!({ "vip": VIP, "address": "10.0.0.1", "weight": 1 }),
        serde_json::json!({ "vip": VIP, "address": "10.0.0.2", "weight": 4 }),
    ];
    if reverse {
        backends.reverse();
    }
    let document = serde_json::json!({
        "vips": [{ "vip": VIP, "allow": ["198.51.100.0/24"] }],
        "backends": backends,
        "health": [{ "vip": VIP, "kind": "tcp", "interval": "2s" }],
        "limits": [{ "vip": VIP, "pps": "500" }],
        "rules": [{ "dst": "203.0.113.40/32", "proto": "udp", "action": "drop" }],
    });
    let path = std::env::temp_dir().join(format!(
        "xdpath-owner-{name}-{}-{}.json",
        std::process::id(),
        bed.number()
    ));
    std::fs::write(&path, document.to_string()).expect("document");
    path.display().to_string()
}

#[test]
fn owner_documents_through_the_cli() {
    xdpath_lab::needs_root!();
    let bed = bed();
    for side in [Side::A, Side::B] {
        ok(
            &bed,
            side,
            &[
                "lb",
                "config",
                "--source-v4",
                "172.16.0.0/16",
                "--next-hop",
                NEXT_HOP,
            ],
        );
    }
    let forward = document_file(&bed, "forward", false);
    let reversed = document_file(&bed, "reversed", true);
    let said = ok(&bed, Side::A, &["lb", "owner", "apply", "lb-1", &forward]);
    assert!(said.contains("1 VIPs, 1 rate limits and 1 rules"), "{said}");
    let lb_json = bed.a().state_dir().join("lb.json");
    let before = std::fs::read_to_string(&lb_json).expect("lb.json");
    let said = ok(&bed, Side::A, &["lb", "owner", "apply", "lb-1", &forward]);
    assert!(said.contains("nothing changed"), "{said}");
    assert_eq!(std::fs::read_to_string(&lb_json).expect("lb.json"), before);
    ok(&bed, Side::B, &["lb", "vip", "add", "192.0.2.9:53/udp"]);
    ok(&bed, Side::B, &["lb", "owner", "apply", "lb-1", &reversed]);
    let show = |side| json(&ok(&bed, side, &["lb", "owner", "show", "lb-1"]));
    let (on_a, on_b) = (show(Side::A), show(Side::B));
    assert_eq!(on_a["tables"], on_b["tables"], "the same table on both");
    assert_eq!(on_a["in_force"], true, "{on_a}");
    assert_eq!(on_a["document"]["health"][0]["kind"], "tcp");
    let owners = json(&ok(&bed, Side::A, &["--json", "lb", "owner", "list"]));
    assert_eq!(
        owners,
        serde_json::json!([{ "owner": "lb-1", "vips": 1, "limits": 1, "rules": 1 }])
    );
    refused(
        &bed,
        &["lb", "owner", "apply", "lb-2", &forward],
        &["owned by", "lb-1"],
    );
    refused(
        &bed,
        &["lb", "owner", "apply", "..", &forward],
        &["invalid owner"],
    );
    refused(&bed, &["lb", "owner", "show", "nobody"], &["no owner"]);
    let missing = format!("{forward}.missing");
    refused(
        &bed,
        &["lb", "owner", "apply", "lb-1", &missing],
        &["missing"],
    );
    refused(&bed, &["lb", "vip", "add", VIP], &["already exists"]);
    // An owner's rule and limit are changed through its document only.
    let first_id = |rows: &Value| rows[0]["id"].as_u64().expect("an id").to_string();
    let rules = json(&ok(&bed, Side::A, &["--json", "filter", "list"]));
    let limits = json(&ok(&bed, Side::A, &["--json", "ratelimit", "list"]));
    let (rule, limit) = (first_id(&rules["rules"]), first_id(&limits));
    refused(
        &bed,
        &["filter", "del", &rule],
        &["rule", "owner", "lb-1", "document"],
    );
    refused(
        &bed,
        &["ratelimit", "del", &limit],
        &["rate limit", "owner", "lb-1", "document"],
    );
    let still = json(&ok(&bed, Side::A, &["--json", "filter", "list"]));
    assert_eq!(still, rules, "a refused del changed the rules");
    // So are its VIP, the VIP's backends, allowed sources and health check.
    let document = json(&ok(&bed, Side::A, &["lb", "owner", "show", "lb-1"]))["document"].clone();
    for line in [
        format!("lb vip del {VIP}"),
        format!("lb backend add {VIP} 10.0.0.3"),
        format!("lb backend set-weight {VIP} 10.0.0.1 0"),
        format!("lb backend del {VIP} 10.0.0.2"),
        format!("lb vip allow {VIP} 10.0.0.0/8"),
        format!("lb vip health {VIP} off"),
        format!("lb vip health {VIP} tcp"),
    ] {
        refused(
            &bed,
            &words(&line),
            &["VIP", VIP, "owner", "lb-1", "document"],
        );
    }
    let shown = json(&ok(&bed, Side::A, &["lb", "owner", "show", "lb-1"]));
    assert_eq!(
        shown["document"], document,
        "a refused change reached the document"
    );
    // `lb flush` removes the operator's VIPs only.
    ok(&bed, Side::A, &["lb", "vip", "add", "192.0.2.10:80/tcp"]);
    let said = ok(&bed, Side::A, &["lb", "flush"]);
    assert!(said.contains("but owners' (1"), "{said}");
    assert!(vip_row(&bed, Side::A, "192.0.2.10:80/tcp").is_null());
    assert!(
        !vip_row(&bed, Side::A, VIP).is_null(),
        "flush took the owner's VIP"
    );
    // `filter flush` and `filter load` replace the operator's rules only.
    ok(
        &bed,
        Side::A,
        &["filter", "add", "--src", "10.9.0.0/16", "--action", "drop"],
    );
    let said = ok(&bed, Side::A, &["filter", "flush"]);
    assert!(said.contains("but owners' (1"), "{said}");
    let flushed = json(&ok(&bed, Side::A, &["--json", "filter", "list"]));
    assert_eq!(flushed, rules, "flush took the owner's rule");
    let rule_file = format!("{forward}.rules");
    std::fs::write(&rule_file, "10.8.0.0/16\n").expect("rule file");
    ok(&bed, Side::A, &["filter", "load", &rule_file]);
    let loaded = json(&ok(&bed, Side::A, &["--json", "filter", "list"]));
    let rows = loaded["rules"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 2, "{loaded}");
    assert_eq!(rows.get(1), rules["rules"].get(0), "the owner's rule, last");
    assert_ne!(
        first_id(&loaded["rules"]),
        rule,
        "the file's rule took the owner's id"
    );
    let _ = std::fs::remove_file(rule_file);
    ok(&bed, Side::A, &["filter", "flush"]);
    let said = ok(&bed, Side::A, &["lb", "owner", "delete", "lb-1"]);
    assert!(said.contains("removed"), "{said}");
    assert!(vip_row(&bed, Side::A, VIP).is_null());
    let limits = json(&ok(&bed, Side::A, &["--json", "ratelimit", "list"]));
    assert_eq!(limits, serde_json::json!([]));
    let rules = json(&ok(&bed, Side::A, &["--json", "filter", "list"]));
    assert_eq!(rules["rules"], serde_json::json!([]));
    for file in [forward, reversed] {
        let _ = std::fs::remove_file(file);
    }
}

/// Writes a config file for the bed; its path.
fn config_file(bed: &TestBed, name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!(
        "xdpath-owner-config-{name}-{}-{}.toml",
        std::process::id(),
        bed.number()
    ));
    std::fs::write(&path, text).expect("config");
    path.display().to_string()
}

/// A config file sets a VIP's allowed sources (`allow`, each mistake at
/// its item), names no owner, and leaves owners' VIPs and limits alone:
/// applying it keeps them, and one naming an owned VIP is refused.
#[test]
fn config_files_take_allow_lists_and_leave_owners_alone() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let settings = format!("[lb]\nsource_v4 = \"172.16.0.0/16\"\nnext_hop = \"{NEXT_HOP}\"\n");
    ok(
        &bed,
        Side::A,
        &words(&format!(
            "lb config --source-v4 172.16.0.0/16 --next-hop {NEXT_HOP}"
        )),
    );
    let document = document_file(&bed, "config", false);
    ok(&bed, Side::A, &["lb", "owner", "apply", "lb-1", &document]);
    let owned = json(&ok(&bed, Side::A, &["lb", "owner", "show", "lb-1"]))["document"].clone();
    let vip = "[[lb.vip]]\nvip = \"203.0.113.41:80/tcp\"\n";
    let good = format!("{settings}{vip}allow = [\"2001:db8::/32\", \"198.51.100.0/24\"]\n");
    let file = config_file(&bed, "good", &good);
    ok(&bed, Side::A, &["apply", "-f", &file]);
    let row = vip_row(&bed, Side::A, "203.0.113.41:80/tcp");
    assert_eq!(
        row["allow"],
        serde_json::json!(["198.51.100.0/24", "2001:db8::/32"])
    );
    let shown = json(&ok(&bed, Side::A, &["lb", "owner", "show", "lb-1"]));
    assert_eq!(
        shown["document"], owned,
        "the owner's VIPs and limits are as they were"
    );
    let planned = ok(&bed, Side::A, &["plan", "-f", &file]);
    assert!(planned.contains("no changes"), "{planned}");
    let cases = [
        (
            format!("{settings}{vip}allow = [\"10.0.0.0/8\", \"10.0.0.1/8\"]\n"),
            "lb.vip[0].allow[1]",
        ),
        (
            format!("{settings}{vip}owner = \"lb-1\"\n"),
            "lb.vip[0].owner",
        ),
        (
            format!("{settings}[[lb.vip]]\nvip = \"{VIP}\"\n"),
            "owned by",
        ),
    ];
    for (index, (text, needle)) in cases.iter().enumerate() {
        let before = snapshot(&bed);
        let file = config_file(&bed, &format!("bad{index}"), text);
        let run = run_in(&bed, Side::A, &["apply", "-f", file.as_str()], QUICK);
        assert_eq!(run.code(), Some(1), "{text}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{text}: {}", run.stderr);
        assert_eq!(snapshot(&bed), before, "{text} changed the state");
        let _ = std::fs::remove_file(file);
    }
    for path in [file, document] {
        let _ = std::fs::remove_file(path);
    }
}
