//! The harness that proves the two builds agree: frames generated,
//! mutated or read from the corpora run through the kernel program
//! (`BPF_PROG_TEST_RUN`) and the native pipeline with the same state, and
//! every verdict, output frame and counter compared
//! ([`differential`]). The fuzz crate and the differential tests use it.
//! [`reuse`] lends the fixture tables programs as freshly loaded, without a
//! verifier pass for each row.

pub mod differential;
pub mod reuse;
