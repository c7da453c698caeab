//! Fail closed (issue 13): what xdpath says it enforces is what the kernel
//! enforces — after the pins are lost (what a reboot does), with hostile
//! interface names, damaged state files, a reused namespace inode, a failed
//! apply, two attaches at once and writers killed half-way. Every case runs
//! in namespaces of its own test bed, with real traffic (ping) where it
//! says what is enforced. Needs root.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bed, xdpath, xdpath_ok, XDPATH};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

/// One ping from B to A: answered or not.
fn ping_answered(bed: &TestBed) -> bool {
    let address = bed.a().ipv4.to_string();
    bed.exec(Side::B, "ping", ["-c", "1", "-W", "1", address.as_str()])
        .expect("ping")
        .status
        .success()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
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
    assert!(ping_answered(&bed), "nothing is attached any more");
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
    std::fs::write(&lb, "{}").expect("damage");
    refused(&bed, &["lb", "vip", "list"], "lb.json");
    xdpath_ok(&bed, &["state", "repair"]);
    let vips = xdpath_ok(&bed, &["lb", "vip", "list"]);
    assert!(vips.contains("203.0.113.10"), "{vips}");
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

/// An apply that fails half-way (the interface cannot run in the mode
/// asked for, found only when attaching, after the rules went in) leaves
/// the kernel holding exactly the state from before, read back.
#[test]
fn a_failed_apply_leaves_the_kernel_as_it_was() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    attach(&bed);
    make_state(&bed);
    let before = xdpath_ok(&bed, &["--json", "filter", "list"]);
    let config = format!(
        "[[interface]]\nname = \"{interface}\"\nmode = \"offload\"\n\n[[filter.rule]]\nid = 7\nsrc = \"192.0.2.77/32\"\naction = \"drop\"\n\n[[filter.block]]\nprefix = \"198.18.0.0/15\"\n"
    );
    let path =
        std::env::temp_dir().join(format!("xdpath-failed-apply-{}.toml", std::process::id()));
    std::fs::write(&path, config).expect("config");
    let output = xdpath(&bed, &["apply", "-f", &path.display().to_string()]);
    let _ = std::fs::remove_file(&path);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("the previous state was restored"),
        "{}",
        text(&output)
    );
    xdpath_ok(&bed, &["state", "check"]);
    assert_eq!(xdpath_ok(&bed, &["--json", "filter", "list"]), before);
    let blocks = xdpath_ok(&bed, &["--json", "block", "list"]);
    assert!(
        blocks.contains("192.0.2.0/24") && !blocks.contains("198.18.0.0"),
        "{blocks}"
    );
    assert!(!ping_answered(&bed), "the old rule is enforced");
}

/// Two attaches at once in a namespace with no pins yet: one wins, the
/// other says "already attached"; ten times.
#[test]
fn two_attaches_at_once_one_wins() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let a = bed.a().path.display().to_string();
    for trial in 0..10 {
        let spawn = || {
            Command::new("nsenter")
                .arg(format!("--net={a}"))
                .args([XDPATH, "attach", &interface, "--mode", "generic"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("attach")
        };
        let (first, second) = (spawn(), spawn());
        let results = [
            first.wait_with_output().expect("wait"),
            second.wait_with_output().expect("wait"),
        ];
        let won = results
            .iter()
            .filter(|output| output.status.success())
            .count();
        assert_eq!(
            won,
            1,
            "trial {trial}: {} | {}",
            text(&results[0]),
            text(&results[1])
        );
        let lost = results
            .iter()
            .find(|output| !output.status.success())
            .expect("a loser");
        assert!(
            text(lost).contains("already attached"),
            "trial {trial}: {}",
            text(lost)
        );
        xdpath_ok(&bed, &["detach", &interface]);
        let _ = std::fs::remove_dir_all(bed.a().pin_dir());
    }
}

/// `filter load` of 200,000 prefixes killed with SIGKILL at random points:
/// afterwards the list works, the kernel holds the listed set or the
/// state is put right by the next change, and the next load works.
#[test]
fn a_killed_filter_load_leaves_old_or_new_and_the_next_load_works() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    let path = std::env::temp_dir().join(format!("xdpath-kill-load-{}.txt", std::process::id()));
    let prefixes: String = (0..200_000u32)
        .map(|n| format!("10.{}.{}.{}/32\n", 64 + (n >> 16), (n >> 8) & 255, n & 255))
        .collect();
    std::fs::write(&path, prefixes).expect("prefixes");
    let file = path.display().to_string();
    let a = bed.a().path.display().to_string();
    let mut seed = 0x9e37_79b9_u64;
    for trial in 0..6 {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let delay = Duration::from_millis(100 + seed % 1_400);
        let mut child = Command::new("nsenter")
            .arg(format!("--net={a}"))
            .args([XDPATH, "filter", "load", &file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("load");
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        // The first command after the kill finishes what it left: the
        // kernel then holds exactly the listed state (the old rules or the
        // new, never a mix), with no repair asked for.
        let list = xdpath(&bed, &["--json", "filter", "list"]);
        assert!(list.status.success(), "trial {trial}: {}", text(&list));
        xdpath_ok(&bed, &["state", "check"]);
        let leftovers: Vec<_> = std::fs::read_dir(bed.a().state_dir())
            .expect("state dir")
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "trial {trial}: temporary files left: {leftovers:?}"
        );
    }
    xdpath_ok(&bed, &["filter", "flush"]);
    xdpath_ok(&bed, &["filter", "load", &file]);
    xdpath_ok(&bed, &["state", "check"]);
    let _ = std::fs::remove_file(path);
}

/// Writes `text` in A's state directory (the bed removes it); its path.
fn write_config(bed: &TestBed, name: &str, text: &str) -> String {
    let dir = bed.a().state_dir();
    std::fs::create_dir_all(&dir).expect("state dir");
    let path = dir.join(format!("test-{name}.toml"));
    std::fs::write(&path, text).expect("config");
    path.display().to_string()
}

/// A pseudo-random delay in `floor..floor + span` from `seed` (advanced).
fn random_delay(seed: &mut u64, floor: Duration, span: Duration) -> Duration {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let span_ms = span.as_millis().max(1) as u64;
    floor + Duration::from_millis((*seed >> 33) % span_ms)
}

/// Runs `xdpath ARGS` in A in a process group of its own, and kills the
/// whole group with SIGKILL after `delay` (or lets it end first).
fn kill_after(bed: &TestBed, program: &str, args: &[&str], delay: Duration) {
    use std::os::unix::process::CommandExt;
    let a = bed.a().path.display().to_string();
    let mut child = Command::new("nsenter")
        .arg(format!("--net={a}"))
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let started = Instant::now();
    while started.elapsed() < delay && child.try_wait().expect("wait").is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: the group is our child's own (process_group(0)).
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
}

/// `apply -f` of a large config (2,000 rules, 32 VIPs × 120 backends; the
/// other variant changes every rule's port and 576 weights) killed with
/// SIGKILL at random points: the next command finishes or undoes it, so
/// one of the two configs is in force whole (its plan is empty) and the
/// kernel holds exactly the saved state, read back.
#[test]
fn a_killed_apply_leaves_the_old_or_the_new_config_whole() {
    xdpath_lab::needs_root!();
    use xdpath_lab::testenv::configs::large_config;
    let bed = bed();
    let interface = bed.a().interface.clone();
    let configs = [
        write_config(&bed, "large-0", &large_config(&interface, 0)),
        write_config(&bed, "large-1", &large_config(&interface, 1)),
    ];
    let started = Instant::now();
    xdpath_ok(&bed, &["apply", "-f", &configs[0]]);
    let took = started.elapsed();
    let in_force = |bed: &TestBed| -> Vec<usize> {
        (0..2)
            .filter(|&index| {
                let output = xdpath(bed, &["plan", "-f", &configs[index]]);
                assert!(output.status.success(), "{}", text(&output));
                text(&output).contains("no changes")
            })
            .collect()
    };
    let (mut current, mut seed, mut outcomes) = (0, 0x5eed_u64, [0; 2]);
    for trial in 0..6 {
        let target = 1 - current;
        let delay = random_delay(&mut seed, Duration::from_millis(20), took);
        kill_after(&bed, XDPATH, &["apply", "-f", &configs[target]], delay);
        let whole = in_force(&bed);
        assert_eq!(
            whole.len(),
            1,
            "trial {trial} (killed after {delay:?}): neither config is in force whole"
        );
        current = whole[0];
        outcomes[usize::from(current == target)] += 1;
        xdpath_ok(&bed, &["state", "check"]);
    }
    eprintln!(
        "apply of the large config took {took:?}; after the kills: old {} times, new {}",
        outcomes[0], outcomes[1]
    );
}

/// `lb` changes killed with SIGKILL at random points of a run of them:
/// every acknowledged change is there exactly once afterwards, the one
/// killed is there whole or not at all, and the kernel holds the saved
/// state, read back.
#[test]
fn killed_lb_changes_lose_no_acknowledged_change() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    const VIP: &str = "203.0.113.50:80/tcp";
    xdpath_ok(&bed, &["lb", "config", "--source-v4", "172.16.0.0/16"]);
    xdpath_ok(&bed, &["lb", "vip", "add", VIP]);
    let acked_file = bed.a().state_dir().join("test-acked");
    let acked_path = acked_file.display().to_string();
    let mut seed = 0xb0b_u64;
    let mut next = 1u32;
    for trial in 0..5 {
        let script = format!(
            "for i in $(seq {next} {}); do {XDPATH} lb backend add {VIP} 10.9.$((i / 250)).$((i % 250 + 1)) --weight $((i % 7 + 1)) && echo $i >> {acked_path}; done",
            next + 200
        );
        let delay = random_delay(
            &mut seed,
            Duration::from_millis(100),
            Duration::from_secs(2),
        );
        kill_after(&bed, "bash", &["-c", &script], delay);
        let listed: Value = serde_json::from_str(&xdpath_ok_quietly(
            &bed,
            &["--json", "lb", "backend", "list"],
        ))
        .expect("JSON");
        let addresses: Vec<String> = listed
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|row| row["backend"].as_str().map(str::to_string))
            .collect();
        let unique: std::collections::BTreeSet<&String> = addresses.iter().collect();
        assert_eq!(
            unique.len(),
            addresses.len(),
            "trial {trial}: a backend twice"
        );
        let acked: Vec<u32> = std::fs::read_to_string(&acked_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.trim().parse().ok())
            .collect();
        let address_of = |i: u32| format!("10.9.{}.{}", i / 250, i % 250 + 1);
        for i in &acked {
            assert!(
                unique.contains(&address_of(*i)),
                "trial {trial}: acknowledged backend {} lost",
                address_of(*i)
            );
        }
        let extra = addresses.len() - acked.len();
        assert!(extra <= 1, "trial {trial}: {extra} backends nobody added");
        next = acked.iter().max().map_or(1, |last| last + 1) + extra as u32;
        xdpath_ok(&bed, &["state", "check"]);
    }
    assert!(next > 1, "no change was ever acknowledged");
}

/// `xdpath ARGS` in A must succeed (warnings of a recovery allowed); stdout.
fn xdpath_ok_quietly(bed: &TestBed, args: &[&str]) -> String {
    let output = xdpath(bed, args);
    assert!(
        output.status.success(),
        "xdpath {args:?}: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The settings of an interface (sampling, forwarding, steering) come back
/// with it after its program is lost: through `attach`, and through
/// `state check --repair` (what xdpathd runs every 2 s), which attaches a
/// lost interface again by itself. `detach` forgets it.
#[test]
fn lost_interfaces_come_back_with_their_settings() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    bed.exec_ok(Side::A, "sysctl", ["-qw", "net.ipv4.conf.all.forwarding=1"])
        .expect("forwarding in A");
    attach(&bed);
    for args in [
        vec!["sample", interface.as_str(), "64"],
        vec!["forward", "enable", interface.as_str()],
        vec!["steer", "enable", interface.as_str(), "--cpus", "0"],
    ] {
        let output = xdpath(&bed, &args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
    }
    let settings = |bed: &TestBed| {
        let status: Value =
            serde_json::from_str(&xdpath_ok_quietly(bed, &["--json", "status"])).expect("JSON");
        let row = status
            .as_array()
            .and_then(|rows| {
                rows.iter()
                    .find(|row| row["interface"] == interface.as_str())
            })
            .cloned()
            .unwrap_or(Value::Null);
        (
            row["sample_rate"].as_u64(),
            row["forward"].as_bool(),
            row["steer"].as_bool(),
            row["healthy"].as_bool(),
        )
    };
    let wanted = (Some(64), Some(true), Some(true), Some(true));
    assert_eq!(settings(&bed), wanted);

    std::fs::remove_dir_all(bed.a().pin_dir()).expect("remove the pins");
    let check = xdpath(&bed, &["state", "check"]);
    assert!(!check.status.success());
    assert!(
        text(&check).contains(&format!("interface: {interface} was attached")),
        "{}",
        text(&check)
    );
    attach(&bed);
    assert_eq!(settings(&bed), wanted, "attach brought the settings back");

    std::fs::remove_dir_all(bed.a().pin_dir()).expect("remove the pins");
    xdpath_ok_quietly(&bed, &["state", "check", "--repair"]);
    assert_eq!(settings(&bed), wanted, "repair attached it again as it was");
    xdpath_ok(&bed, &["state", "check"]);

    xdpath_ok(&bed, &["detach", &interface]);
    xdpath_ok(&bed, &["state", "check"]);
    let _ = std::fs::remove_dir_all(bed.a().pin_dir());
    xdpath_ok(&bed, &["state", "check"]);
}

/// Writers at once (blocks, rules and backends from four processes at a
/// time, 240 changes): none is lost, none is applied twice, and the kernel
/// holds exactly the saved state afterwards.
#[test]
fn concurrent_writers_lose_nothing() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    const VIP: &str = "203.0.113.60:80/tcp";
    xdpath_ok(
        &bed,
        &[
            "lb",
            "config",
            "--source-v4",
            "172.16.0.0/16",
            "--next-hop",
            "02:00:00:00:00:99",
        ],
    );
    xdpath_ok(&bed, &["lb", "vip", "add", VIP]);
    const WRITERS: u32 = 4;
    const EACH: u32 = 20;
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let bed = &bed;
            scope.spawn(move || {
                for n in 0..EACH {
                    let block = format!("10.{writer}.{n}.0/24");
                    let source = format!("10.{}.{n}.0/24", 100 + writer);
                    let backend = format!("10.{}.{writer}.{}", 150, n + 1);
                    for args in [
                        vec!["block", "add", block.as_str()],
                        vec!["filter", "add", "--src", &source, "--action", "drop"],
                        vec!["lb", "backend", "add", VIP, &backend],
                    ] {
                        let output = xdpath(bed, &args);
                        assert!(output.status.success(), "{args:?}: {}", text(&output));
                    }
                }
            });
        }
    });
    let count = |args: &[&str]| -> usize {
        let listed: Value = serde_json::from_str(&xdpath_ok(&bed, args)).expect("JSON");
        // `filter list` is an object holding the rules.
        listed
            .as_array()
            .or_else(|| listed["rules"].as_array())
            .map_or(0, Vec::len)
    };
    let total = (WRITERS * EACH) as usize;
    assert_eq!(count(&["--json", "block", "list"]), total, "blocks");
    assert_eq!(count(&["--json", "filter", "list"]), total, "rules");
    assert_eq!(
        count(&["--json", "lb", "backend", "list"]),
        total,
        "backends"
    );
    xdpath_ok(&bed, &["state", "check"]);
}
