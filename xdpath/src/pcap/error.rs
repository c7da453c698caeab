//! [`PcapError`]: why a capture could not be read, with where.

use std::fmt;
use std::io;

use super::FILE_HEADER_LEN;

/// Why a capture could not be read.
///
/// Every message is one line a user can act on; errors inside a pcapng
/// file name the block's kind and byte offset.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::{PcapError, PcapReader};
/// let error = PcapReader::new(&b"%PDF-1.7 not a capture"[..]).unwrap_err();
/// assert!(matches!(error, PcapError::NotPcap { magic: 0x25504446 }));
/// assert_eq!(
///     error.to_string(),
///     "not a pcap or pcapng file (magic 0x25504446)",
/// );
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// The file starts with neither a pcap magic number nor a pcapng
    /// section header.
    #[error("not a pcap or pcapng file (magic 0x{magic:08x})")]
    NotPcap {
        /// The first four bytes, read big-endian.
        magic: u32,
    },
    /// The file ends inside its 24-byte header (or its first 4 bytes).
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
        /// Byte offset of the record's header (pcapng: its block) in the file.
        offset: u64,
        /// The captured length the record header claims.
        caplen: u32,
        /// The limit, [`MAX_RECORD_LEN`](super::MAX_RECORD_LEN).
        limit: u32,
    },
    /// A pcapng block whose total length cannot be (below 12, not a
    /// multiple of 4, or beyond [`MAX_BLOCK_LEN`](super::MAX_BLOCK_LEN)).
    #[error(
        "pcapng {kind} at byte offset {offset} claims a length of {length} bytes, not a multiple of 4 from 12 to {}: the file is corrupt",
        super::MAX_BLOCK_LEN
    )]
    BlockLength {
        /// Byte offset of the block.
        offset: u64,
        /// The block's type.
        kind: BlockKind,
        /// The length it claims.
        length: u32,
    },
    /// A pcapng block whose trailing length differs from its leading one.
    #[error(
        "pcapng {kind} at byte offset {offset} ends with a length of {trailing} bytes, not the {leading} it starts with: the file is corrupt"
    )]
    BlockTrailer {
        /// Byte offset of the block.
        offset: u64,
        /// The block's type.
        kind: BlockKind,
        /// The length at its start.
        leading: u32,
        /// The length at its end.
        trailing: u32,
    },
    /// The file ends inside a pcapng block.
    #[error(
        "pcapng {kind} at byte offset {offset} is cut off: the file ends {} early",
        count(*missing, "byte")
    )]
    TruncatedBlock {
        /// Byte offset of the block.
        offset: u64,
        /// The block's type.
        kind: BlockKind,
        /// How many more bytes the block needs.
        missing: u64,
    },
    /// A pcapng block whose content contradicts itself or the file.
    #[error("pcapng {kind} at byte offset {offset}: {problem}: the file is corrupt")]
    BadBlock {
        /// Byte offset of the block.
        offset: u64,
        /// The block's type.
        kind: BlockKind,
        /// What is wrong.
        problem: BlockProblem,
    },
    /// Reading or writing failed.
    #[error("{source}")]
    Io {
        /// The I/O error.
        #[from]
        source: io::Error,
    },
}

/// What is wrong inside a pcapng block ([`PcapError::BadBlock`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BlockProblem {
    /// The section header's byte-order magic is neither `1a2b3c4d` read
    /// big- nor little-endian.
    #[error("byte-order magic 0x{magic:08x} is not 0x1a2b3c4d in either byte order")]
    ByteOrderMagic {
        /// The four bytes, read big-endian.
        magic: u32,
    },
    /// A section version other than 1.0 or 1.2.
    #[error("unsupported pcapng version {major}.{minor} (only 1.0 and 1.2 are)")]
    Version {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// The block is shorter than its fixed fields.
    #[error("{length} bytes, shorter than the {minimum} its fixed fields take")]
    TooShort {
        /// The block's total length.
        length: u32,
        /// The least a block of its type has.
        minimum: u32,
    },
    /// The captured bytes run past the block's end.
    #[error("{caplen} captured bytes do not fit in the block")]
    CapturedBeyondBlock {
        /// The captured length.
        caplen: u32,
    },
    /// An option's length runs past the block's end.
    #[error("option {code} of {length} bytes runs past the block's end")]
    OptionBeyondBlock {
        /// The option code.
        code: u16,
        /// Its claimed length.
        length: u16,
    },
    /// An option of the wrong length for its code.
    #[error("option {code} has {length} bytes, not {expected}")]
    OptionLength {
        /// The option code.
        code: u16,
        /// Its length.
        length: u16,
        /// The length the code takes.
        expected: u16,
    },
    /// A timestamp resolution finer than nanoseconds can be counted in 64
    /// bits (decimal exponent above 19, binary above 63).
    #[error("timestamp resolution byte 0x{tsresol:02x} is out of range")]
    Resolution {
        /// The `if_tsresol` byte.
        tsresol: u8,
    },
    /// A packet on an interface its section has not described.
    #[error("packet on interface {interface}, but the section describes {}", count(u64::from(*described), "interface"))]
    UnknownInterface {
        /// The interface id the packet names.
        interface: u32,
        /// Interfaces described so far in the section.
        described: u32,
    },
}

/// A pcapng block's type, named in errors.
///
/// # Examples
///
/// ```
/// use xdpath::pcap::BlockKind;
/// assert_eq!(BlockKind(6).to_string(), "enhanced packet block");
/// assert_eq!(BlockKind(0x1234).to_string(), "block of type 0x00001234");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockKind(pub u32);

impl fmt::Display for BlockKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            0x0A0D_0D0A => "section header block",
            1 => "interface description block",
            2 => "packet block",
            3 => "simple packet block",
            4 => "name resolution block",
            5 => "interface statistics block",
            6 => "enhanced packet block",
            10 => "decryption secrets block",
            0x0BAD | 0x4000_0BAD => "custom block",
            other => return write!(formatter, "block of type 0x{other:08x}"),
        };
        formatter.write_str(name)
    }
}

/// `1 byte`, `2 bytes`.
pub(super) fn count(number: u64, noun: &str) -> String {
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

/// A link type's number and name: `113 (Linux cooked)`.
pub(super) fn link_type_label(link_type: u32) -> String {
    format!("{link_type} ({})", link_type_name(link_type))
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
        147..=162 => "user-defined",
        192 => "PPI",
        228 => "raw IPv4",
        229 => "raw IPv6",
        276 => "Linux cooked v2",
        _ => "not Ethernet",
    }
}
