//! What the daemon checks and takes before it serves, in the order it does
//! so, each refusal leaving everything as it was: the token file (private,
//! as ssh wants a key), the socket's directory (only root may change it)
//! and what is at the socket's path (only a stale socket is replaced), the
//! namespace's daemon lock (one daemon per namespace), the socket (0600
//! from the start); then enough file descriptors for every listener's
//! connections.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use xdpath::private_files::UnsafePath;

/// The daemon's lock in the namespace's state directory, held while it
/// runs; it holds the daemon's pid and socket.
pub const LOCK_FILE: &str = "xdpathd.lock";
/// The longest token file read.
const TOKEN_LIMIT: u64 = 4096;
/// The shortest token.
const TOKEN_MINIMUM: usize = 16;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--listen` without a token.
    #[error("--listen needs --token-file: TCP calls must carry a bearer token")]
    NoToken,
    /// A file or socket could not be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A path that only root may change could be changed by others.
    #[error("{}: {refusal}", refusal.path().display())]
    Unsafe {
        /// What is wrong with which path.
        #[from]
        refusal: UnsafePath,
    },
    /// The token is too short.
    #[error("the token in {} is shorter than {TOKEN_MINIMUM} characters", path.display())]
    ShortToken {
        /// The token file.
        path: PathBuf,
    },
    /// The token file is larger than a token.
    #[error("{} is larger than {TOKEN_LIMIT} bytes: not a token file", path.display())]
    LongToken {
        /// The token file.
        path: PathBuf,
    },
    /// A daemon answers on the socket already.
    #[error("another xdpathd answers on {}", path.display())]
    Running {
        /// The socket.
        path: PathBuf,
    },
    /// A daemon serves this namespace already.
    #[error("another xdpathd ({holder}) serves this network namespace")]
    NamespaceTaken {
        /// Its pid and socket, as its lock file says.
        holder: String,
    },
    /// Something other than a socket is at the socket's path.
    #[error("{} exists and is not a socket: refusing to replace it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| {
        // A refusal names its path itself.
        if !source
            .get_ref()
            .is_some_and(|inner| inner.is::<UnsafePath>())
        {
            return StartError::Io {
                path: path.to_path_buf(),
                source,
            };
        }
        let kind = source.kind();
        match source
            .into_inner()
            .map(|inner| inner.downcast::<UnsafePath>())
        {
            Some(Ok(refusal)) => StartError::Unsafe { refusal: *refusal },
            Some(Err(inner)) => StartError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(kind, inner),
            },
            None => StartError::Io {
                path: path.to_path_buf(),
                source: kind.into(),
            },
        }
    }
}

/// Reads the bearer token: a private regular file of one token.
pub fn read_token(path: &Path) -> Result<String, StartError> {
    let file = xdpath::private_files::open_secret(path).map_err(io_error(path))?;
    let mut text = String::new();
    file.take(TOKEN_LIMIT + 1)
        .read_to_string(&mut text)
        .map_err(io_error(path))?;
    if text.len() as u64 > TOKEN_LIMIT {
        return Err(StartError::LongToken {
            path: path.to_path_buf(),
        });
    }
    let token = text.trim().to_string();
    if token.len() < TOKEN_MINIMUM {
        return Err(StartError::ShortToken {
            path: path.to_path_buf(),
        });
    }
    Ok(token)
}

/// Takes this namespace's daemon lock (without waiting) and writes the
/// daemon's pid and socket into it; the returned file holds the lock until
/// the process ends. A daemon holding it already is named.
pub fn lock_namespace(socket: &Path) -> Result<File, StartError> {
    let dir = xdpath::control::state::state_dir().map_err(|error| StartError::Io {
        path: PathBuf::from("/proc/thread-self/ns/net"),
        source: std::io::Error::other(error.to_string()),
    })?;
    xdpath::private_files::create_directory(&dir).map_err(io_error(&dir))?;
    let path = dir.join(LOCK_FILE);
    // Not truncated before the lock is ours: it names the holder.
    let mut file = xdpath::private_files::open_private(&path, false).map_err(io_error(&path))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = Read::by_ref(&mut file)
            .take(4096)
            .read_to_string(&mut holder);
        return Err(StartError::NamespaceTaken {
            holder: crate::text::escape(holder.trim()),
        });
    }
    let note = format!("pid {}, socket {}\n", std::process::id(), socket.display());
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(note.as_bytes()))
        .map_err(io_error(&path))?;
    Ok(file)
}

/// Checks the socket's directory (creating it, 0700, if it is missing)
/// and what is at the socket's path: nothing, or a socket nothing answers
/// on (a daemon that died), which is removed. Anything else is refused and
/// left as it is.
pub fn prepare_socket_path(path: &Path) -> Result<(), StartError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if dir.exists() {
        xdpath::private_files::check_directory(dir).map_err(io_error(dir))?;
    } else {
        xdpath::private_files::create_directory(dir).map_err(io_error(dir))?;
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(io_error(path)(source)),
    };
    if !meta.file_type().is_socket() {
        return Err(StartError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(StartError::Running {
            path: path.to_path_buf(),
        });
    }
    // Removed only if it is still the socket that was checked.
    let now = std::fs::symlink_metadata(path).map_err(io_error(path))?;
    if now.ino() != meta.ino() || now.dev() != meta.dev() {
        return Err(StartError::NotASocket {
            path: path.to_path_buf(),
        });
    }
    std::fs::remove_file(path).map_err(io_error(path))
}

/// Binds the Unix socket with mode 0600 from the start: bind(2) creates it
/// with the umask's mode, so the umask is narrowed around it (no thread
/// runs yet that could create anything meanwhile).
pub fn bind_socket(path: &Path) -> Result<std::os::unix::net::UnixListener, StartError> {
    // SAFETY: umask only changes the process's file-creation mask.
    let previous = unsafe { libc::umask(0o177) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    let listener = bound.map_err(io_error(path))?;
    listener.set_nonblocking(true).map_err(io_error(path))?;
    Ok(listener)
}

/// Raises the soft open-file limit to the hard one and returns it.
pub fn raise_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}
