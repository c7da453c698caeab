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

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Instant;

use xdpath_core::{Action, Reason};

use super::Sample;

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
/// Encoded size of a generic interface counters record's body, bytes.
const GENERIC_INTERFACE_LEN: u32 = 88;
/// Largest datagram header: version, address type, IPv6 address,
/// sub-agent id, sequence number, uptime, sample count.
const MAX_DATAGRAM_HEADER_LEN: usize = 4 + 4 + 16 + 4 * 4;

/// Discard code (`output` format 1): ICMP "net unreachable".
pub const DISCARD_NET_UNREACHABLE: u32 = 0;
/// Discard code: ICMP "host unreachable".
pub const DISCARD_HOST_UNREACHABLE: u32 = 1;
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
        Reason::LbFragment => DISCARD_ACL,
        Reason::LbEncapFailed => DISCARD_NO_BUFFER_SPACE,
        Reason::LbNoRoute => DISCARD_NET_UNREACHABLE,
        reason if reason.is_filter() => DISCARD_ACL,
        _ => DISCARD_UNKNOWN,
    }
}

/// The flow sample `output` field for a frame received on `ifindex`.
///
/// Dropped (or aborted) frames: format 1 with [`discard_code`]. `Tx` goes
/// back out of the receiving interface, except a SYN answered with a
/// cookie, which ended in the device itself (`0x3fffffff`). `Pass` hands
/// the frame to the kernel, which may deliver or route it, and `Redirect`
/// targets an interface the record does not name: both report 0, unknown.
pub fn output_interface(action: Action, reason: Reason, ifindex: u32) -> u32 {
    match action {
        Action::Drop => OUTPUT_DISCARDED | discard_code(reason),
        Action::Aborted => OUTPUT_DISCARDED | DISCARD_UNKNOWN,
        Action::Tx if reason == Reason::SynCookieSent => OUTPUT_INTERNAL,
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
}

impl SflowConfig {
    /// A configuration with sub-agent 0 and [`DEFAULT_MAX_DATAGRAM`].
    pub fn new(agent: IpAddr, collectors: Vec<SocketAddr>) -> Self {
        Self {
            agent,
            sub_agent_id: 0,
            collectors,
            max_datagram: DEFAULT_MAX_DATAGRAM,
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
    /// Bytes sent.
    pub out_octets: u64,
    /// Frames sent.
    pub out_packets: u64,
    /// Administratively up.
    pub admin_up: bool,
    /// Operationally up.
    pub oper_up: bool,
}

/// Builds sFlow samples and datagrams, keeping the sequence numbers.
///
/// # Examples
///
/// ```
/// use xdpath::observe::sflow::{SflowConfig, SflowEncoder};
/// use xdpath::observe::Sample;
/// let config = SflowConfig::new("192.0.2.1".parse().unwrap(), vec![]);
/// let mut encoder = SflowEncoder::new(&config);
/// let mut sample = Sample { meta: Default::default(), unix_ns: 0, data: vec![0; 60] };
/// sample.meta.ifindex = 2;
/// sample.meta.frame_len = 60;
/// sample.meta.sample_rate = 100;
/// let flow = encoder.flow_sample(&sample, 1000, 0).unwrap();
/// let datagrams = encoder.datagrams(1234, &[flow]);
/// assert_eq!(datagrams.len(), 1);
/// assert_eq!(&datagrams[0][..4], &5u32.to_be_bytes());
/// ```
#[derive(Clone, Debug)]
pub struct SflowEncoder {
    agent: IpAddr,
    sub_agent_id: u32,
    max_datagram: usize,
    datagram_sequence: u32,
    flow_sequences: HashMap<u32, u32>,
    counter_sequences: HashMap<u32, u32>,
}

/// Appends XDR values to a byte vector.
trait Xdr {
    fn put_u32(&mut self, value: u32);
    fn put_u64(&mut self, value: u64);
    /// Variable-length opaque: length, bytes, zero padding to 4.
    fn put_opaque(&mut self, bytes: &[u8]);
}

impl Xdr for Vec<u8> {
    fn put_u32(&mut self, value: u32) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_u64(&mut self, value: u64) {
        self.extend_from_slice(&value.to_be_bytes());
    }
    fn put_opaque(&mut self, bytes: &[u8]) {
        self.put_u32(len_u32(bytes.len()));
        self.extend_from_slice(bytes);
        self.resize(self.len() + padding(bytes.len()), 0);
    }
}

fn padding(length: usize) -> usize {
    (4 - length % 4) % 4
}

/// Lengths here are bounded by [`MAX_HEADER_BYTES`] and small structures;
/// saturating only guards against misuse.
fn len_u32(length: usize) -> u32 {
    u32::try_from(length).unwrap_or(u32::MAX)
}

/// Counters are 32-bit in the spec and wrap: keep the low 32 bits.
fn wrap32(value: u64) -> u32 {
    (value & u64::from(u32::MAX)) as u32
}

/// The next sequence number of `source_id` (the first is 1).
fn next_sequence(sequences: &mut HashMap<u32, u32>, source_id: u32) -> u32 {
    let sequence = sequences.entry(source_id).or_insert(0);
    *sequence = sequence.wrapping_add(1);
    *sequence
}

impl SflowEncoder {
    /// An encoder for `config`'s agent; all sequence numbers start at 1.
    pub fn new(config: &SflowConfig) -> Self {
        Self {
            agent: config.agent,
            sub_agent_id: config.sub_agent_id,
            max_datagram: config.max_datagram,
            datagram_sequence: 0,
            flow_sequences: HashMap::new(),
            counter_sequences: HashMap::new(),
        }
    }

    /// A compact flow sample (`sample_record`, type and length included)
    /// with one raw packet header record of the first
    /// [`MAX_HEADER_BYTES`] bytes. `sample_pool` is the frames the
    /// interface saw, sampled or not; `drops` the samples lost on the way
    /// (ring buffer full). `None` when the interface's ifIndex does not
    /// fit the compact encoding (2^24 and above), which the spec forbids
    /// mixing with the expanded one.
    pub fn flow_sample(
        &mut self,
        sample: &Sample,
        sample_pool: u32,
        drops: u32,
    ) -> Option<Vec<u8>> {
        let ifindex = sample.meta.ifindex;
        if ifindex > MAX_COMPACT_IFINDEX {
            return None;
        }
        let header = sample.data.get(..MAX_HEADER_BYTES).unwrap_or(&sample.data);
        let record_len = 16 + header.len() + padding(header.len());
        let sequence = next_sequence(&mut self.flow_sequences, ifindex);
        let mut bytes = Vec::with_capacity(8 + 32 + 8 + record_len);
        bytes.put_u32(FORMAT_FLOW_SAMPLE);
        bytes.put_u32(len_u32(32 + 8 + record_len));
        bytes.put_u32(sequence);
        bytes.put_u32(ifindex);
        bytes.put_u32(sample.meta.sample_rate.max(1));
        bytes.put_u32(sample_pool);
        bytes.put_u32(drops);
        bytes.put_u32(ifindex);
        bytes.put_u32(output_interface(sample.action(), sample.reason(), ifindex));
        bytes.put_u32(1);
        bytes.put_u32(FORMAT_SAMPLED_HEADER);
        bytes.put_u32(len_u32(record_len));
        bytes.put_u32(HEADER_PROTOCOL_ETHERNET);
        bytes.put_u32(sample.meta.frame_len.saturating_add(FCS_LEN));
        bytes.put_u32(FCS_LEN);
        bytes.put_opaque(header);
        Some(bytes)
    }

    /// A compact counter sample with one generic interface counters
    /// record; `None` when the ifIndex does not fit the compact encoding.
    pub fn counter_sample(&mut self, counters: &InterfaceCounters) -> Option<Vec<u8>> {
        let ifindex = counters.ifindex;
        if ifindex > MAX_COMPACT_IFINDEX {
            return None;
        }
        let sequence = next_sequence(&mut self.counter_sequences, ifindex);
        let status = u32::from(counters.admin_up) | u32::from(counters.oper_up) << 1;
        let mut bytes = Vec::with_capacity(8 + 12 + 8 + GENERIC_INTERFACE_LEN as usize);
        bytes.put_u32(FORMAT_COUNTER_SAMPLE);
        bytes.put_u32(12 + 8 + GENERIC_INTERFACE_LEN);
        bytes.put_u32(sequence);
        bytes.put_u32(ifindex);
        bytes.put_u32(1);
        bytes.put_u32(FORMAT_GENERIC_INTERFACE);
        bytes.put_u32(GENERIC_INTERFACE_LEN);
        bytes.put_u32(ifindex);
        bytes.put_u32(IF_TYPE_ETHERNET);
        bytes.put_u64(counters.speed_bps);
        bytes.put_u32(0); // ifDirection: unknown (xdpath does not read the MAU).
        bytes.put_u32(status);
        bytes.put_u64(counters.in_octets);
        bytes.put_u32(wrap32(counters.in_packets));
        bytes.put_u32(COUNTER_UNAVAILABLE); // ifInMulticastPkts
        bytes.put_u32(COUNTER_UNAVAILABLE); // ifInBroadcastPkts
        bytes.put_u32(wrap32(counters.in_discards));
        bytes.put_u32(wrap32(counters.in_errors));
        bytes.put_u32(COUNTER_UNAVAILABLE); // ifInUnknownProtos
        bytes.put_u64(counters.out_octets);
        bytes.put_u32(wrap32(counters.out_packets));
        bytes.put_u32(COUNTER_UNAVAILABLE); // ifOutMulticastPkts
        bytes.put_u32(COUNTER_UNAVAILABLE); // ifOutBroadcastPkts
        bytes.put_u32(COUNTER_UNAVAILABLE); // ifOutDiscards
        bytes.put_u32(COUNTER_UNAVAILABLE); // ifOutErrors
        bytes.put_u32(0); // ifPromiscuousMode: an unknown integer is 0.
        Some(bytes)
    }

    /// Packs `samples` (from [`SflowEncoder::flow_sample`] and
    /// [`SflowEncoder::counter_sample`]) into datagrams of at most the
    /// configured size, in order, each with the next datagram sequence
    /// number. A sample too big for any datagram travels alone, since a
    /// sample cannot be split.
    pub fn datagrams(&mut self, uptime_ms: u32, samples: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut datagrams = Vec::new();
        let mut batch: Vec<&[u8]> = Vec::new();
        let mut batch_len = self.header_len();
        for sample in samples {
            if !batch.is_empty() && batch_len + sample.len() > self.max_datagram {
                datagrams.push(self.datagram(uptime_ms, &batch));
                batch.clear();
                batch_len = self.header_len();
            }
            batch.push(sample);
            batch_len += sample.len();
        }
        if !batch.is_empty() {
            datagrams.push(self.datagram(uptime_ms, &batch));
        }
        datagrams
    }

    fn header_len(&self) -> usize {
        match self.agent {
            IpAddr::V4(_) => 28,
            IpAddr::V6(_) => 40,
        }
    }

    fn datagram(&mut self, uptime_ms: u32, samples: &[&[u8]]) -> Vec<u8> {
        self.datagram_sequence = self.datagram_sequence.wrapping_add(1);
        let mut bytes = Vec::with_capacity(self.max_datagram);
        bytes.put_u32(SFLOW_VERSION);
        match self.agent {
            IpAddr::V4(address) => {
                bytes.put_u32(ADDRESS_TYPE_IPV4);
                bytes.extend_from_slice(&address.octets());
            }
            IpAddr::V6(address) => {
                bytes.put_u32(ADDRESS_TYPE_IPV6);
                bytes.extend_from_slice(&address.octets());
            }
        }
        bytes.put_u32(self.sub_agent_id);
        bytes.put_u32(self.datagram_sequence);
        bytes.put_u32(uptime_ms);
        bytes.put_u32(len_u32(samples.len()));
        for sample in samples {
            bytes.extend_from_slice(sample);
        }
        bytes
    }
}

/// UDP sockets to a set of collectors: one unconnected, non-blocking
/// socket per address family in use, bound to an ephemeral port. Shared
/// by the sFlow and IPFIX exporters.
#[derive(Debug)]
pub(crate) struct CollectorSockets {
    ipv4: Option<UdpSocket>,
    ipv6: Option<UdpSocket>,
    collectors: Vec<SocketAddr>,
}

impl CollectorSockets {
    pub(crate) fn open(collectors: &[SocketAddr]) -> Result<Self, ExportError> {
        if collectors.is_empty() {
            return Err(ExportError::NoCollectors);
        }
        // Non-blocking: a full socket buffer must cost a datagram, not
        // stall the reader of the sample ring.
        let bind = |family: &'static str, any: &str| -> Result<UdpSocket, ExportError> {
            let socket = UdpSocket::bind(any).and_then(|socket| {
                socket.set_nonblocking(true)?;
                Ok(socket)
            });
            socket.map_err(|source| ExportError::Socket { family, source })
        };
        let ipv4 = match collectors.iter().any(SocketAddr::is_ipv4) {
            true => Some(bind("IPv4", "0.0.0.0:0")?),
            false => None,
        };
        let ipv6 = match collectors.iter().any(SocketAddr::is_ipv6) {
            true => Some(bind("IPv6", "[::]:0")?),
            false => None,
        };
        Ok(Self {
            ipv4,
            ipv6,
            collectors: collectors.to_vec(),
        })
    }

    /// Sends `datagram` to every collector: (sent, failed).
    pub(crate) fn send(&self, datagram: &[u8]) -> (u64, u64) {
        let (mut sent, mut failed) = (0, 0);
        for collector in &self.collectors {
            let socket = match collector {
                SocketAddr::V4(_) => self.ipv4.as_ref(),
                SocketAddr::V6(_) => self.ipv6.as_ref(),
            };
            match socket.map(|socket| socket.send_to(datagram, collector)) {
                Some(Ok(_)) => sent += 1,
                _ => failed += 1,
            }
        }
        (sent, failed)
    }
}

/// What an [`SflowExporter`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SflowStats {
    /// Datagrams a collector's socket accepted (one per collector).
    pub datagrams_sent: u64,
    /// Samples in datagrams that reached at least one collector's socket.
    pub samples_sent: u64,
    /// Sends that failed (one per collector and datagram).
    pub send_errors: u64,
    /// Samples not encoded: their ifIndex is beyond the compact encoding.
    pub samples_skipped: u64,
}

/// Sends sFlow to collectors: samples and counters are batched and sent
/// when a datagram fills or on [`SflowExporter::flush`]. Send errors are
/// counted, never fatal.
///
/// # Examples
///
/// ```
/// use xdpath::observe::sflow::{InterfaceCounters, SflowConfig, SflowExporter};
/// let collector = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let config = SflowConfig::new(
///     "127.0.0.1".parse().unwrap(),
///     vec![collector.local_addr().unwrap()],
/// );
/// let mut exporter = SflowExporter::new(config).unwrap();
/// exporter.push_counters(&InterfaceCounters { ifindex: 2, ..Default::default() });
/// exporter.flush();
/// assert_eq!(exporter.stats().datagrams_sent, 1);
/// let mut buffer = [0u8; 1500];
/// let (length, _) = collector.recv_from(&mut buffer).unwrap();
/// assert_eq!(length, 28 + 8 + 12 + 8 + 88);
/// ```
#[derive(Debug)]
pub struct SflowExporter {
    encoder: SflowEncoder,
    sockets: CollectorSockets,
    max_datagram: usize,
    pending: Vec<Vec<u8>>,
    pending_len: usize,
    started: Instant,
    stats: SflowStats,
}

impl SflowExporter {
    /// Opens the sockets for `config`'s collectors.
    pub fn new(config: SflowConfig) -> Result<Self, ExportError> {
        let sockets = CollectorSockets::open(&config.collectors)?;
        Ok(Self {
            encoder: SflowEncoder::new(&config),
            sockets,
            max_datagram: config.max_datagram,
            pending: Vec::new(),
            pending_len: 0,
            started: Instant::now(),
            stats: SflowStats::default(),
        })
    }

    /// Queues a flow sample (see [`SflowEncoder::flow_sample`]).
    pub fn push(&mut self, sample: &Sample, sample_pool: u32, drops: u32) {
        let encoded = self.encoder.flow_sample(sample, sample_pool, drops);
        self.queue(encoded);
    }

    /// Queues a counter sample.
    pub fn push_counters(&mut self, counters: &InterfaceCounters) {
        let encoded = self.encoder.counter_sample(counters);
        self.queue(encoded);
    }

    fn queue(&mut self, encoded: Option<Vec<u8>>) {
        let Some(encoded) = encoded else {
            self.stats.samples_skipped += 1;
            return;
        };
        if self.pending_len + encoded.len() + MAX_DATAGRAM_HEADER_LEN > self.max_datagram {
            self.flush();
        }
        self.pending_len += encoded.len();
        self.pending.push(encoded);
    }

    /// Sends every queued sample to every collector.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // The uptime is the exporter's: its sequence numbers restart with
        // it, and a collector reads a smaller uptime as that restart. The
        // field is 32-bit milliseconds and wraps after 49.7 days.
        let uptime_ms = (self.started.elapsed().as_millis() & u128::from(u32::MAX)) as u32;
        let samples = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        for datagram in self.encoder.datagrams(uptime_ms, &samples) {
            let count = datagram_sample_count(&datagram, self.encoder.header_len());
            let (sent, failed) = self.sockets.send(&datagram);
            self.stats.datagrams_sent += sent;
            self.stats.send_errors += failed;
            if sent > 0 {
                self.stats.samples_sent += u64::from(count);
            }
        }
    }

    /// The statistics so far.
    pub fn stats(&self) -> SflowStats {
        self.stats
    }
}

/// The sample count of a datagram this module built (the last header
/// field).
fn datagram_sample_count(datagram: &[u8], header_len: usize) -> u32 {
    datagram
        .get(header_len - 4..header_len)
        .and_then(|bytes| bytes.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdpath_core::observe::RecordMeta;

    fn sample(action: Action, reason: Reason, data: Vec<u8>) -> Sample {
        Sample {
            meta: RecordMeta {
                ifindex: 3,
                frame_len: 1000,
                sample_rate: 512,
                action: action as u8,
                reason: reason as u8,
                captured_len: data.len() as u16,
                ..Default::default()
            },
            unix_ns: 0,
            data,
        }
    }

    #[test]
    fn golden_datagram_with_one_flow_sample() {
        let config = SflowConfig {
            agent: "192.0.2.1".parse().unwrap(),
            sub_agent_id: 7,
            collectors: vec![],
            max_datagram: 1400,
        };
        let mut encoder = SflowEncoder::new(&config);
        let flow = encoder
            .flow_sample(
                &sample(
                    Action::Drop,
                    Reason::RuleDeny,
                    vec![0xaa, 0xbb, 0xcc, 0xdd, 0xee],
                ),
                4096,
                2,
            )
            .unwrap();
        let datagrams = encoder.datagrams(0x0102_0304, &[flow]);
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0, 0, 0, 5,             // version 5
            0, 0, 0, 1,             // agent address type IPv4
            192, 0, 2, 1,           // agent address
            0, 0, 0, 7,             // sub-agent id
            0, 0, 0, 1,             // datagram sequence number
            1, 2, 3, 4,             // uptime
            0, 0, 0, 1,             // one sample
            0, 0, 0, 1,             // enterprise 0, format 1: flow sample
            0, 0, 0, 64,            // sample length: 32 + 8 + 24
            0, 0, 0, 1,             // sample sequence number
            0, 0, 0, 3,             // source id: type 0, ifIndex 3
            0, 0, 2, 0,             // sampling rate 512
            0, 0, 16, 0,            // sample pool 4096
            0, 0, 0, 2,             // drops
            0, 0, 0, 3,             // input ifIndex 3
            0x40, 0, 1, 2,          // output: discarded, 258 = ACL
            0, 0, 0, 1,             // one flow record
            0, 0, 0, 1,             // enterprise 0, format 1: raw header
            0, 0, 0, 24,            // record length: 16 + 5 + 3 padding
            0, 0, 0, 1,             // header protocol: Ethernet
            0, 0, 3, 0xec,          // frame length 1000 + 4 (FCS)
            0, 0, 0, 4,             // stripped: the FCS
            0, 0, 0, 5,             // header length
            0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0, 0, 0,
        ];
        assert_eq!(datagrams, vec![expected]);
    }

    #[test]
    fn golden_counter_sample() {
        let mut encoder = SflowEncoder::new(&SflowConfig::new("::1".parse().unwrap(), vec![]));
        let counters = InterfaceCounters {
            ifindex: 2,
            speed_bps: 10_000_000_000,
            in_octets: 0x1_0000_0001,
            in_packets: 0x1_0000_0005,
            in_discards: 6,
            in_errors: 7,
            out_octets: 8,
            out_packets: 9,
            admin_up: true,
            oper_up: true,
        };
        let bytes = encoder.counter_sample(&counters).unwrap();
        #[rustfmt::skip]
        let head: [u8; 52] = [
            0, 0, 0, 2, 0, 0, 0, 108,  // counter sample, 12 + 8 + 88 bytes
            0, 0, 0, 1, 0, 0, 0, 2,    // sequence 1, source ifIndex 2
            0, 0, 0, 1,                // one record
            0, 0, 0, 1, 0, 0, 0, 88,   // generic interface counters, 88 bytes
            0, 0, 0, 2, 0, 0, 0, 6,    // ifIndex 2, ethernetCsmacd
            0, 0, 0, 2, 0x54, 0x0b, 0xe4, 0, // 10 Gb/s
            0, 0, 0, 0, 0, 0, 0, 3,    // direction unknown, admin + oper up
        ];
        assert_eq!(bytes.len(), 116);
        assert_eq!(bytes[..52], head);
        assert_eq!(bytes[52..60], [0, 0, 0, 1, 0, 0, 0, 1]); // in octets
        assert_eq!(bytes[60..64], [0, 0, 0, 5]); // wrapped packet count
        assert_eq!(bytes[64..72], [0xff; 8]); // multicast, broadcast: unavailable
        assert_eq!(bytes[72..80], [0, 0, 0, 6, 0, 0, 0, 7]);
        assert_eq!(bytes[84..96], [0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 9]);
        assert_eq!(bytes[112..116], [0; 4]);
    }

    #[test]
    fn discard_codes_and_outputs() {
        assert_eq!(
            output_interface(Action::Drop, Reason::RateLimited, 3),
            0x4000_0105
        );
        assert_eq!(
            output_interface(Action::Drop, Reason::TcpSynFin, 3),
            0x4000_0102
        );
        assert_eq!(
            output_interface(Action::Drop, Reason::BadUdpLength, 3),
            0x4000_0100
        );
        assert_eq!(
            output_interface(Action::Aborted, Reason::Ipv4Tcp, 3),
            0x4000_0100
        );
        assert_eq!(output_interface(Action::Tx, Reason::LbForwarded, 3), 3);
        assert_eq!(
            output_interface(Action::Tx, Reason::SynCookieSent, 3),
            0x3fff_ffff
        );
        assert_eq!(output_interface(Action::Pass, Reason::Ipv4Tcp, 3), 0);
        for reason in Reason::ALL {
            assert!(discard_code(reason) <= 262);
        }
    }

    #[test]
    fn datagrams_split_below_the_limit_and_sequences_advance() {
        let config = SflowConfig {
            max_datagram: 300,
            ..SflowConfig::new("192.0.2.1".parse().unwrap(), vec![])
        };
        let mut encoder = SflowEncoder::new(&config);
        let flow = sample(Action::Pass, Reason::Ipv4Udp, vec![1; 200]);
        let samples: Vec<Vec<u8>> = (0..3)
            .map(|_| encoder.flow_sample(&flow, 0, 0).unwrap())
            .collect();
        assert_eq!(samples[2][11], 3);
        let datagrams = encoder.datagrams(0, &samples);
        assert_eq!(datagrams.len(), 3);
        assert!(datagrams.iter().all(|datagram| datagram.len() <= 300));
        assert_eq!(datagrams[2][16..20], [0, 0, 0, 3]);
        let oversized = encoder.flow_sample(&flow, 0, 0).unwrap();
        let small = SflowEncoder::new(&SflowConfig {
            max_datagram: 10,
            ..config
        })
        .datagrams(0, &[oversized]);
        assert_eq!(small.len(), 1);
    }

    #[test]
    fn large_ifindex_and_odd_samples_do_not_panic() {
        let mut encoder =
            SflowEncoder::new(&SflowConfig::new("192.0.2.1".parse().unwrap(), vec![]));
        let mut big = sample(Action::Pass, Reason::NonIp, vec![]);
        big.meta.ifindex = 1 << 24;
        assert!(encoder.flow_sample(&big, 0, 0).is_none());
        let mut odd = sample(Action::Drop, Reason::NonIp, vec![0; 2000]);
        odd.meta.frame_len = u32::MAX;
        odd.meta.sample_rate = 0;
        let bytes = encoder.flow_sample(&odd, 0, 0).unwrap();
        assert_eq!(bytes.len(), 8 + 32 + 8 + 16 + MAX_HEADER_BYTES);
        assert_eq!(bytes[16..20], [0, 0, 0, 1]); // rate 0 reads as 1
    }

    #[test]
    fn exporter_counts_and_survives_unreachable_collectors() {
        let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = collector.local_addr().unwrap();
        // Port 0 cannot be sent to: every send there fails.
        let broken: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let config = SflowConfig::new("127.0.0.1".parse().unwrap(), vec![address, broken]);
        let mut exporter = SflowExporter::new(config).unwrap();
        let flow = sample(Action::Pass, Reason::Ipv4Udp, vec![1; 128]);
        for _ in 0..10 {
            exporter.push(&flow, 100, 0);
        }
        exporter.flush();
        let stats = exporter.stats();
        assert_eq!(stats.samples_sent, 10);
        // 7 samples of 192 bytes fill a 1400-byte datagram.
        assert_eq!((stats.datagrams_sent, stats.send_errors), (2, 2));
        let mut buffer = [0u8; 1500];
        let (length, _) = collector.recv_from(&mut buffer).unwrap();
        assert_eq!(length, 28 + 7 * 192);
        assert_eq!(buffer[24..28], [0, 0, 0, 7]);
        assert!(matches!(
            SflowExporter::new(SflowConfig::new("127.0.0.1".parse().unwrap(), vec![])),
            Err(ExportError::NoCollectors)
        ));
    }
}
