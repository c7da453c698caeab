//! The flow fields of a sampled frame's first bytes.
//!
//! Unlike the data path's parser this one is lenient about lengths: a
//! sample holds only the frame's head, so an IP total length reaching past
//! the captured bytes is normal. Only the headers themselves must be there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// EtherType IPv4 (network byte order on the wire).
const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType IPv6.
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of an 802.1Q tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ) outer tag.
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// IP protocol numbers with ports.
const PROTOCOL_TCP: u8 = 6;
const PROTOCOL_UDP: u8 = 17;
/// IPv6 extension headers walked over: hop-by-hop, routing, destination
/// options (each `(next, length in 8-byte units − 1)`), and fragment.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DESTINATION: u8 = 60;

/// Addresses, ports and protocol of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowFields {
    /// Source address.
    pub source: IpAddr,
    /// Destination address.
    pub destination: IpAddr,
    /// IP protocol number.
    pub protocol: u8,
    /// TCP/UDP source port; 0 for other protocols and non-first fragments.
    pub source_port: u16,
    /// TCP/UDP destination port; 0 likewise.
    pub destination_port: u16,
    /// The (inner) VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// TCP flags (the low 8 bits of the flags field); 0 otherwise.
    pub tcp_flags: u8,
    /// The IP packet's length, header and payload, as its header says
    /// (IPv4 total length; IPv6 40 + payload length): what IPFIX counts
    /// as octets, without the Ethernet header, VLAN tags and padding.
    /// None for an IPv6 jumbogram (payload length 0).
    pub ip_length: Option<u32>,
    /// Where the IP header starts in the frame (after Ethernet and VLAN
    /// tags), for a length the header does not give.
    pub ip_offset: usize,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// Parses the Ethernet, VLAN, IP and TCP/UDP headers at the head of
/// `frame`; `None` when it is not IP or its IP header is cut short.
///
/// # Examples
///
/// ```
/// use xdpath::observe::flow;
/// let mut frame = vec![0u8; 12];
/// frame.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0,
///     10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0, 53]);
/// let fields = flow::parse(&frame).unwrap();
/// assert_eq!(fields.source.to_string(), "10.0.0.1");
/// assert_eq!((fields.protocol, fields.source_port, fields.destination_port), (17, 12345, 53));
/// ```
pub fn parse(frame: &[u8]) -> Option<FlowFields> {
    let (ethertype, offset, vlan) = skip_vlan_tags(frame)?;
    let ip = match ethertype {
        ETHERTYPE_IPV4 => ipv4_header(frame, offset)?,
        ETHERTYPE_IPV6 => ipv6_header(frame, offset)?,
        _ => return None,
    };
    let protocol = ip.protocol;
    let mut fields = FlowFields {
        source: ip.source,
        destination: ip.destination,
        protocol,
        source_port: 0,
        destination_port: 0,
        vlan,
        tcp_flags: 0,
        ip_length: ip.length,
        ip_offset: offset,
    };
    if ip.first_fragment && (protocol == PROTOCOL_TCP || protocol == PROTOCOL_UDP) {
        let transport = ip.transport;
        if let (Some(source_port), Some(destination_port)) =
            (u16_at(frame, transport), u16_at(frame, transport + 2))
        {
            fields.source_port = source_port;
            fields.destination_port = destination_port;
        }
        if protocol == PROTOCOL_TCP {
            fields.tcp_flags = frame.get(transport + 13).copied().unwrap_or(0);
        }
    }
    Some(fields)
}

/// The IP header's flow fields and where the transport header starts.
struct IpHeader {
    source: IpAddr,
    destination: IpAddr,
    /// The protocol after any IPv6 extension headers.
    protocol: u8,
    /// The transport header's offset in the frame.
    transport: usize,
    /// False for a fragment other than the first (it has no ports).
    first_fragment: bool,
    /// The packet's length as the header gives it.
    length: Option<u32>,
}

/// The EtherType after up to two VLAN tags, the offset of what follows it,
/// and the inner VLAN id.
fn skip_vlan_tags(frame: &[u8]) -> Option<(u16, usize, Option<u16>)> {
    let mut ethertype = u16_at(frame, 12)?;
    let mut offset = 14;
    let mut vlan = None;
    for _ in 0..2 {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        vlan = Some(u16_at(frame, offset)? & 0x0fff);
        ethertype = u16_at(frame, offset + 2)?;
        offset += 4;
    }
    Some((ethertype, offset, vlan))
}

/// The IPv4 header at `offset`; `None` when it is cut short or not IPv4.
fn ipv4_header(frame: &[u8], offset: usize) -> Option<IpHeader> {
    let header = frame.get(offset..offset + 20)?;
    let header_len = usize::from(header[0] & 0x0f) * 4;
    if header[0] >> 4 != 4 || header_len < 20 {
        return None;
    }
    let fragment_offset = u16_at(header, 6)? & 0x1fff;
    let source: [u8; 4] = header[12..16].try_into().ok()?;
    let destination: [u8; 4] = header[16..20].try_into().ok()?;
    Some(IpHeader {
        source: IpAddr::V4(Ipv4Addr::from(source)),
        destination: IpAddr::V4(Ipv4Addr::from(destination)),
        protocol: header[9],
        transport: offset + header_len,
        first_fragment: fragment_offset == 0,
        length: u16_at(header, 2).map(u32::from),
    })
}

/// The IPv6 header at `offset`, past up to four extension headers; `None`
/// when it (or an extension header walked over) is cut short or not IPv6.
fn ipv6_header(frame: &[u8], offset: usize) -> Option<IpHeader> {
    let header = frame.get(offset..offset + 40)?;
    if header[0] >> 4 != 6 {
        return None;
    }
    let source: [u8; 16] = header[8..24].try_into().ok()?;
    let destination: [u8; 16] = header[24..40].try_into().ok()?;
    let mut next = header[6];
    let mut at = offset + 40;
    let mut first_fragment = true;
    for _ in 0..4 {
        match next {
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DESTINATION => {
                let extension = frame.get(at..at + 2)?;
                next = extension[0];
                at += (usize::from(extension[1]) + 1) * 8;
            }
            IPV6_FRAGMENT => {
                next = *frame.get(at)?;
                first_fragment = u16_at(frame, at + 2)? & 0xfff8 == 0;
                at += 8;
            }
            _ => break,
        }
    }
    Some(IpHeader {
        source: IpAddr::V6(Ipv6Addr::from(source)),
        destination: IpAddr::V6(Ipv6Addr::from(destination)),
        protocol: next,
        transport: at,
        first_fragment,
        length: u16_at(header, 4)
            .filter(|payload| *payload != 0)
            .map(|payload| 40 + u32::from(payload)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv6_tcp(flags: u8) -> Vec<u8> {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a, 0x86, 0xdd]);
        let mut ip = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        ip.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        frame.extend_from_slice(&ip);
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&443u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&50000u16.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = flags;
        frame.extend_from_slice(&tcp);
        frame
    }

    #[test]
    fn tagged_ipv6_tcp() {
        let fields = parse(&ipv6_tcp(0x12)).unwrap();
        assert_eq!(fields.vlan, Some(42));
        assert_eq!(fields.destination.to_string(), "2001:db8::2");
        assert_eq!(
            (fields.protocol, fields.source_port, fields.destination_port),
            (6, 443, 50000)
        );
        assert_eq!(fields.tcp_flags, 0x12);
    }

    #[test]
    fn truncated_ip_header_is_none_and_ports_are_optional() {
        let frame = ipv6_tcp(0);
        assert!(parse(&frame[..18 + 39]).is_none());
        let fields = parse(&frame[..18 + 40 + 3]).unwrap();
        assert_eq!((fields.source_port, fields.destination_port), (0, 0));
        assert!(parse(&[0u8; 13]).is_none());
    }
}
