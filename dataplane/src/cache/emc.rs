//! The exact-match cache: a set-associative table from a packet's whole key to its
//! megaflow, private to one datapath thread.
//!
//! Layout, for few cache lines per probe: a dense array of 32-bit signatures, [`WAYS`] per
//! bucket (one 16-byte group; 64 KB for 16,384 entries), and a separate array of entries.
//! A probe reads its bucket's signatures and only the entries whose signature matches. An
//! entry keeps the key compacted to the words of its map (`Parsed::map`: the words that may
//! be non-zero), so an Ethernet/IPv4/L4 key is six words and its entry's first cache line
//! holds all of it (a map inside `COMMON_WORDS` keeps the six `COMMON` words at fixed
//! places, for straight-line compares). A key matches an entry when the maps are equal and so are the mapped
//! words (every other word is zero in both).

use std::sync::Arc;

use super::Megaflow;
use crate::packet::{ALL_WORDS, COMMON, COMMON_WORDS, FlowKey, KEY_WORDS};

/// Entries per bucket.
pub const WAYS: usize = 4;

/// [`Emc::probe`]'s "no entry": no index is this large.
pub const NO_HINT: u32 = u32::MAX;

/// One entry: 8-byte megaflow reference, the map, then the mapped words in order
/// (`repr(C)`: in this order, so that the reference, the map and six words are the first
/// cache line).
#[derive(Clone, Default)]
#[repr(C, align(64))]
struct Entry {
    mf: Option<Arc<Megaflow>>,
    map: u32,
    words: [u64; KEY_WORDS],
}

const _: () = assert!(std::mem::offset_of!(Entry, words) + 6 * 8 <= 64);

impl Entry {
    #[inline(always)]
    fn matches(&self, key: &FlowKey, map: u32) -> bool {
        if self.map != map {
            return false;
        }
        if map & !COMMON_WORDS == 0 {
            let (k, e) = (&key.w, &self.words);
            let diff = (k[COMMON[0]] ^ e[0])
                | (k[COMMON[1]] ^ e[1])
                | (k[COMMON[2]] ^ e[2])
                | (k[COMMON[3]] ^ e[3])
                | (k[COMMON[4]] ^ e[4])
                | (k[COMMON[5]] ^ e[5]);
            return diff == 0;
        }
        let mut m = map & ALL_WORDS;
        let mut diff = 0;
        for &w in &self.words {
            if m == 0 {
                break;
            }
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            diff |= w ^ key.w.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }

    fn set(&mut self, key: &FlowKey, map: u32, mf: Arc<Megaflow>) {
        self.mf = Some(mf);
        self.map = map;
        if map & !COMMON_WORDS == 0 {
            // Fixed places (words outside the map are zero).
            for (w, &i) in self.words.iter_mut().zip(&COMMON) {
                *w = key.w[i];
            }
            return;
        }
        let mut m = map & ALL_WORDS;
        for w in &mut self.words {
            if m == 0 {
                break;
            }
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            *w = key.w.get(i).copied().unwrap_or(0);
        }
    }
}

/// The cache. Signature 0 marks an empty way.
pub struct Emc {
    sigs: Vec<[u32; WAYS]>,
    entries: Vec<Entry>,
    /// Round-robin victim when a bucket is full.
    victim: usize,
    /// Signature bits kept (all but in tests: 0 makes every signature collide, so that
    /// every probe compares keys).
    sig_mask: u32,
}

impl Emc {
    /// A cache of at least `entries` entries (a power of two, at least [`WAYS`]).
    pub fn new(entries: usize) -> Emc {
        let n = entries.max(WAYS).next_power_of_two();
        Emc {
            sigs: vec![[0; WAYS]; n / WAYS],
            entries: vec![Entry::default(); n],
            victim: 0,
            sig_mask: u32::MAX,
        }
    }

    /// Keep only `mask`'s bits of the signatures (0: all collide). Drops every entry.
    pub fn set_sig_mask(&mut self, mask: u32) {
        self.clear();
        self.sig_mask = mask;
    }

    #[inline(always)]
    fn sig(&self, h: u64) -> u32 {
        ((h >> 32) as u32 & self.sig_mask) | 1
    }

    /// The key's two buckets: `h`'s low bits, and bits of its upper half (which the
    /// signature also comes from, so two keys that share both buckets usually differ in
    /// their signatures). A key lives in either; inserts fill the first before the second,
    /// so that a bucket with more than [`WAYS`] keys overflows into its second choice
    /// instead of evicting (power of two choices: at 10k keys in 16k entries, next to no
    /// key has both buckets full).
    #[inline(always)]
    fn buckets(&self, h: u64) -> [usize; 2] {
        let m = self.sigs.len() - 1;
        [(h as usize) & m, ((h >> 40) as usize) & m]
    }

    #[inline(always)]
    fn find_in(&self, b: usize, s: u32, key: &FlowKey, map: u32) -> Option<usize> {
        let sigs = self.sigs.get(b)?;
        for (w, &x) in sigs.iter().enumerate() {
            if x == s
                && let Some(e) = self.entries.get(b * WAYS + w)
                && e.matches(key, map)
            {
                return Some(b * WAYS + w);
            }
        }
        None
    }

    /// The megaflow cached for `key` (with word map `map`, hash `h`).
    #[inline(always)]
    pub fn find(&self, h: u64, key: &FlowKey, map: u32) -> Option<&Arc<Megaflow>> {
        let [b1, b2] = self.buckets(h);
        let s = self.sig(h);
        let i = match self.find_in(b1, s, key, map) {
            Some(i) => i,
            None => self.find_in(b2, s, key, map)?,
        };
        self.entries.get(i)?.mf.as_ref()
    }

    /// Reads what [`Emc::find`] for hash `h` will read first (the buckets' signatures),
    /// so that a batch can take the cache misses of all its packets together before
    /// running any. Returns the first entry whose signature matches, or [`NO_HINT`]: a
    /// hint for [`Emc::find_hinted`] and [`Emc::megaflow_at`], not checked against a key.
    #[inline(always)]
    pub fn probe(&self, h: u64) -> u32 {
        let s = self.sig(h);
        for b in self.buckets(h) {
            if let Some(sigs) = self.sigs.get(b)
                && let Some(w) = sigs.iter().position(|&x| x == s)
            {
                return (b * WAYS + w) as u32;
            }
        }
        NO_HINT
    }

    /// The megaflow entry `i` holds, whatever its key (for reading its line ahead).
    #[inline(always)]
    pub fn megaflow_at(&self, i: u32) -> Option<&Megaflow> {
        self.entries.get(i as usize)?.mf.as_deref()
    }

    /// [`Emc::find`], trying entry `hint` (from [`Emc::probe`] of the same hash) first:
    /// an entry that holds `key` is the key's entry whatever happened since the probe (an
    /// entry is only ever written whole), and anything else falls back to the full probe.
    #[inline(always)]
    pub fn find_hinted(
        &self,
        hint: u32,
        h: u64,
        key: &FlowKey,
        map: u32,
    ) -> Option<&Arc<Megaflow>> {
        if let Some(e) = self.entries.get(hint as usize)
            && e.matches(key, map)
            && let Some(mf) = e.mf.as_ref()
        {
            return Some(mf);
        }
        self.find(h, key, map)
    }

    /// Caches `mf` for `key` (replacing the entry for the same key, else an empty way of
    /// its first bucket, else of its second, else the first bucket's ways in turn).
    pub fn insert(&mut self, h: u64, key: &FlowKey, map: u32, mf: Arc<Megaflow>) {
        let [b1, b2] = self.buckets(h);
        let s = self.sig(h);
        let empty =
            |sigs: &[u32; WAYS], b: usize| sigs.iter().position(|&x| x == 0).map(|w| b * WAYS + w);
        let i = match self
            .find_in(b1, s, key, map)
            .or_else(|| self.find_in(b2, s, key, map))
        {
            Some(i) => i,
            None => match empty(&self.sigs[b1], b1).or_else(|| empty(&self.sigs[b2], b2)) {
                Some(i) => i,
                None => {
                    self.victim = (self.victim + 1) % WAYS;
                    b1 * WAYS + self.victim
                }
            },
        };
        self.sigs[i / WAYS][i % WAYS] = s;
        self.entries[i].set(key, map, mf);
    }

    /// Drops the entries whose megaflow `keep` does not want.
    pub fn retain(&mut self, keep: impl Fn(&Megaflow) -> bool) {
        for (b, sigs) in self.sigs.iter_mut().enumerate() {
            for (w, x) in sigs.iter_mut().enumerate() {
                let e = &mut self.entries[b * WAYS + w];
                if *x != 0 && !e.mf.as_deref().is_some_and(&keep) {
                    *x = 0;
                    e.mf = None;
                }
            }
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        for (b, sigs) in self.sigs.iter_mut().enumerate() {
            for (w, x) in sigs.iter_mut().enumerate() {
                if *x != 0 {
                    *x = 0;
                    self.entries[b * WAYS + w].mf = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mf(tag: u64) -> Arc<Megaflow> {
        Arc::new(Megaflow {
            generation: tag,
            ..Megaflow::empty()
        })
    }

    fn key_of(map: u32, seed: u64) -> FlowKey {
        let mut k = FlowKey::ZERO;
        for i in 0..KEY_WORDS {
            if map & (1 << i) != 0 {
                k.w[i] = seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .rotate_left(i as u32)
                    | 1;
            }
        }
        k
    }

    /// Every mapped word takes part in the compare, on both the fixed (COMMON) and the
    /// general path, and a different map never matches: signatures all collide here, so
    /// only the key compare tells entries apart.
    #[test]
    fn compare_covers_every_mapped_word() {
        let maps = [
            COMMON_WORDS,
            1 | 1 << 3 | 1 << 4 | 1 << 6,
            ALL_WORDS,
            1 | 1 << 3 | 1 << 4 | 1 << 6 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12 | 1 << 17,
            1 << 2 | 1 << 15,
        ];
        for &map in &maps {
            let mut emc = Emc::new(4);
            emc.set_sig_mask(0);
            let a = key_of(map, 7);
            let h = a.hash_map(map);
            emc.insert(h, &a, map, mf(1));
            assert_eq!(emc.find(h, &a, map).map(|m| m.generation), Some(1));
            for i in 0..KEY_WORDS {
                if map & (1 << i) == 0 {
                    continue;
                }
                let mut b = a;
                b.w[i] ^= 0x10;
                assert!(emc.find(h, &b, map).is_none(), "map {map:#x} word {i}");
            }
            // Same words, another map (a word mapped but zero).
            let wider = map | (!map & ALL_WORDS).checked_next_power_of_two().unwrap_or(0);
            if wider != map && wider & !ALL_WORDS == 0 {
                assert!(
                    emc.find(h, &a, wider).is_none(),
                    "map {map:#x} vs {wider:#x}"
                );
            }
        }
    }

    /// Keys whose first bucket is full go to their second: eight keys sharing a first
    /// bucket (four ways) all stay and are found, with or without a hint, and a hint that
    /// points at another key's entry (or nowhere) still finds the right one.
    #[test]
    fn full_first_bucket_overflows_into_the_second() {
        let mut emc = Emc::new(64); // 16 buckets
        let map = COMMON_WORDS;
        let keys: Vec<FlowKey> = (0..8).map(|s| key_of(map, s + 500)).collect();
        // Same first bucket (low bits 3), a different second bucket each (bits 40..).
        let h = |n: usize| 3 | ((n as u64 + 1) << 40) | ((n as u64 + 7) << 32);
        for (n, k) in keys.iter().enumerate() {
            emc.insert(h(n), k, map, mf(n as u64));
        }
        for (n, k) in keys.iter().enumerate() {
            let tag = |m: Option<&Arc<Megaflow>>| m.map(|m| m.generation);
            assert_eq!(tag(emc.find(h(n), k, map)), Some(n as u64), "key {n}");
            let hint = emc.probe(h(n));
            assert_ne!(hint, NO_HINT);
            assert_eq!(tag(emc.find_hinted(hint, h(n), k, map)), Some(n as u64));
            assert_eq!(tag(emc.find_hinted(NO_HINT, h(n), k, map)), Some(n as u64));
            for other in 0..8 {
                let wrong = emc.probe(h(other));
                assert_eq!(tag(emc.find_hinted(wrong, h(n), k, map)), Some(n as u64));
            }
            // Another key with this key's hash is not found through any hint.
            let stranger = key_of(map, 999);
            assert!(emc.find_hinted(hint, h(n), &stranger, map).is_none());
        }
        // A ninth key whose both buckets are the full one evicts one of its keys.
        let extra = key_of(map, 9);
        let hx = 3 | (3 << 40) | (99 << 32);
        emc.insert(hx, &extra, map, mf(9));
        assert!(emc.find(hx, &extra, map).is_some());
        let still = keys
            .iter()
            .enumerate()
            .filter(|(n, k)| emc.find(h(*n), k, map).is_some())
            .count();
        assert_eq!(still, 7);
        emc.clear();
        for (n, k) in keys.iter().enumerate() {
            assert!(emc.find_hinted(emc.probe(h(n)), h(n), k, map).is_none());
            assert!(emc.find_hinted(n as u32, h(n), k, map).is_none());
        }
    }

    /// Four ways per bucket: four keys of one bucket stay; a fifth evicts one; the same key
    /// inserted again replaces its own entry; clear empties everything.
    #[test]
    fn ways_eviction_and_clear() {
        let mut emc = Emc::new(4);
        let map = COMMON_WORDS;
        let keys: Vec<FlowKey> = (0..5).map(|s| key_of(map, s + 100)).collect();
        for (n, k) in keys.iter().take(4).enumerate() {
            emc.insert(k.hash_map(map), k, map, mf(n as u64));
        }
        let found =
            |emc: &Emc, k: &FlowKey| emc.find(k.hash_map(map), k, map).map(|m| m.generation);
        for (n, k) in keys.iter().take(4).enumerate() {
            assert_eq!(found(&emc, k), Some(n as u64));
        }
        emc.insert(keys[0].hash_map(map), &keys[0], map, mf(9));
        assert_eq!(found(&emc, &keys[0]), Some(9));
        assert_eq!(
            (1..4).filter(|&n| found(&emc, &keys[n]).is_some()).count(),
            3
        );
        emc.insert(keys[4].hash_map(map), &keys[4], map, mf(4));
        assert_eq!(found(&emc, &keys[4]), Some(4));
        assert_eq!(keys.iter().filter(|k| found(&emc, k).is_some()).count(), 4);
        emc.clear();
        assert!(keys.iter().all(|k| found(&emc, k).is_none()));
    }
}
