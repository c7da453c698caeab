//! Sampling accuracy: at 1 in 100 over 10^6 frames, the scaled sample
//! counts are within 5% of the truth, in the kernel (the real program
//! through `BPF_PROG_TEST_RUN`, samples read from its ring buffer) and in
//! the native build (seeded generator). Each sample's metadata and bytes
//! are those of the frame it came from. The kernel part needs root.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use xdpath_core::abi;

use aya::maps::{MapData, RingBuf};
use xdpath::dataplane::LoadedProgram;
use xdpath_core::observe::{RecordMeta, RECORD_SAMPLED, SAMPLE_BYTES};
use xdpath_core::{pipeline, Action, InterfaceConfig, MalformedPolicy, NativeTables, SlicePacket};
use xdpath_lab::traffic::{Mix, Peers};

const RATE: u32 = 100;
const TOTAL: u64 = 1_000_000;

fn peers() -> Peers {
    Peers {
        source_mac: [2, 0, 0, 0, 0, 2],
        destination_mac: [2, 0, 0, 0, 0, 1],
        source_v4: Ipv4Addr::new(10, 9, 0, 2),
        destination_v4: Ipv4Addr::new(10, 9, 0, 1),
        source_v6: "fd00:9::2".parse::<Ipv6Addr>().unwrap(),
        destination_v6: "fd00:9::1".parse::<Ipv6Addr>().unwrap(),
    }
}

/// The mix, with frames whose head (what a sample shows) and length are
/// the same as an earlier one's left out, so every sample names its frame.
fn distinct_frames() -> Vec<(Vec<u8>, xdpath_core::Reason)> {
    let mut seen = Vec::<(usize, Vec<u8>)>::new();
    let mut frames = Vec::new();
    for frame in Mix::build(&peers()).frames {
        let head = frame.bytes[..frame.bytes.len().min(SAMPLE_BYTES as usize)].to_vec();
        if seen
            .iter()
            .any(|(len, seen_head)| *len == frame.bytes.len() && *seen_head == head)
        {
            continue;
        }
        seen.push((frame.bytes.len(), head));
        frames.push((frame.bytes, frame.reason));
    }
    frames
}

fn assert_within(what: &str, estimate: u64, truth: u64, tolerance: f64) {
    let error = (estimate as f64 - truth as f64).abs() / truth as f64;
    assert!(
        error <= tolerance,
        "{what}: estimate {estimate} vs truth {truth} ({:.2}% off)",
        error * 100.0
    );
    eprintln!(
        "{what}: estimate {estimate} vs truth {truth} ({:.2}% off)",
        error * 100.0
    );
}

fn drain(ring: &mut RingBuf<MapData>, records: &mut Vec<Vec<u8>>) {
    while let Some(item) = ring.next() {
        records.push(item.to_vec());
    }
}

/// Sends `TOTAL` frames spread over the mix through `run(frame, repeat)`,
/// reading samples between runs with `read`; returns the frames and how
/// many of each were sent.
fn spread(
    frames: &[(Vec<u8>, xdpath_core::Reason)],
    mut run: impl FnMut(&[u8], u32),
) -> HashMap<usize, u64> {
    let per_frame = TOTAL / frames.len() as u64;
    let mut sent = HashMap::new();
    let mut remaining = TOTAL;
    for (index, (frame, _)) in frames.iter().enumerate() {
        let count = if index + 1 == frames.len() {
            remaining
        } else {
            per_frame
        };
        remaining -= count;
        run(frame, count as u32);
        sent.insert(index, count);
    }
    sent
}

fn check_totals(
    label: &str,
    records: &[Vec<u8>],
    frames: &[(Vec<u8>, xdpath_core::Reason)],
    sent: &HashMap<usize, u64>,
    policy_drop: bool,
) {
    let mut scaled_bytes = 0u64;
    for record in records {
        let (meta, data) = RecordMeta::parse(record).expect("a whole record");
        assert_eq!(meta.flags, RECORD_SAMPLED, "{label}: flags");
        assert_eq!(meta.sample_rate, RATE, "{label}: the rate in the sample");
        // The frame is the one whose length and head the sample carries
        // (distinct_frames makes that unique).
        let index = frames
            .iter()
            .position(|(frame, _)| {
                frame.len() == meta.frame_len as usize && frame.starts_with(data)
            })
            .unwrap_or_else(|| panic!("{label}: a sample of no frame sent: {meta:?}"));
        assert!(sent.contains_key(&index));
        let (frame, reason) = &frames[index];
        assert_eq!(
            data.len(),
            frame.len().min(SAMPLE_BYTES as usize),
            "{label}: sample length"
        );
        let reason = *reason;
        assert_eq!(meta.reason(), Some(reason), "{label}: the sample's reason");
        let action = if reason.is_malformed() && policy_drop {
            Action::Drop
        } else {
            Action::Pass
        };
        assert_eq!(meta.action(), Some(action), "{label}: the sample's verdict");
        scaled_bytes += u64::from(meta.frame_len) * u64::from(RATE);
    }
    let true_bytes: u64 = sent
        .iter()
        .map(|(index, count)| frames[*index].0.len() as u64 * count)
        .sum();
    assert_within(
        &format!("{label}: frames"),
        records.len() as u64 * u64::from(RATE),
        TOTAL,
        0.05,
    );
    assert_within(&format!("{label}: bytes"), scaled_bytes, true_bytes, 0.05);
}

#[test]
fn kernel_sampling_at_1_in_100_is_within_5_percent() {
    xdpath_lab::needs_root!();
    let frames = distinct_frames();
    let config = InterfaceConfig::new(MalformedPolicy::Drop).with_sample_rate(RATE);
    let mut program = LoadedProgram::load(config).expect("load the xdpath program (root?)");
    let mut ring = program
        .take_ring(abi::map::SAMPLES)
        .expect("the sample ring");
    let mut records = Vec::new();
    let sent = spread(&frames, |frame, repeat| {
        program.time_run(frame, repeat).expect("test run");
        drain(&mut ring, &mut records);
    });
    drain(&mut ring, &mut records);
    let counted: u64 = program
        .counters()
        .unwrap()
        .iter()
        .map(|counter| counter.packets)
        .sum();
    assert_eq!(counted, TOTAL, "the sample pool: every frame counted");
    let lost: u64 = {
        let map = program
            .ebpf_mut()
            .map(abi::map::OBSERVE_LOSS)
            .expect("loss map");
        let loss = aya::maps::PerCpuArray::<_, u64>::try_from(map).unwrap();
        loss.get(&0, 0).unwrap().iter().sum()
    };
    assert_eq!(lost, 0, "no sample lost to a full ring");
    check_totals("kernel", &records, &frames, &sent, true);
}

#[test]
fn native_sampling_at_1_in_100_is_within_5_percent() {
    let frames = distinct_frames();
    let config = InterfaceConfig::new(MalformedPolicy::Drop).with_sample_rate(RATE);
    let mut tables = NativeTables::new(config);
    tables.observer = xdpath_core::native_observe::NativeObserver::new(20261128);
    let mut records = Vec::new();
    let sent = spread(&frames, |frame, repeat| {
        for _ in 0..repeat {
            pipeline::process(&SlicePacket::new(frame), &mut tables);
        }
        records.extend(tables.observer.samples.drain(..));
    });
    assert_eq!(tables.observer.lost, [0, 0]);
    check_totals("native", &records, &frames, &sent, true);
}

#[test]
fn sampling_off_sends_nothing() {
    xdpath_lab::needs_root!();
    let frames = distinct_frames();
    let mut program =
        LoadedProgram::load(InterfaceConfig::new(MalformedPolicy::Drop)).expect("load (root?)");
    let mut ring = program
        .take_ring(abi::map::SAMPLES)
        .expect("the sample ring");
    for (frame, _) in &frames {
        program.time_run(frame, 1000).unwrap();
    }
    let mut records = Vec::new();
    drain(&mut ring, &mut records);
    assert!(
        records.is_empty(),
        "{} samples with sampling off",
        records.len()
    );
}

/// Capture is deterministic (no random draw): the kernel and the native
/// build must hand over the same record for every frame, byte for byte
/// but for the arrival time.
#[test]
fn kernel_and_native_capture_records_agree() {
    xdpath_lab::needs_root!();
    use xdpath_core::observe::CaptureConfig;
    let frames = distinct_frames();
    let capture = CaptureConfig {
        enabled: 1,
        snap_len: 96,
        ..CaptureConfig::default()
    };
    let config = InterfaceConfig::new(MalformedPolicy::Drop);
    let mut program = LoadedProgram::load(config).expect("load (root?)");
    {
        let map = program
            .ebpf_mut()
            .map_mut(abi::map::CAPTURE)
            .expect("the capture map");
        let mut array = aya::maps::Array::<_, [u8; 16]>::try_from(map).unwrap();
        array.set(0, capture.to_bytes(), 0).unwrap();
    }
    let mut ring = program
        .take_ring(abi::map::CAPTURE_RING)
        .expect("the capture ring");
    let mut tables = NativeTables::new(config);
    tables.observer.capture = capture;
    let mut kernel = Vec::new();
    for (frame, _) in &frames {
        program.test_run(frame).expect("test run");
        pipeline::process(&SlicePacket::new(frame), &mut tables);
    }
    drain(&mut ring, &mut kernel);
    let native: Vec<Vec<u8>> = tables.observer.captures.drain(..).collect();
    assert_eq!(kernel.len(), frames.len(), "one kernel record per frame");
    assert_eq!(native.len(), frames.len(), "one native record per frame");
    for ((kernel, native), (frame, reason)) in kernel.iter().zip(&native).zip(&frames) {
        let (mut kernel_meta, kernel_data) = RecordMeta::parse(kernel).unwrap();
        let (mut native_meta, native_data) = RecordMeta::parse(native).unwrap();
        assert_eq!(kernel_meta.reason(), Some(*reason));
        assert_eq!(kernel_data, &frame[..frame.len().min(96)]);
        assert_eq!(kernel_data, native_data);
        // Arrival time and interface differ by nature (a test run has no
        // interface and the kernel's clock).
        kernel_meta.timestamp_ns = 0;
        native_meta.timestamp_ns = 0;
        kernel_meta.ifindex = 0;
        native_meta.ifindex = 0;
        assert_eq!(kernel_meta, native_meta);
    }
}
