//! Network namespaces: which one this process is in, and entering another.
//!
//! `ip netns exec` makes a fresh mount namespace (and remounts /sys) at
//! every call, so bpffs pins made inside it vanish. xdpath only ever enters
//! the *network* namespace (`setns(CLONE_NEWNET)`), keeping the host's bpffs.
//!
//! # Which namespace is which
//! A namespace's state (`/var/lib/xdpath/<key>`) and pins
//! (`/sys/fs/bpf/xdpath/<key>`) are kept under a [`NamespaceKey`] that no
//! other namespace can ever have:
//! - the host's own namespace (the one PID 1 is in) is `host`, the same
//!   after every reboot, so its rules come back with it;
//! - any other namespace is `netns-<cookie>-<boot id>`: the namespace
//!   cookie (`SO_NETNS_COOKIE`, Linux 5.14) is never reused while the host
//!   is up, and the boot id tells one boot's cookies from the next's.
//!
//! The inode number of `/proc/self/ns/net`, which xdpath used before, is
//! reused by the kernel minutes after a namespace is deleted: a new
//! namespace then found a deleted one's rules and VIPs.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `SO_NETNS_COOKIE` (include/uapi/asm-generic/socket.h), Linux 5.14.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The key of the host's own network namespace.
pub const HOST_KEY: &str = "host";
/// What the key of every other namespace starts with.
pub const OTHER_KEY_PREFIX: &str = "netns-";

/// A name for a network namespace that no other namespace can have, now or
/// after a reboot (see the module's documentation).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespaceKey(String);

impl NamespaceKey {
    /// The key as a path component.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the host's own namespace.
    pub fn is_host(&self) -> bool {
        self.0 == HOST_KEY
    }

    /// The namespace's cookie, for keys of namespaces other than the host's.
    pub fn cookie(&self) -> Option<u64> {
        let rest = self.0.strip_prefix(OTHER_KEY_PREFIX)?;
        rest.split('-').next()?.parse().ok()
    }

    /// The boot the key was made in, for keys other than the host's.
    pub fn boot(&self) -> Option<&str> {
        let rest = self.0.strip_prefix(OTHER_KEY_PREFIX)?;
        rest.split_once('-').map(|(_, boot)| boot)
    }

    /// Reads a key back from a directory name; `None` for anything that is
    /// not a key xdpath makes (so such a directory is never taken for a
    /// namespace's).
    pub fn parse(name: &str) -> Option<Self> {
        if name == HOST_KEY {
            return Some(Self(name.to_string()));
        }
        let rest = name.strip_prefix(OTHER_KEY_PREFIX)?;
        let (cookie, boot) = rest.split_once('-')?;
        let valid = !cookie.is_empty()
            && cookie.bytes().all(|byte| byte.is_ascii_digit())
            && boot.len() == 32
            && boot.bytes().all(|byte| byte.is_ascii_hexdigit());
        valid.then(|| Self(name.to_string()))
    }
}

impl fmt::Display for NamespaceKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The key of this thread's network namespace.
pub fn current_key() -> io::Result<NamespaceKey> {
    if is_host_namespace()? {
        migrate_once();
        return Ok(NamespaceKey(HOST_KEY.to_string()));
    }
    Ok(NamespaceKey(format!(
        "{OTHER_KEY_PREFIX}{}-{}",
        current_cookie()?,
        boot_id()?
    )))
}

/// Moves the host's directory under `root` from the name xdpath gave it
/// before namespace keys (the namespace's inode number) to `host`, once:
/// an upgrade keeps the host's rules (state) and its live programs (pins)
/// without a step of the operator's. Only the host's is moved: its inode
/// is never reused while the host is up, while another namespace's inode
/// dir may be a deleted namespace's (the bug keys fixed). Nothing is done
/// when `host` exists or there is nothing to move.
pub fn migrate_legacy_host_dir(root: &Path) {
    let Ok(here) = std::fs::metadata("/proc/thread-self/ns/net") else {
        return;
    };
    let legacy = root.join(std::os::unix::fs::MetadataExt::ino(&here).to_string());
    let host = root.join(HOST_KEY);
    if legacy.is_dir() && !host.exists() && std::fs::rename(&legacy, &host).is_ok() {
        log::info!(
            "moved {} to {} (namespace keys, issue 13)",
            legacy.display(),
            host.display()
        );
    }
}

/// The key of the namespace behind a file such as `/run/netns/NAME`.
pub fn key_of(path: &Path) -> io::Result<NamespaceKey> {
    run_in(path, current_key)?
}

/// Roots whose host directory [`migrate_legacy_host_dir`] moves.
const LEGACY_ROOTS: [&str; 2] = ["/var/lib/xdpath", "/sys/fs/bpf/xdpath"];

fn migrate_once() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        for root in LEGACY_ROOTS {
            migrate_legacy_host_dir(Path::new(root));
        }
    });
}

/// True when this thread is in the namespace PID 1 is in. Where PID 1's
/// namespace cannot be read (an init that is not dumpable, as some VM
/// agents are), the kernel's own thread kthreadd (PID 2), which always runs
/// in the initial namespace, stands in for it.
fn is_host_namespace() -> io::Result<bool> {
    let here = std::fs::metadata("/proc/thread-self/ns/net")?;
    let host = match std::fs::metadata("/proc/1/ns/net") {
        Ok(host) => host,
        Err(error) => {
            let kthreadd =
                std::fs::read_to_string("/proc/2/comm").is_ok_and(|name| name.trim() == "kthreadd");
            if !kthreadd {
                return Err(error);
            }
            std::fs::metadata("/proc/2/ns/net")?
        }
    };
    Ok(here.dev() == host.dev() && here.ino() == host.ino())
}

/// The cookie of this thread's network namespace: unique while the host is
/// up, never reused (a 64-bit counter).
pub fn current_cookie() -> io::Result<u64> {
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut cookie: u64 = 0;
    let mut length = size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes into `cookie`.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &mut length,
        )
    };
    if rc != 0 {
        let error = io::Error::last_os_error();
        return Err(io::Error::new(
            error.kind(),
            format!("reading the network namespace cookie (SO_NETNS_COOKIE needs Linux 5.14 or later): {error}"),
        ));
    }
    Ok(cookie)
}

/// This boot's id, 32 hex digits (`/proc/sys/kernel/random/boot_id`
/// without its dashes).
pub fn boot_id() -> io::Result<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    let id: String = text
        .trim()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect();
    if id.len() != 32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "/proc/sys/kernel/random/boot_id: unexpected {:?}",
                text.trim()
            ),
        ));
    }
    Ok(id.to_ascii_lowercase())
}

/// The cookies of every network namespace a process is in or a name under
/// `/run/netns` holds.
pub fn live_cookies() -> io::Result<std::collections::HashSet<u64>> {
    let mut seen = std::collections::HashSet::new();
    let mut paths = Vec::new();
    let mut consider = |path: std::path::PathBuf| {
        if let Ok(metadata) = std::fs::metadata(&path) {
            if seen.insert((metadata.dev(), metadata.ino())) {
                paths.push(path);
            }
        }
    };
    for entry in std::fs::read_dir("/proc")?.filter_map(Result::ok) {
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit()))
        {
            consider(entry.path().join("ns/net"));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for entry in entries.filter_map(Result::ok) {
            consider(entry.path());
        }
    }
    let mut cookies = std::collections::HashSet::new();
    for path in paths {
        // A process may have ended meanwhile: its namespace is not live.
        if let Ok(Ok(cookie)) = run_in(&path, current_cookie) {
            cookies.insert(cookie);
        }
    }
    Ok(cookies)
}

/// Moves the calling thread into the network namespace at `path`
/// (`/run/netns/NAME` or `/proc/PID/ns/net`).
pub fn enter(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `work` on a new thread inside the network namespace at `path`, so
/// the caller's thread stays where it is.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let path = path.to_path_buf();
    std::thread::spawn(move || -> io::Result<T> {
        enter(&path)?;
        Ok(work())
    })
    .join()
    .map_err(|_| io::Error::other("the thread in the namespace panicked"))?
}

/// Where the filter state of every namespace lives.
/// On disk, not in `/run`: the desired state (rules, blocklist, VIPs, runtime
/// changes) outlives a reboot, and the first command after one installs it
/// into the new maps.
pub const STATE_ROOT: &str = "/var/lib/xdpath";

/// The state directory of the namespace with this key.
pub fn state_dir_of(key: &NamespaceKey) -> std::path::PathBuf {
    std::path::Path::new(STATE_ROOT).join(key.as_str())
}

/// The state directory of this thread's namespace.
pub fn current_state_dir() -> std::io::Result<std::path::PathBuf> {
    current_key().map(|key| state_dir_of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_inode_named_dir_becomes_host_once() {
        let root = std::env::temp_dir().join(format!("xdpath-migrate-{}", std::process::id()));
        let inode = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata("/proc/thread-self/ns/net").expect("ns"),
        );
        std::fs::create_dir_all(root.join(inode.to_string())).expect("legacy dir");
        std::fs::write(root.join(inode.to_string()).join("filter.json"), "{}").expect("file");
        migrate_legacy_host_dir(&root);
        assert!(root.join(HOST_KEY).join("filter.json").exists());
        assert!(!root.join(inode.to_string()).exists());
        // A second legacy dir is left alone once `host` exists.
        std::fs::create_dir_all(root.join(inode.to_string())).expect("legacy dir");
        migrate_legacy_host_dir(&root);
        assert!(root.join(inode.to_string()).exists());
        std::fs::remove_dir_all(&root).expect("clean up");
    }

    #[test]
    fn keys_parse_back_and_nothing_else_does() {
        let boot = "0123456789abcdef0123456789abcdef";
        let key = NamespaceKey::parse(&format!("netns-4096-{boot}")).expect("a key");
        assert_eq!(key.cookie(), Some(4096));
        assert_eq!(key.boot(), Some(boot));
        assert!(NamespaceKey::parse("host").is_some_and(|key| key.is_host()));
        for name in [
            "",
            ".",
            "..",
            "4026531840",
            "netns-",
            "netns-12",
            "netns-x-0123456789abcdef0123456789abcdef",
            "netns-12-0123",
            "netns-12-0123456789abcdef0123456789abcdeg",
            "netns-12-../../etc",
        ] {
            assert!(NamespaceKey::parse(name).is_none(), "{name:?}");
        }
    }

    #[test]
    fn this_namespace_has_a_key_that_parses_back() {
        let key = current_key().expect("a key");
        assert_eq!(NamespaceKey::parse(key.as_str()), Some(key));
    }
}
