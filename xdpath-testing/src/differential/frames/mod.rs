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

mod mutate;
mod shapes;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN};

use super::headers::{add_ipv4_options, fragment_header, insert_ipv6_extension, make_fragment_v4};

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

/// ICMP and ICMPv6 types (echo reply and request, unreachable, time
/// exceeded), for the rules that match them.
const ICMP_TYPES: [u8; 7] = [0, 3, 8, 11, 1, 128, 129];

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
            7 if self.rng.chance(50) => Transport::EchoRequest,
            7 => Transport::Icmp {
                kind: self.rng.pick(&ICMP_TYPES),
                code: self.rng.pick(&[0, 1, 3, 4]),
            },
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
}
