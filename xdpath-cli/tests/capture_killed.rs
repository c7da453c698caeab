//! `capture` cut short or stuck: killed with SIGKILL it leaves the data
//! path's capture filter on only until the next command (which turns it
//! off and says so; `state check` reports it and `--repair` turns it off)
//! and the frames it read are in its file; into a FIFO nobody reads it
//! stops at its `--duration` and at SIGTERM, holding nothing. Needs root:
//! real processes in a test bed's namespaces.

mod common;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::background::{ended_within, signal, spawn, spawn_ready};
use common::{bed, text, xdpath, xdpath_ok};
use xdpath_core::abi;
use xdpath_lab::testenv::{Side, TestBed};

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "xdpath-capture-killed-{}-{name}",
        std::process::id()
    ))
}

/// Whether the data path's capture filter in A is on.
fn capture_on(bed: &TestBed) -> bool {
    let dir = bed
        .run_in_a(xdpath::dataplane::shared_dir)
        .expect("enter A")
        .expect("the shared pin directory");
    let data = aya::maps::MapData::from_pin(dir.join(abi::map::CAPTURE)).expect(abi::map::CAPTURE);
    let array = aya::maps::Array::<_, [u8; 16]>::try_from(aya::maps::Map::Array(data))
        .expect(abi::map::CAPTURE);
    array.get(&0, 0).expect("the capture filter")[0] != 0
}

/// Starts a capture of every verdict into `file`, sends pings from B
/// while it runs, and kills it with SIGKILL once it wrote them out.
fn capture_killed(bed: &TestBed, file: &str) {
    let capture = spawn_ready(
        bed,
        &["capture", "--verdict", "all", "-w", file],
        "capturing",
    );
    let target = bed.a().ipv4.to_string();
    bed.exec(Side::B, "ping", ["-c", "5", "-i", "0.05", &target])
        .expect("ping");
    // The capture writes out and flushes what it read every 100 ms.
    std::thread::sleep(Duration::from_millis(500));
    assert!(capture_on(bed), "the capture filter is on while it runs");
    signal(&capture, libc::SIGKILL);
    ended_within(capture, Duration::from_secs(5), "the killed capture");
    assert!(capture_on(bed), "a SIGKILL leaves the filter on");
}

#[test]
fn a_capture_killed_leaves_no_filter_on_and_its_frames_readable() {
    xdpath_lab::needs_root!();
    let bed = bed();
    xdpath_ok(&bed, &["attach", &bed.a().interface]);
    let file = scratch("killed.pcapng");
    let file_arg = file.display().to_string();
    capture_killed(&bed, &file_arg);
    // What it captured before the kill is in the file, readable.
    let output = std::process::Command::new("tshark")
        .args(["-n", "-r", &file_arg, "-T", "fields", "-e", "frame.comment"])
        .output()
        .expect("tshark");
    let _ = std::fs::remove_file(&file);
    assert!(output.status.success(), "{output:?}");
    let frames = String::from_utf8_lossy(&output.stdout).lines().count();
    assert!(
        frames >= 5,
        "{frames} frames in the file of a killed capture"
    );
    // The next command turns the filter off, and says so.
    let output = xdpath(&bed, &["status"]);
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ended without turning its filter off"),
        "{stderr}"
    );
    assert!(!capture_on(&bed));
    xdpath_ok(&bed, &["state", "check"]);

    // Without the capture's mark (a state directory wiped), `state check`
    // still sees the filter on with no capture running, and --repair
    // turns it off.
    capture_killed(&bed, &file_arg);
    let _ = std::fs::remove_file(&file);
    std::fs::remove_file(bed.a().state_dir().join("capture-on")).expect("the capture's mark");
    let output = xdpath(&bed, &["state", "check"]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("capture: the data path copies frames into the capture ring"),
        "{}",
        text(&output)
    );
    assert!(capture_on(&bed));
    let output = xdpath(&bed, &["state", "check", "--repair"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(!capture_on(&bed));
    xdpath_ok(&bed, &["state", "check"]);
}

/// The last line of stderr, which must be the one error line.
fn error_line(output: &Output) -> String {
    assert!(!output.status.success(), "{}", text(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("xdpath: error: "), "{stderr}");
    assert!(
        stderr.lines().all(|line| !line.contains("panicked")),
        "{stderr}"
    );
    last
}

#[test]
fn a_capture_into_a_fifo_nobody_reads_stops_at_its_duration_and_sigterm() {
    xdpath_lab::needs_root!();
    let bed = bed();
    xdpath_ok(&bed, &["attach", &bed.a().interface]);
    let fifo = scratch("capture.fifo");
    let fifo_arg = fifo.display().to_string();
    let path = std::ffi::CString::new(fifo_arg.clone()).expect("a C string");
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    let capture = spawn(
        &bed,
        &[
            "capture",
            "--verdict",
            "all",
            "-c",
            "2",
            "--duration",
            "2",
            "-w",
            &fifo_arg,
        ],
    );
    let output = ended_within(
        capture,
        Duration::from_secs(8),
        "capture -w FIFO --duration 2",
    );
    assert!(
        error_line(&output)
            .contains("no process opened the FIFO for reading before --duration ran out"),
        "{}",
        text(&output)
    );
    let capture = spawn(&bed, &["capture", "--verdict", "all", "-w", &fifo_arg]);
    std::thread::sleep(Duration::from_secs(1));
    signal(&capture, libc::SIGTERM);
    let output = ended_within(
        capture,
        Duration::from_secs(3),
        "capture -w FIFO at SIGTERM",
    );
    assert!(
        error_line(&output).contains("the capture was stopped"),
        "{}",
        text(&output)
    );
    // Nothing holds the capture ring, and a FIFO with a reader works.
    let reader = std::process::Command::new("cat")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat the FIFO");
    let capture = spawn(
        &bed,
        &[
            "capture",
            "--verdict",
            "all",
            "--duration",
            "1",
            "-w",
            &fifo_arg,
        ],
    );
    let output = ended_within(
        capture,
        Duration::from_secs(8),
        "capture -w FIFO with a reader",
    );
    assert!(output.status.success(), "{}", text(&output));
    let read = reader.wait_with_output().expect("cat");
    let _ = std::fs::remove_file(&fifo);
    // A pcapng file: its Section Header Block first.
    assert!(
        read.stdout.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]),
        "{:?}",
        read.stdout
    );
    assert!(!capture_on(&bed));
}
