//! Unit tests of the top talkers: ranking, the sliding window, rates and
//! the bound on keys per bucket.

use super::*;
use crate::observe::test_samples::{ipv4_frame, sample_of};

const SECOND_NS: u64 = 1_000_000_000;

/// An IPv4 UDP sample from 10.0.0.`source` to 10.0.0.`destination`.
fn sample(source: u8, destination: u8, frame_len: u32, rate: u32, unix_ns: u64) -> Sample {
    let mut data = ipv4_frame(17, 40, [10, 0, 0, source], [10, 0, 0, destination]);
    // UDP ports 12345 → 53.
    data.extend_from_slice(&[0x30, 0x39, 0, 53]);
    sample_of(data, frame_len, rate, unix_ns)
}

fn tracker() -> TopTalkers {
    TopTalkers::new(Duration::from_secs(10), Duration::from_secs(1))
}

fn keys(talkers: &[Talker]) -> Vec<String> {
    talkers
        .iter()
        .map(|talker| talker.key.to_string())
        .collect()
}

#[test]
fn ranks_by_packets_or_bytes() {
    let mut top = tracker();
    let now = 100 * SECOND_NS;
    for _ in 0..3 {
        top.add(&sample(1, 9, 64, 1, now));
    }
    top.add(&sample(2, 9, 1500, 1, now));
    top.add(&sample(3, 8, 64, 5, now));
    let by_packets = top.top(100_000, TalkerKind::Sources, Rank::Packets, 10);
    assert_eq!(keys(&by_packets), ["10.0.0.3", "10.0.0.1", "10.0.0.2"]);
    let by_bytes = top.top(100_000, TalkerKind::Sources, Rank::Bytes, 2);
    assert_eq!(keys(&by_bytes), ["10.0.0.2", "10.0.0.3"]);
    let destinations = top.top(100_000, TalkerKind::Destinations, Rank::Packets, 10);
    assert_eq!(keys(&destinations), ["10.0.0.8", "10.0.0.9"]);
    assert_eq!(destinations[1].packets, 4);
    let flows = top.top(100_000, TalkerKind::Flows, Rank::Bytes, 1);
    assert_eq!(keys(&flows), ["udp 10.0.0.2:12345 → 10.0.0.9:53"]);
    let json = serde_json::to_string(&flows).unwrap();
    assert!(
        json.contains(r#""key":"udp 10.0.0.2:12345 → 10.0.0.9:53""#),
        "{json}"
    );
}

#[test]
fn old_buckets_leave_the_window() {
    let mut top = tracker();
    top.add(&sample(1, 9, 100, 1, 100 * SECOND_NS));
    top.add(&sample(2, 9, 100, 1, 105 * SECOND_NS));
    assert_eq!(
        top.top(109_999, TalkerKind::Sources, Rank::Packets, 10)
            .len(),
        2
    );
    assert_eq!(
        keys(&top.top(110_000, TalkerKind::Sources, Rank::Packets, 10)),
        ["10.0.0.2"]
    );
    assert!(top
        .top(115_000, TalkerKind::Sources, Rank::Packets, 10)
        .is_empty());
    // A sample that wraps onto a slot resets it; one older than the
    // slot's content is stale.
    top.add(&sample(3, 9, 100, 1, 110 * SECOND_NS));
    top.add(&sample(4, 9, 100, 1, 100 * SECOND_NS));
    assert_eq!(
        keys(&top.top(110_000, TalkerKind::Sources, Rank::Packets, 10)),
        ["10.0.0.2", "10.0.0.3"]
    );
    assert_eq!(top.summary(110_000).stale_samples, 1);
    top.expire(200_000);
    assert!(top.buckets.iter().all(|bucket| bucket.index == u64::MAX));
}

#[test]
fn rates_are_per_second_over_the_window() {
    let mut top = tracker();
    for second in 0..10 {
        top.add(&sample(1, 9, 125, 100, (50 + second) * SECOND_NS));
    }
    let talker = &top.top(59_500, TalkerKind::Sources, Rank::Packets, 1)[0];
    assert_eq!((talker.packets, talker.bytes), (1_000, 125_000));
    assert_eq!(talker.packets_per_second, 100.0);
    assert_eq!(talker.bits_per_second, 100_000.0);
    assert_eq!(top.window(), Duration::from_secs(10));
}

#[test]
fn keys_per_bucket_are_bounded_and_overflow_is_counted() {
    let mut top = tracker().with_max_keys(2);
    for source in 1..=5 {
        top.add(&sample(source, 9, 100, 1, SECOND_NS));
    }
    let mut unparsed = sample(1, 9, 60, 2, SECOND_NS);
    unparsed.data.truncate(20);
    top.add(&unparsed);
    assert_eq!(
        top.top(1_000, TalkerKind::Sources, Rank::Packets, 10).len(),
        2
    );
    let summary = top.summary(1_000);
    assert_eq!(
        summary.overflow[0],
        Counts {
            packets: 3,
            bytes: 300
        }
    );
    assert_eq!(summary.overflow[1], Counts::default());
    assert_eq!(summary.overflow[2].packets, 3);
    assert_eq!(
        summary.unkeyed,
        Counts {
            packets: 2,
            bytes: 120
        }
    );
    assert_eq!(
        summary.total,
        Counts {
            packets: 7,
            bytes: 620
        }
    );
    assert_eq!(summary.window_ms, 10_000);
}

#[test]
fn odd_lengths_do_not_panic() {
    let mut top = TopTalkers::new(Duration::ZERO, Duration::ZERO);
    top.add(&sample(1, 2, 60, 0, u64::MAX));
    assert_eq!(top.window(), MIN_BUCKET);
    let _ = top.top(u64::MAX, TalkerKind::Flows, Rank::Bytes, usize::MAX);
    let huge = TopTalkers::new(Duration::MAX, Duration::from_nanos(1));
    assert_eq!(huge.buckets.len(), MAX_BUCKETS);
}
