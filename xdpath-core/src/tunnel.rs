//! Looking inside tunnels: a UDP frame to the VXLAN port (4789, with the
//! I flag) or the Geneve port (6081, version 0, protocol type Ethernet,
//! options skipped) carries an Ethernet frame, parsed here into a second
//! [`FlowKey`] that holds the VNI (`FlowKey::tunnel` = VNI + 1).
//!
//! Only the filter stage asks, and only when a rule or rate limit names a
//! VNI (`FILTER_TUNNELS`), so frames that are not tunnelled pay for one
//! flag test. A tunnel whose header or inner frame cannot be parsed
//! yields no inner key: the frame is judged on its outer headers alone,
//! as every frame was before.

use crate::packet::Packet;
use crate::parse::{parse_at, FlowKey, Fragment};
use crate::stats::Reason;
use crate::wire::protocol;
use crate::wire::tunnel::{
    GeneveHeader, VxlanHeader, GENEVE_PORT, GENEVE_PROTOCOL_ETHERNET, VXLAN_PORT,
};

/// Covers every UDP payload offset the parser yields (at most
/// `MAX_HEADER_OFFSET` + 8).
const TUNNEL_OFFSET_MASK: usize = 0x7ff;

/// Whether the outer key may be a tunnel's: an unfragmented UDP datagram
/// to the VXLAN or the Geneve port.
#[inline(always)]
pub fn may_be_tunnel(outer: &FlowKey) -> bool {
    outer.protocol == protocol::UDP
        && outer.fragment == Fragment::None as u8
        && outer.udp_payload != 0
        && (outer.destination_port == VXLAN_PORT || outer.destination_port == GENEVE_PORT)
}

/// Where the inner Ethernet frame starts and the VNI, if the outer UDP
/// payload is a VXLAN or Geneve header that carries one.
#[inline(always)]
pub fn tunnel_header<P: Packet>(packet: &P, outer: &FlowKey) -> Option<(usize, u32)> {
    // The parser never leaves it past MAX_HEADER_OFFSET + 8; the mask (a
    // no-op on every value it can hold) bounds the register itself, which
    // the eBPF verifier needs: the load's own check was made on a copy.
    let at = usize::from(outer.udp_payload) & TUNNEL_OFFSET_MASK;
    if outer.destination_port == VXLAN_PORT {
        let header: VxlanHeader = packet.load(at)?;
        if !header.has_vni() {
            return None;
        }
        return Some((at + VxlanHeader::LEN, header.vni()));
    }
    let header: GeneveHeader = packet.load(at)?;
    if header.version() != 0 || header.protocol_type() != GENEVE_PROTOCOL_ETHERNET {
        return None;
    }
    Some((
        at + GeneveHeader::LEN + header.options_length(),
        header.vni(),
    ))
}

/// What [`inner_key`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerFrame {
    /// No tunnel: the frame is none, or its tunnel header is malformed
    /// (the kernel's VXLAN and Geneve devices drop such frames too). It is
    /// judged as a plain frame.
    NotTunnel,
    /// The inner frame, parsed into the key.
    Parsed,
    /// A tunnel around an inner frame the parser refuses, and why. The
    /// stack behind the tunnel device accepts some of these (more than
    /// eight IPv6 extension headers, headers beyond the deepest offset
    /// read, an IPv4 first fragment too short for its TCP header), so the
    /// filter drops them rather than judge the frame by its outer headers
    /// only: else a tenant's rule is bypassed by reshaping the frame.
    Malformed(Reason),
}

/// Parses the inner frame of a tunnelled frame into `inner` (with its
/// VNI + 1 in `inner.tunnel`). Call it only when [`may_be_tunnel`] holds.
///
/// Not inlined: in the eBPF build the inner parse is one subprogram,
/// verified once, whose branches end at its return.
#[inline(never)]
pub fn inner_key<P: Packet>(packet: &P, outer: &FlowKey, inner: &mut FlowKey) -> InnerFrame {
    let Some((start, vni)) = tunnel_header(packet, outer) else {
        return InnerFrame::NotTunnel;
    };
    match parse_at(packet, start, inner) {
        Ok(layers) => {
            inner.class = layers.class as u8;
            inner.tunnel = vni + 1;
            InnerFrame::Parsed
        }
        Err(reason) => InnerFrame::Malformed(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{geneve_frame, vxlan_frame, FrameSpec, Network, Transport};
    use crate::parse::{ipv4_mapped, parse};
    use crate::SlicePacket;
    use std::vec::Vec;

    fn inner_udp() -> Vec<u8> {
        FrameSpec::new(
            Network::V4([192, 168, 1, 5], [192, 168, 1, 9]),
            Transport::udp(1000, 53),
        )
        .build()
    }

    fn inner_of(frame: &[u8]) -> Option<FlowKey> {
        let packet = SlicePacket::new(frame);
        let outer = parse(&packet).ok()?.key;
        if !may_be_tunnel(&outer) {
            return None;
        }
        let mut inner = FlowKey::default();
        (inner_key(&packet, &outer, &mut inner) == InnerFrame::Parsed).then_some(inner)
    }

    #[test]
    fn vxlan_and_geneve_inner_keys() {
        let payload = inner_udp();
        let inner = inner_of(&vxlan_frame(1001, &payload)).expect("a VXLAN inner key");
        assert_eq!(inner.tunnel, 1002);
        assert_eq!(inner.source, ipv4_mapped([192, 168, 1, 5]));
        assert_eq!(inner.destination_port, 53);
        let inner = inner_of(&geneve_frame(7, 12, &payload)).expect("a Geneve inner key");
        assert_eq!(inner.tunnel, 8);
        assert_eq!(inner.destination, ipv4_mapped([192, 168, 1, 9]));
    }

    #[test]
    fn malformed_tunnels_have_no_inner_key() {
        use crate::build::{geneve_header, tunnelled, vxlan_header, UNDERLAY};
        let payload = inner_udp();
        // Well-formed outer headers around a cut tunnel header or a cut
        // inner frame: no panic, and no inner key.
        for end in 0..8 {
            let cut = tunnelled(UNDERLAY, VXLAN_PORT, &vxlan_header(1)[..end], &[]);
            assert_eq!(inner_of(&cut), None, "VXLAN header cut at {end}");
        }
        for end in 0..payload.len() {
            let cut = tunnelled(UNDERLAY, VXLAN_PORT, &vxlan_header(1), &payload[..end]);
            assert_eq!(inner_of(&cut), None, "inner frame cut at {end}");
        }
        // Geneve options longer than the frame.
        let mut header = geneve_header(7, 0);
        header[0] = 0x3f;
        assert_eq!(
            inner_of(&tunnelled(UNDERLAY, GENEVE_PORT, &header, &payload)),
            None
        );
        // VXLAN without the I flag; Geneve carrying IPv4 (0x0800), not Ethernet.
        let mut no_flag = vxlan_header(1);
        no_flag[0] = 0;
        assert_eq!(
            inner_of(&tunnelled(UNDERLAY, VXLAN_PORT, &no_flag, &payload)),
            None
        );
        let mut not_ethernet = geneve_header(7, 0);
        not_ethernet[2..4].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(
            inner_of(&tunnelled(UNDERLAY, GENEVE_PORT, &not_ethernet, &payload)),
            None
        );
    }
}
