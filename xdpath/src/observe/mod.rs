//! Observability in user space: the records the data path copies out
//! (samples and captures), and what is built from them — sFlow and IPFIX
//! export, top talkers, auto-mitigation and pcapng capture.

pub mod flow;
pub mod flows;
pub mod ipfix;
pub mod mitigate;
pub mod ring;
pub mod sflow;
pub mod top;

use std::net::IpAddr;

use xdpath_core::observe::{RecordMeta, MATCHED_ID_MASK, MATCHED_RULE, MATCHED_VIP};
use xdpath_core::{Action, Reason};

pub use flow::FlowFields;

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
