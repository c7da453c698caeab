//! Golden byte vectors and round trips for the reader and the writer.

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
    let header = *reader.header().expect("classic pcap");
    (header, reader.collect())
}

fn check_tiny(bytes: &[u8], byte_order: ByteOrder) {
    let mut reader = PcapReader::new(bytes).expect("header");
    assert_eq!(
        *reader.header().expect("classic pcap"),
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
    bytes[0..4].copy_from_slice(&[0x0b, 0x0d, 0x0d, 0x0a]);
    let error = PcapReader::new(&bytes[..]).expect_err("rejected");
    assert!(matches!(error, PcapError::NotPcap { magic: 0x0b0d_0d0a }));
    assert_eq!(
        error.to_string(),
        "not a pcap or pcapng file (magic 0x0b0d0d0a)"
    );
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
fn other_link_types_are_skipped_and_counted() {
    let mut bytes = TINY_LE;
    bytes[20..24].copy_from_slice(&105u32.to_le_bytes());
    let mut reader = PcapReader::new(&bytes[..]).expect("opened");
    assert!(reader.next().is_none());
    let skipped = reader.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(
        skipped[0].to_string(),
        "2 frames skipped: link type 105 (IEEE 802.11)"
    );
    assert_eq!(reader.skipped_frames(), 2);
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

/// A header saying each frame ends with a 4-byte FCS: the reader strips
/// it from each record (data and original length), as a NIC does before
/// XDP; the same frames without the bits are read whole.
#[test]
fn a_frame_check_sequence_is_stripped_as_a_nic_strips_it() {
    let (_, plain) = read_all(&TINY_LE);
    let mut bytes = TINY_LE;
    bytes[20..24].copy_from_slice(&(0x0400_0000u32 | 2 << 28 | 1).to_le_bytes());
    let (header, stripped) = read_all(&bytes);
    assert_eq!(header.fcs_len, Some(4));
    assert_eq!(stripped.len(), plain.len());
    for (plain, stripped) in plain.iter().zip(&stripped) {
        let (plain, stripped) = (
            plain.as_ref().expect("a record"),
            stripped.as_ref().expect("a record"),
        );
        let kept = plain.original_len.saturating_sub(4) as usize;
        assert_eq!(stripped.data, plain.data[..kept.min(plain.data.len())]);
        assert_eq!(stripped.original_len, plain.original_len.saturating_sub(4));
    }
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
            let precision = reader.precision();
            let records: Vec<Record> = reader.collect::<Result<_, _>>().expect("valid");
            let mut writer = PcapWriter::new(Vec::new(), precision).expect("header");
            for record in &records {
                writer.write_record(record).expect("record");
            }
            let written = writer.finish().expect("flush");
            let again = PcapReader::new(&written[..]).expect("header");
            assert_eq!(again.precision(), precision);
            assert_eq!(
                again.header().expect("classic pcap").byte_order,
                ByteOrder::LittleEndian
            );
            let reread: Vec<Record> = again.collect::<Result<_, _>>().expect("valid");
            assert_eq!(reread, records);
        }
    }
}
