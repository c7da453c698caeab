//! `xdpath bench --flood`: the flood rate absorbed on a veth pair with the
//! client unharmed, for xdpath and for xdp-tools' xdp-filter against the
//! same flood, and with no defence at all, in one run.
//!
//! Method: a test bed (two namespaces joined by a veth pair). Side A runs
//! nginx set up by `servers::fragile_nginx`, so that an unchecked SYN flood
//! fills its SYN queue. Side B runs `hping3 -S --flood` from a
//! spoofed source for `seconds`, while a client on B fetches a page every
//! so often (1 s timeout). For each defender we record the frames hping3
//! sent, the frames the defender dropped at XDP, and the client's fetches.
//! Both defenders run in native mode and drop by exact source address.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::servers::{fetch, fragile_nginx, ServerError};
use crate::testenv::{Side, TestBed, TestBedError};

const SPOOFED: &str = "198.18.0.7";

/// Errors of the flood benchmark.
#[derive(Debug, thiserror::Error)]
pub enum FloodError {
    /// The test bed failed.
    #[error(transparent)]
    Bed(#[from] TestBedError),
    /// A server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A defender could not be set up.
    #[error("{defender}: {message}")]
    Defender {
        /// Which defender.
        defender: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// One defender's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FloodResult {
    /// xdpath, xdp-filter or none.
    pub defender: String,
    /// Frames hping3 reports sent.
    pub sent: u64,
    /// Frames the defender dropped at XDP.
    pub dropped: u64,
    /// `dropped / seconds`.
    pub dropped_per_second: f64,
    /// Client fetches that succeeded.
    pub fetched: usize,
    /// Client fetches tried.
    pub tried: usize,
}

/// Runs the flood for each defender on a fresh bed.
pub fn run(seconds: u32) -> Result<Vec<FloodResult>, FloodError> {
    let mut results = Vec::new();
    for defender in ["xdpath", "xdp-filter", "none"] {
        let bed = TestBed::new()?;
        let _nginx = fragile_nginx(&bed, &format!("{SPOOFED}/32"))?;
        defend(&bed, defender)?;
        let (sent, fetched, tried) = flood(&bed, seconds);
        let dropped = dropped(&bed, defender)?;
        undefend(&bed, defender);
        results.push(FloodResult {
            defender: defender.into(),
            sent,
            dropped,
            dropped_per_second: dropped as f64 / f64::from(seconds),
            fetched,
            tried,
        });
    }
    Ok(results)
}

fn xdpath_in_a(bed: &TestBed, args: &[&str]) -> Result<String, FloodError> {
    Ok(crate::servers::xdpath_in(bed, Side::A, args)?)
}

fn defend(bed: &TestBed, defender: &'static str) -> Result<(), FloodError> {
    let interface = bed.a().interface.as_str();
    let fail = |output: std::process::Output| FloodError::Defender {
        defender,
        message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    };
    match defender {
        "xdpath" => {
            xdpath_in_a(bed, &["attach", interface, "--mode", "native"])?;
            xdpath_in_a(bed, &["block", "add", &format!("{SPOOFED}/32")])?;
        }
        "xdp-filter" => {
            let output = bed.exec(
                Side::A,
                "xdp-filter",
                ["load", interface, "--mode", "native"],
            )?;
            if !output.status.success() {
                return Err(fail(output));
            }
            let output = bed.exec(Side::A, "xdp-filter", ["ip", SPOOFED, "--mode", "src"])?;
            if !output.status.success() {
                return Err(fail(output));
            }
        }
        _ => {}
    }
    Ok(())
}

fn undefend(bed: &TestBed, defender: &str) {
    let interface = bed.a().interface.as_str();
    match defender {
        "xdpath" => {
            let _ = xdpath_in_a(bed, &["detach", interface]);
        }
        "xdp-filter" => {
            let _ = bed.exec(Side::A, "xdp-filter", ["unload", interface]);
        }
        _ => {}
    }
}

/// Floods for `seconds` while fetching; returns (sent, fetched, tried).
fn flood(bed: &TestBed, seconds: u32) -> (u64, usize, usize) {
    let target = bed.a().ipv4.to_string();
    let child = bed
        .command(Side::B, "timeout")
        .args([
            "--signal=INT",
            &seconds.to_string(),
            "hping3",
            "-S",
            "-p",
            "80",
            "--flood",
            "-a",
            SPOOFED,
        ])
        .arg(&target)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let (mut fetched, mut tried) = (0, 0);
    while started.elapsed() < Duration::from_secs(u64::from(seconds)) {
        tried += 1;
        if fetch(bed, Duration::from_secs(1)) {
            fetched += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = child
        .ok()
        .and_then(|child| child.wait_with_output().ok())
        .map(|output| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            transmitted(&text)
        })
        .unwrap_or(0);
    (sent, fetched, tried)
}

/// hping3's "N packets transmitted".
fn transmitted(text: &str) -> u64 {
    text.lines()
        .find(|line| line.contains("packets transmitted"))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

fn dropped(bed: &TestBed, defender: &str) -> Result<u64, FloodError> {
    match defender {
        "xdpath" => {
            let text = xdpath_in_a(bed, &["--json", "stats"])?;
            let stats: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            Ok(xdpath::stats::packets_in_json(&stats, "drop", None))
        }
        "xdp-filter" => {
            let output = bed.exec(Side::A, "xdp-filter", ["status"])?;
            Ok(xdp_filter_drops(&String::from_utf8_lossy(&output.stdout)))
        }
        _ => Ok(0),
    }
}

/// The packet count on xdp-filter's `XDP_DROP` status line.
fn xdp_filter_drops(text: &str) -> u64 {
    text.lines()
        .find(|line| line.trim_start().starts_with("XDP_DROP"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tool_output() {
        assert_eq!(
            transmitted(
                "--- 10.0.0.1 hping statistic ---\n123456 packets transmitted, 0 packets received"
            ),
            123_456
        );
        assert_eq!(transmitted("nothing"), 0);
        let status = "Action\tpackets\n  XDP_ABORTED   0 pkts\n  XDP_DROP      4242 pkts   0 KiB\n";
        assert_eq!(xdp_filter_drops(status), 4242);
    }
}
