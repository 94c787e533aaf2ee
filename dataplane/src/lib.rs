//! Fuxi packet parsing, the OpenFlow 1.3 pipeline and the flow caches (no I/O in the core).
//!
//! - [`packet`]: the flow key and the zero-copy parser that fills it.
//! - [`classifier`]: tuple space search over (key, mask, priority) rules.
//! - [`pipeline`]: flow tables, groups, meters, flow-mod semantics, translation of a key into
//!   datapath actions, and their execution on packet bytes.
//! - [`fuzz`]: bodies of the cargo-fuzz targets, so each target is a one-liner.

pub mod cache;
pub mod classifier;
pub mod fuzz;
pub mod packet;
pub mod pipeline;
