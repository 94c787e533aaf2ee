//! Shared helpers for the benches live in `benches/benches/*.rs`; this library is empty.
