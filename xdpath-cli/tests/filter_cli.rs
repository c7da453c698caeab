//! The filter's control commands through the `xdpath` binary inside a test
//! namespace (`nsenter --net=/run/netns/A`): round trips, and bad input
//! that must fail with one `xdpath: error: ...` line, exit status 1, and
//! change nothing (`filter list --json`, `ratelimit list --json`,
//! `block list --json` and the state file are the same before and after).
//!
//! Needs root.

use std::io::Write;

use serde_json::Value;
use xdpath_lab::testenv::TestBed;

mod common;
use common::{bed, xdpath, xdpath_ok_warned};

fn json(bed: &TestBed, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&xdpath_ok_warned(bed, &args)).expect("JSON output")
}

/// What a refused command must leave alone.
fn snapshot(bed: &TestBed) -> (Value, Value, Value, Value) {
    (
        json(bed, &["filter", "list"]),
        json(bed, &["ratelimit", "list"]),
        json(bed, &["block", "list"]),
        json(bed, &["mgmt", "list"]),
    )
}

/// Runs a command that must fail: exit 1, one stderr line naming `needle`.
fn refused(bed: &TestBed, args: &[&str], needle: &str) {
    let before = snapshot(bed);
    let output = xdpath(bed, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("xdpath: error: "), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: {stderr} lacks {needle:?}"
    );
    assert_eq!(snapshot(bed), before, "{args:?} changed the state");
}

fn write_file(bed: &TestBed, name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("xdpath-filter-cli-{}-{name}", bed.number()));
    let mut file = std::fs::File::create(&path).expect("create rule file");
    file.write_all(text.as_bytes()).expect("write rule file");
    path.display().to_string()
}

#[test]
fn rules_round_trip() {
    xdpath_lab::needs_root!();
    let bed = bed();
    assert_eq!(
        xdpath_ok_warned(
            &bed,
            &["filter", "add", "--src", "10.0.0.0/8", "--action", "drop"]
        )
        .trim(),
        "1"
    );
    let id = json(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "10.1.0.0/16",
            "--proto",
            "tcp",
            "--dport",
            "22",
            "--tcp-flags",
            "syn,!ack",
            "--action",
            "pass",
            "--monitor",
        ],
    );
    assert_eq!(id["id"], 2);
    let list = json(&bed, &["filter", "list"]);
    let rules = list["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[1]["sources"][0], "10.1.0.0/16");
    assert_eq!(rules[1]["dport"], "22");
    assert_eq!(rules[1]["tcp_flags"], "syn,!ack");
    assert_eq!(rules[1]["monitor"], true);
    assert_eq!(rules[0]["hits"], 0);
    xdpath_ok_warned(&bed, &["filter", "del", "1"]);
    assert_eq!(
        json(&bed, &["filter", "list"])["rules"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    xdpath_ok_warned(&bed, &["filter", "default", "drop", "--monitor"]);
    assert_eq!(json(&bed, &["filter", "list"])["default"]["monitor"], true);
    xdpath_ok_warned(&bed, &["filter", "flush"]);
    assert_eq!(
        json(&bed, &["filter", "list"])["rules"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
    let file = write_file(&bed, "good", "# feed\n192.0.2.0/24\n198.51.100.7\n\n--src 2001:db8::/32 --proto udp --dport 53 --action pass\n");
    xdpath_ok_warned(&bed, &["filter", "load", &file]);
    let rules = json(&bed, &["filter", "list"])["rules"].clone();
    assert_eq!(rules.as_array().map(Vec::len), Some(2));
    assert_eq!(rules[0]["sources"].as_array().map(Vec::len), Some(2));

    xdpath_ok_warned(&bed, &["block", "add", "203.0.113.0/24", "--ttl", "10m"]);
    xdpath_ok_warned(&bed, &["block", "add", "2001:db8:bad::/48"]);
    let blocks = json(&bed, &["block", "list"]);
    assert_eq!(blocks[0]["prefix"], "203.0.113.0/24");
    assert!(blocks[0]["remaining_seconds"]
        .as_u64()
        .is_some_and(|left| left > 590 && left <= 600));
    assert_eq!(blocks[1]["remaining_seconds"], Value::Null);
    xdpath_ok_warned(&bed, &["block", "del", "203.0.113.0/24"]);
    assert_eq!(
        json(&bed, &["block", "list"]).as_array().map(Vec::len),
        Some(1)
    );

    let id = json(
        &bed,
        &[
            "ratelimit",
            "add",
            "--pps",
            "1000",
            "--burst",
            "50",
            "--aggregate-v4",
            "24",
            "--syn",
        ],
    );
    assert_eq!(id["id"], 1);
    xdpath_ok_warned(
        &bed,
        &["ratelimit", "add", "--bps", "1000000", "--per", "dst"],
    );
    let limits = json(&bed, &["ratelimit", "list"]);
    assert_eq!(limits[0]["burst_packets"], 50);
    assert_eq!(limits[0]["drops"], 0);
    assert_eq!(limits[1]["per"], "dst");
    xdpath_ok_warned(&bed, &["ratelimit", "del", "1"]);

    let guards = json(
        &bed,
        &[
            "guard",
            "amplification",
            "on",
            "--ports",
            "53,123",
            "--expect",
            "10.0.0.0/8",
        ],
    );
    assert_eq!(guards["amplification"]["enabled"], true);
    xdpath_ok_warned(&bed, &["guard", "tcp-flags", "on"]);
    xdpath_ok_warned(
        &bed,
        &[
            "guard",
            "fragments",
            "--v4",
            "drop-later",
            "--v6",
            "drop-all",
        ],
    );
    xdpath_ok_warned(&bed, &["guard", "syn-cookies", "on", "--ports", "80,443"]);
    let guards = json(&bed, &["guard", "show"]);
    assert_eq!(guards["tcp_flags"], true);
    assert_eq!(guards["fragments_v6"], "drop-all");
    assert_eq!(guards["syn_cookies"]["enabled"], true);

    xdpath_ok_warned(&bed, &["mgmt", "add", "192.0.2.0/28"]);
    xdpath_ok_warned(&bed, &["mgmt", "add", "--port", "22"]);
    let management = json(&bed, &["mgmt", "list"]);
    assert_eq!(management["ports"][0], 22);
    xdpath_ok_warned(&bed, &["mgmt", "del", "--port", "22"]);
    assert!(xdpath_ok_warned(&bed, &["guard", "show"]).contains("tcp-flags:     on"));
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    xdpath_lab::needs_root!();
    let bed = bed();
    xdpath_ok_warned(
        &bed,
        &["filter", "add", "--src", "10.0.0.0/8", "--action", "drop"],
    );
    xdpath_ok_warned(&bed, &["mgmt", "add", "192.0.2.0/24"]);
    xdpath_ok_warned(&bed, &["mgmt", "add", "--port", "22"]);
    refused(
        &bed,
        &["filter", "add", "--src", "10.0.0.300/8", "--action", "drop"],
        "invalid CIDR \"10.0.0.300/8\"",
    );
    refused(
        &bed,
        &["filter", "add", "--src", "10.0.0.0/33", "--action", "drop"],
        "prefix length above 32",
    );
    refused(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "10.0.0.0/8",
            "--dport",
            "70000",
            "--action",
            "drop",
        ],
        "port \"70000\" is out of range (0-65535)",
    );
    refused(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "10.0.0.0/8",
            "--proto",
            "xyz",
            "--action",
            "drop",
        ],
        "unknown protocol \"xyz\"",
    );
    refused(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "10.0.0.0/8",
            "--dport",
            "30-20",
            "--action",
            "drop",
        ],
        "first port is above the last",
    );
    refused(
        &bed,
        &["filter", "add", "--src", "192.0.0.0/8", "--action", "drop"],
        "management prefix 192.0.2.0/24",
    );
    refused(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "1.0.0.0/8",
            "--dport",
            "20-30",
            "--action",
            "drop",
        ],
        "management port 22",
    );
    refused(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "1.0.0.0/8",
            "--iface",
            "nonexistent0",
            "--action",
            "drop",
        ],
        "interface \"nonexistent0\" does not exist",
    );
    refused(&bed, &["filter", "del", "99"], "no rule with id 99");
    refused(&bed, &["ratelimit", "del", "7"], "no rate limit with id 7");
    refused(
        &bed,
        &["block", "del", "10.9.9.0/24"],
        "not on the blocklist",
    );
    refused(
        &bed,
        &["block", "add", "10.9.9.0/24", "--ttl", "5y"],
        "invalid duration \"5y\"",
    );
    refused(
        &bed,
        &["mgmt", "del", "--port", "23"],
        "23 is not a management port",
    );
    refused(
        &bed,
        &["guard", "fragments", "--v4", "sometimes"],
        "invalid fragment policy",
    );
    // The override installs what the guard refused.
    xdpath_ok_warned(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "192.0.0.0/8",
            "--action",
            "drop",
            "--override",
        ],
    );

    let bad = write_file(
        &bed,
        "bad",
        "10.0.0.0/8\n--src 10.1.0.0/16 --action pass\n10.0.0.300/8\n",
    );
    refused(
        &bed,
        &["filter", "load", &bad],
        "line 3: invalid CIDR \"10.0.0.300/8\"",
    );
    let bad = write_file(
        &bed,
        "bad-option",
        "10.0.0.0/8\n--src 10.1.0.0/16 --bogus --action pass\n",
    );
    refused(&bed, &["filter", "load", &bad], "line 2: ");
    let covering = write_file(&bed, "covering", "192.0.0.0/8\n");
    refused(&bed, &["filter", "load", &covering], "management prefix");
    let deep: String = (0..9)
        .map(|n| format!("--src 10.0.0.0/{} --dport {n} --action drop\n", 16 + n))
        .collect();
    let deep = write_file(&bed, "deep", &deep);
    refused(
        &bed,
        &["filter", "load", &deep],
        "leads to more than 8 rules",
    );

    for n in 0..16 {
        xdpath_ok_warned(
            &bed,
            &["ratelimit", "add", "--pps", &format!("{}", 100 + n)],
        );
    }
    refused(
        &bed,
        &["ratelimit", "add", "--pps", "5"],
        "too many rate limits: 17 (at most 16 beside those of one address each",
    );
    refused(
        &bed,
        &["ratelimit", "add", "--burst", "5"],
        "give --pps or --bps",
    );
}

#[test]
fn more_prefixes_than_the_limit_are_refused() {
    xdpath_lab::needs_root!();
    let bed = bed();
    xdpath_ok_warned(
        &bed,
        &["filter", "add", "--src", "10.0.0.0/8", "--action", "drop"],
    );
    let limit = xdpath_core::filter::MAX_PREFIXES as u64;
    let mut text = String::with_capacity(20 * (limit as usize + 1));
    for n in 0..=limit {
        let [_, a, b, c] = (n as u32).to_be_bytes();
        text.push_str(&format!("{}.{a}.{b}.{c}\n", 20 + a));
    }
    let file = write_file(&bed, "too-many", &text);
    refused(
        &bed,
        &["filter", "load", &file],
        "too many source prefixes: 1048577 (at most 1048576)",
    );
    let _ = std::fs::remove_file(file);
}
