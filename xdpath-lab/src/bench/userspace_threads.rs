//! The user-space runtime on two queues, one thread against `--threads`
//! (`xdpath bench --userspace FRAMES --userspace-threads`).
//!
//! A test bed whose veth ends have two queues each; the same drop rule as
//! the one-queue section. B sends from two AF_XDP sockets at once, on
//! queues 0 and 1 (veth hands a frame to the peer's RX queue of the
//! sender's TX queue), `FRAMES / 2` frames each, as fast as they go. A
//! runs `xdpath run --userspace A --exception drop`, once as one thread
//! serving both sockets, once with `--threads` (a pinned thread per
//! queue).
//!
//! Figures: the frames A's runtime saw per second of the senders' time
//! (aggregate), and each thread's busy ns per frame. On a machine with
//! fewer cores than senders plus threads (this project's VM has two) the
//! senders take CPU from the runtime's threads, and the aggregate says
//! more about the machine than about the runtime.

use std::time::{Duration, Instant};

use super::userspace::failed;
use crate::bench::{median, BenchError};
use crate::testenv::{Side, TestBed};

/// One thread's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ThreadRow {
    /// The queue (with one thread for both: `None`).
    pub queue: Option<u32>,
    /// Frames it took, median over the trials.
    pub frames: u64,
    /// Its busy ns per frame, median over the trials.
    pub ns_per_frame: f64,
}

/// One way of running the runtime on two queues.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ThreadsResult {
    /// Which way.
    pub path: String,
    /// Frames sent per trial (both senders).
    pub frames: u32,
    /// Frames the runtime saw, median.
    pub received: u64,
    /// Frames it saw per second of the senders' time, median.
    pub frames_per_second: f64,
    /// Its busy ns per frame over all its threads, median.
    pub ns_per_frame: f64,
    /// Each thread.
    pub threads: Vec<ThreadRow>,
    /// Frames the kernel dropped before the sockets, mean per trial.
    pub socket_drops: u64,
}

/// Runs both ways, `frames` per trial.
pub fn run(frames: u32, trials: usize) -> Result<Vec<ThreadsResult>, BenchError> {
    let bed = TestBed::new().map_err(|error| failed("test bed", error))?;
    for side in [Side::A, Side::B] {
        let interface = bed.side(side).interface.clone();
        bed.exec_ok(side, "ethtool", ["-L", &interface, "rx", "2", "tx", "2"])
            .map_err(|error| failed("two queues on the veth pair", error))?;
    }
    let frame = super::userspace::dropped_frame(&bed)?;
    [false, true]
        .into_iter()
        .map(|threads| {
            let trials: Vec<Trial> = (0..trials.max(1))
                .map(|_| trial(&bed, &frame, frames, threads))
                .collect::<Result<_, _>>()?;
            Ok(summary(&trials, frames, threads))
        })
        .collect()
}

/// What one trial measured.
struct Trial {
    received: u64,
    seconds: f64,
    busy_seconds: f64,
    /// Per thread: (queue, frames, busy seconds).
    threads: Vec<(u32, u64, f64)>,
    socket_drops: u64,
}

fn summary(trials: &[Trial], frames: u32, threads: bool) -> ThreadsResult {
    let pick = |value: &dyn Fn(&Trial) -> f64| {
        let mut values: Vec<f64> = trials.iter().map(value).collect();
        median(&mut values)
    };
    let received = pick(&|trial| trial.received as f64) as u64;
    let frames_per_second = pick(&|trial| trial.received as f64 / trial.seconds.max(1e-9));
    let ns_per_frame = pick(&|trial| trial.busy_seconds * 1e9 / trial.received.max(1) as f64);
    let rows = if threads {
        (0..2)
            .map(|index| ThreadRow {
                queue: Some(index as u32),
                frames: pick(&|trial| trial.threads.get(index).map_or(0.0, |t| t.1 as f64)) as u64,
                ns_per_frame: pick(&|trial| {
                    trial
                        .threads
                        .get(index)
                        .map_or(0.0, |t| t.2 * 1e9 / t.1.max(1) as f64)
                }),
            })
            .collect()
    } else {
        vec![ThreadRow {
            queue: None,
            frames: received,
            ns_per_frame,
        }]
    };
    let drops =
        trials.iter().map(|trial| trial.socket_drops).sum::<u64>() / trials.len().max(1) as u64;
    ThreadsResult {
        path: if threads {
            "user space, 2 queues, --threads (a thread per queue)".into()
        } else {
            "user space, 2 queues, one thread".into()
        },
        frames,
        received,
        frames_per_second,
        ns_per_frame,
        threads: rows,
        socket_drops: drops,
    }
}

/// Sends `frames / 2` copies of `frame` from each of B's queues at once;
/// the senders' time (start to the last one done).
fn send_on_both_queues(bed: &TestBed, frame: &[u8], frames: u32) -> Result<Duration, BenchError> {
    let interface = bed.b().interface.clone();
    let frame = frame.to_vec();
    bed.run_in_b(move || -> Result<Duration, BenchError> {
        let started = Instant::now();
        std::thread::scope(|scope| {
            let senders: Vec<_> = (0..2u32)
                .map(|queue| {
                    let (interface, frame) = (&interface, &frame);
                    scope.spawn(move || {
                        crate::flood::SocketSender {
                            interface,
                            queue,
                            template: frame,
                            rate: None,
                        }
                        .send(u64::from(frames / 2), || true, |_, _| true)
                    })
                })
                .collect();
            for sender in senders {
                sender
                    .join()
                    .map_err(|_| failed("AF_XDP sender", "panicked"))?
                    .map_err(|error| failed("AF_XDP sender", error))?;
            }
            Ok(started.elapsed())
        })
    })
    .map_err(|error| failed("namespace B", error))?
}

/// One run of the runtime on A (with `--threads` or not) while B sends.
fn trial(bed: &TestBed, frame: &[u8], frames: u32, threads: bool) -> Result<Trial, BenchError> {
    let extra: &[&str] = if threads { &["--threads"] } else { &[] };
    let (sent_in, report) =
        super::userspace::runtime_while(bed, extra, || send_on_both_queues(bed, frame, frames))?;
    let threads = report["threads"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|row| {
                    (
                        row["queue"].as_u64().unwrap_or(0) as u32,
                        row["frames"].as_u64().unwrap_or(0),
                        row["busy_seconds"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Trial {
        received: report["tallies"]["received"].as_u64().unwrap_or(0),
        seconds: sent_in.as_secs_f64(),
        busy_seconds: report["busy_seconds"].as_f64().unwrap_or(0.0),
        threads,
        socket_drops: report["socket_drops"].as_u64().unwrap_or(0),
    })
}

/// Prints the section.
pub fn print(rows: &[ThreadsResult]) {
    println!();
    println!(
        "USER SPACE, 2 QUEUES (veth, 2 AF_XDP senders in B)          {:>9} {:>12} {:>10}",
        "received", "frames/s", "ns/frame"
    );
    for row in rows {
        println!(
            "{:<60} {:>9} {:>12.0} {:>10.1}",
            row.path, row.received, row.frames_per_second, row.ns_per_frame
        );
        for thread in row.threads.iter().filter(|thread| thread.queue.is_some()) {
            println!(
                "  thread of queue {:<43} {:>9} {:>12} {:>10.1}",
                thread.queue.unwrap_or(0),
                thread.frames,
                "",
                thread.ns_per_frame
            );
        }
    }
}
