//! The feature word of an attached program (`FEATURES`,
//! [`xdpath_core::FeatureWord`]): which data-path features the object the
//! interface runs knows, so the control plane can refuse an entry that
//! program would silently not enforce (see `control::features`).
//!
//! The word is written by the build that loads the object, at attach and
//! at reload, with the id of the program it describes; it is believed only
//! while the interface's link runs that very program. So a program attached
//! by a build older than the word (no `FEATURES` pin), and one an older
//! build reloaded over a newer pin (the pin left as it was, naming the
//! program before), both read as knowing none of the newer features.

use aya::maps::{Array, Map, MapData};
use aya::Pod;
use xdpath_core::{abi, FeatureWord};

use super::program::LoadedProgram;
use super::{DataplaneError, InterfacePins};

#[repr(transparent)]
#[derive(Clone, Copy)]
struct PodFeatures(FeatureWord);
// SAFETY: FeatureWord is #[repr(C)] u64, u32, u32: no padding.
unsafe impl Pod for PodFeatures {}

/// Writes this build's feature word into the loaded instance's `FEATURES`
/// map, naming its main program; returns that program's id.
pub(super) fn write_word(loaded: &mut LoadedProgram) -> Result<u32, DataplaneError> {
    let program_id = loaded
        .program()
        .info()
        .map_err(|error| DataplaneError::Load(Box::new(error)))?
        .id();
    let word = FeatureWord {
        features: abi::feature::ALL,
        program_id,
        reserved: 0,
    };
    loaded.set_first_entry(abi::map::FEATURES, PodFeatures(word))?;
    Ok(program_id)
}

/// The features the program the interface's link runs knows: its word's
/// bits when the word names that very program, else none (a missing or
/// unreadable pin is an older program, not an error).
pub(super) fn running_features(pins: &InterfacePins) -> u64 {
    let running = super::link_info::link_program_id(&pins.path("link")).unwrap_or(0);
    match read_word(pins) {
        Some(word) if word.program_id == running && running != 0 => word.features,
        _ => 0,
    }
}

fn read_word(pins: &InterfacePins) -> Option<FeatureWord> {
    let data = MapData::from_pin(pins.path(abi::map::FEATURES)).ok()?;
    let array = Array::<MapData, PodFeatures>::try_from(Map::Array(data)).ok()?;
    array.get(&0, 0).ok().map(|word| word.0)
}
