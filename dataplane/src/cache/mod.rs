//! The flow caches in front of the pipeline: an exact-match cache (full key → megaflow) and
//! the megaflow cache (wildcarded entries found by tuple space search), with the slow path
//! (pipeline translation) behind them. [`Datapath`] is one datapath thread's view: it owns
//! its caches outright, so no lock is taken on the packet path.
//!
//! Invariant (tested by a property test): for every pipeline state and packet, the actions
//! the caches give are the actions a full translation gives. Any pipeline change bumps its
//! generation, and a datapath that sees a new generation drops both caches (the simple,
//! correct start; finer invalidation can come later).
//!
//! Counters: the packet path writes only this thread's megaflow counters (no atomic
//! read-modify-write, no shared cache line). [`Datapath::sync_stats`] adds what accumulated
//! to the OpenFlow flow and table counters; the datapath thread calls it periodically (at
//! least once a second, so idle timeouts see traffic) and before its caches are dropped.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::classifier::Classifier;
use crate::packet::{Field, FlowKey, FlowMask, Parsed, RxMeta, parse_into};
use crate::pipeline::exec::{L4Csum, Sink, execute_with};
use crate::pipeline::xlate::TraceStep;
use crate::pipeline::{DpAction, FlowStats, GroupStats, Nanos, Pipeline};
use crate::port::offload::VnetHdr;

/// A megaflow: every packet equal to `key` under `mask` gets `actions`.
#[derive(Debug)]
pub struct Megaflow {
    /// The masked key.
    pub key: FlowKey,
    /// The mask: every bit the translation depended on.
    pub mask: FlowMask,
    /// Datapath actions.
    pub actions: Vec<DpAction>,
    /// Counters of the OpenFlow flows the translation went through.
    pub flows: Vec<Arc<FlowStats>>,
    /// Tables visited (their lookup/matched counters are credited per packet).
    pub trace: Vec<TraceStep>,
    /// Groups and buckets the translation went through.
    pub groups: Vec<(Arc<GroupStats>, Vec<usize>)>,
    /// Pipeline generation it was built at.
    pub generation: u64,
    /// Packets that used this megaflow (written by the owning thread only).
    pub packets: AtomicU64,
    /// Bytes that used this megaflow (owning thread only).
    pub bytes: AtomicU64,
    /// `now` of the last packet (owning thread only).
    pub used: AtomicU64,
    /// (packets, bytes) already added to the flow and table counters.
    synced: (AtomicU64, AtomicU64),
    /// `actions` are outputs only (or nothing): the packet path sends without the general
    /// action interpreter.
    outputs_only: bool,
}

impl Megaflow {
    /// Counts one packet. Only the datapath that owns the megaflow calls this, so plain
    /// load/store (no locked instruction) is enough.
    #[inline]
    fn count(&self, len: usize, now: Nanos) {
        let r = Ordering::Relaxed;
        self.packets.store(self.packets.load(r) + 1, r);
        self.bytes.store(self.bytes.load(r) + len as u64, r);
        self.used.store(now, r);
    }

    /// Adds the counts since the last sync to the OpenFlow flows and tables it went through.
    fn sync(&self, p: &Pipeline) {
        let r = Ordering::Relaxed;
        let (packets, bytes) = (self.packets.load(r), self.bytes.load(r));
        let dp = packets - self.synced.0.load(r);
        let db = bytes - self.synced.1.load(r);
        if dp == 0 {
            return;
        }
        self.synced.0.store(packets, r);
        self.synced.1.store(bytes, r);
        let used = self.used.load(r);
        for f in &self.flows {
            f.add(dp, db, used);
        }
        for (g, buckets) in &self.groups {
            g.add(buckets, dp, db);
        }
        // Flows of an older generation may be gone; tables are always there.
        for step in &self.trace {
            if let Some(t) = p.tables.get(usize::from(step.table_id)) {
                t.lookups.fetch_add(dp, r);
                if step.flow.is_some() {
                    t.matched.fetch_add(dp, r);
                }
            }
        }
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
    /// Cache flushes after a pipeline change.
    pub flushes: u64,
}

/// Size of the exact-match cache (entries, a power of two).
pub const EMC_ENTRIES: usize = 8192;
/// Default megaflow cache limit.
pub const MEGAFLOW_LIMIT: usize = 200_000;
/// A megaflow hit is copied into the exact-match cache once in this many (as OVS's
/// `emc-insert-inv-prob`, default 100): a flow that keeps coming gets its entry soon, while
/// traffic of one-packet microflows does not pay for an insert (and an eviction) per packet.
/// Translations (slow path) are always inserted.
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

/// An exact-match cache entry. The key's hash comes first, so a probe that misses usually
/// reads one cache line of the slot, not the whole 144-byte key.
#[derive(Clone)]
struct EmcEntry {
    hash: u64,
    mf: Arc<Megaflow>,
    key: FlowKey,
}

/// One datapath thread's caches.
pub struct Datapath {
    emc: Vec<Option<EmcEntry>>,
    /// Megaflow hits go into the EMC once in this many (1: always).
    emc_insert_inv_prob: u32,
    /// Megaflow hits since the last EMC insert.
    emc_insert_count: u32,
    megaflows: Classifier<Arc<Megaflow>>,
    generation: u64,
    limit: usize,
    /// Counters.
    pub stats: CacheStats,
    /// Results of uncacheable translations since the last sync (their counts still count).
    uncached: Vec<Arc<Megaflow>>,
}

impl fmt::Debug for Datapath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datapath")
            .field("megaflows", &self.megaflows.len())
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
            emc: vec![None; entries.max(1).next_power_of_two()],
            emc_insert_inv_prob: EMC_INSERT_INV_PROB,
            emc_insert_count: 0,
            megaflows: Classifier::new_unstaged(),
            generation: 0,
            limit: MEGAFLOW_LIMIT,
            stats: CacheStats::default(),
            uncached: Vec::new(),
        }
    }

    /// Copy a megaflow hit into the exact-match cache once in `n` hits (1: every hit).
    pub fn set_emc_insert_inv_prob(&mut self, n: u32) {
        self.emc_insert_inv_prob = n.max(1);
    }

    /// Sets the megaflow cache limit (when full, the cache is flushed before an insert).
    pub fn set_megaflow_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// Number of megaflows cached.
    pub fn megaflow_count(&self) -> usize {
        self.megaflows.len()
    }

    /// Number of distinct megaflow masks (subtables a megaflow lookup may visit).
    pub fn megaflow_masks(&self) -> usize {
        self.megaflows.subtable_count()
    }

    /// Adds every megaflow's new counts to the OpenFlow flow and table counters of `p`.
    pub fn sync_stats(&mut self, p: &Pipeline) {
        for (_, r) in self.megaflows.iter() {
            r.value.sync(p);
        }
        for mf in self.uncached.drain(..) {
            mf.sync(p);
        }
    }

    /// Drops every cached entry (counts are synced first, into `p`'s tables).
    fn flush_into(&mut self, p: &Pipeline) {
        self.sync_stats(p);
        self.flush();
    }

    /// Drops every cached entry without syncing counts.
    pub fn flush(&mut self) {
        self.emc.iter_mut().for_each(|e| *e = None);
        self.megaflows.clear();
        self.stats.flushes += 1;
    }

    /// The megaflow for a packet with `key` (bytes `packet`, for pop_mpls), translating and
    /// installing on a miss. Returns the actions' owner and where they came from.
    pub fn lookup(
        &mut self,
        p: &Pipeline,
        key: &FlowKey,
        packet: Option<&[u8]>,
    ) -> (Arc<Megaflow>, Source) {
        if p.generation() != self.generation {
            if self.generation != 0 {
                self.flush_into(p);
            }
            self.generation = p.generation();
        }
        let h = key.hash_full();
        let slot = (h as usize) & (self.emc.len() - 1);
        if let Some(e) = &self.emc[slot]
            && e.hash == h
            && e.key == *key
        {
            self.stats.emc_hits += 1;
            return (e.mf.clone(), Source::Emc);
        }
        if let Some(r) = self.megaflows.find_any(key) {
            let mf = r.value.clone();
            self.stats.megaflow_hits += 1;
            if emc_insert_due(&mut self.emc_insert_count, self.emc_insert_inv_prob) {
                self.emc[slot] = Some(EmcEntry {
                    hash: h,
                    mf: mf.clone(),
                    key: *key,
                });
            }
            return (mf, Source::Megaflow);
        }
        self.stats.misses += 1;
        let t = p.translate(key, packet);
        let outputs_only = t.actions.iter().all(|a| matches!(a, DpAction::Output(_)));
        let mf = Arc::new(Megaflow {
            key: key.masked(&t.wc),
            mask: t.wc,
            actions: t.actions,
            flows: t.flows,
            trace: t.trace,
            groups: t.groups,
            generation: self.generation,
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            used: AtomicU64::new(0),
            synced: (AtomicU64::new(0), AtomicU64::new(0)),
            outputs_only,
        });
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
        if self.megaflows.len() >= self.limit {
            self.flush_into(p);
        }
        self.megaflows.insert(&mf.key, &mf.mask, 0, mf.clone());
        self.emc[slot] = Some(EmcEntry {
            hash: h,
            mf: mf.clone(),
            key: *key,
        });
        (mf, Source::SlowPath)
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
        if p.generation() == self.generation {
            // Fast path: an exact-match hit executes straight from the cache slot.
            let h = parsed.key.hash_full();
            let slot = (h as usize) & (self.emc.len() - 1);
            if let Some(e) = &self.emc[slot]
                && e.hash == h
                && e.key == parsed.key
            {
                self.stats.emc_hits += 1;
                Self::run(&e.mf, p, packet, &parsed, vnet, now, sink);
                return Source::Emc;
            }
            // A megaflow hit: runs from the megaflow table; a reference is taken only when
            // it is copied into the exact-match cache.
            if let Some(r) = self.megaflows.find_any(&parsed.key) {
                self.stats.megaflow_hits += 1;
                Self::run(&r.value, p, packet, &parsed, vnet, now, sink);
                if emc_insert_due(&mut self.emc_insert_count, self.emc_insert_inv_prob) {
                    let mf = r.value.clone();
                    self.emc[slot] = Some(EmcEntry {
                        hash: h,
                        mf,
                        key: parsed.key,
                    });
                }
                return Source::Megaflow;
            }
        }
        let (mf, source) = self.lookup(p, &parsed.key, Some(packet));
        Self::run(&mf, p, packet, &parsed, vnet, now, sink);
        source
    }

    fn run(
        mf: &Megaflow,
        p: &Pipeline,
        packet: &mut Vec<u8>,
        parsed: &Parsed,
        vnet: &VnetHdr,
        now: Nanos,
        sink: &mut impl Sink,
    ) {
        mf.count(packet.len(), now);
        if mf.outputs_only {
            // What `execute_parsed` does for outputs: no queue set, the packet's tunnel id.
            let tunnel_id = parsed.key.get(Field::TunnelId) as u64;
            for a in &mf.actions {
                if let DpAction::Output(port) = a {
                    sink.output(*port, None, tunnel_id, packet);
                }
            }
        } else {
            let csum = L4Csum::of(parsed, vnet.needs_csum(), vnet.csum_start, vnet.csum_offset);
            execute_with(&mf.actions, packet, parsed, csum, &p.meters, now, sink);
        }
    }
}
