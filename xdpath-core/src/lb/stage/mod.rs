//! The balancing and decapsulation stages.

use super::*;
use crate::packet::{Packet, PacketMut};
use crate::parse::{FlowKey, Fragment};
use crate::stats::{Action, Reason};
use crate::verdict::Outcome;
use crate::wire::protocol;
use crate::wire::tcp::{FLAG_ACK, FLAG_SYN};

/// ICMP "destination unreachable / fragmentation needed", as
/// `FlowKey::destination_port` holds it (`type << 8 | code`).
const ICMP_FRAGMENTATION_NEEDED: u16 = 3 << 8 | 4;
/// ICMPv6 "packet too big" (type 2).
const ICMPV6_PACKET_TOO_BIG: u8 = 2;

/// The flow a frame belongs to, client → VIP. Aligned, addresses first,
/// for the eBPF stack.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Flow {
    source: [u8; 16],
    destination: [u8; 16],
    source_port: u16,
    destination_port: u16,
    protocol: u8,
    /// An ICMP error quoting the flow, not one of its packets.
    icmp_error: bool,
}

impl Flow {
    #[inline(always)]
    fn of(key: &FlowKey) -> Self {
        Self {
            source: key.source,
            destination: key.destination,
            source_port: key.source_port,
            destination_port: key.destination_port,
            protocol: key.protocol,
            icmp_error: false,
        }
    }
}

#[inline(always)]
fn l3_offset(key: &FlowKey) -> usize {
    14 + 4 * usize::from(key.vlan_count)
}

/// For "fragmentation needed" / "packet too big": the flow of the quoted
/// header (a VIP's packet to its client), turned round, written into
/// `flow`; false when the frame is not such an error. Only for ICMPv6
/// straight after the fixed header. Not inlined (a stack frame of its own),
/// and writing words straight into the caller's `Flow`: byte arrays on the
/// eBPF stack cost frames the verifier adds up.
#[inline(never)]
fn quoted_flow<P: Packet>(packet: &P, key: &FlowKey, flow: &mut Flow) -> bool {
    quoted_flow_into(packet, key, flow).is_some()
}

#[inline(always)]
fn quoted_flow_into<P: Packet>(packet: &P, key: &FlowKey, flow: &mut Flow) -> Option<()> {
    let l3 = l3_offset(key);
    let l4 = if key.ip_version == 4 {
        if key.protocol != protocol::ICMP || key.destination_port != ICMP_FRAGMENTATION_NEEDED {
            return None;
        }
        let version_ihl: u8 = packet.load(l3)?;
        l3 + 4 * usize::from(version_ihl & 0x0f)
    } else {
        if key.protocol != protocol::ICMPV6
            || (key.destination_port >> 8) as u8 != ICMPV6_PACKET_TOO_BIG
        {
            return None;
        }
        let next_header: u8 = packet.load(l3 + 6)?;
        if next_header != protocol::ICMPV6 {
            return None;
        }
        l3 + 40
    };
    let quoted = l4 + 8;
    // The quoted packet went VIP → client: its destination is our source.
    let ports_at = if key.ip_version == 4 {
        let version_ihl: u8 = packet.load(quoted)?;
        flow.protocol = packet.load(quoted + 9)?;
        let vip: u32 = packet.load(quoted + 12)?;
        let client: u32 = packet.load(quoted + 16)?;
        set_ipv4_mapped(&mut flow.destination, vip);
        set_ipv4_mapped(&mut flow.source, client);
        quoted + 4 * usize::from(version_ihl & 0x0f)
    } else {
        flow.protocol = packet.load(quoted + 6)?;
        set_words(
            &mut flow.destination,
            packet.load(quoted + 8)?,
            packet.load(quoted + 16)?,
        );
        set_words(
            &mut flow.source,
            packet.load(quoted + 24)?,
            packet.load(quoted + 32)?,
        );
        quoted + 40
    };
    let vip_port: u16 = packet.load(ports_at)?;
    let client_port: u16 = packet.load(ports_at + 2)?;
    flow.destination_port = u16::from_be(vip_port);
    flow.source_port = u16::from_be(client_port);
    flow.icmp_error = true;
    Some(())
}

/// Sets an 8-aligned address from its two memory words.
#[inline(always)]
fn set_words(address: &mut [u8; 16], high: u64, low: u64) {
    let words = address.as_mut_ptr().cast::<u64>();
    // SAFETY: 16 writable bytes, 8-aligned (a first or third field of the
    // 8-aligned `Flow`).
    unsafe {
        core::ptr::write(words, high);
        core::ptr::write(words.add(1), low);
    }
}

/// Sets an 8-aligned address to `::ffff:` and an IPv4 address (as its
/// memory word).
#[inline(always)]
fn set_ipv4_mapped(address: &mut [u8; 16], ipv4: u32) {
    let marker = u32::from_ne_bytes([0, 0, 0xff, 0xff]);
    let words = address.as_mut_ptr().cast::<u32>();
    // SAFETY: as for `set_words`.
    unsafe {
        core::ptr::write(words, 0);
        core::ptr::write(words.add(1), 0);
        core::ptr::write(words.add(2), marker);
        core::ptr::write(words.add(3), ipv4);
    }
}

/// The outcome of the balancing stage: a verdict, and for a redirect the
/// interface to send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbVerdict {
    /// The verdict.
    pub outcome: Outcome,
    /// The egress interface of a redirect, else 0.
    pub redirect_ifindex: u32,
}

#[inline(always)]
fn verdict(action: Action, reason: Reason) -> Option<LbVerdict> {
    Some(LbVerdict {
        outcome: Outcome { action, reason },
        redirect_ifindex: 0,
    })
}

/// Balances a frame to a VIP: `None` when it is not for one (continue).
///
/// `frame_len` is the frame's length before encapsulation (for the
/// statistics).
#[inline(always)]
pub fn lb_stage<P: PacketMut, T: LbTables>(
    packet: &mut P,
    key: &FlowKey,
    tables: &mut T,
) -> Option<LbVerdict> {
    let config = tables.lb_config();
    if config.flags & LB_ENABLED == 0 || key.ip_version == 0 || !config.may_be_vip(&key.destination)
    {
        return None;
    }
    let frame_len = packet.len() as u64;
    let mut flow = Flow::of(key);
    if !quoted_flow(packet, key, &mut flow) {
        // A quoted header read part way may have overwritten fields.
        flow = Flow::of(key);
    }
    let mut vip_key = VipKey {
        address: flow.destination,
        port: flow.destination_port,
        protocol: flow.protocol,
        reserved: [0; 5],
    };
    let vip = match tables.vip(&vip_key) {
        Some(vip) => vip,
        None => {
            vip_key.port = 0;
            tables.vip(&vip_key)?
        }
    };
    let source_only = vip.flags & VIP_SOURCE_HASH != 0;
    if key.fragment != Fragment::None as u8 && !source_only {
        return verdict(Action::Drop, Reason::LbFragment);
    }
    let hash = flow_hash(
        &flow.source,
        flow.source_port,
        flow.destination_port,
        flow.protocol,
        source_only,
    );
    let Some((index, backend, new_flow)) = pick_backend(&vip, &flow, key.tcp_flags, hash, tables)
    else {
        return verdict(Action::Drop, Reason::LbNoBackend);
    };
    let outer_ipv4 = backend.family == 4;
    let next_hop = if config.flags & LB_FIXED_NEXT_HOP != 0 {
        // The frame came to us: its destination MAC is ours.
        let high: u32 = packet.load(0)?;
        let low: u16 = packet.load(4)?;
        NextHop::Tx {
            destination: config.next_hop_mac,
            source: u64::from(u32::from_be(high)) << 16 | u64::from(u16::from_be(low)),
        }
    } else {
        tables.next_hop(&backend.address, outer_ipv4)
    };
    let (action, redirect_ifindex, destination_mac, source_mac) = match next_hop {
        NextHop::Tx {
            destination,
            source,
        } => (Action::Tx, 0, destination, source),
        NextHop::Redirect {
            ifindex,
            destination,
            source,
        } => (Action::Redirect, ifindex, destination, source),
        NextHop::Unreachable => return verdict(Action::Pass, Reason::LbNoRoute),
    };
    let target = Target {
        backend,
        vip,
        destination_mac,
        source_mac,
        hash,
    };
    if !encapsulate(packet, key, &config, &target) {
        return verdict(Action::Drop, Reason::LbEncapFailed);
    }
    tables.count_lb(vip.index, index, frame_len, new_flow);
    Some(LbVerdict {
        outcome: Outcome {
            action,
            reason: Reason::LbForwarded,
        },
        redirect_ifindex,
    })
}

/// The flow's backend: from the connection tables while its backend
/// lives, else from the Maglev ring (and then recorded: a bare SYN in the
/// new-flow table, anything else in the established one). `None`: no
/// backend. `tcp_flags` are the frame's (an ICMP error has none).
///
/// Whether the frame is a bare SYN is worked out here, not kept in `Flow`:
/// the balancing stage's stack is nearly full (the verifier allows 512
/// bytes for the stage and this frame together, rounded to 16 each), and
/// one more field there cost 16 bytes of it.
#[inline(never)]
fn pick_backend<T: LbTables>(
    vip: &Vip,
    flow: &Flow,
    tcp_flags: u8,
    hash: u32,
    tables: &mut T,
) -> Option<(u32, Backend, bool)> {
    let conntrack = vip.flags & VIP_NO_CONNTRACK == 0;
    let opening = flow.protocol == protocol::TCP
        && tcp_flags & (FLAG_SYN | FLAG_ACK) == FLAG_SYN
        && !flow.icmp_error;
    // A source-hashed VIP keeps a whole client on one backend: one entry
    // per client, which its fragments (no ports past the first) share too.
    let ports = if vip.flags & VIP_SOURCE_HASH != 0 {
        (0, 0)
    } else {
        (flow.source_port, flow.destination_port)
    };
    let connection_key = ConnectionKey {
        source: flow.source,
        destination: flow.destination,
        source_port: ports.0,
        destination_port: ports.1,
        protocol: flow.protocol,
        reserved: [0; 3],
    };
    // The entry found or placed, and the table to record it in: one insert
    // at the end, so that the entry has one place on the stack.
    let found = if conntrack {
        known_connection(&connection_key, tables)
    } else {
        None
    };
    let (connection, backend, record) = match found {
        Some((connection, in_new_table)) => {
            tables.count_connection(CONN_HITS);
            let backend = tables.backend(connection.backend)?;
            // Past its SYN, a flow the new-flow table holds is established.
            let established = in_new_table && !opening && !flow.icmp_error;
            (
                connection,
                backend,
                established.then_some(ConnectionTable::Established),
            )
        }
        None => {
            if conntrack {
                tables.count_connection(CONN_MISSES);
            }
            if vip.ring_size == 0 {
                return None;
            }
            let index = tables.ring_slot(vip.ring, hash % vip.ring_size);
            let backend = tables.backend(index)?;
            if backend.family == 0 {
                return None;
            }
            let table = if opening {
                ConnectionTable::New
            } else {
                ConnectionTable::Established
            };
            let connection = Connection {
                backend: index,
                generation: backend.generation,
            };
            // An ICMP error is not a new flow: it must not place one.
            let place = conntrack && !flow.icmp_error;
            (connection, backend, place.then_some(table))
        }
    };
    let new_flow = found.is_none() && !flow.icmp_error;
    if let Some(table) = record {
        tables.insert_connection(table, &connection_key, &connection);
    }
    Some((connection.backend, backend, new_flow))
}

/// The flow's entry in the connection tables, if its backend still
/// lives, and whether it came from the new-flow table: the established
/// table is looked in first.
#[inline(always)]
fn known_connection<T: LbTables>(
    key: &ConnectionKey,
    tables: &mut T,
) -> Option<(Connection, bool)> {
    if let Some(connection) = live_connection(ConnectionTable::Established, key, tables) {
        return Some((connection, false));
    }
    live_connection(ConnectionTable::New, key, tables).map(|connection| (connection, true))
}

/// A flow's entry in `table`, unless its backend is gone (the slot empty
/// or given to another).
#[inline(always)]
fn live_connection<T: LbTables>(
    table: ConnectionTable,
    key: &ConnectionKey,
    tables: &mut T,
) -> Option<Connection> {
    let connection = tables.connection(table, key)?;
    let backend = tables.backend(connection.backend)?;
    (backend.family != 0 && backend.generation == connection.generation).then_some(connection)
}

/// Where an encapsulated frame goes (a BPF function takes at most five
/// arguments, hence one struct; aligned for the eBPF stack).
#[repr(C, align(8))]
struct Target {
    backend: Backend,
    vip: Vip,
    destination_mac: u64,
    source_mac: u64,
    hash: u32,
}

/// Puts the outer headers between the L2 header (kept, with its VLAN tags)
/// and the inner IP packet. Not inlined, for its own stack frame.
#[inline(never)]
fn encapsulate<P: PacketMut>(
    packet: &mut P,
    key: &FlowKey,
    config: &LbConfig,
    target: &Target,
) -> bool {
    let (backend, vip, hash) = (&target.backend, &target.vip, target.hash);
    let l3 = l3_offset(key);
    let outer_source = if backend.family == 4 {
        outer_source(&config.source_v4, config.source_v4_len, hash)
    } else {
        outer_source(&config.source_v6, config.source_v6_len, hash)
    };
    let inner_ipv4 = key.ip_version == 4;
    let (inner_length, tos) = if inner_ipv4 {
        let Some(tos) = packet.load::<u8>(l3 + 1) else {
            return false;
        };
        let Some(length) = packet.load::<u16>(l3 + 2) else {
            return false;
        };
        (u16::from_be(length), tos)
    } else {
        let Some(first) = packet.load::<u16>(l3) else {
            return false;
        };
        let Some(payload) = packet.load::<u16>(l3 + 4) else {
            return false;
        };
        (
            u16::from_be(payload).saturating_add(40),
            (u16::from_be(first) >> 4) as u8,
        )
    };
    let tags: u64 = if key.vlan_count == 0 {
        0
    } else {
        match packet.load::<u64>(12) {
            Some(tags) => tags,
            None => return false,
        }
    };
    let spec = OuterSpec {
        source: outer_source,
        destination: backend.address,
        hash,
        inner_length,
        gue_port: if vip.encap == ENCAP_GUE {
            vip.gue_port
        } else {
            0
        },
        outer_ipv4: backend.family == 4,
        inner_ipv4,
        tos,
    };
    if !packet.adjust_head(-(spec.length() as i32)) {
        return false;
    }
    // Short-circuit: a failed write ends it (one verifier state, not two).
    write_ethernet(packet, target.destination_mac, target.source_mac)
        && write_tags(packet, key.vlan_count, tags)
        && store_be16(packet, l3 - 2, spec.ethertype())
        && write_outer(packet, l3, &spec)
}

/// The two MACs of an Ethernet header, in three words.
#[inline(always)]
fn write_ethernet<P: PacketMut>(packet: &mut P, destination: u64, source: u64) -> bool {
    store_be32(packet, 0, (destination >> 16) as u32)
        && store_be16(packet, 4, destination as u16)
        && store_be16(packet, 6, (source >> 32) as u16)
        && store_be32(packet, 8, source as u32)
}

/// Puts back the VLAN tags read before a head adjustment (as raw bytes).
#[inline(always)]
fn write_tags<P: PacketMut>(packet: &mut P, vlan_count: u8, tags: u64) -> bool {
    match vlan_count {
        0 => true,
        1 => {
            let [t0, t1, t2, t3, _, _, _, _] = tags.to_ne_bytes();
            packet.store(12, u32::from_ne_bytes([t0, t1, t2, t3]))
        }
        _ => packet.store(12, tags),
    }
}

/// On a backend: strips IPIP or GUE addressed to this host, leaving the
/// inner packet for the stack. `None` when the frame is not one to strip.
#[inline(always)]
pub fn decap_stage<P: PacketMut, T: LbTables>(
    packet: &mut P,
    key: &FlowKey,
    tables: &T,
) -> Option<Outcome> {
    let config = tables.decap_config();
    if config.flags & DECAP_ENABLED == 0 || key.fragment != Fragment::None as u8 {
        return None;
    }
    let l3 = l3_offset(key);
    let header_length = if key.ip_version == 4 {
        let version_ihl: u8 = packet.load(l3)?;
        4 * usize::from(version_ihl & 0x0f)
    } else if key.ip_version == 6 {
        // No extension headers: the tunnel protocol right after the header.
        let next_header: u8 = packet.load(l3 + 6)?;
        if next_header != key.protocol {
            return None;
        }
        40
    } else {
        return None;
    };
    let (strip, reason) = match key.protocol {
        protocol::IPIP | protocol::IPV6 => (header_length, Reason::DecapIpip),
        protocol::UDP if config.gue_port != 0 && key.destination_port == config.gue_port => {
            (header_length + 8, Reason::DecapGue)
        }
        _ => return None,
    };
    if !tables.is_local_address(&key.destination) {
        return None;
    }
    let version: u8 = packet.load(l3 + strip)?;
    let ethertype: u16 = match version >> 4 {
        4 => 0x0800,
        6 => 0x86dd,
        _ => return None,
    };
    let macs: u64 = packet.load(0)?;
    let macs_tail: u32 = packet.load(8)?;
    let tags: u64 = if key.vlan_count == 0 {
        0
    } else {
        packet.load(12)?
    };
    if !packet.adjust_head(strip as i32) {
        return None;
    }
    let written = packet.store(0, macs)
        && packet.store(8, macs_tail)
        && write_tags(packet, key.vlan_count, tags)
        && store_be16(packet, l3 - 2, ethertype);
    Some(Outcome {
        action: if written { Action::Pass } else { Action::Drop },
        reason: if written {
            reason
        } else {
            Reason::LbEncapFailed
        },
    })
}
