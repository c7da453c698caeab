//! [`FilterTarget`](super::apply::FilterTarget) over the kernel's filter maps: the pinned maps of this
//! namespace (`/sys/fs/bpf/xdpath/<netns>/:shared/<MAP>`), or the maps of a
//! [`LoadedProgram`] (tests).
//!
//! Element operations are plain `bpf(2)` calls on the map descriptors. The
//! rule prefixes (hash maps `PREFIXES_0/1`, one probe per listed length)
//! take up to a million updates per `filter load` and go in batches
//! (`kernel_batch`); the blocklist and the management and reflection
//! prefixes are LPM tries, which have no batch operations, so each is one
//! bare syscall with the key built on the stack.

mod target;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use xdpath_core::abi;

use xdpath_core::filter::{
    AddressLimit, AddressLimitKey, BlockEntry, FilterConfig, PrefixHashKey, PrefixKey,
    PrefixLengths, RateLimit, Rule, RuleChain, TunnelPrefixKey,
};

use super::apply::ApplyError;
use crate::bpf_syscall::{bpf, command, ElementAttr};
use crate::dataplane::{self, LoadedProgram};

/// Bytes of a plain `#[repr(C)]` value without padding.
pub(crate) trait PlainBytes: Copy {
    fn bytes(&self) -> &[u8] {
        // SAFETY: implementors are #[repr(C)] structs of integers and byte
        // arrays with no padding (checked by their sizes below), so every
        // byte is initialised.
        unsafe {
            std::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                std::mem::size_of::<Self>(),
            )
        }
    }
}
/// Values read back as bytes from a map.
pub(crate) trait FromPlainBytes: PlainBytes + Default {
    /// The value of exactly `size_of::<Self>()` bytes; `None` for another
    /// length.
    fn from_plain_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != std::mem::size_of::<Self>() {
            return None;
        }
        let mut value = Self::default();
        // SAFETY: implementors are plain structs of integers and byte
        // arrays (every bit pattern is a value), and `bytes` is exactly
        // their size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (&mut value as *mut Self).cast::<u8>(),
                bytes.len(),
            );
        }
        Some(value)
    }
}
impl PlainBytes for AddressLimit {}
impl PlainBytes for AddressLimitKey {}
impl FromPlainBytes for AddressLimit {}
impl FromPlainBytes for AddressLimitKey {}
impl PlainBytes for Rule {}
impl PlainBytes for RuleChain {}
impl PlainBytes for FilterConfig {}
impl PlainBytes for BlockEntry {}
impl PlainBytes for RateLimit {}
impl PlainBytes for u64 {}
impl PlainBytes for u32 {}
const _: () = assert!(std::mem::size_of::<Rule>() == 40);
const _: () = assert!(std::mem::size_of::<RuleChain>() == 32);
const _: () = assert!(std::mem::size_of::<FilterConfig>() == 16);
const _: () = assert!(std::mem::size_of::<BlockEntry>() == 16);
const _: () = assert!(std::mem::size_of::<RateLimit>() == 64);

/// The kernel's `bpf_lpm_trie_key` with a 16-byte address.
pub(crate) fn trie_key(key: &PrefixKey) -> [u8; 20] {
    let mut bytes = [0u8; 20];
    bytes[..4].copy_from_slice(&key.prefix_len.to_ne_bytes());
    bytes[4..].copy_from_slice(&key.address);
    bytes
}

/// The bytes of a `TUNNEL_BLOCKLIST` key: the prefix length, native order,
/// then the VNI and the address.
pub(crate) fn tunnel_trie_key(key: &TunnelPrefixKey) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    let data = key.data();
    let length = key.prefix_len.to_ne_bytes();
    for (slot, byte) in bytes.iter_mut().zip(length.iter().chain(&data)) {
        *slot = *byte;
    }
    bytes
}

/// Whether an element command found its key: ENOENT (no such key, or no
/// key after the one given) is `false`, not an error.
fn found(map: &'static str, result: io::Result<()>) -> Result<bool, ApplyError> {
    match result {
        Ok(()) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(source) => Err(ApplyError::Map { map, source }),
    }
}

/// The filter maps of one namespace or one loaded program.
pub struct KernelMaps {
    fds: Vec<OwnedFd>,
    cpus: usize,
}

/// A map entry as bytes: its key and its value.
pub(crate) type RawEntry = (Vec<u8>, Vec<u8>);

impl KernelMaps {
    /// Opens this namespace's pinned filter maps, creating them first if
    /// they are not there. The flag says whether they were just created.
    pub fn open_shared() -> Result<(Self, bool), ApplyError> {
        let dir = dataplane::shared_dir()?;
        let all_there =
            |dir: &std::path::Path| abi::SHARED_MAPS.iter().all(|name| dir.join(name).exists());
        let mut created = false;
        if !all_there(&dir) {
            // Made under the namespace's lock, looked for again once it is
            // held: two makers at once (the daemon's sample reader and an
            // attach) both found them missing and one failed to pin
            // ("pinning failed", EEXIST).
            let _lock = super::lock::lock_state_dir().map_err(|error| ApplyError::Map {
                map: "shared",
                source: std::io::Error::other(error.to_string()),
            })?;
            if !all_there(&dir) {
                LoadedProgram::create_shared_maps()?;
                created = true;
            }
        }
        Ok((Self::open_pinned(&dir)?, created))
    }

    /// Opens this namespace's pinned maps if they are there; creates
    /// nothing (for commands that only read).
    pub fn open_existing() -> Result<Option<Self>, ApplyError> {
        let dir = dataplane::shared_dir()?;
        if !abi::SHARED_MAPS.iter().all(|name| dir.join(name).exists()) {
            return Ok(None);
        }
        Self::open_pinned(&dir).map(Some)
    }

    fn open_pinned(dir: &std::path::Path) -> Result<Self, ApplyError> {
        let mut fds = Vec::with_capacity(abi::SHARED_MAPS.len());
        for name in abi::SHARED_MAPS {
            let data =
                aya::maps::MapData::from_pin(dir.join(name)).map_err(|error| ApplyError::Map {
                    map: name,
                    source: io::Error::other(error),
                })?;
            let fd = std::os::fd::AsFd::as_fd(data.fd())
                .try_clone_to_owned()
                .map_err(|source| ApplyError::Map { map: name, source })?;
            fds.push(fd);
        }
        Self::with_fds(fds)
    }

    /// The filter maps of a loaded program.
    pub fn of_program(program: &LoadedProgram) -> Result<Self, ApplyError> {
        let fds = abi::SHARED_MAPS
            .iter()
            .map(|name| program.map_fd(name))
            .collect::<Result<Vec<_>, _>>()?;
        Self::with_fds(fds)
    }

    fn with_fds(fds: Vec<OwnedFd>) -> Result<Self, ApplyError> {
        let cpus = aya::util::nr_cpus().map_err(|(what, source)| ApplyError::Map {
            map: abi::map::RULE_HITS,
            source: io::Error::new(source.kind(), format!("{what}: {source}")),
        })?;
        Ok(Self { fds, cpus })
    }

    pub(crate) fn fd(&self, name: &'static str) -> u32 {
        abi::SHARED_MAPS
            .iter()
            .position(|known| *known == name)
            .and_then(|index| self.fds.get(index))
            .map_or(u32::MAX, |fd| fd.as_raw_fd() as u32)
    }

    /// One element command on `map`.
    ///
    /// # Safety
    ///
    /// `key` and `value` point at buffers of the map's key and value sizes
    /// (or are null where the command takes none), alive for the call;
    /// `value` is writable where the command writes into it (a lookup's
    /// value, the next key).
    unsafe fn element(
        &self,
        command: libc::c_long,
        map: &'static str,
        key: *const u8,
        value: *mut u8,
    ) -> io::Result<()> {
        let mut attr = ElementAttr {
            map_fd: self.fd(map),
            pad: 0,
            key: key as u64,
            value: value as u64,
            flags: 0,
        };
        // SAFETY: `attr` is the bpf_attr of the element commands; its
        // pointers are the caller's, valid as `element` requires.
        unsafe { bpf(command, &mut attr) }.map(drop)
    }

    /// Writes `value` at `key` of `map` (raw bytes, the map's sizes).
    pub fn update(&self, map: &'static str, key: &[u8], value: &[u8]) -> Result<(), ApplyError> {
        // SAFETY: the caller's buffers, of the map's sizes; the update only
        // reads the value.
        let updated = unsafe {
            let value = value.as_ptr().cast_mut();
            self.element(command::MAP_UPDATE_ELEM, map, key.as_ptr(), value)
        };
        updated.map_err(|source| ApplyError::Map { map, source })
    }

    /// Deletes `key` from `map`; a missing key is not an error.
    pub fn delete(&self, map: &'static str, key: &[u8]) -> Result<(), ApplyError> {
        // SAFETY: the caller's key, of the map's key size; no value.
        let deleted = unsafe {
            let no_value = std::ptr::null_mut();
            self.element(command::MAP_DELETE_ELEM, map, key.as_ptr(), no_value)
        };
        found(map, deleted).map(drop)
    }

    /// Reads `key` of `map` into `value`; false when the key is absent.
    pub fn lookup(
        &self,
        map: &'static str,
        key: &[u8],
        value: &mut [u8],
    ) -> Result<bool, ApplyError> {
        // SAFETY: the caller's buffers, of the map's sizes; the value is
        // writable.
        let looked_up = unsafe {
            let value = value.as_mut_ptr();
            self.element(command::MAP_LOOKUP_ELEM, map, key.as_ptr(), value)
        };
        found(map, looked_up)
    }

    /// Every key of a hash map or trie with its value: one
    /// `BPF_MAP_GET_NEXT_KEY` and one lookup an entry (tries have no batch
    /// operations).
    pub(crate) fn entries(
        &self,
        map: &'static str,
        key_size: usize,
        value_size: usize,
    ) -> Result<Vec<RawEntry>, ApplyError> {
        let mut entries = Vec::new();
        let mut previous: Option<Vec<u8>> = None;
        while let Some(key) = self.next_key(map, previous.as_deref(), key_size)? {
            let mut value = vec![0u8; value_size];
            // A key deleted between the two calls is simply not listed.
            if self.lookup(map, &key, &mut value)? {
                entries.push((key.clone(), value));
            }
            previous = Some(key);
        }
        Ok(entries)
    }

    /// The key after `previous` (the first key when `None`), read into a
    /// buffer of the map's key size.
    pub fn next_key(
        &self,
        map: &'static str,
        previous: Option<&[u8]>,
        key_size: usize,
    ) -> Result<Option<Vec<u8>>, ApplyError> {
        let mut next = vec![0u8; key_size];
        // No key given: the first one.
        let previous = previous.map_or(std::ptr::null(), <[u8]>::as_ptr);
        // SAFETY: `previous` is the caller's key (or null) and `next` a
        // writable buffer, both of the key size the caller gives.
        let listed = unsafe {
            let next = next.as_mut_ptr();
            self.element(command::MAP_GET_NEXT_KEY, map, previous, next)
        };
        Ok(found(map, listed)?.then_some(next))
    }

    /// Deletes every entry of a hash map or trie. The keys are listed first,
    /// then deleted: restarting the walk from the first key after each
    /// delete would rescan a hash table's empty buckets every time (quadratic
    /// for a million prefixes).
    pub(crate) fn clear_map(&self, map: &'static str, key_size: usize) -> Result<(), ApplyError> {
        let mut keys = Vec::new();
        let mut previous: Option<Vec<u8>> = None;
        while let Some(key) = self.next_key(map, previous.as_deref(), key_size)? {
            keys.push(key.clone());
            previous = Some(key);
        }
        for key in &keys {
            self.delete(map, key)?;
        }
        Ok(())
    }

    /// The sum over CPUs of slot `index` of a per-CPU array of `u64`.
    pub fn per_cpu_sum(&self, map: &'static str, index: u32) -> Result<u64, ApplyError> {
        let mut values = vec![0u8; 8 * self.cpus];
        if !self.lookup(map, &index.to_ne_bytes(), &mut values)? {
            return Ok(0);
        }
        Ok(values
            .chunks_exact(8)
            .map(|chunk| {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                u64::from_ne_bytes(word)
            })
            .fold(0u64, u64::wrapping_add))
    }

    fn per_cpu_zero(&self, map: &'static str, index: u32) -> Result<(), ApplyError> {
        self.per_cpu_zero_words(map, index, 1)
    }

    /// Zeroes entry `index` of a per-CPU array whose values are `words`
    /// 64-bit words.
    pub(crate) fn per_cpu_zero_words(
        &self,
        map: &'static str,
        index: u32,
        words: usize,
    ) -> Result<(), ApplyError> {
        self.update(map, &index.to_ne_bytes(), &vec![0u8; 8 * words * self.cpus])
    }

    /// Entry `index` of a per-CPU array of `words` 64-bit words, each word
    /// summed over the CPUs.
    pub(crate) fn per_cpu_words(
        &self,
        map: &'static str,
        index: u32,
        words: usize,
    ) -> Result<Vec<u64>, ApplyError> {
        let mut values = vec![0u8; 8 * words * self.cpus];
        let mut sums = vec![0u64; words];
        if !self.lookup(map, &index.to_ne_bytes(), &mut values)? {
            return Ok(sums);
        }
        for cpu in values.chunks_exact(8 * words) {
            for (sum, chunk) in sums.iter_mut().zip(cpu.chunks_exact(8)) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                *sum = sum.wrapping_add(u64::from_ne_bytes(word));
            }
        }
        Ok(sums)
    }
}

pub(crate) fn buffer_maps(buffer: u32) -> [&'static str; 4] {
    if buffer == 0 {
        [
            abi::map::RULES_0,
            abi::map::CHAINS_0,
            abi::map::PREFIXES_0,
            abi::map::PREFIX_LENGTHS_0,
        ]
    } else {
        [
            abi::map::RULES_1,
            abi::map::CHAINS_1,
            abi::map::PREFIXES_1,
            abi::map::PREFIX_LENGTHS_1,
        ]
    }
}

/// The bytes of a rule-prefix hash key.
pub(crate) fn hash_key(key: &PrefixKey, direction: u8) -> [u8; 24] {
    let hashed = PrefixHashKey::new(&key.address, key.prefix_len as u8, direction);
    let mut bytes = [0u8; 24];
    bytes[..16].copy_from_slice(&hashed.address);
    bytes[16] = hashed.prefix_len;
    bytes[17] = hashed.direction;
    bytes
}

pub(crate) const LENGTHS_SIZE: usize = std::mem::size_of::<PrefixLengths>();
const _: () = assert!(LENGTHS_SIZE == 4 + 32 + 4 + 32 * 16);

pub(crate) fn lengths_bytes(lengths: &PrefixLengths) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(LENGTHS_SIZE);
    bytes.extend_from_slice(&lengths.count.to_ne_bytes());
    bytes.extend_from_slice(&lengths.lengths);
    bytes.extend_from_slice(&lengths.any_chain_plus_one.to_ne_bytes());
    for mask in &lengths.masks {
        bytes.extend_from_slice(&mask[0].to_ne_bytes());
        bytes.extend_from_slice(&mask[1].to_ne_bytes());
    }
    bytes
}

pub(crate) use target::prefix_map;

/// CLOCK_MONOTONIC in ns: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_now_ns() -> u64 {
    // SAFETY: clock_gettime writes into the zeroed timespec we pass.
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

/// When some of this namespace's shared maps are pinned and others are
/// not (a change that replaces one killed between unpinning the old and
/// pinning the new, or a pin removed by hand; the programs may still run
/// on the old maps): a line saying which, for the read-backs, which then
/// cannot read the kernel at all. `None` when all or none are pinned.
pub fn partly_pinned_line() -> Option<String> {
    let dir = dataplane::shared_dir().ok()?;
    let missing: Vec<&str> = abi::SHARED_MAPS
        .into_iter()
        .filter(|name| !dir.join(name).exists())
        .collect();
    if missing.is_empty() || missing.len() == abi::SHARED_MAPS.len() {
        return None;
    }
    Some(format!(
        "this namespace's maps are not all pinned (missing: {}), so what the kernel enforces cannot be read back; `xdpath state check --repair` pins them (an interface whose programs hold others is reloaded)",
        missing.join(", ")
    ))
}
