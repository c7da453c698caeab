//! L3 forwarding: a frame not for this host, routed by the kernel's FIB,
//! leaves by another interface without going through the stack.
//!
//! The stage runs last, on frames every earlier stage passed. It asks the
//! FIB (in the kernel `bpf_fib_lookup`, natively a route table) where the
//! frame goes; on a route out of an interface where forwarding is on, it
//! rewrites the MACs, decrements the TTL (IPv4, with an incremental header
//! checksum update) or the hop limit (IPv6), and redirects the frame. What
//! it cannot finish is left to the stack, which does it properly: an
//! unresolved neighbour (the stack resolves it), a TTL that runs out here
//! (the stack sends ICMP time exceeded), a frame too big for the egress MTU
//! (ICMP too big), local delivery, and VLAN-tagged frames (see below).
//!
//! VLAN: tagged frames are left to the stack. Forwarding them at XDP
//! would mean popping or pushing tags to match the egress device, which
//! `bpf_fib_lookup` does not describe (it answers with the VLAN device,
//! which XDP cannot redirect to).

use crate::packet::PacketMut;
use crate::parse::FlowKey;
use crate::stats::{Action, Reason};
use crate::verdict::Outcome;
use crate::wire::{checksum, EthernetHeader, Ipv4Header, Ipv6Header};

/// Offset of the IPv4 TTL in an untagged frame (Ethernet 14 + 8).
pub const IPV4_TTL_OFFSET: usize = EthernetHeader::LEN + Ipv4Header::TTL;
/// Offset of the IPv4 header checksum (network byte order) in an
/// untagged frame (Ethernet 14 + 10).
pub const IPV4_CHECKSUM_OFFSET: usize = EthernetHeader::LEN + Ipv4Header::CHECKSUM;
/// Offset of the IPv6 hop limit in an untagged frame (Ethernet 14 + 7).
pub const IPV6_HOP_LIMIT_OFFSET: usize = EthernetHeader::LEN + Ipv6Header::HOP_LIMIT;

/// Where the FIB sends a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Out of `ifindex`, to `destination_mac`, from `source_mac` (both as
    /// [`crate::lb::mac_value`]).
    Forward {
        /// The egress interface.
        ifindex: u32,
        /// The next hop's MAC.
        destination_mac: u64,
        /// The egress interface's MAC.
        source_mac: u64,
    },
    /// Routed, but the next hop's MAC is not known yet.
    NoNeighbour,
    /// Anything else: for this host, no route, blackhole, too big,
    /// forwarding off. The stack decides.
    NotForwarded,
}

/// What the forwarding stage needs besides the frame.
pub trait ForwardTables {
    /// Whether forwarding is on for the interface the frame arrived on.
    fn forwarding_enabled(&self) -> bool;
    /// The FIB's answer for the flow (`frame_len`: for the MTU check).
    fn route(&mut self, key: &FlowKey, frame_len: u32) -> Route;
    /// Whether forwarding is on for egress interface `ifindex` (in the
    /// kernel: it is in the redirect device map). The kernel build's yes
    /// also hands the frame to that map (`bpf_redirect_map`), so the
    /// program returns its answer with no second lookup; a frame then not
    /// rewritten goes on as a pass, which a pending redirect does not
    /// touch (the kernel acts on it only for `XDP_REDIRECT`).
    fn claim_egress(&mut self, ifindex: u32) -> bool;
}

/// The stage's decision: the outcome, and the egress interface when it
/// redirects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardVerdict {
    /// Redirect (forwarded) or pass (left to the stack, with why).
    pub outcome: Outcome,
    /// The egress interface of a redirect; 0 otherwise.
    pub ifindex: u32,
}

fn pass(reason: Reason) -> Option<ForwardVerdict> {
    Some(ForwardVerdict {
        outcome: Outcome {
            action: Action::Pass,
            reason,
        },
        ifindex: 0,
    })
}

/// Forwards the frame if it can; `None` when forwarding does not apply
/// (off, not IP, tagged, not routed elsewhere): the frame passes with its
/// class.
#[inline(always)]
pub fn forward_stage<P: PacketMut, T: ForwardTables>(
    packet: &mut P,
    key: &FlowKey,
    tables: &mut T,
) -> Option<ForwardVerdict> {
    if !tables.forwarding_enabled() || key.vlan_count != 0 {
        return None;
    }
    let ipv4 = match key.ip_version {
        4 => true,
        6 => false,
        _ => return None,
    };
    let ttl_offset = if ipv4 {
        IPV4_TTL_OFFSET
    } else {
        IPV6_HOP_LIMIT_OFFSET
    };
    let ttl: u8 = packet.load(ttl_offset)?;
    let frame_len = packet.len() as u32;
    let (ifindex, destination_mac, source_mac) = match tables.route(key, frame_len) {
        Route::Forward {
            ifindex,
            destination_mac,
            source_mac,
        } => (ifindex, destination_mac, source_mac),
        Route::NoNeighbour => return pass(Reason::ForwardNoNeighbour),
        Route::NotForwarded => return None,
    };
    if ttl <= 1 {
        return pass(Reason::ForwardTtlExpired);
    }
    if !tables.claim_egress(ifindex) {
        return pass(Reason::ForwardEgressOff);
    }
    // Rewrite only when every store can succeed: the header checks in the
    // parser guarantee the offsets, the checks here keep it so. Both MACs
    // go in one 12-byte store and the IPv4 TTL with its checksum in one
    // 4-byte store: in the eBPF build each store re-reads the frame's
    // bounds from the context and checks them (the frame may have been
    // moved at its head), and the fourteen byte stores these replace were
    // about 110 instructions a forwarded frame (`llvm-objdump -d`).
    let rewritten = write_macs(packet, destination_mac, source_mac)
        && if ipv4 {
            decrement_ipv4_ttl(packet, ttl)
        } else {
            packet.store(IPV6_HOP_LIMIT_OFFSET, ttl - 1)
        };
    if !rewritten {
        return None;
    }
    Some(ForwardVerdict {
        outcome: Outcome {
            action: Action::Redirect,
            reason: Reason::Forwarded,
        },
        ifindex,
    })
}

/// The Ethernet header's first twelve bytes (destination then source MAC)
/// as two words, so that the eBPF build writes them in two stores after
/// one bounds check (a `[u8; 12]` was written byte by byte).
#[repr(C, packed)]
#[derive(Clone, Copy)]
struct MacPair {
    head: u64,
    tail: u32,
}

/// Writes the destination and source MACs (as [`crate::lb::mac_value`])
/// over the Ethernet header's first twelve bytes, in one store.
#[inline(always)]
fn write_macs<P: PacketMut>(packet: &mut P, destination: u64, source: u64) -> bool {
    let [_, _, d0, d1, d2, d3, d4, d5] = destination.to_be_bytes();
    let [_, _, s0, s1, s2, s3, s4, s5] = source.to_be_bytes();
    let pair = MacPair {
        head: u64::from_ne_bytes([d0, d1, d2, d3, d4, d5, s0, s1]),
        tail: u32::from_ne_bytes([s2, s3, s4, s5]),
    };
    packet.store(0, pair)
}

/// Decrements the TTL and updates the header checksum incrementally
/// (RFC 1624): the TTL is the high byte of its 16-bit word, so the word
/// drops by 0x0100 and the one's-complement checksum rises by as much.
/// The TTL, protocol and checksum are read and written as one 4-byte
/// word (the protocol rewritten as it was read).
#[inline(always)]
fn decrement_ipv4_ttl<P: PacketMut>(packet: &mut P, ttl: u8) -> bool {
    const _: () = assert!(IPV4_CHECKSUM_OFFSET == IPV4_TTL_OFFSET + 2);
    let Some([_, protocol, high, low]) = packet.load::<[u8; 4]>(IPV4_TTL_OFFSET) else {
        return false;
    };
    let [high, low] = checksum::after_ttl_decrement(u16::from_be_bytes([high, low])).to_be_bytes();
    packet.store(IPV4_TTL_OFFSET, [ttl - 1, protocol, high, low])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::FrameBuffer;
    use crate::parse::parse_into;

    struct Fib {
        route: Route,
        ports: [u32; 2],
        enabled: bool,
    }

    impl ForwardTables for Fib {
        fn forwarding_enabled(&self) -> bool {
            self.enabled
        }
        fn route(&mut self, _key: &FlowKey, _frame_len: u32) -> Route {
            self.route
        }
        fn claim_egress(&mut self, ifindex: u32) -> bool {
            self.ports.contains(&ifindex)
        }
    }

    /// An IPv4 UDP frame, TTL 64, with a correct header checksum.
    fn ipv4_udp(ttl: u8) -> std::vec::Vec<u8> {
        let mut frame = std::vec![0u8; 14 + 20 + 8];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut frame[14..34];
        ip.copy_from_slice(&[
            0x45, 0, 0, 28, 0, 0, 0x40, 0, ttl, 17, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2,
        ]);
        let checksum = crate::wire::checksum::of(ip);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        frame[34..42].copy_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        frame
    }

    fn key_of(frame: &[u8]) -> FlowKey {
        let mut key = FlowKey::default();
        parse_into(&crate::packet::SlicePacket::new(frame), &mut key).unwrap();
        key
    }

    const ROUTE: Route = Route::Forward {
        ifindex: 7,
        destination_mac: 0x0000_0202_0202_0202,
        source_mac: 0x0000_0a0a_0a0a_0a0a,
    };

    #[test]
    fn a_routed_frame_is_rewritten_and_redirected() {
        let frame = ipv4_udp(64);
        let key = key_of(&frame);
        let mut buffer = FrameBuffer::new(&frame);
        let mut fib = Fib {
            route: ROUTE,
            ports: [7, 0],
            enabled: true,
        };
        let verdict = forward_stage(&mut buffer, &key, &mut fib).unwrap();
        assert_eq!(verdict.outcome.action, Action::Redirect);
        assert_eq!(
            (verdict.outcome.reason, verdict.ifindex),
            (Reason::Forwarded, 7)
        );
        let out = buffer.bytes();
        assert_eq!(&out[0..6], &[2; 6]);
        assert_eq!(&out[6..12], &[0x0a; 6]);
        assert_eq!(out[IPV4_TTL_OFFSET], 63);
        // The rewritten header's checksum is what a full recomputation gives.
        let mut header = out[14..34].to_vec();
        header[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(
            u16::from_be_bytes([out[24], out[25]]),
            crate::wire::checksum::of(&header)
        );
    }

    #[test]
    fn what_cannot_be_finished_is_left_to_the_stack_unchanged() {
        let cases = [
            (
                ipv4_udp(1),
                ROUTE,
                [7, 0],
                true,
                Some(Reason::ForwardTtlExpired),
            ),
            (
                ipv4_udp(64),
                Route::NoNeighbour,
                [7, 0],
                true,
                Some(Reason::ForwardNoNeighbour),
            ),
            (
                ipv4_udp(64),
                ROUTE,
                [8, 0],
                true,
                Some(Reason::ForwardEgressOff),
            ),
            (ipv4_udp(64), Route::NotForwarded, [7, 0], true, None),
            (ipv4_udp(64), ROUTE, [7, 0], false, None),
        ];
        for (frame, route, ports, enabled, reason) in cases {
            let key = key_of(&frame);
            let mut buffer = FrameBuffer::new(&frame);
            let mut fib = Fib {
                route,
                ports,
                enabled,
            };
            let verdict = forward_stage(&mut buffer, &key, &mut fib);
            assert_eq!(verdict.map(|v| v.outcome.reason), reason, "{route:?}");
            if let Some(verdict) = verdict {
                assert_eq!(verdict.outcome.action, Action::Pass);
            }
            assert_eq!(buffer.bytes(), &frame[..], "unchanged");
        }
    }
}
