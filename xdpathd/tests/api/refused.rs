//! Bad requests: each refused with its status and error code, and none of
//! them changes the state.

use super::*;

/// The refused requests: method, path, body, the status and the error
/// code each must get.
// Long: a table of refused requests.
pub(crate) fn refused_requests() -> Vec<(&'static str, String, Option<String>, u16, &'static str)> {
    let vip = r#""vip":"203.0.113.10:80/tcp""#;
    let big = format!(
        r#"{{"src":"10.0.0.0/8","action":"drop","iface":"{}"}}"#,
        "x".repeat(70_000)
    );
    vec![
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
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/33","action":"drop"}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"banana","action":"drop"}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"explode"}"#.into()),
            422,
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
        // Valid JSON of the wrong type: a body error, not a syntax error.
        (
            "PUT",
            "/v1/lb/config".into(),
            Some(r#"{"connection_table":0}"#.into()),
            400,
            "invalid_body",
        ),
        (
            "PUT",
            "/v1/lb/config".into(),
            Some(r#"{"connection_table":"lru"}"#.into()),
            400,
            "invalid_body",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","dport":"70000"}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","proto":"icmp","icmp_type":"256"}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","proto":"tcp","icmp_type":8}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","proto":"tcpx"}"#.into()),
            422,
            "invalid_value",
        ),
        // Protocol 0 is the data path's "any": listed as 0, it would match
        // every protocol. Ports or TCP flags a protocol has not never match.
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","proto":0}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","proto":"0"}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","proto":"icmp","dport":80}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","proto":"udp","tcp_flags":"syn"}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/ratelimits".into(),
            Some(r#"{"pps":"100","proto":0}"#.into()),
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/rules".into(),
            Some(r#"{"src":"10.0.0.0/8","action":"drop","iface":"nosuch0"}"#.into()),
            422,
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
        // An id is written as the lists show it: no sign, no leading zero.
        ("DELETE", "/v1/rules/+1".into(), None, 400, "invalid_id"),
        ("DELETE", "/v1/rules/01".into(), None, 400, "invalid_id"),
        (
            "DELETE",
            "/v1/ratelimits/+1".into(),
            None,
            400,
            "invalid_id",
        ),
        ("DELETE", "/v1/rules/999".into(), None, 404, "no_such_rule"),
        (
            "POST",
            "/v1/blocklist".into(),
            Some(r#"{"prefix":"10.0.0.0/40"}"#.into()),
            422,
            "invalid_value",
        ),
        (
            "POST",
            "/v1/blocklist".into(),
            Some(r#"{"prefix":"10.0.0.0/8","ttl":"forever"}"#.into()),
            422,
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
            "/v1/blocklist".into(),
            Some(r#"{"prefix":"10.0.0.0/8","vni":16777216}"#.into()),
            422,
            "invalid_request",
        ),
        (
            "DELETE",
            "/v1/blocklist?prefix=192.0.2.0/24&vni=7".into(),
            None,
            404,
            "no_such_block",
        ),
        (
            "DELETE",
            "/v1/blocklist?prefix=192.0.2.0/24&vni=x".into(),
            None,
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.10/tcp"}"#.into()),
            422,
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
            422,
            "invalid_encap",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.11:80/tcp","ring_size":65536}"#.into()),
            422,
            "invalid_ring_size",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.11:80/tcp","flags":["sticky"]}"#.into()),
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/vips".into(),
            Some(r#"{"vip":"203.0.113.11:80/tcp","encap":"gue"}"#.into()),
            422,
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
            422,
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
            422,
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
            422,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/ratelimits".into(),
            Some(r#"{"pps":"100","per":"everyone"}"#.into()),
            422,
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
    ]
}

pub(crate) fn bad_requests_are_refused(bed: &TestBed, daemon: &Daemon) {
    let cases = refused_requests();
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
    // The scheme is case-insensitive and may be followed by more than one
    // space (RFC 9110 section 11.1); another scheme presents no token.
    let url = format!("http://127.0.0.1:{PORT}/v1/rules");
    for (scheme, wanted) in [
        ("bearer ", (200, None)),
        ("BEARER  ", (200, None)),
        ("Basic ", (401, Some("no_token"))),
    ] {
        let header = format!("Authorization: {scheme}{TOKEN}");
        let (got, value) = daemon.curl(&["-H", &header], "GET", &url, None, true);
        let code = (got != 200)
            .then(|| value["error"]["code"].as_str())
            .flatten();
        assert_eq!((got, code), wanted, "{header}: {value}");
    }
    assert_eq!(snapshot(daemon), before);
}
