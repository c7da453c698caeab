//! tshark as the judge of what xdpath writes: decoding captures to JSON,
//! finding fields in the decode, and checking it for malformed-packet and
//! expert warnings.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// tshark (`command`: the program in a namespace) capturing `filter` on
/// `interface` into `path`, returned once it says it is capturing and its
/// capture filter is in place.
pub fn live_capture(mut command: Command, interface: &str, filter: &str, path: &Path) -> Child {
    let mut child = command
        .args(["-i", interface, "-f", filter, "-w"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tshark");
    let stderr = child.stderr.take().expect("tshark stderr");
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("Capturing on") => break,
            Some(Ok(_)) => continue,
            _ => panic!("tshark did not start capturing"),
        }
    }
    // Keep draining its stderr so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    // "Capturing on" can come a moment before the capture filter is in
    // place: an exporter's first datagram must not fall into that gap.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child
}

/// The packets tshark decodes from `path`, as JSON.
pub fn tshark(path: &Path, decode_as: &str) -> Vec<Value> {
    let output = Command::new("tshark")
        .env("TZ", "UTC")
        .args([
            "-n",
            "--no-duplicate-keys",
            "-T",
            "json",
            "-d",
            decode_as,
            "-r",
        ])
        .arg(path)
        .output()
        .expect("run tshark (is it installed?)");
    assert!(
        output.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if std::env::var_os("XDPATH_KEEP_PCAP").is_some() {
        std::fs::write(path.with_extension("json"), &output.stdout).unwrap();
    } else {
        let _ = std::fs::remove_file(path);
    }
    let json: Value = serde_json::from_slice(&output.stdout).expect("tshark JSON");
    json.as_array().expect("a packet array").clone()
}

/// Every value of `key` anywhere in `value` (an array value, which
/// `--no-duplicate-keys` makes of repeated keys, counts element by
/// element).
pub fn find_all<'a>(value: &'a Value, key: &str, found: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (name, inner) in map {
                if name == key {
                    match inner {
                        Value::Array(items) => found.extend(items.iter()),
                        _ => found.push(inner),
                    }
                }
                find_all(inner, key, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| find_all(item, key, found)),
        _ => {}
    }
}

/// The string values of `key` in `value`, in document order.
pub fn strings(value: &Value, key: &str) -> Vec<String> {
    let mut found = Vec::new();
    find_all(value, key, &mut found);
    found
        .iter()
        .filter_map(|value| value.as_str().map(str::to_owned))
        .collect()
}

/// The one string value of `key` in `value`.
pub fn one(value: &Value, key: &str) -> String {
    let values = strings(value, key);
    assert_eq!(values.len(), 1, "{key}: {values:?} in {value:#}");
    values[0].clone()
}

/// The objects in `value` that hold `key` directly, in document order.
pub fn objects_with<'a>(value: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut objects = Vec::new();
    fn walk<'a>(value: &'a Value, key: &str, objects: &mut Vec<&'a Value>) {
        match value {
            Value::Object(map) => {
                if map.contains_key(key) {
                    objects.push(value);
                }
                map.values().for_each(|inner| walk(inner, key, objects));
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, key, objects)),
            _ => {}
        }
    }
    walk(value, key, &mut objects);
    objects
}

/// Expert severities (epan/proto.h): chat 0x200000, note 0x400000,
/// warning 0x600000, error 0x800000.
pub const EXPERT_WARNING: u64 = 0x60_0000;

/// No malformed-packet marker and no expert warning or error anywhere.
pub fn assert_clean(packets: &[Value]) {
    for (index, packet) in packets.iter().enumerate() {
        let mut malformed = Vec::new();
        find_all(packet, "_ws.malformed", &mut malformed);
        assert!(malformed.is_empty(), "packet {index} malformed: {packet:#}");
        for severity in strings(packet, "_ws.expert.severity") {
            let severity: u64 = severity.parse().expect("numeric severity");
            assert!(
                severity < EXPERT_WARNING,
                "packet {index} has an expert warning: {packet:#}"
            );
        }
    }
}
