//! Simulation tests: N instances on in-memory links with a virtual clock converge to identical
//! LSDBs and correct routes, and re-converge after a link failure.

use std::time::Duration;

use fuxi_ospfd::instance::{IfState, NbrState};
use fuxi_ospfd::types::*;

use crate::sim::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn two_routers_p2p_reach_full_and_route() {
    let mut net = Net::new();
    let mut a = router(
        "1.1.1.1",
        &[
            ("eth0", BACKBONE, "10.0.0.1/30"),
            ("lo", BACKBONE, "192.168.1.1/24"),
        ],
    );
    let mut b = router(
        "2.2.2.2",
        &[
            ("eth0", BACKBONE, "10.0.0.2/30"),
            ("lo", BACKBONE, "192.168.2.1/24"),
        ],
    );
    for c in [&mut a, &mut b] {
        c.ifaces[0].net_type = NetType::PointToPoint;
        c.ifaces[1].passive = true;
    }
    let ra = net.add(a);
    let rb = net.add(b);
    net.segment(&[(ra, 0), (rb, 0)]);
    net.run_for(secs(30));
    assert_eq!(
        net.routers[ra].neighbor_state(ip("2.2.2.2")),
        Some(NbrState::Full)
    );
    assert_eq!(
        net.routers[rb].neighbor_state(ip("1.1.1.1")),
        Some(NbrState::Full)
    );
    assert_eq!(net.routers[ra].lsdb_digest(), net.routers[rb].lsdb_digest());
    let r = &net.routes[ra][&pfx("192.168.2.0/24")];
    assert_eq!(r.cost, 20);
    assert_eq!(r.nexthops.iter().next().unwrap().gw, Some(ip("10.0.0.2")));
    assert!(net.routes[rb].contains_key(&pfx("192.168.1.0/24")));
}
