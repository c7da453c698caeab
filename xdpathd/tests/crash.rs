//! xdpathd killed with SIGKILL while it applies a large config through
//! `POST /v1/config` (issue 13, item 6): the next daemon finishes or undoes
//! the apply when it starts, so one of the two configs is in force whole
//! and the kernel holds exactly the saved state, read back.
//!
//! Needs root.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use xdpath_lab::testenv::configs::large_config;
use xdpath_lab::testenv::TestBed;

use common::Daemon;

fn enter(bed: &TestBed) -> Box<dyn Fn(&str) -> std::process::Command> {
    let path = bed.a().path.clone();
    Box::new(move |program: &str| common::in_namespace(&path, program))
}

/// Starts `POST /v1/config` of `body` with curl; the curl process.
fn post_in_background(daemon: &Daemon, body: &str) -> std::process::Child {
    let socket = daemon.socket().display().to_string();
    let mut curl = daemon
        .command("curl")
        .args(["-s", "-o", "/dev/null", "--unix-socket", &socket])
        .args([
            "-H",
            "Content-Type: application/toml",
            "--data-binary",
            "@-",
        ])
        .arg("http://localhost/v1/config")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    if let Some(mut stdin) = curl.stdin.take() {
        let _ = stdin.write_all(body.as_bytes());
    }
    curl
}

/// Which of `configs` (paths) the CLI plans no change for.
fn in_force(daemon: &Daemon, configs: &[String]) -> Vec<usize> {
    (0..configs.len())
        .filter(|&index| {
            daemon
                .xdpath(&["plan", "-f", &configs[index]])
                .contains("no changes")
        })
        .collect()
}

#[test]
fn a_daemon_killed_during_a_config_apply_leaves_old_or_new_whole() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let interface = bed.a().interface.clone();
    let bodies = [large_config(&interface, 0), large_config(&interface, 1)];
    let dir = bed.a().state_dir();
    std::fs::create_dir_all(&dir).expect("state dir");
    let configs: Vec<String> = bodies
        .iter()
        .enumerate()
        .map(|(index, body)| {
            let path = dir.join(format!("test-large-{index}.toml"));
            std::fs::write(&path, body).expect("config");
            path.display().to_string()
        })
        .collect();
    let mut daemon = Daemon::start("crash", enter(&bed), &[]);
    let started = Instant::now();
    let status = post_in_background(&daemon, &bodies[0])
        .wait()
        .expect("curl");
    assert!(status.success());
    let took = started.elapsed();
    assert_eq!(in_force(&daemon, &configs), vec![0], "the first apply");
    let (mut current, mut seed, mut outcomes) = (0, 0xdead_u64, [0; 2]);
    for trial in 0..4 {
        let target = 1 - current;
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let delay = Duration::from_millis(50 + (seed >> 33) % took.as_millis().max(1) as u64);
        let mut curl = post_in_background(&daemon, &bodies[target]);
        std::thread::sleep(delay);
        daemon.kill_hard();
        let _ = curl.wait();
        daemon = Daemon::start("crash", enter(&bed), &[]);
        let whole = in_force(&daemon, &configs);
        assert_eq!(
            whole.len(),
            1,
            "trial {trial} (killed after {delay:?}): neither config is in force whole"
        );
        current = whole[0];
        outcomes[usize::from(current == target)] += 1;
        daemon.xdpath(&["state", "check"]);
    }
    eprintln!(
        "POST /v1/config of the large config took {took:?}; after the kills: old {} times, new {}",
        outcomes[0], outcomes[1]
    );
}
