//! OSPF packet and LSA decoders: no panics; decode/encode round-trips.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuxi_ospfd::fuzz::decode(data));
