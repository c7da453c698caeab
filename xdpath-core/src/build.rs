//! Frame builders for tests, fixtures, benchmarks and the demo (native only).
//!
//! Each `Repr`-style builder writes a well-formed frame with correct lengths
//! and checksums; tests then damage bytes on purpose to make malformed ones.

use std::vec::Vec;

use crate::wire::ethernet::{ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_QINQ, ETHERTYPE_VLAN};
use crate::wire::{checksum, protocol};

/// The transport part of a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP with the given ports and flags, no options.
    Tcp {
        /// Source port.
        source_port: u16,
        /// Destination port.
        destination_port: u16,
        /// Flag byte.
        flags: u8,
    },
    /// UDP with the given ports.
    Udp {
        /// Source port.
        source_port: u16,
        /// Destination port.
        destination_port: u16,
    },
    /// An ICMP echo request (ICMPv6 over IPv6).
    EchoRequest,
    /// An ICMP message (ICMPv6 over IPv6) of this type and code, with a
    /// zero rest-of-header.
    Icmp {
        /// Message type.
        kind: u8,
        /// Message code.
        code: u8,
    },
    /// A raw protocol number and no header of its own.
    Other(u8),
}

impl Transport {
    /// TCP with the given ports and flags.
    pub const fn tcp(source_port: u16, destination_port: u16, flags: u8) -> Self {
        Self::Tcp {
            source_port,
            destination_port,
            flags,
        }
    }

    /// UDP with the given ports.
    pub const fn udp(source_port: u16, destination_port: u16) -> Self {
        Self::Udp {
            source_port,
            destination_port,
        }
    }
}

/// The network part of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// IPv4 between two addresses.
    V4([u8; 4], [u8; 4]),
    /// IPv6 between two addresses.
    V6([u8; 16], [u8; 16]),
}

/// A well-formed Ethernet frame, described field by field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameSpec {
    /// Destination MAC.
    pub destination_mac: [u8; 6],
    /// Source MAC.
    pub source_mac: [u8; 6],
    /// VLAN ids: none, one (802.1Q) or two (802.1ad outer, 802.1Q inner).
    pub vlans: Vec<u16>,
    /// Addresses.
    pub network: Network,
    /// Transport header.
    pub transport: Transport,
    /// Payload bytes after the transport header.
    pub payload: Vec<u8>,
}

impl FrameSpec {
    /// A frame from 02:00:00:00:00:01 to 02:00:00:00:00:02 with no VLAN.
    pub fn new(network: Network, transport: Transport) -> Self {
        Self {
            destination_mac: [2, 0, 0, 0, 0, 2],
            source_mac: [2, 0, 0, 0, 0, 1],
            vlans: Vec::new(),
            network,
            transport,
            payload: Vec::new(),
        }
    }

    /// Sets the VLAN tags.
    pub fn with_vlans(mut self, vlans: &[u16]) -> Self {
        self.vlans = vlans.to_vec();
        self
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    /// Sets the MAC addresses.
    pub fn with_macs(mut self, source: [u8; 6], destination: [u8; 6]) -> Self {
        self.source_mac = source;
        self.destination_mac = destination;
        self
    }

    /// Writes the frame.
    pub fn build(&self) -> Vec<u8> {
        let mut frame = Vec::with_capacity(128 + self.payload.len());
        frame.extend_from_slice(&self.destination_mac);
        frame.extend_from_slice(&self.source_mac);
        let ethertype = match self.network {
            Network::V4(..) => ETHERTYPE_IPV4,
            Network::V6(..) => ETHERTYPE_IPV6,
        };
        let tag_types: &[u16] = match self.vlans.len() {
            0 => &[],
            1 => &[ETHERTYPE_VLAN],
            _ => &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
        };
        for (tag_type, vlan) in tag_types.iter().zip(&self.vlans) {
            frame.extend_from_slice(&tag_type.to_be_bytes());
            frame.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
        }
        frame.extend_from_slice(&ethertype.to_be_bytes());

        let v6 = matches!(self.network, Network::V6(..));
        let (protocol_number, mut l4) = self.transport_bytes(v6);
        l4.extend_from_slice(&self.payload);
        match self.network {
            Network::V4(source, destination) => {
                let mut header = [0u8; 20];
                header[0] = 0x45;
                header[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
                header[6] = 0x40; // don't fragment
                header[8] = 64;
                header[9] = protocol_number;
                header[12..16].copy_from_slice(&source);
                header[16..20].copy_from_slice(&destination);
                let checksum = checksum::of_parts(&[&header]);
                header[10..12].copy_from_slice(&checksum.to_be_bytes());
                let pseudo = pseudo_header_v4(source, destination, protocol_number, l4.len());
                fill_l4_checksum(&mut l4, protocol_number, &pseudo);
                frame.extend_from_slice(&header);
            }
            Network::V6(source, destination) => {
                let mut header = [0u8; 40];
                header[0] = 0x60;
                header[4..6].copy_from_slice(&(l4.len() as u16).to_be_bytes());
                header[6] = protocol_number;
                header[7] = 64;
                header[8..24].copy_from_slice(&source);
                header[24..40].copy_from_slice(&destination);
                let pseudo = pseudo_header_v6(source, destination, protocol_number, l4.len());
                fill_l4_checksum(&mut l4, protocol_number, &pseudo);
                frame.extend_from_slice(&header);
            }
        }
        frame.extend_from_slice(&l4);
        frame
    }

    fn transport_bytes(&self, v6: bool) -> (u8, Vec<u8>) {
        match self.transport {
            Transport::Tcp {
                source_port,
                destination_port,
                flags,
            } => {
                let mut tcp = std::vec![0u8; 20];
                tcp[0..2].copy_from_slice(&source_port.to_be_bytes());
                tcp[2..4].copy_from_slice(&destination_port.to_be_bytes());
                tcp[4..8].copy_from_slice(&1u32.to_be_bytes());
                tcp[12] = 5 << 4;
                tcp[13] = flags;
                tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
                (protocol::TCP, tcp)
            }
            Transport::Udp {
                source_port,
                destination_port,
            } => {
                let mut udp = std::vec![0u8; 8];
                udp[0..2].copy_from_slice(&source_port.to_be_bytes());
                udp[2..4].copy_from_slice(&destination_port.to_be_bytes());
                udp[4..6].copy_from_slice(&((8 + self.payload.len()) as u16).to_be_bytes());
                (protocol::UDP, udp)
            }
            Transport::EchoRequest => {
                let kind = if v6 { 128 } else { 8 };
                let number = if v6 { protocol::ICMPV6 } else { protocol::ICMP };
                (number, std::vec![kind, 0, 0, 0, 0, 1, 0, 1])
            }
            Transport::Icmp { kind, code } => {
                let number = if v6 { protocol::ICMPV6 } else { protocol::ICMP };
                (number, std::vec![kind, code, 0, 0, 0, 0, 0, 0])
            }
            Transport::Other(number) => (number, Vec::new()),
        }
    }
}

fn pseudo_header_v4(source: [u8; 4], destination: [u8; 4], number: u8, length: usize) -> Vec<u8> {
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&source);
    pseudo.extend_from_slice(&destination);
    pseudo.extend_from_slice(&[0, number]);
    pseudo.extend_from_slice(&(length as u16).to_be_bytes());
    pseudo
}

fn pseudo_header_v6(source: [u8; 16], destination: [u8; 16], number: u8, length: usize) -> Vec<u8> {
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&source);
    pseudo.extend_from_slice(&destination);
    pseudo.extend_from_slice(&(length as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, number]);
    pseudo
}

fn fill_l4_checksum(l4: &mut [u8], number: u8, pseudo: &[u8]) {
    let position = match number {
        protocol::TCP => 16,
        protocol::UDP => 6,
        protocol::ICMPV6 => 2,
        protocol::ICMP => {
            if l4.len() >= 4 {
                let checksum = checksum::of_parts(&[l4]);
                l4[2..4].copy_from_slice(&checksum.to_be_bytes());
            }
            return;
        }
        _ => return,
    };
    if l4.len() < position + 2 {
        return;
    }
    let mut checksum = checksum::of_parts(&[pseudo, l4]);
    if number == protocol::UDP && checksum == 0 {
        checksum = 0xffff;
    }
    l4[position..position + 2].copy_from_slice(&checksum.to_be_bytes());
}

/// `a.b.c.d` helper for IPv6 documentation addresses: `2001:db8::<last>`.
pub fn doc_v6(last: u16) -> [u8; 16] {
    let mut address = [0u8; 16];
    address[0..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    address[14..16].copy_from_slice(&last.to_be_bytes());
    address
}

/// The underlay addresses of the tunnel builders: 198.51.100.1 (the
/// sending VTEP) → 198.51.100.2.
pub const UNDERLAY: Network = Network::V4([198, 51, 100, 1], [198, 51, 100, 2]);

/// `inner` (an Ethernet frame) after a tunnel `header`, in UDP from port
/// 49152 to `port` over `outer`.
pub fn tunnelled(outer: Network, port: u16, header: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut payload = header.to_vec();
    payload.extend_from_slice(inner);
    FrameSpec::new(outer, Transport::udp(49152, port))
        .with_payload(&payload)
        .build()
}

/// A VXLAN header (RFC 7348): the I flag and `vni`.
pub fn vxlan_header(vni: u32) -> [u8; 8] {
    let [_, a, b, c] = vni.to_be_bytes();
    [0x08, 0, 0, 0, a, b, c, 0]
}

/// A Geneve header (RFC 8926): version 0, protocol type Ethernet, `vni`,
/// and `options` bytes of options (a multiple of 4, at most 252; made of
/// one option class 0x0102 type 0x80 carrying zeros).
pub fn geneve_header(vni: u32, options: usize) -> Vec<u8> {
    let words = (options / 4).min(63);
    let [_, a, b, c] = vni.to_be_bytes();
    let mut header = std::vec![words as u8, 0, 0x65, 0x58, a, b, c, 0];
    if words > 0 {
        // One option: class, type, length in words after its own 4 bytes.
        header.extend_from_slice(&[0x01, 0x02, 0x80, (words - 1) as u8]);
        header.resize(8 + words * 4, 0);
    }
    header
}

/// `inner` in VXLAN with `vni` to port 4789 over [`UNDERLAY`].
pub fn vxlan_frame(vni: u32, inner: &[u8]) -> Vec<u8> {
    tunnelled(UNDERLAY, 4789, &vxlan_header(vni), inner)
}

/// `inner` in Geneve with `vni` and `options` bytes of options to port
/// 6081 over [`UNDERLAY`].
pub fn geneve_frame(vni: u32, options: usize, inner: &[u8]) -> Vec<u8> {
    tunnelled(UNDERLAY, 6081, &geneve_header(vni, options), inner)
}
