//! Every error the API returns is the documented JSON object, with a code
//! and a message that quotes the input: malformed HTTP, headers too large,
//! bodies over the limit (declared or chunked), bodies that are not UTF-8,
//! a port range that is not one. And what a client sends cannot forge a
//! line of the daemon's log: newlines, carriage returns and escape
//! sequences in a prefix, a VIP or a query are logged escaped.
//!
//! Needs root and curl.

mod common;

use serde_json::Value;
use xdpath_lab::testenv::TestBed;

use common::{in_namespace, raw, Daemon};

fn start(bed: &TestBed, name: &str) -> Daemon {
    Daemon::in_bed(bed, name)
}

/// Everything a refused request must leave as it was.
fn snapshot(daemon: &Daemon) -> Vec<Value> {
    ["/v1/rules", "/v1/blocklist", "/v1/vips", "/v1/config"]
        .iter()
        .map(|path| {
            let mut value = daemon.ok("GET", path, None);
            // Refusals count; the state is what matters.
            if let Some(object) = value.as_object_mut() {
                object.remove("apply_errors");
            }
            value
        })
        .collect()
}

fn request(head: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = head.as_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

fn post(path: &str, kind: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    request(&head, body)
}

/// A chunked body of `size` bytes of `fill`, in 64 KiB chunks.
fn chunked(path: &str, kind: &str, size: usize, fill: u8) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![fill; 64 << 10];
    let mut left = size;
    while left > 0 {
        let part = left.min(chunk.len());
        bytes.extend_from_slice(format!("{part:x}\r\n").as_bytes());
        bytes.extend_from_slice(&chunk[..part]);
        bytes.extend_from_slice(b"\r\n");
        left -= part;
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

#[test]
fn every_error_is_a_json_error_object_quoting_the_input() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed, "errors");
    let socket = daemon.socket();
    let big_header = format!(
        "GET /v1/config HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let many_headers = format!(
        "GET /v1/config HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..200)
            .map(|n| format!("X-H{n}: v\r\n"))
            .collect::<String>()
    );
    let over = (16 << 20) + 1;
    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "garbage",
            b"GARBAGE\r\n\r\n".to_vec(),
            400,
            "malformed_request",
            "\"GARBAGE\"",
        ),
        (
            "a bad version",
            b"GET /v1/config HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "malformed_request",
            "HTTP/9.9",
        ),
        (
            "a bad header",
            b"GET /v1/config HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n".to_vec(),
            400,
            "malformed_request",
            "GET /v1/config HTTP/1.1",
        ),
        (
            "a bad Content-Length",
            b"POST /v1/rules HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
            400,
            "malformed_request",
            "\"abc\"",
        ),
        (
            "a header too large",
            big_header.into_bytes(),
            431,
            "headers_too_large",
            "GET /v1/config HTTP/1.1",
        ),
        (
            "too many headers",
            many_headers.into_bytes(),
            431,
            "headers_too_large",
            "GET /v1/config HTTP/1.1",
        ),
        (
            "a config over 16 MiB, declared",
            request(
                &format!(
                    "POST /v1/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/toml\r\n\
                     Content-Length: {over}\r\n\r\n"
                ),
                b"# a start",
            ),
            413,
            "body_too_large",
            "16777217",
        ),
        (
            "a config over 16 MiB, chunked",
            chunked("/v1/config", "application/toml", over, b'#'),
            413,
            "body_too_large",
            "16777216",
        ),
        (
            "a rule body over 64 KiB, chunked",
            chunked("/v1/rules", "application/json", 70_000, b' '),
            413,
            "body_too_large",
            "65536",
        ),
        (
            "a config not in UTF-8",
            post(
                "/v1/config",
                "application/toml",
                b"# ok\nx = \"\xff\xfe\"\n",
            ),
            400,
            "invalid_utf8",
            "byte 10",
        ),
        (
            "a config plan not in UTF-8",
            post("/v1/config/plan", "application/toml", b"\xc3"),
            400,
            "invalid_utf8",
            "byte 0",
        ),
        (
            "a rule not in UTF-8",
            post(
                "/v1/rules",
                "application/json",
                b"{\"src\":\"\xff\",\"action\":\"drop\"}",
            ),
            400,
            "invalid_json",
            "line 1",
        ),
        (
            "a negative port",
            post(
                "/v1/rules",
                "application/json",
                br#"{"src":"10.0.0.0/8","dport":"-1","action":"drop"}"#,
            ),
            422,
            "invalid_value",
            "\"-1\"",
        ),
        (
            "a reversed port range",
            post(
                "/v1/rules",
                "application/json",
                br#"{"src":"10.0.0.0/8","dport":"80-x","action":"drop"}"#,
            ),
            422,
            "invalid_value",
            "\"80-x\"",
        ),
    ];
    let before = snapshot(&daemon);
    for (what, bytes, status, code, quoted) in cases {
        let (got, body) = raw(&socket, &bytes);
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(quoted),
            "{what}: {quoted:?} not in {message:?}"
        );
        assert_eq!(snapshot(&daemon), before, "{what} changed the state");
    }
}

/// A log line as a client would forge it.
const FORGED: &str = "1999-12-31T23:59:59.999999Z  INFO applied: FORGED";

#[test]
fn user_text_cannot_forge_a_log_line() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed, "log");
    let json = |field: &str, value: String, rest: &str| {
        let value = serde_json::to_string(&value).expect("JSON");
        format!("{{\"{field}\":{value}{rest}}}")
    };
    let forged = [
        format!("\n{FORGED}"),
        format!("\r{FORGED}"),
        format!("\u{1b}[2K\r{FORGED}"),
    ];
    let mut refusals = 0;
    for tail in &forged {
        let bodies = [
            (
                "/v1/blocklist",
                json("prefix", format!("9.9.9.0/24{tail}"), ""),
            ),
            (
                "/v1/rules",
                json("src", format!("10.0.0.0/8{tail}"), r#","action":"drop""#),
            ),
            (
                "/v1/vips",
                json("vip", format!("203.0.113.1:80/tcp{tail}"), ""),
            ),
            (
                "/v1/backends",
                json(
                    "vip",
                    format!("203.0.113.1:80/tcp{tail}"),
                    r#","address":"10.0.0.1""#,
                ),
            ),
        ];
        for (path, body) in bodies {
            let (status, answer) = daemon.call("POST", path, Some(&body));
            assert_eq!(status, 422, "{path} {body}: {answer}");
            refusals += 1;
        }
        let encoded = xdpath::api::daemon::query_value(&format!("9.9.9.0/24{tail}"));
        let (status, answer) =
            daemon.call("DELETE", &format!("/v1/blocklist?prefix={encoded}"), None);
        assert_eq!(status, 422, "{answer}");
        let encoded = xdpath::api::daemon::query_value(&format!("203.0.113.1:80/tcp{tail}"));
        let (status, answer) = daemon.call("DELETE", &format!("/v1/vips?vip={encoded}"), None);
        assert_eq!(status, 422, "{answer}");
        refusals += 2;
    }
    let log = daemon.log();
    for line in log.split(['\n', '\r']) {
        assert!(!line.starts_with("1999-12-31"), "a forged line: {line:?}");
    }
    assert!(
        !log.contains("\u{1b}[2K"),
        "an escape sequence went through"
    );
    let escaped = log
        .lines()
        .filter(|line| line.contains("refused:") && line.contains("FORGED"))
        .filter(|line| {
            ["\\n1999", "\\r1999", "\\u{1b}[2K"]
                .iter()
                .any(|e| line.contains(e))
        })
        .count();
    assert_eq!(escaped, refusals, "each refusal logged, escaped:\n{log}");
}

/// A log that goes to a file (journald, a service's log file) holds no
/// colour codes; `--log-format json` writes one JSON object a line, with
/// the library's warnings and the refusals in it too.
#[test]
fn the_log_is_plain_off_a_terminal_and_json_when_asked() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed, "plainlog");
    let (status, _) = daemon.call("POST", "/v1/blocklist", Some(r#"{"prefix":"bad"}"#));
    assert_eq!(status, 422);
    let log = daemon.log();
    assert!(log.contains("refused"), "{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a file: {log:?}");
    drop(daemon);
    let path = bed.a().path.clone();
    let daemon = Daemon::start(
        "jsonlog",
        Box::new(move |program: &str| in_namespace(&path, program)),
        &["--log-format".into(), "json".into()],
    );
    let (status, _) = daemon.call("POST", "/v1/blocklist", Some(r#"{"prefix":"bad"}"#));
    assert_eq!(status, 422);
    let log = daemon.log();
    let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{log}");
    for line in &lines {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("{line}: {error}"));
        assert!(
            value["level"].is_string() && value["fields"]["message"].is_string(),
            "{line}"
        );
    }
    assert!(lines.iter().any(|line| line.contains("refused")), "{log}");
}
