//! The pcapng reader: golden bytes for every block type, both byte orders,
//! several sections, timestamp resolutions, errors with their offsets, and
//! random bytes.

use super::pcapng::PcapngWriter;
use super::*;

/// A little-endian file by hand: a section header (version 1.0, section
/// length -1, no options), an Ethernet interface (snaplen 0xffff, no
/// options: microsecond timestamps), one enhanced packet block of 5 bytes.
const GOLDEN_LE: [u8; 28 + 20 + 40] = [
    0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, // SHB, 28 bytes
    0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, // byte-order magic, 1.0
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // section length -1
    28, 0, 0, 0, //
    1, 0, 0, 0, 20, 0, 0, 0, // IDB, 20 bytes
    1, 0, 0, 0, 0xff, 0xff, 0, 0, // Ethernet, snaplen 65535
    20, 0, 0, 0, //
    6, 0, 0, 0, 40, 0, 0, 0, // EPB, 40 bytes
    0, 0, 0, 0, // interface 0
    0, 0, 0, 0, 0x15, 0xcd, 0x5b, 0x07, // 123456789 µs
    5, 0, 0, 0, 9, 0, 0, 0, // caplen 5, len 9
    1, 2, 3, 4, 5, 0, 0, 0, // data, padded
    40, 0, 0, 0,
];

pub(super) fn read(bytes: &[u8]) -> (Vec<Record>, Option<PcapError>, Vec<SkippedFrames>) {
    let mut reader = PcapReader::new(bytes).expect("opens");
    let (mut records, mut error) = (Vec::new(), None);
    for item in reader.by_ref() {
        match item {
            Ok(record) => records.push(record),
            Err(failure) => error = Some(failure),
        }
    }
    (records, error, reader.skipped())
}

fn ns(seconds: u32, fraction: u32) -> Timestamp {
    Timestamp {
        seconds,
        fraction,
        precision: Precision::Nanosecond,
    }
}

/// Builds blocks in one byte order.
#[derive(Clone, Copy)]
pub(super) struct Order(pub(super) ByteOrder);

impl Order {
    pub(super) fn u16(self, value: u16) -> [u8; 2] {
        match self.0 {
            ByteOrder::LittleEndian => value.to_le_bytes(),
            ByteOrder::BigEndian => value.to_be_bytes(),
        }
    }

    pub(super) fn u32(self, value: u32) -> [u8; 4] {
        match self.0 {
            ByteOrder::LittleEndian => value.to_le_bytes(),
            ByteOrder::BigEndian => value.to_be_bytes(),
        }
    }

    pub(super) fn block(self, block_type: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().div_ceil(4) * 4, 0);
        let total = self.u32(body.len() as u32 + 12);
        [&self.u32(block_type)[..], &total, &body, &total].concat()
    }

    pub(super) fn section(self) -> Vec<u8> {
        let body = [
            &self.u32(0x1a2b_3c4d)[..],
            &self.u16(1),
            &self.u16(0),
            &[0xff; 8],
        ]
        .concat();
        self.block(0x0a0d_0d0a, &body)
    }

    /// An interface with `options` (code, value) and an end of options.
    pub(super) fn interface(
        self,
        link_type: u16,
        snaplen: u32,
        options: &[(u16, &[u8])],
    ) -> Vec<u8> {
        let mut body = [&self.u16(link_type)[..], &[0, 0], &self.u32(snaplen)].concat();
        for (code, value) in options {
            body.extend_from_slice(&self.u16(*code));
            body.extend_from_slice(&self.u16(value.len() as u16));
            body.extend_from_slice(value);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        if !options.is_empty() {
            body.extend_from_slice(&[0; 4]);
        }
        self.block(1, &body)
    }

    pub(super) fn packet(self, interface: u32, units: u64, original: u32, data: &[u8]) -> Vec<u8> {
        let body = [
            &self.u32(interface)[..],
            &self.u32((units >> 32) as u32),
            &self.u32(units as u32),
            &self.u32(data.len() as u32),
            &self.u32(original),
            data,
        ]
        .concat();
        self.block(6, &body)
    }
}

pub(super) const LE: Order = Order(ByteOrder::LittleEndian);
pub(super) const BE: Order = Order(ByteOrder::BigEndian);

#[test]
fn golden_little_endian_file() {
    let mut reader = PcapReader::new(&GOLDEN_LE[..]).expect("opens");
    assert_eq!(reader.format(), CaptureFormat::Pcapng);
    assert_eq!(reader.precision(), Precision::Nanosecond);
    assert!(reader.header().is_none());
    let record = reader.next().expect("a record").expect("valid");
    assert_eq!(record.number, 1);
    assert_eq!(record.data, [1, 2, 3, 4, 5]);
    assert_eq!(record.original_len, 9);
    assert_eq!(record.timestamp, ns(123, 456_789_000));
    assert!(reader.next().is_none());
    assert_eq!(reader.position(), GOLDEN_LE.len() as u64);
    assert_eq!(reader.truncated_records(), 1);
}

#[test]
fn big_endian_matches_little_endian() {
    let build = |order: Order| {
        [
            order.section(),
            order.interface(1, 0xffff, &[]),
            order.packet(0, 123_456_789, 9, &[1, 2, 3, 4, 5]),
        ]
        .concat()
    };
    assert_eq!(build(LE), GOLDEN_LE);
    let (big, error, _) = read(&build(BE));
    assert!(error.is_none());
    assert_eq!(big, read(&GOLDEN_LE).0);
}

#[test]
fn sections_have_their_own_byte_order_and_interfaces() {
    let file = [
        LE.section(),
        LE.interface(1, 0, &[]),
        LE.interface(1, 0, &[]),
        LE.packet(1, 1_000_000, 4, &[1; 4]),
        BE.section(),
        BE.interface(1, 0, &[(9, &[9])]),
        BE.packet(0, 2_000_000_001, 4, &[2; 4]),
        BE.packet(1, 0, 4, &[3; 4]),
    ]
    .concat();
    let (records, error, _) = read(&file);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].timestamp, ns(1, 0));
    assert_eq!((records[1].timestamp, records[1].data[0]), (ns(2, 1), 2));
    let third_packet = file.len() - BE.packet(1, 0, 4, &[3; 4]).len();
    match error {
        Some(PcapError::BadBlock {
            offset,
            kind: BlockKind(6),
            problem:
                BlockProblem::UnknownInterface {
                    interface: 1,
                    described: 1,
                },
        }) => assert_eq!(offset, third_packet as u64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn timestamp_resolutions_and_offsets() {
    let offset = 100i64.to_le_bytes();
    let file = [
        LE.section(),
        LE.interface(1, 0, &[(9, &[3])]), // milliseconds
        LE.interface(1, 0, &[(9, &[0x8a]), (14, &offset)]), // 2^-10 s, +100 s
        LE.interface(1, 0, &[(9, &[12])]), // picoseconds
        LE.packet(0, 1_500, 4, &[0; 4]),
        LE.packet(1, 3 * 1024 + 512, 4, &[0; 4]),
        LE.packet(2, 7_000_000_000_123, 4, &[0; 4]),
    ]
    .concat();
    let (records, error, _) = read(&file);
    assert!(error.is_none(), "{error:?}");
    let times: Vec<Timestamp> = records.iter().map(|record| record.timestamp).collect();
    assert_eq!(times, [ns(1, 500_000_000), ns(103, 500_000_000), ns(7, 0)]);
}

#[test]
fn simple_obsolete_and_other_blocks() {
    let spb = [&LE.u32(10)[..], &[7; 10]].concat();
    let obsolete_packet = [
        &LE.u16(0)[..],
        &LE.u16(0), // drops
        &LE.u32(0),
        &LE.u32(2_000_000),
        &LE.u32(3),
        &LE.u32(3),
        &[8; 3],
    ]
    .concat();
    let file = [
        LE.section(),
        LE.block(4, &[0; 8]),           // name resolution
        LE.interface(1, 6, &[]),        // snaplen 6
        LE.block(3, &spb),              // simple packet: 6 of 10 bytes
        LE.block(5, &[0; 12]),          // interface statistics
        LE.block(10, &[0; 8]),          // decryption secrets
        LE.block(0x0bad, &[0; 8]),      // custom
        LE.block(0x4000_0bad, &[0; 4]), // custom, not to copy
        LE.block(0x1234_5678, &[]),     // unknown
        LE.block(2, &obsolete_packet),  // obsolete packet block
    ]
    .concat();
    let (records, error, skipped) = read(&file);
    assert!(error.is_none(), "{error:?}");
    assert!(skipped.is_empty());
    assert_eq!(records.len(), 2);
    assert_eq!(
        (records[0].data.as_slice(), records[0].original_len),
        (&[7u8; 6][..], 10)
    );
    assert_eq!(records[0].timestamp, ns(0, 0));
    assert_eq!(
        (records[1].number, records[1].data.as_slice()),
        (2, &[8u8; 3][..])
    );
    assert_eq!(records[1].timestamp, ns(2, 0));
}

#[test]
fn enhanced_packets_beyond_the_snapshot_length_are_clipped() {
    let file = [
        LE.section(),
        LE.interface(1, 4, &[]),
        LE.packet(0, 0, 8, &[1, 2, 3, 4, 5, 6]),
    ]
    .concat();
    let mut reader = PcapReader::new(&file[..]).expect("opens");
    let record = reader.next().expect("one").expect("valid");
    assert_eq!(record.data, [1, 2, 3, 4]);
    assert_eq!(
        (reader.clipped_records(), reader.truncated_records()),
        (1, 1)
    );
}

/// Each damage, the error it gives, where.
#[test]
fn every_damage_is_an_error_with_its_offset() {
    let head = [LE.section(), LE.interface(1, 0, &[])].concat();
    let at = head.len() as u64;
    let good = LE.packet(0, 0, 4, &[1; 4]);
    let damaged = |change: &dyn Fn(&mut Vec<u8>)| {
        let mut block = good.clone();
        change(&mut block);
        let file = [&head[..], &good, &block].concat();
        let (records, error, _) = read(&file);
        assert_eq!(records.len(), 1, "the packet before the damage");
        let error = error.expect("an error");
        assert!(!error.to_string().contains('\n'));
        error
    };
    let at2 = at + good.len() as u64;
    let error = damaged(&|block| block[4] = 30);
    assert!(
        matches!(error, PcapError::BlockLength { offset, length: 30, .. } if offset == at2),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("pcapng enhanced packet block at byte offset {at2} claims a length of 30 bytes, not a multiple of 4 from 12 to 16777216: the file is corrupt")
    );
    let error = damaged(&|block| *block.last_mut().expect("a byte") = 1);
    assert!(
        matches!(error, PcapError::BlockTrailer { leading: 36, .. }),
        "{error:?}"
    );
    let error = damaged(&|block| block.truncate(30));
    assert!(
        matches!(error, PcapError::TruncatedBlock { offset, missing: 6, .. } if offset == at2),
        "{error:?}"
    );
    let error = damaged(&|block| block[20] = 9);
    assert!(
        matches!(
            error,
            PcapError::BadBlock {
                problem: BlockProblem::CapturedBeyondBlock { caplen: 9 },
                ..
            }
        ),
        "{error:?}"
    );
    let error = damaged(&|block| block[22] = 0x40);
    assert!(
        matches!(
            error,
            PcapError::RecordTooLarge {
                record: 2,
                caplen: 0x40_0004,
                ..
            }
        ),
        "{error:?}"
    );
    let error = damaged(&|block| block[8] = 3);
    assert!(
        matches!(
            error,
            PcapError::BadBlock {
                problem: BlockProblem::UnknownInterface {
                    interface: 3,
                    described: 1
                },
                ..
            }
        ),
        "{error:?}"
    );
    let error = damaged(&|block| block.truncate(2));
    assert!(
        matches!(error, PcapError::TruncatedBlock { .. }),
        "{error:?}"
    );
}

#[test]
fn bad_section_headers_are_named() {
    let mut magic = LE.section();
    magic[8..12].copy_from_slice(&[1, 2, 3, 4]);
    let error = PcapReader::new(&magic[..]).expect_err("refused");
    assert_eq!(
        error.to_string(),
        "pcapng section header block at byte offset 0: byte-order magic 0x01020304 is not 0x1a2b3c4d in either byte order: the file is corrupt"
    );
    let mut version = LE.section();
    version[12] = 2;
    let error = PcapReader::new(&version[..]).expect_err("refused");
    assert!(
        matches!(
            error,
            PcapError::BadBlock {
                problem: BlockProblem::Version { major: 2, minor: 0 },
                ..
            }
        ),
        "{error:?}"
    );
    let error = PcapReader::new(&GOLDEN_LE[..12]).expect_err("refused");
    assert!(matches!(error, PcapError::TruncatedBlock { offset: 0, .. }));
    let mut option = LE.interface(1, 0, &[(9, &[6])]);
    option[18] = 200; // the option's length, past the block
    let file = [LE.section(), option, LE.packet(0, 0, 1, &[0])].concat();
    let (_, error, _) = read(&file);
    assert!(
        matches!(
            error,
            Some(PcapError::BadBlock {
                offset: 28,
                problem: BlockProblem::OptionBeyondBlock {
                    code: 9,
                    length: 200
                },
                ..
            })
        ),
        "{error:?}"
    );
}

#[test]
fn writer_output_reads_back() {
    let mut writer = PcapngWriter::new(Vec::new()).expect("writer");
    let first = writer.add_interface("eth0", 0).expect("interface");
    let second = writer.add_interface("eth1", 8).expect("interface");
    let frame: Vec<u8> = (0..60).collect();
    let time = 1_700_000_000_123_456_789;
    writer
        .write_packet(first, time, 60, &frame, Some("verdict=drop"))
        .expect("packet");
    writer
        .write_packet(second, time + 1, 64, &frame, None)
        .expect("packet");
    let bytes = writer.finish().expect("finished");
    let (records, error, skipped) = read(&bytes);
    assert!(error.is_none() && skipped.is_empty());
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].data, frame);
    assert_eq!(records[0].timestamp, ns(1_700_000_000, 123_456_789));
    assert_eq!(
        (records[1].data.as_slice(), records[1].original_len),
        (&frame[..8], 64)
    );
    assert_eq!(records[1].timestamp, ns(1_700_000_000, 123_456_790));
}

/// `if_fcslen` (in bits): each frame's last bytes are its frame check
/// sequence, which a NIC strips before XDP sees the frame; the reader
/// strips them too, from the data and the original length.
#[test]
fn an_interfaces_frame_check_sequence_is_stripped() {
    let frame: Vec<u8> = (0..64).collect();
    let file = |options: &[(u16, &[u8])]| {
        [
            LE.section(),
            LE.interface(1, 0xffff, options),
            LE.packet(0, 0, 64, &frame),
        ]
        .concat()
    };
    let (plain, error, _) = read(&file(&[]));
    assert!(error.is_none(), "{error:?}");
    assert_eq!((plain[0].data.len(), plain[0].original_len), (64, 64));
    let (stripped, error, _) = read(&file(&[(13, &[32])]));
    assert!(error.is_none(), "{error:?}");
    assert_eq!(stripped[0].data, frame[..60]);
    assert_eq!(stripped[0].original_len, 60);
}
