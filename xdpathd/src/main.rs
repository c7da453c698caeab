//! `xdpathd`: the xdpath daemon of a host (its network namespace). It
//! serves a REST API and Prometheus metrics over the data path the `xdpath`
//! CLI manages: the same pinned maps and the same locked state, so the CLI
//! and the API can be used side by side with the same results, and the
//! data path keeps running while the daemon is down (nothing of it lives in
//! the daemon's memory).
//!
//! By default it listens only on a Unix socket (root, mode 0600); with
//! `--listen` also on TCP, where every call but `/metrics` needs the
//! bearer token of `--token-file`.

mod api;
mod body;
mod config_api;
mod enforce;
mod error;
mod extract;
mod head;
mod health;
mod lb_api;
mod metrics;
mod observe;
mod ops;
mod reply;
mod server;
mod shared;
mod startup;
mod text;

use std::fs::File;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use clap::Parser;

use error::ApiError;
use server::{Limits, WhenFull};
use startup::StartError;

/// The most connections the Unix socket serves at once (more wait their
/// turn). Its own: TCP's never take its place.
const UNIX_CONNECTIONS: usize = 64;
/// The most connections the TCP listener serves at once (fewer if the
/// open-file limit has no room for them).
const TCP_CONNECTIONS: usize = 512;
/// File descriptors kept for the daemon's own work besides its
/// connections: 16 at rest (the sample ring, the locks, the runtime), and
/// the pinned maps of at most eight operations at once (41 at most for
/// one `/metrics` with one interface and one VIP; see `shared::blocking`),
/// health probes.
const RESERVED_FILES: u64 = 384;

#[derive(Parser)]
#[command(
    name = "xdpathd",
    version,
    about = "The xdpath daemon: REST API and metrics"
)]
struct Args {
    /// Apply this declarative config (TOML, as `xdpath apply -f`) at start
    /// and on SIGHUP; one with any error is refused whole and the running
    /// state stays.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The Unix socket of the API.
    #[arg(long, default_value = "/run/xdpath/xdpathd.sock")]
    socket: PathBuf,
    /// Also serve the API on this TCP address (every call but /metrics
    /// then needs the bearer token of --token-file).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// The file holding the bearer token for --listen (16 characters or
    /// more; readable by its owner only).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// The time a client has to send a request's headers, again its body,
    /// and again to take each part of the answer (1 to 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    read_timeout: u64,
    /// How log lines are written: text (coloured only on a terminal) or
    /// json (one object a line, for log shippers).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The daemon's log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines; ANSI colour only when stdout is a terminal
    /// and `NO_COLOR` is not set.
    Text,
    /// One JSON object a line.
    Json,
}

/// Starts the log: to stdout, which journald or a file takes when the
/// daemon runs as a service, so colour codes are written only to a
/// terminal.
fn start_log(format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stdout);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => {
            let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init();
        }
    }
}

/// What is checked and taken before the runtime starts its threads.
struct Prepared {
    token: Option<String>,
    /// Held while the daemon runs: one daemon per namespace.
    _namespace_lock: File,
    unix: std::os::unix::net::UnixListener,
}

/// The library's warnings and notes (the `log` facade) in the daemon's
/// own log.
struct LibraryLog;

impl log::Log for LibraryLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        xdpath::report::is_ours(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match record.level() {
            log::Level::Error => tracing::error!("{}", record.args()),
            log::Level::Warn => tracing::warn!("{}", record.args()),
            log::Level::Info => tracing::info!("{}", record.args()),
            _ => {}
        }
    }

    fn flush(&self) {}
}

fn main() -> ExitCode {
    // What the daemon creates is root's alone, whatever umask it was
    // started with: the socket, the state, lock and note files.
    // SAFETY: umask only changes the process's file-creation mask.
    unsafe { libc::umask(0o077) };
    let args = Args::parse();
    start_log(args.log_format);
    if log::set_logger(&LibraryLog).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    // The daemon runs the operations itself, never through its own API.
    // Set before any thread starts.
    std::env::set_var("XDPATH_NO_DAEMON", "1");
    let prepared = match prepare(&args) {
        Ok(prepared) => prepared,
        Err(error) => {
            eprintln!("xdpathd: error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("xdpathd: error: starting the runtime: {error}");
            let _ = std::fs::remove_file(&args.socket);
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args, prepared)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xdpathd: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The checks, in order, and the Unix socket; on one thread, so that the
/// umask narrowed around bind(2) affects nothing else.
fn prepare(args: &Args) -> Result<Prepared, StartError> {
    let token = match (&args.listen, &args.token_file) {
        (Some(_), None) => return Err(StartError::NoToken),
        (_, Some(path)) => Some(startup::read_token(path)?),
        (None, None) => None,
    };
    startup::prepare_socket_path(&args.socket)?;
    let namespace_lock = startup::lock_namespace(&args.socket)?;
    let unix = startup::bind_socket(&args.socket)?;
    Ok(Prepared {
        token,
        _namespace_lock: namespace_lock,
        unix,
    })
}

/// Each listener's limits; TCP's shrinks to what the open-file limit
/// leaves after the Unix socket's connections and the daemon's own files.
fn limits(read_timeout: Duration) -> (Limits, Limits) {
    let files = startup::raise_file_limit();
    let room = files.saturating_sub(RESERVED_FILES + UNIX_CONNECTIONS as u64);
    let tcp = usize::try_from(room)
        .unwrap_or(usize::MAX)
        .min(TCP_CONNECTIONS);
    if tcp < TCP_CONNECTIONS {
        tracing::warn!(
            files,
            "the open-file limit leaves room for {tcp} TCP connections, not {TCP_CONNECTIONS} (LimitNOFILE=)"
        );
    }
    let unix = Limits {
        read_timeout,
        connections: UNIX_CONNECTIONS,
        when_full: WhenFull::Wait,
    };
    (
        unix,
        Limits {
            read_timeout,
            connections: tcp,
            when_full: WhenFull::Refuse,
        },
    )
}

async fn serve(args: Args, prepared: Prepared) -> Result<(), StartError> {
    let socket = args.socket.clone();
    let result = serve_until_stopped(args, prepared).await;
    let _ = xdpath::api::daemon::announce(None);
    let _ = std::fs::remove_file(&socket);
    result
}

async fn serve_until_stopped(args: Args, prepared: Prepared) -> Result<(), StartError> {
    let io_error = |path: PathBuf| move |source| StartError::Io { path, source };
    let unix =
        tokio::net::UnixListener::from_std(prepared.unix).map_err(io_error(args.socket.clone()))?;
    let tcp = match args.listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(io_error(PathBuf::from(address.to_string())))?,
        ),
        None => None,
    };
    // The saved state goes into the maps before anything is served, then
    // the watch keeps it there.
    if tokio::task::spawn_blocking(enforce::check_once)
        .await
        .is_err()
    {
        tracing::error!("the first check of the saved state failed");
    }
    tokio::spawn(enforce::run());
    // The CLI of this namespace sends its changes here from now on; the
    // socket path alone would not say which namespace it serves.
    if let Err(error) = xdpath::api::daemon::announce(Some(&args.socket)) {
        tracing::warn!("the CLI will not find this daemon: {error}");
    }
    let read_timeout = Duration::from_secs(args.read_timeout);
    let (unix_limits, tcp_limits) = limits(read_timeout);
    let shared = Arc::new(shared::Shared::default());
    let local = api::router(shared.clone(), read_timeout);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::spawn(health::run(shared.health.clone()));
    let observer = shared.observer.clone();
    if let Err(error) = std::thread::Builder::new()
        .name("observe".into())
        .spawn(move || observe::run(observer))
    {
        tracing::error!("no sampling, export or mitigation: {error}");
    }
    if let Some(path) = args.config.clone() {
        tokio::spawn(config_api::watch_file(shared.clone(), path));
    }
    tracing::info!(
        socket = %text::escape(&args.socket.display().to_string()),
        connections = unix_limits.connections,
        "serving the API"
    );
    tasks.spawn(server::serve(unix, local, unix_limits, "unix"));
    if let (Some(tcp), Some(token)) = (tcp, prepared.token) {
        tracing::info!(
            address = %args.listen.map(|address| address.to_string()).unwrap_or_default(),
            connections = tcp_limits.connections,
            "serving the API on TCP, bearer token required"
        );
        let token = Arc::new(token);
        let remote =
            api::router(shared, read_timeout).layer(middleware::from_fn(move |request, next| {
                authorize(token.clone(), request, next)
            }));
        tasks.spawn(server::serve(tcp, remote, tcp_limits, "tcp"));
    }
    tokio::select! {
        _ = shutdown() => tracing::info!("stopping; the data path keeps running"),
        Some(result) = tasks.join_next() => {
            if let Err(error) = result {
                tracing::error!("server stopped: {error}");
            }
        }
    }
    Ok(())
}

async fn shutdown() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => return std::future::pending().await,
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Every TCP call but `/metrics` needs `Authorization: Bearer <token>`.
async fn authorize(
    token: Arc<String>,
    request: Request<axum::body::Body>,
    next: Next,
) -> Result<Response, ApiError> {
    if request.uri().path() == "/metrics" {
        return Ok(next.run(request).await);
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    match presented {
        Some(presented) if constant_time_eq(presented.as_bytes(), token.as_bytes()) => {
            Ok(next.run(request).await)
        }
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the bearer token is wrong",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "no_token",
            "this call needs Authorization: Bearer <token>",
        )),
    }
}

/// The token of an `Authorization: Bearer TOKEN` value. The scheme is
/// matched case-insensitively and may be followed by several spaces (RFC
/// 9110 section 11.1: `auth-scheme 1*SP token68`), so `bearer TOKEN`, as
/// some clients send it, is not taken for a request without a token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// Compares without stopping at the first difference, so timing does not
/// tell how much of a guess was right.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}
