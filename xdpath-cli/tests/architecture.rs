//! The shape of the code, checked: inside each crate no two modules import
//! each other (a parent and its own child may: they are one feature), and
//! the library (`xdpath`) neither prints nor parses a command line (clap
//! only behind its `clap` feature, for the CLI to parse into the request
//! types). Pure: reads the sources, needs no root.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates whose modules are checked, by source root.
const CRATES: [&str; 7] = [
    "xdpath-core/src",
    "xdpath-ebpf/src",
    "xdpath/src",
    "xdpath-cli/src",
    "xdpath-lab/src",
    "xdpath-testing/src",
    "xdpathd/src",
];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("reading {}: {error}", directory.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

type ModulePath = Vec<String>;

/// `a/b.rs` and `a/b/mod.rs` are module `a::b`; `lib.rs`/`main.rs` the root.
fn module_of(root: &Path, file: &Path) -> ModulePath {
    let relative = file.strip_prefix(root).expect("a file under its root");
    let mut path: ModulePath = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(
        path.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        path.pop();
    }
    path
}

/// The code of a file without its comments and its unit tests (a test
/// module may import what it likes).
fn code_of(text: &str) -> String {
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    match code.find("#[cfg(test)]\nmod tests") {
        Some(start) => code[..start].to_string(),
        None => code,
    }
}

/// Every `crate::a::b…` and `super::…::a` path in `code`, as written.
fn paths_in(code: &str) -> Vec<(usize, Vec<String>)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let before = start
            .checked_sub(1)
            .and_then(|index| bytes.get(index))
            .copied();
        if before.is_some_and(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':') {
            continue;
        }
        let tail = &code[start..];
        let end = tail
            .find(|character: char| {
                !(character.is_ascii_alphanumeric() || "_:".contains(character))
            })
            .unwrap_or(tail.len());
        let segments: Vec<String> = tail[..end]
            .split("::")
            .filter(|segment| !segment.is_empty())
            .map(str::to_string)
            .collect();
        let supers = segments
            .iter()
            .take_while(|segment| *segment == "super")
            .count();
        if segments.first().map(String::as_str) == Some("crate") {
            found.push((usize::MAX, segments[1..].to_vec()));
        } else {
            found.push((supers, segments[supers..].to_vec()));
        }
    }
    found
}

/// The module graph of one crate: each module and the modules it names.
fn imports(root: &Path) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let modules: BTreeMap<ModulePath, PathBuf> = files
        .iter()
        .map(|file| (module_of(root, file), file.clone()))
        .collect();
    let longest_module = |path: &[String]| -> Option<ModulePath> {
        (1..=path.len())
            .rev()
            .map(|length| path[..length].to_vec())
            .find(|candidate| modules.contains_key(candidate))
    };
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("a readable source");
        let mut named = BTreeSet::new();
        for (supers, rest) in paths_in(&code_of(&text)) {
            let mut full = if supers == usize::MAX {
                Vec::new()
            } else {
                module[..module.len().saturating_sub(supers)].to_vec()
            };
            full.extend(rest);
            if let Some(target) = longest_module(&full) {
                if &target != module {
                    named.insert(target);
                }
            }
        }
        graph.insert(module.clone(), named);
    }
    graph
}

fn nested(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[test]
fn no_two_modules_of_a_crate_import_each_other() {
    let mut cycles = Vec::new();
    let mut modules = 0;
    for crate_root in CRATES {
        let graph = imports(&repository().join(crate_root));
        modules += graph.len();
        for (module, named) in &graph {
            for other in named {
                let back = graph
                    .get(other)
                    .is_some_and(|theirs| theirs.contains(module));
                if module < other && back && !nested(module, other) {
                    cycles.push(format!(
                        "{crate_root}: {} <-> {}",
                        module.join("::"),
                        other.join("::")
                    ));
                }
            }
        }
    }
    assert!(modules > 150, "the walk found the modules ({modules})");
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let code =
        "use super::plan::Plan;\nfn f() { crate::config::apply::run(); }\n// crate::ignored\n";
    let paths = paths_in(&code_of(code));
    assert_eq!(
        paths,
        vec![
            (
                usize::MAX,
                vec!["config".into(), "apply".into(), "run".into()]
            ),
            (1, vec!["plan".into(), "Plan".into()]),
        ]
    );
    assert!(nested(&["a".into()], &["a".into(), "b".into()]));
    assert!(!nested(
        &["a".into(), "c".into()],
        &["a".into(), "b".into()]
    ));
}

#[test]
fn the_library_neither_prints_nor_parses_a_command_line() {
    let root = repository().join("xdpath/src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut findings = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a readable source");
        let name = file.strip_prefix(&root).expect("under the root").display();
        for (number, line) in code_of(&text).lines().enumerate() {
            let printing = [
                "println!",
                "eprintln!",
                "print!(",
                "eprint!(",
                "stdout()",
                "stderr()",
            ]
            .iter()
            .any(|macro_name| line.contains(macro_name));
            // The logger the front ends install is where the library's
            // warnings reach a person.
            if printing && !file.ends_with("report.rs") {
                findings.push(format!("{name}:{}: prints: {}", number + 1, line.trim()));
            }
            if line.contains("clap") && !line.contains("cfg_attr(feature = \"clap\"") {
                findings.push(format!("{name}:{}: clap: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        files.len() > 100,
        "the walk found the library ({})",
        files.len()
    );
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}

/// Source files stay small enough to hold in one's head.
const MAX_FILE_LINES: usize = 520;

#[test]
fn no_source_file_is_longer_than_a_reader_can_hold() {
    let mut files = Vec::new();
    for root in CRATES
        .iter()
        .chain(&["xdpath-cli/tests", "xdpathd/tests", "fuzz"])
    {
        rust_files(&repository().join(root), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter(|file| !file.components().any(|part| part.as_os_str() == "target"))
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).ok()?.lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(
        files.len() > 300,
        "the walk found the tree ({})",
        files.len()
    );
    assert!(
        long.is_empty(),
        "over {MAX_FILE_LINES} lines:\n{}",
        long.join("\n")
    );
}
