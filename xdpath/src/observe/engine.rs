//! The sample consumer: one reader of the sample ring feeding every user
//! of samples — sFlow, IPFIX, top talkers and auto-mitigation. `xdpath
//! export` and `xdpath top` run one in the foreground; `xdpathd` runs one
//! in a thread with what its config asks for.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use xdpath_core::{Action, Counter, Reason};

use super::capture::interface_name;
use super::ipfix::{IpfixConfig, IpfixExporter, IpfixStats};
use super::mitigate::{MitigationAction, MitigationConfig, Mitigator};
use super::ring::{Ring, RingError, RingReader};
use super::sflow::{InterfaceCounters, SflowConfig, SflowExporter, SflowStats};
use super::top::TopTalkers;
use super::Sample;

/// Errors starting the consumer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The sample ring.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// An exporter's socket or collectors.
    #[error(transparent)]
    Export(#[from] super::sflow::ExportError),
    /// A bad mitigation setting.
    #[error("mitigation: {0}")]
    Mitigation(#[from] super::mitigate::MitigationError),
}

/// sFlow export settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SflowSettings {
    /// Where datagrams go.
    pub collectors: Vec<SocketAddr>,
    /// The agent address (default: the host's first non-loopback address).
    pub agent: Option<IpAddr>,
    /// The sub-agent id.
    pub sub_agent_id: u32,
    /// How often each interface's counters are sent.
    pub counter_interval: Duration,
}

/// IPFIX export settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpfixSettings {
    /// Where messages go.
    pub collectors: Vec<SocketAddr>,
    /// The observation domain id.
    pub observation_domain: u32,
    /// A flow still active is reported this often.
    pub active_timeout: Duration,
    /// A flow with no sample for this long is ended.
    pub idle_timeout: Duration,
    /// Templates are sent again this often.
    pub template_refresh: Duration,
}

/// What the consumer feeds.
#[derive(Clone, Debug, Default)]
pub struct EngineConfig {
    /// sFlow export, if any.
    pub sflow: Option<SflowSettings>,
    /// IPFIX export, if any.
    pub ipfix: Option<IpfixSettings>,
    /// The top-talker window (default 10 s).
    pub top_window: Option<Duration>,
    /// Auto-mitigation, if any.
    pub mitigation: Option<MitigationConfig>,
    /// The interfaces (indexes) whose flow samples and counters sFlow and
    /// IPFIX send; `None`: every attached interface's (the daemon's).
    pub exported_interfaces: Option<HashSet<u32>>,
}

/// Counts of the consumer, for `/metrics` and `--json`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EngineStats {
    /// Samples read from the ring.
    pub samples: u64,
    /// Samples the kernel could not write (the ring was full), since the
    /// maps were made.
    pub ring_lost: u64,
    /// sFlow datagrams and samples sent.
    pub sflow: Option<SflowCounts>,
    /// IPFIX messages and records sent.
    pub ipfix: Option<IpfixCounts>,
}

/// sFlow exporter counts.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SflowCounts {
    /// Datagrams sent.
    pub datagrams: u64,
    /// Flow and counter samples sent.
    pub samples: u64,
    /// Sends that failed.
    pub send_errors: u64,
}

/// IPFIX exporter counts.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IpfixCounts {
    /// Messages sent.
    pub messages: u64,
    /// Flow records sent.
    pub records: u64,
    /// Template sends.
    pub templates: u64,
    /// Sends that failed.
    pub send_errors: u64,
}

impl From<SflowStats> for SflowCounts {
    fn from(stats: SflowStats) -> Self {
        Self {
            datagrams: stats.datagrams_sent,
            samples: stats.samples_sent,
            send_errors: stats.send_errors,
        }
    }
}

impl From<IpfixStats> for IpfixCounts {
    fn from(stats: IpfixStats) -> Self {
        Self {
            messages: stats.messages_sent,
            records: stats.records_sent,
            templates: stats.template_sends,
            send_errors: stats.send_errors,
        }
    }
}

/// The consumer.
pub struct Engine {
    reader: RingReader,
    sflow: Option<(SflowExporter, Duration, Instant)>,
    ipfix: Option<IpfixExporter>,
    exported_interfaces: Option<HashSet<u32>>,
    /// Top talkers over the window.
    pub top: TopTalkers,
    /// Auto-mitigation, if on.
    pub mitigator: Option<Mitigator>,
    samples: u64,
}

/// Now, in Unix milliseconds.
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

impl Engine {
    /// Takes the sample ring and starts what `config` asks for.
    pub fn open(config: &EngineConfig) -> Result<Self, EngineError> {
        let mitigator = config.mitigation.clone().map(Mitigator::new).transpose()?;
        let sflow = match &config.sflow {
            Some(settings) => {
                let agent = settings.agent.unwrap_or_else(default_agent);
                let mut sflow_config = SflowConfig::new(agent, settings.collectors.clone());
                sflow_config.sub_agent_id = settings.sub_agent_id;
                let exporter = SflowExporter::new(sflow_config)?;
                // The first counter samples go out at once.
                let due = Instant::now();
                Some((exporter, settings.counter_interval, due))
            }
            None => None,
        };
        let ipfix = match &config.ipfix {
            Some(settings) => {
                let mut ipfix_config = IpfixConfig::new(settings.collectors.clone());
                ipfix_config.observation_domain = settings.observation_domain;
                ipfix_config.active_timeout = settings.active_timeout;
                ipfix_config.idle_timeout = settings.idle_timeout;
                ipfix_config.template_refresh = settings.template_refresh;
                Some(IpfixExporter::new(ipfix_config)?)
            }
            None => None,
        };
        let window = config.top_window.unwrap_or(Duration::from_secs(10));
        let bucket = (window / 10).max(Duration::from_millis(100));
        Ok(Self {
            reader: RingReader::open(Ring::Samples)?,
            sflow,
            ipfix,
            exported_interfaces: config.exported_interfaces.clone(),
            top: TopTalkers::new(window, bucket),
            mitigator,
            samples: 0,
        })
    }

    /// Waits up to `wait` for samples, feeds them to every consumer, sends
    /// what is due, and returns the mitigation actions newly decided (the
    /// caller applies them: it owns the blocklist).
    pub fn step(&mut self, wait: Duration) -> Vec<MitigationAction> {
        self.reader.wait(wait);
        let samples = self.reader.drain(65_536);
        self.samples += samples.len() as u64;
        self.export(&samples);
        for sample in &samples {
            self.top.add(sample);
            if let Some(mitigator) = &mut self.mitigator {
                mitigator.observe(sample);
            }
        }
        let now_ms = now_unix_ms();
        if let Some((exporter, interval, due)) = &mut self.sflow {
            if Instant::now() >= *due {
                let exported = &self.exported_interfaces;
                for counters in interface_counters() {
                    if is_exported(exported, counters.ifindex) {
                        exporter.push_counters(&counters);
                    }
                }
                *due = Instant::now() + *interval;
            }
            exporter.flush_due(Instant::now());
        }
        if let Some(exporter) = &mut self.ipfix {
            exporter.export_expired(now_ms);
        }
        self.top.expire(now_ms);
        match &mut self.mitigator {
            Some(mitigator) => mitigator.decide(now_ms),
            None => Vec::new(),
        }
    }

    /// Feeds the exported interfaces' samples to sFlow and IPFIX.
    fn export(&mut self, samples: &[Sample]) {
        let exported: Vec<&Sample> = samples
            .iter()
            .filter(|sample| is_exported(&self.exported_interfaces, sample.meta.ifindex))
            .collect();
        if let Some((exporter, _, _)) = &mut self.sflow {
            let pools = sample_pools(&exported);
            let lost = self.reader.lost().min(u64::from(u32::MAX)) as u32;
            for sample in &exported {
                let pool = pools.get(&sample.meta.ifindex).copied().unwrap_or(0);
                exporter.push(sample, pool.min(u64::from(u32::MAX)) as u32, lost);
            }
        }
        if let Some(exporter) = &mut self.ipfix {
            for sample in &exported {
                exporter.add(sample);
            }
        }
    }

    /// The sample ring's descriptor: readable when samples wait.
    pub fn ring_fd(&self) -> std::os::fd::RawFd {
        self.reader.raw_fd()
    }

    /// Sends everything still held (IPFIX flows end as forced).
    pub fn shutdown(&mut self) {
        if let Some((exporter, _, _)) = &mut self.sflow {
            exporter.flush();
        }
        if let Some(exporter) = &mut self.ipfix {
            exporter.export_all(now_unix_ms());
        }
    }

    /// The consumer's counts.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            samples: self.samples,
            ring_lost: self.reader.lost(),
            sflow: self
                .sflow
                .as_ref()
                .map(|(exporter, _, _)| exporter.stats().into()),
            ipfix: self.ipfix.as_ref().map(|exporter| exporter.stats().into()),
        }
    }
}

/// The sFlow sample pool of each interface in `samples`: every frame its
/// program has seen (the sum of its counters).
fn sample_pools(samples: &[&Sample]) -> HashMap<u32, u64> {
    let mut pools = HashMap::new();
    for sample in samples {
        let ifindex = sample.meta.ifindex;
        if pools.contains_key(&ifindex) {
            continue;
        }
        let pool = interface_name(ifindex)
            .and_then(|name| crate::dataplane::interface_counters(&name).ok())
            .map_or(0, |counters| {
                counters.iter().map(|counter| counter.packets).sum()
            });
        pools.insert(ifindex, pool);
    }
    pools
}

/// Whether `ifindex`'s samples and counters are exported.
fn is_exported(exported: &Option<HashSet<u32>>, ifindex: u32) -> bool {
    exported
        .as_ref()
        .is_none_or(|ifindexes| ifindexes.contains(&ifindex))
}

/// sFlow generic counters of every attached interface, from xdpath's own
/// counters: in = every frame seen, discards = drops, errors = aborts, out
/// unknown; state and speed from the process's network namespace.
pub fn interface_counters() -> Vec<InterfaceCounters> {
    let names = crate::dataplane::attached_interfaces().unwrap_or_default();
    names
        .iter()
        .filter_map(|name| {
            let ifindex = super::capture::interface_index(name)?;
            let counters = crate::dataplane::interface_counters(name).ok()?;
            Some(generic_counters(ifindex, name, &counters))
        })
        .collect()
}

fn generic_counters(ifindex: u32, name: &str, counters: &[Counter]) -> InterfaceCounters {
    let sum = |actions: &[Action]| {
        let mut total = Counter::default();
        for action in actions {
            for reason in Reason::ALL {
                let index = xdpath_core::stats::counter_index(*action, reason) as usize;
                if let Some(counter) = counters.get(index) {
                    total.packets += counter.packets;
                    total.bytes += counter.bytes;
                }
            }
        }
        total
    };
    let all = sum(&Action::ALL);
    // The state as this process's network namespace sees it.
    let link = super::sflow::link_state(name).unwrap_or_default();
    InterfaceCounters {
        ifindex,
        speed_bps: link.speed_bps,
        in_octets: all.bytes,
        in_packets: all.packets,
        in_discards: sum(&[Action::Drop]).packets,
        in_errors: sum(&[Action::Aborted]).packets,
        // xdpath sees only the frames it sends itself (TX, redirect), not
        // the kernel's: the interface's output is unknown to it.
        out_octets: None,
        out_packets: None,
        admin_up: link.admin_up,
        oper_up: link.oper_up,
    }
}

/// The host's first non-loopback IPv4 address (else IPv6, else 0.0.0.0):
/// the sFlow agent address when none is configured.
pub fn default_agent() -> IpAddr {
    let addresses = crate::lb::decap::local_addresses().unwrap_or_default();
    let usable = |address: &&IpAddr| !address.is_loopback() && !address.is_unspecified();
    addresses
        .iter()
        .filter(usable)
        .find(|address| address.is_ipv4())
        .or_else(|| addresses.iter().find(usable))
        .copied()
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}
