//! TCP frames to the protected server, and the checks of its cookie
//! SYN-ACK and of a full handshake through the cookie stage.

use super::*;

#[derive(Clone, Copy)]
pub(crate) enum Net {
    V4,
    V6,
}

/// A TCP segment from the client to the server in an Ethernet frame.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tcp_frame(
    net: Net,
    vlans: &[u16],
    flags: u8,
    seq: u32,
    ack: u32,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&CLIENT_PORT.to_be_bytes());
    tcp.extend_from_slice(&SERVER_PORT.to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(((20 + options.len()) / 4) as u8 * 16);
    tcp.push(flags);
    tcp.extend_from_slice(&64_240u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]);
    tcp.extend_from_slice(options);
    tcp.extend_from_slice(payload);
    let (ip, pseudo) = match net {
        Net::V4 => {
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 1, 0x40, 0, 63, 6, 0, 0]);
            ip.extend_from_slice(&CLIENT4);
            ip.extend_from_slice(&SERVER4);
            let checksum = checksum::of(&ip);
            ip[10..12].copy_from_slice(&checksum.to_be_bytes());
            (ip, pseudo_header(&CLIENT4, &SERVER4, tcp.len()))
        }
        Net::V6 => {
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            ip.extend_from_slice(&[6, 63]);
            ip.extend_from_slice(&CLIENT6);
            ip.extend_from_slice(&SERVER6);
            (ip, pseudo_header(&CLIENT6, &SERVER6, tcp.len()))
        }
    };
    let checksum = checksum::of_parts(&[&pseudo, &tcp]);
    tcp[16..18].copy_from_slice(&checksum.to_be_bytes());
    let mut frame = Vec::new();
    frame.extend_from_slice(&SERVER_MAC);
    frame.extend_from_slice(&CLIENT_MAC);
    let ethertype: u16 = match net {
        Net::V4 => 0x0800,
        Net::V6 => 0x86dd,
    };
    for (index, vlan) in vlans.iter().enumerate() {
        let tpid: u16 = if index == 0 && vlans.len() == 2 {
            0x88a8
        } else {
            0x8100
        };
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&vlan.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&tcp);
    frame
}

/// The TCP pseudo-header (IPv4 or IPv6 by address length).
pub(crate) fn pseudo_header(source: &[u8], destination: &[u8], tcp_len: usize) -> Vec<u8> {
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(source);
    pseudo.extend_from_slice(destination);
    if source.len() == 4 {
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    } else {
        pseudo.extend_from_slice(&(tcp_len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
    }
    pseudo
}

pub(crate) fn counter(program: &LoadedProgram, action: Action, reason: Reason) -> Counter {
    program.counters().expect("read counters")[counter_index(action, reason) as usize]
}

/// Checks the SYN-ACK byte by byte and returns its cookie (seq) and MSS.
pub(crate) fn check_syn_ack(net: Net, vlans: &[u16], reply: &[u8]) -> (u32, u16) {
    let l3 = 14 + 4 * vlans.len();
    let ip_len = match net {
        Net::V4 => 20,
        Net::V6 => 40,
    };
    assert_eq!(reply.len(), l3 + ip_len + 24, "Ethernet + IP + 24-byte TCP");
    assert_eq!(&reply[0..6], &CLIENT_MAC, "destination MAC is the client's");
    assert_eq!(&reply[6..12], &SERVER_MAC, "source MAC is the server's");
    for (index, vlan) in vlans.iter().enumerate() {
        let at = 12 + 4 * index;
        let tpid: u16 = if index == 0 && vlans.len() == 2 {
            0x88a8
        } else {
            0x8100
        };
        assert_eq!(&reply[at..at + 2], &tpid.to_be_bytes(), "tag {index} kept");
        assert_eq!(
            &reply[at + 2..at + 4],
            &vlan.to_be_bytes(),
            "VLAN id {index} kept"
        );
    }
    let ip = &reply[l3..l3 + ip_len];
    let tcp = &reply[l3 + ip_len..];
    let pseudo = match net {
        Net::V4 => {
            assert_eq!(&reply[l3 - 2..l3], &[0x08, 0x00]);
            assert_eq!(ip[0], 0x45, "IPv4, no options");
            assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 44, "total length");
            assert_eq!(
                u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff,
                0,
                "no fragment"
            );
            assert_eq!(ip[8], 64, "TTL");
            assert_eq!(ip[9], 6, "TCP");
            assert_eq!(&ip[12..16], &SERVER4, "source is the server");
            assert_eq!(&ip[16..20], &CLIENT4, "destination is the client");
            assert_eq!(checksum::of(ip), 0, "IPv4 header checksum");
            pseudo_header(&SERVER4, &CLIENT4, 24)
        }
        Net::V6 => {
            assert_eq!(&reply[l3 - 2..l3], &[0x86, 0xdd]);
            assert_eq!(ip[0] >> 4, 6);
            assert_eq!(u16::from_be_bytes([ip[4], ip[5]]), 24, "payload length");
            assert_eq!(ip[6], 6, "next header TCP");
            assert_eq!(ip[7], 64, "hop limit");
            assert_eq!(&ip[8..24], &SERVER6, "source is the server");
            assert_eq!(&ip[24..40], &CLIENT6, "destination is the client");
            pseudo_header(&SERVER6, &CLIENT6, 24)
        }
    };
    assert_eq!(u16::from_be_bytes([tcp[0], tcp[1]]), SERVER_PORT);
    assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), CLIENT_PORT);
    let cookie = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    assert_eq!(
        u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]),
        CLIENT_SEQ.wrapping_add(1),
        "ack = client seq + 1"
    );
    assert_eq!(tcp[12], 0x60, "data offset 6 words");
    assert_eq!(tcp[13], SYN | ACK, "flags SYN|ACK");
    assert_ne!(u16::from_be_bytes([tcp[14], tcp[15]]), 0, "a window");
    assert_eq!(&tcp[18..20], &[0, 0], "urgent pointer");
    assert_eq!(&tcp[20..22], &[2, 4], "MSS option");
    let mss = u16::from_be_bytes([tcp[22], tcp[23]]);
    assert_eq!(checksum::of_parts(&[&pseudo, tcp]), 0, "TCP checksum");
    (cookie, mss)
}

/// Runs the cookie round trip of one kind of frame: the first SYN goes to
/// the kernel (it keeps the listener in cookie mode), the next is answered;
/// the cookie's ACK passes, a wrong one is dropped.
pub(crate) fn round_trip(
    net: Net,
    vlans: &[u16],
    options: &[u8],
    payload: &[u8],
    expected_mss: u16,
) {
    let mut program = loaded_with_cookies();
    let syn = tcp_frame(net, vlans, SYN, CLIENT_SEQ, 0, options, payload);
    let class = match net {
        Net::V4 => Reason::Ipv4Tcp,
        Net::V6 => Reason::Ipv6Tcp,
    };
    let first = program.test_run(&syn).expect("test run");
    assert_eq!(
        first,
        Action::Pass as u32,
        "the first SYN a second goes to the kernel"
    );
    let (action, reply) = program.test_run_output(&syn).expect("test run");
    assert_eq!(action, Action::Tx as u32, "the next is answered at XDP");
    let (cookie, mss) = check_syn_ack(net, vlans, &reply);
    assert_eq!(mss, expected_mss, "MSS");
    // The kernel's reply is the core's, byte for byte, given the kernel's
    // cookie and MSS: the SYN-ACK is built by one piece of code.
    let native = xdpath_core::syncookie::reply_frame(&syn, 14 + 4 * vlans.len(), cookie, mss)
        .expect("the core builds a reply");
    assert_eq!(reply, native, "kernel and core SYN-ACKs differ");
    let sent = counter(&program, Action::Tx, Reason::SynCookieSent);
    assert_eq!(sent.packets, 1);
    assert_eq!(sent.bytes, reply.len() as u64);

    let seq = CLIENT_SEQ.wrapping_add(1);
    let good = tcp_frame(net, vlans, ACK, seq, cookie.wrapping_add(1), &[], &[]);
    assert_eq!(
        program.test_run(&good).expect("test run"),
        Action::Pass as u32
    );
    let data = tcp_frame(
        net,
        vlans,
        ACK | PSH,
        seq,
        cookie.wrapping_add(1),
        &[],
        b"GET /",
    );
    assert_eq!(
        program.test_run(&data).expect("test run"),
        Action::Pass as u32
    );
    // Linux cookies carry the MSS index (0 to 3) in their low bits, so a
    // cookie a little off can still check; these are off by more.
    for wrong in [cookie.wrapping_add(0x101), cookie ^ 0x0100_0000, 0] {
        let bad = tcp_frame(net, vlans, ACK, seq, wrong, &[], &[]);
        assert_eq!(
            program.test_run(&bad).expect("test run"),
            Action::Drop as u32,
            "ACK {wrong:#x} against cookie {cookie:#x}"
        );
    }
    // A cookie from another client's SYN does not check for this one.
    let mut other = tcp_frame(net, vlans, ACK, seq, cookie.wrapping_add(1), &[], &[]);
    let port_at = 14
        + 4 * vlans.len()
        + match net {
            Net::V4 => 20,
            Net::V6 => 40,
        };
    other[port_at + 1] ^= 1;
    assert_eq!(
        program.test_run(&other).expect("test run"),
        Action::Drop as u32
    );
    assert_eq!(
        counter(&program, Action::Drop, Reason::SynCookieInvalid).packets,
        4
    );
    assert_eq!(counter(&program, Action::Pass, class).packets, 3);
}

/// A SYN like `tcp_frame`'s (no tags, Linux's options) from `source`, its
/// checksums made again.
pub(crate) fn syn_from(net: Net, source: &[u8]) -> Vec<u8> {
    let mut frame = tcp_frame(net, &[], SYN, CLIENT_SEQ, 0, &LINUX_SYN_OPTIONS, &[]);
    let (ip_len, source_at, server): (usize, usize, &[u8]) = match net {
        Net::V4 => (20, 14 + 12, &SERVER4),
        Net::V6 => (40, 14 + 8, &SERVER6),
    };
    frame[source_at..source_at + source.len()].copy_from_slice(source);
    if ip_len == 20 {
        frame[14 + 10..14 + 12].fill(0);
        let checksum = checksum::of_parts(&[&frame[14..34]]);
        frame[14 + 10..14 + 12].copy_from_slice(&checksum.to_be_bytes());
    }
    let tcp_at = 14 + ip_len;
    frame[tcp_at + 16..tcp_at + 18].fill(0);
    let pseudo = pseudo_header(source, server, frame.len() - tcp_at);
    let checksum = checksum::of_parts(&[&pseudo, &frame[tcp_at..]]);
    frame[tcp_at + 16..tcp_at + 18].copy_from_slice(&checksum.to_be_bytes());
    frame
}
