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

/// The state files of a namespace and what was last installed from them.
#[derive(Debug)]
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
        let stamps = [modified(&self.filter_path), modified(&self.lb_path)];
        if self.installed.is_some() && stamps == self.stamps {
            return Ok(false);
        }
        self.stamps = stamps;
        let filter: FilterState = state::load(&self.filter_path).map_err(Box::new)?;
        let mut balancer: LbState = state::load(&self.lb_path).map_err(Box::new)?;
        // Both compile before either is installed.
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
                install_fresh(&mut scratch, &filter, &resolve, wall_now()).map_err(filter_error)?
            }
            Some(previous) if previous != &filter => {
                let prepared =
                    prepare(&scratch, previous, &filter, &resolve, false).map_err(filter_error)?;
                apply(&mut scratch, previous, &filter, &prepared, wall_now())
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
        self.installed = Some(filter);
        self.balancer = balancer;
        Ok(true)
    }
}
