//! The state files on disk: where a namespace's live, how one is read
//! (bounded, its kind and format checked) and written (atomically, private
//! to root), and the temporaries a killed writer leaves.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{state_dir_of, FilterState, StateError};

/// The state directory of this thread's namespace.
pub fn state_dir() -> Result<PathBuf, StateError> {
    let key = crate::netns::current_key().map_err(|source| StateError::Io {
        path: "/proc/thread-self/ns/net".into(),
        source,
    })?;
    Ok(state_dir_of(&key))
}

/// The format of the state files this build reads and writes. Every state
/// file carries it (`"format": 1`) with its kind (`"kind": "filter"`), so
/// an empty object, another file's content or a newer xdpath's file is
/// refused instead of being read as "no state".
pub const STATE_FORMAT: u64 = 1;

/// A kind of state file.
pub trait StateFile: Serialize + serde::de::DeserializeOwned + Default {
    /// Its `"kind"`.
    const KIND: &'static str;
    /// Keys that every file written before format versions existed holds:
    /// such a file (no `"format"`) is read as format 1.
    const LEGACY_KEYS: &'static [&'static str];

    /// What a file that parses may still get wrong (two entries in one
    /// kernel slot, a slot past a map's end): said before anything is
    /// installed from it, as a damaged file.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

impl StateFile for FilterState {
    const KIND: &'static str = "filter";
    const LEGACY_KEYS: &'static [&'static str] = &["rules", "blocklist", "rate_limits", "guards"];
}

/// Reads the state at `path`; a missing file is the empty state. A file
/// that is not a state file of this kind and format is refused with what
/// is wrong and how to recover.
pub fn load<T: StateFile>(path: &Path) -> Result<T, StateError> {
    let bytes = match read_bounded(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(StateError::Io {
                path: path.into(),
                source,
            })
        }
    };
    let corrupt = |why: String| StateError::Invalid {
        path: path.into(),
        why,
    };
    let header: header::Header = serde_json::from_slice(&bytes)
        .map_err(|error| corrupt(format!("not a JSON object ({error})")))?;
    match header.format {
        Some(format) if format > STATE_FORMAT => {
            return Err(StateError::Newer {
                path: path.into(),
                format,
            })
        }
        Some(STATE_FORMAT) => {}
        Some(format) => return Err(corrupt(format!("unknown format {format}"))),
        None if T::LEGACY_KEYS
            .iter()
            .all(|key| header.keys.iter().any(|have| have == key)) => {}
        None => return Err(corrupt("no \"format\" (an empty or foreign file)".into())),
    }
    if let Some(kind) = &header.kind {
        if kind != T::KIND {
            return Err(corrupt(format!(
                "a {kind:?} file where a {:?} file belongs",
                T::KIND
            )));
        }
    } else if header.format.is_some() {
        return Err(corrupt("no \"kind\"".into()));
    }
    let state: T = serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
        path: path.into(),
        source,
    })?;
    state.check().map_err(corrupt)?;
    Ok(state)
}

/// The largest state file read: 1 GiB (a million prefixes take ~40 MB).
const MAX_STATE_BYTES: u64 = 1 << 30;

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = File::open(path)?;
    // Whoever could write it would choose the rules.
    crate::private_files::check_file(&file, path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut bytes = Vec::with_capacity(metadata.len().min(MAX_STATE_BYTES) as usize);
    file.take(MAX_STATE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_STATE_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// Writes the state to `path` atomically with its format and kind.
pub fn save<T: StateFile>(path: &Path, state: &T) -> Result<(), StateError> {
    write_atomically(path, |writer| {
        // `{"format":1,"kind":"filter",` then the state's own object
        // without its `{`: no second copy of a million-prefix state in
        // memory.
        let body = serde_json::to_vec(state)?;
        let rest = body.strip_prefix(b"{").unwrap_or(b"}");
        write!(
            writer,
            "{{\"format\":{STATE_FORMAT},\"kind\":\"{}\"",
            T::KIND
        )
        .map_err(serde_json::Error::io)?;
        if rest != b"}" {
            writer.write_all(b",").map_err(serde_json::Error::io)?;
        }
        writer.write_all(rest).map_err(serde_json::Error::io)
    })
}

/// Where the copy of the state last installed into the kernel is kept
/// beside a state file (`filter.json` → `filter.installed.json`).
pub fn installed_copy_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("state");
    path.with_file_name(format!("{stem}.installed.json"))
}

/// Keeps a copy of `state`, just installed, beside its file: `xdpath
/// state repair` rebuilds a damaged file from it once reading the maps
/// back shows the kernel holds exactly it. Written when the state
/// `changed`, or when there is no copy yet.
pub fn save_installed_copy<T: StateFile>(
    path: &Path,
    state: &T,
    changed: bool,
) -> Result<(), StateError> {
    let copy = installed_copy_path(path);
    if !changed && copy.exists() {
        return Ok(());
    }
    save(&copy, state)
}

/// Writes any serialisable value to `path` atomically, as plain JSON.
pub fn save_plain<T: Serialize>(path: &Path, value: &T) -> Result<(), StateError> {
    write_atomically(path, |writer| serde_json::to_writer(writer, value))
}

/// Writes `path` atomically: a temporary file beside it, flushed to disk,
/// then renamed over it and the directory synced, so a crash or power loss
/// leaves the old file or the new one. A temporary file a killed writer
/// left is removed by [`remove_stale_temporaries`].
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), serde_json::Error>,
) -> Result<(), StateError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    crate::private_files::create_directory(dir).map_err(io_error(dir))?;
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("state");
    let temporary = dir.join(format!(".{name}.{}{TEMPORARY_SUFFIX}", std::process::id()));
    let file =
        crate::private_files::open_private(&temporary, true).map_err(io_error(&temporary))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let written = write(&mut writer)
        .map_err(|source| StateError::Corrupt {
            path: temporary.clone(),
            source,
        })
        .and_then(|()| writer.flush().map_err(io_error(&temporary)))
        .and_then(|()| writer.get_ref().sync_all().map_err(io_error(&temporary)))
        .and_then(|()| fs::rename(&temporary, path).map_err(io_error(path)));
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(dir))
}

/// What the names of temporary state files end with.
const TEMPORARY_SUFFIX: &str = ".tmp";

/// Removes the temporary files that writers killed half-way left in a
/// state directory: `.NAME.PID.tmp` whose process is gone (a live one, such
/// as the user-space runtime writing its counters without the lock, keeps
/// its file).
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_suffix(TEMPORARY_SUFFIX) else {
            continue;
        };
        let writer = rest
            .rsplit('.')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        let alive = writer.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
        if !alive && entry.file_type().is_ok_and(|kind| kind.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

mod header {
    //! The top level of a state file, read without building the rest.

    use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

    /// The format, the kind and the names of the top-level keys.
    pub(super) struct Header {
        pub(super) format: Option<u64>,
        pub(super) kind: Option<String>,
        pub(super) keys: Vec<String>,
    }

    impl<'de> serde::Deserialize<'de> for Header {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(HeaderVisitor)
        }
    }

    struct HeaderVisitor;

    impl<'de> Visitor<'de> for HeaderVisitor {
        type Value = Header;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
            let mut header = Header {
                format: None,
                kind: None,
                keys: Vec::new(),
            };
            while let Some(key) = map.next_key::<String>()? {
                match key.as_str() {
                    "format" => header.format = Some(map.next_value()?),
                    "kind" => header.kind = Some(map.next_value()?),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                        header.keys.push(key);
                    }
                }
            }
            Ok(header)
        }
    }
}
