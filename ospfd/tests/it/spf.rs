//! SPF on hand-computed topologies (RFC 2328 16), driven directly through `spf::area_spf`
//! and `spf::routing_table` on LSDBs built here, plus a timing run on synthetic 1,000- and
//! 10,000-router topologies (printed, not asserted).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use fuxi_ospfd::consts::*;
use fuxi_ospfd::lsa::*;
use fuxi_ospfd::spf::{self, AreaInput, Db};
use fuxi_ospfd::types::*;

use crate::sim::{ip, pfx};

fn hdr(t: u8, id: Ipv4Addr, adv: Ipv4Addr) -> LsaHeader {
    LsaHeader {
        age: 1,
        options: OPT_E,
        ls_type: t,
        id,
        adv,
        seq: INITIAL_SEQ,
        checksum: 0,
        length: 0,
    }
}

fn link(t: u8, id: &str, data: &str, metric: u16) -> RouterLink {
    RouterLink {
        id: ip(id),
        data: ip(data),
        link_type: t,
        metric,
        tos: vec![],
    }
}

fn add(db: &mut Db, mut l: Lsa) {
    l.to_bytes_sealed();
    db.insert(l.hdr.key(), l);
}

fn rtr(db: &mut Db, rid: &str, flags: u8, links: Vec<RouterLink>) {
    add(
        db,
        Lsa {
            hdr: hdr(LSA_ROUTER, ip(rid), ip(rid)),
            body: LsaBody::Router(RouterLsa {
                flags,
                links,
                reserved: 0,
            }),
        },
    );
}

fn net(db: &mut Db, dr_addr: &str, dr: &str, len: u8, routers: &[&str]) {
    add(
        db,
        Lsa {
            hdr: hdr(LSA_NETWORK, ip(dr_addr), ip(dr)),
            body: LsaBody::Network(NetworkLsa {
                mask: len_mask(len),
                routers: routers.iter().map(|r| ip(r)).collect(),
            }),
        },
    );
}

fn table(
    db: &Db,
    root: &str,
    ifs: &[(&str, IfaceId)],
    as_db: &Db,
) -> std::collections::BTreeMap<Prefix, Route> {
    let ifs: Vec<(Ipv4Addr, IfaceId)> = ifs.iter().map(|(a, i)| (ip(a), *i)).collect();
    let f = move |a: Ipv4Addr| ifs.iter().find(|(x, _)| *x == a).map(|(_, i)| *i);
    let s = spf::area_spf(db, ip(root), &f);
    let inputs = [AreaInput {
        id: Ipv4Addr::UNSPECIFIED,
        kind: AreaKind::Normal,
        db,
        spf: &s,
        active: true,
    }];
    spf::routing_table(ip(root), &inputs, as_db)
}

fn nh(pairs: &[(IfaceId, &str)]) -> BTreeSet<Nexthop> {
    pairs
        .iter()
        .map(|(i, g)| Nexthop {
            iface: *i,
            gw: Some(ip(g)),
        })
        .collect()
}

/// R1 =1= R2 =1= R4 and R1 =1= R3 =1= R4 (p2p), R4 has stub 10.4.0.0/24 cost 1:
/// two equal paths of cost 3. R1-R3 on a second pair with cost 5 is never used.
#[test]
fn ecmp_diamond() {
    let mut db = Db::new();
    rtr(
        &mut db,
        "1.1.1.1",
        0,
        vec![
            link(LINK_P2P, "2.2.2.2", "10.12.0.1", 1),
            link(LINK_P2P, "3.3.3.3", "10.13.0.1", 1),
        ],
    );
    rtr(
        &mut db,
        "2.2.2.2",
        0,
        vec![
            link(LINK_P2P, "1.1.1.1", "10.12.0.2", 1),
            link(LINK_P2P, "4.4.4.4", "10.24.0.2", 1),
        ],
    );
    rtr(
        &mut db,
        "3.3.3.3",
        0,
        vec![
            link(LINK_P2P, "1.1.1.1", "10.13.0.3", 1),
            link(LINK_P2P, "4.4.4.4", "10.34.0.3", 1),
        ],
    );
    rtr(
        &mut db,
        "4.4.4.4",
        0,
        vec![
            link(LINK_P2P, "2.2.2.2", "10.24.0.4", 1),
            link(LINK_P2P, "3.3.3.3", "10.34.0.4", 1),
            link(LINK_STUB, "10.4.0.0", "255.255.255.0", 1),
        ],
    );
    let rt = table(
        &db,
        "1.1.1.1",
        &[("10.12.0.1", 0), ("10.13.0.1", 1)],
        &Db::new(),
    );
    let r = &rt[&pfx("10.4.0.0/24")];
    assert_eq!(r.cost, 3);
    assert_eq!(r.nexthops, nh(&[(0, "10.12.0.2"), (1, "10.13.0.3")]));
}

/// A one-way link is not used: R2 claims a link to R3 but R3 does not list R2.
#[test]
fn unidirectional_link_ignored() {
    let mut db = Db::new();
    rtr(
        &mut db,
        "1.1.1.1",
        0,
        vec![link(LINK_P2P, "2.2.2.2", "10.12.0.1", 1)],
    );
    rtr(
        &mut db,
        "2.2.2.2",
        0,
        vec![
            link(LINK_P2P, "1.1.1.1", "10.12.0.2", 1),
            link(LINK_P2P, "3.3.3.3", "10.23.0.2", 1),
        ],
    );
    rtr(
        &mut db,
        "3.3.3.3",
        0,
        vec![link(LINK_STUB, "10.3.0.0", "255.255.255.0", 1)],
    );
    let rt = table(&db, "1.1.1.1", &[("10.12.0.1", 0)], &Db::new());
    assert!(!rt.contains_key(&pfx("10.3.0.0/24")));
}

/// R1, R2, R3 on LAN 10.0.0.0/24 (DR R3 at .3), each with cost 10 to the LAN; R2 has a stub
/// 10.2.0.0/24 cost 5 and R3 a p2p link to R4 (cost 1) whose stub is 10.4.0.0/24 cost 1.
#[test]
fn transit_network_next_hops() {
    let mut db = Db::new();
    rtr(
        &mut db,
        "1.1.1.1",
        0,
        vec![link(LINK_TRANSIT, "10.0.0.3", "10.0.0.1", 10)],
    );
    rtr(
        &mut db,
        "2.2.2.2",
        0,
        vec![
            link(LINK_TRANSIT, "10.0.0.3", "10.0.0.2", 10),
            link(LINK_STUB, "10.2.0.0", "255.255.255.0", 5),
        ],
    );
    rtr(
        &mut db,
        "3.3.3.3",
        0,
        vec![
            link(LINK_TRANSIT, "10.0.0.3", "10.0.0.3", 10),
            link(LINK_P2P, "4.4.4.4", "10.34.0.3", 1),
        ],
    );
    rtr(
        &mut db,
        "4.4.4.4",
        0,
        vec![
            link(LINK_P2P, "3.3.3.3", "10.34.0.4", 1),
            link(LINK_STUB, "10.4.0.0", "255.255.255.0", 1),
        ],
    );
    net(
        &mut db,
        "10.0.0.3",
        "3.3.3.3",
        24,
        &["3.3.3.3", "1.1.1.1", "2.2.2.2"],
    );
    let rt = table(&db, "1.1.1.1", &[("10.0.0.1", 0)], &Db::new());
    let lan = &rt[&pfx("10.0.0.0/24")];
    assert_eq!((lan.cost, lan.connected()), (10, true));
    let r2 = &rt[&pfx("10.2.0.0/24")];
    assert_eq!((r2.cost, r2.nexthops.clone()), (15, nh(&[(0, "10.0.0.2")])));
    let r4 = &rt[&pfx("10.4.0.0/24")];
    assert_eq!((r4.cost, r4.nexthops.clone()), (12, nh(&[(0, "10.0.0.3")])));
}

/// Externals: ASBR R2 (E bit) at cost 1 originates 192.0.2.0/24 as E2 metric 20 and
/// 198.51.100.0/24 as E1 metric 20; ASBR R3 at cost 5 originates 192.0.2.0/24 as E2 metric 20
/// too (tie on metric, nearer ASBR wins) and 203.0.113.0/24 with forwarding address 10.2.0.9
/// (resolved through R2's stub 10.2.0.0/24). Inter-area: ABR R3 (B bit) advertises
/// 172.16.0.0/16 metric 7.
#[test]
fn externals_and_summaries() {
    let mut db = Db::new();
    rtr(
        &mut db,
        "1.1.1.1",
        0,
        vec![
            link(LINK_P2P, "2.2.2.2", "10.12.0.1", 1),
            link(LINK_P2P, "3.3.3.3", "10.13.0.1", 5),
        ],
    );
    rtr(
        &mut db,
        "2.2.2.2",
        RTR_E,
        vec![
            link(LINK_P2P, "1.1.1.1", "10.12.0.2", 1),
            link(LINK_STUB, "10.2.0.0", "255.255.255.0", 2),
        ],
    );
    rtr(
        &mut db,
        "3.3.3.3",
        RTR_E | RTR_B,
        vec![link(LINK_P2P, "1.1.1.1", "10.13.0.3", 5)],
    );
    add(
        &mut db,
        Lsa {
            hdr: hdr(LSA_SUMMARY_NET, ip("172.16.0.0"), ip("3.3.3.3")),
            body: LsaBody::Summary(SummaryLsa {
                mask: ip("255.255.0.0"),
                metric: 7,
                tos: vec![],
                reserved: 0,
            }),
        },
    );
    let mut as_db = Db::new();
    let ext = |id: &str, adv: &str, e2: bool, fwd: &str| Lsa {
        hdr: hdr(LSA_AS_EXTERNAL, ip(id), ip(adv)),
        body: LsaBody::External(ExternalLsa {
            mask: ip("255.255.255.0"),
            e2,
            metric: 20,
            fwd: ip(fwd),
            tag: 0,
            tos: vec![],
            reserved: 0,
        }),
    };
    add(&mut as_db, ext("192.0.2.0", "2.2.2.2", true, "0.0.0.0"));
    add(&mut as_db, ext("192.0.2.0", "3.3.3.3", true, "0.0.0.0"));
    add(&mut as_db, ext("198.51.100.0", "2.2.2.2", false, "0.0.0.0"));
    add(&mut as_db, ext("203.0.113.0", "3.3.3.3", true, "10.2.0.9"));
    let rt = table(
        &db,
        "1.1.1.1",
        &[("10.12.0.1", 0), ("10.13.0.1", 1)],
        &as_db,
    );
    let r = &rt[&pfx("192.0.2.0/24")];
    assert_eq!(
        (r.path, r.cost2, r.cost, r.nexthops.clone()),
        (PathType::Ext2, 20, 1, nh(&[(0, "10.12.0.2")]))
    );
    let r = &rt[&pfx("198.51.100.0/24")];
    assert_eq!((r.path, r.cost), (PathType::Ext1, 21));
    let r = &rt[&pfx("203.0.113.0/24")];
    assert_eq!(
        (r.path, r.cost, r.nexthops.clone()),
        (PathType::Ext2, 3, nh(&[(0, "10.12.0.2")]))
    );
    let r = &rt[&pfx("172.16.0.0/16")];
    assert_eq!(
        (r.path, r.cost, r.nexthops.clone()),
        (PathType::Inter, 12, nh(&[(1, "10.13.0.3")]))
    );
}

/// Grid of n×n routers joined by p2p links of cost 1..=9, each with a stub; rooted at a corner.
fn grid(n: u32) -> Db {
    let mut db = Db::new();
    let rid = |x: u32, y: u32| Ipv4Addr::from(0x0a00_0000 + y * n + x + 1);
    // Link addresses: 11.<link index>.
    let laddr = |a: u32, b: u32, side: u32| {
        Ipv4Addr::from(0x0b00_0000 + ((a.min(b) * 4 + u32::from(a > b)) << 2) + side)
    };
    for y in 0..n {
        for x in 0..n {
            let me = y * n + x;
            let mut links = Vec::new();
            let mut nb = Vec::new();
            if x > 0 {
                nb.push((x - 1, y));
            }
            if x + 1 < n {
                nb.push((x + 1, y));
            }
            if y > 0 {
                nb.push((x, y - 1));
            }
            if y + 1 < n {
                nb.push((x, y + 1));
            }
            for (nx, ny) in nb {
                let other = ny * n + nx;
                let metric = ((me.min(other) * 7 + me.max(other) * 13) % 9 + 1) as u16;
                links.push(RouterLink {
                    id: rid(nx, ny),
                    data: laddr(me, other, 0),
                    link_type: LINK_P2P,
                    metric,
                    tos: vec![],
                });
            }
            links.push(RouterLink {
                id: Ipv4Addr::from(0x6400_0000 + (me << 8)),
                data: len_mask(24),
                link_type: LINK_STUB,
                metric: 1,
                tos: vec![],
            });
            let r = rid(x, y);
            db.insert(
                LsaKey {
                    ls_type: LSA_ROUTER,
                    id: r,
                    adv: r,
                },
                Lsa {
                    hdr: hdr(LSA_ROUTER, r, r),
                    body: LsaBody::Router(RouterLsa {
                        flags: 0,
                        links,
                        reserved: 0,
                    }),
                },
            );
        }
    }
    db
}

#[test]
fn grid_scale_every_router_reached() {
    for n in [32u32, 100] {
        let db = grid(n);
        let root = Ipv4Addr::from(0x0a00_0001u32);
        let s = spf::area_spf(&db, root, &|_| Some(0));
        let inputs = [AreaInput {
            id: Ipv4Addr::UNSPECIFIED,
            kind: AreaKind::Normal,
            db: &db,
            spf: &s,
            active: true,
        }];
        let rt = spf::routing_table(root, &inputs, &Db::new());
        assert_eq!(s.routers.len() as u32, n * n - 1);
        assert_eq!(rt.len() as u32, n * n);
    }
}

/// Two parallel p2p links R1-R2 (10.12.0.0/30 and 10.13.0.0/30, both cost 1): ECMP with each
/// next hop's gateway on its own link.
#[test]
fn parallel_links_pick_gateway_per_link() {
    let mut db = Db::new();
    rtr(
        &mut db,
        "1.1.1.1",
        0,
        vec![
            link(LINK_P2P, "2.2.2.2", "10.12.0.1", 1),
            link(LINK_P2P, "2.2.2.2", "10.13.0.1", 1),
        ],
    );
    rtr(
        &mut db,
        "2.2.2.2",
        0,
        vec![
            link(LINK_P2P, "1.1.1.1", "10.12.0.2", 1),
            link(LINK_P2P, "1.1.1.1", "10.13.0.2", 1),
            link(LINK_STUB, "10.2.0.0", "255.255.255.0", 1),
        ],
    );
    let rt = table(
        &db,
        "1.1.1.1",
        &[("10.12.0.1", 0), ("10.13.0.1", 1)],
        &Db::new(),
    );
    assert_eq!(
        rt[&pfx("10.2.0.0/24")].nexthops,
        nh(&[(0, "10.12.0.2"), (1, "10.13.0.2")])
    );
}
