//! A reader of pcap and pcapng capture files, and writers of both.
//!
//! [`PcapReader`] tells the format by the file's first four bytes:
//!
//! * classic pcap, both timestamp precisions (magic `a1b2c3d4`,
//!   microseconds, and `a1b23c4d`, nanoseconds) in either byte order;
//! * pcapng (a section header block, `0a0d0d0a`), each section in its own
//!   byte order, every interface of it, timestamps of any `if_tsresol`
//!   delivered in nanoseconds (see `pcapng_reader.rs` for the blocks).
//!
//! It delivers Ethernet frames: frames of Linux cooked captures
//! (`tcpdump -i any`: `LINUX_SLL`, `LINUX_SLL2`) and raw IP captures get an
//! Ethernet header rebuilt (see [`link`] for how); frames of any other
//! link type, or that cannot be rebuilt, are skipped and counted per
//! reason ([`PcapReader::skipped`]), and never stop the read.
//!
//! It is an iterator of `Result<Record, PcapError>`: when a file is cut
//! off or corrupt, every record before the damage is still delivered, then
//! one error says which record or block failed and at which byte offset,
//! then nothing.
//!
//! The writers: [`PcapWriter`], little-endian classic pcap of either
//! precision; [`pcapng::PcapngWriter`], what `xdpath capture -w` writes.
//!
//! # Limits
//!
//! A record's captured length is trusted only up to [`MAX_RECORD_LEN`]
//! (256 KiB), a pcapng block's length up to [`MAX_BLOCK_LEN`] (16 MiB): a
//! corrupt length field must not make us allocate gigabytes. Like libpcap,
//! a record that claims more bytes than the snapshot length (of the file,
//! or of the pcapng interface) but no more than that limit is delivered cut
//! to the snapshot length, and the rest of its bytes are skipped; such
//! records are counted ([`PcapReader::clipped_records`]). Some of tcpdump's
//! own test captures rely on this.

use std::fmt;
use std::io;

mod classic;
mod error;
pub mod link;
pub mod pcapng;
mod pcapng_reader;
mod reader;
mod source;
mod writer;

pub use error::{BlockKind, BlockProblem, PcapError};
pub use link::{
    Interface, SkipReason, SkippedFrames, LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW,
};
pub use reader::{CaptureFormat, PcapReader};
pub use writer::PcapWriter;

/// The largest total length a pcapng block may claim (16 MiB, libpcap's
/// ceiling).
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;

/// The largest captured length a record may claim (256 KiB, libpcap's own
/// ceiling for Ethernet).
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

/// Length of the file header.
pub const FILE_HEADER_LEN: usize = 24;

/// Length of a record header.
pub const RECORD_HEADER_LEN: usize = 16;

/// The captured length of a record of `data`, refused beyond
/// [`MAX_RECORD_LEN`]: readers, this one too, take no longer record.
/// `format` names the file format in the error.
fn captured_len(data: &[u8], format: &str) -> io::Result<u32> {
    u32::try_from(data.len())
        .ok()
        .filter(|length| *length <= MAX_RECORD_LEN)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame longer than the {format} record limit"),
            )
        })
}

const MAGIC_MICROSECOND: u32 = 0xa1b2_c3d4;
const MAGIC_NANOSECOND: u32 = 0xa1b2_3c4d;

/// The link-layer type proper: the low 26 bits of the header's link-type
/// field. The top bits may carry FCS information (see
/// [`FileHeader::fcs_len`]); libpcap masks them the same way.
const LINKTYPE_MASK: u32 = 0x03ff_ffff;
const FCS_PRESENT: u32 = 0x0400_0000;

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

/// What a classic pcap file's header says.
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
/// let header = reader.header().unwrap(); // classic pcap: a header
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
    /// The link type without its FCS bits (frames of types other than
    /// Ethernet are rebuilt or skipped: see [`link`]).
    pub link_type: u32,
    /// Bytes of frame check sequence at the end of each frame, when the
    /// header says so. The reader strips it from every record (a NIC strips
    /// it before XDP sees the frame), lowering the original length too.
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

#[cfg(test)]
mod link_tests;
#[cfg(test)]
mod pcapng_tests;
#[cfg(test)]
mod tests;
