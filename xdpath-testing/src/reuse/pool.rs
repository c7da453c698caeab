//! [`Reused`]: a program of the xdpath object taken from the test
//! binary's pool with its maps put back, returned to the pool when done.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, PoisonError};

use aya::maps::{Map, MapData, RingBuf};
use xdpath::dataplane::LoadedProgram;
use xdpath_core::InterfaceConfig;

use super::{ProgramImage, ReuseError};

struct Pooled {
    program: LoadedProgram,
    image: ProgramImage,
    /// Entries put back when it was last taken.
    restored: usize,
    /// The maps its last user took it sparing: those it said it would not
    /// write (none when it was taken whole).
    spared: &'static [&'static str],
}

/// Programs not in use. At most as many as threads ever used one at once.
static POOL: Mutex<Vec<Pooled>> = Mutex::new(Vec::new());

/// A program of the xdpath object (`LoadedProgram::load`) as freshly
/// loaded with a given config; back to the pool when dropped.
pub struct Reused {
    pooled: Option<Pooled>,
}

impl Reused {
    /// A pooled program with every map put back and `config` written, or
    /// a newly loaded one when none is free.
    pub fn take(config: InterfaceConfig) -> Result<Self, ReuseError> {
        Self::take_sparing(config, &[])
    }

    /// [`Reused::take`] for a user that writes none of the maps `spared`
    /// (and whose programs only read them): each is put back only if the
    /// program's last user did not spare it too. For the Maglev rings
    /// (16 MiB, a third of a second to read) in tests without a balancer;
    /// [`Reused::differences`] reads every map, to prove the promise kept.
    pub fn take_sparing(
        config: InterfaceConfig,
        spared: &'static [&'static str],
    ) -> Result<Self, ReuseError> {
        let free = POOL.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut pooled = match free {
            Some(mut pooled) => {
                let kept = pooled.spared;
                let skip = |name: &str| spared.contains(&name) && kept.contains(&name);
                pooled.restored = pooled.image.restore(skip)?;
                pooled
            }
            None => {
                let program = LoadedProgram::load(InterfaceConfig::default())?;
                let image = ProgramImage::take(&program)?;
                Pooled {
                    program,
                    image,
                    restored: 0,
                    spared,
                }
            }
        };
        pooled.spared = spared;
        pooled.program.set_config(config)?;
        Ok(Self {
            pooled: Some(pooled),
        })
    }

    /// A consumer of the ring map `name` on a descriptor of its own: the
    /// ring stays in the program, which goes back to the pool whole
    /// (`LoadedProgram::take_ring` would keep it out).
    pub fn ring_consumer(&self, name: &'static str) -> Result<RingBuf<MapData>, ReuseError> {
        let failed = |source| ReuseError::Map {
            map: name.to_string(),
            operation: "open it as a ring",
            source,
        };
        let fd = self.map_fd(name)?;
        let data = MapData::from_fd(fd).map_err(|error| failed(std::io::Error::other(error)))?;
        RingBuf::try_from(Map::RingBuf(data)).map_err(|error| failed(std::io::Error::other(error)))
    }

    /// The maps that differ from the program's image as loaded (every map
    /// read whole), and how.
    pub fn differences(&mut self) -> Result<Vec<String>, ReuseError> {
        self.pooled_mut().image.differences()
    }

    /// How many map entries (and ring records) were put back when this
    /// program was taken: 0 for a new load.
    pub fn restored(&self) -> usize {
        self.pooled.as_ref().map_or(0, |pooled| pooled.restored)
    }

    fn pooled(&self) -> &Pooled {
        self.pooled
            .as_ref()
            .expect("a Reused holds its program until dropped")
    }

    fn pooled_mut(&mut self) -> &mut Pooled {
        self.pooled
            .as_mut()
            .expect("a Reused holds its program until dropped")
    }
}

impl Deref for Reused {
    type Target = LoadedProgram;

    fn deref(&self) -> &LoadedProgram {
        &self.pooled().program
    }
}

impl DerefMut for Reused {
    fn deref_mut(&mut self) -> &mut LoadedProgram {
        &mut self.pooled_mut().program
    }
}

impl Drop for Reused {
    /// Back to the pool, unless a map was taken out of it (a ring, say),
    /// which the next user would miss.
    fn drop(&mut self) {
        let Some(pooled) = self.pooled.take() else {
            return;
        };
        let ebpf = pooled.program.ebpf();
        if pooled
            .image
            .map_names()
            .iter()
            .all(|name| ebpf.map(name).is_some())
        {
            POOL.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(pooled);
        }
    }
}
