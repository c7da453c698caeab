//! The health probes that are not a TCP connection: `ping`, an ICMP or
//! ICMPv6 echo the backend must answer, and `udp`, a datagram to the
//! backend's port that it must not refuse (Octavia's UDP-CONNECT: an ICMP
//! port unreachable fails the probe; an answer or silence passes it, since
//! a UDP service need not answer an empty datagram).
//!
//! The echo goes out on a raw socket (xdpathd runs as root): unprivileged
//! ICMP sockets need `net.ipv4.ping_group_range`, which is off by default.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use xdpath_core::wire::checksum;
use xdpath_core::wire::icmp::{ICMPV6_ECHO_REQUEST, ICMP_ECHO_REQUEST};

/// ICMP echo reply type (RFC 792).
const ICMP_ECHO_REPLY: u8 = 0;
/// ICMPv6 echo reply type (RFC 4443).
const ICMPV6_ECHO_REPLY: u8 = 129;
/// What the echo carries after its 8 header bytes.
const PAYLOAD: &[u8; 8] = b"xdpathd\0";

/// Sequence numbers of this process's echoes, so that a late reply to an
/// earlier probe is not taken for this one's.
static SEQUENCE: AtomicU16 = AtomicU16::new(0);

/// Sends one echo request to `address` and waits up to `timeout` for its
/// reply; `Err` says why it failed.
pub fn ping(address: IpAddr, timeout: Duration) -> Result<(), String> {
    // A raw socket is a datagram socket to std: its send_to, recv_from and
    // timeouts serve as they are (the port in the addresses is 0).
    let socket = UdpSocket::from(
        raw_icmp_socket(address).map_err(|error| format!("an ICMP socket: {error}"))?,
    );
    // Truncated to 16 bits on purpose: the id only has to differ from
    // other pingers' on this host, and the sequence number tells probes of
    // this process apart.
    #[expect(clippy::cast_possible_truncation, reason = "the ICMP id is 16 bits")]
    let id = std::process::id() as u16;
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let request = echo_request(address.is_ipv4(), id, sequence);
    socket
        .send_to(&request, SocketAddr::new(address, 0))
        .map_err(|error| format!("sending the echo: {error}"))?;
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no echo reply within {} ms", timeout.as_millis()));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|error| error.to_string())?;
        match socket.recv_from(&mut buffer) {
            Ok((length, from)) if from.ip() == address => {
                let reply = buffer.get(..length).unwrap_or_default();
                if is_reply(reply, address.is_ipv4(), id, sequence) {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(error) => return Err(format!("waiting for the echo reply: {error}")),
        }
    }
}

/// Sends an empty datagram to `address:port` and waits up to `timeout`:
/// refused (ICMP port or host unreachable) fails; an answer or silence
/// passes.
pub fn udp_connect(address: SocketAddr, timeout: Duration) -> Result<(), String> {
    let local: SocketAddr = if address.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(|error| error.to_string())?;
    socket.connect(address).map_err(|error| error.to_string())?;
    socket
        .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(|error| error.to_string())?;
    socket.send(&[]).map_err(|error| error.to_string())?;
    let mut answer = [0u8; 1];
    match socket.recv(&mut answer) {
        Ok(_) => Ok(()),
        Err(error)
            if matches!(
                error.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(format!("UDP port {}: {error}", address.port())),
    }
}

/// An echo request: type, code, checksum, id, sequence, payload. The
/// kernel fills in the ICMPv6 checksum (it covers a pseudo-header only the
/// kernel knows the source of).
fn echo_request(ipv4: bool, id: u16, sequence: u16) -> [u8; 16] {
    let mut request = [0u8; 16];
    let (head, payload) = request.split_at_mut(8);
    head[0] = if ipv4 {
        ICMP_ECHO_REQUEST
    } else {
        ICMPV6_ECHO_REQUEST
    };
    head[4..6].copy_from_slice(&id.to_be_bytes());
    head[6..8].copy_from_slice(&sequence.to_be_bytes());
    payload.copy_from_slice(PAYLOAD);
    if ipv4 {
        let sum = checksum::of(&request);
        request[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    request
}

/// Whether `packet` (with its IPv4 header on an IPv4 raw socket; the ICMPv6
/// message alone on an IPv6 one) is the reply to the echo `id`, `sequence`.
fn is_reply(packet: &[u8], ipv4: bool, id: u16, sequence: u16) -> bool {
    let (message, reply) = if ipv4 {
        let header = packet
            .first()
            .map_or(0, |byte| usize::from(byte & 0x0f) * 4);
        (packet.get(header..), ICMP_ECHO_REPLY)
    } else {
        (Some(packet), ICMPV6_ECHO_REPLY)
    };
    let Some(message) = message else {
        return false;
    };
    let field = |at: usize| {
        message
            .get(at..at + 2)
            .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
    };
    message.first() == Some(&reply) && field(4) == Some(id) && field(6) == Some(sequence)
}

fn raw_icmp_socket(address: IpAddr) -> io::Result<OwnedFd> {
    let (family, protocol) = match address {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP),
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
    };
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new
    // descriptor that nothing else owns.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned here only.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_is_checksummed_and_its_reply_recognised() {
        let request = echo_request(true, 0x1234, 7);
        assert_eq!(request[0], ICMP_ECHO_REQUEST);
        assert_eq!(checksum::of(&request), 0, "a correct checksum sums to zero");
        // The reply as a raw IPv4 socket returns it: a 20-byte header first.
        let mut reply = vec![0x45u8];
        reply.resize(20, 0);
        let mut message = request;
        message[0] = ICMP_ECHO_REPLY;
        reply.extend_from_slice(&message);
        assert!(is_reply(&reply, true, 0x1234, 7));
        assert!(!is_reply(&reply, true, 0x1234, 8), "another probe's reply");
        assert!(!is_reply(&reply[..22], true, 0x1234, 7), "cut short");
        assert!(!is_reply(&[], true, 0x1234, 7));
        let request6 = echo_request(false, 1, 2);
        assert_eq!(request6[0], ICMPV6_ECHO_REQUEST);
        let mut reply6 = request6;
        reply6[0] = ICMPV6_ECHO_REPLY;
        assert!(is_reply(&reply6, false, 1, 2));
        assert!(
            !is_reply(&request6, false, 1, 2),
            "our own request looped back"
        );
    }

    #[test]
    fn loopback_answers_a_ping_and_refuses_a_closed_udp_port() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var_os("XDPATH_REQUIRE_ROOT").is_none(),
                "raw ICMP sockets need root"
            );
            eprintln!("skipped: raw ICMP sockets need root");
            return;
        }
        let timeout = Duration::from_millis(500);
        ping("127.0.0.1".parse().expect("v4"), timeout).expect("ping 127.0.0.1");
        ping("::1".parse().expect("v6"), timeout).expect("ping ::1");
        let open = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = open.local_addr().expect("address").port();
        udp_connect(SocketAddr::from(([127, 0, 0, 1], port)), timeout).expect("open port");
        drop(open);
        let refused = udp_connect(SocketAddr::from(([127, 0, 0, 1], port)), timeout);
        assert!(refused.is_err(), "a closed port is refused: {refused:?}");
    }
}
