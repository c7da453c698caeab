//! The states the differential fuzz runs frames against: what the fixture
//! tables set up (rules, blocklist, limits, guards, management, monitor
//! mode, VIPs, decapsulation), built through the same control-plane code
//! the CLI uses and installed the same way into both builds.
//!
//! Left out, because the two builds cannot see the same thing: SYN cookies
//! (kernel only), forwarding (the kernel asks its FIB), FIB next hops for
//! the balancer (a fixed next-hop MAC instead) and 1-in-N sampling (the
//! kernel's random numbers). Rates are 1 per second: within a round (well
//! under a second) no bucket earns a whole token, so the verdicts do not
//! depend on when each build read its clock.

use std::net::IpAddr;

use xdpath_core::build::{doc_v6, FrameSpec, Network, Transport};
use xdpath_core::parse::ipv4_mapped;
use xdpath_core::wire::tcp::{FLAG_ACK, FLAG_SYN};
use xdpath_core::{InterfaceConfig, MalformedPolicy, NativeTables};

mod balancer;
use super::frames::{Endpoint, Vocabulary};
use balancer::{balancer, balancer_seeds, decap_seeds, vip_endpoints};
use xdpath::api::LimitArgs;
use xdpath::control::apply::install_fresh;
use xdpath::control::kernel::monotonic_now_ns;
use xdpath::control::parse::parse_cidr;
use xdpath::control::rulefile::parse_rules;
use xdpath::control::state::{BlockSpec, FilterState, FragmentChoice, RuleAction};
use xdpath::control::wall_now;
use xdpath::lb::install::CompiledLb;

/// The GUE port of the balancer's GUE VIPs and of the decapsulator.
pub const GUE_PORT: u16 = 6080;

/// Test runs arrive on the loopback interface; native tables are given
/// its index, and rules on `lo` resolve to it.
pub const LOOPBACK_IFINDEX: u32 = 1;

/// One state, and the frames that exercise it.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// What it is.
    pub name: &'static str,
    /// The interface config.
    pub config: InterfaceConfig,
    /// The filter state.
    pub filter: FilterState,
    /// The balancer, if any.
    pub lb: Option<CompiledLb>,
    /// This host's addresses, for decapsulation.
    pub local_addresses: Vec<[u8; 16]>,
    /// Addresses and ports the state names.
    pub vocabulary: Vocabulary,
    /// Fixture-like frames to mutate.
    pub seeds: Vec<Vec<u8>>,
}

pub(super) const CLIENT4: [u8; 4] = [192, 0, 2, 1];
const SERVER4: [u8; 4] = [198, 51, 100, 2];
const OTHER4: [u8; 4] = [203, 0, 113, 9];
pub(super) const VIP4: [u8; 4] = [203, 0, 113, 10];
pub(super) const BACKEND4: [[u8; 4]; 2] = [[10, 0, 0, 1], [10, 0, 0, 2]];

/// Every address the scenarios name.
fn vocabulary() -> Vocabulary {
    Vocabulary {
        v4: vec![
            CLIENT4,
            [192, 0, 2, 3],
            [192, 0, 2, 200],
            SERVER4,
            OTHER4,
            VIP4,
            [203, 0, 113, 11],
            [203, 0, 113, 12],
            [203, 0, 113, 13],
            BACKEND4[0],
            BACKEND4[1],
            [172, 16, 0, 1],
        ],
        v6: [1, 2, 0x10, 0x20, 0x30, 0x33, 0xfe, 0xff00]
            .into_iter()
            .map(doc_v6)
            .collect(),
        ports: vec![
            0, 20, 22, 25, 30, 31, 53, 80, 123, 443, 1900, 5353, 11211, GUE_PORT, 33000, 40000,
        ],
        endpoints: Vec::new(),
    }
}

/// The fixture tables' frames: TCP in every flag combination the guards
/// know, UDP from reflection ports, fragments, VLAN tags, both families.
pub(super) fn fixture_seeds() -> Vec<Vec<u8>> {
    let v4 = |source, destination| Network::V4(source, destination);
    let v6 = Network::V6(doc_v6(1), doc_v6(2));
    let mut seeds = Vec::new();
    for flags in [FLAG_SYN, FLAG_ACK, FLAG_SYN | FLAG_ACK, 0, 0x03, 0x05, 0x01] {
        seeds.push(FrameSpec::new(v4(CLIENT4, SERVER4), Transport::tcp(40000, 80, flags)).build());
        seeds.push(FrameSpec::new(v6, Transport::tcp(40000, 443, flags)).build());
    }
    for port in [53, 123, 11211, 5353] {
        seeds.push(FrameSpec::new(v4(CLIENT4, SERVER4), Transport::udp(port, 33000)).build());
    }
    seeds.push(
        FrameSpec::new(v4(CLIENT4, VIP4), Transport::tcp(40000, 80, FLAG_SYN))
            .with_payload(b"GET / HTTP/1.1\r\n\r\n")
            .build(),
    );
    seeds.push(
        FrameSpec::new(
            Network::V6(doc_v6(1), doc_v6(0x10)),
            Transport::tcp(1, 443, FLAG_SYN),
        )
        .with_vlans(&[100])
        .build(),
    );
    seeds.push(
        FrameSpec::new(
            Network::V6(doc_v6(1), doc_v6(0x20)),
            Transport::udp(5000, 5353),
        )
        .with_payload(&[9; 30])
        .build(),
    );
    seeds.push(
        FrameSpec::new(v4(OTHER4, VIP4), Transport::EchoRequest)
            .with_vlans(&[5, 6])
            .build(),
    );
    // ICMP types and codes on both sides of the ICMP-type rules.
    for (kind, code) in [(8, 0), (8, 3), (0, 0), (3, 4)] {
        seeds.push(FrameSpec::new(v4(CLIENT4, SERVER4), Transport::Icmp { kind, code }).build());
    }
    for (kind, code) in [(128, 0), (128, 1), (129, 0)] {
        seeds.push(FrameSpec::new(v6, Transport::Icmp { kind, code }).build());
    }
    // An IPv4 first fragment and a later one.
    let mut first = FrameSpec::new(v4(CLIENT4, SERVER4), Transport::udp(5000, 33000))
        .with_payload(&[1; 48])
        .build();
    first[20] = 0x20;
    let mut later = first.clone();
    later[20..22].copy_from_slice(&185u16.to_be_bytes());
    seeds.extend([first, later]);
    seeds
}

/// A rule file touching every kind of match: source, destination, both,
/// protocol, port range, TCP flags, interface (test runs arrive on lo),
/// monitor, both families, whole-space prefixes.
const RULES: &str = "\
192.0.2.0/25
--src 192.0.2.0/24 --proto tcp --dport 20-30 --action drop
--src 0.0.0.0/0 --tcp-flags syn,!ack --proto tcp --dport 25 --action drop
--src 192.0.2.0/24 --dst 203.0.113.0/24 --action drop
--dst 198.51.100.0/24 --proto udp --action drop
--src 192.0.2.1 --proto tcp --dport 22 --action pass
--src 192.0.2.1 --proto udp --action admit
--src 203.0.113.0/24 --iface lo --proto icmp --action drop
--src 198.51.100.0/24 --action drop --monitor
--src 2001:db8::/32 --proto tcp --dport 443 --action drop
--src ::/0 --proto udp --dport 53 --action drop
--dst 0.0.0.0/0 --proto 47 --action drop
--src 0.0.0.0/0 --proto icmp --icmp-type 8 --action drop
--src ::/0 --proto icmpv6 --icmp-type 128/0 --action drop
";

/// Rules for tenant traffic in tunnels: inner headers by VNI, beside a
/// rule on the outer headers.
const TUNNEL_RULES: &str = "\
--vni 1001 --src 192.0.2.0/25 --action drop
--vni 1001 --src 2001:db8::/32 --proto tcp --dport 443 --action drop
--vni 7 --dst 198.51.100.0/24 --proto udp --action pass
--vni 1001 --src 192.0.2.1 --proto udp --action admit
--vni 7 --src 0.0.0.0/0 --proto tcp --tcp-flags syn,!ack --action drop
--src 203.0.113.0/24 --action drop
";

/// VXLAN and Geneve (with and without options) around the fixture
/// frames of both families, over IPv4 and IPv6 underlays.
fn tunnel_seeds() -> Vec<Vec<u8>> {
    use xdpath_core::build::{geneve_frame, geneve_header, tunnelled, vxlan_frame, vxlan_header};
    let inner: Vec<Vec<u8>> = fixture_seeds().into_iter().take(6).collect();
    let mut seeds = Vec::new();
    for (index, frame) in inner.iter().enumerate() {
        let vni = if index % 2 == 0 { 1001 } else { 7 };
        seeds.push(vxlan_frame(vni, frame));
        seeds.push(geneve_frame(vni, 4 * index, frame));
    }
    let underlay6 = Network::V6(doc_v6(1), doc_v6(2));
    if let Some(frame) = inner.first() {
        seeds.push(tunnelled(underlay6, 4789, &vxlan_header(1001), frame));
        seeds.push(tunnelled(underlay6, 6081, &geneve_header(7, 252), frame));
    }
    seeds
}

/// Tunnel rules and a per-source limit on one VNI's inner sources.
fn tunnel_state() -> Result<FilterState, String> {
    let mut state = FilterState {
        rules: parse_rules(TUNNEL_RULES)
            .map_err(|(line, error)| format!("rule {line}: {error}"))?,
        ..FilterState::default()
    };
    for (index, rule) in state.rules.iter_mut().enumerate() {
        rule.id = index as u32 + 1;
    }
    state.rate_limits = vec![limit(
        LimitArgs {
            pps: Some("1".into()),
            burst: Some("2".into()),
            per: "src".into(),
            vni: Some("7".into()),
            ..LimitArgs::default()
        },
        1,
    )?];
    Ok(state)
}

fn limit(args: LimitArgs, id: u32) -> Result<xdpath::control::state::LimitSpec, String> {
    xdpath::control::ops::limit_spec(&args, id).map_err(|error| error.to_string())
}

/// Rules and a default drop, or blocklist, limits, guards and management.
fn filter_state(rules: bool, guards: bool) -> Result<FilterState, String> {
    let mut state = FilterState::default();
    if rules {
        state.rules =
            parse_rules(RULES).map_err(|(line, error)| format!("rule {line}: {error}"))?;
        for (index, rule) in state.rules.iter_mut().enumerate() {
            rule.id = index as u32 + 1;
        }
        state.default_action = RuleAction::Drop;
    }
    if !guards {
        return Ok(state);
    }
    let now = wall_now();
    let cidr = |text: &str| parse_cidr(text).map_err(|error| error.to_string());
    state.blocklist = vec![
        BlockSpec {
            prefix: cidr("203.0.113.0/28")?,
            expires_at: None,
            vni: None,
        },
        BlockSpec {
            prefix: cidr("2001:db8::fe/127")?,
            expires_at: Some(now + 86_400),
            vni: None,
        },
        BlockSpec {
            prefix: cidr("192.0.2.200/32")?,
            expires_at: Some(now.saturating_sub(100)),
            vni: None,
        },
        // Entries with a VNI make both builds look inside every VXLAN and
        // Geneve frame of the corpora, and block some inner sources.
        BlockSpec {
            prefix: cidr("10.0.0.0/8")?,
            expires_at: None,
            vni: Some(0),
        },
        BlockSpec {
            prefix: cidr("::/0")?,
            expires_at: Some(now + 86_400),
            vni: Some(1),
        },
    ];
    let args = |pps: Option<&str>, bps: Option<&str>, burst: &str| LimitArgs {
        pps: pps.map(str::to_string),
        bps: bps.map(str::to_string),
        burst: pps.map(|_| burst.to_string()),
        burst_bytes: bps.map(|_| burst.to_string()),
        per: "src".into(),
        ..LimitArgs::default()
    };
    state.rate_limits = vec![
        limit(
            LimitArgs {
                syn: true,
                ..args(Some("1"), None, "3")
            },
            1,
        )?,
        limit(
            LimitArgs {
                scope: Some("198.51.100.0/24".into()),
                proto: Some("udp".into()),
                ..args(None, Some("1"), "300")
            },
            2,
        )?,
        limit(
            LimitArgs {
                per: "dst".into(),
                aggregate_v6: Some("64".into()),
                ..args(Some("1"), None, "40")
            },
            3,
        )?,
        limit(
            LimitArgs {
                aggregate_v4: Some("24".into()),
                monitor: true,
                ..args(Some("1"), None, "20")
            },
            4,
        )?,
        // A VIP's per-source limit: the scope is the destination's.
        limit(
            LimitArgs {
                vip: Some("203.0.113.10:80/tcp".into()),
                ..args(Some("1"), None, "2")
            },
            5,
        )?,
    ];
    // Limits of one address each (the address table), on addresses the
    // corpora's captures use often, both sides and families.
    for (id, (per, scope)) in (6..).zip([
        ("dst", "192.168.1.1/32"),
        ("src", "192.168.1.1/32"),
        ("dst", "10.0.0.1/32"),
        ("src", "10.0.0.2/32"),
        ("dst", "192.168.0.1/32"),
        ("dst", "fe80::1/128"),
    ]) {
        state.rate_limits.push(limit(
            LimitArgs {
                per: per.into(),
                scope: Some(scope.into()),
                ..args(Some("1"), None, "5")
            },
            id,
        )?);
    }
    state.guards.tcp_flags = true;
    state.guards.amplification.enabled = true;
    state.guards.amplification.expect = vec![cidr("198.51.100.0/25")?];
    state.guards.fragments_v4 = FragmentChoice::DropLater;
    state.guards.fragments_v6 = FragmentChoice::DropAll;
    state.management.prefixes = vec![cidr("192.0.2.0/30")?, cidr("2001:db8::1/128")?];
    state.management.ports = vec![22];
    Ok(state)
}

fn scenario(name: &'static str, config: InterfaceConfig, filter: FilterState) -> Scenario {
    Scenario {
        name,
        config,
        filter,
        lb: None,
        local_addresses: Vec::new(),
        vocabulary: vocabulary(),
        seeds: fixture_seeds(),
    }
}

/// The scenario's state in native tables, installed by the control plane
/// as the kernel's is (rules on `lo` match, time is now).
pub fn native_tables(scenario: &Scenario) -> Result<NativeTables, String> {
    let mut native = NativeTables::new(scenario.config);
    native.ifindex = LOOPBACK_IFINDEX;
    native.set_now_ns(monotonic_now_ns());
    let lo = |name: &str| (name == "lo").then_some(LOOPBACK_IFINDEX);
    install_fresh(&mut native, &scenario.filter, &lo, wall_now())
        .map_err(|error| error.to_string())?;
    if let Some(lb) = &scenario.lb {
        lb.install_native(&mut native);
    }
    native
        .lb
        .local_addresses
        .extend(scenario.local_addresses.iter().copied());
    Ok(native)
}

/// Every scenario, in the order rounds cycle through them.
pub fn scenarios() -> Result<Vec<Scenario>, String> {
    let pass = InterfaceConfig::new(MalformedPolicy::Pass);
    let drop = InterfaceConfig::new(MalformedPolicy::Drop);
    let mut everything = filter_state(true, true)?;
    everything.default_monitor = true;
    let mut balancer_scenario = scenario("balancer", drop, filter_state(false, false)?);
    balancer_scenario.filter.rules =
        parse_rules("--src 198.51.100.0/24 --proto tcp --action drop").map_err(|(_, e)| e)?;
    balancer_scenario.filter.rules[0].id = 1;
    balancer_scenario.lb = Some(balancer()?);
    balancer_scenario.seeds = balancer_seeds();
    balancer_scenario.vocabulary.endpoints = vip_endpoints()?;
    let mut decap = scenario(
        "decapsulating backend",
        drop.with_decap(true, GUE_PORT),
        FilterState::default(),
    );
    decap.local_addresses = vec![ipv4_mapped(BACKEND4[0]), doc_v6(0x33)];
    for address in [IpAddr::from(BACKEND4[0]), IpAddr::from(doc_v6(0x33))] {
        for (port, protocol) in [(GUE_PORT, 17), (0, 4), (0, 41)] {
            decap.vocabulary.endpoints.push(Endpoint {
                address,
                port,
                protocol,
            });
        }
    }
    decap.seeds = decap_seeds();
    let mut tunnels = scenario("tunnels: rules and a limit by VNI", drop, tunnel_state()?);
    tunnels.seeds = tunnel_seeds();
    Ok(vec![
        scenario(
            "no filter, malformed frames passed",
            pass,
            FilterState::default(),
        ),
        scenario(
            "no filter, malformed frames dropped",
            drop,
            FilterState::default(),
        ),
        scenario("rules, default drop", drop, filter_state(true, false)?),
        scenario(
            "blocklist, limits, guards, management",
            pass,
            filter_state(false, true)?,
        ),
        scenario(
            "everything, interface in monitor mode",
            drop.with_monitor(true),
            everything,
        ),
        balancer_scenario,
        decap,
        tunnels,
    ])
}

/// Installs the scenario's balancer (if any) in the kernel, and keys the
/// native new-flow table with the kernel's seed so that both place flows
/// alike (the native tables hold the rest already: [`native_tables`]).
pub fn install_balancer(
    scenario: &Scenario,
    maps: &xdpath::control::kernel::KernelMaps,
    native: &mut NativeTables,
) -> Result<(), String> {
    let Some(lb) = &scenario.lb else {
        return Ok(());
    };
    lb.install_kernel(maps).map_err(|error| error.to_string())?;
    native.lb.new_flow_seed =
        xdpath::lb::install::new_flow_seed(maps).map_err(|error| error.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_builds() {
        let scenarios = scenarios().expect("scenarios");
        assert_eq!(scenarios.len(), 8);
        let balancer = scenarios
            .iter()
            .find_map(|scenario| scenario.lb.as_ref())
            .expect("a balancer");
        assert_eq!(balancer.vips.len(), 7);
        assert!(scenarios.iter().all(|scenario| !scenario.seeds.is_empty()));
    }
}
