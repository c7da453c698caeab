//! How `xdpath` reports an error: one line after `xdpath: error: `
//! ([`report`]), exit status 1, or [`USAGE_EXIT`] for a command line that
//! does not parse. clap's own errors are several lines (`error: …`, a tip,
//! the usage, a pointer to `--help`) and quote the input raw;
//! [`clap_error_line`] says the same in one line, input quoted by
//! [`xdpath::text::quote`], with clap's "did you mean" suggestion kept.

use clap::error::{ContextKind, ContextValue, ErrorKind};

use xdpath::text::{one_line, quote};

/// The exit status of a command line that does not parse (an unknown
/// command or option, a missing or malformed argument). A command that
/// parses and then fails exits 1.
pub const USAGE_EXIT: u8 = 2;

/// A context string of the error, if there is one.
fn text(error: &clap::Error, kind: ContextKind) -> Option<&str> {
    match error.get(kind) {
        Some(ContextValue::String(value)) => Some(value),
        _ => None,
    }
}

/// A context list of the error joined with `, ` (a single string too).
fn list(error: &clap::Error, kind: ContextKind) -> Option<String> {
    match error.get(kind)? {
        ContextValue::String(value) => Some(value.clone()),
        ContextValue::Strings(values) if !values.is_empty() => Some(values.join(", ")),
        _ => None,
    }
}

/// The error's message without clap's suggestions, or `None` when the
/// error lacks the context to say it (then clap's first line is used).
fn message(error: &clap::Error) -> Option<String> {
    let arg = || text(error, ContextKind::InvalidArg);
    Some(match error.kind() {
        ErrorKind::InvalidValue => {
            let value = text(error, ContextKind::InvalidValue)?;
            let mut line = if value.is_empty() {
                format!("a value is required for {} but none was given", arg()?)
            } else {
                format!("invalid value {} for {}", quote(value), arg()?)
            };
            if let Some(valid) = list(error, ContextKind::ValidValue) {
                line.push_str(&format!(" (expected one of: {valid})"));
            }
            line
        }
        ErrorKind::ValueValidation => {
            let value = text(error, ContextKind::InvalidValue)?;
            let why = std::error::Error::source(error)
                .map(|source| format!(": {source}"))
                .unwrap_or_default();
            format!("invalid value {} for {}{why}", quote(value), arg()?)
        }
        ErrorKind::UnknownArgument => format!("unexpected argument {}", quote(arg()?)),
        ErrorKind::InvalidSubcommand => {
            let name = text(error, ContextKind::InvalidSubcommand)?;
            format!("unknown command {}", quote(name))
        }
        ErrorKind::MissingRequiredArgument => {
            format!(
                "missing required arguments: {}",
                list(error, ContextKind::InvalidArg)?
            )
        }
        ErrorKind::MissingSubcommand => {
            let name = text(error, ContextKind::InvalidSubcommand)?;
            let mut line = format!("`{name}` needs a command");
            if let Some(valid) = list(error, ContextKind::ValidSubcommand) {
                line.push_str(&format!(": {valid}"));
            }
            line
        }
        ErrorKind::ArgumentConflict => {
            let prior = list(error, ContextKind::PriorArg);
            match (arg()?, prior) {
                (arg, Some(prior)) if prior == arg => {
                    format!("{arg} cannot be given more than once")
                }
                (arg, Some(prior)) => format!("{arg} cannot be used with {prior}"),
                (arg, None) => format!("{arg} cannot be used with the other arguments"),
            }
        }
        ErrorKind::TooManyValues => {
            let value = text(error, ContextKind::InvalidValue)?;
            format!("unexpected value {} for {}", quote(value), arg()?)
        }
        ErrorKind::InvalidUtf8 => "an argument is not valid UTF-8".to_string(),
        _ => return None,
    })
}

/// clap's "did you mean": a similar command, option or value.
fn suggestion(error: &clap::Error) -> Option<String> {
    [
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedArg,
        ContextKind::SuggestedValue,
    ]
    .into_iter()
    .find_map(|kind| match error.get(kind)? {
        ContextValue::String(value) => Some(format!("did you mean {value}?")),
        ContextValue::Strings(values) if !values.is_empty() => {
            Some(format!("did you mean {}?", values.join(" or ")))
        }
        _ => None,
    })
}

/// One line saying what is wrong with a command line (without the
/// `xdpath: error: ` prefix).
///
/// # Examples
///
/// ```
/// use clap::Parser;
///
/// #[derive(Parser, Debug)]
/// struct Args {
///     #[arg(long, value_parser = ["auto", "native"])]
///     mode: String,
/// }
/// let error = Args::try_parse_from(["x", "--mode", "nat\nive"]).unwrap_err();
/// assert_eq!(
///     usage::clap_error_line(&error),
///     "invalid value \"nat\\nive\" for --mode <MODE> (expected one of: auto, native); \
///      did you mean native?"
/// );
/// ```
pub fn clap_error_line(error: &clap::Error) -> String {
    let mut line = message(error).unwrap_or_else(|| {
        let rendered = error.render().to_string();
        let first = rendered
            .lines()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("invalid command line");
        one_line(first.strip_prefix("error: ").unwrap_or(first)).into_owned()
    });
    if let Some(suggestion) = suggestion(error) {
        line.push_str("; ");
        line.push_str(&suggestion);
    }
    line
}

/// True for the "errors" that are answers: `--help` and `--version`
/// (printed on stdout, exit 0).
pub fn is_answer(error: &clap::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    )
}

/// Whether `--json` is among this process's arguments (before any `--`):
/// for a command line that did not parse, whose `--json` clap never saw.
pub fn json_asked() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| arg == "--json")
}

/// Prints an error: each line after `xdpath: error: ` on stderr, escaped
/// by [`one_line`] so that it stays one line whatever it holds, and with
/// `json` the message as `{"error": ...}` on stdout.
pub fn report(lines: &[String], json: bool) {
    let lines: Vec<String> = lines
        .iter()
        .map(|line| one_line(line).into_owned())
        .collect();
    if json {
        println!("{}", serde_json::json!({ "error": lines.join("\n") }));
    }
    for line in &lines {
        eprintln!("xdpath: error: {line}");
    }
}

/// `command` and all its subcommands set to report a missing subcommand
/// as an error (clap's derive prints the whole help instead, on stderr,
/// with exit status 2).
pub fn without_help_on_missing(command: clap::Command) -> clap::Command {
    command
        .arg_required_else_help(false)
        .mut_subcommands(without_help_on_missing)
}

/// Says loudly, on stderr, when what a listing shows (the state file) is
/// not what the kernel enforces: `differences` are the kernel's maps read
/// back against it, one line each (none: nothing said).
pub(crate) fn warn_not_enforced(differences: &[String]) {
    if let Some(first) = differences.first() {
        eprintln!(
            "xdpath: warning: the kernel does not enforce this state ({first}{}); `xdpath state check` lists every difference, and any change (or `xdpath state check --repair`, or a running xdpathd) installs the state",
            if differences.len() > 1 {
                format!("; and {} more", differences.len() - 1)
            } else {
                String::new()
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    #[command(name = "tool")]
    struct Tool {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(clap::Subcommand, Debug)]
    enum Sub {
        Filter {
            #[arg(long)]
            dport: Option<String>,
            #[arg(long)]
            count: Option<u16>,
        },
        Status,
    }

    fn line(args: &[&str]) -> String {
        let command = without_help_on_missing(<Tool as clap::CommandFactory>::command());
        let error = command
            .try_get_matches_from(std::iter::once("tool").chain(args.iter().copied()))
            .expect_err("a usage error");
        clap_error_line(&error)
    }

    #[test]
    fn each_usage_error_is_one_line_with_its_suggestion() {
        let cases = [
            (
                &["fliter"][..],
                "unknown command \"fliter\"; did you mean filter?",
            ),
            (&["filter", "--dport", "-1"], "unexpected argument \"-1\""),
            (
                &["filter", "--dprt", "1"],
                "unexpected argument \"--dprt\"; did you mean --dport?",
            ),
            (
                &["status", "extra\nline"],
                "unexpected argument \"extra\\nline\"",
            ),
            (
                &["filter", "--count", "70000"],
                "invalid value \"70000\" for --count <COUNT>: 70000 is not in 0..=65535",
            ),
            (
                &["filter", "--count"],
                "a value is required for --count <COUNT> but none was given",
            ),
            (&[], "`tool` needs a command: filter, status, help"),
        ];
        for (args, expected) in cases {
            let shown = line(args);
            assert_eq!(shown, expected, "{args:?}");
            assert!(!shown.contains('\n'));
        }
    }
}
