//! Sending frames out of an interface over an `AF_PACKET` raw socket.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::ETH;

/// Length of the Ethernet frame of a ping with `size` data bytes over an IP
/// header of `ip_header` bytes.
pub fn ping_frame_len(ip_header: u64, size: u64) -> u64 {
    ETH as u64 + ip_header + 8 + size
}

/// Sends each frame, as is, out of `interface` over an `AF_PACKET` raw
/// socket bound to it.
///
/// The interface is looked up in the calling thread's network namespace:
/// call it inside [`xdpath::netns::run_in`] to send from a namespace.
/// Frames shorter than an Ethernet header are refused by the kernel.
pub fn send<F: AsRef<[u8]>>(interface: &str, frames: &[F]) -> io::Result<()> {
    let name =
        CString::new(interface).map_err(|_| io::Error::other("interface name contains NUL"))?;
    // SAFETY: if_nametoindex reads a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {interface} does not exist in this network namespace"),
        ));
    }
    // Protocol 0: this socket sends only, it receives nothing.
    // SAFETY: plain socket(2) call.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: sockaddr_ll is plain old data; zero is a valid value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_ifindex = ifindex as i32;
    // SAFETY: bind with a valid sockaddr_ll and its size.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            std::ptr::addr_of!(address).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    for frame in frames {
        let frame = frame.as_ref();
        // SAFETY: send(2) reads `frame.len()` bytes from a valid slice.
        let sent = unsafe { libc::send(socket.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        if sent as usize != frame.len() {
            return Err(io::Error::other(format!(
                "sent {sent} of {} bytes",
                frame.len()
            )));
        }
    }
    Ok(())
}
