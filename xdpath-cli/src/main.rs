//! `xdpath`: attach the data path, read its counters, replay captures,
//! benchmark, and run the demo. Every command that prints takes `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use usage::{clap_error_line, is_answer, json_asked, report, without_help_on_missing, USAGE_EXIT};
use xdpath::dataplane::{self, ModeChoice};
use xdpath::{control, replay, stats};
use xdpath_core::InterfaceConfig;
use xdpath_lab::{bench, demo};

mod args;
mod config;
mod filter;
mod interfaces;
mod lb;
mod observe;
mod runtime;
mod top;
mod usage;

use args::*;

fn main() -> ExitCode {
    // A closed pipe ends the process quietly, as it does `cat`: Rust
    // ignores SIGPIPE, and `println!` then panics on EPIPE
    // (`xdpath filter list | head -1`).
    // SAFETY: setting a signal's disposition to the default has no
    // preconditions; no other thread exists yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    xdpath::report::install_stderr_logger();
    let matches = without_help_on_missing(Cli::command())
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match matches {
        Ok(cli) => cli,
        Err(error) if is_answer(&error) => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            report(&[clap_error_line(&error)], json_asked());
            return ExitCode::from(USAGE_EXIT);
        }
    };
    match run(&cli) {
        Ok(()) => {
            record_interfaces();
            ExitCode::SUCCESS
        }
        Err(error) => {
            report(&error_lines(error.as_ref()), cli.json);
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// An error as the lines to print: one, or one per mistake of a refused
/// config file.
fn error_lines(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    match error.downcast_ref::<xdpath::config::ConfigError>() {
        Some(xdpath::config::ConfigError::Invalid(errors)) => errors.lines(),
        _ => vec![error.to_string()],
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Records what the namespace's interfaces run after a command that may
/// have changed it, so a lost program comes back as it was
/// (`control::interfaces`). Nothing to do where xdpath is not attached.
fn record_interfaces() {
    // Not where nothing is attached, nor for a user who may not look.
    if !dataplane::attached_interfaces().is_ok_and(|names| !names.is_empty()) {
        return;
    }
    if let Err(error) = control::interfaces::sync() {
        eprintln!("xdpath: warning: recording the interfaces' settings failed: {error}; after a reboot they may come back with defaults");
    }
}

fn run(cli: &Cli) -> Result<()> {
    // What a killed writer left is finished before any command works on
    // this namespace (cheap when nothing was left: two files looked up).
    xdpath::recovery::finish_interrupted();
    match &cli.command {
        Command::Attach {
            interface,
            mode,
            malformed,
            monitor,
            force_empty,
        } => interfaces::attach(interface, mode, malformed, monitor, force_empty, cli.json)?,
        Command::Detach { interface } => interfaces::detach(interface, cli.json)?,
        Command::Reload { interface } => interfaces::reload(interface, cli.json)?,
        Command::Status => interfaces::status(cli.json)?,
        Command::Stats { interface } => interfaces::stats(interface, cli.json)?,
        Command::Replay {
            file,
            write_pass,
            malformed,
            rules,
        } => runtime::replay(file, write_pass, malformed, rules, cli.json)?,
        Command::Run {
            interface,
            userspace,
            queues,
            malformed,
            monitor,
            forward,
            exception,
            zero_copy,
            duration,
            threads,
        } => runtime::run(
            interface, userspace, queues, malformed, monitor, forward, exception, zero_copy,
            duration, *threads, cli.json,
        )?,
        Command::Bench(options) => runtime::bench(options, cli.json)?,
        Command::Filter { command } => filter::filter(command, cli.json)?,
        Command::Block { command } => filter::block(command, cli.json)?,
        Command::Ratelimit { command } => filter::ratelimit(command, cli.json)?,
        Command::Guard { command } => filter::guard(command, cli.json)?,
        Command::Mgmt { command } => filter::mgmt(command, cli.json)?,
        Command::Lb { command } => lb::run(command, cli.json)?,
        Command::Decap {
            interface,
            mode,
            gue_port,
            refresh,
        } => interfaces::decap(interface, mode, gue_port, refresh, cli.json)?,
        Command::Demo => demo::run(cli.json)?,
        Command::Forward { switch, interface } => interfaces::forward(switch, interface, cli.json)?,
        Command::Steer {
            switch,
            interface,
            cpus,
            queue_size,
        } => interfaces::steer(switch, interface, cpus, queue_size, cli.json)?,
        Command::Xsk { command } => interfaces::xsk(command, cli.json)?,
        Command::Sample { interface, rate } => interfaces::sample(interface, rate, cli.json)?,
        Command::Export(args) => observe::export(args, cli.json)?,
        Command::Top(args) => observe::top(args, cli.json)?,
        Command::Capture(args) => observe::capture(args, cli.json)?,
        Command::Plan(args) => config::plan_command(args, cli.json)?,
        Command::Apply(args) => config::apply_command(args, cli.json)?,
        Command::Confirm => config::confirm_command(cli.json)?,
        Command::State(command) => state_command(command, cli.json)?,
    }
    Ok(())
}

/// `xdpath state ...`.
fn state_command(command: &StateCommand, json: bool) -> Result<()> {
    match command {
        StateCommand::Check { repair } => {
            let differences = if *repair {
                xdpath::reconcile::repair()?
            } else {
                xdpath::reconcile::check()?
            };
            let lines = differences.lines();
            // A reload, not a repair, makes an older program enforce what
            // the state holds: after --repair, still a difference.
            let programs = if *repair {
                xdpath::reconcile::program_gaps()?
            } else {
                Vec::new()
            };
            if json {
                print_json(&serde_json::json!({
                    "differences": lines,
                    "repaired": *repair && !lines.is_empty(),
                    "not_repaired": programs,
                }))?;
            } else if lines.is_empty() && programs.is_empty() {
                println!("the kernel enforces the saved state exactly");
            } else {
                if !lines.is_empty() {
                    println!(
                        "{} between the saved state and the kernel:",
                        if *repair {
                            "installed the differences"
                        } else {
                            "differences"
                        }
                    );
                }
                for line in &lines {
                    println!("  {line}");
                }
                if !programs.is_empty() {
                    println!("not repaired (only `xdpath reload IFACE` can):");
                }
                for line in &programs {
                    println!("  program: {line}");
                }
            }
            if !programs.is_empty() {
                return Err(format!(
                    "{} interface{} a program loaded by an older xdpath, which --repair cannot change; `xdpath reload IFACE` replaces it",
                    programs.len(),
                    if programs.len() == 1 { " runs" } else { "s run" }
                )
                .into());
            }
            if !*repair && !lines.is_empty() {
                let fix = if differences.programs.is_empty() {
                    "`xdpath state check --repair` installs it"
                } else if differences.maps_match() {
                    "`xdpath reload IFACE` replaces the older program"
                } else {
                    "`xdpath state check --repair` installs the maps' part, `xdpath reload IFACE` replaces the older program"
                };
                return Err(format!(
                    "the kernel does not enforce the saved state ({} difference{}); {fix}",
                    lines.len(),
                    if lines.len() == 1 { "" } else { "s" }
                )
                .into());
            }
        }
        StateCommand::Repair => {
            let rebuilt = xdpath::reconcile::rebuild_files()?;
            if json {
                print_json(&rebuilt)?;
            } else {
                for file in &rebuilt {
                    println!("{}: {}", file.file, file.outcome);
                }
            }
            if let Some(failed) = rebuilt.iter().find(|file| !file.ok) {
                return Err(format!("{}: {}", failed.file, failed.outcome).into());
            }
        }
        StateCommand::Gc { dry_run } => {
            let removed = xdpath::reconcile::collect_garbage(*dry_run)?;
            if json {
                print_json(&removed)?;
            } else if removed.is_empty() {
                println!("nothing to remove");
            } else {
                for entry in &removed {
                    println!(
                        "{} {} ({})",
                        if *dry_run { "would remove" } else { "removed" },
                        entry.path,
                        entry.why
                    );
                }
            }
        }
    }
    Ok(())
}

/// The per-rule hits and per-limit drops of `stats`.
fn print_filter_counters(filter: &serde_json::Value) {
    let rows = |key: &str| filter[key].as_array().cloned().unwrap_or_default();
    let rules = rows("rules");
    if !rules.is_empty() {
        println!("rules:");
        println!("{:>6} {:>14}", "ID", "HITS");
        for rule in &rules {
            // Values, not `Value`s: `Value`'s Display ignores widths.
            println!(
                "{:>6} {:>14}",
                rule["id"].to_string(),
                rule["hits"].to_string()
            );
        }
    }
    let limits = rows("rate_limits");
    if !limits.is_empty() {
        println!("rate limits:");
        println!("{:>6} {:>14}", "ID", "DROPS");
        for limit in &limits {
            println!(
                "{:>6} {:>14}",
                limit["id"].to_string(),
                limit["drops"].to_string()
            );
        }
    }
}

fn format_time(seconds: u64) -> String {
    // UTC, without a date crate: days since the epoch → civil date.
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (public domain description).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
