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
}
