//! [`IpfixExporter`]: the flow cache, the encoder and the collector
//! sockets together, with what was sent ([`IpfixStats`]).

use super::encoder::IpfixEncoder;
use super::IpfixConfig;
use crate::observe::flows::{FlowCache, FlowRecord};
use crate::observe::sflow::{CollectorSockets, ExportError};
use crate::observe::Sample;

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
/// assert_eq!(length, 16 + 124 + 80); // templates, sampling options
/// ```
#[derive(Debug)]
pub struct IpfixExporter {
    encoder: IpfixEncoder,
    sockets: CollectorSockets,
    cache: FlowCache,
    stats: IpfixStats,
    /// The greatest common divisor of every rate a sample has had
    /// ([`IpfixExporter::add`]); none before the first sample.
    rates_divisor: Option<u32>,
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
            rates_divisor: None,
        })
    }

    /// Counts a sample in its flow. The interval announced (from the next
    /// message on) is the greatest common divisor of every rate samples
    /// have had: an interface's rate, a VIP's own rate (`lb vip add
    /// --sample-rate`), another interface's. The cache's estimates are
    /// sums of multiples of those rates, so each divides exactly and the
    /// collector's scaled counts equal them; announcing the last rate
    /// instead would turn 37 packets of a VIP sampled 1 in 1 into 1000 at
    /// an interface's 1 in 1000.
    pub fn add(&mut self, sample: &Sample) {
        let rate = sample.meta.sample_rate;
        if rate != 0 {
            let divisor = self
                .rates_divisor
                .map_or(rate, |divisor| greatest_common_divisor(divisor, rate));
            self.rates_divisor = Some(divisor);
            self.encoder.set_sampling_interval(divisor);
        }
        self.cache.add(sample);
    }

    /// The sampling interval announced.
    pub fn sampling_interval(&self) -> u32 {
        self.encoder.sampling_interval()
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

/// Euclid's greatest common divisor (of two non-zero rates: non-zero).
fn greatest_common_divisor(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
