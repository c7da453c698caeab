//! The user-space runtime beside the kernel path, on live traffic over
//! veth (`xdpath bench --userspace FRAMES`).
//!
//! A test bed: B sends, A receives. The same flow (UDP from B to A's port
//! 9) is dropped by the same filter rule on both paths, so no stack work
//! follows either. B generates the frames with `BPF_PROG_RUN` live frames
//! through the minimal redirect program (every frame out of B's veth), as
//! fast as its CPU can, in calls of [`CALL_FRAMES`].
//!
//! Each trial runs both paths in turn on the same frames:
//! - **kernel**: xdpath attached to A in native mode; the frames counted
//!   by its counters;
//! - **user space**: `xdpath run --userspace A --exception drop` (copy
//!   mode); the frames its report counts, and its CPU time.
//!
//! Figures: frames received per second of generator time (both paths:
//! what one sending core delivers through them; the machine has two
//! cores, so the runtime's core competes with the sender's softirq), and
//! for the runtime its CPU ns per frame (the packets/s one core of it can
//! take). The kernel's per-frame cost is the program's `BPF_PROG_TEST_RUN`
//! time on the same frame with the same rule, measured in the same run.

use std::process::Stdio;
use std::time::{Duration, Instant};

use xdpath_core::build::{FrameSpec, Network, Transport};
use xdpath_core::InterfaceConfig;

use crate::bench::{median, BenchError};
use crate::testenv::{Side, TestBed};
use xdpath::dataplane::LoadedProgram;

/// Frames per live call: few calls, since each costs a fixed ~16 ms here.
const CALL_FRAMES: u32 = 1 << 20;

/// One path's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct UserspaceResult {
    /// Which path.
    pub path: String,
    /// Frames sent per trial.
    pub frames: u32,
    /// Frames the path saw, median over the trials.
    pub received: u64,
    /// `received` / `frames`: what reached the path (copy mode drops
    /// what the kernel cannot copy into the sockets in time).
    pub received_share: f64,
    /// ns per frame on the path's own core, median: the runtime's busy
    /// time per frame (its passes that moved frames: receive, pipeline,
    /// output, without waiting or spinning), or the kernel program's
    /// `BPF_PROG_TEST_RUN` time.
    pub ns_per_packet: f64,
    /// 1e9 / `ns_per_packet`: frames per second one core takes.
    pub packets_per_second: f64,
    /// `packets_per_second` / the kernel path's (`BPF_PROG_TEST_RUN`: one
    /// frame rerun, hot in the cache).
    pub ratio_to_kernel: f64,
    /// `packets_per_second` / the kernel program's on the live frames
    /// (its run-time statistics over the trial: frames arriving cold, as
    /// the runtime's do).
    pub ratio_to_kernel_live: f64,
    /// Frames the kernel dropped before the sockets (user space only),
    /// mean per trial.
    pub socket_drops: u64,
}

pub(super) fn failed(what: &str, detail: impl ToString) -> BenchError {
    BenchError::Options(format!("user-space bench: {what}: {}", detail.to_string()))
}

pub(super) fn xdpath(bed: &TestBed, args: &[&str]) -> Result<String, BenchError> {
    let output = bed
        .command(
            Side::A,
            std::env::current_exe().map_err(|error| failed("xdpath", error))?,
        )
        .args(args)
        .output()
        .map_err(|error| failed("run xdpath", error))?;
    if !output.status.success() {
        return Err(failed(
            &format!("xdpath {}", args.join(" ")),
            String::from_utf8_lossy(&output.stderr).trim(),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Frames xdpath's kernel program on A has dropped by rule.
fn kernel_drops(bed: &TestBed) -> Result<u64, BenchError> {
    let interface = bed.a().interface.clone();
    let counters = bed
        .run_in_a(move || xdpath::dataplane::interface_counters(&interface))
        .map_err(|error| failed("namespace A", error))?
        .map_err(|error| failed("counters", error))?;
    Ok(xdpath::stats::total(&counters, xdpath_core::Action::Drop))
}

/// Sends `frames` copies of `frame` out of B's veth; the generator's time.
fn generate(bed: &TestBed, frame: &[u8], frames: u32) -> Result<Duration, BenchError> {
    let interface = bed.b().interface.clone();
    let frame = frame.to_vec();
    bed.run_in_b(move || -> Result<Duration, BenchError> {
        let index = xdpath::control::interface_index(&interface).unwrap_or(0);
        let mut ctx = [0u8; 24];
        ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
        ctx[12..16].copy_from_slice(&index.to_ne_bytes());
        let mut program =
            LoadedProgram::load_redirect(index).map_err(|error| failed("load redirect", error))?;
        let started = Instant::now();
        let mut sent = 0;
        while sent < frames {
            let repeat = CALL_FRAMES.min(frames - sent);
            match program.run_live(&frame, &ctx, repeat) {
                Ok(_) => sent += repeat,
                // Kernels that refuse live frames: the same frame from an
                // AF_XDP socket, as fast as it goes (slower: fewer frames
                // a second reach A, the per-frame costs are unchanged).
                Err(error) if error.is_test_run_refused() && sent == 0 => {
                    let sender = crate::flood::SocketSender {
                        interface: &interface,
                        queue: 0,
                        template: &frame,
                        rate: None,
                    };
                    sender
                        .send(u64::from(frames), || true, |_, _| true)
                        .map_err(|error| failed("AF_XDP sender", error))?;
                    break;
                }
                Err(error) => return Err(failed("live run", error)),
            }
        }
        Ok(started.elapsed())
    })
    .map_err(|error| failed("namespace B", error))?
}

/// Runs `xdpath run --userspace` on A (with `extra` options, exceptions
/// dropped) while `send` runs, once it is attached; stops it and returns
/// what `send` returned and the runtime's JSON report.
pub(super) fn runtime_while<T>(
    bed: &TestBed,
    extra: &[&str],
    send: impl FnOnce() -> Result<T, BenchError>,
) -> Result<(T, serde_json::Value), BenchError> {
    let interface = bed.a().interface.clone();
    let exe = std::env::current_exe().map_err(|error| failed("xdpath", error))?;
    let child = bed
        .command(Side::A, exe)
        .args([
            "--json",
            "run",
            "--userspace",
            &interface,
            "--exception",
            "drop",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed("start xdpath run", error))?;
    // Ready once the redirect program is attached.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !crate::testenv::has_xdp_program(&bed.a().path, &interface) {
        if Instant::now() > deadline {
            return Err(failed("xdpath run", "never attached"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = send()?;
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child
        .wait_with_output()
        .map_err(|error| failed("wait for xdpath run", error))?;
    if !output.status.success() {
        return Err(failed(
            "xdpath run",
            String::from_utf8_lossy(&output.stderr).trim(),
        ));
    }
    let report =
        serde_json::from_slice(&output.stdout).map_err(|error| failed("its report", error))?;
    Ok((sent, report))
}

/// Adds the rule both paths drop by (UDP from B to port 9) and returns the
/// frame it drops, B → A.
pub(super) fn dropped_frame(bed: &TestBed) -> Result<Vec<u8>, BenchError> {
    let (a, b) = (bed.a(), bed.b());
    let source = format!("{}/32", b.ipv4);
    xdpath(
        bed,
        &[
            "filter", "add", "--src", &source, "--proto", "udp", "--dport", "9", "--action", "drop",
        ],
    )?;
    Ok(FrameSpec::new(
        Network::V4(b.ipv4.octets(), a.ipv4.octets()),
        Transport::udp(40_000, 9),
    )
    .with_macs(b.mac, a.mac)
    .build())
}

/// Runs the comparison: `frames` per path per trial.
pub fn run(frames: u32, trials: usize) -> Result<Vec<UserspaceResult>, BenchError> {
    let bed = TestBed::new().map_err(|error| failed("test bed", error))?;
    let frame = dropped_frame(&bed)?;
    let trials = trials.max(1);
    let mut kernel_received = Vec::new();
    let mut user_received = Vec::new();
    let mut user_cost = Vec::new();
    let mut drops = 0;
    let mut kernel_live = Vec::new();
    for _ in 0..trials {
        let (received, live_ns) = kernel_trial(&bed, &frame, frames)?;
        kernel_received.push(received as f64);
        kernel_live.push(live_ns);

        let (received, cost, socket_drops) = userspace_trial(&bed, &frame, frames)?;
        user_received.push(received as f64);
        user_cost.push(cost);
        drops += socket_drops;
    }
    let kernel_ns = kernel_cost(&bed, &frame)?;
    let user_ns = median(&mut user_cost);
    let live_ns = median(&mut kernel_live);
    let row = |path: &str, received: &mut Vec<f64>, ns: f64, socket_drops: u64| {
        let received = median(received) as u64;
        UserspaceResult {
            path: path.into(),
            frames,
            received,
            received_share: received as f64 / f64::from(frames.max(1)),
            ns_per_packet: ns,
            packets_per_second: 1e9 / ns.max(1e-3),
            ratio_to_kernel: kernel_ns / ns.max(1e-3),
            ratio_to_kernel_live: live_ns / ns.max(1e-3),
            socket_drops,
        }
    };
    Ok(vec![
        row(
            "kernel: xdpath (native XDP)",
            &mut kernel_received,
            kernel_ns,
            0,
        ),
        row(
            "kernel: the same program on the live frames (bpf_stats)",
            &mut kernel_received.clone(),
            live_ns,
            0,
        ),
        row(
            "user space: xdpath run --userspace (AF_XDP copy mode)",
            &mut user_received,
            user_ns,
            drops / trials as u64,
        ),
    ])
}

/// One kernel trial: xdpath attached to A in native mode while B sends;
/// the frames its rule dropped, and the program's own ns per frame on
/// them from the kernel's run-time statistics (`BPF_ENABLE_STATS`,
/// enabled for the trial): the time of every run, tail-called stage
/// included, on frames that arrived cold, where `BPF_PROG_TEST_RUN`
/// reruns one frame hot in the cache.
fn kernel_trial(bed: &TestBed, frame: &[u8], frames: u32) -> Result<(u64, f64), BenchError> {
    let interface = bed.a().interface.clone();
    xdpath(bed, &["attach", &interface, "--mode", "native"])?;
    let status: serde_json::Value = serde_json::from_str(&xdpath(bed, &["--json", "status"])?)
        .map_err(|error| failed("status", error))?;
    let program_id = status
        .as_array()
        .and_then(|rows| rows.first())
        .and_then(|row| row["program_id"].as_u64())
        .ok_or_else(|| failed("status", "no program id"))?;
    let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|error| failed("enable run-time statistics", error))?;
    let run_stats = || {
        aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .find(|info| u64::from(info.id()) == program_id)
            .map(|info| (info.run_time(), info.run_count()))
            .ok_or_else(|| failed("program info", "the program is gone"))
    };
    let before = kernel_drops(bed)?;
    let (time_before, runs_before) = run_stats()?;
    generate(bed, frame, frames)?;
    std::thread::sleep(Duration::from_millis(200));
    let (time_after, runs_after) = run_stats()?;
    drop(stats);
    let received = kernel_drops(bed)?.saturating_sub(before);
    xdpath(bed, &["detach", &interface])?;
    let runs = runs_after.saturating_sub(runs_before).max(1);
    let live_ns = time_after.saturating_sub(time_before).as_nanos() as f64 / runs as f64;
    Ok((received, live_ns))
}

/// The kernel program's own cost per frame, with the same rule: the median
/// `BPF_PROG_TEST_RUN` ns of five runs.
fn kernel_cost(bed: &TestBed, frame: &[u8]) -> Result<f64, BenchError> {
    let frame = frame.to_vec();
    bed.run_in_a(move || -> Result<f64, BenchError> {
        let mut program = LoadedProgram::load_shared(InterfaceConfig::default())
            .map_err(|error| failed("load xdpath", error))?;
        let mut samples: Vec<f64> = (0..5)
            .map(|_| {
                program
                    .time_run(&frame, 1_000_000)
                    .map(|time| time.as_nanos() as f64)
            })
            .collect::<Result<_, _>>()
            .map_err(|error| failed("test run", error))?;
        Ok(median(&mut samples))
    })
    .map_err(|error| failed("namespace A", error))?
}

/// One user-space trial: (frames seen, busy ns per frame, socket drops).
fn userspace_trial(
    bed: &TestBed,
    frame: &[u8],
    frames: u32,
) -> Result<(u64, f64, u64), BenchError> {
    let (_, report) = runtime_while(bed, &[], || generate(bed, frame, frames))?;
    let received = report["tallies"]["received"].as_u64().unwrap_or(0);
    let busy = report["busy_seconds"].as_f64().unwrap_or(0.0);
    let drops = report["socket_drops"].as_u64().unwrap_or(0);
    Ok((received, busy * 1e9 / received.max(1) as f64, drops))
}
