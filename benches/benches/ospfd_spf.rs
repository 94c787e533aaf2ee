//! OSPF SPF scale: full recomputation (RFC 2328 16.1 Dijkstra plus routing-table assembly)
//! on synthetic single-area topologies of 1,000 and 10,000 routers, grid and random, and the
//! memory the LSDB of each takes. Everything runs through `fuxi_ospfd::spf` on an LSDB built
//! here; no sockets, no instance state.
//!
//! Topologies: every router has point-to-point links (cost 1–9, derived from the router
//! numbers) and one /24 stub network.
//! - grid: a √n×√n mesh, each router linked to its 4 neighbours (32×32 = 1,024 and 100×100);
//! - random: a connected random graph with average degree ~4 (a random spanning tree plus
//!   n more random edges; fixed seed, no duplicate or self links).
//!
//! LSDB memory is measured with a counting global allocator: the bytes still allocated after
//! building the database minus those before (the `BTreeMap` nodes, each `Lsa` and its link
//! vectors). It is printed once per topology, before the timings.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fuxi_ospfd::consts::*;
use fuxi_ospfd::lsa::{LsaBody, LsaHeader, LsaKey, RouterLink, RouterLsa, len_mask};
use fuxi_ospfd::spf::{self, AreaInput, Db};
use fuxi_ospfd::types::AreaKind;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`, which upholds the `GlobalAlloc`
// contract; the counter is only bookkeeping.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with layout `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn rid(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i + 1)
}

/// Router-LSAs for `n` routers and the undirected `edges` between them.
fn build(n: u32, edges: &[(u32, u32)]) -> Db {
    let mut links: Vec<Vec<RouterLink>> = vec![Vec::new(); n as usize];
    for (k, &(a, b)) in edges.iter().enumerate() {
        let metric = ((a.min(b) * 7 + a.max(b) * 13) % 9 + 1) as u16;
        // Each link gets its own /30 in 11.0.0.0/8: .1 on the lower router, .2 on the other.
        let base = 0x0b00_0000 + ((k as u32) << 2);
        for (me, other, host) in [(a, b, 1u32), (b, a, 2)] {
            links[me as usize].push(RouterLink {
                id: rid(other),
                data: Ipv4Addr::from(base + host),
                link_type: LINK_P2P,
                metric,
                tos: vec![],
            });
        }
    }
    let mut db = Db::new();
    for (i, mut l) in links.into_iter().enumerate() {
        let i = i as u32;
        l.push(RouterLink {
            id: Ipv4Addr::from(0x6400_0000 + (i << 8)),
            data: len_mask(24),
            link_type: LINK_STUB,
            metric: 1,
            tos: vec![],
        });
        let r = rid(i);
        let hdr = LsaHeader {
            age: 1,
            options: OPT_E,
            ls_type: LSA_ROUTER,
            id: r,
            adv: r,
            seq: INITIAL_SEQ,
            checksum: 0,
            length: 0,
        };
        let mut lsa = fuxi_ospfd::lsa::Lsa {
            hdr,
            body: LsaBody::Router(RouterLsa {
                flags: 0,
                links: l,
                reserved: 0,
            }),
        };
        lsa.to_bytes_sealed();
        db.insert(
            LsaKey {
                ls_type: LSA_ROUTER,
                id: r,
                adv: r,
            },
            lsa,
        );
    }
    db
}

fn grid(side: u32) -> (u32, Vec<(u32, u32)>) {
    let mut e = Vec::new();
    for y in 0..side {
        for x in 0..side {
            let me = y * side + x;
            if x + 1 < side {
                e.push((me, me + 1));
            }
            if y + 1 < side {
                e.push((me, me + side));
            }
        }
    }
    (side * side, e)
}

/// SplitMix64: a fixed-seed generator, so every run builds the same graph.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

/// Connected random graph: node i > 0 attaches to a random earlier node (a spanning tree),
/// then n more distinct random edges: 2n - 1 edges, average degree ~4.
fn random(n: u32, seed: u64) -> (u32, Vec<(u32, u32)>) {
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::new();
    let mut e = Vec::new();
    for i in 1..n {
        let j = rng.below(i);
        seen.insert((j, i));
        e.push((j, i));
    }
    while e.len() < (2 * n - 1) as usize {
        let (a, b) = (rng.below(n), rng.below(n));
        if a == b || !seen.insert((a.min(b), a.max(b))) {
            continue;
        }
        e.push((a.min(b), a.max(b)));
    }
    (n, e)
}

/// Full recomputation rooted at router 0: area SPF and the routing table.
fn full_spf(db: &Db) -> usize {
    let root = rid(0);
    let s = spf::area_spf(db, root, &|_| Some(0));
    let inputs = [AreaInput {
        id: Ipv4Addr::UNSPECIFIED,
        kind: AreaKind::Normal,
        db,
        spf: &s,
        active: true,
    }];
    spf::routing_table(root, &inputs, &Db::new()).len()
}

/// A named topology: router count and undirected links.
type Topology = (&'static str, (u32, Vec<(u32, u32)>));

fn bench(c: &mut Criterion) {
    let topologies: [Topology; 4] = [
        ("grid_1k", grid(32)),
        ("random_1k", random(1_000, 0x05_0f5d)),
        ("grid_10k", grid(100)),
        ("random_10k", random(10_000, 0x05_0f5d)),
    ];
    let mut g = c.benchmark_group("ospfd_spf");
    g.sample_size(20).warm_up_time(Duration::from_secs(1));
    for (name, (n, edges)) in &topologies {
        let before = LIVE.load(Ordering::Relaxed);
        let db = build(*n, edges);
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        let routes = full_spf(&db);
        // Every router's stub is reached.
        assert_eq!(routes, *n as usize, "{name}: not every stub reached");
        println!(
            "{name}: {n} routers, {} links (directed), LSDB {:.1} MiB ({} bytes/router)",
            2 * edges.len(),
            bytes as f64 / (1024.0 * 1024.0),
            bytes / *n as isize
        );
        g.bench_function(*name, |b| b.iter(|| black_box(full_spf(black_box(&db)))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
