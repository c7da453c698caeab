//! `xdpath`: attach the data path, read its counters, replay captures,
//! benchmark, and run the demo. Every command that prints takes `--json`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use xdpath::control::cli::{
    BlockCommand, FilterCommand, GuardCommand, MgmtCommand, RateLimitCommand,
};
use xdpath::dataplane::{self, ModeChoice};
use xdpath::usage::{
    clap_error_line, error_lines, is_answer, json_asked, report, without_help_on_missing,
    USAGE_EXIT,
};
use xdpath::{control, replay, stats};
use xdpath_core::{InterfaceConfig, MalformedPolicy};
use xdpath_lab::{bench, demo};

#[derive(Parser)]
#[command(name = "xdpath", version, about = "A programmable XDP data path", long_about = None)]
struct Cli {
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Malformed {
    /// Pass malformed frames to the kernel stack (default).
    Pass,
    /// Drop malformed frames at XDP.
    Drop,
}

impl From<Malformed> for MalformedPolicy {
    fn from(value: Malformed) -> Self {
        match value {
            Malformed::Pass => MalformedPolicy::Pass,
            Malformed::Drop => MalformedPolicy::Drop,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ForwardSwitch {
    /// Turn it on.
    Enable,
    /// Turn it off.
    Disable,
}

#[derive(Subcommand)]
enum XskCommand {
    /// Steer a flow to the AF_XDP socket of the queue it arrives on.
    Add {
        /// tcp or udp.
        #[arg(long)]
        proto: String,
        /// The destination port.
        #[arg(long)]
        dport: String,
    },
    /// Stop steering a flow.
    Del {
        /// tcp or udp.
        #[arg(long)]
        proto: String,
        /// The destination port.
        #[arg(long)]
        dport: String,
    },
    /// The steered flows.
    List,
}

#[derive(Subcommand)]
enum StateCommand {
    /// List every difference between the saved state and the kernel's maps
    /// (read back); exit 1 when there is any.
    Check {
        /// Install what differs (as attach, apply and xdpathd do).
        #[arg(long)]
        repair: bool,
    },
    /// Rebuild a state file that cannot be read from the copy of the state
    /// last installed, once the kernel's maps are read back and hold
    /// exactly it.
    Repair,
    /// Remove the state and pins of network namespaces that are gone (of
    /// an earlier boot, or no longer existing).
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Attach xdpath to an interface (state is pinned under /sys/fs/bpf/xdpath).
    Attach {
        /// The interface.
        interface: String,
        /// XDP mode: auto tries native, then generic.
        #[arg(long, value_enum, default_value = "auto")]
        mode: ModeChoice,
        /// What to do with malformed frames.
        #[arg(long, value_enum, default_value = "pass")]
        malformed: Malformed,
        /// Monitor mode: count what would be dropped, drop nothing.
        #[arg(long)]
        monitor: bool,
        /// Attach even when this namespace's saved state (rules, blocklist,
        /// VIPs...) cannot be installed: the interface then runs without
        /// it, and `status` says so. Without this flag such an attach is
        /// refused and nothing changes.
        #[arg(long)]
        force_empty: bool,
    },
    /// Detach xdpath from an interface and remove its pins.
    Detach {
        /// The interface.
        interface: String,
    },
    /// Replace the program on an interface with this build's, keeping its
    /// maps (config, counters, rules) and dropping no traffic (Linux 5.9+).
    Reload {
        /// The interface.
        interface: String,
    },
    /// Show the interfaces xdpath is attached to in this network namespace.
    Status,
    /// Show counters per verdict and reason.
    Stats {
        /// Only this interface (default: every attached interface).
        interface: Option<String>,
    },
    /// Run the pipeline natively over a pcap capture.
    Replay {
        /// The capture (pcap, either byte order, micro- or nanosecond).
        file: PathBuf,
        /// Write the frames the pipeline passes to this pcap file.
        #[arg(long, value_name = "OUT.pcap")]
        write_pass: Option<PathBuf>,
        /// What to do with malformed frames.
        #[arg(long, value_enum, default_value = "pass")]
        malformed: Malformed,
        /// Apply this rule file (the `filter load` format) and report what
        /// it would have dropped; time comes from the capture.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// Run the whole pipeline in user space on an interface's frames
    /// (AF_XDP), with the namespace's state and the kernel's counters,
    /// until SIGINT or SIGTERM.
    Run {
        /// The interface.
        interface: String,
        /// Run in user space (the kernel path is `xdpath attach`).
        #[arg(long)]
        userspace: bool,
        /// Sockets on queues 0..N (default: every receive queue).
        #[arg(long, value_name = "N")]
        queues: Option<u32>,
        /// What to do with malformed frames.
        #[arg(long, value_enum, default_value = "pass")]
        malformed: Malformed,
        /// Monitor mode: count what would be dropped, drop nothing.
        #[arg(long)]
        monitor: bool,
        /// L3 forwarding of frames routed elsewhere, by the kernel's main
        /// table and neighbours (taken each second).
        #[arg(long)]
        forward: bool,
        /// Where passed frames go: the stack through a TAP device, or
        /// nowhere.
        #[arg(long, value_enum, default_value = "tap")]
        exception: xdpath::userspace::Exception,
        /// Let the kernel use zero-copy where the driver supports it
        /// (default: copy mode, which every driver supports).
        #[arg(long)]
        zero_copy: bool,
        /// Stop after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        duration: Option<f64>,
    },
    /// Filter rules: add, del, list, flush, default, load.
    Filter {
        #[command(subcommand)]
        command: FilterCommand,
    },
    /// The blocklist: add (with --ttl), del, list.
    Block {
        #[command(subcommand)]
        command: BlockCommand,
    },
    /// Rate limits: add, del, list.
    Ratelimit {
        #[command(subcommand)]
        command: RateLimitCommand,
    },
    /// Guards: tcp-flags, amplification, fragments, syn-cookies, show.
    Guard {
        #[command(subcommand)]
        command: GuardCommand,
    },
    /// Management prefixes and ports, never dropped by the filter.
    Mgmt {
        #[command(subcommand)]
        command: MgmtCommand,
    },
    /// The layer-4 load balancer: VIPs, backends, settings, counters.
    Lb {
        #[command(subcommand)]
        command: xdpath::lb::cli::LbCommand,
    },
    /// Attach the backend-side decapsulator: IPIP and GUE addressed to this
    /// host are stripped and the inner packet passed to the stack.
    Decap {
        /// The interface.
        interface: String,
        /// XDP mode: auto tries native, then generic.
        #[arg(long, value_enum, default_value = "auto")]
        mode: ModeChoice,
        /// Also decapsulate GUE to this UDP port.
        #[arg(long, default_value_t = 0)]
        gue_port: u16,
        /// Only read this host's addresses again (after an address change).
        #[arg(long)]
        refresh: bool,
    },
    /// L3 forwarding at XDP on an attached interface: frames not for this
    /// host are routed by the kernel's FIB and redirected out.
    Forward {
        /// `enable` or `disable`.
        #[arg(value_enum)]
        switch: ForwardSwitch,
        /// The interface.
        interface: String,
    },
    /// Steer the frames an interface passes to the stack to CPUs by flow
    /// hash (software receive-side scaling).
    Steer {
        /// `enable` or `disable`.
        #[arg(value_enum)]
        switch: ForwardSwitch,
        /// The interface.
        interface: String,
        /// The CPUs: `all` (default), or numbers and ranges such as
        /// `0,2-3`; the namespace's list for every steering interface.
        #[arg(long)]
        cpus: Option<String>,
        /// Frames queued per CPU (8-16384, default 2048).
        #[arg(long)]
        queue_size: Option<u32>,
    },
    /// Flows steered to AF_XDP applications (`xdpath::afxdp::SteeredReceiver`),
    /// by protocol and destination port.
    Xsk {
        #[command(subcommand)]
        command: XskCommand,
    },
    /// Sample 1 in N frames of an attached interface (0 or `off`: stop).
    Sample {
        /// The interface.
        interface: String,
        /// N, or `off`.
        rate: String,
    },
    /// Write frames as xdpath handled them (verdict and reason in each
    /// packet's comment) to a pcapng file.
    Capture(xdpath::observe::capture::CaptureArgs),
    /// Export samples as sFlow v5 or IPFIX to collectors, in the
    /// foreground (xdpathd does the same from its config).
    Export(xdpath::observe::export::ExportArgs),
    /// A live view of rates per interface, verdict and reason, and of the
    /// top talkers.
    Top(xdpath::observe::topview::TopArgs),
    /// Measure ns/packet in the kernel (BPF_PROG_TEST_RUN) beside an empty
    /// program and xdp-filter, and packets/s of the native build.
    Bench(bench::BenchOptions),
    /// Build a two-namespace test bed, attach, send mixed traffic, print the
    /// counters, and remove everything.
    Demo,
    /// Show what `apply` would change to make this namespace match a config
    /// file; changes nothing.
    Plan(xdpath::config::cli::PlanArgs),
    /// Make this namespace match a config file, changing only what differs.
    Apply(xdpath::config::cli::ApplyArgs),
    /// Keep what `apply --confirm` applied: cancel the pending rollback.
    Confirm,
    /// Compare this namespace's saved state with what the kernel's maps
    /// hold, put it right, rebuild a damaged state file, or remove the
    /// state of namespaces that are gone.
    #[command(subcommand)]
    State(StateCommand),
}

fn main() -> ExitCode {
    // A closed pipe ends the process quietly, as it does `cat`: Rust
    // ignores SIGPIPE, and `println!` then panics on EPIPE
    // (`xdpath filter list | head -1`).
    // SAFETY: setting a signal's disposition to the default has no
    // preconditions; no other thread exists yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let matches = without_help_on_missing(Cli::command())
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match matches {
        Ok(cli) => cli,
        Err(error) if is_answer(&error) => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            report(&[clap_error_line(&error)], json_asked());
            return ExitCode::from(USAGE_EXIT);
        }
    };
    match run(&cli) {
        Ok(()) => {
            record_interfaces();
            ExitCode::SUCCESS
        }
        Err(error) => {
            report(&error_lines(error.as_ref()), cli.json);
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Records what the namespace's interfaces run after a command that may
/// have changed it, so a lost program comes back as it was
/// (`control::interfaces`). Nothing to do where xdpath is not attached.
fn record_interfaces() {
    // Not where nothing is attached, nor for a user who may not look.
    if !dataplane::attached_interfaces().is_ok_and(|names| !names.is_empty()) {
        return;
    }
    if let Err(error) = control::interfaces::sync() {
        eprintln!("xdpath: warning: recording the interfaces' settings failed: {error}; after a reboot they may come back with defaults");
    }
}

fn run(cli: &Cli) -> Result<()> {
    // What a killed writer left is finished before any command works on
    // this namespace (cheap when nothing was left: two files looked up).
    xdpath::reconcile::finish_interrupted();
    match &cli.command {
        Command::Attach {
            interface,
            mode,
            malformed,
            monitor,
            force_empty,
        } => {
            let config = InterfaceConfig::new((*malformed).into()).with_monitor(*monitor);
            let attached = xdpath::reconcile::attach(interface, *mode, config, *force_empty)?;
            let installed = attached.installed.lines();
            if let Some(why) = &attached.degraded {
                eprintln!("xdpath: warning: {interface} runs WITHOUT this namespace's saved state (--force-empty): {why}");
            }
            if cli.json {
                print_json(&serde_json::json!({
                    "interface": interface,
                    "mode": attached.mode,
                    "installed": installed,
                    "degraded": attached.degraded,
                }))?;
            } else {
                println!("attached to {interface} in {} mode", attached.mode.name());
                if !installed.is_empty() {
                    println!("installed the saved state the kernel lacked:");
                    for line in &installed {
                        println!("  {line}");
                    }
                }
            }
        }
        Command::Detach { interface } => {
            // An interface whose program was lost (a reboot) is only
            // forgotten, so nothing attaches it again.
            match dataplane::detach(interface) {
                Err(dataplane::DataplaneError::NotAttached { .. })
                    if control::interfaces::is_recorded(interface) => {}
                result => result?,
            }
            control::interfaces::forget(interface)?;
            if cli.json {
                print_json(&serde_json::json!({ "interface": interface, "detached": true }))?;
            } else {
                println!("detached from {interface}");
            }
        }
        Command::Reload { interface } => {
            let report = dataplane::reload(interface)?;
            if cli.json {
                print_json(&report)?;
            } else {
                println!(
                    "reloaded {interface}: program {} replaced by {}",
                    report.old_program_id, report.new_program_id
                );
            }
        }
        Command::Status => {
            let names = dataplane::attached_interfaces()?;
            for name in &names {
                // Else a user sees a healthy interface as gone.
                dataplane::check_pin_access(name)?;
            }
            let mut statuses = names
                .iter()
                .map(|name| dataplane::status(name))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            if !statuses.is_empty() {
                // The saved state is the namespace's: every interface
                // enforces it or none does.
                let degraded = match xdpath::reconcile::check() {
                    Ok(differences) => differences.lines().first().map(|first| {
                        let more = differences.lines().len() - 1;
                        if more > 0 {
                            format!("{first} (and {more} more: `xdpath state check`)")
                        } else {
                            first.clone()
                        }
                    }),
                    Err(error) => Some(error.to_string()),
                };
                for status in &mut statuses {
                    status.degraded.clone_from(&degraded);
                }
            }
            if cli.json {
                print_json(&statuses)?;
            } else if statuses.is_empty() {
                println!("xdpath is not attached to any interface in this network namespace");
            } else {
                println!(
                    "{:<16} {:<8} {:>8} {:<18} {:<10} {:<8} {:<20} STATE",
                    "INTERFACE", "MODE", "PROG_ID", "TAG", "MALFORMED", "MONITOR", "ATTACHED"
                );
                for status in &statuses {
                    println!(
                        "{:<16} {:<8} {:>8} {:<18} {:<10} {:<8} {:<20} {}",
                        status.interface,
                        status.mode.map_or("?", |mode| mode.name()),
                        status.program_id.map_or("?".into(), |id| id.to_string()),
                        status.program_tag.as_deref().unwrap_or("?"),
                        status.malformed,
                        if status.monitor { "on" } else { "off" },
                        status.attached_since.map_or("?".into(), format_time),
                        match (&status.degraded, status.healthy) {
                            (_, false) => "interface gone (run detach to clean up)".to_string(),
                            (Some(why), true) => format!("degraded: {why}"),
                            (None, true) => "attached".to_string(),
                        },
                    );
                }
            }
        }
        Command::Stats { interface } => {
            let names = match interface {
                Some(name) => vec![name.clone()],
                None => dataplane::attached_interfaces()?,
            };
            let mut report = Vec::new();
            for name in names {
                // An interface the user-space runtime has: its snapshot.
                let counters = match dataplane::interface_counters(&name) {
                    Ok(counters) => counters,
                    Err(error) => match xdpath::userspace::read_snapshot(&name) {
                        Some(snapshot) => snapshot.counters(),
                        None => return Err(error.into()),
                    },
                };
                report.push((name, stats::rows(&counters)));
            }
            // Rules and limits are shared by the namespace's interfaces.
            let filter = if report.is_empty() {
                None
            } else {
                control::cli::filter_counters()?
            };
            if cli.json {
                let value: Vec<_> = report
                    .iter()
                    .map(|(name, rows)| {
                        let mut entry = serde_json::json!({ "interface": name, "counters": rows });
                        if let (Some(filter), Some(object)) = (&filter, entry.as_object_mut()) {
                            object.insert("rules".into(), filter["rules"].clone());
                            object.insert("rate_limits".into(), filter["rate_limits"].clone());
                        }
                        entry
                    })
                    .collect();
                print_json(&value)?;
            } else if report.is_empty() {
                println!("xdpath is not attached to any interface in this network namespace");
            } else {
                for (name, rows) in &report {
                    println!("{name}:");
                    stats::print_table(rows);
                }
                if let Some(filter) = &filter {
                    print_filter_counters(filter);
                }
            }
        }
        Command::Replay {
            file,
            write_pass,
            malformed,
            rules,
        } => {
            let filter = rules
                .as_deref()
                .map(control::rulefile::filter_state_from_file)
                .transpose()?;
            let report = replay::run_filtered(
                file,
                write_pass.as_deref(),
                InterfaceConfig::new((*malformed).into()),
                filter.as_ref(),
            )?;
            if cli.json {
                print_json(&report)?;
            } else {
                report.print();
            }
        }
        Command::Run {
            interface,
            userspace,
            queues,
            malformed,
            monitor,
            forward,
            exception,
            zero_copy,
            duration,
        } => {
            if !*userspace {
                return Err(
                    "xdpath run needs --userspace (the kernel path is `xdpath attach`)".into(),
                );
            }
            let duration = match duration {
                Some(seconds) => Some(
                    control::parse::seconds_within(
                        *seconds,
                        0.001,
                        control::parse::MAX_DURATION_SECONDS as f64,
                    )
                    .ok_or_else(|| {
                        format!(
                            "--duration {seconds}: must be a positive number of seconds, \
                             at most {}",
                            control::parse::MAX_DURATION_SECONDS
                        )
                    })?,
                ),
                None => None,
            };
            if *queues == Some(0) {
                return Err("--queues 0: at least one queue".into());
            }
            let options = xdpath::userspace::RuntimeOptions {
                interface: interface.clone(),
                queues: *queues,
                config: InterfaceConfig::new((*malformed).into())
                    .with_monitor(*monitor)
                    .with_forward(*forward),
                exception: *exception,
                xsk: xdpath::afxdp::XskOptions {
                    copy_mode: !*zero_copy,
                    ..Default::default()
                },
                duration,
            };
            let _signals = xdpath::signals::SignalGuard::install();
            let report = xdpath::userspace::run(&options, &xdpath::signals::interrupted)?;
            if cli.json {
                print_json(&report)?;
            } else {
                report.print();
            }
        }
        Command::Bench(options) => {
            let report = bench::run(options)?;
            if cli.json {
                print_json(&report)?;
            } else {
                report.print();
            }
        }
        Command::Filter { command } => control::cli::filter(command, cli.json)?,
        Command::Block { command } => control::cli::block(command, cli.json)?,
        Command::Ratelimit { command } => control::cli::ratelimit(command, cli.json)?,
        Command::Guard { command } => control::cli::guard(command, cli.json)?,
        Command::Mgmt { command } => control::cli::mgmt(command, cli.json)?,
        Command::Lb { command } => xdpath::lb::cli::run(command, cli.json)?,
        Command::Decap {
            interface,
            mode,
            gue_port,
            refresh,
        } => {
            let report = xdpath::lb::decap::decap(interface, *mode, *gue_port, *refresh)?;
            if cli.json {
                print_json(&report)?;
            } else {
                let addresses: Vec<String> = report
                    .local_addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                println!(
                    "decapsulating IPIP{} on {interface} ({} mode) for {}",
                    match report.gue_port {
                        Some(port) if port != 0 => format!(" and GUE to port {port}"),
                        _ => String::new(),
                    },
                    report.mode.name(),
                    addresses.join(", ")
                );
            }
        }
        Command::Demo => demo::run(cli.json)?,
        Command::Forward { switch, interface } => {
            let on = matches!(switch, ForwardSwitch::Enable);
            let report = dataplane::forward::set_forwarding(interface, on)?;
            for warning in &report.warnings {
                eprintln!("xdpath: warning: {warning}");
            }
            if cli.json {
                print_json(&report)?;
            } else if on {
                println!("forwarding on {interface}");
            } else {
                println!("not forwarding on {interface}");
            }
        }
        Command::Steer {
            switch,
            interface,
            cpus,
            queue_size,
        } => {
            let on = matches!(switch, ForwardSwitch::Enable);
            let report =
                dataplane::steer::set_steering(interface, on, cpus.as_deref(), *queue_size)?;
            if cli.json {
                print_json(&report)?;
            } else if on {
                let cpus: Vec<String> = report.cpus.iter().map(ToString::to_string).collect();
                println!(
                    "steering {interface} to CPUs {} (queue {} frames)",
                    cpus.join(","),
                    report.queue_size
                );
            } else {
                println!("not steering {interface}");
            }
        }
        Command::Xsk { command } => {
            use xdpath::afxdp::steered;
            let parse = |proto: &str, dport: &str| -> Result<(u8, u16)> {
                Ok((
                    xdpath::control::parse::parse_protocol(proto)?,
                    xdpath::control::parse::parse_port(dport)?,
                ))
            };
            match command {
                XskCommand::Add { proto, dport } => {
                    let (protocol, port) = parse(proto, dport)?;
                    steered::add_rule(protocol, port)?;
                    println!("steering {proto} port {port} to AF_XDP sockets");
                }
                XskCommand::Del { proto, dport } => {
                    let (protocol, port) = parse(proto, dport)?;
                    steered::del_rule(protocol, port)?;
                    println!("no longer steering {proto} port {port}");
                }
                XskCommand::List => {
                    let rules = steered::rules()?;
                    if cli.json {
                        let rows: Vec<serde_json::Value> = rules
                            .iter()
                            .map(|(protocol, port)| {
                                serde_json::json!({ "protocol": protocol, "port": port })
                            })
                            .collect();
                        print_json(&rows)?;
                    } else {
                        for (protocol, port) in rules {
                            let name = if protocol == 6 { "tcp" } else { "udp" };
                            println!("{name} {port}");
                        }
                    }
                }
            }
        }
        Command::Sample { interface, rate } => {
            let rate = xdpath::observe::parse_rate(rate)?;
            if !dataplane::status(interface)?.healthy {
                return Err(dataplane::DataplaneError::InterfaceGone {
                    name: interface.clone(),
                }
                .into());
            }
            let config = dataplane::update_interface_config(interface, |config| {
                config.sample_rate = rate;
            })?;
            if cli.json {
                print_json(&serde_json::json!({
                    "interface": interface,
                    "sample_rate": config.sample_rate,
                }))?;
            } else if rate == 0 {
                println!("sampling off on {interface}");
            } else {
                println!("sampling 1 in {rate} frames on {interface}");
            }
        }
        Command::Export(args) => {
            let _signals = xdpath::signals::SignalGuard::install();
            let stats = xdpath::observe::export::export(args, || {
                eprintln!("xdpath: exporting (Ctrl-C to stop)");
            })?;
            if cli.json {
                print_json(&stats)?;
            } else {
                println!(
                    "{} samples read, {} lost to a full ring",
                    stats.samples, stats.ring_lost
                );
                if let Some(sflow) = &stats.sflow {
                    println!(
                        "sflow: {} datagrams, {} samples, {} send errors",
                        sflow.datagrams, sflow.samples, sflow.send_errors
                    );
                }
                if let Some(ipfix) = &stats.ipfix {
                    println!(
                        "ipfix: {} messages, {} records, {} template sends, {} send errors",
                        ipfix.messages, ipfix.records, ipfix.templates, ipfix.send_errors
                    );
                }
            }
        }
        Command::Top(args) => {
            let _signals = xdpath::signals::SignalGuard::install();
            xdpath::observe::topview::run(args, cli.json)?;
        }
        Command::Capture(args) => {
            let _signals = xdpath::signals::SignalGuard::install();
            let report = xdpath::observe::capture::capture(args, || {
                eprintln!("xdpath: capturing (Ctrl-C to stop)");
            })?;
            if cli.json {
                print_json(&report)?;
            } else {
                println!(
                    "{} frames written to {}{}",
                    report.packets,
                    report.output.display(),
                    if report.lost > 0 {
                        format!(" ({} lost: the capture ring was full)", report.lost)
                    } else {
                        String::new()
                    }
                );
            }
        }
        Command::Plan(args) => xdpath::config::cli::plan_command(args, cli.json)?,
        Command::Apply(args) => xdpath::config::cli::apply_command(args, cli.json)?,
        Command::Confirm => xdpath::config::cli::confirm_command(cli.json)?,
        Command::State(command) => state_command(command, cli.json)?,
    }
    Ok(())
}

/// `xdpath state ...`.
fn state_command(command: &StateCommand, json: bool) -> Result<()> {
    match command {
        StateCommand::Check { repair } => {
            let differences = if *repair {
                xdpath::reconcile::repair()?
            } else {
                xdpath::reconcile::check()?
            };
            let lines = differences.lines();
            if json {
                print_json(&serde_json::json!({
                    "differences": lines,
                    "repaired": *repair && !lines.is_empty(),
                }))?;
            } else if lines.is_empty() {
                println!("the kernel enforces the saved state exactly");
            } else {
                println!(
                    "{} between the saved state and the kernel:",
                    if *repair {
                        "installed the differences"
                    } else {
                        "differences"
                    }
                );
                for line in &lines {
                    println!("  {line}");
                }
            }
            if !*repair && !lines.is_empty() {
                return Err(format!(
                    "the kernel does not enforce the saved state ({} difference{}); `xdpath state check --repair` installs it",
                    lines.len(),
                    if lines.len() == 1 { "" } else { "s" }
                )
                .into());
            }
        }
        StateCommand::Repair => {
            let rebuilt = xdpath::reconcile::rebuild_files()?;
            if json {
                print_json(&rebuilt)?;
            } else {
                for file in &rebuilt {
                    println!("{}: {}", file.file, file.outcome);
                }
            }
            if let Some(failed) = rebuilt.iter().find(|file| !file.ok) {
                return Err(format!("{}: {}", failed.file, failed.outcome).into());
            }
        }
        StateCommand::Gc { dry_run } => {
            let removed = xdpath::reconcile::collect_garbage(*dry_run)?;
            if json {
                print_json(&removed)?;
            } else if removed.is_empty() {
                println!("nothing to remove");
            } else {
                for entry in &removed {
                    println!(
                        "{} {} ({})",
                        if *dry_run { "would remove" } else { "removed" },
                        entry.path,
                        entry.why
                    );
                }
            }
        }
    }
    Ok(())
}

/// The per-rule hits and per-limit drops of `stats`.
fn print_filter_counters(filter: &serde_json::Value) {
    let rows = |key: &str| filter[key].as_array().cloned().unwrap_or_default();
    let rules = rows("rules");
    if !rules.is_empty() {
        println!("rules:");
        println!("{:>6} {:>14}", "ID", "HITS");
        for rule in &rules {
            println!("{:>6} {:>14}", rule["id"], rule["hits"]);
        }
    }
    let limits = rows("rate_limits");
    if !limits.is_empty() {
        println!("rate limits:");
        println!("{:>6} {:>14}", "ID", "DROPS");
        for limit in &limits {
            println!("{:>6} {:>14}", limit["id"], limit["drops"]);
        }
    }
}

fn format_time(seconds: u64) -> String {
    // UTC, without a date crate: days since the epoch → civil date.
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (public domain description).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
