//! The packet logic of xdpath, written once and compiled twice: to eBPF for
//! the kernel's XDP hook, and to native code for the user-space runtimes.
//!
//! Everything here is generic over two traits:
//!
//! - [`Packet`]: bounds-checked reads from a frame. The eBPF build checks
//!   every read against `data_end` (as the verifier demands); the native
//!   build checks against the slice length ([`SlicePacket`]).
//! - [`Tables`]: the state the pipeline reads and the counters it writes
//!   (eBPF maps in the kernel, plain Rust values in user space).
//!
//! Both builds run [`pipeline::process`] and must agree on the verdict and
//! the reason for every frame; the differential tests prove it.
//!
//! # Examples
//!
//! ```
//! use xdpath_core::{pipeline, NativeTables, SlicePacket, Action, Reason};
//!
//! let mut tables = NativeTables::default();
//! // A frame too short for an Ethernet header.
//! let outcome = pipeline::process(&SlicePacket::new(&[0u8; 10]), &mut tables);
//! assert_eq!(outcome.action, Action::Pass);
//! assert_eq!(outcome.reason, Reason::TruncatedEthernet);
//! ```
#![no_std]
#![cfg_attr(
    not(any(test, feature = "std")),
    deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::panic)
)]

#[cfg(any(feature = "std", test))]
extern crate std;

pub mod abi;
pub mod config;
pub mod filter;
pub mod flood;
pub mod forward;
pub mod hash;
pub mod lb;
pub mod observe;
pub mod packet;
pub mod parse;
pub mod pipeline;
pub mod reflb;
pub mod stages;
pub mod stats;
pub mod steer;
pub mod syncookie;
pub mod tunnel;
pub mod verdict;
pub mod wire;

#[cfg(any(feature = "std", test))]
pub mod build;
#[cfg(any(feature = "std", test))]
pub mod native;
#[cfg(any(feature = "std", test))]
pub mod native_observe;

pub use config::{AttachMeta, FeatureWord, InterfaceConfig, MalformedPolicy};
#[cfg(any(feature = "std", test))]
pub use native::NativeTables;
#[cfg(any(feature = "std", test))]
pub use packet::FrameBuffer;
pub use packet::{Packet, PacketMut, SlicePacket};
pub use parse::{parse, FlowKey, Fragment, Parsed};
pub use pipeline::{Outcome, Tables};
pub use stats::{Action, Counter, Reason, COUNTER_SLOTS, REASON_SLOTS};
