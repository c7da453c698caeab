//! xdpathd's API end to end: the daemon runs in a test bed's namespace
//! over the real data path, and curl talks to it over its Unix socket and
//! over TCP on the namespace's loopback with a bearer token. Every route
//! works; 36 bad requests each get the right 4xx with a machine-readable
//! code and change nothing.
//!
//! Needs root and curl.

mod common;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

use common::{xdpath_cli, Daemon};

const TOKEN: &str = "0123456789abcdef-test-token";
const PORT: u16 = 9180;

fn start(bed: &TestBed) -> Daemon {
    let path = bed.a().path.clone();
    let token = std::env::temp_dir().join(format!("xdpathd-api-token-{}", std::process::id()));
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    // Like an ssh key: a token others can read is refused.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let enter = Box::new(move |program: &str| {
        let mut command = std::process::Command::new("nsenter");
        command
            .arg(format!("--net={}", path.display()))
            .arg(program);
        command
    });
    let extra = [
        "--listen".to_string(),
        format!("127.0.0.1:{PORT}"),
        "--token-file".into(),
        token.display().to_string(),
    ];
    let daemon = Daemon::start("api", enter, &extra);
    // Read at start only; not left behind in /tmp.
    let _ = std::fs::remove_file(token);
    daemon
}

/// How a request reaches the daemon.
enum Via<'a> {
    Socket,
    Tcp(Option<&'a str>),
}

fn request(
    daemon: &Daemon,
    via: Via,
    method: &str,
    path: &str,
    body: Option<&str>,
    content_type: bool,
) -> (u16, Value) {
    match via {
        Via::Socket => {
            let socket = daemon.dir.join("api.sock").display().to_string();
            let url = format!("http://localhost{path}");
            daemon.curl(
                &["--unix-socket", &socket],
                method,
                &url,
                body,
                content_type,
            )
        }
        Via::Tcp(token) => {
            let header = token.map(|token| format!("Authorization: Bearer {token}"));
            let extra: Vec<&str> = header
                .iter()
                .flat_map(|header| ["-H", header.as_str()])
                .collect();
            let url = format!("http://127.0.0.1:{PORT}{path}");
            daemon.curl(&extra, method, &url, body, content_type)
        }
    }
}

fn call(
    _bed: &TestBed,
    daemon: &Daemon,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    daemon.call(method, path, body)
}

fn ok(_bed: &TestBed, daemon: &Daemon, method: &str, path: &str, body: Option<&str>) -> Value {
    daemon.ok(method, path, body)
}

/// Everything a refused request must leave as it was.
fn snapshot(daemon: &Daemon) -> Vec<Value> {
    [
        "/v1/rules",
        "/v1/ratelimits",
        "/v1/blocklist",
        "/v1/vips",
        "/v1/backends",
    ]
    .iter()
    .map(|path| daemon.ok("GET", path, None))
    .collect()
}

#[test]
fn every_route_works_and_bad_requests_change_nothing() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed);
    routes_work(&bed, &daemon);
    bad_requests_are_refused(&bed, &daemon);
    metrics_are_exposed(&daemon);
    config_through_the_api(&bed, &daemon);
    the_cli_goes_through_the_daemon(&daemon);
    a_daemon_of_another_namespace_is_not_used(&bed, &daemon);
}

/// A note in namespace B naming A's daemon (as a stale note could, once a
/// namespace reuses a deleted one's inode): B's CLI sees that the daemon
/// serves another namespace and works on B's own state.
fn a_daemon_of_another_namespace_is_not_used(bed: &TestBed, daemon: &Daemon) {
    let config = daemon.ok("GET", "/v1/config", None);
    assert_eq!(config["netns"].as_str(), Some(bed.a().key().as_str()));
    let dir = bed.b().state_dir();
    std::fs::create_dir_all(&dir).expect("B's state dir");
    let socket = daemon.dir.join("api.sock");
    std::fs::write(dir.join("xdpathd"), socket.display().to_string()).expect("note");
    let (generation_before, _) = generation(daemon);
    let output = bed
        .exec(Side::B, xdpath_cli(), ["block", "add", "192.0.2.77/32"])
        .expect("xdpath in B");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        generation(daemon).0,
        generation_before,
        "A's daemon was not asked"
    );
    let saved = std::fs::read_to_string(dir.join("filter.json")).expect("B's own state");
    assert!(saved.contains("192.0.2.77/32"), "{saved}");
    let a_blocks = daemon.ok("GET", "/v1/blocklist", None);
    assert!(!a_blocks.to_string().contains("192.0.2.77"), "{a_blocks}");
}

fn generation(daemon: &Daemon) -> (u64, u64) {
    let config = daemon.ok("GET", "/v1/config", None);
    (
        config["generation"].as_u64().unwrap_or(0),
        config["apply_errors"].as_u64().unwrap_or(0),
    )
}

/// While the daemon runs, the CLI's changes go through it (its generation
/// counts them, its refusals are the CLI's errors); with XDPATH_NO_DAEMON
/// the CLI works on the state alone, with the same result.
fn the_cli_goes_through_the_daemon(daemon: &Daemon) {
    let (start, errors) = generation(daemon);
    let id = daemon.xdpath(&[
        "filter",
        "add",
        "--src",
        "203.0.113.128/25",
        "--action",
        "drop",
    ]);
    let id = id.trim().to_string();
    assert!(id.parse::<u32>().is_ok(), "{id}");
    daemon.xdpath(&[
        "lb",
        "backend",
        "add",
        "203.0.113.20:443/tcp",
        "10.0.0.8",
        "--weight",
        "2",
    ]);
    daemon.xdpath(&["block", "add", "192.0.2.99/32", "--ttl", "10m"]);
    assert_eq!(generation(daemon), (start + 3, errors));
    let refused = daemon
        .command(&xdpath_cli().display().to_string())
        .args(["block", "del", "192.0.2.98/32"])
        .output()
        .expect("xdpath");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("xdpath: error: 192.0.2.98/32 is not on the blocklist"),
        "{stderr}"
    );
    assert_eq!(generation(daemon), (start + 3, errors + 1));
    let alone = daemon
        .command(&xdpath_cli().display().to_string())
        .env("XDPATH_NO_DAEMON", "1")
        .args(["filter", "del", &id])
        .output()
        .expect("xdpath");
    assert!(alone.status.success());
    assert_eq!(generation(daemon), (start + 3, errors + 1), "standalone");
    let rules = daemon.ok("GET", "/v1/rules", None);
    assert!(rules.as_array().is_some_and(|rules| rules
        .iter()
        .all(|rule| rule["id"].as_u64() != id.parse::<u64>().ok())));
    let backends = daemon.ok("GET", "/v1/backends?vip=203.0.113.20:443/tcp", None);
    assert!(backends.to_string().contains("10.0.0.8"), "{backends}");
}

fn post_config(daemon: &Daemon, path: &str, text: &str, kind: &str) -> (u16, Value) {
    let socket = daemon.dir.join("api.sock").display().to_string();
    let header = format!("Content-Type: {kind}");
    let url = format!("http://localhost{path}");
    daemon.curl(
        &["--unix-socket", &socket, "-H", &header],
        "POST",
        &url,
        Some(text),
        false,
    )
}

/// A whole config through the API: planned, refused whole when broken
/// (every error listed, nothing changed), applied, and then planned empty.
fn config_through_the_api(bed: &TestBed, daemon: &Daemon) {
    let interface = &bed.a().interface;
    let config = format!(
        "[[interface]]\nname = \"{interface}\"\n\n[[filter.rule]]\nid = 7\nsrc = [\"198.18.0.0/15\"]\naction = \"drop\"\n\n\
         [lb]\nsource_v4 = \"172.16.0.0/16\"\n\n[[lb.vip]]\nvip = \"203.0.113.20:443/tcp\"\n\n[[lb.vip.backend]]\naddress = \"10.0.0.7\"\nweight = 4\n"
    );
    let (status, plan) = post_config(daemon, "/v1/config/plan", &config, "application/toml");
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["empty"], false);
    let broken = config
        .replace("198.18.0.0/15", "198.18.0.0/99")
        .replace("weight = 4", "weight = 4000\ncolour = \"red\"");
    let before = snapshot(daemon);
    let (status, error) = post_config(daemon, "/v1/config", &broken, "application/toml");
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("invalid_config")),
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
    let (status, _) = post_config(daemon, "/v1/config", &config, "application/json");
    assert_eq!(status, 415);
    let (status, applied) = post_config(daemon, "/v1/config", &config, "application/toml");
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
    let (status, plan) = post_config(daemon, "/v1/config/plan", &config, "application/toml");
    assert_eq!(
        (status, plan["empty"].as_bool()),
        (200, Some(true)),
        "{plan}"
    );
}

fn routes_work(bed: &TestBed, daemon: &Daemon) {
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
    let blocks = ok(bed, daemon, "GET", "/v1/blocklist", None);
    assert_eq!(blocks[0]["prefix"], "192.0.2.66/32");
    ok(
        bed,
        daemon,
        "DELETE",
        "/v1/blocklist?prefix=192.0.2.66/32",
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

fn bad_requests_are_refused(bed: &TestBed, daemon: &Daemon) {
    let vip = r#""vip":"203.0.113.10:80/tcp""#;
    let big = format!(
        r#"{{"src":"10.0.0.0/8","action":"drop","iface":"{}"}}"#,
        "x".repeat(70_000)
    );
    let cases: Vec<(&str, String, Option<String>, u16, &str)> = vec![
        (
            "POST",
            "/v1/rules".into(),
            Some("{}".into()),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"action":"drop"}"#.into()),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/33","action":"drop"}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"banana","action":"drop"}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"explode"}"#.into()),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","colour":"red"}"#.into()),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":10,"action":"drop"}"#.into()),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some("not json".into()),
            400,
            "invalid_json",
        ),
        ("POST", "/v1/rules".into(), Some(big), 413, "body_too_large"),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","dport":"70000"}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","proto":"tcpx"}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","iface":"nosuch0"}"#.into()),
            400,
            "unknown_interface",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","monitor":"yes"}"#.into()),
            400,
            "invalid_body",
        ),
        ("DELETE", "/v1/rules/abc".into(), None, 400, "invalid_id"),
        ("DELETE", "/v1/rules/999".into(), None, 404, "no_such_rule"),
        (
            "POST",
            "/v1/blocklist".into(),
            Some(r#"{"prefix":"10.0.0.0/40"}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/blocklist".into(),
            Some(r#"{"prefix":"10.0.0.0/8","ttl":"forever"}"#.into()),
            400,
            "invalid_value",
        ),
        (
            "DELETE",
            "/v1/blocklist?prefix=192.0.2.0/24".into(),
            None,
            404,
            "no_such_block",
        ),
        ("DELETE", "/v1/blocklist".into(), None, 400, "invalid_query"),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.10/tcp"}"#.into()),
            400,
            "invalid_vip",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(format!("{{{vip}}}")),
            409,
            "vip_exists",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.11:80/tcp","encap":"vxlan"}"#.into()),
            400,
            "invalid_encap",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.11:80/tcp","ring_size":65536}"#.into()),
            400,
            "invalid_ring_size",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.11:80/tcp","flags":["sticky"]}"#.into()),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.11:80/tcp","encap":"gue"}"#.into()),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/backends".into(),
            Some(r#"{"vip":"203.0.113.99:80/tcp","address":"10.0.0.5"}"#.into()),
            404,
            "no_such_vip",
        ),
        (
            "POST",
            "/v1/backends".into(),
            Some(format!(r#"{{{vip},"address":"10.0.0.5","weight":5000}}"#)),
            400,
            "invalid_weight",
        ),
        (
            "POST",
            "/v1/backends".into(),
            Some(format!(r#"{{{vip},"address":"10.0.0.5","weight":-1}}"#)),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/backends".into(),
            Some(format!(r#"{{{vip},"address":"2001:db8::5"}}"#)),
            422,
            "no_outer_source",
        ),
        (
            "POST",
            "/v1/backends".into(),
            Some(format!(r#"{{{vip},"address":"10.0.0.300"}}"#)),
            400,
            "invalid_address",
        ),
        (
            "PUT",
            "/v1/backends".into(),
            Some(format!(r#"{{{vip},"address":"10.0.0.9","weight":2}}"#)),
            404,
            "no_such_backend",
        ),
        (
            "DELETE",
            "/v1/backends?vip=203.0.113.10:80/tcp&address=10.0.0.2&extra=1".into(),
            None,
            400,
            "invalid_query",
        ),
        (
            "DELETE",
            "/v1/vips?vip=203.0.113.99:80/tcp".into(),
            None,
            404,
            "no_such_vip",
        ),
        (
            "POST",
            "/v1/ratelimits".into(),
            Some(r#"{"pps":"fast"}"#.into()),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/ratelimits".into(),
            Some(r#"{"pps":"100","per":"everyone"}"#.into()),
            400,
            "invalid_request",
        ),
        (
            "DELETE",
            "/v1/ratelimits/42".into(),
            None,
            404,
            "no_such_limit",
        ),
        ("GET", "/v1/nothing".into(), None, 404, "not_found"),
        ("PATCH", "/v1/rules".into(), None, 405, "method_not_allowed"),
    ];
    let before = snapshot(daemon);
    for (method, path, body, status, code) in &cases {
        let (got, value) = call(bed, daemon, method, path, body.as_deref());
        assert_eq!(
            (got, value["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{method} {path} {body:?}: {value}"
        );
        assert!(value["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()));
        assert_eq!(
            snapshot(daemon),
            before,
            "{method} {path} changed the state"
        );
    }
    // No content type, and the TCP listener's token.
    let (got, value) = request(
        daemon,
        Via::Socket,
        "POST",
        "/v1/rules",
        Some(r#"{"src":"10.0.0.0/8","action":"drop"}"#),
        false,
    );
    assert_eq!(
        (got, value["error"]["code"].as_str()),
        (415, Some("unsupported_media_type"))
    );
    let (got, value) = request(daemon, Via::Tcp(None), "GET", "/v1/rules", None, true);
    assert_eq!(
        (got, value["error"]["code"].as_str()),
        (401, Some("no_token"))
    );
    let (got, value) = request(
        daemon,
        Via::Tcp(Some("0123456789abcdef-wrong-token")),
        "POST",
        "/v1/rules",
        Some(r#"{"src":"10.0.0.0/8","action":"drop"}"#),
        true,
    );
    assert_eq!(
        (got, value["error"]["code"].as_str()),
        (401, Some("bad_token"))
    );
    let (got, value) = request(
        daemon,
        Via::Tcp(Some(TOKEN)),
        "GET",
        "/v1/rules",
        None,
        true,
    );
    assert_eq!(got, 200, "{value}");
    assert_eq!(snapshot(daemon), before);
}

fn metrics_are_exposed(daemon: &Daemon) {
    // Without a token, on TCP too.
    let (status, text) = request(daemon, Via::Tcp(None), "GET", "/metrics", None, true);
    assert_eq!(status, 200);
    let text = text.as_str().expect("text").to_string();
    for needle in [
        "# TYPE xdpath_packets_total counter",
        "xdpath_rule_hits_total{rule=",
        "xdpath_lb_backend_weight{vip=\"203.0.113.10:80/tcp\",backend=\"10.0.0.2\"} 0",
        "xdpath_lb_connection_lookups_total{result=\"hit\"}",
        "xdpath_config_generation ",
        "xdpath_apply_errors_total ",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let errors = text
        .lines()
        .find_map(|line| line.strip_prefix("xdpath_apply_errors_total "))
        .and_then(|value| value.trim().parse::<u64>().ok())
        .expect("apply errors");
    assert!(errors >= 20, "{errors}");
}
