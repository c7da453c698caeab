//! Maglev table build times (`build_table` in the bench process).

use std::hint::black_box;
use std::time::Instant;

use xdpath_core::parse::ipv4_mapped;

use super::report::MaglevRow;
use super::{LbBenchError, MAGLEV_BUILDS, RING_SIZE};
use crate::bench::median;
use xdpath::lb::maglev::{build_table, MaglevBackend, MAX_WEIGHT};

/// Times `build_table` for `backends` backends with the given weights.
fn maglev_row(weights: &[u32], description: &str) -> Result<MaglevRow, LbBenchError> {
    let backends: Vec<MaglevBackend> = weights
        .iter()
        .zip(0u32..)
        .map(|(&weight, index)| {
            let [_, _, high, low] = index.to_be_bytes();
            MaglevBackend {
                address: ipv4_mapped([10, 1, high, low]),
                weight,
            }
        })
        .collect();
    let mut times = Vec::with_capacity(MAGLEV_BUILDS);
    for _ in 0..MAGLEV_BUILDS {
        let started = Instant::now();
        let table = build_table(black_box(&backends), RING_SIZE, 7)?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
        black_box(table);
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    Ok(MaglevRow {
        backends: backends.len(),
        weights: description.into(),
        size: RING_SIZE,
        builds: MAGLEV_BUILDS,
        median_ms: median(&mut times),
        min_ms: min,
        max_ms: max,
    })
}

/// The Maglev rows: 100 and 1,000 backends, equal and varied weights, and
/// the builder's slow case (one heavy backend among light ones: many
/// rounds in which almost no backend has credit for a slot).
pub fn maglev_rows() -> Result<Vec<MaglevRow>, LbBenchError> {
    let varied = |count: u32| -> Vec<u32> { (0..count).map(|i| 1 + (i * 37) % 100).collect() };
    // The largest weight ratio allowed (MAX_WEIGHT to 1): the most rounds.
    let skewed: Vec<u32> = (0..1000)
        .map(|i| if i == 0 { MAX_WEIGHT } else { 1 })
        .collect();
    Ok(vec![
        maglev_row(&vec![1; 100], "all 1")?,
        maglev_row(&varied(100), "1-100, varied")?,
        maglev_row(&vec![1; 1000], "all 1")?,
        maglev_row(&varied(1000), "1-100, varied")?,
        maglev_row(&skewed, "one 1000, 999 of 1")?,
    ])
}
