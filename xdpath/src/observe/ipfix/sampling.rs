//! The sampling xdpath tells collectors about: an options template
//! (RFC 7011 §3.4.2.2) scoped to the observation domain, and its record.
//!
//! # Counts and the sampling interval
//!
//! Collectors renormalise: nfdump multiplies packet and octet counts by
//! the announced interval whenever one is announced, pmacct when
//! `nfacctd_renormalize` is on (and shows it as `SAMPLING_RATE` in any
//! case). So records carry the counts of the *selected* packets (what the
//! sampler saw), not the flow cache's estimates, or those collectors
//! would scale twice. A flow whose samples all came at the announced
//! interval `N` exports exactly its selected counts; one sampled at
//! another rate (interfaces at different rates share the exporter) is
//! exported as its estimate divided by `N`, rounded, which the collector
//! scales back to that estimate within `N / 2`.
//!
//! Two options records say the same, for two generations of collectors:
//! `samplingInterval` (34, RFC 7270's deprecated NetFlow v9 element),
//! which nfdump 1.7.1 and pmacct 1.7 read, and RFC 5477's
//! `selectorAlgorithm` (304, random n-out-of-N), `samplingPacketInterval`
//! (305, 1) and `samplingPacketSpace` (306, N - 1), which pmacct and
//! newer nfdump read. nfdump 1.7.1 ignores a record pairing
//! `samplingInterval` with `samplingAlgorithm` (35), and reads one
//! template per options template set, so each record has its own set.

use super::{OPTIONS_TEMPLATE_SET_ID, TEMPLATE_SAMPLING, TEMPLATE_SELECTOR};

/// The options templates' scope field: observationDomainId (149).
const SCOPE: (u16, u16) = (149, 4);
/// selectorAlgorithm 3 (RFC 5475): random n-out-of-N; xdpath's sampler
/// draws the gap to the next sample at random, 1 in N on average.
pub const SELECTOR_ALGORITHM_RANDOM: u16 = 3;

fn put_u16(bytes: &mut Vec<u8>, value: u16) {
    bytes.extend_from_slice(&value.to_be_bytes());
}

/// Pads `bytes` from `start` to a multiple of 4 and writes the set length.
fn close_set(bytes: &mut Vec<u8>, start: usize) {
    let length = (bytes.len() - start).div_ceil(4) * 4;
    bytes.resize(start + length, 0);
    let length = u16::try_from(length).unwrap_or(u16::MAX);
    if let Some(slot) = bytes.get_mut(start + 2..start + 4) {
        slot.copy_from_slice(&length.to_be_bytes());
    }
}

/// Appends an options template set (template `id`, scoped to the
/// observation domain, then `fields`) and its data set (`domain`, then
/// `values`, each as long as its field says).
fn options_record(
    bytes: &mut Vec<u8>,
    id: u16,
    fields: &[(u16, u16)],
    domain: u32,
    values: &[u64],
) {
    let start = bytes.len();
    put_u16(bytes, OPTIONS_TEMPLATE_SET_ID);
    put_u16(bytes, 0);
    put_u16(bytes, id);
    put_u16(bytes, fields.len() as u16 + 1);
    put_u16(bytes, 1);
    for (element, length) in std::iter::once(&SCOPE).chain(fields) {
        put_u16(bytes, *element);
        put_u16(bytes, *length);
    }
    close_set(bytes, start);
    let start = bytes.len();
    put_u16(bytes, id);
    put_u16(bytes, 0);
    bytes.extend_from_slice(&domain.to_be_bytes());
    for ((_, length), value) in fields.iter().zip(values) {
        let value = value.to_be_bytes();
        bytes.extend_from_slice(
            value
                .get(8 - usize::from(*length).min(8)..)
                .unwrap_or(&value),
        );
    }
    close_set(bytes, start);
}

/// The options sets announcing `interval` (1 in N) for observation
/// domain `domain`: `samplingInterval`, then the RFC 5477 selector.
///
/// # Examples
///
/// ```
/// use xdpath::observe::ipfix::sampling_sets;
/// let bytes = sampling_sets(7, 10);
/// assert_eq!(&bytes[..2], &3u16.to_be_bytes()); // options template set
/// assert_eq!(bytes.len(), 20 + 12 + 28 + 20);
/// ```
pub fn sampling_sets(domain: u32, interval: u32) -> Vec<u8> {
    let interval = u64::from(interval.max(1));
    let mut bytes = Vec::with_capacity(80);
    options_record(
        &mut bytes,
        TEMPLATE_SAMPLING,
        &[(34, 4)],
        domain,
        &[interval],
    );
    options_record(
        &mut bytes,
        TEMPLATE_SELECTOR,
        &[(304, 2), (305, 4), (306, 4)],
        domain,
        &[u64::from(SELECTOR_ALGORITHM_RANDOM), 1, interval - 1],
    );
    bytes
}

/// `estimate` (a count scaled by the sampling rate) as the count a
/// collector scaling by `interval` turns back into it: divided, rounded
/// to nearest, and at least 1 when the estimate is not 0.
pub fn unscale(estimate: u64, interval: u32) -> u64 {
    let interval = u64::from(interval.max(1));
    if estimate == 0 {
        return 0;
    }
    (estimate.saturating_add(interval / 2) / interval).max(1)
}
