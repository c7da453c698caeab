//! Observability in user space: the records the data path copies out
//! (samples and captures), and what is built from them — sFlow and IPFIX
//! export, top talkers, auto-mitigation and pcapng capture.

pub mod capture;
pub mod capture_left;
pub mod engine;
pub mod export;
pub mod flow;
pub mod flows;
pub mod ipfix;
pub mod mitigate;
pub mod rates;
pub mod ring;
pub mod sflow;
#[cfg(test)]
mod test_samples;
pub mod top;
pub mod topview;

use std::net::IpAddr;

use xdpath_core::observe::{RecordMeta, MATCHED_ID_MASK, MATCHED_RULE, MATCHED_VIP};
use xdpath_core::{Action, Reason};

pub use flow::FlowFields;

/// Largest sampling rate accepted (1 in 2^24 frames).
pub const MAX_SAMPLE_RATE: u32 = 1 << 24;

/// Parses a sampling rate: a number 0..=[`MAX_SAMPLE_RATE`] or `off` (0).
///
/// # Examples
///
/// ```
/// use xdpath::observe::parse_rate;
/// assert_eq!(parse_rate("100").unwrap(), 100);
/// assert_eq!(parse_rate("off").unwrap(), 0);
/// assert!(parse_rate("-1").is_err());
/// ```
pub fn parse_rate(text: &str) -> Result<u32, RateError> {
    if text == "off" {
        return Ok(0);
    }
    match text.parse::<u32>() {
        Ok(rate) if rate <= MAX_SAMPLE_RATE => Ok(rate),
        _ => Err(RateError(text.into())),
    }
}

/// A sampling rate that is not one.
#[derive(Debug, thiserror::Error)]
#[error("sampling rate {} is not a number from 0 to 16777216 or `off`", crate::text::quote(.0))]
pub struct RateError(String);

/// One record from the data path: a sampled or captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The metadata the data path wrote.
    pub meta: RecordMeta,
    /// When the frame arrived, nanoseconds since the Unix epoch (converted
    /// from the kernel's monotonic clock when the record was read).
    pub unix_ns: u64,
    /// The first bytes of the frame as it arrived.
    pub data: Vec<u8>,
}

/// What matched a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Matched {
    /// Nothing in particular.
    None,
    /// Filter rule `id`.
    Rule(u32),
    /// VIP index `index`.
    Vip(u32),
}

impl Sample {
    /// The verdict (an unknown code reads as `Aborted`).
    pub fn action(&self) -> Action {
        self.meta.action().unwrap_or(Action::Aborted)
    }

    /// The reason (an unknown code reads as `NonIp`).
    pub fn reason(&self) -> Reason {
        self.meta.reason().unwrap_or(Reason::NonIp)
    }

    /// What matched the frame.
    pub fn matched(&self) -> Matched {
        let id = self.meta.matched & MATCHED_ID_MASK;
        match self.meta.matched & !MATCHED_ID_MASK {
            MATCHED_RULE => Matched::Rule(id),
            MATCHED_VIP => Matched::Vip(id),
            _ => Matched::None,
        }
    }

    /// The frame's addresses, ports and protocol, when its headers are in
    /// the captured bytes.
    pub fn flow(&self) -> Option<FlowFields> {
        flow::parse(&self.data)
    }

    /// How many frames this one stands for: its sampling rate (1 for a
    /// frame that was captured, not sampled).
    pub fn weight(&self) -> u64 {
        u64::from(self.meta.sample_rate.max(1))
    }

    /// The source address, when known.
    pub fn source(&self) -> Option<IpAddr> {
        self.flow().map(|flow| flow.source)
    }
}
