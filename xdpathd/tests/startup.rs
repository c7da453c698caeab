//! What xdpathd checks before it serves: what is already at the socket's
//! path (only a stale socket is replaced), the socket's directory (not one
//! others can write or own), another daemon in the namespace (one per
//! namespace), the token file (not readable by others). Each refusal is
//! one `xdpathd: error:` line and exit 1, and leaves everything as it was.
//!
//! Needs root and curl.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use xdpath::api::daemon::NOTE_FILE;
use xdpath_lab::testenv::TestBed;

use common::{in_namespace, refused, Daemon, XDPATHD};

/// A fresh directory of this test's own, mode 0755.
fn fresh_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdpathd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

fn daemon_in(bed: &TestBed, socket: &Path) -> Command {
    let mut command = in_namespace(&bed.a().path, XDPATHD);
    command.arg("--socket").arg(socket);
    command
}

/// Exit 1 with one error line holding `needle`.
fn assert_refused(command: Command, needle: &str) {
    let (code, stderr) = refused(command);
    assert_eq!(code, Some(1), "it started, or failed otherwise: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("xdpathd: error: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
}

fn enter(bed: &TestBed) -> Box<dyn Fn(&str) -> Command> {
    let path = bed.a().path.clone();
    Box::new(move |program: &str| in_namespace(&path, program))
}

#[test]
fn only_a_stale_socket_at_the_socket_path_is_replaced() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let dir = fresh_dir("socket-path");
    let file = dir.join("regular");
    std::fs::write(&file, "keep me").expect("file");
    assert_refused(daemon_in(&bed, &file), "is not a socket");
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("keep me")
    );

    let subdir = dir.join("directory");
    std::fs::create_dir(&subdir).expect("dir");
    assert_refused(daemon_in(&bed, &subdir), "is not a socket");
    assert!(subdir.is_dir());

    let link = dir.join("link");
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    assert_refused(daemon_in(&bed, &link), "is not a socket");
    assert!(link
        .symlink_metadata()
        .is_ok_and(|meta| meta.file_type().is_symlink()));
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("keep me")
    );

    // A socket nothing answers on (a daemon killed) is replaced.
    let stale_dir = std::env::temp_dir().join(format!("xdpathd-stale-{}", std::process::id()));
    std::fs::create_dir_all(&stale_dir).expect("dir");
    drop(std::os::unix::net::UnixListener::bind(stale_dir.join("api.sock")).expect("bind"));
    let daemon = Daemon::start("stale", enter(&bed), &[]);
    daemon.ok("GET", "/v1/config", None);
    drop(daemon);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_socket_directory_others_can_write_or_own_is_refused() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let dir = fresh_dir("open-dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert_refused(
        daemon_in(&bed, &dir.join("api.sock")),
        "writable by group or others",
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    assert_refused(
        daemon_in(&bed, &dir.join("api.sock")),
        "writable by group or others",
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&dir, Some(65534), None).expect("chown");
    assert_refused(daemon_in(&bed, &dir.join("api.sock")), "owned by uid 65534");
    assert_eq!(
        std::fs::read_dir(&dir).map(Iterator::count).ok(),
        Some(0),
        "nothing was created there"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_second_daemon_in_the_namespace_refuses_and_names_the_first() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let first = Daemon::start("first", enter(&bed), &[]);
    let dir = fresh_dir("second");
    let second_socket = dir.join("api.sock");
    assert_refused(
        daemon_in(&bed, &second_socket),
        &format!(
            "another xdpathd (pid {}, socket {}) serves this network namespace",
            first.pid(),
            first.socket().display()
        ),
    );
    assert!(!second_socket.exists(), "the second bound its socket");
    let note = bed.a().state_dir().join(NOTE_FILE);
    assert_eq!(
        std::fs::read_to_string(note).ok().as_deref(),
        Some(first.socket().display().to_string().as_str()),
        "the note still names the first"
    );
    let before = first.ok("GET", "/v1/config", None)["generation"].as_u64();
    first.xdpath(&["block", "add", "192.0.2.55/32"]);
    let after = first.ok("GET", "/v1/config", None)["generation"].as_u64();
    assert_eq!(
        after,
        before.map(|count| count + 1),
        "the CLI used the first"
    );
    drop(first);
    // Once it is gone, another may start.
    let next = Daemon::start("next", enter(&bed), &[]);
    next.ok("GET", "/v1/config", None);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_token_file_others_can_read_is_refused() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let dir = fresh_dir("token");
    let token = dir.join("token");
    std::fs::write(&token, "0123456789abcdef-token-mode\n").expect("token");
    for mode in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let mut command = daemon_in(&bed, &dir.join("api.sock"));
        command
            .args(["--listen", "127.0.0.1:9182", "--token-file"])
            .arg(&token);
        assert_refused(command, "accessible to group or others");
    }
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let extra = [
        "--listen".to_string(),
        "127.0.0.1:9182".into(),
        "--token-file".into(),
        token.display().to_string(),
    ];
    let daemon = Daemon::start("token", enter(&bed), &extra);
    daemon.ok("GET", "/v1/config", None);
    drop(daemon);
    let _ = std::fs::remove_dir_all(dir);
}
