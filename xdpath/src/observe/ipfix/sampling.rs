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
//! The elements are the ones both nfdump 1.7 and pmacct 1.7 read:
//! `samplingInterval` (34) and `samplingAlgorithm` (35), deprecated by
//! RFC 7270 in favour of the PSAMP ones but the only pair nfdump 1.7 maps
//! to a sampler of the whole observation domain (its `selectorId`
//! samplers apply only to records that name them).

use super::{OPTIONS_TEMPLATE_SET_ID, SET_HEADER_LEN, TEMPLATE_SAMPLING};

/// The options template's scope field: observationDomainId (149).
const SCOPE_FIELDS: [(u16, u16); 1] = [(149, 4)];
/// Its other fields: samplingInterval (34), samplingAlgorithm (35).
const OPTION_FIELDS: [(u16, u16); 2] = [(34, 4), (35, 1)];
/// samplingAlgorithm 2: random 1-out-of-N (xdpath's sampler draws the
/// gap to the next sample at random).
pub const SAMPLING_ALGORITHM_RANDOM: u8 = 2;

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

/// The options template set and the options data set announcing
/// `interval` (1 in N) for observation domain `domain`.
///
/// # Examples
///
/// ```
/// use xdpath::observe::ipfix::sampling_sets;
/// let bytes = sampling_sets(7, 10);
/// assert_eq!(&bytes[..2], &3u16.to_be_bytes()); // options template set
/// assert_eq!(bytes.len(), 24 + 16);
/// ```
pub fn sampling_sets(domain: u32, interval: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(40);
    put_u16(&mut bytes, OPTIONS_TEMPLATE_SET_ID);
    put_u16(&mut bytes, 0);
    put_u16(&mut bytes, TEMPLATE_SAMPLING);
    put_u16(
        &mut bytes,
        (SCOPE_FIELDS.len() + OPTION_FIELDS.len()) as u16,
    );
    put_u16(&mut bytes, SCOPE_FIELDS.len() as u16);
    for (element, length) in SCOPE_FIELDS.iter().chain(&OPTION_FIELDS) {
        put_u16(&mut bytes, *element);
        put_u16(&mut bytes, *length);
    }
    close_set(&mut bytes, 0);
    let start = bytes.len();
    put_u16(&mut bytes, TEMPLATE_SAMPLING);
    put_u16(&mut bytes, 0);
    bytes.extend_from_slice(&domain.to_be_bytes());
    bytes.extend_from_slice(&interval.max(1).to_be_bytes());
    bytes.push(SAMPLING_ALGORITHM_RANDOM);
    close_set(&mut bytes, start);
    debug_assert!(bytes.len() >= 2 * SET_HEADER_LEN);
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
