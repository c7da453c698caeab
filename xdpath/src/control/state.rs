//! The desired filter state of a network namespace: what the operator asked
//! for, in operator terms (prefixes, ports, wall-clock expiry). It is kept
//! as JSON at `/var/lib/xdpath/<netns id>/filter.json` and compiled to the
//! kernel's representation by [`super::compile`].

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::parse::{Cidr, PortRange, TcpFlagsSpec};

pub use crate::netns::{state_dir_of, STATE_ROOT};
/// The state file's name inside a namespace's directory.
pub const STATE_FILE: &str = "filter.json";

/// The reflection (amplification) source ports guarded by default:
/// chargen, DNS, NTP, SNMP, CLDAP, SSDP, memcached.
pub const DEFAULT_REFLECTION_PORTS: [u16; 7] = [19, 53, 123, 161, 389, 1900, 11211];

/// How to recover from a state file that cannot be read; nothing that was
/// enforced stops being enforced meanwhile (the maps are left alone).
pub const RECOVER: &str = "the data path keeps what it enforces; run `xdpath state repair` to rebuild the file from the kernel's maps, or move it away to start empty";

/// Errors reading or writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read, written or renamed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file is not valid state JSON.
    #[error("{}: not a valid xdpath state file: {source}; {RECOVER}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// The file is JSON but not a state file of this kind and format.
    #[error("{}: not a valid xdpath state file: {why}; {RECOVER}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// The file was written by a newer xdpath.
    #[error("{}: written by a newer xdpath (state format {format}; this one reads format {STATE_FORMAT}): run that version, or `xdpath state repair` to rebuild the file from the kernel's maps", path.display())]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: u64,
    },
}

/// What a rule does with the traffic it matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    /// Let it through (no further filtering).
    #[default]
    Pass,
    /// Drop it.
    Drop,
}

impl RuleAction {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Drop => "drop",
        }
    }
}

/// One rule. A rule may hold many source prefixes (a prefix list loaded
/// from a file is one rule); it matches when the source is in one of them
/// (or, with no sources, when the destination is in `destination`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// Stable id, 1 to 65535; hits are counted under it.
    pub id: u32,
    /// Source prefixes; empty: any source (the rule is then a
    /// destination rule).
    #[serde(default)]
    pub sources: Vec<Cidr>,
    /// Destination prefix.
    #[serde(default)]
    pub destination: Option<Cidr>,
    /// IP protocol; none: any.
    #[serde(default)]
    pub protocol: Option<u8>,
    /// Destination ports (TCP and UDP only).
    #[serde(default)]
    pub ports: Option<PortRange>,
    /// TCP flags that must be set or clear.
    #[serde(default)]
    pub tcp_flags: Option<TcpFlagsSpec>,
    /// What to do on a match.
    pub action: RuleAction,
    /// Only on this interface.
    #[serde(default)]
    pub interface: Option<String>,
    /// Count what it would drop without dropping.
    #[serde(default)]
    pub monitor: bool,
}

impl RuleSpec {
    /// The same rule without id and sources: rules of one shape can share
    /// one kernel rule.
    pub fn same_shape(&self, other: &RuleSpec) -> bool {
        self.destination == other.destination
            && self.protocol == other.protocol
            && self.ports == other.ports
            && self.tcp_flags == other.tcp_flags
            && self.action == other.action
            && self.interface == other.interface
            && self.monitor == other.monitor
    }
}

/// A blocked prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockSpec {
    /// The prefix.
    pub prefix: Cidr,
    /// When it stops matching, seconds since the Unix epoch; none: never.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

/// Which address a rate limit keys its buckets by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKey {
    /// Per source address (or source prefix, with aggregation).
    #[default]
    Src,
    /// Per destination.
    Dst,
}

/// One token-bucket rate limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitSpec {
    /// Stable id.
    pub id: u32,
    /// Packets per second.
    #[serde(default)]
    pub packets_per_second: Option<u64>,
    /// Bucket size in packets.
    #[serde(default)]
    pub burst_packets: u64,
    /// Bytes per second.
    #[serde(default)]
    pub bytes_per_second: Option<u64>,
    /// Bucket size in bytes.
    #[serde(default)]
    pub burst_bytes: u64,
    /// Per source or per destination.
    #[serde(default)]
    pub per: LimitKey,
    /// IPv4 aggregation length (32: per address).
    pub aggregate_v4: u8,
    /// IPv6 aggregation length (128: per address).
    pub aggregate_v6: u8,
    /// Only addresses (of `per`) inside this prefix.
    #[serde(default)]
    pub scope: Option<Cidr>,
    /// Only this IP protocol.
    #[serde(default)]
    pub protocol: Option<u8>,
    /// Only TCP SYNs without ACK.
    #[serde(default)]
    pub syn_only: bool,
    /// Count without dropping.
    #[serde(default)]
    pub monitor: bool,
}

/// What to do with IP fragments, as the operator says it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum FragmentChoice {
    /// Pass every fragment.
    #[default]
    Pass,
    /// Drop the fragments after the first (no transport header).
    DropLater,
    /// Drop every fragment.
    DropAll,
}

impl FragmentChoice {
    /// Kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::DropLater => "drop-later",
            Self::DropAll => "drop-all",
        }
    }
}

/// The amplification guard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmplificationGuard {
    /// On or off.
    pub enabled: bool,
    /// Reflection source ports.
    pub ports: Vec<PortRange>,
    /// Destinations that expect replies from those ports.
    #[serde(default)]
    pub expect: Vec<Cidr>,
}

impl Default for AmplificationGuard {
    fn default() -> Self {
        Self {
            enabled: false,
            ports: DEFAULT_REFLECTION_PORTS
                .iter()
                .map(|&port| PortRange {
                    low: port,
                    high: port,
                })
                .collect(),
            expect: Vec::new(),
        }
    }
}

/// SYN-cookie mode (the data path is kernel-only).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SynCookieGuard {
    /// On or off.
    pub enabled: bool,
    /// Protected TCP destination ports.
    #[serde(default)]
    pub ports: Vec<PortRange>,
}

/// The stateless guards and SYN cookies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Guards {
    /// The TCP flag-anomaly guard.
    pub tcp_flags: bool,
    /// The amplification guard.
    pub amplification: AmplificationGuard,
    /// IPv4 fragment policy.
    pub fragments_v4: FragmentChoice,
    /// IPv6 fragment policy.
    pub fragments_v6: FragmentChoice,
    /// SYN-cookie mode.
    pub syn_cookies: SynCookieGuard,
}

/// Traffic the filter never drops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Management {
    /// Source prefixes.
    pub prefixes: Vec<Cidr>,
    /// TCP and UDP destination ports.
    pub ports: Vec<u16>,
}

/// The whole desired filter state of a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterState {
    /// Rules, in evaluation order (by id).
    pub rules: Vec<RuleSpec>,
    /// The next rule id to hand out.
    pub next_rule_id: u32,
    /// What happens to traffic no rule matches.
    pub default_action: RuleAction,
    /// The default drop is only counted.
    pub default_monitor: bool,
    /// Blocked prefixes.
    pub blocklist: Vec<BlockSpec>,
    /// Rate limits, in evaluation order.
    pub rate_limits: Vec<LimitSpec>,
    /// The next rate-limit id to hand out.
    pub next_limit_id: u32,
    /// Guards.
    pub guards: Guards,
    /// The management guard.
    pub management: Management,
}

impl FilterState {
    /// Removes the blocklist entries expired at `now` (Unix seconds);
    /// returns how many.
    pub fn sweep_expired(&mut self, now: u64) -> usize {
        let before = self.blocklist.len();
        self.blocklist
            .retain(|entry| entry.expires_at.is_none_or(|expiry| expiry > now));
        before - self.blocklist.len()
    }

    /// The rule with this id.
    pub fn rule(&self, id: u32) -> Option<&RuleSpec> {
        self.rules.iter().find(|rule| rule.id == id)
    }
}

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
    serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
        path: path.into(),
        source,
    })
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
