//! Thin wrappers over the system calls the AF_XDP socket needs.

use std::ffi::CString;
use std::io;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// `setsockopt(fd, SOL_XDP, option, value)`.
pub(crate) fn set_option<T>(fd: BorrowedFd<'_>, option: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` and the length passed is its size.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            option,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt(fd, SOL_XDP, option)` into a zeroed `T`; returns it and the
/// length the kernel wrote (older kernels write a shorter prefix).
///
/// `T` must be plain data for which all-zero bytes and any bytes the kernel
/// writes are valid (the `libc` `xdp_*` structs).
pub(crate) fn get_option<T: Copy>(
    fd: BorrowedFd<'_>,
    option: libc::c_int,
) -> io::Result<(T, usize)> {
    let mut value = MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `value`, which has
    // room for `size_of::<T>()`; `len` is a live socklen_t.
    let result = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            option,
            value.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `value` was zeroed and then (partly) written by the kernel;
    // callers only use integer-only structs, valid for any bytes.
    Ok((unsafe { value.assume_init() }, len as usize))
}

/// A new `AF_XDP` socket.
pub(crate) fn xdp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The index of `interface` in this thread's network namespace, `None` if
/// there is no such interface (or the name cannot be one).
pub(crate) fn interface_index(interface: &str) -> Option<u32> {
    if interface.is_empty() || interface.len() >= libc::IFNAMSIZ {
        return None;
    }
    let name = CString::new(interface).ok()?;
    // SAFETY: `name` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// `bind(fd, sockaddr_xdp { ifindex, queue, flags })`.
pub(crate) fn bind(fd: BorrowedFd<'_>, ifindex: u32, queue: u32, flags: u16) -> io::Result<()> {
    let address = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: flags,
        sxdp_ifindex: ifindex,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: `address` is a live sockaddr_xdp and its size is passed.
    let result = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&address as *const libc::sockaddr_xdp).cast(),
            size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits up to `timeout` for `events` on `fd`, restarting after signals.
/// Returns whether any arrived.
pub(crate) fn poll(
    fd: BorrowedFd<'_>,
    events: libc::c_short,
    timeout: Duration,
) -> io::Result<bool> {
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let left = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => timeout,
        };
        // Round up so that a sub-millisecond timeout still waits.
        let millis = left
            .as_micros()
            .div_ceil(1000)
            .min(libc::c_int::MAX as u128) as libc::c_int;
        let mut entry = libc::pollfd {
            fd: fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one live pollfd, and its count.
        let ready = unsafe { libc::poll(&mut entry, 1, millis) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if entry.revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(io::Error::other(format!(
                "poll reported revents {:#x} on the AF_XDP socket",
                entry.revents
            )));
        }
        return Ok(ready > 0 && entry.revents & events != 0);
    }
}

/// Tells the kernel to process the TX ring:
/// `sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`. Errors that only mean
/// "try again later" are `Ok(false)`.
pub(crate) fn kick(fd: BorrowedFd<'_>) -> io::Result<bool> {
    loop {
        // SAFETY: no buffer and no address are passed.
        let result = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if result >= 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => return Ok(false),
            _ => return Err(error),
        }
    }
}

/// `struct ethtool_channels` (`linux/ethtool.h`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// `ETHTOOL_GCHANNELS`.
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// How many queues an AF_XDP socket may bind to on `interface`: the
/// kernel accepts a queue below the larger of the device's RX and TX queue
/// counts. Asked of the driver (`ETHTOOL_GCHANNELS`, in this thread's
/// namespace); `None` when the driver does not say.
pub(crate) fn queue_count(interface: &str) -> Option<u32> {
    let socket = crate::netif::control_socket().ok()?;
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    // SAFETY: ETHTOOL_GCHANNELS reads and writes an ethtool_channels.
    unsafe { crate::netif::ethtool(&socket, interface, &mut channels) }.ok()?;
    let rx = channels.rx_count.saturating_add(channels.combined_count);
    let tx = channels.tx_count.saturating_add(channels.combined_count);
    Some(rx.max(tx)).filter(|&count| count > 0)
}
