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
/// (escaped: `what` and the message hold the client's text).
pub async fn change(
    shared: &Shared,
    what: String,
    work: impl FnOnce() -> Result<Value, ApiError> + Send + 'static,
) -> Reply {
    match blocking(work).await {
        Ok(value) => {
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::info!(generation, "applied: {}", escape(&what));
            Ok((StatusCode::OK, Json(value)).into_response())
        }
        Err(error) => {
            shared.apply_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                code = error.code,
                "refused: {}: {}",
                escape(&what),
                escape(&error.message)
            );
            Err(error)
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
