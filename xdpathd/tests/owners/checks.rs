//! Refusals that change nothing (bad documents, bad names, conflicts),
//! the single-object routes (`PUT /v1/vips`, allowed sources, health
//! checks) and each backend's health state.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::documents::{document, state_files, urlencoded, VIP1};
use super::*;

/// What a refused request must leave as it was.
pub(crate) fn snapshot(daemon: &Daemon) -> Vec<Value> {
    ["/v1/vips", "/v1/backends", "/v1/ratelimits", "/v1/owners"]
        .iter()
        .map(|path| {
            let mut value = driver_ok(daemon, "GET", path, None);
            // Counters may move; what is configured may not.
            strip_counters(&mut value);
            value
        })
        .collect()
}

fn strip_counters(value: &mut Value) {
    if let Some(rows) = value.as_array_mut() {
        for row in rows.iter_mut().filter_map(Value::as_object_mut) {
            for key in ["counters", "drops", "active_connections", "health_state"] {
                row.remove(key);
            }
        }
    }
}

/// Expects `status` and `code`.
pub(crate) fn refused(
    daemon: &Daemon,
    method: &str,
    path: &str,
    body: Option<&Value>,
    status: u16,
    code: &str,
) {
    let (got, error) = driver(daemon, method, path, body);
    assert_eq!(
        (got, error["error"]["code"].as_str()),
        (status, Some(code)),
        "{method} {path} {body:?}: {error}"
    );
}

/// Each broken document is refused with its code and changes nothing: not
/// the balancer when only the limits are wrong (17 limits, one more than
/// the data path holds), nor anything else.
pub(crate) fn refused_documents_change_nothing(daemon: &Daemon) {
    let before = snapshot(daemon);
    let path = format!("/v1/owners/{OWNER}");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut changed = document();
        edit(&mut changed);
        changed
    };
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            with(&|d| d["backends"][0]["weight"] = json!(5000)),
            422,
            "invalid_weight",
        ),
        (
            with(&|d| d["backends"][0]["vip"] = json!("203.0.113.99:80/tcp")),
            422,
            "invalid_request",
        ),
        (
            with(&|d| d["backends"][0]["address"] = json!("127.0.0.1")),
            422,
            "invalid_address",
        ),
        (
            with(&|d| d["vips"][1]["ring_size"] = json!(65536)),
            422,
            "invalid_ring_size",
        ),
        (
            with(&|d| d["vips"][0]["allow"] = json!(["10.0.0.1/8"])),
            422,
            "invalid_cidr",
        ),
        (
            with(&|d| d["vips"][0]["owner"] = json!("someone-else")),
            422,
            "invalid_request",
        ),
        (
            with(&|d| d["limits"][0]["vip"] = json!("203.0.113.99:80/tcp")),
            422,
            "invalid_request",
        ),
        (
            with(&|d| d["limits"][0]["owner"] = json!("someone-else")),
            422,
            "invalid_request",
        ),
        (
            with(&|d| d["vips"][0]["colour"] = json!("red")),
            400,
            "invalid_body",
        ),
        (
            with(&|d| {
                if let Some(vips) = d["vips"].as_array_mut() {
                    vips.push(json!({ "vip": "203.0.113.55:80/tcp" }));
                }
                d["limits"] = json!(vec![json!({ "vip": VIP1, "pps": "10" }); 17]);
            }),
            422,
            "not_installable",
        ),
    ];
    for (body, status, code) in &cases {
        refused(daemon, "PUT", &path, Some(body), *status, code);
        assert_eq!(snapshot(daemon), before, "{code}: {body}");
    }
}

/// Names checked before anything is read; a VIP of another owner, or of
/// none, is a conflict whichever way it is asked for.
pub(crate) fn owner_names_and_conflicts(daemon: &Daemon) {
    let empty = json!({});
    let long = "x".repeat(65);
    for bad in ["bad%2Fname", "%2E%2E", "a%20b", "caf%C3%A9", long.as_str()] {
        let path = format!("/v1/owners/{bad}");
        refused(daemon, "PUT", &path, Some(&empty), 400, "invalid_owner");
        refused(daemon, "GET", &path, None, 400, "invalid_owner");
        refused(daemon, "DELETE", &path, None, 400, "invalid_owner");
    }
    refused(
        daemon,
        "GET",
        "/v1/owners/nobody",
        None,
        404,
        "no_such_owner",
    );
    let nothing = driver_ok(daemon, "DELETE", "/v1/owners/nobody", None);
    assert_eq!(nothing["changed"], false);
    driver_ok(
        daemon,
        "POST",
        "/v1/vips",
        Some(&json!({ "vip": "203.0.113.60:80/tcp" })),
    );
    let before = snapshot(daemon);
    let theirs = json!({ "vips": [{ "vip": VIP1 }] });
    refused(
        daemon,
        "PUT",
        "/v1/owners/lb-2",
        Some(&theirs),
        409,
        "owner_conflict",
    );
    let unowned = json!({ "vips": [{ "vip": "203.0.113.60:80/tcp" }] });
    refused(
        daemon,
        "PUT",
        "/v1/owners/lb-2",
        Some(&unowned),
        409,
        "owner_conflict",
    );
    let unnamed = json!({ "vip": VIP1 });
    refused(
        daemon,
        "PUT",
        "/v1/vips",
        Some(&unnamed),
        409,
        "owner_conflict",
    );
    refused(
        daemon,
        "POST",
        "/v1/vips",
        Some(&unnamed),
        409,
        "vip_exists",
    );
    assert_eq!(snapshot(daemon), before);
    let (status, error) = driver(daemon, "PUT", "/v1/owners/lb-2", Some(&theirs));
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|text| text.contains(OWNER)),
        "{status} {error}"
    );
}

/// `PUT /v1/vips` creates, then leaves alone; an owned VIP refuses the
/// one-by-one routes (it changes through its owner); allowed sources
/// replaced and cleared; the settings of a VIP read back.
pub(crate) fn single_object_routes(daemon: &Daemon) {
    let vip = "203.0.113.61:80/tcp";
    let request = json!({ "vip": vip, "allow": ["192.0.2.0/24"], "owner": "lb-3" });
    assert_eq!(
        driver_ok(daemon, "PUT", "/v1/vips", Some(&request))["created"],
        true
    );
    let again = driver_ok(daemon, "PUT", "/v1/vips", Some(&request));
    assert_eq!(again["created"], false, "{again}");
    let other = json!({ "vip": vip, "owner": "lb-4" });
    refused(
        daemon,
        "PUT",
        "/v1/vips",
        Some(&other),
        409,
        "owner_conflict",
    );
    super::owned::owned_vip_refuses_single_changes(daemon, vip);
    let vips = driver_ok(daemon, "GET", "/v1/vips", None);
    let row = |vips: &Value, vip: &str| {
        vips.as_array()
            .and_then(|rows| rows.iter().find(|row| row["vip"] == vip))
            .cloned()
            .expect("the VIP")
    };
    assert_eq!(row(&vips, vip)["owner"], "lb-3");
    assert_eq!(row(&vips, vip)["allow"], json!(["192.0.2.0/24"]));
    let unowned = "203.0.113.63:80/tcp";
    driver_ok(daemon, "PUT", "/v1/vips", Some(&json!({ "vip": unowned })));
    let allow = json!({ "vip": unowned, "allow": ["2001:db8::/48", "198.51.100.7"] });
    let answer = driver_ok(daemon, "PUT", "/v1/vips/allow", Some(&allow));
    assert_eq!(
        answer["allow"],
        json!(["198.51.100.7/32", "2001:db8::/48"]),
        "{answer}"
    );
    let bad = json!({ "vip": unowned, "allow": ["198.51.100.0/33"] });
    refused(
        daemon,
        "PUT",
        "/v1/vips/allow",
        Some(&bad),
        422,
        "invalid_cidr",
    );
    let missing = json!({ "vip": "203.0.113.62:80/tcp", "allow": [] });
    refused(
        daemon,
        "PUT",
        "/v1/vips/allow",
        Some(&missing),
        404,
        "no_such_vip",
    );
    let vips = driver_ok(daemon, "GET", "/v1/vips", None);
    let shown = row(&vips, unowned);
    assert_eq!(shown["allow"], answer["allow"]);
    assert_eq!(shown["owner"], Value::Null);
    assert_eq!(shown["drops"]["not_allowed"], 0, "{shown}");
    assert!(shown["active_connections"].is_u64(), "{shown}");
    let clear = json!({ "vip": unowned, "allow": [] });
    assert_eq!(
        driver_ok(daemon, "PUT", "/v1/vips/allow", Some(&clear))["allow"],
        json!([])
    );
    driver_ok(
        daemon,
        "DELETE",
        &format!("/v1/vips?vip={}", urlencoded(unowned)),
        None,
    );
    driver_ok(daemon, "DELETE", "/v1/owners/lb-3", None);
}

/// A server on side A's address answering every request with 204.
fn answer_204(bed: &TestBed, port: u16) -> std::net::SocketAddr {
    let address = std::net::SocketAddr::from((bed.a().ipv4, port));
    let listener = bed
        .run_in_a(move || std::net::TcpListener::bind(address))
        .expect("namespace A")
        .expect("listen");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 512];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    address
}

/// The rows of `rows_path` once both backends were checked twice and one
/// is down.
fn settled_rows(daemon: &Daemon, rows_path: &str) -> Value {
    let start = Instant::now();
    loop {
        let rows = driver_ok(daemon, "GET", rows_path, None);
        let settled = rows.as_array().is_some_and(|rows| {
            rows.iter()
                .all(|row| row["health_state"]["checks"].as_u64() >= Some(2))
                && rows.iter().any(|row| row["state"] == "down")
        });
        if settled {
            return rows;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{rows}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The check removed by the owner's document: every backend back, no health
/// state (the checker drops a VIP's entries at its next look, 50 ms).
fn health_removed(daemon: &Daemon, checked: &Value, rows_path: &str) {
    let mut unchecked = checked.clone();
    unchecked["health"] = json!([]);
    let off = driver_ok(
        daemon,
        "PUT",
        &format!("/v1/owners/{OWNER}"),
        Some(&unchecked),
    );
    assert_eq!(off["changed"], true, "{off}");
    // The checker drops a VIP's board entries at its next look (50 ms).
    let start = Instant::now();
    loop {
        let rows = driver_ok(daemon, "GET", rows_path, None);
        let back = rows.as_array().is_some_and(|rows| {
            rows.iter()
                .all(|row| row["state"] == "active" && row["health_state"].is_null())
        });
        if back {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "{rows}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An owner's health check (HTTP, statuses 200-204) on two backends: the
/// one answering 204 stays in, the one with nothing listening is taken
/// out; each backend's health state reads back, through the backends list
/// and the owner's view; the same document again changes nothing, and
/// the check removed by the owner's document brings the backend back.
pub(crate) fn health_through_the_api(bed: &TestBed, daemon: &Daemon) {
    let server = answer_204(bed, 8080);
    let (up, down) = (bed.a().ipv4.to_string(), bed.b().ipv4.to_string());
    let vip = "203.0.113.51:80/tcp";
    let mut checked = document();
    checked["vips"]
        .as_array_mut()
        .expect("vips")
        .push(json!({ "vip": vip }));
    for address in [&up, &down] {
        checked["backends"]
            .as_array_mut()
            .expect("backends")
            .push(json!({ "vip": vip, "address": address }));
    }
    checked["health"] = json!([{
        "vip": vip, "kind": "http", "port": server.port(), "path": "/healthz",
        "status": "200-204", "interval": "200ms", "timeout": "150ms", "rise": 1, "fall": 1,
    }]);
    driver_ok(
        daemon,
        "PUT",
        &format!("/v1/owners/{OWNER}"),
        Some(&checked),
    );
    let rows_path = format!("/v1/backends?vip={}", urlencoded(vip));
    let rows = settled_rows(daemon, &rows_path);
    let row = |address: &str| {
        rows.as_array()
            .and_then(|rows| rows.iter().find(|row| row["backend"] == address))
            .cloned()
            .expect("row")
    };
    assert_eq!(row(&up)["health_state"]["healthy"], true, "{rows}");
    assert_eq!(row(&up)["state"], "active");
    assert_eq!(row(&down)["health_state"]["healthy"], false, "{rows}");
    assert!(row(&down)["health_state"]["last_error"]
        .as_str()
        .is_some_and(|why| !why.is_empty()));
    let view = driver_ok(daemon, "GET", &format!("/v1/owners/{OWNER}"), None);
    assert_eq!(view["document"]["health"][0]["status"], "200-204", "{view}");
    assert!(
        view["backends"].to_string().contains("health_state"),
        "{view}"
    );
    let answer = driver_ok(
        daemon,
        "PUT",
        &format!("/v1/owners/{OWNER}"),
        Some(&checked),
    );
    assert_eq!(
        answer["changed"], false,
        "a backend's health is not the document's: {answer}"
    );
    health_removed(daemon, &checked, &rows_path);
    let tcp = json!({ "vip": vip, "kind": "tcp", "interval": "5ms" });
    refused(
        daemon,
        "PUT",
        "/v1/vips/health",
        Some(&tcp),
        422,
        "invalid_request",
    );
    let (lb, _) = state_files(bed, Side::A);
    assert!(!lb.contains("\"interval_ms\":5,"), "{lb}");
    // Back to the plain document for the next steps.
    driver_ok(
        daemon,
        "PUT",
        &format!("/v1/owners/{OWNER}"),
        Some(&document()),
    );
}

/// An owner whose document holds only limits of its own (no VIP), as the
/// OpenStack Neutron agent makes them: one per floating IP, the buckets of
/// its address. Applied whole, the same again changes nothing, listed by
/// `GET /v1/ratelimits?owner=`, named by the `owner` label of their
/// drops' counter, removed by `DELETE`; an unowned limit stays throughout.
pub(crate) fn limits_of_their_own(daemon: &Daemon) {
    let owner = "neutron-fip-6a4c1c52-4f0e-4d7f-9d3e-0b8e1f2a3c4d";
    let path = format!("/v1/owners/{owner}");
    let operator = json!({ "per": "src", "scope": "192.0.2.0/24", "pps": "100" });
    let made = driver_ok(daemon, "POST", "/v1/ratelimits", Some(&operator));
    let document = json!({ "limits": [
        { "per": "dst", "scope": "203.0.113.7/32", "pps": "1000", "burst": "2000" },
        { "per": "src", "scope": "203.0.113.7/32", "bps": "125000" },
    ] });
    let answer = driver_ok(daemon, "PUT", &path, Some(&document));
    assert_eq!(
        (answer["changed"].as_bool(), answer["limits"].as_u64()),
        (Some(true), Some(2)),
        "{answer}"
    );
    let again = driver_ok(daemon, "PUT", &path, Some(&document));
    assert_eq!(again["changed"].as_bool(), Some(false), "{again}");
    let query = format!("/v1/ratelimits?owner={owner}");
    let mine = driver_ok(daemon, "GET", &query, None);
    let rows = mine.as_array().expect("a list");
    assert_eq!(rows.len(), 2, "{mine}");
    assert!(
        rows.iter()
            .all(|row| row["owner"] == owner && row["vip"].is_null()),
        "{mine}"
    );
    assert_eq!(rows[0]["per"], "dst");
    assert_eq!(rows[0]["packets_per_second"], 1000);
    let owners = driver_ok(daemon, "GET", "/v1/owners", None);
    assert!(
        owners
            .as_array()
            .expect("a list")
            .iter()
            .any(|row| row["owner"] == owner && row["vips"] == 0 && row["limits"] == 2),
        "{owners}"
    );
    let metrics = driver(daemon, "GET", "/metrics", None).1;
    let text = metrics.as_str().unwrap_or_default();
    let labelled = format!("owner=\"{owner}\"");
    assert_eq!(
        text.lines()
            .filter(
                |line| line.starts_with("xdpath_ratelimit_drops_total") && line.contains(&labelled)
            )
            .count(),
        2,
        "{text}"
    );
    // Changing one limit replaces it; the other keeps its id (and buckets).
    let ids = |rows: &Value| -> Vec<u64> {
        rows.as_array()
            .map(|rows| rows.iter().filter_map(|row| row["id"].as_u64()).collect())
            .unwrap_or_default()
    };
    let before = ids(&mine);
    let mut changed = document.clone();
    changed["limits"][0]["pps"] = json!("5000");
    driver_ok(daemon, "PUT", &path, Some(&changed));
    let after = ids(&driver_ok(daemon, "GET", &query, None));
    assert!(
        after.contains(&before[1]) && !after.contains(&before[0]),
        "{before:?} -> {after:?}"
    );
    driver_ok(daemon, "DELETE", &path, None);
    assert_eq!(driver_ok(daemon, "GET", &query, None), json!([]));
    let all = driver_ok(daemon, "GET", "/v1/ratelimits", None);
    assert!(
        all.as_array()
            .expect("a list")
            .iter()
            .any(|row| row["id"] == made["id"] && row["owner"].is_null()),
        "the operator's limit stays: {all}"
    );
    driver_ok(
        daemon,
        "DELETE",
        &format!("/v1/ratelimits/{}", made["id"]),
        None,
    );
}
