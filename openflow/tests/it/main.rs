//! The openflow crate's one integration test binary: byte-exact fixtures from Open vSwitch,
//! property tests over every message type, the error cases, tshark dissection, and the
//! ovs-ofctl flow text syntax.

mod errors;
mod fixtures;
mod props;
mod text;
mod tshark;
