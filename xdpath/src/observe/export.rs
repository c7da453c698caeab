//! `xdpath export sflow|ipfix`: a foreground exporter, without the daemon.

use crate::control::parse::{seconds_within, MAX_DURATION_SECONDS};
use crate::text::quote;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use super::engine::{Engine, EngineConfig, EngineError, EngineStats, IpfixSettings, SflowSettings};

/// Errors of `xdpath export`.
#[derive(Debug, thiserror::Error)]
pub enum ExportCommandError {
    /// No collector given.
    #[error("give at least one --collector ADDRESS:PORT")]
    NoCollector,
    /// No interface given.
    #[error("name at least one interface to sample")]
    NoInterface,
    /// The interface has no xdpath program.
    #[error("xdpath is not attached to {}", quote(.0))]
    NotAttached(String),
    /// Sampling is off and no rate was given.
    #[error("sampling is off on {0}: give --rate N, or run `xdpath sample {0} N` first")]
    SamplingOff(String),
    /// A bad value.
    #[error(transparent)]
    Rate(#[from] super::RateError),
    /// A collector no datagram can reach.
    #[error("collector {address}: {why}")]
    Collector {
        /// The collector given.
        address: SocketAddr,
        /// Why it is refused.
        why: &'static str,
    },
    /// One collector named twice: it would get every datagram twice and
    /// count every flow and counter twice.
    #[error("collector {again} is named twice{}: it would get every datagram twice", also_as(.first, .again))]
    RepeatedCollector {
        /// Its first naming.
        first: SocketAddr,
        /// The second.
        again: SocketAddr,
    },
    /// A duration out of range.
    #[error("{what} must be a positive number of seconds (0.001 to {MAX_DURATION_SECONDS}), not {value}")]
    Duration {
        /// The option.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// Starting the exporter.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Setting the interfaces' rates for the run.
    #[error(transparent)]
    Rates(#[from] super::rates::TemporaryRateError),
}

/// How the first naming of a repeated collector was spelled, when it was
/// spelled otherwise (`[::ffff:192.0.2.1]:6343` is `192.0.2.1:6343`).
fn also_as(first: &SocketAddr, again: &SocketAddr) -> String {
    match first == again {
        true => String::new(),
        false => format!(" (as {first} before)"),
    }
}

/// The protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Protocol {
    /// sFlow version 5 (UDP, default port 6343).
    Sflow,
    /// IPFIX, RFC 7011 (UDP, default port 4739).
    Ipfix,
}

/// `xdpath export` arguments.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ExportArgs {
    /// sFlow or IPFIX.
    #[cfg_attr(feature = "clap", arg(value_enum))]
    pub protocol: Protocol,
    /// The interfaces to sample and export (at least one; xdpath must be
    /// attached to each): only their flow samples and counters are sent.
    pub interfaces: Vec<String>,
    /// A collector, ADDRESS:PORT (repeat for several, each once; not a
    /// broadcast or multicast address).
    #[cfg_attr(feature = "clap", arg(long = "collector", required = true))]
    pub collectors: Vec<SocketAddr>,
    /// Sample 1 in N frames on the interfaces while exporting (restored
    /// on exit); without it, each interface's own rate is used.
    #[cfg_attr(feature = "clap", arg(long))]
    pub rate: Option<String>,
    /// sFlow: the agent address (default: the host's first address).
    #[cfg_attr(feature = "clap", arg(long))]
    pub agent: Option<IpAddr>,
    /// sFlow: the sub-agent id.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub sub_agent_id: u32,
    /// sFlow: seconds between counter samples.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 20.0))]
    pub counter_interval: f64,
    /// IPFIX: the observation domain id.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 0))]
    pub observation_domain: u32,
    /// IPFIX: seconds after which an active flow is reported.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 60.0))]
    pub active_timeout: f64,
    /// IPFIX: seconds without a sample after which a flow ends.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 15.0))]
    pub idle_timeout: f64,
    /// IPFIX: seconds between template sends.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 60.0))]
    pub template_refresh: f64,
    /// Stop after this many seconds (default: at Ctrl-C or SIGTERM).
    #[cfg_attr(feature = "clap", arg(long))]
    pub duration: Option<f64>,
}

fn seconds(what: &'static str, value: f64) -> Result<Duration, ExportCommandError> {
    seconds_within(value, 0.001, MAX_DURATION_SECONDS as f64)
        .ok_or(ExportCommandError::Duration { what, value })
}

/// The engine config `args` ask for.
pub fn engine_config(args: &ExportArgs) -> Result<EngineConfig, ExportCommandError> {
    let mut config = EngineConfig::default();
    match args.protocol {
        Protocol::Sflow => {
            config.sflow = Some(SflowSettings {
                collectors: args.collectors.clone(),
                agent: args.agent,
                sub_agent_id: args.sub_agent_id,
                counter_interval: seconds("--counter-interval", args.counter_interval)?,
            });
        }
        Protocol::Ipfix => {
            config.ipfix = Some(IpfixSettings {
                collectors: args.collectors.clone(),
                observation_domain: args.observation_domain,
                active_timeout: seconds("--active-timeout", args.active_timeout)?,
                idle_timeout: seconds("--idle-timeout", args.idle_timeout)?,
                template_refresh: seconds("--template-refresh", args.template_refresh)?,
            });
        }
    }
    Ok(config)
}

/// Why a collector address can receive no datagram (port 0, an
/// unspecified, the broadcast or a multicast address), or `None`: the same
/// check for `xdpath export` and a config's collectors. A subnet's
/// broadcast address cannot be told from a host's here, so it passes.
pub fn collector_problem(address: &SocketAddr) -> Option<&'static str> {
    if address.port() == 0 {
        return Some("port 0 is no port to send to");
    }
    // `::ffff:0.0.0.0` is as unspecified as `0.0.0.0`.
    let ip = collector_identity(address).ip();
    if ip.is_unspecified() {
        return Some("the unspecified address is no collector");
    }
    if ip == IpAddr::V4(std::net::Ipv4Addr::BROADCAST) {
        return Some("the broadcast address is no collector");
    }
    // A group has no one collector to answer for it; without a multicast
    // route every send fails, and only the final tally would say so.
    if ip.is_multicast() {
        return Some("a multicast address is no collector");
    }
    None
}

/// The address datagrams to `address` go to, to tell collectors apart: an
/// IPv4-mapped IPv6 address is the IPv4 address it maps (the kernel sends
/// there), so `[::ffff:192.0.2.1]:6343` and `192.0.2.1:6343` are one
/// collector. The flow label, which a datagram's route ignores, is left
/// out.
pub fn collector_identity(address: &SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(ipv4) => SocketAddr::new(IpAddr::V4(ipv4), v6.port()),
            None => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, v6.scope_id())),
        },
        SocketAddr::V4(_) => *address,
    }
}

/// The first collector of `collectors` named a second time, as (first
/// naming, second naming), or `None`. A config reports every repeat, by
/// the same [`collector_identity`].
pub fn repeated_collector(collectors: &[SocketAddr]) -> Option<(SocketAddr, SocketAddr)> {
    let mut seen = HashMap::new();
    collectors.iter().find_map(|address| {
        seen.insert(collector_identity(address), *address)
            .map(|first| (first, *address))
    })
}

/// Refuses a collector list no export should send to: empty, an address
/// that can receive nothing, or one collector twice.
fn check_collectors(collectors: &[SocketAddr]) -> Result<(), ExportCommandError> {
    if collectors.is_empty() {
        return Err(ExportCommandError::NoCollector);
    }
    if let Some((address, why)) = collectors
        .iter()
        .find_map(|address| collector_problem(address).map(|why| (*address, why)))
    {
        return Err(ExportCommandError::Collector { address, why });
    }
    match repeated_collector(collectors) {
        Some((first, again)) => Err(ExportCommandError::RepeatedCollector { first, again }),
        None => Ok(()),
    }
}

/// The interfaces an export names.
struct NamedInterfaces {
    /// Each with its sampling rate now, to put back after `--rate`.
    rates: Vec<(String, u32)>,
    /// Their indexes: whose samples and counters are exported.
    ifindexes: HashSet<u32>,
}

/// The interfaces named; refused when one has no xdpath program or would
/// sample nothing.
fn named_interfaces(
    interfaces: &[String],
    rate: Option<u32>,
) -> Result<NamedInterfaces, ExportCommandError> {
    let mut rates = Vec::new();
    let mut ifindexes = HashSet::new();
    for interface in interfaces {
        let not_attached = || ExportCommandError::NotAttached(interface.clone());
        let config =
            crate::dataplane::read_interface_config(interface).map_err(|_| not_attached())?;
        if rate.unwrap_or(config.sample_rate) == 0 {
            return Err(ExportCommandError::SamplingOff(interface.clone()));
        }
        ifindexes.insert(super::capture::interface_index(interface).ok_or_else(not_attached)?);
        rates.push((interface.clone(), config.sample_rate));
    }
    Ok(NamedInterfaces { rates, ifindexes })
}

/// Runs the exporter until stopped; `on_ready` is called once it reads.
pub fn export(
    args: &ExportArgs,
    on_ready: impl FnOnce(),
    stop: &dyn Fn() -> bool,
) -> Result<EngineStats, ExportCommandError> {
    check_collectors(&args.collectors)?;
    if args.interfaces.is_empty() {
        return Err(ExportCommandError::NoInterface);
    }
    let rate = args.rate.as_deref().map(super::parse_rate).transpose()?;
    let deadline = args
        .duration
        .map(|value| seconds("--duration", value))
        .transpose()?;
    let mut config = engine_config(args)?;
    // Every check before the first change.
    let named = named_interfaces(&args.interfaces, rate)?;
    // The sample ring and the counters are the namespace's: the other
    // attached interfaces' are left out.
    config.exported_interfaces = Some(named.ifindexes);
    let mut engine = Engine::open(&config)?;
    // The operator's rates come back on every way out, a kill included
    // (see `rates`).
    let _rates = rate
        .map(|rate| super::rates::TemporaryRates::set(&named.rates, rate))
        .transpose()?;
    on_ready();
    let started = Instant::now();
    while !stop() && deadline.is_none_or(|deadline| started.elapsed() < deadline) {
        engine.step(Duration::from_millis(200));
    }
    // The last samples, then whatever is held.
    engine.step(Duration::ZERO);
    engine.shutdown();
    Ok(engine.stats())
}
