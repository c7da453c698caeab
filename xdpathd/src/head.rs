//! A request's head (request line and headers), read and checked before
//! hyper sees it: at most [`HEAD_LIMIT`] bytes and [`MAX_HEADERS`]
//! headers, and valid the way hyper parses it (the same `httparse`, the
//! same checks of the method, target, names, `Content-Length` and
//! `Transfer-Encoding`). hyper answers a head it cannot parse with an empty
//! 400 or 431 that no handler sees; here such a head gets the API's JSON
//! error, quoting its request line, and hyper only ever gets heads it
//! accepts.

use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::ApiError;
use crate::text::quote;

/// The largest head read.
pub const HEAD_LIMIT: usize = 16 * 1024;
/// The most headers in a head.
pub const MAX_HEADERS: usize = 64;

/// Why a head was not read.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The client left before it sent anything: there is no one to answer.
    #[error("the client closed the connection")]
    Gone,
    /// Reading failed.
    #[error("reading the request: {0}")]
    Io(#[from] std::io::Error),
    /// The head ended (the client shut its side) before its blank line.
    #[error("the request ended before its headers did: {line}")]
    Incomplete {
        /// The request line so far, quoted.
        line: String,
    },
    /// Not HTTP/1 as hyper parses it.
    #[error("the request is not valid HTTP/1.1 ({why}): {line}")]
    Malformed {
        /// What is wrong.
        why: String,
        /// The request line, quoted.
        line: String,
    },
    /// More than [`HEAD_LIMIT`] bytes or [`MAX_HEADERS`] headers.
    #[error("the request's headers are larger than {HEAD_LIMIT} bytes or more than {MAX_HEADERS}: {line}")]
    TooLarge {
        /// The request line, quoted.
        line: String,
    },
}

impl HeadError {
    /// The answer to send, if anyone is there to read it.
    pub fn answer(&self) -> Option<ApiError> {
        let message = self.to_string();
        match self {
            Self::Gone | Self::Io(_) => None,
            Self::Incomplete { .. } | Self::Malformed { .. } => {
                Some(ApiError::bad_request("malformed_request", message))
            }
            Self::TooLarge { .. } => Some(ApiError::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                message,
            )),
        }
    }
}

/// Reads a head; what it read stays in `buffer` (also after a timeout, to
/// quote it, and after the head, the start of the body, for hyper).
#[derive(Default)]
pub struct HeadReader {
    /// Everything read so far.
    pub buffer: Vec<u8>,
}

impl HeadReader {
    /// The request line so far, quoted and shortened.
    pub fn request_line(&self) -> String {
        let line = self
            .buffer
            .split(|byte| *byte == b'\n')
            .next()
            .unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        quote(&String::from_utf8_lossy(line))
    }

    /// Reads until the head is complete and checks it.
    pub async fn read(&mut self, io: &mut (impl AsyncRead + Unpin)) -> Result<(), HeadError> {
        let mut chunk = [0u8; 4096];
        loop {
            let count = io.read(&mut chunk).await?;
            let Some(read) = chunk.get(..count).filter(|read| !read.is_empty()) else {
                return Err(if self.buffer.is_empty() {
                    HeadError::Gone
                } else {
                    HeadError::Incomplete {
                        line: self.request_line(),
                    }
                });
            };
            // Only look for the blank line in what is new (and the three
            // bytes before it), so that a head sent a byte at a time is not
            // parsed once per byte.
            let from = self.buffer.len().saturating_sub(3);
            self.buffer.extend_from_slice(read);
            let ended = self.buffer.get(from..).is_some_and(|tail| {
                tail.windows(4).any(|window| window == b"\r\n\r\n")
                    || tail.windows(2).any(|window| window == b"\n\n")
            });
            if ended && self.parse()? {
                return Ok(());
            }
            if self.buffer.len() > HEAD_LIMIT {
                return Err(HeadError::TooLarge {
                    line: self.request_line(),
                });
            }
        }
    }

    /// Whether the buffer holds a whole head, which is then checked.
    fn parse(&self) -> Result<bool, HeadError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let malformed = |why: String| HeadError::Malformed {
            why,
            line: self.request_line(),
        };
        match request.parse(&self.buffer) {
            Ok(httparse::Status::Complete(length)) if length > HEAD_LIMIT => {
                Err(HeadError::TooLarge {
                    line: self.request_line(),
                })
            }
            Ok(httparse::Status::Complete(_)) => check(&request).map(|()| true).map_err(malformed),
            Ok(httparse::Status::Partial) => Ok(false),
            Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooLarge {
                line: self.request_line(),
            }),
            Err(error) => Err(malformed(error.to_string())),
        }
    }
}

/// What hyper checks of a parsed head beyond `httparse`.
fn check(request: &httparse::Request) -> Result<(), String> {
    let method = request.method.unwrap_or_default();
    Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("the method {} is not one", quote(method)))?;
    let target = request.path.unwrap_or_default();
    Uri::try_from(target).map_err(|_| format!("the target {} is not a URI", quote(target)))?;
    let mut length = None;
    for header in request.headers.iter() {
        let text = || quote(&String::from_utf8_lossy(header.value));
        HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("the header name {} is not one", quote(header.name)))?;
        HeaderValue::from_bytes(header.value)
            .map_err(|_| format!("the value of {} is not one", quote(header.name)))?;
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = content_length(header.value)
                .ok_or_else(|| format!("Content-Length {} is not a length", text()))?;
            if length.is_some_and(|earlier| earlier != value) {
                return Err(format!(
                    "Content-Length {} differs from an earlier one",
                    text()
                ));
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if request.version == Some(0) {
                return Err("Transfer-Encoding in an HTTP/1.0 request".into());
            }
            // hyper takes the last line's last coding; every line is held
            // to that here (stricter, so hyper never refuses one).
            let last = header
                .value
                .rsplit(|byte| *byte == b',')
                .next()
                .unwrap_or_default();
            if !last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(format!(
                    "Transfer-Encoding {} does not end in chunked",
                    text()
                ));
            }
        }
    }
    Ok(())
}

/// Digits only (no sign, no list), at most what hyper takes.
fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value)
        .ok()?
        .parse::<u64>()
        .ok()
        .filter(|length| *length <= u64::MAX - 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> Result<(), HeadError> {
        let mut io = bytes;
        HeadReader::default().read(&mut io).await
    }

    #[tokio::test]
    async fn heads_hyper_takes_are_taken() {
        for head in [
            &b"GET /v1/rules HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"\r\nPOST /v1/rules HTTP/1.0\r\nContent-Length: 12\r\n\r\n{}",
            b"POST /v1/config HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"GET / HTTP/1.1\nHost: x\n\n",
        ] {
            assert!(
                read(head).await.is_ok(),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[tokio::test]
    async fn heads_hyper_refuses_are_answered() {
        let cases: [(&[u8], &str); 8] = [
            (b"GARBAGE\r\n\r\n", "\"GARBAGE\""),
            (b"GET / HTTP/2.0\r\n\r\n", "version"),
            (
                b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                "Content-Length \"-1\"",
            ),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                "differs",
            ),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                "end in chunked",
            ),
            (
                b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                "HTTP/1.0",
            ),
            (
                b"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n",
                "\"GET / HTTP/1.1\"",
            ),
            (b"GET / HTTP/1.1\r\nHost: x", "ended before"),
        ];
        for (head, needle) in cases {
            let error = read(head).await.expect_err("accepted");
            let answer = error.answer().expect("an answer");
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{error}");
            assert!(answer.message.contains(needle), "{needle:?} not in {error}");
        }
    }

    #[tokio::test]
    async fn large_heads_are_refused_and_nothing_is_not_answered() {
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(HEAD_LIMIT));
        let many = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        for head in [big, many] {
            let error = read(head.as_bytes()).await.expect_err("accepted");
            let answer = error.answer().expect("an answer");
            assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
        let error = read(b"").await.expect_err("nothing accepted");
        assert!(error.answer().is_none());
    }
}
