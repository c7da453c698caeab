//! Moving frames through an open [`XskSocket`]: receiving, sending,
//! flushing, the fill and completion rings, and the counters.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::{XskSocket, XskStats, MIN_FRAME};
use crate::afxdp::error::{XskError, XskStep};
use crate::afxdp::sys;

impl XskSocket {
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
        let Some(ready) = self.wait_for_rx(timeout)? else {
            return Ok(0);
        };
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
        self.put_on_tx(address, frame.len() as u32);
        Ok(())
    }

    /// Refills, then the number of frames ready on the RX ring, waiting up
    /// to `timeout` for one; `None` when none came.
    ///
    /// With nothing to read, every frame user space can give back goes to
    /// the fill ring first: the completed answers, and the frames held
    /// back for a batch ([`Self::refill`]). Otherwise a quiet socket whose
    /// buffers were mostly out as answers could keep the last few back,
    /// the kernel would have none to receive into, and nothing would come
    /// to end the wait.
    pub(super) fn wait_for_rx(&mut self, timeout: Duration) -> Result<Option<u32>, XskError> {
        self.refill();
        let ready = self.rx.available();
        if ready > 0 {
            return Ok(Some(ready));
        }
        if self.lent_to_tx > 0 {
            self.reap();
        }
        self.refill_at_least(1);
        if timeout.is_zero() {
            // Nothing now, and no wait wanted: no system call either.
            return Ok(None);
        }
        let woke = sys::poll(self.fd.as_fd(), libc::POLLIN, timeout).map_err(|source| {
            XskError::Syscall {
                step: XskStep::Poll,
                source,
            }
        })?;
        let ready = self.rx.available();
        Ok((woke && ready > 0).then_some(ready))
    }

    /// Puts the frame at `address` (`len` bytes, written) on the TX ring,
    /// which has a free slot.
    pub(super) fn put_on_tx(&mut self, address: u64, len: u32) {
        self.tx.write(
            0,
            libc::xdp_desc {
                addr: address,
                len,
                options: 0,
            },
        );
        self.tx.submit(1);
        self.tx_in_flight = self.tx_in_flight.saturating_add(1);
        self.counters.tx_queued = self.counters.tx_queued.saturating_add(1);
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
            fill_pending: self.pending_fill.len() as u64,
            invalid_descs: counters.invalid_descs,
            rx_dropped: kernel.rx_dropped,
            rx_invalid_descs: kernel.rx_invalid_descs,
            tx_invalid_descs: kernel.tx_invalid_descs,
            rx_ring_full: kernel.rx_ring_full,
            rx_fill_ring_empty_descs: kernel.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: kernel.tx_ring_empty_descs,
        })
    }

    /// Moves frames waiting for the fill ring into it, as many as fit,
    /// once a sixteenth of the receive frames waits. Each refill reads the
    /// kernel's consumer index (the fill ring starts full, so the cached
    /// one never shows room), a cache line the kernel writes for every
    /// frame it takes: refilled after every pass of a few frames, that
    /// read was about a quarter of the runtime's receive function
    /// (`perf annotate`, `xdpath bench --userspace`). Holding back a
    /// sixteenth leaves the kernel the rest.
    pub(super) fn refill(&mut self) {
        self.refill_at_least(self.fill_batch);
    }

    /// Moves the frames waiting for the fill ring into it, as many as
    /// fit, if at least `batch` (and one) wait.
    fn refill_at_least(&mut self, batch: u32) {
        let wanted = u32::try_from(self.pending_fill.len()).unwrap_or(u32::MAX);
        if wanted == 0 || wanted < batch {
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
    pub(super) fn reap(&mut self) {
        let ready = self.completion.available();
        for offset in 0..ready {
            let address = self.completion.read(offset);
            match self.umem.frame_of(address) {
                // A received frame sent back as an answer returns to the
                // receiving side, which lent it; the TX side keeps its own.
                Some(frame) if self.lent_to_tx > 0 => {
                    self.lent_to_tx -= 1;
                    self.pending_fill.push(frame);
                }
                Some(frame) => self.free_frames.push(frame),
                None => self.counters.invalid_descs = self.counters.invalid_descs.saturating_add(1),
            }
        }
        self.completion.release(ready);
        self.tx_in_flight = self.tx_in_flight.saturating_sub(ready);
        self.counters.sent = self.counters.sent.saturating_add(u64::from(ready));
    }

    pub(super) fn kick(&self) -> Result<(), XskError> {
        sys::kick(self.fd.as_fd())
            .map(drop)
            .map_err(|source| XskError::Syscall {
                step: XskStep::Kick,
                source,
            })
    }
}
