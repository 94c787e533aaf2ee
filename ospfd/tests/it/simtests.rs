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

#[test]
fn lan_dr_bdr_election_and_late_joiner_does_not_take_over() {
    let mut net = Net::new();
    let r1 = net.add(router("1.1.1.1", &[("eth0", BACKBONE, "10.0.0.1/24")]));
    let r2 = net.add(router("2.2.2.2", &[("eth0", BACKBONE, "10.0.0.2/24")]));
    let lan = net.segment(&[(r1, 0), (r2, 0)]);
    net.run_for(secs(60));
    // Highest router id wins DR, the other is BDR.
    assert_eq!(
        net.routers[r1].iface_state(0),
        (IfState::Backup, ip("10.0.0.2"), ip("10.0.0.1"))
    );
    assert_eq!(net.routers[r2].iface_state(0).0, IfState::DR);
    // A router with a higher id and priority joins: it must not take over DR or BDR.
    let mut c = router("9.9.9.9", &[("eth0", BACKBONE, "10.0.0.9/24")]);
    c.ifaces[0].priority = 100;
    let r3 = net.add(c);
    net.segs[lan].members.push((r3, 0));
    net.run_for(secs(60));
    assert_eq!(
        net.routers[r3].iface_state(0),
        (IfState::DROther, ip("10.0.0.2"), ip("10.0.0.1"))
    );
    for r in [r1, r2, r3] {
        for other in ["1.1.1.1", "2.2.2.2", "9.9.9.9"] {
            if net.routers[r].router_id() != ip(other) {
                assert_eq!(
                    net.routers[r].neighbor_state(ip(other)),
                    Some(NbrState::Full),
                    "{r} {other}"
                );
            }
        }
    }
    let d = net.routers[r1].lsdb_digest();
    assert_eq!(d, net.routers[r2].lsdb_digest());
    assert_eq!(d, net.routers[r3].lsdb_digest());
    // 3 router-LSAs and one network-LSA from the DR.
    assert_eq!(d.len(), 4);
    // DR dies: BDR takes over, the late joiner becomes BDR.
    net.segs[lan].members.retain(|m| m.0 != r2);
    net.run_for(secs(60));
    assert_eq!(
        net.routers[r1].iface_state(0),
        (IfState::DR, ip("10.0.0.1"), ip("10.0.0.9"))
    );
    assert_eq!(
        net.routers[r3].iface_state(0),
        (IfState::Backup, ip("10.0.0.1"), ip("10.0.0.9"))
    );
}

/// Square r0-r1-r2-r3-r0 with stubs; cut r0-r1 and check everyone re-routes.
#[test]
fn ring_converges_and_reconverges_after_link_cut() {
    let mut net = Net::new();
    let n = 4;
    let mut ids = vec![];
    for k in 0..n {
        let prev = (k + n - 1) % n;
        let mut c = router(
            &format!("10.255.0.{}", k + 1),
            &[
                ("to-next", BACKBONE, &format!("10.{k}.0.1/30")),
                ("to-prev", BACKBONE, &format!("10.{prev}.0.2/30")),
                ("stub", BACKBONE, &format!("172.16.{k}.1/24")),
            ],
        );
        c.ifaces[0].net_type = NetType::PointToPoint;
        c.ifaces[1].net_type = NetType::PointToPoint;
        c.ifaces[2].passive = true;
        ids.push(net.add(c));
    }
    let mut links = vec![];
    for k in 0..n {
        links.push(net.segment(&[(ids[k], 0), (ids[(k + 1) % n], 1)]));
    }
    net.run_for(secs(60));
    let d0 = net.routers[0].lsdb_digest();
    for r in 1..n {
        assert_eq!(net.routers[r].lsdb_digest(), d0);
    }
    // r0 reaches r2's stub with ECMP over both neighbours (cost 10+10+10).
    let r = &net.routes[0][&pfx("172.16.2.0/24")];
    assert_eq!(r.cost, 30);
    assert_eq!(r.nexthops.len(), 2);
    assert_eq!(net.routes[0][&pfx("172.16.1.0/24")].cost, 20);
    // Cut r0 <-> r1; within the dead interval routes move to the other way round.
    net.cut(links[0]);
    net.run_for(secs(45));
    assert_eq!(net.routers[0].neighbor_state(ip("10.255.0.2")), None);
    let r = &net.routes[0][&pfx("172.16.1.0/24")];
    assert_eq!(r.cost, 40);
    assert_eq!(r.nexthops.iter().next().unwrap().gw, Some(ip("10.3.0.1")));
    // The cut link's subnet is still reachable via the surviving stubs; LSDBs agree again.
    let d0 = net.routers[0].lsdb_digest();
    for r in 1..n {
        assert_eq!(net.routers[r].lsdb_digest(), d0);
    }
}

#[test]
fn externals_and_inter_area_and_stub_default() {
    // r1 (area 0 only) -- r2 (ABR, area 0 + area 1 stub) -- r3 (area 1 stub)
    let a1 = ip("0.0.0.1");
    let mut net = Net::new();
    let mut c1 = router("1.1.1.1", &[("e0", BACKBONE, "10.0.12.1/30")]);
    c1.externals.push(ExternalRoute {
        prefix: pfx("203.0.113.0/24"),
        metric: 20,
        e2: true,
        tag: 0,
        fwd: ip("0.0.0.0"),
    });
    let c2 = router(
        "2.2.2.2",
        &[("e0", BACKBONE, "10.0.12.2/30"), ("e1", a1, "10.0.23.1/30")],
    );
    let c3 = router(
        "3.3.3.3",
        &[("e0", a1, "10.0.23.2/30"), ("lo", a1, "172.16.3.1/24")],
    );
    let stub = AreaConfig {
        id: a1,
        kind: AreaKind::Stub {
            no_summary: false,
            default_cost: 5,
        },
    };
    let mut c2 = c2;
    c2.areas.push(stub.clone());
    let mut c3 = c3;
    c3.areas.push(stub);
    c3.ifaces[1].passive = true;
    let r1 = net.add(c1);
    let r2 = net.add(c2);
    let r3 = net.add(c3);
    net.segment(&[(r1, 0), (r2, 0)]);
    net.segment(&[(r2, 1), (r3, 0)]);
    net.run_for(secs(90));
    // r1 learns the stub-area network as inter-area through the ABR.
    let r = &net.routes[r1][&pfx("172.16.3.0/24")];
    assert_eq!(r.path, PathType::Inter);
    assert_eq!(r.cost, 30);
    // r2 has the external as E2 with metric 20.
    let e = &net.routes[r2][&pfx("203.0.113.0/24")];
    assert_eq!((e.path, e.cost2), (PathType::Ext2, 20));
    // r3 (stub) has no external but a default route from the ABR with cost 10+5.
    assert!(!net.routes[r3].contains_key(&pfx("203.0.113.0/24")));
    let d = &net.routes[r3][&pfx("0.0.0.0/0")];
    assert_eq!((d.path, d.cost), (PathType::Inter, 15));
    // And the backbone's link is reachable from r3 via a summary.
    assert_eq!(net.routes[r3][&pfx("10.0.12.0/30")].path, PathType::Inter);
}

#[test]
fn shutdown_flushes_own_lsas() {
    let mut net = Net::new();
    let mut a = router(
        "1.1.1.1",
        &[
            ("e0", BACKBONE, "10.0.0.1/30"),
            ("s", BACKBONE, "192.168.1.1/24"),
        ],
    );
    a.ifaces[1].passive = true;
    let b = router("2.2.2.2", &[("e0", BACKBONE, "10.0.0.2/30")]);
    let ra = net.add(a);
    let rb = net.add(b);
    net.segment(&[(ra, 0), (rb, 0)]);
    net.run_for(secs(60));
    assert!(net.routes[rb].contains_key(&pfx("192.168.1.0/24")));
    net.routers[ra].shutdown(net.now);
    net.run_for(secs(3));
    assert!(net.routers[ra].flushed());
    // r2 withdrew the route as soon as the MaxAge copy arrived.
    assert!(!net.routes[rb].contains_key(&pfx("192.168.1.0/24")));
}

/// Over three virtual hours LSAs are refreshed every LSRefreshTime (1800 s) and never age out;
/// routes stay put.
#[test]
fn refresh_keeps_lsas_alive() {
    let mut net = Net::new();
    let mut a = router(
        "1.1.1.1",
        &[
            ("e0", BACKBONE, "10.0.0.1/30"),
            ("s", BACKBONE, "192.168.1.1/24"),
        ],
    );
    a.ifaces[1].passive = true;
    let ra = net.add(a);
    let rb = net.add(router("2.2.2.2", &[("e0", BACKBONE, "10.0.0.2/30")]));
    net.segment(&[(ra, 0), (rb, 0)]);
    net.run_for(secs(60));
    let before: Vec<i32> = net.routers[rb].lsdb_digest().iter().map(|d| d.2).collect();
    net.run_for(secs(3 * 3600));
    let after = net.routers[rb].lsdb_digest();
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        // Five or six refreshes in three hours.
        assert!(a.2 - b >= 5, "seq {b:#x} -> {:#x}", a.2);
    }
    assert!(net.routes[rb].contains_key(&pfx("192.168.1.0/24")));
    assert!(
        net.routers[rb]
            .database(net.now)
            .iter()
            .all(|l| l.age < 1800)
    );
}

/// A router that restarts finds its previous incarnation's router-LSA (seq 0x7fffffff, the
/// maximum) in the neighbour's database. It must flush that instance and start again from
/// InitialSequenceNumber (RFC 2328 12.1.6), ending with one live router-LSA at 0x80000001+.
#[test]
fn sequence_number_wrap_via_stale_self_originated_lsa() {
    use fuxi_ospfd::consts::*;
    use fuxi_ospfd::lsa::*;
    use fuxi_ospfd::packet::*;
    let mut net = Net::new();
    let ra = net.add(router("1.1.1.1", &[("e0", BACKBONE, "10.0.0.1/30")]));
    let rb = net.add(router("2.2.2.2", &[("e0", BACKBONE, "10.0.0.2/30")]));
    net.segment(&[(ra, 0), (rb, 0)]);
    net.run_for(secs(60));
    // Feed router 1 a copy of its own router-LSA with the maximum sequence number.
    let mut stale = Lsa {
        hdr: LsaHeader {
            age: 5,
            options: OPT_E,
            ls_type: LSA_ROUTER,
            id: ip("1.1.1.1"),
            adv: ip("1.1.1.1"),
            seq: MAX_SEQ,
            checksum: 0,
            length: 0,
        },
        body: LsaBody::Router(RouterLsa {
            flags: 0,
            links: vec![],
            reserved: 0,
        }),
    };
    stale.to_bytes_sealed();
    let p = Packet {
        hdr: Header {
            router_id: ip("2.2.2.2"),
            area_id: BACKBONE,
            checksum: 0,
            auth: AuthField::Null([0; 8]),
        },
        body: Body::LsUpdate(vec![stale]),
        trailer: bytes::Bytes::new(),
    };
    let mut v = p.to_bytes().to_vec();
    fuxi_ospfd::auth::seal(&mut v, &fuxi_ospfd::auth::AuthConfig::Null, 0);
    net.inject(ra, 0, ip("10.0.0.2"), ALL_SPF_ROUTERS, &v);
    net.run_for(secs(30));
    let k = LsaKey {
        ls_type: LSA_ROUTER,
        id: ip("1.1.1.1"),
        adv: ip("1.1.1.1"),
    };
    for r in [ra, rb] {
        let l = net.routers[r]
            .lookup(&k, net.now)
            .expect("router-LSA present");
        assert!(
            l.hdr.seq >= INITIAL_SEQ && l.hdr.seq < INITIAL_SEQ + 10,
            "seq {:#x}",
            l.hdr.seq
        );
        assert!(l.hdr.age < MAX_AGE);
    }
    assert_eq!(net.routers[ra].lsdb_digest(), net.routers[rb].lsdb_digest());
    assert_eq!(
        net.routers[ra].neighbor_state(ip("2.2.2.2")),
        Some(NbrState::Full)
    );
}

/// NSSA (RFC 3101): an ASBR inside NSSA area 1 redistributes 203.0.113.0/24 as a type-7 LSA;
/// the ABR's routing table has it as an external and translates it into a type-5 LSA that the
/// backbone router uses via the forwarding address; nothing of type 5 enters the NSSA.
#[test]
fn nssa_type7() {
    let a1 = ip("0.0.0.1");
    let nssa = AreaConfig {
        id: a1,
        kind: AreaKind::Nssa {
            no_summary: false,
            default_cost: 1,
        },
    };
    let mut net = Net::new();
    let mut c1 = router("1.1.1.1", &[("e0", BACKBONE, "10.0.12.1/30")]);
    c1.externals.push(ExternalRoute {
        prefix: pfx("198.51.100.0/24"),
        metric: 5,
        e2: true,
        tag: 0,
        fwd: ip("0.0.0.0"),
    });
    let mut c2 = router(
        "2.2.2.2",
        &[("e0", BACKBONE, "10.0.12.2/30"), ("e1", a1, "10.0.23.1/30")],
    );
    c2.areas.push(nssa.clone());
    let mut c3 = router("3.3.3.3", &[("e0", a1, "10.0.23.2/30")]);
    c3.areas.push(nssa);
    c3.externals.push(ExternalRoute {
        prefix: pfx("203.0.113.0/24"),
        metric: 20,
        e2: false,
        tag: 0,
        fwd: ip("0.0.0.0"),
    });
    let r1 = net.add(c1);
    let r2 = net.add(c2);
    let r3 = net.add(c3);
    net.segment(&[(r1, 0), (r2, 0)]);
    net.segment(&[(r2, 1), (r3, 0)]);
    net.run_for(secs(90));
    let r = &net.routes[r2][&pfx("203.0.113.0/24")];
    assert_eq!((r.path, r.cost), (PathType::Ext1, 30));
    // The forwarding address (r3's NSSA interface) is the next hop.
    assert_eq!(r.nexthops.iter().next().unwrap().gw, Some(ip("10.0.23.2")));
    assert!(
        !net.routes[r3].contains_key(&pfx("198.51.100.0/24")),
        "no type-5 inside the NSSA"
    );
    // Translated: r1 reaches it through the ABR; cost = route to the forwarding address
    // (inter-area 10.0.23.0/30 at 20) + 20.
    let r = &net.routes[r1][&pfx("203.0.113.0/24")];
    assert_eq!((r.path, r.cost), (PathType::Ext1, 40));
    assert_eq!(r.nexthops.iter().next().unwrap().gw, Some(ip("10.0.12.2")));
    assert!(
        net.routers[r3]
            .lsdb_digest()
            .iter()
            .all(|d| d.1.ls_type != 5)
    );
}

/// MinLSInterval: changing the redistributed set twice within 5 s originates the second
/// change only when 5 s have passed since the first.
#[test]
fn min_ls_interval_defers_reorigination() {
    use fuxi_ospfd::consts::*;
    use fuxi_ospfd::lsa::LsaKey;
    let mut net = Net::new();
    let ra = net.add(router("1.1.1.1", &[("e0", BACKBONE, "10.0.0.1/30")]));
    let rb = net.add(router("2.2.2.2", &[("e0", BACKBONE, "10.0.0.2/30")]));
    net.segment(&[(ra, 0), (rb, 0)]);
    net.run_for(secs(60));
    let k = LsaKey {
        ls_type: LSA_AS_EXTERNAL,
        id: ip("198.51.100.0"),
        adv: ip("1.1.1.1"),
    };
    net.externals(ra, &["198.51.100.0/24"]);
    net.run_for(secs(1));
    let first = net.routers[rb].lookup(&k, net.now).unwrap();
    assert_eq!(first.hdr.seq, INITIAL_SEQ);
    // Same prefix, new metric: a new instance is due, but not before t0 + 5 s.
    let v = vec![ExternalRoute {
        prefix: pfx("198.51.100.0/24"),
        metric: 99,
        e2: true,
        tag: 0,
        fwd: ip("0.0.0.0"),
    }];
    let t0 = net.now - secs(1);
    net.routers[ra].set_externals(net.now, v);
    net.run_for(secs(2));
    assert_eq!(
        net.routers[rb].lookup(&k, net.now).unwrap().hdr.seq,
        INITIAL_SEQ,
        "too early"
    );
    net.run_until(t0 + secs(6));
    assert_eq!(
        net.routers[rb].lookup(&k, net.now).unwrap().hdr.seq,
        INITIAL_SEQ + 1
    );
}

/// Opaque LSAs (RFC 5250) are stored and flooded unchanged: an area-scope type-10 LSA that r2
/// receives from r1 reaches r3 byte for byte; a link-scope type-9 stays on the r1-r2 link.
#[test]
fn opaque_lsas_stored_and_flooded_by_scope() {
    use fuxi_ospfd::consts::*;
    use fuxi_ospfd::lsa::*;
    use fuxi_ospfd::packet::*;
    let mut net = Net::new();
    let r1 = net.add(router("1.1.1.1", &[("e0", BACKBONE, "10.0.12.1/30")]));
    let r2 = net.add(router(
        "2.2.2.2",
        &[
            ("e0", BACKBONE, "10.0.12.2/30"),
            ("e1", BACKBONE, "10.0.23.1/30"),
        ],
    ));
    let r3 = net.add(router("3.3.3.3", &[("e0", BACKBONE, "10.0.23.2/30")]));
    net.segment(&[(r1, 0), (r2, 0)]);
    net.segment(&[(r2, 1), (r3, 0)]);
    net.run_for(secs(60));
    let opaque = |t: u8, id: &str| {
        let mut l = Lsa {
            hdr: LsaHeader {
                age: 1,
                options: OPT_E | OPT_O,
                ls_type: t,
                id: ip(id),
                adv: ip("9.9.9.9"),
                seq: INITIAL_SEQ,
                checksum: 0,
                length: 0,
            },
            body: LsaBody::Opaque(bytes::Bytes::from_static(&[
                0, 1, 0, 4, 0xde, 0xad, 0xbe, 0xef,
            ])),
        };
        l.to_bytes_sealed();
        l
    };
    let p = Packet {
        hdr: Header {
            router_id: ip("1.1.1.1"),
            area_id: BACKBONE,
            checksum: 0,
            auth: AuthField::Null([0; 8]),
        },
        body: Body::LsUpdate(vec![
            opaque(LSA_OPAQUE_AREA, "1.0.0.1"),
            opaque(LSA_OPAQUE_LINK, "4.0.0.1"),
        ]),
        trailer: bytes::Bytes::new(),
    };
    let mut v = p.to_bytes().to_vec();
    fuxi_ospfd::auth::seal(&mut v, &fuxi_ospfd::auth::AuthConfig::Null, 0);
    net.inject(r2, 0, ip("10.0.12.1"), ALL_SPF_ROUTERS, &v);
    net.run_for(secs(5));
    let area_key = LsaKey {
        ls_type: LSA_OPAQUE_AREA,
        id: ip("1.0.0.1"),
        adv: ip("9.9.9.9"),
    };
    let link_key = LsaKey {
        ls_type: LSA_OPAQUE_LINK,
        id: ip("4.0.0.1"),
        adv: ip("9.9.9.9"),
    };
    let want = opaque(LSA_OPAQUE_AREA, "1.0.0.1");
    for r in [r2, r3] {
        let got = net.routers[r]
            .lookup(&area_key, net.now)
            .unwrap_or_else(|| panic!("opaque area LSA not at router {r}"));
        assert_eq!(got.body, want.body);
        assert_eq!(got.hdr.checksum, want.hdr.checksum);
    }
    assert!(net.routers[r2].lookup(&link_key, net.now).is_some());
    assert!(
        net.routers[r3].lookup(&link_key, net.now).is_none(),
        "link-local must not cross r2"
    );
}

/// ASBR in a non-backbone area: the ABR originates an ASBR-summary (type 4) into the backbone
/// so that r1 can use r3's AS-external LSA (cost to ASBR 20, E1 metric 5 → 25).
#[test]
fn asbr_summary_into_backbone() {
    let a1 = ip("0.0.0.1");
    let mut net = Net::new();
    let c1 = router("1.1.1.1", &[("e0", BACKBONE, "10.0.12.1/30")]);
    let c2 = router(
        "2.2.2.2",
        &[("e0", BACKBONE, "10.0.12.2/30"), ("e1", a1, "10.0.23.1/30")],
    );
    let mut c3 = router("3.3.3.3", &[("e0", a1, "10.0.23.2/30")]);
    c3.externals.push(ExternalRoute {
        prefix: pfx("192.0.2.0/24"),
        metric: 5,
        e2: false,
        tag: 0,
        fwd: ip("0.0.0.0"),
    });
    let r1 = net.add(c1);
    let r2 = net.add(c2);
    let r3 = net.add(c3);
    net.segment(&[(r1, 0), (r2, 0)]);
    net.segment(&[(r2, 1), (r3, 0)]);
    net.run_for(secs(90));
    let r = &net.routes[r1][&pfx("192.0.2.0/24")];
    assert_eq!((r.path, r.cost), (PathType::Ext1, 25));
    assert!(
        net.routers[r1]
            .lsdb_digest()
            .iter()
            .any(|d| d.1.ls_type == 4 && d.1.id == ip("3.3.3.3"))
    );
}

/// A crash and restart without flushing: the neighbour still holds the previous incarnation's
/// LSAs with higher sequence numbers; the new instance takes them over (seq + 1) and both
/// databases agree again within MinLSInterval plus a little.
#[test]
fn restart_without_flush_takes_over_old_lsas() {
    use fuxi_ospfd::consts::*;
    use fuxi_ospfd::lsa::LsaKey;
    let mut a = router(
        "1.1.1.1",
        &[
            ("e0", BACKBONE, "10.0.0.1/30"),
            ("s", BACKBONE, "192.168.1.1/24"),
        ],
    );
    a.ifaces[1].passive = true;
    a.externals.push(ExternalRoute {
        prefix: pfx("192.0.2.0/24"),
        metric: 20,
        e2: true,
        tag: 0,
        fwd: ip("0.0.0.0"),
    });
    let mut net = Net::new();
    let ra = net.add(a.clone());
    let rb = net.add(router("2.2.2.2", &[("e0", BACKBONE, "10.0.0.2/30")]));
    net.segment(&[(ra, 0), (rb, 0)]);
    net.run_for(secs(60));
    // Bump a's router-LSA a few times (interface flaps) so its sequence number is well past
    // the initial one.
    for _ in 0..3 {
        net.externals(ra, &[]);
        net.run_for(secs(6));
        net.externals(ra, &["192.0.2.0/24"]);
        net.run_for(secs(6));
    }
    let k = LsaKey {
        ls_type: LSA_AS_EXTERNAL,
        id: ip("192.0.2.0"),
        adv: ip("1.1.1.1"),
    };
    let old = net.routers[rb].lookup(&k, net.now).unwrap().hdr.seq;
    assert!(old > INITIAL_SEQ + 2, "{old:#x}");
    net.restart(ra, a);
    net.run_for(secs(25));
    assert_eq!(
        net.routers[ra].neighbor_state(ip("2.2.2.2")),
        Some(NbrState::Full)
    );
    assert_eq!(net.routers[ra].lsdb_digest(), net.routers[rb].lsdb_digest());
    assert!(net.routers[rb].lookup(&k, net.now).unwrap().hdr.seq > old);
    assert!(net.routes[rb].contains_key(&pfx("192.168.1.0/24")));
}

/// Start-up hold: B joins A, which has been up for 10 s (hello 1, dead 4). Without the hold
/// B originates its router-LSA as its interface comes up and must wait out MinLSInterval
/// (5 s) before the next one lists A, so neither side has routes before then. With it, B's
/// first router-LSA comes at Full and lists A: routes on both sides about one hello
/// interval after B starts, and B sends exactly one instance of it.
#[test]
fn startup_hold_lists_first_adjacency_at_once() {
    use fuxi_ospfd::consts::*;
    use fuxi_ospfd::lsa::LsaKey;
    for hold in [false, true] {
        let mut net = Net::new();
        let cfg = |rid: &str, link: &str, stub: &str| {
            let mut c = router(rid, &[("e0", BACKBONE, link), ("lo", BACKBONE, stub)]);
            c.ifaces[0].net_type = NetType::PointToPoint;
            c.ifaces[0].hello_interval = 1;
            c.ifaces[0].dead_interval = 4;
            c.ifaces[1].passive = true;
            c
        };
        let ra = net.add(cfg("1.1.1.1", "10.0.0.1/30", "192.168.1.1/24"));
        let seg = net.segment(&[(ra, 0)]);
        net.run_for(secs(10));
        let t0 = net.now;
        // B's first hello goes out as its interface comes up.
        net.segs[seg].members.push((ra + 1, 0));
        let rb = net.add_with(cfg("2.2.2.2", "10.0.0.2/30", "192.168.2.1/24"), |i| {
            i.startup_hold = hold
        });
        let mut took = None;
        while net.now < t0 + secs(10) {
            net.run_for(Duration::from_millis(10));
            if net.routes[ra].contains_key(&pfx("192.168.2.0/24"))
                && net.routes[rb].contains_key(&pfx("192.168.1.0/24"))
            {
                took = Some(net.now - t0);
                break;
            }
        }
        let took = took.expect("routes on both sides");
        let k = LsaKey {
            ls_type: LSA_ROUTER,
            id: ip("2.2.2.2"),
            adv: ip("2.2.2.2"),
        };
        let seq = net.routers[ra].lookup(&k, net.now).unwrap().hdr.seq;
        if hold {
            assert!(took < secs(2), "with the hold: {took:?}");
            assert_eq!(seq, INITIAL_SEQ, "one instance only");
        } else {
            assert!(took >= secs(5), "without the hold: {took:?}");
        }
    }
}
