//! Collectors no export should send to, refused before anything changes,
//! by `xdpath export` and by a config's `collectors` (`plan`, `apply`)
//! alike: one collector named twice (it would get every datagram twice
//! and count every flow twice), also spelled once as an IPv4-mapped IPv6
//! address, and a multicast group (no one collector; every send fails
//! without a multicast route). Needs root: a test bed's namespace.

mod common;

use common::cli::{one_error, run_in, QUICK};
use common::{bed, json, xdpath_ok};
use xdpath_lab::testenv::{Side, TestBed};

/// The operator's sampling rate on A's interface.
const OPERATORS_RATE: &str = "7";

fn kernel_rate(bed: &TestBed) -> serde_json::Value {
    json(&xdpath_ok(bed, &["--json", "status"]))[0]["sample_rate"].clone()
}

#[test]
fn export_refuses_a_repeated_collector_and_a_multicast_one() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    xdpath_ok(&bed, &["sample", &interface, OPERATORS_RATE]);
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["127.0.0.1:6343", "127.0.0.1:6343"],
            &["collector 127.0.0.1:6343 is named twice"],
        ),
        (
            &["127.0.0.1:6343", "[::ffff:127.0.0.1]:6343"],
            &["collector [::ffff:127.0.0.1]:6343 is named twice (as 127.0.0.1:6343"],
        ),
        (
            &["[::1]:6343", "127.0.0.1:6344", "[::1]:6343"],
            &["collector [::1]:6343 is named twice"],
        ),
        (
            &["224.0.0.1:6343"],
            &["collector 224.0.0.1:6343", "multicast"],
        ),
        (
            &["[ff02::1]:6343"],
            &["collector [ff02::1]:6343", "multicast"],
        ),
        (&["[::ffff:239.1.2.3]:6343"], &["multicast"]),
    ];
    for protocol in ["sflow", "ipfix"] {
        for (collectors, needles) in &cases {
            let mut args = vec!["export", protocol, "--rate", "3", "--duration", "1"];
            for collector in *collectors {
                args.extend(["--collector", collector]);
            }
            args.push(&interface);
            one_error(&run_in(&bed, Side::A, &args, QUICK), 1, needles);
            assert_eq!(kernel_rate(&bed), 7, "{args:?} changed the rate");
        }
    }
}

/// Writes a config file in namespace A's state dir, which the bed removes.
fn write(bed: &TestBed, name: &str, text: &str) -> String {
    let dir = bed.a().state_dir();
    std::fs::create_dir_all(&dir).expect("state dir");
    let path = dir.join(format!("test-{name}.toml"));
    std::fs::write(&path, text).expect("write the config");
    path.display().to_string()
}

#[test]
fn a_config_naming_a_collector_twice_is_refused_and_changes_nothing() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let applied = write(
        &bed,
        "one",
        "[export.ipfix]\ncollectors = [\"127.0.0.1:4739\"]\n",
    );
    xdpath_ok(&bed, &["apply", "-f", &applied]);
    let saved = bed.a().state_dir().join("observe.json");
    let before = std::fs::read(&saved).expect("observe.json");
    let cases = [
        ("\"127.0.0.1:4739\", \"127.0.0.1:4739\"", "ipfix"),
        ("\"127.0.0.1:6343\", \"[::ffff:127.0.0.1]:6343\"", "sflow"),
    ];
    for (index, (collectors, protocol)) in cases.iter().enumerate() {
        let text = format!("[export.{protocol}]\ncollectors = [{collectors}]\n");
        let path = write(&bed, &format!("twice-{index}"), &text);
        for command in ["plan", "apply"] {
            let run = run_in(&bed, Side::A, &[command, "-f", &path], QUICK);
            let line = one_error(&run, 1, &["is listed twice"]);
            assert!(
                line.contains(&format!("export.{protocol}.collectors[1]")),
                "{line}"
            );
            let after = std::fs::read(&saved).expect("observe.json");
            assert_eq!(before, after, "{command} {text:?} changed observe.json");
        }
    }
}
