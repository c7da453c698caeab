//! The frame as the programs see it through the XDP context: read-only
//! ([`XdpPacket`]) or with a head the balancing stage moves ([`XdpFrame`]).

use xdpath_core::{packet::MAX_HEADER_OFFSET, Packet, PacketMut};

/// A frame seen through the XDP context: every read is checked against
/// `data_end` after its offset is bounded by a constant, which is what the
/// verifier needs to accept variable offsets.
///
/// `length` is kept apart and read back with a volatile load: were it
/// `end - start` in plain sight, LLVM would prove a `load` bounds check
/// redundant after the parser's own length checks (`ip_end <= len`) and drop
/// it, and the verifier, which tracks only the checks it sees against
/// `data_end`, would then reject the access.
pub(crate) struct XdpPacket {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) length: usize,
}

impl XdpPacket {
    #[inline(always)]
    pub(crate) fn of(start: usize, end: usize) -> Self {
        let length = end - start;
        Self { start, end, length }
    }
}

impl Packet for XdpPacket {
    #[inline(always)]
    fn len(&self) -> usize {
        // SAFETY: a read of our own initialised field.
        unsafe { core::ptr::read_volatile(&self.length) }
    }

    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        if offset > MAX_HEADER_OFFSET {
            return None;
        }
        let at = self.start + offset;
        if at + core::mem::size_of::<T>() > self.end {
            return None;
        }
        // SAFETY: [at, at + size_of::<T>()) lies inside [data, data_end), as
        // checked just above; T is a plain-bytes wire type.
        Some(unsafe { core::ptr::read_unaligned(at as *const T) })
    }
}

/// A frame the balancing stage may grow or shrink at its head: its bounds
/// are read afresh from the context at every access (volatile, so LLVM
/// cannot carry a bounds check across a head adjustment).
pub(crate) struct XdpFrame {
    pub(crate) ctx: *mut aya_ebpf::bindings::xdp_md,
}

impl XdpFrame {
    #[inline(always)]
    fn bounds(&self) -> (usize, usize) {
        // SAFETY: ctx is the kernel's xdp_md for this run.
        unsafe {
            (
                core::ptr::read_volatile(&(*self.ctx).data) as usize,
                core::ptr::read_volatile(&(*self.ctx).data_end) as usize,
            )
        }
    }
}

impl Packet for XdpFrame {
    #[inline(always)]
    fn len(&self) -> usize {
        let (start, end) = self.bounds();
        end - start
    }

    #[inline(always)]
    fn load<T: Copy>(&self, offset: usize) -> Option<T> {
        if offset > MAX_HEADER_OFFSET {
            return None;
        }
        let (start, end) = self.bounds();
        let at = start + offset;
        if past_end::<T>(at, end) {
            return None;
        }
        // SAFETY: inside [data, data_end), checked just above.
        Some(unsafe { core::ptr::read_unaligned(at as *const T) })
    }

    /// Through `bpf_xdp_load_bytes` (kernel 5.18): one helper call, not a
    /// checked load per byte.
    #[inline(always)]
    fn load_bytes(&self, offset: usize, out: &mut [u8]) -> bool {
        let len = out.len();
        if len == 0 {
            return true;
        }
        // SAFETY: `out` holds `len` writable bytes; the helper checks the
        // frame's bounds itself.
        unsafe {
            aya_ebpf::helpers::generated::bpf_xdp_load_bytes(
                self.ctx,
                offset as u32,
                out.as_mut_ptr().cast(),
                len as u32,
            ) == 0
        }
    }
}

/// Whether a `T` at `at` would reach past `end`. A one-byte access's
/// bound goes through `black_box`: LLVM would turn `at + 1 > end` into
/// `at >= end`, from which the verifier grants no bytes. Wider accesses
/// keep their form without it, and skip the stack round trip black_box
/// costs (four instructions an access; the balancing stage's
/// encapsulation makes about ten).
#[inline(always)]
fn past_end<T>(at: usize, end: usize) -> bool {
    let reach = at + core::mem::size_of::<T>();
    if core::mem::size_of::<T>() == 1 {
        core::hint::black_box(reach) > end
    } else {
        reach > end
    }
}

impl PacketMut for XdpFrame {
    #[inline(always)]
    fn adjust_head(&mut self, delta: i32) -> bool {
        // SAFETY: the helper checks the headroom itself (kernel 4.10).
        unsafe { aya_ebpf::helpers::bpf_xdp_adjust_head(self.ctx, delta) == 0 }
    }

    #[inline(always)]
    fn adjust_tail(&mut self, delta: i32) -> bool {
        // SAFETY: the helper checks the frame's room itself (kernel 4.18).
        unsafe { aya_ebpf::helpers::bpf_xdp_adjust_tail(self.ctx, delta) == 0 }
    }

    #[inline(always)]
    fn store<T: Copy>(&mut self, offset: usize, value: T) -> bool {
        if offset > MAX_HEADER_OFFSET {
            return false;
        }
        let (start, end) = self.bounds();
        let at = start + offset;
        if past_end::<T>(at, end) {
            return false;
        }
        // SAFETY: inside [data, data_end), checked just above.
        unsafe { core::ptr::write_unaligned(at as *mut T, value) };
        true
    }
}
