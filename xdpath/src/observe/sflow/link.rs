//! An interface's state and speed as the network namespace xdpath runs in
//! sees them: ioctls on a socket opened here (a socket belongs to the
//! namespace of the thread that opens it), never `/sys/class/net`, which
//! shows the namespace sysfs was mounted in (the host's, after
//! `nsenter --net`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `ETHTOOL_GSET`: the legacy link settings, which every driver that
/// reports a speed answers.
const ETHTOOL_GSET: u32 = 0x1;
/// The speed a driver reports when it does not know it.
const SPEED_UNKNOWN: u32 = u32::MAX;

/// `struct ethtool_cmd` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolCmd {
    cmd: u32,
    supported: u32,
    advertising: u32,
    speed: u16,
    duplex: u8,
    port: u8,
    phy_address: u8,
    transceiver: u8,
    autoneg: u8,
    mdio_support: u8,
    maxtxpkt: u32,
    maxrxpkt: u32,
    speed_hi: u16,
    eth_tp_mdix: u8,
    eth_tp_mdix_ctrl: u8,
    lp_advertising: u32,
    reserved: [u32; 2],
}

/// What the namespace says of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// `IFF_UP`: administratively up.
    pub admin_up: bool,
    /// `IFF_RUNNING`: the kernel sets it when the operational state is up
    /// (RFC 2863 `ifOperStatus`).
    pub oper_up: bool,
    /// Bits per second; 0 when the driver does not say (sFlow's
    /// "unknown").
    pub speed_bps: u64,
}

fn control_socket() -> Option<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: a fresh descriptor nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn request(name: &str) -> Option<libc::ifreq> {
    let name = CString::new(name).ok()?;
    let bytes = name.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    Some(request)
}

/// The state of `name` in this thread's network namespace; `None` when
/// the namespace has no such interface.
pub fn link_state(name: &str) -> Option<LinkState> {
    let socket = control_socket()?;
    let mut flags = request(name)?;
    // SAFETY: SIOCGIFFLAGS with a live ifreq naming the interface.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut flags) } != 0 {
        return None;
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    let bits = i32::from(unsafe { flags.ifr_ifru.ifru_flags });
    Some(LinkState {
        admin_up: bits & libc::IFF_UP != 0,
        oper_up: bits & libc::IFF_RUNNING != 0,
        speed_bps: speed_bps(&socket, name).unwrap_or(0),
    })
}

fn speed_bps(socket: &OwnedFd, name: &str) -> Option<u64> {
    let mut settings = EthtoolCmd {
        cmd: ETHTOOL_GSET,
        ..EthtoolCmd::default()
    };
    let mut request = request(name)?;
    request.ifr_ifru.ifru_data = (&mut settings as *mut EthtoolCmd).cast();
    // SAFETY: SIOCETHTOOL with a live ifreq whose data points at a live
    // ethtool_cmd, the structure ETHTOOL_GSET writes.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &mut request) } != 0 {
        return None;
    }
    let mbps = u32::from(settings.speed) | u32::from(settings.speed_hi) << 16;
    (mbps != 0 && mbps != SPEED_UNKNOWN && mbps != u32::from(u16::MAX))
        .then(|| u64::from(mbps) * 1_000_000)
}
