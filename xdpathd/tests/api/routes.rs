//! Every route once, and configuration posted through the API.

use super::*;

/// A whole config through the API: planned, refused whole when broken
/// (every error listed, nothing changed), applied, and then planned empty.
pub(crate) fn config_through_the_api(bed: &TestBed, daemon: &Daemon) {
    let interface = &bed.a().interface;
    let config = format!(
        "[[interface]]\nname = \"{interface}\"\n\n[[filter.rule]]\nid = 7\nsrc = [\"198.18.0.0/15\"]\naction = \"drop\"\n\n\
         [lb]\nsource_v4 = \"172.16.0.0/16\"\n\n[[lb.vip]]\nvip = \"203.0.113.20:443/tcp\"\n\n[[lb.vip.backend]]\naddress = \"10.0.0.7\"\nweight = 4\n"
    );
    let (status, plan) = daemon.post_config("/v1/config/plan", &config, "application/toml");
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["empty"], false);
    let broken = config
        .replace("198.18.0.0/15", "198.18.0.0/99")
        .replace("weight = 4", "weight = 4000\ncolour = \"red\"");
    let before = snapshot(daemon);
    let (status, error) = daemon.post_config("/v1/config", &broken, "application/toml");
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("invalid_config")),
        "{error}"
    );
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.lines().count() >= 3,
        "every error listed: {message}"
    );
    assert!(
        message.contains("request:6:"),
        "with line numbers: {message}"
    );
    assert_eq!(
        snapshot(daemon),
        before,
        "a broken config changed the state"
    );
    let (status, _) = daemon.post_config("/v1/config", &config, "application/json");
    assert_eq!(status, 415);
    let (status, applied) = daemon.post_config("/v1/config", &config, "application/toml");
    assert_eq!(status, 200, "{applied}");
    let rules = daemon.ok("GET", "/v1/rules", None);
    assert_eq!(
        rules.as_array().map(Vec::len),
        Some(1),
        "the config's rules only: {rules}"
    );
    assert_eq!(rules[0]["id"], 7);
    let backends = daemon.ok("GET", "/v1/backends", None);
    assert_eq!(backends[0]["weight"], 4, "{backends}");
    let (status, plan) = daemon.post_config("/v1/config/plan", &config, "application/toml");
    assert_eq!(
        (status, plan["empty"].as_bool()),
        (200, Some(true)),
        "{plan}"
    );
}

// Long: every route once, in order, each on the state the last one left.
pub(crate) fn routes_work(bed: &TestBed, daemon: &Daemon) {
    let interface = bed.a().interface.clone();
    let attach = bed
        .command(Side::A, xdpath_cli())
        .args(["attach", &interface])
        .status();
    assert!(
        attach.map(|status| status.success()).unwrap_or(false),
        "attach"
    );
    let interfaces = ok(bed, daemon, "GET", "/v1/interfaces", None);
    assert_eq!(interfaces[0]["interface"], interface.as_str());
    let openapi = ok(bed, daemon, "GET", "/openapi.json", None);
    assert_eq!(openapi["openapi"], "3.0.3");

    let (status, rule) = call(
        bed,
        daemon,
        "POST",
        "/v1/rules",
        Some(r#"{"src":"198.51.100.0/24","proto":"tcp","dport":"22","action":"drop"}"#),
    );
    assert_eq!(status, 201, "{rule}");
    let id = rule["id"].as_u64().expect("id");
    let (status, limit) = call(
        bed,
        daemon,
        "POST",
        "/v1/ratelimits",
        Some(r#"{"pps":"1000","per":"src","aggregate_v4":"24","syn":true}"#),
    );
    assert_eq!(status, 201, "{limit}");
    let limits = ok(bed, daemon, "GET", "/v1/ratelimits", None);
    assert_eq!(limits[0]["id"], limit["id"], "{limits}");
    assert!(limits[0]["drops"].is_u64(), "{limits}");
    let limit_path = format!("/v1/ratelimits/{}", limit["id"]);
    ok(bed, daemon, "DELETE", &limit_path, None);
    assert_eq!(
        ok(bed, daemon, "GET", "/v1/ratelimits", None),
        Value::Array(vec![])
    );
    let rules = ok(bed, daemon, "GET", "/v1/rules", None);
    assert_eq!(rules[0]["id"].as_u64(), Some(id));
    assert_eq!(rules[0]["dport"], "22");
    ok(
        bed,
        daemon,
        "POST",
        "/v1/blocklist",
        Some(r#"{"prefix":"192.0.2.66/32","ttl":"1h"}"#),
    );
    ok(
        bed,
        daemon,
        "POST",
        "/v1/blocklist",
        Some(r#"{"prefix":"192.0.2.66/32","vni":1001}"#),
    );
    let blocks = ok(bed, daemon, "GET", "/v1/blocklist", None);
    assert_eq!(blocks[0]["prefix"], "192.0.2.66/32");
    assert_eq!(blocks[0]["vni"], Value::Null);
    assert_eq!(blocks[1]["prefix"], "192.0.2.66/32");
    assert_eq!(blocks[1]["vni"], 1001);
    ok(
        bed,
        daemon,
        "DELETE",
        "/v1/blocklist?prefix=192.0.2.66/32",
        None,
    );
    let blocks = ok(bed, daemon, "GET", "/v1/blocklist", None);
    assert_eq!(
        blocks[0]["vni"], 1001,
        "the plain entry went, the VNI's stayed"
    );
    ok(
        bed,
        daemon,
        "DELETE",
        "/v1/blocklist?prefix=192.0.2.66/32&vni=1001",
        None,
    );
    assert_eq!(
        ok(bed, daemon, "GET", "/v1/blocklist", None),
        Value::Array(vec![])
    );

    // The CLI sees what the API did, and the other way round.
    let cli = bed
        .exec(
            Side::A,
            xdpath_cli(),
            ["lb", "config", "--source-v4", "172.16.0.0/16"],
        )
        .expect("xdpath");
    assert!(cli.status.success());
    ok(
        bed,
        daemon,
        "POST",
        "/v1/vips",
        Some(r#"{"vip":"203.0.113.10:80/tcp","flags":["no-conntrack"]}"#),
    );
    ok(
        bed,
        daemon,
        "POST",
        "/v1/backends",
        Some(r#"{"vip":"203.0.113.10:80/tcp","address":"10.0.0.1","weight":3}"#),
    );
    ok(
        bed,
        daemon,
        "POST",
        "/v1/backends",
        Some(r#"{"vip":"203.0.113.10:80/tcp","address":"10.0.0.2"}"#),
    );
    ok(
        bed,
        daemon,
        "PUT",
        "/v1/backends",
        Some(r#"{"vip":"203.0.113.10:80/tcp","address":"10.0.0.2","weight":0}"#),
    );
    let backends = ok(
        bed,
        daemon,
        "GET",
        "/v1/backends?vip=203.0.113.10:80/tcp",
        None,
    );
    assert_eq!(backends[1]["state"], "drained");
    assert_eq!(backends[0]["weight"], 3);
    let listed = bed
        .exec(Side::A, xdpath_cli(), ["--json", "lb", "backend", "list"])
        .expect("xdpath");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    assert_eq!(listed, backends);
    ok(
        bed,
        daemon,
        "DELETE",
        "/v1/backends?vip=203.0.113.10:80/tcp&address=10.0.0.1",
        None,
    );
    let vips = ok(bed, daemon, "GET", "/v1/vips", None);
    assert_eq!(vips[0]["backends"], 1);
    let stats = ok(bed, daemon, "GET", "/v1/stats", None);
    assert!(stats["connection_table"]["hits"].is_u64(), "{stats}");
    let config = ok(bed, daemon, "GET", "/v1/config", None);
    assert!(config["generation"].as_u64() >= Some(7), "{config}");
    let (status, _) = call(bed, daemon, "DELETE", &format!("/v1/rules/{id}"), None);
    assert_eq!(status, 200);
    ok(
        bed,
        daemon,
        "POST",
        "/v1/rules",
        Some(r#"{"src":"198.51.100.0/24","action":"drop"}"#),
    );
}
