//! What a hostile test of the API found: a client that shut its side of
//! the connection after its request got no answer at all (hyper took the
//! end of file for the client leaving and dropped the handler), though a
//! change it asked for was made, and neither logged nor counted; and an
//! owner's document over 64 KiB was refused 413 though the route takes up
//! to 16 MiB (the body reader knew only the config's larger limit); a
//! config naming an owner's VIP was found out only half-way through its
//! apply, after its rules were in force, then undone (500 apply_failed),
//! as was one leaving out the outer source an owner's backends need; and
//! `plan` showed those, and a config rule with an owner's rule's id, as
//! changes apply would make.
//!
//! Needs root and curl.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use xdpath_lab::testenv::TestBed;

use common::{parse_answer, raw, Daemon};

fn start(bed: &TestBed, name: &str) -> Daemon {
    Daemon::in_bed(bed, name)
}

/// Sends `request`, shuts the writing side (as `nc -N` does) and reads the
/// answer until the daemon closes.
fn half_closed(daemon: &Daemon, request: &[u8]) -> (u16, serde_json::Value) {
    let mut stream = UnixStream::connect(daemon.socket()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request).expect("write");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_answer(&answer)
}

fn post_json(path: &str, method: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[test]
fn a_client_that_shuts_its_side_gets_its_answer_and_the_change_is_logged() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed, "halfclose");
    let rule = r#"{"src":"192.0.2.0/24","action":"drop"}"#;
    let (status, body) = half_closed(&daemon, &post_json("/v1/rules", "POST", rule));
    assert_eq!(status, 201, "the change's answer: {body}");
    let id = body["id"].as_u64().expect("the rule's id");
    let (status, rules) = half_closed(&daemon, b"GET /v1/rules HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200, "a read's answer: {rules}");
    assert_eq!(rules[0]["id"].as_u64(), Some(id), "{rules}");
    let config = daemon.ok("GET", "/v1/config", None);
    assert_eq!(config["generation"], 1, "the change counted: {config}");
    let log = daemon.log();
    assert!(
        log.lines()
            .any(|line| line.contains("applied: add rule") && line.contains("192.0.2.0/24")),
        "the change logged:\n{log}"
    );
    let check = daemon.xdpath(&["state", "check"]);
    assert!(check.contains("exactly"), "{check}");
}

#[test]
fn an_owner_document_over_64_kib_is_taken() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed, "bigdoc");
    // 700 rules with a label each: about 72 KiB of JSON, as a Neutron
    // port's security groups may make.
    let rules: Vec<String> = (0..700)
        .map(|n| {
            format!(
                r#"{{"src":"10.{}.{}.0/24","action":"drop","labels":{{"purpose":"{}"}}}}"#,
                n / 256,
                n % 256,
                "x".repeat(40)
            )
        })
        .collect();
    let document = format!(r#"{{"rules":[{}]}}"#, rules.join(","));
    assert!(document.len() > 64 << 10, "{} bytes", document.len());
    let (status, body) = raw(
        &daemon.socket(),
        &post_json("/v1/owners/neutron-port-1", "PUT", &document),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rules"], 700, "{body}");
    let listed = daemon.ok("GET", "/v1/rules?owner=neutron-port-1", None);
    assert_eq!(listed.as_array().map(Vec::len), Some(700));
    let check = daemon.xdpath(&["state", "check"]);
    assert!(check.contains("exactly"), "{check}");
    // Past 16 MiB it is still refused, and changes nothing.
    let over = (16 << 20) + 1;
    let head = format!(
        "PUT /v1/owners/neutron-port-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {over}\r\n\r\n"
    );
    let (status, body) = raw(&daemon.socket(), head.as_bytes());
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    let again = daemon.ok("GET", "/v1/rules?owner=neutron-port-1", None);
    assert_eq!(again, listed, "the refusal changed nothing");
    // Another route keeps the 64 KiB limit.
    let (status, body) = raw(&daemon.socket(), &post_json("/v1/rules", "POST", &document));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
}

#[test]
fn a_config_an_owner_clashes_with_is_refused_before_anything_changes() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed, "cfgclash");
    let vip = "203.0.113.40:80/tcp";
    let document = format!(
        r#"{{"vips":[{{"vip":"{vip}"}}],"rules":[{{"src":"192.0.2.7/32","action":"drop"}}]}}"#
    );
    let (status, body) = raw(
        &daemon.socket(),
        &post_json("/v1/owners/octavia-lb-1", "PUT", &document),
    );
    assert_eq!(status, 200, "{body}");
    let owned = daemon.ok("GET", "/v1/rules?owner=octavia-lb-1", None);
    let owned_id = owned[0]["id"].as_u64().expect("the owner's rule");
    let before = (
        daemon.ok("GET", "/v1/rules", None),
        daemon.ok("GET", "/v1/vips", None),
    );
    let rule = "[[filter.rule]]\nid = 7\nsrc = \"198.51.100.0/24\"\naction = \"drop\"\n";
    let held_vip = format!("{rule}[[lb.vip]]\nvip = \"{vip}\"\n");
    let held_id = format!(
        "{rule}[[filter.rule]]\nid = {owned_id}\nsrc = \"198.51.100.0/25\"\naction = \"drop\"\n"
    );
    for (what, config, status, code) in [
        ("an owner's VIP", &held_vip, 409, "owner_conflict"),
        ("an owner's rule id", &held_id, 422, "invalid_config"),
    ] {
        for path in ["/v1/config/plan", "/v1/config"] {
            let (got, body) = daemon.post_config(path, config, "application/toml");
            assert_eq!(
                (got, body["error"]["code"].as_str()),
                (status, Some(code)),
                "{path} with {what}: {body}"
            );
        }
        let file = daemon.dir.join("clash.toml");
        std::fs::write(&file, config).expect("config file");
        let planned = daemon
            .command(&common::xdpath_cli().display().to_string())
            .env("XDPATH_NO_DAEMON", "1")
            .args(["plan", "-f"])
            .arg(&file)
            .output()
            .expect("xdpath plan");
        assert!(
            !planned.status.success(),
            "xdpath plan of a config with {what}: {}",
            String::from_utf8_lossy(&planned.stdout)
        );
    }
    let after = (
        daemon.ok("GET", "/v1/rules", None),
        daemon.ok("GET", "/v1/vips", None),
    );
    assert_eq!(after, before, "the refusals changed nothing");
    // Settings without the outer source the owner's backend needs.
    daemon.ok(
        "PUT",
        "/v1/lb/config",
        Some(r#"{"source_v4":"198.51.100.1/32"}"#),
    );
    let with_backend = format!(
        r#"{{"vips":[{{"vip":"{vip}"}}],"backends":[{{"vip":"{vip}","address":"10.0.0.11","weight":1}}],"rules":[{{"src":"192.0.2.7/32","action":"drop"}}]}}"#
    );
    let (status, body) = raw(
        &daemon.socket(),
        &post_json("/v1/owners/octavia-lb-1", "PUT", &with_backend),
    );
    assert_eq!(status, 200, "{body}");
    let before = (
        daemon.ok("GET", "/v1/rules", None),
        daemon.ok("GET", "/v1/vips", None),
    );
    for path in ["/v1/config/plan", "/v1/config"] {
        let (got, body) = daemon.post_config(path, rule, "application/toml");
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (422, Some("no_outer_source")),
            "{path} without the owner's outer source: {body}"
        );
    }
    let after = (
        daemon.ok("GET", "/v1/rules", None),
        daemon.ok("GET", "/v1/vips", None),
    );
    assert_eq!(after, before, "the refusals changed nothing");
    let log = daemon.log();
    assert!(
        !log.contains("restored"),
        "refused before the apply began, not undone after:\n{log}"
    );
    let check = daemon.xdpath(&["state", "check"]);
    assert!(check.contains("exactly"), "{check}");
}
