//! Receiving with an answer in place: a received frame's own UMEM frame
//! carries the frame to send back, so a reply costs one copy (into the
//! frame) and no allocation, where receiving and then [`XskSocket::send`]
//! cost a copy out, an allocation and a copy in.

use std::time::Duration;

use super::{XskSocket, MIN_FRAME};
use crate::afxdp::error::XskError;

/// The most frames of a batch whose first line is prefetched before the
/// batch is processed: enough for the batches seen at a full veth.
const PREFETCH_FRAMES: u32 = 16;

/// A frame taken from the RX ring, handed to the callback of
/// [`XskSocket::recv_each_reply`]: its bytes, and the way to send an answer
/// out of the same socket from the same UMEM frame.
pub struct Received<'a> {
    /// The whole UMEM frame the kernel wrote the frame into.
    frame: &'a mut [u8],
    /// Where in `frame` the received bytes lie.
    start: usize,
    len: usize,
    /// Whether the TX ring had a slot for an answer when the frame was
    /// handed over.
    can_reply: bool,
    /// Frames on the TX ring then, for [`XskError::TxBusy`].
    in_flight: u32,
    /// Set by [`Received::reply`]: the answer's length.
    reply_len: &'a mut Option<u32>,
}

impl Received<'_> {
    /// The received frame.
    pub fn bytes(&self) -> &[u8] {
        let end = self.start.saturating_add(self.len);
        self.frame.get(self.start..end).unwrap_or_default()
    }

    /// Sends `answer` (which may be these very bytes, rewritten elsewhere)
    /// out of this socket in place of the received frame: copied to the
    /// start of the frame's UMEM frame and put on the TX ring once the
    /// callback returns. The frame goes back to the fill ring when the
    /// kernel has sent it.
    ///
    /// # Errors
    ///
    /// [`XskError::FrameTooShort`], [`XskError::FrameTooLarge`] (over the
    /// UMEM frame size), [`XskError::TxBusy`] when the TX ring had no free
    /// slot (the frame is then recycled unsent).
    pub fn reply(self, answer: &[u8]) -> Result<(), XskError> {
        if answer.len() < MIN_FRAME {
            return Err(XskError::FrameTooShort {
                len: answer.len(),
                min: MIN_FRAME,
            });
        }
        let max = self.frame.len();
        let Some(target) = self.frame.get_mut(..answer.len()) else {
            return Err(XskError::FrameTooLarge {
                len: answer.len(),
                max,
            });
        };
        if !self.can_reply {
            return Err(XskError::TxBusy {
                in_flight: self.in_flight,
            });
        }
        target.copy_from_slice(answer);
        *self.reply_len = u32::try_from(answer.len()).ok();
        Ok(())
    }
}

impl XskSocket {
    /// Receives like [`XskSocket::recv_each`], but `each` may answer a
    /// frame with [`Received::reply`]: the answers go out in one kick after
    /// the batch. Returns how many frames were handed over and how many
    /// answers were put on the TX ring.
    ///
    /// # Errors
    ///
    /// [`XskError::Syscall`] with [`XskStep::Poll`](crate::afxdp::XskStep)
    /// or `Kick`.
    pub fn recv_each_reply(
        &mut self,
        timeout: Duration,
        mut each: impl FnMut(Received<'_>),
    ) -> Result<(usize, usize), XskError> {
        let Some(ready) = self.wait_for_rx(timeout)? else {
            return Ok((0, 0));
        };
        let mut handed: usize = 0;
        let mut replied: usize = 0;
        // The batch's frames were written on another CPU: start every
        // frame's first line loading before the first is parsed.
        for offset in 0..ready.min(PREFETCH_FRAMES) {
            self.umem.prefetch(self.rx.read(offset).addr);
        }
        for offset in 0..ready {
            let desc = self.rx.read(offset);
            let Some(base) = self.umem.frame_of(desc.addr) else {
                self.counters.invalid_descs = self.counters.invalid_descs.saturating_add(1);
                continue;
            };
            let can_reply = self.tx_slot_free();
            let mut reply_len = None;
            let in_frame = self.umem.frame_bytes(desc.addr, desc.len).is_some();
            match self.umem.frame_mut(base) {
                Some(frame) if in_frame => {
                    // `desc.addr - base` is under the frame size: `frame_of`.
                    let start = (desc.addr - base) as usize;
                    each(Received {
                        frame,
                        start,
                        len: desc.len as usize,
                        can_reply,
                        in_flight: self.tx_in_flight,
                        reply_len: &mut reply_len,
                    });
                    handed = handed.saturating_add(1);
                }
                _ => self.counters.invalid_descs = self.counters.invalid_descs.saturating_add(1),
            }
            match reply_len {
                Some(len) => {
                    self.put_on_tx(base, len);
                    self.lent_to_tx = self.lent_to_tx.saturating_add(1);
                    replied = replied.saturating_add(1);
                }
                None => self.pending_fill.push(base),
            }
        }
        self.rx.release(ready);
        self.counters.received = self.counters.received.saturating_add(handed as u64);
        if replied > 0 {
            self.kick_until_consumed()?;
            self.reap();
        }
        self.refill();
        Ok((handed, replied))
    }

    /// Kicks until the kernel has taken every frame on the TX ring, or a
    /// kick takes none. In copy mode one kick sends at most 32 frames
    /// (the kernel's `TX_BATCH_SIZE`) and answers `EAGAIN` for the rest:
    /// kicked once, a batch of 50 answers kept 18 receive buffers out of
    /// the fill ring until the next batch, which then lost frames for
    /// want of them.
    fn kick_until_consumed(&mut self) -> Result<(), XskError> {
        let mut outstanding = self.tx.outstanding();
        while outstanding > 0 {
            self.kick()?;
            let now = self.tx.outstanding();
            if now >= outstanding {
                break;
            }
            outstanding = now;
        }
        Ok(())
    }

    /// Whether the TX ring has a slot, reaping and kicking once if not. A
    /// failed kick is no slot, not an error: it comes in the middle of a
    /// batch, whose descriptors must still be released.
    fn tx_slot_free(&mut self) -> bool {
        if self.tx.free(1) > 0 {
            return true;
        }
        let _ = self.kick();
        self.reap();
        self.tx.free(1) > 0
    }
}
