//! `fuxi-ofctl`: the ovs-ofctl-style CLI.

fn main() {}
