//! The UMEM: the packet buffer area an AF_XDP socket shares with the kernel.

use std::os::fd::BorrowedFd;

use super::error::{XskError, XskStep};
use super::mmap::Mapping;
use super::sys;

/// A page-aligned area of `frames` frames of `frame_size` bytes each,
/// registered with a socket by `setsockopt(SOL_XDP, XDP_UMEM_REG)` in
/// aligned mode (a frame's address is `index * frame_size`).
///
/// Frames change hands through the rings: user space owns a frame until it
/// puts its address into the fill or TX ring, the kernel owns it until the
/// address comes back through the RX or completion ring. The socket only
/// copies into or out of frames it owns. It is unmapped on drop (after the
/// socket, which holds the kernel's reference, is closed).
#[derive(Debug)]
pub struct Umem {
    area: Mapping,
    frames: u32,
    frame_size: u32,
}

impl Umem {
    /// Maps a zeroed area for `frames` frames of `frame_size` bytes. The
    /// options were validated by the caller (power-of-two frame size of at
    /// least 2048, at most a page; at least two frames).
    pub(crate) fn new(frames: u32, frame_size: u32) -> Result<Self, XskError> {
        let len = usize::try_from(u64::from(frames) * u64::from(frame_size)).map_err(|_| {
            XskError::InvalidOptions {
                option: "frames",
                value: u64::from(frames),
                reason: "frames × frame_size does not fit the address space",
            }
        })?;
        let area = Mapping::anonymous(len).map_err(|source| XskError::Syscall {
            step: XskStep::MapUmem,
            source,
        })?;
        Ok(Self {
            area,
            frames,
            frame_size,
        })
    }

    /// Registers the area with the socket `fd` (`XDP_UMEM_REG`, no
    /// headroom, aligned chunks).
    pub(crate) fn register(&self, fd: BorrowedFd<'_>) -> Result<(), XskError> {
        let registration = libc::xdp_umem_reg {
            addr: self.area.as_ptr() as u64,
            len: self.area.len() as u64,
            chunk_size: self.frame_size,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sys::set_option(fd, libc::XDP_UMEM_REG, &registration).map_err(|source| XskError::Syscall {
            step: XskStep::RegisterUmem,
            source,
        })
    }

    /// Number of frames.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Bytes per frame.
    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    /// Bytes in the area.
    pub fn len(&self) -> usize {
        self.area.len()
    }

    /// Never true: a UMEM has at least two frames.
    pub fn is_empty(&self) -> bool {
        self.area.len() == 0
    }

    /// The address of the frame `index` (its first byte).
    pub(crate) fn frame_address(&self, index: u32) -> u64 {
        u64::from(index) * u64::from(self.frame_size)
    }

    /// The start of the frame holding `address`, if `address` lies in the
    /// area.
    pub(crate) fn frame_of(&self, address: u64) -> Option<u64> {
        (address < self.area.len() as u64).then(|| address - address % u64::from(self.frame_size))
    }

    /// Whether `len` bytes at `address` lie inside one frame.
    fn in_one_frame(&self, address: u64, len: usize) -> bool {
        let Some(frame) = self.frame_of(address) else {
            return false;
        };
        let Some(end) = address.checked_add(len as u64) else {
            return false;
        };
        end <= frame + u64::from(self.frame_size)
    }

    /// The `len` bytes at `address` of a frame user space owns (taken from
    /// the RX ring). `None` when they do not lie in one frame.
    pub(crate) fn frame_bytes(&self, address: u64, len: u32) -> Option<&[u8]> {
        let len = len as usize;
        if !self.in_one_frame(address, len) {
            return None;
        }
        // SAFETY: `address..address + len` lies inside the mapping (checked
        // above); the kernel handed this frame over through the RX ring and
        // writes to it no more until it is back in the fill ring, which
        // needs `&mut self` (the borrow returned here prevents that).
        Some(unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(address as usize), len) })
    }

    /// Asks the CPU to start loading the cache line at `address` (a
    /// received frame's first bytes, written by the kernel on another
    /// CPU), so that the misses of a batch's frames overlap instead of
    /// coming one after another. A hint: no effect off x86-64 or outside
    /// the area.
    pub(crate) fn prefetch(&self, address: u64) {
        if address >= self.area.len() as u64 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch does not fault and changes no memory; the
        // address lies inside the mapping (checked above).
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.area.as_ptr().add(address as usize).cast());
        }
    }

    /// The whole frame starting at `frame`, which user space owns (taken
    /// from the RX ring, not yet back in the fill ring). `None` when
    /// `frame` is not a frame's start inside the area.
    pub(crate) fn frame_mut(&mut self, frame: u64) -> Option<&mut [u8]> {
        if self.frame_of(frame) != Some(frame) {
            return None;
        }
        let size = self.frame_size as usize;
        // SAFETY: a whole frame inside the mapping (its start checked
        // above, the area a multiple of the frame size); the kernel does
        // not touch it until its address goes into the fill or TX ring,
        // which needs `&mut self` (the borrow returned here prevents that).
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.area.as_ptr().add(frame as usize), size)
        })
    }

    /// Copies `data` into the frame starting at `address`, which user space
    /// owns (free, not in the TX ring). `false` when it does not fit.
    pub(crate) fn copy_in(&mut self, address: u64, data: &[u8]) -> bool {
        if !self.in_one_frame(address, data.len()) {
            return false;
        }
        // SAFETY: the destination lies inside the mapping (checked above);
        // the kernel does not read or write this frame until its address is
        // put into the TX ring; `data` is ordinary memory, not the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.area.as_ptr().add(address as usize),
                data.len(),
            );
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_stay_inside_one_frame() {
        let mut umem = Umem::new(4, 2048).unwrap();
        assert_eq!(umem.len(), 8192);
        assert_eq!(umem.frame_address(3), 6144);
        assert_eq!(umem.frame_of(6144 + 256), Some(6144));
        assert_eq!(umem.frame_of(8192), None);
        assert!(umem.copy_in(2048, &[7; 2048]));
        assert!(!umem.copy_in(2048 + 1, &[7; 2048]), "crosses a frame");
        assert!(!umem.copy_in(8192, &[7]), "outside");
        assert_eq!(umem.frame_bytes(2048 + 2000, 48), Some(&[7u8; 48][..]));
        assert_eq!(umem.frame_bytes(2048 + 2000, 49), None);
        assert_eq!(umem.frame_bytes(u64::MAX, 1), None);
        assert_eq!(umem.frame_bytes(u64::MAX - 10, u32::MAX), None);
        assert_eq!(umem.frame_bytes(0, 0), Some(&[][..]));
    }
}
