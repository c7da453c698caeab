//! The tunnel section (`--tunnels`): the cost of looking inside VXLAN and
//! Geneve. The object under test twice, interleaved trial by trial: with
//! the benchmark's filter ([`bench_filter_state`]: 100,000 prefixes, port
//! rules, a limit) and with that filter plus rules and a limit by VNI
//! (1,000 inner /24s of VNI 1001 denied, a per-inner-source limit), over
//! plain frames and tunnelled ones; then that filter plus 1,000 blocklist
//! entries of VNI 1001. The plain frames' difference is what frames that
//! are not tunnelled pay once VNI rules (or VNI blocklist entries) exist;
//! the tunnelled frames' difference is the inner parse and the inner
//! rules, blocklist and limits.

use xdpath::dataplane::LoadedProgram;
use xdpath_core::abi;
use xdpath_core::build::{doc_v6, geneve_frame, vxlan_frame, FrameSpec, Network, Transport};
use xdpath_core::wire::tcp::FLAG_SYN;
use xdpath_core::InterfaceConfig;

use super::kernel::time_program;
use super::{bench_filter_state, median, BenchError, BenchOptions};

/// Inner /24s of VNI 1001 the VNI rule denies (172.16.0.0/24 onwards).
pub const TUNNEL_PREFIXES: u32 = 1_000;

/// One program's figures over the tunnel mix.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TunnelRow {
    /// What ran.
    pub program: String,
    /// The kernel-reported ns per frame (median over the trials), in mix
    /// order.
    pub per_frame_kernel_ns: Vec<f64>,
}

/// The tunnel section's report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TunnelReport {
    /// Frame descriptions, in mix order.
    pub mix: Vec<String>,
    /// Without and with VNI rules, then with the VNI blocklist too.
    pub rows: Vec<TunnelRow>,
    /// Why the VNI row did not run (an object that knows no VNI).
    pub skipped: Option<String>,
}

impl TunnelReport {
    /// Prints the section as a table: one column per program.
    pub fn print(&self) {
        println!();
        print!("{:<36}", "TUNNELS (kernel-reported ns)");
        for row in &self.rows {
            print!(" {:>22}", row.program);
        }
        println!();
        for (index, frame) in self.mix.iter().enumerate() {
            print!("{frame:<36}");
            for row in &self.rows {
                let value = row.per_frame_kernel_ns.get(index).copied().unwrap_or(0.0);
                print!(" {value:>22.1}");
            }
            println!();
        }
        if let Some(reason) = &self.skipped {
            println!("VNI rules skipped: {reason}");
        }
    }
}

/// Plain frames, then the same kinds tunnelled (inner frames that pass,
/// and one the VNI rules deny).
pub fn tunnel_mix() -> Vec<(String, Vec<u8>)> {
    let v4 = Network::V4([192, 0, 2, 1], [198, 51, 100, 2]);
    let udp = Transport::udp(5353, 53);
    let syn = Transport::tcp(40000, 80, FLAG_SYN);
    let plain_udp = FrameSpec::new(v4, udp.clone())
        .with_payload(&[0; 64])
        .build();
    let inner_v4 =
        FrameSpec::new(Network::V4([192, 168, 0, 9], [192, 168, 0, 1]), syn.clone()).build();
    let inner_v6 = FrameSpec::new(Network::V6(doc_v6(5), doc_v6(9)), syn.clone()).build();
    let denied =
        FrameSpec::new(Network::V4([172, 16, 5, 3], [192, 168, 0, 1]), syn.clone()).build();
    let blocked = FrameSpec::new(Network::V4([10, 0, 3, 7], [192, 168, 0, 1]), syn.clone()).build();
    vec![
        ("plain ipv4-udp".into(), plain_udp),
        ("plain ipv4-tcp-syn".into(), FrameSpec::new(v4, syn).build()),
        ("vxlan 1001 ipv4-tcp".into(), vxlan_frame(1001, &inner_v4)),
        (
            "vxlan 1001 ipv4-tcp (denied)".into(),
            vxlan_frame(1001, &denied),
        ),
        (
            "geneve 1001 +8B opts ipv6-tcp".into(),
            geneve_frame(1001, 8, &inner_v6),
        ),
        ("vxlan 2002 ipv4-tcp".into(), vxlan_frame(2002, &inner_v4)),
        (
            "vxlan 1001 ipv4-tcp (blocklisted)".into(),
            vxlan_frame(1001, &blocked),
        ),
    ]
}

/// Inner /24s of VNI 1001 on the blocklist (10.0.0.0/24 onwards) in the
/// third program.
pub const TUNNEL_BLOCKS: u32 = 1_000;

/// [`bench_tunnel_state`] plus [`TUNNEL_BLOCKS`] blocklist entries of
/// VNI 1001.
pub fn bench_tunnel_block_state() -> Result<xdpath::control::state::FilterState, String> {
    let mut state = bench_tunnel_state()?;
    for index in 0..TUNNEL_BLOCKS {
        let prefix = format!("10.{}.{}.0/24", index >> 8, index & 0xff);
        state.blocklist.push(xdpath::control::state::BlockSpec {
            prefix: xdpath::control::parse::parse_cidr(&prefix)
                .map_err(|error| error.to_string())?,
            expires_at: None,
            vni: Some(1001),
        });
    }
    Ok(state)
}

/// [`bench_filter_state`] plus a VNI rule of [`TUNNEL_PREFIXES`] inner
/// prefixes and a per-inner-source limit in VNI 1001 that drops nothing.
pub fn bench_tunnel_state() -> Result<xdpath::control::state::FilterState, String> {
    use std::fmt::Write;
    let mut state = bench_filter_state()?;
    let mut text = String::new();
    for index in 0..TUNNEL_PREFIXES {
        let (second, third) = (16 + (index >> 8), index & 0xff);
        let _ = writeln!(
            text,
            "--vni 1001 --src 172.{second}.{third}.0/24 --action drop"
        );
    }
    let first_id = state.rules.len() as u32 + 1;
    let mut rules = xdpath::control::rulefile::parse_rules(&text)
        .map_err(|(line, message)| format!("line {line}: {message}"))?;
    for (index, rule) in rules.iter_mut().enumerate() {
        rule.id = first_id + index as u32;
    }
    state.rules.extend(rules);
    let mut limit = state
        .rate_limits
        .first()
        .cloned()
        .ok_or("the benchmark's filter has a limit")?;
    limit.id = 2;
    limit.vni = Some(1001);
    state.rate_limits.push(limit);
    Ok(state)
}

/// The object under test (the embedded one, or `--object`'s) with `state`.
fn load_with(
    options: &BenchOptions,
    state: &xdpath::control::state::FilterState,
) -> Result<LoadedProgram, String> {
    let program = match &options.object {
        Some(path) => LoadedProgram::load_file(path, abi::program::XDPATH),
        None => LoadedProgram::load(InterfaceConfig::default()),
    }
    .map_err(|error| error.to_string())?;
    let mut maps = xdpath::control::kernel::KernelMaps::of_program(&program)
        .map_err(|error| format!("filter maps: {error}"))?;
    xdpath::control::apply::install_fresh(&mut maps, state, &|_| None, xdpath::control::wall_now())
        .map_err(|error| format!("install: {error}"))?;
    Ok(program)
}

/// Runs the section.
pub fn run(options: &BenchOptions) -> Result<TunnelReport, BenchError> {
    let mix = tunnel_mix();
    let plain_state = bench_filter_state().map_err(BenchError::Options)?;
    let mut programs = vec![(
        "filter, no VNI rules".to_string(),
        load_with(options, &plain_state).map_err(BenchError::Options)?,
    )];
    let tunnel_state = bench_tunnel_state().map_err(BenchError::Options)?;
    let block_state = bench_tunnel_block_state().map_err(BenchError::Options)?;
    let skipped = match load_with(options, &tunnel_state) {
        Ok(program) => {
            programs.push(("filter + VNI rules".to_string(), program));
            match load_with(options, &block_state) {
                Ok(program) => {
                    programs.push(("+ VNI blocklist".to_string(), program));
                    None
                }
                Err(error) => Some(format!("the VNI blocklist: {error}")),
            }
        }
        Err(error) => Some(error),
    };
    let mut samples: Vec<Vec<Vec<f64>>> = vec![Vec::new(); programs.len()];
    for _ in 0..options.trials {
        for ((name, program), samples) in programs.iter_mut().zip(&mut samples) {
            let trial = time_program(program, &mix, options.repeat).map_err(|source| {
                BenchError::Program {
                    program: name.clone(),
                    source: Box::new(source),
                }
            })?;
            samples.push(trial.iter().map(|(_, kernel)| *kernel).collect());
        }
    }
    let rows = programs
        .iter()
        .zip(&samples)
        .map(|((name, _), trials)| TunnelRow {
            program: name.clone(),
            per_frame_kernel_ns: (0..mix.len())
                .map(|frame| {
                    let mut values: Vec<f64> = trials
                        .iter()
                        .filter_map(|trial| trial.get(frame).copied())
                        .collect();
                    median(&mut values)
                })
                .collect(),
        })
        .collect();
    Ok(TunnelReport {
        mix: mix.into_iter().map(|(name, _)| name).collect(),
        rows,
        skipped,
    })
}
