//! Request bodies are read whole before a handler runs, within the read
//! timeout (else 408) and the route's limit, declared or not (else 413):
//! a slow or endless body is cut off rather than holding its connection,
//! and every refusal is the API's JSON error (the extractors' own, for a
//! body over a limit, were plain text). With a token required, this runs
//! after the token check: a client without one never gets its body read.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;
use crate::text::quote;

/// The largest body `path` takes: the routes' own limits (a config, an
/// owner's document), else [`crate::shared::BODY_LIMIT`].
pub fn limit_of(path: &str) -> usize {
    match path {
        "/v1/config" | "/v1/config/plan" => crate::config_api::CONFIG_LIMIT,
        _ if is_owner_path(path) => crate::lb_api::DOCUMENT_LIMIT,
        _ => crate::shared::BODY_LIMIT,
    }
}

/// `/v1/owners/{owner}`: one segment after `/v1/owners/`.
fn is_owner_path(path: &str) -> bool {
    path.strip_prefix("/v1/owners/")
        .is_some_and(|owner| !owner.is_empty() && !owner.contains('/'))
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
}

/// The most of a refused body read and thrown away before the 413 goes
/// out. A connection closed with unread bytes in its receive buffer is
/// reset by the kernel, and the reset can overtake the response: curl then
/// reported no status at all for a 70 kB body (seen once in the API test).
const DRAIN_LIMIT: usize = 1024 * 1024;

/// Reads and discards `body`, at most [`DRAIN_LIMIT`] bytes and for at most
/// `within`.
async fn drain(body: Body, within: Duration) {
    let mut body = Limited::new(body, DRAIN_LIMIT);
    let discard = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(within, discard).await;
}

/// The middleware: reads the body, then runs `next` with it.
pub async fn read_whole(
    read_timeout: Duration,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = quote(request.uri().path());
    let limit = limit_of(request.uri().path());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let (parts, body) = request.into_parts();
    if let Some(declared) = declared.filter(|declared| *declared > limit as u64) {
        if declared <= DRAIN_LIMIT as u64 {
            drain(body, read_timeout).await;
        }
        return Err(too_large(format!(
            "the body is {declared} bytes (its Content-Length), more than the {limit} bytes {path} takes"
        )));
    }
    let collected = tokio::time::timeout(read_timeout, Limited::new(body, limit).collect()).await;
    let bytes = match collected {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the body for {path} did not arrive within {} s",
                    read_timeout.as_secs()
                ),
            ))
        }
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(too_large(format!(
                "the body is larger than the {limit} bytes {path} takes"
            )))
        }
        Ok(Err(error)) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("reading the body for {path}: {error}"),
            ))
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}
