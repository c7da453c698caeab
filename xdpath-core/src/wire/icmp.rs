//! ICMP (RFC 792) and ICMPv6 (RFC 4443): the type, code and checksum that
//! every message starts with.

/// ICMP echo request type.
pub const ICMP_ECHO_REQUEST: u8 = 8;
/// ICMPv6 echo request type.
pub const ICMPV6_ECHO_REQUEST: u8 = 128;
/// Minimum ICMP message length (RFC 792: every message has 8 header bytes).
pub const ICMP_MIN_LEN: usize = 8;
/// Minimum ICMPv6 message length (RFC 4443 §2.1: type, code, checksum).
pub const ICMPV6_MIN_LEN: usize = 4;

/// The first four bytes of an ICMP or ICMPv6 message.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpHeader {
    /// Message type.
    pub kind: u8,
    /// Message code.
    pub code: u8,
    /// Checksum, big-endian.
    pub checksum: [u8; 2],
}

impl IcmpHeader {
    /// Bytes in this view.
    pub const LEN: usize = 4;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, SlicePacket};

    /// Echo request, code 0, checksum 0xf7ff, id 0, seq 0.
    const GOLDEN: [u8; 8] = [0x08, 0x00, 0xf7, 0xff, 0x00, 0x00, 0x00, 0x00];

    #[test]
    fn golden_fields() {
        let header: IcmpHeader = SlicePacket::new(&GOLDEN).load(0).expect("fits");
        assert_eq!(header.kind, ICMP_ECHO_REQUEST);
        assert_eq!(header.code, 0);
        assert_eq!(header.checksum, [0xf7, 0xff]);
    }
}
