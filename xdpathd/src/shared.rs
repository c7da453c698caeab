//! What the daemon's parts share: the state every handler, the metrics and
//! the config watcher see ([`Shared`]), the body limit, and the pool that
//! runs blocking work ([`blocking`]). Kept apart from the routes (`api`),
//! so the parts that use it do not import the router.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock};

use axum::http::StatusCode;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What handlers share.
#[derive(Default)]
pub struct Shared {
    /// Bumped by every change that went through the API.
    pub generation: AtomicU64,
    /// Requests refused for bad input or failed while applying.
    pub apply_errors: AtomicU64,
    /// The health checker's view of every checked backend.
    pub health: Arc<crate::health::Board>,
    /// The sample consumer: export, top talkers, mitigation.
    pub observer: Arc<crate::observe::Observer>,
}

/// The most operations (map syscalls, the state lock) run at once. Each
/// opens the pinned maps it reads: `/metrics` with one attached interface
/// and one VIP held 41 descriptors at its peak (measured on /proc/PID/fd),
/// so eight stay well inside the descriptors the daemon keeps for its own
/// work beside its connections (`RESERVED_FILES`). They mostly wait for
/// the state lock in turn anyway.
const OPERATIONS: usize = 8;

static RUNNING: LazyLock<Arc<Semaphore>> = LazyLock::new(|| Arc::new(Semaphore::new(OPERATIONS)));

/// Runs blocking work (map syscalls, the state lock) off the async
/// threads, at most [`OPERATIONS`] at once (a permit held until the work
/// ends, even if its client has gone).
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = RUNNING.clone().acquire_owned().await.map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the operation could not start: {error}"),
        )
    })?;
    let work = move || {
        let _permit = permit;
        work()
    };
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the operation failed: {error}"),
        )
    })?
}
