//! The health checker: every backend of a VIP with a health check is
//! probed at its interval (off the async threads); `fall` failures in a
//! row take it out of the VIP's Maglev table, `rise` passes in a row put it
//! back, through the same locked state as every other change. The state
//! it acts on is re-read from the namespace's `lb.json` on every round, so
//! changes made by the CLI or the API are picked up at once.
//!
//! A verdict whose change is refused (say the VIP's table cannot hold the
//! backend coming back) or fails is not lost: it stays pending, shown as
//! `table_pending` in the backend's health state and logged, and is tried
//! again after the backend's next checks until it lands or the verdict
//! turns.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use xdpath::control::state;
use xdpath::lb::edit;
use xdpath::lb::health::{probe, Tracker};
use xdpath::lb::session::LbSession;
use xdpath::lb::state::{HealthCheck, LbState, VipId, LB_STATE_FILE};

/// How often the checker looks for due probes.
const TICK: Duration = Duration::from_millis(50);

/// The least time between two attempts to apply a pending verdict (a
/// check's interval may be 10 ms; a refused change is not worth a state
/// lock that often).
const RETRY_GAP: Duration = Duration::from_secs(1);

/// The least time between two log lines of the same refusal.
const LOG_GAP: Duration = Duration::from_secs(60);

/// One checked backend.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// The VIP.
    pub vip: String,
    /// The backend.
    pub backend: IpAddr,
    /// In the table (true) or taken out (false).
    pub healthy: bool,
    /// Probes so far.
    pub checks: u64,
    /// Passes in a row.
    pub passes: u32,
    /// Failures in a row.
    pub failures: u32,
    /// Why the last failed probe failed.
    pub last_error: Option<String>,
    /// Why the verdict (`healthy`) is not in the table yet: its change
    /// was refused or failed, and is tried again. None when the table
    /// agrees.
    pub table_pending: Option<String>,
    #[serde(skip)]
    tracker: Tracker,
    #[serde(skip)]
    retry_at: Option<Instant>,
    /// Failed attempts in a row to apply the verdict: the gap before the
    /// next doubles with each (a refusal that lasts is not retried every
    /// second for ever; each try plans every VIP's table).
    #[serde(skip)]
    retries: u32,
    #[serde(skip)]
    logged_at: Option<Instant>,
    #[serde(skip)]
    next_due: Option<Instant>,
    #[serde(skip)]
    in_flight: bool,
}

/// Every checked backend, by VIP and address.
pub type Board = Mutex<HashMap<(VipId, IpAddr), Entry>>;

fn load_state() -> Option<LbState> {
    let dir = state::state_dir().ok()?;
    state::load(&dir.join(LB_STATE_FILE)).ok()
}

/// Runs the checker until the process ends.
pub async fn run(board: Arc<Board>) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let Ok(Some(lb)) = tokio::task::spawn_blocking(load_state).await else {
            continue;
        };
        for (id, port, check, address) in due_probes(&board, &lb) {
            tokio::spawn(check_one(board.clone(), id, port, check, address));
        }
    }
}

/// Brings the board in line with the state and picks the probes due now.
fn due_probes(board: &Board, lb: &LbState) -> Vec<(VipId, u16, HealthCheck, IpAddr)> {
    let Ok(mut entries) = board.lock() else {
        return Vec::new();
    };
    entries.retain(|(id, address), _| {
        lb.vip(id)
            .is_some_and(|vip| vip.health.is_some() && vip.backend(*address).is_some())
    });
    let now = Instant::now();
    let mut due = Vec::new();
    for vip in &lb.vips {
        let Some(check) = &vip.health else { continue };
        for backend in &vip.backends {
            let entry = entries
                .entry((vip.id, backend.address))
                .or_insert_with(|| Entry {
                    vip: vip.id.to_string(),
                    backend: backend.address,
                    healthy: !backend.down,
                    checks: 0,
                    passes: 0,
                    failures: 0,
                    last_error: None,
                    table_pending: None,
                    tracker: Tracker::new(!backend.down),
                    retry_at: None,
                    retries: 0,
                    logged_at: None,
                    next_due: None,
                    in_flight: false,
                });
            if entry.in_flight || entry.next_due.is_some_and(|due| due > now) {
                continue;
            }
            entry.in_flight = true;
            entry.next_due = Some(now + Duration::from_millis(check.interval_ms));
            due.push((vip.id, vip.id.port, check.clone(), backend.address));
        }
    }
    due
}

async fn check_one(board: Arc<Board>, id: VipId, port: u16, check: HealthCheck, address: IpAddr) {
    let probe_check = check.clone();
    let result = tokio::task::spawn_blocking(move || probe(&probe_check, address, port))
        .await
        .unwrap_or_else(|error| Err(error.to_string()));
    let Some(up) = record(&board, (id, address), &check, &result, Instant::now()) else {
        return;
    };
    let applied = tokio::task::spawn_blocking(move || mark(id, address, up))
        .await
        .unwrap_or_else(|error| Err(error.to_string()));
    settle(&board, (id, address), up, applied, Instant::now());
}

/// Records a probe's result; returns the verdict to apply to the table (a
/// flip, or a pending one due again), the entry staying in flight until
/// [`settle`], or `None` with the entry free again.
fn record(
    board: &Board,
    key: (VipId, IpAddr),
    check: &HealthCheck,
    result: &Result<(), String>,
    now: Instant,
) -> Option<bool> {
    let mut entries = board.lock().ok()?;
    let entry = entries.get_mut(&key)?;
    entry.checks += 1;
    // A check that cannot be made (a portless one of an all-ports VIP,
    // saved before such checks were refused) says nothing about the
    // backend: it stays as it is, the reason shown, rather than every
    // backend of the VIP taken out as failing.
    if let Err(why) = result {
        if why == xdpath::lb::health::NO_CHECK_PORT {
            entry.last_error = Some(why.clone());
            entry.in_flight = false;
            return None;
        }
    }
    let flip = entry
        .tracker
        .observe(result.is_ok(), check.rise, check.fall);
    entry.passes = entry.tracker.passes;
    entry.failures = entry.tracker.failures;
    entry.healthy = entry.tracker.up;
    if let Err(why) = result {
        entry.last_error = Some(why.clone());
    }
    let retry = entry.table_pending.is_some() && entry.retry_at.is_none_or(|at| at <= now);
    if flip.is_none() && !retry {
        entry.in_flight = false;
        return None;
    }
    if let (Some(up), Err(why)) = (flip, result) {
        if !up {
            tracing::warn!(
                "backend {} of {} failed {} checks in a row ({}): taking it out of the table",
                key.1,
                key.0,
                check.fall,
                crate::text::escape(why)
            );
        }
    }
    Some(entry.tracker.up)
}

/// Marks the backend up or down in the state and the maps.
fn mark(id: VipId, address: IpAddr, up: bool) -> Result<(), String> {
    let mut session = LbSession::open().map_err(|error| error.to_string())?;
    // Its check removed meanwhile: every backend of the VIP is up, and
    // stays so.
    if session
        .state
        .vip(&id)
        .is_none_or(|vip| vip.health.is_none())
    {
        return Ok(());
    }
    edit::set_down(&mut session.state, &id, address, !up).map_err(|error| error.to_string())?;
    session.commit().map_err(|error| error.to_string())
}

/// Records how applying the verdict `up` went and frees the entry: a
/// failure leaves it pending (retried after the next checks, no sooner
/// than [`RETRY_GAP`]) and is logged, the same refusal at most once per
/// [`LOG_GAP`].
fn settle(
    board: &Board,
    key: (VipId, IpAddr),
    up: bool,
    applied: Result<(), String>,
    now: Instant,
) {
    let Ok(mut entries) = board.lock() else {
        return;
    };
    let Some(entry) = entries.get_mut(&key) else {
        return;
    };
    entry.in_flight = false;
    let (id, address) = key;
    let verdict = if up { "back in" } else { "out of" };
    match applied {
        Ok(()) => {
            if entry.table_pending.take().is_some() {
                tracing::info!("backend {address} of {id}: {verdict} the table at last");
            } else {
                tracing::info!("backend {address} of {id}: {verdict} the table");
            }
            entry.retry_at = None;
            entry.retries = 0;
            entry.logged_at = None;
        }
        Err(why) => {
            let repeated = entry.table_pending.as_deref() == Some(why.as_str())
                && entry.logged_at.is_some_and(|at| now < at + LOG_GAP);
            if !repeated {
                tracing::error!(
                    "backend {address} of {id} is {}, but putting it {verdict} the table failed (retried): {}",
                    if up { "healthy" } else { "failing" },
                    crate::text::escape(&why)
                );
                entry.logged_at = Some(now);
            }
            entry.table_pending = Some(why);
            entry.retry_at = Some(now + retry_gap(entry.retries));
            entry.retries = entry.retries.saturating_add(1);
        }
    }
}

/// The wait before attempt `retries + 1` to apply a verdict: RETRY_GAP,
/// doubled with each failed attempt, at most 64 times it.
fn retry_gap(retries: u32) -> Duration {
    RETRY_GAP.saturating_mul(1 << retries.min(6))
}

/// The board as a list, for the API and metrics.
pub fn snapshot(board: &Board) -> Vec<Entry> {
    let mut entries: Vec<Entry> = board
        .lock()
        .map(|entries| entries.values().cloned().collect())
        .unwrap_or_default();
    entries.sort_by(|a, b| (&a.vip, a.backend).cmp(&(&b.vip, b.backend)));
    entries
}

/// Adds to each backend row (`vip`, `backend`) the checker's view of it as
/// `health_state` (`healthy`, `checks`, `passes`, `failures`,
/// `last_error`), or null for a backend not checked (its VIP has no check,
/// or no probe has been started yet). Rows may sit in an array or under a
/// `backends` key.
pub fn annotate(board: &Board, value: &mut serde_json::Value) {
    let entries = snapshot(board);
    let rows = match value {
        serde_json::Value::Array(rows) => rows,
        serde_json::Value::Object(object) => match object.get_mut("backends") {
            Some(serde_json::Value::Array(rows)) => rows,
            _ => return,
        },
        _ => return,
    };
    for row in rows {
        let found = entries.iter().find(|entry| {
            row["vip"].as_str() == Some(entry.vip.as_str())
                && row["backend"].as_str() == Some(entry.backend.to_string().as_str())
        });
        let state = found
            .and_then(|entry| serde_json::to_value(entry).ok())
            .unwrap_or(serde_json::Value::Null);
        if let Some(row) = row.as_object_mut() {
            row.insert("health_state".into(), state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_with(key: (VipId, IpAddr)) -> Board {
        let entry = Entry {
            vip: key.0.to_string(),
            backend: key.1,
            healthy: true,
            checks: 0,
            passes: 0,
            failures: 0,
            last_error: None,
            table_pending: None,
            tracker: Tracker::new(true),
            next_due: None,
            in_flight: true,
            retry_at: None,
            retries: 0,
            logged_at: None,
        };
        Mutex::new(HashMap::from([(key, entry)]))
    }

    fn entry(board: &Board, key: (VipId, IpAddr)) -> Entry {
        board.lock().expect("board")[&key].clone()
    }

    /// A flip whose change fails (an unsavable state, a table too small
    /// for the backend coming back) stays pending, visible on the board,
    /// and is tried again after the next checks (after RETRY_GAP, doubled
    /// with each failure in a row) until it lands; it was lost before, the tracker having
    /// flipped already, so the table and the checker disagreed for good.
    #[test]
    fn a_flip_whose_change_failed_is_retried_until_it_lands() {
        let key: (VipId, IpAddr) = (
            xdpath::lb::edit::parse_vip("203.0.113.10:80/tcp").expect("VIP"),
            "10.0.0.2".parse().expect("address"),
        );
        let check = xdpath::lb::edit::health_check(&xdpath::api::requests::HealthArgs {
            rise: 2,
            fall: 2,
            ..xdpath::api::requests::HealthArgs::new(key.0.to_string(), "tcp".into())
        })
        .expect("valid")
        .expect("a check");
        let board = board_with(key);
        let failed: Result<(), String> = Err("connection refused".into());
        let start = Instant::now();
        assert_eq!(record(&board, key, &check, &failed, start), None);
        assert_eq!(record(&board, key, &check, &failed, start), Some(false));
        settle(&board, key, false, Err("state refused".into()), start);
        let pending = entry(&board, key);
        assert_eq!(pending.table_pending.as_deref(), Some("state refused"));
        assert!(!pending.healthy && !pending.in_flight);
        let shown = serde_json::to_value(&pending).expect("JSON");
        assert_eq!(shown["table_pending"], "state refused", "{shown}");
        // The next check, too soon: no new attempt yet.
        assert_eq!(record(&board, key, &check, &failed, start), None);
        // Later ones try again, until the change lands.
        let later = start + RETRY_GAP;
        assert_eq!(record(&board, key, &check, &failed, later), Some(false));
        settle(&board, key, false, Err("state refused".into()), later);
        // A second failure in a row: the gap doubles.
        assert_eq!(
            record(&board, key, &check, &failed, later + RETRY_GAP),
            None
        );
        let retry = later + RETRY_GAP * 2;
        assert_eq!(record(&board, key, &check, &failed, retry), Some(false));
        settle(&board, key, false, Ok(()), retry);
        assert_eq!(entry(&board, key).table_pending, None);
        assert_eq!(
            record(&board, key, &check, &failed, retry + RETRY_GAP),
            None
        );
        // The same on the way back up: a refused "up" is retried.
        let passed = Ok(());
        let back = retry + RETRY_GAP * 2;
        assert_eq!(record(&board, key, &check, &passed, back), None);
        assert_eq!(record(&board, key, &check, &passed, back), Some(true));
        settle(&board, key, true, Err("table too small".into()), back);
        assert!(entry(&board, key).healthy);
        let again = back + RETRY_GAP;
        assert_eq!(record(&board, key, &check, &passed, again), Some(true));
        settle(&board, key, true, Ok(()), again);
        assert_eq!(entry(&board, key).table_pending, None);
    }

    /// A check that cannot be made (no port for an all-ports VIP) leaves
    /// the backend as it is: it used to count as a failure, and took every
    /// backend of the VIP out.
    #[test]
    fn a_check_that_cannot_be_made_takes_no_backend_out() {
        let key: (VipId, IpAddr) = (
            xdpath::lb::edit::parse_vip("203.0.113.10:*/tcp").expect("VIP"),
            "10.0.0.2".parse().expect("address"),
        );
        let check = xdpath::lb::edit::health_check(&xdpath::api::requests::HealthArgs {
            fall: 1,
            ..xdpath::api::requests::HealthArgs::new(key.0.to_string(), "tcp".into())
        })
        .expect("valid")
        .expect("a check");
        let board = board_with(key);
        let cannot: Result<(), String> = Err(xdpath::lb::health::NO_CHECK_PORT.into());
        for _ in 0..3 {
            assert_eq!(record(&board, key, &check, &cannot, Instant::now()), None);
        }
        let shown = entry(&board, key);
        assert!(shown.healthy && !shown.in_flight, "{shown:?}");
        assert_eq!(
            shown.last_error.as_deref(),
            Some(xdpath::lb::health::NO_CHECK_PORT)
        );
        let failed: Result<(), String> = Err("connection refused".into());
        assert_eq!(
            record(&board, key, &check, &failed, Instant::now()),
            Some(false)
        );
    }
}
