//! sFlow version 5 export (sflow.org/sflow_version_5.txt).
//!
//! Every field is XDR: big-endian, 4-byte aligned, variable-length opaque
//! data preceded by its length and zero-padded to a multiple of 4 bytes.
//! xdpath sends compact flow samples (one raw packet header record each)
//! and compact counter samples (one generic interface counters record
//! each), both with `ifIndex` data sources.
//!
//! [`SflowEncoder`] only builds bytes; [`SflowExporter`] adds the UDP
//! socket, batching and statistics.

mod collector;
mod encoder;
mod exporter;
mod link;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{IpAddr, SocketAddr};

use xdpath_core::{Action, Reason};

pub(crate) use collector::CollectorSockets;
pub use encoder::SflowEncoder;
pub use exporter::{SflowExporter, SflowStats};
pub use link::{link_state, LinkState};

/// Datagram version (the first XDR unsigned int of every datagram).
pub const SFLOW_VERSION: u32 = 5;
/// The collector UDP port IANA assigned to sFlow.
pub const SFLOW_PORT: u16 = 6343;
/// Default largest datagram, bytes: below a 1500-byte MTU with room for
/// IPv6 and UDP headers.
pub const DEFAULT_MAX_DATAGRAM: usize = 1400;
/// Largest number of frame bytes copied into a raw packet header record
/// (the spec's recommended default header size).
pub const MAX_HEADER_BYTES: usize = 128;

/// `address_type` of an IPv4 agent address (4 address bytes follow).
const ADDRESS_TYPE_IPV4: u32 = 1;
/// `address_type` of an IPv6 agent address (16 address bytes follow).
const ADDRESS_TYPE_IPV6: u32 = 2;
/// `data_format`s are `enterprise << 12 | format`; enterprise 0 is
/// sflow.org's, so the standard structures' formats are the bare numbers.
/// Sample type: compact flow sample.
const FORMAT_FLOW_SAMPLE: u32 = 1;
/// Sample type: compact counter sample.
const FORMAT_COUNTER_SAMPLE: u32 = 2;
/// Flow record: raw packet header.
const FORMAT_SAMPLED_HEADER: u32 = 1;
/// Counter record: generic interface counters.
const FORMAT_GENERIC_INTERFACE: u32 = 1;
/// `header_protocol` ETHERNET-ISO88023.
const HEADER_PROTOCOL_ETHERNET: u32 = 1;
/// Ethernet FCS bytes: the NIC strips them before XDP sees the frame, and
/// the spec wants them counted in `frame_length` and in `stripped`.
const FCS_LEN: u32 = 4;
/// Largest ifIndex the compact encodings carry (the low 24 bits of a
/// `source_id`; the top byte is the data source type, 0 = ifIndex).
const MAX_COMPACT_IFINDEX: u32 = 0x00ff_ffff;
/// `interface` format 1 (top two bits `01`): the packet was discarded and
/// the low 30 bits are a discard reason code.
const OUTPUT_DISCARDED: u32 = 0x4000_0000;
/// `interface` format 0 value meaning "the device itself".
const OUTPUT_INTERNAL: u32 = 0x3fff_ffff;
/// `ifType` ethernetCsmacd (IANAifType).
const IF_TYPE_ETHERNET: u32 = 6;
/// The spec's "counter not available" value: the maximum counter value.
const COUNTER_UNAVAILABLE: u32 = u32::MAX;
/// The same for the 64-bit counters.
const COUNTER64_UNAVAILABLE: u64 = u64::MAX;
/// Encoded size of a generic interface counters record's body, bytes.
const GENERIC_INTERFACE_LEN: u32 = 88;
/// How long a flow sample may wait for others to share its datagram.
pub const DEFAULT_MAX_DELAY: std::time::Duration = std::time::Duration::from_millis(250);
/// Largest datagram header: version, address type, IPv6 address,
/// sub-agent id, sequence number, uptime, sample count.
const MAX_DATAGRAM_HEADER_LEN: usize = 4 + 4 + 16 + 4 * 4;

/// Discard code (`output` format 1): ICMP "net unreachable".
pub const DISCARD_NET_UNREACHABLE: u32 = 0;
/// Discard code: ICMP "host unreachable".
pub const DISCARD_HOST_UNREACHABLE: u32 = 1;
/// Discard code: ICMP "fragmentation needed" (too big for the path).
pub const DISCARD_FRAGMENTATION_NEEDED: u32 = 4;
/// Discard code: unknown.
pub const DISCARD_UNKNOWN: u32 = 256;
/// Discard code: ACL.
pub const DISCARD_ACL: u32 = 258;
/// Discard code: no buffer space.
pub const DISCARD_NO_BUFFER_SPACE: u32 = 259;
/// Discard code: traffic shaping / rate limiting.
pub const DISCARD_RATE_LIMIT: u32 = 261;

/// Why the exporters (sFlow and IPFIX) could not start.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The configuration names no collector.
    #[error("no collector configured: give at least one collector address")]
    NoCollectors,
    /// A UDP socket could not be opened.
    #[error("cannot open a UDP socket for {family} collectors: {source}")]
    Socket {
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The system's error.
        source: io::Error,
    },
}

/// The sFlow discard code for a frame dropped with `reason`.
///
/// Filter drops are the device's access control (ACL), rate limits are
/// policing, a VIP with no backend is "host unreachable" (there is no host
/// to send to), an LB fragment is a fragment policy (ACL), a frame that
/// could not be grown for encapsulation lacked buffer headroom, no route
/// is "net unreachable". Malformed frames have no code of their own in
/// the spec, so they, and anything else, are "unknown".
///
/// # Examples
///
/// ```
/// use xdpath::observe::sflow::{discard_code, DISCARD_ACL, DISCARD_RATE_LIMIT};
/// use xdpath_core::Reason;
/// assert_eq!(discard_code(Reason::Blocklisted), DISCARD_ACL);
/// assert_eq!(discard_code(Reason::SynRateLimited), DISCARD_RATE_LIMIT);
/// ```
pub fn discard_code(reason: Reason) -> u32 {
    match reason {
        Reason::RateLimited | Reason::SynRateLimited => DISCARD_RATE_LIMIT,
        Reason::LbNoBackend => DISCARD_HOST_UNREACHABLE,
        Reason::LbFragment | Reason::LbNotAllowed => DISCARD_ACL,
        Reason::LbEncapFailed => DISCARD_NO_BUFFER_SPACE,
        Reason::LbNoRoute => DISCARD_NET_UNREACHABLE,
        Reason::LbTooBig => DISCARD_FRAGMENTATION_NEEDED,
        reason if reason.is_filter() => DISCARD_ACL,
        _ => DISCARD_UNKNOWN,
    }
}

/// The flow sample `output` field for a frame received on `ifindex`.
///
/// Dropped (or aborted) frames: format 1 with [`discard_code`]. `Tx` goes
/// back out of the receiving interface, except a SYN answered with a
/// cookie, which ended in the device itself (`0x3fffffff`), and a frame
/// too big for the balancer's path, discarded (the ICMP answer is what
/// went out). `Pass` hands
/// the frame to the kernel, which may deliver or route it, and `Redirect`
/// targets an interface the record does not name: both report 0, unknown.
pub fn output_interface(action: Action, reason: Reason, ifindex: u32) -> u32 {
    match action {
        Action::Drop => OUTPUT_DISCARDED | discard_code(reason),
        Action::Aborted => OUTPUT_DISCARDED | DISCARD_UNKNOWN,
        Action::Tx if reason == Reason::SynCookieSent => OUTPUT_INTERNAL,
        Action::Tx if reason == Reason::LbTooBig => OUTPUT_DISCARDED | discard_code(reason),
        Action::Tx => ifindex,
        Action::Pass | Action::Redirect => 0,
    }
}

/// Where and how to send sFlow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SflowConfig {
    /// The agent address put in every datagram (usually the host's
    /// management address).
    pub agent: IpAddr,
    /// The sub-agent id (0 unless several xdpath instances share `agent`).
    pub sub_agent_id: u32,
    /// The collectors; each gets every datagram.
    pub collectors: Vec<SocketAddr>,
    /// Largest datagram, bytes (UDP payload).
    pub max_datagram: usize,
    /// Samples are sent when a datagram fills or the oldest waiting one
    /// has waited this long ([`SflowExporter::flush_due`]).
    pub max_delay: std::time::Duration,
}

impl SflowConfig {
    /// A configuration with sub-agent 0, [`DEFAULT_MAX_DATAGRAM`] and
    /// [`DEFAULT_MAX_DELAY`].
    pub fn new(agent: IpAddr, collectors: Vec<SocketAddr>) -> Self {
        Self {
            agent,
            sub_agent_id: 0,
            collectors,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

/// One interface's counters, as the caller knows them. Packet counts are
/// sent modulo 2^32 (the spec's counters are 32 bits and wrap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// The interface's ifIndex.
    pub ifindex: u32,
    /// Its speed, bits per second (0: unknown).
    pub speed_bps: u64,
    /// Bytes received.
    pub in_octets: u64,
    /// Frames received (reported as `ifInUcastPkts`: xdpath does not tell
    /// unicast from multicast, so those two are reported unavailable).
    pub in_packets: u64,
    /// Frames dropped by policy (filters, rate limits).
    pub in_discards: u64,
    /// Frames dropped as malformed.
    pub in_errors: u64,
    /// Bytes sent; `None`, unknown (sent as the spec's "not available",
    /// 2^64-1), when the caller sees only part of them.
    pub out_octets: Option<u64>,
    /// Frames sent; `None`, unknown (2^32-1), likewise.
    pub out_packets: Option<u64>,
    /// Administratively up.
    pub admin_up: bool,
    /// Operationally up.
    pub oper_up: bool,
}
