//! Commands run in the background and stopped by a signal, as an
//! operator's kill or an OOM kill stops them: started in a bed's namespace
//! A, waited for with a time limit so a hang fails the test.

use std::io::Read;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use xdpath_lab::testenv::{Side, TestBed};

use super::XDPATH;

/// `xdpath ARGS` in A in the background, stderr piped.
pub fn spawn(bed: &TestBed, args: &[&str]) -> Child {
    bed.command(Side::A, XDPATH)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xdpath")
}

/// [`spawn`], returning once its stderr's first line says `ready`.
pub fn spawn_ready(bed: &TestBed, args: &[&str], ready: &str) -> Child {
    let mut child = spawn(bed, args);
    let mut stderr = child.stderr.take().expect("stderr");
    let mut line = Vec::new();
    let mut byte = [0u8];
    while stderr.read(&mut byte).expect("read stderr") == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line);
    assert!(line.contains(ready), "xdpath {args:?}: {line}");
    child
}

pub fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// The child's output once it ended, within `limit`; a child still
/// running then is killed and the test fails (it hung).
pub fn ended_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}
