//! The balancer's routes beyond adding and removing VIPs and backends:
//! idempotent VIP creation (`PUT /v1/vips`), allowed sources, health
//! checks, a VIP's Maglev table, the shared settings, and owners' documents
//! (`/v1/owners`). Changes go through the same library operations as the
//! CLI's, through [`change`] (counted and logged); reads through [`ok`].

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use xdpath::api::{
    ControlPlane, HealthArgs, LbConfigArgs, Local, NewVip, OwnerState, VipAllow, VipQuery,
};
use xdpathd::requests::TableQuery;

use crate::error::ApiError;
use crate::extract::{Body, Query};
use crate::ops;
use crate::reply::{change, ok, Reply, State};
use crate::shared::blocking;
use crate::text::quote;

/// The largest owner document accepted.
pub const DOCUMENT_LIMIT: usize = 16 << 20;

/// Creates a VIP or gives it the request's options and allowed sources.
pub async fn put_vip(axum::extract::State(shared): State, Body(vip): Body<NewVip>) -> Reply {
    let what = format!("put VIP {}", quote(&vip.vip));
    change(&shared, what, move || ops::put_vip(&vip)).await
}

/// Replaces a VIP's allowed sources.
pub async fn set_allow(axum::extract::State(shared): State, Body(allow): Body<VipAllow>) -> Reply {
    let what = format!(
        "allow {} sources to VIP {}",
        allow.allow.len(),
        quote(&allow.vip)
    );
    change(&shared, what, move || ops::set_allow(&allow)).await
}

/// Sets a VIP's health check.
pub async fn set_health(
    axum::extract::State(shared): State,
    Body(check): Body<HealthArgs>,
) -> Reply {
    let what = format!(
        "health check {} for VIP {}",
        quote(&check.kind),
        quote(&check.vip)
    );
    change(&shared, what, move || {
        let (id, checked) = Local.set_health(&check)?;
        Ok(serde_json::json!({ "vip": id.to_string(), "checked": checked }))
    })
    .await
}

/// Removes a VIP's health check.
pub async fn clear_health(
    axum::extract::State(shared): State,
    Query(query): Query<VipQuery>,
) -> Reply {
    let what = format!("no health check for VIP {}", quote(&query.vip));
    change(&shared, what, move || {
        let id = Local.clear_health(&query)?;
        Ok(serde_json::json!({ "vip": id.to_string(), "checked": false }))
    })
    .await
}

/// A VIP's Maglev table as the kernel holds it.
pub async fn vip_table(Query(query): Query<TableQuery>) -> Reply {
    ok(blocking(move || ops::vip_table(&query.vip, query.slots.unwrap_or(false))).await?)
}

/// The shared settings.
pub async fn lb_config() -> Reply {
    ok(blocking(ops::lb_config).await?)
}

/// Changes the shared settings given.
pub async fn set_lb_config(
    axum::extract::State(shared): State,
    Body(request): Body<LbConfigArgs>,
) -> Reply {
    let what = format!("balancer settings {request:?}");
    change(&shared, what, move || ops::set_lb_config(&request)).await
}

/// The owners.
pub async fn list_owners() -> Reply {
    ok(blocking(|| Ok(xdpath::lb::owner::list()?)).await?)
}

/// The owner named in the path, or a 400.
fn owner_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(owner) =
        path.map_err(|error| ApiError::bad_request("invalid_owner", error.body_text()))?;
    // A name the path's pattern refuses: 400, as a path of the wrong shape.
    xdpath::lb::edit::check_owner(&owner).map_err(|error| {
        let error = ApiError::from(error);
        ApiError::bad_request(error.code, error.message)
    })?;
    Ok(owner)
}

/// What is in force for an owner, with its backends' health.
pub async fn show_owner(
    axum::extract::State(shared): State,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let owner = owner_of(path)?;
    let mut view = blocking(move || Ok(xdpath::lb::owner::view(&owner)?)).await?;
    crate::health::annotate(&shared.health, &mut view);
    ok(view)
}

/// Makes an owner's state exactly the document.
pub async fn put_owner(
    axum::extract::State(shared): State,
    path: Result<Path<String>, PathRejection>,
    Body(document): Body<OwnerState>,
) -> Reply {
    let owner = owner_of(path)?;
    let what = format!(
        "owner {}: {} VIPs, {} backends, {} health checks, {} limits, {} rules",
        quote(&owner),
        document.vips.len(),
        document.backends.len(),
        document.health.len(),
        document.limits.len(),
        document.rules.len()
    );
    change(&shared, what, move || {
        ops::owner_change(&Local.put_owner(&owner, &document)?)
    })
    .await
}

/// Removes everything an owner made.
pub async fn delete_owner(
    axum::extract::State(shared): State,
    path: Result<Path<String>, PathRejection>,
) -> Reply {
    let owner = owner_of(path)?;
    let what = format!("delete owner {}", quote(&owner));
    change(&shared, what, move || {
        ops::owner_change(&Local.delete_owner(&owner)?)
    })
    .await
}
