//! Changes to the balancer state, each checked on its own terms (a
//! duplicate VIP, an unknown backend). Whole-state checks (an outer source
//! for every backend's family, table sizes) are [`super::compile`]'s, which
//! runs before anything is written.

use std::net::IpAddr;

use super::maglev::{DEFAULT_TABLE_SIZE, MAX_WEIGHT};
use super::state::{BackendSpec, Encap, HealthCheck, LbState, VipId, VipSpec, L4};
use super::LbError;
use crate::control::parse::{parse_cidr, Cidr};
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
    if !is_unicast(address) {
        Some("not a unicast address")
    } else if address.to_canonical().is_loopback() {
        Some("a loopback address is this host, not a backend")
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

/// Adds a VIP with an empty pool in the lowest free slot.
pub fn add_vip(state: &mut LbState, id: VipId, options: VipOptions) -> Result<(), LbError> {
    if state.vip(&id).is_some() {
        return Err(LbError::VipExists { vip: id });
    }
    let gue_port = match (options.encap, options.gue_port) {
        (Encap::Gue, Some(port)) if port != 0 => port,
        (Encap::Gue, _) => {
            return Err(LbError::Usage(
                "--encap gue needs --gue-port PORT (1-65535), the port the backends' \
                 decapsulator listens on"
                    .into(),
            ))
        }
        (Encap::Ipip, Some(_)) => {
            return Err(LbError::Usage(
                "--gue-port applies to --encap gue only".into(),
            ))
        }
        (Encap::Ipip, None) => 0,
    };
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
        slot,
        live_ring: 0,
        backends: Vec::new(),
        health: None,
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
    let backend = backend_mut(state, vip, address)?;
    let changed = backend.down != down;
    backend.down = down;
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

/// What `lb config` changes; `None` leaves a setting alone.
#[derive(Clone, Debug, Default)]
pub struct ConfigChange {
    /// `--source-v4`: a prefix, or `none` to remove it.
    pub source_v4: Option<String>,
    /// `--source-v6`.
    pub source_v6: Option<String>,
    /// `--next-hop`: `fib` or a MAC.
    pub next_hop: Option<String>,
    /// `--seed`.
    pub seed: Option<u64>,
}

fn parse_source(text: &str, ipv4: bool) -> Result<Option<Cidr>, LbError> {
    if text == "none" {
        return Ok(None);
    }
    let prefix = parse_cidr(text)?;
    if prefix.ipv4 != ipv4 {
        return Err(LbError::SourceFamily {
            prefix,
            flag: if ipv4 { "v4" } else { "v6" },
            family: if ipv4 { "IPv4" } else { "IPv6" },
        });
    }
    Ok(Some(prefix))
}

/// Applies an `lb config` change.
pub fn configure(state: &mut LbState, change: &ConfigChange) -> Result<(), LbError> {
    if let Some(text) = &change.source_v4 {
        state.settings.source_v4 = parse_source(text, true)?;
    }
    if let Some(text) = &change.source_v6 {
        state.settings.source_v6 = parse_source(text, false)?;
    }
    if let Some(text) = &change.next_hop {
        state.settings.next_hop_mac = match text.as_str() {
            "fib" => None,
            mac => Some(format_mac(parse_mac(mac)?)),
        };
    }
    if let Some(seed) = change.seed {
        state.settings.seed = seed;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> VipOptions {
        VipOptions {
            encap: Encap::Ipip,
            gue_port: None,
            source_hash: false,
            no_conntrack: false,
            ring_size: None,
        }
    }

    #[test]
    fn vips_parse_and_print_back() {
        for text in [
            "203.0.113.10:80/tcp",
            "[2001:db8::10]:443/udp",
            "203.0.113.10:*/udp",
        ] {
            let vip = parse_vip(text).expect(text);
            assert_eq!(vip.to_string(), text);
        }
        assert_eq!(parse_vip("203.0.113.10:0/TCP").expect("0").port, 0);
        for bad in [
            "203.0.113.10:80",
            "203.0.113.10/tcp",
            "2001:db8::10:80/tcp",
            "[2001:db8::10:80/tcp",
            "203.0.113.10:80/icmp",
            "203.0.113.10:65536/tcp",
            "0.0.0.0:80/tcp",
            "224.0.0.1:80/udp",
            "255.255.255.255:80/tcp",
            "[::ffff:255.255.255.255]:80/tcp",
            "[ff02::1]:80/udp",
            "[::]:80/tcp",
            "example.com:80/tcp",
        ] {
            assert!(parse_vip(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn only_other_hosts_unicast_addresses_are_backends() {
        let mut state = LbState::default();
        let vip = parse_vip("203.0.113.10:80/tcp").expect("vip");
        add_vip(&mut state, vip, options()).expect("add");
        let before = state.clone();
        for text in [
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
            "::ffff:255.255.255.255",
            "0.0.0.0",
            "::",
            "224.0.0.5",
            "ff02::1",
        ] {
            let refused = parse_address(text)
                .and_then(|address| add_backend(&mut state, &vip, address, 1))
                .expect_err(text);
            assert!(
                matches!(refused, LbError::Address { .. }),
                "{text}: {refused}"
            );
            assert!(refused
                .to_string()
                .starts_with("invalid backend address \""));
        }
        assert_eq!(state, before, "a refused backend changes nothing");
        for text in ["10.0.0.1", "2001:db8::1", "192.0.2.255"] {
            let address = parse_address(text).expect(text);
            add_backend(&mut state, &vip, address, 1).expect(text);
        }
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:00:5e:0A:0b:ff").expect("mac"),
            [2, 0, 0x5e, 10, 11, 0xff]
        );
        assert_eq!(format_mac([2, 0, 0x5e, 10, 11, 0xff]), "02:00:5e:0a:0b:ff");
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "zz:00:00:00:00:01",
            "002:00:00:00:00:01",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn refused_changes_leave_the_state_alone() {
        let mut state = LbState::default();
        let vip = parse_vip("203.0.113.10:80/tcp").expect("vip");
        add_vip(&mut state, vip, options()).expect("add");
        let backend: IpAddr = "10.0.0.1".parse().expect("address");
        add_backend(&mut state, &vip, backend, 5).expect("backend");
        let before = state.clone();
        let unknown = parse_vip("203.0.113.11:80/tcp").expect("vip");
        assert!(matches!(
            add_vip(&mut state, vip, options()),
            Err(LbError::VipExists { .. })
        ));
        assert!(matches!(
            add_backend(&mut state, &unknown, backend, 1),
            Err(LbError::NoSuchVip { .. })
        ));
        assert!(matches!(
            add_backend(&mut state, &vip, backend, 1),
            Err(LbError::BackendExists { .. })
        ));
        let other: IpAddr = "10.0.0.2".parse().expect("address");
        assert!(matches!(
            add_backend(&mut state, &vip, other, 1001),
            Err(LbError::Weight { weight: 1001 })
        ));
        assert!(matches!(
            set_weight(&mut state, &vip, backend, u64::from(u32::MAX) + 1),
            Err(LbError::Weight { .. })
        ));
        assert!(matches!(
            del_backend(&mut state, &vip, other),
            Err(LbError::NoSuchBackend { .. })
        ));
        let gue = VipOptions {
            encap: Encap::Gue,
            ..options()
        };
        assert!(add_vip(&mut state, unknown, gue).is_err());
        let stray_port = VipOptions {
            gue_port: Some(6080),
            ..options()
        };
        assert!(add_vip(&mut state, unknown, stray_port).is_err());
        let wrong_family = ConfigChange {
            source_v4: Some("2001:db8::/64".into()),
            ..ConfigChange::default()
        };
        assert!(configure(&mut state, &wrong_family).is_err());
        let mut flags = options();
        assert!(parse_flags("source-hash,bogus", &mut flags).is_err());
        assert_eq!(state, before);
    }

    #[test]
    fn slots_and_generations_are_fresh() {
        let mut state = LbState::default();
        let first = parse_vip("203.0.113.10:80/tcp").expect("vip");
        let second = parse_vip("203.0.113.10:443/tcp").expect("vip");
        add_vip(&mut state, first, options()).expect("add");
        add_vip(&mut state, second, options()).expect("add");
        let a: IpAddr = "10.0.0.1".parse().expect("a");
        let b: IpAddr = "10.0.0.2".parse().expect("b");
        add_backend(&mut state, &first, a, 1).expect("a");
        add_backend(&mut state, &second, a, 1).expect("a again");
        del_backend(&mut state, &first, a).expect("del");
        add_backend(&mut state, &first, b, 1).expect("b");
        let reused = state.vip(&first).and_then(|vip| vip.backend(b)).expect("b");
        // Slot 0 is reused, with a generation the old owner never had.
        assert_eq!(reused.index, 0);
        assert_eq!(reused.generation, 2);
        del_vip(&mut state, &first).expect("del vip");
        add_vip(&mut state, first, options()).expect("re-add");
        assert_eq!(state.vip(&first).map(|vip| vip.slot), Some(0));
    }
}
