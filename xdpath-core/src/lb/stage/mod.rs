//! The balancing and decapsulation stages.

mod established;
mod flow;
mod rewrite;
mod too_big;

pub use too_big::{
    answer as answer_too_big, AnswerBudget, ANSWERS_PER_SECOND, MIN_DEVICE_MTU, QUOTE_MAX,
};

use super::*;
use crate::packet::PacketMut;
use crate::parse::{FlowKey, Fragment};
use crate::stats::{Action, Reason};
use crate::verdict::Outcome;
use crate::wire::protocol;
use crate::wire::tcp::{FLAG_ACK, FLAG_SYN};

use established::{established_to_port_vip, may_be_established, Established};
use flow::{l3_offset, may_quote, quoted_flow, Flow};
use rewrite::{encapsulate, write_tags, Target};

/// The outcome of the balancing stage: a verdict, and for a redirect the
/// interface to send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbVerdict {
    /// The verdict.
    pub outcome: Outcome,
    /// The egress interface of a redirect, else 0.
    pub redirect_ifindex: u32,
    /// A frame too big for the path to its backend, answered
    /// (`LbTooBig`, tx): the MTU the answer announces
    /// ([`answer_too_big`] writes it); else 0.
    pub announced_mtu: u32,
}

#[inline(always)]
fn verdict(action: Action, reason: Reason) -> LbVerdict {
    LbVerdict {
        outcome: Outcome { action, reason },
        redirect_ifindex: 0,
        announced_mtu: 0,
    }
}

/// Balances a frame to a VIP: `None` when it is not for one (continue).
///
/// A frame to a VIP is counted for it once, at the end, whatever became of
/// it ([`LbTables::count_vip`]).
#[inline(always)]
pub fn lb_stage<P: PacketMut, T: LbTables>(
    packet: &mut P,
    key: &FlowKey,
    tables: &mut T,
) -> Option<LbVerdict> {
    let config = tables.lb_config()?;
    if config.flags & LB_ENABLED == 0 || key.ip_version == 0 || !config.may_be_vip(&key.destination)
    {
        return None;
    }
    // The frame's length before encapsulation (for the statistics).
    let frame_len = packet.len() as u64;
    let mut flow = Flow::of(key);
    // Only ICMP can quote a flow: TCP and UDP skip the call (a function of
    // its own, for its stack frame).
    if may_quote(key) && !quoted_flow(packet, key, &mut flow) {
        // A quoted header read part way may have overwritten fields.
        flow = Flow::of(key);
    }
    let established =
        if T::VIPS_BY_SLOT && config.flags & LB_ESTABLISHED_BY_SLOT != 0 && may_be_established(key)
        {
            established_to_port_vip(&flow, tables)
        } else {
            Established::NotLooked
        };
    let vip = match established {
        Established::Hit(vip, ..) => vip,
        _ => vip_of(&flow, tables)?,
    };
    if vip.flags & VIP_SAMPLED != 0 {
        tables.sample_vip(&*packet, vip.index);
    }
    let (verdict, backend, new_flow) =
        to_vip(packet, key, &config, &vip, &flow, established, tables);
    tables.count_vip(
        vip.index,
        backend,
        verdict.outcome.reason,
        frame_len,
        new_flow,
    );
    Some(verdict)
}

/// The VIP of the flow's destination: its port's, else an all-ports one.
#[inline(always)]
fn vip_of<T: LbTables>(flow: &Flow, tables: &T) -> Option<Vip> {
    let mut vip_key = VipKey::new(&flow.destination, flow.destination_port, flow.protocol);
    match tables.vip(&vip_key) {
        Some(vip) => Some(vip),
        None => {
            vip_key.port = 0;
            tables.vip(&vip_key)
        }
    }
}

/// A frame to `vip`: its verdict, the backend it went to (`NO_BACKEND`
/// when none) and whether it placed a new flow.
// Long (about 80 lines) on purpose: the balancing stage's stack frame is
// nearly full under the verifier's 512-byte limit (see `pick_backend`),
// and helpers would move that frame's layout; this is one straight pass,
// allow list to verdict.
#[inline(always)]
fn to_vip<P: PacketMut, T: LbTables>(
    packet: &mut P,
    key: &FlowKey,
    config: &LbConfig,
    vip: &Vip,
    flow: &Flow,
    established: Established,
    tables: &mut T,
) -> (LbVerdict, u32, bool) {
    let refused = |reason| (verdict(Action::Drop, reason), NO_BACKEND, false);
    if vip.flags & VIP_ALLOW_LIST != 0
        && !tables.source_allowed(vip.index, key.ip_version, &flow.source)
    {
        return refused(Reason::LbNotAllowed);
    }
    let source_only = vip.flags & VIP_SOURCE_HASH != 0;
    if key.fragment != Fragment::None as u8 && !source_only {
        return refused(Reason::LbFragment);
    }
    let picked = match established {
        Established::Hit(_, index, backend) => {
            tables.count_connection(CONN_HITS);
            Some((index, backend, false))
        }
        _ => {
            // The fast path looked the same key up in the established
            // table (a VIP that is not source-hashed keys its flows by
            // their ports).
            let established_missed =
                matches!(established, Established::Missed) && vip.flags & VIP_SOURCE_HASH == 0;
            pick_backend(vip, flow, key.tcp_flags, established_missed, tables)
        }
    };
    let Some((index, backend, new_flow)) = picked else {
        return refused(Reason::LbNoBackend);
    };
    let outer_ipv4 = backend.family == 4;
    let next_hop = if config.flags & LB_FIXED_NEXT_HOP != 0 {
        // The frame came to us: its destination MAC is ours. (A parsed
        // frame holds an Ethernet header: the reads cannot fail.)
        let (Some(high), Some(low)) = (packet.load::<u32>(0), packet.load::<u16>(4)) else {
            return refused(Reason::LbEncapFailed);
        };
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
        NextHop::Unreachable => {
            return (verdict(Action::Pass, Reason::LbNoRoute), NO_BACKEND, false)
        }
    };
    let overhead = OuterSpec::overhead(outer_ipv4, vip.encap == ENCAP_GUE);
    if let Some(mtu) = too_big::exceeded(&*packet, key, overhead, config, redirect_ifindex, tables)
    {
        return (too_big::verdict(&*packet, key, mtu), NO_BACKEND, false);
    }
    let target = Target {
        backend,
        vip: *vip,
        destination_mac,
        source_mac,
        hash: outer_hash(flow, source_only),
    };
    if !encapsulate(packet, key, config, &target) {
        return refused(Reason::LbEncapFailed);
    }
    let forwarded = LbVerdict {
        outcome: Outcome {
            action,
            reason: Reason::LbForwarded,
        },
        redirect_ifindex,
        announced_mtu: 0,
    };
    (forwarded, index, new_flow)
}

/// The flow's backend: from the connection tables while its backend
/// lives, else from the Maglev ring (and then recorded: a bare SYN or a
/// first datagram in the new-flow table, whose next frame moves it to the
/// established one; a TCP segment past its SYN in the established one).
/// `None`: no backend. `tcp_flags` are the frame's (an ICMP error has
/// none).
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
    established_missed: bool,
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
    let connection_key = ConnectionKey::new(
        &flow.source,
        &flow.destination,
        ports.0,
        ports.1,
        flow.protocol,
    );
    // The entry found or placed, and the table to record it in: one insert
    // at the end, so that the entry has one place on the stack.
    // A source-hashed VIP's entry is the client's, shared by all its
    // connections: a SYN of another one keeps to it (that is the point).
    let reopening = opening && vip.flags & VIP_SOURCE_HASH == 0;
    let found = if conntrack {
        known_connection(&connection_key, reopening, established_missed, tables)
    } else {
        None
    };
    let (connection, backend, record) = match found {
        Some((connection, backend, in_new_table)) => {
            tables.count_connection(CONN_HITS);
            // A flow the new-flow table holds is established by its
            // second frame (but a SYN sent again, or an ICMP error).
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
            // The flow hash only here: a hit does not need it.
            let hash = maglev_hash(flow, vip.flags & VIP_SOURCE_HASH != 0);
            let index = tables.ring_slot(vip.ring, hash % vip.ring_size);
            let backend = tables.backend(index)?;
            if backend.family == 0 {
                return None;
            }
            // A bare SYN, and the first frame of a flow that is not TCP,
            // start in the new-flow table: only the flow's next frame
            // finds it there and moves it to the established table. So a
            // flood of one SYN or one datagram per spoofed flow overwrites
            // slots and never evicts an established flow. A TCP segment
            // past the SYN that finds no entry (its SYN's slot taken by a
            // later flow, or a flow taken over mid-stream) is recorded as
            // established at once: written to a slot, it would push out
            // the slot's own flow, whose next segment would push it out in
            // turn, and two such flows whose segments alternate would miss
            // for ever (BENCHMARKS.md, session 23). So a flood of ACKs of
            // random flows still churns the established table.
            let table = if opening || flow.protocol != protocol::TCP {
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

/// The hash the flow's outer headers draw on ([`encap_hash`]). Inlined:
/// as a function of its own (kept so once for the balancing program's
/// frame, which has room for it now) its call and return cost a hit about
/// 20 ns on the project's VM, whose kernel sends every return through the
/// SRSO "safe RET" thunk (`scripts/lb-hot-flow-profile.sh`, BENCHMARKS.md,
/// session 28).
#[inline(always)]
fn outer_hash(flow: &Flow, source_only: bool) -> u32 {
    encap_hash(
        &flow.source,
        flow.source_port,
        flow.destination_port,
        source_only,
    )
}

/// The flow's Maglev hash ([`flow_hash`]). A function of its own: inlined
/// into `pick_backend`, its temporaries grew that frame to 144 bytes and
/// the balancing program past the verifier's 512-byte combined stack.
#[inline(never)]
fn maglev_hash(flow: &Flow, source_only: bool) -> u32 {
    flow_hash(
        &flow.source,
        flow.source_port,
        flow.destination_port,
        flow.protocol,
        source_only,
    )
}

/// The flow's entry in the connection tables and its backend, if that
/// still lives, and whether it came from the new-flow table: the
/// established table is looked in first.
///
/// `opening`: the frame is a bare SYN, a connection's first packet. Its
/// 5-tuple in the established table is an earlier connection's, whose
/// client used the same port again (ports are free at once when the
/// server closed first). While that entry's backend is in the ring, the
/// SYN keeps to it (a backend that takes new flows may take this one, and
/// a spoofed SYN then moves no flow). Once the backend is out of the ring
/// ([`BACKEND_OUT_OF_RING`]: drained, or down by its health check) the
/// entry must decide neither this SYN's backend nor its ACK's — a drained
/// backend would get a new connection (`lb_e2e` saw 8–35 of 300 new
/// connections reach one under load) — so it is removed and the SYN is
/// placed by the ring like any new flow; so is a SYN whose new-flow slot
/// names such a backend. A SYN sent again (its SYN-ACK lost) finds the
/// first one's new-flow entry and keeps that backend while it is in the
/// ring. The cost: a spoofed SYN carrying the exact 5-tuple of a flow on
/// a drained backend moves that flow (Katran places every SYN by its
/// ring, which exposes every flow so).
///
/// `established_missed`: the fast path has just looked `key` up in the
/// established table and not found it, so it is not looked up again.
#[inline(always)]
fn known_connection<T: LbTables>(
    key: &ConnectionKey,
    opening: bool,
    established_missed: bool,
    tables: &mut T,
) -> Option<(Connection, Backend, bool)> {
    let established = if established_missed {
        None
    } else {
        live_connection(ConnectionTable::Established, key, tables)
    };
    if let Some((connection, backend)) = established {
        if !opening || backend.flags & BACKEND_OUT_OF_RING == 0 {
            return Some((connection, backend, false));
        }
        tables.remove_established(key);
        return None;
    }
    let (connection, backend) = live_connection(ConnectionTable::New, key, tables)?;
    // The same for the new-flow slot an earlier connection left (slots are
    // not cleared when their flow is established; its established entry
    // may have been evicted since).
    if opening && backend.flags & BACKEND_OUT_OF_RING != 0 {
        return None;
    }
    Some((connection, backend, true))
}

/// A flow's entry in `table` and its backend, unless the backend is gone
/// (the slot empty or given to another). The backend read for that check
/// is the one the frame goes to: a hit reads the backend array once.
#[inline(always)]
fn live_connection<T: LbTables>(
    table: ConnectionTable,
    key: &ConnectionKey,
    tables: &mut T,
) -> Option<(Connection, Backend)> {
    let connection = tables.connection(table, key)?;
    let backend = tables.backend(connection.backend)?;
    (backend.family != 0 && backend.generation == connection.generation)
        .then_some((connection, backend))
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
