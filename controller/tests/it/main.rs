//! fuxi-ofctl against a real Open vSwitch (userspace datapath) running in network
//! namespaces the tests create and remove. Needs root and openvswitch-switch; fails (does
//! not skip) without them.

mod bulk;
mod errors;
mod flows;
mod groups_meters;
mod ovs;
