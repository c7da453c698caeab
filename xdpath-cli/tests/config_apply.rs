//! `xdpath plan`, `apply` and `confirm` with a config file, in a test
//! namespace (`nsenter --net=/run/netns/A`): a config applies and is
//! visible through the other commands; applying it again changes nothing;
//! a changed config changes only what differs (backends that stay keep
//! their slots, rules that stay stay, interfaces that stay are not
//! attached again); a broken config lists every mistake and changes
//! nothing; `--confirm` rolls back unless confirmed.
//!
//! Needs root.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath_lab::testenv::TestBed;

mod common;
// Warnings allowed: the balancer warns when forwarding is off.
use common::{bed, xdpath, xdpath_ok_warned};

/// A rollback whose waiter was killed or is late.
#[path = "config_apply/rollback.rs"]
mod rollback;

const VIP: &str = "203.0.113.10:80/tcp";

fn json(bed: &TestBed, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&xdpath_ok_warned(bed, &all)).expect("JSON output")
}

/// Writes a config file in namespace A's state dir, which the bed removes.
fn write(bed: &TestBed, name: &str, text: &str) -> String {
    let dir = bed.a().state_dir();
    std::fs::create_dir_all(&dir).expect("state dir");
    let path = dir.join(format!("test-{name}.toml"));
    std::fs::write(&path, text).expect("write the config");
    path.display().to_string()
}

/// A config for namespace A: its veth end (with this malformed policy;
/// none: not attached), a filter, one VIP.
fn config(bed: &TestBed, malformed: Option<&str>, dport: &str, backends: &[(&str, u32)]) -> String {
    let interface = &bed.a().interface;
    let mut text = malformed.map_or(String::new(), |malformed| {
        format!("[[interface]]\nname = \"{interface}\"\nmode = \"generic\"\nmalformed = \"{malformed}\"\n")
    });
    text += &format!(
        "[filter]\ndefault = \"pass\"\n\
         [[filter.rule]]\nid = 10\nsrc = [\"10.0.0.0/8\", \"192.168.0.0/16\"]\nproto = \"tcp\"\ndport = 22\naction = \"pass\"\n\
         [[filter.rule]]\nid = 20\nsrc = \"198.18.0.0/15\"\nproto = \"udp\"\ndport = \"{dport}\"\naction = \"drop\"\n\
         [[filter.block]]\nprefix = \"198.51.100.0/24\"\nttl = \"1h\"\n\
         [[filter.ratelimit]]\nid = 1\npps = 100\nsyn = true\n\
         [filter.guard]\ntcp_flags = true\n\
         [filter.mgmt]\nprefixes = [\"192.0.2.0/28\"]\nports = [22]\n\n\
         [lb]\nsource_v4 = \"172.16.0.0/16\"\nnext_hop = \"02:00:00:00:00:99\"\n\
         [[lb.vip]]\nvip = \"{VIP}\"\nring_size = 1009\n"
    );
    for (address, weight) in backends {
        text.push_str(&format!(
            "[[lb.vip.backend]]\naddress = \"{address}\"\nweight = {weight}\n"
        ));
    }
    text
}

/// `action what key` of each change of a plan.
fn changes(plan: &Value) -> Vec<String> {
    ["interfaces", "filter", "lb"]
        .iter()
        .flat_map(|part| plan[part].as_array().cloned().unwrap_or_default())
        .map(|change| {
            let text = |key: &str| change[key].as_str().unwrap_or_default().to_string();
            format!("{} {} {}", text("action"), text("what"), text("key"))
        })
        .collect()
}

/// Backend address → (slot, generation, weight), from lb.json.
fn backends(bed: &TestBed) -> BTreeMap<String, (u64, u64, u64)> {
    let path = bed.a().state_dir().join("lb.json");
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("lb.json")).expect("JSON");
    state["vips"][0]["backends"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|backend| {
            let number = |key: &str| backend[key].as_u64().unwrap_or(u64::MAX);
            let address = backend["address"].as_str().unwrap_or_default().to_string();
            (
                address,
                (number("index"), number("generation"), number("weight")),
            )
        })
        .collect()
}

/// Plans, applies, checks that apply did what plan said, returns it.
fn plan_and_apply(bed: &TestBed, file: &str) -> Vec<String> {
    let planned = json(bed, &["plan", "-f", file]);
    let applied = json(bed, &["apply", "-f", file]);
    assert_eq!(
        changes(&planned),
        changes(&applied["changes"]),
        "apply did what plan said"
    );
    assert_eq!(applied["applied"], changes(&planned).len());
    assert_eq!(
        json(bed, &["plan", "-f", file])["empty"],
        true,
        "after apply"
    );
    changes(&planned)
}

fn status(bed: &TestBed) -> Value {
    json(bed, &["status"])[0].clone()
}

#[test]
fn applies_only_the_difference() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let old_pool = [("10.0.0.11", 2), ("10.0.0.12", 1)];
    let first = write(&bed, "1", &config(&bed, Some("drop"), "53", &old_pool));
    let done = plan_and_apply(&bed, &first);
    assert!(
        done.contains(&format!("add interface {interface}")),
        "{done:?}"
    );
    assert!(
        done.contains(&format!("add backend {VIP} 10.0.0.12")),
        "{done:?}"
    );
    let rules = json(&bed, &["filter", "list"]);
    assert_eq!(rules["rules"][0]["id"], 10);
    assert_eq!(rules["rules"][1]["id"], 20);
    assert_eq!(json(&bed, &["lb", "vip", "list"])[0]["vip"], VIP);
    assert_eq!(
        json(&bed, &["block", "list"])[0]["prefix"],
        "198.51.100.0/24"
    );
    assert_eq!(json(&bed, &["mgmt", "list"])["ports"][0], 22);
    let attached = status(&bed);
    assert_eq!(
        (&attached["malformed"], &attached["mode"]),
        (&"drop".into(), &"generic".into())
    );

    // The same file again: nothing to do.
    assert_eq!(json(&bed, &["apply", "-f", &first])["applied"], 0);
    assert!(xdpath_ok_warned(&bed, &["plan", "-f", &first]).contains("no changes"));

    // A backend added, one reweighted, a rule changed: only that.
    let before = backends(&bed);
    let new_pool = [("10.0.0.11", 3), ("10.0.0.12", 1), ("10.0.0.13", 1)];
    let second = write(
        &bed,
        "2",
        &config(&bed, Some("drop"), "1000-2000", &new_pool),
    );
    let expected = [
        "change rule 20".to_string(),
        format!("change backend {VIP} 10.0.0.11"),
        format!("add backend {VIP} 10.0.0.13"),
    ];
    assert_eq!(plan_and_apply(&bed, &second), expected);
    let after = backends(&bed);
    for address in ["10.0.0.11", "10.0.0.12"] {
        let kept = (after[address].0, after[address].1);
        assert_eq!(
            kept,
            (before[address].0, before[address].1),
            "{address} kept its slot"
        );
    }
    assert_eq!(after["10.0.0.11"].2, 3);
    assert!(before
        .values()
        .all(|(index, ..)| *index != after["10.0.0.13"].0));
    let rules_now = json(&bed, &["filter", "list"]);
    assert_eq!(
        rules_now["rules"][0], rules["rules"][0],
        "rule 10 stays as it was"
    );
    assert_eq!(rules_now["rules"][1]["dport"], "1000-2000");
    let same_program = status(&bed)["program_id"] == attached["program_id"];
    assert!(same_program, "the interface was attached again");

    // An interface setting changed: in place, the same program running
    // throughout (a reattach leaves the interface with none for the
    // program's load).
    let third_text = config(&bed, Some("pass"), "1000-2000", &new_pool);
    let third = write(&bed, "3", &third_text);
    assert_eq!(
        plan_and_apply(&bed, &third),
        [format!("change interface {interface}")]
    );
    let changed = status(&bed);
    assert_eq!(changed["malformed"], "pass");
    assert_eq!(changed["program_id"], attached["program_id"]);

    // Offload, which no interface can run xdpath's programs in, is refused
    // before anything is written: the rule change that came with it too.
    let offload_text = config(&bed, Some("pass"), "53", &new_pool)
        .replace("mode = \"generic\"", "mode = \"offload\"");
    let offload = write(&bed, "offload", &offload_text);
    for command in ["plan", "apply"] {
        let refused = xdpath(&bed, &[command, "-f", &offload]);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success()
                && stderr.starts_with("xdpath: error:")
                && stderr.trim_end().lines().count() == 1
                && stderr.contains("offload"),
            "{command} of an offload interface: {stderr}"
        );
    }
    assert_eq!(
        json(&bed, &["filter", "list"])["rules"][1]["dport"],
        "1000-2000"
    );
    assert_eq!(status(&bed)["program_id"], attached["program_id"]);

    // Another mode: attached again; left out: detached.
    let native = write(
        &bed,
        "native",
        &third_text.replace("mode = \"generic\"", "mode = \"native\""),
    );
    assert_eq!(
        plan_and_apply(&bed, &native),
        [format!("change interface {interface}")]
    );
    let reattached = status(&bed);
    assert_eq!(
        (&reattached["mode"], &reattached["malformed"]),
        (&"native".into(), &"pass".into())
    );
    assert_ne!(reattached["program_id"], attached["program_id"]);
    let fourth = write(&bed, "4", &config(&bed, None, "1000-2000", &new_pool));
    assert_eq!(
        plan_and_apply(&bed, &fourth),
        [format!("remove interface {interface}")]
    );
    assert_eq!(json(&bed, &["status"]), Value::Array(Vec::new()));
}

#[test]
fn a_broken_config_lists_every_mistake_and_changes_nothing() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let good = write(
        &bed,
        "good",
        &config(&bed, Some("drop"), "53", &[("10.0.0.11", 2)]),
    );
    xdpath_ok_warned(&bed, &["apply", "-f", &good]);
    let snapshot = |bed: &TestBed| {
        (
            json(bed, &["filter", "list"]),
            json(bed, &["lb", "backend", "list"]),
            json(bed, &["status"]),
            backends(bed),
        )
    };
    let before = snapshot(&bed);
    let broken_text = config(
        &bed,
        Some("pass"),
        "53",
        &[("10.0.0.11", 5000), ("10.0.0.12", 1)],
    )
    .replace("\"10.0.0.0/8\"", "\"10.0.0.300/8\"")
    .replace(
        "[filter.guard]\ntcp_flags = true\n",
        "[filter.guard]\ntcp_flags = true\ncolour = \"red\"\n",
    ) + &format!("[[lb.vip]]\nvip = \"{VIP}\"\n");
    let broken = write(&bed, "broken", &broken_text);
    let line = |needle: &str| broken_text.lines().position(|line| line.contains(needle));
    let expected = [
        (line("10.0.0.300/8"), "filter.rule[0].src[0]: invalid CIDR"),
        (
            line("colour"),
            "filter.guard.colour: unknown field `colour`",
        ),
        (
            line("= 5000"),
            "lb.vip[0].backend[0].weight: weight 5000 is out of range",
        ),
        (
            Some(broken_text.lines().count() - 1),
            "lb.vip[1].vip: VIP 203.0.113.10:80/tcp is listed twice",
        ),
    ];
    for command in ["plan", "apply"] {
        let output = xdpath(&bed, &[command, "-f", &broken]);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{stderr}");
        for (line, (number, message)) in lines.iter().zip(expected) {
            let head = format!("xdpath: error: {broken}:{}:", number.map_or(0, |at| at + 1));
            assert!(
                line.starts_with(&head) && line.contains(message),
                "{line:?} is not {head} ... {message}"
            );
        }
    }
    assert_eq!(snapshot(&bed), before, "a refused config changed the state");
}

/// Waits until `done` holds, up to `limit`; false if it never did.
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

#[test]
fn confirm_keeps_and_silence_rolls_back() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let first = write(
        &bed,
        "first",
        &config(&bed, Some("drop"), "53", &[("10.0.0.11", 2)]),
    );
    let second = write(
        &bed,
        "second",
        &config(
            &bed,
            Some("drop"),
            "53",
            &[("10.0.0.11", 2), ("10.0.0.13", 1)],
        ),
    );
    xdpath_ok_warned(&bed, &["apply", "-f", &first]);
    let has_new_backend = |bed: &TestBed| backends(bed).contains_key("10.0.0.13");

    // No confirm: back to the first config after two to three seconds (the
    // deadline is rounded up to a whole second).
    let started = Instant::now();
    let armed = json(&bed, &["apply", "-f", &second, "--confirm", "2s"]);
    assert!(armed["rollback"]["deadline"].as_u64().is_some(), "{armed}");
    assert!(has_new_backend(&bed));
    assert!(
        wait_for(Duration::from_secs(8), || !has_new_backend(&bed)),
        "no rollback"
    );
    let elapsed = started.elapsed();
    let window = Duration::from_millis(1500)..=Duration::from_secs(5);
    assert!(window.contains(&elapsed), "rolled back after {elapsed:?}");
    assert_eq!(
        json(&bed, &["plan", "-f", &first])["empty"],
        true,
        "the first config is back"
    );
    // The waiter records the outcome once the rollback's repair is done,
    // some tens of milliseconds after the state file changed.
    let last_path = bed.a().state_dir().join("rollback/last.json");
    assert!(
        wait_for(Duration::from_secs(5), || last_path.exists()),
        "no outcome recorded"
    );
    let last = std::fs::read_to_string(&last_path).expect("last.json");
    let last: Value = serde_json::from_str(&last).expect("JSON");
    assert_eq!(last["error"], Value::Null, "{last}");
    assert!(xdpath_ok_warned(&bed, &["confirm"]).contains("nothing to confirm"));

    // Confirmed: it stays.
    xdpath_ok_warned(&bed, &["apply", "-f", &second, "--confirm", "2s"]);
    let confirmed = json(&bed, &["confirm"]);
    assert_eq!(confirmed["pending"], true);
    std::thread::sleep(Duration::from_millis(3500));
    assert!(has_new_backend(&bed), "a confirmed apply was rolled back");
    assert_eq!(json(&bed, &["plan", "-f", &second])["empty"], true);
    assert_eq!(json(&bed, &["confirm"])["pending"], false);
}

#[test]
fn steering_and_af_xdp_flows_follow_the_config_in_place() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let with = write(
        &bed,
        "steer-on",
        &format!(
            "[[interface]]\nname = \"{interface}\"\nmode = \"generic\"\nsteer = true\n\n\
             [steering]\ncpus = \"0\"\nqueue_size = 256\n\n\
             [[steering.xsk]]\nproto = \"udp\"\ndport = 9000\n"
        ),
    );
    json(&bed, &["apply", "-f", &with]);
    assert_eq!(json(&bed, &["plan", "-f", &with])["empty"], true, "applied");
    let program = status(&bed)["program_id"].clone();
    assert!(program.is_u64(), "{program}");
    assert_eq!(status(&bed)["steer"], true);
    let flows = json(&bed, &["xsk", "list"]);
    assert_eq!(flows.as_array().map(Vec::len), Some(1), "{flows}");
    assert!(flows.to_string().contains("9000"), "{flows}");
    let planned = json(&bed, &["plan", "-f", &with]);
    assert_eq!(planned["empty"], true, "{planned}");

    // Off again: the same interface, not attached again; the flow goes.
    let without = write(
        &bed,
        "steer-off",
        &format!("[[interface]]\nname = \"{interface}\"\nmode = \"generic\"\n"),
    );
    let applied = json(&bed, &["apply", "-f", &without]);
    assert!(
        applied["changes"].to_string().contains("xsk udp/9000"),
        "{applied}"
    );
    assert_eq!(json(&bed, &["xsk", "list"]), serde_json::json!([]));
    assert_eq!(status(&bed)["program_id"], program, "changed in place");
    assert_eq!(status(&bed)["steer"], false);
    assert_eq!(json(&bed, &["plan", "-f", &without])["empty"], true);
}
