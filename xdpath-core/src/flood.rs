//! The flood generator's frames, shared by the `xdpath-flood` eBPF program
//! (the end-to-end tests' flood, see `xdpath_lab::flood`) and its native
//! check: which source address and port flow `n` of a flood has, and the
//! frame it sends.
//!
//! A flood is one template frame (untagged IPv4 without options, carrying
//! TCP or UDP, at most [`FLOOD_MAX_FRAME`] bytes) sent over and over;
//! frame `i` belongs to flow `i / frames_per_flow`, whose source address
//! (and, if asked, port) comes from a hash of the flow number and the
//! plan's seed. Every frame is written whole from the template, its
//! checksums updated for the new source: live frames come back to the
//! generator as the receiver left them (a balancer writes its outer
//! headers over the first bytes).

use crate::hash::mix64;
use crate::packet::{Packet, PacketMut, SlicePacket};
use crate::wire::checksum;

/// `FloodPlan::flags`: every flow gets a random source port too.
pub const FLOOD_RANDOM_PORTS: u32 = 1 << 0;
/// `FloodPlan::flags`: the template carries UDP (else TCP).
pub const FLOOD_UDP: u32 = 1 << 1;
/// The longest template.
pub const FLOOD_MAX_FRAME: usize = 64;

/// Where the generator writes: the IPv4 header checksum, the source
/// address, the transport source port and checksum.
const IP_CHECKSUM_AT: usize = 14 + 10;
const SOURCE_AT: usize = 14 + 12;
const PORT_AT: usize = 14 + 20;
const UDP_CHECKSUM_AT: usize = PORT_AT + 6;
const TCP_CHECKSUM_AT: usize = PORT_AT + 16;

/// What a flood sends: one entry of the generator's `FLOOD_PLAN` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodPlan {
    /// Seed of the sequence of sources.
    pub seed: u64,
    /// Frames each flow sends, back to back (0 counts as 1).
    pub frames_per_flow: u32,
    /// `FLOOD_*` bits.
    pub flags: u32,
    /// The template's length in bytes: even, at most [`FLOOD_MAX_FRAME`].
    pub length: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// The template frame, zero after `length`.
    pub template: [u8; FLOOD_MAX_FRAME],
}

impl Default for FloodPlan {
    fn default() -> Self {
        Self {
            seed: 0,
            frames_per_flow: 1,
            flags: 0,
            length: 0,
            reserved: 0,
            template: [0; FLOOD_MAX_FRAME],
        }
    }
}

/// A flow's source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowSource {
    /// Public unicast IPv4: the first byte 1 to 223, never 10 or 127.
    pub address: [u8; 4],
    /// From 1024 up.
    pub port: u16,
}

impl FloodPlan {
    /// The flow frame `index` (from 0) belongs to.
    #[inline(always)]
    pub fn flow_of(&self, index: u64) -> u64 {
        let per_flow = if self.frames_per_flow == 0 {
            1
        } else {
            self.frames_per_flow
        };
        index / u64::from(per_flow)
    }

    /// The source of flow `flow`.
    #[inline(always)]
    pub fn source(&self, flow: u64) -> FlowSource {
        let bits = mix64(flow ^ self.seed);
        let [first, b, c, d, ..] = bits.to_le_bytes();
        // 0-255 onto 1-223, then off the private and loopback /8s.
        let first = 1 + ((u32::from(first) * 223) >> 8) as u8;
        let first = match first {
            10 => 11,
            127 => 128,
            other => other,
        };
        FlowSource {
            address: [first, b, c, d],
            port: 1024 + ((bits >> 32) % (65_536 - 1024)) as u16,
        }
    }

    /// The plan as the generator's map holds it.
    pub fn to_bytes(&self) -> [u8; 24 + FLOOD_MAX_FRAME] {
        let mut bytes = [0u8; 24 + FLOOD_MAX_FRAME];
        let fields = self
            .seed
            .to_ne_bytes()
            .into_iter()
            .chain(self.frames_per_flow.to_ne_bytes())
            .chain(self.flags.to_ne_bytes())
            .chain(self.length.to_ne_bytes())
            .chain(self.reserved.to_ne_bytes())
            .chain(self.template);
        for (byte, field) in bytes.iter_mut().zip(fields) {
            *byte = field;
        }
        bytes
    }
}

/// Writes frame `index` of a flood: the template, with its flow's source
/// address (and port) and both checksums updated; false when the frame is
/// shorter than the template or the template too short for its headers.
#[inline(always)]
pub fn rewrite<P: PacketMut>(packet: &mut P, plan: &FloodPlan, index: u64) -> bool {
    let template = SlicePacket::new(&plan.template);
    let udp = plan.flags & FLOOD_UDP != 0;
    let checksum_at = if udp {
        UDP_CHECKSUM_AT
    } else {
        TCP_CHECKSUM_AT
    };
    let (Some(high), Some(low), Some(port), Some(ip_checksum), Some(l4_checksum)) = (
        template.load::<u16>(SOURCE_AT),
        template.load::<u16>(SOURCE_AT + 2),
        template.load::<u16>(PORT_AT),
        template.load::<u16>(IP_CHECKSUM_AT),
        template.load::<u16>(checksum_at),
    ) else {
        return false;
    };
    if !copy_template(packet, &template, plan.length as usize) {
        return false;
    }
    let source = plan.source(plan.flow_of(index));
    let [a, b, c, d] = source.address;
    let (new_high, new_low) = (u16::from_ne_bytes([a, b]), u16::from_ne_bytes([c, d]));
    let new_port = if plan.flags & FLOOD_RANDOM_PORTS != 0 {
        source.port.to_be()
    } else {
        port
    };
    let ip = checksum::update(ip_checksum, [high, low, 0], [new_high, new_low, 0]);
    let mut l4 = checksum::update(
        l4_checksum,
        [high, low, port],
        [new_high, new_low, new_port],
    );
    if udp && l4_checksum == 0 {
        // A UDP datagram sent without a checksum stays without.
        l4 = 0;
    } else if udp && l4 == 0 {
        l4 = 0xffff;
    }
    packet.store(SOURCE_AT, new_high)
        && packet.store(SOURCE_AT + 2, new_low)
        && packet.store(PORT_AT, new_port)
        && packet.store(IP_CHECKSUM_AT, ip)
        && packet.store(checksum_at, l4)
}

/// The template's first `length` bytes (rounded down to 16-bit words) into
/// the frame.
#[inline(always)]
fn copy_template<P: PacketMut>(packet: &mut P, template: &SlicePacket<'_>, length: usize) -> bool {
    for word in 0..FLOOD_MAX_FRAME / 2 {
        let offset = 2 * word;
        if offset + 2 > length {
            break;
        }
        let Some(value) = template.load::<u16>(offset) else {
            return false;
        };
        if !packet.store(offset, value) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{FrameSpec, Network, Transport};
    use crate::packet::FrameBuffer;
    use crate::wire::tcp::FLAG_SYN;
    use std::collections::HashSet;
    use std::vec::Vec;

    fn frame(source: [u8; 4], transport: Transport) -> Vec<u8> {
        FrameSpec::new(Network::V4(source, [10, 0, 0, 1]), transport)
            .with_payload(&[7; 6])
            .build()
    }

    #[test]
    fn a_rewritten_frame_is_the_frame_built_with_its_flows_source() {
        for (flags, ports) in [
            (FLOOD_UDP, false),
            (FLOOD_UDP | FLOOD_RANDOM_PORTS, true),
            (0, false),
            (FLOOD_RANDOM_PORTS, true),
        ] {
            let plan = FloodPlan {
                seed: 99,
                frames_per_flow: 2,
                flags,
                ..FloodPlan::default()
            };
            let transport = |port| {
                if flags & FLOOD_UDP != 0 {
                    Transport::udp(port, 9)
                } else {
                    Transport::tcp(port, 80, FLAG_SYN)
                }
            };
            let template = frame([10, 0, 0, 2], transport(40000));
            let mut plan = plan;
            plan.length = template.len() as u32;
            plan.template[..template.len()].copy_from_slice(&template);
            let mut buffer = FrameBuffer::new(&template);
            // Rewritten over and over in place, as live frames are, and
            // spoilt in between as a receiver may.
            for index in 0..50 {
                assert!(buffer.store(0, [0xeeu8; 16]));
                assert!(rewrite(&mut buffer, &plan, index));
                let source = plan.source(index / 2);
                let port = if ports { source.port } else { 40000 };
                assert_eq!(
                    buffer.bytes(),
                    frame(source.address, transport(port)),
                    "frame {index}, flags {flags}"
                );
            }
        }
    }

    #[test]
    fn flows_have_public_spread_sources_and_ports_from_1024() {
        let plan = FloodPlan {
            seed: 7,
            ..FloodPlan::default()
        };
        let sources: Vec<FlowSource> = (0..20_000).map(|flow| plan.source(flow)).collect();
        let distinct: HashSet<[u8; 4]> = sources.iter().map(|source| source.address).collect();
        assert!(distinct.len() > 19_990, "{} distinct", distinct.len());
        assert!(sources.iter().all(|source| {
            !matches!(source.address[0], 0 | 10 | 127 | 224..=255) && source.port >= 1024
        }));
        let firsts: HashSet<u8> = sources.iter().map(|source| source.address[0]).collect();
        assert!(firsts.len() > 200, "first bytes spread: {}", firsts.len());
    }

    #[test]
    fn a_frame_shorter_than_the_template_is_refused() {
        let template = frame([10, 0, 0, 2], Transport::udp(1, 9));
        let mut plan = FloodPlan {
            length: template.len() as u32,
            flags: FLOOD_UDP,
            ..FloodPlan::default()
        };
        plan.template[..template.len()].copy_from_slice(&template);
        let mut buffer = FrameBuffer::new(&template[..template.len() - 2]);
        assert!(!rewrite(&mut buffer, &plan, 0));
    }

    #[test]
    fn the_plan_bytes_follow_its_layout() {
        let mut plan = FloodPlan {
            seed: 0x0102_0304_0506_0708,
            frames_per_flow: 2,
            flags: 3,
            length: 42,
            ..FloodPlan::default()
        };
        plan.template[0] = 0xaa;
        let bytes = plan.to_bytes();
        assert_eq!(bytes.len(), core::mem::size_of::<FloodPlan>());
        assert_eq!(bytes[..8], plan.seed.to_ne_bytes());
        assert_eq!(bytes[8..12], 2u32.to_ne_bytes());
        assert_eq!(bytes[12..16], 3u32.to_ne_bytes());
        assert_eq!(bytes[16..20], 42u32.to_ne_bytes());
        assert_eq!(bytes[24], 0xaa);
    }
}
