//! `xdpath forward enable|disable`: L3 forwarding at XDP on an attached
//! interface. Enabling sets the interface's `forward` flag (read by the
//! data path at the next frame) and puts the interface in the namespace's
//! `FORWARD_PORTS` device map, so frames routed out of it can be
//! redirected there; disabling undoes both.

use std::path::Path;
use xdpath_core::abi;

use aya::maps::xdp::DevMapHash;
use aya::maps::{Map, MapData};

use super::{read_interface_config, update_interface_config, DataplaneError};

/// What `forward enable|disable` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ForwardReport {
    /// The interface.
    pub interface: String,
    /// Forwarding on or off now.
    pub forward: bool,
    /// The namespace's forwarding switches, IPv4 and IPv6: the FIB does
    /// not route for an interface where they are off.
    pub ipv4_forwarding: bool,
    /// See `ipv4_forwarding`.
    pub ipv6_forwarding: bool,
    /// Warnings for the operator.
    pub warnings: Vec<String>,
}

fn sysctl_on(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.trim() == "1")
}

/// Whether `interface` has a route in this namespace (`/proc/net/route`
/// and `/proc/net/ipv6_route` are the calling thread's namespace's).
pub fn has_routes(interface: &str) -> bool {
    let v4 = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route").unwrap_or_default();
    v4.lines()
        .skip(1)
        .any(|line| line.split_whitespace().next() == Some(interface))
        || v6
            .lines()
            .any(|line| line.split_whitespace().last() == Some(interface))
}

fn ports() -> Result<DevMapHash<MapData>, DataplaneError> {
    let path = super::shared_dir()?.join(abi::map::FORWARD_PORTS);
    open_ports(&path)
}

fn open_ports(path: &Path) -> Result<DevMapHash<MapData>, DataplaneError> {
    super::open_pinned_map(
        abi::map::FORWARD_PORTS,
        path,
        Map::DevMapHash,
        DevMapHash::try_from,
    )
}

/// Turns forwarding on or off for an attached interface.
///
/// # Errors
///
/// The interface is not attached; (enabling) it has no route, or the
/// namespace forwards neither IPv4 nor IPv6; the maps cannot be written.
///
/// # Minimum kernel
///
/// 5.4 (`BPF_MAP_TYPE_DEVMAP_HASH`); `bpf_fib_lookup` 4.18.
pub fn set_forwarding(interface: &str, on: bool) -> Result<ForwardReport, DataplaneError> {
    read_interface_config(interface)?;
    let ifindex = super::if_index(interface).ok_or_else(|| DataplaneError::UnknownInterface {
        name: interface.into(),
    })?;
    let ipv4_forwarding = sysctl_on("/proc/sys/net/ipv4/conf/all/forwarding");
    let ipv6_forwarding = sysctl_on("/proc/sys/net/ipv6/conf/all/forwarding");
    let mut warnings = Vec::new();
    if on {
        if !has_routes(interface) {
            return Err(DataplaneError::Forward(format!(
                "{interface} has no route: nothing would be forwarded into or out of it \
                 (add an address or a route first)"
            )));
        }
        if !ipv4_forwarding && !ipv6_forwarding {
            return Err(DataplaneError::Forward(
                "this namespace forwards neither IPv4 nor IPv6: sysctl -w \
                 net.ipv4.conf.all.forwarding=1 (and net.ipv6.conf.all.forwarding=1) first"
                    .into(),
            ));
        }
        for (family, enabled, setting) in [
            ("IPv4", ipv4_forwarding, "net.ipv4.conf.all.forwarding"),
            ("IPv6", ipv6_forwarding, "net.ipv6.conf.all.forwarding"),
        ] {
            if !enabled {
                warnings.push(format!(
                    "{family} is not forwarded in this namespace ({setting} = 0): \
                     its frames go to the stack"
                ));
            }
        }
    }
    let mut ports = ports()?;
    if on {
        ports
            .insert(ifindex, ifindex, None, 0)
            .map_err(|error| DataplaneError::Forward(format!("FORWARD_PORTS: {error}")))?;
    } else {
        match ports.remove(ifindex) {
            Ok(()) => {}
            // Not there: already off.
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => {
                return Err(DataplaneError::Map {
                    name: abi::map::FORWARD_PORTS,
                    source,
                })
            }
        }
    }
    let written = update_interface_config(interface, |config| config.forward = u8::from(on));
    if let Err(error) = written {
        // Put the port map back as it was: the change is all or nothing.
        if on {
            let _ = ports.remove(ifindex);
        } else {
            let _ = ports.insert(ifindex, ifindex, None, 0);
        }
        return Err(error);
    }
    Ok(ForwardReport {
        interface: interface.into(),
        forward: on,
        ipv4_forwarding,
        ipv6_forwarding,
        warnings,
    })
}
