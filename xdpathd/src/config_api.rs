//! The declarative config through the daemon: `--config FILE` applied at
//! start and on SIGHUP, and `POST /v1/config` (apply) and
//! `POST /v1/config/plan` (the difference only) with the file's TOML as
//! the body. A config with any error is refused whole, every error listed;
//! the running state stays.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use xdpath::config::{self, ConfigError, Environment};

use crate::error::ApiError;
use crate::shared::Shared;
use crate::text::{escape, quote_bytes};

/// The largest config accepted over the API.
pub const CONFIG_LIMIT: usize = 16 << 20;

fn config_error(error: ConfigError) -> ApiError {
    match error {
        ConfigError::Invalid(errors) => ApiError {
            status: crate::error::UNPROCESSABLE,
            code: "invalid_config",
            message: errors.lines().join("\n"),
        },
        ConfigError::Control(inner) => (*inner).into(),
        ConfigError::Lb(inner) => (*inner).into(),
        ConfigError::Usage(message) => {
            ApiError::new(crate::error::UNPROCESSABLE, "invalid_config", message)
        }
        other => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "apply_failed",
            other.to_string(),
        ),
    }
}

fn check(text: &str) -> Result<config::DesiredConfig, ApiError> {
    config::load_str(text, "request", &Environment::host())
        .map_err(|errors| config_error(ConfigError::Invalid(errors)))
}

/// Applies `text`; counts the generation or the error and logs one line
/// per change.
fn apply_text(shared: &Shared, text: &str, source: &str) -> Result<config::plan::Plan, ApiError> {
    let result = check(text).and_then(|desired| config::apply(&desired).map_err(config_error));
    match &result {
        Ok(plan) => {
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
            for line in plan.to_string().lines() {
                tracing::info!(generation, "{}: {}", escape(source), escape(line));
            }
        }
        Err(error) => {
            shared.apply_errors.fetch_add(1, Ordering::Relaxed);
            for line in error.message.lines() {
                tracing::warn!("{}: refused: {}", escape(source), escape(line));
            }
        }
    }
    result
}

/// Applies the config file at start and on every SIGHUP.
pub async fn watch_file(shared: Arc<Shared>, path: PathBuf) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::error!("no SIGHUP reloads: {error}");
            None
        }
    };
    loop {
        let shared = shared.clone();
        let file = path.clone();
        let _ = tokio::task::spawn_blocking(move || apply_file(&shared, &file)).await;
        match hangup.as_mut() {
            Some(signal) => {
                if signal.recv().await.is_none() {
                    return;
                }
                tracing::info!("SIGHUP: applying {} again", path.display());
            }
            None => return,
        }
    }
}

/// The config file's text: a regular file only root can change (whoever
/// could write it would choose the rules at the next SIGHUP), at most
/// [`CONFIG_LIMIT`] bytes.
fn read_config(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: a FIFO there must not hang the daemon.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    xdpath::private_files::check_file(&file, path)?;
    let mut text = String::new();
    file.take(CONFIG_LIMIT as u64 + 1)
        .read_to_string(&mut text)?;
    if text.len() > CONFIG_LIMIT {
        return Err(std::io::Error::other(format!(
            "larger than {CONFIG_LIMIT} bytes"
        )));
    }
    Ok(text)
}

fn apply_file(shared: &Shared, path: &Path) {
    let source = path.display().to_string();
    match read_config(path) {
        Ok(text) => {
            let _ = apply_text(shared, &text, &source);
        }
        Err(error) => {
            shared.apply_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                "{}: cannot read: {error}; the running state stays",
                escape(&source)
            );
        }
    }
}

/// The body as text: a config is UTF-8 (the extractor's refusal of one
/// that is not was plain text).
fn utf8_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<String, ApiError> {
    let bytes =
        body.map_err(|rejection| ApiError::bad_request("invalid_body", rejection.body_text()))?;
    String::from_utf8(bytes.to_vec()).map_err(|error| {
        let at = error.utf8_error().valid_up_to();
        let around = bytes.get(at.saturating_sub(8)..).unwrap_or_default();
        ApiError::bad_request(
            "invalid_utf8",
            format!(
                "the body is not UTF-8 at byte {at}: {}",
                quote_bytes(around.get(..24).unwrap_or(around))
            ),
        )
    })
}

fn toml_body(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let kind = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if kind.starts_with("application/toml") || kind.starts_with("text/plain") {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be the config's TOML (Content-Type: application/toml)",
        ))
    }
}

/// `POST /v1/config`.
pub async fn apply(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    toml_body(&headers)?;
    let body = utf8_body(body)?;
    let work = shared.clone();
    let plan = crate::shared::blocking(move || apply_text(&work, &body, "api")).await?;
    let generation = shared.generation.load(Ordering::Relaxed);
    Ok(Json(json!({ "generation": generation, "applied": plan })).into_response())
}

/// `POST /v1/config/plan`.
pub async fn plan(
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    toml_body(&headers)?;
    let body = utf8_body(body)?;
    let plan = crate::shared::blocking(move || -> Result<config::plan::Plan, ApiError> {
        let desired = check(&body)?;
        let current = config::current().map_err(config_error)?;
        let changes = config::plan::plan(&current, &desired);
        // What apply would refuse, plan refuses too.
        config::refuse::refusals(&desired, &changes).map_err(config_error)?;
        Ok(changes)
    })
    .await?;
    Ok(Json(json!({ "empty": plan.is_empty(), "changes": plan })).into_response())
}
