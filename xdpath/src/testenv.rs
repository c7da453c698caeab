//! Placeholder: replaced by the testenv implementation.
