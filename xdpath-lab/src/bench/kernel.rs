//! The kernel section: loading xdpath, xdpath with the benchmark's filter,
//! the empty program and the xdp-filter peer, timing them over the mix
//! trial by trial, and each program's figures from the trials.

use std::time::Instant;

use xdpath::dataplane::{DataplaneError, LoadedProgram};
use xdpath_core::abi;
use xdpath_core::InterfaceConfig;

use super::{mean, median, BenchError, BenchOptions, ProgramResult};

/// xdp-filter's entry point in `xdpfilt_alw_all.o`.
pub(super) const PEER_PROGRAM: &str = "xdpfilt_alw_all";

/// Loads an xdpath instance (the embedded object, or `object`).
pub(super) fn load_plain(object: Option<&std::path::Path>) -> Result<LoadedProgram, BenchError> {
    match object {
        Some(path) => LoadedProgram::load_file(path, abi::program::XDPATH),
        None => LoadedProgram::load(InterfaceConfig::default()),
    }
    .map_err(|source| BenchError::Program {
        program: "xdpath".into(),
        source: Box::new(source),
    })
}

/// Loads an xdpath instance (the embedded object, or `object`) with
/// [`super::bench_filter_state`] installed.
pub(super) fn load_filtered(
    object: Option<&std::path::Path>,
    extra: super::AddressLimitsOption,
) -> Result<LoadedProgram, BenchError> {
    let program = match object {
        Some(path) => LoadedProgram::load_file(path, abi::program::XDPATH),
        None => LoadedProgram::load(InterfaceConfig::default()),
    }
    .map_err(|source| BenchError::Program {
        program: "xdpath+filter".into(),
        source: Box::new(source),
    })?;
    let state = super::bench_filter_state_with(extra).map_err(BenchError::Options)?;
    let mut maps = xdpath::control::kernel::KernelMaps::of_program(&program)
        .map_err(|error| BenchError::Options(format!("filter maps: {error}")))?;
    xdpath::control::apply::install_fresh(
        &mut maps,
        &state,
        &|_| None,
        xdpath::control::wall_now(),
    )
    .map_err(|error| BenchError::Options(format!("install the benchmark rules: {error}")))?;
    Ok(program)
}

/// The `--beside` objects, each loaded plain and with the benchmark's
/// filter, named after their files.
fn load_beside(
    objects: &[std::path::PathBuf],
    extra: super::AddressLimitsOption,
) -> Result<Vec<(String, LoadedProgram, LoadedProgram)>, BenchError> {
    objects
        .iter()
        .map(|path| {
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |name| name.to_string_lossy().into(),
            );
            Ok((
                name,
                load_plain(Some(path))?,
                load_filtered(Some(path), extra)?,
            ))
        })
        .collect()
}

/// One trial over the mix: per frame, (wall-clock ns per run, the kernel's
/// own integer ns per run).
pub(crate) fn time_program(
    program: &mut LoadedProgram,
    mix: &[(String, Vec<u8>)],
    repeat: u32,
) -> Result<Vec<(f64, f64)>, DataplaneError> {
    let mut per_frame = Vec::with_capacity(mix.len());
    for (_, frame) in mix {
        // A short warm-up so the trial does not pay for cold caches.
        program.time_run(frame, repeat.min(10_000))?;
        let started = Instant::now();
        let kernel = program.time_run(frame, repeat)?;
        let wall = started.elapsed().as_nanos() as f64 / f64::from(repeat);
        per_frame.push((wall, kernel.as_nanos() as f64));
    }
    Ok(per_frame)
}

/// One program's samples: per trial, per frame of the mix, wall-clock
/// and kernel-reported ns.
type Samples = Vec<Vec<(f64, f64)>>;

/// A `--beside` object's name, then its plain and filtered programs'
/// samples.
type BesideSamples = (String, [Samples; 2]);

/// The samples of the kernel trials: per program (xdpath, empty, the
/// peer, xdpath + filter), per trial, per frame of the mix, wall-clock and
/// kernel-reported ns.
pub(super) struct KernelTrials {
    samples: Vec<Vec<Vec<(f64, f64)>>>,
    /// Per `--beside` object: its name, then its plain and filtered
    /// programs' samples as in `samples`.
    beside: Vec<BesideSamples>,
    /// Whether the xdp-filter peer loaded (and so has samples).
    peer_ran: bool,
    /// Why the peer did not run, if it did not.
    pub(super) peer_skipped: Option<String>,
}

/// Loads the programs and times them over `mix`, `options.trials` times.
pub(super) fn kernel_trials(
    options: &BenchOptions,
    mix: &[(String, Vec<u8>)],
) -> Result<KernelTrials, BenchError> {
    let wrap = |program: &str| {
        let program = program.to_string();
        move |source| BenchError::Program {
            program,
            source: Box::new(source),
        }
    };

    let mut xdpath = load_plain(options.object.as_deref())?;
    let mut filtered = load_filtered(options.object.as_deref(), options.address_limits())?;
    let mut empty = LoadedProgram::load_empty().map_err(wrap("empty"))?;
    let peer = LoadedProgram::load_file(&options.peer, PEER_PROGRAM);
    let (mut peer, peer_skipped) = match peer {
        Ok(peer) => (Some(peer), None),
        Err(error) => (None, Some(format!("{}: {error}", options.peer.display()))),
    };

    let mut beside = load_beside(&options.beside, options.address_limits())?;
    let mut beside_samples: Vec<BesideSamples> = beside
        .iter()
        .map(|(name, _, _)| (name.clone(), [Vec::new(), Vec::new()]))
        .collect();

    // Interleave the programs trial by trial so drift (frequency, other load)
    // hits all of them alike.
    let mut samples: Vec<Vec<Vec<(f64, f64)>>> = vec![Vec::new(); 4];
    for _ in 0..options.trials {
        for ((name, plain, filtered), (_, into)) in beside.iter_mut().zip(&mut beside_samples) {
            into[0].push(time_program(plain, mix, options.repeat).map_err(wrap(name))?);
            into[1].push(time_program(filtered, mix, options.repeat).map_err(wrap(name))?);
        }
        samples[0].push(time_program(&mut xdpath, mix, options.repeat).map_err(wrap("xdpath"))?);
        samples[3]
            .push(time_program(&mut filtered, mix, options.repeat).map_err(wrap("xdpath+filter"))?);
        samples[1].push(time_program(&mut empty, mix, options.repeat).map_err(wrap("empty"))?);
        if let Some(peer) = peer.as_mut() {
            samples[2].push(time_program(peer, mix, options.repeat).map_err(wrap("xdp-filter"))?);
        }
    }
    Ok(KernelTrials {
        samples,
        beside: beside_samples,
        peer_ran: peer.is_some(),
        peer_skipped,
    })
}

/// Each program's figures: per frame the median over the trials, then the
/// mean over the mix, and the ratios to the empty program and the peer.
pub(super) fn kernel_results(mix_len: usize, trials: &KernelTrials) -> Vec<ProgramResult> {
    // Per frame, the median over trials; `pick` chooses wall-clock or kernel.
    let per_frame = |trials: &Vec<Vec<(f64, f64)>>, pick: fn(&(f64, f64)) -> f64| -> Vec<f64> {
        (0..mix_len)
            .map(|frame| {
                let mut values: Vec<f64> = trials
                    .iter()
                    .filter_map(|trial| trial.get(frame))
                    .map(pick)
                    .collect();
                median(&mut values)
            })
            .collect()
    };
    let wall = |sample: &(f64, f64)| sample.0;
    let reported = |sample: &(f64, f64)| sample.1;
    let empty_ns = mean(&per_frame(&trials.samples[1], wall));
    let empty_reported = mean(&per_frame(&trials.samples[1], reported));
    let peer_ran = trials.peer_ran;
    let peer_ns = peer_ran.then(|| mean(&per_frame(&trials.samples[2], wall)));
    let result = |name: &str, trials: &Vec<Vec<(f64, f64)>>| {
        let frames = per_frame(trials, wall);
        let ns = mean(&frames);
        let frames_reported = per_frame(trials, reported);
        let kernel_reported = mean(&frames_reported);
        ProgramResult {
            program: name.into(),
            ns_per_packet: ns,
            per_frame_ns: frames,
            ratio_to_empty: ns / empty_ns,
            ratio_to_xdp_filter: peer_ns.map(|peer| ns / peer),
            kernel_reported_ns: kernel_reported,
            kernel_reported_ratio_to_empty: kernel_reported / empty_reported,
            per_frame_kernel_ns: frames_reported,
        }
    };
    let mut kernel = vec![
        result("xdpath (parse+count)", &trials.samples[0]),
        result("xdpath + filter (100k pfx)", &trials.samples[3]),
        result("empty (XDP_PASS)", &trials.samples[1]),
    ];
    for (name, [plain, filtered]) in &trials.beside {
        kernel.push(result(&format!("xdpath (parse+count) [{name}]"), plain));
        kernel.push(result(
            &format!("xdpath + filter (100k pfx) [{name}]"),
            filtered,
        ));
    }
    if peer_ran {
        kernel.push(result("xdp-filter xdpfilt_alw_all", &trials.samples[2]));
    }
    kernel
}
