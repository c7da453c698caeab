//! ICMP and ICMPv6 type and code of a filter rule: `--icmp-type 8`
//! (every code of type 8) or `--icmp-type 3/4` (type 3, code 4). The data
//! path compares them as `type << 8 | code`, the value the parser puts in
//! a flow key's destination port. Also the checks that a rule's protocol
//! is one its ICMP type, TCP flags or ports can match in.

use std::fmt;

use super::{ParseError, PortRange, TcpFlagsSpec};
use crate::text::quote;
use xdpath_core::wire::protocol;

/// An ICMP or ICMPv6 type, and optionally one code of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct IcmpTypeSpec {
    /// The message type, 0-255.
    #[serde(rename = "type")]
    pub kind: u8,
    /// The code; none: every code of the type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

impl IcmpTypeSpec {
    /// The inclusive range of `type << 8 | code` the rule matches.
    pub fn range(&self) -> (u16, u16) {
        let base = u16::from(self.kind) << 8;
        match self.code {
            Some(code) => (base | u16::from(code), base | u16::from(code)),
            None => (base, base | 0xff),
        }
    }
}

impl fmt::Display for IcmpTypeSpec {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(formatter, "{}/{code}", self.kind),
            None => write!(formatter, "{}", self.kind),
        }
    }
}

/// Parses `T` or `T/C`, each 0-255 without leading zeros.
pub fn parse_icmp_type(text: &str) -> Result<IcmpTypeSpec, ParseError> {
    // Digits only, no sign, space or leading zero: what the API's schema
    // allows is exactly what parses.
    let number = |part: &str| -> Result<u8, ParseError> {
        let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits || (part.len() > 1 && part.starts_with('0')) {
            return Err(ParseError::IcmpType {
                text: text.to_string(),
            });
        }
        part.parse::<u8>().map_err(|_| ParseError::IcmpType {
            text: text.to_string(),
        })
    };
    match text.split_once('/') {
        Some((kind, code)) => Ok(IcmpTypeSpec {
            kind: number(kind)?,
            code: Some(number(code)?),
        }),
        None => Ok(IcmpTypeSpec {
            kind: number(text)?,
            code: None,
        }),
    }
}

/// Checks that a rule with an ICMP type names the protocol it belongs
/// to (`icmp` or `icmpv6`) and no destination ports.
pub fn check_icmp_type(
    icmp_type: Option<IcmpTypeSpec>,
    protocol: Option<u8>,
    has_ports: bool,
) -> Result<(), ParseError> {
    let Some(icmp_type) = icmp_type else {
        return Ok(());
    };
    if !matches!(protocol, Some(protocol::ICMP | protocol::ICMPV6)) {
        return Err(ParseError::IcmpTypeProtocol {
            icmp_type: icmp_type.to_string(),
            protocol: protocol.map(super::protocol_name),
        });
    }
    if has_ports {
        return Err(ParseError::IcmpTypeWithPorts {
            icmp_type: icmp_type.to_string(),
        });
    }
    Ok(())
}

/// Checks that a rule with TCP flags is of protocol TCP: the flags are
/// looked at in TCP frames, so on another protocol the rule never
/// matches. A rule with flags and no protocol is one of TCP (what it
/// always matched): [`protocol_with_tcp_flags`] gives it that protocol, so
/// it is listed as it is enforced, and a rule written so before stays
/// valid (configs, owner documents read back and sent again).
pub fn check_tcp_flags(
    tcp_flags: Option<TcpFlagsSpec>,
    protocol: Option<u8>,
) -> Result<(), ParseError> {
    match (tcp_flags, protocol) {
        (Some(flags), Some(other)) if other != protocol::TCP => Err(ParseError::TcpFlagsProtocol {
            tcp_flags: flags.to_string(),
            protocol: Some(super::protocol_name(other)),
        }),
        _ => Ok(()),
    }
}

/// The protocol of a rule with `tcp_flags`: TCP when it names none.
pub fn protocol_with_tcp_flags(
    tcp_flags: Option<TcpFlagsSpec>,
    protocol: Option<u8>,
) -> Option<u8> {
    match (tcp_flags, protocol) {
        (Some(_), None) => Some(protocol::TCP),
        _ => protocol,
    }
}

/// Checks that a rule with destination ports is of a protocol whose
/// ports the data path reads: TCP, UDP, or none (both). On any other
/// (ICMP has types, see [`check_icmp_type`]) the rule never matches.
pub fn check_ports(ports: Option<PortRange>, protocol: Option<u8>) -> Result<(), ParseError> {
    match (ports, protocol) {
        (Some(ports), Some(other)) if other != protocol::TCP && other != protocol::UDP => {
            Err(ParseError::PortsProtocol {
                ports: ports.to_string(),
                protocol: super::protocol_name(other),
            })
        }
        _ => Ok(()),
    }
}

/// Checks that an ICMP rule has a prefix of its protocol's family
/// (`icmp` IPv4, `icmpv6` IPv6): with only the other family's it never
/// matches. (A source list of both families matches by the prefixes of
/// the protocol's family: those are indexed per family.)
pub fn check_icmp_family(protocol: Option<u8>, prefixes: &[super::Cidr]) -> Result<(), ParseError> {
    let (family_is_v4, name, instead) = match protocol {
        Some(protocol::ICMP) => (true, "icmp", "icmpv6"),
        Some(protocol::ICMPV6) => (false, "icmpv6", "icmp"),
        _ => return Ok(()),
    };
    if prefixes.iter().any(|prefix| prefix.ipv4 == family_is_v4) {
        return Ok(());
    }
    match prefixes.first() {
        Some(prefix) => Err(ParseError::IcmpFamily {
            protocol: name,
            family: if prefix.ipv4 { "IPv4" } else { "IPv6" },
            prefix: prefix.to_string(),
            instead,
        }),
        None => Ok(()),
    }
}

/// A rule's protocol in [`ParseError::IcmpTypeProtocol`]'s message.
pub(super) fn protocol_text(protocol: &Option<String>) -> String {
    match protocol {
        Some(name) => format!("protocol {}", quote(name)),
        None => "none".into(),
    }
}
