//! `xdpath decap`: the backend side. The interface's program strips IPIP
//! and GUE addressed to one of this host's addresses and passes the inner
//! packet to the stack, which answers the client directly (the VIP is on
//! the backend's loopback). The kernel here has no IPIP or GUE devices, so
//! this is the only decapsulator.

use std::collections::BTreeSet;
use std::net::IpAddr;
use xdpath_core::abi;

use super::compile::address_bytes;
use super::LbError;
use crate::control::kernel::KernelMaps;
use crate::control::session::lock_state_dir;
use crate::dataplane::{self, AttachedMode, ModeChoice};
use xdpath_core::InterfaceConfig;

/// The unicast addresses of this namespace's interfaces (`getifaddrs`).
pub fn local_addresses() -> std::io::Result<BTreeSet<IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut addresses = BTreeSet::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: a node of the list getifaddrs returned.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr points at a sockaddr of the family it names.
            let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: the family says it is a sockaddr_in.
                let address = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in>() };
                addresses.insert(IpAddr::from(
                    u32::from_be(address.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: the family says it is a sockaddr_in6.
                let address = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in6>() };
                addresses.insert(IpAddr::from(address.sin6_addr.s6_addr));
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: the list came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    addresses.retain(|address| !address.is_unspecified() && !address.is_multicast());
    Ok(addresses)
}

/// Makes `LOCAL_ADDRESSES` hold exactly `addresses`.
pub fn sync_local_addresses(
    maps: &KernelMaps,
    addresses: &BTreeSet<IpAddr>,
) -> Result<(), LbError> {
    maps.clear_map(abi::map::LOCAL_ADDRESSES, 16)?;
    for address in addresses {
        maps.update(abi::map::LOCAL_ADDRESSES, &address_bytes(*address), &[1u8])?;
    }
    Ok(())
}

/// What `xdpath decap` did.
#[derive(Debug, serde::Serialize)]
pub struct DecapReport {
    /// The interface.
    pub interface: String,
    /// How it is attached.
    pub mode: AttachedMode,
    /// The GUE port decapsulated (0: IPIP only); none when only the
    /// addresses were refreshed.
    pub gue_port: Option<u16>,
    /// The addresses whose IPIP and GUE are decapsulated.
    pub local_addresses: Vec<IpAddr>,
}

/// Attaches the decapsulator to `interface` and records this host's
/// addresses. With `refresh`, only the addresses are read again (after an
/// address change).
pub fn decap(
    interface: &str,
    mode: ModeChoice,
    gue_port: u16,
    refresh: bool,
) -> Result<DecapReport, LbError> {
    let (_dir, _lock) = lock_state_dir()?;
    let addresses = local_addresses()
        .map_err(|source| LbError::Usage(format!("cannot list this host's addresses: {source}")))?;
    let mode = if refresh {
        dataplane::status(interface)
            .map_err(crate::control::ControlError::from)?
            .mode
            .ok_or_else(|| {
                LbError::Usage(format!(
                    "xdpath is not attached to {}",
                    crate::text::quote(interface)
                ))
            })?
    } else {
        let config = InterfaceConfig::default().with_decap(true, gue_port);
        dataplane::attach(interface, mode, config).map_err(crate::control::ControlError::from)?
    };
    let (maps, _) = KernelMaps::open_shared()?;
    sync_local_addresses(&maps, &addresses)?;
    Ok(DecapReport {
        interface: interface.into(),
        mode,
        gue_port: (!refresh).then_some(gue_port),
        local_addresses: addresses.into_iter().collect(),
    })
}
