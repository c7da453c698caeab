//! Source prefixes: masking an address to its prefix and telling whether
//! two prefixes overlap.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network address and its prefix length.
pub(super) type Prefix = (IpAddr, u8);

/// 32 or 128.
pub(super) fn address_bits(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `address` with all but its first `length` bits cleared.
pub(super) fn network(address: IpAddr, length: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(length.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(length.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Whether two prefixes share any address: the longer lies in the shorter.
pub(super) fn overlaps(a: Prefix, b: Prefix) -> bool {
    let shorter = a.1.min(b.1);
    a.0.is_ipv4() == b.0.is_ipv4() && network(a.0, shorter) == network(b.0, shorter)
}
