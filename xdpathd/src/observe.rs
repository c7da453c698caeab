//! The daemon's sample consumer: sFlow and IPFIX export, top talkers and
//! auto-mitigation, as the namespace's saved config asks (`observe.json`,
//! written by every apply). It runs in a thread of its own and takes up a
//! changed config within a second.
//!
//! Mitigation actions go on the blocklist through the same operation as
//! `xdpath block add`, with the action's TTL; each is logged and counted,
//! and the last ones are listed by `GET /v1/mitigation`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xdpath::config::observe::{load_saved, ObserveSpec};
use xdpath::observe::engine::{now_unix_ms, Engine, EngineStats};
use xdpath::observe::mitigate::MitigationAction;
use xdpath::observe::top::{Rank, TalkerKind};

/// How long the thread waits for samples before looking at its config.
const POLL: Duration = Duration::from_millis(100);
/// How often the saved config is read again.
const RELOAD_EVERY: Duration = Duration::from_secs(1);
/// How long after a failed start the consumer is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The consumer and what it has done, shared with the API.
#[derive(Default)]
pub struct Observer {
    engine: Mutex<Option<Engine>>,
    spec: Mutex<ObserveSpec>,
    /// Blocks put on the blocklist by mitigation.
    pub blocks: AtomicU64,
    /// Actions only reported (dry run).
    pub reports: AtomicU64,
    /// Blocks that could not be written.
    pub failures: AtomicU64,
    /// The last start error, if the consumer is not running.
    last_error: Mutex<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding it leaves plain data behind: go on.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The thread's body: never returns.
pub fn run(observer: Arc<Observer>) {
    let mut checked = Instant::now() - RELOAD_EVERY;
    let mut retry_at = Instant::now();
    loop {
        if checked.elapsed() >= RELOAD_EVERY {
            checked = Instant::now();
            reload(&observer, &mut retry_at);
        }
        let fd = lock(&observer.engine).as_ref().map(Engine::ring_fd);
        let Some(fd) = fd else {
            std::thread::sleep(POLL);
            continue;
        };
        // Wait without the lock, so the API can read talkers meanwhile.
        xdpath::observe::ring::poll_readable(fd, POLL);
        let actions = match lock(&observer.engine).as_mut() {
            Some(engine) => engine.step(Duration::ZERO),
            None => Vec::new(),
        };
        for action in actions {
            apply(&observer, &action);
        }
    }
}

/// Starts, restarts or stops the consumer when the saved config changed
/// (or a start failed and it is time to try again).
fn reload(observer: &Observer, retry_at: &mut Instant) {
    let spec = match xdpath::control::state::state_dir()
        .map_err(|error| error.to_string())
        .and_then(|dir| load_saved(&dir).map_err(|error| error.to_string()))
    {
        Ok(spec) => spec,
        Err(error) => {
            tracing::error!("observe: cannot read the saved config: {error}");
            return;
        }
    };
    let running = lock(&observer.engine).is_some();
    let same = *lock(&observer.spec) == spec;
    if same && (running || Instant::now() < *retry_at) {
        return;
    }
    let mut engine = lock(&observer.engine);
    if let Some(mut old) = engine.take() {
        old.shutdown();
    }
    *lock(&observer.spec) = spec.clone();
    match Engine::open(&spec.engine_config()) {
        Ok(new) => {
            for (part, text) in spec.describe() {
                tracing::info!("observe: {part} {}", crate::text::escape(&text));
            }
            *engine = Some(new);
            *lock(&observer.last_error) = None;
        }
        Err(error) => {
            tracing::error!("observe: cannot start: {error}; trying again in 5 s");
            *lock(&observer.last_error) = Some(error.to_string());
            *retry_at = Instant::now() + RETRY_AFTER;
        }
    }
}

/// Puts a mitigation action on the blocklist (or only reports it).
fn apply(observer: &Observer, action: &MitigationAction) {
    let prefix = format!("{}/{}", action.prefix, action.prefix_len);
    if action.dry_run {
        observer.reports.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            rate_pps = action.rate_pps,
            rate_bps = action.rate_bps,
            "mitigation (dry run): would block {prefix} for {} s",
            action.ttl.as_secs()
        );
        return;
    }
    let ttl = format!("{}s", action.ttl.as_millis().div_ceil(1000).max(1));
    let request = xdpath::api::NewBlock {
        prefix: prefix.to_string(),
        ttl: Some(ttl.clone()),
        vni: None,
    };
    match xdpath::api::ControlPlane::add_block(&xdpath::api::Local, &request) {
        Ok(_) => {
            observer.blocks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                rate_pps = action.rate_pps,
                rate_bps = action.rate_bps,
                "mitigation: blocked {prefix} for {ttl}"
            );
        }
        Err(error) => {
            observer.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!("mitigation: could not block {prefix}: {error}");
        }
    }
}

/// The consumer's counts (none while it is not running).
pub fn stats(observer: &Observer) -> Option<EngineStats> {
    lock(&observer.engine).as_ref().map(Engine::stats)
}

/// `GET /v1/telemetry`.
pub fn telemetry(observer: &Observer) -> Value {
    json!({
        "running": lock(&observer.engine).is_some(),
        "error": *lock(&observer.last_error),
        "config": *lock(&observer.spec),
        "stats": stats(observer),
    })
}

/// `GET /v1/top`: the talkers of `kinds` ranked `by`.
pub fn top(observer: &Observer, kinds: &[TalkerKind], by: Rank, limit: usize) -> Value {
    let engine = lock(&observer.engine);
    let Some(engine) = engine.as_ref() else {
        return json!({ "running": false });
    };
    let now = now_unix_ms();
    let mut answer = json!({
        "running": true,
        "window_ms": engine.top.window().as_millis() as u64,
        "summary": engine.top.summary(now),
    });
    for kind in kinds {
        let name = match kind {
            TalkerKind::Sources => "sources",
            TalkerKind::Destinations => "destinations",
            TalkerKind::Flows => "flows",
        };
        answer[name] =
            serde_json::to_value(engine.top.top(now, *kind, by, limit)).unwrap_or(Value::Null);
    }
    answer
}

/// `GET /v1/mitigation`: the settings, counts and last actions.
pub fn mitigation(observer: &Observer) -> Value {
    let engine = lock(&observer.engine);
    let mitigator = engine.as_ref().and_then(|engine| engine.mitigator.as_ref());
    json!({
        "enabled": mitigator.is_some(),
        "config": lock(&observer.spec).mitigation,
        "blocked": observer.blocks.load(Ordering::Relaxed),
        "reported": observer.reports.load(Ordering::Relaxed),
        "failed": observer.failures.load(Ordering::Relaxed),
        "stats": mitigator.map(|mitigator| mitigator.stats()),
        "actions": mitigator.map(|mitigator| mitigator.actions().iter().cloned().collect::<Vec<_>>()),
    })
}
