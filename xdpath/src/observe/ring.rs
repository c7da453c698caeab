//! Reading the data path's sample and capture rings, and setting the
//! capture filter.
//!
//! Each ring has one reader at a time (records read are gone for everyone
//! else): a reader takes an exclusive lock in the namespace's state
//! directory, so a second `xdpath export` or a CLI beside `xdpathd` gets a
//! clear error instead of silently stealing half the records.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::time::Duration;
use xdpath_core::abi;

use aya::maps::{Array, Map, MapData, PerCpuArray, RingBuf};
use aya::Pod;
use xdpath_core::observe::{CaptureConfig, RecordMeta, LOSS_CAPTURE, LOSS_SAMPLES};

use super::Sample;
use crate::control::kernel::KernelMaps;
use crate::control::state;

/// Errors of the ring readers.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// The rings could not be opened or created.
    #[error("cannot open the data path's {map} map: {detail}")]
    Map {
        /// The map.
        map: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// Another process reads this ring.
    #[error(
        "the {ring} ring is already read by another process (pid {holder}): \
         stop it, or ask it (xdpathd serves samples through its API)"
    )]
    Busy {
        /// The ring.
        ring: &'static str,
        /// The process holding the reader lock, as it wrote itself there.
        holder: String,
    },
    /// A file in the state directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Which ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    /// 1-in-N samples of every sampling interface.
    Samples,
    /// Frames matching the capture filter.
    Capture,
}

impl Ring {
    fn map_name(self) -> &'static str {
        match self {
            Self::Samples => abi::map::SAMPLES,
            Self::Capture => abi::map::CAPTURE_RING,
        }
    }

    fn lock_name(self) -> &'static str {
        match self {
            Self::Samples => "samples.reader",
            Self::Capture => "capture.reader",
        }
    }

    fn loss_slot(self) -> u32 {
        match self {
            Self::Samples => LOSS_SAMPLES,
            Self::Capture => LOSS_CAPTURE,
        }
    }
}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodCapture(CaptureConfig);
// SAFETY: CaptureConfig is #[repr(C)]: four bytes and three u32s, no padding.
unsafe impl Pod for PodCapture {}

/// The one reader of a ring.
pub struct RingReader {
    ring: RingBuf<MapData>,
    which: Ring,
    loss: PerCpuArray<MapData, u64>,
    /// Unix time minus monotonic time, ns: converts record timestamps.
    clock_offset_ns: i128,
    _lock: File,
}

impl RingReader {
    /// Opens `which` ring of this namespace (creating the shared maps if no
    /// interface is attached yet) and takes its reader lock.
    pub fn open(which: Ring) -> Result<Self, RingError> {
        let lock = take_reader_lock(which)?;
        let shared = KernelMaps::open_shared().map_err(|error| RingError::Map {
            map: "shared",
            detail: error.to_string(),
        })?;
        drop(shared);
        let dir = crate::dataplane::shared_dir().map_err(|error| RingError::Map {
            map: "shared",
            detail: error.to_string(),
        })?;
        let open = |name: &'static str| {
            MapData::from_pin(dir.join(name)).map_err(|error| RingError::Map {
                map: name,
                detail: error.to_string(),
            })
        };
        let ring = RingBuf::try_from(Map::RingBuf(open(which.map_name())?)).map_err(|error| {
            RingError::Map {
                map: which.map_name(),
                detail: error.to_string(),
            }
        })?;
        let loss = PerCpuArray::try_from(Map::PerCpuArray(open(abi::map::OBSERVE_LOSS)?)).map_err(
            |error| RingError::Map {
                map: abi::map::OBSERVE_LOSS,
                detail: error.to_string(),
            },
        )?;
        Ok(Self {
            ring,
            which,
            loss,
            clock_offset_ns: clock_offset_ns(),
            _lock: lock,
        })
    }

    /// The next record, if one is waiting. Records that do not parse
    /// (which the kernel never writes) are skipped.
    pub fn try_next(&mut self) -> Option<Sample> {
        loop {
            let item = self.ring.next()?;
            let Some((meta, data)) = RecordMeta::parse(&item) else {
                continue;
            };
            let unix_ns = (i128::from(meta.timestamp_ns) + self.clock_offset_ns).max(0) as u64;
            return Some(Sample {
                meta,
                unix_ns,
                data: data.to_vec(),
            });
        }
    }

    /// Waits up to `timeout` for the ring to have records; true if it has.
    pub fn wait(&self, timeout: Duration) -> bool {
        poll_readable(self.ring.as_raw_fd(), timeout)
    }

    /// The ring's descriptor, to wait on it without holding the reader.
    pub fn raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    /// Every waiting record, up to `limit`.
    pub fn drain(&mut self, limit: usize) -> Vec<Sample> {
        let mut records = Vec::new();
        while records.len() < limit {
            match self.try_next() {
                Some(sample) => records.push(sample),
                None => break,
            }
        }
        records
    }

    /// Records the kernel could not write because this ring was full,
    /// since the maps were created.
    pub fn lost(&self) -> u64 {
        lost(&self.loss, self.which.loss_slot())
    }
}

fn lost(loss: &PerCpuArray<MapData, u64>, slot: u32) -> u64 {
    loss.get(&slot, 0)
        .map(|values| values.iter().sum())
        .unwrap_or(0)
}

/// Records lost to a full ring, read without taking the reader lock.
pub fn lost_records(which: Ring) -> Result<u64, RingError> {
    let dir = crate::dataplane::shared_dir().map_err(|error| RingError::Map {
        map: "shared",
        detail: error.to_string(),
    })?;
    let data =
        MapData::from_pin(dir.join(abi::map::OBSERVE_LOSS)).map_err(|error| RingError::Map {
            map: abi::map::OBSERVE_LOSS,
            detail: error.to_string(),
        })?;
    let loss = PerCpuArray::try_from(Map::PerCpuArray(data)).map_err(|error| RingError::Map {
        map: abi::map::OBSERVE_LOSS,
        detail: error.to_string(),
    })?;
    Ok(lost(&loss, which.loss_slot()))
}

/// Writes the capture filter (all zero turns capture off).
pub fn set_capture(config: CaptureConfig) -> Result<(), RingError> {
    let dir = crate::dataplane::shared_dir().map_err(|error| RingError::Map {
        map: "shared",
        detail: error.to_string(),
    })?;
    let data = MapData::from_pin(dir.join(abi::map::CAPTURE)).map_err(|error| RingError::Map {
        map: abi::map::CAPTURE,
        detail: error.to_string(),
    })?;
    let mut array: Array<MapData, PodCapture> =
        Array::try_from(Map::Array(data)).map_err(|error| RingError::Map {
            map: abi::map::CAPTURE,
            detail: error.to_string(),
        })?;
    array
        .set(0, PodCapture(config), 0)
        .map_err(|error| RingError::Map {
            map: abi::map::CAPTURE,
            detail: error.to_string(),
        })
}

/// Reads the capture filter; none when this namespace has no shared maps.
pub fn capture_config() -> Result<Option<CaptureConfig>, RingError> {
    let dir = crate::dataplane::shared_dir().map_err(|error| RingError::Map {
        map: "shared",
        detail: error.to_string(),
    })?;
    let path = dir.join(abi::map::CAPTURE);
    if !path.exists() {
        return Ok(None);
    }
    let map_error = |error: &dyn std::fmt::Display| RingError::Map {
        map: abi::map::CAPTURE,
        detail: error.to_string(),
    };
    let data = MapData::from_pin(path).map_err(|error| map_error(&error))?;
    let array: Array<MapData, PodCapture> =
        Array::try_from(Map::Array(data)).map_err(|error| map_error(&error))?;
    array
        .get(&0, 0)
        .map(|config| Some(config.0))
        .map_err(|error| map_error(&error))
}

/// The reader lock of `which` ring if no process holds it (so no reader
/// runs), held until dropped; none while a reader runs. Unlike a reader's
/// lock, it does not write its pid: whoever looks keeps seeing the last
/// reader's.
pub fn reader_lock_if_free(which: Ring) -> Result<Option<File>, RingError> {
    let (file, path) = open_reader_lock(which)?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(file));
    }
    let error = std::io::Error::last_os_error();
    if error.kind() == std::io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(RingError::Io {
            path,
            source: error,
        })
    }
}

fn open_reader_lock(which: Ring) -> Result<(File, PathBuf), RingError> {
    let dir = state::state_dir().map_err(|error| RingError::Map {
        map: "state",
        detail: error.to_string(),
    })?;
    crate::private_files::create_directory(&dir).map_err(|source| RingError::Io {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(which.lock_name());
    // Private: anyone who could open it could hold the lock.
    let file =
        crate::private_files::open_private(&path, false).map_err(|source| RingError::Io {
            path: path.clone(),
            source,
        })?;
    Ok((file, path))
}

/// How long a reader waits for its lock: a check that no reader runs
/// (`reader_lock_if_free`, from another command or xdpathd) holds it for
/// a map read and write, never for longer.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

fn take_reader_lock(which: Ring) -> Result<File, RingError> {
    use std::io::{Read, Seek, Write};
    let (mut file, path) = open_reader_lock(which)?;
    let io = |source| RingError::Io {
        path: path.clone(),
        source,
    };
    let started = std::time::Instant::now();
    // SAFETY: flock on a descriptor we own.
    while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        if started.elapsed() < LOCK_PATIENCE {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        return Err(RingError::Busy {
            ring: match which {
                Ring::Samples => "sample",
                Ring::Capture => "capture",
            },
            holder: holder.trim().to_string(),
        });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

fn clock_offset_ns() -> i128 {
    let read = |clock| {
        // SAFETY: clock_gettime writes into the zeroed struct we pass.
        let mut time: libc::timespec = unsafe { std::mem::zeroed() };
        unsafe { libc::clock_gettime(clock, &mut time) };
        i128::from(time.tv_sec) * 1_000_000_000 + i128::from(time.tv_nsec)
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_MONOTONIC)
}

/// Waits up to `timeout` for `fd` to be readable; true if it is.
pub fn poll_readable(fd: RawFd, timeout: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut poll, 1, millis) > 0 }
}
