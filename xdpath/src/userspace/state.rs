//! The runtime's view of the namespace's state: the filter and balancer
//! state files the CLI, `xdpath apply` and xdpathd write
//! (`/var/lib/xdpath/<netns>/filter.json`, `lb.json`), installed into the
//! native tables, and installed again when a file changes.
//!
//! A change is taken only whole: a state that does not compile leaves the
//! tables on the last good one (and the error is reported), as the kernel
//! path keeps its maps.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use xdpath_core::NativeTables;

use crate::control::apply::{apply, install_fresh, prepare, InstallError};
use crate::control::kernel::monotonic_now_ns;
use crate::control::state::{self, FilterState, StateError, STATE_FILE};
use crate::control::{interface_index, wall_now};
use crate::lb::compile::plan;
use crate::lb::state::{LbState, LB_STATE_FILE};
use crate::lb::LbError;

/// Why a state could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StateLoadError {
    /// A state file could not be read.
    #[error(transparent)]
    Read(#[from] Box<StateError>),
    /// The filter state does not compile.
    #[error("the filter state in {}: {source}", path.display())]
    Filter {
        /// Its file.
        path: PathBuf,
        /// Why.
        source: Box<InstallError>,
    },
    /// The balancer state does not compile.
    #[error("the balancer state in {}: {source}", path.display())]
    Balancer {
        /// Its file.
        path: PathBuf,
        /// Why.
        source: Box<LbError>,
    },
}

/// The two state files' contents, as read.
#[derive(Clone, Debug, PartialEq)]
pub struct States {
    /// The filter state.
    pub filter: FilterState,
    /// The balancer state.
    pub balancer: LbState,
}

/// The state files of a namespace and what was last installed from them.
#[derive(Clone, Debug)]
pub struct StateWatch {
    filter_path: PathBuf,
    lb_path: PathBuf,
    stamps: [Option<SystemTime>; 2],
    installed: Option<FilterState>,
    balancer: LbState,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

impl StateWatch {
    /// Watches the state files in `dir` (nothing installed yet).
    pub fn new(dir: &Path) -> Self {
        Self {
            filter_path: dir.join(STATE_FILE),
            lb_path: dir.join(LB_STATE_FILE),
            stamps: [None, None],
            installed: None,
            balancer: LbState::default(),
        }
    }

    /// Installs the state into `tables` if a file changed since the last
    /// call (always on the first). `Ok(true)`: something was installed.
    ///
    /// # Errors
    ///
    /// A file that cannot be read or a state that does not compile; the
    /// tables keep what they had, and the same files are tried again only
    /// once they change again.
    pub fn refresh(&mut self, tables: &mut NativeTables) -> Result<bool, StateLoadError> {
        match self.read_changed()? {
            Some(states) => self.install(tables, &states),
            None => Ok(false),
        }
    }

    /// The state files, if either changed since the last call (always on
    /// the first); the change is then seen, whatever installing it gives.
    ///
    /// # Errors
    ///
    /// A file that cannot be read.
    pub fn read_changed(&mut self) -> Result<Option<States>, StateLoadError> {
        let stamps = [modified(&self.filter_path), modified(&self.lb_path)];
        if self.installed.is_some() && stamps == self.stamps {
            return Ok(None);
        }
        self.stamps = stamps;
        Ok(Some(States {
            filter: state::load(&self.filter_path).map_err(Box::new)?,
            balancer: state::load(&self.lb_path).map_err(Box::new)?,
        }))
    }

    /// Installs `states` into `tables`, both compiled before either is
    /// installed; `Ok(true)`.
    ///
    /// # Errors
    ///
    /// A state that does not compile; the tables keep what they had.
    pub fn install(
        &mut self,
        tables: &mut NativeTables,
        states: &States,
    ) -> Result<bool, StateLoadError> {
        let filter = &states.filter;
        let mut balancer = states.balancer.clone();
        let compiled_lb = plan(&LbState::default(), &mut balancer, true).map_err(|source| {
            StateLoadError::Balancer {
                path: self.lb_path.clone(),
                source: Box::new(source),
            }
        })?;
        let mut scratch = tables.clone();
        scratch.set_now_ns(monotonic_now_ns());
        let resolve = |name: &str| interface_index(name);
        let filter_error = |source| StateLoadError::Filter {
            path: self.filter_path.clone(),
            source: Box::new(source),
        };
        match &self.installed {
            None => {
                install_fresh(&mut scratch, filter, &resolve, wall_now()).map_err(filter_error)?
            }
            Some(previous) if previous != filter => {
                let prepared =
                    prepare(&scratch, previous, filter, &resolve, false).map_err(filter_error)?;
                apply(&mut scratch, previous, filter, &prepared, wall_now())
                    .map_err(|error| filter_error(InstallError::Apply(error)))?;
            }
            Some(_) => {}
        }
        if balancer != self.balancer || self.installed.is_none() {
            // The connection table and the statistics stay; the VIPs,
            // rings and backends are the new state's.
            scratch.lb.vips.clear();
            scratch.lb.rings.clear();
            scratch.lb.backends.clear();
            compiled_lb.compiled.install_native(&mut scratch);
        }
        *tables = scratch;
        self.installed = Some(filter.clone());
        self.balancer = balancer;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use xdpath_core::build::{FrameSpec, Network, Transport};
    use xdpath_core::{pipeline, Action, Reason, SlicePacket};

    use super::*;
    use crate::control::rulefile::filter_state_from_file;

    fn verdict(tables: &mut NativeTables) -> (Action, Reason) {
        let frame = FrameSpec::new(
            Network::V4([10, 1, 2, 3], [192, 0, 2, 1]),
            Transport::udp(40_000, 53),
        )
        .build();
        let outcome = pipeline::process(&SlicePacket::new(&frame), tables);
        (outcome.action, outcome.reason)
    }

    #[test]
    fn a_bad_state_is_refused_and_the_last_good_one_stays() {
        let dir = std::env::temp_dir().join(format!("xdpath-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let filter = dir.join(STATE_FILE);
        let rules = dir.join("rules.txt");
        std::fs::write(&rules, "10.0.0.0/8\n").expect("rule file");
        let state = filter_state_from_file(&rules).expect("rules");
        state::save(&filter, &state).expect("save");

        let mut tables = NativeTables::default();
        let mut watch = StateWatch::new(&dir);
        assert!(watch.refresh(&mut tables).expect("good state"));
        assert_eq!(verdict(&mut tables), (Action::Drop, Reason::RuleDeny));
        assert!(
            !watch.refresh(&mut tables).expect("unchanged"),
            "nothing new"
        );

        // A file that does not parse: refused, the rule stays, and the same
        // file is not tried again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&filter, "{ not json").expect("corrupt");
        let error = watch.refresh(&mut tables).expect_err("refused");
        assert!(error.to_string().contains("filter.json"), "{error}");
        assert_eq!(verdict(&mut tables), (Action::Drop, Reason::RuleDeny));
        assert!(!watch.refresh(&mut tables).expect("not retried"));

        // A balancer file with a VIP that is no VIP is refused as well,
        // the good filter file beside it included.
        std::thread::sleep(std::time::Duration::from_millis(20));
        state::save(&filter, &FilterState::default()).expect("save");
        std::fs::write(dir.join(LB_STATE_FILE), r#"{"vips":[{"bogus":1}]}"#).expect("lb");
        assert!(watch.refresh(&mut tables).is_err());
        assert_eq!(verdict(&mut tables), (Action::Drop, Reason::RuleDeny));

        // Good again: taken.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::remove_file(dir.join(LB_STATE_FILE)).expect("remove lb");
        assert!(watch.refresh(&mut tables).expect("good again"));
        assert_eq!(verdict(&mut tables), (Action::Pass, Reason::Ipv4Udp));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
