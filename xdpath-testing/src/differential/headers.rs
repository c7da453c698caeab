//! Header surgery on built frames: fragments, IPv4 options, IPv6
//! extension headers, checksums. Lengths are kept consistent so that the
//! frames stay well formed (mutation breaks them on purpose later).

use xdpath_core::wire::checksum;

/// The 8-byte IPv6 fragment header (next header set on insertion).
pub fn fragment_header(offset: u16, more: bool) -> Vec<u8> {
    let field = (offset << 3) | u16::from(more);
    let mut header = vec![0, 0];
    header.extend_from_slice(&field.to_be_bytes());
    header.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    header
}

/// Makes an IPv4 packet at `l3` a fragment and redoes its checksum.
pub fn make_fragment_v4(frame: &mut [u8], l3: usize, more: bool, offset: u16) {
    let field = offset | if more { 0x2000 } else { 0 };
    if let Some(slot) = frame.get_mut(l3 + 6..l3 + 8) {
        slot.copy_from_slice(&field.to_be_bytes());
    }
    fix_ipv4_checksum_at(frame, l3);
}

/// Inserts `words` 4-byte option words (NOPs) into the IPv4 header at
/// `l3`, fixing its length fields and checksum.
pub fn add_ipv4_options(frame: &mut Vec<u8>, l3: usize, words: usize) {
    let words = words.min(10);
    if frame.len() < l3 + 20 {
        return;
    }
    frame.splice(l3 + 20..l3 + 20, vec![1u8; words * 4]);
    frame[l3] = 0x40 | (5 + words as u8);
    let total = u16::from_be_bytes([frame[l3 + 2], frame[l3 + 3]]) + 4 * words as u16;
    frame[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
    fix_ipv4_checksum_at(frame, l3);
}

/// Inserts an IPv6 extension header of `kind` with `body` right after the
/// fixed header at `l3`, chaining next-header fields and the payload length.
pub fn insert_ipv6_extension(frame: &mut Vec<u8>, l3: usize, kind: u8, body: &[u8]) {
    if frame.len() < l3 + 40 {
        return;
    }
    let mut header = body.to_vec();
    if let Some(next) = header.first_mut() {
        *next = frame[l3 + 6];
    }
    frame[l3 + 6] = kind;
    let payload =
        u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]).wrapping_add(header.len() as u16);
    frame[l3 + 4..l3 + 6].copy_from_slice(&payload.to_be_bytes());
    frame.splice(l3 + 40..l3 + 40, header);
}

/// Redoes the checksum of an untagged frame's IPv4 header, if it has one
/// (mutations that keep the header valid reach deeper code).
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    if frame.get(12..14) == Some(&[0x08, 0x00]) {
        fix_ipv4_checksum_at(frame, 14);
    }
}

fn fix_ipv4_checksum_at(frame: &mut [u8], l3: usize) {
    let Some(&version_ihl) = frame.get(l3) else {
        return;
    };
    let end = l3 + 4 * usize::from(version_ihl & 0x0f);
    if end < l3 + 20 || end > frame.len() {
        return;
    }
    frame[l3 + 10..l3 + 12].fill(0);
    let checksum = checksum::of(&frame[l3..end]);
    frame[l3 + 10..l3 + 12].copy_from_slice(&checksum.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdpath_core::build::{FrameSpec, Network, Transport};

    #[test]
    fn ipv4_options_keep_the_header_valid() {
        let mut frame = FrameSpec::new(
            Network::V4([192, 0, 2, 1], [198, 51, 100, 2]),
            Transport::udp(1, 2),
        )
        .build();
        add_ipv4_options(&mut frame, 14, 3);
        assert_eq!(frame[14], 0x48);
        assert_eq!(checksum::of(&frame[14..46]), 0);
        let parsed = xdpath_core::parse(&xdpath_core::SlicePacket::new(&frame)).expect("parses");
        assert_eq!(parsed.key.destination_port, 2);
    }
}
