//! `BPF_PROG_TEST_RUN` called directly, and the programs it runs.

use std::hint::black_box;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Instant;
use xdpath_core::abi;

use aya::programs::Xdp;
use xdpath_core::InterfaceConfig;

use super::LbBenchError;
use xdpath::bpf_syscall::{bpf, command};
use xdpath::dataplane::{ConnectionTable, DataplaneError, LoadedProgram};

/// The `bpf_attr` of `BPF_PROG_TEST_RUN`, up to `batch_size` (padded to
/// 8). The benchmark calls the command itself: aya's `TestRun` needs the
/// program mutably, and the multi-CPU rows run one program from several
/// threads at once.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}

/// Runs `frame` through the program `repeat` times (the frame not reset
/// between repeats): (the last run's action, the kernel-reported ns per
/// run, whole ns).
pub(crate) fn test_run(
    program: BorrowedFd<'_>,
    frame: &[u8],
    repeat: u32,
) -> std::io::Result<(u32, u32)> {
    let mut attr = TestRunAttr {
        prog_fd: program.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ..TestRunAttr::default()
    };
    // SAFETY: `attr` is a bpf_attr prefix for BPF_PROG_TEST_RUN with its
    // unused fields zero; `data_in` points at `data_size_in` live bytes and
    // there is no output buffer. The kernel writes `retval` and `duration`
    // back into `attr`.
    unsafe { bpf(command::PROG_TEST_RUN, &mut attr) }?;
    Ok((attr.retval, attr.duration))
}

/// Runs each frame once; returns each run's kernel-reported ns. With
/// `expected`, every run must end in that action.
pub(super) fn run_frames(
    program: BorrowedFd<'_>,
    label: &str,
    frames: &[Vec<u8>],
    expected: Option<u32>,
) -> Result<Vec<u64>, LbBenchError> {
    let mut durations = Vec::with_capacity(frames.len());
    for (index, frame) in frames.iter().enumerate() {
        let (action, ns) = test_run(program, frame, 1).map_err(|source| LbBenchError::TestRun {
            program: label.into(),
            source,
        })?;
        match expected {
            Some(expected) if action != expected => {
                return Err(LbBenchError::Verdict {
                    program: label.into(),
                    frame: index,
                    action,
                    expected,
                });
            }
            _ => durations.push(u64::from(ns)),
        }
    }
    Ok(durations)
}

/// A loaded program and a descriptor of its entry point.
pub(crate) struct Subject {
    pub(crate) label: String,
    pub(crate) program: LoadedProgram,
    pub(crate) entry: OwnedFd,
}

impl Subject {
    pub(crate) fn new(
        label: &str,
        mut program: LoadedProgram,
        entry: &str,
    ) -> Result<Self, LbBenchError> {
        let error = |message: String| LbBenchError::Program {
            program: label.into(),
            source: Box::new(DataplaneError::Load(message.into())),
        };
        let xdp = program
            .ebpf_mut()
            .program_mut(entry)
            .and_then(|program| <&mut Xdp>::try_from(program).ok())
            .ok_or_else(|| error(format!("no XDP program {entry} in the object")))?;
        let fd = xdp.fd().map_err(|source| error(source.to_string()))?;
        let entry = fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| error(source.to_string()))?;
        Ok(Self {
            label: label.into(),
            program,
            entry,
        })
    }

    /// Each frame once: the kernel-reported ns of each run.
    pub(super) fn pass(
        &self,
        frames: &[Vec<u8>],
        expected: Option<u32>,
    ) -> Result<Vec<u64>, LbBenchError> {
        run_frames(self.entry.as_fd(), &self.label, frames, expected)
    }

    /// One `repeat` run of `frame` after a short warm-up: (kernel-reported
    /// ns per run, wall-clock ns per run).
    pub(super) fn repeated(&self, frame: &[u8], repeat: u32) -> Result<(f64, f64), LbBenchError> {
        let error = |source| LbBenchError::TestRun {
            program: self.label.clone(),
            source,
        };
        black_box(test_run(self.entry.as_fd(), frame, repeat.min(10_000)).map_err(error)?);
        let started = Instant::now();
        let (_, kernel) = test_run(self.entry.as_fd(), frame, repeat).map_err(error)?;
        let wall = started.elapsed().as_nanos() as f64 / f64::from(repeat);
        Ok((f64::from(kernel), wall))
    }
}

/// Loads the xdpath object measured (the embedded one, or `object`), its
/// connection tables of kind `table`.
pub(super) fn load_xdpath(
    object: Option<&Path>,
    table: ConnectionTable,
    label: &str,
) -> Result<Subject, LbBenchError> {
    let program = match object {
        Some(path) => LoadedProgram::load_file_with_table(path, table),
        None => LoadedProgram::load_with_table(InterfaceConfig::default(), table),
    }
    .map_err(|source| LbBenchError::Program {
        program: label.into(),
        source: Box::new(source),
    })?;
    Subject::new(label, program, abi::program::XDPATH)
}
