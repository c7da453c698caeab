//! 128-bit address arithmetic without branches on bytes: masks and
//! containment over two 64-bit halves.

/// The 128-bit address as two big-endian halves.
#[inline(always)]
fn halves(address: &[u8; 16]) -> (u64, u64) {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = *address;
    (
        u64::from_be_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_be_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    )
}

/// The masks of a prefix length over the two halves. Two 64-bit shifts
/// instead of a byte loop: byte by byte, the unrolled loop spills most of
/// the eBPF stack.
#[inline(always)]
fn half_masks(length: u8) -> (u64, u64) {
    let length = if length > 128 { 128 } else { length as u32 };
    let high = if length >= 64 {
        u64::MAX
    } else {
        !(u64::MAX.checked_shr(length).unwrap_or(0))
    };
    let low = if length <= 64 {
        0
    } else {
        !(u64::MAX.checked_shr(length - 64).unwrap_or(0))
    };
    (high, low)
}

/// `address` with all bits past `length` cleared.
#[inline(always)]
pub fn mask(address: &[u8; 16], length: u8) -> [u8; 16] {
    let (high, low) = halves(address);
    let (high_mask, low_mask) = half_masks(length);
    let [a0, a1, a2, a3, a4, a5, a6, a7] = (high & high_mask).to_be_bytes();
    let [b0, b1, b2, b3, b4, b5, b6, b7] = (low & low_mask).to_be_bytes();
    [
        a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7,
    ]
}

/// Whether `address` lies in `prefix/length` (`prefix` already masked).
#[inline(always)]
pub fn prefix_contains(prefix: &[u8; 16], length: u8, address: &[u8; 16]) -> bool {
    let (high, low) = halves(address);
    let (prefix_high, prefix_low) = halves(prefix);
    let (high_mask, low_mask) = half_masks(length);
    high & high_mask == prefix_high && low & low_mask == prefix_low
}

/// The memory words of an address.
#[inline(always)]
pub fn address_words(address: &[u8; 16]) -> [u64; 2] {
    let [a0, a1, a2, a3, a4, a5, a6, a7, b0, b1, b2, b3, b4, b5, b6, b7] = *address;
    [
        u64::from_ne_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_and_contains() {
        let address = [
            0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(
            mask(&address, 32),
            [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(mask(&address, 36)[4], 0xf0);
        assert_eq!(mask(&address, 128), address);
        assert_eq!(mask(&address, 0), [0; 16]);
        assert!(prefix_contains(&mask(&address, 48), 48, &address));
        assert!(!prefix_contains(&mask(&[0xff; 16], 48), 48, &address));
    }
}
