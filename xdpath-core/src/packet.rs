//! Bounds-checked packet access, the one thing the two builds do differently.

/// The largest offset at which the pipeline reads a header.
///
/// The eBPF implementation needs a constant bound on every variable offset
/// before it adds it to the packet pointer, or the verifier rejects the
/// program. The parser checks against this same bound itself (reporting
/// [`crate::Reason::HeadersTooLong`]) so that both builds give the same
/// answer for every frame.
pub const MAX_HEADER_OFFSET: usize = 1024;

/// Read access to one frame.
///
/// Implementations return `None` for any read that does not lie wholly
/// inside the frame. They never panic.
pub trait Packet {
    /// Length of the frame in bytes.
    fn len(&self) -> usize;

    /// True when the frame has no bytes.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies a `T` out of the frame at `offset`, or `None` when
    /// `offset > MAX_HEADER_OFFSET` or the value does not fit in the frame.
    ///
    /// `T` must be plain bytes (every bit pattern valid): the wire header
    /// types in [`crate::wire`] and byte arrays.
    fn load<T: Copy>(&self, offset: usize) -> Option<T>;

    /// Fills `out` with the frame's bytes from `offset`, as
    /// `bpf_xdp_load_bytes` does: anywhere in the frame, not bounded by
    /// [`MAX_HEADER_OFFSET`] (sampling and capture copy whole frames);
    /// false (and `out` unspecified) when they do not all lie in the frame.
    ///
    /// The default reads byte by byte through [`Packet::load`], so it stops
    /// at the header bound; the native packets copy directly. The eBPF
    /// build calls the helper itself.
    fn load_bytes(&self, offset: usize, out: &mut [u8]) -> bool {
        for (at, byte) in out.iter_mut().enumerate() {
            match offset.checked_add(at).and_then(|at| self.load::<u8>(at)) {
                Some(value) => *byte = value,
                None => return false,
            }
        }
        true
    }
}

/// A frame held in a byte slice: the native build's [`Packet`].
///
/// # Examples
///
/// ```
/// use xdpath_core::{Packet, SlicePacket};
/// let packet = SlicePacket::new(&[1, 2, 3]);
/// assert_eq!(packet.load::<[u8; 2]>(1), Some([2, 3]));
/// assert_eq!(packet.load::<[u8; 2]>(2), None);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SlicePacket<'a> {
    bytes: &'a [u8],
}

impl<'a> SlicePacket<'a> {
    /// Wraps a frame.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The whole frame.
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl Packet for SlicePacket<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.bytes.len()
    }

    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        if offset > MAX_HEADER_OFFSET {
            return None;
        }
        let end = offset.checked_add(core::mem::size_of::<T>())?;
        let bytes = self.bytes.get(offset..end)?;
        // SAFETY: `bytes` holds exactly size_of::<T>() bytes and callers only
        // load plain-bytes types, for which every bit pattern is valid.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
    }

    fn load_bytes(&self, offset: usize, out: &mut [u8]) -> bool {
        copy_from(self.bytes, offset, out)
    }
}

/// Copies `out.len()` bytes of `bytes` from `offset`; false when they are
/// not all there.
fn copy_from(bytes: &[u8], offset: usize, out: &mut [u8]) -> bool {
    let Some(end) = offset.checked_add(out.len()) else {
        return false;
    };
    match bytes.get(offset..end) {
        Some(source) => {
            out.copy_from_slice(source);
            true
        }
        None => false,
    }
}

/// Write access and head adjustment, for the stages that rewrite frames
/// (the load balancer's encapsulation, the backend's decapsulation).
pub trait PacketMut: Packet {
    /// Grows (`delta < 0`) or shrinks (`delta > 0`) the frame at its head,
    /// as `bpf_xdp_adjust_head` does; false (and nothing changed) when the
    /// headroom or the frame is too small.
    fn adjust_head(&mut self, delta: i32) -> bool;

    /// Grows (`delta > 0`, the new bytes zero) or shrinks (`delta < 0`)
    /// the frame at its tail, as `bpf_xdp_adjust_tail` does; false (and
    /// nothing changed) when the frame would be shorter than an Ethernet
    /// header or longer than its buffer.
    fn adjust_tail(&mut self, delta: i32) -> bool;

    /// Writes a `T` (plain bytes) at `offset`; false when it does not fit
    /// wholly inside the frame or `offset > MAX_HEADER_OFFSET`.
    fn store<T: Copy>(&mut self, offset: usize, value: T) -> bool;
}

/// A frame in an owned buffer with headroom: the native build's
/// [`PacketMut`].
///
/// # Examples
///
/// ```
/// use xdpath_core::packet::{FrameBuffer, Packet, PacketMut};
/// let mut frame = FrameBuffer::new(&[1; 14]);
/// assert!(frame.adjust_head(-2));
/// assert!(frame.store(0, [9u8, 8]));
/// assert_eq!(&frame.bytes()[..4], &[9, 8, 1, 1]);
/// assert_eq!(frame.len(), 16);
/// assert!(!frame.adjust_head(-1000), "beyond the headroom");
/// assert!(!frame.adjust_head(10), "shorter than an Ethernet header");
/// ```
#[cfg(any(feature = "std", test))]
#[derive(Clone, Debug)]
pub struct FrameBuffer {
    buffer: std::vec::Vec<u8>,
    start: usize,
}

/// The longest frame a [`FrameBuffer`] grows to at its tail: what a page
/// holds after XDP's headroom and the kernel's `skb_shared_info` (4096 −
/// 256 − 320).
#[cfg(any(feature = "std", test))]
pub const MAX_FRAME_LEN: usize = 3520;

/// Headroom of a [`FrameBuffer`]: what XDP gives a frame (`XDP_PACKET_HEADROOM`).
#[cfg(any(feature = "std", test))]
pub const FRAME_HEADROOM: usize = 256;

#[cfg(any(feature = "std", test))]
impl FrameBuffer {
    /// Copies a frame in behind [`FRAME_HEADROOM`] bytes of headroom.
    pub fn new(frame: &[u8]) -> Self {
        let mut buffer = std::vec![0u8; FRAME_HEADROOM];
        buffer.extend_from_slice(frame);
        Self {
            buffer,
            start: FRAME_HEADROOM,
        }
    }

    /// Puts another frame in, reusing the allocation (a runtime's
    /// per-frame buffer).
    pub fn reload(&mut self, frame: &[u8]) {
        self.buffer.truncate(FRAME_HEADROOM);
        self.buffer.resize(FRAME_HEADROOM, 0);
        self.buffer.extend_from_slice(frame);
        self.start = FRAME_HEADROOM;
    }

    /// The frame as it is now.
    pub fn bytes(&self) -> &[u8] {
        self.buffer.get(self.start..).unwrap_or(&[])
    }
}

#[cfg(any(feature = "std", test))]
impl Packet for FrameBuffer {
    fn len(&self) -> usize {
        self.buffer.len() - self.start
    }

    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        SlicePacket::new(self.bytes()).load(offset)
    }

    fn load_bytes(&self, offset: usize, out: &mut [u8]) -> bool {
        copy_from(self.bytes(), offset, out)
    }
}

#[cfg(any(feature = "std", test))]
impl PacketMut for FrameBuffer {
    fn adjust_head(&mut self, delta: i32) -> bool {
        let Some(start) = self.start.checked_add_signed(delta as isize) else {
            return false;
        };
        // The kernel keeps at least an Ethernet header's worth of frame.
        if start + 14 > self.buffer.len() {
            return false;
        }
        self.start = start;
        true
    }

    fn adjust_tail(&mut self, delta: i32) -> bool {
        let Some(end) = self.buffer.len().checked_add_signed(delta as isize) else {
            return false;
        };
        if end < self.start + 14 || end > FRAME_HEADROOM + MAX_FRAME_LEN {
            return false;
        }
        self.buffer.resize(end, 0);
        true
    }

    fn store<T: Copy>(&mut self, offset: usize, value: T) -> bool {
        if offset > MAX_HEADER_OFFSET {
            return false;
        }
        let size = core::mem::size_of::<T>();
        let Some(at) = self.start.checked_add(offset) else {
            return false;
        };
        let Some(bytes) = self.buffer.get_mut(at..at + size) else {
            return false;
        };
        // SAFETY: `bytes` holds exactly size_of::<T>() bytes; T is plain
        // bytes.
        unsafe { core::ptr::write_unaligned(bytes.as_mut_ptr().cast::<T>(), value) };
        true
    }
}
