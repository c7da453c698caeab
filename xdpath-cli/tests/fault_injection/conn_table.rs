//! `lb config --connection-table` killed at each step after its save: the
//! table's kind is fixed when the map is made, so the change unpins the
//! old table and reloads every interface over a new one. A kill in
//! between used to leave the running program on the old, unpinned table
//! while `state check` read the new pinned one and said the kernel
//! enforced the state (hostile lb F6), and `state check --repair` never
//! changed the kind. Now, after each kill, `state check` is green only
//! when the program the link runs holds the pinned table of the saved
//! kind (read with bpftool, from the link's program down), and
//! `--repair` always gets there.

use super::*;
use common::xdpath_ok_warned;
use xdpath_core::abi;

const VIP: &str = "203.0.113.10:80/tcp";

/// `bpftool -j ARGS` (in A's namespace) as JSON.
fn bpftool(bed: &TestBed, args: &[&str]) -> Value {
    let mut command = vec!["-j"];
    command.extend_from_slice(args);
    let output = bed.exec(Side::A, "bpftool", command).expect("run bpftool");
    assert!(
        output.status.success(),
        "bpftool {args:?}: {}",
        text(&output)
    );
    serde_json::from_slice(&output.stdout).expect("bpftool's JSON")
}

/// A little-endian u32 from bpftool's `["0x01", …]` bytes.
fn word(bytes: &Value) -> u64 {
    bytes
        .as_array()
        .expect("bytes")
        .iter()
        .rev()
        .map(|byte| u64::from_str_radix(byte.as_str().expect("hex").trim_start_matches("0x"), 16))
        .try_fold(0, |sum, byte| byte.map(|byte| sum << 8 | byte))
        .expect("hex bytes")
}

/// The ids and flags of every `CONNECTIONS` map the programs A's link runs
/// hold: the link's program, then each program of its tail-call table.
fn held_tables(bed: &TestBed) -> Vec<(u64, u64)> {
    let interface = bed.a().interface.clone();
    let net = bpftool(bed, &["net", "show", "dev", &interface]);
    let entry = net[0]["xdp"][0]["id"].as_u64().expect("an XDP program");
    let mut programs = vec![entry];
    let map_ids = |program: u64| -> Vec<u64> {
        let info = bpftool(bed, &["prog", "show", "id", &program.to_string()]);
        info["map_ids"]
            .as_array()
            .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    };
    let map = |id: u64| bpftool(bed, &["map", "show", "id", &id.to_string()]);
    for id in map_ids(entry) {
        if map(id)["name"] == abi::map::STAGES {
            let slots = bpftool(bed, &["map", "dump", "id", &id.to_string()]);
            programs.extend(
                slots
                    .as_array()
                    .expect("slots")
                    .iter()
                    .map(|slot| word(&slot["value"])),
            );
        }
    }
    let mut tables: Vec<(u64, u64)> = programs
        .iter()
        .flat_map(|program| map_ids(*program))
        .map(map)
        .filter(|info| info["name"] == abi::map::CONNECTIONS)
        .map(|info| {
            (
                info["id"].as_u64().expect("id"),
                info["flags"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    tables.sort_unstable();
    tables.dedup();
    tables
}

/// The saved kind's flags.
fn saved_flags(bed: &TestBed) -> u64 {
    let lb = std::fs::read_to_string(bed.a().state_dir().join("lb.json")).expect("lb.json");
    let lb: Value = serde_json::from_str(&lb).expect("lb.json's JSON");
    match lb["settings"]["connection_table"].as_str() {
        Some("per-cpu") => 2,
        _ => 0,
    }
}

/// Whether the running programs hold exactly the pinned table, of the
/// saved kind.
fn holds_the_pinned_table(bed: &TestBed) -> Result<(), String> {
    let pin = bed
        .a()
        .pin_dir()
        .join(":shared")
        .join(abi::map::CONNECTIONS);
    let pinned = bpftool(bed, &["map", "show", "pinned", &pin.display().to_string()]);
    let pinned = (
        pinned["id"].as_u64().expect("id"),
        pinned["flags"].as_u64().unwrap_or(0),
    );
    let held = held_tables(bed);
    let wanted = saved_flags(bed);
    if held == [pinned] && pinned.1 == wanted {
        Ok(())
    } else {
        Err(format!(
            "the programs hold {held:?}, the pin is {pinned:?}, the state asks for flags {wanted}"
        ))
    }
}

fn state_check_says_exact(bed: &TestBed) -> bool {
    xdpath(bed, &["state", "check"]).status.success()
}

#[test]
fn a_connection_table_change_killed_anywhere_is_reported_and_repaired() {
    xdpath_lab::needs_root!();
    let test = "a_connection_table_change_killed_anywhere_is_reported_and_repaired";
    if !strace_or_skip(test) {
        return;
    }
    let bed = bed();
    let interface = bed.a().interface.clone();
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    xdpath_ok_warned(&bed, &["lb", "config", "--source-v4", "172.16.0.0/16"]);
    xdpath_ok_warned(&bed, &["lb", "vip", "add", VIP]);
    xdpath_ok_warned(&bed, &["lb", "backend", "add", VIP, "10.0.0.1"]);
    let to_per_cpu = ["lb", "config", "--connection-table", "per-cpu"];
    let to_shared = ["lb", "config", "--connection-table", "shared"];
    xdpath_ok_warned(&bed, &to_per_cpu);
    holds_the_pinned_table(&bed).expect("after the change to per-cpu");

    // Where to kill: bpf() calls numbered among the bpf() calls, found
    // by a traced run of the change.
    let steps = Fault {
        calls: "bpf,rename,unlink",
        error: "ENOMEM",
    };
    let (output, calls) = traced_calls(&bed, &to_shared, &steps, None);
    assert!(output.status.success(), "{}", text(&output));
    let bpf_number = |line: usize| {
        calls[..line]
            .iter()
            .filter(|call| call.contains("bpf("))
            .count()
            + 1
    };
    let first_after = |found: &[usize]| bpf_number(*found.first().expect("the step in the trace"));
    let saved = first_after(&calls_where(&calls, |line| {
        line.contains("rename(") && line.contains("/lb.json\"")
    }));
    let unpinned = first_after(&calls_where(&calls, |line| {
        line.contains("unlink(") && line.contains(":shared/CONNECTIONS\"")
    }));
    let pinned = first_after(&calls_where(&calls, |line| {
        line.contains("BPF_OBJ_PIN") && line.contains(":shared/CONNECTIONS\"")
    }));
    let swap = bpf_number(calls_where(&calls, |line| line.contains("BPF_LINK_UPDATE"))[0] - 1);
    let last = calls.iter().filter(|call| call.contains("bpf(")).count();
    let kills = [saved, unpinned, pinned, swap, swap + 1, last];
    assert!(
        saved < unpinned && unpinned < pinned && pinned <= swap && swap < last,
        "{kills:?}"
    );

    for kill in kills {
        xdpath_ok_warned(&bed, &to_per_cpu);
        holds_the_pinned_table(&bed).unwrap_or_else(|why| panic!("before kill {kill}: {why}"));
        let inject = format!("inject=bpf:signal=KILL:when={kill}");
        let mut command = vec![
            "-f",
            "-o",
            "/dev/null",
            "-e",
            "trace=bpf",
            "-e",
            inject.as_str(),
            XDPATH,
        ];
        command.extend_from_slice(&to_shared);
        let killed = bed.exec(Side::A, "strace", command).expect("run strace");
        // The count of a run's calls moves a little with the machine's
        // load (a wait that polls): a kill past this run's last call lets
        // it finish, and then all must be as after any change.
        if killed.status.success() {
            assert!(
                state_check_says_exact(&bed),
                "kill {kill} came too late; yet not exact"
            );
            holds_the_pinned_table(&bed).unwrap_or_else(|why| panic!("finished: {why}"));
            continue;
        }
        let check = xdpath(&bed, &["state", "check"]);
        if check.status.success() {
            holds_the_pinned_table(&bed).unwrap_or_else(|why| {
                panic!("killed at bpf call {kill}: `state check` says exact, but {why}")
            });
        } else {
            // Said as what it is, not as an error of the check itself.
            let said = text(&check);
            assert!(
                [
                    "connection tables:",
                    "not this namespace's pinned ones",
                    "not all pinned"
                ]
                .iter()
                .any(|line| said.contains(line)),
                "killed at bpf call {kill}: {said}"
            );
        }
        let repair = xdpath(&bed, &["state", "check", "--repair"]);
        assert!(repair.status.success(), "kill {kill}: {}", text(&repair));
        assert!(
            state_check_says_exact(&bed),
            "kill {kill}: the repair did not converge"
        );
        holds_the_pinned_table(&bed)
            .unwrap_or_else(|why| panic!("killed at bpf call {kill}, then repaired: {why}"));
    }
}

/// An interface whose device went (its pins stay until the next attach
/// or `state gc`) neither stops a connection-table change nor the repair:
/// both used to reload every pinned interface in turn and stop at the
/// gone one's error, after the old table was unpinned, leaving the
/// interfaces after it on the old table for good (the review of the F6
/// fix).
#[test]
fn a_gone_interface_neither_stops_the_change_nor_the_repair() {
    xdpath_lab::needs_root!();
    let bed = bed();
    let interface = bed.a().interface.clone();
    let gone = format!("xg{}", bed.number());
    bed.exec_ok(
        Side::A,
        "ip",
        [
            "link",
            "add",
            &gone,
            "type",
            "veth",
            "peer",
            "name",
            &format!("{gone}p"),
        ],
    )
    .expect("a second veth in A");
    bed.exec_ok(Side::A, "ip", ["link", "set", &gone, "up"])
        .expect("up");
    xdpath_ok(&bed, &["attach", &gone, "--mode", "generic"]);
    xdpath_ok(&bed, &["attach", &interface, "--mode", "generic"]);
    xdpath_ok_warned(&bed, &["lb", "config", "--source-v4", "172.16.0.0/16"]);
    xdpath_ok_warned(&bed, &["lb", "vip", "add", VIP]);
    xdpath_ok_warned(&bed, &["lb", "backend", "add", VIP, "10.0.0.1"]);
    bed.exec_ok(Side::A, "ip", ["link", "del", &gone])
        .expect("the device goes");
    xdpath_ok_warned(&bed, &["lb", "config", "--connection-table", "per-cpu"]);
    holds_the_pinned_table(&bed).expect("the bed's interface on the new table");
    let repair = xdpath(&bed, &["state", "check", "--repair"]);
    assert!(repair.status.success(), "{}", text(&repair));
    assert!(
        state_check_says_exact(&bed),
        "{}",
        text(&xdpath(&bed, &["state", "check"]))
    );
}
