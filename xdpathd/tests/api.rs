//! xdpathd's API end to end: the daemon runs in a test bed's namespace
//! over the real data path, and curl talks to it over its Unix socket and
//! over TCP on the namespace's loopback with a bearer token. Every route
//! works; 36 bad requests each get the right 4xx with a machine-readable
//! code and change nothing, as does a rule an older attached program would
//! not enforce.
//!
//! Needs root and curl.

mod common;
#[path = "api/refused.rs"]
mod refused;
#[path = "api/routes.rs"]
mod routes;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

use common::{xdpath_cli, Daemon};
use refused::*;
use routes::*;

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
    an_older_program_refuses_what_it_does_not_enforce(&bed, &daemon);
    metrics_are_exposed(&daemon);
    config_through_the_api(&bed, &daemon);
    the_cli_goes_through_the_daemon(&daemon);
    a_daemon_of_another_namespace_is_not_used(&bed, &daemon);
}

/// With a program of an older build attached (no feature word pinned, as
/// such a build leaves it), a rule by VNI is refused with 409
/// `older_program`, naming the interface and the reload, and changes
/// nothing, and `/v1/interfaces` names what the program lacks; after
/// `xdpath reload` it is accepted.
fn an_older_program_refuses_what_it_does_not_enforce(bed: &TestBed, daemon: &Daemon) {
    let interface = bed.a().interface.clone();
    let rule = Some(r#"{"src":"10.9.0.0/16","vni":1001,"action":"drop"}"#);
    std::fs::remove_file(
        bed.a()
            .interface_pin_dir()
            .join(xdpath_core::abi::map::FEATURES),
    )
    .expect("the FEATURES pin");
    let before = snapshot(daemon);
    let (status, value) = daemon.call("POST", "/v1/rules", rule);
    assert_eq!(
        (status, value["error"]["code"].as_str()),
        (409, Some("older_program")),
        "{value}"
    );
    let message = value["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "{interface} runs a program loaded by an older xdpath"
        )) && message.contains(&format!("run `xdpath reload {interface}` first")),
        "{message}"
    );
    assert_eq!(
        snapshot(daemon),
        before,
        "the refused rule changed the state"
    );
    let interfaces = daemon.ok("GET", "/v1/interfaces", None);
    let older = interfaces[0]["older_program"].as_str().unwrap_or_default();
    assert!(
        older.contains("rules and rate limits by VNI"),
        "{interfaces}"
    );
    daemon.xdpath(&["reload", &interface]);
    let interfaces = daemon.ok("GET", "/v1/interfaces", None);
    assert!(interfaces[0]["older_program"].is_null(), "{interfaces}");
    let (status, added) = daemon.call("POST", "/v1/rules", rule);
    assert_eq!(status, 201, "{added}");
    daemon.ok("DELETE", &format!("/v1/rules/{}", added["id"]), None);
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
