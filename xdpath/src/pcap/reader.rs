//! [`PcapReader`]: records out of a capture, one `Result` each.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::*;

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
