//! The kernel's routes and neighbours for the runtime: what
//! `bpf_fib_lookup` answers the kernel program per frame, asked of the
//! kernel here once a second for the addresses the balancer sends to (its
//! backends) and kept in the native tables.
//!
//! Asked through `ip -j route get` and `ip -j neigh show`: the same answer
//! the FIB gives, at a cost that only the housekeeping tick pays.

use std::net::IpAddr;
use std::process::Command;

use xdpath_core::lb::{mac_value, NextHop};
use xdpath_core::NativeTables;

use super::tap::mac_and_mtu;
use crate::control::interface_index;
use crate::lb::compile::address_bytes;

/// `ip -j ARGS` as JSON; `None` when it fails.
fn ip_json(args: &[&str]) -> Option<serde_json::Value> {
    let output = Command::new("ip").arg("-j").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for slot in &mut mac {
        *slot = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Whether the kernel forwards what arrives on `interface` for this
/// family: `bpf_fib_lookup` answers "forwarding disabled" otherwise.
fn forwarding(interface: &str, ipv4: bool) -> bool {
    let family = if ipv4 { "ipv4" } else { "ipv6" };
    std::fs::read_to_string(format!(
        "/proc/sys/net/{family}/conf/{interface}/forwarding"
    ))
    .is_ok_and(|value| value.trim() != "0")
}

/// The kernel's next hop towards `address` for a frame that came in on
/// `ingress` (named `ingress_name`).
pub fn next_hop(address: IpAddr, ingress: u32, ingress_name: &str) -> NextHop {
    if !forwarding(ingress_name, address.is_ipv4()) {
        return NextHop::Unreachable;
    }
    let text = address.to_string();
    let Some(route) = ip_json(&["route", "get", &text]) else {
        return NextHop::Unreachable;
    };
    let Some(route) = route.get(0) else {
        return NextHop::Unreachable;
    };
    let Some(device) = route.get("dev").and_then(|dev| dev.as_str()) else {
        return NextHop::Unreachable;
    };
    let via = route
        .get("gateway")
        .and_then(|gateway| gateway.as_str())
        .unwrap_or(&text);
    let Some(neighbours) = ip_json(&["neigh", "show", "to", via, "dev", device]) else {
        return NextHop::Unreachable;
    };
    let usable = neighbours.as_array().and_then(|list| {
        list.iter().find_map(|entry| {
            let states = entry.get("state")?.as_array()?;
            let bad = states
                .iter()
                .any(|state| matches!(state.as_str(), Some("FAILED" | "INCOMPLETE" | "NOARP")));
            if bad {
                return None;
            }
            parse_mac(entry.get("lladdr")?.as_str()?)
        })
    });
    let (Some(destination), Some(ifindex), Ok((source, _))) =
        (usable, interface_index(device), mac_and_mtu(device))
    else {
        return NextHop::Unreachable;
    };
    let (destination, source) = (mac_value(destination), mac_value(source));
    if ifindex == ingress {
        NextHop::Tx {
            destination,
            source,
        }
    } else {
        NextHop::Redirect {
            ifindex,
            destination,
            source,
        }
    }
}

/// Fills the tables' next hops for every backend, and the host's
/// addresses for decapsulation, from the kernel as it is now.
pub fn refresh(tables: &mut NativeTables, interface: &str) {
    let backends: Vec<[u8; 16]> = tables
        .lb
        .backends
        .values()
        .filter(|backend| backend.family != 0)
        .map(|backend| backend.address)
        .collect();
    let ingress = tables.ifindex;
    tables.lb.neighbours.clear();
    for address in backends {
        let ip = std::net::Ipv6Addr::from(address);
        let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
        tables
            .lb
            .neighbours
            .insert(address, next_hop(ip, ingress, interface));
    }
    if let Ok(addresses) = crate::lb::decap::local_addresses() {
        tables.lb.local_addresses = addresses.into_iter().map(address_bytes).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01"),
            Some([2, 0, 0x0a, 0xff, 0, 1])
        );
        assert_eq!(parse_mac("02:00:0a:ff:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:07"), None);
        assert_eq!(parse_mac("zz:00:0a:ff:00:01"), None);
    }
}
