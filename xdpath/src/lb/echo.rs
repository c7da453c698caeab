//! The health probes that are not a TCP connection: `ping`, an ICMP or
//! ICMPv6 echo the backend must answer, and `udp`, a datagram to the
//! backend's port that it must not refuse (Octavia's UDP-CONNECT: an ICMP
//! port unreachable fails the probe; an answer or silence passes it, since
//! a UDP service need not answer an empty datagram).
//!
//! The echo goes out on a raw socket (xdpathd runs as root): unprivileged
//! ICMP sockets need `net.ipv4.ping_group_range`, which is off by default.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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
    let socket = raw_icmp_socket(address).map_err(|error| format!("an ICMP socket: {error}"))?;
    // Truncated to 16 bits on purpose: the id only has to differ from
    // other pingers' on this host, and the sequence number tells probes of
    // this process apart.
    #[expect(clippy::cast_possible_truncation, reason = "the ICMP id is 16 bits")]
    let id = std::process::id() as u16;
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let request = echo_request(address.is_ipv4(), id, sequence);
    send_to(&socket, &request, address).map_err(|error| format!("sending the echo: {error}"))?;
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no echo reply within {} ms", timeout.as_millis()));
        }
        set_receive_timeout(&socket, left).map_err(|error| error.to_string())?;
        match receive_from(&socket, &mut buffer) {
            Ok((length, from)) if from == address => {
                let reply = buffer.get(..length).unwrap_or_default();
                if is_reply(reply, address.is_ipv4(), id, sequence) {
                    return Ok(());
                }
            }
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
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

fn set_receive_timeout(socket: &OwnedFd, timeout: Duration) -> io::Result<()> {
    let value = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros().max(1)),
    };
    // SAFETY: the option value is a timeval of the size given.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&value).cast(),
            socket_length::<libc::timeval>(),
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn send_to(socket: &OwnedFd, bytes: &[u8], address: IpAddr) -> io::Result<()> {
    let (storage, length) = socket_address(address);
    // SAFETY: `bytes` and `storage` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            std::ptr::from_ref(&storage).cast(),
            length,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn receive_from(socket: &OwnedFd, buffer: &mut [u8]) -> io::Result<(usize, IpAddr)> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut length = socket_length::<libc::sockaddr_storage>();
    // SAFETY: `buffer` and `storage` are valid for the lengths given, and
    // `length` tells the kernel the room in `storage`.
    let received = unsafe {
        libc::recvfrom(
            socket.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
            std::ptr::from_mut(&mut storage).cast(),
            &mut length,
        )
    };
    let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
    let from = match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in (its family says so).
            let address: libc::sockaddr_in = unsafe {
                std::ptr::from_ref(&storage)
                    .cast::<libc::sockaddr_in>()
                    .read()
            };
            IpAddr::from(u32::from_be(address.sin_addr.s_addr).to_be_bytes())
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 (its family says so).
            let address: libc::sockaddr_in6 = unsafe {
                std::ptr::from_ref(&storage)
                    .cast::<libc::sockaddr_in6>()
                    .read()
            };
            IpAddr::from(address.sin6_addr.s6_addr)
        }
        _ => IpAddr::from([0u8; 4]),
    };
    Ok((received, from))
}

fn socket_address(address: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match address {
        IpAddr::V4(v4) => {
            let inet = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // every sockaddr.
            unsafe {
                std::ptr::from_mut(&mut storage)
                    .cast::<libc::sockaddr_in>()
                    .write(inet);
            }
            socket_length::<libc::sockaddr_in>()
        }
        IpAddr::V6(v6) => {
            let inet6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above.
            unsafe {
                std::ptr::from_mut(&mut storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(inet6);
            }
            socket_length::<libc::sockaddr_in6>()
        }
    };
    (storage, length)
}

fn socket_length<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
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
