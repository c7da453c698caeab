//! The kernel's FIB as the runtime's forwarding stage sees it: the main
//! table's routes and the neighbour table, turned into one longest-prefix
//! table of [`Route`]s (what `bpf_fib_lookup` answers per frame in the
//! kernel), taken again each second by the FIB watcher.
//!
//! - A route through a gateway: forward to the gateway's MAC, or "no
//!   neighbour" while it is unresolved.
//! - A connected route: "no neighbour" for the prefix, and a host entry
//!   for each resolved neighbour in it.
//! - Blackhole, unreachable, prohibit and multipath routes, link-local
//!   destinations and the host's own addresses: left to the stack.
//!
//! Not followed: policy routing (other tables, rules) and the egress MTU
//! (an oversized frame is forwarded here where the kernel would pass it).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

use serde_json::Value;
use xdpath_core::filter::PrefixKey;
use xdpath_core::forward::Route;
use xdpath_core::lb::mac_value;
use xdpath_core::native::FamilyPrefixMap;

use super::tap::mac_and_mtu;
use crate::control::interface_index;
use crate::lb::compile::address_bytes;

/// `ip -j ARGS` as JSON; `None` when it fails.
pub(super) fn ip_json(args: &[&str]) -> Option<serde_json::Value> {
    let output = Command::new("ip").arg("-j").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    serde_json::from_slice(&output.stdout).ok()
}

pub(super) fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for slot in &mut mac {
        *slot = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The MAC of an `ip -j neigh` entry that can be sent to: not a failed,
/// incomplete or NOARP one.
pub(super) fn usable_mac(entry: &Value) -> Option<[u8; 6]> {
    let states = entry.get("state")?.as_array()?;
    let bad = states
        .iter()
        .any(|state| matches!(state.as_str(), Some("FAILED" | "INCOMPLETE" | "NOARP")));
    if bad {
        return None;
    }
    parse_mac(entry.get("lladdr")?.as_str()?)
}

/// A resolved neighbour: its address, device and MAC.
struct Neighbour {
    address: IpAddr,
    device: String,
    mac: [u8; 6],
}

fn neighbours() -> Vec<Neighbour> {
    let Some(Value::Array(entries)) = ip_json(&["neigh", "show"]) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| {
            Some(Neighbour {
                mac: usable_mac(entry)?,
                address: entry.get("dst")?.as_str()?.parse().ok()?,
                device: entry.get("dev")?.as_str()?.to_string(),
            })
        })
        .collect()
}

/// `dst` of a route as a prefix in the mapped 128-bit space.
fn prefix(dst: &str, ipv4: bool) -> Option<PrefixKey> {
    let (address, length) = match dst {
        "default" => (if ipv4 { "0.0.0.0" } else { "::" }, 0),
        _ => match dst.split_once('/') {
            Some((address, length)) => (address, length.parse().ok()?),
            None => (dst, if ipv4 { 32 } else { 128 }),
        },
    };
    let address: IpAddr = address.parse().ok()?;
    let (offset, most) = if address.is_ipv4() {
        (96, 32)
    } else {
        (0, 128)
    };
    (length <= most).then(|| PrefixKey {
        prefix_len: offset + length,
        address: address_bytes(address),
    })
}

fn host(address: IpAddr) -> PrefixKey {
    PrefixKey {
        prefix_len: 128,
        address: address_bytes(address),
    }
}

fn contains(prefix: &PrefixKey, address: IpAddr) -> bool {
    xdpath_core::filter::prefix_contains(
        &xdpath_core::filter::mask(&prefix.address, prefix.prefix_len as u8),
        prefix.prefix_len as u8,
        &address_bytes(address),
    )
}

/// The kernel's main table and neighbours as a forwarding table, and the
/// interfaces the runtime may send out of (every one but loopback).
pub fn forwarding_table() -> (FamilyPrefixMap<Route>, BTreeSet<u32>) {
    let mut table = FamilyPrefixMap::default();
    let known = neighbours();
    for ipv4 in [true, false] {
        let family = if ipv4 { "-4" } else { "-6" };
        let Some(Value::Array(routes)) = ip_json(&[family, "route", "show", "table", "main"])
        else {
            continue;
        };
        for entry in &routes {
            insert_route(&mut table, entry, ipv4, &known);
        }
    }
    // Link-local destinations and the host's own addresses stay here.
    if let Some(link_local) = prefix("fe80::/10", false) {
        table.insert(link_local, Route::NotForwarded);
    }
    if let Ok(addresses) = crate::lb::decap::local_addresses() {
        for address in addresses {
            table.insert(host(address), Route::NotForwarded);
        }
    }
    (table, sending_ports())
}

/// Forwarding out of `device` to `mac`, from the device's own MAC; `None`
/// when the device is gone.
fn forward_route(device: &str, mac: [u8; 6]) -> Option<Route> {
    let ifindex = interface_index(device)?;
    let (source, _) = mac_and_mtu(device).ok()?;
    Some(Route::Forward {
        ifindex,
        destination_mac: mac_value(mac),
        source_mac: mac_value(source),
    })
}

/// Enters one route of `ip -j route show` (and, for a connected route, its
/// resolved neighbours) into `table`; a route without a usable destination
/// is skipped.
fn insert_route(
    table: &mut FamilyPrefixMap<Route>,
    entry: &Value,
    ipv4: bool,
    known: &[Neighbour],
) {
    let Some(key) = entry
        .get("dst")
        .and_then(Value::as_str)
        .and_then(|dst| prefix(dst, ipv4))
    else {
        return;
    };
    let kind = entry
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("unicast");
    let device = entry.get("dev").and_then(Value::as_str);
    let (Some(device), "unicast", None) = (device, kind, entry.get("nexthops")) else {
        table.insert(key, Route::NotForwarded);
        return;
    };
    let gateway = entry
        .get("gateway")
        .and_then(Value::as_str)
        .and_then(|gateway| gateway.parse::<IpAddr>().ok());
    let resolved = |address: IpAddr| {
        known
            .iter()
            .find(|neighbour| neighbour.address == address && neighbour.device == device)
            .and_then(|neighbour| forward_route(device, neighbour.mac))
    };
    match gateway {
        Some(gateway) => {
            table.insert(key, resolved(gateway).unwrap_or(Route::NoNeighbour));
        }
        None => {
            table.insert(key, Route::NoNeighbour);
            for neighbour in known
                .iter()
                .filter(|neighbour| neighbour.device == device && contains(&key, neighbour.address))
            {
                if let Some(route) = forward_route(device, neighbour.mac) {
                    table.insert(host(neighbour.address), route);
                }
            }
        }
    }
}

/// The ifindex of every interface but loopback (none when `ip` fails).
fn sending_ports() -> BTreeSet<u32> {
    match ip_json(&["link", "show"]) {
        Some(Value::Array(links)) => links
            .iter()
            .filter(|link| link.get("link_type").and_then(Value::as_str) != Some("loopback"))
            .filter_map(|link| link.get("ifindex")?.as_u64())
            .filter_map(|index| u32::try_from(index).ok())
            .collect(),
        _ => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_destinations_become_prefixes() {
        let default4 = prefix("default", true).expect("default");
        assert_eq!(default4.prefix_len, 96, "IPv4's whole space");
        assert_eq!(prefix("default", false).map(|key| key.prefix_len), Some(0));
        let net = prefix("10.1.0.0/16", true).expect("prefix");
        assert_eq!(net.prefix_len, 112);
        assert!(contains(&net, "10.1.2.3".parse().expect("address")));
        assert!(!contains(&net, "10.2.0.1".parse().expect("address")));
        assert_eq!(
            prefix("10.1.2.3", true).map(|key| key.prefix_len),
            Some(128)
        );
        assert_eq!(
            prefix("2001:db8::/32", false).map(|key| key.prefix_len),
            Some(32)
        );
        assert!(prefix("10.0.0.0/33", true).is_none());
        assert!(prefix("nonsense", true).is_none());
    }

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
