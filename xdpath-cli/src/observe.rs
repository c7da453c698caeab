//! Observation: export, top, capture.

use super::*;

pub(crate) fn capture(args: &xdpath::observe::capture::CaptureArgs, json: bool) -> Result<()> {
    let _signals = xdpath_lab::signals::SignalGuard::install();
    let report = xdpath::observe::capture::capture(
        args,
        || {
            eprintln!("xdpath: capturing (Ctrl-C to stop)");
        },
        &xdpath_lab::signals::interrupted,
    )?;
    if json {
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
    Ok(())
}

pub(crate) fn export(args: &xdpath::observe::export::ExportArgs, json: bool) -> Result<()> {
    let _signals = xdpath_lab::signals::SignalGuard::install();
    let stats = xdpath::observe::export::export(
        args,
        || {
            eprintln!("xdpath: exporting (Ctrl-C to stop)");
        },
        &xdpath_lab::signals::interrupted,
    )?;
    if json {
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
    Ok(())
}

pub(crate) fn top(args: &xdpath::observe::topview::TopArgs, json: bool) -> Result<()> {
    let _signals = xdpath_lab::signals::SignalGuard::install();
    crate::top::run(args, json)?;
    Ok(())
}
