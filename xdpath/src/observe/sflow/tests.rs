//! Unit tests of the sFlow encoder and exporter: exact bytes, sequence
//! numbers, batching and the discard codes.

use std::net::UdpSocket;

use super::*;
use crate::observe::test_samples::{sample_of, with_verdict};
use crate::observe::Sample;

fn sample(action: Action, reason: Reason, data: Vec<u8>) -> Sample {
    let captured_len = data.len() as u16;
    let mut sample = with_verdict(sample_of(data, 1000, 512, 0), 3, action, reason);
    sample.meta.captured_len = captured_len;
    sample
}

#[test]
fn golden_datagram_with_one_flow_sample() {
    let config = SflowConfig {
        agent: "192.0.2.1".parse().unwrap(),
        sub_agent_id: 7,
        collectors: vec![],
        max_datagram: 1400,
        max_delay: DEFAULT_MAX_DELAY,
    };
    let mut encoder = SflowEncoder::new(&config);
    let flow = encoder
        .flow_sample(
            &sample(
                Action::Drop,
                Reason::RuleDeny,
                vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee],
            ),
            4096,
            2,
        )
        .unwrap();
    let datagrams = encoder.datagrams(0x0102_0304, &[flow]);
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        0, 0, 0, 5,             // version 5
        0, 0, 0, 1,             // agent address type IPv4
        192, 0, 2, 1,           // agent address
        0, 0, 0, 7,             // sub-agent id
        0, 0, 0, 1,             // datagram sequence number
        1, 2, 3, 4,             // uptime
        0, 0, 0, 1,             // one sample
        0, 0, 0, 1,             // enterprise 0, format 1: flow sample
        0, 0, 0, 64,            // sample length: 32 + 8 + 24
        0, 0, 0, 1,             // sample sequence number
        0, 0, 0, 3,             // source id: type 0, ifIndex 3
        0, 0, 2, 0,             // sampling rate 512
        0, 0, 16, 0,            // sample pool 4096
        0, 0, 0, 2,             // drops
        0, 0, 0, 3,             // input ifIndex 3
        0x40, 0, 1, 2,          // output: discarded, 258 = ACL
        0, 0, 0, 1,             // one flow record
        0, 0, 0, 1,             // enterprise 0, format 1: raw header
        0, 0, 0, 24,            // record length: 16 + 5 + 3 padding
        0, 0, 0, 1,             // header protocol: Ethernet
        0, 0, 3, 0xec,          // frame length 1000 + 4 (FCS)
        0, 0, 0, 4,             // stripped: the FCS
        0, 0, 0, 5,             // header length
        0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0, 0, 0,
    ];
    assert_eq!(datagrams, vec![expected]);
}

#[test]
fn golden_counter_sample() {
    let mut encoder = SflowEncoder::new(&SflowConfig::new("::1".parse().unwrap(), vec![]));
    let counters = InterfaceCounters {
        ifindex: 2,
        speed_bps: 10_000_000_000,
        in_octets: 0x1_0000_0001,
        in_packets: 0x1_0000_0005,
        in_discards: 6,
        in_errors: 7,
        out_octets: Some(8),
        out_packets: Some(9),
        admin_up: true,
        oper_up: true,
    };
    let bytes = encoder.counter_sample(&counters).unwrap();
    #[rustfmt::skip]
    let head: [u8; 52] = [
        0, 0, 0, 2, 0, 0, 0, 108,  // counter sample, 12 + 8 + 88 bytes
        0, 0, 0, 1, 0, 0, 0, 2,    // sequence 1, source ifIndex 2
        0, 0, 0, 1,                // one record
        0, 0, 0, 1, 0, 0, 0, 88,   // generic interface counters, 88 bytes
        0, 0, 0, 2, 0, 0, 0, 6,    // ifIndex 2, ethernetCsmacd
        0, 0, 0, 2, 0x54, 0x0b, 0xe4, 0, // 10 Gb/s
        0, 0, 0, 0, 0, 0, 0, 3,    // direction unknown, admin + oper up
    ];
    assert_eq!(bytes.len(), 116);
    assert_eq!(bytes[..52], head);
    assert_eq!(bytes[52..60], [0, 0, 0, 1, 0, 0, 0, 1]); // in octets
    assert_eq!(bytes[60..64], [0, 0, 0, 5]); // wrapped packet count
    assert_eq!(bytes[64..72], [0xff; 8]); // multicast, broadcast: unavailable
    assert_eq!(bytes[72..80], [0, 0, 0, 6, 0, 0, 0, 7]);
    assert_eq!(bytes[84..96], [0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 9]);
    assert_eq!(bytes[112..116], [0; 4]);
    // Output counters the caller cannot see: the spec's "unknown".
    let unknown = InterfaceCounters {
        out_octets: None,
        out_packets: None,
        ..counters
    };
    let bytes = encoder.counter_sample(&unknown).unwrap();
    assert_eq!(bytes[84..96], [0xff; 12]);
}

#[test]
fn samples_share_datagrams_until_the_delay_passes() {
    let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let config = SflowConfig {
        max_delay: std::time::Duration::from_millis(50),
        ..SflowConfig::new(
            "192.0.2.1".parse().unwrap(),
            vec![collector.local_addr().unwrap()],
        )
    };
    let mut exporter = SflowExporter::new(config).unwrap();
    let start = std::time::Instant::now();
    for _ in 0..5 {
        exporter.push(&sample(Action::Pass, Reason::Ipv4Udp, vec![1; 60]), 10, 0);
        exporter.flush_due(start);
    }
    assert_eq!(exporter.stats().datagrams_sent, 0);
    exporter.flush_due(start + std::time::Duration::from_millis(100));
    assert_eq!(exporter.stats().datagrams_sent, 1);
    assert_eq!(exporter.stats().samples_sent, 5);
    exporter.flush_due(start + std::time::Duration::from_secs(1));
    assert_eq!(exporter.stats().datagrams_sent, 1);
}

#[test]
fn link_state_of_loopback_is_read_in_this_namespace() {
    let link = link_state("lo").unwrap();
    assert!(link.admin_up && link.oper_up, "{link:?}");
    assert_eq!(link.speed_bps, 0); // loopback reports no speed
    assert!(link_state("no-such-if0").is_none());
}

#[test]
fn discard_codes_and_outputs() {
    assert_eq!(
        output_interface(Action::Drop, Reason::RateLimited, 3),
        0x4000_0105
    );
    assert_eq!(
        output_interface(Action::Drop, Reason::TcpSynFin, 3),
        0x4000_0102
    );
    assert_eq!(
        output_interface(Action::Drop, Reason::BadUdpLength, 3),
        0x4000_0100
    );
    assert_eq!(
        output_interface(Action::Aborted, Reason::Ipv4Tcp, 3),
        0x4000_0100
    );
    assert_eq!(output_interface(Action::Tx, Reason::LbForwarded, 3), 3);
    assert_eq!(
        output_interface(Action::Tx, Reason::SynCookieSent, 3),
        0x3fff_ffff
    );
    assert_eq!(output_interface(Action::Pass, Reason::Ipv4Tcp, 3), 0);
    // Too big for the balancer's path: discarded, answered or not.
    for action in [Action::Tx, Action::Drop] {
        assert_eq!(output_interface(action, Reason::LbTooBig, 3), 0x4000_0004);
    }
    for reason in Reason::ALL {
        assert!(discard_code(reason) <= 262);
    }
}

#[test]
fn datagrams_split_below_the_limit_and_sequences_advance() {
    let config = SflowConfig {
        max_datagram: 300,
        ..SflowConfig::new("192.0.2.1".parse().unwrap(), vec![])
    };
    let mut encoder = SflowEncoder::new(&config);
    let flow = sample(Action::Pass, Reason::Ipv4Udp, vec![1; 200]);
    let samples: Vec<Vec<u8>> = (0..3)
        .map(|_| encoder.flow_sample(&flow, 0, 0).unwrap())
        .collect();
    assert_eq!(samples[2][11], 3);
    let datagrams = encoder.datagrams(0, &samples);
    assert_eq!(datagrams.len(), 3);
    assert!(datagrams.iter().all(|datagram| datagram.len() <= 300));
    assert_eq!(datagrams[2][16..20], [0, 0, 0, 3]);
    let oversized = encoder.flow_sample(&flow, 0, 0).unwrap();
    let small = SflowEncoder::new(&SflowConfig {
        max_datagram: 10,
        ..config
    })
    .datagrams(0, &[oversized]);
    assert_eq!(small.len(), 1);
}

#[test]
fn large_ifindex_and_odd_samples_do_not_panic() {
    let mut encoder = SflowEncoder::new(&SflowConfig::new("192.0.2.1".parse().unwrap(), vec![]));
    let mut big = sample(Action::Pass, Reason::NonIp, vec![]);
    big.meta.ifindex = 1 << 24;
    assert!(encoder.flow_sample(&big, 0, 0).is_none());
    let mut odd = sample(Action::Drop, Reason::NonIp, vec![0; 2000]);
    odd.meta.frame_len = u32::MAX;
    odd.meta.sample_rate = 0;
    let bytes = encoder.flow_sample(&odd, 0, 0).unwrap();
    assert_eq!(bytes.len(), 8 + 32 + 8 + 16 + MAX_HEADER_BYTES);
    assert_eq!(bytes[16..20], [0, 0, 0, 1]); // rate 0 reads as 1
}

#[test]
fn exporter_counts_and_survives_unreachable_collectors() {
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = collector.local_addr().unwrap();
    // Port 0 cannot be sent to: every send there fails.
    let broken: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = SflowConfig::new("127.0.0.1".parse().unwrap(), vec![address, broken]);
    let mut exporter = SflowExporter::new(config).unwrap();
    let flow = sample(Action::Pass, Reason::Ipv4Udp, vec![1; 128]);
    for _ in 0..10 {
        exporter.push(&flow, 100, 0);
    }
    exporter.flush();
    let stats = exporter.stats();
    assert_eq!(stats.samples_sent, 10);
    // 7 samples of 192 bytes fill a 1400-byte datagram.
    assert_eq!((stats.datagrams_sent, stats.send_errors), (2, 2));
    let mut buffer = [0u8; 1500];
    let (length, _) = collector.recv_from(&mut buffer).unwrap();
    assert_eq!(length, 28 + 7 * 192);
    assert_eq!(buffer[24..28], [0, 0, 0, 7]);
    assert!(matches!(
        SflowExporter::new(SflowConfig::new("127.0.0.1".parse().unwrap(), vec![])),
        Err(ExportError::NoCollectors)
    ));
}
