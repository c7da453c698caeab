//! A small reader and writer for classic pcap capture files (not pcapng).
//!
//! The reader accepts both timestamp precisions (magic `a1b2c3d4`,
//! microseconds, and `a1b23c4d`, nanoseconds) in either byte order, and only
//! Ethernet captures (`LINKTYPE_ETHERNET` / `DLT_EN10MB`, 1). It is an
//! iterator of `Result<Record, PcapError>`: when a file is cut off or
//! corrupt, every record before the damage is still delivered, then one
//! error says which record failed and at which byte offset, then nothing.
//!
//! The writer writes little-endian files of either precision.
//!
//! # Limits
//!
//! A record's captured length is trusted only up to [`MAX_RECORD_LEN`]
//! (256 KiB): a corrupt length field must not make us allocate gigabytes.
//! Like libpcap, a record that claims more bytes than the file's snapshot
//! length (but no more than that limit) is delivered cut to the snapshot
//! length, and the rest of its bytes are skipped; such records are counted
//! ([`PcapReader::clipped_records`]). Some of tcpdump's own test captures
//! rely on this.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

/// `LINKTYPE_ETHERNET` (`DLT_EN10MB`): the only link type the reader takes.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The largest captured length a record may claim (256 KiB, libpcap's own
/// ceiling for Ethernet).
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;

/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

const MAGIC_MICROSECOND: u32 = 0xa1b2_c3d4;
const MAGIC_NANOSECOND: u32 = 0xa1b2_3c4d;

/// The link-layer type proper: the low 26 bits of the header's link-type
/// field. The top bits may carry FCS information (see
/// [`FileHeader::fcs_len`]); libpcap masks them the same way.
const LINKTYPE_MASK: u32 = 0x03ff_ffff;
const FCS_PRESENT: u32 = 0x0400_0000;

/// Why a capture could not be read.
///
/// Every message is one line a user can act on.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::{PcapError, PcapReader};
/// let error = PcapReader::new(&b"\x0a\x0d\x0d\x0a not a pcap at all"[..]).unwrap_err();
/// assert!(matches!(error, PcapError::NotPcap { magic: 0x0a0d0d0a }));
/// assert_eq!(
///     error.to_string(),
///     "not a pcap file (magic 0x0a0d0d0a): pcapng and other formats are not supported",
/// );
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file does not start with a pcap magic number.
    #[error("not a pcap file (magic 0x{magic:08x}): pcapng and other formats are not supported")]
    NotPcap {
        /// The first four bytes, read big-endian.
        magic: u32,
    },
    /// The file ends inside its 24-byte header.
    #[error("{}", truncated_header_message(*length))]
    TruncatedHeader {
        /// The bytes the file has.
        length: usize,
    },
    /// A pcap version other than 2.x.
    #[error("unsupported pcap version {major}.{minor}: only pcap version 2.x is supported")]
    UnsupportedVersion {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// Not an Ethernet capture.
    #[error(
        "unsupported link type {link_type} ({}): only Ethernet captures (DLT_EN10MB, 1) are supported",
        link_type_name(*link_type)
    )]
    UnsupportedLinkType {
        /// The link type (the header field without its FCS bits).
        link_type: u32,
    },
    /// The file ends inside a record header or a record's data.
    #[error("{}", truncated_record_message(*record, *offset, *missing))]
    TruncatedRecord {
        /// The record's number, counting from 1.
        record: u64,
        /// Byte offset of the record's header in the file.
        offset: u64,
        /// How many more bytes the record needs.
        missing: u64,
    },
    /// A record claims more captured bytes than any Ethernet capture holds.
    #[error(
        "record {record} at byte offset {offset} claims {caplen} captured bytes, more than the limit of {limit}: the file is corrupt"
    )]
    RecordTooLarge {
        /// The record's number, counting from 1.
        record: u64,
        /// Byte offset of the record's header in the file.
        offset: u64,
        /// The captured length the record header claims.
        caplen: u32,
        /// The limit, [`MAX_RECORD_LEN`].
        limit: u32,
    },
    /// Reading or writing failed.
    #[error("{source}")]
    Io {
        /// The I/O error.
        #[from]
        source: io::Error,
    },
}

/// `1 byte`, `2 bytes`.
fn count(number: u64, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

fn truncated_record_message(record: u64, offset: u64, missing: u64) -> String {
    let intact = match record {
        0 | 1 => String::new(),
        2 => "; record 1 before it is intact".to_string(),
        _ => format!("; the {} records before it are intact", record - 1),
    };
    format!(
        "record {record} at byte offset {offset} is cut off: the file ends {} early{intact}",
        count(missing, "byte")
    )
}

fn truncated_header_message(length: usize) -> String {
    if length == 0 {
        "empty file: not a pcap capture".to_string()
    } else {
        format!(
            "not a pcap file: {length} bytes, shorter than the {FILE_HEADER_LEN}-byte pcap header"
        )
    }
}

fn link_type_name(link_type: u32) -> &'static str {
    match link_type {
        0 => "BSD loopback",
        1 => "Ethernet",
        6 => "Token Ring",
        8 => "SLIP",
        9 => "PPP",
        101 => "raw IP",
        104 => "Cisco HDLC",
        105 => "IEEE 802.11",
        108 => "OpenBSD loopback",
        113 => "Linux cooked",
        127 => "802.11 radiotap",
        228 => "raw IPv4",
        229 => "raw IPv6",
        276 => "Linux cooked v2",
        _ => "not Ethernet",
    }
}

/// The unit of a file's sub-second timestamps.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::Precision;
/// assert_eq!(Precision::Nanosecond.units_per_second(), 1_000_000_000);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Magic `a1b2c3d4`.
    #[default]
    Microsecond,
    /// Magic `a1b23c4d`.
    Nanosecond,
}

impl Precision {
    /// Sub-second units per second.
    pub const fn units_per_second(self) -> u32 {
        match self {
            Self::Microsecond => 1_000_000,
            Self::Nanosecond => 1_000_000_000,
        }
    }

    const fn magic(self) -> u32 {
        match self {
            Self::Microsecond => MAGIC_MICROSECOND,
            Self::Nanosecond => MAGIC_NANOSECOND,
        }
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Microsecond => "microsecond",
            Self::Nanosecond => "nanosecond",
        }
    }
}

/// The byte order a file was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ByteOrder {
    /// Magic bytes `d4 c3 b2 a1` (or `4d 3c b2 a1`).
    LittleEndian,
    /// Magic bytes `a1 b2 c3 d4` (or `a1 b2 3c 4d`).
    BigEndian,
}

impl ByteOrder {
    fn u16(self, bytes: [u8; 2]) -> u16 {
        match self {
            Self::LittleEndian => u16::from_le_bytes(bytes),
            Self::BigEndian => u16::from_be_bytes(bytes),
        }
    }

    fn u32(self, bytes: [u8; 4]) -> u32 {
        match self {
            Self::LittleEndian => u32::from_le_bytes(bytes),
            Self::BigEndian => u32::from_be_bytes(bytes),
        }
    }
}

/// What a file's header says.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::{ByteOrder, PcapReader, Precision};
/// let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
/// file.extend_from_slice(&[0; 8]); // time zone, accuracy
/// file.extend_from_slice(&65535u32.to_le_bytes()); // snapshot length
/// file.extend_from_slice(&1u32.to_le_bytes()); // Ethernet
/// let reader = PcapReader::new(&file[..]).unwrap();
/// let header = reader.header();
/// assert_eq!((header.byte_order, header.precision), (ByteOrder::LittleEndian, Precision::Microsecond));
/// assert_eq!(header.snaplen, 65535);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// Byte order of the file.
    pub byte_order: ByteOrder,
    /// Timestamp precision.
    pub precision: Precision,
    /// Version, major.
    pub version_major: u16,
    /// Version, minor.
    pub version_minor: u16,
    /// The snapshot length: the most bytes captured per packet.
    pub snaplen: u32,
    /// The link type without its FCS bits: always [`LINKTYPE_ETHERNET`] for
    /// a file the reader accepted.
    pub link_type: u32,
    /// Bytes of frame check sequence at the end of each frame, when the
    /// header says so (the frames are delivered as captured, FCS included).
    pub fcs_len: Option<u8>,
}

/// A record's capture time: seconds since the Unix epoch plus a fraction in
/// the file's [`Precision`].
///
/// # Examples
///
/// ```
/// use xdpath::pcap::{Precision, Timestamp};
/// let time = Timestamp { seconds: 10, fraction: 250_000, precision: Precision::Microsecond };
/// assert_eq!(time.in_precision(Precision::Nanosecond).fraction, 250_000_000);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub seconds: u32,
    /// Micro- or nanoseconds, per `precision`.
    pub fraction: u32,
    /// The unit of `fraction`.
    pub precision: Precision,
}

impl Timestamp {
    /// The same instant in another precision (nanoseconds to microseconds
    /// round down).
    pub fn in_precision(self, precision: Precision) -> Self {
        let fraction = match (self.precision, precision) {
            (Precision::Microsecond, Precision::Nanosecond) => self.fraction.saturating_mul(1000),
            (Precision::Nanosecond, Precision::Microsecond) => self.fraction / 1000,
            _ => self.fraction,
        };
        Self {
            seconds: self.seconds,
            fraction,
            precision,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.precision {
            Precision::Microsecond => write!(formatter, "{}.{:06}", self.seconds, self.fraction),
            Precision::Nanosecond => write!(formatter, "{}.{:09}", self.seconds, self.fraction),
        }
    }
}

/// One captured frame.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::{Record, Timestamp};
/// let record = Record { number: 1, timestamp: Timestamp::default(), original_len: 60, data: vec![0; 42] };
/// assert!(record.is_truncated());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record's number in the file, counting from 1.
    pub number: u64,
    /// When it was captured.
    pub timestamp: Timestamp,
    /// The frame's length on the wire.
    pub original_len: u32,
    /// The captured bytes: the frame, or its first bytes when the capture
    /// was cut short.
    pub data: Vec<u8>,
}

impl Record {
    /// True when fewer bytes were captured than were on the wire.
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.original_len)
    }
}

/// Reads a pcap capture record by record.
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
    input: R,
    header: FileHeader,
    /// The most bytes a record is delivered with (the snapshot length, or
    /// [`MAX_RECORD_LEN`] when that is 0 or larger).
    clip_len: u32,
    offset: u64,
    next_number: u64,
    truncated: u64,
    clipped: u64,
    done: bool,
}

impl PcapReader<BufReader<File>> {
    /// Opens a capture file and reads its header.
    pub fn open(path: &Path) -> Result<Self, PcapError> {
        Self::new(BufReader::with_capacity(1 << 16, File::open(path)?))
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header from `input` (wrap files in a `BufReader`).
    pub fn new(mut input: R) -> Result<Self, PcapError> {
        let mut bytes = [0u8; FILE_HEADER_LEN];
        let length = read_full(&mut input, &mut bytes)?;
        if length < 4 {
            return Err(PcapError::TruncatedHeader { length });
        }
        let magic_bytes = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let (byte_order, precision) = match u32::from_be_bytes(magic_bytes) {
            MAGIC_MICROSECOND => (ByteOrder::BigEndian, Precision::Microsecond),
            MAGIC_NANOSECOND => (ByteOrder::BigEndian, Precision::Nanosecond),
            _ => match u32::from_le_bytes(magic_bytes) {
                MAGIC_MICROSECOND => (ByteOrder::LittleEndian, Precision::Microsecond),
                MAGIC_NANOSECOND => (ByteOrder::LittleEndian, Precision::Nanosecond),
                _ => {
                    return Err(PcapError::NotPcap {
                        magic: u32::from_be_bytes(magic_bytes),
                    })
                }
            },
        };
        if length < FILE_HEADER_LEN {
            return Err(PcapError::TruncatedHeader { length });
        }
        let u16_at = |at: usize| byte_order.u16([bytes[at], bytes[at + 1]]);
        let u32_at =
            |at: usize| byte_order.u32([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let (version_major, version_minor) = (u16_at(4), u16_at(6));
        if version_major != 2 {
            return Err(PcapError::UnsupportedVersion {
                major: version_major,
                minor: version_minor,
            });
        }
        let snaplen = u32_at(16);
        let link_field = u32_at(20);
        let link_type = link_field & LINKTYPE_MASK;
        if link_type != LINKTYPE_ETHERNET {
            return Err(PcapError::UnsupportedLinkType { link_type });
        }
        // Top four bits: FCS length in 16-bit words, valid when bit 26 is set.
        let fcs_len = (link_field & FCS_PRESENT != 0).then_some(((link_field >> 28) * 2) as u8);
        let clip_len = if snaplen == 0 || snaplen > MAX_RECORD_LEN {
            MAX_RECORD_LEN
        } else {
            snaplen
        };
        Ok(Self {
            input,
            header: FileHeader {
                byte_order,
                precision,
                version_major,
                version_minor,
                snaplen,
                link_type,
                fcs_len,
            },
            clip_len,
            offset: FILE_HEADER_LEN as u64,
            next_number: 1,
            truncated: 0,
            clipped: 0,
            done: false,
        })
    }

    /// The file header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Bytes of the file consumed so far.
    pub fn position(&self) -> u64 {
        self.offset
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

    fn read_record(&mut self) -> Result<Option<Record>, PcapError> {
        let number = self.next_number;
        let offset = self.offset;
        let mut header = [0u8; RECORD_HEADER_LEN];
        let got = read_full(&mut self.input, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        let cut = |missing: u64| PcapError::TruncatedRecord {
            record: number,
            offset,
            missing,
        };
        if got < RECORD_HEADER_LEN {
            return Err(cut((RECORD_HEADER_LEN - got) as u64));
        }
        let order = self.header.byte_order;
        let field =
            |at: usize| order.u32([header[at], header[at + 1], header[at + 2], header[at + 3]]);
        let timestamp = Timestamp {
            seconds: field(0),
            fraction: field(4),
            precision: self.header.precision,
        };
        let caplen = field(8);
        let original_len = field(12);
        if caplen > MAX_RECORD_LEN {
            return Err(PcapError::RecordTooLarge {
                record: number,
                offset,
                caplen,
                limit: MAX_RECORD_LEN,
            });
        }
        let kept = caplen.min(self.clip_len) as usize;
        let mut data = vec![0u8; kept];
        let got = read_full(&mut self.input, &mut data)?;
        if got < kept {
            return Err(cut((caplen as usize - got) as u64));
        }
        let skipped = u64::from(caplen) - kept as u64;
        if skipped > 0 {
            let discarded = io::copy(&mut (&mut self.input).take(skipped), &mut io::sink())?;
            if discarded < skipped {
                return Err(cut(skipped - discarded));
            }
            self.clipped += 1;
        }
        self.offset += RECORD_HEADER_LEN as u64 + u64::from(caplen);
        self.next_number += 1;
        let record = Record {
            number,
            timestamp,
            original_len,
            data,
        };
        if record.is_truncated() {
            self.truncated += 1;
        }
        Ok(Some(record))
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

/// Reads until `buffer` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// Writes a little-endian Ethernet pcap file.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::{PcapWriter, Precision, Timestamp};
/// let mut writer = PcapWriter::new(Vec::new(), Precision::Nanosecond).unwrap();
/// let time = Timestamp { seconds: 7, fraction: 5, precision: Precision::Nanosecond };
/// writer.write_frame(time, 3, &[1, 2, 3]).unwrap();
/// let bytes = writer.finish().unwrap();
/// assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
/// assert_eq!(bytes.len(), 24 + 16 + 3);
/// ```
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    output: W,
    precision: Precision,
    records: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header (version 2.4, snapshot length
    /// [`MAX_RECORD_LEN`], Ethernet).
    pub fn new(mut output: W, precision: Precision) -> io::Result<Self> {
        let mut header = [0u8; FILE_HEADER_LEN];
        header[0..4].copy_from_slice(&precision.magic().to_le_bytes());
        header[4..6].copy_from_slice(&2u16.to_le_bytes());
        header[6..8].copy_from_slice(&4u16.to_le_bytes());
        // Bytes 8..16: time zone offset and timestamp accuracy, both zero.
        header[16..20].copy_from_slice(&MAX_RECORD_LEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        output.write_all(&header)?;
        Ok(Self {
            output,
            precision,
            records: 0,
        })
    }

    /// The timestamp precision of the file.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Writes one frame: `data` is what was captured, `original_len` the
    /// frame's length on the wire. The timestamp is converted to the file's
    /// precision if need be.
    pub fn write_frame(
        &mut self,
        timestamp: Timestamp,
        original_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        let caplen = u32::try_from(data.len())
            .ok()
            .filter(|length| *length <= MAX_RECORD_LEN)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "frame longer than the pcap record limit",
                )
            })?;
        let timestamp = timestamp.in_precision(self.precision);
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[0..4].copy_from_slice(&timestamp.seconds.to_le_bytes());
        header[4..8].copy_from_slice(&timestamp.fraction.to_le_bytes());
        header[8..12].copy_from_slice(&caplen.to_le_bytes());
        header[12..16].copy_from_slice(&original_len.to_le_bytes());
        self.output.write_all(&header)?;
        self.output.write_all(data)?;
        self.records += 1;
        Ok(())
    }

    /// Writes a record as read, with its original timestamp and length.
    pub fn write_record(&mut self, record: &Record) -> io::Result<()> {
        self.write_frame(record.timestamp, record.original_len, &record.data)
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.output.flush()?;
        Ok(self.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian microsecond file by hand: two records, the second
    /// truncated (4 of 6 bytes captured).
    const TINY_LE: [u8; 24 + 16 + 3 + 16 + 4] = [
        0xd4, 0xc3, 0xb2, 0xa1, // magic
        0x02, 0x00, 0x04, 0x00, // version 2.4
        0x00, 0x00, 0x00, 0x00, // time zone
        0x00, 0x00, 0x00, 0x00, // accuracy
        0xff, 0xff, 0x00, 0x00, // snaplen 65535
        0x01, 0x00, 0x00, 0x00, // Ethernet
        // record 1
        0x10, 0x00, 0x00, 0x00, // 16 s
        0x20, 0x00, 0x00, 0x00, // 32 µs
        0x03, 0x00, 0x00, 0x00, // caplen 3
        0x03, 0x00, 0x00, 0x00, // len 3
        0xaa, 0xbb, 0xcc, //
        // record 2
        0x11, 0x00, 0x00, 0x00, // 17 s
        0x40, 0x42, 0x0f, 0x00, // 999_999 + 1 = 1_000_000 µs (odd but kept)
        0x04, 0x00, 0x00, 0x00, // caplen 4
        0x06, 0x00, 0x00, 0x00, // len 6
        0x01, 0x02, 0x03, 0x04,
    ];

    /// The same file, big-endian.
    const TINY_BE: [u8; 24 + 16 + 3 + 16 + 4] = [
        0xa1, 0xb2, 0xc3, 0xd4, //
        0x00, 0x02, 0x00, 0x04, //
        0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0x00, 0x00, //
        0x00, 0x00, 0xff, 0xff, //
        0x00, 0x00, 0x00, 0x01, //
        0x00, 0x00, 0x00, 0x10, //
        0x00, 0x00, 0x00, 0x20, //
        0x00, 0x00, 0x00, 0x03, //
        0x00, 0x00, 0x00, 0x03, //
        0xaa, 0xbb, 0xcc, //
        0x00, 0x00, 0x00, 0x11, //
        0x00, 0x0f, 0x42, 0x40, //
        0x00, 0x00, 0x00, 0x04, //
        0x00, 0x00, 0x00, 0x06, //
        0x01, 0x02, 0x03, 0x04,
    ];

    fn read_all(bytes: &[u8]) -> (FileHeader, Vec<Result<Record, PcapError>>) {
        let reader = PcapReader::new(bytes).expect("header");
        let header = *reader.header();
        (header, reader.collect())
    }

    fn check_tiny(bytes: &[u8], byte_order: ByteOrder) {
        let mut reader = PcapReader::new(bytes).expect("header");
        assert_eq!(
            *reader.header(),
            FileHeader {
                byte_order,
                precision: Precision::Microsecond,
                version_major: 2,
                version_minor: 4,
                snaplen: 65535,
                link_type: 1,
                fcs_len: None,
            }
        );
        let first = reader.next().expect("record 1").expect("valid");
        assert_eq!(first.number, 1);
        assert_eq!(
            first.timestamp,
            Timestamp {
                seconds: 16,
                fraction: 32,
                precision: Precision::Microsecond
            }
        );
        assert_eq!(
            (first.original_len, first.data.as_slice()),
            (3, &[0xaa, 0xbb, 0xcc][..])
        );
        assert!(!first.is_truncated());
        assert_eq!(reader.position(), 24 + 16 + 3);
        let second = reader.next().expect("record 2").expect("valid");
        assert_eq!(second.number, 2);
        assert_eq!(second.timestamp.fraction, 1_000_000);
        assert_eq!(
            (second.original_len, second.data.as_slice()),
            (6, &[1, 2, 3, 4][..])
        );
        assert!(second.is_truncated());
        assert!(reader.next().is_none());
        assert!(reader.next().is_none());
        assert_eq!(reader.truncated_records(), 1);
        assert_eq!(reader.position(), bytes.len() as u64);
    }

    #[test]
    fn reads_little_endian() {
        check_tiny(&TINY_LE, ByteOrder::LittleEndian);
    }

    #[test]
    fn reads_big_endian() {
        check_tiny(&TINY_BE, ByteOrder::BigEndian);
    }

    #[test]
    fn reads_nanosecond_in_both_orders() {
        let mut le = TINY_LE;
        le[0..4].copy_from_slice(&[0x4d, 0x3c, 0xb2, 0xa1]);
        let mut be = TINY_BE;
        be[0..4].copy_from_slice(&[0xa1, 0xb2, 0x3c, 0x4d]);
        for (bytes, order) in [(le, ByteOrder::LittleEndian), (be, ByteOrder::BigEndian)] {
            let (header, records) = read_all(&bytes);
            assert_eq!(
                (header.precision, header.byte_order),
                (Precision::Nanosecond, order)
            );
            let first = records[0].as_ref().expect("valid");
            assert_eq!(
                first.timestamp,
                Timestamp {
                    seconds: 16,
                    fraction: 32,
                    precision: Precision::Nanosecond
                }
            );
            assert_eq!(first.timestamp.to_string(), "16.000000032");
            assert_eq!(records.len(), 2);
        }
    }

    #[test]
    fn truncated_record_data_is_an_error_after_the_good_records() {
        let cut = &TINY_LE[..TINY_LE.len() - 1];
        let (_, records) = read_all(cut);
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0].as_ref().expect("first is whole").data,
            [0xaa, 0xbb, 0xcc]
        );
        let error = records[1].as_ref().expect_err("second is cut");
        assert!(
            matches!(
                error,
                PcapError::TruncatedRecord {
                    record: 2,
                    offset: 43,
                    missing: 1
                }
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "record 2 at byte offset 43 is cut off: the file ends 1 byte early; record 1 before it is intact"
        );
    }

    #[test]
    fn truncated_record_header_is_an_error() {
        let cut = &TINY_LE[..24 + 16 + 3 + 5];
        let (_, records) = read_all(cut);
        assert_eq!(records.len(), 2);
        assert!(matches!(
            records[1],
            Err(PcapError::TruncatedRecord {
                record: 2,
                offset: 43,
                missing: 11
            })
        ));
    }

    #[test]
    fn bad_magic_is_not_pcap() {
        let mut bytes = TINY_LE;
        bytes[0..4].copy_from_slice(&[0x0a, 0x0d, 0x0d, 0x0a]);
        let error = PcapReader::new(&bytes[..]).expect_err("rejected");
        assert!(matches!(error, PcapError::NotPcap { magic: 0x0a0d_0d0a }));
        assert!(error
            .to_string()
            .starts_with("not a pcap file (magic 0x0a0d0d0a)"));
        let error = PcapReader::new(&b"hello, world\n"[..]).expect_err("rejected");
        assert!(matches!(error, PcapError::NotPcap { magic: 0x6865_6c6c }));
    }

    #[test]
    fn short_files_are_rejected() {
        let error = PcapReader::new(&[][..]).expect_err("rejected");
        assert!(matches!(error, PcapError::TruncatedHeader { length: 0 }));
        assert_eq!(error.to_string(), "empty file: not a pcap capture");
        let error = PcapReader::new(&TINY_LE[..10]).expect_err("rejected");
        assert!(matches!(error, PcapError::TruncatedHeader { length: 10 }));
        let error = PcapReader::new(&[1, 2][..]).expect_err("rejected");
        assert!(matches!(error, PcapError::TruncatedHeader { length: 2 }));
    }

    #[test]
    fn header_only_file_has_no_records() {
        let (_, records) = read_all(&TINY_LE[..24]);
        assert!(records.is_empty());
    }

    #[test]
    fn wrong_link_type_is_named() {
        let mut bytes = TINY_LE;
        bytes[20..24].copy_from_slice(&113u32.to_le_bytes());
        let error = PcapReader::new(&bytes[..]).expect_err("rejected");
        assert!(matches!(
            error,
            PcapError::UnsupportedLinkType { link_type: 113 }
        ));
        assert_eq!(
            error.to_string(),
            "unsupported link type 113 (Linux cooked): only Ethernet captures (DLT_EN10MB, 1) are supported"
        );
    }

    #[test]
    fn fcs_bits_of_the_link_type_are_not_the_link_type() {
        let mut bytes = TINY_LE;
        bytes[20..24].copy_from_slice(&0x3000_0001u32.to_le_bytes());
        assert_eq!(read_all(&bytes).0.fcs_len, None);
        bytes[20..24].copy_from_slice(&0x4400_0001u32.to_le_bytes());
        let (header, records) = read_all(&bytes);
        assert_eq!((header.link_type, header.fcs_len), (1, Some(8)));
        assert_eq!(records.len(), 2);
    }

    #[test]
    fn unsupported_version_is_rejected() {
        let mut bytes = TINY_LE;
        bytes[4] = 1;
        assert!(matches!(
            PcapReader::new(&bytes[..]),
            Err(PcapError::UnsupportedVersion { major: 1, minor: 4 })
        ));
    }

    #[test]
    fn huge_caplen_is_rejected_without_allocating() {
        let mut bytes = TINY_LE;
        bytes[24 + 8..24 + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let (_, records) = read_all(&bytes);
        assert_eq!(records.len(), 1);
        let error = records[0].as_ref().expect_err("rejected");
        assert!(matches!(
            error,
            PcapError::RecordTooLarge {
                record: 1,
                offset: 24,
                caplen: 0xffff_fff0,
                limit: MAX_RECORD_LEN
            }
        ));
        assert!(error.to_string().contains("corrupt"));
    }

    #[test]
    fn caplen_beyond_snaplen_is_clipped_like_libpcap() {
        let mut bytes = TINY_LE;
        bytes[16..20].copy_from_slice(&2u32.to_le_bytes());
        let mut reader = PcapReader::new(&bytes[..]).expect("header");
        let first = reader.next().expect("one").expect("valid");
        assert_eq!(
            (first.data.as_slice(), first.original_len),
            (&[0xaa, 0xbb][..], 3)
        );
        let second = reader.next().expect("two").expect("valid");
        assert_eq!(second.data, [1, 2]);
        assert!(reader.next().is_none());
        assert_eq!(
            (reader.clipped_records(), reader.truncated_records()),
            (2, 2)
        );
        assert_eq!(reader.position(), bytes.len() as u64);
    }

    #[test]
    fn writer_writes_golden_bytes() {
        let mut writer = PcapWriter::new(Vec::new(), Precision::Microsecond).expect("header");
        let time = Timestamp {
            seconds: 16,
            fraction: 32,
            precision: Precision::Microsecond,
        };
        writer
            .write_frame(time, 3, &[0xaa, 0xbb, 0xcc])
            .expect("record");
        let bytes = writer.finish().expect("flush");
        let mut expected = TINY_LE[..24 + 16 + 3].to_vec();
        expected[16..20].copy_from_slice(&MAX_RECORD_LEN.to_le_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn writer_converts_precision() {
        let mut writer = PcapWriter::new(Vec::new(), Precision::Microsecond).expect("header");
        let time = Timestamp {
            seconds: 1,
            fraction: 123_456_789,
            precision: Precision::Nanosecond,
        };
        writer.write_frame(time, 1, &[0]).expect("record");
        let bytes = writer.finish().expect("flush");
        let record = PcapReader::new(&bytes[..])
            .expect("header")
            .next()
            .expect("one")
            .expect("valid");
        assert_eq!(
            record.timestamp,
            Timestamp {
                seconds: 1,
                fraction: 123_456,
                precision: Precision::Microsecond
            }
        );
    }

    #[test]
    fn reader_writer_reader_round_trip() {
        for source in [TINY_LE, TINY_BE] {
            for magic in [[0xa1, 0xb2, 0xc3, 0xd4], [0xa1, 0xb2, 0x3c, 0x4d]] {
                let mut source = source;
                if source[0] == 0xa1 {
                    source[0..4].copy_from_slice(&magic);
                } else {
                    let mut reversed = magic;
                    reversed.reverse();
                    source[0..4].copy_from_slice(&reversed);
                }
                let reader = PcapReader::new(&source[..]).expect("header");
                let precision = reader.header().precision;
                let records: Vec<Record> = reader.collect::<Result<_, _>>().expect("valid");
                let mut writer = PcapWriter::new(Vec::new(), precision).expect("header");
                for record in &records {
                    writer.write_record(record).expect("record");
                }
                let written = writer.finish().expect("flush");
                let again = PcapReader::new(&written[..]).expect("header");
                assert_eq!(again.header().precision, precision);
                assert_eq!(again.header().byte_order, ByteOrder::LittleEndian);
                let reread: Vec<Record> = again.collect::<Result<_, _>>().expect("valid");
                assert_eq!(reread, records);
            }
        }
    }
}
