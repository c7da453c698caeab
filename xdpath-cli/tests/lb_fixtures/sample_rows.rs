//! A VIP sampled at its own rate (`VIP_SAMPLED`): its frames' samples
//! replace those its interface's rate would take, carry the VIP's rate and
//! the frame as it arrived (before encapsulation), alike in both builds;
//! a capture of the same frames stays whole.

use super::*;
use aya::maps::RingBuf;
use xdpath_core::observe::{CaptureConfig, RecordMeta, MATCHED_VIP, RECORD_SAMPLED};

/// The largest rate a VIP takes: a frame at it is sampled once in 2^24.
const RARE: u32 = 1 << 24;
/// An address that is no VIP's.
const ELSEWHERE: [u8; 4] = [198, 51, 100, 7];

/// Both builds sampling at `interface_rate`, VIP 0 (203.0.113.10:80/tcp)
/// at `vip_rate`, capturing every frame when `capture`; with the kernel's
/// sample and capture rings.
fn sampled_builds(
    interface_rate: u32,
    vip_rate: u32,
    capture: bool,
) -> (Builds, RingBuf<MapData>, RingBuf<MapData>) {
    let config = InterfaceConfig::default().with_sample_rate(interface_rate);
    // Taking its rings keeps it out of the pool afterwards.
    let mut program = Reused::take(config).expect("a fresh program (needs root)");
    let mut native = NativeTables::new(config);
    if capture {
        let capture = CaptureConfig {
            enabled: 1,
            snap_len: 96,
            ..CaptureConfig::default()
        };
        let map = program
            .ebpf_mut()
            .map_mut(abi::map::CAPTURE)
            .expect("the capture map");
        let mut array = aya::maps::Array::<_, [u8; 16]>::try_from(map).expect("capture array");
        array.set(0, capture.to_bytes(), 0).expect("capture on");
        native.observer.capture = capture;
    }
    let mut builds = Builds { program, native };
    let mut balancer = state(0, maglev([1, 1, 1]));
    for (_, vip) in balancer.vips.iter_mut().filter(|(_, vip)| vip.index == 0) {
        vip.flags |= VIP_SAMPLED;
    }
    balancer.sample_rates = vec![(0, vip_rate)];
    builds.install(&balancer);
    let samples = builds
        .program
        .take_ring(abi::map::SAMPLES)
        .expect("the sample ring");
    let captures = builds
        .program
        .take_ring(abi::map::CAPTURE_RING)
        .expect("the capture ring");
    (builds, samples, captures)
}

fn drain(ring: &mut RingBuf<MapData>) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while let Some(item) = ring.next() {
        records.push(item.to_vec());
    }
    records
}

/// A record's metadata without what differs by nature between the builds
/// (arrival time, and the interface: a test run has none).
fn comparable(record: &[u8]) -> (RecordMeta, Vec<u8>) {
    let (mut meta, data) = RecordMeta::parse(record).expect("a whole record");
    meta.timestamp_ns = 0;
    meta.ifindex = 0;
    (meta, data.to_vec())
}

/// Frames to VIP 0 (each a new flow) and frames to no VIP.
fn frames(to_vip: u16, elsewhere: u16) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (
        (0..to_vip).map(|port| tcp4(40_000 + port, VIP4)).collect(),
        (0..elsewhere)
            .map(|port| tcp4(50_000 + port, ELSEWHERE))
            .collect(),
    )
}

#[test]
fn a_vip_sampled_at_1_in_1_sends_every_frame_as_it_arrived() {
    xdpath_lab::needs_root!();
    let (mut builds, mut samples, _) = sampled_builds(0, 1, false);
    let (to_vip, elsewhere) = frames(5, 3);
    for frame in to_vip.iter().chain(&elsewhere) {
        let ran = builds.run("sampled VIP", frame);
        let expected = if frame[30..34] == VIP4 {
            (Action::Tx, Reason::LbForwarded)
        } else {
            (ran.action, ran.reason)
        };
        assert_eq!((ran.action, ran.reason), expected);
    }
    let kernel = drain(&mut samples);
    let native: Vec<Vec<u8>> = builds.native.observer.samples.drain(..).collect();
    assert_eq!(
        kernel.len(),
        to_vip.len(),
        "one kernel sample per VIP frame, none other"
    );
    assert_eq!(
        native.len(),
        to_vip.len(),
        "one native sample per VIP frame, none other"
    );
    for ((kernel, native), frame) in kernel.iter().zip(&native).zip(&to_vip) {
        let (meta, data) = comparable(kernel);
        assert_eq!(
            (meta, data.clone()),
            comparable(native),
            "kernel and native sample"
        );
        assert_eq!(meta.flags, RECORD_SAMPLED);
        assert_eq!(meta.sample_rate, 1, "the VIP's rate in its sample");
        assert_eq!(meta.frame_len as usize, frame.len());
        assert_eq!(
            data,
            frame[..frame.len().min(128)],
            "the frame before encapsulation"
        );
        assert_eq!(meta.action(), Some(Action::Tx));
        assert_eq!(meta.reason(), Some(Reason::LbForwarded));
        assert_eq!(meta.matched, MATCHED_VIP, "VIP slot 0 noted");
    }
}

#[test]
fn a_vips_rate_replaces_its_interfaces_and_a_capture_stays() {
    xdpath_lab::needs_root!();
    // Every frame sampled by the interface, 1 in 2^24 of the VIP's.
    let (mut builds, mut samples, mut captures) = sampled_builds(1, RARE, true);
    let (to_vip, elsewhere) = frames(200, 20);
    for frame in to_vip.iter().chain(&elsewhere) {
        builds.run("interface and VIP rates", frame);
    }
    let native_samples: Vec<Vec<u8>> = builds.native.observer.samples.drain(..).collect();
    for (build, records) in [("kernel", drain(&mut samples)), ("native", native_samples)] {
        let (mut vip, mut other) = (0, 0);
        for record in &records {
            let (meta, data) = comparable(record);
            if data[30..34] == VIP4 {
                assert_eq!(meta.sample_rate, RARE, "{build}: a VIP frame's sample rate");
                vip += 1;
            } else {
                assert_eq!(
                    meta.sample_rate, 1,
                    "{build}: the interface's rate elsewhere"
                );
                other += 1;
            }
        }
        assert_eq!(
            other,
            elsewhere.len(),
            "{build}: every frame to no VIP sampled"
        );
        // 200 draws at 1 in 2^24: more than 2 hits has odds below 1e-12.
        assert!(
            vip <= 2,
            "{build}: {vip} of 200 VIP frames sampled at 1 in 2^24"
        );
    }
    let kernel = drain(&mut captures);
    let native: Vec<Vec<u8>> = builds.native.observer.captures.drain(..).collect();
    assert_eq!(
        kernel.len(),
        to_vip.len() + elsewhere.len(),
        "kernel: every frame captured"
    );
    assert_eq!(native.len(), kernel.len(), "native: every frame captured");
    for (kernel, native) in kernel.iter().zip(&native) {
        assert_eq!(
            comparable(kernel),
            comparable(native),
            "kernel and native capture"
        );
    }
}
