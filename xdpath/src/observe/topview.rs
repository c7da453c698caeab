//! `xdpath top`: a live view of rates per interface, verdict and reason,
//! and of the top talkers.
//!
//! Rates come from the counters (exact); talkers from samples (scaled by
//! the sampling rate). Without the daemon, `top` reads the sample ring
//! itself; with a daemon holding it, it asks the daemon's `/v1/top`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use xdpath_core::Counter;

use super::engine::{now_unix_ms, Engine, EngineConfig};
use super::ring::RingError;
use super::top::{Rank, TalkerKind};
use crate::control::parse::seconds_within;

/// `xdpath top` arguments.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TopArgs {
    /// Only these interfaces (default: every attached one).
    #[cfg_attr(feature = "clap", arg(long = "iface", short = 'i'))]
    pub interfaces: Vec<String>,
    /// Seconds between refreshes.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1.0))]
    pub interval: f64,
    /// Seconds of samples the top talkers cover.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10.0))]
    pub window: f64,
    /// Talkers shown per list.
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10))]
    pub limit: usize,
    /// Rank talkers by bytes instead of packets.
    #[cfg_attr(feature = "clap", arg(long))]
    pub bytes: bool,
    /// Stop after this many refreshes (default: at Ctrl-C).
    #[cfg_attr(feature = "clap", arg(long, short = 'n'))]
    pub iterations: Option<u64>,
}

/// Errors of `xdpath top`.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    /// A bad option.
    #[error("{0}")]
    Usage(String),
    /// Nothing attached.
    #[error("xdpath is attached to no interface in this namespace")]
    NothingAttached,
    /// The sample ring.
    #[error(transparent)]
    Engine(#[from] super::engine::EngineError),
    /// Writing the view.
    #[error("writing the view: {0}")]
    Output(#[from] std::io::Error),
}

/// One rate row: an interface's frames of one verdict and reason.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RateRow {
    /// The interface.
    pub interface: String,
    /// The verdict.
    pub verdict: &'static str,
    /// The reason.
    pub reason: &'static str,
    /// Frames per second since the last refresh.
    pub packets_per_second: f64,
    /// Bits per second since the last refresh.
    pub bits_per_second: f64,
}

/// One refresh of the view.
#[derive(Clone, Debug, Serialize)]
pub struct TopFrame {
    /// Unix time of the refresh, ms.
    pub at_unix_ms: u64,
    /// Rates since the previous refresh.
    pub rates: Vec<RateRow>,
    /// Top talkers: `{"sources": [...], "destinations": [...], "flows": [...]}`.
    pub talkers: Value,
    /// Where the talkers came from: `samples` or `xdpathd`.
    pub talkers_from: &'static str,
    /// Interfaces with sampling off (no talkers from them).
    pub not_sampling: Vec<String>,
    /// How long this refresh took, µs (reading counters and samples,
    /// ranking), not counting drawing.
    pub refresh_us: u64,
}

/// The view's state between refreshes.
pub struct TopView {
    interfaces: Vec<String>,
    engine: Option<Engine>,
    previous: HashMap<String, (Instant, Vec<Counter>)>,
    limit: usize,
    rank: Rank,
}

/// `--interval` and `--window` as durations, if they are in range
/// (0.01-3600 s and 0.1-3600 s).
pub fn periods(args: &TopArgs) -> Result<(Duration, Duration), TopError> {
    let interval = seconds_within(args.interval, 0.01, 3600.0).ok_or_else(|| {
        TopError::Usage(format!(
            "--interval must be from 0.01 to 3600 seconds, not {}",
            args.interval
        ))
    })?;
    let window = seconds_within(args.window, 0.1, 3600.0).ok_or_else(|| {
        TopError::Usage(format!(
            "--window must be from 0.1 to 3600 seconds, not {}",
            args.window
        ))
    })?;
    Ok((interval, window))
}

impl TopView {
    /// Starts a view of `interfaces` (all attached when empty).
    pub fn open(args: &TopArgs) -> Result<Self, TopError> {
        let (_, window) = periods(args)?;
        let interfaces = if args.interfaces.is_empty() {
            crate::dataplane::attached_interfaces().unwrap_or_default()
        } else {
            for interface in &args.interfaces {
                crate::dataplane::read_interface_config(interface).map_err(|_| {
                    TopError::Usage(format!(
                        "xdpath is not attached to {}",
                        crate::text::quote(interface)
                    ))
                })?;
            }
            args.interfaces.clone()
        };
        if interfaces.is_empty() {
            return Err(TopError::NothingAttached);
        }
        let config = EngineConfig {
            top_window: Some(window),
            ..EngineConfig::default()
        };
        // A daemon (or another reader) holding the ring: ask it instead.
        let engine = match Engine::open(&config) {
            Ok(engine) => Some(engine),
            Err(super::engine::EngineError::Ring(RingError::Busy { .. })) => None,
            Err(error) => return Err(error.into()),
        };
        Ok(Self {
            interfaces,
            engine,
            previous: HashMap::new(),
            limit: args.limit,
            rank: if args.bytes {
                Rank::Bytes
            } else {
                Rank::Packets
            },
        })
    }

    /// Reads counters and samples and ranks the talkers.
    pub fn refresh(&mut self, wait: Duration) -> TopFrame {
        if let Some(engine) = &mut self.engine {
            // Samples arrive while we wait; the wait is not refresh cost.
            engine.step(wait);
        } else {
            std::thread::sleep(wait);
        }
        let started = Instant::now();
        let mut rates = Vec::new();
        let mut not_sampling = Vec::new();
        for interface in &self.interfaces {
            let config = crate::dataplane::read_interface_config(interface).unwrap_or_default();
            if config.sample_rate == 0 {
                not_sampling.push(interface.clone());
            }
            let Ok(counters) = crate::dataplane::interface_counters(interface) else {
                continue;
            };
            let now = Instant::now();
            if let Some((then, before)) = self.previous.get(interface) {
                let seconds = now.duration_since(*then).as_secs_f64().max(1e-3);
                let delta = crate::stats::difference(before, &counters);
                for row in crate::stats::rows(&delta) {
                    rates.push(RateRow {
                        interface: interface.clone(),
                        verdict: row.action,
                        reason: row.reason,
                        packets_per_second: row.packets as f64 / seconds,
                        bits_per_second: row.bytes as f64 * 8.0 / seconds,
                    });
                }
            }
            self.previous.insert(interface.clone(), (now, counters));
        }
        rates.sort_by(|a, b| b.packets_per_second.total_cmp(&a.packets_per_second));
        let (talkers, talkers_from) = match &self.engine {
            Some(engine) => {
                let now = now_unix_ms();
                let list = |kind| {
                    serde_json::to_value(engine.top.top(now, kind, self.rank, self.limit))
                        .unwrap_or(Value::Null)
                };
                (
                    serde_json::json!({
                        "sources": list(TalkerKind::Sources),
                        "destinations": list(TalkerKind::Destinations),
                        "flows": list(TalkerKind::Flows),
                    }),
                    "samples",
                )
            }
            None => (daemon_talkers(self.limit, self.rank), "xdpathd"),
        };
        TopFrame {
            at_unix_ms: now_unix_ms(),
            rates,
            talkers,
            talkers_from,
            not_sampling,
            refresh_us: started.elapsed().as_micros() as u64,
        }
    }
}

fn daemon_talkers(limit: usize, rank: Rank) -> Value {
    let by = match rank {
        Rank::Packets => "packets",
        Rank::Bytes => "bytes",
    };
    crate::api::daemon::socket()
        .and_then(|socket| {
            crate::api::daemon::call(
                &socket,
                "GET",
                &format!("/v1/top?limit={limit}&by={by}"),
                None,
            )
            .ok()
        })
        .unwrap_or(Value::Null)
}
