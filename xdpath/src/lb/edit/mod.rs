//! Changes to the balancer state, each checked on its own terms (a
//! duplicate VIP, an unknown backend). Whole-state checks (an outer source
//! for every backend's family, table sizes) are [`super::compile`]'s, which
//! runs before anything is written.

use std::net::IpAddr;

use super::maglev::{DEFAULT_TABLE_SIZE, MAX_WEIGHT};
use super::state::{BackendSpec, Encap, HealthCheck, LbState, VipId, VipSpec, L4};
use super::LbError;
use crate::text::quote;
use xdpath_core::lb::{MAX_BACKENDS, MAX_VIPS};

/// Parses `ADDRESS:PORT/PROTOCOL`: `203.0.113.10:80/tcp`,
/// `[2001:db8::10]:443/udp`; `*` (or 0) as the port means every port.
///
/// # Examples
///
/// ```
/// use xdpath::lb::edit::parse_vip;
/// let vip = parse_vip("[2001:db8::10]:443/tcp")?;
/// assert_eq!(vip.port, 443);
/// assert_eq!(vip.to_string(), "[2001:db8::10]:443/tcp");
/// assert!(parse_vip("203.0.113.10/tcp").is_err());
/// # Ok::<(), xdpath::lb::LbError>(())
/// ```
pub fn parse_vip(text: &str) -> Result<VipId, LbError> {
    let error = |why| LbError::VipSyntax {
        text: text.to_string(),
        why,
    };
    let (endpoint, protocol) = text
        .rsplit_once('/')
        .ok_or_else(|| error("no /tcp or /udp"))?;
    let protocol = match protocol.to_ascii_lowercase().as_str() {
        "tcp" => L4::Tcp,
        "udp" => L4::Udp,
        _ => return Err(error("the protocol must be tcp or udp")),
    };
    let (address, port) = endpoint.rsplit_once(':').ok_or_else(|| error("no :PORT"))?;
    let address = match address.strip_prefix('[') {
        Some(bracketed) => bracketed
            .strip_suffix(']')
            .ok_or_else(|| error("unclosed ["))?,
        None if address.contains(':') => return Err(error("an IPv6 address must be in brackets")),
        None => address,
    };
    let address: IpAddr = address.parse().map_err(|_| error("not an IP address"))?;
    if !is_unicast(address) {
        return Err(error("a VIP must be a unicast address"));
    }
    let port = match port {
        "*" => 0,
        digits => digits
            .parse()
            .map_err(|_| error("the port must be 0-65535 or *"))?,
    };
    Ok(VipId {
        address,
        port,
        protocol,
    })
}

/// Not unspecified, multicast or the IPv4 broadcast address (also as an
/// IPv4-mapped IPv6 address).
fn is_unicast(address: IpAddr) -> bool {
    let address = address.to_canonical();
    !(address.is_unspecified()
        || address.is_multicast()
        || address == IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
}

/// Parses a backend address (to add, change or remove a backend).
pub fn parse_address(text: &str) -> Result<IpAddr, LbError> {
    let error = |why| LbError::Address {
        text: text.to_string(),
        why,
    };
    let address: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| error("not an IP address"))?;
    if !is_unicast(address) {
        return Err(error("not a unicast address"));
    }
    Ok(address)
}

/// Why `address` cannot be a new backend, if it cannot: traffic is
/// encapsulated to it, so it must be another host's unicast address.
fn backend_problem(address: IpAddr) -> Option<&'static str> {
    let canonical = address.to_canonical();
    let link_local = match canonical {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    if !is_unicast(address) {
        Some("not a unicast address")
    } else if canonical.is_loopback() {
        Some("a loopback address is this host, not a backend")
    } else if link_local {
        Some("a link-local address: an encapsulated frame cannot be routed to it")
    } else if matches!(canonical, IpAddr::V4(v4) if v4.octets()[0] >= 240) {
        Some("a reserved address (240.0.0.0/4)")
    } else {
        None
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(text: &str) -> Result<[u8; 6], LbError> {
    let error = || LbError::Mac {
        text: text.to_string(),
    };
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in &mut mac {
        let part = parts.next().ok_or_else(error)?;
        if part.is_empty() || part.len() > 2 {
            return Err(error());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| error())?;
    }
    if parts.next().is_some() || mac == [0; 6] || mac[0] & 1 != 0 {
        return Err(error());
    }
    Ok(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// The options of a new VIP.
#[derive(Clone, Copy, Debug)]
pub struct VipOptions {
    /// IPIP or GUE.
    pub encap: Encap,
    /// The GUE port (GUE only).
    pub gue_port: Option<u16>,
    /// Hash on the source address only.
    pub source_hash: bool,
    /// Bypass the connection table.
    pub no_conntrack: bool,
    /// The Maglev table size; default 65537.
    pub ring_size: Option<u32>,
    /// Sample 1 in N of its frames; 0: at its interface's rate.
    pub sample_rate: u32,
}

/// Checks a VIP's sample rate (0 to `observe::MAX_SAMPLE_RATE`).
pub fn check_sample_rate(rate: u32) -> Result<u32, LbError> {
    if rate > crate::observe::MAX_SAMPLE_RATE {
        return Err(LbError::Usage(format!(
            "sample rate {rate} is above the largest, {} (0: the interface's rate)",
            crate::observe::MAX_SAMPLE_RATE
        )));
    }
    Ok(rate)
}

/// Parses the `--flags` list: `source-hash`, `no-conntrack`.
pub fn parse_flags(text: &str, options: &mut VipOptions) -> Result<(), LbError> {
    for flag in text
        .split(',')
        .map(str::trim)
        .filter(|flag| !flag.is_empty())
    {
        match flag {
            "source-hash" => options.source_hash = true,
            "no-conntrack" => options.no_conntrack = true,
            other => {
                return Err(LbError::Usage(format!(
                    "unknown VIP flag {} (expected source-hash or no-conntrack)",
                    quote(other)
                )))
            }
        }
    }
    Ok(())
}

/// The GUE port a VIP with `options` gets (0 for IPIP), or why the
/// options do not go together.
pub fn gue_port_for(options: &VipOptions) -> Result<u16, LbError> {
    match (options.encap, options.gue_port) {
        (Encap::Gue, Some(port)) if port != 0 => Ok(port),
        (Encap::Gue, _) => Err(LbError::Usage(
            "--encap gue needs --gue-port PORT (1-65535), the port the backends' \
             decapsulator listens on"
                .into(),
        )),
        (Encap::Ipip, Some(_)) => Err(LbError::Usage(
            "--gue-port applies to --encap gue only".into(),
        )),
        (Encap::Ipip, None) => Ok(0),
    }
}

/// Adds a VIP with an empty pool in the lowest free slot.
pub fn add_vip(state: &mut LbState, id: VipId, options: VipOptions) -> Result<(), LbError> {
    if state.vip(&id).is_some() {
        return Err(LbError::VipExists { vip: id });
    }
    let gue_port = gue_port_for(&options)?;
    let sample_rate = check_sample_rate(options.sample_rate)?;
    path_mtu_fits(state.settings.mtu, id.address.is_ipv6().then_some(id))?;
    let slot = (0..MAX_VIPS)
        .find(|slot| state.vips.iter().all(|vip| vip.slot != *slot))
        .ok_or(LbError::TooManyVips)?;
    state.vips.push(VipSpec {
        id,
        encap: options.encap,
        gue_port,
        source_hash: options.source_hash,
        no_conntrack: options.no_conntrack,
        ring_size: options.ring_size.unwrap_or(DEFAULT_TABLE_SIZE),
        sample_rate,
        slot,
        live_ring: 0,
        backends: Vec::new(),
        health: None,
        allow: Vec::new(),
        owner: None,
    });
    Ok(())
}

/// Removes a VIP and its pool.
pub fn del_vip(state: &mut LbState, id: &VipId) -> Result<(), LbError> {
    let before = state.vips.len();
    state.vips.retain(|vip| vip.id != *id);
    if state.vips.len() == before {
        return Err(LbError::NoSuchVip { vip: *id });
    }
    Ok(())
}

fn check_weight(weight: u64) -> Result<u32, LbError> {
    u32::try_from(weight)
        .ok()
        .filter(|weight| *weight <= MAX_WEIGHT)
        .ok_or(LbError::Weight { weight })
}

/// Adds a backend to a VIP's pool in the lowest free backend slot, with a
/// new generation.
pub fn add_backend(
    state: &mut LbState,
    vip: &VipId,
    address: IpAddr,
    weight: u64,
) -> Result<(), LbError> {
    let weight = check_weight(weight)?;
    if let Some(why) = backend_problem(address) {
        return Err(LbError::Address {
            text: address.to_string(),
            why,
        });
    }
    if address.to_canonical() == vip.address.to_canonical() {
        // Its traffic would be sent, encapsulated, to the VIP again.
        return Err(LbError::Address {
            text: address.to_string(),
            why: "it is the VIP's own address",
        });
    }
    let spec = state.vip(vip).ok_or(LbError::NoSuchVip { vip: *vip })?;
    if spec.backend(address).is_some() {
        return Err(LbError::BackendExists {
            vip: *vip,
            backend: address,
        });
    }
    let used: std::collections::HashSet<u32> = state
        .vips
        .iter()
        .flat_map(|vip| vip.backends.iter().map(|backend| backend.index))
        .collect();
    let index = (0..MAX_BACKENDS)
        .find(|index| !used.contains(index))
        .ok_or(LbError::TooManyBackends)?;
    let generation = state.next_generation;
    state.next_generation = generation.wrapping_add(1);
    let spec = state.vip_mut(vip).ok_or(LbError::NoSuchVip { vip: *vip })?;
    spec.backends.push(BackendSpec {
        address,
        weight,
        index,
        generation,
        down: false,
    });
    Ok(())
}

/// Removes a backend: its flows move to the others.
pub fn del_backend(state: &mut LbState, vip: &VipId, address: IpAddr) -> Result<(), LbError> {
    let spec = state.vip_mut(vip).ok_or(LbError::NoSuchVip { vip: *vip })?;
    let before = spec.backends.len();
    spec.backends.retain(|backend| backend.address != address);
    if spec.backends.len() == before {
        return Err(LbError::NoSuchBackend {
            vip: *vip,
            backend: address,
        });
    }
    Ok(())
}

/// A VIP's backend, to change.
fn backend_mut<'a>(
    state: &'a mut LbState,
    vip: &VipId,
    address: IpAddr,
) -> Result<&'a mut BackendSpec, LbError> {
    let spec = state.vip_mut(vip).ok_or(LbError::NoSuchVip { vip: *vip })?;
    spec.backends
        .iter_mut()
        .find(|backend| backend.address == address)
        .ok_or(LbError::NoSuchBackend {
            vip: *vip,
            backend: address,
        })
}

/// Changes a backend's weight; 0 drains it.
pub fn set_weight(
    state: &mut LbState,
    vip: &VipId,
    address: IpAddr,
    weight: u64,
) -> Result<(), LbError> {
    let weight = check_weight(weight)?;
    let backend = backend_mut(state, vip, address)?;
    backend.weight = weight;
    Ok(())
}

/// Sets (or, with `None`, removes) a VIP's health check. Removing it
/// brings every backend that was down back.
pub fn set_health(
    state: &mut LbState,
    vip: &VipId,
    health: Option<HealthCheck>,
) -> Result<(), LbError> {
    if let Some(check) = &health {
        check_health(check)?;
    }
    let spec = state.vip_mut(vip).ok_or(LbError::NoSuchVip { vip: *vip })?;
    if health.is_none() {
        for backend in &mut spec.backends {
            backend.down = false;
        }
    }
    spec.health = health;
    Ok(())
}

fn check_health(check: &HealthCheck) -> Result<(), LbError> {
    let refuse = |message: String| Err(LbError::Usage(message));
    if !(10..=3_600_000).contains(&check.interval_ms) {
        return refuse(format!(
            "health interval {} ms is out of range (10 ms to 1 h)",
            check.interval_ms
        ));
    }
    if check.timeout_ms == 0 || check.timeout_ms > check.interval_ms {
        return refuse(format!(
            "health timeout {} ms must be above 0 and at most the interval ({} ms)",
            check.timeout_ms, check.interval_ms
        ));
    }
    if !(1..=100).contains(&check.rise) || !(1..=100).contains(&check.fall) {
        return refuse("rise and fall must be 1 to 100".into());
    }
    if !check.path.starts_with('/')
        || check
            .path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return refuse(format!(
            "health path {} must start with / and hold no spaces",
            quote(&check.path)
        ));
    }
    if !(100..=599).contains(&check.status) {
        return refuse(format!(
            "health status {} is not an HTTP status",
            check.status
        ));
    }
    Ok(())
}

/// Marks a backend down or up (the health checker's verdict); returns
/// whether that changed anything.
pub fn set_down(
    state: &mut LbState,
    vip: &VipId,
    address: IpAddr,
    down: bool,
) -> Result<bool, LbError> {
    let fresh = state.next_generation;
    let backend = backend_mut(state, vip, address)?;
    let changed = backend.down != down;
    backend.down = down;
    // A backend that goes down takes a new generation: every connection-
    // table entry naming it becomes stale, so its established flows (and a
    // new flow reusing one of their 5-tuples) are placed again on the ring
    // without it instead of following it into a failed server. Flows do not
    // move back when it comes up again.
    let renew = changed && down;
    if renew {
        backend.generation = fresh;
        state.next_generation = fresh.wrapping_add(1);
    }
    Ok(changed)
}

/// Parses `500ms`, `2s`, `1m` (a bare number is seconds) to milliseconds.
pub fn parse_millis(text: &str) -> Result<u64, LbError> {
    let error = || {
        LbError::Usage(format!(
            "invalid duration {} (e.g. 500ms, 2s, 1m)",
            quote(text)
        ))
    };
    let text = text.trim();
    let (digits, scale) = if let Some(digits) = text.strip_suffix("ms") {
        (digits, 1)
    } else if let Some(digits) = text.strip_suffix('s') {
        (digits, 1000)
    } else if let Some(digits) = text.strip_suffix('m') {
        (digits, 60_000)
    } else {
        (text, 1000)
    };
    let value: u64 = digits.parse().map_err(|_| error())?;
    value.checked_mul(scale).ok_or_else(error)
}

mod settings;
use settings::path_mtu_fits;
pub use settings::{configure, ConfigChange};

mod vip;
pub use vip::{
    check_owner, health_check, parse_allow, parse_codes, refuse_new_addresses,
    refuse_new_portless_checks, refuse_overfull_tables, set_allow, set_options, MAX_OWNER_LEN,
};

#[cfg(test)]
mod tests;
