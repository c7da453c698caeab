//! AF_XDP (XSK) sockets in copy mode, written against the kernel's
//! documented ABI (`Documentation/networking/af_xdp.rst`,
//! `include/uapi/linux/if_xdp.h`) with `libc` only.
//!
//! An [`XskSocket`] owns a [`Umem`] (an mmap'd area of equal frames
//! registered with `XDP_UMEM_REG`) and four rings shared with the kernel:
//! the fill ring (frames the kernel may receive into), the RX ring
//! (received frames), the TX ring (frames to send) and the completion ring
//! (sent frames whose buffers are free again). The rings are mapped from
//! the socket at the offsets `XDP_MMAP_OFFSETS` reports.
//!
//! Frames only reach a socket through an XDP program that redirects them
//! into an `XSKMAP` holding the socket: [`crate::objects::XSK`] is such a
//! program (every frame of receive queue *q* goes to `XSKS[q]`, or on to
//! the stack when the slot is empty).
//!
//! Copy mode (`XDP_COPY`) works on every driver, veth included; zero-copy
//! needs driver support that veth does not have.
//!
//! Minimum kernel: 4.18 for AF_XDP; see [`XskSocket`] for the details.

mod error;
mod mmap;
mod rings;
mod socket;
pub mod steered;
mod sys;
mod umem;

pub use error::{XskError, XskStep};
pub use socket::{Received, XskOptions, XskSocket, XskStats, MIN_FRAME};
pub use steered::SteeredReceiver;
pub(crate) use sys::queue_count;
pub use umem::Umem;
