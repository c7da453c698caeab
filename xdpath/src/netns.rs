//! Network namespaces: which one this process is in, and entering another.
//!
//! `ip netns exec` makes a fresh mount namespace (and remounts /sys) at
//! every call, so bpffs pins made inside it vanish. xdpath only ever enters
//! the *network* namespace (`setns(CLONE_NEWNET)`), keeping the host's bpffs.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The inode of this thread's network namespace: a stable name for it as
/// long as it exists, used to keep pins of different namespaces apart.
pub fn current_id() -> io::Result<u64> {
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// The id of the namespace behind a file such as `/run/netns/NAME`.
pub fn id_of(path: &Path) -> io::Result<u64> {
    Ok(std::fs::metadata(path)?.ino())
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
