//! The runtimes and the lab: replay, run --userspace, bench.

use super::*;

pub(crate) fn replay(
    file: &std::path::Path,
    write_pass: &Option<PathBuf>,
    malformed: &Malformed,
    rules: &Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let filter = rules
        .as_deref()
        .map(control::rulefile::filter_state_from_file)
        .transpose()?;
    // Drawn from the first report on, when the capture is big enough.
    let bar = std::cell::OnceCell::new();
    let report = replay::run_filtered(
        file,
        write_pass.as_deref(),
        InterfaceConfig::new((*malformed).into()),
        filter.as_ref(),
        &|read, total| {
            if let Some(bar) = bar.get_or_init(|| progress_bar(total)) {
                bar.set_position(read);
            }
        },
    );
    if let Some(Some(bar)) = bar.get() {
        bar.finish_and_clear();
    }
    let report = report?;
    if json {
        print_json(&report)?;
    } else {
        print!("{report}");
    }
    Ok(())
}

/// A progress bar on stderr, for big captures when stderr is a terminal.
fn progress_bar(size: u64) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if size <= replay::PROGRESS_THRESHOLD || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "replay {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the flags of `xdpath run`, one parameter each, as clap parsed them"
)]
pub(crate) fn run(
    interface: &str,
    userspace: &bool,
    queues: &Option<u32>,
    malformed: &Malformed,
    monitor: &bool,
    forward: &bool,
    exception: &xdpath::userspace::Exception,
    zero_copy: &bool,
    duration: &Option<f64>,
    threads: bool,
    json: bool,
) -> Result<()> {
    if !*userspace {
        return Err("xdpath run needs --userspace (the kernel path is `xdpath attach`)".into());
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
        interface: interface.to_owned(),
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
        threads,
    };
    let _signals = xdpath_lab::signals::SignalGuard::install();
    let report = xdpath::userspace::run(&options, &xdpath_lab::signals::interrupted)?;
    if json {
        print_json(&report)?;
    } else {
        print!("{report}");
    }
    Ok(())
}

pub(crate) fn bench(options: &bench::BenchOptions, json: bool) -> Result<()> {
    let report = bench::run(options)?;
    if json {
        print_json(&report)?;
    } else {
        report.print();
    }
    Ok(())
}
