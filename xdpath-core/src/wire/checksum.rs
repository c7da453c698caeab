//! The Internet checksum: the full sum of RFC 1071 and the incremental
//! update of RFC 1624. This is xdpath's only checksum code; the data path
//! (both builds), the frame builders, the lab and the tests all use it.
//!
//! A one's-complement sum does not depend on byte order, so the functions
//! that take 16-bit words take them as the frame holds them; the ones that
//! take bytes read big-endian words.

/// Folds a 32-bit sum of 16-bit words to 16 bits with end-around carry.
/// Two folds suffice for any `u32`: the first leaves at most `0x1_fffe`.
#[inline(always)]
pub const fn fold(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    ((sum & 0xffff) + (sum >> 16)) as u16
}

/// The sum of `bytes[at..at + len]` as big-endian 16-bit words, an odd last
/// byte padded with zero (RFC 1071). Bytes past the end count as zero.
/// Written as one bounded loop of checked reads, which the verifier
/// accepts for the SYN-ACK's 64-byte scratch frame.
#[inline(always)]
pub fn sum_bytes(bytes: &[u8], at: usize, len: usize) -> u32 {
    let mut sum = 0u32;
    let mut index = 0;
    while index < len {
        let high = bytes.get(at + index).copied().unwrap_or(0);
        let low = if index + 1 < len {
            bytes.get(at + index + 1).copied().unwrap_or(0)
        } else {
            0
        };
        sum += u32::from(u16::from_be_bytes([high, low]));
        index += 2;
    }
    sum
}

/// The sum of `bytes[..len]` as big-endian 16-bit words, for an odd `len`
/// with the byte after it, which the caller has zeroed. One loop with no
/// branch in its body, bounded by `N`: the verifier walks a 512-byte
/// quote's 256 words in a few instructions each (`sum_bytes`' per-byte
/// checks took it past its million instructions).
#[inline(always)]
pub fn sum_padded<const N: usize>(bytes: &[u8; N], len: usize) -> u32 {
    let mut sum = 0u32;
    let mut index = 0;
    while index + 1 < N && index < len {
        let high = bytes.get(index).copied().unwrap_or(0);
        let low = bytes.get(index + 1).copied().unwrap_or(0);
        sum += u32::from(u16::from_be_bytes([high, low]));
        index += 2;
    }
    sum
}

/// The sum of 16-bit words.
#[inline(always)]
pub fn sum_words(words: &[u16]) -> u32 {
    let mut sum = 0u32;
    for word in words {
        sum += u32::from(*word);
    }
    sum
}

/// The checksum field for a sum of everything it covers (checksum field
/// counted as zero): the one's complement of the folded sum.
#[inline(always)]
pub const fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// The RFC 1071 checksum over the concatenation of `parts` (a pseudo-header
/// and a segment, say). A part of odd length carries its last byte into the
/// next part, as if the parts were one buffer.
pub fn of_parts(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in part.iter() {
            match odd.take() {
                Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    // Fold until no carry is left: a long buffer's sum passes 2^32 / 2^16
    // words only past 128 KiB, which no frame reaches.
    finish(sum)
}

/// The checksum of one buffer; zero when `bytes` holds a correct checksum.
pub fn of(bytes: &[u8]) -> u16 {
    of_parts(&[bytes])
}

/// A checksum after words it covers changed from `old` to `new`: RFC 1624,
/// equation 3, `HC' = ~(~HC + ~m + m')`. Unlike the older `HC + m - m'`
/// it never yields `0x0000` for a sum that is not zero.
#[inline(always)]
pub fn update<const N: usize>(checksum: u16, old: [u16; N], new: [u16; N]) -> u16 {
    let mut sum = u32::from(!checksum);
    for word in old {
        sum += u32::from(!word);
    }
    for word in new {
        sum += u32::from(word);
    }
    finish(sum)
}

/// The IPv4 header checksum after the TTL (the high byte of its word)
/// dropped by one: the checksum rises by `0x0100`, with end-around carry
/// (RFC 1141). The forwarding stage's only checksum work per frame.
#[inline(always)]
pub const fn after_ttl_decrement(checksum: u16) -> u16 {
    fold(checksum as u32 + 0x0100)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic worked example: 192.168.0.1 → 192.168.0.199, UDP, total
    /// length 0x73, DF; its checksum is 0xb861.
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    #[test]
    fn golden_ipv4_header() {
        assert_eq!(of(&HEADER), 0xb861);
        assert_eq!(finish(sum_bytes(&HEADER, 0, 20)), 0xb861);
        let words = [
            0x4500, 0x0073, 0x0000, 0x4000, 0x4011, 0xc0a8, 0x0001, 0xc0a8, 0x00c7,
        ];
        assert_eq!(finish(sum_words(&words)), 0xb861);
        let mut checked = HEADER;
        checked[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(of(&checked), 0, "a correct header sums to zero");
    }

    #[test]
    fn rfc1071_example_words() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2 (folded).
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum_bytes(&bytes, 0, bytes.len())), 0xddf2);
        assert_eq!(of(&bytes), !0xddf2);
    }

    #[test]
    fn odd_lengths_pad_and_parts_carry_the_odd_byte() {
        assert_eq!(of(&[0x12, 0x34, 0x56]), finish(0x1234 + 0x5600));
        assert_eq!(fold(sum_bytes(&[0x12, 0x34, 0x56], 0, 3)), 0x1234 + 0x5600);
        assert_eq!(
            of_parts(&[&[0x12], &[0x34, 0x56], &[0x78]]),
            of(&[0x12, 0x34, 0x56, 0x78])
        );
        assert_eq!(
            sum_bytes(&[1, 2], 0, 6),
            0x0102,
            "bytes past the end count as zero"
        );
    }

    #[test]
    fn incremental_update_matches_a_full_sum() {
        let mut header = HEADER;
        header[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        // Change the source address 192.168.0.1 → 10.1.2.3.
        let old = [0xc0a8, 0x0001];
        let new = [0x0a01, 0x0203];
        header[12..16].copy_from_slice(&[10, 1, 2, 3]);
        let updated = update(0xb861, old, new);
        header[10..12].copy_from_slice(&[0, 0]);
        assert_eq!(updated, of(&header));
    }

    #[test]
    fn ttl_decrement_is_an_incremental_update() {
        assert_eq!(after_ttl_decrement(0xb861), 0xb961);
        assert_eq!(after_ttl_decrement(0xff40), 0x0041, "end-around carry");
        let mut header = HEADER;
        header[8] = 0x3f;
        assert_eq!(after_ttl_decrement(0xb861), of(&header));
    }
}
