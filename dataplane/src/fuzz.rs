//! Bodies of the dataplane's cargo-fuzz targets, so each target in `fuzz/` is a one-liner.
//! Each function panics only when an invariant breaks; any input is otherwise fine.
//!
//! - [`parse_packet`]: the parser on arbitrary bytes (its fast path checked against the
//!   general parser; a packet with the same kernel flow table key parses the same).
//! - [`flow_table`]: an operation-sequence fuzzer for the pipeline and caches: flow-mods,
//!   group-mods, port changes and packets decoded from the bytes; checks that the caches give
//!   what a full translation gives, and runs the actions on the packet bytes.
//! - [`classifier`]: classifier operations checked against a linear scan.

use fuxi_openflow::consts::{OFPP_ALL, OFPP_CONTROLLER, OFPP_IN_PORT};
use fuxi_openflow::oxm::FieldId;
use fuxi_openflow::{Action, Instruction, Match, Oxm};

use crate::cache::Datapath;
use crate::packet::{Layout, RxMeta, parse};
use crate::pipeline::exec::{Recorder, execute};
use crate::pipeline::{
    Bucket, FlowMod, FlowModCommand, GroupMod, GroupModCommand, GroupType, Pipeline, PortState,
};

/// Parses `data` as an Ethernet frame and checks the layout's invariants.
pub fn parse_packet(data: &[u8]) {
    let p = parse(data, RxMeta::port(1));
    // The fast path for the common shape gives what the general parser gives.
    let mut general = crate::packet::Parsed::default();
    crate::packet::parse::parse_general(data, RxMeta::port(1), &mut general);
    assert_eq!(p, general, "the fast path and the general parser disagree");
    assert_eq!(
        p.key.nonzero_map() & !p.map,
        0,
        "a non-zero key word outside the map"
    );
    let lay = p.layout;
    for off in [lay.vlan, lay.eth_type, lay.mpls, lay.l3, lay.l4, lay.l7] {
        if off != Layout::NONE {
            assert!(
                usize::from(off) <= data.len(),
                "offset {off} past end {}",
                data.len()
            );
        }
    }
    if lay.l4 != Layout::NONE {
        assert!(lay.l3 < lay.l4 && lay.l4 <= lay.l7);
    }
    kernel_key_covers_the_flow_key(data, &p.key);
}

/// The kernel flow table's premise ([`crate::cache::kernel`]): a packet with the same kernel
/// key as `data` has the same flow key (TCP flags aside). The other packet changes every
/// byte the key does not hold — the bytes past its window, IP identification and header
/// checksum, an ICMP echo's checksum — but the IP length field and the TCP data offset
/// (changing those gives a packet without a key, or another key). And the minimal frame
/// [`crate::cache::kernel::frame_of`] rebuilds from the key parses alike too.
fn kernel_key_covers_the_flow_key(data: &[u8], key: &crate::packet::FlowKey) {
    use crate::cache::kernel::{WINDOW, WINDOW_V4, frame_of, kernel_key};
    use crate::packet::Field;
    let Some(k) = kernel_key(1, data) else { return };
    let v4 = data[12] == 0x08;
    let (window, l4, proto) = if v4 {
        (WINDOW_V4, 34, data[23])
    } else {
        (WINDOW, 54, data[20])
    };
    let mut other = data.to_vec();
    for (i, b) in other.iter_mut().enumerate() {
        let varies = if v4 {
            matches!(i, 18 | 19 | 24 | 25) || (proto == 1 && matches!(i, 36 | 37))
        } else {
            proto == 58 && matches!(i, 56 | 57)
        };
        if (i >= window && !(proto == 6 && i == l4 + 12)) || varies {
            *b ^= 0x5a;
        }
    }
    assert_eq!(
        kernel_key(1, &other),
        Some(k),
        "the changed bytes are in the key"
    );
    let mut a = *key;
    let mut b = parse(&other, RxMeta::port(1)).key;
    a.set(Field::TcpFlags, 0);
    b.set(Field::TcpFlags, 0);
    assert_eq!(a, b, "two packets with one kernel key parse differently");
    // What the control plane translates to check an entry (`cache::still_forwards`).
    let frame = frame_of(&k).expect("every kernel key has a frame");
    let mut c = parse(&frame, RxMeta::port(1)).key;
    c.set(Field::TcpFlags, 0);
    assert_eq!(a, c, "the frame of a kernel key parses to another flow key");
}

/// A cursor that yields zeros once the input runs out.
struct Bytes<'a> {
    data: &'a [u8],
}

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }
    fn u128(&mut self, bytes: usize) -> u128 {
        (0..bytes).fold(0u128, |a, _| (a << 8) | u128::from(self.u8()))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (a, b) = self.data.split_at(n);
        self.data = b;
        a
    }
    fn done(&self) -> bool {
        self.data.is_empty()
    }
}

/// A template frame the fuzzer mutates: Ethernet / 802.1Q / IPv4 / TCP.
const TEMPLATE: [u8; 58] = [
    2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00, // eth + vlan 10
    0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // ipv4
    0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0, // tcp
];

fn field(b: &mut Bytes<'_>) -> FieldId {
    FieldId::from_u8(b.u8() % 40).unwrap_or(FieldId::EthDst)
}

fn fuzz_match(b: &mut Bytes<'_>) -> Match {
    let mut m = Match::all();
    for _ in 0..b.u8() % 5 {
        let f = field(b);
        let v = b.u128(f.bytes()) & f.full_mask();
        let oxm = if f.maskable() && b.u8() & 1 == 1 {
            let mask = b.u128(f.bytes()) & f.full_mask();
            Oxm::masked(f, v & mask, mask)
        } else {
            Oxm::exact(f, v)
        };
        m = m.with(oxm);
    }
    m
}

fn fuzz_actions(b: &mut Bytes<'_>) -> Vec<Action> {
    let mut v = Vec::new();
    for _ in 0..b.u8() % 5 {
        let a = match b.u8() % 14 {
            0 => Action::output(u32::from(b.u8() % 4) + 1),
            1 => Action::output([OFPP_CONTROLLER, OFPP_IN_PORT, OFPP_ALL][usize::from(b.u8() % 3)]),
            2 => {
                let f = field(b);
                Action::set_field(Oxm::exact(f, b.u128(f.bytes()) & f.full_mask()))
            }
            3 => Action::PushVlan(if b.u8() & 1 == 0 { 0x8100 } else { 0x88a8 }),
            4 => Action::PopVlan,
            5 => Action::PushMpls(0x8847),
            6 => Action::PopMpls(if b.u8() & 1 == 0 { 0x0800 } else { 0x86dd }),
            7 => Action::DecNwTtl,
            8 => Action::SetNwTtl(b.u8()),
            9 => Action::Group(u32::from(b.u8() % 3)),
            10 => Action::SetQueue(u32::from(b.u8())),
            11 => Action::CopyTtlOut,
            12 => Action::DecMplsTtl,
            _ => Action::SetMplsTtl(b.u8()),
        };
        v.push(a);
    }
    v
}

fn fuzz_instructions(b: &mut Bytes<'_>, table: u8) -> Vec<Instruction> {
    let mut v = Vec::new();
    let k = b.u8();
    if k & 1 != 0 {
        v.push(Instruction::ApplyActions(fuzz_actions(b)));
    }
    if k & 2 != 0 {
        v.push(Instruction::WriteActions(fuzz_actions(b)));
    }
    if k & 4 != 0 {
        v.push(Instruction::ClearActions);
    }
    if k & 8 != 0 {
        v.push(Instruction::WriteMetadata {
            metadata: u64::from(b.u8()),
            mask: u64::from(b.u8()),
        });
    }
    if k & 16 != 0 {
        v.push(Instruction::GotoTable(table + 1 + b.u8() % 2));
    }
    v
}

/// Operation-sequence fuzzer for the pipeline and the caches (see the module doc).
pub fn flow_table(data: &[u8]) {
    let mut b = Bytes { data };
    let mut p = Pipeline::new();
    for port in 1..=4 {
        p.set_port(port, PortState { live: true });
    }
    let mut dp = Datapath::with_emc_entries(64);
    // The batched packet path, with a tiny exact-match cache whose signatures all collide
    // (every probe compares keys) and that takes every megaflow hit.
    let mut bdp = Datapath::with_emc_entries(8);
    bdp.set_emc_insert_inv_prob(1);
    bdp.set_emc_colliding_signatures();
    // The same on borrowed frames (zero-copy receive: rewrites go to a copy).
    let mut fdp = Datapath::with_emc_entries(8);
    fdp.set_emc_insert_inv_prob(1);
    fdp.set_emc_colliding_signatures();
    let mut packets: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut steps = 0;
    while !b.done() && steps < 64 {
        steps += 1;
        match b.u8() % 6 {
            0 | 1 => {
                let table = b.u8() % 3;
                let m = fuzz_match(&mut b);
                let insts = fuzz_instructions(&mut b, table);
                let mut fm = FlowMod::add(table, u16::from(b.u8() % 4), m, insts);
                fm.flags = u16::from(b.u8() & 7);
                let _ = p.flow_mod(&fm, 0);
            }
            2 => {
                let mut fm = FlowMod::delete(b.u8() % 3, fuzz_match(&mut b));
                if b.u8() & 1 == 1 {
                    fm.command = FlowModCommand::DeleteStrict;
                    fm.priority = u16::from(b.u8() % 4);
                }
                let _ = p.flow_mod(&fm, 0);
            }
            3 => {
                let group_type = match b.u8() % 4 {
                    0 => GroupType::All,
                    1 => GroupType::Select,
                    2 => GroupType::Indirect,
                    _ => GroupType::FastFailover,
                };
                let mut buckets = Vec::new();
                for _ in 0..b.u8() % 3 {
                    let mut bk = Bucket::new(fuzz_actions(&mut b));
                    bk.watch_port = u32::from(b.u8() % 5);
                    buckets.push(bk);
                }
                let command = if b.u8() & 1 == 0 {
                    GroupModCommand::Add
                } else {
                    GroupModCommand::Modify
                };
                let gm = GroupMod {
                    command,
                    group_type,
                    group_id: u32::from(b.u8() % 3),
                    buckets,
                };
                let _ = p.group_mod(&gm, 0);
            }
            4 => {
                let port = u32::from(b.u8() % 4) + 1;
                p.set_port(
                    port,
                    PortState {
                        live: b.u8() & 1 == 1,
                    },
                );
            }
            _ => {
                // A packet: the template with a few bytes overwritten, cut to some length.
                let mut pkt = TEMPLATE.to_vec();
                for _ in 0..b.u8() % 4 {
                    let at = usize::from(b.u8()) % pkt.len();
                    pkt[at] = b.u8();
                }
                let cut = usize::from(b.u8());
                if cut < pkt.len() {
                    pkt.truncate(cut.max(14));
                }
                let extra = b.u8() % 8;
                pkt.extend_from_slice(b.take(usize::from(extra)));
                packets.push((pkt, u32::from(b.u8() % 4) + 1));
            }
        }
        for (pkt, in_port) in &packets {
            let meta = RxMeta::port(*in_port);
            let key = parse(pkt, meta).key;
            let (mf, _) = dp.lookup(&p, &key, Some(pkt));
            let full = p.translate(&key, Some(pkt));
            assert_eq!(
                mf.actions, full.actions,
                "cache disagrees with the pipeline"
            );
            let mut bytes = pkt.clone();
            execute(
                &full.actions,
                &mut bytes,
                meta,
                &p.meters,
                0,
                &mut Recorder::default(),
            );
        }
        for in_port in 1..=4 {
            let mut batch: Vec<crate::port::Packet> = Vec::new();
            let mut want = Recorder::default();
            for (pkt, _) in packets.iter().filter(|(_, i)| *i == in_port) {
                batch.push(crate::port::Packet::from_frame(pkt));
                let meta = RxMeta::port(in_port);
                let full = p.translate(&parse(pkt, meta).key, Some(pkt));
                execute(
                    &full.actions,
                    &mut pkt.clone(),
                    meta,
                    &p.meters,
                    0,
                    &mut want,
                );
            }
            let mut got = Recorder::default();
            bdp.process_batch(&p, in_port, &mut batch, 0, &mut got);
            assert_eq!(got, want, "batched path disagrees with the pipeline");
            let mut frames: Vec<crate::port::Frame<'_>> = packets
                .iter()
                .filter(|(_, i)| *i == in_port)
                .map(|(pkt, _)| crate::port::Frame {
                    data: pkt,
                    ..Default::default()
                })
                .collect();
            let mut got = Recorder::default();
            fdp.process_batch(&p, in_port, &mut frames, 0, &mut got);
            assert_eq!(got, want, "batched path on borrowed frames disagrees");
        }
    }
}

/// Operation-sequence fuzzer for the classifier: inserts, removals and lookups decoded from
/// the bytes, each lookup checked against a linear scan (winner and wildcard soundness).
pub fn classifier(data: &[u8]) {
    use crate::classifier::{Classifier, RuleId};
    use crate::packet::{Field, FlowKey};
    const FIELDS: [Field; 5] = [
        Field::InPort,
        Field::EthType,
        Field::IpProto,
        Field::Ipv4Src,
        Field::TcpDst,
    ];
    let mut b = Bytes { data };
    let key = |b: &mut Bytes<'_>| {
        let mut k = FlowKey::ZERO;
        for f in FIELDS {
            k.set(f, u128::from(b.u8() % 4));
        }
        k
    };
    // A rule as the linear-scan model keeps it: id, masked key, mask, priority, sequence.
    type ModelRule = (RuleId, FlowKey, FlowKey, u32, u64);
    let mut c = Classifier::new();
    let mut model: Vec<ModelRule> = Vec::new();
    let mut seq = 0u64;
    let best = |model: &[ModelRule], k: &FlowKey| {
        model
            .iter()
            .filter(|r| k.matches(&r.2, &r.1))
            .min_by_key(|r| (std::cmp::Reverse(r.3), r.4))
            .map(|r| r.0)
    };
    // Clones taken along the way, with the model at that moment: a later change to `c` must
    // not show through them (copy-on-write).
    let mut snapshots: Vec<(Classifier<()>, Vec<ModelRule>)> = Vec::new();
    let mut probes: Vec<FlowKey> = Vec::new();
    while !b.done() {
        match b.u8() % 5 {
            op @ (0 | 3) => {
                let k = key(&mut b);
                let mut m = FlowKey::ZERO;
                let bits = b.u8();
                for (i, f) in FIELDS.iter().enumerate() {
                    if bits & (1 << i) != 0 {
                        m.add_field(*f);
                    }
                }
                let prio = u32::from(b.u8() % 4);
                let masked = k.masked(&m);
                if op == 0 {
                    let id = c.insert(&k, &m, prio, ());
                    model.push((id, masked, m, prio, seq));
                } else {
                    // Replace: the oldest rule with this match and priority goes, if any.
                    let oldest = model
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.1 == masked && r.2 == m && r.3 == prio)
                        .min_by_key(|(_, r)| r.4)
                        .map(|(i, _)| i);
                    let (id, old) = c.replace(&k, &m, prio, ());
                    assert_eq!(
                        old.is_some(),
                        oldest.is_some(),
                        "replace found another rule"
                    );
                    if let Some(i) = oldest {
                        model.remove(i);
                    }
                    model.push((id, masked, m, prio, seq));
                }
                seq += 1;
            }
            4 => {
                if snapshots.len() < 3 {
                    snapshots.push((c.clone(), model.clone()));
                }
            }
            1 if !model.is_empty() => {
                let i = usize::from(b.u8()) % model.len();
                let (id, ..) = model.remove(i);
                assert!(c.remove(id).is_some());
            }
            _ => {
                let k = key(&mut b);
                if probes.len() < 16 {
                    probes.push(k);
                }
                let mut wc = FlowKey::ZERO;
                let got = c.lookup(&k, &mut wc).map(|(id, _)| id);
                assert_eq!(
                    got,
                    best(&model, &k),
                    "classifier disagrees with a linear scan"
                );
                let mut k2 = key(&mut b);
                for i in 0..k2.w.len() {
                    k2.w[i] = (k.w[i] & wc.w[i]) | (k2.w[i] & !wc.w[i]);
                }
                assert_eq!(best(&model, &k2), got, "wildcards too wide");
            }
        }
        assert_eq!(c.len(), model.len());
    }
    for (snap, snap_model) in &snapshots {
        assert_eq!(snap.len(), snap_model.len(), "a clone changed size");
        for k in &probes {
            let mut wc = FlowKey::ZERO;
            let got = snap.lookup(k, &mut wc).map(|(id, _)| id);
            assert_eq!(got, best(snap_model, k), "a change showed through a clone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_table_on_simple_inputs() {
        // A few hand-picked and pseudo-random inputs: must not panic.
        flow_table(&[]);
        classifier(&[0, 1, 2, 3, 0, 0xff, 2, 2, 1, 1, 1, 0, 2, 5, 5, 5, 5, 5, 0]);
        flow_table(&[0, 0, 0, 1, 0xff, 5, 5, 5, 5]);
        // Pseudo-random inputs of many lengths: the flow-table checks (cache, batch and
        // borrowed-frame batch against the full pipeline) run with the ordinary tests.
        let mut x = 0x1234_5678u32;
        for n in 0..3000usize {
            let data: Vec<u8> = (0..16 + n % 400)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            flow_table(&data);
            if n < 200 {
                classifier(&data);
            }
        }
    }
}
