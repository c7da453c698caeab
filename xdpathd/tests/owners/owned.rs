//! An owner's VIP refuses the one-by-one routes: it changes through its
//! owner.

use super::checks::{refused, snapshot};
use super::documents::urlencoded;
use super::*;

/// Every one-by-one route that would change an owner's VIP, its backends,
/// allowed sources or health check answers 409 `owned` and changes
/// nothing (as an owner's rules and limits do).
pub(crate) fn owned_vip_refuses_single_changes(daemon: &Daemon, vip: &str) {
    let before = snapshot(daemon);
    let query = urlencoded(vip);
    let calls = [
        (
            "PUT",
            "/v1/vips/allow".to_string(),
            Some(json!({ "vip": vip, "allow": [] })),
        ),
        (
            "PUT",
            "/v1/vips/health".to_string(),
            Some(json!({ "vip": vip, "kind": "tcp" })),
        ),
        ("DELETE", format!("/v1/vips/health?vip={query}"), None),
        (
            "POST",
            "/v1/backends".to_string(),
            Some(json!({ "vip": vip, "address": "10.0.0.9" })),
        ),
        (
            "PUT",
            "/v1/backends".to_string(),
            Some(json!({ "vip": vip, "address": "10.0.0.9", "weight": 0 })),
        ),
        (
            "DELETE",
            format!("/v1/backends?vip={query}&address=10.0.0.9"),
            None,
        ),
        ("DELETE", format!("/v1/vips?vip={query}"), None),
    ];
    for (method, path, body) in &calls {
        refused(daemon, method, path, body.as_ref(), 409, "owned");
    }
    let (_, error) = driver(daemon, "DELETE", &format!("/v1/vips?vip={query}"), None);
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("lb-3") && message.contains("/v1/owners/"),
        "{error}"
    );
    assert_eq!(snapshot(daemon), before, "a refused call changed the state");
}
