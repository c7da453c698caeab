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
mod config_api;
mod enforce;
mod error;
mod extract;
mod health;
mod metrics;
mod observe;
mod ops;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use axum::http::{header, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use clap::Parser;

use error::ApiError;

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
    /// more).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("--listen needs --token-file: TCP calls must carry a bearer token")]
    NoToken,
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token in {} is shorter than 16 characters", path.display())]
    ShortToken { path: PathBuf },
    #[error("another xdpathd answers on {}", path.display())]
    Running { path: PathBuf },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_target(false).init();
    // The daemon runs the operations itself, never through its own API.
    // Set before any thread starts.
    std::env::set_var("XDPATH_NO_DAEMON", "1");
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("xdpathd: error: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xdpathd: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn read_token(path: &Path) -> Result<String, StartError> {
    let token = std::fs::read_to_string(path).map_err(io_error(path))?;
    let token = token.trim().to_string();
    if token.len() < 16 {
        return Err(StartError::ShortToken {
            path: path.to_path_buf(),
        });
    }
    Ok(token)
}

/// Binds the Unix socket, 0600, replacing a stale one (no one answering).
async fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, StartError> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(StartError::Running {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(io_error(path))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io_error(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_error(path))?;
    Ok(listener)
}

async fn serve(args: Args) -> Result<(), StartError> {
    let token = match (&args.listen, &args.token_file) {
        (Some(_), None) => return Err(StartError::NoToken),
        (_, Some(path)) => Some(read_token(path)?),
        (None, None) => None,
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
    let shared = Arc::new(api::Shared::default());
    let unix = bind_socket(&args.socket).await?;
    // The CLI of this namespace sends its changes here from now on; the
    // socket path alone would not say which namespace it serves.
    if let Err(error) = xdpath::daemon_client::announce(Some(&args.socket)) {
        tracing::warn!("the CLI will not find this daemon: {error}");
    }
    tracing::info!(socket = %args.socket.display(), "serving the API");
    let local = api::router(shared.clone());
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
    tasks.spawn(async move { axum::serve(unix, local).await });
    if let (Some(address), Some(token)) = (args.listen, token) {
        let tcp = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Io {
                path: PathBuf::from(address.to_string()),
                source,
            })?;
        tracing::info!(%address, "serving the API on TCP, bearer token required");
        let token = Arc::new(token);
        let remote = api::router(shared).layer(middleware::from_fn(move |request, next| {
            authorize(token.clone(), request, next)
        }));
        tasks.spawn(async move { axum::serve(tcp, remote).await });
    }
    tokio::select! {
        _ = shutdown() => tracing::info!("stopping; the data path keeps running"),
        Some(result) = tasks.join_next() => {
            if let Ok(Err(error)) = result {
                tracing::error!("server stopped: {error}");
            }
        }
    }
    let _ = xdpath::daemon_client::announce(None);
    let _ = std::fs::remove_file(&args.socket);
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
        .and_then(|value| value.strip_prefix("Bearer "));
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
