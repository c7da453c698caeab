//! The kernel's routes and neighbours for the runtime: what
//! `bpf_fib_lookup` answers the kernel program per frame, asked of the
//! kernel here once a second for the addresses the balancer sends to (its
//! backends) and kept in the native tables.
//!
//! Asked through `ip -j route get` and `ip -j neigh show`: the same answer
//! the FIB gives. On a thread of its own ([`spawn_watcher`]), so the frame
//! loop never waits for it; it publishes each view in a [`FibSlot`], from
//! which every serving thread takes it between batches.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use xdpath_core::forward::Route;
use xdpath_core::lb::{mac_value, NextHop};
use xdpath_core::native::{FamilyPrefixMap, OperatorMap, OperatorSet};
use xdpath_core::NativeTables;

use super::routes::{ip_json, usable_mac};
use super::tap::mac_and_mtu;
use crate::control::interface_index;
use crate::lb::compile::address_bytes;

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
/// `ingress` (named `ingress_name`), and the MTU of the device it leaves
/// by; `None`: unreachable.
pub fn next_hop(address: IpAddr, ingress: u32, ingress_name: &str) -> Option<(NextHop, u32)> {
    if !forwarding(ingress_name, address.is_ipv4()) {
        return None;
    }
    let text = address.to_string();
    let route = ip_json(&["route", "get", &text])?;
    let route = route.get(0)?;
    let device = route.get("dev").and_then(|dev| dev.as_str())?;
    let via = route
        .get("gateway")
        .and_then(|gateway| gateway.as_str())
        .unwrap_or(&text);
    let neighbours = ip_json(&["neigh", "show", "to", via, "dev", device])?;
    let destination = neighbours
        .as_array()
        .and_then(|list| list.iter().find_map(usable_mac))?;
    let ifindex = interface_index(device)?;
    let (source, mtu) = mac_and_mtu(device).ok()?;
    let (destination, source) = (mac_value(destination), mac_value(source));
    let hop = if ifindex == ingress {
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
    };
    Some((hop, mtu))
}

/// What the kernel says now: the next hop of each backend, and the
/// host's addresses (for decapsulation).
#[derive(Clone, Debug, Default)]
pub struct FibView {
    /// Next hop by backend address.
    pub neighbours: OperatorMap<[u8; 16], NextHop>,
    /// This host's addresses; `None` when they could not be listed.
    pub local_addresses: Option<OperatorSet<[u8; 16]>>,
    /// With forwarding on: the forwarding table and the interfaces the
    /// runtime may send out of.
    pub forwarding: Option<(FamilyPrefixMap<Route>, BTreeSet<u32>)>,
    /// The MTUs of the interfaces balanced frames leave by: the receiving
    /// one (index 0, as the kernel's `bpf_check_mtu` names it) and each
    /// redirect's, so that the runtime answers the frames too big for
    /// them as the kernel program does.
    pub mtus: OperatorMap<u32, u32>,
}

/// The backends' addresses in the tables, sorted (so that two lists of
/// the same backends compare equal).
pub fn backends(tables: &NativeTables) -> Vec<[u8; 16]> {
    let mut list: Vec<[u8; 16]> = tables
        .lb
        .backends
        .values()
        .filter(|backend| backend.family != 0)
        .map(|backend| backend.address)
        .collect();
    list.sort_unstable();
    list.dedup();
    list
}

/// Asks the kernel about `backends` for frames arriving on `interface`,
/// and with `forward` for its whole forwarding table.
pub fn resolve(backends: &[[u8; 16]], ingress: u32, interface: &str, forward: bool) -> FibView {
    // The egress devices' MTUs: the receiving one's under index 0 (as
    // the kernel's bpf_check_mtu names it), each redirect's under its own.
    let mut mtus = OperatorMap::default();
    if let Ok((_, mtu)) = mac_and_mtu(interface) {
        mtus.insert(0, mtu);
    }
    let mut neighbours = OperatorMap::default();
    for address in backends {
        let ip = std::net::Ipv6Addr::from(*address);
        let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
        let hop = match next_hop(ip, ingress, interface) {
            Some((hop, mtu)) => {
                if let NextHop::Redirect { ifindex, .. } = hop {
                    mtus.insert(ifindex, mtu);
                }
                hop
            }
            None => NextHop::Unreachable,
        };
        neighbours.insert(*address, hop);
    }
    let local_addresses = crate::lb::decap::local_addresses()
        .ok()
        .map(|addresses| addresses.into_iter().map(address_bytes).collect());
    FibView {
        neighbours,
        local_addresses,
        forwarding: forward.then(super::routes::forwarding_table),
        mtus,
    }
}

/// Puts a view into the tables.
pub fn install(tables: &mut NativeTables, view: FibView) {
    tables.lb.neighbours = view.neighbours;
    tables.lb.egress_mtus = view.mtus;
    if let Some(addresses) = view.local_addresses {
        tables.lb.local_addresses = addresses;
    }
    if let Some((routes, ports)) = view.forwarding {
        tables.routes = routes;
        tables.forward_ports = ports;
    }
}

/// Puts a view taken from a [`FibSlot`] into the tables: moved when this
/// is its last holder, else copied (with `--forward` the view holds the
/// whole main table, which one thread moves as before and only the other
/// threads of `--threads` copy).
pub fn install_shared(tables: &mut NativeTables, view: Arc<FibView>) {
    match Arc::try_unwrap(view) {
        Ok(owned) => install(tables, owned),
        Err(shared) => install(tables, FibView::clone(&shared)),
    }
}

/// The latest view, numbered: each serving thread installs every view
/// once (every thread needs every view, so a channel with one receiver
/// will not do). The last of the `readers` to take a view takes it out of
/// the slot, so that it holds it alone.
#[derive(Debug)]
pub struct FibSlot {
    generation: u64,
    view: Arc<FibView>,
    readers: usize,
    taken: usize,
}

impl FibSlot {
    /// An empty slot that `readers` threads take views from.
    pub fn new(readers: usize) -> Self {
        Self {
            generation: 0,
            view: Arc::default(),
            readers,
            taken: 0,
        }
    }

    /// Makes `view` the latest.
    pub fn publish(&mut self, view: FibView) {
        self.generation = self.generation.wrapping_add(1);
        self.view = Arc::new(view);
        self.taken = 0;
    }

    /// The latest view and its generation, if `seen` (the generation the
    /// caller installed last) is older; each reader takes each view once.
    pub fn take_newer(&mut self, seen: u64) -> Option<(u64, Arc<FibView>)> {
        if self.generation == seen {
            return None;
        }
        self.taken += 1;
        let view = if self.taken >= self.readers {
            std::mem::take(&mut self.view)
        } else {
            self.view.clone()
        };
        Some((self.generation, view))
    }
}

/// Asks the kernel again every `period` on a thread of its own (the
/// questions spawn `ip`, which the frame loop must not wait for), for the
/// backends last published in `backends`, into `slot` until the slot is
/// gone. The thread is in the caller's network namespace.
pub fn spawn_watcher(
    backends: Arc<Mutex<Vec<[u8; 16]>>>,
    ingress: u32,
    interface: String,
    forward: bool,
    period: Duration,
    slot: Weak<Mutex<FibSlot>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("xdpath-fib".into())
        .spawn(move || loop {
            std::thread::sleep(period);
            if slot.strong_count() == 0 {
                return;
            }
            let list = backends.lock().map(|list| list.clone()).unwrap_or_default();
            let view = resolve(&list, ingress, &interface, forward);
            let Some(live) = slot.upgrade() else {
                return;
            };
            // A statement, not the loop body's tail: the lock's guard
            // must go before `live` does.
            if let Ok(mut latest) = live.lock() {
                latest.publish(view);
            };
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(marker: u8) -> FibView {
        let mut view = FibView::default();
        view.neighbours.insert([marker; 16], NextHop::Unreachable);
        view
    }

    #[test]
    fn every_reader_takes_every_view_once_and_the_last_one_owns_it() {
        let mut slot = FibSlot::new(2);
        assert!(slot.take_newer(0).is_none(), "nothing published yet");
        slot.publish(view(1));
        let (generation, first) = slot.take_newer(0).expect("reader 0");
        assert!(slot.take_newer(generation).is_none(), "taken once");
        let (same, last) = slot.take_newer(0).expect("reader 1");
        assert_eq!(same, generation);
        assert!(last.neighbours.contains_key(&[1; 16]));
        drop(first);
        assert!(
            Arc::try_unwrap(last).is_ok(),
            "the last reader holds the view alone: moved, not copied"
        );
        // A reader that missed a view gets the newest.
        slot.publish(view(2));
        slot.publish(view(3));
        let (newest, taken) = slot.take_newer(generation).expect("newer");
        assert_eq!(newest, generation + 2);
        assert!(taken.neighbours.contains_key(&[3; 16]));
    }
}
