//! Shortest-path-first for one area (RFC 2328 16.1, with next hops per 16.1.1) and the
//! routing-table assembly across areas: inter-area routes from summaries (16.2) and AS-external
//! and NSSA routes (16.4, RFC 3101). Pure functions over LSDB snapshots; no state.

use std::borrow::Borrow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::net::Ipv4Addr;
use std::rc::Rc;

use crate::consts::*;
use crate::lsa::{Lsa, LsaBody, LsaKey, RouterLsa};
use crate::types::*;

/// A vertex of the shortest-path tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Vertex {
    // Networks sort before routers so that on equal cost a network is settled first.
    Network(Ipv4Addr),
    Router(Ipv4Addr),
}

impl std::hash::Hash for Vertex {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let (tag, a) = match self {
            Vertex::Network(a) => (0u64, a),
            Vertex::Router(a) => (1u64, a),
        };
        h.write_u64(tag << 32 | u64::from(u32::from(*a)));
    }
}

/// Hashes a [`Vertex`] (one address and a tag) with one multiply: SPF looks vertices up once
/// per edge, and SipHash's DoS resistance buys nothing for keys that come from the LSDB's own
/// router ids.
#[derive(Default)]
struct VertexHasher(u64);

impl std::hash::Hasher for VertexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type VertexMap = HashMap<Vertex, usize, std::hash::BuildHasherDefault<VertexHasher>>;

/// A router reached in an area, with its router-LSA flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterReach {
    pub cost: u32,
    pub flags: u8,
    pub nexthops: BTreeSet<Nexthop>,
}

/// The result of SPF in one area.
#[derive(Debug, Clone, Default)]
pub struct AreaSpf {
    pub routers: BTreeMap<Ipv4Addr, RouterReach>,
    pub networks: BTreeMap<Prefix, (u32, BTreeSet<Nexthop>)>,
}

/// An LSDB snapshot for SPF: only live (age < MaxAge) LSAs. The functions here take any
/// `BTreeMap<LsaKey, L>` with `L: Borrow<Lsa>`, so the instance passes references into its own
/// database instead of copying every LSA before each run.
pub type Db = BTreeMap<LsaKey, Lsa>;

fn router_lsa<L: Borrow<Lsa>>(db: &BTreeMap<LsaKey, L>, rid: Ipv4Addr) -> Option<&RouterLsa> {
    let k = LsaKey {
        ls_type: LSA_ROUTER,
        id: rid,
        adv: rid,
    };
    match db.get(&k).map(|l| &l.borrow().body) {
        Some(LsaBody::Router(r)) => Some(r),
        _ => None,
    }
}

fn network_lsa<L: Borrow<Lsa>>(
    db: &BTreeMap<LsaKey, L>,
    id: Ipv4Addr,
) -> Option<(&Lsa, &crate::lsa::NetworkLsa)> {
    db.range(
        LsaKey {
            ls_type: LSA_NETWORK,
            id,
            adv: Ipv4Addr::UNSPECIFIED,
        }..=LsaKey {
            ls_type: LSA_NETWORK,
            id,
            adv: Ipv4Addr::BROADCAST,
        },
    )
    .map(|(_, l)| l.borrow())
    .find_map(|l| match &l.body {
        LsaBody::Network(n) => Some((l, n)),
        _ => None,
    })
}

/// The LSA behind a vertex, looked up once when the vertex is first reached.
#[derive(Clone, Copy)]
enum VLsa<'a> {
    Router(&'a RouterLsa),
    Network(&'a crate::lsa::NetworkLsa),
}

/// A vertex discovered by Dijkstra: its best distance so far, the next hops of that distance
/// (shared with the parent until an equal-cost path adds to them) and its LSA.
struct Node<'a> {
    v: Vertex,
    dist: u32,
    nh: Rc<BTreeSet<Nexthop>>,
    done: bool,
    lsa: VLsa<'a>,
}

/// Dijkstra over router- and network-LSAs of one area rooted at `root`.
/// `iface_of` maps one of the root's interface addresses to its interface.
///
/// Vertices get dense indices as they are discovered, so each LSA is looked up in the
/// database once; a vertex's next-hop set is shared with its parent (16.1.1: the next hops
/// are inherited unless the parent is the root or a network directly attached to it) and
/// copied only when an equal-cost path merges another set into it.
pub fn area_spf<L: Borrow<Lsa>>(
    db: &BTreeMap<LsaKey, L>,
    root: Ipv4Addr,
    iface_of: &dyn Fn(Ipv4Addr) -> Option<IfaceId>,
) -> AreaSpf {
    let mut out = AreaSpf::default();
    let Some(root_lsa) = router_lsa(db, root) else {
        return out;
    };
    let rootv = Vertex::Router(root);
    let none: Rc<BTreeSet<Nexthop>> = Rc::new(BTreeSet::new());
    let mut index = VertexMap::default();
    let mut nodes: Vec<Node<'_>> = vec![Node {
        v: rootv,
        dist: 0,
        nh: Rc::clone(&none),
        done: false,
        lsa: VLsa::Router(root_lsa),
    }];
    index.insert(rootv, 0);
    // Ties pop networks first (`Vertex` order), so a router reached through a transit
    // network at the same cost as the network is settled after it.
    let mut heap = BinaryHeap::new();
    heap.push(Reverse((0u32, rootv, 0usize)));
    let mut edges: Vec<(Vertex, u32, Ipv4Addr)> = Vec::new();
    while let Some(Reverse((d, v, vi))) = heap.pop() {
        if nodes[vi].done || nodes[vi].dist != d {
            continue;
        }
        nodes[vi].done = true;
        let dv = d;
        let nh = Rc::clone(&nodes[vi].nh);
        // Edges out of v: (w, cost, link data of v's link).
        edges.clear();
        match nodes[vi].lsa {
            VLsa::Router(rl) => {
                for l in &rl.links {
                    match l.link_type {
                        LINK_P2P => edges.push((Vertex::Router(l.id), u32::from(l.metric), l.data)),
                        LINK_TRANSIT => {
                            edges.push((Vertex::Network(l.id), u32::from(l.metric), l.data))
                        }
                        _ => {}
                    }
                }
            }
            VLsa::Network(nl) => {
                for r in &nl.routers {
                    edges.push((Vertex::Router(*r), 0, Ipv4Addr::UNSPECIFIED));
                }
            }
        }
        for &(w, cost, vdata) in &edges {
            let wi = match index.get(&w) {
                Some(&wi) => wi,
                None => {
                    // W must exist in the database.
                    let lsa = match w {
                        Vertex::Router(r) => router_lsa(db, r).map(VLsa::Router),
                        Vertex::Network(n) => network_lsa(db, n).map(|(_, nl)| VLsa::Network(nl)),
                    };
                    let Some(lsa) = lsa else { continue };
                    nodes.push(Node {
                        v: w,
                        dist: u32::MAX,
                        nh: Rc::clone(&none),
                        done: false,
                        lsa,
                    });
                    index.insert(w, nodes.len() - 1);
                    nodes.len() - 1
                }
            };
            if nodes[wi].done {
                continue;
            }
            // W must link back to V; `back` is W's link data on the link to V.
            let back: Option<Ipv4Addr> = match (v, nodes[wi].lsa) {
                // With parallel links, W's link back to V on the same subnet as V's link (the
                // longest common prefix with V's interface address) gives the next hop.
                (Vertex::Router(vr), VLsa::Router(rl)) => rl
                    .links
                    .iter()
                    .filter(|l| l.link_type == LINK_P2P && l.id == vr)
                    .max_by_key(|l| (u32::from(l.data) ^ u32::from(vdata)).leading_zeros())
                    .map(|l| l.data),
                (Vertex::Router(vr), VLsa::Network(nl)) => {
                    nl.routers.contains(&vr).then_some(Ipv4Addr::UNSPECIFIED)
                }
                (Vertex::Network(vn), VLsa::Router(rl)) => rl
                    .links
                    .iter()
                    .find(|l| l.link_type == LINK_TRANSIT && l.id == vn)
                    .map(|l| l.data),
                _ => None,
            };
            let Some(back) = back else { continue };
            let wd = dv.saturating_add(cost);
            // `u32::MAX` on an unreached vertex means "no path yet", not a distance.
            let unreached = Rc::ptr_eq(&nodes[wi].nh, &none);
            if wd > nodes[wi].dist && !unreached {
                continue;
            }
            // Next hops (16.1.1).
            let wnh: Rc<BTreeSet<Nexthop>> = if v == rootv {
                Rc::new(match (w, iface_of(vdata)) {
                    (Vertex::Router(_), Some(i)) => [Nexthop {
                        iface: i,
                        gw: Some(back),
                    }]
                    .into(),
                    (Vertex::Network(_), Some(i)) => [Nexthop { iface: i, gw: None }].into(),
                    _ => BTreeSet::new(),
                })
            } else if matches!(v, Vertex::Network(_)) && nh.iter().all(|n| n.gw.is_none()) {
                Rc::new(
                    nh.iter()
                        .map(|n| Nexthop {
                            iface: n.iface,
                            gw: Some(back),
                        })
                        .collect(),
                )
            } else {
                Rc::clone(&nh)
            };
            if wnh.is_empty() {
                continue;
            }
            let node = &mut nodes[wi];
            if wd == node.dist && !unreached {
                if !Rc::ptr_eq(&node.nh, &wnh) && !wnh.is_subset(&node.nh) {
                    Rc::make_mut(&mut node.nh).extend(wnh.iter().copied());
                }
            } else {
                node.dist = wd;
                node.nh = wnh;
                heap.push(Reverse((wd, w, wi)));
            }
        }
    }
    // Stage 2: networks and stubs.
    for n in nodes.iter().filter(|n| n.done) {
        let (d, nh) = (n.dist, &*n.nh);
        match (n.v, n.lsa) {
            (Vertex::Router(r), VLsa::Router(rl)) => {
                if r != root {
                    out.routers.insert(
                        r,
                        RouterReach {
                            cost: d,
                            flags: rl.flags,
                            nexthops: nh.clone(),
                        },
                    );
                }
                for l in rl.links.iter().filter(|l| l.link_type == LINK_STUB) {
                    let p = Prefix::new(l.id, crate::lsa::mask_len(l.data));
                    let c = d.saturating_add(u32::from(l.metric));
                    add_net(&mut out.networks, p, c, nh);
                }
            }
            (Vertex::Network(n), VLsa::Network(nl)) => {
                let p = Prefix::new(n, crate::lsa::mask_len(nl.mask));
                add_net(&mut out.networks, p, d, nh);
            }
            _ => {}
        }
    }
    out
}

fn add_net(
    m: &mut BTreeMap<Prefix, (u32, BTreeSet<Nexthop>)>,
    p: Prefix,
    c: u32,
    nh: &BTreeSet<Nexthop>,
) {
    match m.get_mut(&p) {
        Some((oc, onh)) if *oc == c => onh.extend(nh.iter().copied()),
        Some((oc, _)) if *oc < c => {}
        _ => {
            m.insert(p, (c, nh.clone()));
        }
    }
}

/// One area's inputs to the routing table.
#[derive(Debug)]
pub struct AreaInput<'a, L = Lsa> {
    pub id: Ipv4Addr,
    pub kind: AreaKind,
    pub db: &'a BTreeMap<LsaKey, L>,
    pub spf: &'a AreaSpf,
    /// Whether any of our interfaces in this area has a full adjacency (transit capability is
    /// not modelled; used to pick which areas' summaries an ABR examines).
    pub active: bool,
}

fn better(new: &Route, old: &Route) -> std::cmp::Ordering {
    (new.path, new.cost2, new.cost).cmp(&(old.path, old.cost2, old.cost))
}

fn offer(rt: &mut BTreeMap<Prefix, Route>, r: Route) {
    if r.nexthops.is_empty() && r.path != PathType::Intra {
        return;
    }
    match rt.get_mut(&r.prefix) {
        None => {
            rt.insert(r.prefix, r);
        }
        Some(old) => match better(&r, old) {
            std::cmp::Ordering::Less => *old = r,
            std::cmp::Ordering::Equal => old.nexthops.extend(r.nexthops),
            std::cmp::Ordering::Greater => {}
        },
    }
}

/// Build the whole routing table from per-area SPF results and the AS-scope database.
pub fn routing_table<L: Borrow<Lsa>>(
    router_id: Ipv4Addr,
    areas: &[AreaInput<'_, L>],
    as_db: &BTreeMap<LsaKey, L>,
) -> BTreeMap<Prefix, Route> {
    let mut rt: BTreeMap<Prefix, Route> = BTreeMap::new();
    // 16.1 intra-area.
    for a in areas {
        for (p, (c, nh)) in &a.spf.networks {
            offer(
                &mut rt,
                Route {
                    prefix: *p,
                    path: PathType::Intra,
                    area: Some(a.id),
                    cost: *c,
                    cost2: 0,
                    nexthops: nh.clone(),
                },
            );
        }
    }
    // 16.2 inter-area: an ABR looks at the backbone only; others at their (single) area.
    let attached = areas.iter().filter(|a| a.active).count();
    let is_abr = attached > 1;
    let mut asbr: BTreeMap<Ipv4Addr, (u32, BTreeSet<Nexthop>)> = BTreeMap::new();
    for a in areas {
        for (rid, rr) in &a.spf.routers {
            if rr.flags & RTR_E != 0 {
                add_router(&mut asbr, *rid, rr.cost, &rr.nexthops);
            }
        }
    }
    let mut inter: BTreeMap<Prefix, Route> = BTreeMap::new();
    for a in areas {
        if is_abr && a.id != Ipv4Addr::UNSPECIFIED {
            continue;
        }
        for l in a.db.values().map(Borrow::borrow) {
            let LsaBody::Summary(s) = &l.body else {
                continue;
            };
            if l.hdr.adv == router_id || s.metric >= LS_INFINITY {
                continue;
            }
            let Some(abr) = a.spf.routers.get(&l.hdr.adv) else {
                continue;
            };
            if abr.flags & RTR_B == 0 && l.hdr.adv != router_id {
                // RFC 2328 16.2 (3): the advertising router must be an area border router
                // (BIRD and FRR tolerate stub-area default generators; we follow the RFC).
                continue;
            }
            let cost = abr.cost.saturating_add(s.metric);
            if l.hdr.ls_type == LSA_SUMMARY_NET {
                let p = Prefix::new(l.hdr.id, crate::lsa::mask_len(s.mask));
                if rt.get(&p).is_some_and(|r| r.path == PathType::Intra) {
                    continue;
                }
                offer(
                    &mut inter,
                    Route {
                        prefix: p,
                        path: PathType::Inter,
                        area: Some(a.id),
                        cost,
                        cost2: 0,
                        nexthops: abr.nexthops.clone(),
                    },
                );
            } else if !asbr.contains_key(&l.hdr.id) {
                add_router(&mut asbr, l.hdr.id, cost, &abr.nexthops);
            }
        }
    }
    for (_, r) in inter {
        offer(&mut rt, r);
    }
    // 16.4 externals: type 5 from the AS database, type 7 from each NSSA.
    // Forwarding addresses resolve by longest match over the intra- and inter-area routes
    // (`rt` holds nothing else yet and is not changed until the externals are merged).
    let lookup = |a: Ipv4Addr| -> Option<&Route> {
        (0..=32u8)
            .rev()
            .filter_map(|len| rt.get(&Prefix::new(a, len)))
            .find(|r| r.path <= PathType::Inter)
    };
    let mut sources: Vec<(&Lsa, Option<&AreaInput<'_, L>>)> = as_db
        .values()
        .map(Borrow::borrow)
        .filter(|l| l.hdr.ls_type == LSA_AS_EXTERNAL)
        .map(|l| (l, None))
        .collect();
    for a in areas {
        if matches!(a.kind, AreaKind::Nssa { .. }) {
            sources.extend(
                a.db.values()
                    .map(Borrow::borrow)
                    .filter(|l: &&Lsa| l.hdr.ls_type == LSA_NSSA)
                    .map(|l| (l, Some(a))),
            );
        }
    }
    let mut ext: BTreeMap<Prefix, Route> = BTreeMap::new();
    for (l, area) in sources {
        let LsaBody::External(e) = &l.body else {
            continue;
        };
        if l.hdr.adv == router_id || e.metric >= LS_INFINITY {
            continue;
        }
        let (asbr_cost, asbr_nh) = match area {
            // Type 7: the originator must be reachable inside that NSSA.
            Some(a) => match a.spf.routers.get(&l.hdr.adv) {
                Some(r) => (r.cost, r.nexthops.clone()),
                None => continue,
            },
            None => match asbr.get(&l.hdr.adv) {
                Some((c, nh)) => (*c, nh.clone()),
                None => continue,
            },
        };
        let (x, nh) = if e.fwd != Ipv4Addr::UNSPECIFIED {
            match lookup(e.fwd) {
                Some(r) => {
                    let nh: BTreeSet<Nexthop> = r
                        .nexthops
                        .iter()
                        .map(|n| Nexthop {
                            iface: n.iface,
                            gw: n.gw.or(Some(e.fwd)),
                        })
                        .collect();
                    if nh.is_empty() {
                        continue;
                    }
                    (r.cost, nh)
                }
                None => continue,
            }
        } else {
            (asbr_cost, asbr_nh)
        };
        let p = Prefix::new(l.hdr.id, crate::lsa::mask_len(e.mask));
        if rt.contains_key(&p) {
            continue;
        }
        let r = if e.e2 {
            Route {
                prefix: p,
                path: PathType::Ext2,
                area: None,
                cost: x,
                cost2: e.metric,
                nexthops: nh,
            }
        } else {
            Route {
                prefix: p,
                path: PathType::Ext1,
                area: None,
                cost: x.saturating_add(e.metric),
                cost2: 0,
                nexthops: nh,
            }
        };
        offer(&mut ext, r);
    }
    for (_, r) in ext {
        offer(&mut rt, r);
    }
    rt
}

fn add_router(
    m: &mut BTreeMap<Ipv4Addr, (u32, BTreeSet<Nexthop>)>,
    rid: Ipv4Addr,
    c: u32,
    nh: &BTreeSet<Nexthop>,
) {
    match m.get_mut(&rid) {
        Some((oc, onh)) if *oc == c => onh.extend(nh.iter().copied()),
        Some((oc, _)) if *oc < c => {}
        _ => {
            m.insert(rid, (c, nh.clone()));
        }
    }
}
