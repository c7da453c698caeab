//! The one reconciliation path of a namespace: the desired state on disk
//! (`filter.json`, `lb.json`) against what the kernel's maps hold, read
//! back. `attach`, `apply`, `plan`, `xdpath state`, `status` and the
//! daemon's start and periodic check all come through here.
//!
//! - [`check`] only reads (it creates no map) and says what differs.
//! - [`repair`] installs what the kernel lacks and removes what it holds
//!   beyond the state, through the same sessions every command uses.
//! - [`attach`] installs the saved state *before* the program is attached,
//!   so an interface never runs without the rules its namespace has, and
//!   refuses to attach when the state cannot be installed (fail closed)
//!   unless the operator accepts running without it.

use crate::control::session::{lock_state_dir, Session};
use crate::control::ControlError;
use crate::control::{features, interfaces};
use crate::dataplane::{self, AttachedMode, DataplaneError, ModeChoice};
use crate::lb::session::LbSession;
use crate::lb::LbError;
use xdpath_core::InterfaceConfig;

/// Why a reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The filter's state could not be read or installed.
    #[error(transparent)]
    Control(Box<ControlError>),
    /// The balancer's state could not be read or installed.
    #[error(transparent)]
    Lb(#[from] LbError),
    /// Attaching failed.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// The saved state cannot be installed, so attaching would run the
    /// interface without it.
    #[error("not attaching {interface}: this namespace's saved state cannot be installed ({why}); nothing was attached. Fix the state (`xdpath state repair`) or attach with --force-empty to run {interface} without it")]
    StateNotInstalled {
        /// The interface.
        interface: String,
        /// Why.
        why: String,
    },
    /// The program was replaced but the saved state could not be
    /// installed after it.
    #[error("reloaded {interface} (program {old} replaced by {new}), but this namespace's saved state could not be installed after it ({why}); `xdpath state check` says what the kernel does not enforce")]
    StateNotInstalledAfterReload {
        /// The interface.
        interface: String,
        /// The program that ran before.
        old: u32,
        /// The program that runs now.
        new: u32,
        /// Why.
        why: String,
    },
}

impl From<ControlError> for ReconcileError {
    fn from(error: ControlError) -> Self {
        // Boxed: the filter's errors are large, and every call returns one.
        Self::Control(Box::new(error))
    }
}

/// What differs between the saved state and the kernel, per part.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Differences {
    /// The filter (rules, blocklist, limits, guards, management).
    pub filter: Vec<String>,
    /// The balancer (settings, VIPs, backends, tables).
    pub balancer: Vec<String>,
    /// Interfaces recorded as attached that have no program.
    pub interfaces: Vec<String>,
    /// Interfaces whose program (loaded by an older build) does not
    /// enforce entries of the saved state (`control::features`).
    pub programs: Vec<String>,
    /// Observers' settings of the data path nobody uses: a capture filter
    /// on while no capture runs (`observe::capture_left`).
    pub observers: Vec<String>,
}

impl Differences {
    /// True when the kernel enforces the saved state exactly.
    pub fn is_empty(&self) -> bool {
        self.maps_match() && self.programs.is_empty()
    }

    /// True when the maps hold the saved state and every recorded
    /// interface has a program (whatever those programs enforce).
    pub fn maps_match(&self) -> bool {
        self.filter.is_empty()
            && self.balancer.is_empty()
            && self.interfaces.is_empty()
            && self.observers.is_empty()
    }

    /// Every difference, each line starting with its part.
    pub fn lines(&self) -> Vec<String> {
        let filter = self.filter.iter().map(|line| format!("filter: {line}"));
        let balancer = self.balancer.iter().map(|line| format!("balancer: {line}"));
        let interfaces = self
            .interfaces
            .iter()
            .map(|line| format!("interface: {line}"));
        let programs = self.programs.iter().map(|line| format!("program: {line}"));
        let observers = self.observers.iter().cloned();
        filter
            .chain(balancer)
            .chain(interfaces)
            .chain(programs)
            .chain(observers)
            .collect()
    }
}

/// Reads the saved state and the kernel's maps and says what differs.
/// Creates nothing and changes nothing.
pub fn check() -> Result<Differences, ReconcileError> {
    let filter = Session::read()?.differences()?;
    let balancer = LbSession::read()?.differences()?;
    let programs = program_gaps()?;
    let mut interfaces: Vec<String> = interfaces::lost()
        .map_err(ControlError::from)?
        .into_iter()
        .map(|(name, record)| lost_line(&name, &record))
        .collect();
    interfaces.extend(
        dataplane::stale_interfaces()?
            .into_iter()
            .map(|stale| stale.line),
    );
    Ok(Differences {
        filter,
        balancer,
        interfaces,
        programs,
        observers: abandoned_capture(),
    })
}

/// The interfaces whose program, loaded by an older build, does not
/// enforce entries of the saved state (`control::features`), one line
/// each; reads only.
pub fn program_gaps() -> Result<Vec<String>, ReconcileError> {
    let filter = features::filter_needs(Session::read()?.loaded());
    let balancer = features::lb_needs(LbSession::read()?.loaded());
    Ok(features::gaps(filter | balancer)?)
}

fn lost_line(name: &str, record: &interfaces::InterfaceRecord) -> String {
    format!(
        "{name} was attached ({} mode) and has no xdpath program now",
        record.mode
    )
}

/// Makes the kernel's maps hold exactly the saved state; returns what
/// differed before.
/// Creates nothing when nothing differs (a namespace with no state and no
/// maps stays without maps).
pub fn repair() -> Result<Differences, ReconcileError> {
    let (_dir, _lock) = lock_state_dir()?;
    let mut differences = repair_maps()?;
    let saved = interfaces::load().map_err(ControlError::from)?;
    for (name, record) in interfaces::lost().map_err(ControlError::from)? {
        differences.interfaces.push(lost_line(&name, &record));
        interfaces::reattach(&name, &record, saved.steering.as_ref())?;
    }
    differences.balancer.extend(repair_connection_table()?);
    // Each interface on its own: one that fails does not keep the others
    // on the old maps; the first failure is the repair's.
    let mut failed = None;
    for stale in dataplane::stale_interfaces()? {
        differences.interfaces.push(stale.line);
        if stale.reload {
            if let Err(error) = dataplane::reload(&stale.interface) {
                failed.get_or_insert(error);
            }
        }
    }
    match crate::observe::capture_left::repair() {
        Ok(line) => differences.observers.extend(line),
        Err(error) => differences.observers.push(format!(
            "capture: whether a capture filter was left on cannot be told: {error}"
        )),
    }
    match failed {
        Some(error) => Err(error.into()),
        None => Ok(differences),
    }
}

/// Makes the connection tables of the kind the saved settings ask for:
/// a `lb config --connection-table` killed after its save left the old
/// kind (every interface is then reloaded over a new table). The
/// difference itself was read back and reported by [`repair_maps`].
fn repair_connection_table() -> Result<Option<String>, ReconcileError> {
    let asked = LbSession::read()?.loaded().settings.connection_table;
    let reloaded = dataplane::set_connection_table(asked)?;
    Ok((!reloaded.is_empty()).then(|| {
        format!(
            "connection tables made {asked} again; reloaded {}",
            reloaded.join(", ")
        )
    }))
}

/// A capture filter on while no capture runs, as a difference; one that
/// cannot be read is said so (where the maps are, the filter is readable).
fn abandoned_capture() -> Vec<String> {
    match crate::observe::capture_left::abandoned() {
        Ok(line) => line.into_iter().collect(),
        Err(error) => vec![format!(
            "capture: whether a capture filter was left on cannot be told: {error}"
        )],
    }
}

/// Makes the kernel's maps hold exactly the saved state (the interfaces
/// aside); returns what differed before.
pub(crate) fn repair_maps() -> Result<Differences, ReconcileError> {
    let (_dir, _lock) = lock_state_dir()?;
    let unchanged = Session::read()
        .and_then(|session| session.differences())
        .is_ok_and(|lines| lines.is_empty())
        && LbSession::read()
            .and_then(|session| session.differences())
            .is_ok_and(|lines| lines.is_empty());
    if unchanged {
        return Ok(Differences::default());
    }
    let session = Session::open()?;
    let filter = session.differences()?;
    session.commit()?;
    let session = LbSession::open()?;
    let balancer = session.differences()?;
    session.commit()?;
    Ok(Differences {
        filter,
        balancer,
        ..Differences::default()
    })
}

/// What [`attach`] did.
#[derive(Debug)]
pub struct Attached {
    /// The mode the program runs in.
    pub mode: AttachedMode,
    /// What the saved state needed installed first (empty when the maps
    /// already held it).
    pub installed: Differences,
    /// With `force_empty`: why the saved state is not enforced.
    pub degraded: Option<String>,
}

/// Attaches xdpath to `interface` with this namespace's saved state
/// installed first. When the state cannot be installed, nothing is
/// attached, unless `force_empty` says the operator accepts running the
/// interface without it.
pub fn attach(
    interface: &str,
    mode: ModeChoice,
    config: InterfaceConfig,
    force_empty: bool,
) -> Result<Attached, ReconcileError> {
    // One attach at a time in a namespace: the loser of a race finds the
    // winner's pins and says "already attached".
    let (_dir, _lock) = lock_state_dir()?;
    dataplane::check_attachable(interface)?;
    let shared_existed = dataplane::shared_dir()?.exists();
    // An interface whose program was lost (a reboot) gets back the
    // settings attach has no flag for: forwarding, steering, sampling,
    // decapsulation.
    let saved = interfaces::load().map_err(ControlError::from)?;
    let mut config = config;
    let record = saved.interfaces.get(interface);
    if let Some(record) = record {
        record.carry_into(&mut config);
    }
    let steer = std::mem::take(&mut config.steer) != 0;
    let (installed, degraded) = match repair_maps() {
        Ok(installed) => (installed, None),
        Err(error) if force_empty => (Differences::default(), Some(error.to_string())),
        Err(error) => {
            remove_new_shared_maps(shared_existed);
            return Err(ReconcileError::StateNotInstalled {
                interface: interface.to_string(),
                why: error.to_string(),
            });
        }
    };
    match dataplane::attach(interface, mode, config) {
        Ok(mode) => {
            if let (true, Some(steering)) = (steer, saved.steering.as_ref()) {
                interfaces::restore_steering(interface, steering)?;
            }
            Ok(Attached {
                mode,
                installed,
                degraded,
            })
        }
        Err(error) => {
            remove_new_shared_maps(shared_existed);
            Err(error.into())
        }
    }
}

/// What [`reload`] did.
#[derive(Debug, serde::Serialize)]
pub struct Reloaded {
    /// The program swap.
    #[serde(flatten)]
    pub report: dataplane::ReloadReport,
    /// What the saved state needed installed after it (empty when the
    /// maps already held it), one line each.
    pub installed: Vec<String>,
}

/// Replaces the program on `interface` with this build's
/// ([`dataplane::reload`]), then installs the saved state as this build
/// writes it. A new build can store an entry differently from the build
/// that installed it (a flag in a byte an older program leaves reserved,
/// such as a backend's `BACKEND_OUT_OF_RING`): without this, the new
/// program would run on entries it reads otherwise until the next change.
///
/// The swap is done first and stays done: when the state then cannot be
/// installed, the error says the program was replaced.
pub fn reload(interface: &str) -> Result<Reloaded, ReconcileError> {
    let report = dataplane::reload(interface)?;
    match repair_maps() {
        Ok(differences) => Ok(Reloaded {
            report,
            installed: differences.lines(),
        }),
        Err(error) => Err(ReconcileError::StateNotInstalledAfterReload {
            interface: interface.to_string(),
            old: report.old_program_id,
            new: report.new_program_id,
            why: error.to_string(),
        }),
    }
}

/// A failed attach changes nothing: the shared maps it made go again.
fn remove_new_shared_maps(shared_existed: bool) {
    if shared_existed || !dataplane::attached_interfaces().is_ok_and(|names| names.is_empty()) {
        return;
    }
    if let Ok(dir) = dataplane::shared_dir() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// What [`rebuild_files`] found for one state file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rebuilt {
    /// The file.
    pub file: String,
    /// What was done, or why nothing could be.
    pub outcome: String,
    /// True when the file is now readable and matches the kernel.
    pub ok: bool,
}

/// Rebuilds the state files that cannot be read from the kernel's maps:
/// from the copy of the state last installed (kept beside each file), used
/// only when reading the maps back shows the kernel holds exactly it.
pub fn rebuild_files() -> Result<Vec<Rebuilt>, ReconcileError> {
    let (dir, _lock) = lock_state_dir()?;
    Ok(vec![
        rebuild_one::<crate::control::state::FilterState>(
            &dir,
            crate::control::state::STATE_FILE,
            |state| Ok(Session::differences_from_kernel(state)?),
        ),
        rebuild_one::<crate::lb::state::LbState>(&dir, crate::lb::state::LB_STATE_FILE, |state| {
            Ok(LbSession::differences_from_kernel(state)?)
        }),
    ])
}

fn rebuild_one<T: crate::control::state::StateFile>(
    dir: &std::path::Path,
    name: &str,
    compare: impl Fn(&T) -> Result<Vec<String>, ReconcileError>,
) -> Rebuilt {
    use crate::control::state;
    let path = dir.join(name);
    let report = |outcome: String, ok: bool| Rebuilt {
        file: path.display().to_string(),
        outcome,
        ok,
    };
    let Err(error) = state::load::<T>(&path) else {
        return report("readable; nothing to rebuild".into(), true);
    };
    let copy_path = state::installed_copy_path(&path);
    let copy = match state::load::<T>(&copy_path) {
        Ok(copy) if copy_path.exists() => copy,
        Ok(_) => {
            return report(
                format!("{error}; no copy of the installed state to rebuild it from"),
                false,
            )
        }
        Err(copy_error) => {
            return report(
                format!("{error}; the copy is unreadable too: {copy_error}"),
                false,
            )
        }
    };
    match compare(&copy) {
        Ok(differences) if differences.is_empty() => match state::save(&path, &copy) {
            Ok(()) => report(
                "rebuilt from the copy of the state last installed, which the kernel's maps hold exactly (read back)".into(),
                true,
            ),
            Err(save_error) => report(format!("writing it failed: {save_error}"), false),
        },
        Ok(differences) => report(
            format!(
                "{error}; the kernel's maps do not hold the last installed copy either ({}), so it cannot be rebuilt from them: move the file away to start empty, or apply a config",
                differences.join("; ")
            ),
            false,
        ),
        Err(compare_error) => report(format!("{error}; reading the kernel's maps back failed: {compare_error}"), false),
    }
}

/// One directory [`collect_garbage`] removed or kept.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Collected {
    /// The directory.
    pub path: String,
    /// Why it was removed (or, with `dry_run`, would be).
    pub why: String,
}

/// Removes the state and pins of namespaces that no longer exist: those of
/// an earlier boot (their keys carry its boot id), and those of this boot
/// whose namespace no process is in and no `/run/netns` name holds. The
/// host's state is never removed. A namespace kept alive only by an open
/// descriptor (no process in it, no name) looks gone: run this
/// (`xdpath state gc`) when no such namespace matters.
pub fn collect_garbage(dry_run: bool) -> std::io::Result<Vec<Collected>> {
    let boot = crate::netns::boot_id()?;
    let live = crate::netns::live_cookies()?;
    let mut removed = Vec::new();
    for root in [
        std::path::Path::new(crate::control::state::STATE_ROOT),
        std::path::Path::new(dataplane::PIN_ROOT),
    ] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = crate::netns::NamespaceKey::parse(&name) else {
                continue;
            };
            let why = if key.is_host() {
                continue;
            } else if key.boot() != Some(boot.as_str()) {
                "its namespace belonged to an earlier boot"
            } else if key.cookie().is_some_and(|cookie| !live.contains(&cookie)) {
                "its namespace no longer exists"
            } else {
                continue;
            };
            if !dry_run {
                std::fs::remove_dir_all(entry.path())?;
            }
            removed.push(Collected {
                path: entry.path().display().to_string(),
                why: why.to_string(),
            });
        }
    }
    Ok(removed)
}
