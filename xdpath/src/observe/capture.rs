//! `xdpath capture`: frames as xdpath handled them, to a pcapng file whose
//! packet comments keep the verdict, the reason and the rule or VIP.
//!
//! The capture filter is a map the data path reads at its entry and exit;
//! this command sets it, reads the capture ring until stopped (a count,
//! a duration, Ctrl-C), turns the filter off, drains what was in flight
//! and closes the file. One capture runs at a time per namespace.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xdpath_core::observe::{CaptureConfig, CAPTURE_BYTES};
use xdpath_core::{Action, Reason};

use super::capture_left;
use super::ring::{self, Ring, RingError, RingReader};
use super::{Matched, Sample};
use crate::control::parse::{seconds_within, MAX_DURATION_SECONDS};
use crate::pcap::pcapng::PcapngWriter;
use crate::text::{quote, quote_path};

/// Errors of `xdpath capture`.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A reason name that is not one.
    #[error("unknown reason {}; reasons are: {known}", quote(name))]
    UnknownReason {
        /// The name given.
        name: String,
        /// Every reason's name.
        known: String,
    },
    /// The interface has no xdpath program.
    #[error("xdpath is not attached to {}", quote(.0))]
    NotAttached(String),
    /// Nothing to capture from.
    #[error("xdpath is attached to no interface in this namespace")]
    NothingAttached,
    /// A duration out of range.
    #[error("--duration must be from 0.001 to {MAX_DURATION_SECONDS} seconds, not {0}")]
    Duration(f64),
    /// A snap length out of range.
    #[error("snap length {0} is out of range 1..={CAPTURE_BYTES}")]
    SnapLength(u32),
    /// The ring or the capture filter.
    #[error(transparent)]
    Ring(#[from] RingError),
    /// A FIFO no process opened for reading before the capture had to stop.
    #[error(
        "{}: no process opened the FIFO for reading before {why}; nothing was captured",
        quote_path(path)
    )]
    NoReader {
        /// The FIFO.
        path: PathBuf,
        /// What stopped the wait.
        why: &'static str,
    },
    /// The output file.
    #[error("{}: {source}", quote_path(path))]
    Output {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Which verdicts to capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum VerdictFilter {
    /// Frames xdpath dropped.
    Drop,
    /// Frames passed to the kernel stack.
    Pass,
    /// Frames sent back out (XDP_TX).
    Tx,
    /// Frames redirected.
    Redirect,
    /// Every frame.
    All,
}

impl VerdictFilter {
    fn action_mask(self) -> u8 {
        let bit = |action: Action| 1u8 << action as u8;
        match self {
            Self::Drop => bit(Action::Drop),
            Self::Pass => bit(Action::Pass),
            Self::Tx => bit(Action::Tx),
            Self::Redirect => bit(Action::Redirect),
            Self::All => 0,
        }
    }
}

/// What to capture and where to.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct CaptureArgs {
    /// Only frames arriving on this interface (default: every attached one).
    #[cfg_attr(feature = "clap", arg(long = "iface", short = 'i'))]
    pub interface: Option<String>,
    /// Only frames with this verdict.
    #[cfg_attr(feature = "clap", arg(long, value_enum, default_value = "drop"))]
    pub verdict: VerdictFilter,
    /// Only frames with this reason (as `xdpath stats` names it, e.g.
    /// `rule-deny`, `blocklisted`, `ipv4-tcp`).
    #[cfg_attr(feature = "clap", arg(long))]
    pub reason: Option<String>,
    /// Stop after this many frames.
    #[cfg_attr(feature = "clap", arg(short = 'c', long = "count"))]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[cfg_attr(feature = "clap", arg(long))]
    pub duration: Option<f64>,
    /// Bytes kept of each frame (at most 1536).
    #[cfg_attr(feature = "clap", arg(long, default_value_t = CAPTURE_BYTES))]
    pub snaplen: u32,
    /// The pcapng file to write.
    #[cfg_attr(feature = "clap", arg(short = 'w', long = "write"))]
    pub output: PathBuf,
}

/// What a capture wrote.
#[derive(Debug, serde::Serialize)]
pub struct CaptureReport {
    /// The file.
    pub output: PathBuf,
    /// Frames written.
    pub packets: u64,
    /// Frames the data path could not hand over (the ring was full) while
    /// this capture ran.
    pub lost: u64,
}

/// Resolves a reason name.
pub fn reason_by_name(name: &str) -> Result<Reason, CaptureError> {
    Reason::ALL
        .iter()
        .copied()
        .find(|reason| reason.name() == name)
        .ok_or_else(|| CaptureError::UnknownReason {
            name: name.into(),
            known: Reason::ALL
                .iter()
                .map(|reason| reason.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Turns the capture filter off when dropped, on every way out this
/// process controls, then removes the mark that lets the next command
/// turn it off after a kill (`capture_left`).
struct FilterGuard {
    state_dir: PathBuf,
}

impl Drop for FilterGuard {
    fn drop(&mut self) {
        if ring::set_capture(CaptureConfig::default()).is_ok() {
            capture_left::unmark(&self.state_dir);
        }
    }
}

/// Runs a capture; `on_ready` is called once the filter is live.
pub fn capture(
    args: &CaptureArgs,
    on_ready: impl FnOnce(),
    stop: &dyn Fn() -> bool,
) -> Result<CaptureReport, CaptureError> {
    let reason = args.reason.as_deref().map(reason_by_name).transpose()?;
    let deadline = capture_deadline(args.duration)?;
    if args.snaplen == 0 || args.snaplen > CAPTURE_BYTES {
        return Err(CaptureError::SnapLength(args.snaplen));
    }
    let ifindex = capture_ifindex(args.interface.as_ref())?;
    let mut reader = RingReader::open(Ring::Capture)?;
    // Records of an earlier capture that was killed before it drained.
    drop(reader.drain(usize::MAX));
    let output_error = |source| CaptureError::Output {
        path: args.output.clone(),
        source,
    };
    let started = Instant::now();
    let file = open_output(&args.output, stop, &|| {
        deadline.is_some_and(|deadline| started.elapsed() >= deadline)
    })?;
    let limit = args.count.unwrap_or(u64::MAX);
    let mut output = CaptureFile {
        writer: PcapngWriter::new(BufWriter::new(file)).map_err(output_error)?,
        interfaces: HashMap::new(),
        packets: 0,
        limit,
        snap_len: args.snaplen,
    };
    let lost_before = reader.lost();
    let config = CaptureConfig {
        enabled: 1,
        reason_set: u8::from(reason.is_some()),
        reason: reason.map_or(0, |reason| reason as u8),
        actions: args.verdict.action_mask(),
        ifindex,
        snap_len: args.snaplen,
        reserved: 0,
    };
    // Before the filter goes on: what is captured can be read after a
    // kill (up to the last flush), and the file is a pcapng file at once.
    output.writer.flush().map_err(output_error)?;
    let state_dir = crate::control::state::state_dir().map_err(|error| RingError::Map {
        map: "state",
        detail: error.to_string(),
    })?;
    capture_left::mark(&state_dir)?;
    let guard = FilterGuard { state_dir };
    ring::set_capture(config)?;
    on_ready();
    let done = |packets: u64| {
        packets >= limit || stop() || deadline.is_some_and(|deadline| started.elapsed() >= deadline)
    };
    while !done(output.packets) {
        reader.wait(Duration::from_millis(100));
        if output.write_waiting(&mut reader).map_err(output_error)? > 0 {
            // Whole blocks on disk, so a kill loses at most what came
            // since the last one.
            output.writer.flush().map_err(output_error)?;
        }
    }
    drop(guard);
    // Frames chosen before the filter went off are still on their way.
    std::thread::sleep(Duration::from_millis(20));
    output.write_waiting(&mut reader).map_err(output_error)?;
    let packets = output.packets;
    let mut file = output.writer.finish().map_err(output_error)?;
    std::io::Write::flush(&mut file).map_err(output_error)?;
    Ok(CaptureReport {
        output: args.output.clone(),
        packets,
        lost: reader.lost().saturating_sub(lost_before),
    })
}

/// How long `--duration` lets the capture run, checked.
fn capture_deadline(duration: Option<f64>) -> Result<Option<Duration>, CaptureError> {
    duration
        .map(|seconds| {
            seconds_within(seconds, 0.001, MAX_DURATION_SECONDS as f64)
                .ok_or(CaptureError::Duration(seconds))
        })
        .transpose()
}

/// The ifindex `--iface` names (it must have xdpath attached), or 0 for
/// every attached interface (there must be one).
fn capture_ifindex(interface: Option<&String>) -> Result<u32, CaptureError> {
    match interface {
        Some(name) => {
            crate::dataplane::read_interface_config(name)
                .map_err(|_| CaptureError::NotAttached(name.clone()))?;
            interface_index(name).ok_or_else(|| CaptureError::NotAttached(name.clone()))
        }
        None => {
            let attached = crate::dataplane::attached_interfaces().unwrap_or_default();
            if attached.is_empty() {
                return Err(CaptureError::NothingAttached);
            }
            Ok(0)
        }
    }
}

/// The pcapng file being written, with what was written to it.
struct CaptureFile {
    writer: PcapngWriter<BufWriter<File>>,
    /// The pcapng interface id of each ifindex described so far.
    interfaces: HashMap<u32, u32>,
    /// Frames written.
    packets: u64,
    /// Frames to write at most.
    limit: u64,
    snap_len: u32,
}

impl CaptureFile {
    /// Writes what the ring holds, up to the limit; returns how many.
    fn write_waiting(&mut self, reader: &mut RingReader) -> std::io::Result<u64> {
        let before = self.packets;
        for sample in reader.drain(usize::MAX) {
            if self.packets >= self.limit {
                break;
            }
            let id = interface_id(
                &mut self.writer,
                &mut self.interfaces,
                sample.meta.ifindex,
                self.snap_len,
            )?;
            write_sample(&mut self.writer, id, &sample)?;
            self.packets += 1;
        }
        Ok(self.packets - before)
    }
}

/// The pcapng interface id of `ifindex`, described on first use.
fn interface_id<W: std::io::Write>(
    writer: &mut PcapngWriter<W>,
    interfaces: &mut HashMap<u32, u32>,
    ifindex: u32,
    snap_len: u32,
) -> std::io::Result<u32> {
    if let Some(id) = interfaces.get(&ifindex) {
        return Ok(*id);
    }
    let name = interface_name(ifindex).unwrap_or_else(|| format!("ifindex{ifindex}"));
    let id = writer.add_interface(&name, snap_len)?;
    interfaces.insert(ifindex, id);
    Ok(id)
}

/// The index of a named interface.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The name of an interface index.
pub fn interface_name(ifindex: u32) -> Option<String> {
    let mut buffer = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as the call requires.
    let name = unsafe { libc::if_indextoname(ifindex, buffer.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into the buffer.
    let name = unsafe { std::ffi::CStr::from_ptr(buffer.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}
/// Writes a sample or captured frame with its arrival time, length and
/// [`sample_comment`].
pub fn write_sample<W: std::io::Write>(
    writer: &mut PcapngWriter<W>,
    interface_id: u32,
    sample: &Sample,
) -> std::io::Result<()> {
    let comment = sample_comment(sample);
    writer.write_packet(
        interface_id,
        sample.unix_ns,
        sample.meta.frame_len,
        &sample.data,
        Some(&comment),
    )
}

/// The comment a captured frame is written with: its verdict, reason and
/// what matched it, e.g. `verdict=drop reason=rule-deny rule=7`.
///
/// # Examples
///
/// ```
/// use xdpath::observe::capture::sample_comment;
/// use xdpath::observe::Sample;
/// use xdpath_core::observe::{RecordMeta, MATCHED_RULE};
/// use xdpath_core::{Action, Reason};
/// let meta = RecordMeta {
///     action: Action::Drop as u8,
///     reason: Reason::RuleDeny as u8,
///     matched: MATCHED_RULE | 7,
///     ..Default::default()
/// };
/// let sample = Sample { meta, unix_ns: 0, data: Vec::new() };
/// assert_eq!(sample_comment(&sample), "verdict=drop reason=rule-deny rule=7");
/// ```
pub fn sample_comment(sample: &Sample) -> String {
    let mut comment = format!(
        "verdict={} reason={}",
        sample.action().name(),
        sample.reason().name()
    );
    match sample.matched() {
        Matched::Rule(id) => comment.push_str(&format!(" rule={id}")),
        Matched::Vip(index) => comment.push_str(&format!(" vip={index}")),
        Matched::None => {}
    }
    comment
}

/// Opens (creates, truncates) the output. A FIFO's plain open waits in
/// the kernel for a reader, where neither `--duration` nor SIGTERM reach
/// it (the signal handler restarts it), holding the capture ring all the
/// while; so it is opened non-blocking, which fails with ENXIO while no
/// reader has the FIFO open, and tried again until a reader comes, the
/// capture is stopped or `expired` says its time is up. The writes block
/// again: the capture waits for its reader rather than losing frames.
fn open_output(
    path: &Path,
    stop: &dyn Fn() -> bool,
    expired: &dyn Fn() -> bool,
) -> Result<File, CaptureError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let output_error = |source| CaptureError::Output {
        path: path.to_path_buf(),
        source,
    };
    let mut waiting = false;
    let file = loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => break file,
            Err(error) if error.raw_os_error() == Some(libc::ENXIO) => {
                let why = if stop() {
                    Some("the capture was stopped")
                } else if expired() {
                    Some("--duration ran out")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(CaptureError::NoReader {
                        path: path.to_path_buf(),
                        why,
                    });
                }
                if !waiting {
                    log::info!(
                        "{}: waiting for a process to open the FIFO for reading",
                        quote_path(path)
                    );
                    waiting = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => return Err(output_error(error)),
        }
    };
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with flags it returned.
    let cleared = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) == 0
    };
    if !cleared {
        return Err(output_error(std::io::Error::last_os_error()));
    }
    Ok(file)
}
