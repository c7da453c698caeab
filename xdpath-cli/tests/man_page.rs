//! The man page against the CLI: every subcommand (at every depth) and
//! every long option the CLI takes is documented in `doc/xdpath.8`, so the
//! page cannot fall behind the clap definitions unnoticed. Needs no root.

use std::collections::BTreeSet;
use std::process::Command;

const XDPATH: &str = env!("CARGO_BIN_EXE_xdpath");

fn help(path: &[String]) -> String {
    let output = Command::new(XDPATH)
        .args(path)
        .arg("--help")
        .output()
        .expect("xdpath --help");
    assert!(output.status.success(), "xdpath {path:?} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The first word of each line of a help section (`Commands:`).
fn section(text: &str, heading: &str) -> Vec<String> {
    text.lines()
        .skip_while(|line| line.trim_end() != heading)
        .skip(1)
        .take_while(|line| line.starts_with(' '))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `--option` in a help text.
fn long_options(text: &str) -> BTreeSet<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '=')
        .filter(|word| word.starts_with("--") && word.len() > 2)
        .map(|word| {
            word.trim_end_matches(|c: char| !c.is_alphanumeric())
                .to_string()
        })
        .collect()
}

/// Every command path and its help, depth first.
fn commands(path: Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
    let text = help(&path);
    for name in section(&text, "Commands:") {
        if name != "help" {
            let mut next = path.clone();
            next.push(name);
            commands(next, out);
        }
    }
    out.push((path, text));
}

#[test]
fn every_command_and_option_is_in_the_man_page() {
    let page = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../doc/xdpath.8"))
        .expect("doc/xdpath.8");
    // troff writes `-` as `\-`; fonts and spacing aside, the words remain.
    let page = page
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fI", "");
    let mut all = Vec::new();
    commands(Vec::new(), &mut all);
    let mut missing = Vec::new();
    for (path, text) in &all {
        if let Some(last) = path.last() {
            let words = path.join(" ");
            if !page.contains(&words) && !page.contains(last.as_str()) {
                missing.push(format!("command `xdpath {words}`"));
            }
        }
        for option in long_options(text) {
            if matches!(option.as_str(), "--help" | "--version") {
                continue;
            }
            if !page.contains(&option) {
                missing.push(format!("`{option}` of `xdpath {}`", path.join(" ")));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "doc/xdpath.8 does not document:\n{}",
        missing.join("\n")
    );
    assert!(all.len() > 30, "only {} commands found", all.len());
}
