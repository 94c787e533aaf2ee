//! Pipeline tests against the OpenFlow 1.3 spec's wording: tables and goto, instructions and
//! the action set, actions on bytes (with checksums), groups, meters, flow-mod semantics and
//! timeouts.

use fuxi_dataplane::packet::{Field, Layers, RxMeta, parse};
use fuxi_dataplane::pipeline::exec::{Recorder, execute};
use fuxi_dataplane::pipeline::meter::mflags;
use fuxi_dataplane::pipeline::{
    Band, Bucket, Config, DpAction, FlowMod, FlowModCommand, GroupMod, GroupModCommand, GroupType,
    MeterConfig, MeterMod, MeterModCommand, PacketInReason, Pipeline, PortState, RemovedReason,
    flags,
};
use fuxi_openflow::consts::{OFPG_ALL, OFPP_ALL, OFPP_CONTROLLER, OFPP_IN_PORT, OFPTT_ALL};
use fuxi_openflow::oxm::{FieldId, OFPVID_PRESENT};
use fuxi_openflow::{Action, ErrorCode, Instruction, Match, Oxm};

use crate::parse::{Frame, L3, L4};

const SEC: u64 = 1_000_000_000;

pub fn udp_frame(src: [u8; 4], dst: [u8; 4], ttl: u8) -> Vec<u8> {
    Frame {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        vlans: vec![],
        l3: L3::V4 {
            tos: 0,
            ttl,
            frag: 0,
            opt_words: 0,
            src,
            dst,
            l4: L4::Udp { sp: 1000, dp: 53 },
        },
    }
    .render()
}

pub fn tcp_frame() -> Vec<u8> {
    let mut b = Frame {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        vlans: vec![],
        l3: L3::V4 {
            tos: 0,
            ttl: 64,
            frag: 0,
            opt_words: 0,
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            l4: L4::Tcp {
                sp: 40000,
                dp: 80,
                flags: 0x18,
                opt_words: 1,
            },
        },
    }
    .render();
    fill_checksums(&mut b);
    b
}

fn sum16(data: &[u8], init: u32) -> u32 {
    let mut s = init;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Computes valid IPv4 and TCP/UDP checksums in place (IPv4 only).
pub fn fill_checksums(b: &mut [u8]) {
    let p = parse(b, RxMeta::port(1));
    let l3 = usize::from(p.layout.l3);
    let ihl = usize::from(b[l3] & 15) * 4;
    b[l3 + 10..l3 + 12].fill(0);
    let c = !fold(sum16(&b[l3..l3 + ihl], 0));
    b[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    if p.layout.layers.has(Layers::TCP) || p.layout.layers.has(Layers::UDP) {
        let l4 = usize::from(p.layout.l4);
        let at = if p.layout.layers.has(Layers::TCP) {
            l4 + 16
        } else {
            l4 + 6
        };
        b[at..at + 2].fill(0);
        let c = !fold(l4_sum(b, l3, l4));
        b[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

fn l4_sum(b: &[u8], l3: usize, l4: usize) -> u32 {
    let total = usize::from(u16::from_be_bytes([b[l3 + 2], b[l3 + 3]]));
    let end = l3 + total;
    let mut pseudo = Vec::new();
    pseudo.extend(&b[l3 + 12..l3 + 20]);
    pseudo.extend([0, b[l3 + 9]]);
    pseudo.extend(((end - l4) as u16).to_be_bytes());
    sum16(&b[l4..end], sum16(&pseudo, 0))
}

/// Whether the IPv4 header and TCP/UDP checksums verify.
pub fn checksums_ok(b: &[u8]) -> bool {
    let p = parse(b, RxMeta::port(1));
    let l3 = usize::from(p.layout.l3);
    let ihl = usize::from(b[l3] & 15) * 4;
    if fold(sum16(&b[l3..l3 + ihl], 0)) != 0xffff {
        return false;
    }
    if p.layout.layers.has(Layers::TCP) || p.layout.layers.has(Layers::UDP) {
        let l4 = usize::from(p.layout.l4);
        if p.layout.layers.has(Layers::UDP) && b[l4 + 6..l4 + 8] == [0, 0] {
            return true;
        }
        return fold(l4_sum(b, l3, l4)) == 0xffff;
    }
    true
}

fn apply(acts: Vec<Action>) -> Vec<Instruction> {
    vec![Instruction::ApplyActions(acts)]
}

fn out(port: u32) -> Action {
    Action::output(port)
}

fn ip() -> Match {
    Match::all().with(Oxm::eth_type(0x0800))
}

fn run(p: &mut Pipeline, pkt: &[u8], in_port: u32) -> Recorder {
    let key = parse(pkt, RxMeta::port(in_port)).key;
    let t = p.translate(&key, Some(pkt));
    let mut rec = Recorder::default();
    let mut bytes = pkt.to_vec();
    execute(
        &t.actions,
        &mut bytes,
        RxMeta::port(in_port),
        &p.meters,
        0,
        &mut rec,
    );
    rec
}

fn ports(rec: &Recorder) -> Vec<u32> {
    rec.outputs.iter().map(|o| o.0).collect()
}

fn add(p: &mut Pipeline, fm: FlowMod) {
    p.flow_mod(&fm, 0).expect("flow mod");
}

#[test]
fn table_miss_drops_and_table_miss_flow_sends_no_match() {
    let mut p = Pipeline::new();
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    assert!(
        p.translate(&parse(&pkt, RxMeta::port(1)).key, None)
            .actions
            .is_empty()
    );
    add(
        &mut p,
        FlowMod::add(0, 0, Match::all(), apply(vec![out(OFPP_CONTROLLER)])),
    );
    let rec = run(&mut p, &pkt, 1);
    assert_eq!(rec.packet_ins.len(), 1);
    assert_eq!(rec.packet_ins[0].0, PacketInReason::NoMatch);
    // A priority-0 flow that matches something is not a table-miss flow.
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(0, 0, ip(), apply(vec![out(OFPP_CONTROLLER)])),
    );
    assert_eq!(run(&mut p, &pkt, 1).packet_ins[0].0, PacketInReason::Action);
}

#[test]
fn priority_and_in_port() {
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(
            0,
            10,
            Match::all().with(Oxm::in_port(1)),
            apply(vec![out(2)]),
        ),
    );
    add(
        &mut p,
        FlowMod::add(
            0,
            20,
            Match::all()
                .with(Oxm::in_port(1))
                .with(Oxm::eth_type(0x0800)),
            apply(vec![out(3)]),
        ),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    assert_eq!(ports(&run(&mut p, &pkt, 1)), vec![3]);
    assert_eq!(ports(&run(&mut p, &pkt, 5)), Vec::<u32>::new());
    // Output to the in_port is suppressed unless IN_PORT is used.
    add(
        &mut p,
        FlowMod::add(
            0,
            30,
            Match::all().with(Oxm::in_port(7)),
            apply(vec![out(7), out(OFPP_IN_PORT)]),
        ),
    );
    assert_eq!(ports(&run(&mut p, &pkt, 7)), vec![7]);
}

#[test]
fn instructions_run_in_spec_order_and_action_set_at_the_end() {
    let mut p = Pipeline::new();
    // Table 0: write output:2 and a set-field, then apply a set-field, write metadata,
    // goto 1 — listed in reverse of the execution order on purpose.
    add(
        &mut p,
        FlowMod::add(
            0,
            1,
            ip(),
            vec![
                Instruction::GotoTable(1),
                Instruction::WriteMetadata {
                    metadata: 0xab,
                    mask: 0xff,
                },
                Instruction::WriteActions(vec![
                    out(2),
                    Action::set_field(Oxm::exact(FieldId::Ipv4Dst, 0x0a00_0063)),
                ]),
                Instruction::ApplyActions(vec![Action::set_field(Oxm::exact(
                    FieldId::EthDst,
                    0x0200_0000_00ff,
                ))]),
            ],
        ),
    );
    // Table 1 sees the rewritten eth_dst and the metadata.
    let m1 = Match::all()
        .with(Oxm::exact(FieldId::Metadata, 0xab))
        .with(Oxm::exact(FieldId::EthDst, 0x0200_0000_00ff));
    add(
        &mut p,
        FlowMod::add(
            1,
            1,
            m1,
            vec![Instruction::WriteActions(vec![Action::DecNwTtl])],
        ),
    );
    let mut pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    fill_checksums(&mut pkt);
    let rec = run(&mut p, &pkt, 1);
    assert_eq!(ports(&rec), vec![2]);
    let o = parse(&rec.outputs[0].3, RxMeta::port(1)).key;
    assert_eq!(o.get(Field::EthDst), 0x0200_0000_00ff);
    assert_eq!(o.get(Field::Ipv4Dst), 0x0a00_0063);
    assert_eq!(o.get(Field::NwTtl), 63);
    assert!(checksums_ok(&rec.outputs[0].3));
}

#[test]
fn clear_actions_empties_the_set() {
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(
            0,
            1,
            ip(),
            vec![
                Instruction::WriteActions(vec![out(2)]),
                Instruction::GotoTable(3),
            ],
        ),
    );
    add(
        &mut p,
        FlowMod::add(
            3,
            1,
            ip(),
            vec![
                Instruction::ClearActions,
                Instruction::WriteActions(vec![out(4)]),
            ],
        ),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    assert_eq!(ports(&run(&mut p, &pkt, 1)), vec![4]);
}

#[test]
fn action_set_group_wins_over_output() {
    let mut p = Pipeline::new();
    let gm = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::Indirect,
        group_id: 1,
        buckets: vec![Bucket::new(vec![out(9)])],
    };
    p.group_mod(&gm, 0).unwrap();
    add(
        &mut p,
        FlowMod::add(
            0,
            1,
            ip(),
            vec![Instruction::WriteActions(vec![out(2), Action::Group(1)])],
        ),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    assert_eq!(ports(&run(&mut p, &pkt, 1)), vec![9]);
}

#[test]
fn set_field_rewrites_with_valid_checksums() {
    let mut p = Pipeline::new();
    let m = ip().with(Oxm::ip_proto(6));
    let acts = vec![
        Action::set_field(Oxm::exact(FieldId::Ipv4Src, 0xc0a8_0101)),
        Action::set_field(Oxm::exact(FieldId::TcpDst, 8080)),
        Action::set_field(Oxm::exact(FieldId::IpDscp, 46)),
        out(2),
    ];
    add(&mut p, FlowMod::add(0, 1, m, apply(acts)));
    let pkt = tcp_frame();
    assert!(checksums_ok(&pkt));
    let rec = run(&mut p, &pkt, 1);
    let b = &rec.outputs[0].3;
    let k = parse(b, RxMeta::port(1)).key;
    assert_eq!(k.get(Field::Ipv4Src), 0xc0a8_0101);
    assert_eq!(k.get(Field::TcpDst), 8080);
    assert_eq!(k.get(Field::IpDscp), 46);
    assert!(checksums_ok(b));
}

#[test]
fn set_field_without_its_header_is_rejected_or_skipped() {
    let mut p = Pipeline::new();
    // The match does not guarantee TCP: OFPBAC_MATCH_INCONSISTENT.
    let fm = FlowMod::add(
        0,
        1,
        ip(),
        apply(vec![Action::set_field(Oxm::exact(FieldId::TcpDst, 1))]),
    );
    assert_eq!(
        p.flow_mod(&fm, 0),
        Err(ErrorCode::BAD_ACTION_MATCH_INCONSISTENT)
    );
    assert_eq!(p.flow_count(0), 0);
}

#[test]
fn dec_ttl_invalid_drops_or_goes_to_controller() {
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(0, 1, ip(), apply(vec![Action::DecNwTtl, out(2)])),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 1);
    let rec = run(&mut p, &pkt, 1);
    assert!(rec.outputs.is_empty() && rec.packet_ins.is_empty());
    p.set_config(Config {
        invalid_ttl_to_controller: true,
    });
    let rec = run(&mut p, &pkt, 1);
    assert!(rec.outputs.is_empty());
    assert_eq!(rec.packet_ins[0].0, PacketInReason::InvalidTtl);
    let ok = run(&mut p, &udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 2), 1);
    assert_eq!(
        parse(&ok.outputs[0].3, RxMeta::port(1))
            .key
            .get(Field::NwTtl),
        1
    );
}

#[test]
fn push_set_pop_vlan() {
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(
            0,
            1,
            Match::all().with(Oxm::in_port(1)),
            apply(vec![
                Action::PushVlan(0x8100),
                Action::set_field(Oxm::exact(
                    FieldId::VlanVid,
                    u128::from(OFPVID_PRESENT | 42),
                )),
                out(2),
                Action::PushVlan(0x88a8),
                Action::set_field(Oxm::exact(FieldId::VlanVid, u128::from(OFPVID_PRESENT | 7))),
                out(3),
                Action::PopVlan,
                out(4),
            ]),
        ),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let rec = run(&mut p, &pkt, 1);
    let k2 = parse(&rec.outputs[0].3, RxMeta::port(1));
    assert_eq!(k2.key.get(Field::VlanVid), 0x1000 | 42);
    assert_eq!(k2.key.get(Field::EthType), 0x0800);
    assert_eq!(rec.outputs[0].3.len(), pkt.len() + 4);
    let k3 = parse(&rec.outputs[1].3, RxMeta::port(1));
    assert_eq!(&rec.outputs[1].3[12..14], &[0x88, 0xa8]);
    assert_eq!(k3.key.get(Field::VlanVid), 0x1000 | 7);
    assert!(k3.layout.layers.has(Layers::QINQ));
    let k4 = parse(&rec.outputs[2].3, RxMeta::port(1));
    assert_eq!(k4.key.get(Field::VlanVid), 0x1000 | 42);
    // The translation's key agrees with what the bytes say.
    let t = p.translate(&parse(&pkt, RxMeta::port(1)).key, None);
    assert_eq!(t.final_key.get(Field::VlanVid), 0x1000 | 42);
}

#[test]
fn vlan_match_then_pop_exposes_inner_tag_to_next_table() {
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(
            0,
            1,
            Match::all().with(Oxm::vlan_vid(OFPVID_PRESENT | 100)),
            vec![
                Instruction::ApplyActions(vec![Action::PopVlan]),
                Instruction::GotoTable(1),
            ],
        ),
    );
    add(
        &mut p,
        FlowMod::add(
            1,
            1,
            Match::all().with(Oxm::vlan_vid(OFPVID_PRESENT | 200)),
            apply(vec![out(5)]),
        ),
    );
    let pkt = Frame {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        vlans: vec![(0x88a8, 100), (0x8100, 200)],
        l3: L3::Other {
            ethertype: 0x0800,
            payload: vec![],
        },
    }
    .render();
    let rec = run(&mut p, &pkt, 1);
    assert_eq!(ports(&rec), vec![5]);
    assert_eq!(
        parse(&rec.outputs[0].3, RxMeta::port(1))
            .key
            .get(Field::VlanVid),
        0x1000 | 200
    );
}

#[test]
fn push_and_pop_mpls() {
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(
            0,
            1,
            ip(),
            apply(vec![
                Action::PushMpls(0x8847),
                Action::set_field(Oxm::exact(FieldId::MplsLabel, 1234)),
                out(2),
            ]),
        ),
    );
    let mpls_m = Match::all()
        .with(Oxm::eth_type(0x8847))
        .with(Oxm::exact(FieldId::MplsLabel, 1234));
    add(
        &mut p,
        FlowMod::add(
            0,
            2,
            mpls_m,
            vec![
                Instruction::ApplyActions(vec![Action::PopMpls(0x0800)]),
                Instruction::GotoTable(1),
            ],
        ),
    );
    add(
        &mut p,
        FlowMod::add(
            1,
            1,
            ip().with(Oxm::ipv4_dst([10, 0, 0, 2].into())),
            apply(vec![out(3)]),
        ),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let rec = run(&mut p, &pkt, 1);
    let labelled = rec.outputs[0].3.clone();
    let k = parse(&labelled, RxMeta::port(1)).key;
    assert_eq!(k.get(Field::EthType), 0x8847);
    assert_eq!(k.get(Field::MplsLabel), 1234);
    assert_eq!(k.get(Field::MplsBos), 1);
    assert_eq!(k.get(Field::MplsTtl), 64, "TTL copied from IP");
    // Back in: pop exposes the IPv4 header to table 1.
    let rec = run(&mut p, &labelled, 1);
    assert_eq!(ports(&rec), vec![3]);
    assert_eq!(rec.outputs[0].3, pkt);
    let t = p.translate(&parse(&labelled, RxMeta::port(1)).key, Some(&labelled));
    assert!(!t.cacheable);
}

fn group(p: &mut Pipeline, id: u32, t: GroupType, buckets: Vec<Bucket>) -> Result<(), ErrorCode> {
    p.group_mod(
        &GroupMod {
            command: GroupModCommand::Add,
            group_type: t,
            group_id: id,
            buckets,
        },
        0,
    )
    .map(|_| ())
}

#[test]
fn group_all_copies_per_bucket() {
    let mut p = Pipeline::new();
    let b1 = Bucket::new(vec![
        Action::set_field(Oxm::exact(FieldId::EthDst, 0x11)),
        out(2),
    ]);
    let b2 = Bucket::new(vec![out(3)]);
    group(&mut p, 1, GroupType::All, vec![b1, b2]).unwrap();
    add(
        &mut p,
        FlowMod::add(0, 1, Match::all(), apply(vec![Action::Group(1), out(4)])),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let rec = run(&mut p, &pkt, 1);
    assert_eq!(ports(&rec), vec![2, 3, 4]);
    assert_eq!(
        parse(&rec.outputs[0].3, RxMeta::port(1))
            .key
            .get(Field::EthDst),
        0x11
    );
    // Bucket edits do not leak into the other bucket or the rest of the list.
    assert_eq!(rec.outputs[1].3, pkt);
    assert_eq!(rec.outputs[2].3, pkt);
}

#[test]
fn group_select_is_deterministic_and_weighted() {
    let mut p = Pipeline::new();
    let mut b0 = Bucket::new(vec![out(2)]);
    b0.weight = 0;
    let b1 = Bucket::new(vec![out(3)]);
    let b2 = Bucket::new(vec![out(4)]);
    group(&mut p, 1, GroupType::Select, vec![b0, b1, b2]).unwrap();
    add(
        &mut p,
        FlowMod::add(0, 1, Match::all(), apply(vec![Action::Group(1)])),
    );
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..64u8 {
        let pkt = udp_frame([10, 0, 0, i], [10, 0, 0, 2], 64);
        let a = ports(&run(&mut p, &pkt, 1));
        assert_eq!(a, ports(&run(&mut p, &pkt, 1)));
        assert_eq!(a.len(), 1);
        seen.insert(a[0]);
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![3, 4],
        "weight 0 never chosen"
    );
}

#[test]
fn group_fast_failover_follows_liveness() {
    let mut p = Pipeline::new();
    p.set_port(2, PortState { live: true });
    p.set_port(3, PortState { live: true });
    let mut b1 = Bucket::new(vec![out(2)]);
    b1.watch_port = 2;
    let mut b2 = Bucket::new(vec![out(3)]);
    b2.watch_port = 3;
    group(&mut p, 1, GroupType::FastFailover, vec![b1, b2]).unwrap();
    add(
        &mut p,
        FlowMod::add(0, 1, Match::all(), apply(vec![Action::Group(1)])),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    assert_eq!(ports(&run(&mut p, &pkt, 1)), vec![2]);
    p.set_port(2, PortState { live: false });
    assert_eq!(ports(&run(&mut p, &pkt, 1)), vec![3]);
    p.set_port(3, PortState { live: false });
    assert!(ports(&run(&mut p, &pkt, 1)).is_empty());
}

#[test]
fn group_mod_errors_and_delete_removes_flows() {
    let mut p = Pipeline::new();
    group(
        &mut p,
        1,
        GroupType::Indirect,
        vec![Bucket::new(vec![out(2)])],
    )
    .unwrap();
    assert_eq!(
        group(
            &mut p,
            1,
            GroupType::Indirect,
            vec![Bucket::new(vec![out(2)])]
        ),
        Err(ErrorCode::GROUP_MOD_GROUP_EXISTS)
    );
    assert_eq!(
        group(&mut p, 2, GroupType::Indirect, vec![]),
        Err(ErrorCode::GROUP_MOD_BAD_BUCKET)
    );
    assert_eq!(
        group(
            &mut p,
            3,
            GroupType::All,
            vec![Bucket::new(vec![Action::Group(99)])]
        ),
        Err(ErrorCode::BAD_ACTION_BAD_OUT_GROUP)
    );
    // Buckets have no match: a set-field needs no prerequisite there.
    let rewrite = Action::set_field(Oxm::exact(FieldId::Ipv4Dst, 1));
    group(&mut p, 5, GroupType::All, vec![Bucket::new(vec![rewrite])]).unwrap();
    // Chain 4 → 1 is fine; making 1 point at 4 would loop.
    group(
        &mut p,
        4,
        GroupType::All,
        vec![Bucket::new(vec![Action::Group(1)])],
    )
    .unwrap();
    let modify = GroupMod {
        command: GroupModCommand::Modify,
        group_type: GroupType::Indirect,
        group_id: 1,
        buckets: vec![Bucket::new(vec![Action::Group(4)])],
    };
    assert_eq!(p.group_mod(&modify, 0), Err(ErrorCode::GROUP_MOD_LOOP));
    let fm = FlowMod::add(0, 1, Match::all(), apply(vec![Action::Group(7)]));
    assert_eq!(p.flow_mod(&fm, 0), Err(ErrorCode::BAD_ACTION_BAD_OUT_GROUP));
    let mut fm = FlowMod::add(0, 1, Match::all(), apply(vec![Action::Group(1)]));
    fm.flags = flags::SEND_FLOW_REM;
    add(&mut p, fm);
    let del = GroupMod {
        command: GroupModCommand::Delete,
        group_type: GroupType::All,
        group_id: OFPG_ALL,
        buckets: vec![],
    };
    let removed = p.group_mod(&del, 5).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, RemovedReason::GroupDelete);
    assert_eq!(p.flow_count(0), 0);
    assert!(p.groups.is_empty());
}

#[test]
fn meter_drop_band_limits_packets() {
    let mut p = Pipeline::new();
    let mm = MeterMod {
        command: MeterModCommand::Add,
        meter_id: 1,
        config: MeterConfig {
            flags: mflags::PKTPS | mflags::BURST,
            bands: vec![Band::Drop { rate: 10, burst: 3 }],
        },
    };
    p.meter_mod(&mm, 0).unwrap();
    let fm = FlowMod::add(
        0,
        1,
        Match::all(),
        vec![
            Instruction::Meter(1),
            Instruction::ApplyActions(vec![out(2)]),
        ],
    );
    add(&mut p, fm);
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let key = parse(&pkt, RxMeta::port(1)).key;
    let t = p.translate(&key, None);
    assert_eq!(t.actions, vec![DpAction::Meter(1), DpAction::Output(2)]);
    let mut rec = Recorder::default();
    for _ in 0..10 {
        execute(
            &t.actions,
            &mut pkt.clone(),
            RxMeta::port(1),
            &p.meters,
            0,
            &mut rec,
        );
    }
    assert_eq!(rec.outputs.len(), 3);
    // Unknown meter in a flow: refused.
    let bad = FlowMod::add(0, 2, Match::all(), vec![Instruction::Meter(9)]);
    assert_eq!(p.flow_mod(&bad, 0), Err(ErrorCode::METER_MOD_UNKNOWN_METER));
    // Deleting the meter deletes its flows.
    let del = MeterMod {
        command: MeterModCommand::Delete,
        ..mm
    };
    p.meter_mod(&del, 0).unwrap();
    assert_eq!(p.flow_count(0), 0);
}

#[test]
fn flood_and_all_skip_the_ingress_port() {
    let mut p = Pipeline::new();
    for port in 1..=4 {
        p.set_port(port, PortState { live: port != 4 });
    }
    add(
        &mut p,
        FlowMod::add(0, 1, Match::all(), apply(vec![out(OFPP_ALL)])),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    assert_eq!(ports(&run(&mut p, &pkt, 2)), vec![1, 3]);
}

// --- flow-mod semantics (spec §6.4) -------------------------------------------------------

fn fm(cmd: FlowModCommand, prio: u16, m: Match, insts: Vec<Instruction>) -> FlowMod {
    FlowMod {
        command: cmd,
        ..FlowMod::add(0, prio, m, insts)
    }
}

#[test]
fn add_identical_replaces_and_keeps_counters_unless_reset() {
    let mut p = Pipeline::new();
    add(&mut p, FlowMod::add(0, 5, ip(), apply(vec![out(2)])));
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let t = p.translate(&parse(&pkt, RxMeta::port(1)).key, None);
    t.flows[0].hit(100, 1);
    add(&mut p, FlowMod::add(0, 5, ip(), apply(vec![out(3)])));
    assert_eq!(p.flow_count(0), 1);
    let t = p.translate(&parse(&pkt, RxMeta::port(1)).key, None);
    assert_eq!(t.actions, vec![DpAction::Output(3)]);
    assert_eq!(
        t.flows[0]
            .packets
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let mut reset = FlowMod::add(0, 5, ip(), apply(vec![out(3)]));
    reset.flags = flags::RESET_COUNTS;
    add(&mut p, reset);
    let t = p.translate(&parse(&pkt, RxMeta::port(1)).key, None);
    assert_eq!(
        t.flows[0]
            .packets
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[test]
fn check_overlap() {
    let mut p = Pipeline::new();
    add(&mut p, FlowMod::add(0, 5, ip(), apply(vec![out(2)])));
    let mut o = FlowMod::add(
        0,
        5,
        Match::all().with(Oxm::in_port(1)),
        apply(vec![out(3)]),
    );
    o.flags = flags::CHECK_OVERLAP;
    assert_eq!(p.flow_mod(&o, 0), Err(ErrorCode::FLOW_MOD_OVERLAP));
    o.priority = 6;
    assert!(p.flow_mod(&o, 0).is_ok());
    // An identical entry overlaps as well.
    let mut same = FlowMod::add(0, 5, ip(), apply(vec![out(4)]));
    same.flags = flags::CHECK_OVERLAP;
    assert_eq!(p.flow_mod(&same, 0), Err(ErrorCode::FLOW_MOD_OVERLAP));
    // Disjoint at the same priority: no overlap.
    let mut d = FlowMod::add(0, 5, Match::all().with(Oxm::eth_type(0x86dd)), vec![]);
    d.flags = flags::CHECK_OVERLAP;
    assert!(p.flow_mod(&d, 0).is_ok());
}

#[test]
fn modify_strict_and_non_strict() {
    let mut p = Pipeline::new();
    add(&mut p, FlowMod::add(0, 5, ip(), apply(vec![out(2)])));
    add(
        &mut p,
        FlowMod::add(0, 6, ip().with(Oxm::ip_proto(17)), apply(vec![out(2)])),
    );
    add(
        &mut p,
        FlowMod::add(0, 7, Match::all(), apply(vec![out(2)])),
    );
    // Non-strict modify of "ip" changes both ip flows, not the catch-all.
    p.flow_mod(&fm(FlowModCommand::Modify, 0, ip(), apply(vec![out(9)])), 0)
        .unwrap();
    let outs: Vec<_> = p.tables[0]
        .flows
        .iter()
        .map(|(_, r)| (r.priority, r.value.instructions[0].clone()))
        .collect();
    for (prio, inst) in outs {
        let want = if prio == 7 { 2 } else { 9 };
        assert_eq!(
            inst,
            Instruction::ApplyActions(vec![out(want)]),
            "prio {prio}"
        );
    }
    // Strict modify names one flow by match and priority; a wrong priority matches nothing
    // and (OF 1.3) adds nothing.
    p.flow_mod(
        &fm(FlowModCommand::ModifyStrict, 9, ip(), apply(vec![out(4)])),
        0,
    )
    .unwrap();
    assert_eq!(p.flow_count(0), 3);
    p.flow_mod(
        &fm(FlowModCommand::ModifyStrict, 5, ip(), apply(vec![out(4)])),
        0,
    )
    .unwrap();
    let pkt = Frame {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        vlans: vec![],
        l3: L3::Other {
            ethertype: 0x0800,
            payload: vec![],
        },
    }
    .render();
    // ip (prio 5) is below the catch-all (7): check the rule directly.
    let (k, m) = fuxi_dataplane::pipeline::matching::match_to_key(&ip()).unwrap();
    let id = p.tables[0].flows.find_exact(&k, &m, 5).unwrap();
    let e = &p.tables[0].flows.get(id).unwrap().value;
    assert_eq!(e.instructions[0], Instruction::ApplyActions(vec![out(4)]));
    let _ = pkt;
}

#[test]
fn delete_filters_cookie_out_port_and_all_tables() {
    let mut p = Pipeline::new();
    let mut a = FlowMod::add(0, 5, ip(), apply(vec![out(2)]));
    a.cookie = 0x1_0001;
    a.flags = flags::SEND_FLOW_REM;
    add(&mut p, a);
    let mut b = FlowMod::add(0, 6, ip().with(Oxm::ip_proto(6)), apply(vec![out(3)]));
    b.cookie = 0x2_0001;
    add(&mut p, b);
    let mut c = FlowMod::add(4, 6, Match::all(), apply(vec![out(3)]));
    c.cookie = 0x2_0002;
    add(&mut p, c);
    // Cookie filter.
    let mut d = FlowMod::delete(OFPTT_ALL, Match::all());
    d.cookie = 0x2_0000;
    d.cookie_mask = 0xffff_0000;
    d.out_port = 3;
    p.flow_mod(&d, 0).unwrap();
    assert_eq!((p.flow_count(0), p.flow_count(4)), (1, 0));
    // out_port filter: flow outputs to 2, asking for 7 deletes nothing.
    let mut d = FlowMod::delete(0, Match::all());
    d.out_port = 7;
    assert!(p.flow_mod(&d, 0).unwrap().is_empty());
    // Delete strict needs the priority.
    let mut d = FlowMod::delete(0, ip());
    d.command = FlowModCommand::DeleteStrict;
    d.priority = 4;
    p.flow_mod(&d, 0).unwrap();
    assert_eq!(p.flow_count(0), 1);
    d.priority = 5;
    let removed = p.flow_mod(&d, 3 * SEC).unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].reason, RemovedReason::Delete);
    assert_eq!(removed[0].cookie, 0x1_0001);
    assert_eq!(removed[0].duration, 3 * SEC);
    assert_eq!(p.flow_count(0), 0);
}

#[test]
fn flow_mod_validation() {
    let mut p = Pipeline::new();
    let bad_goto = FlowMod::add(3, 1, Match::all(), vec![Instruction::GotoTable(2)]);
    assert_eq!(
        p.flow_mod(&bad_goto, 0),
        Err(ErrorCode::BAD_INSTRUCTION_BAD_TABLE_ID)
    );
    let all = FlowMod::add(OFPTT_ALL, 1, Match::all(), vec![]);
    assert_eq!(p.flow_mod(&all, 0), Err(ErrorCode::FLOW_MOD_BAD_TABLE_ID));
    let bad_port = FlowMod::add(0, 1, Match::all(), apply(vec![out(0)]));
    assert_eq!(
        p.flow_mod(&bad_port, 0),
        Err(ErrorCode::BAD_ACTION_BAD_OUT_PORT)
    );
    let prereq = FlowMod::add(0, 1, Match::all().with(Oxm::ip_proto(6)), vec![]);
    assert_eq!(p.flow_mod(&prereq, 0), Err(ErrorCode::BAD_MATCH_BAD_PREREQ));
    let dup = FlowMod::add(
        0,
        1,
        Match::all(),
        vec![Instruction::ClearActions, Instruction::ClearActions],
    );
    assert!(p.flow_mod(&dup, 0).is_err());
    assert_eq!(p.flow_count(0), 0);
    let generation = p.generation();
    assert!(p.flow_mod(&bad_port, 0).is_err());
    assert_eq!(
        p.generation(),
        generation,
        "a refused flow-mod changes nothing"
    );
}

#[test]
fn idle_and_hard_timeouts() {
    let mut p = Pipeline::new();
    let mut idle = FlowMod::add(0, 1, ip(), apply(vec![out(2)]));
    idle.idle_timeout = 10;
    idle.flags = flags::SEND_FLOW_REM;
    add(&mut p, idle);
    let mut hard = FlowMod::add(
        0,
        2,
        Match::all().with(Oxm::in_port(9)),
        apply(vec![out(2)]),
    );
    hard.hard_timeout = 5;
    hard.flags = flags::SEND_FLOW_REM;
    add(&mut p, hard);
    assert_eq!(p.poll_timeout(), Some(5 * SEC));
    assert!(p.expire(4 * SEC).is_empty());
    // Traffic keeps the idle flow alive.
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let t = p.translate(&parse(&pkt, RxMeta::port(1)).key, None);
    t.flows[0].hit(pkt.len(), 8 * SEC);
    let r = p.expire(10 * SEC);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].reason, RemovedReason::HardTimeout);
    assert!(p.expire(17 * SEC).is_empty());
    let r = p.expire(18 * SEC);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].reason, RemovedReason::IdleTimeout);
    assert_eq!(r[0].packet_count, 1);
    assert_eq!(p.flow_count(0), 0);
}

#[test]
fn flow_stats_and_aggregate() {
    use fuxi_dataplane::pipeline::FlowStatsRequest;
    let mut p = Pipeline::new();
    let mut a = FlowMod::add(0, 5, ip(), apply(vec![out(2)]));
    a.cookie = 1;
    add(&mut p, a);
    add(
        &mut p,
        FlowMod::add(0, 9, ip().with(Oxm::ip_proto(17)), apply(vec![out(3)])),
    );
    add(
        &mut p,
        FlowMod::add(2, 1, Match::all(), apply(vec![out(3)])),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let mut dp = fuxi_dataplane::cache::Datapath::new();
    for _ in 0..3 {
        dp.process(
            &p,
            &mut pkt.clone(),
            RxMeta::port(1),
            2 * SEC,
            &mut Recorder::default(),
        );
    }
    dp.sync_stats(&p);
    let all = p.flow_stats(&FlowStatsRequest::all(), 5 * SEC).unwrap();
    assert_eq!(
        all.iter()
            .map(|f| (f.table_id, f.priority))
            .collect::<Vec<_>>(),
        vec![(0, 9), (0, 5), (2, 1)]
    );
    assert_eq!(all[0].packet_count, 3);
    assert_eq!(all[0].byte_count, 3 * pkt.len() as u64);
    assert_eq!(all[0].duration, 5 * SEC);
    let mut req = FlowStatsRequest {
        r#match: ip(),
        ..FlowStatsRequest::all()
    };
    assert_eq!(p.flow_stats(&req, 0).unwrap().len(), 2);
    req.out_port = 3;
    assert_eq!(p.flow_stats(&req, 0).unwrap().len(), 1);
    req.out_port = fuxi_openflow::consts::OFPP_ANY;
    req.cookie = 1;
    req.cookie_mask = u64::MAX;
    assert_eq!(p.aggregate_stats(&req).unwrap(), (0, 0, 1));
}

#[test]
fn packet_out_actions_and_table() {
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(
            0,
            1,
            Match::all().with(Oxm::in_port(OFPP_CONTROLLER)),
            apply(vec![out(4)]),
        ),
    );
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let key = parse(&pkt, RxMeta::port(OFPP_CONTROLLER)).key;
    let t = p.translate_packet_out(
        &key,
        &[
            Action::set_field(Oxm::exact(FieldId::EthSrc, 5)),
            out(2),
            Action::output(fuxi_openflow::consts::OFPP_TABLE),
        ],
        Some(&pkt),
    );
    assert_eq!(
        t.actions,
        vec![
            DpAction::SetField(Field::EthSrc, 5),
            DpAction::Output(2),
            DpAction::Output(4)
        ]
    );
}

#[test]
fn group_counters_and_ref_count() {
    let mut p = Pipeline::new();
    group(
        &mut p,
        1,
        GroupType::All,
        vec![Bucket::new(vec![out(2)]), Bucket::new(vec![out(3)])],
    )
    .unwrap();
    add(
        &mut p,
        FlowMod::add(0, 1, ip(), apply(vec![Action::Group(1)])),
    );
    add(
        &mut p,
        FlowMod::add(
            0,
            2,
            ip().with(Oxm::ip_proto(6)),
            apply(vec![Action::Group(1)]),
        ),
    );
    assert_eq!(p.group_ref_count(1), 2);
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let mut dp = fuxi_dataplane::cache::Datapath::new();
    for _ in 0..2 {
        dp.process(
            &p,
            &mut pkt.clone(),
            RxMeta::port(1),
            0,
            &mut Recorder::default(),
        );
    }
    dp.sync_stats(&p);
    let s = &p.groups[&1].stats;
    let r = std::sync::atomic::Ordering::Relaxed;
    assert_eq!(s.packets.load(r), 2);
    assert_eq!(s.bytes.load(r), 2 * pkt.len() as u64);
    assert_eq!(s.buckets[1].0.load(r), 2);
}

#[test]
fn pipeline_clone_is_independent() {
    let mut p = Pipeline::new();
    add(&mut p, FlowMod::add(0, 1, ip(), apply(vec![out(2)])));
    let mut q = p.clone();
    add(&mut q, FlowMod::add(0, 2, ip(), apply(vec![out(3)])));
    assert_eq!((p.flow_count(0), q.flow_count(0)), (1, 2));
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    assert_eq!(ports(&run(&mut p, &pkt, 1)), vec![2]);
    assert_eq!(ports(&run(&mut q, &pkt, 1)), vec![3]);
}

#[test]
fn packet_out_executes_and_credits_table_flows() {
    let mut p = Pipeline::new();
    add(
        &mut p,
        FlowMod::add(0, 1, Match::all(), apply(vec![out(4)])),
    );
    let mut pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let mut rec = Recorder::default();
    let acts = [out(3), Action::output(fuxi_openflow::consts::OFPP_TABLE)];
    p.packet_out(&mut pkt, OFPP_CONTROLLER, &acts, 0, &mut rec);
    assert_eq!(ports(&rec), vec![3, 4]);
    let stats = p
        .flow_stats(&fuxi_dataplane::pipeline::FlowStatsRequest::all(), 0)
        .unwrap();
    assert_eq!(stats[0].packet_count, 1);
    let t = p.trace(&pkt, RxMeta::port(1));
    assert_eq!(t.trace.len(), 1);
    assert_eq!(t.trace[0].flow, Some((1, 0)));
    assert_eq!(p.table_stats()[0].1, 1);
}

#[test]
fn timeout_bookkeeping_survives_replace_and_delete() {
    let mut p = Pipeline::new();
    let mut f = FlowMod::add(0, 1, ip(), apply(vec![out(2)]));
    f.hard_timeout = 1;
    add(&mut p, f.clone());
    add(&mut p, f.clone()); // replaces
    assert_eq!(p.poll_timeout(), Some(SEC));
    p.flow_mod(&FlowMod::delete(0, Match::all()), 0).unwrap();
    assert_eq!(p.poll_timeout(), None);
    add(&mut p, f);
    assert_eq!(
        p.expire(2 * SEC).len(),
        0,
        "no SEND_FLOW_REM: removed silently"
    );
    assert_eq!((p.flow_count(0), p.poll_timeout()), (0, None));
}

/// A pipeline of 100,000 IPv4 routes in table 1 (/16 to /32) and a few flows in tables 0
/// and 2, as a router's tables look.
fn routes_100k() -> Pipeline {
    let mut p = Pipeline::new();
    let ip = || Match::all().with(Oxm::eth_type(0x0800));
    p.flow_mod(
        &FlowMod::add(0, 10, ip(), vec![Instruction::GotoTable(1)]),
        0,
    )
    .unwrap();
    p.flow_mod(
        &FlowMod::add(
            2,
            0,
            Match::all(),
            vec![Instruction::ApplyActions(vec![Action::output(2)])],
        ),
        0,
    )
    .unwrap();
    let mut x = 0x9e37_79b9u32;
    for i in 0..100_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = 16 + i % 17;
        let mask = u32::MAX << (32 - len);
        let m = ip().with(Oxm::masked(
            FieldId::Ipv4Dst,
            (x & mask).into(),
            mask.into(),
        ));
        let insts = vec![
            Instruction::ApplyActions(vec![Action::set_field(Oxm::exact(
                FieldId::EthDst,
                u128::from(i),
            ))]),
            Instruction::GotoTable(2),
        ];
        p.flow_mod(&FlowMod::add(1, len as u16, m, insts), 0)
            .unwrap();
    }
    p
}

/// Copy-on-write tables: a clone shares every table, and a flow-mod copies only the table it
/// changes; a publication through the engine shares the untouched tables with the snapshot
/// before it.
#[test]
fn a_flow_mod_copies_only_the_table_it_changes() {
    use fuxi_dataplane::engine::Engine;
    use std::sync::Arc;
    let mut p = routes_100k();
    p.flow_mod(
        &FlowMod::add(3, 1, Match::all(), vec![Instruction::GotoTable(4)]),
        0,
    )
    .unwrap();
    let mut q = p.clone();
    let shared =
        |a: &Pipeline, b: &Pipeline, t: usize| Arc::ptr_eq(&a.tables[t].flows, &b.tables[t].flows);
    assert!((0..255).all(|t| shared(&p, &q, t)));
    add(&mut q, FlowMod::add(0, 20, ip(), apply(vec![out(3)])));
    assert!(!shared(&p, &q, 0));
    assert!((1..255).all(|t| shared(&p, &q, t)));
    assert_eq!((p.flow_count(0), q.flow_count(0)), (1, 2));
    // The original still forwards as before; the copy sees its new flow.
    let pkt = udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 64);
    assert_ne!(ports(&run(&mut p, &pkt, 1)), vec![3]);
    assert_eq!(ports(&run(&mut q, &pkt, 1)), vec![3]);
    // A delete in table 3 copies table 3 only; a failed flow-mod copies nothing.
    let r = q.clone();
    q.flow_mod(&FlowMod::delete(3, Match::all()), 0).unwrap();
    assert_eq!(q.flow_count(3), 0);
    assert_eq!(r.flow_count(3), 1);
    assert!(!shared(&q, &r, 3));
    assert!((0..255).filter(|&t| t != 3).all(|t| shared(&q, &r, t)));
    let r = q.clone();
    let bad = FlowMod::add(1, 1, ip(), vec![Instruction::GotoTable(0)]);
    assert!(q.flow_mod(&bad, 0).is_err());
    assert!((0..255).all(|t| shared(&q, &r, t)));

    // Through the engine: each publication shares the untouched tables with the last.
    let mut e = Engine::new(q);
    let before = e.published();
    e.flow_mod(&FlowMod::add(2, 7, ip(), apply(vec![out(4)])), 0)
        .unwrap();
    e.publish();
    let after = e.published();
    assert!(!shared(&before, &after, 2));
    assert!(
        (0..255)
            .filter(|&t| t != 2)
            .all(|t| shared(&before, &after, t))
    );
    assert_eq!((before.flow_count(2), after.flow_count(2)), (1, 2));
}

/// Publication cost (by hand: `cargo test --release -p fuxi-dataplane --test it
/// publish_one_flow_mod -- --ignored --nocapture`): one flow-mod and a publish, into a
/// pipeline of 100k flows, for a small table and for the big one.
#[test]
#[ignore = "timing, by hand"]
fn publish_one_flow_mod_into_100k_flows_timing() {
    use fuxi_dataplane::engine::Engine;
    use std::time::Instant;
    let mut e = Engine::new(routes_100k());
    let _reader = e.reader();
    // Into table 0 (2 flows); into table 1 a new /24 route (its subtable holds ~5,900).
    for (table, name) in [(0u8, "small table 0"), (1, "table 1 (100k routes)")] {
        let mut took = Vec::new();
        for i in 0..21 {
            let t = Instant::now();
            let m = if table == 0 {
                Match::all().with(Oxm::in_port(1 + i))
            } else {
                let dst = 0x0a00_0000 | (i << 8);
                ip().with(Oxm::masked(FieldId::Ipv4Dst, dst.into(), 0xffff_ff00))
            };
            let fm = FlowMod::add(table, 24, m, vec![]);
            e.flow_mod(&fm, 0).unwrap();
            e.publish();
            took.push(t.elapsed());
        }
        took.sort();
        eprintln!("publish one flow-mod into {name}: median {:?}", took[10]);
    }
}
