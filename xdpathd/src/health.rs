//! The health checker: every backend of a VIP with a health check is
//! probed at its interval (off the async threads); `fall` failures in a
//! row take it out of the VIP's Maglev table, `rise` passes in a row put it
//! back, through the same locked state as every other change. The state
//! it acts on is re-read from the namespace's `lb.json` on every round, so
//! changes made by the CLI or the API are picked up at once.

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
    #[serde(skip)]
    tracker: Tracker,
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
                    tracker: Tracker::new(!backend.down),
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
    let flip = {
        let Ok(mut entries) = board.lock() else {
            return;
        };
        let Some(entry) = entries.get_mut(&(id, address)) else {
            return;
        };
        entry.in_flight = false;
        entry.checks += 1;
        let flip = entry
            .tracker
            .observe(result.is_ok(), check.rise, check.fall);
        entry.passes = entry.tracker.passes;
        entry.failures = entry.tracker.failures;
        entry.healthy = entry.tracker.up;
        if let Err(why) = &result {
            entry.last_error = Some(why.clone());
        }
        flip
    };
    let Some(up) = flip else { return };
    let applied = tokio::task::spawn_blocking(move || -> Result<bool, xdpath::lb::LbError> {
        let mut session = LbSession::open()?;
        let changed = edit::set_down(&mut session.state, &id, address, !up)?;
        session.commit()?;
        Ok(changed)
    })
    .await;
    match applied {
        Ok(Ok(_)) if up => {
            tracing::info!("backend {address} of {id} is healthy again: back in the table")
        }
        Ok(Ok(_)) => tracing::warn!(
            "backend {address} of {id} failed {} checks in a row ({}): out of the table",
            check.fall,
            crate::text::escape(&result.err().unwrap_or_default())
        ),
        Ok(Err(error)) => tracing::error!("marking backend {address} of {id}: {error}"),
        Err(error) => tracing::error!("marking backend {address} of {id}: {error}"),
    }
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
