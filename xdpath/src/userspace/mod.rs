//! The user-space runtime (`xdpath run --userspace IF`): the same pipeline
//! as the kernel program ([`xdpath_core::pipeline::process_frame`]),
//! compiled natively and run on the frames of AF_XDP sockets.
//!
//! - **In**: a tiny XDP program (`objects::XSK`) sends every frame of each
//!   receive queue to that queue's AF_XDP socket (copy mode on every
//!   driver, veth included; `--zero-copy` lets the kernel use zero-copy
//!   where the driver has it).
//! - **State**: the namespace's filter and balancer state, the same files
//!   the CLI, `xdpath apply` and xdpathd write, taken again within a
//!   second of a change ([`state::StateWatch`]).
//! - **Neighbours**: with the TAP exception path, ARP and IPv6 neighbour
//!   discovery stay in the kernel on the interface itself (the redirect
//!   program passes them): the stack resolves its neighbours on a device
//!   only from answers that arrive there, and answers neighbour
//!   solicitations only for the receiving device's addresses. The
//!   pipeline does not see those frames, so they are not in the counters.
//! - **Out**, by verdict: drop — nothing; tx — back out of the interface
//!   through the socket's TX ring; redirect — out of the egress interface
//!   through a packet socket ([`egress::Egress`]), or the TX ring when it is
//!   this interface; pass — to the kernel stack through the exception path,
//!   a TAP device with the interface's MAC ([`tap::Tap`]), whose own output
//!   leaves by the interface.
//! - **Counters**: the kernel program's (verdict, reason) slots, written
//!   each second and at the end to `userspace-IF.json` in the namespace's
//!   state directory, where `xdpath stats IF` reads them.
//!
//! - **Next hops**: the balancer's, towards each backend, asked of the
//!   kernel's FIB and neighbour table each second ([`fib`]); with
//!   `--forward`, the whole main table and the neighbours, for L3
//!   forwarding out of any interface (not policy routing, not the MTU).
//!
//! Not here: SYN-cookie answers (the kernel's secret; the native build has
//! no such mode), CPU and AF_XDP steering (the frames are already in user
//! space), sampling.
//!
//! Minimum kernel: 5.4 (AF_XDP with the ring flags; see
//! [`crate::afxdp::XskSocket`]). Needs `CAP_NET_ADMIN`, `CAP_NET_RAW` and
//! `CAP_BPF`, and `/dev/net/tun` for the exception path.

pub mod egress;
pub mod fib;
mod report;
mod routes;
mod run;
mod serve;
pub mod state;
pub mod tap;
mod threads;

pub use report::{
    read_snapshot, running_filter_counts, running_snapshots, snapshot_path, RunningCounts,
    RuntimeReport, Snapshot, Tallies, ThreadReport,
};
pub use run::run;
pub use tap::tap_name;
pub use threads::pin_thread_to;

use std::time::Duration;

use xdpath_core::InterfaceConfig;

use crate::afxdp::{XskError, XskOptions};

/// What to do with the frames the pipeline passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Exception {
    /// Hand them to the kernel stack through a TAP device.
    Tap,
    /// Count them and drop them (a pure user-space appliance).
    Drop,
}

/// How the runtime runs.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// The interface.
    pub interface: String,
    /// The queues to open sockets on; `None`: every receive queue.
    pub queues: Option<u32>,
    /// The interface configuration (malformed policy, monitor, ...).
    pub config: InterfaceConfig,
    /// The exception path.
    pub exception: Exception,
    /// Socket sizes and mode.
    pub xsk: XskOptions,
    /// Stop after this long; `None`: at SIGINT or SIGTERM.
    pub duration: Option<Duration>,
    /// One serving thread per queue socket, pinned ([`threads`]); `false`:
    /// one thread serves every socket.
    pub threads: bool,
}

/// Why the runtime could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The interface does not exist.
    #[error("no interface {interface} in this network namespace")]
    NoInterface {
        /// The name given.
        interface: String,
    },
    /// The kernel program is attached there already.
    #[error(
        "xdpath's kernel program is attached to {interface}; the user-space runtime needs the \
         interface to itself (xdpath detach {interface} first)"
    )]
    KernelAttached {
        /// The interface.
        interface: String,
    },
    /// The redirect program could not be loaded or attached.
    #[error("cannot attach the AF_XDP redirect program to {interface}: {reason}")]
    Attach {
        /// The interface.
        interface: String,
        /// Why (aya's error).
        reason: String,
    },
    /// A socket could not be opened.
    #[error(transparent)]
    Socket(#[from] XskError),
    /// The TAP device could not be made.
    #[error("cannot create the exception path's TAP device {name}: {source}")]
    Tap {
        /// The device name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A system call on the way failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A queue's socket failed on every pass for a second: serving stopped.
    #[error("queue {queue}'s socket keeps failing, serving stopped: {source}")]
    Serving {
        /// The queue.
        queue: u32,
        /// The socket's error.
        source: XskError,
    },
    /// The interface was deleted while served: serving stopped.
    #[error(
        "interface {} is gone (deleted while served): serving stopped",
        crate::text::quote(interface)
    )]
    InterfaceGone {
        /// The interface's name.
        interface: String,
    },
    /// A serving thread ended in a panic; the others were stopped.
    #[error("the serving thread {index} (queue {queue}) failed: {reason}")]
    Thread {
        /// The thread.
        index: usize,
        /// Its queue.
        queue: u32,
        /// The panic's message.
        reason: String,
    },
    /// The namespace's state cannot be read or does not compile.
    #[error(transparent)]
    State(#[from] state::StateLoadError),
}
