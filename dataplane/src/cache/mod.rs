//! The flow caches in front of the pipeline: an exact-match cache (full key → megaflow) and
//! the megaflow cache (wildcarded entries found by tuple space search), with the slow path
//! (pipeline translation) behind them. [`Datapath`] is one datapath thread's view: it owns
//! its caches outright, so no lock is taken on the packet path.
//!
//! Invariant (tested by a property test): for every pipeline state and packet, the actions
//! the caches give are the actions a full translation gives. Any pipeline change bumps its
//! generation, and a datapath that sees a new generation *revalidates* its megaflows (as
//! Open vSwitch's revalidators do its datapath flows): each is translated again from its
//! masked key and kept only if the result is the same — actions, the same flow and group
//! counters, a mask within its own —, so a flow-mod that does not touch a megaflow's
//! packets leaves it (and its exact-match and kernel entries) in place.
//! With more than [`REVALIDATE_MAX`] megaflows both caches are dropped instead. The same
//! holds for the MAC table the NORMAL action reads: its version is checked with the
//! generation, and a translation that changed it (learned a new or moved MAC) revalidates
//! before its own result goes in.
//!
//! Why a kept megaflow is right: a translation's mask holds every key bit its outcome
//! depended on, so translating the masked key (the bits outside the mask zero) against the
//! new pipeline gives an outcome valid for every packet equal to it under the *new* mask;
//! when that outcome is the old one and that mask within the old one, it holds for every
//! packet of the megaflow (which may now be narrower than it need be). A new flow of
//! higher priority that the megaflow's packets would have to be checked against needs bits
//! the old mask lacks: that megaflow goes.
//!
//! Counters: the packet path writes only this thread's megaflow counters (no atomic
//! read-modify-write, no shared cache line). [`Datapath::sync_stats`] adds what accumulated
//! to the OpenFlow flow and table counters; the datapath thread calls it periodically (at
//! least once a second, so idle timeouts see traffic) and before its caches are dropped.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

mod emc;
pub mod kernel;

use crate::classifier::IdHasher;
use crate::packet::{
    Field, FlowKey, FlowMask, KEY_WORDS, Parsed, RxMeta, parse_into, parse_into_hashed,
};
use crate::pipeline::exec::{FastActions, L4Csum, Sink, execute_with};
use crate::pipeline::normal::Learn;
use crate::pipeline::xlate::{Recorder, TraceStep};
use crate::pipeline::{Actions, FlowList, GroupStats, InlineVec, Nanos, Pipeline};
use crate::port::offload::VnetHdr;
use crate::port::{BATCH, RxPacket};
use emc::Emc;
use kernel::{KernelFlows, KernelKey, kernel_key, kernel_output};

/// The tables a megaflow's translation visited, each with whether a flow matched there.
pub type TableTrace = InlineVec<(u8, bool), 4>;

/// A megaflow: every packet equal to `key` under its subtable's mask gets `actions`.
///
/// Laid out (`repr(C)`, 64-byte aligned) so that what every packet of an exact-match hit
/// touches — the three counters and the compact actions — is the struct's first cache line
/// (the `Arc`'s reference counts sit in the line before it), and a sync that finds no new
/// packet reads that line only. The key follows (what a megaflow lookup compares), compacted
/// to its mask's words (one line for up to 8), then what a translation writes and a sync
/// with new packets reads. The mask is its subtable's (not repeated per megaflow).
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Megaflow {
    /// Packets that used this megaflow (written by the owning thread only).
    pub packets: AtomicU64,
    /// Bytes that used this megaflow (owning thread only).
    pub bytes: AtomicU64,
    /// `now` of the last packet (owning thread only).
    pub used: AtomicU64,
    /// `actions` in compact form, if they are only Ethernet address rewrites and outputs:
    /// the packet path runs them without the general action interpreter.
    fast: Option<FastActions>,
    /// The low 32 bits of `packets` at the last sync (whether there is anything to sync;
    /// 2^32 packets between two syncs, at least a second apart, cannot happen).
    synced_lo: AtomicU32,
    /// The masked key, compacted: word `j` is the key's word `words[j]` of its subtable
    /// (the non-zero words of the mask, in order); the rest is unused.
    key: [u64; KEY_WORDS],
    /// (packets, bytes) already added to the flow and table counters.
    synced: (AtomicU64, AtomicU64),
    /// The port the kernel may forward its packets to ([`kernel::kernel_output`]).
    pub kernel_out: Option<u32>,
    /// Pipeline generation it was built at.
    pub generation: u64,
    /// Counters of the OpenFlow flows the translation went through.
    pub flows: FlowList,
    /// Tables visited (their lookup/matched counters are credited per packet).
    pub trace: TableTrace,
    /// Groups and buckets the translation went through.
    pub groups: Vec<(Arc<GroupStats>, Vec<usize>)>,
    /// What the translation learned through NORMAL: its MAC entry is refreshed when the
    /// megaflow's counts are synced.
    pub learn: Option<Learn>,
    /// Datapath actions.
    pub actions: Actions,
}

// The hot part (counters, compact actions, sync mark) is the first cache line.
const _: () = assert!(std::mem::offset_of!(Megaflow, key) == 64);

/// What a megaflow keeps of a table visit: the table, and whether a flow matched.
impl From<TraceStep> for (u8, bool) {
    #[inline]
    fn from(step: TraceStep) -> (u8, bool) {
        (step.table_id, step.flow.is_some())
    }
}

impl Megaflow {
    /// A megaflow with nothing in it (matches nothing until a translation fills it).
    fn empty() -> Megaflow {
        Megaflow {
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            used: AtomicU64::new(0),
            fast: None,
            synced_lo: AtomicU32::new(0),
            key: [0; KEY_WORDS],
            synced: (AtomicU64::new(0), AtomicU64::new(0)),
            kernel_out: None,
            generation: 0,
            flows: FlowList::new(),
            trace: TableTrace::new(),
            groups: Vec::new(),
            learn: None,
            actions: Actions::new(),
        }
    }

    /// Empties a megaflow for reuse, as [`Megaflow::empty`] would make it (the lists keep
    /// no allocation; every line written is one a translation writes anyway).
    fn reset(&mut self) {
        *self.packets.get_mut() = 0;
        *self.bytes.get_mut() = 0;
        *self.used.get_mut() = 0;
        self.fast = None;
        *self.synced_lo.get_mut() = 0;
        *self.synced.0.get_mut() = 0;
        *self.synced.1.get_mut() = 0;
        self.kernel_out = None;
        self.flows.clear();
        self.trace.clear();
        self.groups.clear();
        self.learn = None;
        self.actions.clear();
    }

    /// Counts one packet. Only the datapath that owns the megaflow calls this, so plain
    /// load/store (no locked instruction) is enough.
    #[inline]
    fn count(&self, len: usize, now: Nanos) {
        let r = Ordering::Relaxed;
        self.packets.store(self.packets.load(r) + 1, r);
        self.bytes.store(self.bytes.load(r) + len as u64, r);
        self.used.store(now, r);
    }

    /// Adds `packets` packets of `bytes` bytes in all, the last at `now`, that were
    /// forwarded for it elsewhere (by the kernel). Only its datapath thread may call this.
    pub fn credit(&self, packets: u64, bytes: u64, now: Nanos) {
        let r = Ordering::Relaxed;
        self.packets.store(self.packets.load(r) + packets, r);
        self.bytes.store(self.bytes.load(r) + bytes, r);
        self.used.store(self.used.load(r).max(now), r);
    }

    /// Adds the counts since the last sync to the OpenFlow flows and tables it went through.
    #[inline]
    fn sync(&self, p: &Pipeline) {
        let r = Ordering::Relaxed;
        let packets = self.packets.load(r);
        if packets as u32 == self.synced_lo.load(r) {
            return;
        }
        self.sync_counts(p, packets);
    }

    fn sync_counts(&self, p: &Pipeline, packets: u64) {
        let r = Ordering::Relaxed;
        let bytes = self.bytes.load(r);
        let dp = packets - self.synced.0.load(r);
        let db = bytes - self.synced.1.load(r);
        self.synced_lo.store(packets as u32, r);
        self.synced.0.store(packets, r);
        self.synced.1.store(bytes, r);
        let used = self.used.load(r);
        if let Some(l) = self.learn {
            p.mac_table.refresh(l, used);
        }
        for f in &self.flows {
            f.add(dp, db, used);
        }
        for (g, buckets) in &self.groups {
            g.add(buckets, dp, db);
        }
        // Flows of an older generation may be gone; tables are always there.
        for &(table_id, matched) in &self.trace {
            if let Some(t) = p.tables.get(usize::from(table_id)) {
                t.lookups.fetch_add(dp, r);
                if matched {
                    t.matched.fetch_add(dp, r);
                }
            }
        }
    }
}

/// Megaflows with one masked-key hash (almost always one: no allocation).
#[derive(Debug)]
enum MfBucket {
    One(Arc<Megaflow>),
    Many(Vec<Arc<Megaflow>>),
}

impl MfBucket {
    #[inline(always)]
    fn as_slice(&self) -> &[Arc<Megaflow>] {
        match self {
            MfBucket::One(m) => std::slice::from_ref(m),
            MfBucket::Many(v) => v,
        }
    }
}

/// The megaflows of one mask (theirs: a megaflow does not repeat it): masked-key hash →
/// megaflows.
#[derive(Debug)]
struct MfSubtable {
    mask: FlowMask,
    /// Non-zero words of `mask`, the only ones hashed and compared.
    words: Vec<u8>,
    map: HashMap<u64, MfBucket, BuildHasherDefault<IdHasher>>,
}

/// The megaflow cache: tuple space search over megaflows, which never overlap in outcome
/// (any match will do: no priorities), are only added one by one and dropped all at once.
/// Each megaflow holds its own masked key, so an entry is a hash and a pointer; one
/// thread owns the table, so nothing is shared or copied on write. A flush keeps the
/// subtables and their hash maps' capacity (the same masks come back).
#[derive(Debug, Default)]
struct Megaflows {
    subtables: Vec<MfSubtable>,
    len: usize,
}

impl Megaflows {
    /// A megaflow matching `key`, if any.
    #[inline]
    fn find(&self, key: &FlowKey) -> Option<&Arc<Megaflow>> {
        for st in &self.subtables {
            if st.map.is_empty() {
                continue;
            }
            let h = key.hash_masked(&st.mask, &st.words);
            let Some(bucket) = st.map.get(&h) else {
                continue;
            };
            for mf in bucket.as_slice() {
                if key.matches_compact(&st.mask, &st.words, &mf.key) {
                    return Some(mf);
                }
            }
        }
        None
    }

    /// Adds `mf`, the megaflow of `key` under `mask` (its key already compacted).
    fn insert(&mut self, mf: Arc<Megaflow>, key: &FlowKey, mask: &FlowMask) {
        let i = match self.subtables.iter().position(|s| s.mask == *mask) {
            Some(i) => i,
            None => {
                self.subtables.push(MfSubtable {
                    mask: *mask,
                    words: mask.nonzero_words(),
                    map: HashMap::default(),
                });
                self.subtables.len() - 1
            }
        };
        let st = &mut self.subtables[i];
        let h = key.hash_masked(&st.mask, &st.words);
        match st.map.entry(h) {
            Entry::Vacant(e) => {
                e.insert(MfBucket::One(mf));
            }
            Entry::Occupied(mut e) => {
                let b = e.get_mut();
                match b {
                    MfBucket::Many(list) => list.push(mf),
                    MfBucket::One(first) => *b = MfBucket::Many(vec![first.clone(), mf]),
                }
            }
        }
        self.len += 1;
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<Megaflow>> {
        self.subtables
            .iter()
            .flat_map(|s| s.map.values().flat_map(MfBucket::as_slice))
    }

    /// Number of masks that have megaflows.
    fn masks(&self) -> usize {
        self.subtables.iter().filter(|s| !s.map.is_empty()).count()
    }

    /// Drops every megaflow into `pool`, to be reused (those someone else still holds are
    /// dropped when their turn comes: checking here would read one more line of each).
    fn clear(&mut self, pool: &mut Vec<Arc<Megaflow>>) {
        for st in &mut self.subtables {
            for (_, b) in st.map.drain() {
                match b {
                    MfBucket::One(m) => pool.push(m),
                    MfBucket::Many(v) => pool.extend(v),
                }
            }
        }
        self.len = 0;
    }
}

/// Where a packet's actions came from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Source {
    /// Exact-match cache.
    Emc,
    /// Megaflow cache.
    Megaflow,
    /// Full translation, result installed.
    SlowPath,
    /// Full translation, result not cacheable.
    Uncached,
}

/// Cache counters of one datapath.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct CacheStats {
    /// Exact-match hits.
    pub emc_hits: u64,
    /// Megaflow hits.
    pub megaflow_hits: u64,
    /// Misses (translations).
    pub misses: u64,
    /// Translations whose result could not be cached.
    pub uncacheable: u64,
    /// Cache flushes (every megaflow dropped: too many to revalidate, or the limit reached).
    pub flushes: u64,
    /// Revalidations after a pipeline or MAC table change.
    pub revalidations: u64,
    /// Megaflows a revalidation kept.
    pub revalidated: u64,
}

/// Size of the exact-match cache (entries, a power of two; [`emc::WAYS`]-way buckets).
/// 16,384 entries take 3 MB per datapath thread, of which a probe touches a 16-byte
/// signature group and, on a hit, usually one 64-byte line.
pub const EMC_ENTRIES: usize = 16_384;
/// Default megaflow cache limit.
pub const MEGAFLOW_LIMIT: usize = 200_000;
/// A pipeline change revalidates at most this many megaflows (one translation each, about
/// a microsecond: a few milliseconds of the datapath thread); with more it drops them all,
/// and the flows in use come back one translation each as their packets do.
pub const REVALIDATE_MAX: usize = 4_096;
/// A revalidation drops the megaflows no packet used for this long rather than translate
/// them again: a change costs translations of the flows in use only, as a flush did. What
/// the kernel forwards for one counts as used at a harvest, about once a second, a round
/// of many entries spread over the better part of another: well inside this, or a flow
/// the kernel carries would lose its entries at a change.
pub const REVALIDATE_IDLE: Nanos = 5_000_000_000;
/// A megaflow hit is copied into the exact-match cache once in this many (as OVS's
/// `emc-insert-inv-prob`, default 100): a flow that keeps coming gets its entry soon, while
/// traffic of one-packet microflows does not pay for an insert (and an eviction) per packet.
/// Translations (slow path) go in on the same terms, as in OVS: a slow path that sees a new
/// microflow per packet would otherwise evict an entry for every one.
pub const EMC_INSERT_INV_PROB: u32 = 100;

/// Whether this megaflow hit should be copied into the exact-match cache (one in `inv`).
#[inline]
fn emc_insert_due(count: &mut u32, inv: u32) -> bool {
    *count += 1;
    if *count >= inv {
        *count = 0;
        true
    } else {
        false
    }
}

/// Gives [`Datapath::process_batch`] the sink of each packet (its outputs may need the
/// packet's offload metadata). Every [`Sink`] is one, for all packets alike.
pub trait Sinks {
    /// The sink of one packet.
    type Sink<'a>: Sink
    where
        Self: 'a;
    /// The sink for `pkt` (as received on `in_port`), asked for just before its actions run.
    fn sink<'a, P: RxPacket>(&'a mut self, pkt: &P, in_port: u32) -> Self::Sink<'a>;
}

impl<T: Sink> Sinks for T {
    type Sink<'a>
        = &'a mut T
    where
        T: 'a;
    #[inline(always)]
    fn sink<'a, P: RxPacket>(&'a mut self, _: &P, _: u32) -> &'a mut T {
        self
    }
}

/// One datapath thread's caches.
pub struct Datapath {
    emc: Emc,
    /// Megaflow hits go into the EMC once in this many (1: always).
    emc_insert_inv_prob: u32,
    /// Megaflow hits since the last EMC insert.
    emc_insert_count: u32,
    megaflows: Megaflows,
    generation: u64,
    /// Version of the pipeline's MAC table the caches were filled at (NORMAL outcomes).
    mac_version: u64,
    /// `now` of the last packet processed (when [`Datapath::lookup`] learns).
    now: Nanos,
    limit: usize,
    /// Counters.
    pub stats: CacheStats,
    /// Results of uncacheable translations since the last sync (their counts still count).
    uncached: Vec<Arc<Megaflow>>,
    /// Megaflows dropped by the last flush, reused by translations: the slow path then
    /// allocates nothing (a megaflow is cache-line aligned, which glibc's malloc serves
    /// through its slow `memalign` path: ≈ 700 instructions).
    pool: Vec<Arc<Megaflow>>,
    /// Per-batch scratch: parsed packets.
    parsed: Vec<Parsed>,
    /// The copy a borrowed frame ([`crate::port::Frame`]) is rewritten in (copy on write).
    scratch: Vec<u8>,
    /// The kernel flow table in front of the caches, if any.
    kernel: Option<Box<dyn KernelFlows>>,
}

impl fmt::Debug for Datapath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datapath")
            .field("megaflows", &self.megaflows.len)
            .field("generation", &self.generation)
            .field("stats", &self.stats)
            .finish()
    }
}

impl Default for Datapath {
    fn default() -> Self {
        Self::new()
    }
}

impl Datapath {
    /// Empty caches.
    pub fn new() -> Self {
        Self::with_emc_entries(EMC_ENTRIES)
    }

    /// Empty caches with an exact-match cache of `entries` (rounded up to a power of two).
    pub fn with_emc_entries(entries: usize) -> Self {
        Datapath {
            emc: Emc::new(entries),
            emc_insert_inv_prob: EMC_INSERT_INV_PROB,
            emc_insert_count: 0,
            megaflows: Megaflows::default(),
            generation: 0,
            mac_version: 0,
            now: 0,
            limit: MEGAFLOW_LIMIT,
            stats: CacheStats::default(),
            uncached: Vec::new(),
            pool: Vec::new(),
            parsed: vec![Parsed::default(); BATCH],
            scratch: Vec::new(),
            kernel: None,
        }
    }

    /// Puts a kernel flow table in front of the caches: microflows that only forward are
    /// offered to it ([`kernel`]).
    pub fn set_kernel(&mut self, k: Box<dyn KernelFlows>) {
        self.kernel = Some(k);
    }

    /// The packets processed so far have been sent: the kernel flow table may take what
    /// was offered for them ([`KernelFlows::commit`]).
    pub fn commit_kernel(&mut self) {
        if let Some(k) = self.kernel.as_mut() {
            k.commit();
        }
    }

    /// Credits what the kernel forwarded to the megaflows (call before
    /// [`Datapath::sync_stats`], with the time now).
    pub fn harvest_kernel(&mut self, now: Nanos) {
        if let Some(k) = self.kernel.as_mut() {
            k.harvest(now);
        }
    }

    /// When [`Datapath::harvest_kernel`] next has work to do ([`KernelFlows::next_harvest`]).
    pub fn kernel_next_harvest(&self) -> Option<Nanos> {
        self.kernel.as_ref().and_then(|k| k.next_harvest())
    }

    /// Copy a megaflow hit into the exact-match cache once in `n` hits (1: every hit).
    pub fn set_emc_insert_inv_prob(&mut self, n: u32) {
        self.emc_insert_inv_prob = n.max(1);
    }

    /// Test aid: makes every exact-match cache signature equal, so that every probe of a
    /// non-empty bucket compares whole keys (drops the exact-match cache).
    #[doc(hidden)]
    pub fn set_emc_colliding_signatures(&mut self) {
        self.emc.set_sig_mask(0);
    }

    /// Sets the megaflow cache limit (when full, the cache is flushed before an insert).
    pub fn set_megaflow_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// Number of megaflows cached.
    pub fn megaflow_count(&self) -> usize {
        self.megaflows.len
    }

    /// Number of distinct megaflow masks (subtables a megaflow lookup may visit).
    pub fn megaflow_masks(&self) -> usize {
        self.megaflows.masks()
    }

    /// Adds every megaflow's new counts to the OpenFlow flow and table counters of `p`.
    pub fn sync_stats(&mut self, p: &Pipeline) {
        for mf in self.megaflows.iter() {
            mf.sync(p);
        }
        for mf in self.uncached.drain(..) {
            mf.sync(p);
        }
    }

    /// Drops every cached entry (counts are synced first, into `p`'s tables).
    fn flush_into(&mut self, p: &Pipeline) {
        if let Some(k) = self.kernel.as_mut() {
            k.clear(self.now, p, p.mac_table.version());
        }
        self.sync_stats(p);
        self.drop_caches();
    }

    /// Drops both caches.
    fn drop_caches(&mut self) {
        self.emc.clear();
        self.megaflows.clear(&mut self.pool);
        // Reused in address order (popped from the end), not the hash tables' order: the
        // translations after a flush then write memory mostly in sequence.
        self.pool
            .sort_unstable_by_key(|m| std::cmp::Reverse(Arc::as_ptr(m) as usize));
        self.stats.flushes += 1;
    }

    /// Revalidates the caches if the pipeline or its MAC table changed since they were
    /// filled (counts are synced into `p` first).
    #[inline]
    fn check_generation(&mut self, p: &Pipeline) {
        if p.generation() != self.generation || p.mac_table.version() != self.mac_version {
            self.mac_version = if self.generation != 0 {
                self.revalidate_into(p)
            } else {
                p.mac_table.version()
            };
            self.generation = p.generation();
        }
    }

    /// After a pipeline or MAC table change: keeps each megaflow used in the last
    /// [`REVALIDATE_IDLE`] that a translation against `p` still gives ([`still_valid`]),
    /// drops the others (counts synced first, into `p`'s tables) with their exact-match
    /// entries, and has the kernel flow table keep the entries of the megaflows kept,
    /// under `p`'s tag. With more than [`REVALIDATE_MAX`] megaflows, drops them all. Returns the MAC table version read before the first
    /// translation (they may see a newer one: then a later check revalidates again).
    fn revalidate_into(&mut self, p: &Pipeline) -> u64 {
        let mac = p.mac_table.version();
        if self.megaflows.len > REVALIDATE_MAX {
            self.flush_into(p);
            return mac;
        }
        self.sync_stats(p);
        let mut kept: HashSet<*const Megaflow> = HashSet::new();
        let mut scratch = Megaflow::empty();
        let pool = &mut self.pool;
        for st in &mut self.megaflows.subtables {
            let (mask, words) = (&st.mask, &st.words);
            let now = self.now;
            let mut keep = |mf: &Arc<Megaflow>| {
                let used = mf.used.load(Ordering::Relaxed);
                let ok = now.saturating_sub(used) < REVALIDATE_IDLE
                    && still_valid(p, mask, words, mf, &mut scratch);
                if ok {
                    kept.insert(Arc::as_ptr(mf));
                } else {
                    pool.push(mf.clone());
                }
                ok
            };
            st.map.retain(|_, bucket| match bucket {
                MfBucket::One(mf) => keep(mf),
                MfBucket::Many(list) => {
                    list.retain(&mut keep);
                    !list.is_empty()
                }
            });
        }
        self.megaflows.len = kept.len();
        self.emc.retain(|mf| kept.contains(&std::ptr::from_ref(mf)));
        if let Some(k) = self.kernel.as_mut() {
            k.revalidate(self.now, p, mac, &|mf| {
                kept.contains(&std::ptr::from_ref(mf))
            });
        }
        self.stats.revalidations += 1;
        self.stats.revalidated += kept.len() as u64;
        mac
    }

    /// The megaflow for a packet with `key` (bytes `packet`, for pop_mpls), translating and
    /// installing on a miss. Returns the actions' owner and where they came from.
    pub fn lookup(
        &mut self,
        p: &Pipeline,
        key: &FlowKey,
        packet: Option<&[u8]>,
    ) -> (Arc<Megaflow>, Source) {
        self.check_generation(p);
        let map = key.nonzero_map();
        let h = key.hash_map(map);
        if let Some(mf) = self.emc.find(h, key, map) {
            self.stats.emc_hits += 1;
            return (mf.clone(), Source::Emc);
        }
        if let Some(mf) = self.megaflows.find(key) {
            let mf = mf.clone();
            self.stats.megaflow_hits += 1;
            if emc_insert_due(&mut self.emc_insert_count, self.emc_insert_inv_prob) {
                self.emc.insert(h, key, map, mf.clone());
            }
            return (mf, Source::Megaflow);
        }
        self.translate(p, key, map, h, packet)
    }

    /// The slow path: translates `key` (word map `map`, hash `h`) and installs the result.
    fn translate(
        &mut self,
        p: &Pipeline,
        key: &FlowKey,
        map: u32,
        h: u64,
        packet: Option<&[u8]>,
    ) -> (Arc<Megaflow>, Source) {
        self.stats.misses += 1;
        let mut mf = self.fresh_megaflow();
        let m = Arc::get_mut(&mut mf).expect("a fresh megaflow is not shared");
        // Written in place: the translation's lists go straight into the megaflow.
        let rec = Recorder {
            flows: &mut m.flows,
            trace: &mut m.trace,
            groups: &mut m.groups,
        };
        let mut wc = FlowKey::ZERO;
        let t = p.translate_into(key, packet, &mut m.actions, &mut wc, rec);
        key.compact_into(&wc, &mut m.key);
        m.generation = self.generation;
        m.learn = t.learn;
        m.fast = FastActions::compile(&m.actions);
        m.kernel_out = kernel_output(&m.actions, &wc, key.get(Field::InPort) as u32);
        if t.learn.is_some_and(|l| p.mac_table.learn(l, self.now)) {
            // Cached outcomes may depend on what was just learned. This translation's
            // already counts it as learned: it may be cached once the rest is revalidated,
            // unless someone else changed the table too (then the next check revalidates
            // again).
            let v = self.revalidate_into(p);
            if v == self.mac_version + 1 {
                self.mac_version = v;
            }
        }
        if !t.cacheable {
            self.stats.uncacheable += 1;
            // Kept only so its counts reach the flows at the next sync (bounded).
            if self.uncached.len() >= 1024 {
                for old in self.uncached.drain(..) {
                    old.sync(p);
                }
            }
            self.uncached.push(mf.clone());
            return (mf, Source::Uncached);
        }
        if self.megaflows.len >= self.limit {
            self.flush_into(p);
        }
        self.megaflows.insert(mf.clone(), key, &wc);
        if emc_insert_due(&mut self.emc_insert_count, self.emc_insert_inv_prob) {
            self.emc.insert(h, key, map, mf.clone());
        }
        (mf, Source::SlowPath)
    }

    /// An empty megaflow: one the last flush dropped, or a new one.
    fn fresh_megaflow(&mut self) -> Arc<Megaflow> {
        while let Some(mut mf) = self.pool.pop() {
            if let Some(m) = Arc::get_mut(&mut mf) {
                m.reset();
                return mf;
            }
        }
        Arc::new(Megaflow::empty())
    }

    /// Runs one received packet through parse → caches → actions, at `now`, crediting flow
    /// and table counters.
    pub fn process(
        &mut self,
        p: &Pipeline,
        packet: &mut Vec<u8>,
        meta: RxMeta,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Source {
        self.process_vnet(p, packet, meta, &VnetHdr::default(), now, sink)
    }

    /// [`Datapath::process`] for a packet received with offload metadata `vnet` (a partial
    /// checksum is kept a partial checksum through header rewrites).
    pub fn process_vnet(
        &mut self,
        p: &Pipeline,
        packet: &mut Vec<u8>,
        meta: RxMeta,
        vnet: &VnetHdr,
        now: Nanos,
        sink: &mut impl Sink,
    ) -> Source {
        let mut parsed = Parsed::default();
        parse_into(packet, meta, &mut parsed);
        self.now = now;
        self.check_generation(p);
        let h = parsed.key.hash_map(parsed.map);
        let mut pkt = VecPacket { data: packet, vnet };
        let mut hits = 0;
        let source =
            self.process_parsed(p, &mut pkt, &parsed, h, emc::NO_HINT, now, &mut hits, sink);
        self.stats.emc_hits += hits;
        source
    }

    /// Runs a batch of packets received on `in_port` (as [`Datapath::process_vnet`] does
    /// one by one, same results in the same order), each packet's outputs going to the sink
    /// `sinks` gives for it. Parses and hashes every packet first, then reads the
    /// exact-match cache lines they need, so that the cache misses of a batch overlap
    /// instead of stalling one packet after another.
    ///
    /// The packets are [`crate::port::Packet`]s (buffers of their own: rewritten in place,
    /// a last output takes the buffer) or borrowed [`crate::port::Frame`]s (zero-copy
    /// receive: a packet that is only forwarded is not copied; one whose actions rewrite
    /// it is copied first and the copy rewritten).
    pub fn process_batch<S: Sinks, P: RxPacket>(
        &mut self,
        p: &Pipeline,
        in_port: u32,
        pkts: &mut [P],
        now: Nanos,
        sinks: &mut S,
    ) {
        self.now = now;
        self.check_generation(p);
        let mut parsed = std::mem::take(&mut self.parsed);
        parsed.resize(BATCH, Parsed::default());
        let mut hits = 0;
        for chunk in pkts.chunks_mut(BATCH) {
            let mut hashes = [0u64; BATCH];
            for ((pkt, pp), h) in chunk.iter().zip(parsed.iter_mut()).zip(hashes.iter_mut()) {
                *h = parse_into_hashed(pkt.frame(), pkt.rx_meta(in_port), pp);
            }
            // The buckets' signatures, the entry and its megaflow's first line, per packet.
            let mut hints = [emc::NO_HINT; BATCH];
            let mut touched = 0;
            for (&h, hint) in hashes.iter().zip(hints.iter_mut()).take(chunk.len()) {
                *hint = self.emc.probe(h);
                if let Some(mf) = self.emc.megaflow_at(*hint) {
                    touched ^= mf.packets.load(Ordering::Relaxed);
                }
            }
            std::hint::black_box(touched);
            for (((pkt, pp), &h), &hint) in chunk
                .iter_mut()
                .zip(parsed.iter())
                .zip(hashes.iter())
                .zip(hints.iter())
            {
                let mut sink = sinks.sink(pkt, in_port);
                self.process_parsed(p, pkt, pp, h, hint, now, &mut hits, &mut sink);
            }
        }
        self.stats.emc_hits += hits;
        self.parsed = parsed;
    }

    /// Caches → actions for a parsed packet whose key hash is `h` (generation checked;
    /// `hint`: the exact-match entry to try first, from `Emc::probe`, or `emc::NO_HINT`).
    /// An exact-match hit adds one to `emc_hits` (the caller adds it to the stats).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn process_parsed<P: RxPacket>(
        &mut self,
        p: &Pipeline,
        pkt: &mut P,
        parsed: &Parsed,
        h: u64,
        hint: u32,
        now: Nanos,
        emc_hits: &mut u64,
        sink: &mut impl Sink,
    ) -> Source {
        // An exact-match hit executes straight from the cache entry.
        let tag = (self.generation, self.mac_version);
        if let Some(mf) = self.emc.find_hinted(hint, h, &parsed.key, parsed.map) {
            *emc_hits += 1;
            Self::offer(&mut self.kernel, mf, parsed, pkt.frame(), tag);
            Self::run(mf, p, pkt, &mut self.scratch, parsed, now, sink);
            return Source::Emc;
        }
        // A megaflow hit runs from the megaflow table; a reference is taken only when it
        // is copied into the exact-match cache.
        if let Some(mf) = self.megaflows.find(&parsed.key) {
            self.stats.megaflow_hits += 1;
            Self::offer(&mut self.kernel, mf, parsed, pkt.frame(), tag);
            Self::run(mf, p, pkt, &mut self.scratch, parsed, now, sink);
            if emc_insert_due(&mut self.emc_insert_count, self.emc_insert_inv_prob) {
                self.emc.insert(h, &parsed.key, parsed.map, mf.clone());
            }
            return Source::Megaflow;
        }
        let (mf, source) = self.translate(p, &parsed.key, parsed.map, h, Some(pkt.frame()));
        if source == Source::SlowPath {
            // Tagged as translated: a flush in the translation (a MAC learned) moved the tag.
            let tag = (self.generation, self.mac_version);
            Self::offer(&mut self.kernel, &mf, parsed, pkt.frame(), tag);
        }
        Self::run(&mf, p, pkt, &mut self.scratch, parsed, now, sink);
        // Its flows, tables and groups are hot now: credit them at once (as OVS does for
        // the packet of an upcall), so a sync finds nothing new in a megaflow that saw no
        // other packet and reads one line of it, not all.
        mf.sync(p);
        source
    }

    /// Offers the microflow of `frame` to the kernel flow table, if there is one and the
    /// megaflow `mf` (translated at pipeline generation and MAC version `at`) may be
    /// forwarded there. Without a kernel table this is one test of `kernel`.
    #[inline(always)]
    fn offer(
        kernel: &mut Option<Box<dyn KernelFlows>>,
        mf: &Arc<Megaflow>,
        parsed: &Parsed,
        frame: &[u8],
        at: (u64, u64),
    ) {
        if let Some(k) = kernel
            && let Some(out) = mf.kernel_out
            && let Some(key) = kernel_key(parsed.key.get(Field::InPort) as u32, frame)
        {
            k.offer(&key, mf, out, kernel::tag(at.0, at.1));
        }
    }

    /// Runs `mf`'s actions on `pkt` (a borrowed frame is copied into `scratch` only if
    /// they rewrite it).
    #[inline(always)]
    fn run<P: RxPacket>(
        mf: &Megaflow,
        p: &Pipeline,
        pkt: &mut P,
        scratch: &mut Vec<u8>,
        parsed: &Parsed,
        now: Nanos,
        sink: &mut impl Sink,
    ) {
        mf.count(pkt.frame().len(), now);
        if let Some(fast) = &mf.fast {
            let tunnel_id = parsed.key.get(Field::TunnelId) as u64;
            if !(P::BORROWED && fast.run_shared(pkt.frame(), tunnel_id, sink)) {
                fast.run(pkt.writable(scratch), tunnel_id, sink);
            }
        } else {
            let vnet = *pkt.vnet();
            let csum = L4Csum::of(parsed, vnet.needs_csum(), vnet.csum_start, vnet.csum_offset);
            let packet = pkt.writable(scratch);
            execute_with(&mf.actions, packet, parsed, csum, &p.meters, now, sink);
        }
    }
}

/// Whether translating `mf`'s key (under `mask`, whose non-zero words are `words`) against
/// `p` gives what `mf` holds: a mask within its mask, the same actions, and what
/// [`same_path`] checks. `scratch` takes the translation.
fn still_valid(
    p: &Pipeline,
    mask: &FlowMask,
    words: &[u8],
    mf: &Megaflow,
    scratch: &mut Megaflow,
) -> bool {
    let mut key = FlowKey::ZERO;
    for (&i, &v) in words.iter().zip(&mf.key) {
        if let Some(w) = key.w.get_mut(usize::from(i)) {
            *w = v;
        }
    }
    scratch.reset();
    let s = scratch;
    let rec = Recorder {
        flows: &mut s.flows,
        trace: &mut s.trace,
        groups: &mut s.groups,
    };
    let mut wc = FlowKey::ZERO;
    let t = p.translate_into(&key, None, &mut s.actions, &mut wc, rec);
    // A mask with fewer bits is fine: the megaflow is then narrower than it needs to be.
    let within = (wc.w.iter().zip(&mask.w)).all(|(new, old)| new & !old == 0);
    t.cacheable && within && s.actions == mf.actions && same_path(p, s, t.learn, mf)
}

/// Whether a kernel flow table entry still forwards as it does under `p`: the translation
/// of its microflow (`key`, as [`kernel::frame_of`] rebuilds it) outputs it unchanged to
/// `out_port` alone, without looking at TCP flags, along [`same_path`] as `mf`, the
/// megaflow that put it in (whose flows its counts are credited to). A control plane asks
/// this of every entry before a change is answered, so that the entries still right go on
/// forwarding through it.
pub fn still_forwards(p: &Pipeline, key: &KernelKey, mf: &Megaflow, out_port: u32) -> bool {
    let mut scratch = Megaflow::empty();
    microflow_of(key).is_some_and(|(flow, frame, in_port)| {
        forwards(p, &flow, &frame, in_port, mf, out_port, &mut scratch).0
    })
}

/// The frame [`kernel::frame_of`] rebuilds for `key`, its flow key and input port.
fn microflow_of(key: &KernelKey) -> Option<(FlowKey, Vec<u8>, u32)> {
    let frame = kernel::frame_of(key)?;
    let in_port = u32::from_ne_bytes([key[0], key[1], key[2], key[3]]);
    let flow = crate::packet::parse(&frame, RxMeta::port(in_port)).key;
    Some((flow, frame, in_port))
}

/// [`still_forwards`] on the microflow `flow` (bytes `frame`, from `in_port`); also the
/// translation's mask when its outcome holds for every microflow that agrees with `flow`
/// on it (cacheable). `s` takes the translation (reset first: a megaflow is big, and one
/// made afresh per call cost a quarter of the time in copies).
fn forwards(
    p: &Pipeline,
    flow: &FlowKey,
    frame: &[u8],
    in_port: u32,
    mf: &Megaflow,
    out_port: u32,
    s: &mut Megaflow,
) -> (bool, Option<FlowMask>) {
    s.reset();
    let rec = Recorder {
        flows: &mut s.flows,
        trace: &mut s.trace,
        groups: &mut s.groups,
    };
    let mut wc = FlowKey::ZERO;
    let t = p.translate_into(flow, Some(frame), &mut s.actions, &mut wc, rec);
    let ok = t.cacheable
        && kernel_output(&s.actions, &wc, in_port) == Some(out_port)
        && same_path(p, s, t.learn, mf);
    (ok, t.cacheable.then_some(wc))
}

/// [`still_forwards`] for many entries against one pipeline, as a control plane checks
/// every kernel entry when it publishes. A translation's outcome holds for every microflow
/// that agrees with the one translated on the bits it read (its mask: what the megaflow
/// cache rests on), so an entry of the same megaflow, input and output port that agrees
/// with one already checked gets the same answer without a translation of its own: the
/// many connections one megaflow carries (it does not read their ports) cost one.
///
/// The answers are kept per megaflow from its second entry on, at most
/// [`ForwardCheck::PER_MEGAFLOW`] each. The
/// megaflows are borrowed for as long as the check lives, so their addresses, which key
/// the answers, are not reused meanwhile (megaflows are a datapath thread's own: one check
/// per thread's entries).
#[derive(Debug)]
pub struct ForwardCheck<'p> {
    p: &'p Pipeline,
    /// By megaflow: its address times an odd constant, rotated (one-to-one, so no two
    /// megaflows share a key; the high bits of the product, mixed from all of the
    /// address's, land where the table looks first).
    answers: HashMap<u64, Option<Box<Answers>>, BuildHasherDefault<IdHasher>>,
    /// The megaflows checked are borrowed as long as the check lives.
    borrowed: std::marker::PhantomData<&'p Megaflow>,
    /// Takes each translation.
    scratch: Box<Megaflow>,
    translations: usize,
}

/// The answers for one megaflow's entries.
#[derive(Debug, Default)]
struct Answers {
    seen: Vec<Answer>,
}

/// An answer: input port, output port, the translation's mask, the masked microflow, and
/// whether it still forwards.
type Answer = (u32, u32, FlowMask, FlowKey, bool);

impl<'p> ForwardCheck<'p> {
    /// Answers kept per megaflow (beyond, entries that miss are translated each).
    pub const PER_MEGAFLOW: usize = 16;

    /// Checks against `p`, about `entries` entries (room for their megaflows is made first).
    pub fn with_capacity(p: &'p Pipeline, entries: usize) -> Self {
        let mut c = Self::new(p);
        c.answers.reserve(entries);
        c
    }

    /// Checks against `p`.
    pub fn new(p: &'p Pipeline) -> Self {
        ForwardCheck {
            p,
            answers: HashMap::default(),
            borrowed: std::marker::PhantomData,
            scratch: Box::new(Megaflow::empty()),
            translations: 0,
        }
    }

    /// [`still_forwards`]`(p, key, mf, out_port)`.
    pub fn check(&mut self, key: &KernelKey, mf: &'p Megaflow, out_port: u32) -> bool {
        let Some((flow, frame, in_port)) = microflow_of(key) else {
            return false;
        };
        let at = (std::ptr::from_ref(mf) as usize as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(32);
        // A megaflow's first entry is translated without keeping the answer (most have
        // one entry: a map of 16-byte entries stays cheap); its second starts the answers.
        let answers = match self.answers.entry(at) {
            Entry::Vacant(v) => {
                v.insert(None);
                None
            }
            Entry::Occupied(o) => Some(o.into_mut().get_or_insert_with(Box::default)),
        };
        let hit = answers.as_ref().and_then(|a| {
            a.seen
                .iter()
                .find(|(i, o, wc, v, _)| *i == in_port && *o == out_port && flow.matches(wc, v))
        });
        if let Some(&(.., ok)) = hit {
            return ok;
        }
        self.translations += 1;
        let (ok, wc) = forwards(
            self.p,
            &flow,
            &frame,
            in_port,
            mf,
            out_port,
            &mut self.scratch,
        );
        if let (Some(a), Some(wc)) = (answers, wc)
            && a.seen.len() < Self::PER_MEGAFLOW
        {
            a.seen.push((in_port, out_port, wc, flow.masked(&wc), ok));
        }
        ok
    }

    /// How many translations the checks so far took.
    pub fn translations(&self) -> usize {
        self.translations
    }
}

/// Whether a translation (recorded in `s`, learning `learn`) went the way `mf`'s did: the
/// same tables visited, the very same flow and group counters (so its counts go on going
/// where they went: a flow deleted and added again has new ones), the same learning, with
/// the MAC table still holding what it learned.
fn same_path(p: &Pipeline, s: &Megaflow, learn: Option<Learn>, mf: &Megaflow) -> bool {
    let same_flows = s.flows.len() == mf.flows.len()
        && s.flows
            .iter()
            .zip(mf.flows.iter())
            .all(|(a, b)| Arc::ptr_eq(a, b));
    let same_groups = s.groups.len() == mf.groups.len()
        && (s.groups.iter().zip(&mf.groups)).all(|((a, x), (b, y))| Arc::ptr_eq(a, b) && x == y);
    learn == mf.learn
        // Its source MAC must still be where it learned it: else its next packet has to
        // come through here and learn the move.
        && learn.is_none_or(|l| p.mac_table.lookup(l.vlan, l.mac) == Some(l.port))
        && s.trace == mf.trace
        && same_flows
        && same_groups
}

/// A packet of [`Datapath::process_vnet`]: a caller's buffer and its offload metadata.
struct VecPacket<'a> {
    data: &'a mut Vec<u8>,
    vnet: &'a VnetHdr,
}

impl RxPacket for VecPacket<'_> {
    #[inline(always)]
    fn frame(&self) -> &[u8] {
        self.data
    }
    #[inline(always)]
    fn vnet(&self) -> &VnetHdr {
        self.vnet
    }
    #[inline(always)]
    fn tunnel_id(&self) -> u64 {
        0
    }
    #[inline(always)]
    fn writable<'s>(&'s mut self, _: &'s mut Vec<u8>) -> &'s mut Vec<u8> {
        self.data
    }
    const BORROWED: bool = false;
}
