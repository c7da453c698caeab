//! Linux cooked, raw IP and other link types through the reader, and
//! the reader on random and damaged bytes.

use super::pcapng_tests::{read, BE, LE};
use super::*;

/// An IPv4 header's first bytes, enough to tell.
const IP4: [u8; 4] = [0x45, 0, 0, 20];
const IP6: [u8; 4] = [0x60, 0, 0, 0];
const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn sll(packet_type: u16, address_len: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut header = [&packet_type.to_be_bytes()[..], &1u16.to_be_bytes()].concat();
    header.extend_from_slice(&address_len.to_be_bytes());
    header.extend_from_slice(&MAC);
    header.extend_from_slice(&[0, 0]);
    header.extend_from_slice(&protocol.to_be_bytes());
    [&header[..], payload].concat()
}

fn sll2(packet_type: u8, address_len: u8, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut header = [&protocol.to_be_bytes()[..], &[0, 0], &7u32.to_be_bytes()].concat();
    header.extend_from_slice(&1u16.to_be_bytes());
    header.extend_from_slice(&[packet_type, address_len]);
    header.extend_from_slice(&MAC);
    header.extend_from_slice(&[0, 0]);
    [&header[..], payload].concat()
}

fn ethernet(destination: [u8; 6], source: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    [&destination[..], &source, &ethertype.to_be_bytes(), payload].concat()
}

/// One interface per link type, packets on them; what comes out.
fn replay(packets: &[(u16, Vec<u8>)]) -> (Vec<Record>, Vec<SkippedFrames>) {
    let mut file = LE.section();
    let mut types: Vec<u16> = Vec::new();
    for (link_type, _) in packets {
        if !types.contains(link_type) {
            types.push(*link_type);
            file.extend(LE.interface(*link_type, 0, &[]));
        }
    }
    for (link_type, data) in packets {
        let interface = types
            .iter()
            .position(|t| t == link_type)
            .expect("described");
        file.extend(LE.packet(interface as u32, 0, data.len() as u32 + 2, data));
    }
    let (records, error, skipped) = read(&file);
    assert!(error.is_none(), "{error:?}");
    (records, skipped)
}

#[test]
fn cooked_and_raw_frames_become_ethernet() {
    let broadcast = [0xff; 6];
    let local = link::COOKED_DESTINATION;
    let cases: Vec<(u16, Vec<u8>, Vec<u8>)> = vec![
        (
            1,
            ethernet(MAC, MAC, 0x0800, &IP4),
            ethernet(MAC, MAC, 0x0800, &IP4),
        ),
        (
            113,
            sll(0, 6, 0x0800, &IP4),
            ethernet(local, MAC, 0x0800, &IP4),
        ),
        (
            113,
            sll(1, 6, 0x0806, &[1, 2]),
            ethernet(broadcast, MAC, 0x0806, &[1, 2]),
        ),
        (
            113,
            sll(4, 0, 0x86dd, &IP6),
            ethernet(local, [0; 6], 0x86dd, &IP6),
        ),
        (
            113,
            sll(0, 6, 0x8100, &[0, 5, 8, 0]),
            ethernet(local, MAC, 0x8100, &[0, 5, 8, 0]),
        ),
        (
            276,
            sll2(0, 6, 0x0800, &IP4),
            ethernet(local, MAC, 0x0800, &IP4),
        ),
        (
            276,
            sll2(1, 6, 0x86dd, &IP6),
            ethernet(broadcast, MAC, 0x86dd, &IP6),
        ),
        (
            276,
            sll2(4, 8, 0x0800, &IP4),
            ethernet(local, [0; 6], 0x0800, &IP4),
        ),
        (
            101,
            IP4.to_vec(),
            ethernet(local, link::RAW_IP_SOURCE, 0x0800, &IP4),
        ),
        (
            101,
            IP6.to_vec(),
            ethernet(local, link::RAW_IP_SOURCE, 0x86dd, &IP6),
        ),
        (
            228,
            IP4.to_vec(),
            ethernet(local, link::RAW_IP_SOURCE, 0x0800, &IP4),
        ),
        (
            229,
            IP6.to_vec(),
            ethernet(local, link::RAW_IP_SOURCE, 0x86dd, &IP6),
        ),
    ];
    let packets: Vec<(u16, Vec<u8>)> = cases
        .iter()
        .map(|(t, data, _)| (*t, data.clone()))
        .collect();
    let (records, skipped) = replay(&packets);
    assert!(skipped.is_empty(), "{skipped:?}");
    for ((link_type, input, expected), record) in cases.iter().zip(&records) {
        assert_eq!(&record.data, expected, "link type {link_type}");
        // Whole on the wire (2 more bytes) before, whole after.
        assert_eq!(
            i64::from(record.original_len) - record.data.len() as i64,
            2,
            "link type {link_type}, {} bytes in",
            input.len()
        );
    }
}

#[test]
fn frames_that_cannot_be_ethernet_are_counted_per_reason() {
    let packets = vec![
        (113, sll(0, 6, 0x0004, &[0xaa; 3])), // 802.2 LLC
        (113, sll(0, 6, 0x0004, &[0xaa; 3])),
        (113, vec![0; 10]),                 // cut inside the header
        (276, sll2(0, 6, 0x000c, &[0; 8])), // CAN
        (101, vec![0x55, 0, 0, 0]),         // IP version 5
        (105, vec![0; 24]),                 // 802.11
        (1, ethernet(MAC, MAC, 0x0800, &IP4)),
    ];
    let (records, skipped) = replay(&packets);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].number, 7, "numbers count the skipped frames");
    let lines: Vec<String> = skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "2 frames skipped: link type 113 (Linux cooked): protocol 0x0004 is no EtherType on interface 0",
            "1 frame skipped: link type 105 (IEEE 802.11) on interface 3",
            "1 frame skipped: link type 276 (Linux cooked v2): protocol 0x000c is no EtherType on interface 1",
            "1 frame skipped: link type 113 (Linux cooked): frame cut off inside its header on interface 0",
            "1 frame skipped: raw IP frame of IP version 5 on interface 2",
        ]
    );
}

mod random {
    use super::*;
    use proptest::prelude::*;

    /// Reads everything there is; no panic, one error at most, then none.
    fn drain(bytes: &[u8]) {
        let Ok(mut reader) = PcapReader::new(bytes) else {
            return;
        };
        let mut errors = 0;
        for item in reader.by_ref() {
            match item {
                Ok(record) => assert!(record.data.len() <= MAX_RECORD_LEN as usize),
                Err(_) => errors += 1,
            }
        }
        assert!(errors <= 1);
        assert!(reader.next().is_none());
        assert!(reader.position() <= bytes.len() as u64);
    }

    fn valid_file() -> Vec<u8> {
        [
            LE.section(),
            LE.interface(113, 0, &[(9, &[9]), (2, b"any")]),
            LE.packet(0, 5, 40, &[0x55; 30]),
            BE.section(),
            BE.interface(1, 64, &[]),
            BE.block(3, &[0, 0, 0, 20, 1, 2, 3]),
            BE.packet(0, 1, 2, &[1, 2]),
        ]
        .concat()
    }

    proptest! {
        #[test]
        fn random_bytes_after_a_section_header(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            drain(&[&LE.section()[..], &tail].concat());
            drain(&[&BE.section()[..], &tail].concat());
            drain(&tail);
        }

        #[test]
        fn every_cut_and_flipped_byte_of_a_valid_file(cut in 0usize..200, flip in 0usize..200, value: u8) {
            let mut file = valid_file();
            if let Some(byte) = file.get_mut(flip) {
                *byte = value;
            }
            file.truncate(cut.min(file.len()));
            drain(&file);
        }
    }
}
