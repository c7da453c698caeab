//! Fail closed (issue 13): what xdpath says it enforces is what the kernel
//! enforces — after the pins are lost (what a reboot does), with hostile
//! interface names, damaged state files, a reused namespace inode, a failed
//! apply, two attaches at once, writers killed half-way and a program
//! loaded by an older build. Every case runs in namespaces of its own test
//! bed, with real traffic (ping) where it says what is enforced. Needs
//! root.

mod common;
#[path = "fail_closed/interfaces_and_writers.rs"]
mod interfaces_and_writers;
#[path = "fail_closed/interrupted.rs"]
mod interrupted;
#[path = "fail_closed/older_program.rs"]
mod older_program;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// Warnings allowed where a command recovers what a crash left.
use common::{bed, ping_answered, text, xdpath, xdpath_ok, xdpath_ok_warned, XDPATH};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

/// Whether B's pings reach A within `seconds` tries (one a second): the
/// kernel frees an unpinned link's program after the last reference goes,
/// which a loaded machine can delay.
fn ping_answered_within(bed: &TestBed, seconds: u32) -> bool {
    (0..seconds).any(|_| ping_answered(bed))
}

/// A command that must fail with one `xdpath: error:` line holding `needle`.
fn refused(bed: &TestBed, args: &[&str], needle: &str) {
    let output = xdpath(bed, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "xdpath {args:?} succeeded: {}",
        text(&output)
    );
    assert_ne!(
        output.status.code(),
        Some(101),
        "xdpath {args:?} panicked: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "xdpath {args:?}: one line: {stderr}");
    assert!(lines[0].starts_with("xdpath: error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "xdpath {args:?}: {needle:?} in {stderr}"
    );
}

fn attach(bed: &TestBed) -> String {
    let interface = bed.a().interface.clone();
    xdpath_ok(bed, &["attach", &interface, "--mode", "generic"])
}

/// The balancer's settings the tests use: a source range and a fixed
/// next hop.
fn balancer_config(bed: &TestBed) {
    xdpath_ok(
        bed,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--next-hop",
            "02:00:00:00:00:99",
        ],
    );
}

/// The state of every kind, as an operator makes it.
fn make_state(bed: &TestBed) {
    let peer = format!("{}/32", bed.b().ipv4);
    xdpath_ok(
        bed,
        &[
            "filter", "add", "--src", &peer, "--proto", "icmp", "--action", "drop",
        ],
    );
    xdpath_ok(bed, &["block", "add", "192.0.2.0/24"]);
    xdpath_ok(
        bed,
        &["ratelimit", "add", "--pps", "1000", "--burst", "2000"],
    );
    xdpath_ok(bed, &["guard", "tcp-flags", "on"]);
    xdpath_ok(bed, &["mgmt", "add", "198.51.100.0/24"]);
    balancer_config(bed);
    xdpath_ok(bed, &["lb", "vip", "add", "203.0.113.10:80/tcp"]);
    xdpath_ok(
        bed,
        &[
            "lb",
            "backend",
            "add",
            "203.0.113.10:80/tcp",
            "10.0.0.1",
            "--weight",
            "3",
        ],
    );
}

#[test]
fn lost_pins_are_refilled_from_the_saved_state_by_attach() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    make_state(&bed);
    assert!(!ping_answered(&bed), "the rule drops B's pings");
    xdpath_ok(&bed, &["state", "check"]);

    // What a reboot leaves: bpffs empty, the state files on disk.
    std::fs::remove_dir_all(bed.a().pin_dir()).expect("remove the pins");
    assert!(
        ping_answered_within(&bed, 5),
        "nothing is attached any more"
    );
    let list = xdpath(&bed, &["filter", "list"]);
    assert!(list.status.success());
    assert!(
        String::from_utf8_lossy(&list.stderr).contains("the kernel does not enforce this state"),
        "a listing of rules the kernel lacks says so: {}",
        text(&list)
    );
    let check = xdpath(&bed, &["state", "check"]);
    assert!(
        !check.status.success(),
        "check fails while nothing is enforced"
    );
    assert!(
        !bed.a().pin_dir().join(":shared").exists(),
        "reads create no maps"
    );

    let attached = attach(&bed);
    assert!(attached.contains("installed the saved state"), "{attached}");
    assert!(attached.contains("rules"), "{attached}");
    let check = xdpath_ok(&bed, &["state", "check"]);
    assert!(check.contains("exactly"), "{check}");
    assert!(!ping_answered(&bed), "the rule is enforced again");
    let stats = common::json(&xdpath_ok(&bed, &["--json", "stats"]));
    assert!(common::counted(&stats, "drop", "rule-deny") >= 1, "{stats}");
}

#[test]
fn lost_pins_are_refilled_by_an_apply_that_sees_no_file_change() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let peer = format!("{}/32", bed.b().ipv4);
    let config = format!(
        "[[interface]]\nname = \"{interface}\"\nmode = \"generic\"\n\n[[filter.rule]]\nid = 1\nsrc = \"{peer}\"\nproto = \"icmp\"\naction = \"drop\"\n"
    );
    let path = std::env::temp_dir().join(format!("xdpath-fail-closed-{}.toml", std::process::id()));
    std::fs::write(&path, config).expect("config");
    let file = path.display().to_string();
    xdpath_ok(&bed, &["apply", "-f", &file]);
    assert!(!ping_answered(&bed));
    std::fs::remove_dir_all(bed.a().pin_dir()).expect("remove the pins");
    let plan = xdpath_ok(&bed, &["plan", "-f", &file]);
    assert!(
        plan.contains("! kernel"),
        "plan shows what the kernel lacks: {plan}"
    );
    xdpath_ok(&bed, &["apply", "-f", &file]);
    assert!(!ping_answered(&bed), "apply reinstalled the rule");
    let plan = xdpath_ok(&bed, &["plan", "-f", &file]);
    assert!(plan.contains("no changes"), "{plan}");
    let _ = std::fs::remove_file(path);
}

/// Hostile names never reach a path: run in a private bpffs and state
/// directory (`unshare -m`), so a failure here cannot harm other
/// namespaces.
#[test]
fn hostile_interface_names_are_refused_before_any_path() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let a = bed.a().path.display().to_string();
    let interface = bed.a().interface.clone();
    let script = format!(
        r#"set -u
mount -t bpf bpf /sys/fs/bpf && mkdir -p /var/lib/xdpath && mount -t tmpfs tmpfs /var/lib/xdpath || exit 90
x() {{ nsenter --net={a} {XDPATH} "$@"; }}
x attach {interface} --mode generic >/dev/null || exit 91
x block add 192.0.2.0/24 >/dev/null || exit 92
before=$(find /sys/fs/bpf/xdpath | sort | md5sum)
for name in .. . :shared '' 'a/b' 'x y' '../..' 'eth0:1'; do
  out=$(x detach "$name" 2>&1); rc=$?
  [ $rc -ne 0 ] || {{ echo "detach '$name' succeeded: $out"; exit 93; }}
  [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || {{ echo "detach '$name': $out"; exit 94; }}
  case "$out" in "xdpath: error: "*) ;; *) echo "detach '$name': $out"; exit 95;; esac
  out=$(x attach "$name" 2>&1) && {{ echo "attach '$name' succeeded"; exit 96; }}
done
after=$(find /sys/fs/bpf/xdpath | sort | md5sum)
[ "$before" = "$after" ] || {{ echo "pins changed"; exit 97; }}
x state check >/dev/null || exit 98
x detach {interface} >/dev/null || exit 99
"#
    );
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "bash", "-c", &script])
        .output()
        .expect("unshare");
    assert!(output.status.success(), "{}", text(&output));
}

#[test]
fn damaged_state_files_are_refused_and_repaired_from_the_kernel() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    make_state(&bed);
    let filter = bed.a().state_dir().join("filter.json");
    let good = std::fs::read(&filter).expect("state");
    for (content, needle) in [
        ("{}", "no \"format\""),
        ("[]", "not a JSON object"),
        ("{\"format\":9,\"kind\":\"filter\"}", "newer xdpath"),
        ("{\"format\":1,\"kind\":\"lb\"}", "\"lb\" file"),
        (
            "{\"format\":1,\"kind\":\"filter\",\"rules\":5}",
            "not a valid xdpath state file",
        ),
        ("{\"format\":1,", "not a JSON object"),
    ] {
        std::fs::write(&filter, content).expect("damage");
        refused(
            &bed,
            &["filter", "add", "--src", "192.0.2.9/32", "--action", "drop"],
            needle,
        );
        refused(&bed, &["block", "list"], "filter.json");
        assert_eq!(
            std::fs::read(&filter).expect("state"),
            content.as_bytes(),
            "nothing rewrote it"
        );
        assert!(
            !ping_answered(&bed),
            "what was enforced stays enforced ({content})"
        );
        let status = xdpath_ok(&bed, &["status"]);
        assert!(status.contains("degraded"), "{status}");
    }
    std::fs::write(&filter, "{}").expect("damage");
    let repaired = xdpath_ok(&bed, &["state", "repair"]);
    assert!(repaired.contains("rebuilt"), "{repaired}");
    assert_eq!(
        common::json(&std::fs::read_to_string(&filter).expect("state"))["rules"],
        common::json(&String::from_utf8_lossy(&good))["rules"]
    );
    xdpath_ok(&bed, &["state", "check"]);
    let lb = bed.a().state_dir().join("lb.json");
    let good_lb = std::fs::read_to_string(&lb).expect("lb.json");
    // Files that parse but cannot be installed (hostile lb F11: they
    // failed part way on the kernel's E2BIG): refused whole, before any
    // write, as damaged.
    for (field, value, needle) in [
        ("slot", 99, "slot 99 is past the last (31)"),
        ("index", 5000, "index 5000 is past the last (4095)"),
    ] {
        let mut damaged = common::json(&good_lb);
        let vip = &mut damaged["vips"][0];
        match field {
            "slot" => vip["slot"] = value.into(),
            _ => vip["backends"][0]["index"] = value.into(),
        }
        std::fs::write(&lb, damaged.to_string()).expect("damage");
        for args in [
            &["lb", "vip", "list"][..],
            &["state", "check"],
            &["lb", "vip", "add", "203.0.113.12:80/tcp"],
        ] {
            refused(&bed, args, "not a valid xdpath state file");
            refused(&bed, args, needle);
        }
        assert_eq!(
            std::fs::read_to_string(&lb).expect("lb.json"),
            damaged.to_string(),
            "nothing rewrote it"
        );
    }
    std::fs::write(&lb, "{}").expect("damage");
    refused(&bed, &["lb", "vip", "list"], "lb.json");
    xdpath_ok(&bed, &["state", "repair"]);
    let vips = xdpath_ok(&bed, &["lb", "vip", "list"]);
    assert!(vips.contains("203.0.113.10"), "{vips}");
    assert_eq!(
        common::json(&std::fs::read_to_string(&lb).expect("lb.json"))["vips"],
        common::json(&good_lb)["vips"]
    );
}

/// Namespaces made and deleted until an inode comes back: the new one
/// starts empty, and `state gc` removes the deleted one's state.
#[test]
fn a_new_namespace_never_inherits_a_deleted_ones_state() {
    xdpath_lab::needs_root!();
    let name = |index: usize| format!("xdpt-{}-reuse-{index}", std::process::id());
    let path = |index: usize| Path::new(xdpath_lab::testenv::NETNS_DIR).join(name(index));
    let ip = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .status()
            .expect("ip")
            .success()
    };
    let in_ns = |index: usize, args: &[&str]| {
        Command::new("nsenter")
            .arg(format!("--net={}", path(index).display()))
            .arg(XDPATH)
            .args(args)
            .output()
            .expect("xdpath")
    };
    assert!(ip(&["netns", "add", &name(0)]));
    let inode = std::fs::metadata(path(0))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("inode");
    let first_key = xdpath::netns::key_of(&path(0)).expect("key");
    assert!(in_ns(0, &["block", "add", "192.0.2.0/24"]).status.success());
    assert!(in_ns(0, &["lb", "config", "--source-v4", "172.16.0.0/16"])
        .status
        .success());
    assert!(in_ns(0, &["lb", "vip", "add", "203.0.113.99:80/tcp"])
        .status
        .success());
    assert!(xdpath::control::state::state_dir_of(&first_key).exists());
    assert!(ip(&["netns", "del", &name(0)]));
    let mut reused = None;
    for index in 1..200 {
        assert!(ip(&["netns", "add", &name(index)]));
        let again = std::fs::metadata(path(index))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .expect("inode");
        if again == inode {
            reused = Some(index);
            break;
        }
        assert!(ip(&["netns", "del", &name(index)]));
    }
    let Some(index) = reused else {
        eprintln!("skipped: no inode came back in 200 namespaces on this kernel");
        return;
    };
    let blocks = in_ns(index, &["--json", "block", "list"]);
    let vips = in_ns(index, &["lb", "vip", "add", "203.0.113.99:80/tcp"]);
    let key = xdpath::netns::key_of(&path(index)).expect("key");
    assert!(ip(&["netns", "del", &name(index)]));
    assert_ne!(key, first_key);
    assert_eq!(
        String::from_utf8_lossy(&blocks.stdout).trim(),
        "[]",
        "{}",
        text(&blocks)
    );
    assert!(
        vips.status.success(),
        "the VIP of the deleted namespace is not this one's: {}",
        text(&vips)
    );
    let gc = Command::new(XDPATH)
        .args(["state", "gc"])
        .output()
        .expect("gc");
    assert!(gc.status.success(), "{}", text(&gc));
    assert!(
        !xdpath::control::state::state_dir_of(&first_key).exists(),
        "{}",
        text(&gc)
    );
    assert!(
        !xdpath::control::state::state_dir_of(&key).exists(),
        "{}",
        text(&gc)
    );
    assert!(!xdpath::dataplane::namespace_dir_of(&first_key).exists());
}
