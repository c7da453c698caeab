//! Labels on an owner's rules and limits, as the OpenStack Neutron agent
//! sets them to name the Neutron objects: applied with the document, read
//! back (`GET /v1/owners/...`, `GET /v1/rules?owner=`, `GET
//! /v1/ratelimits?owner=`), changed in place (ids, and so counters, kept),
//! refused whole when one is wrong, and exported as Prometheus labels
//! beside `rule`/`limit` and `owner` (checked by `promtool check metrics`).

use std::process::{Command, Stdio};

use super::*;

const OWNER: &str = "neutron-port-labels";
const ADDRESS: &str = "10.0.0.9/32";
/// A value that needs the exposition's escapes.
const ODD: &str = r#"sg "a" \ b"#;

fn document(group: &str, policy: &str) -> Value {
    json!({
        "limits": [{ "per": "dst", "scope": ADDRESS, "pps": "1000",
                     "labels": { "port_id": "p-1", "qos_policy_id": policy } }],
        "rules": [
            { "dst": ADDRESS, "proto": "icmp", "action": "pass",
              "labels": { "port_id": "p-1", "security_group_id": group } },
            { "dst": ADDRESS, "action": "drop", "labels": { "port_id": "p-1" } },
        ],
    })
}

/// (id, labels) of each row `path` lists.
fn labelled(daemon: &Daemon, path: &str) -> Vec<(u64, Value)> {
    let rows = driver_ok(daemon, "GET", path, None);
    rows.as_array()
        .into_iter()
        .flatten()
        .map(|row| (row["id"].as_u64().unwrap_or(0), row["labels"].clone()))
        .collect()
}

/// `/metrics` as text.
fn metrics(daemon: &Daemon) -> String {
    let header = format!("Authorization: Bearer {TOKEN}");
    let url = format!("http://127.0.0.1:{PORT}/metrics");
    let (status, text) = daemon.curl(&["-H", &header], "GET", &url, None, false);
    assert_eq!(status, 200, "{text}");
    text.as_str().expect("metrics are text").to_string()
}

/// `promtool check metrics`: its complaints (none: empty). Skipped, with
/// the reason, where promtool is missing (and required under
/// XDPATH_REQUIRE_ROOT=1, as the other tools are).
fn promtool(text: &str) -> Option<String> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if std::env::var_os("XDPATH_REQUIRE_ROOT").is_none() => {
            eprintln!("skipping promtool check: promtool: {error}");
            return None;
        }
        Err(error) => panic!("promtool (scripts/setup.sh installs it): {error}"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(text.as_bytes()).expect("promtool's stdin");
    }
    let output = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some(if output.status.success() {
        said
    } else {
        format!("promtool failed: {said}")
    })
}

pub(crate) fn labels_in_documents(daemon: &Daemon) {
    let path = format!("/v1/owners/{OWNER}");
    driver_ok(daemon, "PUT", &path, Some(&document(ODD, "q-1")));
    let held = driver_ok(daemon, "GET", &path, None)["document"].clone();
    assert_eq!(
        held["rules"][0]["labels"]["security_group_id"], ODD,
        "{held}"
    );
    assert_eq!(
        held["limits"][0]["labels"]["qos_policy_id"], "q-1",
        "{held}"
    );
    let answer = driver_ok(daemon, "PUT", &path, Some(&held));
    assert_eq!(answer["changed"], false, "the read-back changes nothing");

    let rules = labelled(daemon, &format!("/v1/rules?owner={OWNER}"));
    assert_eq!(rules.len(), 2, "only the owner's rules: {rules:?}");
    assert_eq!(rules[1].1, json!({ "port_id": "p-1" }));
    let limits = labelled(daemon, &format!("/v1/ratelimits?owner={OWNER}"));
    assert_eq!(limits.len(), 1, "{limits:?}");

    let text = metrics(daemon);
    let rule = format!(
        "xdpath_rule_hits_total{{rule=\"{}\",owner=\"{OWNER}\",port_id=\"p-1\",security_group_id=\"sg \\\"a\\\" \\\\ b\"}} ",
        rules[0].0
    );
    assert!(text.contains(&rule), "{rule} in:\n{text}");
    let limit = format!(
        "xdpath_ratelimit_drops_total{{limit=\"{}\",owner=\"{OWNER}\",port_id=\"p-1\",qos_policy_id=\"q-1\"}} ",
        limits[0].0
    );
    assert!(text.contains(&limit), "{limit} in:\n{text}");
    if let Some(findings) = promtool(&text) {
        assert_eq!(findings.trim(), "", "promtool check metrics");
    }

    // New labels: the same rules and limit (ids kept), named anew.
    let answer = driver_ok(daemon, "PUT", &path, Some(&document("sg-2", "q-2")));
    assert_eq!(answer["changed"], true, "{answer}");
    let renamed = labelled(daemon, &format!("/v1/rules?owner={OWNER}"));
    assert_eq!(
        renamed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        rules.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        "ids kept"
    );
    assert_eq!(renamed[0].1["security_group_id"], "sg-2");
    let relimited = labelled(daemon, &format!("/v1/ratelimits?owner={OWNER}"));
    assert_eq!(relimited[0].0, limits[0].0, "the limit's id kept");
    assert_eq!(relimited[0].1["qos_policy_id"], "q-2");

    // Bad labels refuse the whole document (and a single rule or limit).
    let before = driver_ok(daemon, "GET", &path, None)["document"].clone();
    let too_many: serde_json::Map<String, Value> = (0..5)
        .map(|index| (format!("k{index}"), json!("v")))
        .collect();
    for (labels, why) in [
        (json!({ "owner": "x" }), "xdpath's own label"),
        (json!({ "rule": "x" }), "xdpath's own label"),
        (json!({ "Port": "x" }), "invalid label key"),
        (json!({ "__name__": "x" }), "Prometheus's own"),
        (json!({ "port_id": "" }), "empty"),
        (json!({ "port_id": "a\nb" }), "control character"),
        (Value::Object(too_many), "at most 4"),
        (json!({ "port_id": 7 }), "invalid type"),
    ] {
        let mut bad = document("sg-3", "q-3");
        bad["rules"][1]["labels"] = labels.clone();
        let (status, error) = driver(daemon, "PUT", &path, Some(&bad));
        assert!((400..500).contains(&status), "{labels}: {status} {error}");
        assert!(error.to_string().contains(why), "{labels}: {error}");
        let mut bad = document("sg-3", "q-3");
        bad["limits"][0]["labels"] = labels.clone();
        let (status, error) = driver(daemon, "PUT", &path, Some(&bad));
        assert!((400..500).contains(&status), "{labels}: {status} {error}");
        let single = json!({ "dst": "10.0.0.10/32", "action": "drop", "labels": labels });
        let (status, error) = driver(daemon, "POST", "/v1/rules", Some(&single));
        assert!((400..500).contains(&status), "{status} {error}");
    }
    assert_eq!(
        driver_ok(daemon, "GET", &path, None)["document"],
        before,
        "refused documents changed nothing"
    );
    assert_eq!(
        labelled(daemon, &format!("/v1/rules?owner={OWNER}")),
        renamed
    );
    driver_ok(daemon, "DELETE", &path, None);
}
