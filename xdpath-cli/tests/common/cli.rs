//! Running the `xdpath` binary as a hostile user would, in a namespace of
//! a test bed, with a time limit, and judging how it failed.
//!
//! `XDPATH_BIN` runs these checks against another build of the binary
//! (the one from before a fix, to see the check fail there).

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use xdpath_lab::testenv::{Side, TestBed};

/// The binary under test: `XDPATH_BIN`, or this build's.
pub fn binary() -> String {
    std::env::var("XDPATH_BIN").unwrap_or_else(|_| super::XDPATH.to_string())
}

/// What one run did.
#[derive(Debug)]
pub struct Run {
    /// The arguments, for messages.
    pub args: Vec<String>,
    /// How it ended; `None` when it was killed at the time limit.
    pub status: Option<ExitStatus>,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// Its standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Run {
    /// The exit code (`None`: killed by a signal or the time limit).
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|status| status.code())
    }

    /// The stderr lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// Runs `xdpath ARGS` in a side's namespace, killing it (and failing the
/// run: `status` is `None`) after `limit`.
pub fn run_in<S: AsRef<OsStr>>(bed: &TestBed, side: Side, args: &[S], limit: Duration) -> Run {
    let mut command = bed.command(side, binary());
    command.args(args);
    run_command(command, limit)
}

/// Runs a prepared command with a time limit (stdin empty, output read
/// in full).
pub fn run_command(command: Command, limit: Duration) -> Run {
    run_command_with_stdout(command, limit, Stdio::piped())
}

/// [`run_command`] with stdout going to `stdout` (read only when piped).
pub fn run_command_with_stdout(mut command: Command, limit: Duration, stdout: Stdio) -> Run {
    let args = command
        .get_args()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn xdpath");
    let stdout_pipe = child.stdout.take();
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let stdout_reader = std::thread::spawn(move || {
        let mut data = Vec::new();
        if let Some(mut pipe) = stdout_pipe {
            let _ = pipe.read_to_end(&mut data);
        }
        data
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut data = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut data);
        data
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for xdpath") {
            break Some(status);
        }
        if started.elapsed() > limit {
            // nsenter execs xdpath, so this is xdpath itself.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    Run {
        args,
        status,
        stdout: stdout_reader.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&stderr_reader.join().unwrap_or_default()).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// How long a refused command may take: they fail before any real work.
pub const QUICK: Duration = Duration::from_secs(20);

/// Checks a failed run: finished, exit `code`, nothing but `{"error"}`
/// JSON or nothing on stdout, and exactly one stderr line, starting
/// `xdpath: error: ` and containing each of `needles`. Returns the line.
pub fn one_error(run: &Run, code: i32, needles: &[&str]) -> String {
    let what = format!("xdpath {:?}", run.args);
    assert!(run.status.is_some(), "{what} did not finish in time");
    assert_eq!(
        run.code(),
        Some(code),
        "{what}: {:?}: {}",
        run.status,
        run.stderr
    );
    let lines = run.lines();
    assert_eq!(
        lines.len(),
        1,
        "{what}: one stderr line, got {:?}",
        run.stderr
    );
    let line = lines[0];
    assert!(line.starts_with("xdpath: error: "), "{what}: {line}");
    for needle in needles {
        assert!(line.contains(needle), "{what}: {line:?} lacks {needle:?}");
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    if !stdout.trim().is_empty() {
        let reply: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{what}: stdout {stdout:?}"));
        assert_eq!(
            reply["error"].as_str(),
            line.strip_prefix("xdpath: error: "),
            "{what}: the JSON error is the stderr message"
        );
    }
    line.to_string()
}

/// True when the run panicked or was killed by a signal other than
/// SIGPIPE: what must never happen.
pub fn crashed(run: &Run) -> bool {
    run.code() == Some(101)
        || run.stderr.contains("panicked at")
        || run
            .status
            .and_then(|status| status.signal())
            .is_some_and(|signal| signal != libc::SIGPIPE)
}
