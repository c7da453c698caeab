//! Classic pcap: the file header, then records of one link type.

use std::io::{self, Read};

use super::source::{read_full, RawFrame};
use super::*;

/// The records of a classic pcap file, after its header.
#[derive(Debug)]
pub(super) struct ClassicSource<R> {
    pub(super) input: R,
    pub(super) header: FileHeader,
    /// The most bytes a record is delivered with (the snapshot length, or
    /// [`MAX_RECORD_LEN`] when that is 0 or larger).
    clip_len: u32,
    pub(super) offset: u64,
}

impl<R: Read> ClassicSource<R> {
    /// Reads the rest of the file header; `magic` is its first 4 bytes.
    pub(super) fn new(mut input: R, magic: [u8; 4]) -> Result<Self, PcapError> {
        let (byte_order, precision) = match u32::from_be_bytes(magic) {
            MAGIC_MICROSECOND => (ByteOrder::BigEndian, Precision::Microsecond),
            MAGIC_NANOSECOND => (ByteOrder::BigEndian, Precision::Nanosecond),
            _ => match u32::from_le_bytes(magic) {
                MAGIC_MICROSECOND => (ByteOrder::LittleEndian, Precision::Microsecond),
                MAGIC_NANOSECOND => (ByteOrder::LittleEndian, Precision::Nanosecond),
                _ => {
                    return Err(PcapError::NotPcap {
                        magic: u32::from_be_bytes(magic),
                    })
                }
            },
        };
        let mut bytes = [0u8; FILE_HEADER_LEN];
        bytes[..4].copy_from_slice(&magic);
        let length = 4 + read_full(&mut input, &mut bytes[4..])?;
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
        // Top four bits: FCS length in 16-bit words, valid when bit 26 is set.
        let fcs_len = (link_field & FCS_PRESENT != 0).then_some(((link_field >> 28) * 2) as u8);
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
            clip_len: clip_len(snaplen),
            offset: FILE_HEADER_LEN as u64,
        })
    }

    /// The next record, numbered `number`; `None` at the end of the file.
    pub(super) fn next_frame(&mut self, number: u64) -> Result<Option<RawFrame>, PcapError> {
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
        }
        self.offset += RECORD_HEADER_LEN as u64 + u64::from(caplen);
        Ok(Some(RawFrame {
            link_type: self.header.link_type,
            interface: None,
            timestamp,
            original_len,
            data,
            clipped: skipped > 0,
            fcs_len: self.header.fcs_len.unwrap_or(0),
        }))
    }
}

/// The most bytes a record of a capture with snapshot length `snaplen` is
/// delivered with: the snapshot length, or [`MAX_RECORD_LEN`] when that
/// is 0 or larger.
pub(super) fn clip_len(snaplen: u32) -> u32 {
    if snaplen == 0 || snaplen > MAX_RECORD_LEN {
        MAX_RECORD_LEN
    } else {
        snaplen
    }
}
