//! Flow cache tests: the property that the exact-match and megaflow caches give exactly the
//! actions a full pipeline translation gives, for random flow tables (several tables, goto,
//! metadata, rewrites, VLAN push/pop, TTL, groups) changed between packets; plus hit paths.

use fuxi_dataplane::cache::kernel::{Keep, KernelFlows, KernelKey, kernel_key, tag};
use fuxi_dataplane::cache::{Datapath, ForwardCheck, Megaflow, Source, still_forwards};
use fuxi_dataplane::packet::{RxMeta, parse};
use fuxi_dataplane::pipeline::exec::{Recorder, execute};
use fuxi_dataplane::pipeline::{
    Bucket, DpAction, FlowMod, FlowStats, GroupMod, GroupModCommand, GroupType, Nanos, Pipeline,
    PortState,
};
use fuxi_dataplane::port::{Frame as RxFrame, Packet};
use fuxi_openflow::consts::{OFPP_CONTROLLER, OFPP_NORMAL};
use fuxi_openflow::oxm::{FieldId, OFPVID_PRESENT};
use fuxi_openflow::{Action, Instruction, Match, Oxm};
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::parse::{Frame, L3, L4};

#[derive(Debug, Clone)]
struct FlowSpec {
    table: u8,
    prio: u16,
    pieces: u8,
    vals: [u8; 4],
    acts: Vec<u8>,
    write: bool,
    goto: bool,
}

#[derive(Debug, Clone)]
struct PktSpec {
    in_port: u32,
    src: u8,
    dst: u8,
    tcp: bool,
    dport: u8,
    vlan: Option<u16>,
    ttl: u8,
    /// 0, 1: IPv4; 2: IPv6; 3: ARP.
    kind: u8,
}

#[derive(Debug, Clone)]
enum Op {
    Flow(FlowSpec),
    Delete(u8, u8),
    Packet(PktSpec),
    PortDown(u32),
}

/// Applies a table or port change to `p`; a packet is returned instead. A flow that
/// replaces an identical one starts its counters at zero (RESET_COUNTS: what a flow counts
/// is then what matched it since its add).
fn apply(p: &mut Pipeline, op: Op) -> Option<PktSpec> {
    match op {
        Op::Flow(f) => {
            let mut fm = build(&f);
            fm.flags |= fuxi_dataplane::pipeline::flags::RESET_COUNTS;
            let _ = p.flow_mod(&fm, 0);
        }
        Op::Delete(t, _) => {
            let _ = p.flow_mod(&FlowMod::delete(t, Match::all()), 0);
        }
        Op::PortDown(port) => p.set_port(port, PortState { live: false }),
        Op::Packet(s) => return Some(s),
    }
    None
}

fn flow_spec() -> impl Strategy<Value = FlowSpec> {
    (
        0u8..3,
        0u16..4,
        any::<u8>(),
        any::<[u8; 4]>(),
        prop::collection::vec(0u8..13, 0..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(table, prio, pieces, vals, acts, write, goto)| FlowSpec {
            table,
            prio,
            pieces,
            vals,
            acts,
            write,
            goto,
        })
}

fn pkt_spec() -> impl Strategy<Value = PktSpec> {
    (
        1u32..4,
        0u8..4,
        0u8..2,
        any::<bool>(),
        0u8..3,
        prop_oneof![Just(None), Just(Some(10u16)), Just(Some(20))],
        prop_oneof![Just(1u8), Just(2), Just(64)],
        0u8..4,
    )
        .prop_map(|(in_port, src, dst, tcp, dport, vlan, ttl, kind)| PktSpec {
            in_port,
            src,
            dst,
            tcp,
            dport,
            vlan,
            ttl,
            kind,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => flow_spec().prop_map(Op::Flow),
        1 => (0u8..3, any::<u8>()).prop_map(|(t, p)| Op::Delete(t, p)),
        6 => pkt_spec().prop_map(Op::Packet),
        1 => (2u32..4).prop_map(Op::PortDown),
    ]
}

const DPORTS: [u16; 3] = [53, 80, 443];

fn render(p: &PktSpec) -> Vec<u8> {
    render_l4(p, None)
}

/// As [`render`], with `l4` instead of the spec's TCP or UDP header if given.
fn render_l4(p: &PktSpec, l4: Option<L4>) -> Vec<u8> {
    let l4 = if let Some(l4) = l4 {
        l4
    } else if p.tcp {
        L4::Tcp {
            sp: 1234,
            dp: DPORTS[usize::from(p.dport)],
            flags: 2,
            opt_words: 0,
        }
    } else {
        L4::Udp {
            sp: 1234,
            dp: DPORTS[usize::from(p.dport)],
        }
    };
    // Source MACs 1..=4, destination MACs 1..=2: NORMAL learns sources that later
    // packets are sent to (and a packet may be sent to its own source).
    Frame {
        dst: [2, 0, 0, 0, 0, 1 + p.dst],
        src: [2, 0, 0, 0, 0, 1 + p.src],
        vlans: p.vlan.map(|v| (0x8100, v)).into_iter().collect(),
        l3: match p.kind {
            2 => {
                let mut src = [0u8; 16];
                src[0] = 0xfe;
                src[1] = 0x80;
                src[15] = p.src;
                let mut dst = src;
                dst[14] = 1;
                dst[15] = p.dst;
                L3::V6 {
                    tc: 0,
                    flabel: u32::from(p.src),
                    hlim: p.ttl,
                    src,
                    dst,
                    exts: vec![],
                    l4,
                }
            }
            3 => L3::Arp {
                op: 1,
                sha: [2, 0, 0, 0, 0, 1],
                spa: [10, 0, 0, p.src],
                tha: [0; 6],
                tpa: [10, 0, 1, p.dst],
            },
            _ => L3::V4 {
                tos: 0,
                ttl: p.ttl,
                frag: 0,
                opt_words: 0,
                src: [10, 0, 0, p.src],
                dst: [10, 0, 1, p.dst],
                l4,
            },
        },
    }
    .render()
}

fn build(f: &FlowSpec) -> FlowMod {
    let mut m = Match::all();
    let has = |b: u8| f.pieces & (1 << b) != 0;
    let ip = has(1) || has(2) || has(3) || has(4);
    let proto = has(2) || has(3);
    if has(0) {
        m = m.with(Oxm::in_port(1 + u32::from(f.vals[0] % 3)));
    }
    if ip {
        m = m.with(Oxm::eth_type(0x0800));
    }
    let tcp = f.vals[1].is_multiple_of(2);
    if proto {
        m = m.with(Oxm::ip_proto(if tcp { 6 } else { 17 }));
    }
    if has(3) {
        let fid = if tcp {
            FieldId::TcpDst
        } else {
            FieldId::UdpDst
        };
        m = m.with(Oxm::exact(
            fid,
            u128::from(DPORTS[usize::from(f.vals[2] % 3)]),
        ));
    }
    if has(4) {
        m = m.with(Oxm::masked(
            FieldId::Ipv4Src,
            0x0a00_0000 | u128::from(f.vals[3] % 4),
            0xffff_fffe,
        ));
    }
    if has(5) {
        m = m.with(match f.vals[0] % 3 {
            0 => Oxm::vlan_vid(0),
            1 => Oxm::masked(FieldId::VlanVid, 0x1000, 0x1000),
            _ => Oxm::vlan_vid(OFPVID_PRESENT | 10),
        });
    }
    if has(6) {
        m = m.with(Oxm::masked(FieldId::Metadata, u128::from(f.vals[1] % 2), 1));
    }
    let mut acts = Vec::new();
    let mut insts = Vec::new();
    for a in &f.acts {
        match a {
            0 => acts.push(Action::output(2)),
            1 => acts.push(Action::output(3)),
            2 => acts.push(Action::set_field(Oxm::exact(
                FieldId::EthDst,
                0x0200_0000_0009,
            ))),
            3 if ip => acts.push(Action::set_field(Oxm::exact(FieldId::Ipv4Dst, 0x0a00_0103))),
            4 => acts.push(Action::DecNwTtl),
            5 => acts.push(Action::PushVlan(0x8100)),
            6 => acts.push(Action::PopVlan),
            7 => {
                acts.push(Action::PushVlan(0x8100));
                acts.push(Action::set_field(Oxm::exact(FieldId::VlanVid, 0x1000 | 20)));
            }
            8 => acts.push(Action::Group(1)),
            9 => acts.push(Action::output(OFPP_CONTROLLER)),
            12 => acts.push(Action::output(OFPP_NORMAL)),
            10 => insts.push(Instruction::WriteMetadata {
                metadata: 1,
                mask: 1,
            }),
            11 if proto => {
                let fid = if tcp {
                    FieldId::TcpDst
                } else {
                    FieldId::UdpDst
                };
                acts.push(Action::set_field(Oxm::exact(fid, 8080)));
            }
            _ => {}
        }
    }
    if insts
        .iter()
        .filter(|i| matches!(i, Instruction::WriteMetadata { .. }))
        .count()
        > 1
    {
        insts.truncate(1);
    }
    insts.push(if f.write {
        Instruction::WriteActions(acts)
    } else {
        Instruction::ApplyActions(acts)
    });
    if f.goto && f.table < 2 {
        insts.push(Instruction::GotoTable(f.table + 1));
    }
    FlowMod::add(f.table, f.prio, m, insts)
}

fn pipeline() -> Pipeline {
    let mut p = Pipeline::new();
    for port in 1..=3 {
        p.set_port(port, PortState { live: true });
    }
    let gm = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::Select,
        group_id: 1,
        buckets: vec![
            Bucket::new(vec![Action::output(2)]),
            Bucket::new(vec![
                Action::set_field(Oxm::exact(FieldId::EthSrc, 7)),
                Action::output(3),
            ]),
        ],
    };
    p.group_mod(&gm, 0).unwrap();
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn cached_actions_equal_full_translation(ops in prop::collection::vec(op(), 1..80)) {
        let mut p = pipeline();
        let mut dp = Datapath::new();
        let mut pkts = Vec::new();
        for op in ops {
            match op {
                Op::Flow(f) => {
                    let _ = p.flow_mod(&build(&f), 0);
                }
                Op::Delete(t, prio) => {
                    let mut d = FlowMod::delete(t, Match::all());
                    if prio % 2 == 0 {
                        d.command = fuxi_dataplane::pipeline::FlowModCommand::DeleteStrict;
                        d.priority = u16::from(prio % 4);
                    }
                    let _ = p.flow_mod(&d, 0);
                }
                Op::PortDown(port) => p.set_port(port, PortState { live: false }),
                Op::Packet(s) => pkts.push((render(&s), s.in_port)),
            }
            // Every packet seen so far, again: exercises EMC and megaflow hits.
            for (i, (bytes, in_port)) in pkts.iter().enumerate() {
                let meta = RxMeta::port(*in_port);
                let key = parse(bytes, meta).key;
                let (mf, _) = dp.lookup(&p, &key, Some(bytes));
                let full = p.translate(&key, Some(bytes));
                prop_assert_eq!(&mf.actions, &full.actions, "packet {}", i);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The batched packet path (parse all, hash all, probe, run) sends exactly what the full
    /// translation's actions send, packet by packet in order, with a tiny exact-match cache
    /// (two 4-way buckets: evictions) whose signatures all collide (every probe compares
    /// keys) and that takes every megaflow hit; for packets of their own and for borrowed
    /// frames alike. And every flow counts the packets the full translations say matched
    /// it, through every revalidation (a kept megaflow credits the flows it went through).
    #[test]
    fn batched_processing_equals_full_translation(ops in prop::collection::vec(op(), 1..60)) {
        let mut p = pipeline();
        let mut dp = Datapath::with_emc_entries(8);
        dp.set_emc_insert_inv_prob(1);
        dp.set_emc_colliding_signatures();
        let mut pkts: Vec<(Vec<u8>, u32)> = Vec::new();
        // Each flow's counters (by address), and the packets it should have counted.
        let mut counted: HashMap<*const FlowStats, (Arc<FlowStats>, u64)> = HashMap::new();
        for op in ops {
            if let Some(s) = apply(&mut p, op) {
                pkts.push((render(&s), s.in_port));
            }
            for in_port in 1..4u32 {
                let mine: Vec<&Vec<u8>> =
                    pkts.iter().filter(|(_, i)| *i == in_port).map(|(b, _)| b).collect();
                if mine.is_empty() {
                    continue;
                }
                // Three times: the later rounds hit what the first installed; they take
                // the packets as borrowed frames (zero-copy receive: a packet that is
                // rewritten is copied first), the first as packets of their own.
                for round in 0..3 {
                    // The reference learns on a copy of the MAC table, packet by packet, as
                    // the datapath does on the real one.
                    let mut twin = p.clone();
                    twin.mac_table = Arc::new(p.mac_table.duplicate());
                    let mut want = Recorder::default();
                    for b in &mine {
                        let meta = RxMeta::port(in_port);
                        let full = twin.translate(&parse(b, meta).key, Some(b));
                        for f in &full.flows {
                            counted.entry(Arc::as_ptr(f)).or_insert((f.clone(), 0)).1 += 1;
                        }
                        execute(&full.actions, &mut b.to_vec(), meta, &p.meters, 0, &mut want);
                        twin.learn(&full, 0);
                    }
                    let mut got = Recorder::default();
                    if round == 0 {
                        let mut batch: Vec<Packet> =
                            mine.iter().map(|b| Packet::from_frame(b)).collect();
                        dp.process_batch(&p, in_port, &mut batch, 0, &mut got);
                    } else {
                        let mut batch: Vec<RxFrame> =
                            mine.iter().map(|b| RxFrame { data: b, ..RxFrame::default() }).collect();
                        dp.process_batch(&p, in_port, &mut batch, 0, &mut got);
                    }
                    prop_assert_eq!(twin.mac_table.entries(), p.mac_table.entries());
                    prop_assert_eq!(&got, &want);
                }
            }
            dp.sync_stats(&p);
            for (f, want) in counted.values() {
                prop_assert_eq!(f.packets.load(std::sync::atomic::Ordering::Relaxed), *want);
            }
        }
    }
}

#[test]
fn hit_paths_and_invalidation() {
    let mut p = pipeline();
    p.flow_mod(
        &FlowMod::add(
            0,
            1,
            Match::all().with(Oxm::eth_type(0x0800)),
            vec![Instruction::ApplyActions(vec![Action::output(2)])],
        ),
        0,
    )
    .unwrap();
    let mut dp = Datapath::new();
    // Every translation and megaflow hit goes into the exact-match cache (default: 1 in 100).
    dp.set_emc_insert_inv_prob(1);
    let mut rec = Recorder::default();
    let spec = |src| PktSpec {
        in_port: 1,
        src,
        dst: 0,
        tcp: true,
        dport: 1,
        vlan: None,
        ttl: 64,
        kind: 0,
    };
    let a = render(&spec(1));
    let b = render(&spec(2));
    assert_eq!(
        dp.process(&p, &mut a.clone(), RxMeta::port(1), 0, &mut rec),
        Source::SlowPath
    );
    assert_eq!(
        dp.process(&p, &mut a.clone(), RxMeta::port(1), 0, &mut rec),
        Source::Emc
    );
    // Another packet, same megaflow (only eth_type and in_port matter).
    assert_eq!(
        dp.process(&p, &mut b.clone(), RxMeta::port(1), 0, &mut rec),
        Source::Megaflow
    );
    assert_eq!(dp.megaflow_count(), 1);
    assert_eq!(rec.outputs.len(), 3);
    // Flow and table counters are credited on every path: a translated packet at once, the
    // hits at the next sync.
    let t = p.translate(&parse(&a, RxMeta::port(1)).key, None);
    assert_eq!(
        t.flows[0]
            .packets
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    dp.sync_stats(&p);
    dp.sync_stats(&p);
    assert_eq!(
        p.tables[0]
            .lookups
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        p.tables[0]
            .matched
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    assert_eq!(
        t.flows[0].bytes.load(std::sync::atomic::Ordering::Relaxed),
        3 * a.len() as u64
    );
    assert_eq!(
        t.flows[0]
            .packets
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
    let lookups = |p: &Pipeline| {
        p.tables[0]
            .lookups
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let packets = |t: &fuxi_dataplane::pipeline::Translation| {
        t.flows[0]
            .packets
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    // Flow-mods none of its packets could match (lower priority, a table they never reach)
    // keep the megaflow and its exact-match entry: counts go on.
    assert_eq!(
        dp.process(&p, &mut a.clone(), RxMeta::port(1), 0, &mut rec),
        Source::Emc
    );
    let udp = Match::all()
        .with(Oxm::eth_type(0x0800))
        .with(Oxm::ip_proto(17));
    p.flow_mod(&FlowMod::add(0, 0, udp, vec![]), 0).unwrap();
    let to3 = vec![Instruction::ApplyActions(vec![Action::output(3)])];
    p.flow_mod(&FlowMod::add(1, 9, Match::all(), to3.clone()), 0)
        .unwrap();
    assert_eq!(
        dp.process(&p, &mut a.clone(), RxMeta::port(1), 0, &mut rec),
        Source::Emc
    );
    let s = dp.stats;
    assert_eq!((s.revalidations, s.revalidated, s.flushes), (1, 1, 0));
    assert_eq!(rec.outputs.last().map(|o| o.0), Some(2));
    dp.sync_stats(&p);
    assert_eq!((packets(&t), lookups(&p)), (5, 5));
    // One of higher priority that its packets match takes them: the megaflow goes.
    let tcp = Match::all()
        .with(Oxm::eth_type(0x0800))
        .with(Oxm::ip_proto(6));
    p.flow_mod(&FlowMod::add(0, 5, tcp, to3), 0).unwrap();
    assert_eq!(
        dp.process(&p, &mut a.clone(), RxMeta::port(1), 0, &mut rec),
        Source::SlowPath
    );
    assert_eq!(rec.outputs.last().map(|o| o.0), Some(3));
    let s = dp.stats;
    assert_eq!((s.revalidations, s.revalidated, s.flushes), (2, 1, 0));
    dp.sync_stats(&p);
    assert_eq!((packets(&t), lookups(&p)), (5, 6));
    // A flow-mod drops it; counts not yet synced reach the tables at the revalidation.
    dp.process(&p, &mut a.clone(), RxMeta::port(1), 0, &mut rec);
    p.flow_mod(&FlowMod::delete(0, Match::all()), 0).unwrap();
    assert_eq!(
        dp.process(&p, &mut a.clone(), RxMeta::port(1), 0, &mut rec),
        Source::SlowPath
    );
    assert_eq!(rec.outputs.len(), 7);
    assert_eq!(dp.stats.revalidated, 1);
    // The revalidation synced the hit (7), the translation after it credited itself (8);
    // a sync counts nothing twice.
    assert_eq!(lookups(&p), 8);
    dp.sync_stats(&p);
    assert_eq!(lookups(&p), 8);
}

/// Rough speed check of the cached packet path (run with `--release --ignored --nocapture`).
#[test]
#[ignore]
fn cache_speed() {
    let mut p = pipeline();
    for i in 0..1000u32 {
        let m = Match::all()
            .with(Oxm::eth_type(0x0800))
            .with(Oxm::ipv4_src(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        p.flow_mod(
            &FlowMod::add(
                0,
                10,
                m,
                vec![Instruction::ApplyActions(vec![Action::output(2)])],
            ),
            0,
        )
        .unwrap();
    }
    let mut dp = Datapath::new();
    let pkts: Vec<Vec<u8>> = (0..4u8)
        .map(|s| {
            render(&PktSpec {
                in_port: 1,
                src: s,
                dst: 0,
                tcp: true,
                dport: 1,
                vlan: None,
                ttl: 64,
                kind: 0,
            })
        })
        .collect();
    struct Count(usize);
    impl fuxi_dataplane::pipeline::exec::Sink for Count {
        fn output(&mut self, _: u32, _: Option<u32>, _: u64, _: &[u8]) {
            self.0 += 1;
        }
        fn packet_in(
            &mut self,
            _: fuxi_dataplane::pipeline::PacketInReason,
            _: u16,
            _: u8,
            _: u64,
            _: &[u8],
        ) {
        }
    }
    let mut sink = Count(0);
    let n = 1_000_000;
    let t = std::time::Instant::now();
    for i in 0..n {
        let mut b = pkts[i % 4].clone();
        dp.process(&p, &mut b, RxMeta::port(1), i as u64, &mut sink);
    }
    eprintln!(
        "process (EMC hit, parse+lookup+output, incl. Vec clone): {:?}/packet, {:?}",
        t.elapsed() / n as u32,
        dp.stats
    );
    let keys: Vec<_> = pkts.iter().map(|b| parse(b, RxMeta::port(1)).key).collect();
    let t = std::time::Instant::now();
    for i in 0..n {
        std::hint::black_box(dp.lookup(&p, &keys[i % 4], None));
    }
    eprintln!("lookup (EMC hit): {:?}/packet", t.elapsed() / n as u32);
}

/// A logical switch as the controller compiles one (port security → L2 lookup → ACL →
/// output): the megaflows stay few because each depends only on what the tables consulted.
#[test]
fn logical_switch_megaflows_stay_coarse() {
    use fuxi_openflow::oxm::MacAddr;
    let mac = |n: u8| MacAddr([2, 0, 0, 0, 0, n]);
    let mut p = Pipeline::new();
    for port in 1..=3 {
        p.set_port(port, PortState { live: true });
    }
    let goto = |t| Instruction::GotoTable(t);
    let mut add = |t: u8, prio: u16, m: Match, insts: Vec<Instruction>| {
        p.flow_mod(&FlowMod::add(t, prio, m, insts), 0).unwrap();
    };
    // Table 0: port security (in_port + eth_src), everything else dropped.
    for port in 1..=3u32 {
        let m = Match::all()
            .with(Oxm::in_port(port))
            .with(Oxm::eth_src(mac(port as u8)));
        add(0, 100, m, vec![goto(1)]);
    }
    // Table 1: ACL — drop TCP to port 22, let the rest through.
    let ssh = Match::all()
        .with(Oxm::eth_type(0x0800))
        .with(Oxm::ip_proto(6))
        .with(Oxm::exact(FieldId::TcpDst, 22));
    add(1, 200, ssh, vec![]);
    add(1, 0, Match::all(), vec![goto(2)]);
    // Table 2: L2 lookup.
    for port in 1..=3u32 {
        let m = Match::all().with(Oxm::eth_dst(mac(port as u8)));
        add(
            2,
            100,
            m,
            vec![Instruction::ApplyActions(vec![Action::output(port)])],
        );
    }
    add(
        2,
        0,
        Match::all(),
        vec![Instruction::ApplyActions(vec![Action::output(
            fuxi_openflow::consts::OFPP_ALL,
        )])],
    );

    let frame = |src: u8, dst: u8, sport: u16, dport: u16| {
        Frame {
            dst: [2, 0, 0, 0, 0, dst],
            src: [2, 0, 0, 0, 0, src],
            vlans: vec![],
            l3: L3::V4 {
                tos: 0,
                ttl: 64,
                frag: 0,
                opt_words: 0,
                src: [10, 0, 0, src],
                dst: [10, 0, 0, dst],
                l4: L4::Tcp {
                    sp: sport,
                    dp: dport,
                    flags: 2,
                    opt_words: 0,
                },
            },
        }
        .render()
    };
    let mut dp = Datapath::new();
    let mut rec = Recorder::default();
    // 200 connections from port 1 to port 2 on port 80, different source ports.
    for sport in 0..200u16 {
        dp.process(
            &p,
            &mut frame(1, 2, 10000 + sport, 80),
            RxMeta::port(1),
            0,
            &mut rec,
        );
    }
    assert_eq!(rec.outputs.len(), 200);
    assert!(rec.outputs.iter().all(|o| o.0 == 2));
    assert_eq!(dp.megaflow_count(), 1, "source ports were never consulted");
    // SSH is dropped; a spoofed source MAC is dropped at table 0.
    rec.outputs.clear();
    dp.process(&p, &mut frame(1, 2, 1, 22), RxMeta::port(1), 0, &mut rec);
    dp.process(&p, &mut frame(9, 2, 1, 80), RxMeta::port(1), 0, &mut rec);
    assert!(rec.outputs.is_empty());
    // Unknown destination floods to the other live ports.
    dp.process(&p, &mut frame(1, 7, 1, 80), RxMeta::port(1), 0, &mut rec);
    assert_eq!(
        rec.outputs.iter().map(|o| o.0).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert_eq!(dp.megaflow_count(), 4);
    dp.sync_stats(&p);
    let r = std::sync::atomic::Ordering::Relaxed;
    assert_eq!(p.tables[0].lookups.load(r), 203);
    assert_eq!(p.tables[0].matched.load(r), 202);
}

/// A kernel flow table that keeps what it is offered (as the real one would put in the
/// kernel), for the datapath tests: key → (output port, tag, megaflow).
#[derive(Clone, Default)]
struct FakeKernel {
    entries: Arc<Mutex<KernelEntries>>,
    clears: Arc<Mutex<Vec<(u64, u64)>>>,
    /// Counts `harvest` and `clear` credit to every entry's megaflow.
    forwarded: (u64, u64),
}

type KernelEntries = HashMap<KernelKey, (u32, u64, Arc<Megaflow>)>;

impl KernelFlows for FakeKernel {
    fn offer(&mut self, key: &KernelKey, mf: &Arc<Megaflow>, out_port: u32, tag: u64) {
        let mut e = self.entries.lock().unwrap();
        e.entry(*key).or_insert((out_port, tag, mf.clone()));
    }
    fn commit(&mut self) {}
    fn harvest(&mut self, now: Nanos) {
        for (_, _, mf) in self.entries.lock().unwrap().values() {
            mf.credit(self.forwarded.0, self.forwarded.1, now);
        }
    }
    fn revalidate(&mut self, now: Nanos, p: &Pipeline, mac_version: u64, keep: Keep<'_>) {
        let generation = p.generation();
        self.harvest(now);
        let mut e = self.entries.lock().unwrap();
        e.retain(|_, (_, t, mf)| {
            *t = tag(generation, mac_version);
            keep(mf)
        });
        self.clears.lock().unwrap().push((generation, mac_version));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// What the datapath hands the kernel forwards as the full pipeline would: for every
    /// packet whose kernel key has a current entry (tag of the pipeline's generation and
    /// MAC table version), the full translation outputs it, unchanged, to that entry's port
    /// and nowhere else — also for another packet of the same microflow (other IP id, TCP
    /// flags).
    #[test]
    fn kernel_entries_forward_as_the_full_translation_would(
        ops in prop::collection::vec(op(), 1..80)
    ) {
        let mut p = pipeline();
        let mut dp = Datapath::new();
        let k = FakeKernel::default();
        dp.set_kernel(Box::new(k.clone()));
        let mut pkts: Vec<(Vec<u8>, u32)> = Vec::new();
        for op in ops {
            if let Some(s) = apply(&mut p, op) {
                let b = render(&s);
                let mut other = b.clone();
                if other.get(12..14) == Some(&[0x08, 0x00]) {
                    other[18] ^= 0x5a; // IP identification
                }
                let flags = if other.get(12..14) == Some(&[0x86, 0xdd]) { 67 } else { 47 };
                if s.tcp && s.vlan.is_none() && s.kind != 3 {
                    other[flags] ^= 0x18; // PSH, ACK
                }
                // One whose IP length field cuts its L4 header off: the parser sees no
                // ports, so it must not share the well-formed one's kernel entry.
                let mut cut = b.clone();
                match cut.get(12..14) {
                    Some([0x08, 0x00]) => cut[16..18].copy_from_slice(&[0, 20]),
                    Some([0x86, 0xdd]) => cut[18..20].copy_from_slice(&[0, 2]),
                    _ => {}
                }
                // Another connection of the same hosts (the next destination port): the
                // same megaflow until a flow reads the port.
                let next_port = render(&PktSpec { dport: (s.dport + 1) % 3, ..s.clone() });
                pkts.push((b, s.in_port));
                pkts.push((other, s.in_port));
                pkts.push((cut, s.in_port));
                pkts.push((next_port, s.in_port));
                // An ICMP echo of the same hosts, and another of its flow (id, sequence).
                let ty = if s.kind == 2 { 128 } else { 8 };
                let echo = render_l4(&s, Some(L4::Icmp { ty, code: 0 }));
                let mut next = echo.clone();
                if let Some(b) = next.last_mut() {
                    *b ^= 0x55;
                }
                pkts.push((echo, s.in_port));
                pkts.push((next, s.in_port));
            }
            // A change, before any datapath has seen it: what the control plane moves to
            // the new tag as it publishes forwards as the full translation does, through
            // the same flows (whose counters the entry's counts go to).
            // The many-entry check (one translation for entries it cannot tell apart) answers
            // as the one-entry check does.
            let entries = k.entries.lock().unwrap().clone();
            let mut check = ForwardCheck::new(&p);
            for (i, (bytes, in_port)) in pkts.iter().enumerate() {
                let Some(key) = kernel_key(*in_port, bytes) else { continue };
                let Some((out, _, mf)) = entries.get(&key) else { continue };
                let fresh = still_forwards(&p, &key, mf, *out);
                prop_assert_eq!(check.check(&key, mf, *out), fresh, "packet {}", i);
                if !fresh {
                    continue;
                }
                let full = p.translate(&parse(bytes, RxMeta::port(*in_port)).key, Some(bytes));
                prop_assert_eq!(&full.actions[..], &[DpAction::Output(*out)], "packet {}", i);
                let same = full.flows.len() == mf.flows.len()
                    && full.flows.iter().zip(mf.flows.iter()).all(|(a, b)| Arc::ptr_eq(a, b));
                prop_assert!(same, "packet {}: other flows", i);
            }
            for (bytes, in_port) in &pkts {
                let mut rec = Recorder::default();
                dp.process(&p, &mut bytes.clone(), RxMeta::port(*in_port), 0, &mut rec);
            }
            let current = tag(p.generation(), p.mac_table.version());
            let entries = k.entries.lock().unwrap();
            for (i, (bytes, in_port)) in pkts.iter().enumerate() {
                let Some(key) = kernel_key(*in_port, bytes) else { continue };
                let Some((out, t, _)) = entries.get(&key) else { continue };
                if *t != current {
                    continue;
                }
                let full = p.translate(&parse(bytes, RxMeta::port(*in_port)).key, Some(bytes));
                prop_assert_eq!(&full.actions[..], &[DpAction::Output(*out)], "packet {}", i);
            }
        }
    }
}

/// The test pipeline plus one flow: IPv4 from port 1 goes out of port 2 (priority 1).
fn ipv4_1_to_2() -> Pipeline {
    let mut p = pipeline();
    let fwd = Match::all()
        .with(Oxm::in_port(1))
        .with(Oxm::eth_type(0x0800));
    let out2 = vec![Instruction::ApplyActions(vec![Action::output(2)])];
    p.flow_mod(&FlowMod::add(0, 1, fwd, out2), 0).unwrap();
    p
}

/// A packet from host 1 on port 1 to host 0, TCP or UDP to `DPORTS[dport]`.
fn from_host_1(dport: u8, tcp: bool) -> PktSpec {
    PktSpec {
        in_port: 1,
        src: 1,
        dst: 0,
        tcp,
        dport,
        vlan: None,
        ttl: 64,
        kind: 0,
    }
}

#[test]
fn kernel_flow_table_takes_forwarding_microflows_and_goes_with_the_caches() {
    let mut p = ipv4_1_to_2();
    // Port 443 gets its destination MAC rewritten: not for the kernel.
    let rewrite = Match::all()
        .with(Oxm::in_port(1))
        .with(Oxm::eth_type(0x0800))
        .with(Oxm::ip_proto(6))
        .with(Oxm::exact(FieldId::TcpDst, 443));
    let set = Action::set_field(Oxm::exact(FieldId::EthDst, 9));
    p.flow_mod(
        &FlowMod::add(
            0,
            2,
            rewrite,
            vec![Instruction::ApplyActions(vec![set, Action::output(2)])],
        ),
        0,
    )
    .unwrap();
    let mut dp = Datapath::new();
    let k = FakeKernel {
        forwarded: (10, 15_000),
        ..FakeKernel::default()
    };
    dp.set_kernel(Box::new(k.clone()));
    let web = render(&from_host_1(1, true));
    let https = render(&from_host_1(2, true));
    let dns = render(&from_host_1(0, false));
    let mut rec = Recorder::default();
    for f in [&web, &https, &dns, &web] {
        dp.process(&p, &mut f.clone(), RxMeta::port(1), 5, &mut rec);
    }
    let current = tag(p.generation(), p.mac_table.version());
    {
        let e = k.entries.lock().unwrap();
        let mut got: Vec<(u32, u64)> = e.values().map(|(o, t, _)| (*o, *t)).collect();
        got.sort();
        // Port 80 over TCP and port 53 over UDP forward; the rewritten one stays here.
        assert_eq!(got, [(2, current), (2, current)]);
        assert!(e.contains_key(&kernel_key(1, &web).unwrap()));
        assert!(e.contains_key(&kernel_key(1, &dns).unwrap()));
    }
    // What the kernel forwarded reaches the flow counters through the megaflows.
    let flow = |key| p.translate(&parse(key, RxMeta::port(1)).key, None).flows[0].clone();
    let (web_flow, https_flow) = (flow(&web), flow(&https));
    let packets = |f: &Arc<FlowStats>| f.packets.load(std::sync::atomic::Ordering::Relaxed);
    dp.harvest_kernel(1_000);
    dp.sync_stats(&p);
    // 3 packets here (web twice, dns) + 10 per entry from the kernel (web and dns).
    assert_eq!(packets(&web_flow), 3 + 20);
    assert_eq!(packets(&https_flow), 1);
    // A flow-mod that touches none of them: the next packet revalidates the caches, and the
    // kernel keeps both entries (credited first), under the new generation's tag.
    p.flow_mod(&FlowMod::delete(0, Match::all().with(Oxm::in_port(3))), 0)
        .unwrap();
    dp.process(&p, &mut https.clone(), RxMeta::port(1), 9, &mut rec);
    let current = (p.generation(), p.mac_table.version());
    assert_eq!(*k.clears.lock().unwrap(), [current]);
    let tags = |k: &FakeKernel| {
        let e = k.entries.lock().unwrap();
        e.values().map(|(_, t, _)| *t).collect::<Vec<u64>>()
    };
    assert_eq!(tags(&k), [tag(current.0, current.1); 2]);
    assert_eq!(packets(&web_flow), 3 + 20);
    dp.sync_stats(&p);
    assert_eq!(packets(&web_flow), 3 + 40);
    // One that takes the forwarding flow away: both entries go.
    p.flow_mod(&FlowMod::delete(0, Match::all().with(Oxm::in_port(1))), 0)
        .unwrap();
    dp.process(&p, &mut https.clone(), RxMeta::port(1), 9, &mut rec);
    assert_eq!(k.clears.lock().unwrap().len(), 2);
    assert!(k.entries.lock().unwrap().is_empty());
    assert_eq!(dp.megaflow_count(), 1);
}

/// A control plane checking many kernel entries at a change ([`ForwardCheck`]) shares the
/// translation among the connections of one megaflow the new pipeline does not tell apart
/// (two: the first entry's answer is not kept), and
/// answers as [`still_forwards`] does for each, also for those a change does split.
#[test]
fn forward_check_shares_translations_among_microflows_the_change_does_not_split() {
    let mut p = ipv4_1_to_2();
    let mut dp = Datapath::new();
    let k = FakeKernel::default();
    dp.set_kernel(Box::new(k.clone()));
    let web = render(&from_host_1(1, true));
    // 100 connections: TCP source ports 1000..1100 (bytes 34..36 of an untagged frame).
    let frames: Vec<Vec<u8>> = (1000u16..1100)
        .map(|sp| {
            let mut f = web.clone();
            f[34..36].copy_from_slice(&sp.to_be_bytes());
            f
        })
        .collect();
    let mut rec = Recorder::default();
    for f in &frames {
        dp.process(&p, &mut f.clone(), RxMeta::port(1), 5, &mut rec);
    }
    assert_eq!(dp.megaflow_count(), 1);
    let entries = k.entries.lock().unwrap().clone();
    assert_eq!(entries.len(), 100);
    let check_all = |p: &Pipeline, want: &dyn Fn(u16) -> bool| {
        let mut fc = ForwardCheck::new(p);
        for f in &frames {
            let key = kernel_key(1, f).unwrap();
            let (out, _, mf) = &entries[&key];
            let sp = u16::from_be_bytes([f[34], f[35]]);
            assert_eq!(fc.check(&key, mf, *out), want(sp), "source port {sp}");
            assert_eq!(
                still_forwards(p, &key, mf, *out),
                want(sp),
                "source port {sp}"
            );
        }
        fc.translations()
    };
    // A change elsewhere: every entry still forwards, for two translations.
    let other = Match::all().with(Oxm::in_port(3));
    p.flow_mod(&FlowMod::add(0, 5, other, vec![]), 0).unwrap();
    assert_eq!(check_all(&p, &|_| true), 2);
    // One that drops source port 1005: that connection's entry no longer forwards.
    let drop_1005 = Match::all()
        .with(Oxm::in_port(1))
        .with(Oxm::eth_type(0x0800))
        .with(Oxm::ip_proto(6))
        .with(Oxm::exact(FieldId::TcpSrc, 1005));
    p.flow_mod(&FlowMod::add(0, 9, drop_1005, vec![]), 0)
        .unwrap();
    let n = check_all(&p, &|sp| sp != 1005);
    assert!((3..=100).contains(&n), "{n} translations");
    // The flows deleted and the forwarding one added again: same actions, other counters.
    let fwd = Match::all()
        .with(Oxm::in_port(1))
        .with(Oxm::eth_type(0x0800));
    p.flow_mod(&FlowMod::delete(0, fwd.clone()), 0).unwrap();
    let out2 = vec![Instruction::ApplyActions(vec![Action::output(2)])];
    p.flow_mod(&FlowMod::add(0, 1, fwd, out2), 0).unwrap();
    check_all(&p, &|_| false);
}

/// NORMAL: a MAC learned from a new host revalidates the caches, and the megaflows of the
/// hosts it does not touch stay (their source still where they learned it, their
/// destination still where it was).
#[test]
fn a_new_mac_keeps_the_normal_megaflows_it_does_not_touch() {
    let mut p = pipeline();
    let normal = vec![Instruction::ApplyActions(vec![Action::output(OFPP_NORMAL)])];
    p.flow_mod(&FlowMod::add(0, 0, Match::all(), normal), 0)
        .unwrap();
    let mut dp = Datapath::new();
    let spec = |in_port, src, dst| PktSpec {
        in_port,
        src,
        dst,
        tcp: false,
        dport: 0,
        vlan: None,
        ttl: 64,
        kind: 0,
    };
    let mut rec = Recorder::default();
    let mut send = |dp: &mut Datapath, s: PktSpec| {
        dp.process(&p, &mut render(&s), RxMeta::port(s.in_port), 0, &mut rec)
    };
    // MAC 2 on port 2 makes itself known; MAC 1 on port 1 sends to it, twice.
    send(&mut dp, spec(2, 1, 0));
    assert_eq!(send(&mut dp, spec(1, 0, 1)), Source::SlowPath);
    assert_eq!(send(&mut dp, spec(1, 0, 1)), Source::Megaflow);
    let before = dp.stats;
    // MAC 3 appears on port 3.
    assert_eq!(send(&mut dp, spec(3, 2, 1)), Source::SlowPath);
    assert_eq!(dp.stats.revalidations, before.revalidations + 1);
    assert_eq!(send(&mut dp, spec(1, 0, 1)), Source::Megaflow);
    assert_eq!(
        rec.outputs.iter().map(|o| o.0).collect::<Vec<_>>(),
        [1, 3, 2, 2, 2, 2]
    );
}
