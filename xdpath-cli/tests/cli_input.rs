//! Unbounded and hostile input (issue 14, item 10): `filter load
//! /dev/zero`, `apply -f /dev/zero` and a FIFO are refused at once, files
//! over the size or line limits are refused naming the limit, a 10 MB bad
//! line is not echoed, and input holding newlines, NULs or escapes is
//! quoted short and escaped: every error stays one line. And names that
//! reach pin paths are checked (`detach ..` would remove every
//! namespace's pins, `detach :shared` this namespace's shared maps).
//!
//! Every command runs in namespace A of its own test bed (needs root).

mod common;

use std::io::Write;
use std::path::PathBuf;

use common::cli::{one_error, run_in, QUICK};
use common::{bed, xdpath_ok};
use serde_json::Value;
use xdpath_lab::testenv::{Side, TestBed};

/// A file of the test, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(bed: &TestBed, name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "xdpath-cli-input-{}-{}-{name}",
            std::process::id(),
            bed.number()
        ));
        let _ = std::fs::remove_file(&path);
        Self(path)
    }

    fn with(bed: &TestBed, name: &str, contents: &[u8]) -> Self {
        let file = Self::new(bed, name);
        let mut handle = std::fs::File::create(&file.0).expect("create");
        handle.write_all(contents).expect("write");
        file
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn fifo(bed: &TestBed) -> TempFile {
    let file = TempFile::new(bed, "fifo");
    let name = std::ffi::CString::new(file.path()).expect("path");
    // SAFETY: mkfifo reads a valid C string.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
    file
}

/// Each case (arguments, what its error must say) fails with exit status
/// 1 and one `xdpath: error:` line that says it, under 300 bytes.
fn each_refused_in_one_short_line(bed: &TestBed, cases: &[(Vec<&str>, Vec<&str>)]) {
    for (args, needles) in cases {
        let run = run_in(bed, Side::A, args, QUICK);
        let line = one_error(&run, 1, needles);
        assert!(line.len() < 300, "{args:?}: {} bytes of error", line.len());
    }
}

fn rules(bed: &TestBed) -> Value {
    serde_json::from_str(&xdpath_ok(bed, &["filter", "list", "--json"])).expect("JSON")
}

#[test]
fn devices_and_fifos_are_refused_at_once() {
    xdpath_lab::needs_root!();
    let bed = bed();
    xdpath_ok(
        &bed,
        &["filter", "add", "--src", "10.0.0.0/8", "--action", "drop"],
    );
    let before = rules(&bed);
    let fifo = fifo(&bed);
    let good = TempFile::with(&bed, "good.pcap", b"");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["filter", "load", "/dev/zero"],
            "it is a character device, not a regular file",
        ),
        (
            vec!["filter", "load", fifo.path()],
            "it is a FIFO, not a regular file",
        ),
        (vec!["filter", "load", "/tmp"], "it is a directory"),
        (vec!["apply", "-f", "/dev/zero"], "it is a character device"),
        (vec!["plan", "-f", "/dev/zero"], "it is a character device"),
        (vec!["apply", "-f", fifo.path()], "it is a FIFO"),
        (vec!["plan", "-f", fifo.path()], "it is a FIFO"),
        (vec!["replay", fifo.path()], "it is a FIFO"),
        (vec!["replay", "/dev/zero"], "it is a character device"),
        (
            vec!["replay", good.path(), "--rules", fifo.path()],
            "it is a FIFO",
        ),
        (
            vec!["replay", good.path(), "--rules", "/dev/urandom"],
            "character device",
        ),
        (
            vec!["bench", "--object", "/dev/zero"],
            "it is a character device",
        ),
    ];
    for (args, needle) in cases {
        let run = run_in(&bed, Side::A, &args, QUICK);
        one_error(&run, 1, &[needle]);
        assert!(run.elapsed < QUICK, "{args:?} took {:?}", run.elapsed);
    }
    assert_eq!(rules(&bed), before, "the rules are untouched");
}

#[test]
fn files_over_the_limits_are_refused_naming_the_limit() {
    xdpath_lab::needs_root!();
    let bed = bed();
    xdpath_ok(
        &bed,
        &["filter", "add", "--src", "10.0.0.0/8", "--action", "drop"],
    );
    let before = rules(&bed);
    // Sparse: the size is refused before a byte is read.
    let huge_rules = TempFile::new(&bed, "huge.rules");
    std::fs::File::create(&huge_rules.0)
        .and_then(|file| file.set_len((256 << 20) + 1))
        .expect("sparse file");
    let huge_config = TempFile::new(&bed, "huge.toml");
    std::fs::File::create(&huge_config.0)
        .and_then(|file| file.set_len((64 << 20) + 1))
        .expect("sparse file");
    let mut long_line = b"192.0.2.0/24\n".to_vec();
    long_line.extend(std::iter::repeat_n(b'x', 10 << 20));
    long_line.push(b'\n');
    let long_line = TempFile::with(&bed, "long.rules", &long_line);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["filter", "load", huge_rules.path()],
            vec!["larger than the limit of 256 MiB"],
        ),
        (
            vec!["replay", "/dev/null", "--rules", huge_rules.path()],
            vec!["256 MiB"],
        ),
        (
            vec!["apply", "-f", huge_config.path()],
            vec!["larger than the limit of 64 MiB"],
        ),
        (
            vec!["filter", "load", long_line.path()],
            vec!["line 2 is longer than the limit of 4096 bytes"],
        ),
    ];
    each_refused_in_one_short_line(&bed, &cases);
    assert_eq!(rules(&bed), before, "the rules are untouched");
}

#[test]
fn input_is_quoted_short_and_escaped() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    let before = rules(&bed);
    let token = "1".repeat(4000);
    let bad_token = TempFile::with(
        &bed,
        "token.rules",
        format!("--src {token} --action drop\n").as_bytes(),
    );
    let nul = TempFile::with(&bed, "nul.rules", b"10.0.0.0/8\n10.1.0.0/16\0\x1b[2J\n");
    let forged = "10.0.0.0/8\nxdpath: error: forged";
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["filter", "load", bad_token.path()],
            vec!["line 1: invalid CIDR \"1111", "…\" (4000 bytes)"],
        ),
        (
            vec!["filter", "load", nul.path()],
            vec!["line 2: invalid CIDR \"10.1.0.0/16\\0\\u{1b}[2J\""],
        ),
        (
            vec!["filter", "add", "--src", forged, "--action", "drop"],
            vec!["invalid CIDR \"10.0.0.0/8\\nxdpath: error: forged\""],
        ),
        (
            vec!["block", "add", "1.2.3.4\n"],
            vec!["invalid CIDR \"1.2.3.4\\n\""],
        ),
        (
            vec!["attach", "eth0\nxdpath: error: forged"],
            vec!["\"eth0\\nxdpath: error: forged\" is not a valid interface name"],
        ),
        (
            vec!["stats", "a\tb"],
            vec!["\"a\\tb\" is not a valid interface name"],
        ),
        (
            vec!["lb", "vip", "add", "203.0.113.10:80/tcp\nx"],
            vec!["invalid VIP \"203.0.113.10:80/tcp\\nx\""],
        ),
        (
            vec!["sample", &interface, "1\n0"],
            vec!["sampling rate \"1\\n0\""],
        ),
        (
            vec!["filter", "del", &token],
            vec!["invalid id \"1111", "(4000 bytes)"],
        ),
    ];
    each_refused_in_one_short_line(&bed, &cases);
    assert_eq!(rules(&bed), before, "the rules are untouched");
}

#[test]
fn names_that_are_not_interfaces_never_reach_a_pin_path() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface]);
    xdpath_ok(
        &bed,
        &["filter", "add", "--src", "10.0.0.0/8", "--action", "drop"],
    );
    let pins = bed.a().pin_dir();
    let shared = pins.join(":shared");
    assert!(shared.is_dir(), "the shared maps are pinned");
    for name in ["..", ".", ":shared", "a/../..", "sixteen-chars-xx"] {
        for command in ["detach", "reload", "stats"] {
            let run = run_in(&bed, Side::A, &[command, name], QUICK);
            one_error(&run, 1, &[]);
            assert!(
                shared.is_dir(),
                "{command} {name:?} removed the shared maps"
            );
            assert!(
                pins.join(&interface).is_dir(),
                "{command} {name:?} removed {interface}'s pins"
            );
        }
    }
    let status: Value =
        serde_json::from_str(&xdpath_ok(&bed, &["status", "--json"])).expect("JSON");
    assert_eq!(status[0]["healthy"], true, "{status}");
    assert_eq!(rules(&bed)["rules"].as_array().map(Vec::len), Some(1));
}
