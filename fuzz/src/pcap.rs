//! Capture files: the pcap reader on any bytes, and the pcapng writer on
//! any sequence of interfaces, packets and samples, its output walked
//! block by block.

use xdpath::observe::capture::write_sample;
use xdpath::observe::Sample;
use xdpath::pcap::pcapng::PcapngWriter;
use xdpath::pcap::{PcapReader, PcapWriter, Record, MAX_RECORD_LEN};
use xdpath_core::observe::RecordMeta;

use crate::assert_one_line;

/// The capture reader on any bytes (classic pcap, pcapng or neither): no
/// panic; records numbered upwards from 1 (frames the reader skips keep
/// their numbers), none over the record limit; one error at most, then
/// nothing; what was read written back as pcap (same precision) reads back
/// the same.
pub fn pcap_reader(data: &[u8]) {
    let Ok(mut reader) = PcapReader::new(data) else {
        return;
    };
    let precision = reader.precision();
    let mut records: Vec<Record> = Vec::new();
    let mut last = 0;
    for item in reader.by_ref() {
        match item {
            Ok(record) => {
                assert!(record.number > last, "record numbers go up");
                last = record.number;
                assert!(record.data.len() <= MAX_RECORD_LEN as usize);
                records.push(record);
            }
            Err(error) => assert_one_line(&error.to_string()),
        }
    }
    assert!(reader.next().is_none(), "the reader goes on after its end");
    assert!(reader.position() <= data.len() as u64);
    // Every frame read is a record or skipped: the last record's number is
    // no higher.
    assert!(records.len() as u64 + reader.skipped_frames() >= last);
    for skipped in reader.skipped() {
        assert_one_line(&skipped.to_string());
    }
    let mut writer = PcapWriter::new(Vec::new(), precision).expect("a writer over memory");
    for record in &records {
        writer
            .write_record(record)
            .expect("a record read is writable");
    }
    let written = writer.finish().expect("flushed");
    let again: Vec<Record> = PcapReader::new(written.as_slice())
        .expect("what we wrote opens")
        .collect::<Result<_, _>>()
        .expect("what we wrote reads");
    assert_eq!(again.len(), records.len());
    for (read, reread) in records.iter().zip(&again) {
        assert_eq!(
            (&read.data, read.original_len, read.timestamp),
            (&reread.data, reread.original_len, reread.timestamp)
        );
    }
}

/// The link types the pcapng target's interfaces take: Ethernet, the
/// cooked and raw IP ones the reader rebuilds, and one it skips.
const LINK_TYPES: [u16; 7] = [1, 113, 276, 101, 228, 229, 105];

/// The capture reader on pcapng: a little-endian section header and one
/// to four interfaces (link types and `if_tsresol` from the first bytes),
/// then the input as the blocks (so that the fuzzer spends its time on
/// blocks, not on finding the magic); then as [`pcap_reader`].
pub fn pcapng_reader(data: &[u8]) {
    let mut input = Input(data);
    let mut file = Vec::new();
    let section = [
        &0x0a0d_0d0au32.to_le_bytes()[..],
        &28u32.to_le_bytes(),
        &0x1a2b_3c4du32.to_le_bytes(),
        &[1, 0, 0, 0],
        &[0xff; 8],
        &28u32.to_le_bytes(),
    ]
    .concat();
    file.extend_from_slice(&section);
    for _ in 0..=input.byte() % 4 {
        let link_type = LINK_TYPES[usize::from(input.byte()) % LINK_TYPES.len()];
        let (snaplen, tsresol) = (u32::from(input.byte()) * 8, input.byte());
        file.extend_from_slice(&1u32.to_le_bytes());
        file.extend_from_slice(&32u32.to_le_bytes());
        file.extend_from_slice(&link_type.to_le_bytes());
        file.extend_from_slice(&[0, 0]);
        file.extend_from_slice(&snaplen.to_le_bytes());
        file.extend_from_slice(&[9, 0, 1, 0, tsresol, 0, 0, 0, 0, 0, 0, 0]);
        file.extend_from_slice(&32u32.to_le_bytes());
    }
    file.extend_from_slice(input.0);
    pcap_reader(&file);
}

/// Bytes taken off the front of the input.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, count: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(count.min(self.0.len()));
        self.0 = rest;
        head
    }

    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    fn u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        let head = self.take(4);
        bytes[..head.len()].copy_from_slice(head);
        u32::from_le_bytes(bytes)
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }

    /// A length-prefixed slice (up to 255 bytes, or 255 × 8).
    fn chunk(&mut self) -> &'a [u8] {
        let length = usize::from(self.byte());
        let length = if length > 250 { length * 8 } else { length };
        self.take(length)
    }
}

/// The pcapng writer driven by the input (interfaces with any name and
/// snapshot length, packets and samples with any interface, time, length,
/// bytes, comment and record metadata): no panic; an error exactly for an
/// interface never added; every block of the output well framed (see
/// [`walk`]).
pub fn pcapng_writer(data: &[u8]) {
    let mut input = Input(data);
    let mut writer = PcapngWriter::new(Vec::new()).expect("a writer over memory");
    while !input.0.is_empty() {
        match input.byte() % 3 {
            0 => {
                let name = String::from_utf8_lossy(input.chunk()).into_owned();
                let snap_len = input.u32();
                writer.add_interface(&name, snap_len).expect("an interface");
            }
            1 => {
                let interface = u32::from(input.byte() % 4);
                let (unix_ns, original_len) = (input.u64(), input.u32());
                let bytes = input.chunk();
                let comment = String::from_utf8_lossy(input.chunk()).into_owned();
                let comment = (!comment.is_empty()).then_some(comment.as_str());
                let result = writer.write_packet(interface, unix_ns, original_len, bytes, comment);
                assert_eq!(
                    result.is_ok(),
                    interface < writer.interfaces(),
                    "{result:?}"
                );
            }
            _ => {
                let interface = u32::from(input.byte() % 4);
                let mut meta = RecordMeta::parse(input.take(40))
                    .map(|(meta, _)| meta)
                    .unwrap_or_default();
                let bytes = input.chunk().to_vec();
                meta.captured_len = bytes.len() as u16;
                let sample = Sample {
                    meta,
                    unix_ns: input.u64(),
                    data: bytes,
                };
                let result = write_sample(&mut writer, interface, &sample);
                assert_eq!(
                    result.is_ok(),
                    interface < writer.interfaces(),
                    "{result:?}"
                );
            }
        }
    }
    let (interfaces, packets) = (writer.interfaces(), writer.packets());
    let bytes = writer.finish().expect("flushed");
    assert_eq!(walk(&bytes), (interfaces, packets));
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Walks a pcapng file as a reader would (asserting as it goes): blocks
/// framed by equal leading and trailing lengths that are multiples of 4, a
/// section header first, packets only on interfaces described before them
/// with captured ≤ original length, options that fit their block and end
/// with an end-of-options. Returns the interfaces and packets seen.
pub fn walk(file: &[u8]) -> (u32, u64) {
    let (mut at, mut interfaces, mut packets) = (0usize, 0u32, 0u64);
    while at < file.len() {
        assert!(file.len() - at >= 12, "a block head at byte {at}");
        let (kind, length) = (u32_at(file, at), u32_at(file, at + 4) as usize);
        assert!(
            length >= 12 && length % 4 == 0 && at + length <= file.len(),
            "block at {at}: {length}"
        );
        assert_eq!(
            u32_at(file, at + length - 4) as usize,
            length,
            "trailing length at {at}"
        );
        let body = &file[at + 8..at + length - 4];
        match kind {
            0x0a0d_0d0a => {
                assert_eq!(at, 0, "one section, first");
                assert_eq!(u32_at(body, 0), 0x1a2b_3c4d);
                walk_options(&body[16..], &[1, 2, 3, 4]);
            }
            1 => {
                assert!(at > 0);
                interfaces += 1;
                walk_options(&body[8..], &[1, 2, 3]);
            }
            6 => {
                assert!(
                    u32_at(body, 0) < interfaces,
                    "a packet on an undescribed interface"
                );
                let (captured, original) = (u32_at(body, 12) as usize, u32_at(body, 16) as usize);
                assert!(
                    captured <= original,
                    "captured {captured} > original {original}"
                );
                let padded = captured.div_ceil(4) * 4;
                assert!(20 + padded <= body.len(), "packet data beyond its block");
                walk_options(&body[20 + padded..], &[1]);
                packets += 1;
            }
            other => panic!("unexpected block type {other:#x} at {at}"),
        }
        at += length;
    }
    (interfaces, packets)
}

/// Options: code, length, value padded to 4; the values of `text` codes
/// UTF-8; the last one end-of-options (or none at all).
fn walk_options(options: &[u8], text: &[u16]) {
    let mut at = 0;
    while at < options.len() {
        assert!(options.len() - at >= 4, "an option head");
        let (code, length) = (u16_at(options, at), usize::from(u16_at(options, at + 2)));
        if code == 0 {
            assert_eq!(
                (length, at + 4),
                (0, options.len()),
                "end-of-options ends the block"
            );
            return;
        }
        let value = options
            .get(at + 4..at + 4 + length)
            .expect("an option's value in its block");
        if text.contains(&code) {
            assert!(
                std::str::from_utf8(value).is_ok(),
                "text option {code} is not UTF-8"
            );
        }
        at += 4 + length.div_ceil(4) * 4;
    }
    assert_eq!(at, options.len(), "options end at the block's end");
}
