//! Arbitrary bytes through the OpenFlow stream framer and message decoder: never a panic, and
//! every message that decodes re-encodes to itself.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuxi_openflow::fuzz::framer_and_decode(data));
