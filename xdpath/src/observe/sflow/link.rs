//! An interface's state and speed as the network namespace xdpath runs in
//! sees them: ioctls on a socket opened here (a socket belongs to the
//! namespace of the thread that opens it), never `/sys/class/net`, which
//! shows the namespace sysfs was mounted in (the host's, after
//! `nsenter --net`).

use std::os::fd::OwnedFd;

use crate::netif;

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

/// The state of `name` in this thread's network namespace; `None` when
/// the namespace has no such interface.
pub fn link_state(name: &str) -> Option<LinkState> {
    let socket = netif::control_socket().ok()?;
    let mut flags = netif::request(name).ok()?;
    netif::ioctl(&socket, libc::SIOCGIFFLAGS as libc::c_ulong, &mut flags).ok()?;
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
    // SAFETY: ETHTOOL_GSET writes an ethtool_cmd.
    unsafe { netif::ethtool(socket, name, &mut settings) }.ok()?;
    let mbps = u32::from(settings.speed) | u32::from(settings.speed_hi) << 16;
    (mbps != 0 && mbps != SPEED_UNKNOWN && mbps != u32::from(u16::MAX))
        .then(|| u64::from(mbps) * 1_000_000)
}
