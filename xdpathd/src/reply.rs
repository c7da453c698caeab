//! What every handler answers with: a change run on the blocking pool,
//! counted and logged ([`change`]), or a read ([`ok`]). Apart from the
//! router (`api`), so the handlers of other modules share it without
//! importing the router.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::error::ApiError;
use crate::shared::{blocking, Shared};
use crate::text::escape;

/// The daemon's shared state, as handlers extract it.
pub type State = axum::extract::State<Arc<Shared>>;
/// A handler's answer.
pub type Reply = Result<Response, ApiError>;

/// A change: counts the generation, or the error, and logs one line
/// (escaped: `what` and the message hold the client's text). Counted and
/// logged on the blocking pool right after the work: a client that goes
/// away while its change runs drops this future, not the work, and the
/// change must not go unlogged.
pub async fn change(
    shared: &Arc<Shared>,
    what: String,
    work: impl FnOnce() -> Result<Value, ApiError> + Send + 'static,
) -> Reply {
    let recorder = Arc::clone(shared);
    let logged = what.clone();
    let done = blocking(move || {
        // What a killed writer left is finished first, as the CLI does
        // before every command: else the 2 s check could finish an
        // interrupted apply after this change and put the files from
        // before that apply back over it.
        xdpath::recovery::finish_interrupted();
        let result = work();
        record(&recorder, &logged, result.as_ref());
        Ok(result)
    })
    .await;
    match done {
        Ok(Ok(value)) => Ok((StatusCode::OK, Json(value)).into_response()),
        Ok(Err(error)) => Err(error),
        // The work never ran, or it panicked: not recorded yet.
        Err(error) => {
            record(shared, &what, Err(&error));
            Err(error)
        }
    }
}

/// Counts and logs a change's outcome.
fn record(shared: &Shared, what: &str, result: Result<&Value, &ApiError>) {
    match result {
        Ok(_) => {
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::info!(generation, "applied: {}", escape(what));
        }
        Err(error) => {
            shared.apply_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                code = error.code,
                "refused: {}: {}",
                escape(what),
                escape(&error.message)
            );
        }
    }
}

/// A read's answer: 200 with its JSON.
pub fn ok(value: Value) -> Reply {
    Ok(Json(value).into_response())
}

/// A change's answer as 201 Created.
pub fn created(mut response: Response) -> Response {
    *response.status_mut() = StatusCode::CREATED;
    response
}
