//! Changes that fail or are cut short: a failed apply, two attaches at
//! once, and filter loads, applies and balancer changes killed part way,
//! each leaving the old or the new state whole.

use super::*;

/// Applies a config asking native XDP of loopback (which has none: found
/// only when attaching, after the config's rules went in) beside A's veth
/// in generic mode, and checks it failed and left the kernel holding
/// exactly the state from before, read back, A's rule enforced.
fn apply_refused_at_the_attach(bed: &TestBed) {
    let interface = &bed.a().interface;
    let before = xdpath_ok(bed, &["--json", "filter", "list"]);
    let config = format!(
        "[[interface]]\nname = \"{interface}\"\nmode = \"generic\"\n\n[[interface]]\nname = \"lo\"\nmode = \"native\"\n\n[[filter.rule]]\nid = 7\nsrc = \"192.0.2.77/32\"\naction = \"drop\"\n\n[[filter.block]]\nprefix = \"198.18.0.0/15\"\n"
    );
    let path =
        std::env::temp_dir().join(format!("xdpath-failed-apply-{}.toml", std::process::id()));
    std::fs::write(&path, config).expect("config");
    let output = xdpath(bed, &["apply", "-f", &path.display().to_string()]);
    let _ = std::fs::remove_file(&path);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("the previous state was restored"),
        "{}",
        text(&output)
    );
    xdpath_ok(bed, &["state", "check"]);
    assert_eq!(xdpath_ok(bed, &["--json", "filter", "list"]), before);
    let blocks = xdpath_ok(bed, &["--json", "block", "list"]);
    assert!(
        blocks.contains("192.0.2.0/24") && !blocks.contains("198.18.0.0"),
        "{blocks}"
    );
    assert!(!ping_answered(bed), "the old rule is enforced");
}

/// An apply that fails half-way, at an interface it adds.
#[test]
fn a_failed_apply_leaves_the_kernel_as_it_was() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    make_state(&bed);
    apply_refused_at_the_attach(&bed);
}

/// The same failure at a mode change (loopback from generic to native):
/// the program loaded for it goes back in the mode loopback ran.
#[test]
fn a_refused_mode_change_leaves_the_interface_running() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    make_state(&bed);
    xdpath_ok(&bed, &["attach", "lo", "--mode", "generic"]);
    apply_refused_at_the_attach(&bed);
    let status: Value =
        serde_json::from_str(&xdpath_ok(&bed, &["--json", "status"])).expect("JSON");
    let lo = status
        .as_array()
        .and_then(|list| list.iter().find(|entry| entry["interface"] == "lo"))
        .unwrap_or_else(|| panic!("lo still attached: {status}"));
    assert_eq!(lo["mode"], "generic", "{status}");
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
pub(crate) fn write_config(bed: &TestBed, name: &str, text: &str) -> String {
    let dir = bed.a().state_dir();
    std::fs::create_dir_all(&dir).expect("state dir");
    let path = dir.join(format!("test-{name}.toml"));
    std::fs::write(&path, text).expect("config");
    path.display().to_string()
}

/// A pseudo-random delay in `floor..floor + span` from `seed` (advanced).
pub(crate) fn random_delay(seed: &mut u64, floor: Duration, span: Duration) -> Duration {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let span_ms = span.as_millis().max(1) as u64;
    floor + Duration::from_millis((*seed >> 33) % span_ms)
}

/// Runs `xdpath ARGS` in A in a process group of its own, and kills the
/// whole group with SIGKILL after `delay` (or lets it end first).
pub(crate) fn kill_after(bed: &TestBed, program: &str, args: &[&str], delay: Duration) {
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
    // Backends in the state that no trial acknowledged: each killed trial
    // may leave the one it was adding, committed but not acknowledged.
    let mut unacknowledged = 0;
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
        let listed: Value = serde_json::from_str(&xdpath_ok_warned(
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
        let extra = addresses
            .len()
            .checked_sub(acked.len() + unacknowledged)
            .unwrap_or_else(|| panic!("trial {trial}: a backend an earlier trial left is gone"));
        assert!(extra <= 1, "trial {trial}: {extra} backends nobody added");
        unacknowledged += extra;
        let last = acked.iter().copied().max().unwrap_or(0).max(next - 1);
        next = last + 1 + extra as u32;
        xdpath_ok(&bed, &["state", "check"]);
    }
    assert!(next > 1, "no change was ever acknowledged");
}

/// A commit mark left by a writer that died: the next command installs
/// the saved state again, and the library's warning (through `log`, shown
/// by the CLI's logger) says so in one `xdpath: warning:` line on stderr,
/// not mixed with aya's own log records.
#[test]
fn an_interrupted_commit_is_put_right_and_said_so() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    make_state(&bed);
    let marker = bed
        .a()
        .state_dir()
        .join(xdpath::control::commit_marker::COMMIT_MARKER);
    std::fs::write(&marker, "4194304\n").expect("leave a commit mark");
    let output = xdpath(&bed, &["filter", "list"]);
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        warnings,
        vec![
            "xdpath: warning: a change was interrupted (a crash or kill); the saved state is back in force"
        ],
        "stderr: {stderr}"
    );
    assert!(
        !marker.exists(),
        "the mark is cleared once the kernel is right"
    );
    xdpath_ok(&bed, &["state", "check"]);
}

/// A failed apply puts the state files back as they were, not as a
/// config sees them: an owner's rule stays before the rules added after
/// it (here its drop before a pass of the same source, which a re-planned
/// restore put last, turning the drop into a pass), and the balancer's
/// backends keep their generations and tables.
#[test]
fn a_failed_apply_keeps_an_owners_rules_where_they_stood() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    balancer_config(&bed);
    let vip = "203.0.113.10:80/tcp";
    xdpath_ok(&bed, &["lb", "vip", "add", vip]);
    xdpath_ok(&bed, &["lb", "backend", "add", vip, "10.0.0.1"]);
    let peer = format!("{}/32", bed.b().ipv4);
    let document = format!(r#"{{"rules":[{{"src":"{peer}","action":"drop"}}]}}"#);
    let path = write_config(&bed, "owner-document", &document);
    xdpath_ok(&bed, &["lb", "owner", "apply", "tenant-1", &path]);
    xdpath_ok(&bed, &["filter", "add", "--src", &peer, "--action", "pass"]);
    assert!(!ping_answered(&bed), "the owner's drop comes first");
    let dir = bed.a().state_dir();
    let files =
        || ["filter.json", "lb.json"].map(|name| std::fs::read(dir.join(name)).expect(name));
    let before = files();

    let config = write_config(
        &bed,
        "failing",
        &format!(
            "[[interface]]\nname = \"{}\"\nmode = \"generic\"\n\n[[interface]]\nname = \"lo\"\nmode = \"native\"\n",
            bed.a().interface
        ),
    );
    let output = xdpath(&bed, &["apply", "-f", &config]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("the previous state was restored"),
        "{}",
        text(&output)
    );
    assert!(files() == before, "the state files are as they were");
    assert!(!ping_answered(&bed), "the owner's drop still comes first");
    xdpath_ok(&bed, &["state", "check"]);
}
