//! Arbitrary bytes as an Ethernet frame through the dataplane's packet parser: never a panic,
//! and the recorded layer offsets stay inside the frame and in order.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuxi_dataplane::fuzz::parse_packet(data));
