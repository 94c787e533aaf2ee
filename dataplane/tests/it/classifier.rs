//! Classifier tests: a property test against a naive linear scan (winner and megaflow
//! soundness of the accumulated mask, under inserts and removals), and a scale check at 100k
//! rules over 20 masks.

use std::time::Instant;

use fuxi_dataplane::classifier::{Classifier, RuleId};
use fuxi_dataplane::packet::{Field, FlowKey, FlowMask};
use proptest::prelude::*;

/// Fields the generated rules use, with small value domains so that rules overlap a lot.
const FIELDS: [Field; 6] = [
    Field::InPort,
    Field::EthType,
    Field::IpProto,
    Field::Ipv4Src,
    Field::TcpDst,
    Field::VlanVid,
];

fn small_key(vals: &[u8; 6]) -> FlowKey {
    let mut k = FlowKey::ZERO;
    for (f, v) in FIELDS.iter().zip(vals) {
        k.set(*f, u128::from(v % 4));
    }
    k
}

fn mask_of(bits: u8, prefix: u8) -> FlowMask {
    let mut m = FlowKey::ZERO;
    for (i, f) in FIELDS.iter().enumerate() {
        if bits & (1 << i) != 0 {
            m.add_field(*f);
        }
    }
    // Some masks are partial (prefix-like) on ipv4_src.
    if bits & (1 << 3) != 0 && prefix % 2 == 1 {
        m.set(Field::Ipv4Src, 0xffff_fffe);
    }
    m
}

#[derive(Debug, Clone)]
enum Op {
    Insert {
        vals: [u8; 6],
        mask: u8,
        prefix: u8,
        prio: u8,
    },
    Remove(usize),
    Lookup([u8; 6]),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<[u8; 6]>(), 0u8..64, any::<u8>(), 0u8..6)
            .prop_map(|(vals, mask, prefix, prio)| Op::Insert { vals, mask, prefix, prio }),
        1 => any::<usize>().prop_map(Op::Remove),
        4 => any::<[u8; 6]>().prop_map(Op::Lookup),
    ]
}

/// Naive reference: the best rule by (priority desc, insertion order asc).
fn linear(rules: &[(RuleId, FlowKey, FlowMask, u32, u64)], k: &FlowKey) -> Option<RuleId> {
    rules
        .iter()
        .filter(|r| k.matches(&r.2, &r.1.masked(&r.2)))
        .min_by_key(|r| (std::cmp::Reverse(r.3), r.4))
        .map(|r| r.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_linear_scan(ops in prop::collection::vec(op(), 1..120), flips in any::<[u8; 6]>()) {
        let mut c = Classifier::new();
        let mut model: Vec<(RuleId, FlowKey, FlowMask, u32, u64)> = Vec::new();
        let mut seq = 0u64;
        for op in ops {
            match op {
                Op::Insert { vals, mask, prefix, prio } => {
                    let k = small_key(&vals);
                    let m = mask_of(mask, prefix);
                    let id = c.insert(&k, &m, u32::from(prio), seq);
                    model.push((id, k, m, u32::from(prio), seq));
                    seq += 1;
                }
                Op::Remove(i) if !model.is_empty() => {
                    let (id, ..) = model.remove(i % model.len());
                    prop_assert!(c.remove(id).is_some());
                    prop_assert!(c.remove(id).is_none());
                }
                Op::Remove(_) => {}
                Op::Lookup(vals) => {
                    let k = small_key(&vals);
                    let mut wc = FlowKey::ZERO;
                    let got = c.lookup(&k, &mut wc).map(|(id, _)| id);
                    prop_assert_eq!(got, linear(&model, &k));
                    // Megaflow soundness: any key equal to k under wc gets the same answer.
                    let mut k2 = small_key(&flips);
                    for i in 0..k2.w.len() {
                        k2.w[i] = (k.w[i] & wc.w[i]) | (k2.w[i] & !wc.w[i]);
                    }
                    prop_assert_eq!(linear(&model, &k2), got);
                }
            }
            prop_assert_eq!(c.len(), model.len());
        }
    }
}

#[test]
fn hundred_thousand_rules_over_twenty_masks() {
    // 20 masks built from common OpenFlow match shapes; 5k rules each.
    let shapes: [&[Field]; 20] = [
        &[Field::InPort],
        &[Field::EthDst],
        &[Field::EthSrc, Field::InPort],
        &[Field::EthType, Field::Ipv4Dst],
        &[Field::EthType, Field::Ipv4Src],
        &[Field::EthType, Field::Ipv4Src, Field::Ipv4Dst],
        &[Field::EthType, Field::IpProto, Field::TcpDst],
        &[Field::EthType, Field::IpProto, Field::TcpSrc],
        &[
            Field::EthType,
            Field::IpProto,
            Field::Ipv4Dst,
            Field::TcpDst,
        ],
        &[
            Field::EthType,
            Field::IpProto,
            Field::Ipv4Src,
            Field::UdpDst,
        ],
        &[Field::EthType, Field::Ipv6Dst],
        &[Field::EthType, Field::Ipv6Src],
        &[Field::VlanVid],
        &[Field::VlanVid, Field::EthDst],
        &[Field::TunnelId],
        &[Field::TunnelId, Field::EthDst],
        &[Field::Metadata, Field::EthDst],
        &[Field::Metadata, Field::EthType, Field::Ipv4Dst],
        &[Field::EthType, Field::ArpOp, Field::ArpTpa],
        &[Field::InPort, Field::EthType, Field::Ipv4Src],
    ];
    let mut c = Classifier::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let t0 = Instant::now();
    for (si, shape) in shapes.iter().enumerate() {
        let mut m = FlowKey::ZERO;
        for f in *shape {
            m.add_field(*f);
        }
        for _ in 0..5000 {
            let mut k = FlowKey::ZERO;
            for f in *shape {
                k.set(*f, u128::from(rnd()) | (u128::from(rnd()) << 64));
            }
            c.insert(&k, &m, (si as u32 * 7) % 13 + (rnd() % 5) as u32, ());
        }
    }
    let insert = t0.elapsed();
    assert_eq!(c.len(), 100_000);
    assert_eq!(c.subtable_count(), 20);
    let keys: Vec<FlowKey> = (0..20_000)
        .map(|_| {
            let mut k = FlowKey::ZERO;
            for w in k.w.iter_mut() {
                *w = rnd();
            }
            k
        })
        .collect();
    let t1 = Instant::now();
    let mut hits = 0;
    for k in &keys {
        let mut wc = FlowKey::ZERO;
        hits += usize::from(c.lookup(k, &mut wc).is_some());
    }
    let per = t1.elapsed() / keys.len() as u32;
    eprintln!("100k rules / 20 masks: insert {insert:?}, miss lookup {per:?} each ({hits} hits)");
    // Generous bound for a shared 2-core test machine in the test profile.
    assert!(per.as_micros() < 50, "lookup too slow: {per:?}");
}
