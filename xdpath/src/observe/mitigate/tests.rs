//! Unit tests of the mitigator: rates, thresholds, exemptions, eviction,
//! TTLs and the configuration checks.

use std::net::Ipv6Addr;

use super::prefix::{network, overlaps};
use super::*;
use crate::observe::test_samples::{ipv4_frame, sample_of};
use crate::observe::Sample;

const MS: u64 = 1_000_000;

fn sample(source: IpAddr, rate: u32, unix_ns: u64) -> Sample {
    let data = match source {
        IpAddr::V4(v4) => ipv4_frame(17, 28, v4.octets(), [192, 0, 2, 1]),
        IpAddr::V6(v6) => {
            let mut data = vec![0u8; 12];
            data.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0, 0, 8, 17, 64]);
            data.extend_from_slice(&v6.octets());
            data.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
            data
        }
    };
    sample_of(data, 100, rate, unix_ns)
}

fn address(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `count` samples of 1 in `rate` from `source`, spread over the
/// second starting at `start_ms`.
fn flood(mitigator: &mut Mitigator, source: &str, count: u64, rate: u32, start_ms: u64) {
    for step in 0..count {
        let at = start_ms * MS + step * 1_000 * MS / count;
        mitigator.observe(&sample(address(source), rate, at));
    }
}

fn config() -> MitigationConfig {
    MitigationConfig {
        threshold_pps: 1_000,
        window: Duration::from_secs(1),
        ttl: Duration::from_secs(60),
        dry_run: false,
        ..MitigationConfig::default()
    }
}

#[test]
fn flood_over_threshold_triggers_once_and_again_after_ttl() {
    let mut mitigator = Mitigator::new(config()).unwrap();
    flood(&mut mitigator, "10.0.0.9", 200, 10, 5_000);
    let actions = mitigator.decide(5_999);
    assert_eq!(actions.len(), 1);
    let action = &actions[0];
    assert_eq!(
        (action.prefix, action.prefix_len),
        (address("10.0.0.9"), 32)
    );
    assert_eq!((action.rate_pps, action.rate_bps), (2_000, 1_600_000));
    assert_eq!((action.at_unix_ms, action.dry_run), (5_999, false));
    let json = serde_json::to_string(action).unwrap();
    assert!(
        json.contains(r#""prefix":"10.0.0.9""#) && json.contains(r#""ttl_ms":60000"#),
        "{json}"
    );
    flood(&mut mitigator, "10.0.0.9", 200, 10, 6_000);
    assert!(mitigator.decide(6_999).is_empty());
    flood(&mut mitigator, "10.0.0.9", 200, 10, 65_000);
    assert_eq!(mitigator.decide(65_999).len(), 1);
    let stats = mitigator.stats();
    assert_eq!(
        (stats.actions_taken, stats.dry_run_reports, stats.active),
        (2, 0, 1)
    );
    assert_eq!(mitigator.actions().len(), 2);
}

#[test]
fn under_threshold_or_exempt_does_not_trigger() {
    let exempt = vec![(address("10.1.0.0"), 16), (address("2001:db8::"), 32)];
    let mut mitigator = Mitigator::new(MitigationConfig { exempt, ..config() }).unwrap();
    flood(&mut mitigator, "10.0.0.9", 100, 10, 5_000);
    flood(&mut mitigator, "10.1.2.3", 500, 10, 5_000);
    flood(&mut mitigator, "2001:db8::7", 500, 10, 5_000);
    assert!(mitigator.decide(5_999).is_empty());
    let stats = mitigator.stats();
    assert_eq!((stats.exempt_samples, stats.tracked_prefixes), (1_000, 1));
    // Idle for a window: forgotten.
    assert!(mitigator.decide(8_000).is_empty());
    assert_eq!(mitigator.stats().tracked_prefixes, 0);
}

#[test]
fn sources_aggregate_to_prefixes() {
    let config = MitigationConfig {
        prefix_v4: 24,
        prefix_v6: 48,
        ..config()
    };
    let mut mitigator = Mitigator::new(config).unwrap();
    for host in 1..=4 {
        flood(&mut mitigator, &format!("198.51.100.{host}"), 30, 10, 5_000);
        flood(
            &mut mitigator,
            &format!("2001:db8:1:{host}::1"),
            30,
            10,
            5_000,
        );
    }
    let actions = mitigator.decide(5_999);
    let prefixes: Vec<String> = actions
        .iter()
        .map(|action| format!("{}/{}", action.prefix, action.prefix_len))
        .collect();
    assert_eq!(prefixes, ["198.51.100.0/24", "2001:db8:1::/48"]);
    assert_eq!(actions[0].rate_pps, 1_200);
}

#[test]
fn prefix_overlapping_an_exempt_host_is_never_blocked() {
    let exempt = vec![(address("198.51.100.53"), 32)];
    let config = MitigationConfig {
        prefix_v4: 24,
        exempt,
        ..config()
    };
    let mut mitigator = Mitigator::new(config).unwrap();
    flood(&mut mitigator, "198.51.100.7", 500, 10, 5_000);
    assert!(mitigator.decide(5_999).is_empty());
}

#[test]
fn dry_run_is_carried_and_counted() {
    let mut mitigator = Mitigator::new(MitigationConfig {
        dry_run: true,
        ..config()
    })
    .unwrap();
    flood(&mut mitigator, "10.0.0.9", 200, 10, 5_000);
    let actions = mitigator.decide(5_999);
    assert!(actions[0].dry_run);
    let stats = mitigator.stats();
    assert_eq!((stats.actions_taken, stats.dry_run_reports), (0, 1));
}

#[test]
fn bit_rate_threshold_and_bounds() {
    let config = MitigationConfig {
        threshold_pps: 1_000_000,
        threshold_bps: Some(100_000),
        max_tracked: 2,
        ..config()
    };
    let mut mitigator = Mitigator::new(config).unwrap();
    flood(&mut mitigator, "10.0.0.1", 100, 10, 5_000);
    for host in 2..=5 {
        flood(&mut mitigator, &format!("10.0.0.{host}"), 1, 1, 5_000);
    }
    let stats = mitigator.stats();
    assert_eq!((stats.tracked_prefixes, stats.evicted), (2, 3));
    let actions = mitigator.decide(5_999);
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].rate_bps, 800_000);
    // Older than its slot's content: ignored.
    mitigator.observe(&sample(address("10.0.0.1"), 1, 4_000 * MS));
    assert_eq!(mitigator.stats().stale_samples, 1);
    mitigator.observe(&Sample {
        data: vec![0; 10],
        ..sample(address("10.0.0.1"), 1, 0)
    });
    assert_eq!(mitigator.stats().unparsed_samples, 1);
}

#[test]
fn extreme_times_and_lengths_do_not_panic() {
    let config = MitigationConfig {
        window: Duration::from_millis(1),
        ..config()
    };
    let mut mitigator = Mitigator::new(config).unwrap();
    mitigator.observe(&sample(address("10.0.0.1"), u32::MAX, u64::MAX));
    mitigator.observe(&sample(address("::1"), 1, 0));
    assert!(mitigator.decide(u64::MAX).len() <= 1);
    let _ = mitigator.decide(0);
    assert_eq!(network(address("10.1.2.3"), 0), address("0.0.0.0"));
    assert!(overlaps((address("::"), 0), (address("2001:db8::1"), 128)));
    assert!(!overlaps((address("0.0.0.0"), 0), (address("::1"), 128)));
}

#[test]
fn bad_values_are_refused_with_clear_messages() {
    type Change = fn(&mut MitigationConfig);
    let cases: [(Change, &str); 8] = [
        (|c| c.threshold_pps = 0, "threshold_pps must be at least 1"),
        (|c| c.threshold_bps = Some(0), "threshold_bps must be"),
        (|c| c.window = Duration::ZERO, "window must be at least 1ms"),
        (|c| c.ttl = Duration::ZERO, "ttl must be longer"),
        (|c| c.max_tracked = 0, "max_tracked must be"),
        (|c| c.prefix_v4 = 4, "prefix_v4 /4 is out of range"),
        (|c| c.prefix_v6 = 129, "prefix_v6 /129 is out of range"),
        (
            |c| c.exempt = vec![(address("10.0.0.0"), 33)],
            "exempt prefix 10.0.0.0/33",
        ),
    ];
    for (change, message) in cases {
        let mut config = config();
        change(&mut config);
        let error = Mitigator::new(config).unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
    }
}
