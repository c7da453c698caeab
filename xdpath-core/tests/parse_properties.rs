//! Properties of the parser over random input: it never panics, it reads
//! back what the builder wrote, and cutting a frame short never yields a
//! wrong success.

use proptest::prelude::*;
use xdpath_core::build::{FrameSpec, Network, Transport};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::wire::protocol;
use xdpath_core::{
    parse, pipeline, Action, InterfaceConfig, MalformedPolicy, NativeTables, Reason, SlicePacket,
};

fn network() -> impl Strategy<Value = Network> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| Network::V4(s, d)),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| Network::V6(s, d)),
    ]
}

fn transport() -> impl Strategy<Value = Transport> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u8>()).prop_map(|(s, d, f)| Transport::Tcp {
            source_port: s,
            destination_port: d,
            flags: f
        }),
        (any::<u16>(), any::<u16>()).prop_map(|(s, d)| Transport::Udp {
            source_port: s,
            destination_port: d
        }),
        Just(Transport::EchoRequest),
        (any::<u8>(), any::<u8>()).prop_map(|(kind, code)| Transport::Icmp { kind, code }),
        // Protocols with no header of their own; never an extension header.
        prop_oneof![Just(47u8), Just(50u8), Just(89u8), Just(132u8)].prop_map(Transport::Other),
    ]
}

fn spec() -> impl Strategy<Value = FrameSpec> {
    (
        network(),
        transport(),
        prop::collection::vec(0u16..4096, 0..=2),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(network, transport, vlans, payload)| {
            FrameSpec::new(network, transport)
                .with_vlans(&vlans)
                .with_payload(&payload)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1600)) {
        let mut tables = NativeTables::new(InterfaceConfig::new(MalformedPolicy::Drop));
        let outcome = pipeline::process(&SlicePacket::new(&bytes), &mut tables);
        // Only malformed frames may be dropped, and every frame is counted once.
        prop_assert_eq!(outcome.action == Action::Drop, outcome.reason.is_malformed());
        prop_assert_eq!(tables.counter(outcome.action, outcome.reason).packets, 1);
    }

    #[test]
    fn random_bytes_behind_a_valid_ethertype_never_panic(
        ethertype in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), Just(0x88a8)],
        rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&ethertype.to_be_bytes());
        frame.extend_from_slice(&rest);
        let _ = parse(&SlicePacket::new(&frame));
    }

    #[test]
    fn built_frames_parse_back(spec in spec()) {
        let frame = spec.build();
        let parsed = parse(&SlicePacket::new(&frame)).map_err(|reason| TestCaseError::fail(format!("{reason:?}")))?;
        prop_assert_eq!(usize::from(parsed.key.vlan_count), spec.vlans.len().min(2));
        if let Some(&outer) = spec.vlans.first() {
            prop_assert_eq!(parsed.key.vlan_outer, outer);
        }
        let (source, destination) = match spec.network {
            Network::V4(s, d) => (ipv4_mapped(s), ipv4_mapped(d)),
            Network::V6(s, d) => (s, d),
        };
        prop_assert_eq!(parsed.key.source, source);
        prop_assert_eq!(parsed.key.destination, destination);
        match spec.transport {
            Transport::Tcp { source_port, destination_port, flags } => {
                prop_assert_eq!(parsed.key.protocol, protocol::TCP);
                prop_assert_eq!((parsed.key.source_port, parsed.key.destination_port), (source_port, destination_port));
                prop_assert_eq!(parsed.key.tcp_flags, flags);
            }
            Transport::Udp { source_port, destination_port } => {
                prop_assert_eq!(parsed.key.protocol, protocol::UDP);
                prop_assert_eq!((parsed.key.source_port, parsed.key.destination_port), (source_port, destination_port));
            }
            Transport::EchoRequest => {
                prop_assert!(matches!(parsed.class, Reason::Ipv4Icmp | Reason::Ipv6Icmp));
            }
            Transport::Icmp { kind, code } => {
                prop_assert!(matches!(parsed.class, Reason::Ipv4Icmp | Reason::Ipv6Icmp));
                prop_assert_eq!(parsed.key.destination_port, u16::from(kind) << 8 | u16::from(code));
            }
            Transport::Other(number) => {
                prop_assert_eq!(parsed.key.protocol, number);
                prop_assert!(matches!(parsed.class, Reason::Ipv4Other | Reason::Ipv6Other));
            }
        }
        prop_assert_eq!(usize::from(parsed.ip_end), frame.len());
    }

    #[test]
    fn cut_short_frames_are_malformed(spec in spec(), cut in 1usize..200) {
        let frame = spec.build();
        let keep = frame.len().saturating_sub(cut);
        // Cutting into headers or into the IP payload must be reported, not
        // parsed as something else.
        if let Ok(parsed) = parse(&SlicePacket::new(&frame[..keep])) {
            prop_assert!(false, "a frame cut from {} to {} bytes parsed as {:?}", frame.len(), keep, parsed.class);
        }
    }
}
