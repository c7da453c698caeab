//! `xdpath replay`: the native pipeline over every frame of a pcap or
//! pcapng capture.
//!
//! Each record's captured bytes (made Ethernet by the reader: see
//! [`crate::pcap::link`]) are one frame for
//! [`xdpath_core::pipeline::process`] with [`NativeTables`]; the report
//! holds the counters the kernel would have. With `--write-pass`, the frames
//! the pipeline passes are written to a new capture with their original
//! timestamps, in the input's timestamp precision (nanoseconds for a
//! pcapng input), as classic pcap. Frames the reader cannot make Ethernet
//! (other link types, cooked frames of no EtherType) are counted per
//! reason in the report and do not stop the replay.
//!
//! A capture the reader rejects, at its header or at any record, fails the
//! whole replay: the error names the record, and no output file is left
//! behind (it is written under a temporary name in the same directory and
//! renamed into place only once the input has been read to its end).

use crate::text::quote_path;
use std::fs::{self, File};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xdpath_core::{pipeline, Action, InterfaceConfig, MalformedPolicy, NativeTables, SlicePacket};

use crate::control::apply::{install_fresh, InstallError};
use crate::control::state::FilterState;
use crate::pcap::{CaptureFormat, PcapError, PcapReader, PcapWriter, Precision, SkippedFrames};
use crate::stats::{self, CounterRow};

/// Captures larger than this are worth a progress display (the CLI draws
/// one when stderr is a terminal).
pub const PROGRESS_THRESHOLD: u64 = 8 << 20;

/// Told how far a replay has read: `(bytes read, file size)`, every few
/// thousand records. The library draws nothing itself.
pub type Progress<'a> = &'a dyn Fn(u64, u64);

/// Why a replay failed.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use xdpath::replay::{self, ReplayError};
/// use xdpath_core::InterfaceConfig;
/// let error = replay::run(Path::new("/nonexistent.pcap"), None, InterfaceConfig::default()).unwrap_err();
/// assert!(matches!(error, ReplayError::Open { .. }));
/// assert!(error.to_string().starts_with("cannot read \"/nonexistent.pcap\": "));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The capture could not be opened, or is no regular file.
    #[error(transparent)]
    Open(#[from] crate::input::InputError),
    /// The capture is not one the reader takes, or is corrupt at a record.
    #[error("{}: {source}", quote_path(path))]
    Capture {
        /// The capture.
        path: PathBuf,
        /// What is wrong with it.
        source: PcapError,
    },
    /// The `--rules` rule set cannot be installed.
    #[error("the rule set cannot be installed: {source}")]
    Rules {
        /// Why.
        source: InstallError,
    },
    /// The output could not be created or written.
    #[error("cannot write {}: {source}", quote_path(path))]
    Output {
        /// The output file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The `--write-pass` output.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Written {
    /// The file written.
    pub path: PathBuf,
    /// Frames in it.
    pub packets: u64,
    /// Its timestamp precision (that of the input).
    pub precision: Precision,
}

/// What a replay found.
///
/// # Examples
///
/// ```no_run
/// use std::path::Path;
/// use xdpath_core::InterfaceConfig;
/// let report = xdpath::replay::run(Path::new("capture.pcap"), None, InterfaceConfig::default())?;
/// println!("{} packets, {} passed", report.packets, report.passed);
/// # Ok::<(), xdpath::replay::ReplayError>(())
/// ```
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayReport {
    /// The capture.
    pub file: PathBuf,
    /// `pass` or `drop`: what happened to malformed frames.
    pub malformed: &'static str,
    /// The capture's format.
    pub format: CaptureFormat,
    /// The precision of the timestamps read (nanoseconds for pcapng).
    pub precision: Precision,
    /// Frames processed (every record of the file but the skipped ones).
    pub packets: u64,
    /// Frames not replayed, per reason (none for an Ethernet capture).
    pub skipped: Vec<SkippedFrames>,
    /// Their captured bytes: what the pipeline saw.
    pub bytes: u64,
    /// Records with fewer bytes captured than were on the wire (the
    /// pipeline sees the captured bytes only).
    pub truncated_records: u64,
    /// Records that claimed more bytes than the capture's snapshot length
    /// and were cut to it (as libpcap does); they count as truncated too.
    pub clipped_records: u64,
    /// Wall time of the replay, reading included.
    pub elapsed_seconds: f64,
    /// `packets / elapsed_seconds`.
    pub packets_per_second: f64,
    /// The non-zero (verdict, reason) counters.
    pub counters: Vec<CounterRow>,
    /// Frames passed.
    pub passed: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// The `--write-pass` output, if asked for.
    pub written: Option<Written>,
    /// Hits per rule, with `--rules`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_hits: Vec<RuleHits>,
}

/// How often a rule matched during a replay.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleHits {
    /// The rule id (rule-file rules are numbered from 1).
    pub id: u32,
    /// Frames it matched.
    pub hits: u64,
}

/// The report for people.
impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "replayed {}", self.file.display())?;
        writeln!(
            f,
            "  {} packets, {} bytes ({}, {} timestamps, malformed frames: {})",
            self.packets,
            self.bytes,
            self.format.name(),
            self.precision.name(),
            self.malformed
        )?;
        for skipped in &self.skipped {
            writeln!(f, "  {skipped}")?;
        }
        if self.truncated_records > 0 {
            let clipped = if self.clipped_records > 0 {
                format!(
                    ", {} of them cut to the snapshot length",
                    self.clipped_records
                )
            } else {
                String::new()
            };
            writeln!(
                f,
                "  {} records captured short of their length on the wire{clipped}",
                self.truncated_records
            )?;
        }
        writeln!(
            f,
            "  {:.3} s, {:.0} packets/s; passed {}, dropped {}",
            self.elapsed_seconds, self.packets_per_second, self.passed, self.dropped
        )?;
        if let Some(written) = &self.written {
            writeln!(
                f,
                "  wrote {} passed frames to {}",
                written.packets,
                written.path.display()
            )?;
        }
        for rule in &self.rule_hits {
            writeln!(f, "  rule {}: {} hits", rule.id, rule.hits)?;
        }
        writeln!(f)?;
        write!(f, "{}", stats::CounterTable(&self.counters))
    }
}

/// Replays the capture at `path` through the native pipeline with `config`;
/// with `write_pass`, writes the passed frames there.
pub fn run(
    path: &Path,
    write_pass: Option<&Path>,
    config: InterfaceConfig,
) -> Result<ReplayReport, ReplayError> {
    run_filtered(path, write_pass, config, None, &|_, _| {})
}

/// [`run`] with a filter state installed in the native tables ("what would
/// these rules have dropped?"). The filter's clock is the capture's: each
/// frame runs at its own timestamp.
pub fn run_filtered(
    path: &Path,
    write_pass: Option<&Path>,
    config: InterfaceConfig,
    filter: Option<&FilterState>,
    progress: Progress<'_>,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    // A FIFO or device is refused: opening one blocks, and a capture is
    // read to its end.
    let (file, file_size) = crate::input::open_regular(path)?;
    let mut reader = PcapReader::new(io::BufReader::with_capacity(1 << 16, file))
        .map_err(|source| capture_error(path, source))?;
    let precision = reader.precision();

    let mut output = match write_pass {
        Some(destination) => Some(PendingOutput::create(destination, precision)?),
        None => None,
    };
    let mut tables = NativeTables::new(config);
    if let Some(filter) = filter {
        let resolve = |_: &str| None;
        install_fresh(&mut tables, filter, &resolve, crate::control::wall_now())
            .map_err(|source| ReplayError::Rules { source })?;
    }
    let result = replay_records(path, &mut reader, &mut tables, output.as_mut(), &|read| {
        progress(read, file_size)
    });
    let ((packets, bytes), written) = finish_output(result, output)?;

    let elapsed = started.elapsed();
    let counters = tables.counters();
    Ok(ReplayReport {
        file: path.into(),
        malformed: malformed_name(config.malformed_policy()),
        format: reader.format(),
        precision,
        packets,
        skipped: reader.skipped(),
        bytes,
        truncated_records: reader.truncated_records(),
        clipped_records: reader.clipped_records(),
        elapsed_seconds: elapsed.as_secs_f64(),
        packets_per_second: rate(packets, elapsed),
        counters: stats::rows(counters),
        passed: stats::total(counters, Action::Pass),
        dropped: stats::total(counters, Action::Drop),
        written,
        rule_hits: rule_hits(filter, &tables),
    })
}

/// The error for a capture the reader rejects, at its header or a record.
fn capture_error(path: &Path, source: PcapError) -> ReplayError {
    ReplayError::Capture {
        path: path.into(),
        source,
    }
}

/// Runs every record of `reader` through the pipeline, writing the passed
/// ones to `output`; returns the frames and bytes read.
fn replay_records<R: io::Read>(
    path: &Path,
    reader: &mut PcapReader<R>,
    tables: &mut NativeTables,
    mut output: Option<&mut PendingOutput>,
    progress: &dyn Fn(u64),
) -> Result<(u64, u64), ReplayError> {
    let (mut packets, mut bytes) = (0u64, 0u64);
    while let Some(record) = reader.next() {
        let record = record.map_err(|source| capture_error(path, source))?;
        tables.set_now_ns(timestamp_ns(&record.timestamp));
        let outcome = pipeline::process(&SlicePacket::new(&record.data), tables);
        packets += 1;
        bytes += record.data.len() as u64;
        if outcome.action == Action::Pass {
            if let Some(output) = output.as_deref_mut() {
                output.write(&record)?;
            }
        }
        if packets % 4096 == 0 {
            // Not `reader.position()`: on a `&mut` reader that would be
            // `Iterator::position`.
            progress(PcapReader::position(reader));
        }
    }
    Ok((packets, bytes))
}

/// Renames the `--write-pass` file into place after a whole replay, or
/// removes it after a failed one (whose error is then returned).
fn finish_output<T>(
    result: Result<T, ReplayError>,
    output: Option<PendingOutput>,
) -> Result<(T, Option<Written>), ReplayError> {
    match (result, output) {
        (Ok(value), Some(output)) => Ok((value, Some(output.commit()?))),
        (Ok(value), None) => Ok((value, None)),
        (Err(error), Some(output)) => {
            output.abandon();
            Err(error)
        }
        (Err(error), None) => Err(error),
    }
}

/// The report's name for a malformed-frame policy.
fn malformed_name(policy: MalformedPolicy) -> &'static str {
    match policy {
        MalformedPolicy::Pass => "pass",
        MalformedPolicy::Drop => "drop",
    }
}

/// The hits of each of `filter`'s rules, in rule order (none without one).
fn rule_hits(filter: Option<&FilterState>, tables: &NativeTables) -> Vec<RuleHits> {
    filter.map_or_else(Vec::new, |filter| {
        filter
            .rules
            .iter()
            .map(|rule| RuleHits {
                id: rule.id,
                hits: tables.rule_hits.get(rule.id),
            })
            .collect()
    })
}

/// A capture timestamp in nanoseconds.
fn timestamp_ns(timestamp: &crate::pcap::Timestamp) -> u64 {
    let fraction = u64::from(timestamp.fraction);
    let fraction_ns = match timestamp.precision {
        Precision::Microsecond => fraction.saturating_mul(1_000),
        Precision::Nanosecond => fraction,
    };
    u64::from(timestamp.seconds)
        .saturating_mul(1_000_000_000)
        .saturating_add(fraction_ns)
}

fn rate(packets: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        packets as f64 / seconds
    } else {
        0.0
    }
}

/// The `--write-pass` file while it is being written: a temporary file in
/// the destination's directory, renamed into place by [`Self::commit`].
struct PendingOutput {
    destination: PathBuf,
    temporary: PathBuf,
    writer: PcapWriter<BufWriter<File>>,
}

impl PendingOutput {
    fn create(destination: &Path, precision: Precision) -> Result<Self, ReplayError> {
        let output_error = |source| ReplayError::Output {
            path: destination.into(),
            source,
        };
        let name = destination.file_name().ok_or_else(|| {
            output_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(".{}.tmp", std::process::id()));
        let temporary = destination.with_file_name(temporary_name);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)
            .map_err(output_error)?;
        match PcapWriter::new(BufWriter::new(file), precision) {
            Ok(writer) => Ok(Self {
                destination: destination.into(),
                temporary,
                writer,
            }),
            Err(source) => {
                let _ = fs::remove_file(&temporary);
                Err(output_error(source))
            }
        }
    }

    fn write(&mut self, record: &crate::pcap::Record) -> Result<(), ReplayError> {
        self.writer
            .write_record(record)
            .map_err(|source| ReplayError::Output {
                path: self.destination.clone(),
                source,
            })
    }

    fn commit(self) -> Result<Written, ReplayError> {
        let Self {
            destination,
            temporary,
            writer,
        } = self;
        let packets = writer.records();
        let precision = writer.precision();
        let finished = (|| {
            let file = writer
                .finish()?
                .into_inner()
                .map_err(io::IntoInnerError::into_error)?;
            file.sync_all()?;
            fs::rename(&temporary, &destination)
        })();
        if let Err(source) = finished {
            let _ = fs::remove_file(&temporary);
            return Err(ReplayError::Output {
                path: destination,
                source,
            });
        }
        Ok(Written {
            path: destination,
            packets,
            precision,
        })
    }

    fn abandon(self) {
        drop(self.writer);
        let _ = fs::remove_file(&self.temporary);
    }
}
