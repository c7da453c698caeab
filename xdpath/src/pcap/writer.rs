//! [`PcapWriter`]: little-endian captures of either precision.

use std::io::{self, Write};

use super::*;

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
        let caplen = super::captured_len(data, "pcap")?;
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
