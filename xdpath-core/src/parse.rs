//! The parser: Ethernet → up to two VLAN tags → IPv4 / IPv6 (bounded
//! extension-header walk) → TCP / UDP / ICMP / ICMPv6.
//!
//! It yields a [`Parsed`] (flow key, layer offsets, class) or the precise
//! [`Reason`] a frame is malformed. Every function is `#[inline(always)]`:
//! the eBPF build has no calls between them, and the verifier sees every
//! variable offset bounded before use.

use crate::packet::{Packet, MAX_HEADER_OFFSET};
use crate::stats::Reason;
use crate::wire::ethernet::{is_vlan_ethertype, ETHERTYPE_IPV4, ETHERTYPE_IPV6};
use crate::wire::icmp::{ICMPV6_MIN_LEN, ICMP_MIN_LEN};
use crate::wire::{
    ipv6, protocol, EthernetHeader, IcmpHeader, Ipv4Header, Ipv6ExtensionHeader,
    Ipv6FragmentHeader, Ipv6Header, TcpHeader, UdpHeader, VlanTag,
};

/// The most IPv6 extension headers the parser walks before it gives up with
/// [`Reason::TooManyIpv6Extensions`]. RFC 8200 §4.1 recommends at most one of
/// each kind (two destination options), so 8 leaves room for odd but
/// legitimate chains while keeping the eBPF loop short.
pub const MAX_IPV6_EXTENSIONS: usize = 8;

/// Where a packet stands in IP fragmentation.
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fragment {
    /// Not a fragment.
    #[default]
    None = 0,
    /// The first fragment (offset 0, more to come): it carries the L4 header.
    First = 1,
    /// A later fragment: no L4 header, ports are zero.
    Later = 2,
}

/// The fields that identify a flow, plus what later stages need to know
/// about its encapsulation. Shared with user space (`#[repr(C)]`, 56 bytes,
/// aligned to 8 so the eBPF build clears and copies it in 64-bit words).
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Source address; IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`).
    pub source: [u8; 16],
    /// Destination address, same form.
    pub destination: [u8; 16],
    /// TCP/UDP source port, host order; zero otherwise.
    pub source_port: u16,
    /// TCP/UDP destination port, host order; for ICMP and ICMPv6,
    /// `type << 8 | code`; zero otherwise.
    pub destination_port: u16,
    /// The innermost EtherType, host order.
    pub ethertype: u16,
    /// Outer VLAN id (when `vlan_count >= 1`).
    pub vlan_outer: u16,
    /// Inner VLAN id (when `vlan_count == 2`).
    pub vlan_inner: u16,
    /// IP protocol (IPv6: the header after the extension headers).
    pub protocol: u8,
    /// 4, 6, or 0 for non-IP.
    pub ip_version: u8,
    /// A [`Fragment`] as a byte.
    pub fragment: u8,
    /// TCP flags; zero otherwise.
    pub tcp_flags: u8,
    /// VLAN tags seen, 0 to 2.
    pub vlan_count: u8,
    /// The frame's class (a non-malformed [`Reason`] code), set by the
    /// pipeline after parsing.
    pub class: u8,
    /// The key of a tunnelled frame's inner headers holds its VNI + 1
    /// here (`crate::tunnel`); every other key 0. Rules and rate limits
    /// carry the same value, so one comparison keeps each to its layer.
    pub tunnel: u32,
    /// Where the UDP payload starts (UDP only, else 0): where a tunnel
    /// header would be, for the filter stage, which sees no parse layers.
    pub udp_payload: u16,
    /// Zero, but for the kernel's decapsulated frames on their way to the
    /// filter program (`xdpath-ebpf/src/decapsulated.rs`): which
    /// decapsulation (1 IPIP, 2 GUE).
    pub decapsulated: u16,
}

impl FlowKey {
    /// A hash of the flow's addresses, ports and protocol, to spread flows
    /// over CPUs: every frame of a flow gets the same value. IPv6
    /// addresses count by their low 32 bits.
    ///
    /// # Examples
    ///
    /// ```
    /// use xdpath_core::FlowKey;
    /// let mut a = FlowKey::default();
    /// a.source_port = 1000;
    /// let mut b = a;
    /// b.source_port = 1001;
    /// assert_eq!(a.flow_hash(), a.flow_hash());
    /// assert_ne!(a.flow_hash(), b.flow_hash());
    /// ```
    #[inline(always)]
    pub fn flow_hash(&self) -> u32 {
        let [_, _, _, _, _, _, _, _, _, _, _, _, s0, s1, s2, s3] = self.source;
        let [_, _, _, _, _, _, _, _, _, _, _, _, d0, d1, d2, d3] = self.destination;
        let mut hash = u32::from_ne_bytes([s0, s1, s2, s3]).wrapping_mul(0x9e37_79b1);
        hash ^= u32::from_ne_bytes([d0, d1, d2, d3]).wrapping_mul(0x85eb_ca77);
        hash ^= (u32::from(self.source_port) << 16 | u32::from(self.destination_port))
            .wrapping_mul(0xc2b2_ae3d);
        hash ^= u32::from(self.protocol);
        // The murmur3 finaliser: every input bit reaches every output bit.
        hash ^= hash >> 16;
        hash = hash.wrapping_mul(0x85eb_ca6b);
        hash ^= hash >> 13;
        hash = hash.wrapping_mul(0xc2b2_ae35);
        hash ^ hash >> 16
    }

    /// Zeroes every field with seven 64-bit stores, volatile: into map
    /// memory (a tunnelled frame's inner key, parsed into its scratch
    /// slot) plain stores became a `memset` call, a byte loop of 56 turns
    /// in BPF, on every such frame. The entry program's key on the stack
    /// costs the same seven stores either way (checked in the object).
    #[inline(always)]
    pub fn clear(&mut self) {
        let words = (self as *mut Self).cast::<u64>();
        let mut index = 0;
        while index < core::mem::size_of::<Self>() / 8 {
            // SAFETY: FlowKey is 56 bytes, aligned to 8: seven aligned words.
            unsafe { core::ptr::write_volatile(words.add(index), 0) };
            index += 1;
        }
    }

    /// Copies the key word by word into `target` (volatile, for the same
    /// reason as `clear`: no `memcpy` call in the eBPF build).
    #[inline(always)]
    pub fn copy_to(&self, target: &mut Self) {
        let from = (self as *const Self).cast::<u64>();
        let to = (target as *mut Self).cast::<u64>();
        let mut index = 0;
        while index < core::mem::size_of::<Self>() / 8 {
            // SAFETY: both are 56-byte, 8-aligned FlowKeys: seven aligned words.
            unsafe {
                core::ptr::write_volatile(to.add(index), core::ptr::read_volatile(from.add(index)))
            };
            index += 1;
        }
    }

    /// Sets an address from its two 64-bit words as they lie in memory.
    #[inline(always)]
    fn set_address(slot: &mut [u8; 16], words: [u64; 2]) {
        let at = slot.as_mut_ptr().cast::<u64>();
        // SAFETY: both address fields sit at offsets 0 and 16 of an
        // 8-aligned struct: two aligned words each.
        unsafe {
            core::ptr::write(at, words[0]);
            core::ptr::write(at.add(1), words[1]);
        }
    }

    /// Sets the source address from memory words.
    #[inline(always)]
    pub fn set_source_words(&mut self, words: [u64; 2]) {
        Self::set_address(&mut self.source, words);
    }

    /// Sets the destination address from memory words.
    #[inline(always)]
    pub fn set_destination_words(&mut self, words: [u64; 2]) {
        Self::set_address(&mut self.destination, words);
    }
}

/// The memory words of `::ffff:a.b.c.d`.
#[inline(always)]
pub fn ipv4_mapped_words(address: [u8; 4]) -> [u64; 2] {
    let [a, b, c, d] = address;
    [0, u64::from_ne_bytes([0, 0, 0xff, 0xff, a, b, c, d])]
}

/// A well-formed frame's flow key and layer offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parsed {
    /// The flow key.
    pub key: FlowKey,
    /// The frame's class: one of the non-malformed [`Reason`]s.
    pub class: Reason,
    /// Offset of the network header (after the VLAN tags).
    pub l3_offset: u16,
    /// Offset of the transport header; zero when there is none.
    pub l4_offset: u16,
    /// Offset of the transport payload; zero when there is none.
    pub payload_offset: u16,
    /// End of the IP packet; for non-IP frames, the frame length.
    pub ip_end: u16,
}

/// Where a well-formed frame's layers start, and its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layers {
    /// The frame's class: one of the non-malformed [`Reason`]s.
    pub class: Reason,
    /// Offset of the network header (after the VLAN tags).
    pub l3_offset: u16,
    /// Offset of the transport header; zero when there is none.
    pub l4_offset: u16,
    /// Offset of the transport payload; zero when there is none.
    pub payload_offset: u16,
    /// End of the IP packet (frames may carry padding beyond it); for
    /// non-IP frames, the frame length.
    pub ip_end: u16,
}

/// Parses one frame.
///
/// # Examples
///
/// ```
/// use xdpath_core::{parse, Reason, SlicePacket};
/// assert_eq!(parse(&SlicePacket::new(&[0; 13])).unwrap_err(), Reason::TruncatedEthernet);
/// ```
pub fn parse<P: Packet>(packet: &P) -> Result<Parsed, Reason> {
    let mut key = FlowKey::default();
    let layers = parse_into(packet, &mut key)?;
    Ok(Parsed {
        key,
        class: layers.class,
        l3_offset: layers.l3_offset,
        l4_offset: layers.l4_offset,
        payload_offset: layers.payload_offset,
        ip_end: layers.ip_end,
    })
}

/// Parses one frame, writing the flow key into `key` (wholly overwritten).
///
/// The eBPF build passes a per-CPU scratch slot for `key`: kept in map
/// memory rather than on the 512-byte stack, and written field by field, it
/// spares the program most of its register spills.
#[inline(always)]
pub fn parse_into<P: Packet>(packet: &P, key: &mut FlowKey) -> Result<Layers, Reason> {
    parse_at(packet, 0, key)
}

/// Parses the Ethernet frame that starts at `start` (0 for the frame
/// itself; a tunnel's inner frame further in), as [`parse_into`]. The
/// offsets it returns are the frame's.
#[inline(always)]
pub fn parse_at<P: Packet>(packet: &P, start: usize, key: &mut FlowKey) -> Result<Layers, Reason> {
    key.clear();
    let ethernet: EthernetHeader = packet.load(start).ok_or(Reason::TruncatedEthernet)?;
    let mut offset = start + EthernetHeader::LEN;
    let mut ethertype = ethernet.ethertype();
    if is_vlan_ethertype(ethertype) {
        let tag: VlanTag = packet.load(offset).ok_or(Reason::TruncatedVlan)?;
        key.vlan_outer = tag.vlan_id();
        key.vlan_count = 1;
        ethertype = tag.ethertype();
        offset += VlanTag::LEN;
        if is_vlan_ethertype(ethertype) {
            let tag: VlanTag = packet.load(offset).ok_or(Reason::TruncatedVlan)?;
            key.vlan_inner = tag.vlan_id();
            key.vlan_count = 2;
            ethertype = tag.ethertype();
            offset += VlanTag::LEN;
            if is_vlan_ethertype(ethertype) {
                return Err(Reason::TooManyVlanTags);
            }
        }
    }
    key.ethertype = ethertype;
    match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(packet, offset, key),
        ETHERTYPE_IPV6 => parse_ipv6(packet, offset, key),
        _ => Ok(Layers {
            class: Reason::NonIp,
            l3_offset: offset as u16,
            l4_offset: 0,
            payload_offset: 0,
            ip_end: packet.len() as u16,
        }),
    }
}

#[inline(always)]
fn parse_ipv4<P: Packet>(packet: &P, offset: usize, key: &mut FlowKey) -> Result<Layers, Reason> {
    let ip: Ipv4Header = packet.load(offset).ok_or(Reason::TruncatedIpv4)?;
    if ip.version() != 4 {
        return Err(Reason::BadIpv4Version);
    }
    let header_length = ip.header_length();
    if header_length < Ipv4Header::LEN {
        return Err(Reason::BadIpv4HeaderLength);
    }
    let total_length = ip.total_length();
    if total_length < header_length {
        return Err(Reason::Ipv4LengthBelowHeader);
    }
    let ip_end = offset + total_length;
    if ip_end > packet.len() {
        return Err(Reason::Ipv4LengthBeyondFrame);
    }
    key.ip_version = 4;
    key.protocol = ip.protocol;
    key.set_source_words(ipv4_mapped_words(ip.source));
    key.set_destination_words(ipv4_mapped_words(ip.destination));
    let fragment = if ip.fragment_offset() != 0 {
        Fragment::Later
    } else if ip.more_fragments() {
        Fragment::First
    } else {
        Fragment::None
    };
    key.fragment = fragment as u8;
    parse_l4(packet, offset, offset + header_length, ip_end, key)
}

#[inline(always)]
fn parse_ipv6<P: Packet>(packet: &P, offset: usize, key: &mut FlowKey) -> Result<Layers, Reason> {
    let ip: Ipv6Header = packet.load(offset).ok_or(Reason::TruncatedIpv6)?;
    if ip.version() != 6 {
        return Err(Reason::BadIpv6Version);
    }
    let ip_end = offset + Ipv6Header::LEN + ip.payload_length();
    if ip_end > packet.len() {
        return Err(Reason::Ipv6LengthBeyondFrame);
    }
    key.ip_version = 6;
    // The addresses straight from the packet as words: copying the
    // 16-byte arrays would be a `memmove` call in the eBPF build.
    let source: [u64; 2] = packet.load(offset + 8).ok_or(Reason::TruncatedIpv6)?;
    let destination: [u64; 2] = packet.load(offset + 24).ok_or(Reason::TruncatedIpv6)?;
    // The key holds IPv4 IPv4-mapped: such an address in an IPv6 header
    // would be judged as IPv4 (see `Reason::Ipv6MappedAddress`).
    if ipv6::is_ipv4_mapped(source) || ipv6::is_ipv4_mapped(destination) {
        return Err(Reason::Ipv6MappedAddress);
    }
    key.set_source_words(source);
    key.set_destination_words(destination);

    let mut next = ip.next_header;
    let mut cursor = offset + Ipv6Header::LEN;
    let mut fragment = Fragment::None;
    for _ in 0..MAX_IPV6_EXTENSIONS {
        match next {
            protocol::HOP_BY_HOP
            | protocol::ROUTING
            | protocol::DESTINATION_OPTIONS
            | protocol::AH => {
                if cursor > MAX_HEADER_OFFSET {
                    return Err(Reason::HeadersTooLong);
                }
                if cursor + Ipv6ExtensionHeader::LEN > ip_end {
                    return Err(Reason::TruncatedIpv6Extension);
                }
                let extension: Ipv6ExtensionHeader =
                    packet.load(cursor).ok_or(Reason::TruncatedIpv6Extension)?;
                let length = if next == protocol::AH {
                    extension.ah_length()
                } else {
                    extension.options_length()
                };
                if cursor + length > ip_end {
                    return Err(Reason::TruncatedIpv6Extension);
                }
                next = extension.next_header;
                cursor += length;
            }
            protocol::FRAGMENT => {
                if cursor > MAX_HEADER_OFFSET {
                    return Err(Reason::HeadersTooLong);
                }
                if cursor + Ipv6FragmentHeader::LEN > ip_end {
                    return Err(Reason::TruncatedIpv6Extension);
                }
                let header: Ipv6FragmentHeader =
                    packet.load(cursor).ok_or(Reason::TruncatedIpv6Extension)?;
                next = header.next_header;
                cursor += Ipv6FragmentHeader::LEN;
                if header.fragment_offset() != 0 {
                    // A later fragment: what follows is payload, not headers.
                    fragment = Fragment::Later;
                    break;
                }
                // An atomic fragment (offset 0, M clear, RFC 6946) is no fragment.
                if header.more_fragments() {
                    fragment = Fragment::First;
                }
            }
            _ => break,
        }
    }
    if fragment != Fragment::Later && is_ipv6_extension(next) {
        return Err(Reason::TooManyIpv6Extensions);
    }
    key.protocol = next;
    key.fragment = fragment as u8;
    parse_l4(packet, offset, cursor, ip_end, key)
}

/// True for the extension headers the walk steps over.
#[inline(always)]
const fn is_ipv6_extension(next: u8) -> bool {
    matches!(
        next,
        protocol::HOP_BY_HOP
            | protocol::ROUTING
            | protocol::FRAGMENT
            | protocol::DESTINATION_OPTIONS
            | protocol::AH
    )
}

#[inline(always)]
fn parse_l4<P: Packet>(
    packet: &P,
    l3_offset: usize,
    l4_offset: usize,
    ip_end: usize,
    key: &mut FlowKey,
) -> Result<Layers, Reason> {
    let v6 = key.ip_version == 6;
    let class = class_of(v6, key.protocol);
    let mut layers = Layers {
        class,
        l3_offset: l3_offset as u16,
        l4_offset: 0,
        payload_offset: 0,
        ip_end: ip_end as u16,
    };
    if key.fragment == Fragment::Later as u8 {
        return Ok(layers);
    }
    if l4_offset > MAX_HEADER_OFFSET {
        return Err(Reason::HeadersTooLong);
    }
    let payload_offset = match (key.protocol, v6) {
        (protocol::TCP, _) => {
            if l4_offset + TcpHeader::LEN > ip_end {
                return Err(Reason::TruncatedTcp);
            }
            let tcp: TcpHeader = packet.load(l4_offset).ok_or(Reason::TruncatedTcp)?;
            let header_length = tcp.header_length();
            if header_length < TcpHeader::LEN || l4_offset + header_length > ip_end {
                return Err(Reason::BadTcpDataOffset);
            }
            key.source_port = tcp.source_port();
            key.destination_port = tcp.destination_port();
            key.tcp_flags = tcp.flags;
            l4_offset + header_length
        }
        (protocol::UDP, _) => {
            if l4_offset + UdpHeader::LEN > ip_end {
                return Err(Reason::TruncatedUdp);
            }
            let udp: UdpHeader = packet.load(l4_offset).ok_or(Reason::TruncatedUdp)?;
            let length = udp.length();
            // A first fragment's UDP length covers the whole datagram, of
            // which the fragment holds only a part.
            let first_fragment = key.fragment == Fragment::First as u8;
            if length < UdpHeader::LEN || (l4_offset + length > ip_end && !first_fragment) {
                return Err(Reason::BadUdpLength);
            }
            key.source_port = udp.source_port();
            key.destination_port = udp.destination_port();
            key.udp_payload = (l4_offset + UdpHeader::LEN) as u16;
            l4_offset + UdpHeader::LEN
        }
        (protocol::ICMP, false) | (protocol::ICMPV6, true) => {
            let (minimum, truncated) = if v6 {
                (ICMPV6_MIN_LEN, Reason::TruncatedIcmpv6)
            } else {
                (ICMP_MIN_LEN, Reason::TruncatedIcmp)
            };
            if l4_offset + minimum > ip_end {
                return Err(truncated);
            }
            let icmp: IcmpHeader = packet.load(l4_offset).ok_or(truncated)?;
            key.destination_port = (icmp.kind as u16) << 8 | icmp.code as u16;
            l4_offset + minimum
        }
        _ => return Ok(layers),
    };
    layers.l4_offset = l4_offset as u16;
    layers.payload_offset = payload_offset as u16;
    Ok(layers)
}

#[inline(always)]
const fn class_of(v6: bool, protocol_number: u8) -> Reason {
    match (v6, protocol_number) {
        (false, protocol::TCP) => Reason::Ipv4Tcp,
        (false, protocol::UDP) => Reason::Ipv4Udp,
        (false, protocol::ICMP) => Reason::Ipv4Icmp,
        (false, _) => Reason::Ipv4Other,
        (true, protocol::TCP) => Reason::Ipv6Tcp,
        (true, protocol::UDP) => Reason::Ipv6Udp,
        (true, protocol::ICMPV6) => Reason::Ipv6Icmp,
        (true, _) => Reason::Ipv6Other,
    }
}

/// `a.b.c.d` as `::ffff:a.b.c.d`.
#[inline(always)]
pub const fn ipv4_mapped(address: [u8; 4]) -> [u8; 16] {
    let [a, b, c, d] = address;
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]
}
