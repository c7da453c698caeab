//! The `plan`, `apply` and `confirm` commands.

use std::path::PathBuf;

use serde_json::json;

use xdpath::config::plan::Plan;
use xdpath::config::rollback::{self, format_time, Armed, Confirmed};
use xdpath::config::{apply, current, load, plan, refuse, ConfigError};
use xdpath::control::parse::parse_duration;

/// `xdpath plan -f FILE`.
#[derive(Clone, Debug, clap::Args)]
pub struct PlanArgs {
    /// The config file (TOML; see examples/xdpath.toml).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: PathBuf,
}

/// `xdpath apply -f FILE [--confirm DURATION]`.
#[derive(Clone, Debug, clap::Args)]
pub struct ApplyArgs {
    /// The config file (TOML; see examples/xdpath.toml).
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        required_unless_present = "rollback_at"
    )]
    pub file: Option<PathBuf>,
    /// Put the state from before back after DURATION (e.g. 30s, 5m) unless
    /// `xdpath confirm` is run first.
    #[arg(long, value_name = "DURATION")]
    pub confirm: Option<String>,
    /// Internal: the background process of --confirm.
    #[arg(long, hide = true, value_name = "UNIX_TIME", conflicts_with_all = ["file", "confirm"])]
    pub rollback_at: Option<u64>,
}

/// Pretty JSON on stdout; a closed pipe is not an error.
fn print_json(value: &serde_json::Value) {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn plan_json(plan: &Plan) -> serde_json::Value {
    serde_json::to_value(plan).unwrap_or_default()
}

/// Runs `xdpath plan`: what `apply` would change; changes nothing.
pub fn plan_command(args: &PlanArgs, json: bool) -> Result<(), ConfigError> {
    let desired = load(&args.file)?;
    let mut changes = plan(&current()?, &desired);
    refuse::refusals(&desired, &changes)?;
    changes.kernel = apply::kernel_differences();
    if json {
        let mut value = plan_json(&changes);
        if let Some(object) = value.as_object_mut() {
            object.insert("empty".into(), changes.is_empty().into());
        }
        print_json(&value);
    } else {
        print!("{changes}");
    }
    Ok(())
}

/// Runs `xdpath apply`: checks the file, then changes what differs; with
/// `--confirm`, arms a rollback first.
pub fn apply_command(args: &ApplyArgs, json: bool) -> Result<(), ConfigError> {
    if let Some(deadline) = args.rollback_at {
        return rollback::wait_and_roll_back(deadline).map(drop);
    }
    let file = args
        .file
        .as_ref()
        .ok_or_else(|| ConfigError::Usage("give the config file with -f FILE".into()))?;
    let confirm = args
        .confirm
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|error| ConfigError::Usage(format!("--confirm: {error}")))?;
    let desired = load(file)?;
    let armed: Option<Armed> = confirm.map(rollback::arm).transpose()?;
    let changes = match apply(&desired) {
        Ok(changes) => changes,
        Err(error) => {
            if let Some(armed) = armed.filter(|armed| armed.fresh) {
                // The failed apply put the old state back itself.
                let _ = rollback::disarm(armed.deadline);
            }
            return Err(error);
        }
    };
    if json {
        print_json(&json!({
            "applied": changes.len(),
            "changes": plan_json(&changes),
            "rollback": armed,
        }));
        return Ok(());
    }
    print!("{changes}");
    if !changes.is_empty() {
        println!(
            "applied {} change{}",
            changes.len(),
            if changes.len() == 1 { "" } else { "s" }
        );
    }
    if let Some(armed) = armed {
        let left = armed.deadline.saturating_sub(xdpath::control::wall_now());
        println!(
            "the previous state comes back in {left}s (at {} UTC, Unix time {}) unless `xdpath confirm` is run",
            format_time(armed.deadline),
            armed.deadline
        );
    }
    Ok(())
}

/// Runs `xdpath confirm`: keeps what was applied. With nothing pending,
/// it says what the last rollback did, so a confirm that came too late
/// is not taken for one that kept the state.
pub fn confirm_command(json: bool) -> Result<(), ConfigError> {
    let (cancelled, last) = match rollback::confirm()? {
        Confirmed::Cancelled(pending) => (Some(*pending), None),
        Confirmed::Nothing(last) => (None, last),
    };
    if json {
        print_json(&json!({
            "pending": cancelled.is_some(),
            "deadline": cancelled.as_ref().map(|pending| pending.deadline),
            "last_rollback": last,
        }));
    } else if let Some(pending) = cancelled {
        println!(
            "confirmed: the rollback due at {} UTC is cancelled",
            format_time(pending.deadline)
        );
    } else if let Some(last) = last {
        let how = match &last.error {
            None => format!(
                "the state from before was put back ({} change{})",
                last.changes,
                if last.changes == 1 { "" } else { "s" }
            ),
            Some(error) => format!("putting the state from before back failed: {error}"),
        };
        println!(
            "nothing to confirm: no rollback is pending; the last one, due at {} UTC, was carried out at {} UTC: {how}",
            format_time(last.deadline),
            format_time(last.finished_at)
        );
    } else {
        println!("nothing to confirm: no rollback is pending");
    }
    Ok(())
}
