//! Edits of a VIP beyond its pool: its allowed sources, its options in
//! place, its health check from a request, and the owner tag's check.

use super::{gue_port_for, parse_millis, VipOptions};
use crate::api::requests::HealthArgs;
use crate::control::parse::{parse_cidr, Cidr};
use crate::lb::state::{CheckKind, HealthCheck, LbState, VipId, VipSpec};
use crate::lb::LbError;
use crate::text::quote;
use std::net::IpAddr;

/// The longest owner tag.
pub const MAX_OWNER_LEN: usize = 64;

/// Most prefixes in one VIP's allow list.
const MAX_VIP_ALLOW: usize = 1024;

/// Checks an owner tag: 1 to [`MAX_OWNER_LEN`] bytes of ASCII letters,
/// digits and `_ . : -`, not `.` or `..` (a tag may name a file one day).
///
/// # Examples
///
/// ```
/// use xdpath::lb::edit::check_owner;
/// assert!(check_owner("octavia:5b3c9a3e-lb_1.v2").is_ok());
/// assert!(check_owner("../etc").is_err());
/// assert!(check_owner("").is_err());
/// ```
pub fn check_owner(text: &str) -> Result<(), LbError> {
    let why = if text.is_empty() {
        Some("it is empty")
    } else if text.len() > MAX_OWNER_LEN {
        Some("it is longer than 64 characters")
    } else if text == "." || text == ".." {
        Some("it is . or ..")
    } else if !text
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || b"_.:-".contains(&byte))
    {
        Some("only letters, digits and _ . : - are allowed")
    } else {
        None
    };
    match why {
        Some(why) => Err(LbError::Owner {
            text: text.to_string(),
            why,
        }),
        None => Ok(()),
    }
}

/// Parses an allow list: each an IPv4 or IPv6 prefix (a bare address is a
/// host); sorted, without repeats. Empty: every source.
pub fn parse_allow(texts: &[String]) -> Result<Vec<Cidr>, LbError> {
    let mut prefixes = Vec::with_capacity(texts.len());
    for text in texts {
        prefixes.push(parse_cidr(text.trim())?);
    }
    prefixes.sort_unstable_by_key(|prefix| (!prefix.ipv4, prefix.address, prefix.length));
    prefixes.dedup();
    if prefixes.len() > MAX_VIP_ALLOW {
        return Err(LbError::Usage(format!(
            "{} prefixes in one allow list: at most {MAX_VIP_ALLOW}",
            prefixes.len()
        )));
    }
    Ok(prefixes)
}

/// Replaces a VIP's allow list (empty: every source).
pub fn set_allow(state: &mut LbState, id: &VipId, allow: Vec<Cidr>) -> Result<(), LbError> {
    let spec = state.vip_mut(id).ok_or(LbError::NoSuchVip { vip: *id })?;
    spec.allow = allow;
    Ok(())
}

/// Changes a VIP's options in place: its slot, pool and connections stay
/// (but a change of `source_hash` or `no_conntrack` keys the connection
/// table otherwise or stops reading it: established flows are placed
/// again by the ring); the compiler rebuilds its table when the size
/// changes.
pub fn set_options(state: &mut LbState, id: &VipId, options: &VipOptions) -> Result<(), LbError> {
    let gue_port = gue_port_for(options)?;
    let sample_rate = super::check_sample_rate(options.sample_rate)?;
    let spec = state.vip_mut(id).ok_or(LbError::NoSuchVip { vip: *id })?;
    spec.sample_rate = sample_rate;
    spec.encap = options.encap;
    spec.gue_port = gue_port;
    spec.source_hash = options.source_hash;
    spec.no_conntrack = options.no_conntrack;
    spec.ring_size = options
        .ring_size
        .unwrap_or(super::super::maglev::DEFAULT_TABLE_SIZE);
    Ok(())
}

/// Parses the HTTP statuses that mean healthy: `200`, `200,202`,
/// `200-204`, mixed; each from 100 to 599. Sorted inclusive ranges.
///
/// # Examples
///
/// ```
/// use xdpath::lb::edit::parse_codes;
/// assert_eq!(parse_codes("204, 200-202")?, vec![(200, 202), (204, 204)]);
/// assert!(parse_codes("200-199").is_err());
/// assert!(parse_codes("600").is_err());
/// # Ok::<(), xdpath::lb::LbError>(())
/// ```
pub fn parse_codes(text: &str) -> Result<Vec<(u16, u16)>, LbError> {
    let error = || {
        LbError::Usage(format!(
            "invalid HTTP status list {} (e.g. 200, 200,202 or 200-204; each 100-599)",
            quote(text)
        ))
    };
    let code = |part: &str| -> Result<u16, LbError> {
        part.trim()
            .parse::<u16>()
            .ok()
            .filter(|code| (100..=599).contains(code))
            .ok_or_else(error)
    };
    let mut ranges = Vec::new();
    for part in text.split(',') {
        let range = match part.split_once('-') {
            Some((low, high)) => (code(low)?, code(high)?),
            None => {
                let single = code(part)?;
                (single, single)
            }
        };
        if range.0 > range.1 || ranges.len() >= 32 {
            return Err(error());
        }
        ranges.push(range);
    }
    ranges.sort_unstable();
    ranges.dedup();
    Ok(ranges)
}

/// The check a request asks for; `None` for kind `off`. Range checks are
/// [`super::set_health`]'s.
pub fn health_check(args: &HealthArgs) -> Result<Option<HealthCheck>, LbError> {
    // `off` is checked as fully as a check that runs: a mistake in the
    // other fields is refused either way, not ignored.
    let off = args.kind == "off";
    let kind = if off {
        CheckKind::Tcp
    } else {
        CheckKind::from_name(&args.kind).ok_or_else(|| {
            LbError::Usage(format!(
                "health kind {} is not tcp, http, ping, udp or off",
                quote(&args.kind)
            ))
        })?
    };
    let ranges = parse_codes(&args.status)?;
    let status = ranges.first().map_or(200, |range| range.0);
    let single = matches!(ranges.as_slice(), [(low, high)] if low == high);
    let check = HealthCheck {
        kind,
        port: args.port,
        path: args.path.clone(),
        status,
        codes: if single { Vec::new() } else { ranges },
        interval_ms: parse_millis(&args.interval)?,
        timeout_ms: parse_millis(&args.timeout)?,
        rise: args.rise,
        fall: args.fall,
    };
    // Checked here, before the state is read: a malformed request is
    // refused as such, whoever holds the VIP.
    super::check_health(&check)?;
    Ok((!off).then_some(check))
}

/// Refuses what `after` brings that `before` does not have and no path
/// may bring (the CLI, the API, configs, owners' documents); a state
/// already saved stays loadable, so its entries can still be listed and
/// deleted:
/// - a VIP or backend written IPv4-mapped: the data path keeps IPv4
///   addresses in that form, so `[::ffff:a.b.c.d]:80/tcp` is the key of
///   `a.b.c.d:80/tcp` and was written over that live VIP;
/// - a VIP on this host's own address, or a loopback one (which never
///   arrives on the wire): the balancer runs after the filter and takes
///   every frame to a VIP, so such a VIP would carry this host's own
///   traffic away to the backends, its management (SSH, the API) included.
pub fn refuse_new_addresses(before: &LbState, after: &LbState) -> Result<(), LbError> {
    let mut new_vips = Vec::new();
    for vip in &after.vips {
        let known = before.vip(&vip.id);
        if known.is_none() {
            not_mapped("VIP", vip.id.address)?;
            new_vips.push(&vip.id);
        }
        for backend in &vip.backends {
            if known.is_none_or(|known| known.backend(backend.address).is_none()) {
                not_mapped("backend", backend.address)?;
            }
        }
    }
    if new_vips.is_empty() {
        return Ok(());
    }
    let local =
        crate::lb::decap::local_addresses().map_err(|source| LbError::LocalAddresses { source })?;
    for id in new_vips {
        let why = match local_address(id.address, &local) {
            Some(Local::Loopback) => "a loopback address never arrives on the wire",
            Some(Local::Own) => "it is one of this host's own addresses: the balancer would send this host's own traffic (its management included) to the backends",
            None => continue,
        };
        return Err(LbError::LocalVip { vip: *id, why });
    }
    Ok(())
}

/// How an address is this host's.
enum Local {
    Loopback,
    Own,
}

fn local_address(address: IpAddr, local: &std::collections::BTreeSet<IpAddr>) -> Option<Local> {
    let address = address.to_canonical();
    if address.is_loopback() {
        Some(Local::Loopback)
    } else if local.iter().any(|own| own.to_canonical() == address) {
        Some(Local::Own)
    } else {
        None
    }
}

/// Refuses a change that leaves a VIP with more weighted backends than
/// its table holds (half its size) once every backend is up again, where
/// it had fewer (or was not there): the table's own check counts only the
/// backends in it, so a backend added while another is down for failing
/// its checks was accepted, and the other could then never come back.
/// A state saved before with such a VIP stays usable (the health checker
/// may still take its backends out and in) as long as no change adds to
/// the excess.
pub fn refuse_overfull_tables(before: &LbState, after: &LbState) -> Result<(), LbError> {
    // Weighted backends (down ones included) beyond the table's half.
    let excess = |vip: &VipSpec| {
        let weighted = vip
            .backends
            .iter()
            .filter(|backend| backend.weight > 0)
            .count();
        (
            weighted,
            weighted.saturating_sub((vip.ring_size / 2) as usize),
        )
    };
    for vip in &after.vips {
        let (backends, over) = excess(vip);
        let had = before.vip(&vip.id).map_or(0, |known| excess(known).1);
        // With every backend up the table's own check refuses it, in
        // its own words.
        let some_down = vip.backends.iter().any(|backend| backend.down);
        if over > had && some_down {
            return Err(LbError::Overfull {
                vip: vip.id,
                backends,
                size: vip.ring_size,
            });
        }
    }
    Ok(())
}

/// Refuses a check that needs a port (all but ping) without one on an
/// all-ports VIP, new or changed by this change (`before` → `after`): the
/// prober could never make it, and would take every backend out as
/// failing. One saved before stays (a config or owner document sent
/// again unchanged is not refused for it).
pub fn refuse_new_portless_checks(before: &LbState, after: &LbState) -> Result<(), LbError> {
    for vip in &after.vips {
        let Some(check) = &vip.health else {
            continue;
        };
        let unchanged = before
            .vip(&vip.id)
            .is_some_and(|known| known.health.as_ref() == Some(check));
        if !unchanged && vip.id.port == 0 && check.port == 0 && check.kind != CheckKind::Ping {
            return Err(LbError::PortlessCheck {
                vip: vip.id,
                kind: check.kind.name(),
            });
        }
    }
    Ok(())
}

/// Refuses an address in IPv4-mapped form, naming its IPv4 form.
fn not_mapped(what: &'static str, address: IpAddr) -> Result<(), LbError> {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(ipv4) => Err(LbError::MappedAddress {
                what,
                address,
                ipv4,
            }),
            None => Ok(()),
        },
        IpAddr::V4(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[::ffff:203.0.113.10]:80/tcp` is the key of `203.0.113.10:80/tcp`
    /// in the data path: refused when new, as a VIP and as a backend, with
    /// the IPv4 form named; a state that already holds one stays loadable.
    #[test]
    fn new_ipv4_mapped_vips_and_backends_are_refused() {
        use crate::lb::edit::{add_backend, add_vip, parse_vip, VipOptions};
        let options = VipOptions {
            encap: crate::lb::state::Encap::Ipip,
            gue_port: None,
            source_hash: false,
            no_conntrack: false,
            ring_size: Some(251),
            sample_rate: 0,
        };
        let mut before = LbState::default();
        let plain = parse_vip("203.0.113.10:80/tcp").expect("vip");
        add_vip(&mut before, plain, options).expect("vip");
        let mut mapped_vip = before.clone();
        let mapped = parse_vip("[::ffff:203.0.113.10]:80/tcp").expect("it parses");
        add_vip(&mut mapped_vip, mapped, options).expect("a distinct id");
        let error = refuse_new_addresses(&before, &mapped_vip).expect_err("the same key twice");
        assert!(
            error.to_string().starts_with(
                "VIP ::ffff:203.0.113.10 is an IPv4-mapped IPv6 address: write it as 203.0.113.10"
            ),
            "{error}"
        );
        // Already saved: not refused again (so it can be deleted).
        refuse_new_addresses(&mapped_vip, &mapped_vip).expect("saved before");
        let mut mapped_backend = before.clone();
        let backend = "::ffff:10.0.0.1".parse().expect("address");
        add_backend(&mut mapped_backend, &plain, backend, 1).expect("edit");
        let error = refuse_new_addresses(&before, &mapped_backend).expect_err("a mapped backend");
        assert!(
            error.to_string().contains("write it as 10.0.0.1"),
            "{error}"
        );
        refuse_new_addresses(&mapped_backend, &mapped_backend).expect("saved before");
    }

    #[test]
    fn owner_tags_are_checked() {
        for good in ["a", "lb-1", "octavia:5b3c_9.x", &"x".repeat(64)] {
            check_owner(good).expect(good);
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
            "a\n",
            "%2e",
        ] {
            assert!(
                matches!(check_owner(bad), Err(LbError::Owner { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn allow_lists_parse_sorted_and_unique() {
        let texts: Vec<String> = ["2001:db8::/32", "10.0.0.0/8", "192.0.2.1", "10.0.0.0/8"]
            .iter()
            .map(|text| text.to_string())
            .collect();
        let parsed = parse_allow(&texts).expect("valid");
        let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32"]);
        assert!(parse_allow(&["10.0.0.1/8".to_string()]).is_err());
        assert!(parse_allow(&["nonsense".to_string()]).is_err());
    }

    #[test]
    fn health_requests_become_checks() {
        let args = HealthArgs {
            vip: "203.0.113.10:80/tcp".into(),
            kind: "http".into(),
            port: 8080,
            path: "/health".into(),
            status: "200-204,301".into(),
            interval: "5s".into(),
            timeout: "500ms".into(),
            rise: 2,
            fall: 3,
        };
        let check = health_check(&args).expect("valid").expect("a check");
        assert_eq!(check.codes, vec![(200, 204), (301, 301)]);
        assert!(check.expects(202) && check.expects(301) && !check.expects(300));
        assert_eq!(check.codes_text(), "200-204,301");
        assert_eq!((check.interval_ms, check.timeout_ms), (5000, 500));
        let single = HealthArgs {
            status: "204".into(),
            ..args.clone()
        };
        let check = health_check(&single).expect("valid").expect("a check");
        assert!(check.codes.is_empty() && check.status == 204);
        let off = HealthArgs {
            kind: "off".into(),
            ..args.clone()
        };
        assert!(health_check(&off).expect("valid").is_none());
        // Off is checked like a check that runs: a bad field is refused.
        let off_and_wrong = HealthArgs {
            fall: 101,
            ..off.clone()
        };
        assert!(health_check(&off_and_wrong).is_err());
        for bad in ["", "20", "200-", "abc", "600", "204-200"] {
            let request = HealthArgs {
                status: bad.into(),
                ..args.clone()
            };
            assert!(health_check(&request).is_err(), "{bad:?} accepted");
        }
    }
}
