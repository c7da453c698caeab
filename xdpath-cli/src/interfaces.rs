//! The commands on interfaces: attach, detach, reload, status, stats, decap, forward, steer, xsk, sample.

use super::*;

pub(crate) fn attach(
    interface: &String,
    mode: &ModeChoice,
    malformed: &Malformed,
    monitor: &bool,
    force_empty: &bool,
    json: bool,
) -> Result<()> {
    let config = InterfaceConfig::new((*malformed).into()).with_monitor(*monitor);
    let attached = xdpath::reconcile::attach(interface, *mode, config, *force_empty)?;
    let installed = attached.installed.lines();
    if let Some(why) = &attached.degraded {
        eprintln!("xdpath: warning: {interface} runs WITHOUT this namespace's saved state (--force-empty): {why}");
    }
    if json {
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
    Ok(())
}

pub(crate) fn detach(interface: &String, json: bool) -> Result<()> {
    // The state lock from the program's removal to the record's: a repair
    // in between (xdpathd's 2 s check) would find a recorded interface
    // without its program and attach it again, undoing this detach.
    let (_dir, _lock) = control::session::lock_state_dir()?;
    // An interface whose program was lost (a reboot) is only
    // forgotten, so nothing attaches it again.
    match dataplane::detach(interface) {
        Err(dataplane::DataplaneError::NotAttached { .. })
            if control::interfaces::is_recorded(interface) => {}
        result => result?,
    }
    control::interfaces::forget(interface)?;
    if json {
        print_json(&serde_json::json!({ "interface": interface, "detached": true }))?;
    } else {
        println!("detached from {interface}");
    }
    Ok(())
}

pub(crate) fn reload(interface: &String, json: bool) -> Result<()> {
    let reloaded = xdpath::reconcile::reload(interface)?;
    if json {
        print_json(&reloaded)?;
    } else {
        println!(
            "reloaded {interface}: program {} replaced by {}",
            reloaded.report.old_program_id, reloaded.report.new_program_id
        );
        if !reloaded.installed.is_empty() {
            println!("installed the differences between the saved state and the kernel:");
        }
        for line in &reloaded.installed {
            println!("  {line}");
        }
    }
    Ok(())
}

pub(crate) fn status(json: bool) -> Result<()> {
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
            // The interface's own reason first (its pins unreadable).
            if status.degraded.is_none() {
                status.degraded.clone_from(&degraded);
            }
            xdpath::control::features::note_older_program(status);
        }
    }
    if json {
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
                    (None, true) => match &status.older_program {
                        Some(lacks) => format!("attached (older program, without {lacks})"),
                        None => "attached".to_string(),
                    },
                },
            );
        }
    }
    Ok(())
}

pub(crate) fn stats(interface: &Option<String>, json: bool) -> Result<()> {
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
        xdpath::control::views::filter_counters()?
    };
    if json {
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
            print!("{}", stats::CounterTable(rows));
        }
        if let Some(filter) = &filter {
            print_filter_counters(filter);
        }
    }
    Ok(())
}

pub(crate) fn decap(
    interface: &String,
    mode: &ModeChoice,
    gue_port: &u16,
    refresh: &bool,
    json: bool,
) -> Result<()> {
    let report = xdpath::lb::decap::decap(interface, *mode, *gue_port, *refresh)?;
    if json {
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
    Ok(())
}

pub(crate) fn forward(switch: &ForwardSwitch, interface: &String, json: bool) -> Result<()> {
    let on = matches!(switch, ForwardSwitch::Enable);
    let report = dataplane::forward::set_forwarding(interface, on)?;
    for warning in &report.warnings {
        eprintln!("xdpath: warning: {warning}");
    }
    if json {
        print_json(&report)?;
    } else if on {
        println!("forwarding on {interface}");
    } else {
        println!("not forwarding on {interface}");
    }
    Ok(())
}

pub(crate) fn steer(
    switch: &ForwardSwitch,
    interface: &String,
    cpus: &Option<String>,
    queue_size: &Option<u32>,
    json: bool,
) -> Result<()> {
    let on = matches!(switch, ForwardSwitch::Enable);
    let report = dataplane::steer::set_steering(interface, on, cpus.as_deref(), *queue_size)?;
    if json {
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
    Ok(())
}

pub(crate) fn xsk(command: &XskCommand, json: bool) -> Result<()> {
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
            if json {
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
    Ok(())
}

pub(crate) fn sample(interface: &str, rate: &str, json: bool) -> Result<()> {
    let rate = xdpath::observe::parse_rate(rate)?;
    if !dataplane::status(interface)?.healthy {
        return Err(dataplane::DataplaneError::InterfaceGone {
            name: interface.to_owned(),
        }
        .into());
    }
    let config = xdpath::observe::rates::set_rate(interface, rate)?;
    if json {
        print_json(&serde_json::json!({
            "interface": interface,
            "sample_rate": config.sample_rate,
        }))?;
    } else if rate == 0 {
        println!("sampling off on {interface}");
    } else {
        println!("sampling 1 in {rate} frames on {interface}");
    }
    Ok(())
}
