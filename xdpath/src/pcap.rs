//! Placeholder: replaced by the pcap implementation.
