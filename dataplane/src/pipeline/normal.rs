//! The NORMAL output action: the switch behaves as an L2 learning switch, as Open vSwitch's
//! NORMAL does with every port a trunk. A frame's source MAC is learned on its input port
//! (per VLAN); a frame to a learned unicast MAC goes out of that port (never back out of the
//! input port); a frame to an unknown, broadcast or multicast MAC is flooded to every live
//! port but the input; frames to the IEEE 802.1D reserved group addresses
//! (01:80:c2:00:00:00–0f) are dropped (Open vSwitch without `forward-bpdu`). Entries age
//! out ([`DEFAULT_AGING_SECS`], configurable) and the table holds at most
//! [`DEFAULT_MAX_ENTRIES`] (the oldest entry makes room).
//!
//! What lives here: the [`MacTable`] (shared by every clone of a pipeline and by every
//! datapath thread, behind a mutex only the slow path and the periodic sync take) and the
//! translation of NORMAL into datapath outputs. No clock: times are arguments.
//!
//! Caches: a translation reads the table but never changes it; it reports what to learn
//! ([`Learn`]) and the datapath applies it at `now`. The outcome is computed as if the
//! source were already learned, so it equals a translation after learning. Every change to
//! the table (a new or moved MAC, an entry aged out or evicted, a port removed) bumps
//! [`MacTable::version`], and a datapath that sees a new version drops its caches, as for a
//! new pipeline generation. A cached megaflow that learned refreshes its entry's age when
//! its counts are synced, so a MAC that keeps sending from the same port stays.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use fuxi_openflow::consts::{OFPP_LOCAL, OFPP_MAX};

use super::xlate::DpAction;
use super::{Nanos, Pipeline};
use crate::packet::{Field, FlowKey, FlowMask, OFPVID_PRESENT};

/// Open vSwitch's default MAC aging time (`other_config:mac-aging-time`).
pub const DEFAULT_AGING_SECS: u32 = 300;
/// Open vSwitch's default MAC table size (`other_config:mac-table-size`).
pub const DEFAULT_MAX_ENTRIES: usize = 2048;

const SEC: u64 = 1_000_000_000;

/// What a translation through NORMAL asks to learn: `mac` is on `port` in `vlan`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Learn {
    /// VLAN id (0: untagged).
    pub vlan: u16,
    /// Source MAC, in the low 48 bits.
    pub mac: u64,
    /// Input port.
    pub port: u32,
}

/// One learned MAC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MacEntry {
    /// VLAN id (0: untagged).
    pub vlan: u16,
    /// The MAC, in the low 48 bits.
    pub mac: u64,
    /// Port it was learned on.
    pub port: u32,
    /// `now` it was last seen.
    pub seen: Nanos,
}

#[derive(Clone, Debug)]
struct Inner {
    /// (vlan, mac) → (port, last seen).
    map: HashMap<(u16, u64), (u32, Nanos), foldhash::fast::RandomState>,
    aging: Nanos,
    max: usize,
}

/// The MAC learning table of one switch.
#[derive(Debug)]
pub struct MacTable {
    inner: Mutex<Inner>,
    version: AtomicU64,
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new(DEFAULT_AGING_SECS, DEFAULT_MAX_ENTRIES)
    }
}

impl MacTable {
    /// An empty table whose entries age out after `aging_secs` (at least 1) and that holds
    /// at most `max_entries` (at least 1).
    pub fn new(aging_secs: u32, max_entries: usize) -> MacTable {
        MacTable {
            inner: Mutex::new(Inner {
                map: HashMap::default(),
                aging: u64::from(aging_secs.max(1)) * SEC,
                max: max_entries.max(1),
            }),
            version: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// A separate table with the same entries and settings (tests: a reference run that
    /// must not share learning with the run it checks).
    pub fn duplicate(&self) -> MacTable {
        MacTable {
            inner: Mutex::new(self.lock().clone()),
            version: AtomicU64::new(self.version()),
        }
    }

    /// Changes every time an entry is added, moved or removed.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Sets the aging time (at least 1 s) and the size limit (at least 1); entries beyond
    /// the new limit go, oldest first.
    pub fn configure(&self, aging_secs: u32, max_entries: usize) {
        let mut t = self.lock();
        t.aging = u64::from(aging_secs.max(1)) * SEC;
        t.max = max_entries.max(1);
        let mut changed = false;
        while t.map.len() > t.max {
            evict_oldest(&mut t);
            changed = true;
        }
        drop(t);
        if changed {
            self.bump();
        }
    }

    /// The aging time, seconds.
    pub fn aging_secs(&self) -> u32 {
        (self.lock().aging / SEC) as u32
    }

    /// The port `mac` was learned on in `vlan`, aged or not (entries leave at
    /// [`MacTable::expire`], so a lookup depends on the table's version only).
    pub fn lookup(&self, vlan: u16, mac: u64) -> Option<u32> {
        self.lock().map.get(&(vlan, mac)).map(|e| e.0)
    }

    /// Learns `l` at `now`. Returns true if the table changed (a new or moved entry);
    /// refreshing an entry's age is not a change.
    pub fn learn(&self, l: Learn, now: Nanos) -> bool {
        let mut t = self.lock();
        match t.map.get_mut(&(l.vlan, l.mac)) {
            Some(e) if e.0 == l.port => {
                e.1 = e.1.max(now);
                return false;
            }
            Some(e) => *e = (l.port, now),
            None => {
                if t.map.len() >= t.max {
                    evict_oldest(&mut t);
                }
                t.map.insert((l.vlan, l.mac), (l.port, now));
            }
        }
        drop(t);
        self.bump();
        true
    }

    /// Marks `l`'s entry seen at `used` if it is still on `l.port` (a cached flow that
    /// learned it carried traffic); never adds or moves an entry.
    pub fn refresh(&self, l: Learn, used: Nanos) {
        if let Some(e) = self.lock().map.get_mut(&(l.vlan, l.mac))
            && e.0 == l.port
        {
            e.1 = e.1.max(used);
        }
    }

    /// Removes entries not seen for the aging time at `now`; returns how many.
    pub fn expire(&self, now: Nanos) -> usize {
        let mut t = self.lock();
        let aging = t.aging;
        let before = t.map.len();
        t.map.retain(|_, e| now < e.1.saturating_add(aging));
        let n = before - t.map.len();
        drop(t);
        if n > 0 {
            self.bump();
        }
        n
    }

    /// The earliest `now` at which [`MacTable::expire`] may remove something.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        let t = self.lock();
        t.map.values().map(|e| e.1.saturating_add(t.aging)).min()
    }

    /// Forgets every MAC learned on `port` (the port is gone).
    pub fn flush_port(&self, port: u32) {
        let mut t = self.lock();
        let before = t.map.len();
        t.map.retain(|_, e| e.0 != port);
        let changed = t.map.len() != before;
        drop(t);
        if changed {
            self.bump();
        }
    }

    /// Forgets everything.
    pub fn flush(&self) {
        let mut t = self.lock();
        let changed = !t.map.is_empty();
        t.map.clear();
        drop(t);
        if changed {
            self.bump();
        }
    }

    /// Every entry, ordered by VLAN, then MAC (`ovs-appctl fdb/show`).
    pub fn entries(&self) -> Vec<MacEntry> {
        let t = self.lock();
        let mut v: Vec<MacEntry> = t
            .map
            .iter()
            .map(|(&(vlan, mac), &(port, seen))| MacEntry {
                vlan,
                mac,
                port,
                seen,
            })
            .collect();
        v.sort_by_key(|e| (e.vlan, e.mac));
        v
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True if nothing is learned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict_oldest(t: &mut Inner) {
    if let Some(k) = t.map.iter().min_by_key(|(_, e)| e.1).map(|(k, _)| *k) {
        t.map.remove(&k);
    }
}

/// Whether a MAC (low 48 bits) is a group (multicast or broadcast) address.
fn is_group(mac: u64) -> bool {
    mac & (1 << 40) != 0
}

/// Whether a MAC is one of the IEEE 802.1D reserved addresses 01:80:c2:00:00:00–0f, which
/// a bridge never forwards.
fn is_reserved(mac: u64) -> bool {
    mac & !0xf == 0x0180_c200_0000
}

/// Whether frames from `port` may be learned (a switch port, not the controller).
fn learnable_port(port: u32) -> bool {
    (1..=OFPP_MAX).contains(&port) || port == OFPP_LOCAL
}

/// Translates an output to NORMAL for a packet with `key` (already rewritten by earlier
/// actions), unwildcarding in `wc` what the outcome depends on and appending outputs to
/// `out`. Returns what to learn, if anything.
pub(crate) fn translate(
    p: &Pipeline,
    key: &FlowKey,
    wc: &mut FlowMask,
    out: &mut super::Actions,
) -> Option<Learn> {
    for f in [Field::InPort, Field::EthSrc, Field::EthDst, Field::VlanVid] {
        wc.add_field(f);
    }
    let in_port = key.get(Field::InPort) as u32;
    let tci = key.get(Field::VlanVid) as u16;
    let vlan = if tci & OFPVID_PRESENT != 0 {
        tci & 0x0fff
    } else {
        0
    };
    let src = key.get(Field::EthSrc) as u64;
    let dst = key.get(Field::EthDst) as u64;
    if is_reserved(dst) {
        return None;
    }
    let learn = (learnable_port(in_port) && !is_group(src)).then_some(Learn {
        vlan,
        mac: src,
        port: in_port,
    });
    let to = if is_group(dst) {
        None
    } else if learn.is_some_and(|l| l.mac == dst) {
        // As if the source were learned first: its own address is on the input port.
        Some(in_port)
    } else {
        p.mac_table.lookup(vlan, dst)
    };
    match to {
        Some(port) if port == in_port => {}
        Some(port) => out.push(DpAction::Output(port)),
        None => {
            for (&port, st) in &p.ports {
                if st.live && port != in_port {
                    out.push(DpAction::Output(port));
                }
            }
        }
    }
    learn
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: u64 = 0x0200_0000_0001;
    const M2: u64 = 0x0200_0000_0002;

    fn l(vlan: u16, mac: u64, port: u32) -> Learn {
        Learn { vlan, mac, port }
    }

    #[test]
    fn learning_moving_and_refreshing_bump_the_version_only_on_change() {
        let t = MacTable::default();
        let v0 = t.version();
        assert!(t.learn(l(0, M1, 1), 10));
        let v1 = t.version();
        assert!(v1 > v0);
        assert!(!t.learn(l(0, M1, 1), 20), "same port: a refresh");
        assert_eq!(t.version(), v1);
        assert_eq!(t.entries()[0].seen, 20);
        assert!(t.learn(l(0, M1, 2), 30), "moved");
        assert!(t.version() > v1);
        assert_eq!(t.lookup(0, M1), Some(2));
        assert_eq!(t.lookup(5, M1), None, "per VLAN");
        // A refresh for the old port does not move it back.
        t.refresh(l(0, M1, 1), 40);
        assert_eq!((t.lookup(0, M1), t.entries()[0].seen), (Some(2), 30));
        t.refresh(l(0, M1, 2), 40);
        assert_eq!(t.entries()[0].seen, 40);
    }

    #[test]
    fn entries_age_out_at_the_aging_time() {
        let t = MacTable::new(2, 10);
        t.learn(l(0, M1, 1), 0);
        t.learn(l(0, M2, 2), SEC);
        assert_eq!(t.poll_timeout(), Some(2 * SEC));
        let v = t.version();
        assert_eq!(t.expire(2 * SEC - 1), 0);
        assert_eq!(t.version(), v);
        assert_eq!(t.expire(2 * SEC), 1);
        assert!(t.version() > v);
        assert_eq!((t.lookup(0, M1), t.lookup(0, M2)), (None, Some(2)));
        assert_eq!(t.expire(3 * SEC), 1);
        assert!(t.is_empty());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn a_full_table_evicts_the_oldest_entry() {
        let t = MacTable::new(300, 2);
        t.learn(l(0, M1, 1), 5);
        t.learn(l(0, M2, 2), 1);
        t.learn(l(0, 0x0200_0000_0003, 3), 9);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(0, M2), None);
        assert_eq!(t.lookup(0, M1), Some(1));
        t.configure(300, 1);
        assert_eq!(t.entries().len(), 1);
        assert_eq!(t.lookup(0, 0x0200_0000_0003), Some(3));
    }

    #[test]
    fn flushing_a_port_forgets_its_macs() {
        let t = MacTable::default();
        t.learn(l(0, M1, 1), 0);
        t.learn(l(7, M2, 2), 0);
        let v = t.version();
        t.flush_port(3);
        assert_eq!(t.version(), v, "nothing on port 3");
        t.flush_port(1);
        assert!(t.version() > v);
        assert_eq!(t.entries().len(), 1);
        t.flush();
        assert!(t.is_empty());
    }

    #[test]
    fn address_classes() {
        assert!(is_group(0xffff_ffff_ffff));
        assert!(is_group(0x0100_5e00_0001));
        assert!(!is_group(M1));
        assert!(is_reserved(0x0180_c200_0000));
        assert!(is_reserved(0x0180_c200_000e));
        assert!(!is_reserved(0x0180_c200_0010));
        assert!(learnable_port(1) && learnable_port(OFPP_LOCAL));
        assert!(!learnable_port(fuxi_openflow::consts::OFPP_CONTROLLER));
        assert!(!learnable_port(0));
    }
}
