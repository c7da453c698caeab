//! A mixed set of test frames, the counters it should produce, and sending
//! frames out of an interface over an `AF_PACKET` socket.
//!
//! The [`Mix`] covers IPv4 and IPv6; TCP (SYN, SYN-ACK, ACK with data),
//! UDP, ICMP echo and other protocols; untagged, 802.1Q and QinQ frames; a
//! non-IP frame; and malformed frames of many kinds. Every malformed frame
//! is at least an Ethernet header long: `AF_PACKET` refuses to send less,
//! and veth neither pads nor trims, so each arrives at the peer's XDP hook
//! byte for byte as built.
//!
//! [`Mix::expected`] gives the exact (action, reason) counters the mix
//! should leave, so tests and the demo can check them.

mod expected;
mod socket;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use xdpath_core::build::{FrameSpec, Network, Transport};
use xdpath_core::{Action, MalformedPolicy, Reason};

use crate::testenv::{Endpoint, TestBed};

pub use expected::Expected;
pub use socket::{ping_frame_len, send};

/// TCP flag bits.
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// Ethernet header length.
const ETH: usize = 14;
/// An EtherType nobody uses for anything (IEEE local experimental).
const ETHERTYPE_EXPERIMENTAL: u16 = 0x88b5;

/// Who sends to whom: MACs and addresses of both ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers {
    /// Sender's MAC.
    pub source_mac: [u8; 6],
    /// Receiver's MAC.
    pub destination_mac: [u8; 6],
    /// Sender's IPv4 address.
    pub source_v4: Ipv4Addr,
    /// Receiver's IPv4 address.
    pub destination_v4: Ipv4Addr,
    /// Sender's IPv6 address.
    pub source_v6: Ipv6Addr,
    /// Receiver's IPv6 address.
    pub destination_v6: Ipv6Addr,
}

impl Peers {
    /// From `source` to `destination`.
    pub fn between(source: &Endpoint, destination: &Endpoint) -> Self {
        Self {
            source_mac: source.mac,
            destination_mac: destination.mac,
            source_v4: source.ipv4,
            destination_v4: destination.ipv4,
            source_v6: source.ipv6,
            destination_v6: destination.ipv6,
        }
    }

    /// From side B of a bed to side A (where xdpath is attached).
    pub fn b_to_a(bed: &TestBed) -> Self {
        Self::between(bed.b(), bed.a())
    }

    fn v4(&self) -> Network {
        Network::V4(self.source_v4.octets(), self.destination_v4.octets())
    }

    fn v6(&self) -> Network {
        Network::V6(self.source_v6.octets(), self.destination_v6.octets())
    }

    fn frame(&self, network: Network, transport: Transport) -> FrameSpec {
        FrameSpec::new(network, transport).with_macs(self.source_mac, self.destination_mac)
    }
}

/// One frame of the mix and the class or malformation the parser must find.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// A short description.
    pub name: &'static str,
    /// The bytes, from the destination MAC.
    pub bytes: Vec<u8>,
    /// Its class, or why it is malformed.
    pub reason: Reason,
}

/// The mixed traffic set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    /// The frames, in sending order.
    pub frames: Vec<Frame>,
}

fn tcp(source_port: u16, destination_port: u16, flags: u8) -> Transport {
    Transport::tcp(source_port, destination_port, flags)
}

fn udp(source_port: u16, destination_port: u16) -> Transport {
    Transport::udp(source_port, destination_port)
}

impl Mix {
    /// Builds the mix from `peers.source` to `peers.destination`.
    // Long (about 160 lines): a table of the mix's frames, one `add` each.
    pub fn build(peers: &Peers) -> Self {
        let mut frames = Vec::new();
        let mut add = |name, bytes, reason| {
            frames.push(Frame {
                name,
                bytes,
                reason,
            })
        };
        let (v4, v6) = (peers.v4(), peers.v6());

        // Well-formed, untagged.
        add(
            "ipv4 tcp syn",
            peers.frame(v4, tcp(40_000, 80, SYN)).build(),
            Reason::Ipv4Tcp,
        );
        add(
            "ipv4 tcp syn-ack",
            peers.frame(v4, tcp(40_001, 80, SYN | ACK)).build(),
            Reason::Ipv4Tcp,
        );
        add(
            "ipv4 tcp ack with data",
            peers
                .frame(v4, tcp(40_002, 80, PSH | ACK))
                .with_payload(b"GET / HTTP/1.0\r\n\r\n")
                .build(),
            Reason::Ipv4Tcp,
        );
        add(
            "ipv4 udp",
            peers
                .frame(v4, udp(40_003, 9))
                .with_payload(b"xdpath")
                .build(),
            Reason::Ipv4Udp,
        );
        add(
            "ipv4 icmp echo",
            peers
                .frame(v4, Transport::EchoRequest)
                .with_payload(&[0x5a; 32])
                .build(),
            Reason::Ipv4Icmp,
        );
        add(
            "ipv4 gre (other)",
            peers.frame(v4, Transport::Other(47)).build(),
            Reason::Ipv4Other,
        );
        add(
            "ipv6 tcp syn",
            peers.frame(v6, tcp(40_004, 443, SYN)).build(),
            Reason::Ipv6Tcp,
        );
        add(
            "ipv6 tcp syn-ack",
            peers.frame(v6, tcp(40_005, 443, SYN | ACK)).build(),
            Reason::Ipv6Tcp,
        );
        add(
            "ipv6 udp",
            peers
                .frame(v6, udp(40_006, 9))
                .with_payload(&[1; 100])
                .build(),
            Reason::Ipv6Udp,
        );
        add(
            "ipv6 icmpv6 echo",
            peers.frame(v6, Transport::EchoRequest).build(),
            Reason::Ipv6Icmp,
        );
        add(
            "ipv6 no next header (other)",
            peers.frame(v6, Transport::Other(59)).build(),
            Reason::Ipv6Other,
        );

        // Well-formed, tagged.
        add(
            "802.1q ipv4 udp",
            peers.frame(v4, udp(40_007, 9)).with_vlans(&[100]).build(),
            Reason::Ipv4Udp,
        );
        add(
            "802.1q ipv6 tcp syn",
            peers
                .frame(v6, tcp(40_008, 22, SYN))
                .with_vlans(&[200])
                .build(),
            Reason::Ipv6Tcp,
        );
        add(
            "qinq ipv4 tcp syn",
            peers
                .frame(v4, tcp(40_009, 25, SYN))
                .with_vlans(&[300, 400])
                .build(),
            Reason::Ipv4Tcp,
        );
        add(
            "qinq ipv6 icmpv6 echo",
            peers
                .frame(v6, Transport::EchoRequest)
                .with_vlans(&[300, 401])
                .build(),
            Reason::Ipv6Icmp,
        );
        add("non-ip", non_ip(peers), Reason::NonIp);

        // Malformed.
        let mut runt_vlan = peers.frame(v4, udp(1, 2)).with_vlans(&[5]).build();
        runt_vlan.truncate(ETH + 2);
        add("vlan tag cut short", runt_vlan, Reason::TruncatedVlan);
        add(
            "three vlan tags",
            three_tags(peers),
            Reason::TooManyVlanTags,
        );
        let mut short_v4 = peers.frame(v4, udp(1, 2)).build();
        short_v4.truncate(ETH + 12);
        add("truncated ipv4", short_v4, Reason::TruncatedIpv4);
        let mut bad_version = peers.frame(v4, udp(40_010, 9)).build();
        bad_version[ETH] = 0x55;
        add("ipv4 version 5", bad_version, Reason::BadIpv4Version);
        let mut bad_ihl = peers.frame(v4, udp(40_011, 9)).build();
        bad_ihl[ETH] = 0x43;
        add("ipv4 ihl 3", bad_ihl, Reason::BadIpv4HeaderLength);
        let mut long_v4 = peers.frame(v4, udp(40_012, 9)).build();
        let total = u16::from_be_bytes([long_v4[ETH + 2], long_v4[ETH + 3]]) + 100;
        long_v4[ETH + 2..ETH + 4].copy_from_slice(&total.to_be_bytes());
        add(
            "ipv4 total length beyond frame",
            long_v4,
            Reason::Ipv4LengthBeyondFrame,
        );
        let mut short_v6 = peers.frame(v6, udp(1, 2)).build();
        short_v6.truncate(ETH + 20);
        add("truncated ipv6", short_v6, Reason::TruncatedIpv6);
        let mut long_offset = peers.frame(v4, tcp(40_013, 80, SYN)).build();
        long_offset[ETH + 20 + 12] = 15 << 4;
        add(
            "tcp data offset beyond packet",
            long_offset,
            Reason::BadTcpDataOffset,
        );
        let mut short_offset = peers.frame(v6, tcp(40_014, 80, SYN)).build();
        short_offset[ETH + 40 + 12] = 2 << 4;
        add("tcp data offset 2", short_offset, Reason::BadTcpDataOffset);
        let mut bad_udp = peers.frame(v4, udp(40_015, 9)).with_payload(b"abc").build();
        bad_udp[ETH + 20 + 4..ETH + 20 + 6].copy_from_slice(&4u16.to_be_bytes());
        add("udp length 4", bad_udp, Reason::BadUdpLength);
        add("icmp cut short", short_icmp(peers), Reason::TruncatedIcmp);
        Self { frames }
    }

    /// The mix from side B of a bed to side A.
    pub fn for_bed(bed: &TestBed) -> Self {
        Self::build(&Peers::b_to_a(bed))
    }

    /// The frames' bytes.
    pub fn payloads(&self) -> Vec<&[u8]> {
        self.frames
            .iter()
            .map(|frame| frame.bytes.as_slice())
            .collect()
    }

    /// Frames in the mix.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True if the mix has no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Malformed frames in the mix.
    pub fn malformed(&self) -> usize {
        self.frames
            .iter()
            .filter(|frame| frame.reason.is_malformed())
            .count()
    }

    /// Sends the mix out of `interface` (see [`send`]).
    pub fn send(&self, interface: &str) -> io::Result<()> {
        send(interface, &self.payloads())
    }

    /// The counters the mix leaves on an interface with `policy`, once.
    pub fn expected(&self, policy: MalformedPolicy) -> Expected {
        let mut expected = Expected::default();
        for frame in &self.frames {
            let action = if frame.reason.is_malformed() && policy == MalformedPolicy::Drop {
                Action::Drop
            } else {
                Action::Pass
            };
            expected.add(action, frame.reason, 1, frame.bytes.len() as u64);
        }
        expected
    }
}

fn non_ip(peers: &Peers) -> Vec<u8> {
    let mut frame = Vec::with_capacity(60);
    frame.extend_from_slice(&peers.destination_mac);
    frame.extend_from_slice(&peers.source_mac);
    frame.extend_from_slice(&ETHERTYPE_EXPERIMENTAL.to_be_bytes());
    frame.extend_from_slice(b"xdpath non-ip frame, padded to the Ethernet minimum.");
    frame.resize(60, 0);
    frame
}

fn short_icmp(peers: &Peers) -> Vec<u8> {
    // Built as another protocol, then relabelled: FrameSpec cannot write an
    // ICMP checksum into a header shorter than four bytes.
    let mut frame = peers
        .frame(peers.v4(), Transport::Other(253))
        .with_payload(&[8, 0])
        .build();
    frame[ETH + 9] = 1;
    frame[ETH + 10..ETH + 12].fill(0);
    let checksum = xdpath_core::wire::checksum::of(&frame[ETH..ETH + 20]);
    frame[ETH + 10..ETH + 12].copy_from_slice(&checksum.to_be_bytes());
    frame
}

fn three_tags(peers: &Peers) -> Vec<u8> {
    // QinQ, then one more 802.1Q tag in front of the IPv4 EtherType.
    let mut frame = peers
        .frame(peers.v4(), udp(40_016, 9))
        .with_vlans(&[10, 20])
        .build();
    let position = ETH + 2 * 4 - 2; // the inner tag's EtherType field
    let tail = frame.split_off(position);
    frame.extend_from_slice(&[0x81, 0x00, 0x00, 30]);
    frame.extend_from_slice(&tail);
    frame
}
