//! The filter rows' state: the benchmark's rule set, and the limits of
//! one address `--address-limits` adds.

use super::AddressLimitsOption;

/// Denied /24 prefixes in the filter benchmark's rule set.
pub const BENCH_PREFIXES: u32 = 100_000;

/// The filter benchmark's rule set: 100,000 denied source /24s (10.0.0.0
/// onwards), port rules (an allowed SSH port, a denied UDP range, an
/// allowed HTTPS destination) and a per-source packet limit high enough
/// that it drops nothing but is looked up and charged for every frame.
pub fn bench_filter_state() -> Result<xdpath::control::state::FilterState, String> {
    bench_filter_state_with(AddressLimitsOption::default())
}

/// [`bench_filter_state`] with `extra` limits of one address each: per
/// destination, 198.51.100.2 and 2001:db8::2 (the mix's destinations)
/// first, then 100.64.0.0/10's addresses; 10⁹ frames a second, so they
/// drop nothing.
pub fn bench_filter_state_with(
    extra: AddressLimitsOption,
) -> Result<xdpath::control::state::FilterState, String> {
    let mut state = bench_filter_base()?;
    let scopes = ["198.51.100.2/32".to_string(), "2001:db8::2/128".to_string()]
        .into_iter()
        .chain((0u32..).map(|n| {
            let host = (100 << 24 | 64 << 16) + n;
            format!("{}/32", std::net::Ipv4Addr::from(host))
        }));
    for (scope, id) in scopes.take(extra.count as usize).zip(2u32..) {
        let args = xdpath::api::LimitArgs {
            pps: Some("1000000000".into()),
            per: "dst".into(),
            scope: Some(scope),
            ..xdpath::api::LimitArgs::default()
        };
        let mut limit = xdpath::control::ops::limit_spec(&args, id).map_err(|e| e.to_string())?;
        if extra.general {
            limit.table = xdpath::control::state::LimitTable::General;
        }
        state.rate_limits.push(limit);
    }
    state.next_limit_id = extra.count + 2;
    Ok(state)
}

fn bench_filter_base() -> Result<xdpath::control::state::FilterState, String> {
    use std::fmt::Write;
    let mut text = String::from(
        "--src 0.0.0.0/0 --proto tcp --dport 22 --action pass\n\
         --src 0.0.0.0/0 --proto udp --dport 1000-2000 --action drop\n\
         --dst 198.51.100.0/24 --proto tcp --dport 443 --action pass\n",
    );
    for index in 0..BENCH_PREFIXES {
        let network = 10 * 65_536 + index;
        let _ = writeln!(
            text,
            "{}.{}.{}.0/24",
            network >> 16,
            (network >> 8) & 0xff,
            network & 0xff
        );
    }
    let mut rules = xdpath::control::rulefile::parse_rules(&text)
        .map_err(|(line, message)| format!("line {line}: {message}"))?;
    for (index, rule) in rules.iter_mut().enumerate() {
        rule.id = index as u32 + 1;
    }
    let limit = xdpath::control::state::LimitSpec {
        id: 1,
        packets_per_second: Some(1_000_000_000),
        burst_packets: 1_000_000_000,
        bytes_per_second: None,
        burst_bytes: 0,
        per: xdpath::control::state::LimitKey::Src,
        aggregate_v4: 32,
        aggregate_v6: 128,
        scope: None,
        protocol: None,
        syn_only: false,
        monitor: false,
        vip: None,
        to: None,
        owner: None,
        vni: None,
        labels: Default::default(),
        table: Default::default(),
    };
    Ok(xdpath::control::state::FilterState {
        rules,
        rate_limits: vec![limit],
        ..Default::default()
    })
}
