//! From the file's `[lb]` section to the balancer's state, built with the
//! `lb` commands' own edits (`lb config`, `lb vip add`, `lb backend add`)
//! on an empty state, so every check they make is made here, and every
//! mistake is reported with its place.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::report::Report;
use super::report::{entry_field, entry_items, field};
use super::schema::{LbSection, VipEntry};
use crate::control::parse::parse_cidr;
use crate::lb::compile::{plan, validate, vip_table};
use crate::lb::edit::{self, ConfigChange, VipOptions};
use crate::lb::maglev::MaglevError;
use crate::lb::state::{LbState, VipId, VipSpec};
use crate::lb::LbError;

/// The balancer state the section asks for.
pub(super) fn lb(section: Option<&Spanned<LbSection>>, report: &mut Report<'_>) -> LbState {
    let mut state = LbState::default();
    let Some(section) = section else {
        return state;
    };
    let item = section.get_ref();
    let settings: [(&str, &Option<Spanned<String>>); 3] = [
        ("source_v4", &item.source_v4),
        ("source_v6", &item.source_v6),
        ("next_hop", &item.next_hop),
    ];
    for (name, value) in settings {
        let Some(value) = value else { continue };
        let text = Some(value.get_ref().clone());
        let change = match name {
            "source_v4" => ConfigChange {
                source_v4: text,
                ..ConfigChange::default()
            },
            "source_v6" => ConfigChange {
                source_v6: text,
                ..ConfigChange::default()
            },
            _ => ConfigChange {
                next_hop: text,
                ..ConfigChange::default()
            },
        };
        if let Err(error) = edit::configure(&mut state, &change) {
            report.error(Some(value.span()), format!("lb.{name}"), error.to_string());
        }
    }
    state.settings.seed = item.seed.unwrap_or(0);
    state.settings.connection_table = item.connection_table.unwrap_or_default();
    if let Some(mtu) = &item.mtu {
        let change = ConfigChange {
            mtu: Some(*mtu.get_ref()),
            ..ConfigChange::default()
        };
        if let Err(error) = edit::configure(&mut state, &change) {
            report.error(Some(mtu.span()), "lb.mtu", error.to_string());
        }
    }
    // A source already reported as wrong would make every backend of its
    // family look unreachable.
    let sources_checked = !report.touched("lb.source_v4") && !report.touched("lb.source_v6");
    let mut seen: HashMap<VipId, usize> = HashMap::new();
    for (index, entry) in item.vip.iter().enumerate() {
        vip(&mut state, entry, index, &mut seen, sources_checked, report);
    }
    if report.clean() {
        // What no single VIP shows: totals over every VIP.
        if let Err(error) = plan(&LbState::default(), &mut state.clone(), true) {
            report.error(Some(section.span()), "lb", error.to_string());
        }
    }
    state
}

/// Adds one `[[lb.vip]]` with its backends.
fn vip(
    state: &mut LbState,
    entry: &Spanned<VipEntry>,
    index: usize,
    seen: &mut HashMap<VipId, usize>,
    sources_checked: bool,
    report: &mut Report<'_>,
) {
    let (path, item, at) = (format!("lb.vip[{index}]"), entry.get_ref(), entry.span());
    let before = report.count();
    let request = &item.request;
    let id = entry_field(
        report,
        item,
        &path,
        "vip",
        Some(&request.vip),
        edit::parse_vip,
    );
    let options = vip_options(item, &path, report);
    let Some(id) = id else { return };
    if let Some(first) = seen.get(&id) {
        let span = item.span("vip");
        report.error(
            span,
            format!("{path}.vip"),
            format!("VIP {id} is listed twice (also lb.vip[{first}])"),
        );
        return;
    }
    if report.count() > before {
        return;
    }
    if !add_vip_entry(state, id, options, item, &path, &at, report) {
        return;
    }
    seen.insert(id, index);
    allow_entry(state, &id, item, &path, report);
    if let Some(span) = item.span("owner") {
        let why = super::convert_filter::OWNED_HERE;
        report.error(Some(span), format!("{path}.owner"), why);
    }
    if let Some(health) = &item.extras.health {
        set_vip_health(state, &id, health, &path, report);
    }
    let seed = state.settings.seed;
    // The table size first, with no backend to blame.
    let ring_checked = ring_size_checked(state, &id, item, &path, &at, report);
    for (number, backend) in item.extras.backend.iter().enumerate() {
        let path = format!("{path}.backend[{number}]");
        add_backend_entry(state, &id, backend, &path, sources_checked, report);
    }
    if ring_checked {
        if let Some(Err(error)) = state.vip(&id).map(|spec| vip_table(spec, seed)) {
            report.error(Some(at), path, error.to_string());
        }
    }
}

/// `lb vip allow` with the VIP's `allow` list; each prefix that does not
/// parse is reported at its item.
fn allow_entry(
    state: &mut LbState,
    id: &VipId,
    item: &VipEntry,
    path: &str,
    report: &mut Report<'_>,
) {
    let allow = (!item.request.allow.is_empty()).then(|| item.request.allow.join(","));
    let Some(prefixes) = entry_items(report, item, path, "allow", allow.as_deref(), parse_cidr)
    else {
        return;
    };
    let texts: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
    let set = edit::parse_allow(&texts).and_then(|list| edit::set_allow(state, id, list));
    if let Err(error) = set {
        report.error(
            item.span("allow"),
            format!("{path}.allow"),
            error.to_string(),
        );
    }
}

/// The VIP's options (encapsulation, GUE port, flags, ring size); mistakes
/// are reported at their fields.
fn vip_options(item: &VipEntry, path: &str, report: &mut Report<'_>) -> VipOptions {
    let request = &item.request;
    let encap = request.encap.as_deref();
    let mut options = VipOptions {
        encap: entry_field(report, item, path, "encap", encap, |_| request.encap())
            .unwrap_or_default(),
        gue_port: request.gue_port,
        source_hash: false,
        no_conntrack: false,
        ring_size: request.ring_size,
        sample_rate: 0,
    };
    match edit::check_sample_rate(request.sample_rate.unwrap_or(0)) {
        Ok(rate) => options.sample_rate = rate,
        Err(error) => report.error(
            item.span("sample_rate"),
            format!("{path}.sample_rate"),
            error.to_string(),
        ),
    }
    let flags = (!request.flags.is_empty()).then(|| request.flags.join(","));
    let flags = entry_items(report, item, path, "flags", flags.as_deref(), |flag| {
        let mut parsed = options;
        edit::parse_flags(flag, &mut parsed).map(|()| parsed)
    });
    for parsed in flags.unwrap_or_default() {
        options.source_hash |= parsed.source_hash;
        options.no_conntrack |= parsed.no_conntrack;
    }
    options
}

/// `lb vip add`; a refusal is reported at the field it is about (the GUE
/// port or encapsulation for a usage mistake, else the VIP). True when added.
fn add_vip_entry(
    state: &mut LbState,
    id: VipId,
    options: VipOptions,
    item: &VipEntry,
    path: &str,
    at: &Range<usize>,
    report: &mut Report<'_>,
) -> bool {
    let Err(error) = edit::add_vip(state, id, options) else {
        return true;
    };
    let (span, place) = match (&error, item.span("gue_port"), item.span("encap")) {
        (LbError::Usage(_), Some(port), _) => (port, format!("{path}.gue_port")),
        (LbError::Usage(_), None, Some(encap)) => (encap, format!("{path}.encap")),
        _ => (at.clone(), path.to_string()),
    };
    report.error(Some(span), place, error.to_string());
    false
}

/// `lb vip health` with the VIP's `[lb.vip.health]`; a mistake is reported
/// at the section.
fn set_vip_health(
    state: &mut LbState,
    id: &VipId,
    health: &Spanned<super::schema::HealthEntry>,
    path: &str,
    report: &mut Report<'_>,
) {
    let check = health_check(health.get_ref());
    if let Err(error) = check.and_then(|check| edit::set_health(state, id, check)) {
        report.error(
            Some(health.span()),
            format!("{path}.health"),
            error.to_string(),
        );
    }
}

/// Checks the VIP's table size alone, reporting a bad one at `ring_size`;
/// false when it was bad (the whole table is then not checked again).
fn ring_size_checked(
    state: &LbState,
    id: &VipId,
    item: &VipEntry,
    path: &str,
    at: &Range<usize>,
    report: &mut Report<'_>,
) -> bool {
    match state
        .vip(id)
        .map(|spec| vip_table(spec, state.settings.seed))
    {
        Some(Err(LbError::Table {
            source: source @ (MaglevError::NotPrime { .. } | MaglevError::SizeOutOfRange { .. }),
            ..
        })) => {
            let span = item.span("ring_size").unwrap_or(at.clone());
            report.error(Some(span), format!("{path}.ring_size"), source.to_string());
            false
        }
        _ => true,
    }
}

/// `lb backend add` with one `[[lb.vip.backend]]`; mistakes are reported at
/// the address or weight, and (with `sources_checked`) a family with no
/// outer source at the address.
fn add_backend_entry(
    state: &mut LbState,
    id: &VipId,
    backend: &Spanned<super::schema::BackendEntry>,
    path: &str,
    sources_checked: bool,
    report: &mut Report<'_>,
) {
    let Some(address) = &backend.get_ref().address else {
        report.missing(backend.span(), path, "address", "the backend's IP address");
        return;
    };
    let Some(parsed) = field(
        report,
        &backend.get_ref().address,
        format!("{path}.address"),
        |text| edit::parse_address(text),
    ) else {
        return;
    };
    let weight = backend.get_ref().weight.as_ref();
    match edit::add_backend(
        state,
        id,
        parsed,
        weight.map_or(1, |weight| *weight.get_ref()),
    ) {
        Err(error @ LbError::Weight { .. }) => {
            let span = weight.map_or(backend.span(), Spanned::span);
            report.error(Some(span), format!("{path}.weight"), error.to_string());
        }
        Err(error) => report.error(
            Some(address.span()),
            format!("{path}.address"),
            error.to_string(),
        ),
        Ok(()) if sources_checked => {
            if let Some(message) = outer_source_missing(state, id, parsed) {
                report.error(Some(address.span()), format!("{path}.address"), message);
            }
        }
        Ok(()) => {}
    }
}

/// The balancer's own check that a backend's family has an outer source,
/// run for this backend alone.
fn outer_source_missing(state: &LbState, id: &VipId, address: std::net::IpAddr) -> Option<String> {
    let spec = state.vip(id)?;
    let backend = *spec.backend(address)?;
    let alone = LbState {
        settings: state.settings.clone(),
        vips: vec![VipSpec {
            backends: vec![backend],
            ..spec.clone()
        }],
        ..LbState::default()
    };
    match validate(&alone) {
        Err(LbError::NoOuterSource { backend, family, flag, encap }) => Some(format!(
            "backend {backend} is {family} but lb.source_{flag} is not set, so {encap} cannot carry traffic to it"
        )),
        Err(error) => Some(error.to_string()),
        Ok(()) => None,
    }
}

/// A `[lb.vip.health]` section as the balancer's check: the request of
/// `lb vip health`, read by the same function (`None` for kind `off`).
fn health_check(
    entry: &super::schema::HealthEntry,
) -> Result<Option<crate::lb::state::HealthCheck>, LbError> {
    let Some(kind) = entry.kind.clone() else {
        return Err(LbError::Usage(
            "health needs kind = \"tcp\", \"http\", \"ping\", \"udp\" or \"off\"".into(),
        ));
    };
    let mut args = crate::api::HealthArgs::new(String::new(), kind);
    args.port = entry.port.unwrap_or(args.port);
    let or = |field: &Option<String>, default: String| field.clone().unwrap_or(default);
    args.path = or(&entry.path, args.path);
    args.status = or(&entry.status, args.status);
    args.interval = or(&entry.interval, args.interval);
    args.timeout = or(&entry.timeout, args.timeout);
    args.rise = entry.rise.unwrap_or(args.rise);
    args.fall = entry.fall.unwrap_or(args.fall);
    edit::health_check(&args)
}
