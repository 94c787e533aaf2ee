//! Dataplane throughput, one core, in-memory ports: the five cases of issue 3.
//!
//! Every packet case receives 32-packet batches from a [`MemPort`] in replay mode, runs the
//! batch through [`Datapath::process_batch`] (as the engine's `Worker` does: parse →
//! exact-match cache → megaflow cache → pipeline, then the actions, for each packet) and
//! counts what the sink is given. Cases (a)–(c) receive zero-copy ([`MemPort::recv_frames`]:
//! the frames are borrowed where they lie in the port's replay area, as from an AF_XDP
//! UMEM; a packet whose actions rewrite it is copied first, one that is only forwarded is
//! handed to the sink as it lies); (d) receives copies ([`MemPort::recv_batch`]: each frame
//! copied into the batch's reused buffer, as a NIC would DMA it), because it rewrites every
//! frame before processing. Frames are 60 bytes (64 on the wire with the FCS): Ethernet +
//! IPv4 + UDP + 18 bytes of payload.
//!
//! - `emc_1flow`: one flow, one packet: every packet an exact-match cache hit.
//! - `exact_10k`: 10,000 exact 5-tuple flows, packets drawn uniformly at random from them
//!   (more flows than exact-match cache slots: a mix of EMC and megaflow hits).
//! - `masks20_100k`: 100k flows over 20 masks in 3 tables with goto; every packet of the
//!   replay cycle has its own UDP source port (a new microflow: EMC misses, megaflow hits).
//! - `slow_path`: the same tables plus exact IPv4-source entries in table 0, and every packet
//!   gets a new IPv4 source (written into the frame after receive): every packet misses both
//!   caches and is translated by the full pipeline, and a megaflow is installed.
//! - `flow_mod_add_1m`: OFPFC_ADD of 1,000,000 exact 5-tuple flows into one empty table
//!   (each sample builds the table from empty). The RSS growth per flow is printed once.
//! - `revalidate_4k`, `forward_check_4k`: what a flow-mod costs the caches (see each).
//!
//! Results and the machine: `benches/README.md`.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use fuxi_dataplane::cache::kernel::{Keep, KernelFlows, KernelKey};
use fuxi_dataplane::cache::{Datapath, ForwardCheck, Megaflow, still_forwards};
use fuxi_dataplane::pipeline::exec::Sink;
use fuxi_dataplane::pipeline::{FlowMod, PacketInReason, Pipeline};
use fuxi_dataplane::port::{BATCH, Frame, MemPort, Packet, PacketBatch, Port};
use fuxi_openflow::{Action, FieldId, Instruction, MacAddr, Match, Oxm};

/// Frame length without FCS.
const FRAME: usize = 60;

/// A 60-byte Ethernet/IPv4/UDP frame.
fn udp_frame(src: u32, dst: u32, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME);
    f.extend([0x02, 0, 0, 0, 0, 0x02]); // eth_dst
    f.extend([0x02, 0, 0, 0, 0, 0x01]); // eth_src
    f.extend(0x0800u16.to_be_bytes());
    let ip_len = (FRAME - 14) as u16;
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    let mut sum: u32 = ip
        .chunks_exact(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend(ip);
    f.extend(sport.to_be_bytes());
    f.extend(dport.to_be_bytes());
    f.extend((ip_len - 20).to_be_bytes());
    f.extend([0, 0]); // no UDP checksum
    f.resize(FRAME, 0xab);
    f
}

/// Deterministic xorshift64*, so every run sees the same tables and traffic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Counts outputs and packet-ins (a discarding tx port).
#[derive(Default)]
struct Count {
    outputs: u64,
    packet_ins: u64,
}

impl Sink for Count {
    fn output(&mut self, _port: u32, _queue: Option<u32>, _tunnel_id: u64, packet: &[u8]) {
        black_box(packet);
        self.outputs += 1;
    }
    fn packet_in(&mut self, _: PacketInReason, _: u16, _: u8, _: u64, _: &[u8]) {
        self.packet_ins += 1;
    }
}

fn apply(actions: Vec<Action>) -> Vec<Instruction> {
    vec![Instruction::ApplyActions(actions)]
}

/// Receive one batch from `rx`, optionally rewrite each frame (`touch`), process it all.
struct Rig {
    rx: MemPort,
    batch: PacketBatch,
    dp: Datapath,
    sink: Count,
    now: u64,
}

impl Rig {
    fn new(frames: Vec<Vec<u8>>) -> Rig {
        let mut rx = MemPort::new("rx");
        rx.replay(frames.iter().map(|f| Packet::from_frame(f)).collect());
        Rig {
            rx,
            batch: PacketBatch::new(),
            dp: Datapath::new(),
            sink: Count::default(),
            now: 0,
        }
    }

    /// One zero-copy round: borrow a batch of frames from the port, process them.
    #[inline]
    fn round(&mut self, p: &Pipeline) {
        let mut frames = [Frame::default(); BATCH];
        let n = self.rx.recv_frames(&mut frames);
        debug_assert_eq!(n, BATCH);
        self.now += 1_000;
        self.dp
            .process_batch(p, 1, &mut frames[..n], self.now, &mut self.sink);
    }

    /// One round receiving copies (each frame copied into the batch's own buffer), which
    /// `touch` may rewrite before processing.
    #[inline]
    fn round_copy(&mut self, p: &Pipeline, mut touch: impl FnMut(&mut [u8])) {
        self.batch.clear();
        let n = self.rx.recv_batch(&mut self.batch).unwrap_or(0);
        debug_assert_eq!(n, BATCH);
        self.now += 1_000;
        for pkt in self.batch.as_mut_slice() {
            touch(&mut pkt.data);
        }
        self.dp
            .process_batch(p, 1, self.batch.as_mut_slice(), self.now, &mut self.sink);
    }

    /// [`Rig::round_copy`] with `touch` if `copy`, else [`Rig::round`].
    #[inline]
    fn round_any(&mut self, p: &Pipeline, copy: bool, touch: impl FnMut(&mut [u8])) {
        if copy {
            self.round_copy(p, touch)
        } else {
            self.round(p)
        }
    }
}

/// Short runs: the machine is shared.
fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH as u64));
    g
}

fn report(name: &str, state: Option<(Pipeline, Rig)>) {
    let Some((_, rig)) = state else { return };
    eprintln!(
        "{name}: {:?}, megaflows {} in {} masks, outputs {}, packet-ins {}",
        rig.dp.stats,
        rig.dp.megaflow_count(),
        rig.dp.megaflow_masks(),
        rig.sink.outputs,
        rig.sink.packet_ins
    );
}

/// (a) One flow, every packet an exact-match cache hit.
fn emc_1flow(c: &mut Criterion) {
    let mut g = group(c, "dataplane");
    let mut state = None;
    g.bench_function("emc_1flow", |b| {
        let (p, rig) = state.get_or_insert_with(emc_1flow_setup);
        b.iter(|| rig.round(p))
    });
    g.finish();
    report("emc_1flow", state);
}

fn emc_1flow_setup() -> (Pipeline, Rig) {
    let mut p = Pipeline::new();
    p.flow_mod(
        &FlowMod::add(
            0,
            100,
            Match::all().with(Oxm::in_port(1)),
            apply(vec![Action::output(2)]),
        ),
        0,
    )
    .unwrap();
    let rig = Rig::new(vec![udp_frame(0x0a00_0001, 0x0a01_0001, 1000, 80)]);
    (p, rig)
}

fn five_tuple(src: u32, dst: u32, sport: u16, dport: u16) -> Match {
    Match::all()
        .with(Oxm::eth_type(0x0800))
        .with(Oxm::ip_proto(17))
        .with(Oxm::ipv4_src(Ipv4Addr::from(src)))
        .with(Oxm::ipv4_dst(Ipv4Addr::from(dst)))
        .with(Oxm::exact(FieldId::UdpSrc, sport.into()))
        .with(Oxm::exact(FieldId::UdpDst, dport.into()))
}

/// (b) 10k exact 5-tuple flows, uniform random traffic over them.
fn exact_10k(c: &mut Criterion) {
    let mut g = group(c, "dataplane");
    let mut state = None;
    g.bench_function("exact_10k", |b| {
        let (p, rig) = state.get_or_insert_with(exact_10k_setup);
        b.iter(|| rig.round(p))
    });
    g.finish();
    report("exact_10k", state);
}

/// The 5-tuple of flow `i` of `exact_10k`.
fn exact_10k_tuple(i: u32) -> (u32, u32, u16, u16) {
    (
        0x0a00_0000 + i,
        0x0b00_0000 + (i * 7919) % 65_536,
        1024 + (i % 50_000) as u16,
        (i % 1000) as u16 + 1,
    )
}

/// One frame of each of the first `n` flows of `exact_10k`.
fn exact_10k_frames(n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let (s, d, sp, dp) = exact_10k_tuple(i);
            udp_frame(s, d, sp, dp)
        })
        .collect()
}

fn exact_10k_setup() -> (Pipeline, Rig) {
    const FLOWS: u32 = 10_000;
    let tuple = exact_10k_tuple;
    let mut p = Pipeline::new();
    for i in 0..FLOWS {
        let (s, d, sp, dp) = tuple(i);
        p.flow_mod(
            &FlowMod::add(
                0,
                100,
                five_tuple(s, d, sp, dp),
                apply(vec![Action::output(2 + i % 4)]),
            ),
            0,
        )
        .unwrap();
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let frames = (0..65_536)
        .map(|_| {
            let (s, d, sp, dp) = tuple(rng.below(FLOWS.into()) as u32);
            udp_frame(s, d, sp, dp)
        })
        .collect();
    (p, Rig::new(frames))
}

/// Routes of table 1 in `masks20`: (prefix length, number of routes).
const ROUTES: [(u8, u32); 14] = [
    (8, 50),
    (10, 200),
    (12, 500),
    (14, 1_000),
    (16, 4_000),
    (18, 4_000),
    (20, 8_000),
    (21, 8_000),
    (22, 10_000),
    (23, 10_000),
    (24, 20_000),
    (26, 10_000),
    (28, 10_000),
    (32, 14_250),
];

/// 100k flows over 20 masks in 3 tables:
/// - table 0 (2 masks): in_port + IPv4 → goto 1, one per port; ARP → flood;
/// - table 1 (14 masks): 100k IPv4 destination routes, prefix lengths /8 to /32 at
///   priority = prefix length (longest prefix match), each setting eth_dst and going to 2;
/// - table 2 (4 masks): an ACL dropping some UDP/TCP destination ports (one mask: the ports
///   share key storage), IPv4 sources /16 and GRE, then a priority-0 catch-all that outputs.
///
/// Returns the pipeline and the destination addresses of some routes (for traffic).
fn masks20() -> (Pipeline, Vec<u32>) {
    let mut p = Pipeline::new();
    let add = |p: &mut Pipeline, t: u8, prio: u16, m: Match, i: Vec<Instruction>| {
        p.flow_mod(&FlowMod::add(t, prio, m, i), 0).unwrap();
    };
    for port in 1..=4 {
        let m = Match::all()
            .with(Oxm::in_port(port))
            .with(Oxm::eth_type(0x0800));
        add(&mut p, 0, 100, m, vec![Instruction::GotoTable(1)]);
    }
    add(
        &mut p,
        0,
        50,
        Match::all().with(Oxm::eth_type(0x0806)),
        apply(vec![Action::output(fuxi_openflow::consts::OFPP_FLOOD)]),
    );
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut dsts = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (len, n) in ROUTES {
        let mask = u32::MAX << (32 - u32::from(len));
        let mut made = 0;
        while made < n {
            // Routes inside 16.0.0.0/4 .. 223/8, unique per length.
            let addr = (rng.next() as u32 | 0x1000_0000) & 0xdfff_ffff & mask;
            if !seen.insert((len, addr)) {
                continue;
            }
            made += 1;
            let m = Match::all().with(Oxm::eth_type(0x0800)).with(Oxm::masked(
                FieldId::Ipv4Dst,
                addr.into(),
                mask.into(),
            ));
            let mac = MacAddr([2, 0, 0, (made >> 16) as u8, (made >> 8) as u8, made as u8]);
            add(
                &mut p,
                1,
                u16::from(len),
                m,
                vec![
                    Instruction::ApplyActions(vec![Action::set_field(Oxm::eth_dst(mac))]),
                    Instruction::GotoTable(2),
                ],
            );
            if made % 13 == 0 {
                dsts.push(addr | (rng.next() as u32 & !mask));
            }
        }
    }
    let ip = |m: Match| m.with(Oxm::eth_type(0x0800));
    for port in [22u16, 23, 135, 139, 445] {
        let m = ip(Match::all())
            .with(Oxm::ip_proto(17))
            .with(Oxm::exact(FieldId::UdpDst, port.into()));
        add(&mut p, 2, 200, m, vec![]);
        let m = ip(Match::all())
            .with(Oxm::ip_proto(6))
            .with(Oxm::exact(FieldId::TcpDst, port.into()));
        add(&mut p, 2, 200, m, vec![]);
    }
    for net in 0..16u32 {
        let m = ip(Match::all()).with(Oxm::masked(
            FieldId::Ipv4Src,
            ((0xc0a8 + net) << 16).into(),
            0xffff_0000,
        ));
        add(&mut p, 2, 150, m, vec![]);
    }
    // GRE dropped (eth_type + ip_proto: the twentieth mask).
    add(
        &mut p,
        2,
        180,
        ip(Match::all()).with(Oxm::ip_proto(47)),
        vec![],
    );
    add(&mut p, 2, 0, Match::all(), apply(vec![Action::output(2)]));
    (p, dsts)
}

/// (c) 100k flows / 20 masks / 3 tables; every packet a new microflow.
fn masks20_100k(c: &mut Criterion) {
    let mut g = group(c, "dataplane");
    let mut state = None;
    g.bench_function("masks20_100k", |b| {
        let (p, rig) = state.get_or_insert_with(masks20_100k_setup);
        b.iter(|| rig.round(p))
    });
    g.finish();
    report("masks20_100k", state);
}

fn masks20_100k_setup() -> (Pipeline, Rig) {
    let (p, dsts) = masks20();
    let mut rng = Rng(42);
    // 65,536 frames, each with its own UDP source port: far more microflows than EMC slots.
    let frames = (0..65_536u32)
        .map(|i| {
            let d = dsts[rng.below(dsts.len() as u64) as usize];
            udp_frame(0x0a00_0001 + (i >> 16), d, i as u16, 5000)
        })
        .collect();
    (p, Rig::new(frames))
}

/// (d) Every packet misses both caches: the slow path.
fn slow_path(c: &mut Criterion) {
    let mut g = group(c, "dataplane");
    let mut state = None;
    // A new source address per packet (the IPv4 checksum is left stale: nothing checks it
    // on this path).
    let mut src: u32 = 0x2000_0000;
    g.bench_function("slow_path", |b| {
        let (p, rig) = state.get_or_insert_with(slow_path_setup);
        b.iter(|| {
            rig.round_copy(p, |f| {
                src = src.wrapping_add(1);
                f[26..30].copy_from_slice(&src.to_be_bytes());
            })
        })
    });
    g.finish();
    report("slow_path", state);
}

fn slow_path_setup() -> (Pipeline, Rig) {
    let (mut p, dsts) = masks20();
    // 1,000 exact IPv4 sources dropped in table 0: every lookup there consults all 32 bits
    // of ipv4_src, so every megaflow is specific to one source address.
    for i in 0..1000u32 {
        let m = Match::all()
            .with(Oxm::eth_type(0x0800))
            .with(Oxm::ipv4_src(Ipv4Addr::from(0xac10_0000 + i)));
        p.flow_mod(&FlowMod::add(0, 300, m, vec![]), 0).unwrap();
    }
    let mut rng = Rng(7);
    let frames = (0..4096u32)
        .map(|i| {
            let d = dsts[rng.below(dsts.len() as u64) as usize];
            udp_frame(0x0a00_0001, d, i as u16, 5000)
        })
        .collect();
    (p, Rig::new(frames))
}

/// (e) Revalidation: 4,096 megaflows (the exact-10k pipeline, 4,096 of its flows carrying
/// traffic), then per iteration a flow-mod none of them is touched by (a flow added to, or
/// taken from, table 1, which they never reach) and one batch, whose first packet makes the
/// datapath translate every megaflow again and keep it. Throughput: megaflows revalidated.
fn revalidate_4k(c: &mut Criterion) {
    const MEGAFLOWS: u32 = 4_096;
    let mut g = group(c, "dataplane");
    g.throughput(Throughput::Elements(MEGAFLOWS.into()));
    let mut state = None;
    let mut add = true;
    g.bench_function("revalidate_4k", |b| {
        let (p, rig) = state.get_or_insert_with(|| {
            let (p, _) = exact_10k_setup();
            let mut rig = Rig::new(exact_10k_frames(MEGAFLOWS));
            for _ in 0..MEGAFLOWS as usize / BATCH {
                rig.round(&p);
            }
            assert_eq!(rig.dp.megaflow_count(), MEGAFLOWS as usize);
            (p, rig)
        });
        let spare = Match::all().with(Oxm::in_port(9));
        b.iter(|| {
            let fm = if add {
                FlowMod::add(1, 1, spare.clone(), vec![])
            } else {
                FlowMod::delete(1, spare.clone())
            };
            add = !add;
            p.flow_mod(&fm, 0).unwrap();
            rig.round(p);
        })
    });
    g.finish();
    report("revalidate_4k", state);
}

/// What a datapath offered the kernel flow table: every entry, with its megaflow and port.
#[derive(Clone, Default)]
struct Offers(Arc<Mutex<Vec<Offer>>>);

/// An entry offered: key, megaflow, output port.
type Offer = (KernelKey, Arc<Megaflow>, u32);

impl KernelFlows for Offers {
    fn offer(&mut self, key: &KernelKey, mf: &Arc<Megaflow>, out_port: u32, _tag: u64) {
        let mut v = self.0.lock().unwrap();
        if !v.iter().any(|(k, _, _)| k == key) {
            v.push((*key, mf.clone(), out_port));
        }
    }
    fn commit(&mut self) {}
    fn harvest(&mut self, _now: u64) {}
    fn revalidate(&mut self, _: u64, _: &Pipeline, _: u64, _: Keep<'_>) {}
}

/// (e) What a control plane does to the kernel flow table's entries as it publishes a
/// change: checks each still forwards as it did (a translation of its microflow), one by
/// one (`still_forwards`) or through [`ForwardCheck`] (one translation per set of entries
/// of a megaflow the translation cannot tell apart). 4,096 entries of UDP microflows after
/// an unrelated flow-mod: `one_megaflow`, one flow `in_port=1,ip → 2` (connections of one
/// megaflow, the common case); `exact`, the exact-10k pipeline (a megaflow per microflow,
/// nothing to share). Throughput: entries checked.
fn forward_check_4k(c: &mut Criterion) {
    const ENTRIES: u32 = 4_096;
    let mut g = group(c, "dataplane");
    g.throughput(Throughput::Elements(ENTRIES.into()));
    let entries = |p: &Pipeline, frames: Vec<Vec<u8>>| {
        let mut rig = Rig::new(frames);
        let offers = Offers::default();
        rig.dp.set_kernel(Box::new(offers.clone()));
        for _ in 0..ENTRIES as usize / BATCH {
            rig.round(p);
        }
        let e = offers.0.lock().unwrap().clone();
        assert_eq!(e.len(), ENTRIES as usize);
        e
    };
    let one = {
        let mut p = Pipeline::new();
        let m = Match::all()
            .with(Oxm::in_port(1))
            .with(Oxm::eth_type(0x0800));
        p.flow_mod(&FlowMod::add(0, 1, m, apply(vec![Action::output(2)])), 0)
            .unwrap();
        let frames = (0..ENTRIES)
            .map(|i| udp_frame(0x0a00_0001, 0x0b00_0000 + i, 1024 + i as u16, 53))
            .collect();
        let e = entries(&p, frames);
        (p, e)
    };
    let exact = {
        let (p, _) = exact_10k_setup();
        let e = entries(&p, exact_10k_frames(ENTRIES));
        (p, e)
    };
    // Three tables that only forward: in_port → goto 1; 20,000 IPv4 destination routes
    // (/16 to /32) → goto 2; an ACL on UDP destination ports, then output.
    let routed = {
        let mut p = Pipeline::new();
        let m = Match::all()
            .with(Oxm::in_port(1))
            .with(Oxm::eth_type(0x0800));
        p.flow_mod(&FlowMod::add(0, 1, m, vec![Instruction::GotoTable(1)]), 0)
            .unwrap();
        let mut dsts = Vec::new();
        for i in 0..20_000u32 {
            let len = [16u8, 20, 24, 28, 32][i as usize % 5];
            let net = (0x0b00_0000 + (i << 8)) & (u32::MAX << (32 - len));
            let m = Match::all().with(Oxm::eth_type(0x0800)).with(Oxm::masked(
                FieldId::Ipv4Dst,
                net.into(),
                (u32::MAX << (32 - len)).into(),
            ));
            let goto = vec![Instruction::GotoTable(2)];
            p.flow_mod(&FlowMod::add(1, u16::from(len), m, goto), 0)
                .unwrap();
            dsts.push(net);
        }
        for port in 1..=50u16 {
            let m = Match::all()
                .with(Oxm::eth_type(0x0800))
                .with(Oxm::ip_proto(17))
                .with(Oxm::exact(FieldId::UdpDst, u128::from(port * 100)));
            p.flow_mod(&FlowMod::add(2, 10, m, vec![]), 0).unwrap();
        }
        let out = apply(vec![Action::output(2)]);
        p.flow_mod(&FlowMod::add(2, 0, Match::all(), out), 0)
            .unwrap();
        let frames = (0..ENTRIES)
            .map(|i| udp_frame(0x0a00_0001, dsts[i as usize % 64] | 1, 1024 + i as u16, 53))
            .collect();
        let e = entries(&p, frames);
        (p, e)
    };
    for (name, (mut p, e)) in [("one_megaflow", one), ("routed", routed), ("exact", exact)] {
        let other = Match::all().with(Oxm::in_port(9));
        p.flow_mod(&FlowMod::add(1, 1, other, vec![]), 0).unwrap();
        g.bench_function(format!("forward_check_4k/{name}/each"), |b| {
            b.iter(|| {
                let ok = e.iter().filter(|(k, mf, o)| still_forwards(&p, k, mf, *o));
                assert_eq!(ok.count(), ENTRIES as usize);
            })
        });
        g.bench_function(format!("forward_check_4k/{name}/shared"), |b| {
            b.iter(|| {
                let mut check = ForwardCheck::with_capacity(&p, e.len());
                let ok = e.iter().filter(|(k, mf, o)| check.check(k, mf, *o)).count();
                assert_eq!(ok, ENTRIES as usize);
                black_box(check.translations())
            })
        });
        let mut check = ForwardCheck::new(&p);
        e.iter().for_each(|(k, mf, o)| {
            check.check(k, mf, *o);
        });
        let megaflows: std::collections::HashSet<*const Megaflow> =
            e.iter().map(|(_, mf, _)| Arc::as_ptr(mf)).collect();
        eprintln!(
            "forward_check_4k/{name}: {} entries of {} megaflows, {} translations shared",
            e.len(),
            megaflows.len(),
            check.translations()
        );
    }
    g.finish();
}

/// Resident set size in bytes (Linux `/proc/self/statm`; 0 elsewhere).
fn rss() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    pages * 4096
}

/// (e) OFPFC_ADD into a table growing from empty to 1M flows.
fn flow_mod_add_1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("dataplane");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(adds().into()));
    let mut mods = None;
    g.bench_function("flow_mod_add_1m", |b| {
        let mods = mods.get_or_insert_with(flow_mods);
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let p = build(mods);
                total += t.elapsed();
                drop(black_box(p)); // teardown not timed
            }
            total
        })
    });
    g.finish();
}

/// Flows added per sample: 1,000,000, or `FUXI_BENCH_FLOWS` (for profiling runs).
fn adds() -> u32 {
    std::env::var("FUXI_BENCH_FLOWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn flow_mods() -> Vec<FlowMod> {
    let n = adds();
    let mods: Vec<FlowMod> = (0..n)
        .map(|i| {
            FlowMod::add(
                0,
                100,
                five_tuple(0x0a00_0000 + i, 0x0b00_0000 + (i % 251), 1024, 80),
                apply(vec![Action::output(2)]),
            )
        })
        .collect();
    // Memory first, before this process has built (and freed) any table.
    let before = rss();
    let t = Instant::now();
    let p = build(&mods);
    let took = t.elapsed();
    let after = rss();
    eprintln!(
        "flow_mod_add_1m: {} flows in {took:?}; RSS +{} MB, {} bytes/flow",
        p.flow_count(0),
        (after - before) >> 20,
        (after - before) / u64::from(n),
    );
    {
        use std::mem::size_of;
        eprintln!(
            "  inline sizes: Rule<FlowEntry> {}, FlowEntry {}, OxmTlv {}, Instruction {}, \
             Action {}, FlowStats {}",
            size_of::<fuxi_dataplane::classifier::Rule<fuxi_dataplane::pipeline::FlowEntry>>(),
            size_of::<fuxi_dataplane::pipeline::FlowEntry>(),
            size_of::<fuxi_openflow::OxmTlv>(),
            size_of::<Instruction>(),
            size_of::<Action>(),
            size_of::<fuxi_dataplane::pipeline::FlowStats>(),
        );
    }
    mods
}

fn build(mods: &[FlowMod]) -> Pipeline {
    let mut p = Pipeline::new();
    for fm in mods {
        p.flow_mod(fm, 0).unwrap();
    }
    p
}

/// Instruction counting: `FUXI_BENCH_PROFILE=<case>:<rounds>` (case `emc_1flow`,
/// `exact_10k`, `masks20_100k` or `slow_path`; `<case>+copy` receives copies instead of
/// borrowing, for comparison) sets the case up, runs its replay cycle twice
/// to reach steady state (for `slow_path`, until the megaflow cache has been flushed once),
/// then runs `rounds` rounds in [`profiled_rounds`] and exits, before
/// any benchmark. Under `valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect=*profiled_rounds*` the count divided by `rounds × 32` is the
/// instructions per packet of a round (receive, process, sink).
fn profile_hook(_: &mut Criterion) {
    let Ok(spec) = std::env::var("FUXI_BENCH_PROFILE") else {
        return;
    };
    let (case, rounds) = spec.split_once(':').unwrap_or((&spec, "10000"));
    let (case, copy) = match case.strip_suffix("+copy") {
        Some(c) => (c, true),
        None => (case, false),
    };
    let rounds: u64 = rounds.parse().unwrap_or(10_000);
    let (p, mut rig, frames) = match case {
        "emc_1flow" => {
            let (p, r) = emc_1flow_setup();
            (p, r, 1)
        }
        "exact_10k" => {
            let (p, r) = exact_10k_setup();
            (p, r, 65_536)
        }
        "masks20_100k" => {
            let (p, r) = masks20_100k_setup();
            (p, r, 65_536)
        }
        "slow_path" => {
            let (p, r) = slow_path_setup();
            (p, r, 4096)
        }
        _ => panic!("FUXI_BENCH_PROFILE: unknown case {case}"),
    };
    let slow = case == "slow_path";
    let copy = copy || slow;
    let mut src: u32 = 0x2000_0000;
    let mut touch = move |f: &mut [u8]| {
        if slow {
            src = src.wrapping_add(1);
            f[26..30].copy_from_slice(&src.to_be_bytes());
        }
    };
    for _ in 0..(2 * frames / BATCH).max(100) {
        rig.round_any(&p, copy, &mut touch);
    }
    // The slow path's steady state has flushed the full megaflow cache at least once (the
    // flushed megaflows are reused): profile `MEGAFLOW_LIMIT / 32` rounds for one flush per
    // profile, as in a long run.
    while slow && rig.dp.stats.flushes == 0 {
        rig.round_any(&p, copy, &mut touch);
    }
    let before = rig.dp.stats;
    profiled_rounds(&p, &mut rig, rounds, copy, &mut touch);
    let s = rig.dp.stats;
    eprintln!(
        "{case}: {rounds} rounds, {} packets: {} EMC hits, {} megaflow hits, {} misses",
        rounds * BATCH as u64,
        s.emc_hits - before.emc_hits,
        s.megaflow_hits - before.megaflow_hits,
        s.misses - before.misses,
    );
    std::process::exit(0);
}

#[inline(never)]
fn profiled_rounds(
    p: &Pipeline,
    rig: &mut Rig,
    rounds: u64,
    copy: bool,
    touch: &mut impl FnMut(&mut [u8]),
) {
    for _ in 0..rounds {
        rig.round_any(p, copy, &mut *touch);
    }
}

criterion_group!(
    benches,
    profile_hook,
    flow_mod_add_1m,
    emc_1flow,
    exact_10k,
    masks20_100k,
    slow_path,
    revalidate_4k,
    forward_check_4k
);
criterion_main!(benches);
