//! The priority classifier: tuple space search over (masked key, mask, priority) rules.
//!
//! Rules with the same mask live in one subtable, a hash map from the masked key to the rules
//! with that key. Subtables are kept ordered by the highest priority they hold, so a lookup
//! stops as soon as the best match found so far beats every rule left. Inserting or removing
//! a rule touches one subtable; nothing is ever rebuilt.
//!
//! A lookup also accumulates, into a caller-given mask, the mask of every subtable it
//! consulted, matched or not: any packet that agrees with the looked-up key on those bits gets
//! the same answer, which is what a megaflow cache entry needs.
//!
//! Ties: OpenFlow 1.3 leaves overlapping rules of equal priority undefined; here the rule
//! inserted first wins, always.
//!
//! This module knows nothing of OpenFlow messages; the pipeline owns the rules' meaning.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::packet::{FlowKey, FlowMask};

/// Identifies a rule in one [`Classifier`]; stays valid until the rule is removed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct RuleId {
    index: u32,
    generation: u32,
}

/// A rule as stored.
#[derive(Clone, Debug)]
pub struct Rule<T> {
    /// The match value, already masked.
    pub key: FlowKey,
    /// The match mask (shared by every rule of its subtable).
    pub mask: Arc<FlowMask>,
    /// Higher wins.
    pub priority: u32,
    /// Insertion sequence number: among equal priorities, lower wins.
    pub seq: u64,
    /// What the owner attached.
    pub value: T,
}

#[derive(Clone, Debug)]
struct Slot<T> {
    generation: u32,
    rule: Option<Rule<T>>,
}

/// Hasher for keys that are already hashes.
#[derive(Default, Clone, Copy, Debug)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Rule indices with one masked-key hash, best first. Almost always one rule: kept inline,
/// no allocation.
#[derive(Clone, Debug)]
enum Bucket {
    One(u32),
    Many(Vec<u32>),
}

impl Bucket {
    #[inline(always)]
    fn as_slice(&self) -> &[u32] {
        match self {
            Bucket::One(j) => std::slice::from_ref(j),
            Bucket::Many(v) => v,
        }
    }

    fn insert(&mut self, pos: usize, index: u32) {
        match self {
            Bucket::One(j) => {
                let mut v = vec![*j];
                v.insert(pos, index);
                *self = Bucket::Many(v);
            }
            Bucket::Many(v) => v.insert(pos, index),
        }
    }

    /// Removes `index`; returns whether the bucket is now empty.
    fn remove(&mut self, index: u32) -> bool {
        match self {
            Bucket::One(j) => *j == index,
            Bucket::Many(v) => {
                v.retain(|&j| j != index);
                match v[..] {
                    [] => true,
                    [only] => {
                        *self = Bucket::One(only);
                        false
                    }
                    _ => false,
                }
            }
        }
    }
}

type HashIndex = HashMap<u64, Bucket, BuildHasherDefault<IdHasher>>;

#[derive(Clone, Debug)]
struct Subtable {
    /// Leading stages (cumulative masks that stop short of `mask`): a key whose hash under
    /// a stage's mask is not in the stage's counts matches nothing here, and the lookup only
    /// depended on that stage's bits.
    stages: Vec<Stage>,
    mask: Arc<FlowMask>,
    /// Non-zero words of `mask`, the only ones hashed and compared.
    words: Vec<u8>,
    /// Masked-key hash → rule indices, best first (priority desc, seq asc).
    map: HashIndex,
    /// Priority → number of rules, to keep `max_priority` on removal.
    prios: BTreeMap<u32, u32>,
    max_priority: u32,
    /// Creation order, to keep the subtable order deterministic among equal priorities.
    created: u64,
}

#[derive(Clone, Debug)]
struct Stage {
    mask: FlowMask,
    words: Vec<u8>,
    /// Hash of a rule's key under `mask` → number of rules.
    counts: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    /// `Some(v)` while every rule the subtable ever held has the value `v` under `mask` (a
    /// table of IPv4 routes: every rule has eth_type 0x800): the stage is then checked by
    /// comparing those words, without hashing or probing `counts`. Once two values have
    /// been seen it stays `None` (removals never make it wrong, only less useful).
    only: Option<FlowKey>,
}

impl Stage {
    /// Whether some rule of the subtable may share `key`'s value under this stage's mask
    /// (false: none does).
    #[inline(always)]
    fn admits(&self, key: &FlowKey) -> bool {
        match &self.only {
            Some(v) => key.matches_words(&self.mask, v, &self.words),
            None => self
                .counts
                .contains_key(&key.hash_masked(&self.mask, &self.words)),
        }
    }
}

fn stages_for(mask: &FlowMask) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    let mut cum = FlowKey::ZERO;
    for s in crate::packet::key::stage_masks() {
        cum.or_assign(&s.masked(mask));
        if cum.is_zero() || cum == *mask || out.last().is_some_and(|l| l.mask == cum) {
            continue;
        }
        out.push(Stage {
            mask: cum,
            words: cum.nonzero_words(),
            counts: HashMap::default(),
            only: None,
        });
    }
    out
}

/// Tuple space search classifier, generic over what a rule carries.
#[derive(Clone)]
pub struct Classifier<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    subtables: Vec<Subtable>,
    next_seq: u64,
    len: usize,
    /// Whether subtables keep stage counts (see [`Classifier::new_unstaged`]).
    staged: bool,
}

impl<T> fmt::Debug for Classifier<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Classifier")
            .field("rules", &self.len)
            .field("subtables", &self.subtables.len())
            .finish()
    }
}

impl<T> Default for Classifier<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[inline]
fn better(a: (u32, u64), b: (u32, u64)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

impl<T> Classifier<T> {
    /// An empty classifier.
    pub fn new() -> Self {
        Classifier {
            slots: Vec::new(),
            free: Vec::new(),
            subtables: Vec::new(),
            next_seq: 0,
            len: 0,
            staged: true,
        }
    }

    /// An empty classifier that keeps no per-stage counts: for a table searched only with
    /// [`Classifier::find_any`] (the megaflow cache), where the staged wildcards of
    /// [`Classifier::lookup`] are never needed, so inserts skip the stage maps. `lookup` still
    /// gives correct answers, with every subtable's whole mask in the wildcards.
    pub fn new_unstaged() -> Self {
        Classifier {
            staged: false,
            ..Self::new()
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of distinct masks.
    pub fn subtable_count(&self) -> usize {
        self.subtables.len()
    }

    /// Adds a rule; `key` is masked here. Never replaces: a rule with the same match and
    /// priority is kept, and (being older) wins; the pipeline decides about overlaps.
    pub fn insert(&mut self, key: &FlowKey, mask: &FlowMask, priority: u32, value: T) -> RuleId {
        let key = key.masked(mask);
        let seq = self.next_seq;
        self.next_seq += 1;
        let st_idx = match self.subtables.iter().position(|s| *s.mask == *mask) {
            Some(i) => i,
            None => {
                self.subtables.push(Subtable {
                    stages: if self.staged {
                        stages_for(mask)
                    } else {
                        Vec::new()
                    },
                    mask: Arc::new(*mask),
                    words: mask.nonzero_words(),
                    map: HashIndex::default(),
                    prios: BTreeMap::new(),
                    max_priority: 0,
                    created: seq,
                });
                self.subtables.len() - 1
            }
        };
        let rule = Rule {
            key,
            mask: self.subtables[st_idx].mask.clone(),
            priority,
            seq,
            value,
        };
        let (index, generation) = match self.free.pop() {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                slot.rule = Some(rule);
                (i, slot.generation)
            }
            None => {
                let i = u32::try_from(self.slots.len()).expect("fewer than 2^32 rules");
                self.slots.push(Slot {
                    generation: 0,
                    rule: Some(rule),
                });
                (i, 0)
            }
        };
        self.len += 1;

        let slots = &self.slots;
        let st = &mut self.subtables[st_idx];
        let first = st.prios.is_empty();
        for stage in &mut st.stages {
            *stage
                .counts
                .entry(key.hash_masked(&stage.mask, &stage.words))
                .or_default() += 1;
            if first {
                stage.only = Some(key.masked(&stage.mask));
            } else if let Some(v) = &stage.only
                && !key.matches_words(&stage.mask, v, &stage.words)
            {
                stage.only = None;
            }
        }
        let h = key.hash_masked(&st.mask, &st.words);
        match st.map.entry(h) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(Bucket::One(index));
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let bucket = e.get_mut();
                let pos = bucket
                    .as_slice()
                    .iter()
                    .position(|&j| {
                        let r = rule_at(slots, j);
                        better((priority, seq), (r.priority, r.seq))
                    })
                    .unwrap_or(bucket.as_slice().len());
                bucket.insert(pos, index);
            }
        }
        *st.prios.entry(priority).or_default() += 1;
        let grew = priority > st.max_priority || st.prios.len() == 1;
        st.max_priority = st.max_priority.max(priority);
        if grew {
            self.resort();
        }
        RuleId { index, generation }
    }

    fn resort(&mut self) {
        self.subtables.sort_by(|a, b| {
            b.max_priority
                .cmp(&a.max_priority)
                .then(a.created.cmp(&b.created))
        });
    }

    /// The rule `id` names, if it is still there.
    pub fn get(&self, id: RuleId) -> Option<&Rule<T>> {
        let slot = self.slots.get(id.index as usize)?;
        if slot.generation == id.generation {
            slot.rule.as_ref()
        } else {
            None
        }
    }

    /// The value of rule `id`, mutably.
    pub fn get_mut(&mut self, id: RuleId) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.index as usize)?;
        if slot.generation == id.generation {
            slot.rule.as_mut().map(|r| &mut r.value)
        } else {
            None
        }
    }

    /// Removes rule `id` and returns it.
    pub fn remove(&mut self, id: RuleId) -> Option<Rule<T>> {
        self.get(id)?;
        let slot = &mut self.slots[id.index as usize];
        let rule = slot.rule.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index);
        self.len -= 1;
        let st_idx = self.subtables.iter().position(|s| s.mask == rule.mask)?;
        let st = &mut self.subtables[st_idx];
        for stage in &mut st.stages {
            let h = rule.key.hash_masked(&stage.mask, &stage.words);
            if let Some(n) = stage.counts.get_mut(&h) {
                *n -= 1;
                if *n == 0 {
                    stage.counts.remove(&h);
                }
            }
        }
        let h = rule.key.hash_masked(&st.mask, &st.words);
        if let Some(bucket) = st.map.get_mut(&h)
            && bucket.remove(id.index)
        {
            st.map.remove(&h);
        }
        if let Some(n) = st.prios.get_mut(&rule.priority) {
            *n -= 1;
            if *n == 0 {
                st.prios.remove(&rule.priority);
            }
        }
        if st.prios.is_empty() {
            self.subtables.remove(st_idx);
        } else {
            let max = st.prios.keys().next_back().copied().unwrap_or(0);
            if max != st.max_priority {
                st.max_priority = max;
                self.resort();
            }
        }
        Some(rule)
    }

    /// The highest-priority rule matching `key`. Every bit this lookup depended on is OR-ed
    /// into `wc`: all keys equal to `key` under `wc` get the same answer.
    #[inline]
    pub fn lookup(&self, key: &FlowKey, wc: &mut FlowMask) -> Option<(RuleId, &Rule<T>)> {
        let mut best: Option<(u32, &Rule<T>)> = None;
        for st in &self.subtables {
            if let Some((_, b)) = best
                && b.priority > st.max_priority
            {
                break;
            }
            // Staged: stop at the first stage no rule here shares with the key.
            let missed = st.stages.iter().find(|s| !s.admits(key));
            if let Some(s) = missed {
                wc.or_assign_words(&s.mask, &s.words);
                continue;
            }
            wc.or_assign_words(&st.mask, &st.words);
            let h = key.hash_masked(&st.mask, &st.words);
            let Some(bucket) = st.map.get(&h) else {
                continue;
            };
            for &j in bucket.as_slice() {
                let r = rule_at(&self.slots, j);
                if key.matches_words(&st.mask, &r.key, &st.words) {
                    if best.is_none_or(|(_, b)| better((r.priority, r.seq), (b.priority, b.seq))) {
                        best = Some((j, r));
                    }
                    break;
                }
            }
        }
        best.map(|(j, r)| {
            (
                RuleId {
                    index: j,
                    generation: self.generation(j),
                },
                r,
            )
        })
    }

    /// Any rule matching `key`, ignoring priorities (the first found): for a table whose
    /// overlapping rules agree, like the megaflow cache.
    #[inline]
    pub fn find_any(&self, key: &FlowKey) -> Option<&Rule<T>> {
        for st in &self.subtables {
            let h = key.hash_masked(&st.mask, &st.words);
            let Some(bucket) = st.map.get(&h) else {
                continue;
            };
            for &j in bucket.as_slice() {
                let r = rule_at(&self.slots, j);
                if key.matches_words(&st.mask, &r.key, &st.words) {
                    return Some(r);
                }
            }
        }
        None
    }

    fn generation(&self, index: u32) -> u32 {
        self.slots[index as usize].generation
    }

    /// The rule with exactly this match (mask and masked key) and priority, if any (the
    /// oldest if several): what a strict flow-mod names.
    pub fn find_exact(&self, key: &FlowKey, mask: &FlowMask, priority: u32) -> Option<RuleId> {
        let key = key.masked(mask);
        let st = self.subtables.iter().find(|s| *s.mask == *mask)?;
        let h = key.hash_masked(&st.mask, &st.words);
        st.map.get(&h)?.as_slice().iter().copied().find_map(|j| {
            let r = rule_at(&self.slots, j);
            (r.key == key && r.priority == priority).then(|| RuleId {
                index: j,
                generation: self.generation(j),
            })
        })
    }

    /// Every rule, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (RuleId, &Rule<T>)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            let id = RuleId {
                index: i as u32,
                generation: s.generation,
            };
            Some((id, s.rule.as_ref()?))
        })
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        // Every used slot is freed with a new generation (ids held elsewhere go stale, as
        // after `remove`); the subtables go whole, without per-rule hash updates.
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.rule.take().is_some() {
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(i as u32);
            }
        }
        self.subtables.clear();
        self.len = 0;
    }
}

#[inline(always)]
fn rule_at<T>(slots: &[Slot<T>], index: u32) -> &Rule<T> {
    // Buckets only ever hold used slots.
    slots[index as usize]
        .rule
        .as_ref()
        .expect("classifier bucket points at a free slot")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Field;

    fn key(f: &[(Field, u128)]) -> FlowKey {
        let mut k = FlowKey::ZERO;
        for &(field, v) in f {
            k.set(field, v);
        }
        k
    }

    fn mask(f: &[Field]) -> FlowMask {
        let mut m = FlowKey::ZERO;
        for &field in f {
            m.add_field(field);
        }
        m
    }

    #[test]
    fn priority_then_insertion_order() {
        let mut c = Classifier::new();
        let any = FlowKey::ZERO;
        let low = c.insert(&any, &any, 0, "miss");
        let ip = c.insert(
            &key(&[(Field::EthType, 0x800)]),
            &mask(&[Field::EthType]),
            10,
            "ip",
        );
        let ip2 = c.insert(
            &key(&[(Field::EthType, 0x800)]),
            &mask(&[Field::EthType]),
            10,
            "ip2",
        );
        let pk = key(&[(Field::EthType, 0x800), (Field::IpProto, 6)]);
        let mut wc = FlowKey::ZERO;
        let (id, r) = c.lookup(&pk, &mut wc).unwrap();
        assert_eq!((id, r.value), (ip, "ip"));
        assert!(wc.has_field(Field::EthType) && !wc.has_field(Field::IpProto));
        c.remove(ip);
        assert_eq!(c.lookup(&pk, &mut wc).unwrap().0, ip2);
        c.remove(ip2);
        assert_eq!(c.lookup(&pk, &mut wc).unwrap().0, low);
        assert_eq!(c.subtable_count(), 1);
        assert!(c.get(ip).is_none());
        // Stale ids do not name reused slots.
        let again = c.insert(&any, &any, 3, "x");
        assert!(c.get(ip2).is_none() && c.get(again).is_some());
    }

    #[test]
    fn wildcards_include_subtables_that_missed() {
        let mut c = Classifier::new();
        c.insert(
            &key(&[(Field::TcpDst, 80)]),
            &mask(&[Field::TcpDst]),
            100,
            1,
        );
        c.insert(&FlowKey::ZERO, &FlowKey::ZERO, 0, 2);
        let mut wc = FlowKey::ZERO;
        let (_, r) = c.lookup(&key(&[(Field::TcpDst, 443)]), &mut wc).unwrap();
        assert_eq!(r.value, 2);
        assert!(wc.has_field(Field::TcpDst));
    }

    #[test]
    fn staged_lookup_keeps_later_stages_wildcarded() {
        let mut c = Classifier::new();
        let k = key(&[
            (Field::EthType, 0x800),
            (Field::IpProto, 6),
            (Field::TcpDst, 80),
        ]);
        c.insert(
            &k,
            &mask(&[Field::EthType, Field::IpProto, Field::TcpDst]),
            10,
            1,
        );
        // A UDP packet misses at the L3 stage: its ports do not matter.
        let udp = key(&[
            (Field::EthType, 0x800),
            (Field::IpProto, 17),
            (Field::UdpDst, 80),
        ]);
        let mut wc = FlowKey::ZERO;
        assert!(c.lookup(&udp, &mut wc).is_none());
        assert!(wc.has_field(Field::IpProto) && !wc.has_field(Field::TcpDst));
        // An ARP packet misses at L2.
        let arp = key(&[(Field::EthType, 0x806)]);
        let mut wc = FlowKey::ZERO;
        assert!(c.lookup(&arp, &mut wc).is_none());
        assert!(wc.has_field(Field::EthType) && !wc.has_field(Field::IpProto));
        // A TCP packet to another port needs every field.
        let tcp = key(&[
            (Field::EthType, 0x800),
            (Field::IpProto, 6),
            (Field::TcpDst, 22),
        ]);
        let mut wc = FlowKey::ZERO;
        assert!(c.lookup(&tcp, &mut wc).is_none());
        assert!(wc.has_field(Field::TcpDst));
        c.remove(
            c.find_exact(
                &k,
                &mask(&[Field::EthType, Field::IpProto, Field::TcpDst]),
                10,
            )
            .unwrap(),
        );
        assert!(c.lookup(&k, &mut wc).is_none());
    }

    #[test]
    fn single_value_stage_turns_into_a_probe_on_a_second_value() {
        let mut c = Classifier::new();
        let m = mask(&[Field::EthType, Field::IpProto]);
        let v4 = key(&[(Field::EthType, 0x800), (Field::IpProto, 6)]);
        let v6 = key(&[(Field::EthType, 0x86dd), (Field::IpProto, 6)]);
        c.insert(&v4, &m, 10, 4);
        // One value so far: an IPv6 packet misses at the L2 stage.
        let mut wc = FlowKey::ZERO;
        assert!(c.lookup(&v6, &mut wc).is_none());
        assert!(wc.has_field(Field::EthType) && !wc.has_field(Field::IpProto));
        // A second value: both are found, and a third still misses at L2.
        c.insert(&v6, &m, 10, 6);
        let mut wc = FlowKey::ZERO;
        assert_eq!(c.lookup(&v6, &mut wc).unwrap().1.value, 6);
        assert_eq!(c.lookup(&v4, &mut wc).unwrap().1.value, 4);
        let arp = key(&[(Field::EthType, 0x806)]);
        let mut wc = FlowKey::ZERO;
        assert!(c.lookup(&arp, &mut wc).is_none());
        assert!(!wc.has_field(Field::IpProto));
    }

    #[test]
    fn early_stop_skips_lower_subtables() {
        let mut c = Classifier::new();
        c.insert(
            &key(&[(Field::EthType, 0x800)]),
            &mask(&[Field::EthType]),
            100,
            1,
        );
        c.insert(&key(&[(Field::TcpDst, 80)]), &mask(&[Field::TcpDst]), 5, 2);
        let mut wc = FlowKey::ZERO;
        let k = key(&[(Field::EthType, 0x800), (Field::TcpDst, 80)]);
        assert_eq!(c.lookup(&k, &mut wc).unwrap().1.value, 1);
        assert!(!wc.has_field(Field::TcpDst));
    }

    #[test]
    fn find_exact_is_strict() {
        let mut c = Classifier::new();
        let m = mask(&[Field::Ipv4Src]);
        let id = c.insert(&key(&[(Field::Ipv4Src, 0x0a000001)]), &m, 7, ());
        assert_eq!(
            c.find_exact(&key(&[(Field::Ipv4Src, 0x0a000001)]), &m, 7),
            Some(id)
        );
        assert_eq!(
            c.find_exact(&key(&[(Field::Ipv4Src, 0x0a000001)]), &m, 8),
            None
        );
        assert_eq!(
            c.find_exact(&key(&[(Field::Ipv4Src, 0x0a000002)]), &m, 7),
            None
        );
    }
}
