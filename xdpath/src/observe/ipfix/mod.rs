//! IPFIX (RFC 7011) export over UDP of the flows in a
//! [`FlowCache`](super::flows::FlowCache).
//!
//! Every field is big-endian ("network byte order"). A message is a
//! 16-byte header followed by sets; each set is a 4-byte header (set id,
//! length including the header and padding) and records. Set id 2 carries
//! templates; a data set's id is the template id of its records. Data sets
//! are zero-padded to a multiple of 4 bytes (RFC 7011 §3.3.1 allows
//! padding shorter than a record).
//!
//! UDP gives templates no delivery guarantee, so they are sent at the
//! start, again every `template_refresh`, and every
//! `template_every_messages` messages (RFC 7011 §10.3.6), each time with
//! the sampling options ([`sampling_sets`]): records count the selected
//! packets and collectors scale them by the announced interval.
mod encoder;
mod exporter;
mod sampling;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use xdpath_core::{Action, Reason};

pub use encoder::{IpfixEncoder, IpfixMessage};
pub use exporter::{IpfixExporter, IpfixStats};
pub use sampling::{sampling_sets, unscale, SELECTOR_ALGORITHM_RANDOM};

/// Message version (the first 2 bytes of every message).
pub const IPFIX_VERSION: u16 = 10;
/// The collector UDP port IANA assigned to IPFIX.
pub const IPFIX_PORT: u16 = 4739;
/// Set id of a template set.
pub const TEMPLATE_SET_ID: u16 = 2;
/// Template id of IPv4 flow records (data set id too).
pub const TEMPLATE_IPV4: u16 = 256;
/// Template id of IPv6 flow records.
pub const TEMPLATE_IPV6: u16 = 257;
/// Set id of an options template set.
pub const OPTIONS_TEMPLATE_SET_ID: u16 = 3;
/// Template id of the `samplingInterval` options record (data set id
/// too).
pub const TEMPLATE_SAMPLING: u16 = 258;
/// Template id of the RFC 5477 selector options record.
pub const TEMPLATE_SELECTOR: u16 = 259;
/// Options data records sent with the templates.
const SAMPLING_RECORDS: u32 = 2;
/// Default largest message, bytes (UDP payload): below a 1500-byte MTU.
pub const DEFAULT_MAX_MESSAGE: usize = 1400;

/// Message header: version, length, export time, sequence, domain.
const MESSAGE_HEADER_LEN: usize = 16;
/// Set header: set id, length.
const SET_HEADER_LEN: usize = 4;
/// Smallest message size honoured: a header, both templates, the sampling
/// options and one IPv6 record must fit.
const MIN_MESSAGE: usize = 320;
/// The length field is 16 bits.
const MAX_MESSAGE: usize = u16::MAX as usize;

/// Information elements (IANA id, field length in bytes) of the IPv4
/// template, in record order; the IPv6 one differs in the addresses.
const FIELDS_IPV4: [(u16, u16); 14] = [
    (1, 8),   // octetDeltaCount
    (2, 8),   // packetDeltaCount
    (152, 8), // flowStartMilliseconds
    (153, 8), // flowEndMilliseconds
    (8, 4),   // sourceIPv4Address
    (12, 4),  // destinationIPv4Address
    (7, 2),   // sourceTransportPort
    (11, 2),  // destinationTransportPort
    (4, 1),   // protocolIdentifier
    (6, 1),   // tcpControlBits, reduced size (RFC 7011 6.2): the low
    // eight flags, which pmacct 1.7 reads only in one byte
    (10, 4),  // ingressInterface
    (58, 2),  // vlanId
    (89, 1),  // forwardingStatus (RFC 7270 unsigned8)
    (136, 1), // flowEndReason
];
const FIELDS_IPV6: [(u16, u16); 14] = {
    let mut fields = FIELDS_IPV4;
    fields[4] = (27, 16); // sourceIPv6Address
    fields[5] = (28, 16); // destinationIPv6Address
    fields
};

const fn record_len(fields: &[(u16, u16); 14]) -> usize {
    let mut total = 0;
    let mut index = 0;
    while index < fields.len() {
        total += fields[index].1 as usize;
        index += 1;
    }
    total
}
const RECORD_LEN_IPV4: usize = record_len(&FIELDS_IPV4);
const RECORD_LEN_IPV6: usize = record_len(&FIELDS_IPV6);

/// forwardingStatus (RFC 7270 §4.12): the top two bits are the status
/// (01 forwarded, 10 dropped, 11 consumed), the low six a reason.
pub const FORWARDED_UNKNOWN: u8 = 64;
/// Forwarded, not fragmented.
pub const FORWARDED_NOT_FRAGMENTED: u8 = 66;
/// Dropped, reason unknown.
pub const DROPPED_UNKNOWN: u8 = 128;
/// Dropped: ACL deny.
pub const DROPPED_ACL_DENY: u8 = 129;
/// Dropped: ACL drop.
pub const DROPPED_ACL_DROP: u8 = 130;
/// Dropped: unroutable.
pub const DROPPED_UNROUTABLE: u8 = 131;
/// Dropped: fragmentation needed and DF set (too big for the path).
pub const DROPPED_FRAGMENTATION_DF: u8 = 133;
/// Dropped: bad total length.
pub const DROPPED_BAD_TOTAL_LENGTH: u8 = 135;
/// Dropped: bad header length.
pub const DROPPED_BAD_HEADER_LENGTH: u8 = 136;
/// Dropped: policer.
pub const DROPPED_POLICER: u8 = 138;
/// Consumed: for us.
pub const CONSUMED_FOR_US: u8 = 195;

/// The RFC 7270 forwarding status of a frame xdpath gave `action` for
/// `reason`.
///
/// `Pass` is "forwarded, unknown": xdpath let the frame through to the
/// kernel, which may deliver it locally or route it on; "consumed" would
/// claim it ended here. `Tx`/`Redirect` (balanced or sent back) are
/// "forwarded, not fragmented" (XDP never fragments), except a SYN
/// answered with a cookie, which the device consumed. Drops: explicit
/// policy (rules, default deny, blocklist) is "ACL deny", built-in
/// protections (TCP flag checks, fragments, amplification, bad cookies)
/// "ACL drop", rate limits "policer", a VIP without backend or route
/// "unroutable", length fields and truncations "bad total length", header
/// length fields "bad header length", anything else "dropped, unknown".
///
/// # Examples
///
/// ```
/// use xdpath::observe::ipfix::forwarding_status;
/// use xdpath_core::{Action, Reason};
/// assert_eq!(forwarding_status(Action::Pass, Reason::Ipv4Tcp), 64);
/// assert_eq!(forwarding_status(Action::Drop, Reason::RuleDeny), 129);
/// assert_eq!(forwarding_status(Action::Drop, Reason::RateLimited), 138);
/// ```
pub fn forwarding_status(action: Action, reason: Reason) -> u8 {
    match action {
        Action::Pass => FORWARDED_UNKNOWN,
        Action::Tx if reason == Reason::SynCookieSent => CONSUMED_FOR_US,
        Action::Tx if reason == Reason::LbTooBig => DROPPED_FRAGMENTATION_DF,
        Action::Tx | Action::Redirect => FORWARDED_NOT_FRAGMENTED,
        Action::Aborted => DROPPED_UNKNOWN,
        Action::Drop => match reason {
            Reason::RuleDeny | Reason::DefaultDeny | Reason::Blocklisted => DROPPED_ACL_DENY,
            Reason::RateLimited | Reason::SynRateLimited => DROPPED_POLICER,
            Reason::LbFragment => DROPPED_ACL_DROP,
            Reason::LbNotAllowed => DROPPED_ACL_DENY,
            Reason::LbNoBackend | Reason::LbNoRoute => DROPPED_UNROUTABLE,
            Reason::LbTooBig => DROPPED_FRAGMENTATION_DF,
            Reason::BadIpv4HeaderLength | Reason::BadTcpDataOffset => DROPPED_BAD_HEADER_LENGTH,
            Reason::TruncatedIpv4
            | Reason::Ipv4LengthBeyondFrame
            | Reason::Ipv4LengthBelowHeader
            | Reason::TruncatedIpv6
            | Reason::Ipv6LengthBeyondFrame
            | Reason::TruncatedIpv6Extension
            | Reason::TruncatedTcp
            | Reason::TruncatedUdp
            | Reason::BadUdpLength
            | Reason::TruncatedIcmp
            | Reason::TruncatedIcmpv6 => DROPPED_BAD_TOTAL_LENGTH,
            reason if reason.is_filter() => DROPPED_ACL_DROP,
            _ => DROPPED_UNKNOWN,
        },
    }
}

/// Where and how to export IPFIX.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpfixConfig {
    /// The collectors; each gets every message.
    pub collectors: Vec<SocketAddr>,
    /// The observation domain id put in every message.
    pub observation_domain: u32,
    /// A long flow is exported this often while it lasts.
    pub active_timeout: Duration,
    /// A flow with no packet for this long is exported and forgotten.
    pub idle_timeout: Duration,
    /// Templates are resent at least this often.
    pub template_refresh: Duration,
    /// ... and in every this many messages (1: every message; 0: no
    /// count limit).
    pub template_every_messages: u32,
    /// Largest message, bytes (UDP payload; 320 to 65535).
    pub max_message: usize,
    /// Largest number of flows in the cache.
    pub max_flows: usize,
    /// The sampling interval (1 in N) announced until samples tell
    /// another one.
    pub sampling_interval: u32,
}

impl IpfixConfig {
    /// Defaults: domain 0, active 60 s, idle 15 s, templates every 60 s or
    /// 20 messages, [`DEFAULT_MAX_MESSAGE`], 65 536 flows, unsampled.
    pub fn new(collectors: Vec<SocketAddr>) -> Self {
        Self {
            collectors,
            observation_domain: 0,
            active_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(15),
            template_refresh: Duration::from_secs(60),
            template_every_messages: 20,
            max_message: DEFAULT_MAX_MESSAGE,
            max_flows: 65_536,
            sampling_interval: 1,
        }
    }
}
