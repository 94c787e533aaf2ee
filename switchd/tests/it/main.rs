//! Integration tests of `fuxi-switchd`: the real daemon binary, driven by the real
//! `ovs-ofctl -O OpenFlow13` (Open vSwitch 3.1) and by traffic between network namespaces.
//!
//! - `afxdp` (cargo feature `afxdp`): the same traffic through AF_XDP ports. Needs root.
//! - [`util`]: starting the daemon on a free port, running ovs-ofctl, namespaces.
//! - [`metrics`]: Prometheus `/metrics` (format, HTTP errors, counters under traffic).
//! - [`mgmt`]: the management socket (JSON lines and OpenFlow).
//! - [`ofctl`]: every ovs-ofctl verb the switch must answer, output parsed and checked.
//! - [`traffic`]: hosts in namespaces on veth ports; forwarding, drop, rewrite, VLAN push,
//!   table-miss to the controller. Needs root.
//! - [`buffers`]: packet-ins with buffer ids; packet-out and flow-mod by buffer id. Needs root.
//! - [`offload`]: `--offload tc`, the kernel flow table, with real traffic. Needs root.
//! - [`normal`]: the NORMAL action and standalone fail mode with real traffic. Needs root.
//! - [`vxlan`]: two switches joined by a VXLAN tunnel carry TUNNEL_ID. Needs root.
//!
//! Tests that need root fail when not run as root, unless `FUXI_SKIP_ROOT_TESTS=1` is set:
//! then they print a SKIPPED line and pass (see `util::root_or_skip`).

#[cfg(feature = "afxdp")]
mod afxdp;
mod buffers;
mod metrics;
mod mgmt;
mod normal;
mod ofctl;
mod offload;
mod traffic;
mod util;
mod vxlan;
