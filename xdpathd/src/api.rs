//! The REST API: routes, request types and handlers. Every handler runs
//! its work on the blocking pool through the same library operations as
//! the `xdpath` CLI (the namespace's locked state), so both give the same
//! results and a refused request changes nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde_json::{json, Value};
use xdpath::api::{ControlPlane, Local};
use xdpathd::requests::{
    BackendQuery, BackendWeight, BackendsQuery, LimitArgs, LimitsQuery, NewBlock, NewVip,
    PrefixQuery, RuleArgs, RulesQuery, TopQuery, VipQuery,
};

use crate::error::ApiError;
use crate::extract::{Body, Query};
use crate::lb_api;
use crate::ops;
use crate::shared::{blocking, Shared, BODY_LIMIT};
use crate::text::quote;

/// The OpenAPI document (also in the repository: `xdpathd/openapi.json`).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The router with every route; `/metrics` and `/openapi.json` included.
/// Bodies are read whole first, within `read_timeout` ([`crate::body`]).
pub fn router(shared: Arc<Shared>, read_timeout: Duration) -> Router {
    let bodies = axum::middleware::from_fn(move |request, next| {
        crate::body::read_whole(read_timeout, request, next)
    });
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/v1/interfaces", get(interfaces))
        .route("/v1/rules", get(list_rules).post(add_rule))
        .route("/v1/rules/{id}", axum::routing::delete(del_rule))
        .route("/v1/ratelimits", get(list_limits).post(add_limit))
        .route("/v1/ratelimits/{id}", axum::routing::delete(del_limit))
        .route(
            "/v1/blocklist",
            get(list_blocks).post(add_block).delete(del_block),
        )
        .route(
            "/v1/vips",
            get(list_vips)
                .post(add_vip)
                .put(lb_api::put_vip)
                .delete(del_vip),
        )
        .route("/v1/vips/allow", put(lb_api::set_allow))
        .route(
            "/v1/vips/health",
            put(lb_api::set_health).delete(lb_api::clear_health),
        )
        .route("/v1/vips/table", get(lb_api::vip_table))
        .route(
            "/v1/lb/config",
            get(lb_api::lb_config).put(lb_api::set_lb_config),
        )
        .route("/v1/owners", get(lb_api::list_owners))
        .route(
            "/v1/owners/{owner}",
            get(lb_api::show_owner)
                .put(lb_api::put_owner)
                .delete(lb_api::delete_owner)
                .layer(DefaultBodyLimit::max(lb_api::DOCUMENT_LIMIT)),
        )
        .route(
            "/v1/backends",
            get(list_backends)
                .post(add_backend)
                .put(set_weight)
                .delete(del_backend),
        )
        .route("/v1/stats", get(stats))
        .route("/v1/health", get(health))
        .route("/v1/top", get(top))
        .route("/v1/mitigation", get(mitigation))
        .route("/v1/telemetry", get(telemetry))
        .route(
            "/v1/config",
            get(config)
                .post(crate::config_api::apply)
                .layer(DefaultBodyLimit::max(crate::config_api::CONFIG_LIMIT)),
        )
        .route(
            "/v1/config/plan",
            axum::routing::post(crate::config_api::plan)
                .layer(DefaultBodyLimit::max(crate::config_api::CONFIG_LIMIT)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
        .layer(bodies)
}

use crate::reply::{change, created, ok, Reply, State};

async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

async fn metrics(axum::extract::State(shared): State) -> Reply {
    let text = blocking(move || crate::metrics::render(&shared)).await?;
    Ok(([("content-type", "text/plain; version=0.0.4")], text).into_response())
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route (see /openapi.json)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method (see /openapi.json)",
    )
}

async fn interfaces() -> Reply {
    ok(blocking(ops::interfaces).await?)
}

async fn stats() -> Reply {
    ok(blocking(ops::stats).await?)
}

async fn config(axum::extract::State(shared): State) -> Reply {
    ok(json!({
        "generation": shared.generation.load(Ordering::Relaxed),
        "apply_errors": shared.apply_errors.load(Ordering::Relaxed),
        // Which namespace this daemon serves: the CLI checks it before
        // sending a change here.
        "netns": xdpath::netns::current_key().ok().map(|key| key.to_string()),
    }))
}

async fn health(axum::extract::State(shared): State) -> Reply {
    let entries = crate::health::snapshot(&shared.health);
    ok(serde_json::to_value(entries).unwrap_or(Value::Null))
}

async fn top(axum::extract::State(shared): State, Query(query): Query<TopQuery>) -> Reply {
    let choice = query
        .choice()
        .map_err(|message| ApiError::bad_request("invalid_query", message))?;
    let observer = shared.observer.clone();
    ok(blocking(move || {
        Ok(crate::observe::top(
            &observer,
            &choice.kinds,
            choice.by,
            choice.limit,
        ))
    })
    .await?)
}

async fn mitigation(axum::extract::State(shared): State) -> Reply {
    let observer = shared.observer.clone();
    ok(blocking(move || Ok(crate::observe::mitigation(&observer))).await?)
}

async fn telemetry(axum::extract::State(shared): State) -> Reply {
    let observer = shared.observer.clone();
    ok(blocking(move || Ok(crate::observe::telemetry(&observer))).await?)
}

/// The largest rule id: ids are 1 to 65535 in the API, the CLI and the
/// config alike (the kernel's rule table has 65536 entries, 0 unused).
const MAX_RULE_ID: u32 = xdpath_core::filter::MAX_RULES - 1;

/// The id in the path, 1 to `max`; else a 400 `invalid_id`.
fn id_of(
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
    max: u32,
) -> Result<u32, ApiError> {
    let axum::extract::Path(text) =
        path.map_err(|error| ApiError::bad_request("invalid_id", error.body_text()))?;
    // As the lists write it: digits only, no sign or leading zero (u32's
    // parser takes "+1" and "01" for 1).
    let canonical = !text.starts_with('0') && text.bytes().all(|byte| byte.is_ascii_digit());
    text.parse::<u32>()
        .ok()
        .filter(|id| canonical && (1..=max).contains(id))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_id",
                format!(
                    "invalid id {}: a whole number from 1 to {max}",
                    quote(&text)
                ),
            )
        })
}

async fn list_rules(Query(query): Query<RulesQuery>) -> Reply {
    ok(blocking(move || ops::list_rules(query.owner.as_deref())).await?)
}

async fn add_rule(axum::extract::State(shared): State, Body(args): Body<RuleArgs>) -> Reply {
    let what = format!("add rule {args:?}");
    let reply = change(&shared, what, move || {
        let id = Local.add_rule(&args)?;
        Ok(json!({ "id": id }))
    });
    reply.await.map(created)
}

async fn del_rule(
    axum::extract::State(shared): State,
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Reply {
    let id = id_of(path, MAX_RULE_ID)?;
    change(&shared, format!("delete rule {id}"), move || {
        Local.del_rule(id)?;
        Ok(json!({ "deleted": id }))
    })
    .await
}

async fn list_limits(Query(query): Query<LimitsQuery>) -> Reply {
    ok(blocking(move || ops::list_limits(query.owner.as_deref())).await?)
}

async fn add_limit(axum::extract::State(shared): State, Body(args): Body<LimitArgs>) -> Reply {
    let what = format!("add rate limit {args:?}");
    let reply = change(&shared, what, move || {
        let id = Local.add_limit(&args)?;
        Ok(json!({ "id": id }))
    });
    reply.await.map(created)
}

async fn del_limit(
    axum::extract::State(shared): State,
    path: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Reply {
    let id = id_of(path, u32::MAX)?;
    change(&shared, format!("delete rate limit {id}"), move || {
        Local.del_limit(id)?;
        Ok(json!({ "deleted": id }))
    })
    .await
}

async fn list_blocks() -> Reply {
    ok(blocking(ops::list_blocks).await?)
}

async fn add_block(axum::extract::State(shared): State, Body(block): Body<NewBlock>) -> Reply {
    let what = format!("block {}", quote(&block.prefix));
    let reply = change(&shared, what, move || {
        let prefix = Local.add_block(&block)?;
        Ok(json!({ "blocked": prefix.to_string() }))
    });
    reply.await.map(created)
}

async fn del_block(axum::extract::State(shared): State, Query(query): Query<PrefixQuery>) -> Reply {
    change(
        &shared,
        format!("unblock {}", quote(&query.prefix)),
        move || {
            let prefix = Local.del_block(&query)?;
            Ok(json!({ "unblocked": prefix.to_string() }))
        },
    )
    .await
}

async fn list_vips() -> Reply {
    ok(blocking(ops::list_vips).await?)
}

async fn add_vip(axum::extract::State(shared): State, Body(vip): Body<NewVip>) -> Reply {
    let what = format!("add VIP {}", quote(&vip.vip));
    change(&shared, what, move || ops::add_vip(&vip))
        .await
        .map(created)
}

async fn del_vip(axum::extract::State(shared): State, Query(query): Query<VipQuery>) -> Reply {
    change(
        &shared,
        format!("delete VIP {}", quote(&query.vip)),
        move || ops::del_vip(&query),
    )
    .await
}

async fn list_backends(
    axum::extract::State(shared): State,
    Query(query): Query<BackendsQuery>,
) -> Reply {
    let mut rows = blocking(move || ops::list_backends(query.vip.as_deref())).await?;
    crate::health::annotate(&shared.health, &mut rows);
    ok(rows)
}

async fn add_backend(
    axum::extract::State(shared): State,
    Body(backend): Body<BackendWeight>,
) -> Reply {
    let what = format!(
        "add backend {} to {}",
        quote(&backend.address),
        quote(&backend.vip)
    );
    change(&shared, what, move || ops::add_backend(&backend))
        .await
        .map(created)
}

async fn set_weight(
    axum::extract::State(shared): State,
    Body(backend): Body<BackendWeight>,
) -> Reply {
    let what = format!(
        "weight {} for backend {} of {}",
        backend.weight,
        quote(&backend.address),
        quote(&backend.vip)
    );
    change(&shared, what, move || ops::set_weight(&backend)).await
}

async fn del_backend(
    axum::extract::State(shared): State,
    Query(query): Query<BackendQuery>,
) -> Reply {
    let what = format!(
        "remove backend {} from {}",
        quote(&query.address),
        quote(&query.vip)
    );
    change(&shared, what, move || ops::del_backend(&query)).await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The (method, path) pairs of [`super::router`], read from its source:
    /// each `.route("PATH", …)` with the `get(`/`post(`/`put(`/`delete(`
    /// handlers chained in it.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("api.rs");
        let body = source
            .split("pub fn router(")
            .nth(1)
            .and_then(|rest| rest.split(".fallback(").next())
            .expect("the router's body");
        let mut pairs = BTreeSet::new();
        for route in body.split(".route(").skip(1) {
            let path = route.split('"').nth(1).expect("a quoted path");
            for method in ["get", "post", "put", "delete"] {
                let called = route.match_indices(&format!("{method}(")).any(|(at, _)| {
                    let before = route[..at].chars().last();
                    !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                });
                if called {
                    pairs.insert((method.to_string(), path.to_string()));
                }
            }
        }
        pairs
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_routes() {
        let document: serde_json::Value =
            serde_json::from_str(include_str!("../openapi.json")).expect("openapi.json parses");
        let documented: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, operations)| {
                operations
                    .as_object()
                    .into_iter()
                    .flat_map(|operations| operations.keys())
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let routed = routed();
        assert!(routed.len() > 20, "the scan found the routes: {routed:?}");
        assert_eq!(documented, routed);
    }
}
