//! Frames of other link types made into Ethernet frames for the pipeline,
//! or the reason they cannot be ([`SkipReason`]).
//!
//! * Ethernet (1): as captured.
//! * Linux cooked, `LINUX_SLL` (113, 16-byte header) and `LINUX_SLL2`
//!   (276, 20-byte header), what `tcpdump -i any` writes: when the
//!   header's protocol field is an EtherType (0x0600 or more: IPv4, IPv6,
//!   ARP, VLAN, MPLS, …), the cooked header is replaced by an Ethernet
//!   header with that EtherType. Its source is the cooked header's link
//!   address when that is 6 bytes long, else `00:00:00:00:00:00`; its
//!   destination is `ff:ff:ff:ff:ff:ff` for frames the capture marks as
//!   broadcast, else the fixed local address [`COOKED_DESTINATION`]
//!   (`02:00:00:00:00:01`). Protocols below 0x0600 (802.2 LLC, CAN,
//!   netlink, …) carry no EtherType and are skipped.
//! * Raw IP, `RAW` (101, the version taken from the first nibble),
//!   `IPV4` (228) and `IPV6` (229): an Ethernet header from
//!   [`RAW_IP_SOURCE`] to [`COOKED_DESTINATION`] with the IP EtherType.
//! * Anything else is skipped.
//!
//! A frame's length on the wire is adjusted by the change of header
//! length, so a frame that was whole stays whole.

use super::error::link_type_label;

/// `LINKTYPE_ETHERNET` (`DLT_EN10MB`).
pub const LINKTYPE_ETHERNET: u32 = 1;
/// `LINKTYPE_RAW`: raw IPv4 or IPv6, no link header.
pub const LINKTYPE_RAW: u32 = 101;
/// `LINKTYPE_LINUX_SLL`: Linux cooked capture, version 1.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// `LINKTYPE_IPV4`: raw IPv4.
pub const LINKTYPE_IPV4: u32 = 228;
/// `LINKTYPE_IPV6`: raw IPv6.
pub const LINKTYPE_IPV6: u32 = 229;
/// `LINKTYPE_LINUX_SLL2`: Linux cooked capture, version 2.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// The destination address of an Ethernet header rebuilt for a cooked or
/// raw IP frame (a locally administered unicast address).
pub const COOKED_DESTINATION: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The source address of an Ethernet header rebuilt for a raw IP frame.
pub const RAW_IP_SOURCE: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

const ETH_HLEN: usize = 14;
const SLL_HLEN: usize = 16;
const SLL2_HLEN: usize = 20;
/// `PACKET_BROADCAST` in a cooked header's packet type.
const PACKET_BROADCAST: u8 = 1;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// The least value of the Ethernet type field that is an EtherType, not
/// an 802.3 length.
const ETHERTYPE_MIN: u16 = 0x0600;

/// The interface a skipped frame came from: classic pcap files have none,
/// pcapng files an id per section (sections count from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Interface {
    /// The section, counting from 1.
    pub section: u32,
    /// The interface id in the section, counting from 0.
    pub id: u32,
}

/// Why a frame was not replayed. Such frames are counted per reason
/// ([`PcapReader::skipped`](super::PcapReader::skipped)), never dropped
/// silently, and never stop a read.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::{Interface, SkipReason};
/// let reason = SkipReason::LinkType { link_type: 105, interface: Some(Interface { section: 1, id: 2 }) };
/// assert_eq!(reason.to_string(), "link type 105 (IEEE 802.11) on interface 2");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SkipReason {
    /// A link type with no Ethernet form here.
    LinkType {
        /// The link type.
        link_type: u32,
        /// Where it was captured.
        interface: Option<Interface>,
    },
    /// A Linux cooked frame whose protocol field is no EtherType.
    CookedProtocol {
        /// 113 or 276.
        link_type: u32,
        /// The protocol field.
        protocol: u16,
        /// Where it was captured.
        interface: Option<Interface>,
    },
    /// A Linux cooked frame cut off inside its header.
    CookedHeaderCut {
        /// 113 or 276.
        link_type: u32,
        /// Where it was captured.
        interface: Option<Interface>,
    },
    /// A raw IP frame whose first nibble is neither 4 nor 6 (or that is
    /// empty: version 0).
    RawIpVersion {
        /// The first nibble.
        version: u8,
        /// Where it was captured.
        interface: Option<Interface>,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let interface = match self {
            Self::LinkType {
                link_type,
                interface,
            } => {
                write!(formatter, "link type {}", link_type_label(*link_type))?;
                interface
            }
            Self::CookedProtocol {
                link_type,
                protocol,
                interface,
            } => {
                write!(
                    formatter,
                    "link type {}: protocol 0x{protocol:04x} is no EtherType",
                    link_type_label(*link_type)
                )?;
                interface
            }
            Self::CookedHeaderCut {
                link_type,
                interface,
            } => {
                write!(
                    formatter,
                    "link type {}: frame cut off inside its header",
                    link_type_label(*link_type)
                )?;
                interface
            }
            Self::RawIpVersion { version, interface } => {
                write!(formatter, "raw IP frame of IP version {version}")?;
                interface
            }
        };
        if let Some(Interface { section, id }) = interface {
            write!(formatter, " on interface {id}")?;
            if *section > 1 {
                write!(formatter, " of section {section}")?;
            }
        }
        Ok(())
    }
}

/// One reason and how many frames it kept from the replay.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SkippedFrames {
    /// Why.
    pub reason: SkipReason,
    /// How many frames.
    pub frames: u64,
    /// `reason` for people.
    pub message: String,
}

impl std::fmt::Display for SkippedFrames {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let noun = if self.frames == 1 { "frame" } else { "frames" };
        write!(
            formatter,
            "{} {noun} skipped: {}",
            self.frames, self.message
        )
    }
}

/// `data`, captured on `link_type`, as an Ethernet frame, and the change
/// of its length; or why it cannot be one.
pub(super) fn to_ethernet(
    link_type: u32,
    data: Vec<u8>,
    interface: Option<Interface>,
) -> Result<(Vec<u8>, i64), SkipReason> {
    let cut = SkipReason::CookedHeaderCut {
        link_type,
        interface,
    };
    match link_type {
        LINKTYPE_ETHERNET => Ok((data, 0)),
        LINKTYPE_LINUX_SLL => {
            let header = data.get(..SLL_HLEN).ok_or(cut)?;
            let address_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
            let cooked = Cooked {
                packet_type: header[1],
                address: header.get(6..6 + address_len.min(8)).unwrap_or_default(),
                protocol: u16::from_be_bytes([header[14], header[15]]),
                header_len: SLL_HLEN,
            };
            cooked.rebuild(&data, link_type, interface)
        }
        LINKTYPE_LINUX_SLL2 => {
            let header = data.get(..SLL2_HLEN).ok_or(cut)?;
            let address_len = usize::from(header[11]);
            let cooked = Cooked {
                packet_type: header[10],
                address: header.get(12..12 + address_len.min(8)).unwrap_or_default(),
                protocol: u16::from_be_bytes([header[0], header[1]]),
                header_len: SLL2_HLEN,
            };
            cooked.rebuild(&data, link_type, interface)
        }
        LINKTYPE_RAW | LINKTYPE_IPV4 | LINKTYPE_IPV6 => raw_ip(link_type, &data, interface),
        _ => Err(SkipReason::LinkType {
            link_type,
            interface,
        }),
    }
}

/// The fields of a Linux cooked header that an Ethernet header needs.
struct Cooked<'a> {
    packet_type: u8,
    address: &'a [u8],
    protocol: u16,
    header_len: usize,
}

impl Cooked<'_> {
    fn rebuild(
        &self,
        data: &[u8],
        link_type: u32,
        interface: Option<Interface>,
    ) -> Result<(Vec<u8>, i64), SkipReason> {
        if self.protocol < ETHERTYPE_MIN {
            return Err(SkipReason::CookedProtocol {
                link_type,
                protocol: self.protocol,
                interface,
            });
        }
        let destination = if self.packet_type == PACKET_BROADCAST {
            [0xff; 6]
        } else {
            COOKED_DESTINATION
        };
        let source = <[u8; 6]>::try_from(self.address).unwrap_or([0; 6]);
        let payload = data.get(self.header_len..).unwrap_or_default();
        let frame = ethernet(destination, source, self.protocol, payload);
        Ok((frame, ETH_HLEN as i64 - self.header_len as i64))
    }
}

fn raw_ip(
    link_type: u32,
    data: &[u8],
    interface: Option<Interface>,
) -> Result<(Vec<u8>, i64), SkipReason> {
    let version = data.first().map_or(0, |byte| byte >> 4);
    let ethertype = match (link_type, version) {
        (LINKTYPE_IPV4, _) | (LINKTYPE_RAW, 4) => ETHERTYPE_IPV4,
        (LINKTYPE_IPV6, _) | (LINKTYPE_RAW, 6) => ETHERTYPE_IPV6,
        _ => return Err(SkipReason::RawIpVersion { version, interface }),
    };
    let frame = ethernet(COOKED_DESTINATION, RAW_IP_SOURCE, ethertype, data);
    Ok((frame, ETH_HLEN as i64))
}

fn ethernet(destination: [u8; 6], source: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ETH_HLEN + payload.len());
    frame.extend_from_slice(&destination);
    frame.extend_from_slice(&source);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}
