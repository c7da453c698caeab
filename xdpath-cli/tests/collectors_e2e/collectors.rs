//! The real collectors of the collector tests, each in namespace B bound
//! to B's address on a port of its own, and what each reports, parsed per
//! flow. Every process is killed and every file removed on drop, failed
//! test or not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use xdpath_lab::testenv::{Side, TestBed};

/// A flow as collectors key it: source port, destination port, protocol
/// (the addresses are B's and A's throughout).
pub type FlowKey = (u16, u16, u8);

/// What a collector reports of one flow, summed over its records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reported {
    pub packets: u64,
    pub bytes: u64,
    pub tcp_flags: u8,
    /// The sampling rate the collector shows (pmacct), 0 when it shows
    /// none.
    pub sampling_rate: u64,
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("xdpath-collectors-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("make the scratch directory");
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A collector process: SIGINT and reaped by [`Daemon::stop`], killed on
/// drop.
pub struct Daemon {
    child: Option<Child>,
    name: &'static str,
}

impl Daemon {
    fn start(name: &'static str, mut command: Command) -> Self {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("start {name}: {error}"));
        // Binding takes a moment; the exporter must not send before.
        std::thread::sleep(Duration::from_millis(700));
        Self {
            child: Some(child),
            name,
        }
    }

    /// Asks the collector to end (it writes what it holds) and waits.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            for _ in 0..150 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            // What it holds was written by then (pmacct writes every
            // second, nfcapd at the signal); the files will tell.
            eprintln!("{} still running 15 s after SIGINT: killed", self.name);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// nfcapd storing what reaches B's `port` under `dir`.
pub fn nfcapd(bed: &TestBed, port: u16, dir: &Path) -> Daemon {
    let mut command = bed.command(Side::B, "nfcapd");
    command
        .args(["-b", &bed.b().ipv4.to_string(), "-p", &port.to_string()])
        .arg("-w")
        .arg(dir);
    Daemon::start("nfcapd", command)
}

/// nfdump's flows under `dir` (CSV, one line a record), summed per flow.
pub fn nfdump_flows(dir: &Path) -> BTreeMap<FlowKey, Reported> {
    let output = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(["-N", "-o", "csv"])
        .output()
        .expect("run nfdump");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "nfdump: {output:?}");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|field| *field == name)
            .unwrap_or_else(|| panic!("no {name} in nfdump's CSV: {text}"))
    };
    let (sp, dp, pr, flg) = (column("sp"), column("dp"), column("pr"), column("flg"));
    let (ipkt, ibyt) = (column("ipkt"), column("ibyt"));
    let mut flows = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let (Some(sport), Some(dport)) = (number(&fields, sp), number(&fields, dp)) else {
            continue; // the summary lines
        };
        let protocol = match fields.get(pr).map(|text| text.trim()) {
            Some("TCP") => 6,
            Some("UDP") => 17,
            Some(other) => other.parse().unwrap_or(0),
            None => continue,
        };
        let entry: &mut Reported = flows
            .entry((sport as u16, dport as u16, protocol))
            .or_default();
        entry.packets += number(&fields, ipkt).unwrap_or(0);
        entry.bytes += number(&fields, ibyt).unwrap_or(0);
        entry.tcp_flags |= nfdump_flags(fields.get(flg).copied().unwrap_or(""));
    }
    flows
}

/// nfdump's sampling line of the exporter: `nfdump -E`'s text.
pub fn nfdump_exporters(dir: &Path) -> String {
    let file = std::fs::read_dir(dir)
        .expect("read the nfcapd directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("nfcapd.2"))
        })
        .expect("an nfcapd file");
    let output = Command::new("nfdump")
        .arg("-E")
        .arg(file)
        .output()
        .expect("run nfdump -E");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn number(fields: &[&str], index: usize) -> Option<u64> {
    fields.get(index)?.trim().parse().ok()
}

/// nfdump's flag string ("...AP.S." style, or hex "0x12") as bits.
fn nfdump_flags(text: &str) -> u8 {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x") {
        return u8::from_str_radix(hex, 16).unwrap_or(0);
    }
    let mut bits = 0;
    for (letter, bit) in [
        ('F', 1),
        ('S', 2),
        ('R', 4),
        ('P', 8),
        ('A', 16),
        ('U', 32),
        ('E', 64),
        ('C', 128),
    ] {
        if text.contains(letter) {
            bits |= bit;
        }
    }
    bits
}

/// pmacct's `nfacctd` or `sfacctd` on B's `port`, its print plugin
/// appending per-flow CSV to `dir/flows.csv` every second (and sFlow
/// counters as JSON to `dir/counters.json`). No renormalisation: the
/// counts are as exported and `sampling_rate` says how to scale them.
pub fn pmacct(bed: &TestBed, daemon: &'static str, port: u16, dir: &Path) -> Daemon {
    let prefix = &daemon[..2];
    let config = format!(
        "daemonize: false\n\
         {prefix}acctd_ip: {address}\n\
         {prefix}acctd_port: {port}\n\
         {prefix}acctd_renormalize: false\n\
         {counters}\
         plugins: print[flows]\n\
         aggregate[flows]: src_host, dst_host, src_port, dst_port, proto, tcpflags, sampling_rate\n\
         print_output[flows]: csv\n\
         print_output_file[flows]: {dir}/flows.csv\n\
         print_output_file_append[flows]: true\n\
         print_refresh_time[flows]: 1\n",
        address = bed.b().ipv4,
        dir = dir.display(),
        counters = if daemon == "sfacctd" {
            format!(
                "sfacctd_counter_file: {}/counters.json\nsfacctd_counter_output: json\n",
                dir.display()
            )
        } else {
            String::new()
        },
    );
    let path = dir.join(format!("{daemon}.conf"));
    std::fs::write(&path, config).expect("write the pmacct config");
    let mut command = bed.command(Side::B, daemon);
    command.arg("-f").arg(path);
    Daemon::start(daemon, command)
}

/// The print plugin's rows, summed per flow (rows of every refresh).
pub fn pmacct_flows(dir: &Path) -> BTreeMap<FlowKey, Reported> {
    let text = std::fs::read_to_string(dir.join("flows.csv")).unwrap_or_default();
    let mut flows = BTreeMap::new();
    let mut header: Vec<String> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        if line.starts_with("SRC_IP")
            || line.starts_with("TAG")
            || fields.first() == Some(&"SRC_IP")
        {
            header = fields.iter().map(|field| field.to_string()).collect();
            continue;
        }
        let column = |name: &str| header.iter().position(|field| field == name);
        let value = |name: &str| column(name).and_then(|index| number(&fields, index));
        let (Some(sport), Some(dport)) = (value("SRC_PORT"), value("DST_PORT")) else {
            continue;
        };
        let protocol = match column("PROTOCOL").and_then(|index| fields.get(index)) {
            Some(&"tcp") => 6,
            Some(&"udp") => 17,
            Some(other) => other.parse().unwrap_or(0),
            None => continue,
        };
        let entry: &mut Reported = flows
            .entry((sport as u16, dport as u16, protocol))
            .or_default();
        entry.packets += value("PACKETS").unwrap_or(0);
        entry.bytes += value("BYTES").unwrap_or(0);
        entry.tcp_flags |= value("TCP_FLAGS").unwrap_or(0) as u8;
        entry.sampling_rate = value("SAMPLING_RATE").unwrap_or(0);
    }
    flows
}

/// sfacctd's counter log: one JSON object a line.
pub fn sflow_counters(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("counters.json"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
