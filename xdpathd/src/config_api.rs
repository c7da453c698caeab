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

use crate::api::Shared;
use crate::error::ApiError;

/// The largest config accepted over the API.
pub const CONFIG_LIMIT: usize = 16 << 20;

fn config_error(error: ConfigError) -> ApiError {
    match error {
        ConfigError::Invalid(errors) => ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_config",
            message: errors.lines().join("\n"),
        },
        ConfigError::Control(inner) => (*inner).into(),
        ConfigError::Lb(inner) => (*inner).into(),
        ConfigError::Usage(message) => ApiError::bad_request("invalid_config", message),
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
                tracing::info!(generation, "{source}: {line}");
            }
        }
        Err(error) => {
            shared.apply_errors.fetch_add(1, Ordering::Relaxed);
            for line in error.message.lines() {
                tracing::warn!("{source}: refused: {line}");
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

fn apply_file(shared: &Shared, path: &Path) {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let _ = apply_text(shared, &text, &source);
        }
        Err(error) => {
            shared.apply_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("{source}: cannot read: {error}; the running state stays");
        }
    }
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
    body: String,
) -> Result<Response, ApiError> {
    toml_body(&headers)?;
    let work = shared.clone();
    let plan = tokio::task::spawn_blocking(move || apply_text(&work, &body, "api"))
        .await
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            )
        })??;
    let generation = shared.generation.load(Ordering::Relaxed);
    Ok(Json(json!({ "generation": generation, "applied": plan })).into_response())
}

/// `POST /v1/config/plan`.
pub async fn plan(headers: axum::http::HeaderMap, body: String) -> Result<Response, ApiError> {
    toml_body(&headers)?;
    let plan = tokio::task::spawn_blocking(move || -> Result<config::plan::Plan, ApiError> {
        let desired = check(&body)?;
        let current = config::current().map_err(config_error)?;
        Ok(config::plan::plan(&current, &desired))
    })
    .await
    .map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.to_string(),
        )
    })??;
    Ok(Json(json!({ "empty": plan.is_empty(), "changes": plan })).into_response())
}
