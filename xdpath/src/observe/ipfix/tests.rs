//! Unit tests of the IPFIX encoder and exporter: templates, record bytes,
//! message sizes, sequence numbers and the forwarding status codes.

use super::encoder::encode_record;
use super::*;
use crate::observe::flows::FlowRecord;
use crate::observe::flows::{FlowEndReason, FlowKey};

fn record(source: &str, destination: &str) -> FlowRecord {
    FlowRecord {
        key: FlowKey {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            source_port: 1234,
            destination_port: 80,
            protocol: 6,
            vlan: Some(42),
            ingress_ifindex: 3,
            forwarding_status: 129,
        },
        packets: 2,
        bytes: 0x0102,
        first_ms: 5,
        last_ms: 6,
        tcp_flags: 0x12,
        forwarding_status: 129,
        end_reason: FlowEndReason::IdleTimeout,
    }
}

#[test]
fn golden_header_and_template_set() {
    let config = IpfixConfig {
        observation_domain: 9,
        ..IpfixConfig::new(vec![])
    };
    let mut encoder = IpfixEncoder::new(&config);
    let message = &encoder.messages(0x6000_0000, &[])[0];
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0, 10, 0, 220,          // version 10, length 16 + 124 + 80
        0x60, 0, 0, 0,          // export time
        0, 0, 0, 0,             // sequence: no record before
        0, 0, 0, 9,             // observation domain
        0, 2, 0, 124,           // template set, 4 + 2 * 60 bytes
        1, 0, 0, 14,            // template 256, 14 fields
        0, 1, 0, 8,  0, 2, 0, 8,  0, 152, 0, 8,  0, 153, 0, 8,
        0, 8, 0, 4,  0, 12, 0, 4,
        0, 7, 0, 2,  0, 11, 0, 2,  0, 4, 0, 1,  0, 6, 0, 1,
        0, 10, 0, 4,  0, 58, 0, 2,  0, 89, 0, 1,  0, 136, 0, 1,
        1, 1, 0, 14,            // template 257, 14 fields
        0, 1, 0, 8,  0, 2, 0, 8,  0, 152, 0, 8,  0, 153, 0, 8,
        0, 27, 0, 16,  0, 28, 0, 16,
        0, 7, 0, 2,  0, 11, 0, 2,  0, 4, 0, 1,  0, 6, 0, 1,
        0, 10, 0, 4,  0, 58, 0, 2,  0, 89, 0, 1,  0, 136, 0, 1,
        0, 3, 0, 20,            // options template set, padded
        1, 2, 0, 2, 0, 1,       // template 258, 2 fields, 1 of scope
        0, 149, 0, 4,  0, 34, 0, 4, // observationDomainId; samplingInterval
        0, 0,
        1, 2, 0, 12,            // its record: domain 9, 1 in 1
        0, 0, 0, 9,  0, 0, 0, 1,
        0, 3, 0, 28,            // options template set, padded
        1, 3, 0, 4, 0, 1,       // template 259, 4 fields, 1 of scope
        0, 149, 0, 4,  1, 48, 0, 2,  1, 49, 0, 4,  1, 50, 0, 4, // 304-306
        0, 0,
        1, 3, 0, 20,            // its record: random, 1 selected, 0 skipped
        0, 0, 0, 9,  0, 3,  0, 0, 0, 1,  0, 0, 0, 0,  0, 0,
    ];
    assert_eq!(message.bytes, expected);
    // A data record follows in a padded set; the next message's
    // sequence counts it.
    let messages = encoder.messages(0x6000_0001, &[record("10.0.0.1", "10.0.0.2")]);
    assert!(!messages[0].has_templates);
    #[rustfmt::skip]
    let data: Vec<u8> = vec![
        0, 10, 0, 76, 0x60, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 9, // after 2 options
        1, 0, 0, 60,            // data set 256: 4 + 54 + 2 padding
        0, 0, 0, 0, 0, 0, 1, 2,  0, 0, 0, 0, 0, 0, 0, 2,
        0, 0, 0, 0, 0, 0, 0, 5,  0, 0, 0, 0, 0, 0, 0, 6,
        10, 0, 0, 1,  10, 0, 0, 2,  0x04, 0xd2, 0, 80,  6,  0x12,
        0, 0, 0, 3,  0, 42,  129,  1,
        0, 0,
    ];
    assert_eq!(messages[0].bytes, data);
    let next = encoder.messages(0x6000_0001, &[record("10.0.0.1", "10.0.0.2")]);
    assert_eq!(next[0].bytes[8..12], [0, 0, 0, 3]);
}

#[test]
fn record_lengths_match_the_templates() {
    assert_eq!((RECORD_LEN_IPV4, RECORD_LEN_IPV6), (54, 78));
    let (_, v4) = encode_record(&record("10.0.0.1", "10.0.0.2"), 1).unwrap();
    let (_, v6) = encode_record(&record("2001:db8::1", "2001:db8::2"), 1).unwrap();
    assert_eq!((v4.len(), v6.len()), (54, 78));
    assert!(encode_record(&record("10.0.0.1", "2001:db8::2"), 1).is_none());
}

#[test]
fn sampled_counts_are_unscaled_and_the_interval_announced() {
    let mut encoder = IpfixEncoder::new(&IpfixConfig::new(vec![]));
    assert_eq!(encoder.messages(100, &[]).len(), 1);
    assert!(encoder.messages(101, &[]).is_empty());
    // A new interval: templates and options again, with it.
    encoder.set_sampling_interval(10);
    let mut flow = record("10.0.0.1", "10.0.0.2");
    (flow.packets, flow.bytes) = (30, 30 * 40);
    let message = &encoder.messages(102, &[flow])[0];
    assert!(message.has_templates);
    let options = 16 + 124;
    assert_eq!(
        message.bytes[options + 24..options + 32],
        [0, 0, 0, 0, 0, 0, 0, 10]
    );
    let selector = options + 32 + 28 + 8;
    assert_eq!(
        message.bytes[selector..selector + 10],
        [0, 3, 0, 0, 0, 1, 0, 0, 0, 9]
    );
    // 3 selected packets of 40 octets; the collector scales them by 10.
    let record = options + 80 + 4;
    assert_eq!(message.bytes[record..record + 8], 120u64.to_be_bytes());
    assert_eq!(message.bytes[record + 8..record + 16], 3u64.to_be_bytes());
    assert_eq!((unscale(0, 10), unscale(1, 10), unscale(14, 10)), (0, 1, 1));
    assert_eq!(
        (unscale(15, 10), unscale(25, 0), unscale(u64::MAX, 1)),
        (2, 25, u64::MAX)
    );
    encoder.set_sampling_interval(10);
    assert!(encoder.messages(103, &[]).is_empty());
}

#[test]
fn messages_split_and_templates_refresh() {
    let config = IpfixConfig {
        max_message: 400,
        template_every_messages: 3,
        ..IpfixConfig::new(vec![])
    };
    let mut encoder = IpfixEncoder::new(&config);
    let mut records = Vec::new();
    for _ in 0..10 {
        records.push(record("10.0.0.1", "10.0.0.2"));
        records.push(record("2001:db8::1", "2001:db8::2"));
    }
    let messages = encoder.messages(100, &records);
    assert!(messages.iter().all(|message| message.bytes.len() <= 400));
    assert!(messages.iter().all(|message| message.bytes.len() % 4 == 0));
    assert_eq!(messages.iter().map(|m| m.records).sum::<u32>(), 20);
    let with_templates: Vec<bool> = messages.iter().map(|m| m.has_templates).collect();
    assert_eq!(with_templates[..4], [true, false, false, true]);
    let mut sequence = 0u32;
    for message in &messages {
        assert_eq!(message.bytes[8..12], sequence.to_be_bytes());
        sequence += message.records + 2 * u32::from(message.has_templates);
    }
    assert_eq!(encoder.sequence(), sequence);
    // Refresh by time, and after the clock steps back.
    let mut encoder = IpfixEncoder::new(&IpfixConfig::new(vec![]));
    assert_eq!(encoder.messages(1000, &[]).len(), 1);
    assert!(encoder.messages(1059, &[]).is_empty());
    assert!(encoder.messages(1060, &[])[0].has_templates);
    assert!(encoder.messages(10, &[])[0].has_templates);
}

#[test]
fn forwarding_statuses() {
    use Reason::*;
    let drop = |reason| forwarding_status(Action::Drop, reason);
    assert_eq!(drop(DefaultDeny), 129);
    assert_eq!(
        (drop(TcpNullFlags), drop(Amplification), drop(Fragment)),
        (130, 130, 130)
    );
    assert_eq!(drop(SynRateLimited), 138);
    assert_eq!(
        (drop(Ipv4LengthBeyondFrame), drop(BadTcpDataOffset)),
        (135, 136)
    );
    assert_eq!((drop(BadIpv6Version), drop(LbNoBackend)), (128, 131));
    assert_eq!(forwarding_status(Action::Redirect, LbForwarded), 66);
    assert_eq!(forwarding_status(Action::Tx, SynCookieSent), 195);
    // Too big for the balancer's path, answered or not: not forwarded.
    assert_eq!(forwarding_status(Action::Tx, LbTooBig), 133);
    assert_eq!(drop(LbTooBig), 133);
    assert_eq!(forwarding_status(Action::Aborted, Ipv4Tcp), 128);
    for reason in Reason::ALL {
        for action in Action::ALL {
            assert!(forwarding_status(action, reason) >= 64);
        }
    }
}

/// An interface sampling 1 in 1000 (then 600) and a VIP sampled 1 in 1 of
/// its own: the interval announced is their greatest common divisor, so
/// the collector's scaled counts equal the cache's estimates exactly.
#[test]
fn samples_at_several_rates_announce_their_greatest_common_divisor() {
    use crate::observe::test_samples::{ipv4_frame, sample_of};
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = IpfixConfig::new(vec![collector.local_addr().unwrap()]);
    let mut exporter = IpfixExporter::new(config).unwrap();
    let udp = |destination: u8, rate: u32| {
        let mut frame = ipv4_frame(17, 28, [10, 0, 0, 1], [10, 0, 0, destination]);
        frame.extend_from_slice(&[0, 53, 0, 53, 0, 8, 0, 0]);
        sample_of(frame, 60, rate, 1_000_000_000)
    };
    exporter.add(&udp(2, 1000));
    assert_eq!(exporter.sampling_interval(), 1000);
    exporter.add(&udp(2, 600));
    assert_eq!(exporter.sampling_interval(), 200, "gcd(1000, 600)");
    exporter.add(&udp(9, 1));
    assert_eq!(
        exporter.sampling_interval(),
        1,
        "a VIP's 1 in 1 beside them"
    );
    exporter.add(&udp(2, 1000));
    assert_eq!(exporter.sampling_interval(), 1, "never coarser again");
    exporter.export_all(2_000);
    let mut buffer = [0u8; 1500];
    let (length, _) = collector.recv_from(&mut buffer).unwrap();
    let message = &buffer[..length];
    // Header, templates, sampling options, data set header; each record
    // is octets (8), packets (8), ... (54 bytes for IPv4).
    let first = 16 + 124 + 80 + 4;
    let packets = |at: usize| u64::from_be_bytes(message[at + 8..at + 16].try_into().unwrap());
    let mut counts = [packets(first), packets(first + 54)];
    counts.sort_unstable();
    assert_eq!(counts, [1, 2600], "each flow's estimate, exactly");
}
