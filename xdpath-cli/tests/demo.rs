//! `xdpath demo`, the README's main job, end to end (needs root): it must
//! succeed, report counters that match the traffic it sent, show the
//! blocklist dropping and then passing a source, and leave no namespace or
//! pin behind.

use std::process::{Command, Stdio};

use serde_json::Value;

#[test]
fn demo_matches_its_traffic_and_cleans_up() {
    xdpath_lab::needs_root!();
    let child = Command::new(env!("CARGO_BIN_EXE_xdpath"))
        .args(["--json", "demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run xdpath demo");
    let pid = child.id();
    let output = child.wait_with_output().expect("wait for the demo");
    let narrative = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "demo failed: {narrative}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("the demo prints JSON");
    assert_eq!(report["match"], true);
    assert_eq!(report["malformed"], "drop");
    let counters = report["counters"].as_array().expect("counters");
    assert!(counters
        .iter()
        .any(|row| row["action"] == "drop" && row["malformed"] == true));
    assert!(counters.iter().any(|row| row["reason"] == "ipv6-icmp"));
    assert!(
        narrative.contains("dropped at XDP as blocklisted: "),
        "{narrative}"
    );
    assert!(narrative.contains("answered again"), "{narrative}");

    let namespaces = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let prefix = format!("xdpt-{pid}-");
    assert!(
        !String::from_utf8_lossy(&namespaces.stdout).contains(&prefix),
        "the demo left namespaces behind"
    );
}
