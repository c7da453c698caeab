//! Under `umask 000` nothing the daemon or the CLI creates is open to
//! other users: the API socket is 0600 from the moment it exists (a
//! non-root connect loop running while the daemon starts never gets in,
//! so its blocklist entry is never applied), and the state and pin
//! directories and their files are private. A state directory others can
//! write, or a state file another user owns, is refused by the CLI.
//!
//! Needs root and curl.

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use xdpath_lab::testenv::{Side, TestBed};

use common::{in_namespace, xdpath_cli, Daemon};

/// The uid and gid of `nobody`.
const NOBODY: u32 = 65534;
/// What the non-root client tries to add once it is in.
const INTRUDER_PREFIX: &str = "192.0.2.66/32";
/// How long the non-root client keeps trying.
const CONNECT_LOOP: Duration = Duration::from_secs(8);

/// Commands in `path`'s namespace under umask 000.
fn umask_000(path: PathBuf) -> Box<dyn Fn(&str) -> Command> {
    Box::new(move |program: &str| {
        let mut command = in_namespace(&path, program);
        // SAFETY: umask is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        command
    })
}

/// Forks a child that, as `nobody`, connects to `socket` as fast as it
/// can for [`CONNECT_LOOP`]; once in, it waits 2 s (the daemon must be
/// serving) and sends `request`. It exits 0 if it never got in, 3 if it
/// did. Only async-signal-safe calls after the fork.
fn connect_loop_as_nobody(socket: &Path, request: &[u8]) -> libc::pid_t {
    let path = CString::new(socket.as_os_str().as_bytes()).expect("path");
    // SAFETY: a zeroed sockaddr_un is valid; the path fits (checked).
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes_with_nul();
    assert!(
        bytes.len() <= address.sun_path.len(),
        "socket path too long"
    );
    for (slot, byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    let length = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let request = request.to_vec();
    // SAFETY: the child calls only async-signal-safe functions on memory
    // prepared before the fork, and ends with _exit.
    unsafe {
        let pid = libc::fork();
        if pid != 0 {
            return pid;
        }
        let mut now: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
        let deadline = now.tv_sec + CONNECT_LOOP.as_secs() as libc::time_t;
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(NOBODY) != 0
            || libc::setuid(NOBODY) != 0
        {
            libc::_exit(2);
        }
        while now.tv_sec < deadline {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let pointer = std::ptr::addr_of!(address).cast::<libc::sockaddr>();
            if fd >= 0 && libc::connect(fd, pointer, length) == 0 {
                let wait = libc::timespec {
                    tv_sec: 2,
                    tv_nsec: 0,
                };
                libc::nanosleep(&wait, std::ptr::null_mut());
                libc::write(fd, request.as_ptr().cast(), request.len());
                let mut answer = [0u8; 512];
                libc::read(fd, answer.as_mut_ptr().cast(), answer.len());
                libc::_exit(3);
            }
            libc::close(fd);
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
        }
        libc::_exit(0);
    }
}

fn exit_code(pid: libc::pid_t) -> Option<i32> {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    (waited == pid && libc::WIFEXITED(status)).then(|| libc::WEXITSTATUS(status))
}

/// Every directory and file under `root` (and `root`) with group or
/// other bits in its mode.
fn open_to_others(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.mode() & 0o077 != 0 {
            found.push(format!("{} {:o}", path.display(), meta.mode() & 0o7777));
        }
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                pending.extend(entries.flatten().map(|entry| entry.path()));
            }
        }
    }
    found
}

fn cli(bed: &TestBed, side: Side, args: &[&str]) -> Output {
    umask_000(bed.side(side).path.clone())(&xdpath_cli().display().to_string())
        .args(args)
        .output()
        .expect("xdpath")
}

#[test]
fn under_umask_000_nothing_is_open_to_other_users() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let dir = std::env::temp_dir().join(format!("xdpathd-umask-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    // Others may reach the socket: only its own mode keeps them out.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let body = format!(r#"{{"prefix":"{INTRUDER_PREFIX}"}}"#);
    let request = format!(
        "POST /v1/blocklist HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let intruder = connect_loop_as_nobody(&dir.join("api.sock"), request.as_bytes());
    let daemon = Daemon::start("umask", umask_000(bed.a().path.clone()), &[]);
    assert_eq!(
        exit_code(intruder),
        Some(0),
        "a non-root client got into the socket"
    );
    let blocks = daemon.ok("GET", "/v1/blocklist", None);
    assert!(!blocks.to_string().contains(INTRUDER_PREFIX), "{blocks}");
    let socket_mode = daemon
        .socket()
        .symlink_metadata()
        .map(|meta| meta.mode() & 0o777);
    assert_eq!(socket_mode.ok(), Some(0o600));

    // The CLI too, with and without the daemon.
    daemon.xdpath(&["attach", &bed.a().interface]);
    daemon.xdpath(&["block", "add", "192.0.2.7/32"]);
    for args in [
        vec!["attach", bed.b().interface.as_str()],
        vec!["block", "add", "192.0.2.8/32"],
        vec!["lb", "config", "--source-v4", "172.16.0.0/16"],
    ] {
        let output = cli(&bed, Side::B, &args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for endpoint in [bed.a(), bed.b()] {
        for root in [endpoint.state_dir(), endpoint.pin_dir()] {
            assert!(root.exists(), "{} was not made", root.display());
            let open = open_to_others(&root);
            assert!(open.is_empty(), "open to other users: {open:?}");
        }
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_cli_refuses_state_others_can_change() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let output = cli(&bed, Side::A, &["block", "add", "192.0.2.20/32"]);
    assert!(output.status.success());
    let dir = bed.a().state_dir();
    let saved = dir.join("filter.json");
    let before = std::fs::read(&saved).expect("state");

    let refused = |needle: &str| {
        let output = cli(&bed, Side::A, &["block", "add", "192.0.2.21/32"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "accepted: {needle}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("xdpath: error: "), "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        assert_eq!(std::fs::read(&saved).ok(), Some(before.clone()));
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    refused("writable by group or others");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::os::unix::fs::chown(&saved, Some(NOBODY), None).expect("chown");
    refused("owned by uid 65534");
    std::os::unix::fs::chown(&saved, Some(0), None).expect("chown");
    std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    refused("writable by group or others");
    std::fs::set_permissions(&saved, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let output = cli(&bed, Side::A, &["block", "add", "192.0.2.21/32"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
