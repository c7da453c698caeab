//! A program loaded by an older build does not know the features newer
//! builds write into the shared maps (`xdpath_core::abi::feature`). With
//! one attached, a change needing such a feature is refused, whole, with
//! one line naming the interface, the feature and `xdpath reload`; what
//! the state already holds of them is a difference `state check` reports;
//! after `xdpath reload` both are gone.
//!
//! An older program is made as an older build leaves one: its attach pins
//! no `FEATURES` map, and its reload over this build's pins leaves the
//! word as it was, naming the program before.

use super::*;
use crate::common::json;
use aya::maps::{Array, Map, MapData};
use xdpath_core::abi;

const VIP: &str = "203.0.113.10:80/tcp";

/// The interface's feature word pin.
fn features_pin(bed: &TestBed) -> std::path::PathBuf {
    bed.a().interface_pin_dir().join(abi::map::FEATURES)
}

/// Writes the word `{features, program_id}` at the interface's pin.
fn write_word(bed: &TestBed, features: u64, program_id: u32) {
    let data = MapData::from_pin(features_pin(bed)).expect("the FEATURES pin");
    let mut array: Array<MapData, [u8; 16]> =
        Array::try_from(Map::Array(data)).expect("FEATURES is an array of 16-byte words");
    let mut word = [0u8; 16];
    word[..8].copy_from_slice(&features.to_ne_bytes());
    word[8..12].copy_from_slice(&program_id.to_ne_bytes());
    array.set(0, word, 0).expect("write the word");
}

/// Both state files, as bytes (absent: empty).
fn state_files(bed: &TestBed) -> (Vec<u8>, Vec<u8>) {
    let dir = bed.a().state_dir();
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_default();
    (read("filter.json"), read("lb.json"))
}

fn program_id(bed: &TestBed) -> u32 {
    let status = json(&xdpath_ok(bed, &["--json", "status"]));
    let id = status[0]["program_id"].as_u64().expect("a program id");
    u32::try_from(id).expect("a u32 id")
}

/// `state check` fails, naming the interface, the older program and each
/// feature in `features`, and the reload that fixes it.
fn gap_reported(bed: &TestBed, features: &[&str]) {
    let interface = &bed.a().interface;
    let output = xdpath(bed, &["state", "check"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "state check passed: {stdout}");
    let line = stdout
        .lines()
        .find(|line| line.contains("program: "))
        .unwrap_or_else(|| panic!("no program line in {stdout}"));
    assert!(
        line.contains(&format!(
            "{interface} runs a program loaded by an older xdpath"
        )) && line.contains(&format!("`xdpath reload {interface}` fixes it")),
        "{line}"
    );
    for feature in features {
        assert!(line.contains(feature), "{feature:?} in {line}");
    }
    // Only the program: the maps hold the saved state.
    assert_eq!(
        stdout.lines().filter(|line| line.starts_with("  ")).count(),
        1,
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`xdpath reload IFACE` replaces the older program"),
        "{stderr}"
    );
    // A repair cannot put it right, and says so.
    refused(
        bed,
        &["state", "check", "--repair"],
        "1 interface runs a program loaded by an older xdpath, which --repair cannot change",
    );
}

/// The calls that need a feature an older program lacks, with the feature
/// each names.
fn needing_calls() -> Vec<(Vec<String>, &'static str)> {
    let words = |text: &str| text.split(' ').map(str::to_string).collect::<Vec<_>>();
    vec![
        (
            words("filter add --src 10.8.0.0/16 --vni 1002 --action drop"),
            "rules and rate limits by VNI",
        ),
        (
            words("block add 10.7.0.0/16 --vni 1002"),
            "blocklist entries by VNI",
        ),
        (
            words("filter add --src 10.4.0.0/16 --proto icmp --icmp-type 8 --action drop"),
            "rules by ICMP type",
        ),
        (
            words("filter add --src 10.6.0.0/16 --action admit"),
            "the rule action admit",
        ),
        (
            words("ratelimit add --pps 100 --burst 200 --vni 1002"),
            "rules and rate limits by VNI",
        ),
        (
            words(&format!("lb vip allow {VIP} 198.51.100.0/24")),
            "per-VIP allow lists",
        ),
        (
            words("lb vip add 203.0.113.11:80/tcp --sample-rate 10"),
            "per-VIP sampling rates",
        ),
    ]
}

#[test]
fn an_older_program_is_refused_what_it_would_not_enforce_until_reloaded() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    attach(&bed);
    assert!(features_pin(&bed).exists(), "this build pins its word");
    xdpath_ok(
        &bed,
        &[
            "filter",
            "add",
            "--src",
            "10.9.0.0/16",
            "--vni",
            "1001",
            "--action",
            "drop",
        ],
    );
    balancer_config(&bed);
    xdpath_ok(&bed, &["lb", "vip", "add", VIP]);
    xdpath_ok(&bed, &["state", "check"]);
    let first_program = program_id(&bed);

    // An older build's attach: no word.
    std::fs::remove_file(features_pin(&bed)).expect("remove the FEATURES pin");
    let before = state_files(&bed);
    for (args, feature) in needing_calls() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(
            &bed,
            &args,
            &format!(
                "{interface} runs a program loaded by an older xdpath, which does not enforce {feature}"
            ),
        );
        refused(
            &bed,
            &args,
            &format!("run `xdpath reload {interface}` first"),
        );
    }
    // A config file is refused whole, before its interfaces change.
    let config = bed.a().state_dir().join("test-older-program.toml");
    std::fs::write(
        &config,
        format!(
            "[[interface]]\nname = \"{interface}\"\nmode = \"generic\"\n\n[filter]\n\
             default = \"pass\"\n\n[[filter.rule]]\nid = 7\nsrc = \"10.7.0.0/16\"\n\
             vni = 1001\naction = \"drop\"\n"
        ),
    )
    .expect("write the config");
    let status_before = xdpath_ok(&bed, &["--json", "status"]);
    let apply = ["apply", "-f", &config.display().to_string()];
    refused(
        &bed,
        &apply,
        &format!("{interface} runs a program loaded by an older xdpath"),
    );
    let stderr = String::from_utf8_lossy(&xdpath(&bed, &apply).stderr).into_owned();
    assert!(
        !stderr.contains("restored"),
        "refused before any change, not undone: {stderr}"
    );
    assert_eq!(
        xdpath_ok(&bed, &["--json", "status"]),
        status_before,
        "the refused config changed the interface"
    );
    assert!(
        state_files(&bed) == before,
        "a refusal changed a state file"
    );
    gap_reported(&bed, &["rules and rate limits by VNI"]);
    let status = json(&xdpath_ok(&bed, &["--json", "status"]));
    let older = status[0]["older_program"].as_str().unwrap_or_default();
    assert!(older.contains("per-VIP allow lists"), "{status}");
    // What needs nothing new is not refused.
    xdpath_ok(
        &bed,
        &["filter", "add", "--src", "10.5.0.0/16", "--action", "drop"],
    );

    // The reload puts this build's program there: everything goes in.
    xdpath_ok(&bed, &["reload", &interface]);
    xdpath_ok(&bed, &["state", "check"]);
    for (args, _) in needing_calls() {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        xdpath_ok(&bed, &args);
    }
    xdpath_ok(&bed, &["state", "check"]);
    let status = json(&xdpath_ok(&bed, &["--json", "status"]));
    assert!(status[0]["older_program"].is_null(), "{status}");

    // An older build's reload leaves this build's word as it was, naming
    // the program before: it says nothing of the program that runs.
    assert_ne!(program_id(&bed), first_program);
    write_word(&bed, u64::MAX, first_program);
    gap_reported(
        &bed,
        &[
            "rules and rate limits by VNI",
            "blocklist entries by VNI",
            "rules by ICMP type",
            "the rule action admit",
            "per-VIP allow lists",
            "per-VIP sampling rates",
            "dropping the frames the filter cannot judge",
            "judging the packets xdpath decap strips on their inner headers",
        ],
    );
    xdpath_ok(&bed, &["reload", &interface]);
    xdpath_ok(&bed, &["state", "check"]);
}

/// The namespace's new-flow table, as its pin opens it.
fn new_flow_table(bed: &TestBed) -> Array<MapData, [u8; 16]> {
    let pin = bed
        .a()
        .pin_dir()
        .join(":shared")
        .join(abi::map::NEW_FLOW_TABLE);
    let data = MapData::from_pin(pin).expect("the NEW_FLOW_TABLE pin");
    Array::try_from(Map::Array(data)).expect("NEW_FLOW_TABLE is an array of 16-byte slots")
}

/// A balancer whose new-flow table has no seed — its map made after the
/// balancer was installed, as an upgrade's reload over an older build's
/// pins leaves it — records no SYN: `state check` names that, and the
/// repair seeds the table.
#[test]
fn an_unseeded_new_flow_table_is_a_difference_and_repaired() {
    xdpath_lab::needs_root!();
    let bed = bed();
    attach(&bed);
    balancer_config(&bed);
    xdpath_ok(&bed, &["lb", "vip", "add", VIP]);
    xdpath_ok(&bed, &["lb", "backend", "add", VIP, "10.0.0.1"]);
    xdpath_ok(&bed, &["state", "check"]);
    let seed_slot = xdpath_core::lb::NEW_FLOW_SEED;
    let seed = |bed: &TestBed| new_flow_table(bed).get(&seed_slot, 0).expect("seed entry");
    assert_ne!(seed(&bed), [0u8; 16], "the install seeded the table");

    new_flow_table(&bed)
        .set(seed_slot, [0u8; 16], 0)
        .expect("clear the seed");
    let check = xdpath(&bed, &["state", "check"]);
    assert!(!check.status.success(), "{}", text(&check));
    assert!(
        text(&check).contains("new-flow table: no seed"),
        "{}",
        text(&check)
    );
    let repaired = xdpath_ok_warned(&bed, &["state", "check", "--repair"]);
    assert!(repaired.contains("new-flow table: no seed"), "{repaired}");
    assert_ne!(seed(&bed), [0u8; 16], "the repair seeded the table");
    xdpath_ok(&bed, &["state", "check"]);
}

/// The namespace's backend table, as its pin opens it (entries as bytes:
/// `xdpath_core::lb::Backend`, its flags at byte 21).
fn backend_table(bed: &TestBed) -> Array<MapData, [u8; 24]> {
    let pin = bed.a().pin_dir().join(":shared").join(abi::map::BACKENDS);
    let data = MapData::from_pin(pin).expect("the BACKENDS pin");
    Array::try_from(Map::Array(data)).expect("BACKENDS is an array of 24-byte entries")
}

/// The slots of the backend table whose entry has `flag` set.
fn backends_flagged(bed: &TestBed, flag: u8) -> Vec<u32> {
    let table = backend_table(bed);
    (0..xdpath_core::lb::MAX_BACKENDS)
        .filter(|slot| table.get(slot, 0).is_ok_and(|entry| entry[21] & flag != 0))
        .collect()
}

/// A drained backend's entry as an older build wrote it (no
/// `BACKEND_OUT_OF_RING`, a byte it left reserved) is a difference, and
/// the upgrade's `xdpath reload` rewrites it as this build does: the new
/// program does not run on the older entries until the next change.
#[test]
fn a_reload_rewrites_the_entries_an_older_build_wrote() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    attach(&bed);
    balancer_config(&bed);
    xdpath_ok(&bed, &["lb", "vip", "add", VIP]);
    xdpath_ok(&bed, &["lb", "backend", "add", VIP, "10.0.0.1"]);
    xdpath_ok(&bed, &["lb", "backend", "add", VIP, "10.0.0.2"]);
    xdpath_ok(&bed, &["lb", "backend", "set-weight", VIP, "10.0.0.2", "0"]);
    let out_of_ring = xdpath_core::lb::BACKEND_OUT_OF_RING;
    let drained = backends_flagged(&bed, out_of_ring);
    assert_eq!(drained.len(), 1, "the drained backend is flagged");
    xdpath_ok(&bed, &["state", "check"]);

    let mut table = backend_table(&bed);
    let slot = drained[0];
    let mut entry = table.get(&slot, 0).expect("the drained backend's entry");
    entry[21] &= !out_of_ring;
    table.set(slot, entry, 0).expect("write the older entry");
    let check = xdpath(&bed, &["state", "check"]);
    assert!(!check.status.success(), "{}", text(&check));
    let difference = "backends: 1 of the state's 2 differ in the kernel";
    assert!(text(&check).contains(difference), "{}", text(&check));

    let reloaded = json(&xdpath_ok(&bed, &["--json", "reload", &interface]));
    let installed = reloaded["installed"].as_array().expect("installed lines");
    assert!(
        installed
            .iter()
            .any(|line| line.as_str().is_some_and(|line| line.contains(difference))),
        "{reloaded}"
    );
    assert_eq!(
        backends_flagged(&bed, out_of_ring),
        drained,
        "flag rewritten"
    );
    xdpath_ok(&bed, &["state", "check"]);
    // Nothing left to install: a second reload installs nothing.
    let again = xdpath_ok(&bed, &["reload", &interface]);
    assert!(
        again.starts_with(&format!("reloaded {interface}: program ")),
        "{again}"
    );
    assert_eq!(again.lines().count(), 1, "{again}");
}
