//! Placeholder: replaced by the traffic implementation.
