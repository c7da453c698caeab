//! The frames of the differential fuzz: well-formed frames built field by
//! field from the addresses and ports the scenarios' state names (so rules,
//! limits and VIPs match often), in every shape the parser and the later
//! stages know (VLAN tags, IPv4 options, IPv6 extension chains, fragments,
//! ICMP errors quoting a flow, IPIP and GUE tunnels), then mutated byte by
//! byte; seed frames (the fixture tables' and, when given, a capture
//! corpus's) mutated the same way; and plain random bytes.
//!
//! Everything is drawn from one seeded generator, so a run is reproducible
//! from its seed.

use std::net::IpAddr;

use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN};

use super::headers::{
    add_ipv4_options, fix_ipv4_checksum, fragment_header, insert_ipv6_extension, make_fragment_v4,
};

/// The longest frame generated: every byte of it is in the linear part a
/// test run hands the program (a page less headroom and tail room), so the
/// kernel sees what the native build sees.
pub const MAX_FRAME_LEN: usize = 2048;

/// A small seeded generator (SplitMix64): reproducible, no dependency.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            return 0;
        }
        (self.next_u64() % bound as u64) as usize
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (which must not be empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// `count` random bytes.
    pub fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.byte()).collect()
    }
}

/// A destination the state treats specially: a VIP, or a tunnel endpoint
/// of a decapsulating backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Its address.
    pub address: IpAddr,
    /// Its port (0: any).
    pub port: u16,
    /// Its IP protocol (4 and 41: IP in IP).
    pub protocol: u8,
}

/// The addresses and ports frames are drawn from: those the scenario's
/// state names, and random ones.
#[derive(Clone, Debug, Default)]
pub struct Vocabulary {
    /// IPv4 addresses.
    pub v4: Vec<[u8; 4]>,
    /// IPv6 addresses.
    pub v6: Vec<[u8; 16]>,
    /// Ports.
    pub ports: Vec<u16>,
    /// Endpoints: a good share of built frames go to one of them.
    pub endpoints: Vec<Endpoint>,
}

/// TCP flag combinations worth trying (the guard's anomalies among them).
const TCP_FLAGS: [u8; 10] = [
    FLAG_SYN,
    FLAG_SYN | FLAG_ACK,
    FLAG_ACK,
    FLAG_ACK | FLAG_PSH,
    FLAG_FIN | FLAG_ACK,
    FLAG_RST,
    FLAG_SYN | FLAG_FIN,
    FLAG_SYN | FLAG_RST,
    0,
    FLAG_FIN,
];

/// IP protocols besides TCP, UDP and ICMP: tunnels, extension-header
/// numbers, ESP, SCTP, GRE.
const OTHER_PROTOCOLS: [u8; 10] = [4, 41, 0, 43, 44, 50, 51, 60, 132, 47];

/// Values that sit on parser boundaries, written over 16-bit fields.
const EDGE_WORDS: [u16; 12] = [
    0, 1, 0x7fff, 0x8000, 0xffff, 0x0800, 0x86dd, 0x8100, 0x88a8, 0x0045, 0x4500, 0x6000,
];

/// Builds and mutates frames.
#[derive(Clone, Debug)]
pub struct Generator {
    /// The generator everything is drawn from.
    pub rng: Rng,
    vocabulary: Vocabulary,
    seeds: Vec<Vec<u8>>,
}

impl Generator {
    /// A generator over `vocabulary`, mutating `seeds` among others.
    pub fn new(seed: u64, vocabulary: Vocabulary, seeds: Vec<Vec<u8>>) -> Self {
        Self {
            rng: Rng::new(seed),
            vocabulary,
            seeds,
        }
    }

    /// The next frame: built (a third), a seed mutated (a half), built and
    /// mutated, or random bytes.
    pub fn frame(&mut self) -> Vec<u8> {
        let roll = self.rng.below(100);
        let mut frame = if roll < 4 {
            let length = self.rng.below(160);
            self.rng.bytes(length)
        } else if roll < 50 && !self.seeds.is_empty() {
            let seed = self.rng.below(self.seeds.len());
            let mut frame = self.seeds[seed].clone();
            let edits = 1 + self.rng.below(6);
            self.mutate(&mut frame, edits);
            frame
        } else {
            let mut frame = self.built();
            if self.rng.chance(50) {
                let edits = 1 + self.rng.below(3);
                self.mutate(&mut frame, edits);
            }
            frame
        };
        frame.truncate(MAX_FRAME_LEN);
        frame
    }

    fn address4(&mut self) -> [u8; 4] {
        if self.vocabulary.v4.is_empty() || self.rng.chance(25) {
            let bits = self.rng.next_u64() as u32;
            bits.to_be_bytes()
        } else {
            self.rng.pick(&self.vocabulary.v4)
        }
    }

    fn address6(&mut self) -> [u8; 16] {
        if self.vocabulary.v6.is_empty() || self.rng.chance(25) {
            let mut address = doc_v6(0);
            for byte in &mut address[8..] {
                *byte = self.rng.byte();
            }
            address
        } else {
            self.rng.pick(&self.vocabulary.v6)
        }
    }

    fn port(&mut self) -> u16 {
        if self.vocabulary.ports.is_empty() || self.rng.chance(30) {
            self.rng.next_u64() as u16
        } else {
            self.rng.pick(&self.vocabulary.ports)
        }
    }

    fn network(&mut self, v6: bool) -> Network {
        if v6 {
            Network::V6(self.address6(), self.address6())
        } else {
            Network::V4(self.address4(), self.address4())
        }
    }

    fn transport(&mut self) -> Transport {
        match self.rng.below(10) {
            0..=3 => {
                let flags = if self.rng.chance(85) {
                    self.rng.pick(&TCP_FLAGS)
                } else {
                    self.rng.byte()
                };
                Transport::tcp(self.port(), self.port(), flags)
            }
            4..=6 => Transport::udp(self.port(), self.port()),
            7 => Transport::EchoRequest,
            8 => Transport::Other(self.rng.pick(&OTHER_PROTOCOLS)),
            _ => Transport::Other(self.rng.byte()),
        }
    }

    /// A well-formed frame of a random shape.
    pub fn built(&mut self) -> Vec<u8> {
        let v6 = self.rng.chance(40);
        let network = self.network(v6);
        let payload_len = if self.rng.chance(5) {
            self.rng.below(1400)
        } else {
            self.rng.below(64)
        };
        let payload = self.rng.bytes(payload_len);
        let vlans: Vec<u16> = match self.rng.below(10) {
            0 => vec![self.rng.below(4096) as u16],
            1 => vec![self.rng.below(4096) as u16, self.rng.below(4096) as u16],
            _ => Vec::new(),
        };
        let l3 = 14 + 4 * vlans.len();
        if !self.vocabulary.endpoints.is_empty() && self.rng.chance(40) {
            let endpoint = self.rng.pick(&self.vocabulary.endpoints);
            return self.aimed_at(endpoint, &vlans, payload);
        }
        match self.rng.below(12) {
            0 => return self.icmp_error(v6, &vlans),
            1 => {
                let outer = self.network(v6);
                return self.tunnel(outer, None, &vlans);
            }
            _ => {}
        }
        let mut frame = FrameSpec::new(network, self.transport())
            .with_vlans(&vlans)
            .with_payload(&payload)
            .build();
        match (v6, self.rng.below(8)) {
            (false, 0) => make_fragment_v4(&mut frame, l3, self.rng.chance(50), self.fragment()),
            (false, 1) => add_ipv4_options(&mut frame, l3, 1 + self.rng.below(10)),
            (true, 0) => {
                let (offset, more) = (self.fragment(), self.rng.chance(50));
                insert_ipv6_extension(&mut frame, l3, 44, &fragment_header(offset, more));
            }
            (true, 1) | (true, 2) => {
                for _ in 0..1 + self.rng.below(9) {
                    let kind = self.rng.pick(&[0u8, 43, 60, 51, 44]);
                    let body = self.extension_body(kind);
                    insert_ipv6_extension(&mut frame, l3, kind, &body);
                }
            }
            _ => {}
        }
        frame
    }

    /// A fragment offset (8-byte units): mostly 0 (a first fragment).
    fn fragment(&mut self) -> u16 {
        if self.rng.chance(50) {
            0
        } else {
            1 + self.rng.below(0x1fff) as u16
        }
    }

    /// An IPv6 extension header of `kind` (its next-header byte is set
    /// when inserted): 8 bytes, sometimes more, lengths sometimes wrong.
    fn extension_body(&mut self, kind: u8) -> Vec<u8> {
        if kind == 44 {
            let (offset, more) = (self.fragment(), self.rng.chance(50));
            return fragment_header(offset, more);
        }
        let units = if self.rng.chance(80) {
            0
        } else {
            self.rng.below(4)
        };
        // AH counts 4-byte words less two; the others 8-byte units less one.
        let (length_byte, size) = if kind == 51 {
            ((units * 2 + 1) as u8, 8 + units * 8)
        } else {
            (units as u8, 8 + units * 8)
        };
        let mut body = vec![0u8; size];
        body[1] = if self.rng.chance(90) {
            length_byte
        } else {
            self.rng.byte()
        };
        body
    }

    /// An ICMP error (too big, unreachable, time exceeded) from a router to
    /// a vocabulary address, quoting a packet that address sent.
    fn icmp_error(&mut self, v6: bool, vlans: &[u16]) -> Vec<u8> {
        let transport = self.transport();
        let quoted = self.network(v6);
        self.icmp_error_about(quoted, transport, vlans)
    }

    /// An ICMP error to the sender of the packet `quoted` and `transport`
    /// describe, quoting its head.
    fn icmp_error_about(
        &mut self,
        quoted: Network,
        transport: Transport,
        vlans: &[u16],
    ) -> Vec<u8> {
        let v6 = matches!(quoted, Network::V6(..));
        let header = if v6 { 40 } else { 20 };
        let quoted_frame = FrameSpec::new(quoted, transport)
            .with_payload(&[0; 64])
            .build();
        let quoted_len = (header + 8 + self.rng.below(16)).min(quoted_frame.len() - 14);
        let (kind, code) = if v6 {
            self.rng.pick(&[(2u8, 0u8), (1, 4), (3, 0), (4, 1)])
        } else {
            self.rng
                .pick(&[(3u8, 4u8), (3, 3), (11, 0), (12, 0), (5, 1)])
        };
        let mut message = vec![kind, code, 0, 0, 0, 0, 0x05, 0x78];
        message.extend_from_slice(&quoted_frame[14..14 + quoted_len]);
        // The error goes to the quoted packet's sender.
        let network = match quoted {
            Network::V4(source, _) => Network::V4(self.address4(), source),
            Network::V6(source, _) => Network::V6(self.address6(), source),
        };
        let protocol = if v6 { 58 } else { 1 };
        FrameSpec::new(network, Transport::Other(protocol))
            .with_vlans(vlans)
            .with_payload(&message)
            .build()
    }

    /// A frame to `endpoint`: a flow to its port, a tunnel packet, or an
    /// ICMP error about what it sent.
    fn aimed_at(&mut self, endpoint: Endpoint, vlans: &[u16], payload: Vec<u8>) -> Vec<u8> {
        let network = match endpoint.address {
            IpAddr::V4(address) => Network::V4(self.address4(), address.octets()),
            IpAddr::V6(address) => Network::V6(self.address6(), address.octets()),
        };
        let port = if endpoint.port == 0 {
            self.port()
        } else {
            endpoint.port
        };
        if matches!(endpoint.protocol, 4 | 41) {
            return self.tunnel(network, Some(endpoint.protocol), vlans);
        }
        let transport = match endpoint.protocol {
            6 => Transport::tcp(self.port(), port, self.rng.pick(&TCP_FLAGS)),
            17 => Transport::udp(self.port(), port),
            other => Transport::Other(other),
        };
        if self.rng.chance(15) {
            // What the endpoint sent back, quoted in an error to it.
            let (reply, transport) = match (network, transport) {
                (
                    Network::V4(client, server),
                    Transport::Tcp {
                        source_port,
                        destination_port,
                        flags,
                    },
                ) => (
                    Network::V4(server, client),
                    Transport::tcp(destination_port, source_port, flags),
                ),
                (
                    Network::V6(client, server),
                    Transport::Tcp {
                        source_port,
                        destination_port,
                        flags,
                    },
                ) => (
                    Network::V6(server, client),
                    Transport::tcp(destination_port, source_port, flags),
                ),
                (Network::V4(client, server), other) => (Network::V4(server, client), other),
                (Network::V6(client, server), other) => (Network::V6(server, client), other),
            };
            return self.icmp_error_about(reply, transport, vlans);
        }
        let payload = if endpoint.protocol == 17 && self.rng.chance(60) {
            // A GUE-style payload: an inner packet right after UDP.
            let inner_v6 = self.rng.chance(40);
            let inner_network = self.network(inner_v6);
            FrameSpec::new(inner_network, self.transport()).build()[14..].to_vec()
        } else {
            payload
        };
        FrameSpec::new(network, transport)
            .with_vlans(vlans)
            .with_payload(&payload)
            .build()
    }

    /// An IPIP (or, without `protocol`, sometimes a GUE-style UDP) tunnel
    /// packet over `outer` around a built packet.
    fn tunnel(&mut self, outer: Network, protocol: Option<u8>, vlans: &[u16]) -> Vec<u8> {
        let inner_v6 = match protocol {
            Some(protocol) => protocol == 41,
            None => self.rng.chance(40),
        };
        let inner_network = self.network(inner_v6);
        let payload_len = self.rng.below(40);
        let payload = self.rng.bytes(payload_len);
        let inner = FrameSpec::new(inner_network, self.transport())
            .with_payload(&payload)
            .build();
        let inner_packet = &inner[14..];
        let spec = if protocol.is_none() && self.rng.chance(50) {
            FrameSpec::new(outer, Transport::udp(self.port(), self.port()))
                .with_payload(inner_packet)
        } else {
            let number = if inner_v6 { 41 } else { 4 };
            FrameSpec::new(outer, Transport::Other(number)).with_payload(inner_packet)
        };
        spec.with_vlans(vlans).build()
    }

    /// Applies `count` random edits to `frame`.
    pub fn mutate(&mut self, frame: &mut Vec<u8>, count: usize) {
        for _ in 0..count {
            self.mutate_once(frame);
        }
    }

    /// A position: mostly in the headers after the Ethernet header (an
    /// edit there reaches the parser's later stages; one in the Ethernet
    /// header mostly makes a non-IP frame).
    fn position(&mut self, length: usize) -> usize {
        match self.rng.below(10) {
            0 => self.rng.below(length.min(14)),
            1 => self.rng.below(length),
            _ if length > 14 => 14 + self.rng.below(length.min(96) - 14),
            _ => self.rng.below(length),
        }
    }

    fn mutate_once(&mut self, frame: &mut Vec<u8>) {
        let at = self.position(frame.len());
        match self.rng.below(10) {
            0 | 1 => {
                if let Some(byte) = frame.get_mut(at) {
                    *byte = self.rng.byte();
                }
            }
            2 => {
                if let Some(byte) = frame.get_mut(at) {
                    *byte ^= 1 << self.rng.below(8);
                }
            }
            3 => {
                let word = self.rng.pick(&EDGE_WORDS).to_be_bytes();
                if let Some(slot) = frame.get_mut(at..at + 2) {
                    slot.copy_from_slice(&word);
                }
            }
            4 => {
                let keep = self.rng.below(frame.len() + 1);
                frame.truncate(keep);
            }
            5 => {
                let extra = self.rng.below(64);
                frame.extend(self.rng.bytes(extra));
            }
            6 => {
                let count = 1 + self.rng.below(16);
                let extra = self.rng.bytes(count);
                let at = at.min(frame.len());
                frame.splice(at..at, extra);
            }
            7 => {
                let end = (at + 1 + self.rng.below(16)).min(frame.len());
                if at < end {
                    frame.drain(at..end);
                }
            }
            8 if !self.seeds.is_empty() => {
                // Splice: this frame's head, another seed's tail.
                let other = &self.seeds[self.rng.below(self.seeds.len())];
                let from = self.rng.below(other.len() + 1);
                frame.truncate(at);
                frame.extend_from_slice(&other[from..]);
            }
            _ => fix_ipv4_checksum(frame),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_reproducible_and_bounded() {
        let vocabulary = Vocabulary {
            v4: vec![[192, 0, 2, 1]],
            v6: vec![doc_v6(1)],
            ports: vec![80],
            endpoints: vec![Endpoint {
                address: IpAddr::from([203, 0, 113, 10]),
                port: 80,
                protocol: 6,
            }],
        };
        let seeds = vec![vec![0u8; 60]];
        let mut first = Generator::new(7, vocabulary.clone(), seeds.clone());
        let mut second = Generator::new(7, vocabulary, seeds);
        for _ in 0..2000 {
            let frame = first.frame();
            assert!(frame.len() <= MAX_FRAME_LEN);
            assert_eq!(frame, second.frame());
        }
    }

    #[test]
    fn built_frames_parse_as_what_they_are() {
        let mut generator = Generator::new(3, Vocabulary::default(), Vec::new());
        let mut parsed = 0;
        for _ in 0..1000 {
            let frame = generator.built();
            if xdpath_core::parse(&xdpath_core::SlicePacket::new(&frame)).is_ok() {
                parsed += 1;
            }
        }
        // Built frames are well formed but for deliberate length mistakes
        // in some extension headers.
        assert!(parsed > 900, "{parsed} of 1000 built frames parse");
    }
}
