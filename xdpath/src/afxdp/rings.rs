//! The four single-producer, single-consumer rings an AF_XDP socket shares
//! with the kernel (`Documentation/networking/af_xdp.rst`).
//!
//! Each ring is a mapping holding a producer index, a consumer index (both
//! `u32`, free running, wrapping) and an array of `size` entries, `size` a
//! power of two; entry `i` lives at `i & (size - 1)`. The offsets of the
//! three parts come from `getsockopt(XDP_MMAP_OFFSETS)`.
//!
//! Memory ordering follows the kernel's side (`net/xdp/xsk_queue.h`): the
//! side that produces writes entries, then publishes the producer index
//! with a *release* store; the side that consumes loads the producer index
//! with *acquire* before reading entries, and hands the slots back with a
//! *release* store of the consumer index, which the producer loads with
//! *acquire* before overwriting them.
//!
//! Indices are always masked, so no value the kernel writes into the shared
//! indices can make a read or write leave the entry array.

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::mmap::Mapping;

/// Where a ring's parts are, relative to its mapping (one ring of
/// `struct xdp_mmap_offsets`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RingOffsets {
    pub(crate) producer: u64,
    pub(crate) consumer: u64,
    pub(crate) desc: u64,
}

impl RingOffsets {
    /// Bytes to map for a ring of `size` entries of `T`, or `None` when it
    /// does not fit `usize`.
    pub(crate) fn map_len<T>(&self, size: u32) -> Option<usize> {
        let entries = usize::try_from(size).ok()?.checked_mul(size_of::<T>())?;
        usize::try_from(self.desc).ok()?.checked_add(entries)
    }
}

/// The memory behind a ring.
#[derive(Debug)]
enum Memory {
    /// The kernel's ring, mapped from the socket.
    Mapped(#[allow(dead_code, reason = "owned only to be unmapped on drop")] Mapping),
    /// Plain memory standing in for the kernel in unit tests.
    #[cfg(test)]
    Heap(Vec<u64>),
}

impl Memory {
    fn base(&mut self) -> *mut u8 {
        match self {
            Memory::Mapped(mapping) => mapping.as_ptr(),
            #[cfg(test)]
            Memory::Heap(words) => words.as_mut_ptr().cast(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Memory::Mapped(mapping) => mapping.len(),
            #[cfg(test)]
            Memory::Heap(words) => words.len() * size_of::<u64>(),
        }
    }
}

/// Why a ring's layout was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadLayout;

/// The shared state of one ring.
#[derive(Debug)]
pub(crate) struct Ring<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    entries: NonNull<T>,
    size: u32,
    mask: u32,
    /// Our view of the producer index.
    cached_producer: u32,
    /// Our view of the consumer index.
    cached_consumer: u32,
    _memory: Memory,
    _entries: PhantomData<T>,
}

// SAFETY: the ring owns its memory; the kernel is the only other party and
// it does not care which thread of ours touches the ring. `T` is plain data.
unsafe impl<T: Copy + Send> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    fn new(mut memory: Memory, offsets: RingOffsets, size: u32) -> Result<Self, BadLayout> {
        if size == 0 || !size.is_power_of_two() {
            return Err(BadLayout);
        }
        let len = memory.len();
        let index_at = |offset: u64| -> Result<usize, BadLayout> {
            let offset = usize::try_from(offset).map_err(|_| BadLayout)?;
            let end = offset.checked_add(size_of::<u32>()).ok_or(BadLayout)?;
            if end > len || !offset.is_multiple_of(align_of::<AtomicU32>()) {
                return Err(BadLayout);
            }
            Ok(offset)
        };
        let producer = index_at(offsets.producer)?;
        let consumer = index_at(offsets.consumer)?;
        let desc = usize::try_from(offsets.desc).map_err(|_| BadLayout)?;
        let end = offsets.map_len::<T>(size).ok_or(BadLayout)?;
        if end > len || !desc.is_multiple_of(align_of::<T>()) {
            return Err(BadLayout);
        }
        let base = memory.base();
        if !(base as usize).is_multiple_of(align_of::<u64>()) {
            return Err(BadLayout);
        }
        // SAFETY: the three offsets were checked to lie inside the memory
        // (with room for what lives there) and to be aligned for it; the
        // base is non-null (a mapping or a heap allocation).
        let (producer, consumer, entries) = unsafe {
            (
                NonNull::new_unchecked(base.add(producer).cast::<AtomicU32>()),
                NonNull::new_unchecked(base.add(consumer).cast::<AtomicU32>()),
                NonNull::new_unchecked(base.add(desc).cast::<T>()),
            )
        };
        let mut ring = Self {
            producer,
            consumer,
            entries,
            size,
            mask: size - 1,
            cached_producer: 0,
            cached_consumer: 0,
            _memory: memory,
            _entries: PhantomData,
        };
        ring.cached_producer = ring.producer().load(Ordering::Acquire);
        ring.cached_consumer = ring.consumer().load(Ordering::Acquire);
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: checked in `new` to be in bounds and aligned; the memory
        // lives as long as `self`; the kernel accesses it atomically too.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: `index & mask < size`, and `new` checked that `size`
        // entries fit after `entries`.
        unsafe { self.entries.as_ptr().add((index & self.mask) as usize) }
    }
}

/// A producer or a consumer ring: a [`Ring`] of its entries, made from the
/// kernel's mapping of it.
pub(crate) trait MappedRing: Sized {
    /// What a slot holds: a frame address or a descriptor.
    type Entry: Copy;

    /// The ring kind around `ring`.
    fn wrap(ring: Ring<Self::Entry>) -> Self;

    /// The kernel's ring in `mapping`.
    fn mapped(mapping: Mapping, offsets: RingOffsets, size: u32) -> Result<Self, BadLayout> {
        Ring::new(Memory::Mapped(mapping), offsets, size).map(Self::wrap)
    }
}

/// A ring user space fills and the kernel drains: the fill and TX rings.
#[derive(Debug)]
pub(crate) struct ProducerRing<T> {
    ring: Ring<T>,
}

impl<T: Copy> MappedRing for ProducerRing<T> {
    type Entry = T;

    fn wrap(ring: Ring<T>) -> Self {
        Self { ring }
    }
}

impl<T: Copy> ProducerRing<T> {
    /// Entries.
    pub(crate) fn size(&self) -> u32 {
        self.ring.size
    }

    /// Free slots, at most `size`; looks at the kernel's consumer index only
    /// when the cached view shows fewer than `wanted`.
    pub(crate) fn free(&mut self, wanted: u32) -> u32 {
        let ring = &mut self.ring;
        let free = |ring: &Ring<T>| {
            let used = ring.cached_producer.wrapping_sub(ring.cached_consumer);
            ring.size.saturating_sub(used)
        };
        if free(ring) >= wanted {
            return free(ring);
        }
        // Acquire: the kernel has finished reading the slots it released.
        ring.cached_consumer = ring.consumer().load(Ordering::Acquire);
        free(ring)
    }

    /// Writes the `offset`-th entry after the last submitted one. Callers
    /// stay below what [`Self::free`] returned.
    pub(crate) fn write(&mut self, offset: u32, value: T) {
        let slot = self
            .ring
            .slot(self.ring.cached_producer.wrapping_add(offset));
        // SAFETY: `slot` is inside the entry array; the slot is ours until
        // the producer index moves past it.
        unsafe { slot.write_volatile(value) }
    }

    /// Publishes `count` written entries.
    pub(crate) fn submit(&mut self, count: u32) {
        self.ring.cached_producer = self.ring.cached_producer.wrapping_add(count);
        // Release: the entries are visible before the index that covers them.
        self.ring
            .producer()
            .store(self.ring.cached_producer, Ordering::Release);
    }

    /// Entries submitted that the kernel has not consumed yet.
    pub(crate) fn outstanding(&mut self) -> u32 {
        let size = self.size();
        size - self.free(size)
    }
}

/// A ring the kernel fills and user space drains: the RX and completion
/// rings.
#[derive(Debug)]
pub(crate) struct ConsumerRing<T> {
    ring: Ring<T>,
}

impl<T: Copy> MappedRing for ConsumerRing<T> {
    type Entry = T;

    fn wrap(ring: Ring<T>) -> Self {
        Self { ring }
    }
}

impl<T: Copy> ConsumerRing<T> {
    /// Entries ready to read, at most `size`.
    pub(crate) fn available(&mut self) -> u32 {
        let ring = &mut self.ring;
        // Acquire: the entries are read only after the index covering them.
        ring.cached_producer = ring.producer().load(Ordering::Acquire);
        ring.cached_producer
            .wrapping_sub(ring.cached_consumer)
            .min(ring.size)
    }

    /// Reads the `offset`-th ready entry. Callers stay below what
    /// [`Self::available`] returned.
    pub(crate) fn read(&self, offset: u32) -> T {
        let slot = self
            .ring
            .slot(self.ring.cached_consumer.wrapping_add(offset));
        // SAFETY: `slot` is inside the entry array; the kernel does not
        // touch it until the consumer index moves past it.
        unsafe { slot.read_volatile() }
    }

    /// Hands `count` read entries back to the kernel.
    pub(crate) fn release(&mut self, count: u32) {
        self.ring.cached_consumer = self.ring.cached_consumer.wrapping_add(count);
        // Release: our reads of the slots happen before the kernel reuses them.
        self.ring
            .consumer()
            .store(self.ring.cached_consumer, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFSETS: RingOffsets = RingOffsets {
        producer: 0,
        consumer: 64,
        desc: 128,
    };

    fn heap(size: u32) -> Memory {
        let words = OFFSETS.map_len::<u64>(size).unwrap() / 8;
        Memory::Heap(vec![0u64; words])
    }

    /// The kernel's side of a ring over heap memory: it reads and writes
    /// the indices and entries directly.
    fn peer<T: Copy>(ring: &Ring<T>) -> (&AtomicU32, &AtomicU32) {
        (ring.producer(), ring.consumer())
    }

    #[test]
    fn producer_wraps_and_waits_for_the_consumer() {
        let mut fill = ProducerRing::<u64> {
            ring: Ring::new(heap(4), OFFSETS, 4).unwrap(),
        };
        // Start near the wrap of the u32 indices.
        let start = u32::MAX - 1;
        peer(&fill.ring).0.store(start, Ordering::Relaxed);
        peer(&fill.ring).1.store(start, Ordering::Relaxed);
        fill.ring.cached_producer = start;
        fill.ring.cached_consumer = start;

        assert_eq!(fill.free(4), 4);
        for i in 0..4 {
            fill.write(i, 100 + u64::from(i));
        }
        fill.submit(4);
        assert_eq!(
            peer(&fill.ring).0.load(Ordering::Relaxed),
            start.wrapping_add(4)
        );
        assert_eq!(fill.free(1), 0);
        assert_eq!(fill.outstanding(), 4);
        // The kernel reads the entries in order, then releases two.
        let values: Vec<u64> = (0..4)
            // SAFETY: the slots are inside the ring; the test is its only user.
            .map(|i| unsafe { fill.ring.slot(start.wrapping_add(i)).read() })
            .collect();
        assert_eq!(values, [100, 101, 102, 103]);
        peer(&fill.ring)
            .1
            .store(start.wrapping_add(2), Ordering::Release);
        assert_eq!(fill.free(1), 2);
        assert_eq!(fill.outstanding(), 2);
    }

    #[test]
    fn consumer_reads_what_was_published_and_clamps_bogus_indices() {
        let mut rx = ConsumerRing::<libc::xdp_desc> {
            ring: Ring::new(heap(8 * 2), OFFSETS, 8).unwrap(),
        };
        assert_eq!(rx.available(), 0);
        for i in 0..3u32 {
            // SAFETY: the test is the only user of the heap ring.
            unsafe {
                rx.ring.slot(i).write(libc::xdp_desc {
                    addr: u64::from(i) * 2048 + 256,
                    len: 60 + i,
                    options: 0,
                })
            };
        }
        peer(&rx.ring).0.store(3, Ordering::Release);
        assert_eq!(rx.available(), 3);
        assert_eq!(rx.read(2).len, 62);
        rx.release(3);
        assert_eq!(peer(&rx.ring).1.load(Ordering::Relaxed), 3);
        assert_eq!(rx.available(), 0);
        // A producer index far ahead (a confused peer) is clamped to the
        // ring, and reads stay inside it.
        peer(&rx.ring).0.store(3 + 1000, Ordering::Release);
        assert_eq!(rx.available(), 8);
        let _ = rx.read(7);
    }

    #[test]
    fn bad_layouts_are_refused() {
        for (offsets, size) in [
            (OFFSETS, 3),
            (OFFSETS, 0),
            (
                RingOffsets {
                    producer: 2,
                    ..OFFSETS
                },
                4,
            ),
            (
                RingOffsets {
                    desc: 1 << 20,
                    ..OFFSETS
                },
                4,
            ),
            (
                RingOffsets {
                    consumer: u64::MAX,
                    ..OFFSETS
                },
                4,
            ),
        ] {
            assert!(
                Ring::<u64>::new(heap(4), offsets, size).is_err(),
                "{offsets:?} {size}"
            );
        }
    }
}
