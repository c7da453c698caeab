//! Verdicts, reasons and the counter layout shared with user space.

/// An XDP verdict. The discriminants are the kernel's `XDP_*` action codes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `XDP_ABORTED`: a program error. xdpath never returns it on purpose.
    Aborted = 0,
    /// `XDP_DROP`.
    Drop = 1,
    /// `XDP_PASS`: on to the kernel stack.
    Pass = 2,
    /// `XDP_TX`: back out of the receiving interface.
    Tx = 3,
    /// `XDP_REDIRECT`.
    Redirect = 4,
}

impl Action {
    /// Every action, in code order.
    pub const ALL: [Action; 5] = [
        Self::Aborted,
        Self::Drop,
        Self::Pass,
        Self::Tx,
        Self::Redirect,
    ];

    /// Decodes a kernel action code.
    pub const fn from_u32(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Aborted),
            1 => Some(Self::Drop),
            2 => Some(Self::Pass),
            3 => Some(Self::Tx),
            4 => Some(Self::Redirect),
            _ => None,
        }
    }

    /// Lower-case name, as the CLI prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Aborted => "aborted",
            Self::Drop => "drop",
            Self::Pass => "pass",
            Self::Tx => "tx",
            Self::Redirect => "redirect",
        }
    }
}

/// Why a frame got its verdict: its parsed class, or the precise way it is
/// malformed. Codes are stable: they index the counters user space reads.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...).
    NonIp = 0,
    /// IPv4 carrying TCP.
    Ipv4Tcp = 1,
    /// IPv4 carrying UDP.
    Ipv4Udp = 2,
    /// IPv4 carrying ICMP.
    Ipv4Icmp = 3,
    /// IPv4 carrying anything else.
    Ipv4Other = 4,
    /// IPv6 carrying TCP.
    Ipv6Tcp = 5,
    /// IPv6 carrying UDP.
    Ipv6Udp = 6,
    /// IPv6 carrying ICMPv6.
    Ipv6Icmp = 7,
    /// IPv6 carrying anything else.
    Ipv6Other = 8,

    /// Shorter than an Ethernet header.
    TruncatedEthernet = 16,
    /// A VLAN tag cut short.
    TruncatedVlan = 17,
    /// More than two VLAN tags.
    TooManyVlanTags = 18,
    /// Shorter than an IPv4 header.
    TruncatedIpv4 = 19,
    /// EtherType IPv4 but the version field is not 4.
    BadIpv4Version = 20,
    /// IPv4 header length (IHL) below 20 bytes.
    BadIpv4HeaderLength = 21,
    /// IPv4 total length beyond the end of the frame.
    Ipv4LengthBeyondFrame = 22,
    /// IPv4 total length shorter than its own header (IHL), which also
    /// covers an IHL reaching past the packet.
    Ipv4LengthBelowHeader = 23,
    /// Shorter than an IPv6 header.
    TruncatedIpv6 = 24,
    /// EtherType IPv6 but the version field is not 6.
    BadIpv6Version = 25,
    /// IPv6 payload length beyond the end of the frame.
    Ipv6LengthBeyondFrame = 26,
    /// An IPv6 extension header cut short.
    TruncatedIpv6Extension = 27,
    /// More IPv6 extension headers than the walk allows.
    TooManyIpv6Extensions = 28,
    /// Shorter than a TCP header.
    TruncatedTcp = 29,
    /// TCP data offset below 5 words or beyond the IP payload.
    BadTcpDataOffset = 30,
    /// Shorter than a UDP header.
    TruncatedUdp = 31,
    /// UDP length below 8 or beyond the IP payload.
    BadUdpLength = 32,
    /// Shorter than an ICMP header.
    TruncatedIcmp = 33,
    /// Shorter than an ICMPv6 header.
    TruncatedIcmpv6 = 34,
    /// Headers reach beyond the deepest offset the pipeline reads.
    HeadersTooLong = 35,
    /// An IPv6 packet from or to an IPv4-mapped address (`::ffff:0:0/96`),
    /// never valid on the wire (RFC 4291 §2.5.5.2). Linux delivers one to
    /// a dual-stack socket as from or to the IPv4 address, so it would be
    /// judged as IPv4 (the key holds IPv4 IPv4-mapped) and slip past IPv6
    /// rules, or reach an IPv4 VIP.
    Ipv6MappedAddress = 36,

    /// To a VIP, but too big for the path to its backend once
    /// encapsulated (over the egress device's MTU or `lb config --mtu`):
    /// answered with ICMP "fragmentation needed" or ICMPv6 "packet too
    /// big" (action tx), or dropped when no answer may be sent (an IPv4
    /// packet that may be fragmented, an ICMP error, a fragment).
    /// Numbered below the filter's, like the next.
    LbTooBig = 38,

    /// To a VIP with an allow list that does not hold the source (the
    /// flow's client: for an ICMP error, the client of the flow it quotes).
    /// A balancer reason, numbered below the filter's: the codes from 53 on
    /// were taken.
    LbNotAllowed = 39,

    /// A deny rule matched.
    RuleDeny = 40,
    /// No rule matched and the default action is drop.
    DefaultDeny = 41,
    /// The source is on the blocklist.
    Blocklisted = 42,
    /// Over a rate limit.
    RateLimited = 43,
    /// Over a SYN rate limit.
    SynRateLimited = 44,
    /// An IP fragment the fragment policy drops.
    Fragment = 45,
    /// TCP with SYN and FIN together.
    TcpSynFin = 46,
    /// TCP with SYN and RST together.
    TcpSynRst = 47,
    /// TCP with no flags at all.
    TcpNullFlags = 48,
    /// TCP FIN, PSH or URG without ACK.
    TcpNoAck = 49,
    /// UDP from a reflection source port to a destination not expecting it.
    Amplification = 50,
    /// A SYN answered at XDP with a SYN-ACK carrying a cookie.
    SynCookieSent = 51,
    /// An ACK whose cookie does not check, to a cookie-protected port.
    SynCookieInvalid = 52,
    /// To a VIP: encapsulated to its backend and sent (TX or redirect).
    LbForwarded = 53,
    /// To a VIP whose table has no backend (none, or all drained).
    LbNoBackend = 54,
    /// A fragment to a VIP that balances on ports (see the fragment policy).
    LbFragment = 55,
    /// To a VIP, but the frame could not be grown for the outer headers.
    LbEncapFailed = 56,
    /// To a VIP, but no route or neighbour to its backend: left to the stack.
    LbNoRoute = 57,
    /// IPIP (4in4, 6in6, 4in6, 6in4) to this backend, decapsulated.
    DecapIpip = 58,
    /// GUE to this backend, decapsulated.
    DecapGue = 59,

    /// Not for this host: routed by the kernel's FIB, MACs rewritten, TTL
    /// or hop limit decremented, and redirected to the egress interface.
    Forwarded = 60,
    /// To be forwarded, but the next hop's MAC is not resolved yet: left
    /// to the stack, which resolves it.
    ForwardNoNeighbour = 61,
    /// To be forwarded, but its TTL or hop limit runs out here: left to the
    /// stack, which answers with ICMP time exceeded.
    ForwardTtlExpired = 62,
    /// Routed out of an interface where forwarding is not enabled: left to
    /// the stack.
    ForwardEgressOff = 63,
}

/// Counter slots per action; reason codes are below this.
pub const REASON_SLOTS: u32 = 64;

/// Length of the counter array: one slot per (action, reason).
pub const COUNTER_SLOTS: u32 = Action::ALL.len() as u32 * REASON_SLOTS;

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 56] = [
        Self::NonIp,
        Self::Ipv4Tcp,
        Self::Ipv4Udp,
        Self::Ipv4Icmp,
        Self::Ipv4Other,
        Self::Ipv6Tcp,
        Self::Ipv6Udp,
        Self::Ipv6Icmp,
        Self::Ipv6Other,
        Self::TruncatedEthernet,
        Self::TruncatedVlan,
        Self::TooManyVlanTags,
        Self::TruncatedIpv4,
        Self::BadIpv4Version,
        Self::BadIpv4HeaderLength,
        Self::Ipv4LengthBeyondFrame,
        Self::Ipv4LengthBelowHeader,
        Self::TruncatedIpv6,
        Self::BadIpv6Version,
        Self::Ipv6LengthBeyondFrame,
        Self::TruncatedIpv6Extension,
        Self::TooManyIpv6Extensions,
        Self::TruncatedTcp,
        Self::BadTcpDataOffset,
        Self::TruncatedUdp,
        Self::BadUdpLength,
        Self::TruncatedIcmp,
        Self::TruncatedIcmpv6,
        Self::HeadersTooLong,
        Self::Ipv6MappedAddress,
        Self::LbTooBig,
        Self::LbNotAllowed,
        Self::RuleDeny,
        Self::DefaultDeny,
        Self::Blocklisted,
        Self::RateLimited,
        Self::SynRateLimited,
        Self::Fragment,
        Self::TcpSynFin,
        Self::TcpSynRst,
        Self::TcpNullFlags,
        Self::TcpNoAck,
        Self::Amplification,
        Self::SynCookieSent,
        Self::SynCookieInvalid,
        Self::LbForwarded,
        Self::LbNoBackend,
        Self::LbFragment,
        Self::LbEncapFailed,
        Self::LbNoRoute,
        Self::DecapIpip,
        Self::DecapGue,
        Self::Forwarded,
        Self::ForwardNoNeighbour,
        Self::ForwardTtlExpired,
        Self::ForwardEgressOff,
    ];

    /// Decodes a reason code.
    pub fn from_u8(code: u8) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|reason| *reason as u8 == code)
    }

    /// Decodes a class code (0 to 8); anything else reads as `NonIp`.
    #[inline(always)]
    pub const fn class_from_u8(code: u8) -> Self {
        match code {
            1 => Self::Ipv4Tcp,
            2 => Self::Ipv4Udp,
            3 => Self::Ipv4Icmp,
            4 => Self::Ipv4Other,
            5 => Self::Ipv6Tcp,
            6 => Self::Ipv6Udp,
            7 => Self::Ipv6Icmp,
            8 => Self::Ipv6Other,
            _ => Self::NonIp,
        }
    }

    /// True for the reasons that mark a frame malformed.
    #[inline(always)]
    pub const fn is_malformed(self) -> bool {
        let code = self as u8;
        code >= Self::TruncatedEthernet as u8 && code <= Self::Ipv6MappedAddress as u8
    }

    /// True for the reasons the filter stage gives.
    #[inline(always)]
    pub const fn is_filter(self) -> bool {
        let code = self as u8;
        code >= Self::RuleDeny as u8 && code <= Self::SynCookieInvalid as u8
    }

    /// True for the reasons the load balancer and the decapsulator give.
    #[inline(always)]
    pub const fn is_lb(self) -> bool {
        let code = self as u8;
        (code >= Self::LbForwarded as u8 && code <= Self::DecapGue as u8)
            || code == Self::LbNotAllowed as u8
            || code == Self::LbTooBig as u8
    }

    /// True for the reasons the forwarding stage gives.
    #[inline(always)]
    pub const fn is_forward(self) -> bool {
        self as u8 >= Self::Forwarded as u8
    }

    /// Kebab-case name, as the CLI prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NonIp => "non-ip",
            Self::Ipv4Tcp => "ipv4-tcp",
            Self::Ipv4Udp => "ipv4-udp",
            Self::Ipv4Icmp => "ipv4-icmp",
            Self::Ipv4Other => "ipv4-other",
            Self::Ipv6Tcp => "ipv6-tcp",
            Self::Ipv6Udp => "ipv6-udp",
            Self::Ipv6Icmp => "ipv6-icmp",
            Self::Ipv6Other => "ipv6-other",
            Self::TruncatedEthernet => "truncated-ethernet",
            Self::TruncatedVlan => "truncated-vlan",
            Self::TooManyVlanTags => "too-many-vlan-tags",
            Self::TruncatedIpv4 => "truncated-ipv4",
            Self::BadIpv4Version => "bad-ipv4-version",
            Self::BadIpv4HeaderLength => "bad-ipv4-header-length",
            Self::Ipv4LengthBeyondFrame => "ipv4-length-beyond-frame",
            Self::Ipv4LengthBelowHeader => "ipv4-length-below-header",
            Self::TruncatedIpv6 => "truncated-ipv6",
            Self::BadIpv6Version => "bad-ipv6-version",
            Self::Ipv6LengthBeyondFrame => "ipv6-length-beyond-frame",
            Self::TruncatedIpv6Extension => "truncated-ipv6-extension",
            Self::TooManyIpv6Extensions => "too-many-ipv6-extensions",
            Self::TruncatedTcp => "truncated-tcp",
            Self::BadTcpDataOffset => "bad-tcp-data-offset",
            Self::TruncatedUdp => "truncated-udp",
            Self::BadUdpLength => "bad-udp-length",
            Self::TruncatedIcmp => "truncated-icmp",
            Self::TruncatedIcmpv6 => "truncated-icmpv6",
            Self::HeadersTooLong => "headers-too-long",
            Self::Ipv6MappedAddress => "ipv6-mapped-address",
            Self::LbTooBig => "lb-too-big",
            Self::LbNotAllowed => "lb-not-allowed",
            Self::RuleDeny => "rule-deny",
            Self::DefaultDeny => "default-deny",
            Self::Blocklisted => "blocklisted",
            Self::RateLimited => "rate-limited",
            Self::SynRateLimited => "syn-rate-limited",
            Self::Fragment => "fragment",
            Self::TcpSynFin => "tcp-syn-fin",
            Self::TcpSynRst => "tcp-syn-rst",
            Self::TcpNullFlags => "tcp-null-flags",
            Self::TcpNoAck => "tcp-no-ack",
            Self::Amplification => "amplification",
            Self::SynCookieSent => "syn-cookie-sent",
            Self::SynCookieInvalid => "syn-cookie-invalid",
            Self::LbForwarded => "lb-forwarded",
            Self::LbNoBackend => "lb-no-backend",
            Self::LbFragment => "lb-fragment",
            Self::LbEncapFailed => "lb-encap-failed",
            Self::LbNoRoute => "lb-no-route",
            Self::DecapIpip => "decap-ipip",
            Self::DecapGue => "decap-gue",
            Self::Forwarded => "forwarded",
            Self::ForwardNoNeighbour => "forward-no-neighbour",
            Self::ForwardTtlExpired => "forward-ttl-expired",
            Self::ForwardEgressOff => "forward-egress-off",
        }
    }
}

/// Packets and bytes, one slot of the per-CPU counter array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Frames counted.
    pub packets: u64,
    /// Their bytes, from the start of the Ethernet header.
    pub bytes: u64,
}

/// The counter slot of an (action, reason) pair.
#[inline(always)]
pub const fn counter_index(action: Action, reason: Reason) -> u32 {
    action as u32 * REASON_SLOTS + reason as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_round_trip_and_fit_the_slots() {
        for reason in Reason::ALL {
            assert_eq!(Reason::from_u8(reason as u8), Some(reason));
            assert!((reason as u32) < REASON_SLOTS);
        }
        assert_eq!(Reason::from_u8(9), None);
    }

    #[test]
    fn counter_indices_are_distinct_and_in_range() {
        let mut seen = std::collections::BTreeSet::new();
        for action in Action::ALL {
            for reason in Reason::ALL {
                let index = counter_index(action, reason);
                assert!(index < COUNTER_SLOTS);
                assert!(seen.insert(index));
            }
        }
    }
}
