//! Rows of rate limits of one address each, which the control plane keeps
//! in the address table (`ADDRESS_LIMITS`): one bucket for everything to
//! (or from) the address, beside and after the general limits.

use super::*;
use xdpath::api::LimitArgs;

/// A limit of `pps` frames a second (burst `burst`) per `per`, scoped to
/// `scope`, as `ratelimit add` makes it (so kept in the address table
/// when the scope is one address).
pub(crate) fn address_limit(id: u32, per: &str, scope: &str, burst: u64) -> LimitSpec {
    let args = LimitArgs {
        pps: Some("1".into()),
        burst: Some(burst.to_string()),
        per: per.into(),
        scope: Some(scope.into()),
        ..LimitArgs::default()
    };
    xdpath::control::ops::limit_spec(&args, id).expect("a valid limit")
}

fn limits(limits: Vec<LimitSpec>) -> FilterState {
    FilterState {
        rate_limits: limits,
        ..FilterState::default()
    }
}

/// Destination `index` of the row of many limits: 10.1.0.`index`.
fn destination(index: u8) -> [u8; 4] {
    [10, 1, 0, index]
}

// Long: a table of fixture rows.
pub(crate) fn address_rows() -> Vec<Row> {
    let mut monitored = address_limit(1, "dst", "198.51.100.2/32", 1);
    monitored.monitor = true;
    let many: Vec<LimitSpec> = (1..=40u8)
        .map(|index| address_limit(u32::from(index), "dst", &format!("10.1.0.{index}/32"), 1))
        .chain([limit(Some(1), None, 3, LimitKey::Src, false).rate_limits[0].clone()])
        .map(|mut limit| {
            if limit.id == 1 && limit.scope.is_none() {
                limit.id = 41;
            }
            limit
        })
        .collect();
    vec![
        row(
            "a limit of one destination: one bucket for every source",
            limits(vec![address_limit(1, "dst", "198.51.100.2/32", 2)]),
            vec![
                pass(tcp(80, ACK), V4TCP),
                pass(tcp_frame(OTHER4, B4, 443, SYN), V4TCP),
                drop(tcp(80, ACK), Reason::RateLimited),
                pass(tcp_frame(A4, OTHER4, 80, ACK), V4TCP),
            ],
        ),
        row(
            "a limit of one source address",
            limits(vec![address_limit(1, "src", "192.0.2.1/32", 1)]),
            vec![
                pass(tcp(80, ACK), V4TCP),
                drop(tcp_frame(A4, OTHER4, 22, ACK), Reason::RateLimited),
                pass(tcp_frame(OTHER4, B4, 80, ACK), V4TCP),
            ],
        ),
        row(
            "a limit of one IPv6 destination",
            limits(vec![address_limit(1, "dst", "2001:db8::2/128", 1)]),
            vec![
                pass(tcp6(80, ACK), Reason::Ipv6Tcp),
                drop(tcp6(80, ACK), Reason::RateLimited),
                pass(tcp(80, ACK), V4TCP),
            ],
        ),
        row(
            "a monitored limit of one address counts and passes",
            limits(vec![monitored]),
            vec![
                pass(tcp(80, ACK), V4TCP),
                pass(tcp(80, ACK), Reason::RateLimited),
            ],
        ),
        row(
            "forty limits of one address each beside a general limit: a bucket each",
            limits(many),
            vec![
                pass(tcp_frame(A4, destination(1), 80, ACK), V4TCP),
                drop(tcp_frame(A4, destination(1), 80, ACK), Reason::RateLimited),
                pass(tcp_frame(A4, destination(40), 80, ACK), V4TCP),
                // The general per-source limit (burst 3) charged three
                // frames of A4 already: the fourth is its drop.
                drop(tcp_frame(A4, destination(17), 80, ACK), Reason::RateLimited),
                pass(tcp_frame(OTHER4, destination(17), 80, ACK), V4TCP),
                drop(
                    tcp_frame(OTHER4, destination(40), 80, ACK),
                    Reason::RateLimited,
                ),
            ],
        ),
        row(
            "two limits of one address: the second among the general ones",
            limits(vec![
                address_limit(1, "dst", "198.51.100.2/32", 3),
                address_limit(2, "dst", "198.51.100.2/32", 1),
            ]),
            vec![
                pass(tcp(80, ACK), V4TCP),
                drop(tcp(80, ACK), Reason::RateLimited),
            ],
        ),
        row(
            "an admitted frame is still limited (a security group's allow beside QoS)",
            with_rules(
                limits(vec![address_limit(1, "dst", "198.51.100.2/32", 1)]),
                "--dst 198.51.100.2/32 --action admit",
            ),
            vec![
                pass(tcp(80, ACK), V4TCP),
                drop(tcp(80, ACK), Reason::RateLimited),
            ],
        ),
        row(
            "a monitored general limit over its rate does not switch the address limits off",
            limits(vec![
                {
                    let mut trial =
                        limit(Some(1), None, 1, LimitKey::Src, false).rate_limits[0].clone();
                    trial.id = 2;
                    trial.monitor = true;
                    trial
                },
                address_limit(1, "dst", "198.51.100.2/32", 2),
            ]),
            vec![
                pass(tcp(80, ACK), V4TCP),
                pass(tcp(80, ACK), Reason::RateLimited),
                drop(tcp(80, ACK), Reason::RateLimited),
            ],
        ),
        row(
            "an allowed frame is not limited",
            with_rules(
                limits(vec![address_limit(1, "dst", "198.51.100.2/32", 1)]),
                "--src 192.0.2.1/32 --action allow",
            ),
            vec![
                pass(tcp(80, ACK), V4TCP),
                pass(tcp(80, ACK), V4TCP),
                // The allowed frames took no token.
                pass(tcp_frame(OTHER4, B4, 80, ACK), V4TCP),
                drop(tcp_frame(OTHER4, B4, 80, ACK), Reason::RateLimited),
            ],
        ),
    ]
}
