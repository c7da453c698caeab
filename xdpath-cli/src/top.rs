//! `xdpath top`: the live view, drawn from [`xdpath::observe::topview`]'s
//! frames until Ctrl-C (or `--iterations`).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use xdpath::observe::topview::{periods, TopArgs, TopError, TopFrame, TopView};

/// Runs the view until stopped, drawing each refresh (as one JSON line
/// each with `json`).
pub fn run(args: &TopArgs, json: bool) -> Result<(), TopError> {
    let (interval, _) = periods(args)?;
    let mut view = TopView::open(args)?;
    let mut stdout = std::io::stdout().lock();
    let terminal = stdout.is_terminal() && !json;
    // The first refresh only takes the counters' starting point.
    view.refresh(Duration::ZERO);
    let mut done = 0u64;
    while !xdpath_lab::signals::interrupted() && args.iterations.is_none_or(|limit| done < limit) {
        let frame = view.refresh(interval);
        done += 1;
        if json {
            writeln!(
                stdout,
                "{}",
                serde_json::to_string(&frame).unwrap_or_default()
            )?;
        } else {
            draw(&mut stdout, &frame, terminal)?;
        }
        stdout.flush()?;
    }
    Ok(())
}

fn draw(out: &mut impl Write, frame: &TopFrame, terminal: bool) -> std::io::Result<()> {
    if terminal {
        // Clear the screen and go home: one screenful per refresh.
        write!(out, "\x1b[2J\x1b[H")?;
    } else {
        writeln!(out, "----")?;
    }
    writeln!(
        out,
        "{:<12} {:<9} {:<26} {:>12} {:>14}",
        "INTERFACE", "VERDICT", "REASON", "PPS", "BPS"
    )?;
    for row in &frame.rates {
        writeln!(
            out,
            "{:<12} {:<9} {:<26} {:>12.1} {:>14}",
            row.interface,
            row.verdict,
            row.reason,
            row.packets_per_second,
            human_bits(row.bits_per_second)
        )?;
    }
    for (title, key) in [
        ("TOP SOURCES", "sources"),
        ("TOP DESTINATIONS", "destinations"),
        ("TOP FLOWS", "flows"),
    ] {
        writeln!(out, "\n{title} ({})", frame.talkers_from)?;
        for talker in frame.talkers[key].as_array().into_iter().flatten() {
            writeln!(
                out,
                "  {:<52} {:>12.1} pps {:>12}",
                talker["key"].as_str().unwrap_or("?"),
                talker["packets_per_second"].as_f64().unwrap_or(0.0),
                human_bits(talker["bits_per_second"].as_f64().unwrap_or(0.0))
            )?;
        }
    }
    if !frame.not_sampling.is_empty() {
        writeln!(
            out,
            "\nsampling is off on {}: `xdpath sample IFACE N` shows their talkers",
            frame.not_sampling.join(", ")
        )?;
    }
    Ok(())
}

fn human_bits(bits: f64) -> String {
    let units = [("Gb/s", 1e9), ("Mb/s", 1e6), ("kb/s", 1e3)];
    for (unit, scale) in units {
        if bits >= scale {
            return format!("{:.1} {unit}", bits / scale);
        }
    }
    format!("{bits:.0} b/s")
}
