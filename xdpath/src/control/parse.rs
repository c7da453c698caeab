//! Parsing of the values operators type: CIDR prefixes, ports and port
//! ranges, protocols, TCP-flag specs and durations. Every error is one line
//! that quotes the input.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use crate::text::quote;
use xdpath_core::filter::{mask, PrefixKey};
use xdpath_core::wire::protocol;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_FIN, FLAG_PSH, FLAG_RST, FLAG_SYN, FLAG_URG};

/// Why a value did not parse. Each quotes its input with
/// [`crate::text::quote`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not `ADDRESS/LEN` or a bare address.
    #[error("invalid CIDR {}: {why}", quote(text))]
    Cidr {
        /// The input.
        text: String,
        /// What is wrong.
        why: &'static str,
    },
    /// An address with bits set past the prefix length (`1.2.3.4/8`):
    /// refused rather than silently masked, which would turn a typo into
    /// a rule for a different network.
    #[error("invalid CIDR {}: host bits are set past /{}; did you mean {network}?", quote(text), network.length)]
    HostBits {
        /// The input.
        text: String,
        /// The network the prefix length gives.
        network: Cidr,
    },
    /// A port above 65535.
    #[error("port {} is out of range (0-65535)", quote(text))]
    PortOutOfRange {
        /// The input.
        text: String,
    },
    /// Not `N` or `N-M`.
    #[error(
        "invalid port {}: expected a number 0-65535 or a range N-M",
        quote(text)
    )]
    PortSyntax {
        /// The input.
        text: String,
    },
    /// `N-M` with a side above 65535.
    #[error(
        "invalid port range {}: port {} is out of range (0-65535)",
        quote(text),
        quote(port)
    )]
    PortRangeOutOfRange {
        /// The input.
        text: String,
        /// The side that is out of range.
        port: String,
    },
    /// `N-M` with N > M.
    #[error("invalid port range {}: the first port is above the last", quote(text))]
    PortRangeReversed {
        /// The input.
        text: String,
    },
    /// Not a known protocol name or a number 0-255.
    #[error(
        "unknown protocol {} (expected tcp, udp, icmp, icmpv6 or 0-255)",
        quote(text)
    )]
    Protocol {
        /// The input.
        text: String,
    },
    /// A TCP-flag spec with an unknown flag or a flag given twice.
    #[error(
        "invalid TCP flags {}: {why} (expected e.g. syn,!ack; flags: fin syn rst psh ack urg)",
        quote(text)
    )]
    TcpFlags {
        /// The input.
        text: String,
        /// What is wrong.
        why: String,
    },
    /// Not `N[s|m|h|d]`, zero, or longer than [`MAX_DURATION_SECONDS`].
    #[error(
        "invalid duration {} (expected e.g. 30s, 10m, 1h, 2d; at most 3650d)",
        quote(text)
    )]
    Duration {
        /// The input.
        text: String,
    },
}

/// The longest duration [`parse_duration`] takes: ten years. Longer is a
/// typo, or means "for good", which is no duration at all.
pub const MAX_DURATION_SECONDS: u64 = 3650 * 86_400;

/// An IPv4 or IPv6 prefix, masked. Shown and stored as `address/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The address, 16 bytes; IPv4 as IPv4-mapped IPv6.
    pub address: [u8; 16],
    /// The prefix length in the family's own terms (0-32 or 0-128).
    pub length: u8,
    /// True for IPv4.
    pub ipv4: bool,
}

impl Cidr {
    /// The prefix length over 128 bits (IPv4: 96 + length).
    pub fn mapped_length(&self) -> u8 {
        if self.ipv4 {
            96 + self.length
        } else {
            self.length
        }
    }

    /// The trie key.
    pub fn key(&self) -> PrefixKey {
        PrefixKey {
            prefix_len: u32::from(self.mapped_length()),
            address: self.address,
        }
    }

    /// True for `0.0.0.0/0` and `::/0`.
    pub fn is_any(&self) -> bool {
        self.length == 0
    }

    /// True when the two prefixes share any address.
    pub fn overlaps(&self, other: &Cidr) -> bool {
        let length = self.mapped_length().min(other.mapped_length());
        mask(&self.address, length) == mask(&other.address, length)
    }

    /// True when `other` lies inside this prefix.
    pub fn contains(&self, other: &Cidr) -> bool {
        self.mapped_length() <= other.mapped_length()
            && mask(&other.address, self.mapped_length()) == self.address
    }

    /// Builds a prefix from a key (the inverse of [`Cidr::key`]).
    pub fn from_key(key: &PrefixKey) -> Self {
        let mapped = key.prefix_len >= 96 && key.address[..12] == V4_MAPPED_PREFIX;
        let length = key.prefix_len.min(128) as u8;
        Self {
            address: mask(&key.address, length),
            length: if mapped { length - 96 } else { length },
            ipv4: mapped,
        }
    }
}

const V4_MAPPED_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

fn cidr_error(text: &str, why: &'static str) -> ParseError {
    ParseError::Cidr {
        text: text.to_string(),
        why,
    }
}

/// Parses `ADDRESS[/LEN]`. A bare address is a host prefix (/32 or
/// /128); an address with host bits set (`1.2.3.4/8`) is refused, naming
/// the network it would have been.
pub fn parse_cidr(text: &str) -> Result<Cidr, ParseError> {
    let (address_text, length_text) = match text.split_once('/') {
        Some((address, length)) => (address, Some(length)),
        None => (text, None),
    };
    if let Some(v4) = parse_ipv4_fast(address_text) {
        let length = parse_length(text, length_text, 32)?;
        let mut address = [0u8; 16];
        address[10] = 0xff;
        address[11] = 0xff;
        address[12..].copy_from_slice(&v4);
        return network(text, address, length, true);
    }
    if address_text.contains(':') {
        let v6 = Ipv6Addr::from_str(address_text)
            .map_err(|_| cidr_error(text, "not an IPv6 address"))?;
        let length = parse_length(text, length_text, 128)?;
        return network(text, v6.octets(), length, false);
    }
    if address_text.is_empty() {
        return Err(cidr_error(text, "no address"));
    }
    match Ipv4Addr::from_str(address_text) {
        Ok(_) => Err(cidr_error(text, "not an IPv4 address")),
        Err(_)
            if address_text
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            Err(cidr_error(
                text,
                "each IPv4 part must be a number 0-255 without leading zeros, four parts",
            ))
        }
        Err(_) => Err(cidr_error(text, "not an IPv4 or IPv6 address")),
    }
}

/// The prefix, or the host-bits error naming the network it would be.
fn network(text: &str, address: [u8; 16], length: u8, ipv4: bool) -> Result<Cidr, ParseError> {
    let mapped = if ipv4 { 96 + length } else { length };
    let masked = Cidr {
        address: mask(&address, mapped),
        length,
        ipv4,
    };
    if masked.address != address {
        return Err(ParseError::HostBits {
            text: text.to_string(),
            network: masked,
        });
    }
    Ok(masked)
}

/// Dotted-quad IPv4 without allocation (the fast path of `filter load`).
fn parse_ipv4_fast(text: &str) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // No leading zeros, as std's parser (they read as octal elsewhere).
        if part.len() > 1 && part.starts_with('0') {
            return None;
        }
        let value: u16 = part.parse().ok()?;
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then_some(octets)
}

fn parse_length(text: &str, length: Option<&str>, max: u8) -> Result<u8, ParseError> {
    let Some(length) = length else {
        return Ok(max);
    };
    if length.is_empty() || length.len() > 3 || !length.bytes().all(|b| b.is_ascii_digit()) {
        return Err(cidr_error(text, "the prefix length is not a number"));
    }
    // `/08` is not `/8` everywhere (some tools read it as octal).
    if length.len() > 1 && length.starts_with('0') {
        return Err(cidr_error(text, "the prefix length has a leading zero"));
    }
    match length.parse::<u8>() {
        Ok(value) if value <= max => Ok(value),
        _ if max == 32 => Err(cidr_error(text, "prefix length above 32")),
        _ => Err(cidr_error(text, "prefix length above 128")),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ipv4 {
            let [.., a, b, c, d] = self.address;
            write!(formatter, "{}/{}", Ipv4Addr::new(a, b, c, d), self.length)
        } else {
            write!(
                formatter,
                "{}/{}",
                Ipv6Addr::from(self.address),
                self.length
            )
        }
    }
}

impl FromStr for Cidr {
    type Err = ParseError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_cidr(text)
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        parse_cidr(&text).map_err(serde::de::Error::custom)
    }
}

/// A destination port range, inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PortRange {
    /// The first port.
    pub low: u16,
    /// The last port.
    pub high: u16,
}

impl PortRange {
    /// True when `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.low <= port && port <= self.high
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(formatter, "{}", self.low)
        } else {
            write!(formatter, "{}-{}", self.low, self.high)
        }
    }
}

/// Parses one port, 0-65535.
pub fn parse_port(text: &str) -> Result<u16, ParseError> {
    let trimmed = text.trim();
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::PortSyntax {
            text: text.to_string(),
        });
    }
    trimmed
        .parse::<u16>()
        .map_err(|_| ParseError::PortOutOfRange {
            text: trimmed.to_string(),
        })
}

/// Parses `N` or `N-M`.
pub fn parse_port_range(text: &str) -> Result<PortRange, ParseError> {
    // The whole input, not the empty side of `-1` or `80-`.
    let port = |part: &str| match parse_port(part) {
        Err(ParseError::PortSyntax { .. }) => Err(ParseError::PortSyntax {
            text: text.to_string(),
        }),
        Err(ParseError::PortOutOfRange { text: port }) if part != text => {
            Err(ParseError::PortRangeOutOfRange {
                text: text.to_string(),
                port,
            })
        }
        other => other,
    };
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (port(low)?, port(high)?),
        None => {
            let single = port(text)?;
            (single, single)
        }
    };
    if low > high {
        return Err(ParseError::PortRangeReversed {
            text: text.to_string(),
        });
    }
    Ok(PortRange { low, high })
}

/// Parses a comma-separated list of ports and ranges (`53,123,1900-1910`);
/// empty items are skipped. An empty list is valid here: whether a guard
/// may have no ports is the guard's question.
pub fn parse_port_list(text: &str) -> Result<Vec<PortRange>, ParseError> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| parse_port_range(part.trim()))
        .collect()
}

/// Parses `tcp|udp|icmp|icmpv6|<0-255>` to an IP protocol number.
pub fn parse_protocol(text: &str) -> Result<u8, ParseError> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(protocol::TCP),
        "udp" => Ok(protocol::UDP),
        "icmp" => Ok(protocol::ICMP),
        "icmpv6" | "ipv6-icmp" => Ok(protocol::ICMPV6),
        other => other.parse::<u8>().map_err(|_| ParseError::Protocol {
            text: text.to_string(),
        }),
    }
}

/// The name of a protocol number, as `filter list` shows it.
pub fn protocol_name(number: u8) -> String {
    match number {
        protocol::TCP => "tcp".into(),
        protocol::UDP => "udp".into(),
        protocol::ICMP => "icmp".into(),
        protocol::ICMPV6 => "icmpv6".into(),
        other => other.to_string(),
    }
}

/// TCP flags that must be set (`value` bits) or clear, among `mask`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TcpFlagsSpec {
    /// The flags looked at.
    pub mask: u8,
    /// Their required values.
    pub value: u8,
}

const FLAG_NAMES: [(&str, u8); 6] = [
    ("fin", FLAG_FIN),
    ("syn", FLAG_SYN),
    ("rst", FLAG_RST),
    ("psh", FLAG_PSH),
    ("ack", FLAG_ACK),
    ("urg", FLAG_URG),
];

/// Parses `syn,!ack`: SYN set and ACK clear.
pub fn parse_tcp_flags(text: &str) -> Result<TcpFlagsSpec, ParseError> {
    let error = |why: String| ParseError::TcpFlags {
        text: text.to_string(),
        why,
    };
    let mut spec = TcpFlagsSpec { mask: 0, value: 0 };
    for part in text.split(',').map(str::trim) {
        let (clear, name) = match part.strip_prefix('!') {
            Some(name) => (true, name),
            None => (false, part),
        };
        let Some((_, bit)) = FLAG_NAMES
            .iter()
            .find(|(flag, _)| flag.eq_ignore_ascii_case(name))
        else {
            return Err(error(format!("unknown flag {}", quote(part))));
        };
        if spec.mask & bit != 0 {
            return Err(error(format!("flag {} given twice", quote(name))));
        }
        spec.mask |= bit;
        if !clear {
            spec.value |= bit;
        }
    }
    Ok(spec)
}

impl fmt::Display for TcpFlagsSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = FLAG_NAMES
            .iter()
            .filter(|(_, bit)| self.mask & bit != 0)
            .map(|(name, bit)| {
                if self.value & bit != 0 {
                    (*name).to_string()
                } else {
                    format!("!{name}")
                }
            })
            .collect();
        formatter.write_str(&parts.join(","))
    }
}

/// Parses `30s`, `10m`, `1h`, `2d` (or bare seconds) to seconds, from 1 s
/// to [`MAX_DURATION_SECONDS`].
pub fn parse_duration(text: &str) -> Result<u64, ParseError> {
    let error = || ParseError::Duration {
        text: text.to_string(),
    };
    let trimmed = text.trim();
    let (number, unit) = match trimmed.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => trimmed.split_at(at),
        None => (trimmed, "s"),
    };
    let value: u64 = number.parse().map_err(|_| error())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(error()),
    };
    match value.checked_mul(scale) {
        Some(seconds) if (1..=MAX_DURATION_SECONDS).contains(&seconds) => Ok(seconds),
        _ => Err(error()),
    }
}

/// A number of seconds given as a float option (`--interval 0.5`) as a
/// duration, if it is finite and within `min..=max`: what every such
/// option goes through, since `Duration::from_secs_f64` panics on
/// negative, NaN and huge values.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use xdpath::control::parse::seconds_within;
/// assert_eq!(seconds_within(0.5, 0.01, 3600.0), Some(Duration::from_millis(500)));
/// assert_eq!(seconds_within(18446744073709551616.0, 0.01, 3600.0), None);
/// assert_eq!(seconds_within(f64::NAN, 0.01, 3600.0), None);
/// ```
pub fn seconds_within(value: f64, min: f64, max: f64) -> Option<Duration> {
    if !(value.is_finite() && min <= value && value <= max) {
        return None;
    }
    Duration::try_from_secs_f64(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let cidr = parse_cidr("10.0.0.0/8").expect("valid");
        assert_eq!(cidr.to_string(), "10.0.0.0/8");
        assert_eq!(cidr.mapped_length(), 104);
        assert_eq!(
            parse_cidr("2001:db8::/32").expect("valid").to_string(),
            "2001:db8::/32"
        );
        assert_eq!(parse_cidr("192.0.2.1").expect("valid").length, 32);
        assert_eq!(
            parse_cidr("10.0.0.300/8").expect_err("bad").to_string(),
            "invalid CIDR \"10.0.0.300/8\": each IPv4 part must be a number 0-255 without leading zeros, four parts"
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("::/129").is_err());
        assert!(parse_cidr("10.0.0.0/").is_err());
        assert!(parse_cidr("hello").is_err());
        assert!(parse_cidr("").is_err());
        let any = parse_cidr("0.0.0.0/0").expect("valid");
        assert!(any.is_any() && any.ipv4);
        assert!(any.contains(&cidr));
        assert!(cidr.overlaps(&any));
        assert_eq!(Cidr::from_key(&cidr.key()), cidr);
        let v6 = parse_cidr("2001:db8::/48").expect("valid");
        assert_eq!(Cidr::from_key(&v6.key()), v6);
    }

    #[test]
    fn ports_protocols_flags_durations() {
        assert_eq!(
            parse_port_range("80").expect("valid"),
            PortRange { low: 80, high: 80 }
        );
        assert_eq!(parse_port_range("1-1024").expect("valid").high, 1024);
        assert_eq!(
            parse_port_range("70000").expect_err("bad").to_string(),
            "port \"70000\" is out of range (0-65535)"
        );
        assert!(parse_port_range("90-80").is_err());
        for range in ["-1", "80-x", "1-70000"] {
            let error = parse_port_range(range).expect_err("a range that is not one");
            assert!(
                error.to_string().contains(&format!("\"{range}\"")),
                "{error}"
            );
        }
        assert_eq!(parse_protocol("TCP").expect("valid"), 6);
        assert_eq!(parse_protocol("47").expect("valid"), 47);
        assert_eq!(
            parse_protocol("xyz").expect_err("bad").to_string(),
            "unknown protocol \"xyz\" (expected tcp, udp, icmp, icmpv6 or 0-255)"
        );
        let flags = parse_tcp_flags("syn,!ack").expect("valid");
        assert_eq!((flags.mask, flags.value), (FLAG_SYN | FLAG_ACK, FLAG_SYN));
        assert_eq!(flags.to_string(), "syn,!ack");
        assert!(parse_tcp_flags("syn,syn").is_err());
        assert!(parse_tcp_flags("bogus").is_err());
        assert_eq!(parse_duration("10m").expect("valid"), 600);
        assert_eq!(parse_duration("2d").expect("valid"), 172_800);
        assert!(parse_duration("10y").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(
            parse_duration("3650d").expect("valid"),
            MAX_DURATION_SECONDS
        );
        assert!(parse_duration("3651d").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn host_bits_and_leading_zeros_are_refused() {
        for (text, network) in [
            ("1.2.3.4/8", "1.0.0.0/8"),
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("192.0.2.1/24", "192.0.2.0/24"),
            ("0.0.0.1/0", "0.0.0.0/0"),
            ("2001:db8::1/32", "2001:db8::/32"),
            ("::1/0", "::/0"),
        ] {
            let error = parse_cidr(text).expect_err(text);
            assert_eq!(
                error.to_string(),
                format!(
                    "invalid CIDR \"{text}\": host bits are set past /{}; did you mean {network}?",
                    network.split('/').nth(1).unwrap_or_default()
                )
            );
            // What it suggests is itself accepted.
            assert_eq!(parse_cidr(network).expect(network).to_string(), network);
        }
        for text in ["10.0.0.0/08", "10.0.0.0/008", "::/00", "010.0.0.0/8"] {
            assert!(parse_cidr(text).is_err(), "{text} accepted");
        }
        assert_eq!(parse_cidr("0.0.0.0/0").expect("any").length, 0);
        assert_eq!(parse_cidr("1.2.3.4/32").expect("host").length, 32);
        assert_eq!(parse_cidr("1.2.3.4").expect("host").length, 32);
    }

    #[test]
    fn port_errors_quote_the_whole_input() {
        for (text, message) in [
            (
                "-1",
                "invalid port \"-1\": expected a number 0-65535 or a range N-M",
            ),
            (
                "80-",
                "invalid port \"80-\": expected a number 0-65535 or a range N-M",
            ),
            (
                "",
                "invalid port \"\": expected a number 0-65535 or a range N-M",
            ),
            (
                "http",
                "invalid port \"http\": expected a number 0-65535 or a range N-M",
            ),
            (
                "80-70000",
                "invalid port range \"80-70000\": port \"70000\" is out of range (0-65535)",
            ),
        ] {
            assert_eq!(parse_port_range(text).expect_err(text).to_string(), message);
        }
        assert_eq!(parse_port_list(" , ").expect("empty list"), Vec::new());
    }
}
