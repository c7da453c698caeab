//! [`SflowExporter`]: batching encoded samples into datagrams, sending
//! them to the collectors and counting what happened ([`SflowStats`]).

use std::time::{Duration, Instant};

use super::collector::CollectorSockets;
use super::encoder::SflowEncoder;
use super::{ExportError, InterfaceCounters, SflowConfig, MAX_DATAGRAM_HEADER_LEN};
use crate::observe::Sample;

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
/// when a datagram fills, when the oldest has waited
/// [`SflowConfig::max_delay`] ([`SflowExporter::flush_due`]), or on
/// [`SflowExporter::flush`]. Send errors are
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
    max_delay: Duration,
    /// When the oldest queued sample was queued.
    oldest: Option<Instant>,
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
            max_delay: config.max_delay,
            oldest: None,
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
        self.oldest.get_or_insert_with(Instant::now);
    }

    /// Sends the queued samples if the oldest has waited the configured
    /// delay by `now`: several samples share a datagram, none waits much.
    pub fn flush_due(&mut self, now: Instant) {
        if self
            .oldest
            .is_some_and(|oldest| now.saturating_duration_since(oldest) >= self.max_delay)
        {
            self.flush();
        }
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
        self.oldest = None;
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
