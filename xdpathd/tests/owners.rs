//! Owners end to end, as an OpenStack Octavia provider driver uses them:
//! two xdpathd, each in a namespace of a test bed (two balancers of one
//! fleet), called over TCP with a bearer token. An owner's document is
//! applied whole or not at all, the same document again changes nothing,
//! another owner's (or an unowned) VIP is a conflict, a bad owner name is
//! refused, and the same document gives byte-identical Maglev tables on
//! both hosts, read back from their kernels. Health checks and the
//! balancer's settings through the API; allowed sources and per-VIP
//! statistics on real traffic (`owners/traffic.rs`). Owners with limits
//! of their own and no VIP, and filter rules, as the OpenStack Neutron
//! agent makes them (`owners/rules.rs`), with labels naming the Neutron
//! objects on their counters (`owners/labels.rs`).
//!
//! Needs root and curl.

#[path = "owners/checks.rs"]
mod checks;
mod common;
#[path = "owners/documents.rs"]
mod documents;
#[path = "owners/labels.rs"]
mod labels;
#[path = "owners/owned.rs"]
mod owned;
#[path = "owners/rules.rs"]
mod rules;
#[path = "owners/traffic.rs"]
mod traffic;

use std::os::unix::fs::PermissionsExt;

use serde_json::{json, Value};
use xdpath_lab::testenv::{Side, TestBed};

use common::Daemon;

const TOKEN: &str = "owners-test-token-0123456789";
const PORT: u16 = 9181;
/// The driver's owner tag: an Octavia load balancer's id.
const OWNER: &str = "octavia:5b3c9a3e-1f0d-4c1e-9d7a-2e8f6c1b0a11";

/// xdpathd in one side's namespace, on its Unix socket and on TCP (that
/// namespace's loopback) with a token.
fn start(bed: &TestBed, side: Side, name: &str) -> Daemon {
    let path = bed.side(side).path.clone();
    let token = std::env::temp_dir().join(format!("xdpathd-{name}-token-{}", std::process::id()));
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let enter = Box::new(move |program: &str| common::in_namespace(&path, program));
    let extra = [
        "--listen".to_string(),
        format!("127.0.0.1:{PORT}"),
        "--token-file".into(),
        token.display().to_string(),
    ];
    let daemon = Daemon::start(name, enter, &extra);
    let _ = std::fs::remove_file(token);
    daemon
}

/// A call as the driver makes it: TCP, bearer token, JSON.
fn driver(daemon: &Daemon, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let header = format!("Authorization: Bearer {TOKEN}");
    let url = format!("http://127.0.0.1:{PORT}{path}");
    let text = body.map(Value::to_string);
    daemon.curl(&["-H", &header], method, &url, text.as_deref(), true)
}

/// A driver call that must succeed; its body.
fn driver_ok(daemon: &Daemon, method: &str, path: &str, body: Option<&Value>) -> Value {
    let (status, value) = driver(daemon, method, path, body);
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {value}"
    );
    value
}

/// The balancer's settings, the same on every host of the fleet.
fn configure(daemon: &Daemon) {
    let settings = json!({
        "source_v4": "172.16.0.0/16",
        "source_v6": "fd00:172::/64",
        "seed": 42,
    });
    let answer = driver_ok(daemon, "PUT", "/v1/lb/config", Some(&settings));
    assert_eq!(answer["seed"], 42, "{answer}");
    let read = driver_ok(daemon, "GET", "/v1/lb/config", None);
    assert_eq!(read, answer);
    assert_eq!(read["next_hop"], "fib");
    let (status, error) = driver(
        daemon,
        "PUT",
        "/v1/lb/config",
        Some(&json!({ "source_v4": "2001:db8::/64" })),
    );
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (422, Some("invalid_source"))
    );
    assert_eq!(driver_ok(daemon, "GET", "/v1/lb/config", None), read);
}

#[test]
fn owner_documents_apply_whole_idempotently_and_alike_on_two_hosts() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let a = start(&bed, Side::A, "owners-a");
    let b = start(&bed, Side::B, "owners-b");
    configure(&a);
    configure(&b);
    documents::applied_again_changes_nothing(&bed, &a);
    documents::two_hosts_build_the_same_tables(&a, &b);
    checks::refused_documents_change_nothing(&a);
    checks::owner_names_and_conflicts(&a);
    checks::limits_of_their_own(&a);
    checks::single_object_routes(&a);
    checks::health_through_the_api(&bed, &a);
    documents::an_interrupted_call_is_finished(&bed, &b);
    documents::the_cli_applies_documents_through_the_daemon(&bed, &a);
    documents::deleting_an_owner_removes_what_it_made(&a);
    rules::rules_in_documents(&a);
    labels::labels_in_documents(&a);
}

#[test]
fn allowed_sources_and_vip_statistics_on_real_traffic() {
    xdpath_lab::needs_root!();
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed, Side::A, "owners-traffic");
    traffic::allow_lists_and_counters(&bed, &daemon);
}
