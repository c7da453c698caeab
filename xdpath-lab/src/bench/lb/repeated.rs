//! The repeated rows: `repeat` runs of one frame to no VIP, as the main
//! table's method (the frame is not changed by the program, so `repeat`
//! is valid). They show what the balancer costs traffic it does not
//! balance.

use super::programs::{connection_counts, Programs};
use super::report::{LbRow, Samples};
use super::state::{non_vip_frame, Family};
use super::testrun::Subject;
use super::LbBenchError;

/// `trials` trials of `repeat` runs per program, interleaved; the
/// balancer's counters must not move (the frame never reaches the table).
pub(super) fn rows(
    programs: &Programs,
    repeat: u32,
    trials: usize,
) -> Result<Vec<LbRow>, LbBenchError> {
    let frame = non_vip_frame();
    let before = connection_counts(&programs.maps)?;
    // The empty program third, the peer fourth: the baselines below.
    let subjects: Vec<(&str, &Subject)> = [
        ("xdpath + LB state, not a VIP", Some(&programs.balancer)),
        ("xdpath, no LB state", Some(&programs.plain)),
        ("empty (XDP_PASS)", Some(&programs.empty)),
        ("xdp-filter xdpfilt_alw_all", programs.peer.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, subject)| subject.map(|subject| (name, subject)))
    .collect();
    let mut samples: Vec<Samples> = subjects.iter().map(|_| Samples::default()).collect();
    for _ in 0..trials {
        for ((_, subject), samples) in subjects.iter().zip(&mut samples) {
            samples.push_trial(subject.repeated(&frame, repeat)?);
        }
    }
    let after = connection_counts(&programs.maps)?;
    if after != before {
        return Err(LbBenchError::Counters(format!(
            "a frame to no VIP reached the connection table ({before:?} → {after:?})"
        )));
    }
    let baselines = (
        samples[2].figure(),
        programs.peer.is_some().then(|| samples[3].figure()),
    );
    Ok(subjects
        .iter()
        .zip(&samples)
        .map(|((name, _), samples)| samples.row(name, Family::V4, baselines))
        .collect())
}
