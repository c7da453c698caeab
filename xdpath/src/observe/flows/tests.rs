//! Unit tests of the flow cache: scaled counts, active timeouts, flow ends
//! and eviction when full.

use super::*;
use crate::observe::test_samples::{ipv4_frame, sample_of, with_verdict};
use xdpath_core::{Action, Reason};

/// An Ethernet + IPv4 + TCP frame from 10.0.0.`host` port 1000 + `host`
/// to 10.0.0.254 port 80.
fn tcp_frame(host: u8, flags: u8) -> Vec<u8> {
    let mut frame = ipv4_frame(6, 40, [10, 0, 0, host], [10, 0, 0, 254]);
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&(1000 + u16::from(host)).to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    frame.extend_from_slice(&tcp);
    frame
}

fn sample(data: Vec<u8>, at_ms: u64, action: Action, reason: Reason) -> Sample {
    with_verdict(
        sample_of(data, 60, 100, at_ms * 1_000_000),
        4,
        action,
        reason,
    )
}

/// [`tcp_frame`] of `host` with `flags`, sampled at `at_ms` and passed as
/// plain IPv4 TCP.
fn passed_tcp(host: u8, flags: u8, at_ms: u64) -> Sample {
    sample(tcp_frame(host, flags), at_ms, Action::Pass, Reason::Ipv4Tcp)
}

fn cache() -> FlowCache {
    FlowCache::new(Duration::from_secs(60), Duration::from_secs(10), 3)
}

#[test]
fn samples_aggregate_with_scaled_counts() {
    let mut cache = cache();
    cache.add(&passed_tcp(1, 0x02, 1_000));
    cache.add(&passed_tcp(1, 0x10, 3_000));
    cache.add(&sample(vec![0; 20], 3_000, Action::Pass, Reason::NonIp));
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.stats().skipped, 1);
    let records = cache.expire(13_000);
    assert_eq!(records.len(), 1);
    let record = records[0];
    // IP octets as the header says (40: IPv4 and TCP headers), not the
    // 60 bytes of the frame.
    assert_eq!((record.packets, record.bytes), (200, 8_000));
    assert_eq!((record.first_ms, record.last_ms), (1_000, 3_000));
    assert_eq!(record.tcp_flags, 0x12);
    assert_eq!(record.key.source_port, 1001);
    assert_eq!(record.key.ingress_ifindex, 4);
    assert_eq!(record.end_reason, FlowEndReason::IdleTimeout);
    assert!(cache.is_empty());
}

#[test]
fn active_timeout_exports_deltas_and_keeps_the_flow() {
    let mut cache = cache();
    cache.add(&passed_tcp(1, 0x10, 0));
    cache.add(&passed_tcp(1, 0x10, 55_000));
    let records = cache.expire(60_000);
    assert_eq!(records[0].end_reason, FlowEndReason::ActiveTimeout);
    assert_eq!(records[0].packets, 200);
    assert_eq!(cache.len(), 1);
    cache.add(&passed_tcp(1, 0x10, 61_000));
    let records = cache.expire(80_000);
    assert_eq!((records[0].packets, records[0].first_ms), (100, 61_000));
    // A reset flow with no new packet goes quietly.
    cache.add(&passed_tcp(2, 0x10, 0));
    cache.add(&passed_tcp(2, 0x10, 59_000));
    assert_eq!(cache.expire(60_000).len(), 1);
    assert!(cache.expire(70_000).is_empty());
    assert!(cache.is_empty());
}

#[test]
fn fin_ends_a_flow_and_each_forwarding_status_is_one_record() {
    let mut cache = cache();
    cache.add(&passed_tcp(1, 0x10, 0));
    for (flags, time) in [(0x10, 1), (0x10, 1)] {
        cache.add(&sample(
            tcp_frame(1, flags),
            time,
            Action::Drop,
            Reason::RateLimited,
        ));
    }
    // Passed again: the same record as the first, not a new one.
    cache.add(&passed_tcp(1, 0x10, 2));
    cache.add(&sample(
        tcp_frame(1, 0x11),
        2,
        Action::Drop,
        Reason::RateLimited,
    ));
    let records = cache.expire(3);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].end_reason, FlowEndReason::EndOfFlow);
    assert_eq!(
        (records[0].packets, records[0].forwarding_status),
        (300, 138)
    );
    let passed = cache.drain_all();
    assert_eq!(passed.len(), 1, "{passed:?}");
    assert_eq!((passed[0].packets, passed[0].forwarding_status), (200, 64));
}

#[test]
fn a_full_cache_evicts_the_least_recently_updated() {
    let mut cache = cache();
    for host in 1..=3 {
        cache.add(&passed_tcp(host, 0x10, 0));
    }
    cache.add(&passed_tcp(1, 0x10, 1));
    cache.add(&passed_tcp(4, 0x10, 2));
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.stats().evictions, 1);
    let records = cache.expire(3);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key.source_port, 1002);
    assert_eq!(records[0].end_reason, FlowEndReason::LackOfResources);
    let mut left: Vec<u16> = cache
        .drain_all()
        .iter()
        .map(|r| r.key.source_port)
        .collect();
    left.sort();
    assert_eq!(left, vec![1001, 1003, 1004]);
    assert!(cache.is_empty() && cache.expire(100_000).is_empty());
}
