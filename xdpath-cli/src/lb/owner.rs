//! `xdpath lb owner`: what external owners (an OpenStack Octavia provider
//! driver, say) made. `apply` makes an owner's state exactly a JSON
//! document (the body of `PUT /v1/owners/{owner}`), through the
//! namespace's control plane; `delete` removes what the owner made; `list`
//! and `show` read.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;
use xdpath::api::{control_plane, OwnerState};
use xdpath::lb::owner::apply::OwnerChange;
use xdpath::lb::LbError;

use super::render::{done, print_json};

/// The largest document read (the API's limit for it too).
const MAX_DOCUMENT: u64 = 16 << 20;

/// `xdpath lb owner ...`
#[derive(Subcommand)]
pub enum OwnerCommand {
    /// List the owners with how many VIPs, rate limits and filter rules
    /// each has.
    List,
    /// Show what is in force for an owner: its document, its VIPs'
    /// counters, their Maglev tables' digests, and how the kernel differs
    /// from the saved state.
    Show {
        /// The owner.
        owner: String,
    },
    /// Make an owner's VIPs, backends, health checks, allowed sources,
    /// rate limits and filter rules exactly a JSON document's (the body of `PUT
    /// /v1/owners/OWNER`): all or nothing, and the same document again
    /// changes nothing.
    Apply {
        /// The owner.
        owner: String,
        /// The JSON document (- for stdin).
        file: PathBuf,
    },
    /// Remove everything an owner made.
    Delete {
        /// The owner.
        owner: String,
    },
}

/// Runs an `lb owner` command.
pub fn run(command: &OwnerCommand, json: bool) -> Result<(), LbError> {
    match command {
        OwnerCommand::List => {
            let rows = xdpath::lb::owner::list()?;
            if json {
                print_json(&rows);
            } else {
                print_owners(&rows);
            }
        }
        OwnerCommand::Show { owner } => {
            let view = xdpath::lb::owner::view(owner)?;
            // The document is JSON in either form.
            print_json(&view);
        }
        OwnerCommand::Apply { owner, file } => {
            let document = read_document(file)?;
            let change = control_plane().put_owner(owner, &document)?;
            done(&message(&change, "applied"), json);
        }
        OwnerCommand::Delete { owner } => {
            let change = control_plane().delete_owner(owner)?;
            done(&message(&change, "deleted"), json);
        }
    }
    Ok(())
}

fn message(change: &OwnerChange, what: &str) -> String {
    let owner = &change.owner;
    match (change.changed, what) {
        (false, "deleted") => format!("owner {owner:?} has nothing"),
        (false, _) => format!("owner {owner:?} is as the document says: nothing changed"),
        (true, "deleted") => format!("owner {owner:?}: everything it made is removed"),
        (true, _) => format!(
            "owner {owner:?}: {} VIPs, {} rate limits and {} rules in force",
            change.vips.len(),
            change.limits,
            change.rules
        ),
    }
}

/// Reads a document (`-`: stdin), bounded.
fn read_document(file: &Path) -> Result<OwnerState, LbError> {
    let bytes = if file.as_os_str() == "-" {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::io::stdin()
            .take(MAX_DOCUMENT + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| LbError::Usage(format!("cannot read stdin: {error}")))?;
        if bytes.len() as u64 > MAX_DOCUMENT {
            return Err(LbError::Usage(format!(
                "the document is larger than {MAX_DOCUMENT} bytes"
            )));
        }
        bytes
    } else {
        xdpath::input::read_bytes(file, MAX_DOCUMENT)
            .map_err(|error| LbError::Usage(error.to_string()))?
    };
    serde_json::from_slice(&bytes).map_err(|error| {
        LbError::Usage(format!(
            "{} is not an owner document: {error}",
            file.display()
        ))
    })
}

fn print_owners(rows: &Value) {
    let rows = rows.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        println!("no owners");
        return;
    }
    println!(
        "{:<64} {:>5} {:>7} {:>6}",
        "OWNER", "VIPs", "LIMITS", "RULES"
    );
    for row in rows {
        println!(
            "{:<64} {:>5} {:>7} {:>6}",
            row["owner"].as_str().unwrap_or(""),
            row["vips"],
            row["limits"],
            row["rules"]
        );
    }
}
