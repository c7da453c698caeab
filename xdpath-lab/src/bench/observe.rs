//! Benchmarks of sampling and its consumers: what 1-in-N sampling adds
//! per frame in the kernel (beside the empty program and xdp-filter in the
//! same run), how many samples per second the exporters take, and what a
//! `xdpath top` refresh costs.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};
use xdpath_core::abi;

use aya::maps::{MapData, RingBuf};
use xdpath_core::observe::{RecordMeta, RECORD_SAMPLED};
use xdpath_core::{Action, InterfaceConfig, Reason};

use crate::bench::{mean, median, BenchError};
use xdpath::dataplane::LoadedProgram;
use xdpath::observe::ipfix::{IpfixConfig, IpfixExporter};
use xdpath::observe::sflow::{SflowConfig, SflowExporter};
use xdpath::observe::top::{Rank, TalkerKind, TopTalkers};
use xdpath::observe::Sample;

/// Repeats per frame and trial: below what the sample ring holds at
/// 1 in 1 (4 MiB of 176-byte records), so every run is drained whole and
/// no sample is lost (a lost one costs less than a written one).
pub const OBSERVE_REPEAT: u32 = 20_000;

/// The sampling rows: one program per rate.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SamplingRow {
    /// What ran.
    pub program: String,
    /// Mean over the mix of the per-frame medians, ns per packet.
    pub ns_per_packet: f64,
    /// Minus xdpath without sampling, same run.
    pub added_ns: Option<f64>,
    /// `ns_per_packet` / xdp-filter's.
    pub ratio_to_xdp_filter: Option<f64>,
    /// Samples read from its ring over the timed runs.
    pub samples: u64,
}

/// One consumer's throughput.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ConsumerRow {
    /// What was measured.
    pub consumer: String,
    /// Samples fed.
    pub samples: u64,
    /// Samples per second, one thread.
    pub samples_per_second: f64,
    /// ns per sample.
    pub ns_per_sample: f64,
}

/// The cost of one `xdpath top` refresh, by part.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TopRefresh {
    /// Distinct talkers of each kind in the window.
    pub talkers: usize,
    /// Ranking sources, destinations and flows (top 10 each), µs.
    pub rank_us: f64,
    /// Reading one interface's counters (every CPU), µs.
    pub counters_us: f64,
}

/// The section's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ObserveReport {
    /// The method, in words.
    pub method: String,
    /// Kernel: sampling off, 1 in 1000, 1 in 1; empty; xdp-filter.
    pub kernel: Vec<SamplingRow>,
    /// Consumers: reading the ring, sFlow, IPFIX, top talkers.
    pub consumers: Vec<ConsumerRow>,
    /// A `top` refresh.
    pub top_refresh: TopRefresh,
}

impl ObserveReport {
    /// Prints the section.
    pub fn print(&self) {
        println!();
        println!("SAMPLING: {}", self.method);
        println!(
            "{:<30} {:>10} {:>9} {:>13} {:>10}",
            "KERNEL", "ns/packet", "added", "vs xdp-filter", "samples"
        );
        for row in &self.kernel {
            let added = row
                .added_ns
                .map_or("-".to_string(), |added| format!("{added:+.1}"));
            let peer = row
                .ratio_to_xdp_filter
                .map_or("-".to_string(), |ratio| format!("{ratio:.2}x"));
            println!(
                "{:<30} {:>10.1} {:>9} {:>13} {:>10}",
                row.program, row.ns_per_packet, added, peer, row.samples
            );
        }
        println!("{:<30} {:>14} {:>14}", "CONSUMER", "samples/s", "ns/sample");
        for row in &self.consumers {
            println!(
                "{:<30} {:>14.0} {:>14.1}",
                row.consumer, row.samples_per_second, row.ns_per_sample
            );
        }
        println!(
            "top refresh: rank {} talkers x3 in {:.0} us, counters of one interface in {:.0} us",
            self.top_refresh.talkers, self.top_refresh.rank_us, self.top_refresh.counters_us
        );
    }
}

fn program_error(program: &str) -> impl Fn(xdpath::dataplane::DataplaneError) -> BenchError + '_ {
    move |source| BenchError::Program {
        program: program.into(),
        source: Box::new(source),
    }
}

fn drain(ring: &mut Option<RingBuf<MapData>>, records: &mut Vec<Vec<u8>>) -> u64 {
    let Some(ring) = ring.as_mut() else {
        return 0;
    };
    let mut read = 0;
    while let Some(item) = ring.next() {
        records.push(item.to_vec());
        read += 1;
    }
    read
}

/// One program under test, with its ring when it samples.
struct Subject {
    name: String,
    program: LoadedProgram,
    ring: Option<RingBuf<MapData>>,
    trials: Vec<Vec<f64>>,
    samples: u64,
}

impl Subject {
    fn new(name: &str, program: LoadedProgram, sampling: bool) -> Result<Self, BenchError> {
        let mut program = program;
        let ring = if sampling {
            Some(
                program
                    .take_ring(abi::map::SAMPLES)
                    .map_err(program_error(name))?,
            )
        } else {
            None
        };
        Ok(Self {
            name: name.into(),
            program,
            ring,
            trials: Vec::new(),
            samples: 0,
        })
    }

    fn trial(
        &mut self,
        mix: &[(String, Vec<u8>)],
        records: &mut Vec<Vec<u8>>,
    ) -> Result<(), BenchError> {
        let mut per_frame = Vec::with_capacity(mix.len());
        for (_, frame) in mix {
            self.program
                .time_run(frame, 1_000)
                .map_err(program_error(&self.name))?;
            drain(&mut self.ring, records);
            records.clear();
            // The kernel's own per-run figure: the syscall's wall time
            // carries a fixed cost of milliseconds here, which would
            // swamp 20,000 runs.
            let kernel = self
                .program
                .time_run(frame, OBSERVE_REPEAT)
                .map_err(program_error(&self.name))?;
            per_frame.push(kernel.as_nanos() as f64);
            self.samples += drain(&mut self.ring, records);
        }
        self.trials.push(per_frame);
        Ok(())
    }

    fn ns(&self, frames: usize) -> f64 {
        let per_frame: Vec<f64> = (0..frames)
            .map(|frame| {
                let mut values: Vec<f64> = self
                    .trials
                    .iter()
                    .filter_map(|trial| trial.get(frame).copied())
                    .collect();
                median(&mut values)
            })
            .collect();
        mean(&per_frame)
    }
}

/// Runs the section: `trials` interleaved trials over `mix`.
pub fn run(
    mix: &[(String, Vec<u8>)],
    trials: usize,
    peer: &Path,
) -> Result<ObserveReport, BenchError> {
    let load = |rate: u32, name: &str| {
        LoadedProgram::load(InterfaceConfig::default().with_sample_rate(rate))
            .map_err(program_error(name))
    };
    let mut subjects = vec![
        Subject::new("xdpath, sampling off", load(0, "xdpath")?, false)?,
        Subject::new("xdpath, 1 in 1000", load(1000, "xdpath 1/1000")?, true)?,
        Subject::new("xdpath, 1 in 1", load(1, "xdpath 1/1")?, true)?,
        Subject::new(
            "empty (XDP_PASS)",
            LoadedProgram::load_empty().map_err(program_error("empty"))?,
            false,
        )?,
    ];
    if let Ok(program) = LoadedProgram::load_file(peer, "xdpfilt_alw_all") {
        subjects.push(Subject::new("xdp-filter xdpfilt_alw_all", program, false)?);
    }
    let mut records = Vec::new();
    let mut last_records = Vec::new();
    for _ in 0..trials.max(1) {
        for subject in &mut subjects {
            records.clear();
            subject.trial(mix, &mut records)?;
            if subject.name.ends_with("1 in 1") && !records.is_empty() {
                last_records = std::mem::take(&mut records);
            }
        }
    }
    let off = subjects[0].ns(mix.len());
    let peer_ns = subjects
        .iter()
        .find(|subject| subject.name.starts_with("xdp-filter"))
        .map(|subject| subject.ns(mix.len()));
    let kernel = subjects
        .iter()
        .map(|subject| {
            let ns = subject.ns(mix.len());
            SamplingRow {
                program: subject.name.clone(),
                ns_per_packet: ns,
                added_ns: subject.name.starts_with("xdpath").then_some(ns - off),
                ratio_to_xdp_filter: peer_ns.map(|peer| ns / peer),
                samples: subject.samples,
            }
        })
        .collect();
    // The mix's frames, each made many flows: the kernel's last records
    // are one frame only.
    let samples = samples_of(mix, &[]);
    let consumers = consumers(&samples, &last_records)?;
    let top_refresh = top_refresh(&subjects[0].program)?;
    Ok(ObserveReport {
        method: format!(
            "BPF_PROG_TEST_RUN, kernel-reported ns per run, {OBSERVE_REPEAT} repeats per frame \
             (the ring drained after each run, so none is lost), median of {trials} interleaved \
             trials, mean over the mix; consumers on one thread, collectors on loopback"
        ),
        kernel,
        consumers,
        top_refresh,
    })
}

/// Samples as the consumers see them: the kernel's records when there
/// are some, else made from the mix.
fn samples_of(mix: &[(String, Vec<u8>)], records: &[Vec<u8>]) -> Vec<Sample> {
    let from_kernel: Vec<Sample> = records
        .iter()
        .filter_map(|record| RecordMeta::parse(record))
        .map(|(meta, data)| Sample {
            meta,
            unix_ns: 0,
            data: data.to_vec(),
        })
        .collect();
    if !from_kernel.is_empty() {
        return from_kernel;
    }
    mix.iter()
        .map(|(_, frame)| Sample {
            meta: RecordMeta {
                frame_len: frame.len() as u32,
                sample_rate: 1,
                captured_len: frame.len().min(128) as u16,
                action: Action::Pass as u8,
                reason: Reason::Ipv4Tcp as u8,
                flags: RECORD_SAMPLED,
                ifindex: 1,
                ..RecordMeta::default()
            },
            unix_ns: 0,
            data: frame.iter().copied().take(128).collect(),
        })
        .collect()
}

/// `count` samples cycling over `samples`, each flow made distinct (its
/// IPv4 source's last two bytes), timestamps spread over 10 s.
fn varied(samples: &[Sample], count: usize, flows: usize) -> Vec<Sample> {
    let base = xdpath::observe::engine::now_unix_ms() * 1_000_000;
    (0..count)
        .map(|index| {
            let mut sample = samples[index % samples.len()].clone();
            let flow = (index % flows.max(1)) as u16;
            // Offset 26: an untagged IPv4 frame's source address, bytes 2-3.
            if sample.data.get(12..14) == Some(&[0x08, 0x00]) && sample.data.len() >= 30 {
                sample.data[28..30].copy_from_slice(&flow.to_be_bytes());
            }
            sample.unix_ns = base + (index as u64 * 10_000_000_000 / count as u64);
            sample
        })
        .collect()
}

fn row(consumer: &str, samples: usize, elapsed: Duration) -> ConsumerRow {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    ConsumerRow {
        consumer: consumer.into(),
        samples: samples as u64,
        samples_per_second: samples as f64 / seconds,
        ns_per_sample: seconds * 1e9 / samples.max(1) as f64,
    }
}

fn consumers(samples: &[Sample], records: &[Vec<u8>]) -> Result<Vec<ConsumerRow>, BenchError> {
    const COUNT: usize = 500_000;
    let io = |what: &str| {
        let what = what.to_string();
        move |error: std::io::Error| BenchError::Options(format!("{what}: {error}"))
    };
    let mut rows = Vec::new();
    if !records.is_empty() {
        // Parsing records into samples, as the ring reader does.
        let started = Instant::now();
        let parsed = records
            .iter()
            .filter_map(|record| RecordMeta::parse(record))
            .fold(0usize, |parsed, (meta, data)| {
                std::hint::black_box((meta, data.to_vec()));
                parsed + 1
            });
        rows.push(row("ring record -> sample", parsed, started.elapsed()));
    }
    // A collector on loopback that never reads: datagrams past its buffer
    // are dropped by the kernel, after the exporter paid for them.
    let collector = UdpSocket::bind("127.0.0.1:0").map_err(io("collector"))?;
    let address: SocketAddr = collector.local_addr().map_err(io("collector"))?;
    let input = varied(samples, COUNT, 10_000);

    let config = SflowConfig::new("127.0.0.1".parse().expect("an address"), vec![address]);
    let mut sflow = SflowExporter::new(config)
        .map_err(|error| BenchError::Options(format!("sflow: {error}")))?;
    let started = Instant::now();
    for sample in &input {
        sflow.push(sample, 1_000_000, 0);
    }
    sflow.flush();
    rows.push(row("sFlow encode + send", input.len(), started.elapsed()));

    let mut ipfix = IpfixExporter::new(IpfixConfig::new(vec![address]))
        .map_err(|error| BenchError::Options(format!("ipfix: {error}")))?;
    let started = Instant::now();
    for sample in &input {
        ipfix.add(sample);
    }
    ipfix.export_all(xdpath::observe::engine::now_unix_ms());
    rows.push(row(
        "IPFIX 10k flows + export",
        input.len(),
        started.elapsed(),
    ));

    let mut top = TopTalkers::new(Duration::from_secs(10), Duration::from_secs(1));
    let started = Instant::now();
    for sample in &input {
        top.add(sample);
    }
    rows.push(row("top talkers add", input.len(), started.elapsed()));
    Ok(rows)
}

fn top_refresh(program: &LoadedProgram) -> Result<TopRefresh, BenchError> {
    const TALKERS: usize = 10_000;
    let template = samples_of(&crate::bench::packet_mix(), &[]);
    let input = varied(&template[..1], 200_000, TALKERS);
    let mut top = TopTalkers::new(Duration::from_secs(10), Duration::from_secs(1));
    for sample in &input {
        top.add(sample);
    }
    let now = input.last().map_or(0, |sample| sample.unix_ns / 1_000_000);
    let mut rank = Vec::new();
    let mut counters = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        for kind in [
            TalkerKind::Sources,
            TalkerKind::Destinations,
            TalkerKind::Flows,
        ] {
            std::hint::black_box(top.top(now, kind, Rank::Packets, 10));
        }
        rank.push(started.elapsed().as_secs_f64() * 1e6);
        let started = Instant::now();
        std::hint::black_box(program.counters().map_err(program_error("xdpath"))?);
        counters.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok(TopRefresh {
        talkers: TALKERS,
        rank_us: median(&mut rank),
        counters_us: median(&mut counters),
    })
}
