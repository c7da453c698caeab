//! Opening an [`XskSocket`]: registering the UMEM, sizing and mapping the
//! four rings, the first fill and the bind (retried while the queue is
//! busy).

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::{Counters, XskOptions, XskSocket, BIND_BUSY_RETRY};
use crate::afxdp::error::{XskError, XskStep};
use crate::afxdp::mmap::Mapping;
use crate::afxdp::rings::{ConsumerRing, MappedRing, ProducerRing, RingOffsets};
use crate::afxdp::sys;
use crate::afxdp::umem::Umem;

/// The ring offsets of `XDP_MMAP_OFFSETS`: rx, tx, fill, completion.
fn mmap_offsets(fd: BorrowedFd<'_>) -> Result<[RingOffsets; 4], XskError> {
    // `struct xdp_mmap_offsets`: four rings of {producer, consumer, desc,
    // flags} (5.4+) or of {producer, consumer, desc} (before), all u64.
    let (words, len) =
        sys::get_option::<[u64; 16]>(fd, libc::XDP_MMAP_OFFSETS).map_err(|source| {
            XskError::Syscall {
                step: XskStep::MmapOffsets,
                source,
            }
        })?;
    let per_ring = match len {
        128 => 4,
        96 => 3,
        _ => {
            return Err(XskError::Syscall {
                step: XskStep::MmapOffsets,
                source: std::io::Error::other(format!(
                    "unexpected length {len} of struct xdp_mmap_offsets"
                )),
            })
        }
    };
    let mut rings = words.chunks_exact(per_ring).map(|ring| match ring {
        [producer, consumer, desc, ..] => RingOffsets {
            producer: *producer,
            consumer: *consumer,
            desc: *desc,
        },
        _ => RingOffsets::default(),
    });
    let mut next = || rings.next().unwrap_or_default();
    Ok([next(), next(), next(), next()])
}

/// Where each ring is mapped from (the page offset `mmap` takes), the step
/// that maps it and its name, in the order of `XDP_MMAP_OFFSETS`: rx, tx,
/// fill, completion.
const RING_PLACES: [(libc::off_t, XskStep, &str); 4] = [
    (libc::XDP_PGOFF_RX_RING, XskStep::MapRxRing, "rx"),
    (libc::XDP_PGOFF_TX_RING, XskStep::MapTxRing, "tx"),
    (FILL_RING_PGOFF, XskStep::MapFillRing, "fill"),
    (
        COMPLETION_RING_PGOFF,
        XskStep::MapCompletionRing,
        "completion",
    ),
];
const FILL_RING_PGOFF: libc::off_t = libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t;
const COMPLETION_RING_PGOFF: libc::off_t = libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t;

/// Maps one ring of `size` entries at the place given (see
/// [`RING_PLACES`]).
fn map_ring<R: MappedRing>(
    fd: BorrowedFd<'_>,
    offsets: RingOffsets,
    size: u32,
    (pgoff, step, ring): (libc::off_t, XskStep, &'static str),
) -> Result<R, XskError> {
    let len = offsets
        .map_len::<R::Entry>(size)
        .ok_or(XskError::BadRingLayout { ring })?;
    let mapping =
        Mapping::shared(fd, len, pgoff).map_err(|source| XskError::Syscall { step, source })?;
    R::mapped(mapping, offsets, size).map_err(|_| XskError::BadRingLayout { ring })
}

fn set_ring_size(
    fd: BorrowedFd<'_>,
    option: libc::c_int,
    size: u32,
    step: XskStep,
) -> Result<(), XskError> {
    sys::set_option(fd, option, &size).map_err(|source| XskError::Syscall { step, source })
}

/// The four rings of one socket, mapped.
struct Rings {
    rx: ConsumerRing<libc::xdp_desc>,
    tx: ProducerRing<libc::xdp_desc>,
    fill: ProducerRing<u64>,
    completion: ConsumerRing<u64>,
}

/// Sizes all four rings to `size` entries.
fn set_ring_sizes(fd: BorrowedFd<'_>, size: u32) -> Result<(), XskError> {
    set_ring_size(fd, libc::XDP_UMEM_FILL_RING, size, XskStep::FillRingSize)?;
    set_ring_size(
        fd,
        libc::XDP_UMEM_COMPLETION_RING,
        size,
        XskStep::CompletionRingSize,
    )?;
    set_ring_size(fd, libc::XDP_RX_RING, size, XskStep::RxRingSize)?;
    set_ring_size(fd, libc::XDP_TX_RING, size, XskStep::TxRingSize)
}

/// Maps the four rings (already sized to `size` entries).
fn map_rings(fd: BorrowedFd<'_>, size: u32) -> Result<Rings, XskError> {
    let [rx_offsets, tx_offsets, fill_offsets, completion_offsets] = mmap_offsets(fd)?;
    let [rx, tx, fill, completion] = RING_PLACES;
    Ok(Rings {
        rx: map_ring(fd, rx_offsets, size, rx)?,
        tx: map_ring(fd, tx_offsets, size, tx)?,
        fill: map_ring(fd, fill_offsets, size, fill)?,
        completion: map_ring(fd, completion_offsets, size, completion)?,
    })
}

impl XskSocket {
    /// Opens a socket on `queue` of `interface` (in the calling thread's
    /// network namespace): maps and registers the UMEM, sizes and maps the
    /// four rings, gives the receive frames to the fill ring and binds.
    ///
    /// The socket receives nothing until an XDP program on the interface
    /// redirects frames to it ([`XskSocket::register`]).
    ///
    /// # Errors
    ///
    /// [`XskError::InvalidOptions`], [`XskError::InterfaceNotFound`],
    /// [`XskError::QueueNotFound`] (the bind failed with `EINVAL` and the
    /// driver reports fewer queues), [`XskError::Bind`] (another refusal of
    /// the bind, e.g. `EBUSY` when the queue already has a socket), or
    /// [`XskError::Syscall`] naming the step that failed.
    pub fn open(interface: &str, queue: u32, options: XskOptions) -> Result<Self, XskError> {
        options.validate()?;
        let ifindex =
            sys::interface_index(interface).ok_or_else(|| XskError::InterfaceNotFound {
                interface: interface.to_string(),
            })?;
        let fd = sys::xdp_socket().map_err(|source| XskError::Syscall {
            step: XskStep::Socket,
            source,
        })?;
        let umem = Umem::new(options.frames, options.frame_size)?;
        umem.register(fd.as_fd())?;

        let size = options.ring_size;
        set_ring_sizes(fd.as_fd(), size)?;
        let Rings {
            rx,
            tx,
            fill,
            completion,
        } = map_rings(fd.as_fd(), size)?;

        // The first frames receive, the rest transmit.
        let receive_frames = size.min(options.frames / 2);
        let pending_fill: Vec<u64> = (0..receive_frames)
            .rev()
            .map(|index| umem.frame_address(index))
            .collect();
        let free_frames: Vec<u64> = (receive_frames..options.frames)
            .rev()
            .map(|index| umem.frame_address(index))
            .collect();
        let mut socket = Self {
            rx,
            tx,
            fill,
            completion,
            fd,
            umem,
            free_frames,
            pending_fill,
            fill_batch: (receive_frames / 16).max(1),
            lent_to_tx: 0,
            tx_in_flight: 0,
            interface: interface.to_string(),
            ifindex,
            queue,
            counters: Counters::default(),
        };
        socket.refill();
        socket.counters.initial_fill = socket.counters.filled;
        socket.bind(options.copy_mode)?;
        Ok(socket)
    }

    /// Binds to the socket's interface and queue.
    fn bind(&self, copy_mode: bool) -> Result<(), XskError> {
        let (interface, ifindex, queue) = (self.interface.as_str(), self.ifindex, self.queue);
        let (flags, mode) = if copy_mode {
            (libc::XDP_COPY, "copy mode")
        } else {
            (0, "kernel's choice of mode")
        };
        // A socket closed a moment ago keeps its queue until the kernel's
        // deferred release has run: EBUSY is retried for a while.
        let deadline = Instant::now() + BIND_BUSY_RETRY;
        let mut bound = sys::bind(self.fd.as_fd(), ifindex, queue, flags);
        while bound
            .as_ref()
            .is_err_and(|error| error.raw_os_error() == Some(libc::EBUSY))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
            bound = sys::bind(self.fd.as_fd(), ifindex, queue, flags);
        }
        if let Err(source) = bound {
            if source.raw_os_error() == Some(libc::EINVAL) {
                if let Some(available) = sys::queue_count(interface).filter(|&n| queue >= n) {
                    return Err(XskError::QueueNotFound {
                        interface: interface.to_string(),
                        queue,
                        available,
                    });
                }
            }
            return Err(XskError::Bind {
                interface: interface.to_string(),
                queue,
                mode,
                source,
            });
        }
        Ok(())
    }
}
