//! The native build's sampling and capture: the same choice and the same
//! records as the kernel's (`xdpath_core::observe`), with a seeded
//! generator in place of the kernel's `bpf_get_prandom_u32`, and bounded
//! queues in place of the ring buffers.

use std::collections::VecDeque;
use std::vec::Vec;

use crate::observe::{
    sample_hit, sample_len, sample_step, CaptureConfig, RecordMeta, SampleRng, RECORD_CAPTURED,
    RECORD_SAMPLED, SAMPLE_BYTES,
};
use crate::packet::Packet;
use crate::stats::{Action, Reason};

/// Records a queue holds before it counts further ones as lost, like a
/// full ring buffer.
pub const DEFAULT_QUEUE_RECORDS: usize = 65_536;

/// Sampling and capture state of one native interface.
#[derive(Clone, Debug)]
pub struct NativeObserver {
    /// The capture filter (all zero: no capture).
    pub capture: CaptureConfig,
    /// The generator sampling draws from.
    pub rng: SampleRng,
    /// Samples not yet taken, as the kernel writes them.
    pub samples: VecDeque<Vec<u8>>,
    /// Capture records not yet taken.
    pub captures: VecDeque<Vec<u8>>,
    /// Records dropped because their queue was full: samples, captures.
    pub lost: [u64; 2],
    /// Most records a queue holds.
    pub queue_records: usize,
    /// Frames left before the next sample.
    skip: u32,
    pending: Option<(RecordMeta, Vec<u8>)>,
}

impl Default for NativeObserver {
    fn default() -> Self {
        Self::new(1)
    }
}

impl NativeObserver {
    /// An observer drawing from a generator seeded with `seed`.
    pub fn new(seed: u32) -> Self {
        Self {
            capture: CaptureConfig::default(),
            rng: SampleRng::new(seed),
            samples: VecDeque::new(),
            captures: VecDeque::new(),
            lost: [0; 2],
            queue_records: DEFAULT_QUEUE_RECORDS,
            skip: 0,
            pending: None,
        }
    }

    /// Chooses a frame arriving on `ifindex` at `now_ns`, as the kernel's
    /// entry does.
    #[inline]
    pub fn arrive<P: Packet>(&mut self, packet: &P, rate: u32, ifindex: u32, now_ns: u64) {
        // The common case, kept to two loads: nothing to choose (and
        // nothing pending, as every exit takes what was chosen).
        if rate == 0 && self.capture.enabled == 0 && self.pending.is_none() {
            return;
        }
        self.choose(packet, rate, ifindex, now_ns);
    }

    fn choose<P: Packet>(&mut self, packet: &P, rate: u32, ifindex: u32, now_ns: u64) {
        let frame_len = packet.len() as u32;
        let mut flags = 0;
        let mut copy = 0;
        if rate != 0 {
            let (hit, next) = sample_step(rate, self.skip, self.rng.next_u32());
            self.skip = next;
            if hit {
                flags = RECORD_SAMPLED;
                copy = sample_len(frame_len);
            }
        }
        if self.capture.wants_interface(ifindex) {
            flags |= RECORD_CAPTURED;
            copy = copy.max(self.capture.copy_len(frame_len));
        }
        self.take(packet, flags, copy, rate, ifindex, now_ns);
    }

    /// Samples the frame again at `rate` (a VIP's own, see
    /// `LbTables::sample_vip`), as the kernel's balancing stage does: the
    /// interface's choice to sample it is replaced, a capture stays.
    pub fn sample_again<P: Packet>(&mut self, packet: &P, rate: u32, ifindex: u32, now_ns: u64) {
        let frame_len = packet.len() as u32;
        let captured = self
            .pending
            .as_ref()
            .is_some_and(|(meta, _)| meta.flags & RECORD_CAPTURED != 0);
        let (mut flags, mut copy) = (0, 0);
        if sample_hit(rate, self.rng.next_u32()) {
            flags = RECORD_SAMPLED;
            copy = sample_len(frame_len);
        }
        if captured {
            flags |= RECORD_CAPTURED;
            copy = copy.max(self.capture.copy_len(frame_len));
        }
        self.take(packet, flags, copy, rate, ifindex, now_ns);
    }

    /// Holds the frame's first `copy` bytes for its records (`flags`), or
    /// nothing when it was not chosen.
    fn take<P: Packet>(
        &mut self,
        packet: &P,
        flags: u8,
        copy: u32,
        rate: u32,
        ifindex: u32,
        now_ns: u64,
    ) {
        let frame_len = packet.len() as u32;
        self.pending = None;
        if flags == 0 {
            return;
        }
        // Like the kernel's bpf_xdp_load_bytes: the whole copy or nothing.
        let mut data = std::vec![0u8; copy as usize];
        if !packet.load_bytes(0, &mut data) {
            return;
        }
        let meta = RecordMeta {
            timestamp_ns: now_ns,
            ifindex,
            frame_len,
            sample_rate: if flags & RECORD_SAMPLED != 0 { rate } else { 0 },
            captured_len: data.len() as u16,
            flags,
            ..RecordMeta::default()
        };
        self.pending = Some((meta, data));
    }

    /// Whether a chosen frame waits for its verdict.
    #[inline(always)]
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Sends the chosen frame's records with its verdict, as the kernel's
    /// exit does.
    #[inline]
    pub fn finish(&mut self, action: Action, reason: Reason, matched: u32) {
        if self.pending.is_some() {
            self.send(action, reason, matched);
        }
    }

    fn send(&mut self, action: Action, reason: Reason, matched: u32) {
        let Some((mut meta, data)) = self.pending.take() else {
            return;
        };
        meta.action = action as u8;
        meta.reason = reason as u8;
        meta.matched = matched;
        let flags = meta.flags;
        if flags & RECORD_SAMPLED != 0 {
            let kept = data.len().min(SAMPLE_BYTES as usize);
            let sample = RecordMeta {
                flags: RECORD_SAMPLED,
                captured_len: kept as u16,
                ..meta
            };
            let record = record_bytes(&sample, data.get(..kept).unwrap_or(&[]));
            push(
                &mut self.samples,
                record,
                self.queue_records,
                &mut self.lost[0],
            );
        }
        if flags & RECORD_CAPTURED != 0 && self.capture.wants(action, reason) {
            let capture = RecordMeta {
                flags: RECORD_CAPTURED,
                ..meta
            };
            let record = record_bytes(&capture, &data);
            push(
                &mut self.captures,
                record,
                self.queue_records,
                &mut self.lost[1],
            );
        }
    }
}

fn record_bytes(meta: &RecordMeta, data: &[u8]) -> Vec<u8> {
    let mut record = meta.to_bytes().to_vec();
    record.extend_from_slice(data);
    record
}

fn push(queue: &mut VecDeque<Vec<u8>>, record: Vec<u8>, limit: usize, lost: &mut u64) {
    if queue.len() >= limit {
        *lost += 1;
    } else {
        queue.push_back(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::SlicePacket;

    #[test]
    fn a_captured_drop_keeps_its_bytes_and_verdict() {
        let mut observer = NativeObserver::new(3);
        observer.capture = CaptureConfig {
            enabled: 1,
            actions: 1 << Action::Drop as u8,
            ..CaptureConfig::default()
        };
        let frame = [7u8; 200];
        observer.arrive(&SlicePacket::new(&frame), 0, 5, 99);
        observer.finish(Action::Drop, Reason::RuleDeny, 0);
        observer.arrive(&SlicePacket::new(&frame), 0, 5, 100);
        observer.finish(Action::Pass, Reason::Ipv4Tcp, 0);
        assert_eq!(observer.captures.len(), 1);
        assert!(observer.samples.is_empty());
        let (meta, data) = RecordMeta::parse(&observer.captures[0]).unwrap();
        assert_eq!(
            (meta.ifindex, meta.frame_len, meta.timestamp_ns),
            (5, 200, 99)
        );
        assert_eq!(meta.reason(), Some(Reason::RuleDeny));
        assert_eq!(data, &frame[..]);
    }

    /// Found by the differential fuzz: the kernel copies a captured frame
    /// with `bpf_xdp_load_bytes`, which is not bounded by the parser's
    /// `MAX_HEADER_OFFSET`; the native copy stopped at byte 1025.
    #[test]
    fn a_capture_longer_than_the_header_bound_keeps_every_byte() {
        let mut observer = NativeObserver::new(3);
        observer.capture = CaptureConfig {
            enabled: 1,
            ..CaptureConfig::default()
        };
        let frame: Vec<u8> = (0..1400u32).map(|at| at as u8).collect();
        observer.arrive(&SlicePacket::new(&frame), 0, 1, 0);
        observer.finish(Action::Pass, Reason::NonIp, 0);
        let (meta, data) = RecordMeta::parse(&observer.captures[0]).unwrap();
        assert_eq!((meta.frame_len, meta.captured_len), (1400, 1400));
        assert_eq!(data, &frame[..]);
    }

    #[test]
    fn samples_are_cut_to_the_sample_length_and_a_full_queue_counts_loss() {
        let mut observer = NativeObserver::new(3);
        observer.queue_records = 2;
        let frame = [1u8; 300];
        for _ in 0..3 {
            observer.arrive(&SlicePacket::new(&frame), 1, 1, 0);
            observer.finish(Action::Pass, Reason::Ipv4Udp, 0);
        }
        assert_eq!(observer.samples.len(), 2);
        assert_eq!(observer.lost, [1, 0]);
        let (meta, data) = RecordMeta::parse(&observer.samples[0]).unwrap();
        assert_eq!((meta.sample_rate, data.len()), (1, SAMPLE_BYTES as usize));
    }
}
