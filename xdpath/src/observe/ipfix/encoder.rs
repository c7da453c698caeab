//! [`IpfixEncoder`]: IPFIX messages as bytes (template set, data sets of
//! flow records), with the sequence number and the template schedule.

use std::net::IpAddr;

use super::{sampling_sets, unscale, IpfixConfig, SAMPLING_RECORDS};
use super::{
    FIELDS_IPV4, FIELDS_IPV6, IPFIX_VERSION, MAX_MESSAGE, MESSAGE_HEADER_LEN, MIN_MESSAGE,
    RECORD_LEN_IPV4, RECORD_LEN_IPV6, SET_HEADER_LEN, TEMPLATE_IPV4, TEMPLATE_IPV6,
    TEMPLATE_SET_ID,
};
use crate::observe::flows::FlowRecord;

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
    sampling_interval: u32,
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
    /// A message; with the templates and the sampling options of
    /// `sampling` (domain, interval) when given.
    fn new(sampling: Option<(u32, u32)>) -> Self {
        let mut bytes = vec![0; MESSAGE_HEADER_LEN];
        let with_templates = sampling.is_some();
        if let Some((domain, interval)) = sampling {
            bytes.extend_from_slice(&IpfixEncoder::template_set());
            bytes.extend_from_slice(&sampling_sets(domain, interval));
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

/// A record's template and bytes, its counts unscaled for a collector
/// scaling by `interval` ([`unscale`]); `None` when its addresses are of
/// different families (no template fits).
pub(super) fn encode_record(record: &FlowRecord, interval: u32) -> Option<(u16, Vec<u8>)> {
    let key = &record.key;
    let (template, mut bytes) = match (key.source, key.destination) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (TEMPLATE_IPV4, Vec::with_capacity(RECORD_LEN_IPV4)),
        (IpAddr::V6(_), IpAddr::V6(_)) => (TEMPLATE_IPV6, Vec::with_capacity(RECORD_LEN_IPV6)),
        _ => return None,
    };
    bytes.extend_from_slice(&unscale(record.bytes, interval).to_be_bytes());
    bytes.extend_from_slice(&unscale(record.packets, interval).to_be_bytes());
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
    bytes.push(record.tcp_flags);
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
            sampling_interval: config.sampling_interval.max(1),
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

    /// The sampling interval announced (1 in N).
    pub fn sampling_interval(&self) -> u32 {
        self.sampling_interval
    }

    /// Announces `interval` from the next message on (templates and
    /// options are due again when it changes).
    pub fn set_sampling_interval(&mut self, interval: u32) {
        let interval = interval.max(1);
        if interval != self.sampling_interval {
            self.sampling_interval = interval;
            self.last_template_s = None;
        }
    }

    /// The sequence number the next message will carry: data records sent
    /// so far (the sampling options records too), modulo 2^32.
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
        let mut encoded: Vec<(u16, Vec<u8>)> = records
            .iter()
            .filter_map(|record| encode_record(record, self.sampling_interval))
            .collect();
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
        MessageBuilder::new(
            with_templates.then_some((self.observation_domain, self.sampling_interval)),
        )
    }

    fn finish(&mut self, message: MessageBuilder, export_time_s: u32) -> IpfixMessage {
        let message = message.finish(export_time_s, self.sequence, self.observation_domain);
        // The sequence counts every data record, the options ones too
        // (RFC 7011 §3.1).
        let options = if message.has_templates {
            SAMPLING_RECORDS
        } else {
            0
        };
        self.sequence = self.sequence.wrapping_add(message.records + options);
        message
    }
}
