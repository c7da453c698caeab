//! Element and batch commands on one map by its descriptor, for maps of
//! any type and size (the image of [`super::image`] reads and writes every
//! map of a program; `KernelMaps` knows only the filter's shared ones).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use xdpath::bpf_syscall::{bpf, command, BatchAttr, ElementAttr};

/// Entries per batch lookup: a few calls for a Maglev ring table.
const CHUNK: u32 = 8192;

/// `Ok(false)` for ENOENT (no such key, no key after, end of the map).
fn found(result: io::Result<libc::c_long>) -> io::Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(error) => Err(error),
    }
}

/// One map: its descriptor and sizes (`value_size` is what a lookup
/// writes: for per-CPU maps, one 8-byte-aligned value per possible CPU).
pub(super) struct RawMap {
    fd: OwnedFd,
    pub(super) key_size: usize,
    pub(super) value_size: usize,
}

impl RawMap {
    pub(super) fn new(fd: OwnedFd, key_size: usize, value_size: usize) -> Self {
        Self {
            fd,
            key_size,
            value_size,
        }
    }

    /// The map's descriptor.
    pub(super) fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// # Safety
    ///
    /// `key` and `value` point at buffers of the map's key and value sizes
    /// (or are null where `command` takes none), writable where it writes.
    unsafe fn element(
        &self,
        command: libc::c_long,
        key: *const u8,
        value: *mut u8,
    ) -> io::Result<libc::c_long> {
        let mut attr = ElementAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            pad: 0,
            key: key as u64,
            value: value as u64,
            flags: 0,
        };
        // SAFETY: the element commands' attr; pointers as the caller said.
        unsafe { bpf(command, &mut attr) }
    }

    /// The value at `key`, if there is one.
    pub(super) fn lookup(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        self.check_key(key)?;
        let mut value = vec![0u8; self.value_size];
        // SAFETY: a key of the key size; a writable value of the value size.
        let result =
            unsafe { self.element(command::MAP_LOOKUP_ELEM, key.as_ptr(), value.as_mut_ptr()) };
        Ok(found(result)?.then_some(value))
    }

    /// Writes `value` at `key`.
    pub(super) fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.check_key(key)?;
        if value.len() != self.value_size {
            return Err(io::Error::other(format!(
                "a value of {} bytes for a map of {}",
                value.len(),
                self.value_size
            )));
        }
        // SAFETY: buffers of the map's sizes; the update only reads them.
        let value = value.as_ptr().cast_mut();
        unsafe { self.element(command::MAP_UPDATE_ELEM, key.as_ptr(), value) }.map(drop)
    }

    /// Deletes `key`; a missing key is not an error.
    pub(super) fn delete(&self, key: &[u8]) -> io::Result<()> {
        self.check_key(key)?;
        // SAFETY: a key of the key size; no value.
        let result =
            unsafe { self.element(command::MAP_DELETE_ELEM, key.as_ptr(), std::ptr::null_mut()) };
        found(result).map(drop)
    }

    /// Every key, listed before anything is changed.
    pub(super) fn keys(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        loop {
            let previous = keys.last().map_or(std::ptr::null(), |key| key.as_ptr());
            let mut next = vec![0u8; self.key_size];
            // SAFETY: the previous key (or null for the first) and a
            // writable next key, both of the key size.
            let result =
                unsafe { self.element(command::MAP_GET_NEXT_KEY, previous, next.as_mut_ptr()) };
            if !found(result)? {
                return Ok(keys);
            }
            keys.push(next);
        }
    }

    /// Entries `0..count` of an array map, values back to back, read
    /// `CHUNK` at a time (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6+).
    pub(super) fn read_array(&self, count: u32) -> io::Result<Vec<u8>> {
        let mut values = vec![0u8; count as usize * self.value_size];
        let mut first = 0u32;
        while first < count {
            let chunk = CHUNK.min(count - first);
            let before = first.wrapping_sub(1);
            let mut next = 0u32;
            let mut keys = vec![0u32; chunk as usize];
            let offset = first as usize * self.value_size;
            let out = values
                .get_mut(offset..)
                .ok_or_else(|| io::Error::other("the values buffer is short"))?;
            let mut attr = BatchAttr {
                in_batch: if first == 0 {
                    0
                } else {
                    &before as *const u32 as u64
                },
                out_batch: &mut next as *mut u32 as u64,
                keys: keys.as_mut_ptr() as u64,
                values: out.as_mut_ptr() as u64,
                count: chunk,
                map_fd: self.fd.as_raw_fd() as u32,
                elem_flags: 0,
                flags: 0,
            };
            // SAFETY: `chunk` writable keys (u32, an array's) and values
            // (the rest of `values` holds at least `chunk` of them); the
            // tokens are array indices.
            found(unsafe { bpf(command::MAP_LOOKUP_BATCH, &mut attr) })?;
            if attr.count != chunk {
                return Err(io::Error::other(format!(
                    "read {} of entries {first}..{}",
                    attr.count,
                    first + chunk
                )));
            }
            first += chunk;
        }
        Ok(values)
    }

    fn check_key(&self, key: &[u8]) -> io::Result<()> {
        if key.len() == self.key_size {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "a key of {} bytes for a map of {}",
            key.len(),
            self.key_size
        )))
    }
}
