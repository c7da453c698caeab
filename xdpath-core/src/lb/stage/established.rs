//! The fast path of a frame of an established flow: the connection table
//! looked in before the VIP table, the VIP found by its backend's slot
//! (`VipSlot`).

use super::*;
use flow::Flow;

/// What the look in the established table before the VIP found
/// ([`established_to_port_vip`]).
#[derive(Clone, Copy)]
pub(super) enum Established {
    /// Not looked (not a frame the fast path takes, or tables without
    /// `VIPS_BY_SLOT`).
    NotLooked,
    /// The flow's 5-tuple is not in the established table.
    Missed,
    /// It is, but the fast path cannot settle the frame (its backend gone
    /// or of unknown VIP; a VIP of another key in the slot — an all-ports
    /// VIP for a frame to a port —, source-hashed or untracked; or a slot
    /// being changed): the lookups as usual.
    NotSettled,
    /// An established flow of this port VIP, on backend `index` (read
    /// live by the fast path: not read again).
    Hit(Vip, u32, Backend),
}

/// Whether a frame may be settled by [`established_to_port_vip`]: TCP (but
/// a bare SYN, which may open a new connection on an old 5-tuple) or UDP,
/// not a fragment.
#[inline(always)]
pub(super) fn may_be_established(key: &FlowKey) -> bool {
    let bare_syn =
        key.protocol == protocol::TCP && key.tcp_flags & (FLAG_SYN | FLAG_ACK) == FLAG_SYN;
    (key.protocol == protocol::TCP || key.protocol == protocol::UDP)
        && !bare_syn
        && key.fragment == Fragment::None as u8
}

/// The fast path of a frame of an established flow: the connection table
/// first, then the VIP by its backend's slot ([`VipSlot`]), in place of
/// the VIP table's hash lookup. The frame's outcome is the one the usual
/// order (VIP, then connection) gives: the slot holds exactly the frame's
/// (address, port, protocol), so that lookup would have found this VIP
/// first; the VIP is neither source-hashed (its entries are keyed without
/// ports) nor untracked (it keeps no entries); and a hit of a frame that
/// is not a bare SYN keeps its backend whatever its flags.
// Inlined: as a function of its own, its call, and its answer returned
// through memory, took about half of what skipping the VIP lookup saved
// (hot flow 1.46 → 1.33–1.45 × the reference called, 1.24–1.27 inlined).
#[inline(always)]
pub(super) fn established_to_port_vip<T: LbTables>(flow: &Flow, tables: &mut T) -> Established {
    let key = ConnectionKey::new(
        &flow.source,
        &flow.destination,
        flow.source_port,
        flow.destination_port,
        flow.protocol,
    );
    let Some(connection) = tables.connection(ConnectionTable::Established, &key) else {
        return Established::Missed;
    };
    let Some(backend) = tables.backend(connection.backend) else {
        return Established::NotSettled;
    };
    let live = backend.family != 0 && backend.generation == connection.generation;
    let Some(slot) = u32::from(backend.vip).checked_sub(1).filter(|_| live) else {
        return Established::NotSettled;
    };
    match tables.vip_in_slot(slot, &key.destination, key.destination_port, key.protocol) {
        Some(vip) if vip.index == slot && vip.flags & (VIP_SOURCE_HASH | VIP_NO_CONNTRACK) == 0 => {
            Established::Hit(vip, connection.backend, backend)
        }
        _ => Established::NotSettled,
    }
}
