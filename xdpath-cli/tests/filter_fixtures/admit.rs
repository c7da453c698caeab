//! Rows of the `admit` action: it ends the rules (and the default drop)
//! but leaves the frame to the blocklist, the guards and the rate limits,
//! where `pass` ends the whole filter.

use super::*;

/// A per-source limit of burst 2 with the TCP flag guard on.
fn guarded_limit() -> FilterState {
    let mut state = limit(Some(1), None, 2, LimitKey::Src, false);
    state.guards.tcp_flags = true;
    state
}

/// The `admit` rows.
pub(crate) fn admit_rows() -> Vec<Row> {
    vec![
        row(
            "admit ends the rules and the default drop",
            default_drop(
                rules("--src 192.0.2.1 --action admit\n--src 192.0.2.0/24 --action drop"),
                false,
            ),
            vec![
                pass(tcp(80, SYN), V4TCP),
                drop(tcp_frame(OTHER4, B4, 80, SYN), Reason::DefaultDeny),
            ],
        ),
        row(
            "an admitted source is still blocklisted; an allowed one is not",
            with_rules(
                blocked("192.0.2.0/24", None),
                "--src 192.0.2.1 --proto tcp --dport 80 --action admit\n\
                 --src 192.0.2.1 --proto tcp --dport 22 --action pass",
            ),
            vec![
                drop(tcp(80, SYN), Reason::Blocklisted),
                pass(tcp(22, SYN), V4TCP),
            ],
        ),
        row(
            "an admitted source is still rate limited and guarded",
            with_rules(guarded_limit(), "--src 192.0.2.1 --action admit"),
            vec![
                drop(tcp(80, SYN | FLAG_FIN), Reason::TcpSynFin),
                pass(tcp(80, ACK), V4TCP),
                pass(tcp(80, ACK), V4TCP),
                drop(tcp(80, ACK), Reason::RateLimited),
            ],
        ),
    ]
}
