//! What the daemon's tests share: starting xdpathd in a namespace on its
//! own socket, and calling it with curl from that namespace. Every test
//! here needs root and starts with `xdpath_lab::needs_root!()`: skipped for
//! another user, failed where `CI` or `XDPATH_REQUIRE_ROOT=1` is set.

#![allow(dead_code, reason = "each test binary uses part of it")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The daemon binary.
pub const XDPATHD: &str = env!("CARGO_BIN_EXE_xdpathd");

/// The `xdpath` CLI, built beside the daemon in the same target directory.
pub fn xdpath_cli() -> PathBuf {
    PathBuf::from(XDPATHD).with_file_name("xdpath")
}

/// The daemon's log (its stdout and stderr) in its directory.
pub const LOG_FILE: &str = "xdpathd.log";

/// A running xdpathd; stopped (SIGTERM) and its files removed on drop.
pub struct Daemon {
    child: Child,
    /// Its directory: `api.sock`, `token`.
    pub dir: PathBuf,
    /// Makes a command in the daemon's namespace.
    enter: Box<dyn Fn(&str) -> Command>,
    /// Killed with SIGKILL: already gone, and its files stay for the next.
    killed: bool,
}

impl Daemon {
    /// Starts xdpathd in the bed's namespace A on its Unix socket alone.
    pub fn in_bed(bed: &xdpath_lab::testenv::TestBed, name: &str) -> Self {
        let path = bed.a().path.clone();
        Self::start(
            name,
            Box::new(move |program: &str| in_namespace(&path, program)),
            &[],
        )
    }

    /// Starts xdpathd through `enter` (which makes a command in the
    /// namespace) with `extra` arguments; waits until it answers.
    pub fn start(name: &str, enter: Box<dyn Fn(&str) -> Command>, extra: &[String]) -> Self {
        let dir = std::env::temp_dir().join(format!("xdpathd-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // The log goes to stdout, errors to stderr: both into one file.
        let log = std::fs::File::create(dir.join(LOG_FILE)).expect("log file");
        let errors = log.try_clone().expect("log file");
        let child = enter(XDPATHD)
            .arg("--socket")
            .arg(dir.join("api.sock"))
            .args(extra)
            .stdout(log)
            .stderr(errors)
            .spawn()
            .expect("xdpathd");
        let daemon = Self {
            child,
            dir,
            enter,
            killed: false,
        };
        // Creating a new namespace's maps takes seconds of system time
        // (6 s measured on a loaded 2-core machine, 15 s wall).
        let deadline = Instant::now() + Duration::from_secs(60);
        while daemon.call("GET", "/v1/config", None).0 != 200 {
            assert!(Instant::now() < deadline, "xdpathd did not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// What the daemon has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(LOG_FILE)).unwrap_or_default()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }

    /// A command in the daemon's namespace.
    pub fn command(&self, program: &str) -> Command {
        (self.enter)(program)
    }

    /// Calls the API over the Unix socket with curl; returns the status
    /// and the body (JSON, or a string if it is not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let socket = self.dir.join("api.sock").display().to_string();
        let url = format!("http://localhost{path}");
        self.curl(&["--unix-socket", &socket], method, &url, body, true)
    }

    /// Posts a config (TOML, or `kind`) to `path` (`/v1/config` or
    /// `/v1/config/plan`); the status and the body.
    pub fn post_config(&self, path: &str, text: &str, kind: &str) -> (u16, Value) {
        let socket = self.socket().display().to_string();
        let header = format!("Content-Type: {kind}");
        let url = format!("http://localhost{path}");
        self.curl(
            &["--unix-socket", &socket, "-H", &header],
            "POST",
            &url,
            Some(text),
            false,
        )
    }

    /// curl with `extra` options; the body from stdin (it may be larger
    /// than an argument may).
    pub fn curl(
        &self,
        extra: &[&str],
        method: &str,
        url: &str,
        body: Option<&str>,
        content_type: bool,
    ) -> (u16, Value) {
        let mut command = self.command("curl");
        command
            .args(["-s", "-X", method, "-w", "\n%{http_code}"])
            .args(extra);
        if body.is_some() {
            if content_type {
                command.args(["-H", "Content-Type: application/json"]);
            }
            command.args(["--data-binary", "@-"]);
        }
        let mut child = command
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl");
        if let Some(mut stdin) = child.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(body.unwrap_or("").as_bytes());
        }
        let output = child.wait_with_output().expect("curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
        let value = serde_json::from_str(body).unwrap_or(Value::String(body.to_string()));
        (status.trim().parse().unwrap_or(0), value)
    }

    /// A call that must succeed; its body.
    pub fn ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let (status, value) = self.call(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {value}"
        );
        value
    }

    /// Runs the xdpath CLI in the daemon's namespace; its stdout.
    pub fn xdpath(&self, args: &[&str]) -> String {
        let output = self
            .command(&xdpath_cli().display().to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("xdpath");
        assert!(
            output.status.success(),
            "xdpath {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Daemon {
    /// `kill -9`: no clean-up of its own (the socket file stays).
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.killed = true;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.killed {
            return;
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs an xdpathd that must refuse to start: its exit code and stderr.
/// One that keeps running past 10 s is killed and reported as `None`.
pub fn refused(mut command: Command) -> (Option<i32>, String) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xdpathd");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("xdpathd");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Sends `request` as it is over the Unix socket at `socket` and reads the
/// answer until the daemon closes: its status and JSON body (or the body
/// as a string, or `Null` when there is none).
pub fn raw(socket: &std::path::Path, request: &[u8]) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // The daemon may answer (and close) before it has read everything.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_answer(&answer)
}

/// The status and body of an HTTP answer.
pub fn parse_answer(answer: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(answer);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, Value::String(text.into_owned()));
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()))
    };
    (status, value)
}

/// A command that runs `program` in the network namespace at `path`.
pub fn in_namespace(path: &std::path::Path, program: &str) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", path.display()))
        .arg(program);
    command
}
