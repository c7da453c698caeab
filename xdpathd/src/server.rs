//! The API's connections, served by hand rather than by `axum::serve`,
//! which waits for a head as long as a client takes, keeps connections
//! alive without bound and accepts as many as the open-file limit allows:
//! 1,100 TCP clients sending a byte a second took every descriptor, and the
//! Unix socket stopped answering (issue 14).
//!
//! Here each listener serves at most its own number of connections (the
//! Unix socket's never count against TCP's). One more on TCP is answered
//! 503 and closed at once; one more on the Unix socket, root's own, waits
//! in the kernel's listen queue (which holds no descriptor of the daemon)
//! until a connection ends. A connection carries one request: its head must arrive
//! within the read timeout (else 408) and be valid ([`crate::head`]), its
//! body too ([`crate::body`]), and an answer the client does not take for
//! as long is abandoned. So a slow client holds its connection, and a file
//! descriptor, for about twice the read timeout at most.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::head::HeadReader;

/// How long to wait before accepting again when accepting failed (no
/// descriptor or memory left): a retry at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one warning about refused connections in this time.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);
/// After an answer on a connection that never reached a handler, how long
/// (and how much) to read what the client still sends, so that closing
/// does not reset the connection and lose the answer.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_LIMIT: usize = 1 << 20;

/// A listening socket.
pub trait Listener: Send + Sync + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn next(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
    /// Writes without waiting.
    fn try_write(io: &Self::Io, bytes: &[u8]) -> io::Result<usize>;
    /// Reads without waiting.
    fn try_read(io: &Self::Io, buffer: &mut [u8]) -> io::Result<usize>;
}

/// A tokio listener and its stream as a [`Listener`]: TCP and Unix
/// sockets differ only in their types.
macro_rules! tokio_listener {
    ($listener:ty, $stream:ty) => {
        impl Listener for $listener {
            type Io = $stream;

            async fn next(&self) -> io::Result<Self::Io> {
                self.accept().await.map(|(stream, _)| stream)
            }

            fn try_write(io: &Self::Io, bytes: &[u8]) -> io::Result<usize> {
                io.try_write(bytes)
            }

            fn try_read(io: &Self::Io, buffer: &mut [u8]) -> io::Result<usize> {
                io.try_read(buffer)
            }
        }
    };
}

tokio_listener!(tokio::net::TcpListener, tokio::net::TcpStream);
tokio_listener!(tokio::net::UnixListener, tokio::net::UnixStream);

/// How a listener serves.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The time a client has to send a request's head, again its body,
    /// and again to take each part of the answer.
    pub read_timeout: Duration,
    /// The most connections open at once.
    pub connections: usize,
    /// What becomes of one more.
    pub when_full: WhenFull,
}

/// What becomes of a connection over a listener's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// It waits in the listen queue until a connection ends.
    Wait,
    /// It is answered 503 and closed.
    Refuse,
}

/// Serves `listener` (named `name` in the log) until the task is dropped.
pub async fn serve<L: Listener>(listener: L, router: Router, limits: Limits, name: &'static str) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let mut warned: Option<Instant> = None;
    let mut warn = |what: String| {
        if warned.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL) {
            tracing::warn!(listener = name, "{what}");
            warned = Some(Instant::now());
        }
    };
    loop {
        let reserved = match limits.when_full {
            WhenFull::Wait => slots.clone().acquire_owned().await.ok(),
            WhenFull::Refuse => None,
        };
        let io = match listener.next().await {
            Ok(io) => io,
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                warn(format!("accepting: {error}"));
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        match reserved.map_or_else(|| slots.clone().try_acquire_owned().ok(), Some) {
            Some(slot) => {
                tokio::spawn(connection(io, router.clone(), limits.read_timeout, slot));
            }
            None => {
                refuse::<L>(&io, limits.connections);
                warn(format!(
                    "{} connections open: refusing more",
                    limits.connections
                ));
            }
        }
    }
}

/// Errors of one connection (it went away before it was accepted), not of
/// the listener.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Answers 503 without waiting and closes.
fn refuse<L: Listener>(io: &L::Io, limit: usize) {
    let error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        format!("this listener already serves {limit} connections: try again later"),
    );
    let _ = L::try_write(io, &error.to_http());
    let mut sink = [0u8; 4096];
    let _ = L::try_read(io, &mut sink);
}

async fn connection<Io>(
    mut io: Io,
    router: Router,
    read_timeout: Duration,
    _slot: OwnedSemaphorePermit,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut head = HeadReader::default();
    let refusal = match tokio::time::timeout(read_timeout, head.read(&mut io)).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => match error.answer() {
            Some(answer) => Some(answer),
            None => return,
        },
        Err(_) => Some(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request's headers did not arrive within {} s; so far: {}",
                read_timeout.as_secs(),
                head.request_line()
            ),
        )),
    };
    if let Some(error) = refusal {
        answer_and_close(&mut io, &error, read_timeout).await;
        return;
    }
    let io = Replayed::new(head.buffer, io, read_timeout);
    // half_close: a client that shuts its side after the request (as
    // `nc -N`, or a library's CloseWrite) still gets the answer; without
    // it hyper took that end of file for the client leaving and dropped
    // the handler, and the client got nothing, whether or not its change
    // was made.
    let served = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .half_close(true)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router))
        .await;
    if let Err(error) = served {
        tracing::debug!("connection: {error}");
    }
}

async fn answer_and_close<Io>(io: &mut Io, error: &ApiError, within: Duration)
where
    Io: AsyncRead + AsyncWrite + Unpin,
{
    let answer = async {
        io.write_all(&error.to_http()).await?;
        io.shutdown().await
    };
    if !matches!(tokio::time::timeout(within, answer).await, Ok(Ok(()))) {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < DRAIN_LIMIT {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(count) => drained += count,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// A connection with the head already read put back in front of it, and
/// whose writes fail once they have waited for the read timeout (a client
/// that does not take its answer).
struct Replayed<Io> {
    head: Vec<u8>,
    offset: usize,
    io: Io,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<Io> Replayed<Io> {
    fn new(head: Vec<u8>, io: Io, write_timeout: Duration) -> Self {
        Self {
            head,
            offset: 0,
            io,
            write_timeout,
            stalled: None,
        }
    }

    /// Ready with an error once a write has waited too long.
    fn poll_stall(&mut self, context: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(context));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client did not take the answer",
        ))
    }

    fn written<T>(
        &mut self,
        context: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.poll_stall(context).map(Err),
        }
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Replayed<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this.head.get(this.offset..).filter(|rest| !rest.is_empty()) {
            let count = rest.len().min(buffer.remaining());
            buffer.put_slice(rest.get(..count).unwrap_or_default());
            this.offset += count;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(context, buffer)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Replayed<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(context, bytes);
        this.written(context, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(context);
        this.written(context, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(context);
        this.written(context, polled)
    }
}
