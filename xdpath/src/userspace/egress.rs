//! Redirects out of other interfaces: the kernel program's
//! `bpf_redirect_map` to another device becomes a send on a raw packet
//! socket bound to nothing, addressed per frame to the egress interface.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A send-only `AF_PACKET` socket (protocol 0: it receives nothing).
#[derive(Debug)]
pub struct Egress {
    socket: OwnedFd,
}

impl Egress {
    /// Opens the socket; needs `CAP_NET_RAW`.
    pub fn open() -> io::Result<Self> {
        // SAFETY: socket has no memory preconditions; the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nobody else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // Straight to the driver, as XDP's redirect goes: no qdisc.
        let bypass: libc::c_int = 1;
        // SAFETY: a valid int option of the right size. Failure only costs
        // the qdisc's time, so it is not an error.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&bypass as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        Ok(Self { socket })
    }

    /// Sends a whole Ethernet frame out of `ifindex`.
    pub fn send(&self, ifindex: u32, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data; all zeroes is valid.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_ifindex = i32::try_from(ifindex).unwrap_or(0);
        address.sll_halen = 6;
        for (slot, byte) in address.sll_addr.iter_mut().zip(frame.iter().take(6)) {
            *slot = *byte;
        }
        // SAFETY: `frame` and `address` are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                self.socket.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
                (&address as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
