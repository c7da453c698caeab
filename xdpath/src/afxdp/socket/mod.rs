//! [`XskSocket`]: one AF_XDP socket with its own UMEM, bound to one queue.

mod io;
mod open;
mod reply;
#[cfg(test)]
mod tests;

use std::borrow::BorrowMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use aya::maps::{MapData, XskMap};

use super::error::XskError;
use super::rings::{ConsumerRing, ProducerRing};
use super::umem::Umem;
pub use reply::Received;

/// How long a bind that finds the queue busy is retried.
const BIND_BUSY_RETRY: Duration = Duration::from_secs(3);

/// Shortest frame [`XskSocket::send`] accepts: an Ethernet header.
pub const MIN_FRAME: usize = 14;

/// How an [`XskSocket`] is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XskOptions {
    /// UMEM frames (at least 2). Up to `min(ring_size, frames / 2)` of them
    /// receive, the rest transmit.
    pub frames: u32,
    /// Bytes per frame: a power of two from 2048 to the page size. A
    /// received frame can hold `frame_size - 256` bytes (the kernel keeps
    /// `XDP_PACKET_HEADROOM` in front); a sent one `frame_size`.
    pub frame_size: u32,
    /// Entries of each of the four rings (fill, completion, RX, TX): a
    /// power of two.
    pub ring_size: u32,
    /// `true`: bind with `XDP_COPY` (works on every driver, veth included);
    /// `false`: no mode flag, the kernel uses zero-copy where the driver
    /// supports it and copy mode elsewhere.
    pub copy_mode: bool,
}

impl Default for XskOptions {
    /// 2048 frames of 2048 bytes (4 MiB), rings of 1024, copy mode.
    fn default() -> Self {
        Self {
            frames: 2048,
            frame_size: 2048,
            ring_size: 1024,
            copy_mode: true,
        }
    }
}

impl XskOptions {
    /// Checks the fields against what the kernel accepts.
    pub fn validate(&self) -> Result<(), XskError> {
        let page = page_size();
        if !self.frame_size.is_power_of_two()
            || self.frame_size < 2048
            || u64::from(self.frame_size) > page
        {
            return Err(XskError::InvalidOptions {
                option: "frame_size",
                value: u64::from(self.frame_size),
                reason: "must be a power of two from 2048 to the page size",
            });
        }
        if self.frames < 2 {
            return Err(XskError::InvalidOptions {
                option: "frames",
                value: u64::from(self.frames),
                reason: "must be at least 2 (one to receive, one to send)",
            });
        }
        if !self.ring_size.is_power_of_two() {
            return Err(XskError::InvalidOptions {
                option: "ring_size",
                value: u64::from(self.ring_size),
                reason: "must be a power of two",
            });
        }
        Ok(())
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Counters of one socket: this library's own, then the kernel's
/// (`XDP_STATISTICS`; the last three are 0 before Linux 5.9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskStats {
    /// Frames taken from the RX ring and copied out.
    pub received: u64,
    /// Frames the kernel has completed (sent) from the TX ring.
    pub sent: u64,
    /// Frames put into the TX ring.
    pub tx_queued: u64,
    /// Frames given back to the fill ring after reception (the initial
    /// fill is not counted).
    pub fill_refills: u64,
    /// Received frames waiting to go back to the fill ring, which takes
    /// them in batches (a sixteenth of the receive frames).
    pub fill_pending: u64,
    /// Descriptors from the kernel that pointed outside the UMEM, skipped.
    pub invalid_descs: u64,
    /// Kernel: frames dropped on the way in (too long for a frame, no
    /// buffer from the fill ring, ...).
    pub rx_dropped: u64,
    /// Kernel: invalid RX descriptors.
    pub rx_invalid_descs: u64,
    /// Kernel: invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Kernel: frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Kernel: times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Kernel: times the TX ring was empty on a kick.
    pub tx_ring_empty_descs: u64,
}

/// Library-side counters.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    received: u64,
    sent: u64,
    tx_queued: u64,
    filled: u64,
    initial_fill: u64,
    invalid_descs: u64,
}

/// An AF_XDP socket bound to one queue of one interface, with its own
/// [`Umem`] and all four rings.
///
/// Frames reach it only through an XDP program that redirects them into an
/// `XSKMAP` holding its fd (for example `xdpath::objects::XSK`, which
/// redirects every frame of queue *q* to `XSKS[q]`); see
/// [`XskSocket::register`]. [`XskSocket::recv`] copies frames out and
/// recycles their buffers; [`XskSocket::send`] copies a frame in and kicks
/// the kernel.
///
/// The socket lives in the network namespace of the thread that opened
/// it; once open it may be used and dropped from any thread. Dropping it
/// unmaps the rings, closes the socket (the kernel drops it from any
/// `XSKMAP`) and unmaps the UMEM.
///
/// # Minimum kernel
///
/// AF_XDP sockets: Linux 4.18. The `XDP_COPY` bind flag came with the
/// zero-copy infrastructure of 2018 (4.18/4.19, not checked against those
/// releases); older `XDP_MMAP_OFFSETS` (before the ring `flags` field of
/// 5.4) are understood; the extended `XDP_STATISTICS` need 5.9. Needs
/// `CONFIG_XDP_SOCKETS` and `CAP_NET_RAW`. Developed and tested on 6.18.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
///
/// use aya::maps::XskMap;
/// use aya::programs::{Xdp, XdpMode};
/// use aya::Ebpf;
/// use xdpath::afxdp::{XskOptions, XskSocket};
/// use xdpath::objects;
/// use xdpath_core::abi;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Needs root. Redirect every frame of veth0 to the socket of its queue.
/// let mut ebpf = Ebpf::load(objects::XSK)?;
/// let program: &mut Xdp = ebpf
///     .program_mut(abi::program::XSK)
///     .ok_or("no program")?
///     .try_into()?;
/// program.load()?;
/// program.attach("veth0", XdpMode::Driver)?;
///
/// let mut socket = XskSocket::open("veth0", 0, XskOptions::default())?;
/// let mut sockets = XskMap::try_from(ebpf.map_mut(abi::map::XSKS).ok_or("no map")?)?;
/// socket.register(&mut sockets, 0)?;
///
/// let mut frames = Vec::new();
/// socket.recv(Duration::from_secs(1), &mut frames)?;
/// for frame in &frames {
///     socket.send(frame)?; // echo
/// }
/// println!("{:?}", socket.stats()?);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct XskSocket {
    // Field order is drop order: the rings are unmapped, then the socket
    // closed, then the UMEM unmapped.
    rx: ConsumerRing<libc::xdp_desc>,
    tx: ProducerRing<libc::xdp_desc>,
    fill: ProducerRing<u64>,
    completion: ConsumerRing<u64>,
    fd: OwnedFd,
    umem: Umem,
    /// TX frames user space owns.
    free_frames: Vec<u64>,
    /// RX frames waiting for room in the fill ring.
    pending_fill: Vec<u64>,
    /// How many wait before they go back ([`Self::refill`]): a sixteenth
    /// of the receive frames, at least one.
    fill_batch: u32,
    /// TX frames handed to the kernel, not yet completed.
    tx_in_flight: u32,
    /// Received frames sent back in place ([`Received::reply`]) and not
    /// yet completed: the first completions go back to the fill ring.
    lent_to_tx: u32,
    interface: String,
    ifindex: u32,
    queue: u32,
    counters: Counters,
}

impl XskSocket {
    /// The socket's file descriptor: what goes into an `XSKMAP`.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The interface it is bound to.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The queue it is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Its UMEM.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Puts this socket into `map` at `index` (the program of
    /// `xdpath::objects::XSK` looks sockets up by receive queue, so
    /// `index` is normally [`XskSocket::queue`]).
    ///
    /// # Errors
    ///
    /// [`XskError::Register`] with aya's error (index out of range, ...).
    pub fn register<T: BorrowMut<MapData>>(
        &self,
        map: &mut XskMap<T>,
        index: u32,
    ) -> Result<(), XskError> {
        map.set(index, self.fd.as_fd(), 0)
            .map_err(|source| XskError::Register { index, source })
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for XskSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
