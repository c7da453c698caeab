//! Compiling everything but the rules: the global [`FilterConfig`], rate
//! limits, guards and port bitmaps.

use xdpath_core::filter::{
    FilterConfig, FragmentPolicy, RateLimit, DIRECTION_DESTINATION,
    FILTER_ADDRESS_LIMITS_DESTINATION, FILTER_ADDRESS_LIMITS_SOURCE, FILTER_AMPLIFICATION,
    FILTER_BLOCKLIST, FILTER_DEFAULT_DROP, FILTER_DEFAULT_MONITOR, FILTER_DESTINATION_RULES,
    FILTER_MANAGEMENT_PORTS, FILTER_MANAGEMENT_SOURCES, FILTER_SOURCE_RULES, FILTER_SYN_COOKIES,
    FILTER_TCP_FLAGS, FILTER_TUNNELS, FILTER_TUNNEL_BLOCKLIST, LIMIT_DESTINATION, LIMIT_MONITOR,
    LIMIT_SCOPE_DESTINATION, LIMIT_SYN_ONLY, MAX_ADDRESS_LIMITS, MAX_BLOCKLIST, MAX_BURST,
    MAX_MANAGEMENT_PREFIXES, MAX_RATE_LIMITS, MAX_TUNNEL_BLOCKLIST,
};

use super::*;
use crate::control::parse::{Cidr, PortRange};
use crate::control::state::{FilterState, FragmentChoice, LimitKey, LimitSpec, RuleAction};

/// Compiles everything but the rules and the blocklist. `has_rules`
/// says which tries the rules use: (source, destination).
pub fn compile_settings(
    state: &FilterState,
    rules: &CompiledRules,
) -> Result<CompiledSettings, CompileError> {
    let places = limit_places(&state.rate_limits);
    check_settings(state, &places)?;
    let flags = config_flags(state, rules);
    let guards = &state.guards;
    let amplification = &guards.amplification;
    let management = &state.management;
    let mut rate_limits = Vec::new();
    let mut address_limits = Vec::new();
    let mut tunnel_limits = 0u16;
    let mut flags = flags;
    for (limit, place) in state.rate_limits.iter().zip(places) {
        let compiled = compile_limit(limit)?;
        match place {
            LimitPlace::Slot(slot) => {
                if limit.vni.is_some() && slot < MAX_RATE_LIMITS {
                    tunnel_limits |= 1 << slot;
                }
                rate_limits.push(compiled);
            }
            LimitPlace::Address(key) => {
                flags |= if key.side == DIRECTION_DESTINATION {
                    FILTER_ADDRESS_LIMITS_DESTINATION
                } else {
                    FILTER_ADDRESS_LIMITS_SOURCE
                };
                address_limits.push((key, compiled));
            }
        }
    }
    let config = FilterConfig {
        flags,
        active: 0,
        rate_limits: rate_limits.len() as u32,
        fragments_v4: fragment_policy(guards.fragments_v4) as u8,
        fragments_v6: fragment_policy(guards.fragments_v6) as u8,
        tunnel_limits,
    };
    let mut management_ports = vec![0u64; PORT_WORDS];
    for &port in &management.ports {
        set_port(&mut management_ports, port);
    }
    Ok(CompiledSettings {
        config,
        rate_limits,
        address_limits,
        reflection_ports: port_bitmap(if amplification.enabled {
            &amplification.ports
        } else {
            &[]
        }),
        reflection_expected: amplification.expect.iter().map(Cidr::key).collect(),
        management_prefixes: management.prefixes.iter().map(Cidr::key).collect(),
        management_ports,
        syncookie_ports: port_bitmap(if guards.syn_cookies.enabled {
            &guards.syn_cookies.ports
        } else {
            &[]
        }),
    })
}

/// The checks of the settings' sizes and guards, in the order they are
/// reported: blocklist size, guards without ports, prefix set sizes, the
/// number of rate limits.
fn check_settings(state: &FilterState, places: &[LimitPlace]) -> Result<(), CompileError> {
    let tunnel_blocks = state
        .blocklist
        .iter()
        .filter(|entry| entry.vni.is_some())
        .count();
    let plain_blocks = state.blocklist.len() - tunnel_blocks;
    if plain_blocks > MAX_BLOCKLIST as usize {
        return Err(CompileError::TooMany {
            what: "blocklist entries",
            count: plain_blocks,
            max: MAX_BLOCKLIST,
        });
    }
    if tunnel_blocks > MAX_TUNNEL_BLOCKLIST as usize {
        return Err(CompileError::TooMany {
            what: "blocklist entries with a VNI",
            count: tunnel_blocks,
            max: MAX_TUNNEL_BLOCKLIST,
        });
    }
    let guards = &state.guards;
    if guards.syn_cookies.enabled && guards.syn_cookies.ports.is_empty() {
        return Err(CompileError::GuardWithoutPorts {
            guard: "SYN-cookie",
        });
    }
    if guards.amplification.enabled && guards.amplification.ports.is_empty() {
        return Err(CompileError::GuardWithoutPorts {
            guard: "amplification",
        });
    }
    for (what, count) in [
        ("management prefixes", state.management.prefixes.len()),
        (
            "expected reflection destinations",
            guards.amplification.expect.len(),
        ),
    ] {
        if count > MAX_MANAGEMENT_PREFIXES as usize {
            return Err(CompileError::TooMany {
                what,
                count,
                max: MAX_MANAGEMENT_PREFIXES,
            });
        }
    }
    let general = places
        .iter()
        .filter(|place| matches!(place, LimitPlace::Slot(_)))
        .count();
    if general > MAX_RATE_LIMITS as usize {
        return Err(CompileError::TooManyLimits { count: general });
    }
    let addresses = places.len() - general;
    if addresses > MAX_ADDRESS_LIMITS as usize {
        return Err(CompileError::TooMany {
            what: "rate limits of one address",
            count: addresses,
            max: MAX_ADDRESS_LIMITS,
        });
    }
    Ok(())
}

/// The filter config's flags: which rule tries are in use, the default
/// action, and which of blocklist, guards and management sets are on.
fn config_flags(state: &FilterState, rules: &CompiledRules) -> u32 {
    let mut flags = 0;
    if !rules.sources.is_empty() {
        flags |= FILTER_SOURCE_RULES;
    }
    if !rules.destinations.is_empty() {
        flags |= FILTER_DESTINATION_RULES;
    }
    if state.default_action == RuleAction::Drop {
        flags |= FILTER_DEFAULT_DROP;
        if state.default_monitor {
            flags |= FILTER_DEFAULT_MONITOR;
        }
    }
    if state.blocklist.iter().any(|entry| entry.vni.is_none()) {
        flags |= FILTER_BLOCKLIST;
    }
    if state.blocklist.iter().any(|entry| entry.vni.is_some()) {
        flags |= FILTER_TUNNELS | FILTER_TUNNEL_BLOCKLIST;
    }
    let guards = &state.guards;
    if guards.tcp_flags {
        flags |= FILTER_TCP_FLAGS;
    }
    if guards.amplification.enabled {
        flags |= FILTER_AMPLIFICATION;
    }
    if guards.syn_cookies.enabled {
        flags |= FILTER_SYN_COOKIES;
    }
    if !state.management.prefixes.is_empty() {
        flags |= FILTER_MANAGEMENT_SOURCES;
    }
    if !state.management.ports.is_empty() {
        flags |= FILTER_MANAGEMENT_PORTS;
    }
    if state.rules.iter().any(|rule| rule.vni.is_some())
        || state.rate_limits.iter().any(|limit| limit.vni.is_some())
    {
        flags |= FILTER_TUNNELS;
    }
    flags
}

fn fragment_policy(choice: FragmentChoice) -> FragmentPolicy {
    match choice {
        FragmentChoice::Pass => FragmentPolicy::Pass,
        FragmentChoice::DropLater => FragmentPolicy::DropLater,
        FragmentChoice::DropAll => FragmentPolicy::DropAll,
    }
}

fn set_port(bitmap: &mut [u64], port: u16) {
    if let Some(word) = bitmap.get_mut(usize::from(port >> 6)) {
        *word |= 1u64 << (port & 63);
    }
}

/// The bitmap of a list of port ranges.
pub fn port_bitmap(ranges: &[PortRange]) -> PortBitmap {
    let mut bitmap = vec![0u64; PORT_WORDS];
    for range in ranges {
        for port in range.low..=range.high {
            set_port(&mut bitmap, port);
        }
    }
    bitmap
}

/// Checks a limit and turns it into the data path's form.
pub fn compile_limit(spec: &LimitSpec) -> Result<RateLimit, CompileError> {
    let bad = |why: String| CompileError::BadLimit { id: spec.id, why };
    if spec.packets_per_second.is_none() && spec.bytes_per_second.is_none() {
        return Err(bad("give --pps or --bps".into()));
    }
    for (name, rate) in [
        ("--pps", spec.packets_per_second),
        ("--bps", spec.bytes_per_second),
    ] {
        if let Some(rate) = rate {
            if rate == 0 || rate > MAX_RATE {
                return Err(bad(format!("{name} {rate} is out of range (1-{MAX_RATE})")));
            }
        }
    }
    for (name, burst, rate) in [
        ("--burst", spec.burst_packets, spec.packets_per_second),
        ("--burst-bytes", spec.burst_bytes, spec.bytes_per_second),
    ] {
        if rate.is_some() && (burst == 0 || burst > MAX_BURST) {
            return Err(bad(format!(
                "{name} {burst} is out of range (1-{MAX_BURST})"
            )));
        }
    }
    if spec.aggregate_v4 > 32 {
        return Err(bad(format!(
            "--aggregate-v4 {} is above 32",
            spec.aggregate_v4
        )));
    }
    if spec.aggregate_v6 > 128 {
        return Err(bad(format!(
            "--aggregate-v6 {} is above 128",
            spec.aggregate_v6
        )));
    }
    let mut flags = 0;
    if spec.per == LimitKey::Dst {
        flags |= LIMIT_DESTINATION;
    }
    if spec.syn_only {
        flags |= LIMIT_SYN_ONLY;
    }
    if spec.monitor {
        flags |= LIMIT_MONITOR;
    }
    let scope = match (spec.scope, spec.to) {
        (Some(_), Some(_)) => return Err(bad("--scope and --vip cannot be combined".into())),
        (None, Some(to)) => {
            flags |= LIMIT_SCOPE_DESTINATION;
            Some(to)
        }
        (scope, None) => scope,
    };
    Ok(RateLimit {
        packets_per_second: spec.packets_per_second.unwrap_or(0),
        burst_packets: if spec.packets_per_second.is_some() {
            spec.burst_packets
        } else {
            0
        },
        bytes_per_second: spec.bytes_per_second.unwrap_or(0),
        burst_bytes: if spec.bytes_per_second.is_some() {
            spec.burst_bytes
        } else {
            0
        },
        scope: scope.map_or([0; 16], |scope| scope.address),
        scope_len: scope.map_or(0, |scope| scope.mapped_length()),
        aggregate_v4: spec.aggregate_v4,
        aggregate_v6: spec.aggregate_v6,
        protocol: spec.protocol.unwrap_or(0),
        flags,
        reserved: [0; 3],
        id: spec.id,
        tunnel: spec.vni.map_or(0, |vni| vni + 1),
    })
}
