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
    /// `replace`: the oldest rule with the same match and priority goes, the new one comes.
    Replace {
        vals: [u8; 6],
        mask: u8,
        prefix: u8,
        prio: u8,
    },
    /// A clone is taken, changed by the following ops; the original is checked unchanged.
    Clone,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<[u8; 6]>(), 0u8..64, any::<u8>(), 0u8..6)
            .prop_map(|(vals, mask, prefix, prio)| Op::Insert { vals, mask, prefix, prio }),
        1 => any::<usize>().prop_map(Op::Remove),
        4 => any::<[u8; 6]>().prop_map(Op::Lookup),
        2 => (any::<[u8; 6]>(), 0u8..64, any::<u8>(), 0u8..6)
            .prop_map(|(vals, mask, prefix, prio)| Op::Replace { vals, mask, prefix, prio }),
        1 => Just(Op::Clone),
    ]
}

/// A rule of the reference model: (id, key, mask, priority, value = insertion sequence).
type ModelRule = (RuleId, FlowKey, FlowMask, u32, u64);

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
        let mut saved: Vec<(Classifier<u64>, Vec<ModelRule>)> = Vec::new();
        for op in ops {
            match op {
                Op::Replace { vals, mask, prefix, prio } => {
                    let k = small_key(&vals);
                    let m = mask_of(mask, prefix);
                    let prio = u32::from(prio);
                    // The model: the oldest rule with this exact match and priority goes.
                    let same = model
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.2 == m && r.1.masked(&m) == k.masked(&m) && r.3 == prio)
                        .min_by_key(|(_, r)| r.4)
                        .map(|(i, _)| i);
                    let (id, old) = c.replace(&k, &m, prio, seq);
                    match same {
                        Some(i) => {
                            let gone = model.remove(i);
                            prop_assert_eq!(old.map(|r| r.value), Some(gone.4));
                            prop_assert!(c.get(gone.0).is_none());
                        }
                        None => prop_assert!(old.is_none()),
                    }
                    prop_assert_eq!(c.get(id).map(|r| r.value), Some(seq));
                    model.push((id, k, m, prio, seq));
                    seq += 1;
                }
                Op::Clone => saved.push((c.clone(), model.clone())),
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
        // Clones taken along the way were not changed by what came after them.
        for (c, model) in saved {
            prop_assert_eq!(c.len(), model.len());
            for (id, k, m, prio, seq) in &model {
                let r = c.get(*id).expect("rule still in the clone");
                prop_assert_eq!((r.key(), r.priority, r.value), (k.masked(m), *prio, *seq));
            }
            for vals in [[0u8; 6], [1; 6], [2; 6], [3; 6], flips] {
                let k = small_key(&vals);
                let mut wc = FlowKey::ZERO;
                prop_assert_eq!(c.lookup(&k, &mut wc).map(|(id, _)| id), linear(&model, &k));
            }
        }
    }
}

/// Thousands of rules (several storage chunks): removals, reuse of freed slots, replaces and
/// a clone changed afterwards, each lookup checked.
#[test]
fn many_rules_across_chunks_and_clones() {
    let m = {
        let mut m = FlowKey::ZERO;
        m.add_field(Field::EthType);
        m.add_field(Field::Ipv4Src);
        m
    };
    let k = |i: u32| {
        let mut k = FlowKey::ZERO;
        k.set(Field::EthType, 0x800);
        k.set(Field::Ipv4Src, u128::from(i));
        k
    };
    let find = |c: &Classifier<u32>, i: u32| {
        let mut wc = FlowKey::ZERO;
        c.lookup(&k(i), &mut wc).map(|(_, r)| r.value)
    };
    let mut c = Classifier::new();
    let ids: Vec<RuleId> = (0..5000).map(|i| c.insert(&k(i), &m, 1, i)).collect();
    for i in (0..5000).step_by(3) {
        assert_eq!(c.remove(ids[i as usize]).map(|r| r.value), Some(i));
    }
    let before = c.clone();
    // Freed slots are reused; replaces keep one rule per match.
    for i in (0..5000).step_by(3) {
        c.insert(&k(i), &m, 1, i + 10_000);
    }
    for i in (1..5000).step_by(7) {
        let (_, old) = c.replace(&k(i), &m, 1, i + 20_000);
        assert!(old.is_some());
    }
    assert_eq!(c.len(), 5000);
    for i in 0..5000 {
        let want = if i % 7 == 1 {
            i + 20_000
        } else if i % 3 == 0 {
            i + 10_000
        } else {
            i
        };
        assert_eq!(find(&c, i), Some(want), "rule {i}");
        assert_eq!(
            find(&before, i),
            (i % 3 != 0).then_some(i),
            "clone, rule {i}"
        );
    }
    assert_eq!(before.len(), 5000 - 1667);
    c.clear();
    assert!(c.is_empty() && find(&c, 5).is_none() && find(&before, 5) == Some(5));
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
