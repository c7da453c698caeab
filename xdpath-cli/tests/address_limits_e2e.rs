//! Limits of one address each (the address table) over real traffic, as a
//! cloud host holds them: one per floating IP or port address, dozens
//! beside the operator's general limits (at most 16). hping3 floods A's
//! address from namespace B; xdpath in native mode on A holds the flood to
//! A's limit, counts its drops on that limit, and stops limiting when the
//! limit goes. Needs root.

mod common;

use common::{bed, counted, hping3, json, xdpath, xdpath_ok};
use serde_json::Value;
use xdpath_lab::testenv::TestBed;

const FLOOD_SECONDS: u32 = 3;
const RATE: u64 = 500;

fn limits(bed: &TestBed) -> Vec<Value> {
    json(&xdpath_ok(bed, &["--json", "ratelimit", "list"]))
        .as_array()
        .expect("a list of limits")
        .clone()
}

fn flood(bed: &TestBed, target: &str) {
    let mut udp = hping3(bed, FLOOD_SECONDS, &["--udp", "-p", "9", "--flood", target]);
    let _ = udp.wait();
}

#[test]
fn forty_address_limits_beside_sixteen_general_ones_hold_a_flood_to_one_address() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let target = bed.a().ipv4.to_string();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "native"]);
    // The general limits, full: sources the test never sends from.
    for n in 0..16 {
        let scope = format!("100.64.{n}.0/24");
        xdpath_ok(
            &bed,
            &[
                "ratelimit",
                "add",
                "--pps",
                "1000",
                "--per",
                "src",
                "--scope",
                &scope,
            ],
        );
    }
    let refused = xdpath(&bed, &["ratelimit", "add", "--pps", "5"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("xdpath: error: too many rate limits: 17 (at most 16"),
        "{stderr}"
    );
    // Forty addresses the test does not send to, then A's own.
    for n in 1..=40 {
        let scope = format!("10.77.0.{n}/32");
        xdpath_ok(
            &bed,
            &[
                "ratelimit",
                "add",
                "--pps",
                "1000",
                "--per",
                "dst",
                "--scope",
                &scope,
            ],
        );
    }
    let scope = format!("{target}/32");
    let rate = RATE.to_string();
    let id = xdpath_ok(
        &bed,
        &[
            "ratelimit",
            "add",
            "--pps",
            &rate,
            "--burst",
            &rate,
            "--per",
            "dst",
            "--scope",
            &scope,
        ],
    );
    let id: u64 = id.trim().parse().expect("the limit's id");
    let listed = limits(&bed);
    assert_eq!(listed.len(), 57);
    let in_table = listed
        .iter()
        .filter(|limit| limit["table"] == "address")
        .count();
    assert_eq!(in_table, 41, "every limit of one address is in the table");
    xdpath_ok(&bed, &["state", "check"]);

    flood(&bed, &target);
    let stats = json(&xdpath_ok(&bed, &["--json", "stats"]));
    let dropped = counted(&stats, "drop", "rate-limited");
    let passed = counted(&stats, "pass", "ipv4-udp");
    assert!(dropped > 1000, "the flood to A is limited: {dropped} drops");
    let seconds = u64::from(FLOOD_SECONDS);
    assert!(
        passed <= seconds * RATE + RATE + RATE,
        "at most the limit passes: {passed}"
    );
    assert!(passed >= RATE, "the burst passes: {passed}");
    let listed = limits(&bed);
    let drops = |limit: &Value| limit["drops"].as_u64().unwrap_or(0);
    let own = listed
        .iter()
        .find(|limit| limit["id"].as_u64() == Some(id))
        .expect("A's limit listed");
    assert_eq!(drops(own), dropped, "A's limit counts every drop");
    let others: u64 = listed.iter().map(drops).sum::<u64>() - drops(own);
    assert_eq!(others, 0, "no other limit dropped anything");

    xdpath_ok(&bed, &["ratelimit", "del", &id.to_string()]);
    xdpath_ok(&bed, &["state", "check"]);
    flood(&bed, &target);
    let stats = json(&xdpath_ok(&bed, &["--json", "stats"]));
    assert_eq!(
        counted(&stats, "drop", "rate-limited"),
        dropped,
        "the limit removed, nothing more is limited"
    );
}

/// Where each limit is enforced is what the listing says: a second limit
/// of one address (its key taken) is one of the general limits, and takes
/// the table when the first goes. A refused add names no id it did not
/// make.
#[test]
fn the_listing_says_where_each_limit_is_enforced() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    let add = [
        "ratelimit",
        "add",
        "--pps",
        "100",
        "--per",
        "dst",
        "--scope",
        "10.77.0.1/32",
    ];
    let first = xdpath_ok(&bed, &add).trim().to_string();
    let second = xdpath_ok(&bed, &add).trim().to_string();
    let tables = |bed: &TestBed| -> Vec<(String, String)> {
        limits(bed)
            .iter()
            .map(|limit| {
                (
                    limit["id"].to_string(),
                    limit["table"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    };
    assert_eq!(
        tables(&bed),
        [
            (first.clone(), "address".into()),
            (second.clone(), "general".into())
        ]
    );
    xdpath_ok(&bed, &["ratelimit", "del", &first]);
    assert_eq!(tables(&bed), [(second, "address".into())]);
    xdpath_ok(&bed, &["state", "check"]);
    let refused = xdpath(
        &bed,
        &[
            "ratelimit",
            "add",
            "--pps",
            "0",
            "--per",
            "dst",
            "--scope",
            "10.77.0.9/32",
        ],
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("xdpath: error: --pps 0 is out of range") && stderr.lines().count() == 1,
        "{stderr}"
    );
}
