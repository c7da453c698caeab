//! The daemon's request types, as a library: the `xdpathd` binary takes its
//! requests apart with them, and so do the fuzz targets (`fuzz/`), which
//! therefore check exactly what the daemon accepts.

pub mod requests;
