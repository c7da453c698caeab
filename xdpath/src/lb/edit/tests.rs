//! Unit tests of the balancer edits: VIP, address and MAC parsing, which
//! addresses may be backends, refused changes, slots and generations.

use super::*;

#[test]
fn a_vip_sample_rate_above_the_largest_is_refused() {
    let mut state = LbState::default();
    let id = parse_vip("203.0.113.10:80/tcp").unwrap();
    let too_high = VipOptions {
        sample_rate: crate::observe::MAX_SAMPLE_RATE + 1,
        ..options()
    };
    let error = add_vip(&mut state, id, too_high).unwrap_err();
    assert!(error.to_string().contains("above the largest"), "{error}");
    assert!(state.vips.is_empty(), "nothing added");
    add_vip(
        &mut state,
        id,
        VipOptions {
            sample_rate: 100,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(state.vip(&id).map(|vip| vip.sample_rate), Some(100));
    let error = set_options(&mut state, &id, &too_high).unwrap_err();
    assert!(error.to_string().contains("above the largest"), "{error}");
    assert_eq!(
        state.vip(&id).map(|vip| vip.sample_rate),
        Some(100),
        "unchanged"
    );
}

fn options() -> VipOptions {
    VipOptions {
        encap: Encap::Ipip,
        gue_port: None,
        source_hash: false,
        no_conntrack: false,
        ring_size: None,
        sample_rate: 0,
    }
}

#[test]
fn vips_parse_and_print_back() {
    for text in [
        "203.0.113.10:80/tcp",
        "[2001:db8::10]:443/udp",
        "203.0.113.10:*/udp",
    ] {
        let vip = parse_vip(text).expect(text);
        assert_eq!(vip.to_string(), text);
    }
    assert_eq!(parse_vip("203.0.113.10:0/TCP").expect("0").port, 0);
    for bad in [
        "203.0.113.10:80",
        "203.0.113.10/tcp",
        "2001:db8::10:80/tcp",
        "[2001:db8::10:80/tcp",
        "203.0.113.10:80/icmp",
        "203.0.113.10:65536/tcp",
        "0.0.0.0:80/tcp",
        "224.0.0.1:80/udp",
        "255.255.255.255:80/tcp",
        "[::ffff:255.255.255.255]:80/tcp",
        "[ff02::1]:80/udp",
        "[::]:80/tcp",
        "example.com:80/tcp",
    ] {
        assert!(parse_vip(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn only_other_hosts_unicast_addresses_are_backends() {
    let mut state = LbState::default();
    let vip = parse_vip("203.0.113.10:80/tcp").expect("vip");
    add_vip(&mut state, vip, options()).expect("add");
    let before = state.clone();
    for text in [
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "::ffff:127.0.0.1",
        "255.255.255.255",
        "::ffff:255.255.255.255",
        "0.0.0.0",
        "::",
        "224.0.0.5",
        "ff02::1",
        "169.254.1.1",
        "fe80::1",
        "240.0.0.1",
        "255.255.255.254",
        "::ffff:203.0.113.10",
    ] {
        let refused = parse_address(text)
            .and_then(|address| add_backend(&mut state, &vip, address, 1))
            .expect_err(text);
        assert!(
            matches!(refused, LbError::Address { .. }),
            "{text}: {refused}"
        );
        assert!(refused
            .to_string()
            .starts_with("invalid backend address \""));
    }
    assert_eq!(state, before, "a refused backend changes nothing");
    for text in ["10.0.0.1", "2001:db8::1", "192.0.2.255"] {
        let address = parse_address(text).expect(text);
        add_backend(&mut state, &vip, address, 1).expect(text);
    }
}

#[test]
fn macs_parse() {
    assert_eq!(
        parse_mac("02:00:5e:0A:0b:ff").expect("mac"),
        [2, 0, 0x5e, 10, 11, 0xff]
    );
    assert_eq!(format_mac([2, 0, 0x5e, 10, 11, 0xff]), "02:00:5e:0a:0b:ff");
    for bad in [
        "02:00:00:00:00",
        "02:00:00:00:00:01:02",
        "01:00:5e:00:00:01",
        "00:00:00:00:00:00",
        "zz:00:00:00:00:01",
        "002:00:00:00:00:01",
    ] {
        assert!(parse_mac(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn refused_changes_leave_the_state_alone() {
    let mut state = LbState::default();
    let vip = parse_vip("203.0.113.10:80/tcp").expect("vip");
    add_vip(&mut state, vip, options()).expect("add");
    let backend: IpAddr = "10.0.0.1".parse().expect("address");
    add_backend(&mut state, &vip, backend, 5).expect("backend");
    let before = state.clone();
    let unknown = parse_vip("203.0.113.11:80/tcp").expect("vip");
    assert!(matches!(
        add_vip(&mut state, vip, options()),
        Err(LbError::VipExists { .. })
    ));
    assert!(matches!(
        add_backend(&mut state, &unknown, backend, 1),
        Err(LbError::NoSuchVip { .. })
    ));
    assert!(matches!(
        add_backend(&mut state, &vip, backend, 1),
        Err(LbError::BackendExists { .. })
    ));
    let other: IpAddr = "10.0.0.2".parse().expect("address");
    assert!(matches!(
        add_backend(&mut state, &vip, other, 1001),
        Err(LbError::Weight { weight: 1001 })
    ));
    assert!(matches!(
        set_weight(&mut state, &vip, backend, u64::from(u32::MAX) + 1),
        Err(LbError::Weight { .. })
    ));
    assert!(matches!(
        del_backend(&mut state, &vip, other),
        Err(LbError::NoSuchBackend { .. })
    ));
    let gue = VipOptions {
        encap: Encap::Gue,
        ..options()
    };
    assert!(add_vip(&mut state, unknown, gue).is_err());
    let stray_port = VipOptions {
        gue_port: Some(6080),
        ..options()
    };
    assert!(add_vip(&mut state, unknown, stray_port).is_err());
    let wrong_family = ConfigChange {
        source_v4: Some("2001:db8::/64".into()),
        ..ConfigChange::default()
    };
    assert!(configure(&mut state, &wrong_family).is_err());
    let mut flags = options();
    assert!(parse_flags("source-hash,bogus", &mut flags).is_err());
    assert_eq!(state, before);
}

#[test]
fn slots_and_generations_are_fresh() {
    let mut state = LbState::default();
    let first = parse_vip("203.0.113.10:80/tcp").expect("vip");
    let second = parse_vip("203.0.113.10:443/tcp").expect("vip");
    add_vip(&mut state, first, options()).expect("add");
    add_vip(&mut state, second, options()).expect("add");
    let a: IpAddr = "10.0.0.1".parse().expect("a");
    let b: IpAddr = "10.0.0.2".parse().expect("b");
    add_backend(&mut state, &first, a, 1).expect("a");
    add_backend(&mut state, &second, a, 1).expect("a again");
    del_backend(&mut state, &first, a).expect("del");
    add_backend(&mut state, &first, b, 1).expect("b");
    let reused = state.vip(&first).and_then(|vip| vip.backend(b)).expect("b");
    // Slot 0 is reused, with a generation the old owner never had.
    assert_eq!(reused.index, 0);
    assert_eq!(reused.generation, 2);
    del_vip(&mut state, &first).expect("del vip");
    add_vip(&mut state, first, options()).expect("re-add");
    assert_eq!(state.vip(&first).map(|vip| vip.slot), Some(0));
}

#[test]
fn a_backend_going_down_takes_a_new_generation() {
    let mut state = LbState::default();
    let vip = parse_vip("203.0.113.10:80/tcp").expect("vip");
    add_vip(&mut state, vip, options()).expect("add");
    let a: IpAddr = "10.0.0.1".parse().expect("a");
    add_backend(&mut state, &vip, a, 1).expect("a");
    let generation = |state: &LbState| {
        state
            .vip(&vip)
            .and_then(|spec| spec.backend(a))
            .map(|backend| (backend.generation, backend.down))
            .expect("backend")
    };
    assert_eq!(generation(&state), (0, false));
    // Down: its connection-table entries go stale with the old generation.
    assert!(set_down(&mut state, &vip, a, true).expect("down"));
    assert_eq!(generation(&state), (1, true));
    // Down again changes nothing; up keeps the generation (flows placed
    // elsewhere meanwhile stay where they are).
    assert!(!set_down(&mut state, &vip, a, true).expect("down again"));
    assert!(set_down(&mut state, &vip, a, false).expect("up"));
    assert_eq!(generation(&state), (1, false));
    assert_eq!(state.next_generation, 2);
}

/// A check that needs a port (tcp, http, udp) on an all-ports VIP must
/// name one: refused at set time with the prober's reason, nothing
/// changed (it used to be accepted, then failed every backend). Ping needs
/// none, and a port given makes the others fine.
#[test]
fn a_portless_check_of_an_all_ports_vip_is_refused() {
    use crate::api::requests::HealthArgs;
    let mut before = LbState::default();
    let id = parse_vip("203.0.113.10:*/tcp").unwrap();
    add_vip(&mut before, id, options()).unwrap();
    for kind in ["tcp", "http", "udp"] {
        let request = HealthArgs::new(id.to_string(), kind.into());
        let mut after = before.clone();
        set_health(&mut after, &id, health_check(&request).unwrap()).unwrap();
        let error = refuse_new_portless_checks(&before, &after).unwrap_err();
        assert!(
            matches!(error, LbError::PortlessCheck { vip, .. } if vip == id),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(
                "no port to check (an all-ports VIP needs a check port) (give one with --port)"
            ),
            "{error}"
        );
        // One saved before is not refused again (a config sent unchanged).
        assert!(refuse_new_portless_checks(&after, &after).is_ok());
    }
    let mut after = before.clone();
    let ping = health_check(&HealthArgs::new(id.to_string(), "ping".into())).unwrap();
    set_health(&mut after, &id, ping).unwrap();
    assert!(refuse_new_portless_checks(&before, &after).is_ok());
    let with_port = HealthArgs {
        port: 8080,
        ..HealthArgs::new(id.to_string(), "http".into())
    };
    set_health(&mut after, &id, health_check(&with_port).unwrap()).unwrap();
    let port_vip = parse_vip("203.0.113.10:80/tcp").unwrap();
    add_vip(&mut after, port_vip, options()).unwrap();
    let tcp = health_check(&HealthArgs::new(port_vip.to_string(), "tcp".into())).unwrap();
    set_health(&mut after, &port_vip, tcp).unwrap();
    assert!(refuse_new_portless_checks(&before, &after).is_ok());
}

/// A table of size 7 holds 3 weighted backends. With one of 3 down for
/// failing its check, a 4th was accepted (the table's check counts the
/// backends in it), and the one down could then never come back (hostile
/// lb F10): the 4th is refused. The health checker's own flips of a state
/// saved with too many stay possible; raising the excess is not.
#[test]
fn a_pool_too_big_once_every_backend_is_up_is_refused() {
    let mut before = LbState::default();
    let id = parse_vip("203.0.113.10:8090/tcp").unwrap();
    let ring = VipOptions {
        ring_size: Some(7),
        ..options()
    };
    add_vip(&mut before, id, ring).unwrap();
    for host in ["10.0.0.11", "10.0.0.12", "10.0.0.13"] {
        add_backend(&mut before, &id, host.parse().unwrap(), 1).unwrap();
    }
    set_down(&mut before, &id, "10.0.0.12".parse().unwrap(), true).unwrap();
    refuse_overfull_tables(&before, &before).unwrap();
    let mut after = before.clone();
    add_backend(&mut after, &id, "10.0.0.3".parse().unwrap(), 1).unwrap();
    let error = refuse_overfull_tables(&before, &after).unwrap_err();
    assert!(
        matches!(
            error,
            LbError::Overfull {
                backends: 4,
                size: 7,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("4 weighted backends for table size 7"),
        "{error}"
    );
    // Drained (weight 0), the 4th takes no slot: fine.
    let mut drained = before.clone();
    add_backend(&mut drained, &id, "10.0.0.3".parse().unwrap(), 0).unwrap();
    refuse_overfull_tables(&before, &drained).unwrap();
    // A state saved with 4: the checker may still bring one back or take
    // one out; a 5th is refused.
    let mut flipped = after.clone();
    set_down(&mut flipped, &id, "10.0.0.12".parse().unwrap(), false).unwrap();
    refuse_overfull_tables(&after, &flipped).unwrap();
    let mut fifth = after.clone();
    add_backend(&mut fifth, &id, "10.0.0.4".parse().unwrap(), 1).unwrap();
    refuse_overfull_tables(&after, &fifth).unwrap_err();
}

#[test]
fn the_path_mtu_takes_zero_or_600_to_65535_and_nothing_else() {
    let mut state = LbState::default();
    let mtu = |mtu| ConfigChange {
        mtu: Some(mtu),
        ..ConfigChange::default()
    };
    for refused in [1, 575, 599, 65_536, u32::MAX] {
        let error = configure(&mut state, &mtu(refused)).expect_err("out of range");
        assert!(
            error
                .to_string()
                .contains(&format!("--mtu {refused} is out of range")),
            "{error}"
        );
        assert_eq!(state, LbState::default(), "a refused MTU changes nothing");
    }
    for (taken, kept) in [(600, 600), (1500, 1500), (65_535, 65_535), (0, 0)] {
        configure(&mut state, &mtu(taken)).expect("in range");
        assert_eq!(state.settings.mtu, kept);
    }
    // An IPv6 VIP needs room for its clients' 1280-byte packets: neither
    // order gets it below that.
    configure(&mut state, &mtu(1000)).expect("no IPv6 VIP yet");
    let v6 = parse_vip("[2001:db8::10]:443/tcp").expect("vip");
    let error = add_vip(&mut state, v6, options()).expect_err("1000 is too small");
    assert!(
        error
            .to_string()
            .contains("below 1328, the least IPv6 VIP [2001:db8::10]:443/tcp needs"),
        "{error}"
    );
    configure(&mut state, &mtu(1328)).expect("enough");
    add_vip(&mut state, v6, options()).expect("1328 is enough");
    let before = state.clone();
    let error = configure(&mut state, &mtu(1327)).expect_err("an IPv6 VIP");
    assert!(
        error
            .to_string()
            .contains("path MTU 1327 (lb config --mtu) is below 1328"),
        "{error}"
    );
    assert_eq!(state, before, "a refused MTU changes nothing");
    // One saved before the bounds (or sent again unchanged) is not checked
    // again.
    state.settings.mtu = 1000;
    configure(&mut state, &mtu(1000)).expect("unchanged");
    configure(&mut state, &mtu(0)).expect("the device's alone");
}
