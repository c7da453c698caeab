//! [`PcapReader`]: Ethernet records out of a pcap or pcapng capture, one
//! `Result` each.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use super::classic::ClassicSource;
use super::link::to_ethernet;
use super::pcapng_reader::NgSource;
use super::source::{read_full, RawFrame};
use super::*;

/// A capture file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    /// Classic pcap.
    Pcap,
    /// pcapng.
    Pcapng,
}

impl CaptureFormat {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pcap => "pcap",
            Self::Pcapng => "pcapng",
        }
    }
}

#[derive(Debug)]
enum Source<R> {
    Classic(ClassicSource<R>),
    Pcapng(NgSource<R>),
}

/// Reads a pcap or pcapng capture record by record, as Ethernet frames.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::{PcapReader, PcapWriter, Precision, Record, Timestamp};
/// let mut writer = PcapWriter::new(Vec::new(), Precision::Microsecond).unwrap();
/// let time = Timestamp { seconds: 1, fraction: 2, precision: Precision::Microsecond };
/// writer.write_frame(time, 64, &[0xff; 60]).unwrap();
/// let file = writer.finish().unwrap();
///
/// let reader = PcapReader::new(&file[..]).unwrap();
/// let records: Vec<Record> = reader.collect::<Result<_, _>>().unwrap();
/// assert_eq!(records.len(), 1);
/// assert_eq!((records[0].data.len(), records[0].original_len), (60, 64));
/// assert!(records[0].is_truncated());
/// ```
#[derive(Debug)]
pub struct PcapReader<R> {
    source: Source<R>,
    next_number: u64,
    truncated: u64,
    clipped: u64,
    skipped: BTreeMap<SkipReason, u64>,
    done: bool,
}

impl PcapReader<BufReader<File>> {
    /// Opens a capture file and reads its header.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        Self::new(BufReader::with_capacity(1 << 16, File::open(path)?))
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header (pcapng: the first section header) from
    /// `input` (wrap files in a `BufReader`).
    pub fn new(mut input: R) -> Result<Self, PcapError> {
        let mut magic = [0u8; 4];
        let length = read_full(&mut input, &mut magic)?;
        if length < 4 {
            return Err(PcapError::TruncatedHeader { length });
        }
        let source = if u32::from_be_bytes(magic) == pcapng::BLOCK_SECTION_HEADER {
            Source::Pcapng(NgSource::new(input)?)
        } else {
            Source::Classic(ClassicSource::new(input, magic)?)
        };
        Ok(Self {
            source,
            next_number: 1,
            truncated: 0,
            clipped: 0,
            skipped: BTreeMap::new(),
            done: false,
        })
    }

    /// The file's format.
    pub fn format(&self) -> CaptureFormat {
        match self.source {
            Source::Classic(_) => CaptureFormat::Pcap,
            Source::Pcapng(_) => CaptureFormat::Pcapng,
        }
    }

    /// The file header of a classic pcap file (`None` for pcapng).
    pub fn header(&self) -> Option<&FileHeader> {
        match &self.source {
            Source::Classic(classic) => Some(&classic.header),
            Source::Pcapng(_) => None,
        }
    }

    /// The precision of the records' timestamps: the file's for classic
    /// pcap, nanoseconds for pcapng (whatever each interface's resolution).
    pub fn precision(&self) -> Precision {
        self.header()
            .map_or(Precision::Nanosecond, |header| header.precision)
    }

    /// Bytes of the file consumed so far.
    pub fn position(&self) -> u64 {
        match &self.source {
            Source::Classic(classic) => classic.offset,
            Source::Pcapng(pcapng) => pcapng.offset,
        }
    }

    /// Records so far whose captured length is below their length on the
    /// wire (counting those cut to the snapshot length).
    pub fn truncated_records(&self) -> u64 {
        self.truncated
    }

    /// Records so far that claimed more bytes than the snapshot length and
    /// were cut to it.
    pub fn clipped_records(&self) -> u64 {
        self.clipped
    }

    /// Frames so far that were not delivered, per reason, most first.
    pub fn skipped(&self) -> Vec<SkippedFrames> {
        let mut skipped: Vec<SkippedFrames> = self
            .skipped
            .iter()
            .map(|(reason, frames)| SkippedFrames {
                reason: *reason,
                frames: *frames,
                message: reason.to_string(),
            })
            .collect();
        skipped.sort_by_key(|skipped| std::cmp::Reverse(skipped.frames));
        skipped
    }

    /// Frames so far that were not delivered, all reasons.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped.values().sum()
    }

    /// The next Ethernet frame, skipping (and counting) the others.
    fn read_record(&mut self) -> Result<Option<Record>, PcapError> {
        loop {
            let number = self.next_number;
            let frame = match &mut self.source {
                Source::Classic(classic) => classic.next_frame(number)?,
                Source::Pcapng(pcapng) => pcapng.next_frame(number)?,
            };
            let Some(frame) = frame.map(RawFrame::without_fcs) else {
                return Ok(None);
            };
            self.next_number += 1;
            let (mut data, delta) = match to_ethernet(frame.link_type, frame.data, frame.interface)
            {
                Ok(converted) => converted,
                Err(reason) => {
                    *self.skipped.entry(reason).or_default() += 1;
                    continue;
                }
            };
            // A rebuilt header may make a frame 14 bytes longer than the
            // record limit the writers keep to: it is cut (and counts as
            // truncated).
            data.truncate(MAX_RECORD_LEN as usize);
            let original_len = i64::from(frame.original_len).saturating_add(delta);
            let record = Record {
                number,
                timestamp: frame.timestamp,
                original_len: u32::try_from(original_len.max(0)).unwrap_or(u32::MAX),
                data,
            };
            self.clipped += u64::from(frame.clipped);
            if record.is_truncated() {
                self.truncated += 1;
            }
            return Ok(Some(record));
        }
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<Record, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_record() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

impl<R: Read> std::iter::FusedIterator for PcapReader<R> {}
