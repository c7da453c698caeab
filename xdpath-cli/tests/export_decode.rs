//! sFlow and IPFIX output decoded by an independent implementation:
//! datagrams are wrapped in Ethernet/IPv4/UDP, written to a pcap file and
//! read back with `tshark`, which must decode them without a warning and
//! find the values that were encoded.

mod common;
#[path = "export_decode/frames.rs"]
mod frames;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use common::tshark::{assert_clean, objects_with, one, strings, tshark};
use serde_json::Value;
use xdpath::observe::flows::FlowCache;
use xdpath::observe::ipfix::{IpfixConfig, IpfixEncoder, IPFIX_PORT};
use xdpath::observe::sflow::{InterfaceCounters, SflowConfig, SflowEncoder, SFLOW_PORT};
use xdpath::observe::Sample;
use xdpath::pcap::{PcapWriter, Precision, Timestamp};
use xdpath_core::observe::RecordMeta;
use xdpath_core::wire::checksum;
use xdpath_core::{Action, Reason};

use frames::*;

// Long: the datagrams built once, then every decoded field checked against
// the value encoded, header by header and sample by sample.
#[test]
fn sflow_decodes_cleanly_with_the_encoded_values() {
    let (client4, server4, client6, server6) = addresses();
    let tcp = ipv4_tcp_frame(client4, server4, (51000, 443), Some(42), 0x02);
    let udp = ipv6_udp_frame(client6, server6, (5353, 53), 400);
    let denied = sample(&tcp, 5, 256, Action::Drop, Reason::RuleDeny, EPOCH_MS);
    let passed = sample(&udp, 6, 1, Action::Pass, Reason::Ipv6Udp, EPOCH_MS);
    // 67 bytes: its header needs XDR padding.
    let short = ipv6_udp_frame(client6, server6, (4000, 4001), 5);
    let limited = sample(&short, 7, 1000, Action::Drop, Reason::RateLimited, EPOCH_MS);
    let counters = InterfaceCounters {
        ifindex: 5,
        speed_bps: 10_000_000_000,
        in_octets: 123_456_789_012,
        in_packets: 1000,
        in_discards: 3,
        in_errors: 2,
        out_octets: Some(55),
        out_packets: Some(1),
        admin_up: true,
        oper_up: true,
    };

    let config = SflowConfig {
        sub_agent_id: 3,
        ..SflowConfig::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), vec![])
    };
    let mut encoder = SflowEncoder::new(&config);
    let first = vec![
        encoder.flow_sample(&denied, 10_000, 7).unwrap(),
        encoder.flow_sample(&passed, 20_000, 0).unwrap(),
        encoder.flow_sample(&limited, 30_000, 0).unwrap(),
        encoder.counter_sample(&counters).unwrap(),
    ];
    let mut datagrams = encoder.datagrams(99, &first);
    assert_eq!(datagrams.len(), 1);
    // Enough samples for several datagrams.
    let many: Vec<Vec<u8>> = (0..12)
        .map(|_| encoder.flow_sample(&passed, 20_000, 0).unwrap())
        .collect();
    let split = encoder.datagrams(150, &many);
    assert!(split.len() >= 2, "{} datagrams", split.len());
    assert!(split.iter().all(|datagram| datagram.len() <= 1400));
    datagrams.extend(split);
    let mut ipv6_agent =
        SflowEncoder::new(&SflowConfig::new("2001:db8::a".parse().unwrap(), vec![]));
    let last = ipv6_agent.flow_sample(&denied, 1, 0).unwrap();
    datagrams.extend(ipv6_agent.datagrams(7, &[last]));

    let frames: Vec<Vec<u8>> = datagrams
        .iter()
        .map(|datagram| udp_datagram(SFLOW_PORT, datagram))
        .collect();
    let packets = tshark(&write_pcap("sflow", &frames), "udp.port==6343,sflow");
    assert_eq!(packets.len(), datagrams.len());
    assert_clean(&packets);

    // Datagram headers.
    let (ipv4_packets, ipv6_packet) = packets.split_at(packets.len() - 1);
    let mut samples_seen = 0;
    for (index, packet) in ipv4_packets.iter().enumerate() {
        assert_eq!(one(packet, "sflow_245.version"), "5");
        assert_eq!(one(packet, "sflow_245.agenttype"), "1");
        assert_eq!(one(packet, "sflow_245.agent"), "192.0.2.10");
        assert_eq!(one(packet, "sflow_245.sub_agent_id"), "3");
        assert_eq!(
            one(packet, "sflow_245.sequence_number"),
            (index + 1).to_string()
        );
        let uptime = if index == 0 { "99" } else { "150" };
        assert_eq!(one(packet, "sflow_245.sysuptime"), uptime);
        samples_seen += one(packet, "sflow_245.numsamples")
            .parse::<usize>()
            .unwrap();
    }
    assert_eq!(samples_seen, first.len() + many.len());
    assert_eq!(one(&ipv6_packet[0], "sflow_245.agenttype"), "2");
    assert_eq!(one(&ipv6_packet[0], "sflow_245.agent.v6"), "2001:db8::a");

    // The first datagram's flow samples.
    // serde_json sorts object keys, so samples are found by interface,
    // not by position.
    let all_flows = objects_with(&packets[0], "sflow.flow_sample.sampling_rate");
    assert_eq!(all_flows.len(), 3);
    let flow_of = |ifindex: &str| -> &Value {
        let found: Vec<&&Value> = all_flows
            .iter()
            .filter(|flow| one(flow, "sflow.flow_sample.index") == ifindex)
            .collect();
        assert_eq!(found.len(), 1, "interface {ifindex}");
        found[0]
    };
    let flows = [flow_of("5"), flow_of("6"), flow_of("7")];
    let expected = [
        // (ifindex, rate, pool, drops, output format, output value)
        ("5", "256", "10000", "7", "1", "258"),
        ("6", "1", "20000", "0", "0", "0"),
        ("7", "1000", "30000", "0", "1", "261"),
    ];
    for (flow, expected) in flows.iter().zip(expected) {
        assert_eq!(one(flow, "sflow.flow_sample.index"), expected.0);
        assert_eq!(one(flow, "sflow.flow_sample.input_interface"), expected.0);
        assert_eq!(one(flow, "sflow.flow_sample.sampling_rate"), expected.1);
        assert_eq!(one(flow, "sflow.flow_sample.sample_pool"), expected.2);
        assert_eq!(one(flow, "sflow.flow_sample.dropped_packets"), expected.3);
        assert_eq!(
            one(flow, "sflow.flow_sample.output_interface_format"),
            expected.4
        );
        assert_eq!(
            one(flow, "sflow.flow_sample.output_interface_value"),
            expected.5
        );
        assert_eq!(one(flow, "sflow_245.header_protocol"), "1");
        assert_eq!(one(flow, "sflow_245.header.payload_stripped"), "4");
    }
    let ipv4 = flows[0];
    assert_eq!(one(ipv4, "sflow.flow_sample.sequence_number"), "1");
    assert_eq!(
        one(ipv4, "sflow_245.header.frame_length"),
        (tcp.len() + 4).to_string()
    );
    assert_eq!(
        one(ipv4, "sflow_245.header.sampled_header_length"),
        tcp.len().to_string()
    );
    assert_eq!(one(ipv4, "vlan.id"), "42");
    assert_eq!(one(ipv4, "ip.src"), client4.to_string());
    assert_eq!(one(ipv4, "ip.dst"), server4.to_string());
    assert_eq!(one(ipv4, "tcp.srcport"), "51000");
    assert_eq!(one(ipv4, "tcp.dstport"), "443");
    let ipv6 = flows[1];
    assert_eq!(
        one(ipv6, "sflow_245.header.frame_length"),
        (udp.len() + 4).to_string()
    );
    assert_eq!(one(ipv6, "sflow_245.header.sampled_header_length"), "128");
    assert_eq!(one(ipv6, "ipv6.src"), client6.to_string());
    assert_eq!(one(ipv6, "ipv6.dst"), server6.to_string());
    assert_eq!(one(ipv6, "udp.srcport"), "5353");
    assert_eq!(one(ipv6, "udp.dstport"), "53");
    let padded = flows[2];
    assert_eq!(one(padded, "sflow_245.header.sampled_header_length"), "67");
    assert_eq!(one(padded, "udp.srcport"), "4000");
    assert_eq!(one(padded, "udp.dstport"), "4001");

    // Per-source sequence numbers run on across datagrams.
    let mut interface_6: Vec<u32> = packets
        .iter()
        .flat_map(|packet| objects_with(packet, "sflow.flow_sample.sampling_rate"))
        .filter(|flow| one(flow, "sflow.flow_sample.index") == "6")
        .map(|flow| {
            one(flow, "sflow.flow_sample.sequence_number")
                .parse()
                .unwrap()
        })
        .collect();
    interface_6.sort();
    assert_eq!(interface_6, (1..=13).collect::<Vec<u32>>());

    // The counter sample.
    let counter = objects_with(&packets[0], "sflow_245.ifindex");
    assert_eq!(counter.len(), 1);
    let counter = counter[0];
    for (key, value) in [
        ("sflow_245.ifindex", "5"),
        ("sflow_245.iftype", "6"),
        ("sflow_245.ifspeed", "10000000000"),
        ("sflow_245.ifadmin_status", "1"),
        ("sflow_245.ifoper_status", "1"),
        ("sflow_245.ifinoct", "123456789012"),
        ("sflow_245.ifinpkt", "1000"),
        ("sflow_245.ifindisc", "3"),
        ("sflow_245.ifinerr", "2"),
        ("sflow_245.ifoutoct", "55"),
        ("sflow_245.ifoutpkt", "1"),
        ("sflow_245.ifinmcast", "4294967295"),
    ] {
        assert_eq!(one(counter, key), value, "{key}");
    }
    assert_eq!(
        one(&packets[0], "sflow.counters_sample.source_id_index"),
        "5"
    );
}

/// The IPFIX template the test expects, written from the IANA registry:
/// (element id, length).
const EXPECTED_IPV4_TEMPLATE: [(u16, u16); 14] = [
    (1, 8),
    (2, 8),
    (152, 8),
    (153, 8),
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (10, 4),
    (58, 2),
    (89, 1),
    (136, 1),
];

// Long: the messages built once, then every decoded field checked against
// the value encoded, template by template and record by record.
#[test]
fn ipfix_decodes_cleanly_with_the_encoded_values() {
    let (client4, server4, client6, server6) = addresses();
    let mut cache = FlowCache::new(Duration::from_secs(60), Duration::from_secs(15), 1000);
    // A denied TCP flow sampled 3 times (1 in 256), a passed UDP flow at
    // rate 1, a balanced flow ending with FIN, and enough small flows to
    // need several messages.
    for (offset, flags) in [(0, 0x02), (400, 0x10), (900, 0x18)] {
        let frame = ipv4_tcp_frame(client4, server4, (51000, 443), Some(42), flags);
        cache.add(&sample(
            &frame,
            5,
            256,
            Action::Drop,
            Reason::RuleDeny,
            EPOCH_MS + offset,
        ));
    }
    let udp = ipv6_udp_frame(client6, server6, (5353, 53), 400);
    cache.add(&sample(
        &udp,
        6,
        1,
        Action::Pass,
        Reason::Ipv6Udp,
        EPOCH_MS + 10,
    ));
    cache.add(&sample(
        &udp,
        6,
        1,
        Action::Pass,
        Reason::Ipv6Udp,
        EPOCH_MS + 20,
    ));
    let fin = ipv4_tcp_frame(client4, server4, (51001, 80), None, 0x11);
    cache.add(&sample(
        &fin,
        5,
        1,
        Action::Tx,
        Reason::LbForwarded,
        EPOCH_MS + 30,
    ));
    for port in 0..40u16 {
        let frame = ipv4_tcp_frame(client4, server4, (20000 + port, 80), None, 0x10);
        cache.add(&sample(
            &frame,
            9,
            1,
            Action::Drop,
            Reason::RateLimited,
            EPOCH_MS + 40,
        ));
    }
    let records = cache.expire(EPOCH_MS + 16_000);
    assert_eq!(records.len(), 43);
    // octetDeltaCount is IP octets (RFC 7012), as the IP header says: 40
    // (IPv4 and TCP headers), not the frame's 60 bytes with padding.
    let fin_record = records
        .iter()
        .find(|record| record.key.source_port == 51001)
        .expect("the FIN's record");
    assert_eq!((fin.len(), fin_record.bytes), (60, 40));

    let config = IpfixConfig {
        observation_domain: 77,
        max_message: 512,
        template_every_messages: 3,
        ..IpfixConfig::new(vec![])
    };
    let mut encoder = IpfixEncoder::new(&config);
    let export_time = (EPOCH_MS / 1000) as u32 + 16;
    let messages = encoder.messages(export_time, &records);
    assert!(messages.len() >= 4, "{} messages", messages.len());
    assert!(messages[0].has_templates);
    let frames: Vec<Vec<u8>> = messages
        .iter()
        .map(|message| udp_datagram(IPFIX_PORT, &message.bytes))
        .collect();
    let packets = tshark(&write_pcap("ipfix", &frames), "udp.port==4739,cflow");
    assert_eq!(packets.len(), messages.len());
    assert_clean(&packets);

    // Message headers: sequence = data records sent before the message,
    // the two sampling options records with the templates too.
    let mut sequence = 0;
    for (packet, message) in packets.iter().zip(&messages) {
        assert_eq!(one(packet, "cflow.version"), "10");
        assert_eq!(one(packet, "cflow.len"), message.bytes.len().to_string());
        assert_eq!(one(packet, "cflow.exporttime"), export_time.to_string());
        // The header's domain, and the sampling options records' scope.
        let domains = strings(packet, "cflow.od_id");
        assert!(domains.iter().all(|id| id == "77"), "{domains:?}");
        assert_eq!(one(packet, "cflow.sequence"), sequence.to_string());
        sequence += message.records + 2 * u32::from(message.has_templates);
    }

    // Templates.
    let templates = objects_with(&packets[0], "cflow.template_id");
    let ids: Vec<String> = templates
        .iter()
        .map(|template| one(template, "cflow.template_id"))
        .collect();
    // The flow templates, then the sampling options templates.
    assert_eq!(ids, ["256", "257", "258", "259"]);
    for (template, id) in templates.iter().zip(["256", "257"]) {
        assert_eq!(one(template, "cflow.template_id"), id);
        // serde_json sorts object keys ("Field (10/14)" before "Field
        // (2/14)"): put the fields back in order by their number.
        let mut fields: Vec<(usize, (u16, u16))> = template
            .as_object()
            .unwrap()
            .iter()
            .filter_map(|(name, field)| {
                let number = name
                    .strip_prefix("Field (")?
                    .split('/')
                    .next()?
                    .parse()
                    .ok()?;
                let kind = one(field, "cflow.template_ipfix_field_type").parse().ok()?;
                let length = one(field, "cflow.template_field_length").parse().ok()?;
                Some((number, (kind, length)))
            })
            .collect();
        fields.sort();
        let decoded: Vec<(u16, u16)> = fields.into_iter().map(|(_, field)| field).collect();
        let mut expected = EXPECTED_IPV4_TEMPLATE;
        if id == "257" {
            expected[4] = (27, 16);
            expected[5] = (28, 16);
        }
        assert_eq!(decoded, expected);
    }

    // Every record decoded, with the values encoded.
    let decoded: Vec<&Value> = packets
        .iter()
        .flat_map(|packet| objects_with(packet, "cflow.octets"))
        .collect();
    assert_eq!(decoded.len(), records.len());
    for record in &records {
        let port = record.key.source_port.to_string();
        let matching: Vec<&&Value> = decoded
            .iter()
            .filter(|flow| one(flow, "cflow.srcport") == port)
            .collect();
        assert_eq!(matching.len(), 1, "source port {port}");
        let flow = matching[0];
        let (source_key, destination_key) = match record.key.source {
            IpAddr::V4(_) => ("cflow.srcaddr", "cflow.dstaddr"),
            IpAddr::V6(_) => ("cflow.srcaddrv6", "cflow.dstaddrv6"),
        };
        assert_eq!(one(flow, source_key), record.key.source.to_string());
        assert_eq!(
            one(flow, destination_key),
            record.key.destination.to_string()
        );
        assert_eq!(
            one(flow, "cflow.dstport"),
            record.key.destination_port.to_string()
        );
        assert_eq!(one(flow, "cflow.protocol"), record.key.protocol.to_string());
        assert_eq!(one(flow, "cflow.octets"), record.bytes.to_string());
        assert_eq!(one(flow, "cflow.packets"), record.packets.to_string());
        assert_eq!(
            one(flow, "cflow.abstimestart"),
            tshark_time(record.first_ms)
        );
        assert_eq!(one(flow, "cflow.abstimeend"), tshark_time(record.last_ms));
        assert_eq!(
            one(flow, "cflow.inputint"),
            record.key.ingress_ifindex.to_string()
        );
        assert_eq!(
            one(flow, "cflow.vlanid"),
            record.key.vlan.unwrap_or(0).to_string()
        );
        assert_eq!(
            one(flow, "cflow.tcpflags"),
            format!("0x{:02x}", record.tcp_flags)
        );
        assert_eq!(
            one(flow, "cflow.flow_end_reason"),
            (record.end_reason as u8).to_string()
        );
        let status = record.forwarding_status >> 6;
        assert_eq!(one(flow, "cflow.forwarding_status"), status.to_string());
        let code_key = match status {
            1 => "cflow.forwarding_status_forward_code",
            2 => "cflow.forwarding_status_drop_code",
            _ => "cflow.forwarding_status_consume_code",
        };
        assert_eq!(
            one(flow, code_key),
            (record.forwarding_status & 0x3f).to_string()
        );
    }

    // The specific flows, as the cache built them.
    let denied = records
        .iter()
        .find(|record| record.key.source_port == 51000)
        .unwrap();
    assert_eq!((denied.packets, denied.bytes), (3 * 256, 3 * 256 * 40));
    assert_eq!(
        (denied.first_ms, denied.last_ms),
        (EPOCH_MS, EPOCH_MS + 900)
    );
    assert_eq!((denied.tcp_flags, denied.forwarding_status), (0x1a, 129));
    let balanced = records
        .iter()
        .find(|record| record.key.source_port == 51001)
        .unwrap();
    assert_eq!(
        (balanced.forwarding_status, balanced.end_reason as u8),
        (66, 3)
    );
    let passed = records
        .iter()
        .find(|record| record.key.source_port == 5353)
        .unwrap();
    assert_eq!(
        (passed.packets, passed.bytes, passed.forwarding_status),
        // IP octets: the frame less its 14-byte Ethernet header.
        (2, 2 * (udp.len() as u64 - 14), 64)
    );
}
