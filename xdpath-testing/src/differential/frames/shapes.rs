//! The frames aimed at the scenarios' state: fragments, IPv6 extension
//! headers, ICMP errors quoting a flow, flows to an endpoint and tunnels.

use std::net::IpAddr;

use xdpath_core::build::{FrameSpec, Network, Transport};

use super::super::headers::fragment_header;
use super::{Endpoint, Generator, TCP_FLAGS};

impl Generator {
    /// A fragment offset (8-byte units): mostly 0 (a first fragment).
    pub(super) fn fragment(&mut self) -> u16 {
        if self.rng.chance(50) {
            0
        } else {
            1 + self.rng.below(0x1fff) as u16
        }
    }

    /// An IPv6 extension header of `kind` (its next-header byte is set
    /// when inserted): 8 bytes, sometimes more, lengths sometimes wrong.
    pub(super) fn extension_body(&mut self, kind: u8) -> Vec<u8> {
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
    pub(super) fn icmp_error(&mut self, v6: bool, vlans: &[u16]) -> Vec<u8> {
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
    pub(super) fn aimed_at(
        &mut self,
        endpoint: Endpoint,
        vlans: &[u16],
        payload: Vec<u8>,
    ) -> Vec<u8> {
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
    pub(super) fn tunnel(
        &mut self,
        outer: Network,
        protocol: Option<u8>,
        vlans: &[u16],
    ) -> Vec<u8> {
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
}
