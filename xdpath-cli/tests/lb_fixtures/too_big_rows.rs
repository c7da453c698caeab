//! Frames too big for the path to their backend once encapsulated (the
//! balancer's `--mtu` 1500 here; the device's MTU is the end-to-end
//! test's): answered with ICMP "fragmentation needed" or ICMPv6 "packet
//! too big" in both builds, byte for byte alike, each answer checked here
//! field by field with a checksum of the test's own; dropped when no
//! answer may go (no DF, an ICMP error); counted per VIP as `lb-too-big`.

use super::*;

/// A frame builder of this file, by IP length.
type Builder = fn(usize) -> Vec<u8>;

/// The balancer's `--mtu` in these rows.
const PATH_MTU: u16 = 1500;

/// RFC 1071 over `bytes` (an odd last byte padded): written here, apart
/// from the data path's checksum module, so that the answers are checked
/// by other code than wrote them.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A TCP segment of the IPv4 VIP's flow from port 41000, its IP packet
/// `ip_len` bytes long, DF as the builder sets it (on).
fn big4(ip_len: usize) -> Vec<u8> {
    FrameSpec::new(
        Network::V4(CLIENT4, VIP4),
        Transport::tcp(41000, 80, FLAG_ACK),
    )
    .with_payload(&vec![0x5a; ip_len - 40])
    .build()
}

/// The same over IPv6 to the GUE VIP, from port 41000.
fn big6(ip_len: usize) -> Vec<u8> {
    FrameSpec::new(
        Network::V6(client6(), vip6()),
        Transport::tcp(41000, 443, FLAG_ACK),
    )
    .with_payload(&vec![0xa5; ip_len - 60])
    .build()
}

/// The bytes the balancer puts in front of `frame`'s IP packet: run a
/// short frame of the same flow and compare lengths.
fn overhead(builds: &mut Builds, short: &[u8]) -> usize {
    let ran = builds.run("a short segment of the flow", short);
    assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbForwarded));
    ran.output.len() - short.len()
}

/// Checks an answer to `input` field by field.
fn check_answer(description: &str, input: &[u8], output: &[u8], mtu: u32) {
    // One 802.1Q tag or none: the L2 header is kept as it was.
    let l3 = if input[12..14] == [0x81, 0x00] {
        18
    } else {
        14
    };
    let (l2, output_l2) = (&input[..l3], &output[..l3]);
    assert_eq!(
        &output_l2[..6],
        &l2[6..12],
        "{description}: to the sender's MAC"
    );
    assert_eq!(&output_l2[6..12], &l2[..6], "{description}: from ours");
    assert_eq!(
        &output_l2[12..],
        &l2[12..],
        "{description}: tags, ethertype"
    );
    // From here on as if untagged.
    let (input, output) = (&input[l3 - 14..], &output[l3 - 14..]);
    let quote_len = (input.len() - 14).min(512);
    let ip = &output[14..];
    if input[12..14] == [0x08, 0x00] {
        assert_eq!(output.len(), 14 + 28 + quote_len, "{description}: length");
        assert_eq!(ip[0], 0x45, "{description}: version, IHL");
        assert_eq!(
            be16(&ip[2..4]) as usize,
            28 + quote_len,
            "{description}: total length"
        );
        assert_eq!((ip[8], ip[9]), (64, 1), "{description}: TTL, ICMP");
        assert_eq!(
            internet_checksum(&ip[..20]),
            0,
            "{description}: IP checksum"
        );
        assert_eq!(
            &ip[12..16],
            &input[14 + 16..14 + 20],
            "{description}: from the VIP"
        );
        assert_eq!(
            &ip[16..20],
            &input[14 + 12..14 + 16],
            "{description}: to the client"
        );
        let icmp = &ip[20..];
        assert_eq!(
            (icmp[0], icmp[1]),
            (3, 4),
            "{description}: fragmentation needed"
        );
        assert_eq!(
            u32::from(be16(&icmp[6..8])),
            mtu,
            "{description}: next-hop MTU"
        );
        assert_eq!(internet_checksum(icmp), 0, "{description}: ICMP checksum");
        assert_eq!(
            &icmp[8..],
            &input[14..14 + quote_len],
            "{description}: quote"
        );
    } else {
        assert_eq!(output.len(), 14 + 48 + quote_len, "{description}: length");
        assert_eq!(ip[0] >> 4, 6, "{description}: version");
        assert_eq!(
            be16(&ip[4..6]) as usize,
            8 + quote_len,
            "{description}: payload length"
        );
        assert_eq!((ip[6], ip[7]), (58, 64), "{description}: ICMPv6, hop limit");
        assert_eq!(
            &ip[8..24],
            &input[14 + 24..14 + 40],
            "{description}: from the VIP"
        );
        assert_eq!(
            &ip[24..40],
            &input[14 + 8..14 + 24],
            "{description}: to the client"
        );
        let icmp = &ip[40..];
        assert_eq!((icmp[0], icmp[1]), (2, 0), "{description}: packet too big");
        let announced = u32::from_be_bytes(icmp[4..8].try_into().expect("4 bytes"));
        assert_eq!(announced, mtu, "{description}: MTU");
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[8..40]);
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        pseudo.extend_from_slice(icmp);
        assert_eq!(
            internet_checksum(&pseudo),
            0,
            "{description}: ICMPv6 checksum"
        );
        assert_eq!(
            &icmp[8..],
            &input[14..14 + quote_len],
            "{description}: quote"
        );
    }
}

/// The VIP's `lb-too-big` count, equal in both builds.
fn too_big_count(builds: &mut Builds, frame: &[u8]) -> u64 {
    let vip = vip_of(&tuple_of(frame)).index;
    let slot = vip_drop_index(vip, Reason::LbTooBig).expect("a VIP's slot");
    builds.snapshot("too big").drops[slot as usize]
}

#[test]
fn frames_too_big_for_the_path_are_answered_or_dropped() {
    xdpath_lab::needs_root!();
    let mut builds = Builds::balancer(maglev([1, 1, 1]));
    let mut compiled = state(0, maglev([1, 1, 1]));
    compiled.config.mtu = PATH_MTU;
    builds.install(&compiled);

    let overhead4 = overhead(&mut builds, &big4(100));
    let fits = 1500 - overhead4;
    let ran = builds.run("an IPv4 packet that fits once encapsulated", &big4(fits));
    assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbForwarded));
    assert_eq!(ran.output.len(), 14 + 1500);

    let frame = big4(fits + 1);
    let before = too_big_count(&mut builds, &frame);
    let ran = builds.run("an IPv4 packet one byte too big, DF set", &frame);
    assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbTooBig));
    check_answer("IPv4, DF", &frame, &ran.output, fits as u32);
    assert_eq!(too_big_count(&mut builds, &frame), before + 1);

    let mut no_df = big4(1500);
    no_df[14 + 6] = 0;
    no_df[14 + 10..14 + 12].fill(0);
    let sum = internet_checksum(&no_df[14..34]);
    no_df[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    let ran = builds.run("an IPv4 packet too big without DF", &no_df);
    assert_eq!((ran.action, ran.reason), (Action::Drop, Reason::LbTooBig));
    assert_eq!(too_big_count(&mut builds, &frame), before + 2);

    let overhead6 = overhead(&mut builds, &big6(100));
    let fits6 = 1500 - overhead6;
    let ran = builds.run("an IPv6 packet that fits once encapsulated", &big6(fits6));
    assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbForwarded));
    let frame = big6(1500);
    let ran = builds.run("a full-size IPv6 packet", &frame);
    assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbTooBig));
    check_answer("IPv6", &frame, &ran.output, fits6 as u32);

    // At the floors: 552 (IPv4) and 1280 (IPv6) announced are answered,
    // one less is dropped.
    let floors: [(Builder, usize, usize, bool); 4] = [
        (big4, overhead4, 552, true),
        (big4, overhead4, 551, false),
        (big6, overhead6, 1280, true),
        (big6, overhead6, 1279, false),
    ];
    for (big, overhead, announced, answered) in floors {
        let mut compiled = state(0, maglev([1, 1, 1]));
        compiled.config.mtu = (announced + overhead) as u16;
        builds.install(&compiled);
        let frame = big(announced + 1);
        let ran = builds.run("a packet one byte over, at the floor", &frame);
        if answered {
            assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbTooBig));
            check_answer("at the floor", &frame, &ran.output, announced as u32);
        } else {
            assert_eq!((ran.action, ran.reason), (Action::Drop, Reason::LbTooBig));
        }
    }

    // A path of 700 bytes.
    let mut compiled = state(0, maglev([1, 1, 1]));
    compiled.config.mtu = 700;
    builds.install(&compiled);
    let frame = big4(701);
    let ran = builds.run("a 701-byte packet over a 700-byte path", &frame);
    assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbTooBig));
    check_answer(
        "a 700-byte path",
        &frame,
        &ran.output,
        700 - overhead4 as u32,
    );

    // With a VLAN tag: kept, the answer behind it.
    let tagged = FrameSpec::new(
        Network::V4(CLIENT4, VIP4),
        Transport::tcp(41000, 80, FLAG_ACK),
    )
    .with_vlans(&[7])
    .with_payload(&[0x5a; 800])
    .build();
    let ran = builds.run("a tagged packet over a 700-byte path", &tagged);
    assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbTooBig));
    check_answer("tagged", &tagged, &ran.output, 700 - overhead4 as u32);

    // Sent to a link-layer broadcast: no answer (RFC 1122 §3.2.2).
    let mut broadcast = big4(800);
    broadcast[..6].fill(0xff);
    let ran = builds.run("a too-big packet sent to ff:ff:ff:ff:ff:ff", &broadcast);
    assert_eq!((ran.action, ran.reason), (Action::Drop, Reason::LbTooBig));

    // An MTU an IPv6 sender would not take (below 1280): dropped, not
    // answered (the control plane refuses such an --mtu with IPv6 VIPs).
    compiled.config.mtu = 1300;
    builds.install(&compiled);
    let ran = builds.run("IPv6 over a 1300-byte path", &big6(1400));
    assert_eq!((ran.action, ran.reason), (Action::Drop, Reason::LbTooBig));
    // And IPv4 announced below 552 (a 560-byte path, IPIP: 540).
    compiled.config.mtu = 560;
    builds.install(&compiled);
    let ran = builds.run("IPv4 over a 560-byte path", &big4(600));
    assert_eq!((ran.action, ran.reason), (Action::Drop, Reason::LbTooBig));

    // An ICMP error never gets one (RFC 1122): a frag-needed quoting the
    // flow, padded past the path's MTU.
    let mut quoted = reply(
        Network::V4(VIP4, CLIENT4),
        Transport::tcp(80, 41000, FLAG_ACK),
    );
    quoted.resize(700, 0);
    let ran = builds.run("a too-big ICMP error", &icmp4(VIP4, 3, 4, &quoted));
    assert_eq!((ran.action, ran.reason), (Action::Drop, Reason::LbTooBig));

    // IPv6 fragments to the source-hashed all-ports VIP: the first is
    // answered (its sender fragments smaller), a later one dropped.
    compiled.config.mtu = 1400;
    builds.install(&compiled);
    let mut udp = Vec::new();
    udp.extend_from_slice(&5000u16.to_be_bytes());
    udp.extend_from_slice(&5353u16.to_be_bytes());
    udp.extend_from_slice(&(8u16 + 1400).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&[0x77; 1400]);
    let network = Network::V6(client6(), vip6_all());
    let fragment_overhead = overhead(&mut builds, &fragment6(network, 17, 0, true, &udp[..64]));
    let first = fragment6(network, 17, 0, true, &udp);
    let ran = builds.run("a big first IPv6 fragment", &first);
    assert_eq!((ran.action, ran.reason), (Action::Tx, Reason::LbTooBig));
    let announced = 1400 - fragment_overhead as u32;
    check_answer("a first IPv6 fragment", &first, &ran.output, announced);
    let later = fragment6(network, 17, 200, false, &[0x77; 1400]);
    let ran = builds.run("a big later IPv6 fragment", &later);
    assert_eq!((ran.action, ran.reason), (Action::Drop, Reason::LbTooBig));
}
