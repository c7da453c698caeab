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
        let mut attempt = 0;
        let mut file = loop {
            let opened = match path.parent() {
                Some(dir) => crate::private_files::create_directory(dir),
                None => Ok(()),
            }
            .and_then(|()| crate::private_files::open_private(&path, true));
            match opened {
                // Another runtime of the namespace, leaving, removed the
                // directory while this one made or opened it: again.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound && attempt < 3 => {
                    attempt += 1;
                }
                opened => break opened?,
            }
        };
        writeln!(file, "{}", std::process::id())?;
        Ok(Self { path })
    }
}

impl Drop for UserspaceOwner {
    /// Removes the note, and the namespace's directory if no other note is
    /// left in it (`remove_dir` refuses a directory that is not empty).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
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
