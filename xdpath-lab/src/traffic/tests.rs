//! Unit tests of the mix: every frame is classified as labelled, the
//! expected counters match the native pipeline's, ping sizes, and the
//! differences name each wrong counter.

use super::*;
use xdpath_core::stats::counter_index;
use xdpath_core::Counter;
use xdpath_core::{pipeline, InterfaceConfig, NativeTables, SlicePacket};

fn peers() -> Peers {
    Peers {
        source_mac: [2, 0, 0, 0, 0, 2],
        destination_mac: [2, 0, 0, 0, 0, 1],
        source_v4: Ipv4Addr::new(10, 199, 1, 2),
        destination_v4: Ipv4Addr::new(10, 199, 1, 1),
        source_v6: "fd00:199:1::2".parse().unwrap(),
        destination_v6: "fd00:199:1::1".parse().unwrap(),
    }
}

#[test]
fn the_pipeline_classifies_every_frame_as_labelled() {
    for frame in Mix::build(&peers()).frames {
        let mut tables = NativeTables::default();
        let outcome = pipeline::process(&SlicePacket::new(&frame.bytes), &mut tables);
        assert_eq!(outcome.reason, frame.reason, "{}", frame.name);
        assert!(
            frame.bytes.len() >= ETH,
            "{} is shorter than an Ethernet header",
            frame.name
        );
        assert_eq!(
            &frame.bytes[..6],
            &peers().destination_mac,
            "{}",
            frame.name
        );
    }
}

#[test]
fn expected_counters_match_the_native_pipeline_under_both_policies() {
    let mix = Mix::build(&peers());
    assert!(mix.malformed() >= 10);
    assert!(mix.len() > mix.malformed() + 10);
    for policy in [MalformedPolicy::Pass, MalformedPolicy::Drop] {
        let mut tables = NativeTables::new(InterfaceConfig::new(policy));
        for frame in &mix.frames {
            pipeline::process(&SlicePacket::new(&frame.bytes), &mut tables);
        }
        let expected = mix.expected(policy);
        assert_eq!(
            expected.differences(tables.counters()),
            Vec::<String>::new()
        );
        let dropped = if policy == MalformedPolicy::Drop {
            mix.malformed() as u64
        } else {
            0
        };
        assert_eq!(expected.packets_with(Action::Drop), dropped);
        assert_eq!(expected.packets(), mix.len() as u64);
    }
}

#[test]
fn ping_frames_have_the_usual_sizes() {
    let mut expected = Expected::default();
    expected.add_pings(false, 3, 56).add_pings(true, 2, 56);
    assert_eq!(
        expected.get(Action::Pass, Reason::Ipv4Icmp),
        Counter {
            packets: 3,
            bytes: 3 * 98
        }
    );
    assert_eq!(
        expected.get(Action::Pass, Reason::Ipv6Icmp),
        Counter {
            packets: 2,
            bytes: 2 * 118
        }
    );
}

#[test]
fn differences_name_each_wrong_counter() {
    let mut expected = Expected::default();
    expected.add(Action::Pass, Reason::Ipv4Tcp, 1, 54);
    let mut actual = expected.to_counters();
    assert!(expected.differences(&actual).is_empty());
    actual[counter_index(Action::Drop, Reason::TruncatedIpv4) as usize].packets = 1;
    let lines = expected.differences(&actual);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("drop truncated-ipv4"), "{lines:?}");
}
