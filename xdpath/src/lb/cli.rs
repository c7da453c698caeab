//! The `lb` commands: VIPs, backends, settings and counters. Every change
//! is checked whole before the first map write; a refused one prints one
//! line (`xdpath: error: ...`), exits 1 and changes nothing.

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use xdpath_core::abi;

use super::compile::vip_table;
use super::edit::{self, ConfigChange, VipOptions};
use super::session::LbSession;
use super::state::{CheckKind, Encap, HealthCheck, LbState, VipSpec};
use super::LbError;
use xdpath_core::lb::LbCounter;

/// `xdpath lb ...`
#[derive(Subcommand)]
pub enum LbCommand {
    /// VIPs: add, del, list.
    Vip {
        #[command(subcommand)]
        command: VipCommand,
    },
    /// Backends of a VIP: add, del, set-weight, list.
    Backend {
        #[command(subcommand)]
        command: BackendCommand,
    },
    /// Show or change the shared settings: outer source prefixes, next hop,
    /// Maglev seed.
    Config(ConfigArgs),
    /// Connection-table hits and misses, and per-VIP counters.
    Stats,
    /// Remove every VIP (the settings stay).
    Flush,
}

/// `xdpath lb vip ...`
#[derive(Subcommand)]
pub enum VipCommand {
    /// Add a VIP: ADDRESS:PORT/tcp|udp (IPv6 in brackets; * for every port).
    Add {
        /// The VIP, e.g. 203.0.113.10:80/tcp or [2001:db8::10]:443/tcp.
        vip: String,
        /// How frames reach the backends.
        #[arg(long, value_enum, default_value = "ipip")]
        encap: EncapArg,
        /// The backends' GUE port (with --encap gue).
        #[arg(long)]
        gue_port: Option<u16>,
        /// Comma-separated: source-hash (hash on the client address only),
        /// no-conntrack (pure Maglev, no connection table).
        #[arg(long)]
        flags: Option<String>,
        /// The Maglev table size: a prime from 7 to 65537.
        #[arg(long, default_value_t = super::maglev::DEFAULT_TABLE_SIZE)]
        ring_size: u32,
    },
    /// Check the VIP's backends (run by xdpathd): a backend that fails
    /// `--fall` checks in a row leaves the table (established flows stay)
    /// until it passes `--rise` in a row. `off` stops checking.
    Health {
        /// The VIP.
        vip: String,
        /// tcp (a connection is accepted), http (GET answers --status), or off.
        kind: HealthKindArg,
        /// The port on the backend's own address; default: the VIP's port.
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The HTTP path.
        #[arg(long, default_value = "/")]
        path: String,
        /// The HTTP status that means healthy.
        #[arg(long, default_value_t = 200)]
        status: u16,
        /// Time between checks of a backend (e.g. 500ms, 2s).
        #[arg(long, default_value = "2s")]
        interval: String,
        /// How long a check may take.
        #[arg(long, default_value = "1s")]
        timeout: String,
        /// Passes in a row that bring a backend back.
        #[arg(long, default_value_t = 2)]
        rise: u32,
        /// Failures in a row that take a backend out.
        #[arg(long, default_value_t = 3)]
        fall: u32,
    },
    /// Delete a VIP and its backends.
    Del {
        /// The VIP.
        vip: String,
    },
    /// List VIPs with their counters.
    List,
}

/// The kind of `lb vip health`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum HealthKindArg {
    /// A TCP connection is accepted.
    Tcp,
    /// An HTTP GET answers with the expected status.
    Http,
    /// No checks; every backend counts as up.
    Off,
}

/// `--encap`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum EncapArg {
    /// IP in IP (IPv4 or IPv6 inside IPv4 or IPv6).
    Ipip,
    /// Generic UDP Encapsulation (variant 1).
    Gue,
}

/// `xdpath lb backend ...`
#[derive(Subcommand)]
pub enum BackendCommand {
    /// Add a backend to a VIP.
    Add {
        /// The VIP.
        vip: String,
        /// The backend's address (IPv4 or IPv6).
        address: String,
        /// Relative weight, 0 to 1000 (0: drained).
        #[arg(long, default_value_t = 1)]
        weight: u64,
    },
    /// Remove a backend: its flows move to the others.
    Del {
        /// The VIP.
        vip: String,
        /// The backend.
        address: String,
    },
    /// Change a backend's weight; 0 drains it (no new flows, established
    /// ones stay).
    SetWeight {
        /// The VIP.
        vip: String,
        /// The backend.
        address: String,
        /// The new weight, 0 to 1000.
        weight: u64,
    },
    /// List backends with their share of the table and counters.
    List {
        /// Only this VIP.
        vip: Option<String>,
    },
}

/// `xdpath lb config`: with no option, shows the settings.
#[derive(Args)]
pub struct ConfigArgs {
    /// The outer IPv4 source prefix (host bits vary per flow), or none.
    #[arg(long)]
    source_v4: Option<String>,
    /// The outer IPv6 source prefix, or none.
    #[arg(long)]
    source_v6: Option<String>,
    /// fib (ask the kernel's FIB and neighbour table; the default) or the
    /// next hop's MAC address.
    #[arg(long)]
    next_hop: Option<String>,
    /// The Maglev seed; balancers behind one ECMP group must share it.
    #[arg(long)]
    seed: Option<u64>,
}

/// Runs an `lb` command. A change is confirmed only once it is installed.
pub fn run(command: &LbCommand, json: bool) -> Result<(), LbError> {
    if let Some(socket) = crate::daemon_client::socket() {
        if let Some(message) = via_daemon(&socket, command)? {
            done(&message, json);
            return Ok(());
        }
    }
    let mut session = LbSession::open()?;
    let mut confirmation = None;
    match command {
        LbCommand::Vip { command } => confirmation = vip(&mut session, command, json)?,
        LbCommand::Backend { command } => confirmation = backend(&mut session, command, json)?,
        LbCommand::Config(args) => {
            let change = ConfigChange {
                source_v4: args.source_v4.clone(),
                source_v6: args.source_v6.clone(),
                next_hop: args.next_hop.clone(),
                seed: args.seed,
            };
            edit::configure(&mut session.state, &change)?;
            // Check before showing: a refused change must not look applied.
            super::compile::validate(&session.state)?;
            let settings = &session.state.settings;
            let value = json!({
                "source_v4": settings.source_v4,
                "source_v6": settings.source_v6,
                "next_hop": settings.next_hop_mac.as_deref().unwrap_or("fib"),
                "seed": settings.seed,
            });
            if json {
                print_json(&value);
            } else {
                for key in ["source_v4", "source_v6", "next_hop", "seed"] {
                    let shown = match &value[key] {
                        Value::String(text) => text.clone(),
                        Value::Null => "none".into(),
                        other => other.to_string(),
                    };
                    println!("{key:<10} {shown}");
                }
            }
        }
        LbCommand::Stats => {
            let (hits, misses) = session.connection_counters()?;
            let vips = vip_rows(&session)?;
            if json {
                print_json(&json!({
                    "connection_table": { "hits": hits, "misses": misses },
                    "vips": vips,
                }));
            } else {
                println!("connection table: {hits} hits, {misses} misses");
                print_vips(&vips);
            }
        }
        LbCommand::Flush => {
            session.state.vips.clear();
            confirmation = Some("removed every VIP".to_string());
        }
    }
    let warnings = forwarding_warnings(&session.state);
    session.commit()?;
    if let Some(message) = confirmation {
        done(&message, json);
    }
    for warning in warnings {
        eprintln!("xdpath: warning: {warning}");
    }
    Ok(())
}

/// The kernel's FIB lookup from XDP answers only where forwarding is on;
/// without it every frame to a VIP would be dropped (`lb-no-route`).
fn forwarding_warnings(state: &LbState) -> Vec<String> {
    if state.settings.next_hop_mac.is_some() {
        return Vec::new();
    }
    let backends = || state.vips.iter().flat_map(|vip| vip.backends.iter());
    let mut warnings = Vec::new();
    for (ipv4, key) in [
        (true, "net/ipv4/conf/all/forwarding"),
        (false, "net/ipv6/conf/all/forwarding"),
    ] {
        if !backends().any(|backend| backend.address.is_ipv4() == ipv4) {
            continue;
        }
        let path = format!("/proc/sys/{key}");
        if std::fs::read_to_string(&path).is_ok_and(|value| value.trim() == "0") {
            warnings.push(format!(
                "{} is 0: the FIB lookup for {} backends fails and their traffic is dropped \
                 (lb-no-route); enable forwarding or set `xdpath lb config --next-hop MAC`",
                key.replace('/', "."),
                if ipv4 { "IPv4" } else { "IPv6" }
            ));
        }
    }
    warnings
}

/// Runs a `vip` command; a change returns its confirmation.
fn vip(
    session: &mut LbSession,
    command: &VipCommand,
    json: bool,
) -> Result<Option<String>, LbError> {
    match command {
        VipCommand::Add {
            vip,
            encap,
            gue_port,
            flags,
            ring_size,
        } => {
            let id = edit::parse_vip(vip)?;
            let mut options = VipOptions {
                encap: match encap {
                    EncapArg::Ipip => Encap::Ipip,
                    EncapArg::Gue => Encap::Gue,
                },
                gue_port: *gue_port,
                source_hash: false,
                no_conntrack: false,
                ring_size: Some(*ring_size),
            };
            if let Some(flags) = flags {
                edit::parse_flags(flags, &mut options)?;
            }
            edit::add_vip(&mut session.state, id, options)?;
            return Ok(Some(format!("added VIP {id}")));
        }
        VipCommand::Health {
            vip,
            kind,
            port,
            path,
            status,
            interval,
            timeout,
            rise,
            fall,
        } => {
            let id = edit::parse_vip(vip)?;
            let kind = match kind {
                HealthKindArg::Tcp => Some(CheckKind::Tcp),
                HealthKindArg::Http => Some(CheckKind::Http),
                HealthKindArg::Off => None,
            };
            let check = match kind {
                Some(kind) => Some(HealthCheck {
                    kind,
                    port: *port,
                    path: path.clone(),
                    status: *status,
                    interval_ms: edit::parse_millis(interval)?,
                    timeout_ms: edit::parse_millis(timeout)?,
                    rise: *rise,
                    fall: *fall,
                }),
                None => None,
            };
            let message = match &check {
                Some(check) => format!(
                    "VIP {id}: {} checks every {} ms (rise {}, fall {}); xdpathd runs them",
                    health_text(check),
                    check.interval_ms,
                    check.rise,
                    check.fall
                ),
                None => format!("VIP {id}: no health checks"),
            };
            edit::set_health(&mut session.state, &id, check)?;
            return Ok(Some(message));
        }
        VipCommand::Del { vip } => {
            let id = edit::parse_vip(vip)?;
            edit::del_vip(&mut session.state, &id)?;
            return Ok(Some(format!("deleted VIP {id}")));
        }
        VipCommand::List => {
            let rows = vip_rows(session)?;
            if json {
                print_json(&Value::Array(rows));
            } else {
                print_vips(&rows);
            }
        }
    }
    Ok(None)
}

/// Runs a `backend` command; a change returns its confirmation.
fn backend(
    session: &mut LbSession,
    command: &BackendCommand,
    json: bool,
) -> Result<Option<String>, LbError> {
    match command {
        BackendCommand::Add {
            vip,
            address,
            weight,
        } => {
            let id = edit::parse_vip(vip)?;
            let address = edit::parse_address(address)?;
            edit::add_backend(&mut session.state, &id, address, *weight)?;
            return Ok(Some(format!("added backend {address} to {id}")));
        }
        BackendCommand::Del { vip, address } => {
            let id = edit::parse_vip(vip)?;
            let address = edit::parse_address(address)?;
            edit::del_backend(&mut session.state, &id, address)?;
            return Ok(Some(format!("removed backend {address} from {id}")));
        }
        BackendCommand::SetWeight {
            vip,
            address,
            weight,
        } => {
            let id = edit::parse_vip(vip)?;
            let address = edit::parse_address(address)?;
            edit::set_weight(&mut session.state, &id, address, *weight)?;
            return Ok(Some(format!(
                "backend {address} of {id} now has weight {weight}"
            )));
        }
        BackendCommand::List { vip } => {
            let only = vip.as_deref().map(edit::parse_vip).transpose()?;
            if let Some(id) = &only {
                if session.state.vip(id).is_none() {
                    return Err(LbError::NoSuchVip { vip: *id });
                }
            }
            let rows = backend_rows(session, only.as_ref())?;
            if json {
                print_json(&Value::Array(rows));
            } else {
                print_backends(&rows);
            }
        }
    }
    Ok(None)
}

/// `http GET /health -> 200 on :80` or `tcp :80` (`:vip` for the VIP's port).
fn health_text(check: &HealthCheck) -> String {
    let port = if check.port == 0 {
        "the VIP's port".to_string()
    } else {
        format!(":{}", check.port)
    };
    match check.kind {
        CheckKind::Tcp => format!("tcp to {port}"),
        CheckKind::Http => format!("http GET {} -> {} on {port}", check.path, check.status),
    }
}

fn counter_json(counter: &LbCounter) -> Value {
    json!({
        "packets": counter.packets,
        "bytes": counter.bytes,
        "new_flows": counter.new_flows,
    })
}

fn flags_text(vip: &VipSpec) -> String {
    let mut flags = Vec::new();
    if vip.source_hash {
        flags.push("source-hash");
    }
    if vip.no_conntrack {
        flags.push("no-conntrack");
    }
    if flags.is_empty() {
        "-".into()
    } else {
        flags.join(",")
    }
}

/// The VIPs with their counters, as `lb vip list --json` shows them.
pub fn vip_rows(session: &LbSession) -> Result<Vec<Value>, LbError> {
    let state: &LbState = &session.state;
    let mut rows = Vec::new();
    for vip in &state.vips {
        let counter = session.vip_counter(vip.slot)?;
        rows.push(json!({
            "vip": vip.id.to_string(),
            "encap": vip.encap.name(),
            "gue_port": (vip.encap == Encap::Gue).then_some(vip.gue_port),
            "flags": flags_text(vip),
            "ring_size": vip.ring_size,
            "health": vip.health.as_ref().map(health_text),
            "backends": vip.backends.len(),
            "counters": counter_json(&counter),
        }));
    }
    Ok(rows)
}

/// The backends (of one VIP or all) with share and counters, as
/// `lb backend list --json` shows them.
pub fn backend_rows(
    session: &LbSession,
    only: Option<&super::state::VipId>,
) -> Result<Vec<Value>, LbError> {
    let state: &LbState = &session.state;
    let mut rows = Vec::new();
    for vip in state
        .vips
        .iter()
        .filter(|vip| only.is_none_or(|id| vip.id == *id))
    {
        // The share each backend has of the table: what its weight asks
        // for, as built.
        let table = vip_table(vip, state.settings.seed)?;
        for backend in &vip.backends {
            let slots = table.iter().filter(|slot| **slot == backend.index).count();
            let counter = session.backend_counter(backend.index)?;
            rows.push(json!({
                "vip": vip.id.to_string(),
                "backend": backend.address.to_string(),
                "weight": backend.weight,
                "state": if backend.down {
                    "down"
                } else if backend.weight == 0 {
                    "drained"
                } else {
                    "active"
                },
                "healthy": vip.health.as_ref().map(|_| !backend.down),
                "table_share": slots as f64 / f64::from(vip.ring_size.max(1)),
                "counters": counter_json(&counter),
            }));
        }
    }
    Ok(rows)
}

fn print_vips(rows: &[Value]) {
    if rows.is_empty() {
        println!("no VIPs");
        return;
    }
    println!(
        "{:<32} {:<10} {:<24} {:>6} {:>8} {:>12} {:>14} {:>10}",
        "VIP",
        "ENCAP",
        "FLAGS",
        "RING",
        abi::map::BACKENDS,
        "PACKETS",
        "BYTES",
        "NEW_FLOWS"
    );
    for row in rows {
        let encap = match row["gue_port"].as_u64() {
            Some(port) => format!("gue:{port}"),
            None => "ipip".into(),
        };
        println!(
            "{:<32} {:<10} {:<24} {:>6} {:>8} {:>12} {:>14} {:>10}",
            text(&row["vip"]),
            encap,
            text(&row["flags"]),
            text(&row["ring_size"]),
            text(&row["backends"]),
            text(&row["counters"]["packets"]),
            text(&row["counters"]["bytes"]),
            text(&row["counters"]["new_flows"]),
        );
    }
}

fn print_backends(rows: &[Value]) {
    if rows.is_empty() {
        println!("no backends");
        return;
    }
    println!(
        "{:<32} {:<40} {:>6} {:>7} {:<8} {:>12} {:>14} {:>10}",
        "VIP", "BACKEND", "WEIGHT", "SHARE", "STATE", "PACKETS", "BYTES", "NEW_FLOWS"
    );
    for row in rows {
        println!(
            "{:<32} {:<40} {:>6} {:>6.2}% {:<8} {:>12} {:>14} {:>10}",
            text(&row["vip"]),
            text(&row["backend"]),
            text(&row["weight"]),
            row["table_share"].as_f64().unwrap_or(0.0) * 100.0,
            text(&row["state"]),
            text(&row["counters"]["packets"]),
            text(&row["counters"]["bytes"]),
            text(&row["counters"]["new_flows"]),
        );
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string)
}

/// Pretty JSON on stdout; a closed pipe (`| head`) is not an error.
fn print_json(value: &Value) {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn done(message: &str, json: bool) {
    if json {
        print_json(&json!({ "ok": true, "message": message }));
    } else {
        println!("{message}");
    }
}

/// The changes the daemon's API has, sent to it when it runs (checked here
/// first, for the same errors); `None` for the rest, which run here.
fn via_daemon(socket: &std::path::Path, command: &LbCommand) -> Result<Option<String>, LbError> {
    use crate::daemon_client::{call, query_value};
    let send = |method: &str, path: &str, body: Option<Value>| {
        call(socket, method, path, body.as_ref())
            .map(drop)
            .map_err(|error| LbError::from(crate::control::ControlError::from(error)))
    };
    let message = match command {
        LbCommand::Vip {
            command:
                VipCommand::Add {
                    vip,
                    encap,
                    gue_port,
                    flags,
                    ring_size,
                },
        } => {
            let id = edit::parse_vip(vip)?;
            let flags: Vec<&str> = flags
                .as_deref()
                .map(|text| {
                    text.split(',')
                        .map(str::trim)
                        .filter(|flag| !flag.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            let encap = match encap {
                EncapArg::Ipip => "ipip",
                EncapArg::Gue => "gue",
            };
            let body = json!({
                "vip": vip, "encap": encap, "gue_port": gue_port,
                "flags": flags, "ring_size": ring_size,
            });
            send("POST", "/v1/vips", Some(body))?;
            format!("added VIP {id}")
        }
        LbCommand::Vip {
            command: VipCommand::Del { vip },
        } => {
            let id = edit::parse_vip(vip)?;
            send(
                "DELETE",
                &format!("/v1/vips?vip={}", query_value(vip)),
                None,
            )?;
            format!("deleted VIP {id}")
        }
        LbCommand::Backend { command } => match command {
            BackendCommand::Add {
                vip,
                address,
                weight,
            } => {
                let (id, address) = (edit::parse_vip(vip)?, edit::parse_address(address)?);
                let body = json!({ "vip": vip, "address": address.to_string(), "weight": weight });
                send("POST", "/v1/backends", Some(body))?;
                format!("added backend {address} to {id}")
            }
            BackendCommand::Del { vip, address } => {
                let (id, address) = (edit::parse_vip(vip)?, edit::parse_address(address)?);
                let path = format!(
                    "/v1/backends?vip={}&address={}",
                    query_value(vip),
                    query_value(&address.to_string())
                );
                send("DELETE", &path, None)?;
                format!("removed backend {address} from {id}")
            }
            BackendCommand::SetWeight {
                vip,
                address,
                weight,
            } => {
                let (id, address) = (edit::parse_vip(vip)?, edit::parse_address(address)?);
                let body = json!({ "vip": vip, "address": address.to_string(), "weight": weight });
                send("PUT", "/v1/backends", Some(body))?;
                format!("backend {address} of {id} now has weight {weight}")
            }
            BackendCommand::List { .. } => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(message))
}
