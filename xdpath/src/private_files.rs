//! Directories and files that only their owner (root) may change: the
//! state and pin directories, the state, lock and note files, the daemon's
//! socket directory and token file.
//!
//! They are created with their mode from the start (directories 0700,
//! files 0600), whatever the caller's umask: under `umask 000` a plain
//! `create_dir_all` makes 0777 directories, and whoever can write a state
//! directory can replace what xdpath reads there (the rules, the note
//! naming the daemon's socket) and whoever can open a lock file can hold
//! it. What already exists is checked before use: a directory or file
//! that another user owns, or that group or others can write, is refused
//! rather than trusted or silently repaired.

use std::fs::{DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of the directories xdpath creates.
pub const DIRECTORY_MODE: u32 = 0o700;
/// The mode of the files xdpath creates.
pub const FILE_MODE: u32 = 0o600;

/// Why a path is not safe to use. The messages leave the path out, as
/// `io::Error`s do: whoever reports one puts it in front (`path: why`),
/// and [`UnsafePath::path`] gives it.
#[derive(Debug, thiserror::Error)]
pub enum UnsafePath {
    /// Owned by someone other than root or this user.
    #[error("owned by uid {owner}, not by root: refusing to use it")]
    Owner {
        /// The path.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// Group or others may write it.
    #[error("writable by group or others (mode {mode:04o}): refusing to use it (chmod go-w)")]
    Writable {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Group or others may read or write it (a secret).
    #[error(
        "accessible to group or others (mode {mode:04o}): a secret must be private (chmod 600)"
    )]
    Exposed {
        /// The path.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Not the kind of file expected there.
    #[error("not a {expected}")]
    Kind {
        /// The path.
        path: PathBuf,
        /// What it should be.
        expected: &'static str,
    },
    /// A directory above the path is not safe: others could rename or
    /// replace what is below it.
    #[error("{}, above it, is {why}", ancestor.display())]
    Above {
        /// The path.
        path: PathBuf,
        /// The directory above it.
        ancestor: PathBuf,
        /// What is wrong with that one.
        why: Box<UnsafePath>,
    },
}

impl UnsafePath {
    /// The path refused.
    pub fn path(&self) -> &Path {
        match self {
            Self::Owner { path, .. }
            | Self::Writable { path, .. }
            | Self::Exposed { path, .. }
            | Self::Kind { path, .. }
            | Self::Above { path, .. } => path,
        }
    }
}

impl From<UnsafePath> for io::Error {
    fn from(error: UnsafePath) -> Self {
        io::Error::new(io::ErrorKind::PermissionDenied, error)
    }
}

fn permission_bits(meta: &Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// Root's or this user's.
fn check_owner(path: &Path, meta: &Metadata) -> Result<(), UnsafePath> {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == 0 || meta.uid() == me {
        return Ok(());
    }
    Err(UnsafePath::Owner {
        path: path.to_path_buf(),
        owner: meta.uid(),
    })
}

/// What [`UnsafePath::Kind`] calls a file that must be a regular one.
const REGULAR_FILE: &str = "regular file";

/// Refuses `path` unless it is of the kind `expected` (`is_kind`: whether
/// its metadata says so).
fn require_kind(path: &Path, is_kind: bool, expected: &'static str) -> Result<(), UnsafePath> {
    if is_kind {
        return Ok(());
    }
    Err(UnsafePath::Kind {
        path: path.to_path_buf(),
        expected,
    })
}

/// Owned by root or this user, and not writable by group or others.
pub fn check_metadata(path: &Path, meta: &Metadata) -> Result<(), UnsafePath> {
    check_owner(path, meta)?;
    if meta.mode() & 0o022 != 0 {
        return Err(UnsafePath::Writable {
            path: path.to_path_buf(),
            mode: permission_bits(meta),
        });
    }
    Ok(())
}

/// Checks the directory `path` (owned by root or this user, not writable
/// by group or others) and every directory above it (the same, except
/// that a root-owned sticky directory such as `/tmp` may be writable:
/// others cannot rename or remove what is in it).
pub fn check_directory(path: &Path) -> io::Result<()> {
    let real = std::fs::canonicalize(path)?;
    let meta = std::fs::metadata(&real)?;
    require_kind(path, meta.is_dir(), "directory")?;
    check_metadata(path, &meta)?;
    for ancestor in real.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor)?;
        let sticky = meta.mode() & libc::S_ISVTX != 0 && meta.uid() == 0;
        let refused = check_owner(ancestor, &meta).err().or_else(|| {
            (meta.mode() & 0o022 != 0 && !sticky).then(|| UnsafePath::Writable {
                path: ancestor.to_path_buf(),
                mode: permission_bits(&meta),
            })
        });
        if let Some(why) = refused {
            return Err(UnsafePath::Above {
                path: path.to_path_buf(),
                ancestor: ancestor.to_path_buf(),
                why: Box::new(why),
            }
            .into());
        }
    }
    Ok(())
}

/// Creates the directory `path` and any missing parents with mode 0700,
/// then checks it ([`check_directory`]).
pub fn create_directory(path: &Path) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIRECTORY_MODE)
        .create(path)?;
    check_directory(path)
}

/// Opens `path` for reading and writing, creating it with mode 0600 (and
/// emptying it with `truncate`). A symbolic link there is refused, and an
/// existing file that group or others may use is narrowed to 0600: it is
/// one of ours, in a directory only we can write.
pub fn open_private(path: &Path, truncate: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    check_owner(path, &meta)?;
    require_kind(path, meta.is_file(), REGULAR_FILE)?;
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(file)
}

/// Checks a file opened for reading: a regular file, owned by root or this
/// user, not writable by group or others.
pub fn check_file(file: &File, path: &Path) -> io::Result<()> {
    let meta = file.metadata()?;
    require_kind(path, meta.is_file(), REGULAR_FILE)?;
    Ok(check_metadata(path, &meta)?)
}

/// Opens a secret for reading (never blocking on a FIFO) and checks it as
/// ssh checks a private key: a regular file, owned by root or this user,
/// neither readable nor writable by group or others.
pub fn open_secret(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    require_kind(path, meta.is_file(), REGULAR_FILE)?;
    check_owner(path, &meta)?;
    if meta.mode() & 0o077 != 0 {
        return Err(UnsafePath::Exposed {
            path: path.to_path_buf(),
            mode: permission_bits(&meta),
        }
        .into());
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xdpath-private-files-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .map(|meta| permission_bits(&meta))
            .unwrap_or(0)
    }

    #[test]
    fn created_private_whatever_the_umask() {
        let dir = scratch("umask");
        // SAFETY: umask only; other tests of this binary create nothing
        // whose mode they check.
        let old = unsafe { libc::umask(0) };
        let nested = dir.join("a/b");
        let created = create_directory(&nested);
        let file = created
            .as_ref()
            .ok()
            .map(|_| open_private(&nested.join("f"), true));
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        assert!(created.is_ok(), "{created:?}");
        assert!(file.is_some_and(|file| file.is_ok()));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&nested.join("f")), 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn open_directories_and_files_are_refused() {
        let dir = scratch("open");
        create_directory(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let refused = create_directory(&dir).expect_err("0777 accepted");
        assert!(refused
            .to_string()
            .contains("writable by group or others (mode 0777)"));
        let inner = dir.join("inner");
        std::fs::create_dir(&inner).expect("inner");
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let refused = check_directory(&inner).expect_err("a writable parent accepted");
        let above = format!("{}, above it, is writable", dir.display());
        assert!(refused.to_string().starts_with(&above), "{refused}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        check_directory(&inner).expect("private");

        let secret = dir.join("secret");
        std::fs::write(&secret, "token").expect("write");
        for bits in [0o644, 0o640, 0o620, 0o602, 0o604] {
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(bits))
                .expect("chmod");
            let refused = open_secret(&secret).expect_err("an open secret accepted");
            let needle = format!("accessible to group or others (mode {bits:04o})");
            assert!(refused.to_string().contains(&needle), "{refused}");
        }
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        open_secret(&secret).expect("a private secret");

        let link = dir.join("link");
        std::os::unix::fs::symlink(&secret, &link).expect("symlink");
        assert!(open_private(&link, false).is_err(), "a symlink followed");
        let _ = std::fs::remove_dir_all(dir);
    }
}
