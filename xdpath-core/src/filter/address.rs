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

/// [`address_family`] of IPv4 (IPv4-mapped) addresses and prefixes.
pub const FAMILY_V4: u8 = 0;
/// [`address_family`] of IPv6 addresses and prefixes.
pub const FAMILY_V6: u8 = 1;

/// `FAMILY_V4` for an IPv4-mapped address (`::ffff:0:0/96`), else
/// `FAMILY_V6`, from its memory words. Rule prefixes of one family never
/// match addresses of the other: `::/0` is "any IPv6 source", not
/// "anything".
#[inline(always)]
pub const fn words_family(words: [u64; 2]) -> u8 {
    if crate::wire::ipv6::is_ipv4_mapped(words) {
        FAMILY_V4
    } else {
        FAMILY_V6
    }
}

/// [`words_family`] of an address.
#[inline(always)]
pub fn address_family(address: &[u8; 16]) -> u8 {
    words_family(address_words(address))
}

/// The family of a prefix: IPv4 when it lies inside `::ffff:0:0/96`.
#[inline(always)]
pub fn prefix_family(address: &[u8; 16], length: u8) -> u8 {
    if length >= 96 {
        address_family(address)
    } else {
        FAMILY_V6
    }
}

/// The length of a family's whole address space in the mapped 128-bit
/// space: 96 for `0.0.0.0/0`, 0 for `::/0`.
#[inline(always)]
pub const fn family_any_length(family: u8) -> u8 {
    if family == FAMILY_V4 {
        96
    } else {
        0
    }
}

/// Whether the kernel's input path would take a packet from `source` at all
/// (`ip_route_input_slow` and `ip6_rcv_core` drop the rest as martians
/// before TCP sees them). `ip_version` is the frame's (4 or 6): IPv4
/// arrives IPv4-mapped.
///
/// Refused for IPv4: `0.0.0.0/8`, `127.0.0.0/8`, `224.0.0.0/4` (multicast)
/// and `240.0.0.0/4` (reserved, with the limited broadcast). For IPv6:
/// `::`, `::1`, `ff00::/8` (multicast) and `::ffff:0:0/96` (an IPv4-mapped
/// source on the wire: Linux 6.18 does deliver one, but the parser refuses
/// such a frame first, `Reason::Ipv6MappedAddress`). The reserved IPv4
/// block is refused even though some kernels route it: a caller that skips
/// an acceptable source loses nothing but a moment.
#[inline(always)]
pub fn kernel_accepts_source(source: &[u8; 16], ip_version: u8) -> bool {
    let [_, _, _, _, _, _, _, _, _, _, _, _, first_v4, _, _, _] = *source;
    let [first, ..] = *source;
    let family = address_family(source);
    if ip_version == 4 {
        family == FAMILY_V4 && first_v4 != 0 && first_v4 != 127 && first_v4 < 224
    } else {
        let [high, low] = address_words(source);
        let unspecified = high == 0 && low == 0;
        let loopback = high == 0 && low == u64::from_ne_bytes([0, 0, 0, 0, 0, 0, 0, 1]);
        family == FAMILY_V6 && !unspecified && !loopback && first != 0xff
    }
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

    #[test]
    fn families() {
        let v4 = crate::parse::ipv4_mapped([10, 1, 2, 3]);
        assert_eq!(address_family(&v4), FAMILY_V4);
        assert_eq!(
            address_family(&crate::parse::ipv4_mapped([0; 4])),
            FAMILY_V4
        );
        let mut v6 = v4;
        v6[0] = 0x20;
        assert_eq!(address_family(&v6), FAMILY_V6);
        assert_eq!(address_family(&[0; 16]), FAMILY_V6);
        let mut almost = v4;
        almost[10] = 0;
        assert_eq!(address_family(&almost), FAMILY_V6);
        assert_eq!(prefix_family(&mask(&v4, 96), 96), FAMILY_V4);
        assert_eq!(
            prefix_family(&mask(&v4, 80), 80),
            FAMILY_V6,
            "::/80 is IPv6"
        );
        assert_eq!(prefix_family(&[0; 16], 0), FAMILY_V6);
    }

    #[test]
    fn sources_the_kernel_takes() {
        let v4 = |octets| crate::parse::ipv4_mapped(octets);
        for (octets, accepted) in [
            ([192, 0, 2, 1], true),
            ([1, 0, 0, 0], true),
            ([223, 255, 255, 255], true),
            ([0, 1, 2, 3], false),
            ([127, 0, 0, 1], false),
            ([224, 0, 0, 1], false),
            ([239, 1, 1, 1], false),
            ([240, 0, 0, 1], false),
            ([255, 255, 255, 255], false),
        ] {
            assert_eq!(
                kernel_accepts_source(&v4(octets), 4),
                accepted,
                "{octets:?}"
            );
        }
        let mut documentation = [0u8; 16];
        documentation[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        documentation[15] = 1;
        let mut link_local = [0u8; 16];
        link_local[..2].copy_from_slice(&[0xfe, 0x80]);
        link_local[15] = 9;
        let mut loopback = [0u8; 16];
        loopback[15] = 1;
        let mut multicast = [0u8; 16];
        multicast[..2].copy_from_slice(&[0xff, 0x02]);
        multicast[15] = 1;
        for (address, accepted) in [
            (documentation, true),
            (link_local, true),
            ([0; 16], false),
            (loopback, false),
            (multicast, false),
            (v4([192, 0, 2, 1]), false),
        ] {
            assert_eq!(kernel_accepts_source(&address, 6), accepted, "{address:x?}");
        }
        // A version that disagrees with the address form is refused.
        assert!(!kernel_accepts_source(&documentation, 4));
    }
}
