//! OSPF interface/neighbour state machine driven by an operation sequence.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuxi_ospfd::fuzz::neighbor_sm(data));
