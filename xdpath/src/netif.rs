//! Interface ioctls on a control socket in this thread's network
//! namespace: an `ifreq` naming the interface, and the ethtool requests
//! made through it. The TAP device, AF_XDP's queue count and sFlow's link
//! state all ask through these.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A datagram socket for interface ioctls (in this thread's namespace).
pub(crate) fn control_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory preconditions; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An `ifreq` for `name` with its union zeroed; refused for a name with a
/// NUL or longer than the kernel's `IFNAMSIZ`.
pub(crate) fn request(name: &str) -> io::Result<libc::ifreq> {
    let bytes = CString::new(name).map_err(|_| io::Error::other("NUL in interface name"))?;
    let bytes = bytes.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::other(format!("interface name {name} too long")));
    }
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    Ok(request)
}

/// One interface ioctl (`SIOCGIFFLAGS`, `SIOCSIFMTU`, ...) with `request`.
pub(crate) fn ioctl(
    fd: &impl AsRawFd,
    operation: libc::c_ulong,
    request: &mut libc::ifreq,
) -> io::Result<()> {
    // SAFETY: `request` is a valid ifreq for these interface ioctls.
    if unsafe { libc::ioctl(fd.as_raw_fd(), operation as _, request as *mut libc::ifreq) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SIOCETHTOOL` on `name` with `command`, which the driver reads and
/// writes.
///
/// # Safety
///
/// `T` must be the `#[repr(C)]` structure the ethtool command in its first
/// field reads and writes (`ethtool_cmd` for `ETHTOOL_GSET`, ...).
pub(crate) unsafe fn ethtool<T>(fd: &impl AsRawFd, name: &str, command: &mut T) -> io::Result<()> {
    let mut request = request(name)?;
    request.ifr_ifru.ifru_data = (command as *mut T).cast();
    ioctl(fd, libc::SIOCETHTOOL as libc::c_ulong, &mut request)
}

/// Whether the interface with index `ifindex` is gone from this thread's
/// namespace (`SIOCGIFNAME` answers `ENODEV`). By index, as the AF_XDP
/// sockets and the XDP program are bound: a renamed interface is still
/// there. Any other failure (no socket to ask through, say) is not taken
/// for an answer: false.
pub(crate) fn interface_gone(ifindex: u32) -> bool {
    let Ok(fd) = control_socket() else {
        return false;
    };
    let Ok(index) = i32::try_from(ifindex) else {
        return true;
    };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    request.ifr_ifru.ifru_ifindex = index;
    match ioctl(&fd, libc::SIOCGIFNAME as libc::c_ulong, &mut request) {
        Ok(()) => false,
        Err(error) => error.raw_os_error() == Some(libc::ENODEV),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interface_is_gone_when_no_interface_has_its_index() {
        let loopback = crate::control::interface_index("lo").expect("lo in every namespace");
        assert!(!interface_gone(loopback));
        assert!(interface_gone(i32::MAX as u32 - 7));
    }
}
