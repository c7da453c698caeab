//! Who holds an interface's XDP hook when it is not xdpath's kernel
//! program: `xdpath run --userspace` leaves a note while it runs
//! (`/run/xdpath/<namespace key>/userspace-<interface>`, holding its pid),
//! so that `attach` can name it instead of "a program xdpath did not
//! attach". The note is in /run because it means nothing after a reboot.

use std::io::Write;
use std::path::PathBuf;

/// Where the notes of a namespace live.
const RUN_ROOT: &str = "/run/xdpath";

fn note_path(interface: &str) -> Option<PathBuf> {
    if !super::valid_interface_name(interface) {
        return None;
    }
    let key = crate::netns::current_key().ok()?;
    Some(
        PathBuf::from(RUN_ROOT)
            .join(key.as_str())
            .join(format!("userspace-{interface}")),
    )
}

/// The note of a running `xdpath run --userspace`; removed when dropped.
pub struct UserspaceOwner {
    path: PathBuf,
}

impl UserspaceOwner {
    /// Notes that this process serves `interface` in user space.
    pub fn claim(interface: &str) -> std::io::Result<Self> {
        let path = note_path(interface)
            .ok_or_else(|| std::io::Error::other("no note for this interface name"))?;
        if let Some(dir) = path.parent() {
            crate::private_files::create_directory(dir)?;
        }
        let mut file = crate::private_files::open_private(&path, true)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { path })
    }
}

impl Drop for UserspaceOwner {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The pid of the live `xdpath run --userspace` serving `interface`, if
/// one left its note (a note whose process is gone is ignored).
pub fn userspace_owner(interface: &str) -> Option<u32> {
    let text = std::fs::read_to_string(note_path(interface)?).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}
