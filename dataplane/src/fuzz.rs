//! Bodies of the dataplane's cargo-fuzz targets. Each function must never panic on any input;
//! the fuzz targets in `fuzz/` call them with the raw fuzzer bytes.

use crate::packet::{RxMeta, parse};

/// Parses `data` as an Ethernet frame and checks the layout's invariants.
pub fn parse_packet(data: &[u8]) {
    let p = parse(data, RxMeta::port(1));
    let lay = p.layout;
    for off in [lay.vlan, lay.eth_type, lay.mpls, lay.l3, lay.l4, lay.l7] {
        if off != crate::packet::Layout::NONE {
            assert!(
                usize::from(off) <= data.len(),
                "offset {off} past end {}",
                data.len()
            );
        }
    }
    if lay.l4 != crate::packet::Layout::NONE {
        assert!(lay.l3 < lay.l4 && lay.l4 <= lay.l7);
    }
}
