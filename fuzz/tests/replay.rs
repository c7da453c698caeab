//! Every input kept under `fuzz/corpus/TARGET/` (the seeds, the corpus the
//! fuzzer grew, minimised, and every input that once found a bug) through
//! its target's check, as the fuzzer ran it. A panic here is a regression.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_kept_input_passes_its_check() {
    for (target, check) in xdpath_fuzz::TARGETS {
        let files = inputs(target);
        assert!(!files.is_empty(), "no kept inputs for {target}");
        for file in &files {
            let data =
                std::fs::read(file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
            eprintln!("{target}: {}", file.display());
            check(&data);
        }
        eprintln!("{target}: {} inputs", files.len());
    }
}

/// Inputs that found a bug, kept under `fuzz/findings/TARGET/` as
/// regression tests (the first: a CIDR error that quoted a newline raw,
/// fixed by escaping every quoted input, issue 14 items 5, 7 and 10).
#[test]
fn findings_pass_their_check() {
    for (target, check) in xdpath_fuzz::TARGETS {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("findings")
            .join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            eprintln!("{target}: {}", path.display());
            check(&std::fs::read(&path).expect("a finding"));
        }
    }
}
