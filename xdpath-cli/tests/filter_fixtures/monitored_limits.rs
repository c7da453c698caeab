//! Rows of monitored general limits beside enforcing ones: a monitored
//! limit over its rate counts the frame and lets the limits after it
//! decide (a trial `/0` limit must not switch the others off).

use super::address_limits::address_limit;
use super::*;

/// The single limit of `state`, renumbered `id`, monitored or not.
fn one_limit(state: FilterState, id: u32, monitor: bool) -> LimitSpec {
    let mut spec = state.rate_limits[0].clone();
    spec.id = id;
    spec.monitor = monitor;
    spec
}

fn limits(limits: Vec<LimitSpec>) -> FilterState {
    FilterState {
        rate_limits: limits,
        ..FilterState::default()
    }
}

pub(crate) fn monitored_rows() -> Vec<Row> {
    vec![
        row(
            "a monitored general limit over its rate leaves the general limits after it enforcing",
            limits(vec![
                one_limit(limit(Some(1), None, 1, LimitKey::Src, false), 2, true),
                one_limit(limit(Some(1), None, 2, LimitKey::Dst, false), 1, false),
            ]),
            vec![
                pass(tcp(80, ACK), V4TCP),
                // Over the monitored limit, within the enforcing one's burst.
                pass(tcp(80, ACK), Reason::RateLimited),
                // Over both: the enforcing limit drops it.
                drop(tcp(80, ACK), Reason::RateLimited),
                // Another source and destination: under both.
                pass(tcp_frame(OTHER4, A4, 80, ACK), V4TCP),
            ],
        ),
        row(
            "a drop after a held monitored SYN verdict: the drop's reason, nothing held after",
            limits(vec![
                one_limit(limit(Some(1), None, 1, LimitKey::Src, true), 1, true),
                one_limit(limit(Some(1), None, 2, LimitKey::Src, false), 2, false),
            ]),
            vec![
                pass(tcp(80, SYN), V4TCP),
                pass(tcp(80, SYN), Reason::SynRateLimited),
                drop(tcp(80, SYN), Reason::RateLimited),
                // Under every limit: a plain pass, no verdict left over.
                pass(tcp_frame(OTHER4, B4, 80, ACK), V4TCP),
            ],
        ),
        row(
            "a monitored limit of one address over its rate leaves the address limits after it enforcing",
            limits(vec![
                {
                    let mut trial = address_limit(1, "dst", "198.51.100.2/32", 1);
                    trial.monitor = true;
                    trial
                },
                address_limit(2, "src", "192.0.2.1/32", 2),
            ]),
            vec![
                pass(tcp(80, ACK), V4TCP),
                // Over the monitored destination's limit, within the source's.
                pass(tcp(80, ACK), Reason::RateLimited),
                // Over both: the source's limit drops it.
                drop(tcp(80, ACK), Reason::RateLimited),
            ],
        ),
        row(
            "two monitored limits over their rates: the first one's reason",
            limits(vec![
                one_limit(limit(Some(1), None, 1, LimitKey::Src, true), 1, true),
                one_limit(limit(Some(1), None, 1, LimitKey::Dst, false), 2, true),
            ]),
            vec![
                pass(tcp(80, SYN), V4TCP),
                pass(tcp(80, SYN), Reason::SynRateLimited),
                pass(tcp(80, ACK), Reason::RateLimited),
                pass(tcp_frame(OTHER4, A4, 80, ACK), V4TCP),
            ],
        ),
    ]
}
