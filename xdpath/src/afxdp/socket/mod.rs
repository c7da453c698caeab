//! [`XskSocket`]: one AF_XDP socket with its own UMEM, bound to one queue.

use std::borrow::BorrowMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use aya::maps::{MapData, XskMap};

use super::error::{XskError, XskStep};
use super::mmap::Mapping;
use super::rings::{ConsumerRing, ProducerRing, RingOffsets};
use super::sys;
use super::umem::Umem;

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
    /// TX frames handed to the kernel, not yet completed.
    tx_in_flight: u32,
    interface: String,
    ifindex: u32,
    queue: u32,
    counters: Counters,
}

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

/// Maps one ring of `size` entries of `T` at page offset `pgoff`.
fn map_ring<T>(
    fd: BorrowedFd<'_>,
    offsets: RingOffsets,
    size: u32,
    pgoff: libc::off_t,
    step: XskStep,
    ring: &'static str,
) -> Result<Mapping, XskError> {
    let len = offsets
        .map_len::<T>(size)
        .ok_or(XskError::BadRingLayout { ring })?;
    Mapping::shared(fd, len, pgoff).map_err(|source| XskError::Syscall { step, source })
}

fn set_ring_size(
    fd: BorrowedFd<'_>,
    option: libc::c_int,
    size: u32,
    step: XskStep,
) -> Result<(), XskError> {
    sys::set_option(fd, option, &size).map_err(|source| XskError::Syscall { step, source })
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
        set_ring_size(
            fd.as_fd(),
            libc::XDP_UMEM_FILL_RING,
            size,
            XskStep::FillRingSize,
        )?;
        set_ring_size(
            fd.as_fd(),
            libc::XDP_UMEM_COMPLETION_RING,
            size,
            XskStep::CompletionRingSize,
        )?;
        set_ring_size(fd.as_fd(), libc::XDP_RX_RING, size, XskStep::RxRingSize)?;
        set_ring_size(fd.as_fd(), libc::XDP_TX_RING, size, XskStep::TxRingSize)?;

        let [rx_offsets, tx_offsets, fill_offsets, completion_offsets] = mmap_offsets(fd.as_fd())?;
        let rx = map_ring::<libc::xdp_desc>(
            fd.as_fd(),
            rx_offsets,
            size,
            libc::XDP_PGOFF_RX_RING,
            XskStep::MapRxRing,
            "rx",
        )?;
        let rx = ConsumerRing::mapped(rx, rx_offsets, size)
            .map_err(|_| XskError::BadRingLayout { ring: "rx" })?;
        let tx = map_ring::<libc::xdp_desc>(
            fd.as_fd(),
            tx_offsets,
            size,
            libc::XDP_PGOFF_TX_RING,
            XskStep::MapTxRing,
            "tx",
        )?;
        let tx = ProducerRing::mapped(tx, tx_offsets, size)
            .map_err(|_| XskError::BadRingLayout { ring: "tx" })?;
        let fill = map_ring::<u64>(
            fd.as_fd(),
            fill_offsets,
            size,
            libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
            XskStep::MapFillRing,
            "fill",
        )?;
        let fill = ProducerRing::mapped(fill, fill_offsets, size)
            .map_err(|_| XskError::BadRingLayout { ring: "fill" })?;
        let completion = map_ring::<u64>(
            fd.as_fd(),
            completion_offsets,
            size,
            libc::XDP_UMEM_PGOFF_COMPLETION_RING as libc::off_t,
            XskStep::MapCompletionRing,
            "completion",
        )?;
        let completion = ConsumerRing::mapped(completion, completion_offsets, size)
            .map_err(|_| XskError::BadRingLayout { ring: "completion" })?;

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
            tx_in_flight: 0,
            interface: interface.to_string(),
            ifindex,
            queue,
            counters: Counters::default(),
        };
        socket.refill();
        socket.counters.initial_fill = socket.counters.filled;

        let (flags, mode) = if options.copy_mode {
            (libc::XDP_COPY, "copy mode")
        } else {
            (0, "kernel's choice of mode")
        };
        // A socket closed a moment ago keeps its queue until the kernel's
        // deferred release has run: EBUSY is retried for a while.
        let deadline = Instant::now() + BIND_BUSY_RETRY;
        let mut bound = sys::bind(socket.fd.as_fd(), ifindex, queue, flags);
        while bound
            .as_ref()
            .is_err_and(|error| error.raw_os_error() == Some(libc::EBUSY))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
            bound = sys::bind(socket.fd.as_fd(), ifindex, queue, flags);
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
        Ok(socket)
    }

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

    /// Receives: waits up to `timeout` (`Duration::ZERO`: not at all) for
    /// the RX ring to hold frames, copies every ready frame into `out`
    /// (appended) and gives their buffers back to the fill ring. Returns
    /// how many frames were appended (0 on timeout).
    ///
    /// # Errors
    ///
    /// [`XskError::Syscall`] with [`XskStep::Poll`].
    pub fn recv(&mut self, timeout: Duration, out: &mut Vec<Vec<u8>>) -> Result<usize, XskError> {
        self.recv_each(timeout, |frame| out.push(frame.to_vec()))
    }

    /// Receives like [`XskSocket::recv`], but hands each ready frame to
    /// `each` where it lies in the UMEM, copying nothing: the bytes are
    /// valid during the call only. Returns how many frames were handed
    /// over (0 on timeout).
    ///
    /// # Errors
    ///
    /// [`XskError::Syscall`] with [`XskStep::Poll`].
    pub fn recv_each(
        &mut self,
        timeout: Duration,
        mut each: impl FnMut(&[u8]),
    ) -> Result<usize, XskError> {
        self.refill();
        let mut ready = self.rx.available();
        if ready == 0 && timeout.is_zero() {
            // Nothing now, and no wait wanted: no system call either.
            return Ok(0);
        }
        if ready == 0 {
            let woke = sys::poll(self.fd.as_fd(), libc::POLLIN, timeout).map_err(|source| {
                XskError::Syscall {
                    step: XskStep::Poll,
                    source,
                }
            })?;
            if !woke {
                return Ok(0);
            }
            ready = self.rx.available();
        }
        let mut handed: usize = 0;
        for offset in 0..ready {
            let desc = self.rx.read(offset);
            match self.umem.frame_bytes(desc.addr, desc.len) {
                Some(frame) => {
                    each(frame);
                    handed = handed.saturating_add(1);
                }
                None => self.counters.invalid_descs = self.counters.invalid_descs.saturating_add(1),
            }
            if let Some(frame) = self.umem.frame_of(desc.addr) {
                self.pending_fill.push(frame);
            }
        }
        self.rx.release(ready);
        self.counters.received = self.counters.received.saturating_add(handed as u64);
        self.refill();
        Ok(handed)
    }

    /// Sends one frame: copies it into a free UMEM frame, puts a TX
    /// descriptor on the ring, kicks the kernel
    /// (`sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0)`) and reaps
    /// completions. In copy mode the kernel transmits during the kick; a
    /// kick the kernel answers with `EAGAIN`/`EBUSY`/`ENOBUFS` leaves the
    /// frame queued for the next kick ([`XskSocket::flush`]).
    ///
    /// # Errors
    ///
    /// [`XskError::FrameTooShort`] (under 14 bytes),
    /// [`XskError::FrameTooLarge`] (over `frame_size`),
    /// [`XskError::TxBusy`] (no free frame or TX slot even after reaping:
    /// flush and retry), [`XskError::Syscall`] with [`XskStep::Kick`].
    pub fn send(&mut self, frame: &[u8]) -> Result<(), XskError> {
        self.enqueue(frame)?;
        self.kick()?;
        self.reap();
        Ok(())
    }

    /// Puts one frame on the TX ring without kicking the kernel: a batch
    /// of them goes out on the next [`XskSocket::flush`] (or `send`). It
    /// kicks only when no frame or TX slot is free, to get some back.
    ///
    /// # Errors
    ///
    /// As [`XskSocket::send`].
    pub fn enqueue(&mut self, frame: &[u8]) -> Result<(), XskError> {
        if frame.len() < MIN_FRAME {
            return Err(XskError::FrameTooShort {
                len: frame.len(),
                min: MIN_FRAME,
            });
        }
        let max = self.umem.frame_size() as usize;
        if frame.len() > max {
            return Err(XskError::FrameTooLarge {
                len: frame.len(),
                max,
            });
        }
        self.reap();
        if self.free_frames.is_empty() || self.tx.free(1) == 0 {
            self.kick()?;
            self.reap();
        }
        if self.tx.free(1) == 0 {
            return Err(XskError::TxBusy {
                in_flight: self.tx_in_flight,
            });
        }
        let Some(address) = self.free_frames.pop() else {
            return Err(XskError::TxBusy {
                in_flight: self.tx_in_flight,
            });
        };
        if !self.umem.copy_in(address, frame) {
            // Cannot happen: the address is a frame start and the length
            // was checked. Keep the frame and refuse rather than panic.
            self.free_frames.push(address);
            return Err(XskError::FrameTooLarge {
                len: frame.len(),
                max,
            });
        }
        self.tx.write(
            0,
            libc::xdp_desc {
                addr: address,
                len: frame.len() as u32,
                options: 0,
            },
        );
        self.tx.submit(1);
        self.tx_in_flight = self.tx_in_flight.saturating_add(1);
        self.counters.tx_queued = self.counters.tx_queued.saturating_add(1);
        Ok(())
    }

    /// Kicks the kernel and reaps completions until every queued frame is
    /// completed or `timeout` has passed. Returns the frames still in
    /// flight (0: all sent).
    ///
    /// # Errors
    ///
    /// [`XskError::Syscall`] with [`XskStep::Kick`].
    pub fn flush(&mut self, timeout: Duration) -> Result<u32, XskError> {
        let start = Instant::now();
        loop {
            if self.tx.outstanding() > 0 {
                self.kick()?;
            }
            self.reap();
            if self.tx_in_flight == 0 || start.elapsed() >= timeout {
                return Ok(self.tx_in_flight);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The counters: this library's and the kernel's (`XDP_STATISTICS`).
    ///
    /// # Errors
    ///
    /// [`XskError::Syscall`] with [`XskStep::Statistics`].
    pub fn stats(&self) -> Result<XskStats, XskError> {
        // Kernels before 5.9 write only the first three fields.
        let (kernel, _) =
            sys::get_option::<libc::xdp_statistics>(self.fd.as_fd(), libc::XDP_STATISTICS)
                .map_err(|source| XskError::Syscall {
                    step: XskStep::Statistics,
                    source,
                })?;
        let counters = self.counters;
        Ok(XskStats {
            received: counters.received,
            sent: counters.sent,
            tx_queued: counters.tx_queued,
            fill_refills: counters.filled.saturating_sub(counters.initial_fill),
            invalid_descs: counters.invalid_descs,
            rx_dropped: kernel.rx_dropped,
            rx_invalid_descs: kernel.rx_invalid_descs,
            tx_invalid_descs: kernel.tx_invalid_descs,
            rx_ring_full: kernel.rx_ring_full,
            rx_fill_ring_empty_descs: kernel.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: kernel.tx_ring_empty_descs,
        })
    }

    /// Moves frames waiting for the fill ring into it, as many as fit.
    fn refill(&mut self) {
        let wanted = u32::try_from(self.pending_fill.len()).unwrap_or(u32::MAX);
        if wanted == 0 {
            return;
        }
        let count = self.fill.free(wanted).min(wanted);
        for offset in 0..count {
            let Some(address) = self.pending_fill.pop() else {
                break;
            };
            self.fill.write(offset, address);
        }
        self.fill.submit(count);
        self.counters.filled = self.counters.filled.saturating_add(u64::from(count));
    }

    /// Takes completed TX frames back.
    fn reap(&mut self) {
        let ready = self.completion.available();
        for offset in 0..ready {
            let address = self.completion.read(offset);
            match self.umem.frame_of(address) {
                Some(frame) => self.free_frames.push(frame),
                None => self.counters.invalid_descs = self.counters.invalid_descs.saturating_add(1),
            }
        }
        self.completion.release(ready);
        self.tx_in_flight = self.tx_in_flight.saturating_sub(ready);
        self.counters.sent = self.counters.sent.saturating_add(u64::from(ready));
    }

    fn kick(&self) -> Result<(), XskError> {
        sys::kick(self.fd.as_fd())
            .map(drop)
            .map_err(|source| XskError::Syscall {
                step: XskStep::Kick,
                source,
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert!(XskOptions::default().validate().is_ok());
        for (options, field) in [
            (
                XskOptions {
                    frame_size: 1000,
                    ..XskOptions::default()
                },
                "frame_size",
            ),
            (
                XskOptions {
                    frame_size: 1024,
                    ..XskOptions::default()
                },
                "frame_size",
            ),
            (
                XskOptions {
                    frame_size: 1 << 20,
                    ..XskOptions::default()
                },
                "frame_size",
            ),
            (
                XskOptions {
                    frames: 1,
                    ..XskOptions::default()
                },
                "frames",
            ),
            (
                XskOptions {
                    ring_size: 1000,
                    ..XskOptions::default()
                },
                "ring_size",
            ),
            (
                XskOptions {
                    ring_size: 0,
                    ..XskOptions::default()
                },
                "ring_size",
            ),
        ] {
            match options.validate() {
                Err(XskError::InvalidOptions { option, .. }) => assert_eq!(option, field),
                other => panic!("{options:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_interface_is_named() {
        for name in [
            "xdpath-nosuch0",
            "",
            "a-name-far-too-long-for-linux",
            "nul\0",
        ] {
            match XskSocket::open(name, 0, XskOptions::default()) {
                Err(XskError::InterfaceNotFound { interface }) => assert_eq!(interface, name),
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }
}
