//! What can go wrong with an AF_XDP socket.

use std::fmt;
use std::io;

/// A step of setting up or using an AF_XDP socket, named in
/// [`XskError::Syscall`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XskStep {
    /// `socket(AF_XDP, SOCK_RAW, 0)`.
    Socket,
    /// `mmap` of the UMEM area.
    MapUmem,
    /// `setsockopt(XDP_UMEM_REG)`.
    RegisterUmem,
    /// `setsockopt(XDP_UMEM_FILL_RING)`.
    FillRingSize,
    /// `setsockopt(XDP_UMEM_COMPLETION_RING)`.
    CompletionRingSize,
    /// `setsockopt(XDP_RX_RING)`.
    RxRingSize,
    /// `setsockopt(XDP_TX_RING)`.
    TxRingSize,
    /// `getsockopt(XDP_MMAP_OFFSETS)`.
    MmapOffsets,
    /// `mmap` of the fill ring (`XDP_UMEM_PGOFF_FILL_RING`).
    MapFillRing,
    /// `mmap` of the completion ring (`XDP_UMEM_PGOFF_COMPLETION_RING`).
    MapCompletionRing,
    /// `mmap` of the RX ring (`XDP_PGOFF_RX_RING`).
    MapRxRing,
    /// `mmap` of the TX ring (`XDP_PGOFF_TX_RING`).
    MapTxRing,
    /// `poll` for received frames.
    Poll,
    /// `sendto(MSG_DONTWAIT)`, the TX kick.
    Kick,
    /// `getsockopt(XDP_STATISTICS)`.
    Statistics,
}

impl fmt::Display for XskStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XskStep::Socket => "socket(AF_XDP)",
            XskStep::MapUmem => "mmap of the UMEM",
            XskStep::RegisterUmem => "setsockopt(XDP_UMEM_REG)",
            XskStep::FillRingSize => "setsockopt(XDP_UMEM_FILL_RING)",
            XskStep::CompletionRingSize => "setsockopt(XDP_UMEM_COMPLETION_RING)",
            XskStep::RxRingSize => "setsockopt(XDP_RX_RING)",
            XskStep::TxRingSize => "setsockopt(XDP_TX_RING)",
            XskStep::MmapOffsets => "getsockopt(XDP_MMAP_OFFSETS)",
            XskStep::MapFillRing => "mmap of the fill ring",
            XskStep::MapCompletionRing => "mmap of the completion ring",
            XskStep::MapRxRing => "mmap of the RX ring",
            XskStep::MapTxRing => "mmap of the TX ring",
            XskStep::Poll => "poll",
            XskStep::Kick => "sendto (TX kick)",
            XskStep::Statistics => "getsockopt(XDP_STATISTICS)",
        })
    }
}

/// Errors of [`super::XskSocket`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XskError {
    /// No interface of that name in the calling thread's network namespace.
    #[error(
        "interface {} not found in this network namespace",
        crate::text::quote(interface)
    )]
    InterfaceNotFound {
        /// The name asked for.
        interface: String,
    },
    /// The interface has no such queue (the kernel refused the bind with
    /// `EINVAL` and the driver reports fewer queues).
    #[error("queue {queue} does not exist on {interface} (it has {available})")]
    QueueNotFound {
        /// The interface.
        interface: String,
        /// The queue asked for.
        queue: u32,
        /// How many queues the interface has (0..available are valid).
        available: u32,
    },
    /// An [`super::XskOptions`] field is out of range.
    #[error("invalid AF_XDP option {option} = {value}: {reason}")]
    InvalidOptions {
        /// The field.
        option: &'static str,
        /// Its value.
        value: u64,
        /// What it must be.
        reason: &'static str,
    },
    /// A system call failed.
    #[error("AF_XDP {step} failed: {source}")]
    Syscall {
        /// Which one.
        step: XskStep,
        /// The kernel's error.
        source: io::Error,
    },
    /// The kernel refused the bind for another reason than a missing queue
    /// (`EBUSY`: the queue already has a socket; `EOPNOTSUPP`: no
    /// zero-copy support; ...).
    #[error("binding the AF_XDP socket to {interface} queue {queue} ({mode}) failed: {source}")]
    Bind {
        /// The interface.
        interface: String,
        /// The queue.
        queue: u32,
        /// `"copy mode"` or `"kernel's choice of mode"`.
        mode: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
    /// The kernel's ring layout (from `XDP_MMAP_OFFSETS`) does not fit the
    /// mapping: refused rather than trusted.
    #[error("the kernel's layout of the AF_XDP {ring} ring does not fit its mapping")]
    BadRingLayout {
        /// `"fill"`, `"completion"`, `"rx"` or `"tx"`.
        ring: &'static str,
    },
    /// A frame to send is longer than a UMEM frame.
    #[error("a frame of {len} bytes does not fit a UMEM frame of {max} bytes")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The UMEM frame size.
        max: usize,
    },
    /// A frame to send is shorter than an Ethernet header.
    #[error("a frame of {len} bytes is shorter than an Ethernet header ({min} bytes)")]
    FrameTooShort {
        /// The frame's length.
        len: usize,
        /// The minimum, 14.
        min: usize,
    },
    /// Every TX frame is in flight, or the TX ring is full: reap
    /// completions ([`super::XskSocket::flush`]) and try again.
    #[error("AF_XDP TX is busy: {in_flight} frames in flight, none free")]
    TxBusy {
        /// Frames handed to the kernel and not yet completed.
        in_flight: u32,
    },
    /// Writing the socket into an `XSKMAP` failed.
    #[error("putting the AF_XDP socket into the XSKMAP at index {index}: {source}")]
    Register {
        /// The map index.
        index: u32,
        /// aya's error.
        source: aya::maps::MapError,
    },
}
