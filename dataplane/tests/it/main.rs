//! The dataplane's one integration test binary; each module tests one part.

mod bpf;
mod cache;
mod classifier;
mod exec;
mod normal;
mod parse;
mod pipeline;
mod port;
