//! [`SflowEncoder`]: sFlow samples and datagrams as bytes, with their
//! sequence numbers, and the XDR helpers that write them.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{
    output_interface, InterfaceCounters, SflowConfig, ADDRESS_TYPE_IPV4, ADDRESS_TYPE_IPV6,
    COUNTER64_UNAVAILABLE, COUNTER_UNAVAILABLE, FCS_LEN, FORMAT_COUNTER_SAMPLE, FORMAT_FLOW_SAMPLE,
    FORMAT_GENERIC_INTERFACE, FORMAT_SAMPLED_HEADER, GENERIC_INTERFACE_LEN,
    HEADER_PROTOCOL_ETHERNET, IF_TYPE_ETHERNET, MAX_COMPACT_IFINDEX, MAX_HEADER_BYTES,
    SFLOW_VERSION,
};
use crate::observe::Sample;

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
        bytes.put_u64(counters.out_octets.unwrap_or(COUNTER64_UNAVAILABLE));
        bytes.put_u32(counters.out_packets.map_or(COUNTER_UNAVAILABLE, wrap32));
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

    pub(super) fn header_len(&self) -> usize {
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
