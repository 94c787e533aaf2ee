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

/// One entry: 8-byte megaflow reference, the map, then the mapped words in order.
#[derive(Clone, Default)]
#[repr(align(64))]
struct Entry {
    mf: Option<Arc<Megaflow>>,
    map: u32,
    words: [u64; KEY_WORDS],
}

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

    #[inline(always)]
    fn bucket(&self, h: u64) -> usize {
        (h as usize) & (self.sigs.len() - 1)
    }

    /// The megaflow cached for `key` (with word map `map`, hash `h`).
    #[inline(always)]
    pub fn find(&self, h: u64, key: &FlowKey, map: u32) -> Option<&Arc<Megaflow>> {
        let b = self.bucket(h);
        let s = self.sig(h);
        let sigs = self.sigs.get(b)?;
        for (w, &x) in sigs.iter().enumerate() {
            if x == s
                && let Some(e) = self.entries.get(b * WAYS + w)
                && e.matches(key, map)
            {
                return e.mf.as_ref();
            }
        }
        None
    }

    /// Reads what [`Emc::find`] for hash `h` will read first (the bucket's signatures and
    /// the map of the first entry whose signature matches), so that a batch can take the
    /// cache misses of all its packets together before running any. Returns the value read
    /// (give it to `black_box`).
    #[inline(always)]
    pub fn touch(&self, h: u64) -> u32 {
        let b = self.bucket(h);
        let s = self.sig(h);
        let Some(sigs) = self.sigs.get(b) else {
            return 0;
        };
        match sigs.iter().position(|&x| x == s) {
            Some(w) => self.entries.get(b * WAYS + w).map_or(0, |e| e.map),
            None => sigs[0],
        }
    }

    /// Caches `mf` for `key` (replacing the entry for the same key, else an empty way, else
    /// the bucket's ways in turn).
    pub fn insert(&mut self, h: u64, key: &FlowKey, map: u32, mf: Arc<Megaflow>) {
        let b = self.bucket(h);
        let s = self.sig(h);
        let base = b * WAYS;
        let sigs = self.sigs[b];
        let same = (0..WAYS).find(|&w| sigs[w] == s && self.entries[base + w].matches(key, map));
        let w = match same.or_else(|| sigs.iter().position(|&x| x == 0)) {
            Some(w) => w,
            None => {
                self.victim = (self.victim + 1) % WAYS;
                self.victim
            }
        };
        self.sigs[b][w] = s;
        self.entries[base + w].set(key, map, mf);
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
    use std::sync::atomic::AtomicU64;

    fn mf(tag: u64) -> Arc<Megaflow> {
        Arc::new(Megaflow {
            key: FlowKey::ZERO,
            mask: FlowKey::ZERO,
            actions: Vec::new(),
            flows: Vec::new(),
            trace: Vec::new(),
            groups: Vec::new(),
            generation: tag,
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            used: AtomicU64::new(0),
            synced: (AtomicU64::new(0), AtomicU64::new(0)),
            fast: None,
            learn: None,
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
