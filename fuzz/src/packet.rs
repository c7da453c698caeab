//! Frames: the parser alone, and the native pipeline with every stage on.

use std::sync::OnceLock;

use xdpath_core::wire::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use xdpath_core::{
    pipeline, Action, FrameBuffer, InterfaceConfig, MalformedPolicy, NativeTables, Reason,
    SlicePacket,
};
use xdpath_testing::differential::scenarios::{native_tables, scenarios};

/// `xdpath_core::parse` on any bytes: no panic; a parsed frame's offsets
/// lie inside it in order and its class matches its EtherType; a refused
/// frame has a malformed-frame reason; the stateless pipeline counts the
/// frame once, dropping it exactly when it is malformed and the policy
/// says drop.
pub fn packet(data: &[u8]) {
    let frame = SlicePacket::new(data);
    let reason = match xdpath_core::parse(&frame) {
        Ok(parsed) => {
            let (l3, l4) = (usize::from(parsed.l3_offset), usize::from(parsed.l4_offset));
            let (payload, end) = (
                usize::from(parsed.payload_offset),
                usize::from(parsed.ip_end),
            );
            assert!(l3 >= 14 && end <= data.len(), "{parsed:?}");
            assert!(!parsed.class.is_malformed(), "{parsed:?}");
            match parsed.key.ethertype {
                ETHERTYPE_IPV4 => assert_eq!(parsed.key.ip_version, 4, "{parsed:?}"),
                ETHERTYPE_IPV6 => assert_eq!(parsed.key.ip_version, 6, "{parsed:?}"),
                _ => assert_eq!(parsed.class, Reason::NonIp, "{parsed:?}"),
            }
            if l4 != 0 {
                assert!(l4 >= l3 + 20 && l4 <= end, "{parsed:?}");
                assert!(payload >= l4 && payload <= end, "{parsed:?}");
            }
            parsed.class
        }
        Err(reason) => {
            assert!(reason.is_malformed(), "refused with {reason:?}");
            reason
        }
    };
    for policy in [MalformedPolicy::Pass, MalformedPolicy::Drop] {
        let mut tables = NativeTables::new(InterfaceConfig::new(policy));
        let outcome = pipeline::process(&frame, &mut tables);
        assert_eq!(outcome.reason, reason);
        let dropped = policy == MalformedPolicy::Drop && reason.is_malformed();
        assert_eq!(outcome.action == Action::Drop, dropped, "{outcome:?}");
        let counted: u64 = tables
            .counters()
            .iter()
            .map(|counter| counter.packets)
            .sum();
        assert_eq!(counted, 1);
    }
}

/// Native tables with each state of the differential fuzz (rules,
/// blocklist, limits, guards, monitor mode, balancer, decapsulation).
fn states() -> &'static [NativeTables] {
    static STATES: OnceLock<Vec<NativeTables>> = OnceLock::new();
    STATES.get_or_init(|| {
        scenarios()
            .expect("the scenarios build")
            .iter()
            .map(|scenario| native_tables(scenario).expect("the scenarios install"))
            .collect()
    })
}

/// The whole native pipeline (parse, filter, balancer or decapsulation)
/// on any bytes, under each state, twice (the second time the state the
/// first left: a connection-table hit, a spent token): no panic, never
/// `XDP_ABORTED`, one count per frame, a sent frame still an Ethernet
/// frame that fits its buffer.
pub fn pipeline(data: &[u8]) {
    for pristine in states() {
        let mut tables = pristine.clone();
        for round in 1..=2u64 {
            let mut buffer = FrameBuffer::new(data);
            let verdict = pipeline::process_frame(&mut buffer, &mut tables);
            let outcome = verdict.outcome;
            assert_ne!(outcome.action, Action::Aborted);
            let counted: u64 = tables
                .counters()
                .iter()
                .map(|counter| counter.packets)
                .sum();
            assert_eq!(counted, round, "{outcome:?}");
            if outcome.action == Action::Tx {
                let sent = buffer.bytes().len();
                assert!(sent >= 14, "{outcome:?}: {sent} bytes");
                assert!(sent <= data.len() + xdpath_core::packet::FRAME_HEADROOM);
            }
        }
    }
}
