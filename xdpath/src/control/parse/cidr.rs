//! [`Cidr`]: IPv4 and IPv6 prefixes, their parsing (with a fast path for
//! plain IPv4), display and serde forms, and their filter-map keys.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::ParseError;
use xdpath_core::filter::{mask, PrefixKey};

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
