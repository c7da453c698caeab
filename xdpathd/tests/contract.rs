//! The API's contract, checked by third-party tools against a real daemon:
//! `openapi-spec-validator` on `openapi.json`; `schemathesis run` with every
//! check (`--checks all`) against an xdpathd serving a test bed's namespace
//! on its loopback, with a token, over a state with a rule, a limit, a
//! blocked prefix, VIPs with backends, a health check and an owner (so the
//! lists it reads are not empty), which must find nothing; and `promtool
//! check metrics` on that daemon's `/metrics`, which must be clean.
//!
//! Every change schemathesis makes lands in the bed's namespace, which the
//! bed removes. The tools come from the venv `scripts/setup.sh` makes
//! (`XDPATH_TOOLS_VENV`, by default `/var/lib/xdpath-tools/venv`) and
//! Debian's prometheus package.
//!
//! Needs root, curl, the venv and promtool.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use xdpath_lab::testenv::{Side, TestBed};

use common::Daemon;

const TOKEN: &str = "contract-test-token-0123456789";
const PORT: u16 = 9184;
/// The document as the repository (and the daemon, which embeds it) has it.
const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
/// schemathesis' settings: what it may expect, with the reasons.
const SETTINGS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/contract/schemathesis.toml"
);

/// The program `name` of the tools venv; `None` (after saying why on
/// stderr) when the venv lacks it and a missing tool may skip the test,
/// which it may not where `CI` or `XDPATH_REQUIRE_ROOT=1` is set.
fn tool(test: &str, name: &str) -> Option<PathBuf> {
    let venv = std::env::var_os("XDPATH_TOOLS_VENV").map_or_else(
        || PathBuf::from("/var/lib/xdpath-tools/venv"),
        PathBuf::from,
    );
    let program = venv.join("bin").join(name);
    if program.exists() {
        return Some(program);
    }
    let required = std::env::var_os("CI").is_some_and(|value| !value.is_empty())
        || std::env::var_os("XDPATH_REQUIRE_ROOT").is_some_and(|value| value == "1");
    assert!(
        !required,
        "{test}: {} is missing: run scripts/setup.sh",
        program.display()
    );
    eprintln!(
        "skipped: {test}: {} is missing (scripts/setup.sh makes it)",
        program.display()
    );
    None
}

#[test]
fn the_document_is_valid_openapi() {
    let Some(validator) = tool("the_document_is_valid_openapi", "openapi-spec-validator") else {
        return;
    };
    let output = Command::new(validator)
        .arg(DOCUMENT)
        .output()
        .expect("openapi-spec-validator");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(": OK"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn start(bed: &TestBed) -> Daemon {
    let path = bed.a().path.clone();
    let token = std::env::temp_dir().join(format!("xdpathd-contract-token-{}", std::process::id()));
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let enter = Box::new(move |program: &str| xdpath_lab::testenv::nsenter(&path, program));
    let extra = [
        "--listen".to_string(),
        format!("127.0.0.1:{PORT}"),
        "--token-file".into(),
        token.display().to_string(),
    ];
    let daemon = Daemon::start("contract", enter, &extra);
    let _ = std::fs::remove_file(token);
    daemon
}

/// A state with something in every list: xdpath on the bed's interface
/// (every frame sampled, exported, ranked and watched for floods), a
/// rule, a limit, a blocked prefix, VIPs with backends (one with a health
/// check), an owner's VIP, and top talkers from pings.
fn seed(bed: &TestBed, daemon: &Daemon) {
    let interface = &bed.a().interface;
    // The exporters send to B, where nothing listens; mitigation only
    // reports (dry run), so nothing schemathesis does is blocked.
    let config = format!(
        "[[interface]]\nname = \"{interface}\"\nsample_rate = 1\n\n\
         [[filter.rule]]\nid = 7\nsrc = [\"198.18.0.0/15\"]\naction = \"drop\"\n\n\
         [export.sflow]\ncollectors = [\"{b}:6343\"]\n\n[export.ipfix]\ncollectors = [\"{b}:4739\"]\n\n\
         [analytics]\ntop_window = \"60s\"\n\n\
         [mitigation]\nthreshold_pps = 1000000\ndry_run = true\nexempt = [\"10.0.0.0/8\"]\n\n\
         [lb]\nsource_v4 = \"172.16.0.0/16\"\n\n[[lb.vip]]\nvip = \"203.0.113.20:443/tcp\"\n\n\
         [[lb.vip.backend]]\naddress = \"10.0.0.7\"\nweight = 4\n",
        b = bed.b().ipv4,
    );
    let (status, applied) = daemon.post_config("/v1/config", &config, "application/toml");
    assert_eq!(status, 200, "{applied}");
    for (method, path, body) in [
        (
            "POST",
            "/v1/ratelimits",
            r#"{"pps":"1000","scope":"198.51.100.0/24"}"#,
        ),
        (
            "POST",
            "/v1/blocklist",
            r#"{"prefix":"192.0.2.0/24","ttl":"1h"}"#,
        ),
        ("POST", "/v1/vips", r#"{"vip":"203.0.113.10:80/tcp"}"#),
        (
            "POST",
            "/v1/backends",
            r#"{"vip":"203.0.113.10:80/tcp","address":"10.0.0.2"}"#,
        ),
        (
            "PUT",
            "/v1/vips/health",
            r#"{"vip":"203.0.113.10:80/tcp","kind":"tcp"}"#,
        ),
        (
            "PUT",
            "/v1/owners/tenant-a",
            r#"{"vips":[{"vip":"203.0.113.30:80/tcp"}],
                "backends":[{"vip":"203.0.113.30:80/tcp","address":"10.0.0.30"}]}"#,
        ),
    ] {
        daemon.ok(method, path, Some(body));
    }
    // Sampled traffic, so the top talkers and the exporters' counts are
    // not empty.
    let a = bed.a().ipv4.to_string();
    bed.exec_ok(
        Side::B,
        "ping",
        ["-c", "20", "-i", "0.01", "-q", a.as_str()],
    )
    .expect("ping from B");
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while daemon.ok("GET", "/v1/top", None)["sources"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "no top talkers");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// schemathesis, every check, from the daemon's namespace, in `dir` (it
/// keeps a cache in its working directory: not in the source tree); its
/// output.
fn schemathesis(bed: &TestBed, program: &Path, dir: &Path) -> (bool, String) {
    let output = bed
        .command(Side::A, program)
        .current_dir(dir)
        .args(["--config-file", SETTINGS, "run", DOCUMENT])
        .arg(format!("--url=http://127.0.0.1:{PORT}"))
        .arg(format!("--header=Authorization: Bearer {TOKEN}"))
        .args(["--checks", "all", "--max-examples", "15", "--workers", "1"])
        .args(["--generation-database", "none", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .stdin(Stdio::null())
        .output()
        .expect("schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// `promtool check metrics` on the daemon's `/metrics`: its findings.
fn promtool_findings(daemon: &Daemon) -> String {
    let socket = daemon.socket().display().to_string();
    let (status, text) = daemon.curl(
        &["--unix-socket", &socket],
        "GET",
        "http://localhost/metrics",
        None,
        false,
    );
    assert_eq!(status, 200);
    let text = text.as_str().expect("metrics are text").to_string();
    assert!(text.contains("xdpath_packets_total"), "{text}");
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus; scripts/setup.sh installs it)");
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(text.as_bytes()).expect("promtool's stdin");
    }
    let output = child.wait_with_output().expect("promtool");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        findings
    } else {
        format!("promtool failed ({}): {findings}", output.status)
    }
}

#[test]
fn schemathesis_and_promtool_find_nothing() {
    xdpath_lab::needs_root!();
    let Some(program) = tool("schemathesis_and_promtool_find_nothing", "schemathesis") else {
        return;
    };
    let bed = TestBed::new().expect("bed");
    let daemon = start(&bed);
    seed(&bed, &daemon);
    assert_eq!(
        promtool_findings(&daemon).trim(),
        "",
        "promtool check metrics"
    );
    let started = Instant::now();
    let (passed, output) = schemathesis(&bed, &program, &daemon.dir);
    eprintln!("schemathesis took {:.0?}", started.elapsed());
    assert!(passed, "schemathesis found problems:\n{output}");
    // "Test cases:" then "N generated, N passed": every case passed, and
    // there were some.
    let cases = output
        .lines()
        .skip_while(|line| !line.starts_with("Test cases:"))
        .nth(1)
        .unwrap_or_default()
        .trim();
    let counts: Vec<u64> = cases
        .split([' ', ','])
        .filter_map(|word| word.parse().ok())
        .collect();
    assert!(
        counts.len() == 2 && counts[0] == counts[1] && counts[0] > 100,
        "schemathesis: {cases:?}, expected N generated, N passed:\n{output}"
    );
    eprintln!("schemathesis: {cases}");
    // After the run too: whatever schemathesis made is still metrics
    // promtool takes.
    assert_eq!(
        promtool_findings(&daemon).trim(),
        "",
        "promtool after the run"
    );
    let log = daemon.log();
    assert!(!log.contains("panicked"), "{log}");
}
