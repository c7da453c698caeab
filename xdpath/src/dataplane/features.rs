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
/// bits when the word names that very program, else none. A missing pin
/// is an older program (made before the word); one that is there but
/// cannot be read is an error, not an older program (`status` said
/// "older program" on one failed read).
pub(super) fn running_features(pins: &InterfacePins) -> Result<u64, DataplaneError> {
    let (features, link) = (pins.path(abi::map::FEATURES), pins.path("link"));
    if !features.exists() || !link.exists() {
        return Ok(0);
    }
    let unreadable = |path: std::path::PathBuf| {
        move |why: String| DataplaneError::PinnedObject {
            path,
            source: format!("cannot read the running program's features: {why}").into(),
        }
    };
    // A pin gone since it was looked for (a detach at the same time) is
    // no program, as a missing one.
    let gone = |path: &std::path::Path| !path.exists();
    let running = match super::link_info::link_program_id(&link) {
        Err(_) if gone(&link) => return Ok(0),
        read => read.map_err(unreadable(link))?,
    };
    let word = match read_word(pins) {
        Err(_) if gone(&features) => return Ok(0),
        read => read.map_err(unreadable(features))?,
    };
    Ok(if word.program_id == running && running != 0 {
        word.features
    } else {
        0
    })
}

fn read_word(pins: &InterfacePins) -> Result<FeatureWord, String> {
    let why = |error: &(dyn std::error::Error + 'static)| super::error::error_chain(error);
    let data = MapData::from_pin(pins.path(abi::map::FEATURES)).map_err(|error| why(&error))?;
    let array =
        Array::<MapData, PodFeatures>::try_from(Map::Array(data)).map_err(|error| why(&error))?;
    array
        .get(&0, 0)
        .map(|word| word.0)
        .map_err(|error| why(&error))
}
