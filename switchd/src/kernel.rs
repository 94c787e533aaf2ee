//! The bridge's kernel flow table (`offload = "auto"` or `"tc"`; this module does I/O).
//!
//! The datapath decides what the kernel may forward ([`fuxi_dataplane::cache::kernel`]);
//! here a datapath thread puts those microflows into the bridge's BPF map
//! ([`KernelTable`]) once the batch that offered them has been sent (so the kernel never
//! forwards a flow's packet ahead of the one that put it in), credits what the kernel
//! forwarded for them to their megaflows (so to the OpenFlow flow, table and group
//! counters) and to both ports' counters once a second,
//! drops entries idle for [`IDLE`], and when it revalidates its caches puts back (under the
//! new tag) the entries of the megaflows it kept and drops the others.
//!
//! After every publish the control plane moves the entries whose microflows the new
//! pipeline still forwards the same way to the new tag, while both tags forward, then
//! makes the new tag the only one ([`Kernel::published`]): before a barrier is answered,
//! the kernel stops using the entries a change made stale, and the others never stop (a
//! flow-mod that does not touch a TCP stream sends none of its packets through userspace,
//! where they would fall behind the ones the kernel forwards).
//!
//! Only AF_PACKET ports take part: both the input and the output port must have the
//! programs attached ([`Kernel::attach`]), be up and forwarding (no PORT_DOWN, NO_RECV on
//! the input, NO_FWD on the output); a port-mod or a link change publishes a new
//! generation, so a port that stops qualifying stops the kernel too.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use anyhow::{Context, Result};
use fuxi_dataplane::cache::kernel::{Keep, KernelFlows, KernelKey, tag};
use fuxi_dataplane::cache::{ForwardCheck, Megaflow};
use fuxi_dataplane::pipeline::{Nanos, Pipeline};
use fuxi_dataplane::port::bpf::KernelTable;
use fuxi_openflow::msg::port::config as pcfg;

use crate::config::PortType;
use crate::datapath::{PortSlot, Ports};

/// Entries the bridge's map holds (all threads together).
pub const MAX_ENTRIES: u32 = 65_536;
/// An entry whose counts did not move for this long is dropped (Open vSwitch's
/// revalidators drop idle datapath flows after 10 s too).
pub const IDLE: Nanos = 10_000_000_000;
/// Counts are harvested at most this often.
pub const HARVEST_EVERY: Nanos = 1_000_000_000;
/// Entries a harvest call reads at least (≈ 1 ms of lookups), if it has that many left.
pub const HARVEST_CHUNK: usize = 1024;
/// Dropping more entries than this, their counts are read with the whole map in batches
/// ([`KernelTable::counts_all`]) rather than one lookup each.
const READ_ALL_FROM: usize = 256;
/// With more entries than this, a publish does not check which stay right (a translation
/// each and a `bpf(2)` call per 32, ~0.9 µs an entry: ~14 ms at the limit): they all stop,
/// and come back as the datapath threads revalidate.
pub const RETAG_MAX: usize = 16_384;

/// What the kernel forwarded for a port, added to its own counters.
#[derive(Debug, Default)]
pub struct KernelCounts {
    /// Packets the kernel took in from the port.
    pub rx_packets: AtomicU64,
    /// Their bytes.
    pub rx_bytes: AtomicU64,
    /// Packets the kernel sent out of the port.
    pub tx_packets: AtomicU64,
    /// Their bytes.
    pub tx_bytes: AtomicU64,
}

/// The bridge's kernel flow table.
#[derive(Debug)]
pub struct Kernel {
    table: KernelTable,
    /// Whether a port the kernel refuses the programs on is an error (`offload = "tc"`)
    /// or only a warning (`"auto"`: that port stays in userspace).
    required: bool,
    /// The bridge's ports (to take the programs off them all, see [`Kernel::published`]).
    ports: Arc<Ports>,
    /// Set for good once the table could not be kept current: no port is attached, no
    /// entry goes in.
    off: AtomicBool,
    /// Entries in the map (gauge).
    pub entries: AtomicU64,
    /// Every datapath thread's entries (see [`Kernel::published`]).
    threads: Mutex<Vec<Weak<Entries>>>,
}

/// A datapath thread's entries, shared with the control plane, which moves those still
/// right to a new tag when it publishes. Neither holds the lock while it calls into
/// [`KernelTable::transition`] (which calls back under its own lock).
type Entries = Mutex<HashMap<KernelKey, Entry>>;

fn lock(e: &Entries) -> MutexGuard<'_, HashMap<KernelKey, Entry>> {
    e.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kernel {
    /// Creates the bridge's map; ports attach with [`Kernel::attach`], which needs tcx
    /// (Linux 6.6 or later): `required`, a port it cannot attach to is an error.
    pub fn new(required: bool, ports: Arc<Ports>) -> Result<Kernel> {
        Ok(Kernel {
            required,
            ports,
            off: AtomicBool::new(false),
            table: KernelTable::new(MAX_ENTRIES).context("cannot create the kernel flow table")?,
            entries: AtomicU64::new(0),
            threads: Mutex::new(Vec::new()),
        })
    }

    /// Attaches the programs to an AF_PACKET port (others are left alone, as is every
    /// port once the table is off).
    pub fn attach(&self, slot: &PortSlot) -> Result<()> {
        let (PortType::Afpacket, Some(ifindex), Some(fd)) = (slot.kind, slot.ifindex, slot.fd)
        else {
            return Ok(());
        };
        if self.off.load(Ordering::Acquire) {
            return Ok(());
        }
        // SAFETY: `fd` is the port's socket, open for as long as the slot (which holds the
        // port) lives; it is only borrowed for the call.
        let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        match self.table.attach(slot.ofport, ifindex, sock) {
            Ok(kp) => {
                let _ = slot.kernel_port.set(kp);
                Ok(())
            }
            Err(e) if self.required => Err(e).with_context(|| {
                format!("port {}: cannot attach the kernel flow table", slot.name)
            }),
            Err(e) => {
                tracing::warn!(port = %slot.name, "kernel flow table off for this port: {e}");
                Ok(())
            }
        }
    }

    /// The control plane published `p`: before this returns (so before a barrier is
    /// answered), entries made under an older pipeline or MAC table stop forwarding, but
    /// for those whose microflow `p` still forwards the same way
    /// ([`fuxi_dataplane::cache::still_forwards`], one translation per set of entries of a
    /// megaflow the new translation's mask cannot tell apart: [`ForwardCheck`]):
    /// those move to the new tag while both tags forward ([`KernelTable::transition`]),
    /// and never stop. (The datapath threads revalidate their caches when they next look,
    /// and put back what they keep and the control plane did not move.)
    pub fn published(&self, p: &Pipeline) {
        self.advance(p, p.mac_table.version());
    }

    /// Pipeline `p` with the MAC table at `mac_version` is current (published, or a
    /// datapath thread learned a MAC): as [`Kernel::published`].
    pub fn advance(&self, p: &Pipeline, mac_version: u64) {
        if self.off.load(Ordering::Acquire) {
            return;
        }
        let r = self
            .table
            .transition(p.generation(), mac_version, |tag| self.retag(p, tag));
        self.or_turn_off(r);
    }

    /// Should the kernel refuse a new tag, entries that change made stale would go on
    /// forwarding (past a deleted drop rule, say). So then the table is turned off for
    /// good: the programs come off every port, and from then on all traffic goes through
    /// userspace.
    fn or_turn_off(&self, r: std::io::Result<()>) {
        if let Err(e) = r {
            tracing::error!(
                "kernel flow table: cannot set the current generation ({e}); \
                 turning it off, everything goes through userspace from now on"
            );
            self.turn_off();
        }
    }

    /// Moves to `tag` every entry whose microflow `p` still forwards as it does, through
    /// ports that still qualify (the rest stop when `tag` becomes the current one).
    fn retag(&self, p: &Pipeline, tag: u64) {
        let threads: Vec<Arc<Entries>> = {
            let mut t = self.threads.lock().unwrap_or_else(|e| e.into_inner());
            t.retain(|w| w.strong_count() > 0);
            t.iter().filter_map(Weak::upgrade).collect()
        };
        if self.entries.load(Ordering::Relaxed) > RETAG_MAX as u64 {
            return;
        }
        let start = std::time::Instant::now();
        let (mut checked, mut moved, mut translations) = (0, 0, 0);
        for t in threads {
            // Checked without the thread's lock (a translation each: the thread would wait
            // for them all), then moved under it if the entry is still the one checked.
            let snapshot: Vec<(KernelKey, Arc<Megaflow>, u32, u32, u64)> = lock(&t)
                .iter()
                .filter(|(_, e)| e.tag != tag)
                .map(|(k, e)| (*k, e.mf.clone(), e.in_port, e.out_port, e.tag))
                .collect();
            checked += snapshot.len();
            // Megaflows are the thread's own: one check per thread.
            let mut check = ForwardCheck::with_capacity(p, snapshot.len());
            let right: Vec<_> = snapshot
                .iter()
                .filter(|(key, mf, i, o, _)| {
                    self.usable(*i, *o).is_some() && check.check(key, mf, *o)
                })
                .collect();
            translations += check.translations();
            let mut entries = lock(&t);
            let same = |(key, mf, _, _, was): &&(KernelKey, Arc<Megaflow>, u32, u32, u64)| {
                entries
                    .get(key)
                    .is_some_and(|e| e.tag == *was && Arc::ptr_eq(&e.mf, mf))
            };
            let keys: Vec<KernelKey> = right.iter().filter(|c| same(c)).map(|c| c.0).collect();
            let mut at = keys.iter();
            // An entry removed meanwhile (by nobody: the map is ours and this thread's,
            // whose lock is held) is not found: the thread finds out when it next reads it.
            let r = self.table.retag(&keys, tag, |found| {
                if let Some(e) = at.next().and_then(|k| entries.get_mut(k))
                    && found
                {
                    e.tag = tag;
                    moved += 1;
                }
            });
            if let Err(err) = r {
                tracing::warn!("kernel flow table: cannot move entries: {err}");
                break;
            }
        }
        let us = start.elapsed().as_micros();
        tracing::debug!(
            checked,
            moved,
            translations,
            us,
            "kernel flow table: entries moved to a new tag"
        );
    }

    /// The output port's ifindex if the kernel may forward from `in_port` to `out_port`.
    fn usable(&self, in_port: u32, out_port: u32) -> Option<u32> {
        if self.is_off() {
            return None;
        }
        let (i, o) = (self.ports.get(in_port)?, self.ports.get(out_port)?);
        let ok = |s: &PortSlot, no: u32| {
            s.kernel_port.get().is_some()
                && s.link_up.load(Ordering::Relaxed)
                && s.config.load(Ordering::Relaxed) & (pcfg::PORT_DOWN | no) == 0
        };
        (ok(&i, pcfg::NO_RECV) && ok(&o, pcfg::NO_FWD))
            .then_some(o.ifindex)
            .flatten()
    }

    /// Takes the programs off every port; no port is attached and no entry goes in after.
    fn turn_off(&self) {
        self.off.store(true, Ordering::Release);
        for slot in self.ports.load().values() {
            if let Some(kp) = slot.kernel_port.get()
                && let Err(e) = kp.detach()
            {
                tracing::error!(port = %slot.name, "kernel flow table: {e}");
            }
        }
    }

    /// Whether the table was turned off ([`Kernel::published`]).
    pub fn is_off(&self) -> bool {
        self.off.load(Ordering::Acquire)
    }
}

/// One entry a datapath thread put in.
struct Entry {
    mf: Arc<Megaflow>,
    in_port: u32,
    out_port: u32,
    /// The tag it carries in the map.
    tag: u64,
    packets: u64,
    bytes: u64,
    /// When its counts last moved (or it went in).
    moved: Nanos,
}

/// A datapath thread's side of the kernel flow table.
pub struct ThreadKernel {
    kernel: Arc<Kernel>,
    entries: Arc<Entries>,
    /// When the current harvest round began.
    last_harvest: Nanos,
    /// Entries the current harvest round has yet to read.
    round: Vec<KernelKey>,
    /// How many of them a call reads.
    chunk: usize,
    /// Offered since the last commit, to put in once their packets are sent: key, output
    /// ifindex, entry.
    pending: Vec<(KernelKey, u32, Entry)>,
    /// Offers to skip after the map refused one (full).
    backoff: u32,
}

impl ThreadKernel {
    /// A datapath thread's view of `kernel`.
    pub fn new(kernel: Arc<Kernel>) -> ThreadKernel {
        let entries = Arc::new(Entries::default());
        (kernel.threads.lock().unwrap_or_else(|e| e.into_inner())).push(Arc::downgrade(&entries));
        ThreadKernel {
            kernel,
            entries,
            last_harvest: 0,
            round: Vec::new(),
            chunk: 0,
            pending: Vec::new(),
            backoff: 0,
        }
    }

    /// Credits the new counts of the entries with `keys` at `now` (one lookup each, or, to
    /// drop many, the whole map read in batches: about half the time); drops those idle for
    /// [`IDLE`] (all of them with `drop_all`) from the map in one batch.
    fn collect(&mut self, keys: &[KernelKey], now: Nanos, drop_all: bool) {
        let table = &self.kernel.table;
        let ports = self.kernel.ports.load();
        let mut entries = lock(&self.entries);
        let before = entries.len();
        let mut snapshot = None;
        if drop_all && keys.len() > READ_ALL_FROM {
            let mut m = HashMap::with_capacity(keys.len());
            match table.counts_all(|k, p, b| {
                if entries.contains_key(k) {
                    m.insert(*k, (p, b));
                }
            }) {
                Ok(()) => snapshot = Some(m),
                Err(e) => tracing::warn!("kernel flow table: cannot read the entries: {e}"),
            }
        }
        let mut gone = Vec::new();
        for key in keys {
            let Some(e) = entries.get_mut(key) else {
                continue;
            };
            let counts = match &snapshot {
                Some(m) => m.get(key).copied(),
                None => table.counts(key).unwrap_or_else(|err| {
                    tracing::warn!("kernel flow table: cannot read an entry: {err}");
                    None
                }),
            };
            let Some((packets, bytes)) = counts else {
                entries.remove(key);
                continue;
            };
            let (dp, db) = (
                packets.saturating_sub(e.packets),
                bytes.saturating_sub(e.bytes),
            );
            if dp > 0 {
                e.mf.credit(dp, db, now);
                (e.packets, e.bytes, e.moved) = (packets, bytes, now);
                let r = Ordering::Relaxed;
                if let Some(s) = ports.get(&e.in_port) {
                    s.kernel_counts.rx_packets.fetch_add(dp, r);
                    s.kernel_counts.rx_bytes.fetch_add(db, r);
                }
                if let Some(s) = ports.get(&e.out_port) {
                    s.kernel_counts.tx_packets.fetch_add(dp, r);
                    s.kernel_counts.tx_bytes.fetch_add(db, r);
                }
            }
            if drop_all || now.saturating_sub(e.moved) >= IDLE {
                entries.remove(key);
                gone.push(*key);
            }
        }
        if let Err(err) = table.remove_all(&gone) {
            tracing::warn!("kernel flow table: cannot remove entries: {err}");
        }
        self.count_entries(before, entries.len());
    }

    fn count_entries(&self, before: usize, now: usize) {
        let g = &self.kernel.entries;
        if now >= before {
            g.fetch_add((now - before) as u64, Ordering::Relaxed);
        } else {
            g.fetch_sub((before - now) as u64, Ordering::Relaxed);
        }
    }
}

impl KernelFlows for ThreadKernel {
    fn offer(&mut self, key: &KernelKey, mf: &Arc<Megaflow>, out_port: u32, tag: u64) {
        if self.pending.iter().any(|p| p.0 == *key) || lock(&self.entries).contains_key(key) {
            return;
        }
        if self.backoff > 0 {
            self.backoff -= 1;
            return;
        }
        let in_port = u32::from_ne_bytes([key[0], key[1], key[2], key[3]]);
        let Some(ifindex) = self.kernel.usable(in_port, out_port) else {
            return;
        };
        let entry = Entry {
            mf: mf.clone(),
            in_port,
            out_port,
            tag,
            packets: 0,
            bytes: 0,
            moved: mf.used.load(Ordering::Relaxed),
        };
        self.pending.push((*key, ifindex, entry));
    }

    fn commit(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut entries = lock(&self.entries);
        for (key, ifindex, entry) in self.pending.drain(..) {
            if self.backoff > 0 {
                break;
            }
            match self.kernel.table.insert(&key, ifindex, entry.tag) {
                Ok(()) => {
                    entries.insert(key, entry);
                    self.kernel.entries.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!("kernel flow table: entry refused: {e}");
                    self.backoff = 1000;
                }
            }
        }
    }

    /// Reads every entry's counts once per [`HARVEST_EVERY`], spread over calls: a call
    /// reads at most an eighth of them (and at least [`HARVEST_CHUNK`]), so that a thread
    /// with many entries does not stop forwarding for a whole round of lookups at once.
    fn harvest(&mut self, now: Nanos) {
        if self.round.is_empty() {
            if now.saturating_sub(self.last_harvest) < HARVEST_EVERY {
                return;
            }
            self.round.extend(lock(&self.entries).keys());
            if self.round.is_empty() {
                return;
            }
            self.chunk = self.round.len().div_ceil(8).max(HARVEST_CHUNK);
            self.last_harvest = now;
        }
        let keys = self
            .round
            .split_off(self.round.len().saturating_sub(self.chunk));
        self.collect(&keys, now, false);
    }

    fn next_harvest(&self) -> Option<Nanos> {
        if !self.round.is_empty() {
            Some(0)
        } else if lock(&self.entries).is_empty() {
            None
        } else {
            Some(self.last_harvest + HARVEST_EVERY)
        }
    }

    /// Entries the control plane already moved to the new tag ([`Kernel::published`]) are
    /// left as they are (they forward, and count, all along); the others kept stopped
    /// forwarding when the tag changed, so none of them counts while it is read and put
    /// back.
    fn revalidate(&mut self, now: Nanos, p: &Pipeline, mac_version: u64, keep: Keep<'_>) {
        // Not holding this thread's entries: the control plane's side takes them all.
        self.kernel.advance(p, mac_version);
        let generation = p.generation();
        self.round.clear();
        // Their packets were translated at an older generation.
        self.pending.clear();
        self.backoff = 0;
        let tag = tag(generation, mac_version);
        let (kept, gone): (Vec<KernelKey>, Vec<KernelKey>) = {
            let entries = lock(&self.entries);
            let (kept, gone): (Vec<_>, Vec<_>) = entries.iter().partition(|(_, e)| keep(&e.mf));
            let moved = |e: &Entry| e.tag == tag;
            (
                kept.into_iter()
                    .filter(|(_, e)| !moved(e))
                    .map(|(k, _)| *k)
                    .collect(),
                gone.into_iter().map(|(k, _)| *k).collect(),
            )
        };
        if kept.is_empty() && gone.is_empty() {
            return;
        }
        self.collect(&gone, now, true);
        // Credited (idle ones dropped), then put back with counts 0 under the new tag, if
        // both ports still qualify.
        self.collect(&kept, now, false);
        let mut entries = lock(&self.entries);
        let before = entries.len();
        let mut unusable = Vec::new();
        for key in &kept {
            let Some(e) = entries.get_mut(key) else {
                continue;
            };
            let put = (self.kernel.usable(e.in_port, e.out_port))
                .map(|ifindex| self.kernel.table.insert(key, ifindex, tag));
            match put {
                Some(Ok(())) => (e.tag, e.packets, e.bytes) = (tag, 0, 0),
                Some(Err(err)) => {
                    tracing::warn!("kernel flow table: cannot put an entry back: {err}");
                    unusable.push(*key);
                }
                None => unusable.push(*key),
            }
        }
        for key in &unusable {
            entries.remove(key);
        }
        if let Err(err) = self.kernel.table.remove_all(&unusable) {
            tracing::warn!("kernel flow table: cannot remove entries: {err}");
        }
        self.count_entries(before, entries.len());
    }
}
