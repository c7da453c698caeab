//! Reading the files operators name (rule files, config files, captures,
//! program objects) with bounds: only a regular file is opened (a FIFO or
//! a device such as `/dev/zero` is refused before the first read, and
//! opening never blocks), at most a given size is read, and a text file's
//! lines have a length limit. Every refusal names the limit.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::text::quote_path;

/// The bounds a text file is read with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLimits {
    /// The most bytes read.
    pub max_bytes: u64,
    /// The longest line, in bytes (without its newline).
    pub max_line: usize,
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", quote_path(path))]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A FIFO, device, socket or directory where a file was expected.
    #[error("cannot read {}: it is a {kind}, not a regular file", quote_path(path))]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Larger than the limit.
    #[error("cannot read {}: it is larger than the limit of {}", quote_path(path), bytes(*limit))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, bytes.
        limit: u64,
    },
    /// A line longer than the limit.
    #[error(
        "{}: line {line} is longer than the limit of {limit} bytes",
        quote_path(path)
    )]
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The limit, bytes.
        limit: usize,
    },
    /// Not UTF-8 text.
    #[error("{}: line {line} is not UTF-8 text", quote_path(path))]
    NotText {
        /// The file.
        path: PathBuf,
        /// 1-based line number of the first invalid byte.
        line: usize,
    },
}

fn bytes(count: u64) -> String {
    match count {
        count if count >= 1 << 20 && count % (1 << 20) == 0 => format!("{} MiB", count >> 20),
        count if count >= 1 << 10 && count % (1 << 10) == 0 => format!("{} KiB", count >> 10),
        count => format!("{count} bytes"),
    }
}

fn kind_name(kind: std::fs::FileType) -> &'static str {
    if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// Opens a regular file for reading, refusing anything else, and returns
/// it with its size. Opening is non-blocking, so a FIFO without a writer
/// is refused at once instead of waiting for one.
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    let io_error = |source| InputError::Io {
        path: path.into(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.file_type().is_file() {
        return Err(InputError::NotRegular {
            path: path.into(),
            kind: kind_name(metadata.file_type()),
        });
    }
    Ok((file, metadata.len()))
}

/// Reads a regular file of at most `max_bytes` whole (a file that grows
/// past the limit while it is read is refused too).
pub fn read_bytes(path: &Path, max_bytes: u64) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_regular(path)?;
    let too_large = || InputError::TooLarge {
        path: path.into(),
        limit: max_bytes,
    };
    if size > max_bytes {
        return Err(too_large());
    }
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|source| InputError::Io {
            path: path.into(),
            source,
        })?;
    if data.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(data)
}

/// Reads a regular file as UTF-8 text within `limits`.
pub fn read_text(path: &Path, limits: TextLimits) -> Result<String, InputError> {
    let data = read_bytes(path, limits.max_bytes)?;
    for (index, line) in data.split(|&byte| byte == b'\n').enumerate() {
        let length = line.strip_suffix(b"\r").unwrap_or(line).len();
        if length > limits.max_line {
            return Err(InputError::LineTooLong {
                path: path.into(),
                line: index + 1,
                limit: limits.max_line,
            });
        }
    }
    String::from_utf8(data).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let before = error.as_bytes().get(..valid).unwrap_or_default();
        InputError::NotText {
            path: path.into(),
            line: before.iter().filter(|&&byte| byte == b'\n').count() + 1,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp(name: &str, contents: &[u8]) -> PathBuf {
        let path = std::env::temp_dir().join(format!("xdpath-input-{}-{name}", std::process::id()));
        let mut file = File::create(&path).expect("create");
        file.write_all(contents).expect("write");
        path
    }

    const LIMITS: TextLimits = TextLimits {
        max_bytes: 64,
        max_line: 8,
    };

    #[test]
    fn text_within_the_limits_is_read() {
        let path = temp("ok", b"one\r\ntwo\n12345678\n");
        assert_eq!(
            read_text(&path, LIMITS).expect("read"),
            "one\r\ntwo\n12345678\n"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn over_the_limits_is_refused_naming_them() {
        let long = temp("long", b"ok\n123456789\n");
        let error = read_text(&long, LIMITS).expect_err("long line");
        assert!(matches!(
            error,
            InputError::LineTooLong {
                line: 2,
                limit: 8,
                ..
            }
        ));
        assert!(error
            .to_string()
            .ends_with("line 2 is longer than the limit of 8 bytes"));
        let big = temp("big", &[b'a'; 65]);
        let error = read_text(&big, LIMITS).expect_err("too large");
        assert!(
            error
                .to_string()
                .ends_with("larger than the limit of 64 bytes"),
            "{error}"
        );
        let binary = temp("binary", b"ok\nok\n\xff\n");
        let error = read_text(&binary, LIMITS).expect_err("not text");
        assert!(
            matches!(error, InputError::NotText { line: 3, .. }),
            "{error}"
        );
        for path in [long, big, binary] {
            let _ = std::fs::remove_file(path);
        }
        assert_eq!(bytes(16 << 20), "16 MiB");
        assert_eq!(bytes(4096), "4 KiB");
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        for (path, kind) in [("/dev/zero", "character device"), ("/", "directory")] {
            let error = read_text(Path::new(path), LIMITS).expect_err(path);
            assert!(error.to_string().contains(kind), "{error}");
        }
        let fifo = std::env::temp_dir().join(format!("xdpath-input-{}-fifo", std::process::id()));
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo reads a valid C string.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // No writer: a blocking open would wait forever.
        let error = read_text(&fifo, LIMITS).expect_err("fifo");
        assert!(error.to_string().contains("it is a FIFO"), "{error}");
        let _ = std::fs::remove_file(fifo);
    }
}
