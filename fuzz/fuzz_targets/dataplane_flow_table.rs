//! The cache invariant: random tables (several tables, gotos, groups, set-fields), random
//! packets and random flow mods; the cached datapath must agree with the full pipeline.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuxi_dataplane::fuzz::flow_table(data));
