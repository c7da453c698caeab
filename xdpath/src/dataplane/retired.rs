//! Shared maps of earlier builds that this one no longer uses.

use xdpath_core::abi;

/// Unpins the shared maps earlier builds left that this one does not use
/// (`abi::RETIRED_SHARED_MAPS`); one that is not there, or cannot be
/// removed, is left as it is (it costs memory, not correctness).
pub(super) fn unpin_retired_maps(dir: &std::path::Path) {
    for name in abi::RETIRED_SHARED_MAPS {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_pins_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("xdpath-retired-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for name in abi::RETIRED_SHARED_MAPS
            .iter()
            .chain([&abi::map::CONNECTIONS])
        {
            std::fs::write(dir.join(name), b"").expect("file");
        }
        unpin_retired_maps(&dir);
        for name in abi::RETIRED_SHARED_MAPS {
            assert!(!dir.join(name).exists(), "{name} still pinned");
        }
        assert!(
            dir.join(abi::map::CONNECTIONS).exists(),
            "a live map unpinned"
        );
        unpin_retired_maps(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
