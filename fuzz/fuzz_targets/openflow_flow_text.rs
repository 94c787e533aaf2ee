//! Arbitrary text through the ovs-ofctl flow syntax parser: never a panic, and whatever parses
//! formats back to text that parses to the same flow.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuxi_openflow::text::fuzz_parse(data));
