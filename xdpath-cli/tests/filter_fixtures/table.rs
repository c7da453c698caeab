//! The filter's fixture table: rows of a filter state and the steps (a
//! frame and its verdict and reason) it must give, built from rule text,
//! blocks, limits and guards.

use super::*;

/// One expected step: a frame and what it must get.
pub(crate) struct Step {
    pub(crate) frame: Vec<u8>,
    pub(crate) action: Action,
    pub(crate) reason: Reason,
}

pub(crate) fn drop(frame: Vec<u8>, reason: Reason) -> Step {
    Step {
        frame,
        action: Action::Drop,
        reason,
    }
}

pub(crate) fn pass(frame: Vec<u8>, reason: Reason) -> Step {
    Step {
        frame,
        action: Action::Pass,
        reason,
    }
}

pub(crate) struct Row {
    pub(crate) description: &'static str,
    pub(crate) state: FilterState,
    pub(crate) monitor_interface: bool,
    /// The interface decapsulates (`decapsulated.rs`).
    pub(crate) decap: bool,
    pub(crate) steps: Vec<Step>,
}

pub(crate) fn row(description: &'static str, state: FilterState, steps: Vec<Step>) -> Row {
    Row {
        description,
        state,
        monitor_interface: false,
        decap: false,
        steps,
    }
}

/// A state with the rules of rule-file text, numbered from 1.
pub(crate) fn rules(text: &str) -> FilterState {
    let mut rules = parse_rules(text).expect("valid rules");
    for (index, rule) in rules.iter_mut().enumerate() {
        rule.id = index as u32 + 1;
    }
    FilterState {
        rules,
        ..FilterState::default()
    }
}

/// `state` with the rules of rule-file text (numbered from 1) as well.
pub(crate) fn with_rules(mut state: FilterState, text: &str) -> FilterState {
    state.rules = rules(text).rules;
    state
}

pub(crate) fn default_drop(mut state: FilterState, monitor: bool) -> FilterState {
    state.default_action = RuleAction::Drop;
    state.default_monitor = monitor;
    state
}

pub(crate) fn blocked(prefix: &str, expires_at: Option<u64>) -> FilterState {
    FilterState {
        blocklist: vec![BlockSpec {
            prefix: parse_cidr(prefix).expect("valid"),
            expires_at,
            vni: None,
        }],
        ..FilterState::default()
    }
}

pub(crate) fn limit(
    pps: Option<u64>,
    bps: Option<u64>,
    burst: u64,
    per: LimitKey,
    syn_only: bool,
) -> FilterState {
    FilterState {
        rate_limits: vec![LimitSpec {
            id: 1,
            packets_per_second: pps,
            burst_packets: burst,
            bytes_per_second: bps,
            burst_bytes: burst,
            per,
            aggregate_v4: 32,
            aggregate_v6: 128,
            scope: None,
            protocol: None,
            syn_only,
            monitor: false,
            vip: None,
            to: None,
            owner: None,
            vni: None,
            labels: Default::default(),
            table: Default::default(),
        }],
        ..FilterState::default()
    }
}

/// A per-source limit of 1 frame a second (a burst of `burst`) on the
/// frames to `vip`'s address, as `ratelimit add --vip` makes it.
pub(crate) fn vip_limit(vip: &str, burst: u64) -> FilterState {
    let args = xdpath::api::LimitArgs {
        pps: Some("1".into()),
        burst: Some(burst.to_string()),
        per: "src".into(),
        vip: Some(vip.into()),
        ..xdpath::api::LimitArgs::default()
    };
    FilterState {
        rate_limits: vec![xdpath::control::ops::limit_spec(&args, 1).expect("a valid limit")],
        ..FilterState::default()
    }
}

pub(crate) fn guarded(configure: impl FnOnce(&mut FilterState)) -> FilterState {
    let mut state = FilterState::default();
    configure(&mut state);
    state
}

pub(crate) const SYN: u8 = FLAG_SYN;
pub(crate) const ACK: u8 = FLAG_ACK;
pub(crate) const V4TCP: Reason = Reason::Ipv4Tcp;

/// Every row, in order.
pub(crate) fn table() -> Vec<Row> {
    let mut rows = rule_rows();
    rows.extend(policy_rows(wall_now()));
    rows.extend(super::admit::admit_rows());
    rows.push(Row {
        monitor_interface: true,
        ..row(
            "interface in monitor mode",
            rules("192.0.2.0/24"),
            vec![pass(tcp(80, SYN), Reason::RuleDeny)],
        )
    });
    rows
}

/// Rows of rules: prefixes, ports, TCP flags, protocols, chains, both
/// families, interfaces.
// Long: a table of fixture rows.
pub(crate) fn rule_rows() -> Vec<Row> {
    vec![
        row(
            "deny by source prefix",
            rules("192.0.2.0/24"),
            vec![
                drop(tcp(80, SYN), Reason::RuleDeny),
                pass(tcp_frame(OTHER4, B4, 80, SYN), V4TCP),
            ],
        ),
        row(
            "deny by port range",
            rules("--src 192.0.2.0/24 --proto tcp --dport 20-30 --action drop"),
            vec![
                drop(tcp(25, SYN), Reason::RuleDeny),
                drop(tcp(20, SYN), Reason::RuleDeny),
                pass(tcp(31, SYN), V4TCP),
                pass(udp(5000, B4), Reason::Ipv4Udp),
            ],
        ),
        row(
            "deny by tcp flags",
            rules("--src 0.0.0.0/0 --proto tcp --tcp-flags syn,!ack --action drop"),
            vec![
                drop(tcp(80, SYN), Reason::RuleDeny),
                pass(tcp(80, SYN | ACK), V4TCP),
            ],
        ),
        row(
            "deny by icmp type",
            rules("--src 192.0.2.0/24 --proto icmp --icmp-type 8 --action drop"),
            vec![
                drop(icmp(8, 0), Reason::RuleDeny),
                drop(icmp(8, 1), Reason::RuleDeny),
                pass(icmp(0, 0), Reason::Ipv4Icmp),
                pass(icmp(9, 0), Reason::Ipv4Icmp),
                pass(tcp(8 << 8, SYN), V4TCP),
                pass(udp(5000, B4), Reason::Ipv4Udp),
            ],
        ),
        row(
            "deny by icmp type and code",
            rules("--src 0.0.0.0/0 --proto icmp --icmp-type 3/4 --action drop"),
            vec![
                drop(icmp(3, 4), Reason::RuleDeny),
                pass(icmp(3, 1), Reason::Ipv4Icmp),
                pass(icmp(3, 5), Reason::Ipv4Icmp),
                pass(icmp(4, 4), Reason::Ipv4Icmp),
            ],
        ),
        row(
            "icmp type rule: later fragments carry no type",
            rules("--src 0.0.0.0/0 --proto icmp --icmp-type 0 --action drop"),
            vec![
                drop(icmp(0, 0), Reason::RuleDeny),
                pass(icmp_later_fragment(), Reason::Ipv4Icmp),
            ],
        ),
        row(
            "icmp type rules under a default drop, both families",
            default_drop(
                rules(
                    "--src 0.0.0.0/0 --proto icmp --icmp-type 0 --action pass\n\
                     --src ::/0 --proto icmpv6 --icmp-type 128 --action pass\n\
                     --src ::/0 --proto icmpv6 --icmp-type 1/4 --action pass",
                ),
                false,
            ),
            vec![
                pass(icmp(0, 0), Reason::Ipv4Icmp),
                drop(icmp(8, 0), Reason::DefaultDeny),
                pass(icmp6(128, 0), Reason::Ipv6Icmp),
                drop(icmp6(129, 0), Reason::DefaultDeny),
                pass(icmp6(1, 4), Reason::Ipv6Icmp),
                drop(icmp6(1, 3), Reason::DefaultDeny),
                drop(tcp6(128 << 8, SYN), Reason::DefaultDeny),
                drop(tcp(0, SYN), Reason::DefaultDeny),
            ],
        ),
        row(
            "source rule narrowed by destination",
            rules("--src 192.0.2.0/24 --dst 203.0.113.0/24 --action drop"),
            vec![
                drop(tcp_frame(A4, OTHER4, 80, SYN), Reason::RuleDeny),
                pass(tcp(80, SYN), V4TCP),
            ],
        ),
        row(
            "destination-only rule",
            rules("--dst 198.51.100.0/24 --proto tcp --action drop"),
            vec![
                drop(tcp(80, SYN), Reason::RuleDeny),
                pass(udp(5000, B4), Reason::Ipv4Udp),
            ],
        ),
        row(
            "deny by protocol",
            rules("--src 192.0.2.0/24 --proto udp --action drop"),
            vec![
                drop(udp(5000, B4), Reason::RuleDeny),
                pass(tcp(80, SYN), V4TCP),
            ],
        ),
        row(
            "allow overrides the default drop",
            default_drop(rules("--src 192.0.2.1 --action pass"), false),
            vec![
                pass(tcp(80, SYN), V4TCP),
                drop(tcp_frame(OTHER4, B4, 80, SYN), Reason::DefaultDeny),
            ],
        ),
        row(
            "chain falls back to the covering prefix",
            rules("192.0.2.0/24\n--src 192.0.2.0/28 --proto tcp --dport 22 --action pass"),
            vec![
                pass(tcp(22, SYN), V4TCP),
                drop(tcp(80, SYN), Reason::RuleDeny),
            ],
        ),
        row(
            "ipv6 source rule",
            rules("2001:db8::/32"),
            vec![
                drop(tcp6(80, SYN), Reason::RuleDeny),
                pass(tcp(80, SYN), V4TCP),
            ],
        ),
        row(
            "ipv4 rule does not match ipv6",
            rules("0.0.0.0/0"),
            vec![
                drop(tcp(80, SYN), Reason::RuleDeny),
                pass(tcp6(80, SYN), Reason::Ipv6Tcp),
            ],
        ),
        row(
            "ipv6 any-source rule does not match ipv4",
            rules("::/0"),
            vec![
                drop(tcp6(80, SYN), Reason::RuleDeny),
                pass(tcp(80, SYN), V4TCP),
            ],
        ),
        row(
            "whole-space rules under longer prefixes, per family",
            rules(
                "--src 0.0.0.0/0 --proto tcp --dport 22 --action pass\n\
                 --src 0.0.0.0/0 --proto tcp --dport 80 --action drop\n\
                 --src ::/0 --proto tcp --dport 443 --action drop\n\
                 --src 192.0.2.0/24 --proto tcp --dport 22 --action drop\n\
                 203.0.113.0/24",
            ),
            vec![
                // 192.0.2.0/24's own rule first, then the 0.0.0.0/0 chain.
                drop(tcp(22, SYN), Reason::RuleDeny),
                drop(tcp(80, SYN), Reason::RuleDeny),
                pass(tcp(443, SYN), V4TCP),
                drop(tcp_frame(OTHER4, B4, 22, SYN), Reason::RuleDeny),
                pass(tcp_frame(B4, A4, 22, SYN), V4TCP),
                drop(tcp_frame(B4, A4, 80, SYN), Reason::RuleDeny),
                drop(tcp6(443, SYN), Reason::RuleDeny),
                pass(tcp6(80, SYN), Reason::Ipv6Tcp),
            ],
        ),
        row(
            "whole-space destination rule",
            rules("--dst 0.0.0.0/0 --proto udp --action drop"),
            vec![
                drop(udp(5000, B4), Reason::RuleDeny),
                pass(tcp(80, SYN), V4TCP),
            ],
        ),
        row(
            "rule on an interface (test runs arrive on lo)",
            rules("--src 192.0.2.0/24 --iface lo --action drop"),
            vec![drop(tcp(80, SYN), Reason::RuleDeny)],
        ),
    ]
}

/// Rows of the policies around the rules: default deny, monitoring, blocks
/// (expiring relative to `now`), rate limits, fragment policies, guards and
/// the management bypass.
// Long: a table of fixture rows.
pub(crate) fn policy_rows(now: u64) -> Vec<Row> {
    vec![
        row(
            "default deny",
            default_drop(FilterState::default(), false),
            vec![drop(tcp(80, SYN), Reason::DefaultDeny)],
        ),
        row(
            "monitored rule",
            rules("--src 192.0.2.0/24 --action drop --monitor"),
            vec![pass(tcp(80, SYN), Reason::RuleDeny)],
        ),
        row(
            "monitored default",
            default_drop(FilterState::default(), true),
            vec![pass(tcp(80, SYN), Reason::DefaultDeny)],
        ),
        row(
            "blocklisted, no expiry",
            blocked("192.0.2.0/24", None),
            vec![
                drop(tcp(80, SYN), Reason::Blocklisted),
                pass(tcp_frame(OTHER4, B4, 80, SYN), V4TCP),
            ],
        ),
        row(
            "blocklisted until far in the future",
            blocked("192.0.2.1/32", Some(now + 86_400)),
            vec![drop(tcp(80, SYN), Reason::Blocklisted)],
        ),
        row(
            "expired block entry",
            blocked("192.0.2.0/24", Some(now - 100)),
            vec![pass(tcp(80, SYN), V4TCP), pass(tcp(80, SYN), V4TCP)],
        ),
        row(
            "packet rate limit: burst 3 then drop",
            limit(Some(1), None, 3, LimitKey::Src, false),
            vec![
                pass(tcp(80, ACK), V4TCP),
                pass(tcp(80, ACK), V4TCP),
                pass(tcp(80, ACK), V4TCP),
                drop(tcp(80, ACK), Reason::RateLimited),
                pass(tcp_frame(OTHER4, B4, 80, ACK), V4TCP),
            ],
        ),
        row(
            "byte rate limit",
            limit(None, Some(1), 100, LimitKey::Src, false),
            vec![
                pass(tcp(80, ACK), V4TCP),
                drop(tcp(80, ACK), Reason::RateLimited),
            ],
        ),
        row(
            "per-destination limit",
            limit(Some(1), None, 1, LimitKey::Dst, false),
            vec![
                pass(tcp(80, ACK), V4TCP),
                drop(tcp_frame(OTHER4, B4, 80, ACK), Reason::RateLimited),
            ],
        ),
        row(
            "a VIP's per-source limit: only frames to its address, a bucket per source",
            vip_limit("198.51.100.2:80/tcp", 2),
            vec![
                pass(tcp(80, ACK), V4TCP),
                pass(tcp(80, ACK), V4TCP),
                drop(tcp(80, ACK), Reason::RateLimited),
                pass(tcp_frame(A4, OTHER4, 80, ACK), V4TCP),
                pass(tcp_frame(OTHER4, B4, 80, ACK), V4TCP),
                pass(tcp_frame(OTHER4, B4, 80, ACK), V4TCP),
                drop(tcp_frame(OTHER4, B4, 80, ACK), Reason::RateLimited),
            ],
        ),
        row(
            "syn rate limit: burst 2 then drop",
            limit(Some(1), None, 2, LimitKey::Src, true),
            vec![
                pass(tcp(80, SYN), V4TCP),
                pass(tcp(80, SYN), V4TCP),
                pass(tcp(80, ACK), V4TCP),
                drop(tcp(80, SYN), Reason::SynRateLimited),
            ],
        ),
        row(
            "ipv4 fragments: drop later",
            guarded(|s| s.guards.fragments_v4 = FragmentChoice::DropLater),
            vec![
                pass(fragment_v4(0, true), Reason::Ipv4Udp),
                drop(fragment_v4(185, false), Reason::Fragment),
                pass(fragment_v6(100, false), Reason::Ipv6Udp),
            ],
        ),
        row(
            "ipv4 fragments: drop all",
            guarded(|s| s.guards.fragments_v4 = FragmentChoice::DropAll),
            vec![
                drop(fragment_v4(0, true), Reason::Fragment),
                pass(udp(5000, B4), Reason::Ipv4Udp),
            ],
        ),
        row(
            "ipv6 fragments: drop later",
            guarded(|s| s.guards.fragments_v6 = FragmentChoice::DropLater),
            vec![
                pass(fragment_v6(0, true), Reason::Ipv6Udp),
                drop(fragment_v6(100, false), Reason::Fragment),
            ],
        ),
        row(
            "ipv6 fragments: drop all",
            guarded(|s| s.guards.fragments_v6 = FragmentChoice::DropAll),
            vec![drop(fragment_v6(0, true), Reason::Fragment)],
        ),
        row(
            "tcp flag anomalies",
            guarded(|s| s.guards.tcp_flags = true),
            vec![
                drop(tcp(80, SYN | FLAG_FIN), Reason::TcpSynFin),
                drop(tcp(80, SYN | FLAG_RST), Reason::TcpSynRst),
                drop(tcp(80, 0), Reason::TcpNullFlags),
                drop(tcp(80, FLAG_FIN), Reason::TcpNoAck),
                drop(tcp(80, FLAG_PSH), Reason::TcpNoAck),
                pass(tcp(80, FLAG_FIN | ACK), V4TCP),
                pass(tcp(80, SYN), V4TCP),
            ],
        ),
        row(
            "amplification",
            guarded(|s| s.guards.amplification.enabled = true),
            vec![
                drop(udp(53, B4), Reason::Amplification),
                drop(udp(11211, B4), Reason::Amplification),
                pass(udp(5353, B4), Reason::Ipv4Udp),
            ],
        ),
        row(
            "amplification with an expecting destination",
            guarded(|s| {
                s.guards.amplification.enabled = true;
                s.guards.amplification.expect = vec![parse_cidr("198.51.100.0/24").expect("valid")];
            }),
            vec![
                pass(udp(53, B4), Reason::Ipv4Udp),
                drop(udp(53, OTHER4), Reason::Amplification),
            ],
        ),
        row(
            "management prefix bypasses everything",
            guarded(|s| {
                *s = default_drop(rules("192.0.2.0/24"), false);
                s.guards.tcp_flags = true;
                s.management.prefixes = vec![parse_cidr("192.0.2.0/30").expect("valid")];
            }),
            vec![
                pass(tcp(80, 0), V4TCP),
                drop(tcp_frame(OTHER4, B4, 80, SYN), Reason::DefaultDeny),
            ],
        ),
        row(
            "management port bypasses rules",
            guarded(|s| {
                *s = rules("192.0.2.0/24");
                s.management.ports = vec![22];
            }),
            vec![
                pass(tcp(22, SYN), V4TCP),
                drop(tcp(23, SYN), Reason::RuleDeny),
            ],
        ),
    ]
}
