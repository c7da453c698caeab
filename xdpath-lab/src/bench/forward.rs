//! Forwarding throughput over veth: a router bed (`h1 – r – h2`), xdpath
//! forwarding on both router ports, and frames from h1 to h2 injected at
//! the router's first port as live frames (`BPF_PROG_RUN` with
//! `BPF_F_TEST_XDP_LIVE_FRAMES`: the program's redirect really sends them
//! to h2). The peer, in the same run: the minimal redirect program (every
//! frame to the second port, no FIB lookup, no rewrite). Frames reaching
//! h2 are counted there by xdpath and reported beside each figure.
//!
//! Live frames keep what the program wrote when the kernel reuses their
//! page within one call: xdpath decrements the TTL, so a long call would
//! end up measuring frames whose TTL ran out (left to the stack). The
//! frames are therefore sent in calls short enough that no page is used
//! more than 32 times, and the kernel's own time is summed.

use std::time::Duration;
use xdpath_core::abi;

use xdpath_core::InterfaceConfig;

use crate::bench::{median, BenchError};
use crate::testenv::router::{Node, RouterBed};
use xdpath::dataplane::LoadedProgram;
use xdpath_core::build::{FrameSpec, Network, Transport};

/// Frames per live run: 64 pages (one batch) used at most 32 times each.
const CALL_FRAMES: u32 = 2048;

/// Per program (xdpath, then the minimal redirect): each trial's ns per
/// frame and frames per second.
type Samples = [Vec<(f64, f64)>; 2];

/// One program's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ForwardResult {
    /// What ran.
    pub program: String,
    /// Frames per trial.
    pub frames: u32,
    /// Kernel-reported ns per frame (program and redirect; the transmit
    /// happens in batches outside it), median of the trials.
    pub ns_per_packet: f64,
    /// Frames per second on one CPU, from the kernel's time (1e9 /
    /// `ns_per_packet`).
    pub packets_per_second: f64,
    /// `packets_per_second` / the minimal redirect program's.
    pub ratio_to_redirect: f64,
    /// Frames xdpath counted arriving on h2 over this program's trials.
    pub delivered: u64,
    /// `delivered` / frames sent: what the veth pair carried (its
    /// receive ring drops what h2's CPU cannot take in time).
    pub delivered_share: f64,
}

/// Frames counted so far by the xdpath instance pinned at `dir` (an
/// interface's pin directory, in any namespace: bpffs is global).
fn counted_at(dir: &std::path::Path) -> u64 {
    use aya::maps::{Map, MapData, PerCpuArray};
    let Ok(data) = MapData::from_pin(dir.join(abi::map::COUNTERS)) else {
        return 0;
    };
    let Ok(array) = PerCpuArray::<MapData, [u64; 2]>::try_from(Map::PerCpuArray(data)) else {
        return 0;
    };
    (0..xdpath_core::COUNTER_SLOTS)
        .filter_map(|slot| array.get(&slot, 0).ok())
        .map(|values| values.iter().map(|counter| counter[0]).sum::<u64>())
        .sum()
}

fn failed(what: &str, detail: impl ToString) -> BenchError {
    BenchError::Options(format!("forwarding bench: {what}: {}", detail.to_string()))
}

fn xdpath(bed: &RouterBed, node: Node, args: &[&str]) -> Result<String, BenchError> {
    let exe = std::env::current_exe().map_err(|error| failed("xdpath", error))?;
    let output = bed
        .exec(node, &exe.display().to_string(), args)
        .map_err(|error| failed("xdpath", error))?;
    if !output.status.success() {
        return Err(failed(
            &format!("xdpath {}", args.join(" ")),
            String::from_utf8_lossy(&output.stderr),
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `trials` interleaved trials of `frames` frames per program.
pub fn run(frames: u32, trials: usize) -> Result<Vec<ForwardResult>, BenchError> {
    let bed = prepare_bed()?;
    let frame = FrameSpec::new(
        Network::V4(bed.h1.ipv4.octets(), bed.h2.ipv4.octets()),
        Transport::udp(40_000, 9),
    )
    .with_macs(bed.h1.mac, bed.r1.mac)
    .build();
    let (r1, r2) = (bed.r1.interface.clone(), bed.r2.interface.clone());
    let path = bed.path(Node::Router);
    let h2_pins = xdpath::dataplane::namespace_dir_of(
        &xdpath::netns::key_of(&bed.path(Node::H2))
            .map_err(|error| failed("h2's namespace", error))?,
    )
    .join(&bed.h2.interface);
    let trials = trials.max(1);
    let samples = xdpath::netns::run_in(&path, move || {
        measure_in_router(&frame, &r1, &r2, &h2_pins, frames, trials)
    })
    .map_err(|error| failed("router namespace", error))??;
    let (samples, arrived) = samples;
    Ok(results(&samples, arrived, frames, trials))
}

/// A router bed with xdpath on h2 and both router ports, forwarding on the
/// router, and h2 dropping the bench flow.
fn prepare_bed() -> Result<RouterBed, BenchError> {
    let bed = RouterBed::new().map_err(|error| failed("router bed", error))?;
    for (node, port) in [
        (Node::H2, &bed.h2),
        (Node::Router, &bed.r1),
        (Node::Router, &bed.r2),
    ] {
        xdpath(&bed, node, &["attach", &port.interface, "--mode", "native"])?;
    }
    for port in [&bed.r1, &bed.r2] {
        xdpath(&bed, Node::Router, &["forward", "enable", &port.interface])?;
    }
    // h2 drops the bench flow at XDP, so both programs' frames end there:
    // frames for h2's MAC (xdpath's) would otherwise go on through h2's
    // stack, and the minimal redirect's (still for r1's MAC) would not,
    // and that work lands in the time measured at the router.
    let source = format!("{}/32", bed.h1.ipv4);
    xdpath(
        &bed,
        Node::H2,
        &[
            "filter", "add", "--src", &source, "--proto", "udp", "--dport", "9", "--action", "drop",
        ],
    )?;
    Ok(bed)
}

/// Per program (xdpath, then the minimal redirect): each trial's ns per
/// frame and frames per second, and the frames h2 counted. Runs inside the
/// router's namespace.
fn measure_in_router(
    frame: &[u8],
    r1: &str,
    r2: &str,
    h2_pins: &std::path::Path,
    frames: u32,
    trials: usize,
) -> Result<(Samples, [u64; 2]), BenchError> {
    let index = |name: &str| xdpath::observe::capture::interface_index(name).unwrap_or(0);
    let (r1_index, r2_index) = (index(r1), index(r2));
    // The xdp_md the programs see: data 0, data_end the frame's length
    // (the kernel insists), data_meta 0, the ingress interface, queue
    // 0, egress 0.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&r1_index.to_ne_bytes());
    let wrap = |what: &'static str| move |error| failed(what, error);
    let mut xdpath = LoadedProgram::load_shared(InterfaceConfig::default().with_forward(true))
        .map_err(wrap("load xdpath"))?;
    let mut redirect = LoadedProgram::load_redirect(r2_index).map_err(wrap("load redirect"))?;
    // The frame must forward before it is measured.
    let action = xdpath.test_run_ctx(frame, &ctx).map_err(wrap("test run"))?;
    if action != xdpath_core::Action::Redirect as u32 {
        return Err(failed(
            "xdpath",
            format!("the frame was not forwarded (action {action})"),
        ));
    }
    let mut results: Samples = [Vec::new(), Vec::new()];
    let mut arrived = [0u64; 2];
    for _ in 0..trials {
        for (slot, program) in [&mut xdpath, &mut redirect].into_iter().enumerate() {
            let before = counted_at(h2_pins);
            let kernel_ns = send_live(program, frame, &ctx, frames)?;
            // Let the veth hand over the last batch.
            std::thread::sleep(Duration::from_millis(100));
            arrived[slot] += counted_at(h2_pins).saturating_sub(before);
            let per_frame = kernel_ns / f64::from(frames.max(1));
            results[slot].push((per_frame, 1e9 / per_frame.max(1e-3)));
        }
    }
    Ok((results, arrived))
}

/// Sends `frames` live frames through `program`; the kernel's total ns.
fn send_live(
    program: &mut LoadedProgram,
    frame: &[u8],
    ctx: &[u8],
    frames: u32,
) -> Result<f64, BenchError> {
    // Live frames keep what the program wrote when their page is reused
    // within a call, so a forwarded frame's TTL would run out after 63
    // uses: calls of CALL_FRAMES (a page is used at most 32 times), each
    // with fresh pages.
    let (mut kernel_ns, mut sent) = (0.0, 0u32);
    while sent < frames {
        let repeat = CALL_FRAMES.min(frames - sent);
        let (kernel, _wall) = program.run_live(frame, ctx, repeat).map_err(|error| {
            if error.is_test_run_refused() {
                BenchError::LiveFramesRefused {
                    section: "forwarding bench",
                    source: Box::new(error),
                }
            } else {
                failed("live run", error)
            }
        })?;
        kernel_ns += kernel.as_nanos() as f64 * f64::from(repeat);
        sent += repeat;
    }
    Ok(kernel_ns)
}

/// The medians of each program's trials, against the minimal redirect's.
fn results(samples: &Samples, arrived: [u64; 2], frames: u32, trials: usize) -> Vec<ForwardResult> {
    let summary = |name: &str, runs: &[(f64, f64)]| {
        let mut ns: Vec<f64> = runs.iter().map(|run| run.0).collect();
        let mut pps: Vec<f64> = runs.iter().map(|run| run.1).collect();
        (name.to_string(), median(&mut ns), median(&mut pps))
    };
    let rows = [
        summary("xdpath forwarding", &samples[0]),
        summary("minimal redirect", &samples[1]),
    ];
    let peer_pps = rows[1].2;
    let sent = u64::from(frames) * trials as u64;
    rows.into_iter()
        .zip(arrived)
        .map(|((program, ns, pps), delivered)| ForwardResult {
            program,
            frames,
            ns_per_packet: ns,
            packets_per_second: pps,
            ratio_to_redirect: pps / peer_pps,
            delivered,
            delivered_share: delivered as f64 / sent as f64,
        })
        .collect()
}
