//! Slow clients cannot take the daemon's file descriptors. Under the
//! open-file limit of a unit that sets none (1,024), 1,100 TCP connections
//! on the namespace's loopback that send their headers one byte a second
//! leave the Unix socket's API and `xdpath filter add` through the daemon
//! answering at once; the connections over the TCP listener's limit are
//! refused with a JSON 503, the others closed with a JSON 408 once the read
//! timeout has passed, after which TCP answers again. A slow body and a
//! silent connection are closed the same way, a connection carries one
//! request (nothing idles after its answer), and a connection over the
//! Unix socket's limit waits its turn rather than being refused.
//!
//! Needs root, curl and prlimit.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use xdpath_lab::testenv::TestBed;

use common::{parse_answer, xdpath_cli, Daemon};

const TOKEN: &str = "0123456789abcdef-slow-clients";
const PORT: u16 = 9181;
const SLOW_CONNECTIONS: usize = 1_100;
/// The daemon's default time to read a request's headers, and its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How late after the timeout a connection may still be closed (a loaded
/// machine).
const SLACK: Duration = Duration::from_secs(10);
/// The most connections the daemon's Unix socket serves at once.
const UNIX_CONNECTIONS: usize = 64;

fn token_file(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("xdpathd-{name}-token-{}", std::process::id()));
    std::fs::write(&path, TOKEN).expect("token");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// The daemon in A with the open-file limit of a unit without
/// `LimitNOFILE` (soft and hard 1,024: it cannot raise it either).
fn start_limited(bed: &TestBed, token: &Path) -> Daemon {
    let path = bed.a().path.clone();
    let enter = Box::new(move |program: &str| {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net={}", path.display())).args([
            "prlimit",
            "--nofile=1024:1024",
            program,
        ]);
        command
    });
    let extra = [
        "--listen".to_string(),
        format!("127.0.0.1:{PORT}"),
        "--token-file".into(),
        token.display().to_string(),
    ];
    Daemon::start("slow", enter, &extra)
}

/// This test holds more sockets than a default soft limit allows.
fn raise_own_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur >= 4096,
        "need 4,096 files: {}",
        limit.rlim_cur
    );
}

/// What became of a connection so far.
enum Outcome {
    /// Still open, nothing answered.
    Open,
    /// Answered (status, body) and closed, this long after it was opened.
    Answered(u16, Value, Duration),
    /// Closed without an answer.
    Dropped,
}

/// Reads what has arrived without waiting.
fn poll(stream: &mut TcpStream, received: &mut Vec<u8>, opened: Instant) -> Outcome {
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) if received.is_empty() => return Outcome::Dropped,
            Ok(0) => {
                let (status, body) = parse_answer(received);
                return Outcome::Answered(status, body, opened.elapsed());
            }
            Ok(count) => received.extend_from_slice(&buffer[..count]),
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Outcome::Open,
            Err(_) if !received.is_empty() => {
                let (status, body) = parse_answer(received);
                return Outcome::Answered(status, body, opened.elapsed());
            }
            Err(_) => return Outcome::Dropped,
        }
    }
}

/// Runs `command` for at most `limit`; whether it succeeded in time, and
/// how long it took.
fn run_within(mut command: Command, limit: Duration) -> (bool, Duration) {
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return (status.success(), started.elapsed());
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return (false, started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn generation(daemon: &Daemon) -> u64 {
    daemon.ok("GET", "/v1/config", None)["generation"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn slow_tcp_clients_leave_the_unix_socket_and_the_cli_answering() {
    xdpath_lab::needs_root!();
    raise_own_file_limit();
    let bed = TestBed::new().expect("bed");
    let token = token_file("slow");
    let daemon = start_limited(&bed, &token);
    let address: SocketAddr = ([127, 0, 0, 1], PORT).into();
    let opened = Instant::now();
    let mut slow: Vec<(TcpStream, Vec<u8>)> = bed
        .run_in_a(move || {
            (0..SLOW_CONNECTIONS)
                .filter_map(|_| TcpStream::connect_timeout(&address, Duration::from_secs(5)).ok())
                .collect::<Vec<_>>()
        })
        .expect("in A")
        .into_iter()
        .map(|stream| (stream, Vec::new()))
        .collect();
    assert_eq!(slow.len(), SLOW_CONNECTIONS, "every connect answered");
    for (stream, _) in &mut slow {
        let _ = stream.write_all(b"GET /v1/rules HTTP/1.1\r\nHost: xdpathd\r\nX-Slow: ");
        stream.set_nonblocking(true).expect("nonblocking");
    }

    // The operator gets in at once, over the socket and through the CLI.
    let socket = daemon.socket().display().to_string();
    let (status, config) = daemon.curl(
        &["--max-time", "10", "--unix-socket", &socket],
        "GET",
        "http://localhost/v1/config",
        None,
        true,
    );
    assert_eq!(status, 200, "the Unix socket's API: {config}");
    let before = generation(&daemon);
    let mut add = daemon.command(&xdpath_cli().display().to_string());
    add.args([
        "filter",
        "add",
        "--src",
        "198.51.100.0/24",
        "--action",
        "drop",
    ]);
    let (added, took) = run_within(add, Duration::from_secs(20));
    assert!(added, "xdpath filter add through the daemon: {took:?}");
    assert_eq!(
        generation(&daemon),
        before + 1,
        "it went through the daemon"
    );
    assert!(
        opened.elapsed() < READ_TIMEOUT,
        "the checks ran while the slow connections were open: {:?}",
        opened.elapsed()
    );

    // Over the listener's limit: refused at once. The rest: closed after
    // the read timeout although they keep sending.
    let mut refused = 0;
    let mut timed_out = Vec::new();
    while !slow.is_empty() && opened.elapsed() < READ_TIMEOUT + SLACK {
        let mut open = Vec::new();
        for (mut stream, mut received) in slow {
            match poll(&mut stream, &mut received, opened) {
                Outcome::Open => {
                    let _ = stream.write_all(b"a");
                    open.push((stream, received));
                }
                Outcome::Answered(503, body, _) => {
                    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
                    refused += 1;
                }
                Outcome::Answered(408, body, after) => {
                    assert_eq!(body["error"]["code"], "request_timeout", "{body}");
                    timed_out.push(after);
                }
                Outcome::Answered(status, body, _) => panic!("answered {status}: {body}"),
                Outcome::Dropped => panic!("closed without an answer"),
            }
        }
        slow = open;
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(slow.is_empty(), "{} still open", slow.len());
    assert!(refused > 0, "the TCP listener's limit was not reached");
    assert!(!timed_out.is_empty(), "none was served until its timeout");
    let earliest = timed_out.iter().min().copied().unwrap_or_default();
    assert!(
        earliest >= READ_TIMEOUT - Duration::from_secs(1),
        "closed before the timeout: {earliest:?}"
    );
    println!(
        "{} refused (503), {} closed after {earliest:?} to {:?} (408)",
        refused,
        timed_out.len(),
        timed_out.iter().max()
    );

    // TCP answers again.
    let header = format!("Authorization: Bearer {TOKEN}");
    let (status, rules) = daemon.curl(
        &["--max-time", "10", "-H", &header],
        "GET",
        &format!("http://127.0.0.1:{PORT}/v1/rules"),
        None,
        true,
    );
    assert_eq!(status, 200, "{rules}");
    assert!(rules.to_string().contains("198.51.100.0/24"), "{rules}");
    let _ = std::fs::remove_file(token);
}

/// Connects to the daemon's socket, sends `start`, then a byte a second
/// of `trickle` (if any) until the daemon answers and closes.
fn trickle(socket: &Path, start: &[u8], trickle: Option<u8>) -> (u16, Value, Duration) {
    let opened = Instant::now();
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream.write_all(start).expect("write");
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while opened.elapsed() < READ_TIMEOUT + SLACK {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => received.extend_from_slice(&buffer[..count]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if let Some(byte) = trickle {
                    let _ = stream.write_all(&[byte]);
                }
            }
            Err(_) => break,
        }
    }
    let (status, body) = parse_answer(&received);
    (status, body, opened.elapsed())
}

#[test]
fn slow_bodies_and_silent_connections_time_out_and_nothing_idles() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let path = bed.a().path.clone();
    let daemon = Daemon::start(
        "slow-body",
        Box::new(move |program: &str| common::in_namespace(&path, program)),
        &[],
    );
    let socket = daemon.socket();
    let before = daemon.ok("GET", "/v1/blocklist", None);
    let body = br#"{"prefix":"192.0.2.1/32"}"#;
    let head = format!(
        "POST /v1/blocklist HTTP/1.1\r\nHost: xdpathd\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{{",
        body.len() + 1000
    );
    let slow_body = std::thread::spawn({
        let socket = socket.clone();
        move || trickle(&socket, head.as_bytes(), Some(b' '))
    });
    let silent = std::thread::spawn({
        let socket = socket.clone();
        move || trickle(&socket, b"", None)
    });
    for (what, handle) in [("a slow body", slow_body), ("a silent connection", silent)] {
        let (status, body, after) = handle.join().expect("thread");
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (408, Some("request_timeout")),
            "{what}: {body}"
        );
        assert!(
            after >= READ_TIMEOUT - Duration::from_secs(1) && after < READ_TIMEOUT + SLACK,
            "{what} closed after {after:?}"
        );
    }
    assert_eq!(daemon.ok("GET", "/v1/blocklist", None), before);

    // A client asking to keep the connection gets its answer, and the
    // connection ends with it.
    let asked = Instant::now();
    let (status, config, _) = trickle(
        &socket,
        b"GET /v1/config HTTP/1.1\r\nHost: xdpathd\r\nConnection: keep-alive\r\n\r\n",
        None,
    );
    assert_eq!(status, 200, "{config}");
    assert!(config["generation"].is_u64(), "{config}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the connection stayed open after the answer: {:?}",
        asked.elapsed()
    );

    // The Unix socket full of silent connections: one more waits until
    // they time out, and is answered.
    let silent: Vec<UnixStream> = (0..UNIX_CONNECTIONS)
        .map(|_| UnixStream::connect(&socket).expect("connect"))
        .collect();
    let waited = Instant::now();
    let (status, config) = daemon.call("GET", "/v1/config", None);
    assert_eq!(status, 200, "{config}");
    assert!(
        waited.elapsed() >= READ_TIMEOUT - Duration::from_secs(1),
        "answered before a place was free: {:?}",
        waited.elapsed()
    );
    drop(silent);
}
