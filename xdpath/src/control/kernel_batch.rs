//! Whole-array reads and writes in one `bpf` call each
//! (`BPF_MAP_LOOKUP_BATCH` / `BPF_MAP_UPDATE_BATCH`, Linux 5.6+), for the
//! port bitmaps (1,024 words) and the Maglev rings (65,537 slots), which
//! element by element took thousands of system calls a change.

use std::io;

use super::apply::ApplyError;
use super::kernel::KernelMaps;
use crate::bpf_syscall::{bpf, command, BatchAttr};

/// Entries per batch call: large enough that a change costs a few calls,
/// small enough that the buffers stay small.
const CHUNK: usize = 8192;

impl BatchAttr {
    /// A batch over `count` entries of the map `map_fd`, from the start
    /// of the map (no position token in, none out), its keys and values
    /// at `keys` and `values`.
    fn new(map_fd: u32, keys: *const u8, values: *const u8, count: usize) -> Self {
        Self {
            in_batch: 0,
            out_batch: 0,
            keys: keys as u64,
            values: values as u64,
            count: count as u32,
            map_fd,
            elem_flags: 0,
            flags: 0,
        }
    }
}

/// One batch call.
///
/// # Safety
///
/// `attr`'s pointers refer to live buffers of `attr.count` keys and values
/// of the map's sizes (writable for the lookups) and to position tokens
/// of the map's kind.
unsafe fn batch(command: libc::c_long, attr: &mut BatchAttr) -> io::Result<()> {
    // SAFETY: `attr` is the bpf_attr of the batch commands, valid as the
    // caller promised.
    unsafe { bpf(command, attr) }.map(drop)
}

/// Whether a batch lookup reached the end of the map: ENOENT, which the
/// lookups return with the entries read before the end.
fn reached_end(result: io::Result<()>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(false),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(true),
        Err(error) => Err(error),
    }
}

impl KernelMaps {
    /// Reads entries `0..count` of an array map whose values are
    /// `value_size` bytes (not per-CPU), in batches.
    pub fn read_array(
        &self,
        map: &'static str,
        count: u32,
        value_size: usize,
    ) -> Result<Vec<u8>, ApplyError> {
        self.read_array_from(map, 0, count, value_size)
    }

    /// Reads entries `first..first + count` of an array map.
    pub(crate) fn read_array_from(
        &self,
        map: &'static str,
        first: u32,
        count: u32,
        value_size: usize,
    ) -> Result<Vec<u8>, ApplyError> {
        let mut keys = vec![0u32; count as usize];
        let mut values = vec![0u8; count as usize * value_size];
        let mut next = 0u32;
        // The walk starts after the key in `in_batch`: the one before
        // `first` (none for 0).
        let before = first.wrapping_sub(1);
        let mut attr = BatchAttr {
            in_batch: if first == 0 {
                0
            } else {
                &before as *const u32 as u64
            },
            out_batch: &mut next as *mut u32 as u64,
            ..BatchAttr::new(
                self.fd(map),
                keys.as_mut_ptr().cast::<u8>(),
                values.as_mut_ptr(),
                count as usize,
            )
        };
        // SAFETY: `count` writable keys and values of the array's sizes;
        // the tokens are array indices (u32). Reaching the end is fine:
        // all that matters is that `count` entries were read.
        reached_end(unsafe { batch(command::MAP_LOOKUP_BATCH, &mut attr) })
            .map_err(|source| ApplyError::Map { map, source })?;
        if attr.count != count {
            return Err(ApplyError::Map {
                map,
                source: io::Error::other(format!("read {} of {count} entries", attr.count)),
            });
        }
        Ok(values)
    }

    /// Writes `values` (whole entries of `value_size` bytes) to an array
    /// map from index `first` on.
    pub(crate) fn write_array(
        &self,
        map: &'static str,
        first: u32,
        values: &[u8],
        value_size: usize,
    ) -> Result<(), ApplyError> {
        let count = values.len() / value_size.max(1);
        let keys: Vec<u32> = (first..).take(count).collect();
        let (keys_at, values_at) = (keys.as_ptr().cast::<u8>(), values.as_ptr());
        let mut attr = BatchAttr::new(self.fd(map), keys_at, values_at, count);
        // SAFETY: `count` keys and values of the array's sizes, which the
        // update only reads.
        unsafe { batch(command::MAP_UPDATE_BATCH, &mut attr) }
            .map_err(|source| ApplyError::Map { map, source })?;
        if attr.count as usize != count {
            return Err(ApplyError::Map {
                map,
                source: io::Error::other(format!("wrote {} of {count} entries", attr.count)),
            });
        }
        Ok(())
    }

    /// Writes `count` entries of a hash map (keys and values laid end to
    /// end) in batches.
    pub(crate) fn write_hash(
        &self,
        map: &'static str,
        keys: &[u8],
        values: &[u8],
        count: usize,
    ) -> Result<(), ApplyError> {
        if count == 0 {
            return Ok(());
        }
        let (key_size, value_size) = (keys.len() / count, values.len() / count);
        for start in (0..count).step_by(CHUNK) {
            let chunk = CHUNK.min(count - start);
            let keys_at = keys[start * key_size..].as_ptr();
            let values_at = values[start * value_size..].as_ptr();
            let mut attr = BatchAttr::new(self.fd(map), keys_at, values_at, chunk);
            // SAFETY: `chunk` keys and values of the map's sizes from
            // `start` on, which the update only reads.
            unsafe { batch(command::MAP_UPDATE_BATCH, &mut attr) }
                .map_err(|source| ApplyError::Map { map, source })?;
        }
        Ok(())
    }

    /// Every entry of a hash map, keys and values laid end to end, read in
    /// batches (a million rule prefixes in ~130 calls).
    pub(crate) fn read_hash(
        &self,
        map: &'static str,
        key_size: usize,
        value_size: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), ApplyError> {
        let (mut all_keys, mut all_values) = (Vec::new(), Vec::new());
        let mut keys = vec![0u8; CHUNK * key_size];
        let mut values = vec![0u8; CHUNK * value_size];
        // Position tokens; a u64 holds the hash map's bucket number.
        let (mut position, mut next) = (0u64, 0u64);
        let mut first = true;
        loop {
            let mut attr = BatchAttr {
                in_batch: if first {
                    0
                } else {
                    &position as *const u64 as u64
                },
                out_batch: &mut next as *mut u64 as u64,
                ..BatchAttr::new(self.fd(map), keys.as_mut_ptr(), values.as_mut_ptr(), CHUNK)
            };
            // SAFETY: CHUNK writable keys and values of the map's sizes;
            // the tokens are u64, which hold a hash map's bucket number.
            let done = reached_end(unsafe { batch(command::MAP_LOOKUP_BATCH, &mut attr) })
                .map_err(|source| ApplyError::Map { map, source })?;
            let count = (attr.count as usize).min(CHUNK);
            all_keys.extend_from_slice(&keys[..count * key_size]);
            all_values.extend_from_slice(&values[..count * value_size]);
            if done {
                return Ok((all_keys, all_values));
            }
            position = next;
            first = false;
        }
    }

    /// Empties a hash map: its entries are read and deleted in batches.
    pub(crate) fn clear_hash(
        &self,
        map: &'static str,
        key_size: usize,
        value_size: usize,
    ) -> Result<(), ApplyError> {
        let mut keys = vec![0u8; CHUNK * key_size];
        let mut values = vec![0u8; CHUNK * value_size];
        loop {
            // A position token; u64 holds the hash map's bucket number.
            let mut position = 0u64;
            let mut attr = BatchAttr {
                out_batch: &mut position as *mut u64 as u64,
                ..BatchAttr::new(self.fd(map), keys.as_mut_ptr(), values.as_mut_ptr(), CHUNK)
            };
            // Each call starts from the first bucket again: the entries
            // before it are gone.
            // SAFETY: CHUNK writable keys and values of the map's sizes;
            // the token is a u64.
            let deleting = unsafe { batch(command::MAP_LOOKUP_AND_DELETE_BATCH, &mut attr) };
            let done = reached_end(deleting).map_err(|source| ApplyError::Map { map, source })?;
            if done || attr.count == 0 {
                return Ok(());
            }
        }
    }

    /// Zeroes an array's entries from index 0 up to the first all-zero
    /// one (of at most `limit` entries): one read and one write per chunk.
    pub(crate) fn clear_array_head(
        &self,
        map: &'static str,
        value_size: usize,
        limit: u32,
    ) -> Result<(), ApplyError> {
        let mut start = 0u32;
        while start < limit {
            let count = (CHUNK as u32).min(limit - start);
            let values = self.read_array_from(map, start, count, value_size)?;
            let used = values
                .chunks_exact(value_size)
                .take_while(|entry| entry.iter().any(|byte| *byte != 0))
                .count();
            if used > 0 {
                self.write_array(map, start, &vec![0u8; used * value_size], value_size)?;
            }
            if used < count as usize {
                return Ok(());
            }
            start += count;
        }
        Ok(())
    }
}
