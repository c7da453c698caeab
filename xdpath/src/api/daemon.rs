//! The CLI's way to the daemon: when `xdpathd` runs in this network
//! namespace, changes go through its API, so its config generation, its
//! log and its health checker see them; when it does not, the CLI works on
//! the pinned state itself. Both run the same operations on the same
//! locked state, so the results are the same either way.
//!
//! The daemon announces its socket in `/var/lib/xdpath/<netns id>/xdpathd`
//! (a socket path is global, a namespace is not), and a stale note (the
//! daemon was killed) is ignored because nothing answers on the socket.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// The file in a namespace's state directory naming the daemon's socket.
pub const NOTE_FILE: &str = "xdpathd";

/// Why a call through the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The daemon refused the change (its message is the library's).
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The machine-readable code.
        code: String,
        /// What went wrong.
        message: String,
    },
    /// The daemon answered, but not in its API's terms.
    #[error("xdpathd at {}: {why}", socket.display())]
    Protocol {
        /// Its socket.
        socket: PathBuf,
        /// What was wrong.
        why: String,
    },
}

/// The socket of the daemon of this namespace, if one answers.
pub fn socket() -> Option<PathBuf> {
    if std::env::var_os("XDPATH_NO_DAEMON").is_some() {
        return None;
    }
    let dir = crate::netns::current_state_dir().ok()?;
    let socket = PathBuf::from(read_note(&dir.join(NOTE_FILE))?.trim());
    // The note may be stale (a namespace that reused a deleted one's inode),
    // and another namespace's daemon may listen on that path now: only a
    // daemon of this namespace gets our changes.
    let here = crate::netns::current_key().ok()?;
    let config = call(&socket, "GET", "/v1/config", None).ok()?;
    (config["netns"].as_str() == Some(here.as_str())).then_some(socket)
}

/// The note's text, if it is there and only root could have written it
/// (whoever could write it would receive the CLI's changes).
fn read_note(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    crate::private_files::check_file(&file, path).ok()?;
    let mut text = String::new();
    // A socket path is short; a longer note is not one of ours.
    file.take(NOTE_LIMIT).read_to_string(&mut text).ok()?;
    Some(text)
}

/// The longest note read.
const NOTE_LIMIT: u64 = 4096;

/// Writes (or with `None` removes) this namespace's note of the daemon's
/// socket.
pub fn announce(socket: Option<&Path>) -> std::io::Result<()> {
    let dir = crate::netns::current_state_dir()?;
    let note = dir.join(NOTE_FILE);
    match socket {
        Some(socket) => {
            crate::private_files::create_directory(&dir)?;
            // Named with this pid, as every temporary of the state dir is:
            // one without a live writer's pid is removed as stale by
            // whoever takes the namespace's lock (the daemon's own check
            // did, between the write and the rename).
            let temporary = dir.join(format!(".{NOTE_FILE}.{}.tmp", std::process::id()));
            let mut file = crate::private_files::open_private(&temporary, true)?;
            file.write_all(socket.as_os_str().as_encoded_bytes())?;
            std::fs::rename(temporary, note)
        }
        None => match std::fs::remove_file(note) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        },
    }
}

/// One HTTP/1.1 request over the daemon's socket; the JSON answer of a
/// 2xx, or the daemon's error.
pub fn call(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, DaemonError> {
    let protocol = |why: String| DaemonError::Protocol {
        socket: socket.to_path_buf(),
        why,
    };
    let mut stream = UnixStream::connect(socket).map_err(|error| protocol(error.to_string()))?;
    // A change may rebuild large tables: allow it time, but not forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(300)));
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|error| protocol(error.to_string()))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|error| protocol(error.to_string()))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| protocol("no HTTP header".into()))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| protocol("no HTTP status".into()))?;
    // Connection: close and no chunking from axum for small JSON bodies;
    // a chunked body would not parse, and says so.
    let value: Value = serde_json::from_str(body.trim())
        .map_err(|error| protocol(format!("answer is not JSON: {error}")))?;
    if (200..300).contains(&status) {
        return Ok(value);
    }
    Err(DaemonError::Refused {
        status,
        code: value["error"]["code"].as_str().unwrap_or("unknown").into(),
        message: value["error"]["message"]
            .as_str()
            .unwrap_or("the daemon refused the change")
            .into(),
    })
}

/// `text` percent-encoded for a query string (unreserved characters kept).
pub fn query_value(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}
