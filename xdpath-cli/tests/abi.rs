//! The eBPF ↔ user-space contract is written once, in `xdpath_core::abi`:
//! the built objects hold exactly the maps and programs it names, and no
//! map name is spelled as a string literal anywhere else in the tree.
//! Pure: reads the embedded objects and the sources, needs no root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use xdpath::objects;
use xdpath_core::abi;

fn object_maps(object: &[u8]) -> BTreeSet<String> {
    let parsed = aya_obj::Object::parse(object).expect("the embedded object parses");
    parsed.maps.keys().cloned().collect()
}

fn object_programs(object: &[u8]) -> BTreeSet<String> {
    let parsed = aya_obj::Object::parse(object).expect("the embedded object parses");
    parsed.programs.keys().cloned().collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| (*name).to_owned()).collect()
}

#[test]
fn each_object_holds_exactly_the_maps_the_contract_names() {
    let cases: [(&str, &[u8], &[&str]); 6] = [
        ("xdpath", objects::XDPATH, &abi::MAIN_OBJECT_MAPS),
        ("xdpath-xsk", objects::XSK, &abi::XSK_OBJECT_MAPS),
        (
            "xdpath-redirect",
            objects::REDIRECT,
            &abi::REDIRECT_OBJECT_MAPS,
        ),
        ("xdpath-flood", objects::FLOOD, &abi::FLOOD_OBJECT_MAPS),
        ("xdpath-empty", objects::EMPTY, &[]),
        ("xdpath-reflb", objects::REFLB, &abi::REFLB_OBJECT_MAPS),
    ];
    for (object, bytes, expected) in cases {
        assert_eq!(
            object_maps(bytes),
            names(expected),
            "maps of {object}.bpf.o"
        );
    }
}

#[test]
fn shared_and_reused_maps_are_maps_of_the_main_object() {
    let main = names(&abi::MAIN_OBJECT_MAPS);
    for name in abi::SHARED_MAPS.iter().chain(&abi::INTERFACE_REUSED_MAPS) {
        assert!(main.contains(*name), "{name} is not a map of xdpath.bpf.o");
    }
    let shared = names(&abi::SHARED_MAPS);
    assert_eq!(
        shared.len(),
        abi::SHARED_MAPS.len(),
        "SHARED_MAPS lists a map twice"
    );
    for name in abi::INTERFACE_REUSED_MAPS {
        assert!(
            !shared.contains(name),
            "{name} is both shared and per interface"
        );
    }
}

#[test]
fn each_object_holds_the_programs_the_contract_names() {
    let main = object_programs(objects::XDPATH);
    for program in [
        abi::program::XDPATH,
        abi::program::FILTER,
        abi::program::SYNCOOKIE,
        abi::program::BALANCE,
        abi::program::FORWARD,
        abi::program::STEER,
        abi::program::DECAPSULATED,
        abi::program::TOO_BIG,
        abi::program::LIMITS,
    ] {
        assert!(
            main.contains(program),
            "xdpath.bpf.o has no program {program}: {main:?}"
        );
    }
    assert_eq!(
        main.len(),
        abi::stage::SLOTS as usize + 1,
        "one entry point and one program per stage slot: {main:?}"
    );
    for (bytes, program) in [
        (objects::EMPTY, abi::program::EMPTY),
        (objects::XSK, abi::program::XSK),
        (objects::REDIRECT, abi::program::REDIRECT),
        (objects::FLOOD, abi::program::FLOOD),
        (objects::REFLB, abi::program::REFLB),
    ] {
        assert_eq!(object_programs(bytes), names(&[program]));
    }
}

fn rust_sources(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("a source dir reads");
    for entry in entries {
        let path = entry.expect("a dir entry").path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | "testdata") {
                rust_sources(&path, found);
            }
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
}

#[test]
fn no_map_name_is_a_string_literal_outside_the_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let contract = root
        .join("xdpath-core/src/abi.rs")
        .canonicalize()
        .expect("abi.rs exists");
    let mut sources = Vec::new();
    rust_sources(&root, &mut sources);
    assert!(
        sources.len() > 100,
        "the walk found the tree ({} files)",
        sources.len()
    );
    let every_map: Vec<&str> = abi::MAIN_OBJECT_MAPS
        .iter()
        .chain(&abi::XSK_OBJECT_MAPS)
        .chain(&abi::REDIRECT_OBJECT_MAPS)
        .chain(&abi::FLOOD_OBJECT_MAPS)
        .chain(&abi::REFLB_OBJECT_MAPS)
        .copied()
        .collect();
    let mut findings = Vec::new();
    for path in sources {
        if path.canonicalize().ok().as_deref() == Some(contract.as_path()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source reads");
        for name in &every_map {
            if text.contains(&format!("\"{name}\"")) {
                findings.push(format!("{}: \"{name}\"", path.display()));
            }
        }
    }
    assert!(
        findings.is_empty(),
        "map names spelled outside abi.rs:\n{}",
        findings.join("\n")
    );
}
