//! Parsing of the values operators type: CIDR prefixes, ports and port
//! ranges, protocols, TCP-flag specs and durations. Every error is one line
//! that quotes the input.

mod cidr;
mod icmp;
mod labels;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use crate::text::quote;
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
    /// Not a known protocol name or a number 1-255.
    #[error(
        "unknown protocol {} (expected tcp, udp, icmp, icmpv6 or 1-255)",
        quote(text)
    )]
    Protocol {
        /// The input.
        text: String,
    },
    /// Protocol number 0: the data path stores "any protocol" as 0, so a
    /// rule or limit of protocol 0 would be listed as 0 but match every
    /// protocol.
    #[error(
        "protocol {} is refused: 0 means any protocol to the data path; leave out the protocol (--proto) to match every protocol",
        quote(text)
    )]
    ProtocolZero {
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
    /// Not a VXLAN/Geneve network identifier (24 bits).
    #[error(
        "invalid VNI {}: expected a number 0-{}",
        quote(text),
        xdpath_core::wire::tunnel::MAX_VNI
    )]
    Vni {
        /// The input.
        text: String,
    },
    /// More labels than a rule or limit may carry.
    #[error("{count} labels: at most {} are allowed", labels::MAX_LABELS)]
    LabelCount {
        /// How many were given.
        count: usize,
    },
    /// A label key that is not a valid, free Prometheus label name.
    #[error("invalid label key {}: {why}", quote(key))]
    LabelKey {
        /// The key.
        key: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A label value that is empty, too long or holds control characters.
    #[error("invalid value of label {}: {why}", quote(key))]
    LabelValue {
        /// The key.
        key: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Not an ICMP type `T` or type and code `T/C`, each 0-255.
    #[error(
        "invalid ICMP type {}: expected a type 0-255 or type/code, e.g. 8 or 3/4",
        quote(text)
    )]
    IcmpType {
        /// The input.
        text: String,
    },
    /// An ICMP type on a rule whose protocol is not ICMP or ICMPv6.
    #[error(
        "ICMP type {} needs protocol icmp or icmpv6 (--proto); the rule has {}",
        quote(icmp_type),
        icmp::protocol_text(protocol)
    )]
    IcmpTypeProtocol {
        /// The ICMP type given.
        icmp_type: String,
        /// The rule's protocol, by name; none: any.
        protocol: Option<String>,
    },
    /// An ICMP type together with destination ports.
    #[error(
        "ICMP type {} and destination ports (--dport) exclude each other: ICMP has no ports",
        quote(icmp_type)
    )]
    IcmpTypeWithPorts {
        /// The ICMP type given.
        icmp_type: String,
    },
    /// TCP flags on a rule whose protocol is not TCP: such a rule could
    /// never match (the flags are looked at in TCP frames only).
    #[error(
        "TCP flags {} need protocol tcp (--proto tcp); the rule has {}",
        quote(tcp_flags),
        icmp::protocol_text(protocol)
    )]
    TcpFlagsProtocol {
        /// The flags given.
        tcp_flags: String,
        /// The rule's protocol, by name; none: any.
        protocol: Option<String>,
    },
    /// Destination ports on a rule of a protocol without them: only TCP
    /// and UDP frames have their ports looked at.
    #[error(
        "destination ports {} (--dport) need protocol tcp or udp, or none for both; the rule has {}",
        quote(ports),
        icmp::protocol_text(&Some(protocol.clone()))
    )]
    PortsProtocol {
        /// The ports given.
        ports: String,
        /// The rule's protocol, by name.
        protocol: String,
    },
    /// ICMP with an IPv6 prefix, or ICMPv6 with an IPv4 one: the data path
    /// reads ICMP in IPv4 frames and ICMPv6 in IPv6 frames only, so such a
    /// rule never matches.
    #[error(
        "protocol {protocol} is never carried by {family}, and the rule's prefix {prefix} is {family}: use {instead} (or no --proto)"
    )]
    IcmpFamily {
        /// The rule's protocol.
        protocol: &'static str,
        /// The prefix's family.
        family: &'static str,
        /// The prefix.
        prefix: String,
        /// The protocol of that family.
        instead: &'static str,
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

pub use cidr::{parse_cidr, Cidr};
pub use icmp::{
    check_icmp_family, check_icmp_type, check_ports, check_tcp_flags, parse_icmp_type,
    protocol_with_tcp_flags, IcmpTypeSpec,
};
pub use labels::{check_labels, Labels, MAX_LABELS};

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

/// Parses `tcp|udp|icmp|icmpv6|<1-255>` to an IP protocol number. 0 is
/// refused: rules and limits compile "any protocol" to 0, so it could not
/// mean protocol 0. What is already saved is read by serde, not here, so
/// a state file holding one still loads.
pub fn parse_protocol(text: &str) -> Result<u8, ParseError> {
    let number = match text.to_ascii_lowercase().as_str() {
        "tcp" => protocol::TCP,
        "udp" => protocol::UDP,
        "icmp" => protocol::ICMP,
        "icmpv6" | "ipv6-icmp" => protocol::ICMPV6,
        other => other.parse::<u8>().map_err(|_| ParseError::Protocol {
            text: text.to_string(),
        })?,
    };
    if number == 0 {
        return Err(ParseError::ProtocolZero {
            text: text.to_string(),
        });
    }
    Ok(number)
}

/// Parses a VXLAN or Geneve network identifier, 0 to 2^24 - 1.
pub fn parse_vni(text: &str) -> Result<u32, ParseError> {
    match text.trim().parse::<u32>() {
        Ok(vni) if vni <= xdpath_core::wire::tunnel::MAX_VNI => Ok(vni),
        _ => Err(ParseError::Vni {
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
