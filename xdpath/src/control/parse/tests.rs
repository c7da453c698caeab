//! Unit tests of the value parsers: prefixes, ports, protocols, TCP flags
//! and durations, and their one-line errors.

use super::*;

#[test]
fn cidrs() {
    let cidr = parse_cidr("10.0.0.0/8").expect("valid");
    assert_eq!(cidr.to_string(), "10.0.0.0/8");
    assert_eq!(cidr.mapped_length(), 104);
    assert_eq!(
        parse_cidr("2001:db8::/32").expect("valid").to_string(),
        "2001:db8::/32"
    );
    assert_eq!(parse_cidr("192.0.2.1").expect("valid").length, 32);
    assert_eq!(
        parse_cidr("10.0.0.300/8").expect_err("bad").to_string(),
        "invalid CIDR \"10.0.0.300/8\": each IPv4 part must be a number 0-255 without leading zeros, four parts"
    );
    assert!(parse_cidr("10.0.0.0/33").is_err());
    assert!(parse_cidr("::/129").is_err());
    assert!(parse_cidr("10.0.0.0/").is_err());
    assert!(parse_cidr("hello").is_err());
    assert!(parse_cidr("").is_err());
    let any = parse_cidr("0.0.0.0/0").expect("valid");
    assert!(any.is_any() && any.ipv4);
    assert!(any.contains(&cidr));
    assert!(cidr.overlaps(&any));
    assert_eq!(Cidr::from_key(&cidr.key()), cidr);
    let v6 = parse_cidr("2001:db8::/48").expect("valid");
    assert_eq!(Cidr::from_key(&v6.key()), v6);
}

#[test]
fn ports_protocols_flags_durations() {
    assert_eq!(
        parse_port_range("80").expect("valid"),
        PortRange { low: 80, high: 80 }
    );
    assert_eq!(parse_port_range("1-1024").expect("valid").high, 1024);
    assert_eq!(
        parse_port_range("70000").expect_err("bad").to_string(),
        "port \"70000\" is out of range (0-65535)"
    );
    assert!(parse_port_range("90-80").is_err());
    for range in ["-1", "80-x", "1-70000"] {
        let error = parse_port_range(range).expect_err("a range that is not one");
        assert!(
            error.to_string().contains(&format!("\"{range}\"")),
            "{error}"
        );
    }
    assert_eq!(parse_protocol("TCP").expect("valid"), 6);
    assert_eq!(parse_protocol("47").expect("valid"), 47);
    assert_eq!(
        parse_protocol("xyz").expect_err("bad").to_string(),
        "unknown protocol \"xyz\" (expected tcp, udp, icmp, icmpv6 or 1-255)"
    );
    let flags = parse_tcp_flags("syn,!ack").expect("valid");
    assert_eq!((flags.mask, flags.value), (FLAG_SYN | FLAG_ACK, FLAG_SYN));
    assert_eq!(flags.to_string(), "syn,!ack");
    assert!(parse_tcp_flags("syn,syn").is_err());
    assert!(parse_tcp_flags("bogus").is_err());
    assert_eq!(parse_duration("10m").expect("valid"), 600);
    assert_eq!(parse_duration("2d").expect("valid"), 172_800);
    assert!(parse_duration("10y").is_err());
    assert!(parse_duration("0s").is_err());
    assert_eq!(
        parse_duration("3650d").expect("valid"),
        MAX_DURATION_SECONDS
    );
    assert!(parse_duration("3651d").is_err());
    assert!(parse_duration("99999999999999999999d").is_err());
}

#[test]
fn host_bits_and_leading_zeros_are_refused() {
    for (text, network) in [
        ("1.2.3.4/8", "1.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.0.2.1/24", "192.0.2.0/24"),
        ("0.0.0.1/0", "0.0.0.0/0"),
        ("2001:db8::1/32", "2001:db8::/32"),
        ("::1/0", "::/0"),
    ] {
        let error = parse_cidr(text).expect_err(text);
        assert_eq!(
            error.to_string(),
            format!(
                "invalid CIDR \"{text}\": host bits are set past /{}; did you mean {network}?",
                network.split('/').nth(1).unwrap_or_default()
            )
        );
        // What it suggests is itself accepted.
        assert_eq!(parse_cidr(network).expect(network).to_string(), network);
    }
    for text in ["10.0.0.0/08", "10.0.0.0/008", "::/00", "010.0.0.0/8"] {
        assert!(parse_cidr(text).is_err(), "{text} accepted");
    }
    assert_eq!(parse_cidr("0.0.0.0/0").expect("any").length, 0);
    assert_eq!(parse_cidr("1.2.3.4/32").expect("host").length, 32);
    assert_eq!(parse_cidr("1.2.3.4").expect("host").length, 32);
}

#[test]
fn port_errors_quote_the_whole_input() {
    for (text, message) in [
        (
            "-1",
            "invalid port \"-1\": expected a number 0-65535 or a range N-M",
        ),
        (
            "80-",
            "invalid port \"80-\": expected a number 0-65535 or a range N-M",
        ),
        (
            "",
            "invalid port \"\": expected a number 0-65535 or a range N-M",
        ),
        (
            "http",
            "invalid port \"http\": expected a number 0-65535 or a range N-M",
        ),
        (
            "80-70000",
            "invalid port range \"80-70000\": port \"70000\" is out of range (0-65535)",
        ),
    ] {
        assert_eq!(parse_port_range(text).expect_err(text).to_string(), message);
    }
    assert_eq!(parse_port_list(" , ").expect("empty list"), Vec::new());
}

#[test]
fn icmp_types() {
    let both = parse_icmp_type("3/4").expect("valid");
    assert_eq!((both.kind, both.code), (3, Some(4)));
    assert_eq!(both.range(), (0x0304, 0x0304));
    assert_eq!(both.to_string(), "3/4");
    let kind = parse_icmp_type("8").expect("valid");
    assert_eq!((kind.kind, kind.code), (8, None));
    assert_eq!(kind.range(), (0x0800, 0x08ff));
    assert_eq!(kind.to_string(), "8");
    assert_eq!(
        parse_icmp_type("255/255").expect("valid").range(),
        (0xffff, 0xffff)
    );
    assert_eq!(parse_icmp_type("0").expect("valid").range(), (0, 0xff));
    for bad in [
        "256",
        "3/256",
        "",
        "/4",
        "3/",
        "3/4/5",
        "-1",
        "+3",
        "x",
        "8 0",
        " 8",
        "08",
        "3/04",
        "99999999999",
    ] {
        let error = parse_icmp_type(bad).expect_err(bad);
        assert_eq!(
            error.to_string(),
            format!(
                "invalid ICMP type {}: expected a type 0-255 or type/code, e.g. 8 or 3/4",
                quote(bad)
            ),
        );
    }
}

#[test]
fn icmp_types_need_icmp_and_no_ports() {
    let echo = Some(parse_icmp_type("8").expect("valid"));
    assert!(check_icmp_type(echo, Some(protocol::ICMP), false).is_ok());
    assert!(check_icmp_type(echo, Some(protocol::ICMPV6), false).is_ok());
    assert!(check_icmp_type(None, Some(protocol::TCP), true).is_ok());
    assert_eq!(
        check_icmp_type(echo, Some(protocol::TCP), false)
            .expect_err("tcp")
            .to_string(),
        "ICMP type \"8\" needs protocol icmp or icmpv6 (--proto); the rule has protocol \"tcp\""
    );
    assert!(matches!(
        check_icmp_type(echo, None, false),
        Err(ParseError::IcmpTypeProtocol { protocol: None, .. })
    ));
    assert!(matches!(
        check_icmp_type(echo, Some(protocol::ICMP), true),
        Err(ParseError::IcmpTypeWithPorts { .. })
    ));
}

#[test]
fn protocol_zero_is_refused_as_it_means_any() {
    for text in ["0", "00"] {
        let error = parse_protocol(text).expect_err("0 is the wildcard");
        assert!(
            matches!(error, ParseError::ProtocolZero { .. }),
            "{text}: {error}"
        );
        assert!(
            error.to_string().contains("leave out the protocol"),
            "{error}"
        );
    }
    assert_eq!(parse_protocol("1").expect("icmp by number"), 1);
    assert_eq!(parse_protocol("255").expect("valid"), 255);
}

#[test]
fn flags_and_ports_need_a_protocol_that_has_them() {
    let tcp = Some(protocol::TCP);
    let flags = Some(parse_tcp_flags("syn").expect("valid"));
    check_tcp_flags(flags, tcp).expect("a TCP rule");
    check_tcp_flags(None, Some(protocol::UDP)).expect("no flags");
    let udp = check_tcp_flags(flags, Some(protocol::UDP)).expect_err("never matches");
    assert_eq!(
        udp.to_string(),
        "TCP flags \"syn\" need protocol tcp (--proto tcp); the rule has protocol \"udp\""
    );
    // Flags without a protocol: a rule of TCP, as it was always enforced.
    check_tcp_flags(flags, None).expect("flags alone");
    assert_eq!(protocol_with_tcp_flags(flags, None), tcp);
    assert_eq!(protocol_with_tcp_flags(None, None), None);

    let ports = Some(parse_port_range("80").expect("valid"));
    for protocol in [None, tcp, Some(protocol::UDP)] {
        check_ports(ports, protocol).expect("ports TCP and UDP have");
    }
    check_ports(None, Some(protocol::ICMP)).expect("no ports");
    let icmp = check_ports(ports, Some(protocol::ICMP)).expect_err("ICMP has none");
    assert!(icmp.to_string().contains("protocol \"icmp\""), "{icmp}");
    assert!(check_ports(ports, Some(47)).is_err());
}

#[test]
fn icmp_rules_must_be_of_their_prefixes_family() {
    let v4 = parse_cidr("192.0.2.0/24").expect("v4");
    let v6 = parse_cidr("2001:db8::/32").expect("v6");
    assert!(check_icmp_family(Some(protocol::ICMP), &[v4]).is_ok());
    assert!(check_icmp_family(Some(protocol::ICMPV6), &[v6]).is_ok());
    assert!(check_icmp_family(Some(protocol::TCP), &[v4, v6]).is_ok());
    assert!(check_icmp_family(None, &[v6]).is_ok());
    // Sources of both families match by the protocol's.
    assert!(check_icmp_family(Some(protocol::ICMP), &[v4, v6]).is_ok());
    let error = check_icmp_family(Some(protocol::ICMP), &[v6]).expect_err("icmp in IPv6");
    assert_eq!(
        error.to_string(),
        "protocol icmp is never carried by IPv6, and the rule's prefix 2001:db8::/32 is IPv6: use icmpv6 (or no --proto)"
    );
    assert!(check_icmp_family(Some(protocol::ICMPV6), &[v4]).is_err());
}
