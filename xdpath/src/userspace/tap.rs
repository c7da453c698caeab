//! The exception path: a TAP device through which the frames the pipeline
//! passes reach the kernel stack, and through which what the stack sends
//! there leaves by the interface.
//!
//! AF_XDP has no way to hand a frame back to the stack of the interface it
//! came from, so the runtime makes a TAP device with the interface's MAC
//! and MTU (`xtap-<interface>`, cut to 15 bytes) and writes passed frames
//! into it. The stack takes them as arriving on the TAP device: frames for
//! the interface's addresses are delivered (Linux accepts a local address
//! on any interface). What the stack sends out of the TAP device (little:
//! it has no addresses and no routes unless an operator adds some, and
//! neighbour discovery does not come this way, see the module above) the
//! runtime sends out of the interface. The TAP device
//! gets no addresses of its own: IPv6 address generation and reverse-path
//! filtering are turned off on it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::netif::{control_socket, ioctl, request};

/// Longest interface name, without the terminating NUL.
const NAME_MAX: usize = libc::IFNAMSIZ - 1;

/// The name of the TAP device that carries `interface`'s exceptions.
///
/// # Examples
///
/// ```
/// use xdpath::userspace::tap_name;
/// assert_eq!(tap_name("eth0"), "xtap-eth0");
/// assert_eq!(tap_name("enp129s0f1np1"), "xtap-enp129s0f1");
/// ```
pub fn tap_name(interface: &str) -> String {
    let mut name = format!("xtap-{interface}");
    while name.len() > NAME_MAX {
        name.pop();
    }
    name
}

/// A TAP device, removed when dropped (the kernel removes a
/// non-persistent TAP device when its last file descriptor closes).
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
}

/// The MAC address and MTU of `interface`.
pub fn mac_and_mtu(interface: &str) -> io::Result<([u8; 6], u32)> {
    let socket = control_socket()?;
    let mut hardware = request(interface)?;
    ioctl(&socket, libc::SIOCGIFHWADDR, &mut hardware)?;
    // SAFETY: SIOCGIFHWADDR filled the hwaddr member.
    let data = unsafe { hardware.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (slot, byte) in mac.iter_mut().zip(data) {
        *slot = byte as u8;
    }
    let mut size = request(interface)?;
    ioctl(&socket, libc::SIOCGIFMTU, &mut size)?;
    // SAFETY: SIOCGIFMTU filled the mtu member.
    let mtu = unsafe { size.ifr_ifru.ifru_mtu };
    Ok((mac, u32::try_from(mtu).unwrap_or(1500)))
}

/// Writes `value` to a sysctl under `/proc/sys/net/` (this thread's
/// namespace).
fn sysctl(path: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/net/{path}"), value)
}

impl Tap {
    /// Creates TAP device `name` with `mac` and `mtu`, non-blocking, no
    /// IPv6 addresses, no reverse-path filter, and brings it up.
    ///
    /// # Errors
    ///
    /// The step's OS error: no `/dev/net/tun` (module `tun`), no
    /// `CAP_NET_ADMIN`, a device of that name already there (`EBUSY` when
    /// another runtime holds it).
    pub fn create(name: &str, mac: [u8; 6], mtu: u32) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|error| io::Error::new(error.kind(), format!("/dev/net/tun: {error}")))?;
        let mut create = request(name)?;
        create.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
        ioctl(&file, libc::TUNSETIFF as libc::c_ulong, &mut create)
            .map_err(|error| io::Error::new(error.kind(), format!("create {name}: {error}")))?;
        let socket = control_socket()?;
        let mut hardware = request(name)?;
        hardware.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        // SAFETY: writing the hwaddr member of a zeroed union.
        unsafe {
            for (slot, byte) in hardware.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(mac) {
                *slot = byte as libc::c_char;
            }
        }
        ioctl(&socket, libc::SIOCSIFHWADDR, &mut hardware)?;
        let mut size = request(name)?;
        size.ifr_ifru.ifru_mtu = i32::try_from(mtu).unwrap_or(1500);
        ioctl(&socket, libc::SIOCSIFMTU, &mut size)?;
        // Before it is up: no link-local address, no DAD, no router
        // solicitations of its own; and frames from anywhere are taken.
        sysctl(&format!("ipv6/conf/{name}/addr_gen_mode"), "1")?;
        sysctl(&format!("ipv4/conf/{name}/rp_filter"), "0")?;
        let mut flags = request(name)?;
        ioctl(&socket, libc::SIOCGIFFLAGS, &mut flags)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member.
        unsafe { flags.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        ioctl(&socket, libc::SIOCSIFFLAGS, &mut flags)?;
        Ok(Self {
            file,
            name: name.to_string(),
        })
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hands a frame to the stack. One write is one whole frame, so the
    /// serving threads write through one shared device.
    pub fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        (&self.file).write(frame).map(drop)
    }

    /// A frame the stack sent out of the device, into `buffer`; `None`
    /// when there is none now.
    pub fn read_frame<'a>(&self, buffer: &'a mut [u8]) -> io::Result<Option<&'a [u8]>> {
        match (&self.file).read(buffer) {
            Ok(len) => Ok(buffer.get(..len)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The descriptor, for `poll`.
    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}
