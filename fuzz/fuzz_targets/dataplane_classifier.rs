//! Random inserts, removals and lookups on the tuple-space classifier, checked against a
//! linear scan of the same entries.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuxi_dataplane::fuzz::classifier(data));
