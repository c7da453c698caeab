//! A rule's protocol must be one its other fields can match in, and must
//! mean what it says: protocol 0 (the data path's "any", so a rule listed
//! as protocol 0 matched every protocol), TCP flags on a rule that is not
//! TCP (never matched: flags are read in TCP frames only; without a
//! protocol refused as an ICMP type is) and destination ports on a
//! protocol without them (`--proto icmp --dport 80`, never matched) are
//! refused with one line, by `filter add`, `ratelimit add` and a config,
//! and change nothing. A state file saved before, holding such rules, still
//! loads, installs and takes changes. (The API's refusals are in
//! xdpathd/tests/api/refused.rs.)
//!
//! Every command runs in namespace A of its own test bed (needs root).

mod common;

use common::cli::{crashed, one_error, run_in, QUICK};
use common::{bed, xdpath, xdpath_ok, xdpath_ok_warned};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

fn json(bed: &TestBed, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&xdpath_ok(bed, &args)).expect("JSON output")
}

fn snapshot(bed: &TestBed) -> Vec<Value> {
    [&["filter", "list"][..], &["ratelimit", "list"]]
        .iter()
        .map(|args| json(bed, args))
        .collect()
}

/// Each command fails with one line holding its needles, changing nothing.
fn refused(bed: &TestBed, cases: &[(Vec<&str>, &[&str])]) {
    for (args, needles) in cases {
        let before = snapshot(bed);
        let run = run_in(bed, Side::A, args, QUICK);
        assert!(!crashed(&run), "{args:?} crashed: {}", run.stderr);
        one_error(&run, 1, needles);
        assert_eq!(snapshot(bed), before, "{args:?} changed the state");
    }
}

fn add<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["filter", "add", "--src", "192.0.2.0/24"];
    args.extend_from_slice(rest);
    args.extend_from_slice(&["--action", "drop"]);
    args
}

#[test]
fn rules_that_match_otherwise_than_they_say_are_refused() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    let zero: &[&str] = &["protocol \"0\" is refused", "--proto"];
    refused(
        &bed,
        &[
            (add(&["--proto", "0"]), zero),
            (add(&["--proto", "000"]), &["protocol \"000\" is refused"]),
            (
                vec!["ratelimit", "add", "--pps", "10", "--proto", "0"],
                &["protocol \"0\" is refused"],
            ),
            (
                add(&["--proto", "udp", "--tcp-flags", "syn"]),
                &["TCP flags \"syn\" need protocol tcp", "protocol \"udp\""],
            ),
            (
                add(&["--proto", "icmp", "--dport", "80"]),
                &["destination ports \"80\"", "protocol \"icmp\""],
            ),
            (
                add(&["--proto", "47", "--dport", "1-2"]),
                &["need protocol tcp or udp", "protocol \"47\""],
            ),
        ],
    );
    // What can match still goes in.
    for rest in [
        &["--proto", "tcp", "--tcp-flags", "syn,!ack"][..],
        &["--dport", "53"],
        &["--proto", "udp", "--dport", "53"],
        &["--proto", "1"],
    ] {
        xdpath_ok(&bed, &add(rest));
    }

    // A config is refused at each field, and nothing is applied.
    let dir = bed.a().state_dir();
    let path = dir.join("test-protocols.toml");
    std::fs::write(
        &path,
        "[filter]\n\
         [[filter.rule]]\nid = 1\nsrc = \"10.0.0.0/8\"\nproto = 0\naction = \"drop\"\n\
         [[filter.rule]]\nid = 2\nsrc = \"10.0.0.0/8\"\nproto = \"udp\"\ntcp_flags = \"syn\"\naction = \"drop\"\n\
         [[filter.rule]]\nid = 3\nsrc = \"10.0.0.0/8\"\nproto = \"icmp\"\ndport = 80\naction = \"drop\"\n",
    )
    .expect("write the config");
    let before = snapshot(&bed);
    let planned = xdpath(&bed, &["plan", "-f", path.to_str().expect("UTF-8")]);
    assert!(!planned.status.success(), "plan took the config");
    let report = String::from_utf8_lossy(&planned.stderr);
    for field in [
        "filter.rule[0].proto",
        "filter.rule[1].tcp_flags",
        "filter.rule[2].dport",
    ] {
        assert!(report.contains(field), "{field} not reported: {report}");
    }
    let applied = xdpath(&bed, &["apply", "-f", path.to_str().expect("UTF-8")]);
    assert!(!applied.status.success(), "apply took the config");
    assert_eq!(snapshot(&bed), before, "a refused config changed the state");
}

#[test]
fn a_saved_state_with_such_rules_still_loads() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    // Saved by a build that took them: protocol 0, TCP flags on UDP, ports
    // on ICMP (made from rules this build takes, then edited).
    xdpath_ok(&bed, &add(&["--proto", "17"]));
    xdpath_ok(&bed, &add(&["--proto", "tcp", "--tcp-flags", "syn"]));
    xdpath_ok(&bed, &add(&["--proto", "udp", "--dport", "80"]));
    let file = bed.a().state_dir().join("filter.json");
    let mut state: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("filter.json")).expect("JSON");
    let rules = state["rules"].as_array_mut().expect("rules");
    assert_eq!(rules.len(), 3, "{rules:?}");
    for (rule, protocol) in rules.iter_mut().zip([0, 17, 1]) {
        rule["protocol"] = protocol.into();
    }
    std::fs::write(&file, serde_json::to_string(&state).expect("JSON")).expect("write");

    // Read before the kernel holds it: a warning says so.
    let listed: Value =
        serde_json::from_str(&xdpath_ok_warned(&bed, &["filter", "list", "--json"])).expect("JSON");
    let protocols: Vec<&Value> = listed["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| &rule["protocol"])
        .collect();
    assert_eq!(protocols, ["0", "udp", "icmp"], "{listed}");
    // `state check --repair` installs it (the maps still held the file as
    // it was before the edit), and the next change keeps the old rules.
    xdpath_ok_warned(&bed, &["state", "check", "--repair"]);
    xdpath_ok(&bed, &["state", "check"]);
    xdpath_ok(&bed, &add(&["--proto", "tcp", "--dport", "22"]));
    xdpath_ok(&bed, &["state", "check"]);
    assert_eq!(
        json(&bed, &["filter", "list"])["rules"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
}
