//! The demo's load-balancing act: a client, a balancer and three nginx
//! backends on one L2 segment ([`LbBed`]). The balancer gets a VIP with
//! weights 1, 2 and 3; the client's requests spread accordingly; one
//! backend is drained and gets no new flow. Everything runs through the
//! `xdpath` CLI in the namespaces, as an operator would type it.

use std::collections::BTreeMap;

use crate::demo::DemoError;
use crate::servers::ServerError;
use crate::testenv::lb::{LbBed, Role, GUE_PORT, INTERFACE, VIP4};

/// Requests the client sends in each round.
const REQUESTS: usize = 600;

/// Runs this `xdpath` binary in `role`'s namespace.
fn xdpath(bed: &LbBed, role: Role, args: &[&str]) -> Result<String, DemoError> {
    let command = format!("xdpath {}", args.join(" "));
    let exe = std::env::current_exe().map_err(|source| DemoError::Io {
        what: "finding the xdpath binary".into(),
        source,
    })?;
    let output = bed.exec(role, exe, args)?;
    if !output.status.success() {
        return Err(ServerError::Command {
            command,
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        }
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `count` requests to the VIP, each on a new connection; answers by
/// backend.
fn requests(bed: &LbBed, count: usize) -> Result<BTreeMap<String, usize>, DemoError> {
    let mut args: Vec<String> = ["-s", "--max-time", "60", "-H", "Connection: close"]
        .map(String::from)
        .to_vec();
    args.extend((1..=count).map(|request| format!("http://{VIP4}/?{request}")));
    let output = bed.exec(Role::Client, "curl", &args)?;
    let mut answers = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        *answers.entry(line.trim().to_string()).or_insert(0) += 1;
    }
    let answered: usize = answers.values().sum();
    if answered != count {
        return Err(DemoError::Mismatch(vec![format!(
            "{answered} of {count} requests answered"
        )]));
    }
    Ok(answers)
}

fn spread_text(answers: &BTreeMap<String, usize>) -> String {
    answers
        .iter()
        .map(|(backend, count)| format!("{backend} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The act; `say` narrates, `show` prints tables (stdout unless JSON).
pub fn lb_act(say: &dyn Fn(String), show: &dyn Fn(&str)) -> Result<(), DemoError> {
    let mut bed = LbBed::new()?;
    let lb = bed.host(Role::Lb1).clone();
    say(format!(
        "load balancing: client {} -> balancer {} ({}) -> backends {}, {}, {} on one bridge; VIP {VIP4} on the backends' lo",
        bed.host(Role::Client).ipv4,
        lb.ipv4,
        lb.namespace,
        bed.host(Role::B1).ipv4,
        bed.host(Role::B2).ipv4,
        bed.host(Role::B3).ipv4,
    ));
    let gue = GUE_PORT.to_string();
    for role in Role::BACKENDS {
        xdpath(&bed, role, &["decap", INTERFACE, "--gue-port", &gue])?;
    }
    say("xdpath decap eth0 on each backend; nginx answers with the backend's name".into());
    bed.start_backends()?;
    let vip = format!("{VIP4}:80/tcp");
    let mut commands: Vec<Vec<String>> = vec![
        vec!["attach".into(), INTERFACE.into()],
        ["lb", "config", "--source-v4", "172.16.0.0/16"]
            .map(String::from)
            .to_vec(),
        vec!["lb".into(), "vip".into(), "add".into(), vip.clone()],
    ];
    for (role, weight) in [(Role::B1, "1"), (Role::B2, "2"), (Role::B3, "3")] {
        let address = bed.host(role).ipv4.to_string();
        commands.push(
            ["lb", "backend", "add", &vip, &address, "--weight", weight]
                .map(String::from)
                .to_vec(),
        );
    }
    for command in &commands {
        say(format!("xdpath {}   (on the balancer)", command.join(" ")));
        let args: Vec<&str> = command.iter().map(String::as_str).collect();
        xdpath(&bed, Role::Lb1, &args)?;
    }
    let answers = requests(&bed, REQUESTS)?;
    say(format!(
        "{REQUESTS} requests, weights 1:2:3 -> {}",
        spread_text(&answers)
    ));
    show(&xdpath(&bed, Role::Lb1, &["lb", "backend", "list"])?);

    let drained = bed.host(Role::B3).ipv4.to_string();
    say(format!(
        "xdpath lb backend set-weight {vip} {drained} 0   (drain b3)"
    ));
    xdpath(
        &bed,
        Role::Lb1,
        &["lb", "backend", "set-weight", &vip, &drained, "0"],
    )?;
    let answers = requests(&bed, REQUESTS / 2)?;
    say(format!(
        "{} requests after draining b3 -> {}",
        REQUESTS / 2,
        spread_text(&answers)
    ));
    if answers.contains_key("b3") {
        return Err(DemoError::Mismatch(vec![
            "the drained backend got new flows".into(),
        ]));
    }
    show(&xdpath(&bed, Role::Lb1, &["lb", "stats"])?);
    say("removing the load-balancing bed".into());
    drop(bed);
    Ok(())
}
