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
//! `template_every_messages` messages (RFC 7011 §10.3.6).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use xdpath_core::{Action, Reason};

use super::flows::{FlowCache, FlowRecord};
use super::sflow::{CollectorSockets, ExportError};
use super::Sample;

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
/// Default largest message, bytes (UDP payload): below a 1500-byte MTU.
pub const DEFAULT_MAX_MESSAGE: usize = 1400;

/// Message header: version, length, export time, sequence, domain.
const MESSAGE_HEADER_LEN: usize = 16;
/// Set header: set id, length.
const SET_HEADER_LEN: usize = 4;
/// Smallest message size honoured: a header, both templates and one IPv6
/// record must fit.
const MIN_MESSAGE: usize = 256;
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
    (6, 2),   // tcpControlBits
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
        Action::Tx | Action::Redirect => FORWARDED_NOT_FRAGMENTED,
        Action::Aborted => DROPPED_UNKNOWN,
        Action::Drop => match reason {
            Reason::RuleDeny | Reason::DefaultDeny | Reason::Blocklisted => DROPPED_ACL_DENY,
            Reason::RateLimited | Reason::SynRateLimited => DROPPED_POLICER,
            Reason::LbFragment => DROPPED_ACL_DROP,
            Reason::LbNoBackend | Reason::LbNoRoute => DROPPED_UNROUTABLE,
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
    /// Largest message, bytes (UDP payload; 256 to 65535).
    pub max_message: usize,
    /// Largest number of flows in the cache.
    pub max_flows: usize,
}

impl IpfixConfig {
    /// Defaults: domain 0, active 60 s, idle 15 s, templates every 60 s or
    /// 20 messages, [`DEFAULT_MAX_MESSAGE`], 65 536 flows.
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
        }
    }
}

/// One encoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpfixMessage {
    /// The message bytes.
    pub bytes: Vec<u8>,
    /// Data records in it.
    pub records: u32,
    /// Whether it carries the template set.
    pub has_templates: bool,
}

/// Builds IPFIX messages, keeping the sequence number and the template
/// refresh schedule (time is the caller's).
///
/// # Examples
///
/// ```
/// use xdpath::observe::ipfix::{IpfixConfig, IpfixEncoder};
/// let mut encoder = IpfixEncoder::new(&IpfixConfig::new(vec![]));
/// let messages = encoder.messages(1_700_000_000, &[]);
/// assert!(messages[0].has_templates && messages[0].records == 0);
/// assert_eq!(&messages[0].bytes[..2], &10u16.to_be_bytes());
/// assert!(encoder.messages(1_700_000_001, &[]).is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct IpfixEncoder {
    observation_domain: u32,
    max_message: usize,
    template_refresh_s: u64,
    template_every_messages: u32,
    sequence: u32,
    last_template_s: Option<u32>,
    messages_since_template: u32,
}

/// A message being filled.
struct MessageBuilder {
    bytes: Vec<u8>,
    /// The open data set: its template id and where it starts.
    open_set: Option<(u16, usize)>,
    records: u32,
    has_templates: bool,
}

fn round4(length: usize) -> usize {
    length.div_ceil(4) * 4
}

fn put_u16(bytes: &mut Vec<u8>, value: u16) {
    bytes.extend_from_slice(&value.to_be_bytes());
}

/// Writes `value` at `at` (a position this module reserved).
fn patch_u16(bytes: &mut [u8], at: usize, value: usize) {
    if let Some(slot) = bytes.get_mut(at..at + 2) {
        slot.copy_from_slice(&u16::try_from(value).unwrap_or(u16::MAX).to_be_bytes());
    }
}

impl MessageBuilder {
    fn new(with_templates: bool) -> Self {
        let mut bytes = vec![0; MESSAGE_HEADER_LEN];
        if with_templates {
            bytes.extend_from_slice(&IpfixEncoder::template_set());
        }
        Self {
            bytes,
            open_set: None,
            records: 0,
            has_templates: with_templates,
        }
    }

    /// The message's length, padded, once a record of `length` bytes for
    /// `template` is added.
    fn length_with(&self, template: u16, length: usize) -> usize {
        match self.open_set {
            Some((open, start)) if open == template => {
                start + round4(self.bytes.len() - start + length)
            }
            _ => round4(self.bytes.len()) + round4(SET_HEADER_LEN + length),
        }
    }

    fn close_set(&mut self) {
        if let Some((_, start)) = self.open_set.take() {
            self.bytes.resize(round4(self.bytes.len()), 0);
            let length = self.bytes.len() - start;
            patch_u16(&mut self.bytes, start + 2, length);
        }
    }

    fn push(&mut self, template: u16, record: &[u8]) {
        if !matches!(self.open_set, Some((open, _)) if open == template) {
            self.close_set();
            self.open_set = Some((template, self.bytes.len()));
            put_u16(&mut self.bytes, template);
            put_u16(&mut self.bytes, 0);
        }
        self.bytes.extend_from_slice(record);
        self.records += 1;
    }

    fn finish(mut self, export_time_s: u32, sequence: u32, domain: u32) -> IpfixMessage {
        self.close_set();
        let length = self.bytes.len();
        let mut header = Vec::with_capacity(MESSAGE_HEADER_LEN);
        put_u16(&mut header, IPFIX_VERSION);
        put_u16(&mut header, u16::try_from(length).unwrap_or(u16::MAX));
        header.extend_from_slice(&export_time_s.to_be_bytes());
        header.extend_from_slice(&sequence.to_be_bytes());
        header.extend_from_slice(&domain.to_be_bytes());
        if let Some(slot) = self.bytes.get_mut(..MESSAGE_HEADER_LEN) {
            slot.copy_from_slice(&header);
        }
        IpfixMessage {
            bytes: self.bytes,
            records: self.records,
            has_templates: self.has_templates,
        }
    }
}

/// A record's template and bytes; `None` when its addresses are of
/// different families (no template fits).
fn encode_record(record: &FlowRecord) -> Option<(u16, Vec<u8>)> {
    let key = &record.key;
    let (template, mut bytes) = match (key.source, key.destination) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (TEMPLATE_IPV4, Vec::with_capacity(RECORD_LEN_IPV4)),
        (IpAddr::V6(_), IpAddr::V6(_)) => (TEMPLATE_IPV6, Vec::with_capacity(RECORD_LEN_IPV6)),
        _ => return None,
    };
    bytes.extend_from_slice(&record.bytes.to_be_bytes());
    bytes.extend_from_slice(&record.packets.to_be_bytes());
    bytes.extend_from_slice(&record.first_ms.to_be_bytes());
    bytes.extend_from_slice(&record.last_ms.to_be_bytes());
    for address in [key.source, key.destination] {
        match address {
            IpAddr::V4(address) => bytes.extend_from_slice(&address.octets()),
            IpAddr::V6(address) => bytes.extend_from_slice(&address.octets()),
        }
    }
    put_u16(&mut bytes, key.source_port);
    put_u16(&mut bytes, key.destination_port);
    bytes.push(key.protocol);
    put_u16(&mut bytes, u16::from(record.tcp_flags));
    bytes.extend_from_slice(&key.ingress_ifindex.to_be_bytes());
    put_u16(&mut bytes, key.vlan.unwrap_or(0));
    bytes.push(record.forwarding_status);
    bytes.push(record.end_reason as u8);
    Some((template, bytes))
}

impl IpfixEncoder {
    /// An encoder for `config` (sequence number 0, templates due).
    pub fn new(config: &IpfixConfig) -> Self {
        Self {
            observation_domain: config.observation_domain,
            max_message: config.max_message.clamp(MIN_MESSAGE, MAX_MESSAGE),
            template_refresh_s: config.template_refresh.as_secs(),
            template_every_messages: config.template_every_messages,
            sequence: 0,
            last_template_s: None,
            messages_since_template: 0,
        }
    }

    /// The template set: both templates, IPv4 (256) then IPv6 (257).
    pub fn template_set() -> Vec<u8> {
        let mut bytes = Vec::new();
        put_u16(&mut bytes, TEMPLATE_SET_ID);
        put_u16(&mut bytes, 0);
        for (template, fields) in [(TEMPLATE_IPV4, FIELDS_IPV4), (TEMPLATE_IPV6, FIELDS_IPV6)] {
            put_u16(&mut bytes, template);
            put_u16(&mut bytes, fields.len() as u16);
            for (element, length) in fields {
                put_u16(&mut bytes, element);
                put_u16(&mut bytes, length);
            }
        }
        let length = bytes.len();
        patch_u16(&mut bytes, 2, length);
        bytes
    }

    /// The sequence number the next message will carry: data records sent
    /// so far, modulo 2^32.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    fn templates_due(&self, export_time_s: u32) -> bool {
        let Some(last) = self.last_template_s else {
            return true;
        };
        // A clock stepping back also resends: better early than never.
        export_time_s < last
            || u64::from(export_time_s - last) >= self.template_refresh_s
            || (self.template_every_messages != 0
                && self.messages_since_template.saturating_add(1) >= self.template_every_messages)
    }

    /// Messages carrying `records` (IPv4 and IPv6 records in sets of
    /// their own), each at most the configured size, with the templates
    /// in front when due. With no records, a templates-only message when
    /// due, else nothing. Records whose addresses mix families are
    /// skipped.
    pub fn messages(&mut self, export_time_s: u32, records: &[FlowRecord]) -> Vec<IpfixMessage> {
        let mut messages = Vec::new();
        let mut current: Option<MessageBuilder> = None;
        let mut encoded: Vec<(u16, Vec<u8>)> = records.iter().filter_map(encode_record).collect();
        // One set per family per message, not one per change of family.
        encoded.sort_by_key(|(template, _)| *template);
        for (template, bytes) in encoded {
            if let Some(message) = current.take() {
                if message.length_with(template, bytes.len()) <= self.max_message {
                    current = Some(message);
                } else {
                    messages.push(self.finish(message, export_time_s));
                }
            }
            let message = current.get_or_insert_with(|| self.start(export_time_s));
            message.push(template, &bytes);
        }
        if current.is_none() && self.templates_due(export_time_s) {
            current = Some(self.start(export_time_s));
        }
        if let Some(message) = current {
            messages.push(self.finish(message, export_time_s));
        }
        messages
    }

    fn start(&mut self, export_time_s: u32) -> MessageBuilder {
        let with_templates = self.templates_due(export_time_s);
        if with_templates {
            self.last_template_s = Some(export_time_s);
            self.messages_since_template = 0;
        } else {
            self.messages_since_template = self.messages_since_template.saturating_add(1);
        }
        MessageBuilder::new(with_templates)
    }

    fn finish(&mut self, message: MessageBuilder, export_time_s: u32) -> IpfixMessage {
        let message = message.finish(export_time_s, self.sequence, self.observation_domain);
        self.sequence = self.sequence.wrapping_add(message.records);
        message
    }
}

/// What an [`IpfixExporter`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpfixStats {
    /// Messages a collector's socket accepted (one per collector).
    pub messages_sent: u64,
    /// Data records in messages that reached at least one collector.
    pub records_sent: u64,
    /// Messages carrying templates that reached at least one collector.
    pub template_sends: u64,
    /// Sends that failed (one per collector and message).
    pub send_errors: u64,
}

/// Aggregates samples into flows and exports them to collectors. Call
/// [`IpfixExporter::export_expired`] about once a second; send errors are
/// counted, never fatal.
///
/// # Examples
///
/// ```
/// use xdpath::observe::ipfix::{IpfixConfig, IpfixExporter};
/// let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let config = IpfixConfig::new(vec![collector.local_addr().unwrap()]);
/// let mut exporter = IpfixExporter::new(config).unwrap();
/// exporter.export_expired(1_700_000_000_000); // templates at start
/// assert_eq!(exporter.stats().template_sends, 1);
/// let mut buffer = [0u8; 1500];
/// let (length, _) = collector.recv_from(&mut buffer).unwrap();
/// assert_eq!(length, 16 + 124);
/// ```
#[derive(Debug)]
pub struct IpfixExporter {
    encoder: IpfixEncoder,
    sockets: CollectorSockets,
    cache: FlowCache,
    stats: IpfixStats,
}

impl IpfixExporter {
    /// Opens the sockets for `config`'s collectors.
    pub fn new(config: IpfixConfig) -> Result<Self, ExportError> {
        let sockets = CollectorSockets::open(&config.collectors)?;
        Ok(Self {
            encoder: IpfixEncoder::new(&config),
            sockets,
            cache: FlowCache::new(config.active_timeout, config.idle_timeout, config.max_flows),
            stats: IpfixStats::default(),
        })
    }

    /// Counts a sample in its flow.
    pub fn add(&mut self, sample: &Sample) {
        self.cache.add(sample);
    }

    /// Exports the flows due at `now_ms` (Unix milliseconds), and the
    /// templates when due.
    pub fn export_expired(&mut self, now_ms: u64) {
        let records = self.cache.expire(now_ms);
        self.send(now_ms, &records);
    }

    /// Exports every flow (forced end), for shutdown.
    pub fn export_all(&mut self, now_ms: u64) {
        let records = self.cache.drain_all();
        self.send(now_ms, &records);
    }

    /// Exports `records` built elsewhere.
    pub fn send(&mut self, now_ms: u64, records: &[FlowRecord]) {
        let export_time_s = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
        for message in self.encoder.messages(export_time_s, records) {
            let (sent, failed) = self.sockets.send(&message.bytes);
            self.stats.messages_sent += sent;
            self.stats.send_errors += failed;
            if sent > 0 {
                self.stats.records_sent += u64::from(message.records);
                self.stats.template_sends += u64::from(message.has_templates);
            }
        }
    }

    /// The flow cache.
    pub fn cache(&self) -> &FlowCache {
        &self.cache
    }

    /// The statistics so far.
    pub fn stats(&self) -> IpfixStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::flows::{FlowEndReason, FlowKey};

    fn record(source: &str, destination: &str) -> FlowRecord {
        FlowRecord {
            key: FlowKey {
                source: source.parse().unwrap(),
                destination: destination.parse().unwrap(),
                source_port: 1234,
                destination_port: 80,
                protocol: 6,
                vlan: Some(42),
                ingress_ifindex: 3,
            },
            packets: 2,
            bytes: 0x0102,
            first_ms: 5,
            last_ms: 6,
            tcp_flags: 0x12,
            forwarding_status: 129,
            end_reason: FlowEndReason::IdleTimeout,
        }
    }

    #[test]
    fn golden_header_and_template_set() {
        let config = IpfixConfig {
            observation_domain: 9,
            ..IpfixConfig::new(vec![])
        };
        let mut encoder = IpfixEncoder::new(&config);
        let message = &encoder.messages(0x6000_0000, &[])[0];
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0, 10, 0, 140,          // version 10, length 16 + 124
            0x60, 0, 0, 0,          // export time
            0, 0, 0, 0,             // sequence: no record before
            0, 0, 0, 9,             // observation domain
            0, 2, 0, 124,           // template set, 4 + 2 * 60 bytes
            1, 0, 0, 14,            // template 256, 14 fields
            0, 1, 0, 8,  0, 2, 0, 8,  0, 152, 0, 8,  0, 153, 0, 8,
            0, 8, 0, 4,  0, 12, 0, 4,
            0, 7, 0, 2,  0, 11, 0, 2,  0, 4, 0, 1,  0, 6, 0, 2,
            0, 10, 0, 4,  0, 58, 0, 2,  0, 89, 0, 1,  0, 136, 0, 1,
            1, 1, 0, 14,            // template 257, 14 fields
            0, 1, 0, 8,  0, 2, 0, 8,  0, 152, 0, 8,  0, 153, 0, 8,
            0, 27, 0, 16,  0, 28, 0, 16,
            0, 7, 0, 2,  0, 11, 0, 2,  0, 4, 0, 1,  0, 6, 0, 2,
            0, 10, 0, 4,  0, 58, 0, 2,  0, 89, 0, 1,  0, 136, 0, 1,
        ];
        assert_eq!(message.bytes, expected);
        // A data record follows in a padded set; the next message's
        // sequence counts it.
        let messages = encoder.messages(0x6000_0001, &[record("10.0.0.1", "10.0.0.2")]);
        assert!(!messages[0].has_templates);
        #[rustfmt::skip]
        let data: Vec<u8> = vec![
            0, 10, 0, 76, 0x60, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9,
            1, 0, 0, 60,            // data set 256: 4 + 55 + 1 padding
            0, 0, 0, 0, 0, 0, 1, 2,  0, 0, 0, 0, 0, 0, 0, 2,
            0, 0, 0, 0, 0, 0, 0, 5,  0, 0, 0, 0, 0, 0, 0, 6,
            10, 0, 0, 1,  10, 0, 0, 2,  0x04, 0xd2, 0, 80,  6,  0, 0x12,
            0, 0, 0, 3,  0, 42,  129,  1,
            0,
        ];
        assert_eq!(messages[0].bytes, data);
        let next = encoder.messages(0x6000_0001, &[record("10.0.0.1", "10.0.0.2")]);
        assert_eq!(next[0].bytes[8..12], [0, 0, 0, 1]);
    }

    #[test]
    fn record_lengths_match_the_templates() {
        assert_eq!((RECORD_LEN_IPV4, RECORD_LEN_IPV6), (55, 79));
        let (_, v4) = encode_record(&record("10.0.0.1", "10.0.0.2")).unwrap();
        let (_, v6) = encode_record(&record("2001:db8::1", "2001:db8::2")).unwrap();
        assert_eq!((v4.len(), v6.len()), (55, 79));
        assert!(encode_record(&record("10.0.0.1", "2001:db8::2")).is_none());
    }

    #[test]
    fn messages_split_and_templates_refresh() {
        let config = IpfixConfig {
            max_message: 400,
            template_every_messages: 3,
            ..IpfixConfig::new(vec![])
        };
        let mut encoder = IpfixEncoder::new(&config);
        let mut records = Vec::new();
        for _ in 0..10 {
            records.push(record("10.0.0.1", "10.0.0.2"));
            records.push(record("2001:db8::1", "2001:db8::2"));
        }
        let messages = encoder.messages(100, &records);
        assert!(messages.iter().all(|message| message.bytes.len() <= 400));
        assert!(messages.iter().all(|message| message.bytes.len() % 4 == 0));
        assert_eq!(messages.iter().map(|m| m.records).sum::<u32>(), 20);
        let with_templates: Vec<bool> = messages.iter().map(|m| m.has_templates).collect();
        assert_eq!(with_templates[..4], [true, false, false, true]);
        let mut sequence = 0u32;
        for message in &messages {
            assert_eq!(message.bytes[8..12], sequence.to_be_bytes());
            sequence += message.records;
        }
        assert_eq!(encoder.sequence(), 20);
        // Refresh by time, and after the clock steps back.
        let mut encoder = IpfixEncoder::new(&IpfixConfig::new(vec![]));
        assert_eq!(encoder.messages(1000, &[]).len(), 1);
        assert!(encoder.messages(1059, &[]).is_empty());
        assert!(encoder.messages(1060, &[])[0].has_templates);
        assert!(encoder.messages(10, &[])[0].has_templates);
    }

    #[test]
    fn forwarding_statuses() {
        use Reason::*;
        let drop = |reason| forwarding_status(Action::Drop, reason);
        assert_eq!(drop(DefaultDeny), 129);
        assert_eq!(
            (drop(TcpNullFlags), drop(Amplification), drop(Fragment)),
            (130, 130, 130)
        );
        assert_eq!(drop(SynRateLimited), 138);
        assert_eq!(
            (drop(Ipv4LengthBeyondFrame), drop(BadTcpDataOffset)),
            (135, 136)
        );
        assert_eq!((drop(BadIpv6Version), drop(LbNoBackend)), (128, 131));
        assert_eq!(forwarding_status(Action::Redirect, LbForwarded), 66);
        assert_eq!(forwarding_status(Action::Tx, SynCookieSent), 195);
        assert_eq!(forwarding_status(Action::Aborted, Ipv4Tcp), 128);
        for reason in Reason::ALL {
            for action in Action::ALL {
                assert!(forwarding_status(action, reason) >= 64);
            }
        }
    }
}
