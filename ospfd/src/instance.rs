//! One OSPFv2 router instance, sans I/O: interface state machine with DR/BDR election
//! (RFC 2328 9), neighbour state machine with the database exchange (10), the LSDB with aging,
//! refresh and flushing (12, 14), reliable flooding with delayed acks (13), origination of
//! router, network, summary, AS-external and NSSA LSAs (12.4), and SPF scheduling.
//!
//! Inputs are method calls carrying `now` (time since an arbitrary epoch); outputs are queued
//! [`Output`] values. Nothing here touches a socket or a clock.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::auth;
use crate::consts::*;
use crate::lsa::*;
use crate::packet::*;
use crate::spf;
use crate::types::*;

const SEC: Duration = Duration::from_secs(1);

/// What the instance asks its driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this IP payload (protocol 89) out of an interface to `dst`.
    Send {
        iface: IfaceId,
        dst: Ipv4Addr,
        data: Bytes,
    },
    /// Install or replace a route.
    RouteAdd(Route),
    /// Withdraw a route.
    RouteDel(Prefix),
    /// A notable event, for logs.
    Event(String),
}

/// Interface states (RFC 2328 9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum IfState {
    Down,
    Loopback,
    Waiting,
    PointToPoint,
    DROther,
    Backup,
    DR,
}

/// Neighbour states (RFC 2328 10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum NbrState {
    Down,
    Attempt,
    Init,
    TwoWay,
    ExStart,
    Exchange,
    Loading,
    Full,
}

/// Neighbour events (RFC 2328 10.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NbrEvent {
    HelloReceived,
    Start,
    TwoWayReceived,
    NegotiationDone,
    ExchangeDone,
    BadLsReq,
    LoadingDone,
    AdjOk,
    SeqNumberMismatch,
    OneWay,
    KillNbr,
    InactivityTimer,
    LlDown,
}

/// Where an LSA lives: its flooding scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Link(IfaceId),
    Area(usize),
    As,
}

/// A database entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The LSA with the age it had at `installed`.
    pub lsa: Lsa,
    pub installed: Duration,
    /// Originated by this instance in this run (a self-originated LSA received from a neighbour
    /// is not fresh and gets re-originated with a higher sequence number).
    pub self_fresh: bool,
    /// A MaxAge copy has been flooded.
    pub maxage_flooded: bool,
    /// Received from a neighbour in answer to our LS Request during the database exchange,
    /// not by flooding: MinLSArrival (13 (5a)) does not hold back the next instance, which is
    /// typically the neighbour's re-origination at Full, a moment later.
    pub by_request: bool,
}

impl Entry {
    pub fn age(&self, now: Duration) -> u16 {
        let e = now.saturating_sub(self.installed).as_secs();
        (u64::from(self.lsa.hdr.age) + e).min(u64::from(MAX_AGE)) as u16
    }
    pub fn hdr(&self, now: Duration) -> LsaHeader {
        LsaHeader {
            age: self.age(now),
            ..self.lsa.hdr
        }
    }
    pub fn lsa_at(&self, now: Duration) -> Lsa {
        Lsa {
            hdr: self.hdr(now),
            body: self.lsa.body.clone(),
        }
    }
}

/// A link-state database of one scope.
pub type Lsdb = BTreeMap<LsaKey, Entry>;

#[derive(Debug, Clone)]
struct Nbr {
    rid: Ipv4Addr,
    addr: Ipv4Addr,
    prio: u8,
    dr: Ipv4Addr,
    bdr: Ipv4Addr,
    options: u8,
    state: NbrState,
    inactivity: Duration,
    master: bool,
    dd_seq: u32,
    last_rx_dd: Option<(u8, u8, u32)>,
    last_tx_dd: Option<DbDesc>,
    dd_rxmt: Option<Duration>,
    summary: VecDeque<LsaHeader>,
    req: BTreeMap<LsaKey, LsaHeader>,
    lsr_outstanding: Vec<LsaKey>,
    lsr_rxmt: Option<Duration>,
    rxmt: BTreeSet<(Scope, LsaKey)>,
    rxmt_due: Option<Duration>,
    crypto_seq: Option<u32>,
    /// When the neighbour became Full (for show output).
    full_since: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Iface {
    cfg: IfaceConfig,
    area: usize,
    state: IfState,
    dr: Ipv4Addr,
    bdr: Ipv4Addr,
    nbrs: BTreeMap<Ipv4Addr, Nbr>,
    hello_due: Option<Duration>,
    wait_due: Option<Duration>,
    acks: Vec<LsaHeader>,
    ack_due: Option<Duration>,
    link_db: Lsdb,
}

#[derive(Debug, Clone)]
struct Area {
    cfg: AreaConfig,
    db: Lsdb,
}

/// Counters, for the show commands and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub auth_failures: u64,
    pub tx_packets: u64,
    pub spf_runs: u64,
}

/// One OSPFv2 router.
#[derive(Debug)]
pub struct Instance {
    rid: Ipv4Addr,
    areas: Vec<Area>,
    ifaces: Vec<Iface>,
    as_db: Lsdb,
    externals: Vec<ExternalRoute>,
    routes: BTreeMap<Prefix, Route>,
    /// ASBRs reachable inside an area: router id -> (area id, cost).
    asbrs: BTreeMap<Ipv4Addr, (Ipv4Addr, u32)>,
    out: VecDeque<Output>,
    last_orig: BTreeMap<(Scope, LsaKey), Duration>,
    /// Highest sequence number seen for each of our own LSAs (ours or a previous
    /// incarnation's sent back by a neighbour), so that a re-origination always goes past it
    /// even after the database copy has been flushed and removed.
    seq_seen: BTreeMap<(Scope, LsaKey), i32>,
    orig_due: Option<Duration>,
    orig_dirty: bool,
    spf_due: Option<Duration>,
    /// Delay between a topology change and the SPF run.
    pub spf_delay: Duration,
    /// Hold back the first origination of our LSAs after start-up (see
    /// [`Instance::originate_all`]); the daemon turns it on, the recorded scenarios run
    /// without it.
    pub startup_hold: bool,
    /// Answer the first hello of a new neighbour with a hello at once (listing it) instead of
    /// at the next HelloInterval tick, so the neighbour sees 2-Way and starts the database
    /// exchange without waiting up to a HelloInterval. The daemon turns it on; the recorded
    /// scenarios run without it.
    pub hello_on_new_neighbor: bool,
    /// When the instance was created: the start-up hold ends MinLSInterval after it.
    started: Duration,
    /// The start-up hold is over (or was never on).
    hold_released: bool,
    next_tick: Duration,
    crypto_seq: u32,
    crypto_base: u32,
    shutting_down: bool,
    pub stats: Stats,
}

fn hello_options(kind: AreaKind) -> u8 {
    match kind {
        AreaKind::Normal => OPT_E,
        AreaKind::Stub { .. } => 0,
        AreaKind::Nssa { .. } => OPT_NP,
    }
}

impl Instance {
    pub fn new(cfg: Config, now: Duration) -> Self {
        let mut areas: Vec<Area> = cfg
            .areas
            .iter()
            .map(|a| Area {
                cfg: a.clone(),
                db: Lsdb::new(),
            })
            .collect();
        let mut ifaces = Vec::new();
        for ic in cfg.ifaces {
            let ai = match areas.iter().position(|a| a.cfg.id == ic.area) {
                Some(i) => i,
                None => {
                    areas.push(Area {
                        cfg: AreaConfig {
                            id: ic.area,
                            kind: AreaKind::Normal,
                        },
                        db: Lsdb::new(),
                    });
                    areas.len() - 1
                }
            };
            ifaces.push(Iface {
                cfg: ic,
                area: ai,
                state: IfState::Down,
                dr: Ipv4Addr::UNSPECIFIED,
                bdr: Ipv4Addr::UNSPECIFIED,
                nbrs: BTreeMap::new(),
                hello_due: None,
                wait_due: None,
                acks: Vec::new(),
                ack_due: None,
                link_db: Lsdb::new(),
            });
        }
        Instance {
            rid: cfg.router_id,
            areas,
            ifaces,
            as_db: Lsdb::new(),
            externals: cfg.externals,
            routes: BTreeMap::new(),
            asbrs: BTreeMap::new(),
            out: VecDeque::new(),
            last_orig: BTreeMap::new(),
            seq_seen: BTreeMap::new(),
            orig_due: None,
            orig_dirty: true,
            spf_due: None,
            spf_delay: Duration::from_millis(200),
            startup_hold: false,
            hello_on_new_neighbor: false,
            started: now,
            hold_released: false,
            next_tick: now + SEC,
            crypto_seq: 0,
            crypto_base: cfg.crypto_seq_base,
            shutting_down: false,
            stats: Stats::default(),
        }
    }

    pub fn router_id(&self) -> Ipv4Addr {
        self.rid
    }

    /// Next queued output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// All queued outputs.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        self.out.drain(..).collect()
    }

    fn event(&mut self, s: String) {
        self.out.push_back(Output::Event(s));
    }

    // ---------------------------------------------------------------- timers

    /// The earliest time at which [`Instance::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let mut t = Some(self.next_tick);
        let mut m = |x: Option<Duration>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t: Duration| t.min(x)));
            }
        };
        m(self.orig_due);
        m(self.spf_due);
        for i in &self.ifaces {
            m(i.hello_due);
            m(i.wait_due);
            m(i.ack_due);
            for n in i.nbrs.values() {
                m(Some(n.inactivity));
                m(n.dd_rxmt);
                m(n.lsr_rxmt);
                m(n.rxmt_due);
            }
        }
        t
    }

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        for ifi in 0..self.ifaces.len() {
            if self.ifaces[ifi].hello_due.is_some_and(|t| t <= now) {
                self.send_hello(now, ifi);
                let h = Duration::from_secs(u64::from(self.ifaces[ifi].cfg.hello_interval));
                self.ifaces[ifi].hello_due = Some(now + h);
            }
            if self.ifaces[ifi].wait_due.is_some_and(|t| t <= now) {
                self.ifaces[ifi].wait_due = None;
                if self.ifaces[ifi].state == IfState::Waiting {
                    self.elect_dr(now, ifi);
                }
            }
            if self.ifaces[ifi].ack_due.is_some_and(|t| t <= now) {
                self.flush_acks(now, ifi);
            }
            let addrs: Vec<Ipv4Addr> = self.ifaces[ifi].nbrs.keys().copied().collect();
            for a in addrs {
                let Some(n) = self.ifaces[ifi].nbrs.get(&a) else {
                    continue;
                };
                if n.inactivity <= now {
                    self.nbr_event(now, ifi, a, NbrEvent::InactivityTimer);
                    continue;
                }
                let rx = Duration::from_secs(u64::from(self.ifaces[ifi].cfg.retransmit_interval));
                if n.dd_rxmt.is_some_and(|t| t <= now) {
                    let n = self.nbr_mut(ifi, a);
                    n.dd_rxmt = Some(now + rx);
                    if let Some(dd) = n.last_tx_dd.clone() {
                        self.send(now, ifi, a, Body::DbDesc(dd));
                    }
                }
                let n = self.nbr_mut(ifi, a);
                if n.lsr_rxmt.is_some_and(|t| t <= now) {
                    n.lsr_rxmt = None;
                    n.lsr_outstanding.clear();
                    self.send_lsr(now, ifi, a);
                }
                let n = self.nbr_mut(ifi, a);
                if n.rxmt_due.is_some_and(|t| t <= now) {
                    n.rxmt_due = None;
                    self.retransmit(now, ifi, a);
                }
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + SEC;
            self.age_tick(now);
        }
        if self.orig_due.is_some_and(|t| t <= now) {
            self.orig_due = None;
            self.orig_dirty = true;
        }
        self.finish(now);
    }

    /// Work deferred to the end of every input: origination and SPF.
    fn finish(&mut self, now: Duration) {
        if self.orig_dirty && !self.shutting_down {
            self.orig_dirty = false;
            self.originate_all(now);
        }
        if self.spf_due.is_some_and(|t| t <= now) {
            self.spf_due = None;
            self.run_spf(now);
            if !self.shutting_down {
                self.originate_all(now);
            }
        }
    }

    fn schedule_spf(&mut self, now: Duration) {
        if self.spf_due.is_none() {
            self.spf_due = Some(now + self.spf_delay);
        }
    }

    // ---------------------------------------------------------------- interfaces

    /// InterfaceUp.
    pub fn iface_up(&mut self, now: Duration, ifi: IfaceId) {
        let i = &mut self.ifaces[ifi];
        if i.state != IfState::Down {
            return;
        }
        i.state = if i.cfg.passive {
            IfState::Loopback
        } else if i.cfg.net_type == NetType::PointToPoint {
            IfState::PointToPoint
        } else if i.cfg.priority == 0 {
            IfState::DROther
        } else {
            i.wait_due = Some(now + Duration::from_secs(u64::from(i.cfg.dead_interval)));
            IfState::Waiting
        };
        if !i.cfg.passive {
            i.hello_due = Some(now);
        }
        let s = format!("interface {} up: {:?}", i.cfg.name, i.state);
        self.event(s);
        self.orig_dirty = true;
        self.schedule_spf(now);
        self.handle_timeout(now);
    }

    /// InterfaceDown.
    pub fn iface_down(&mut self, now: Duration, ifi: IfaceId) {
        let addrs: Vec<Ipv4Addr> = self.ifaces[ifi].nbrs.keys().copied().collect();
        for a in addrs {
            self.nbr_event(now, ifi, a, NbrEvent::KillNbr);
        }
        let i = &mut self.ifaces[ifi];
        i.state = IfState::Down;
        i.dr = Ipv4Addr::UNSPECIFIED;
        i.bdr = Ipv4Addr::UNSPECIFIED;
        i.hello_due = None;
        i.wait_due = None;
        i.acks.clear();
        i.ack_due = None;
        i.link_db.clear();
        let s = format!("interface {} down", i.cfg.name);
        self.event(s);
        self.orig_dirty = true;
        self.schedule_spf(now);
        self.finish(now);
    }

    fn nbr_mut(&mut self, ifi: IfaceId, a: Ipv4Addr) -> &mut Nbr {
        self.ifaces[ifi].nbrs.get_mut(&a).expect("neighbour exists")
    }

    fn elect_dr(&mut self, now: Duration, ifi: IfaceId) {
        #[derive(Clone, Copy)]
        struct C {
            rid: Ipv4Addr,
            addr: Ipv4Addr,
            prio: u8,
            dr: Ipv4Addr,
            bdr: Ipv4Addr,
        }
        let i = &self.ifaces[ifi];
        let mut me = C {
            rid: self.rid,
            addr: i.cfg.addr,
            prio: i.cfg.priority,
            dr: i.dr,
            bdr: i.bdr,
        };
        let others: Vec<C> = i
            .nbrs
            .values()
            .filter(|n| n.state >= NbrState::TwoWay && n.prio > 0)
            .map(|n| C {
                rid: n.rid,
                addr: n.addr,
                prio: n.prio,
                dr: n.dr,
                bdr: n.bdr,
            })
            .collect();
        let calc = |me: C| -> (Ipv4Addr, Ipv4Addr) {
            let mut cands = others.clone();
            if me.prio > 0 {
                cands.push(me);
            }
            let best = |v: Vec<&C>| {
                v.into_iter()
                    .max_by_key(|c| (c.prio, c.rid))
                    .map(|c| c.addr)
            };
            let pool: Vec<&C> = cands.iter().filter(|c| c.dr != c.addr).collect();
            let declared: Vec<&C> = pool.iter().copied().filter(|c| c.bdr == c.addr).collect();
            let bdr = if declared.is_empty() {
                best(pool)
            } else {
                best(declared)
            }
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
            let dr = best(cands.iter().filter(|c| c.dr == c.addr).collect()).unwrap_or(bdr);
            (dr, bdr)
        };
        let (old_dr, old_bdr) = (i.dr, i.bdr);
        let (mut dr, mut bdr) = calc(me);
        let was = (old_dr == me.addr, old_bdr == me.addr);
        if was != (dr == me.addr, bdr == me.addr) {
            me.dr = dr;
            me.bdr = bdr;
            (dr, bdr) = calc(me);
        }
        let i = &mut self.ifaces[ifi];
        i.dr = dr;
        i.bdr = bdr;
        i.state = if dr == i.cfg.addr {
            IfState::DR
        } else if bdr == i.cfg.addr {
            IfState::Backup
        } else {
            IfState::DROther
        };
        if (dr, bdr) != (old_dr, old_bdr) {
            let s = format!(
                "interface {}: DR {dr} BDR {bdr} ({:?})",
                i.cfg.name, i.state
            );
            self.event(s);
            let addrs: Vec<Ipv4Addr> = self.ifaces[ifi]
                .nbrs
                .values()
                .filter(|n| n.state >= NbrState::TwoWay)
                .map(|n| n.addr)
                .collect();
            for a in addrs {
                self.nbr_event(now, ifi, a, NbrEvent::AdjOk);
            }
            self.orig_dirty = true;
            self.schedule_spf(now);
        }
    }

    fn neighbor_change(&mut self, now: Duration, ifi: IfaceId) {
        if matches!(
            self.ifaces[ifi].state,
            IfState::DR | IfState::Backup | IfState::DROther
        ) {
            self.elect_dr(now, ifi);
        }
    }

    // ---------------------------------------------------------------- packets out

    fn next_crypto_seq(&mut self, now: Duration) -> u32 {
        // Non-decreasing and never ahead of the wall clock (base + elapsed seconds), so that
        // a restarted instance, whose base is the new wall-clock time, is never below what its
        // predecessor sent (RFC 2328 D.3 accepts equal sequence numbers).
        let t = self.crypto_base.wrapping_add(now.as_secs() as u32);
        self.crypto_seq = self.crypto_seq.max(t);
        self.crypto_seq
    }

    fn send(&mut self, now: Duration, ifi: IfaceId, dst: Ipv4Addr, body: Body) {
        let i = &self.ifaces[ifi];
        let pkt = Packet {
            hdr: Header {
                router_id: self.rid,
                area_id: self.areas[i.area].cfg.id,
                checksum: 0,
                auth: AuthField::Null([0; 8]),
            },
            body,
            trailer: Bytes::new(),
        };
        let mut v: Vec<u8> = Vec::new();
        pkt.encode(&mut v);
        let auth = i.cfg.auth.clone();
        let seq = self.next_crypto_seq(now);
        auth::seal(&mut v, &auth, seq);
        self.stats.tx_packets += 1;
        self.out.push_back(Output::Send {
            iface: ifi,
            dst,
            data: v.into(),
        });
    }

    fn max_body(&self, ifi: IfaceId) -> usize {
        let i = &self.ifaces[ifi];
        usize::from(i.cfg.mtu)
            .saturating_sub(20 + HEADER_LEN + i.cfg.auth.trailer_len())
            .max(200)
    }

    fn send_hello(&mut self, now: Duration, ifi: IfaceId) {
        let i = &self.ifaces[ifi];
        if i.state == IfState::Down || i.cfg.passive {
            return;
        }
        let h = Hello {
            mask: len_mask(i.cfg.prefix_len),
            hello_interval: i.cfg.hello_interval,
            options: hello_options(self.areas[i.area].cfg.kind),
            priority: i.cfg.priority,
            dead_interval: i.cfg.dead_interval,
            dr: i.dr,
            bdr: i.bdr,
            neighbors: if self.shutting_down {
                Vec::new()
            } else {
                i.nbrs
                    .values()
                    .filter(|n| n.state >= NbrState::Init)
                    .map(|n| n.rid)
                    .collect()
            },
        };
        self.send(now, ifi, ALL_SPF_ROUTERS, Body::Hello(h));
    }

    /// Destination for flooding and delayed acks on an interface (RFC 2328 13.3 (5)).
    fn flood_dst(&self, ifi: IfaceId) -> Ipv4Addr {
        match self.ifaces[ifi].state {
            IfState::DR | IfState::Backup | IfState::PointToPoint => ALL_SPF_ROUTERS,
            _ => ALL_D_ROUTERS,
        }
    }

    fn send_lsas(&mut self, now: Duration, ifi: IfaceId, dst: Ipv4Addr, lsas: Vec<Lsa>) {
        let max = self.max_body(ifi);
        let mut batch = Vec::new();
        let mut size = 4;
        for mut l in lsas {
            l.hdr.age = l.hdr.age.saturating_add(INF_TRANS_DELAY).min(MAX_AGE);
            let n = usize::from(l.hdr.length);
            if !batch.is_empty() && size + n > max {
                self.send(now, ifi, dst, Body::LsUpdate(std::mem::take(&mut batch)));
                size = 4;
            }
            size += n;
            batch.push(l);
        }
        if !batch.is_empty() {
            self.send(now, ifi, dst, Body::LsUpdate(batch));
        }
    }

    fn flush_acks(&mut self, now: Duration, ifi: IfaceId) {
        let i = &mut self.ifaces[ifi];
        i.ack_due = None;
        let acks = std::mem::take(&mut i.acks);
        if acks.is_empty() || i.state == IfState::Down {
            return;
        }
        let dst = self.flood_dst(ifi);
        let per = self.max_body(ifi) / LSA_HEADER_LEN;
        for c in acks.chunks(per.max(1)) {
            self.send(now, ifi, dst, Body::LsAck(c.to_vec()));
        }
    }

    fn delayed_ack(&mut self, now: Duration, ifi: IfaceId, h: LsaHeader) {
        let i = &mut self.ifaces[ifi];
        i.acks.push(h);
        if i.ack_due.is_none() {
            i.ack_due = Some(now + SEC);
        }
    }

    // ---------------------------------------------------------------- packets in

    /// A packet arrived on an interface: `payload` is the IP payload, `src`/`dst` the IP
    /// addresses.
    pub fn recv(
        &mut self,
        now: Duration,
        ifi: IfaceId,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) {
        self.stats.rx_packets += 1;
        if let Err(e) = self.recv_inner(now, ifi, src, dst, payload) {
            self.stats.rx_errors += 1;
            let name = self
                .ifaces
                .get(ifi)
                .map(|i| i.cfg.name.clone())
                .unwrap_or_default();
            self.event(format!("{name}: dropped packet from {src}: {e}"));
        }
        self.finish(now);
    }

    fn recv_inner(
        &mut self,
        now: Duration,
        ifi: IfaceId,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) -> Result<(), String> {
        let Some(i) = self.ifaces.get(ifi) else {
            return Err("no such interface".into());
        };
        if i.state == IfState::Down || i.cfg.passive {
            return Err("interface not active".into());
        }
        if dst == ALL_D_ROUTERS && !matches!(i.state, IfState::DR | IfState::Backup) {
            return Err("AllDRouters while not DR/BDR".into());
        }
        let last = i.nbrs.get(&src).and_then(|n| n.crypto_seq);
        let seq = match auth::verify(payload, &i.cfg.auth, last) {
            Ok(s) => s,
            Err(e) => {
                self.stats.auth_failures += 1;
                return Err(format!("authentication: {e}"));
            }
        };
        let pkt = Packet::decode(&mut &payload[..]).map_err(|e| e.to_string())?;
        if pkt.hdr.area_id != self.areas[i.area].cfg.id {
            return Err(format!("area {} mismatch", pkt.hdr.area_id));
        }
        if pkt.hdr.router_id == self.rid {
            return Err("own router id".into());
        }
        if i.cfg.net_type == NetType::Broadcast && !i.cfg.prefix().contains(src) {
            return Err("source not on subnet".into());
        }
        let rid = pkt.hdr.router_id;
        if let Body::Hello(h) = pkt.body {
            self.recv_hello(now, ifi, src, rid, h)?;
        } else {
            let Some(n) = self.ifaces[ifi].nbrs.get(&src) else {
                return Err("no such neighbour".into());
            };
            if n.rid != rid {
                return Err("router id changed".into());
            }
            match pkt.body {
                Body::DbDesc(d) => self.recv_dd(now, ifi, src, d)?,
                Body::LsRequest(r) => self.recv_lsr(now, ifi, src, r)?,
                Body::LsUpdate(u) => self.recv_lsu(now, ifi, src, u)?,
                Body::LsAck(a) => self.recv_ack(now, ifi, src, a)?,
                Body::Hello(_) => unreachable!(),
            }
        }
        if matches!(self.ifaces[ifi].cfg.auth, auth::AuthConfig::Crypto(_))
            && let Some(n) = self.ifaces[ifi].nbrs.get_mut(&src)
        {
            n.crypto_seq = Some(seq);
        }
        Ok(())
    }

    fn recv_hello(
        &mut self,
        now: Duration,
        ifi: IfaceId,
        src: Ipv4Addr,
        rid: Ipv4Addr,
        h: Hello,
    ) -> Result<(), String> {
        let i = &self.ifaces[ifi];
        if i.cfg.net_type == NetType::Broadcast && h.mask != len_mask(i.cfg.prefix_len) {
            return Err(format!("hello mask {} mismatch", h.mask));
        }
        if h.hello_interval != i.cfg.hello_interval || h.dead_interval != i.cfg.dead_interval {
            return Err(format!(
                "hello/dead interval {}/{} mismatch",
                h.hello_interval, h.dead_interval
            ));
        }
        let want = hello_options(self.areas[i.area].cfg.kind);
        if h.options & (OPT_E | OPT_NP) != want {
            return Err(format!("options {:#x} mismatch area type", h.options));
        }
        let dead = Duration::from_secs(u64::from(i.cfg.dead_interval));
        let bcast = i.cfg.net_type == NetType::Broadcast;
        let is_new = !i.nbrs.contains_key(&src);
        if is_new {
            let n = Nbr {
                rid,
                addr: src,
                prio: h.priority,
                dr: h.dr,
                bdr: h.bdr,
                options: h.options,
                state: NbrState::Down,
                inactivity: now + dead,
                master: false,
                dd_seq: 0,
                last_rx_dd: None,
                last_tx_dd: None,
                dd_rxmt: None,
                summary: VecDeque::new(),
                req: BTreeMap::new(),
                lsr_outstanding: Vec::new(),
                lsr_rxmt: None,
                rxmt: BTreeSet::new(),
                rxmt_due: None,
                crypto_seq: None,
                full_since: None,
            };
            self.ifaces[ifi].nbrs.insert(src, n);
        }
        let n = self.nbr_mut(ifi, src);
        let (old_prio, old_dr, old_bdr) = (n.prio, n.dr, n.bdr);
        n.rid = rid;
        n.prio = h.priority;
        n.dr = h.dr;
        n.bdr = h.bdr;
        n.options = h.options;
        self.nbr_event(now, ifi, src, NbrEvent::HelloReceived);
        if h.neighbors.contains(&self.rid) {
            self.nbr_event(now, ifi, src, NbrEvent::TwoWayReceived);
        } else {
            self.nbr_event(now, ifi, src, NbrEvent::OneWay);
            return Ok(());
        }
        if !bcast {
            return Ok(());
        }
        let waiting = self.ifaces[ifi].state == IfState::Waiting;
        let mut change = !is_new && old_prio != h.priority;
        if waiting && ((h.dr == src && h.bdr == Ipv4Addr::UNSPECIFIED) || h.bdr == src) {
            self.ifaces[ifi].wait_due = None;
            self.elect_dr(now, ifi); // BackupSeen
            return Ok(());
        }
        if (h.dr == src) != (old_dr == src) || (h.bdr == src) != (old_bdr == src) {
            change = true;
        }
        if change || is_new {
            self.neighbor_change(now, ifi);
        }
        Ok(())
    }

    fn adj_ok(&self, ifi: IfaceId, a: Ipv4Addr) -> bool {
        let i = &self.ifaces[ifi];
        if i.cfg.net_type == NetType::PointToPoint {
            return true;
        }
        let Some(n) = i.nbrs.get(&a) else {
            return false;
        };
        matches!(i.state, IfState::DR | IfState::Backup) || i.dr == n.addr || i.bdr == n.addr
    }

    fn clear_lists(n: &mut Nbr) {
        n.summary.clear();
        n.req.clear();
        n.lsr_outstanding.clear();
        n.lsr_rxmt = None;
        n.rxmt.clear();
        n.rxmt_due = None;
        n.dd_rxmt = None;
    }

    fn start_exstart(&mut self, now: Duration, ifi: IfaceId, a: Ipv4Addr) {
        let rx = Duration::from_secs(u64::from(self.ifaces[ifi].cfg.retransmit_interval));
        let mtu = self.ifaces[ifi].cfg.mtu;
        let opts = hello_options(self.areas[self.ifaces[ifi].area].cfg.kind) | OPT_O;
        let n = self.nbr_mut(ifi, a);
        Self::clear_lists(n);
        n.state = NbrState::ExStart;
        n.master = true;
        n.dd_seq = (now.as_millis() as u32) ^ u32::from(a).rotate_left(7);
        n.last_rx_dd = None;
        let dd = DbDesc {
            mtu,
            options: opts,
            flags: DD_I | DD_M | DD_MS,
            seq: n.dd_seq,
            headers: vec![],
        };
        n.last_tx_dd = Some(dd.clone());
        n.dd_rxmt = Some(now + rx);
        self.send(now, ifi, a, Body::DbDesc(dd));
    }

    fn set_state(&mut self, now: Duration, ifi: IfaceId, a: Ipv4Addr, s: NbrState) {
        let n = self.nbr_mut(ifi, a);
        let old = n.state;
        if old == s {
            return;
        }
        n.state = s;
        n.full_since = if s == NbrState::Full { Some(now) } else { None };
        let rid = n.rid;
        let name = self.ifaces[ifi].cfg.name.clone();
        self.event(format!("neighbor {rid} on {name}: {old:?} -> {s:?}"));
        if old == NbrState::Full || s == NbrState::Full {
            self.orig_dirty = true;
            self.schedule_spf(now);
        }
        if (old >= NbrState::TwoWay) != (s >= NbrState::TwoWay) {
            self.neighbor_change(now, ifi);
        }
    }

    /// Run the neighbour state machine (RFC 2328 10.3).
    fn nbr_event(&mut self, now: Duration, ifi: IfaceId, a: Ipv4Addr, ev: NbrEvent) {
        let dead = Duration::from_secs(u64::from(self.ifaces[ifi].cfg.dead_interval));
        let Some(n) = self.ifaces[ifi].nbrs.get_mut(&a) else {
            return;
        };
        let st = n.state;
        use NbrEvent::*;
        use NbrState::*;
        match ev {
            HelloReceived => {
                n.inactivity = now + dead;
                if st <= Attempt {
                    self.set_state(now, ifi, a, Init);
                    if self.hello_on_new_neighbor {
                        self.ifaces[ifi].hello_due = Some(now);
                    }
                }
            }
            Start => {}
            TwoWayReceived => {
                if st == Init {
                    if self.adj_ok(ifi, a) {
                        self.set_state(now, ifi, a, ExStart);
                        self.start_exstart(now, ifi, a);
                    } else {
                        self.set_state(now, ifi, a, TwoWay);
                    }
                }
            }
            NegotiationDone => {
                if st == ExStart {
                    self.set_state(now, ifi, a, Exchange);
                    self.build_summary(now, ifi, a);
                }
            }
            ExchangeDone => {
                if st == Exchange {
                    let n = self.nbr_mut(ifi, a);
                    if !n.master {
                        // keep last DD for duplicates; no more retransmission.
                    }
                    n.dd_rxmt = None;
                    if n.req.is_empty() {
                        self.set_state(now, ifi, a, Full);
                    } else {
                        self.set_state(now, ifi, a, Loading);
                    }
                }
            }
            LoadingDone => {
                if st == Loading {
                    self.set_state(now, ifi, a, Full);
                }
            }
            AdjOk => {
                let ok = self.adj_ok(ifi, a);
                if st == TwoWay && ok {
                    self.set_state(now, ifi, a, ExStart);
                    self.start_exstart(now, ifi, a);
                } else if st >= ExStart && !ok {
                    Self::clear_lists(self.nbr_mut(ifi, a));
                    self.set_state(now, ifi, a, TwoWay);
                }
            }
            SeqNumberMismatch | BadLsReq => {
                if st >= Exchange {
                    self.event(format!("neighbor {a}: {ev:?}, restarting exchange"));
                    self.set_state(now, ifi, a, ExStart);
                    self.start_exstart(now, ifi, a);
                }
            }
            OneWay => {
                if st >= TwoWay {
                    Self::clear_lists(self.nbr_mut(ifi, a));
                    self.set_state(now, ifi, a, Init);
                }
            }
            KillNbr | InactivityTimer | LlDown => {
                Self::clear_lists(self.nbr_mut(ifi, a));
                self.set_state(now, ifi, a, Down);
                self.ifaces[ifi].nbrs.remove(&a);
                if st >= TwoWay {
                    self.neighbor_change(now, ifi);
                }
            }
        }
    }

    /// Scopes whose LSAs are exchanged over an interface.
    fn iface_scopes(&self, ifi: IfaceId) -> Vec<Scope> {
        let ai = self.ifaces[ifi].area;
        let mut v = vec![Scope::Link(ifi), Scope::Area(ai)];
        if self.areas[ai].cfg.kind == AreaKind::Normal {
            v.push(Scope::As);
        }
        v
    }

    fn build_summary(&mut self, now: Duration, ifi: IfaceId, a: Ipv4Addr) {
        let opaque = self.ifaces[ifi]
            .nbrs
            .get(&a)
            .is_some_and(|n| n.options & OPT_O != 0);
        let mut hdrs = Vec::new();
        let mut maxage = Vec::new();
        for s in self.iface_scopes(ifi) {
            for (k, e) in self.db(s) {
                if !opaque && matches!(k.ls_type, LSA_OPAQUE_LINK | LSA_OPAQUE_AREA | LSA_OPAQUE_AS)
                {
                    continue;
                }
                let h = e.hdr(now);
                if h.age >= MAX_AGE {
                    maxage.push((s, *k));
                } else {
                    hdrs.push(h);
                }
            }
        }
        let n = self.nbr_mut(ifi, a);
        n.summary = hdrs.into();
        let had = !maxage.is_empty();
        n.rxmt.extend(maxage);
        if had && n.rxmt_due.is_none() {
            let rx = Duration::from_secs(u64::from(self.ifaces[ifi].cfg.retransmit_interval));
            self.nbr_mut(ifi, a).rxmt_due = Some(now + rx);
        }
    }

    fn next_dd(&mut self, ifi: IfaceId, a: Ipv4Addr) -> DbDesc {
        let per = (self.max_body(ifi) - 8) / LSA_HEADER_LEN;
        let mtu = self.ifaces[ifi].cfg.mtu;
        let opts = hello_options(self.areas[self.ifaces[ifi].area].cfg.kind) | OPT_O;
        let n = self.nbr_mut(ifi, a);
        let take = per.min(n.summary.len());
        let headers: Vec<LsaHeader> = n.summary.drain(..take).collect();
        let mut flags = if n.master { DD_MS } else { 0 };
        if !n.summary.is_empty() {
            flags |= DD_M;
        }
        let dd = DbDesc {
            mtu,
            options: opts,
            flags,
            seq: n.dd_seq,
            headers,
        };
        n.last_tx_dd = Some(dd.clone());
        dd
    }

    fn recv_dd(
        &mut self,
        now: Duration,
        ifi: IfaceId,
        a: Ipv4Addr,
        d: DbDesc,
    ) -> Result<(), String> {
        if d.mtu > self.ifaces[ifi].cfg.mtu {
            return Err(format!("DD MTU {} above ours", d.mtu));
        }
        let rx = Duration::from_secs(u64::from(self.ifaces[ifi].cfg.retransmit_interval));
        let n = self.nbr_mut(ifi, a);
        let st = n.state;
        let dup = n.last_rx_dd == Some((d.options, d.flags, d.seq));
        match st {
            NbrState::Down | NbrState::Attempt | NbrState::TwoWay => {
                return Err("DD in state before ExStart".into());
            }
            NbrState::Init => {
                self.nbr_event(now, ifi, a, NbrEvent::TwoWayReceived);
                if self.ifaces[ifi].nbrs.get(&a).map(|n| n.state) != Some(NbrState::ExStart) {
                    return Ok(());
                }
                return self.recv_dd(now, ifi, a, d);
            }
            NbrState::ExStart => {
                let my = self.rid;
                let n = self.nbr_mut(ifi, a);
                if d.flags & (DD_I | DD_M | DD_MS) == DD_I | DD_M | DD_MS
                    && d.headers.is_empty()
                    && n.rid > my
                {
                    let n = self.nbr_mut(ifi, a);
                    n.master = false;
                    n.dd_seq = d.seq;
                    n.dd_rxmt = None;
                    n.options = d.options;
                    n.last_rx_dd = Some((d.options, d.flags, d.seq));
                    self.nbr_event(now, ifi, a, NbrEvent::NegotiationDone);
                    let dd = self.next_dd(ifi, a);
                    self.send(now, ifi, a, Body::DbDesc(dd));
                    return Ok(());
                }
                let n = self.nbr_mut(ifi, a);
                if d.flags & (DD_I | DD_MS) == 0 && d.seq == n.dd_seq && n.rid < my {
                    n.master = true;
                    n.options = d.options;
                    self.nbr_event(now, ifi, a, NbrEvent::NegotiationDone);
                    // fall through to Exchange processing of this packet
                } else {
                    return Ok(());
                }
            }
            NbrState::Exchange => {
                if dup {
                    let n = self.nbr_mut(ifi, a);
                    if !n.master
                        && let Some(dd) = n.last_tx_dd.clone()
                    {
                        self.send(now, ifi, a, Body::DbDesc(dd));
                    }
                    return Ok(());
                }
            }
            NbrState::Loading | NbrState::Full => {
                if dup {
                    let n = self.nbr_mut(ifi, a);
                    if !n.master
                        && let Some(dd) = n.last_tx_dd.clone()
                    {
                        self.send(now, ifi, a, Body::DbDesc(dd));
                    }
                    return Ok(());
                }
                self.nbr_event(now, ifi, a, NbrEvent::SeqNumberMismatch);
                return Ok(());
            }
        }
        // Exchange state processing (RFC 2328 10.6).
        let n = self.nbr_mut(ifi, a);
        let master = n.master;
        let ms_bad = (d.flags & DD_MS != 0) == master;
        let seq_ok = if master {
            d.seq == n.dd_seq
        } else {
            d.seq == n.dd_seq.wrapping_add(1)
        };
        if ms_bad || d.flags & DD_I != 0 || d.options != n.options || !seq_ok {
            self.nbr_event(now, ifi, a, NbrEvent::SeqNumberMismatch);
            return Ok(());
        }
        n.last_rx_dd = Some((d.options, d.flags, d.seq));
        // Compare headers against the database.
        let ai = self.ifaces[ifi].area;
        let normal = self.areas[ai].cfg.kind == AreaKind::Normal;
        let nssa = matches!(self.areas[ai].cfg.kind, AreaKind::Nssa { .. });
        let mut want = Vec::new();
        for h in &d.headers {
            let scope = match h.ls_type {
                LSA_ROUTER | LSA_NETWORK | LSA_SUMMARY_NET | LSA_SUMMARY_ASBR | LSA_OPAQUE_AREA => {
                    Scope::Area(ai)
                }
                LSA_NSSA if nssa => Scope::Area(ai),
                LSA_AS_EXTERNAL | LSA_OPAQUE_AS if normal => Scope::As,
                LSA_OPAQUE_LINK => Scope::Link(ifi),
                _ => {
                    self.nbr_event(now, ifi, a, NbrEvent::SeqNumberMismatch);
                    return Ok(());
                }
            };
            let newer = match self.db(scope).get(&h.key()) {
                None => true,
                Some(e) => h.compare(&e.hdr(now)) == Ordering::Greater,
            };
            if newer {
                want.push(*h);
            }
        }
        let n = self.nbr_mut(ifi, a);
        for h in want {
            n.req.insert(h.key(), h);
        }
        let more_rx = d.flags & DD_M != 0;
        if master {
            let sent_all = n.last_tx_dd.as_ref().is_some_and(|t| t.flags & DD_M == 0);
            n.dd_seq = n.dd_seq.wrapping_add(1);
            if sent_all && !more_rx {
                self.nbr_event(now, ifi, a, NbrEvent::ExchangeDone);
            } else {
                let dd = self.next_dd(ifi, a);
                self.nbr_mut(ifi, a).dd_rxmt = Some(now + rx);
                self.send(now, ifi, a, Body::DbDesc(dd));
            }
        } else {
            n.dd_seq = d.seq;
            let dd = self.next_dd(ifi, a);
            let done = !more_rx && dd.flags & DD_M == 0;
            self.send(now, ifi, a, Body::DbDesc(dd));
            if done {
                self.nbr_event(now, ifi, a, NbrEvent::ExchangeDone);
            }
        }
        if self.ifaces[ifi]
            .nbrs
            .get(&a)
            .is_some_and(|n| n.lsr_outstanding.is_empty())
        {
            self.send_lsr(now, ifi, a);
        }
        Ok(())
    }

    fn send_lsr(&mut self, now: Duration, ifi: IfaceId, a: Ipv4Addr) {
        let per = self.max_body(ifi) / 12;
        let rx = Duration::from_secs(u64::from(self.ifaces[ifi].cfg.retransmit_interval));
        let Some(n) = self.ifaces[ifi].nbrs.get_mut(&a) else {
            return;
        };
        if !matches!(n.state, NbrState::Exchange | NbrState::Loading) || n.req.is_empty() {
            return;
        }
        let keys: Vec<LsaKey> = n.req.keys().take(per).copied().collect();
        n.lsr_outstanding = keys.clone();
        n.lsr_rxmt = Some(now + rx);
        let reqs = keys
            .iter()
            .map(|k| LsRequest {
                ls_type: u32::from(k.ls_type),
                id: k.id,
                adv: k.adv,
            })
            .collect();
        self.send(now, ifi, a, Body::LsRequest(reqs));
    }

    fn recv_lsr(
        &mut self,
        now: Duration,
        ifi: IfaceId,
        a: Ipv4Addr,
        r: Vec<LsRequest>,
    ) -> Result<(), String> {
        let st = self.ifaces[ifi].nbrs[&a].state;
        if st < NbrState::Exchange {
            return Err("LSR before Exchange".into());
        }
        let mut lsas = Vec::new();
        for q in r {
            let Ok(t) = u8::try_from(q.ls_type) else {
                self.nbr_event(now, ifi, a, NbrEvent::BadLsReq);
                return Ok(());
            };
            let k = LsaKey {
                ls_type: t,
                id: q.id,
                adv: q.adv,
            };
            match self.scope_for(t, ifi).and_then(|s| self.db(s).get(&k)) {
                Some(e) => lsas.push(e.lsa_at(now)),
                None => {
                    self.nbr_event(now, ifi, a, NbrEvent::BadLsReq);
                    return Ok(());
                }
            }
        }
        let dst = if self.ifaces[ifi].cfg.net_type == NetType::PointToPoint {
            ALL_SPF_ROUTERS
        } else {
            a
        };
        self.send_lsas(now, ifi, dst, lsas);
        Ok(())
    }

    fn scope_for(&self, t: u8, ifi: IfaceId) -> Option<Scope> {
        let ai = self.ifaces[ifi].area;
        let kind = self.areas[ai].cfg.kind;
        match t {
            LSA_ROUTER | LSA_NETWORK | LSA_SUMMARY_NET | LSA_SUMMARY_ASBR | LSA_OPAQUE_AREA => {
                Some(Scope::Area(ai))
            }
            LSA_NSSA if matches!(kind, AreaKind::Nssa { .. }) => Some(Scope::Area(ai)),
            LSA_AS_EXTERNAL | LSA_OPAQUE_AS if kind == AreaKind::Normal => Some(Scope::As),
            LSA_OPAQUE_LINK => Some(Scope::Link(ifi)),
            _ => None,
        }
    }

    pub fn db(&self, s: Scope) -> &Lsdb {
        match s {
            Scope::Link(i) => &self.ifaces[i].link_db,
            Scope::Area(a) => &self.areas[a].db,
            Scope::As => &self.as_db,
        }
    }

    fn db_mut(&mut self, s: Scope) -> &mut Lsdb {
        match s {
            Scope::Link(i) => &mut self.ifaces[i].link_db,
            Scope::Area(a) => &mut self.areas[a].db,
            Scope::As => &mut self.as_db,
        }
    }

    fn any_exchanging(&self, s: Scope) -> bool {
        self.flood_ifaces(s).iter().any(|&i| {
            self.ifaces[i]
                .nbrs
                .values()
                .any(|n| matches!(n.state, NbrState::Exchange | NbrState::Loading))
        })
    }

    fn flood_ifaces(&self, s: Scope) -> Vec<IfaceId> {
        (0..self.ifaces.len())
            .filter(|&i| {
                let a = self.ifaces[i].area;
                match s {
                    Scope::Link(l) => l == i,
                    Scope::Area(x) => x == a,
                    Scope::As => self.areas[a].cfg.kind == AreaKind::Normal,
                }
            })
            .collect()
    }

    /// Receive a Link State Update (RFC 2328 13).
    fn recv_lsu(
        &mut self,
        now: Duration,
        ifi: IfaceId,
        a: Ipv4Addr,
        lsas: Vec<Lsa>,
    ) -> Result<(), String> {
        if self.ifaces[ifi].nbrs[&a].state < NbrState::Exchange {
            return Err("LSU before Exchange".into());
        }
        let mut direct_acks = Vec::new();
        for lsa in lsas {
            let raw = lsa.to_bytes();
            if !crate::checksum::lsa_valid(&raw) {
                self.event(format!("LSA {:?} from {a}: bad checksum", lsa.hdr.key()));
                continue;
            }
            let Some(scope) = self.scope_for(lsa.hdr.ls_type, ifi) else {
                continue;
            };
            let key = lsa.hdr.key();
            let h = lsa.hdr;
            let cur = self
                .db(scope)
                .get(&key)
                .map(|e| (e.hdr(now), e.installed, e.by_request));
            if h.age >= MAX_AGE && cur.is_none() && !self.any_exchanging(scope) {
                direct_acks.push(h);
                continue;
            }
            let newer = cur.is_none_or(|(c, _, _)| h.compare(&c) == Ordering::Greater);
            if newer {
                if let Some((_, inst, false)) = cur
                    && now.saturating_sub(inst) < Duration::from_secs(MIN_LS_ARRIVAL)
                    && h.adv != self.rid
                {
                    continue; // MinLSArrival
                }
                let requested = self.ifaces[ifi].nbrs[&a].req.contains_key(&key);
                let back = self.flood(now, scope, &lsa, Some((ifi, a)));
                self.install(now, scope, lsa, false);
                if requested && let Some(e) = self.db_mut(scope).get_mut(&key) {
                    e.by_request = true;
                }
                if !back {
                    let i = &self.ifaces[ifi];
                    if i.state != IfState::Backup || i.dr == a {
                        self.delayed_ack(now, ifi, h);
                    }
                }
                continue;
            }
            let n = self.nbr_mut(ifi, a);
            if n.req.contains_key(&key) {
                self.nbr_event(now, ifi, a, NbrEvent::BadLsReq);
                return Ok(());
            }
            let (c, _, _) = cur.expect("db copy exists when not newer");
            if h.compare(&c) == Ordering::Equal {
                let n = self.nbr_mut(ifi, a);
                if n.rxmt.remove(&(scope, key)) {
                    let i = &self.ifaces[ifi];
                    if i.state == IfState::Backup && i.dr == a {
                        self.delayed_ack(now, ifi, h);
                    }
                } else {
                    direct_acks.push(h);
                }
                continue;
            }
            // Our copy is newer: send it back unless it is a MaxAge/MaxSeq flush in progress.
            if c.age >= MAX_AGE && c.seq == MAX_SEQ {
                continue;
            }
            if let Some(e) = self.db(scope).get(&key) {
                let l = e.lsa_at(now);
                self.send_lsas(now, ifi, a, vec![l]);
            }
        }
        if !direct_acks.is_empty() {
            let dst = if self.ifaces[ifi].cfg.net_type == NetType::PointToPoint {
                ALL_SPF_ROUTERS
            } else {
                a
            };
            self.send(now, ifi, dst, Body::LsAck(direct_acks));
        }
        // Loading progress.
        if let Some(n) = self.ifaces[ifi].nbrs.get(&a) {
            if n.state == NbrState::Loading && n.req.is_empty() {
                self.nbr_mut(ifi, a).lsr_rxmt = None;
                self.nbr_event(now, ifi, a, NbrEvent::LoadingDone);
            } else if n.lsr_outstanding.iter().all(|k| !n.req.contains_key(k)) {
                self.send_lsr(now, ifi, a);
            }
        }
        Ok(())
    }

    fn recv_ack(
        &mut self,
        now: Duration,
        ifi: IfaceId,
        a: Ipv4Addr,
        acks: Vec<LsaHeader>,
    ) -> Result<(), String> {
        if self.ifaces[ifi].nbrs[&a].state < NbrState::Exchange {
            return Err("LSAck before Exchange".into());
        }
        for h in acks {
            let Some(scope) = self.scope_for(h.ls_type, ifi) else {
                continue;
            };
            let same = self
                .db(scope)
                .get(&h.key())
                .is_some_and(|e| e.hdr(now).compare(&h) == Ordering::Equal);
            if same {
                self.nbr_mut(ifi, a).rxmt.remove(&(scope, h.key()));
            }
        }
        Ok(())
    }

    fn retransmit(&mut self, now: Duration, ifi: IfaceId, a: Ipv4Addr) {
        let Some(n) = self.ifaces[ifi].nbrs.get(&a) else {
            return;
        };
        if n.rxmt.is_empty() {
            return;
        }
        let items: Vec<(Scope, LsaKey)> = n.rxmt.iter().copied().collect();
        let mut lsas = Vec::new();
        let mut gone = Vec::new();
        for (s, k) in items {
            match self.db(s).get(&k) {
                Some(e) => lsas.push(e.lsa_at(now)),
                None => gone.push((s, k)),
            }
        }
        let rx = Duration::from_secs(u64::from(self.ifaces[ifi].cfg.retransmit_interval));
        let n = self.nbr_mut(ifi, a);
        for g in gone {
            n.rxmt.remove(&g);
        }
        if !n.rxmt.is_empty() {
            n.rxmt_due = Some(now + rx);
        }
        if !lsas.is_empty() {
            self.send_lsas(now, ifi, a, lsas);
        }
    }

    /// Flood an LSA out of the interfaces of its scope (RFC 2328 13.3). `from` is the receiving
    /// interface and neighbour. Returns whether it was flooded back out the receiving interface.
    fn flood(
        &mut self,
        now: Duration,
        scope: Scope,
        lsa: &Lsa,
        from: Option<(IfaceId, Ipv4Addr)>,
    ) -> bool {
        let key = lsa.hdr.key();
        let mut back = false;
        let rx_of = |s: &Self, i: IfaceId| {
            Duration::from_secs(u64::from(s.ifaces[i].cfg.retransmit_interval))
        };
        for ifi in self.flood_ifaces(scope) {
            if self.ifaces[ifi].state == IfState::Down || self.ifaces[ifi].cfg.passive {
                continue;
            }
            let rx = rx_of(self, ifi);
            let mut added = false;
            let addrs: Vec<Ipv4Addr> = self.ifaces[ifi].nbrs.keys().copied().collect();
            let mut loading_done = Vec::new();
            for na in addrs {
                let n = self.nbr_mut(ifi, na);
                if n.state < NbrState::Exchange {
                    continue;
                }
                if n.state < NbrState::Full
                    && let Some(rq) = n.req.get(&key).copied()
                {
                    match lsa.hdr.compare(&rq) {
                        Ordering::Less => continue,
                        Ordering::Equal => {
                            n.req.remove(&key);
                            if n.req.is_empty() && n.state == NbrState::Loading {
                                loading_done.push(na);
                            }
                            continue;
                        }
                        Ordering::Greater => {
                            n.req.remove(&key);
                            if n.req.is_empty() && n.state == NbrState::Loading {
                                loading_done.push(na);
                            }
                        }
                    }
                }
                if from == Some((ifi, na)) {
                    continue;
                }
                n.rxmt.insert((scope, key));
                if n.rxmt_due.is_none() {
                    n.rxmt_due = Some(now + rx);
                }
                added = true;
            }
            for na in loading_done {
                if from != Some((ifi, na)) {
                    self.nbr_mut(ifi, na).lsr_rxmt = None;
                    self.nbr_event(now, ifi, na, NbrEvent::LoadingDone);
                }
            }
            if !added {
                continue;
            }
            if let Some((fi, fa)) = from
                && fi == ifi
            {
                let i = &self.ifaces[ifi];
                if i.cfg.net_type == NetType::Broadcast && (i.dr == fa || i.bdr == fa) {
                    continue;
                }
                if i.state == IfState::Backup {
                    continue;
                }
                back = true;
            }
            let dst = self.flood_dst(ifi);
            self.send_lsas(now, ifi, dst, vec![lsa.clone()]);
        }
        back
    }

    /// Install an LSA (RFC 2328 13.2).
    fn install(&mut self, now: Duration, scope: Scope, lsa: Lsa, self_fresh: bool) {
        let key = lsa.hdr.key();
        let changed = match self.db(scope).get(&key) {
            None => true,
            Some(old) => {
                old.lsa.body != lsa.body
                    || old.lsa.hdr.options != lsa.hdr.options
                    || (old.age(now) >= MAX_AGE) != (lsa.hdr.age >= MAX_AGE)
            }
        };
        // Remove the old instance from every retransmission list.
        for i in &mut self.ifaces {
            for n in i.nbrs.values_mut() {
                n.rxmt.remove(&(scope, key));
            }
        }
        // Keep the retransmission entries the flooding step just added.
        let maxage = lsa.hdr.age >= MAX_AGE;
        let is_self = lsa.hdr.adv == self.rid;
        if is_self {
            let m = self.seq_seen.entry((scope, key)).or_insert(lsa.hdr.seq);
            // Our own origination resets it (after a sequence wrap it starts low again).
            *m = if self_fresh {
                lsa.hdr.seq
            } else {
                (*m).max(lsa.hdr.seq)
            };
        }
        self.db_mut(scope).insert(
            key,
            Entry {
                lsa,
                installed: now,
                self_fresh,
                maxage_flooded: maxage,
                by_request: false,
            },
        );
        if is_self && !self_fresh {
            self.orig_dirty = true;
        }
        if changed {
            self.schedule_spf(now);
        }
    }

    fn install_and_flood(&mut self, now: Duration, scope: Scope, lsa: Lsa, self_fresh: bool) {
        self.install(now, scope, lsa.clone(), self_fresh);
        self.flood(now, scope, &lsa, None);
    }

    // ---------------------------------------------------------------- aging

    fn all_scopes(&self) -> Vec<Scope> {
        let mut v: Vec<Scope> = (0..self.ifaces.len()).map(Scope::Link).collect();
        v.extend((0..self.areas.len()).map(Scope::Area));
        v.push(Scope::As);
        v
    }

    fn on_rxmt_list(&self, s: Scope, k: LsaKey) -> bool {
        self.ifaces
            .iter()
            .any(|i| i.nbrs.values().any(|n| n.rxmt.contains(&(s, k))))
    }

    fn age_tick(&mut self, now: Duration) {
        for s in self.all_scopes() {
            let mut refresh = false;
            let mut to_flood = Vec::new();
            let mut to_remove = Vec::new();
            for (k, e) in self.db(s) {
                let age = e.age(now);
                if k.adv == self.rid && e.self_fresh && (LS_REFRESH_TIME..MAX_AGE).contains(&age) {
                    refresh = true;
                }
                if age >= MAX_AGE {
                    if !e.maxage_flooded {
                        to_flood.push(*k);
                    } else if !self.on_rxmt_list(s, *k) && !self.any_exchanging(s) {
                        to_remove.push(*k);
                    }
                }
            }
            for k in to_flood {
                let e = self.db_mut(s).get_mut(&k).expect("entry");
                e.maxage_flooded = true;
                let l = e.lsa_at(now);
                self.flood(now, s, &l, None);
                self.schedule_spf(now);
            }
            for k in to_remove {
                self.db_mut(s).remove(&k);
                if k.adv == self.rid {
                    self.orig_dirty = true;
                }
            }
            if refresh {
                let my = self.rid;
                for e in self.db_mut(s).values_mut() {
                    if e.lsa.hdr.adv == my && e.age(now) >= LS_REFRESH_TIME {
                        e.self_fresh = false;
                    }
                }
                self.orig_dirty = true;
            }
        }
    }

    // ---------------------------------------------------------------- origination

    fn is_abr(&self) -> bool {
        let active: BTreeSet<usize> = self
            .ifaces
            .iter()
            .filter(|i| i.state != IfState::Down)
            .map(|i| i.area)
            .collect();
        active.len() > 1
    }

    fn router_lsa_body(&self, ai: usize) -> RouterLsa {
        let mut links = Vec::new();
        for i in self.ifaces.iter().filter(|i| i.area == ai) {
            let c = &i.cfg;
            let stub = |links: &mut Vec<RouterLink>| {
                let p = c.prefix();
                links.push(RouterLink {
                    id: p.addr,
                    data: p.mask(),
                    link_type: LINK_STUB,
                    metric: c.cost,
                    tos: vec![],
                })
            };
            match i.state {
                IfState::Down => {}
                IfState::Loopback | IfState::Waiting => stub(&mut links),
                IfState::PointToPoint => {
                    for n in i.nbrs.values().filter(|n| n.state == NbrState::Full) {
                        links.push(RouterLink {
                            id: n.rid,
                            data: c.addr,
                            link_type: LINK_P2P,
                            metric: c.cost,
                            tos: vec![],
                        });
                    }
                    stub(&mut links);
                }
                IfState::DR => {
                    if i.nbrs.values().any(|n| n.state == NbrState::Full) {
                        links.push(RouterLink {
                            id: c.addr,
                            data: c.addr,
                            link_type: LINK_TRANSIT,
                            metric: c.cost,
                            tos: vec![],
                        });
                    } else {
                        stub(&mut links);
                    }
                }
                IfState::Backup | IfState::DROther => {
                    if i.nbrs.get(&i.dr).is_some_and(|n| n.state == NbrState::Full) {
                        links.push(RouterLink {
                            id: i.dr,
                            data: c.addr,
                            link_type: LINK_TRANSIT,
                            metric: c.cost,
                            tos: vec![],
                        });
                    } else {
                        stub(&mut links);
                    }
                }
            }
        }
        let mut flags = 0;
        if self.is_abr() {
            flags |= RTR_B;
        }
        let asbr = !self.externals.is_empty() || !self.nssa_translations().is_empty();
        if asbr && !matches!(self.areas[ai].cfg.kind, AreaKind::Stub { .. }) {
            flags |= RTR_E;
        }
        RouterLsa {
            flags,
            links,
            reserved: 0,
        }
    }

    /// The set of LSAs this router wants in the databases right now.
    fn desired(&self) -> Vec<(Scope, LsaHeader, LsaBody)> {
        let mut v = Vec::new();
        let rid = self.rid;
        let hdr = |t: u8, id: Ipv4Addr, options: u8| LsaHeader {
            age: 0,
            options,
            ls_type: t,
            id,
            adv: rid,
            seq: 0,
            checksum: 0,
            length: 0,
        };
        let abr = self.is_abr();
        for (ai, a) in self.areas.iter().enumerate() {
            if !self
                .ifaces
                .iter()
                .any(|i| i.area == ai && i.state != IfState::Down)
            {
                continue;
            }
            let opts = hello_options(a.cfg.kind);
            v.push((
                Scope::Area(ai),
                hdr(LSA_ROUTER, rid, opts),
                LsaBody::Router(self.router_lsa_body(ai)),
            ));
            for i in self
                .ifaces
                .iter()
                .filter(|i| i.area == ai && i.state == IfState::DR)
            {
                let full: Vec<Ipv4Addr> = i
                    .nbrs
                    .values()
                    .filter(|n| n.state == NbrState::Full)
                    .map(|n| n.rid)
                    .collect();
                if full.is_empty() {
                    continue;
                }
                let mut routers = vec![rid];
                routers.extend(full);
                v.push((
                    Scope::Area(ai),
                    hdr(LSA_NETWORK, i.cfg.addr, opts),
                    LsaBody::Network(NetworkLsa {
                        mask: len_mask(i.cfg.prefix_len),
                        routers,
                    }),
                ));
            }
            // Summaries (12.4.3) when we are an ABR.
            if abr {
                let (no_sum, dflt) = match a.cfg.kind {
                    AreaKind::Normal => (false, None),
                    AreaKind::Stub {
                        no_summary,
                        default_cost,
                    }
                    | AreaKind::Nssa {
                        no_summary,
                        default_cost,
                    } => (no_summary, Some(default_cost)),
                };
                if let Some(c) = dflt {
                    v.push((
                        Scope::Area(ai),
                        hdr(LSA_SUMMARY_NET, Ipv4Addr::UNSPECIFIED, opts),
                        LsaBody::Summary(SummaryLsa {
                            mask: Ipv4Addr::UNSPECIFIED,
                            metric: c,
                            tos: vec![],
                            reserved: 0,
                        }),
                    ));
                }
                if !no_sum {
                    for r in self.routes.values() {
                        let Some(ra) = r.area else { continue };
                        if ra == a.cfg.id || r.cost >= LS_INFINITY {
                            continue;
                        }
                        let ok = match r.path {
                            PathType::Intra => true,
                            PathType::Inter => a.cfg.id != Ipv4Addr::UNSPECIFIED,
                            _ => false,
                        };
                        if !ok || (r.prefix.len == 0 && dflt.is_some()) {
                            continue;
                        }
                        v.push((
                            Scope::Area(ai),
                            hdr(LSA_SUMMARY_NET, r.prefix.addr, opts),
                            LsaBody::Summary(SummaryLsa {
                                mask: r.prefix.mask(),
                                metric: r.cost,
                                tos: vec![],
                                reserved: 0,
                            }),
                        ));
                    }
                }
            }
            // ASBR-summaries (type 4) into normal areas for ASBRs reached in other areas.
            if abr && a.cfg.kind == AreaKind::Normal {
                for (asbr, (area, cost)) in &self.asbrs {
                    if *area == a.cfg.id || *asbr == rid {
                        continue;
                    }
                    v.push((
                        Scope::Area(ai),
                        hdr(LSA_SUMMARY_ASBR, *asbr, opts),
                        LsaBody::Summary(SummaryLsa {
                            mask: Ipv4Addr::UNSPECIFIED,
                            metric: *cost,
                            tos: vec![],
                            reserved: 0,
                        }),
                    ));
                }
            }
            if let AreaKind::Nssa { .. } = a.cfg.kind {
                let fwd = self
                    .ifaces
                    .iter()
                    .find(|i| i.area == ai && i.state != IfState::Down)
                    .map_or(Ipv4Addr::UNSPECIFIED, |i| i.cfg.addr);
                for e in &self.externals {
                    v.push((
                        Scope::Area(ai),
                        hdr(LSA_NSSA, e.prefix.addr, OPT_NP),
                        LsaBody::External(ExternalLsa {
                            mask: e.prefix.mask(),
                            e2: e.e2,
                            metric: e.metric,
                            fwd: if e.fwd.is_unspecified() { fwd } else { e.fwd },
                            tag: e.tag,
                            tos: vec![],
                            reserved: 0,
                        }),
                    ));
                }
            }
        }
        let any_normal = self
            .ifaces
            .iter()
            .any(|i| i.state != IfState::Down && self.areas[i.area].cfg.kind == AreaKind::Normal);
        if any_normal {
            for e in &self.externals {
                v.push((
                    Scope::As,
                    hdr(LSA_AS_EXTERNAL, e.prefix.addr, OPT_E),
                    LsaBody::External(ExternalLsa {
                        mask: e.prefix.mask(),
                        e2: e.e2,
                        metric: e.metric,
                        fwd: e.fwd,
                        tag: e.tag,
                        tos: vec![],
                        reserved: 0,
                    }),
                ));
            }
            v.extend(self.nssa_translations());
        }
        v
    }

    /// NSSA ABR: type-7 LSAs with the P bit translated into type-5 (RFC 3101 3.2). Every NSSA
    /// border router translates; there is no translator election.
    fn nssa_translations(&self) -> Vec<(Scope, LsaHeader, LsaBody)> {
        let mut v = Vec::new();
        let rid = self.rid;
        if !self.is_abr() {
            return v;
        }
        for a in &self.areas {
            if !matches!(a.cfg.kind, AreaKind::Nssa { .. }) {
                continue;
            }
            for (k, e) in &a.db {
                if k.ls_type != LSA_NSSA || k.adv == rid || e.lsa.hdr.options & OPT_NP == 0 {
                    continue;
                }
                let LsaBody::External(x) = &e.lsa.body else {
                    continue;
                };
                if x.fwd.is_unspecified() {
                    continue;
                }
                let p = Prefix::new(k.id, mask_len(x.mask));
                if self.routes.get(&p).is_none_or(|r| r.path < PathType::Ext1) {
                    continue;
                }
                let h = LsaHeader {
                    age: 0,
                    options: OPT_E,
                    ls_type: LSA_AS_EXTERNAL,
                    id: k.id,
                    adv: rid,
                    seq: 0,
                    checksum: 0,
                    length: 0,
                };
                v.push((
                    Scope::As,
                    h,
                    LsaBody::External(ExternalLsa {
                        tos: vec![],
                        reserved: 0,
                        ..x.clone()
                    }),
                ));
            }
        }
        v
    }

    ///
    /// Start-up hold: a router that originates its router-LSA as soon as its interfaces come up
    /// must wait MinLSInterval (12.4) before it may list its first adjacency, which comes about
    /// a hello interval later, so neither side has routes for ~5 s. With `startup_hold` we
    /// originate nothing until a neighbour is Full and no other one is still on its way
    /// (Init to Loading), or until MinLSInterval after start-up, whichever is first. Delaying
    /// an origination is always within the RFC; nobody has been sent the LSA in the meantime,
    /// so the first instance a peer sees already lists the adjacency, arrives well clear of
    /// the peer's MinLSArrival, and we are never later than without the hold.
    fn originate_all(&mut self, now: Duration) {
        if self.startup_hold && !self.hold_released {
            let deadline = self.started + Duration::from_secs(MIN_LS_INTERVAL);
            let nbrs = || self.ifaces.iter().flat_map(|i| i.nbrs.values());
            let full = nbrs().any(|n| n.state == NbrState::Full);
            let forming = nbrs().any(|n| {
                matches!(
                    n.state,
                    NbrState::Init | NbrState::ExStart | NbrState::Exchange | NbrState::Loading
                )
            });
            if now < deadline && (!full || forming) {
                self.orig_due = Some(self.orig_due.map_or(deadline, |d| d.min(deadline)));
                return;
            }
            self.hold_released = true;
            self.event("start-up hold over: originating".into());
        }
        let want = self.desired();
        let mut wanted: BTreeSet<(Scope, LsaKey)> = BTreeSet::new();
        for (s, mut h, body) in want {
            let key = h.key();
            if !wanted.insert((s, key)) {
                continue; // first one wins (duplicate summary ids)
            }
            let seq = match self.db(s).get(&key) {
                None => match self.seq_seen.get(&(s, key)).copied() {
                    None | Some(MAX_SEQ) => INITIAL_SEQ,
                    Some(q) => q.saturating_add(1),
                },
                Some(e) => {
                    let maxage = e.age(now) >= MAX_AGE;
                    if e.lsa.hdr.seq == MAX_SEQ {
                        // Sequence wrap (12.1.6): flush, and start again from
                        // InitialSequenceNumber once the flushed copy is gone.
                        if !maxage {
                            self.premature_age(now, s, key);
                        }
                        continue;
                    }
                    if !maxage
                        && e.self_fresh
                        && e.lsa.body == body
                        && e.lsa.hdr.options == h.options
                    {
                        continue;
                    }
                    // Also when the copy is MaxAge (our own flush, or a previous incarnation's
                    // instance sent back by a neighbour, 13.4): one past it is newer.
                    e.lsa
                        .hdr
                        .seq
                        .max(
                            self.seq_seen
                                .get(&(s, key))
                                .copied()
                                .unwrap_or(e.lsa.hdr.seq),
                        )
                        .saturating_add(1)
                }
            };
            if let Some(t) = self.last_orig.get(&(s, key)).copied() {
                let next = t + Duration::from_secs(MIN_LS_INTERVAL);
                if now < next {
                    self.orig_due = Some(self.orig_due.map_or(next, |d| d.min(next)));
                    continue;
                }
            }
            h.seq = seq;
            let mut lsa = Lsa { hdr: h, body };
            lsa.to_bytes_sealed();
            self.last_orig.insert((s, key), now);
            self.install_and_flood(now, s, lsa, true);
        }
        // Flush what we no longer want.
        let mut flush = Vec::new();
        for s in self.all_scopes() {
            for (k, e) in self.db(s) {
                if k.adv == self.rid && !wanted.contains(&(s, *k)) && e.age(now) < MAX_AGE {
                    flush.push((s, *k));
                }
            }
        }
        for (s, k) in flush {
            self.premature_age(now, s, k);
        }
    }

    fn premature_age(&mut self, now: Duration, s: Scope, k: LsaKey) {
        let Some(e) = self.db_mut(s).get_mut(&k) else {
            return;
        };
        e.lsa.hdr.age = MAX_AGE;
        e.installed = now;
        e.maxage_flooded = true;
        let l = e.lsa.clone();
        for i in &mut self.ifaces {
            for n in i.nbrs.values_mut() {
                n.rxmt.remove(&(s, k));
            }
        }
        self.flood(now, s, &l, None);
        self.schedule_spf(now);
    }

    /// Replace the set of redistributed routes.
    pub fn set_externals(&mut self, now: Duration, mut ext: Vec<ExternalRoute>) {
        ext.sort();
        ext.dedup_by_key(|e| e.prefix);
        if ext != self.externals {
            self.externals = ext;
            self.orig_dirty = true;
            self.finish(now);
        }
    }

    /// Flush every self-originated LSA (MaxAge) ahead of an exit. Keep driving timers until
    /// [`Instance::flushed`] or a grace period passes.
    pub fn shutdown(&mut self, now: Duration) {
        self.shutting_down = true;
        let mut mine = Vec::new();
        for s in self.all_scopes() {
            for (k, e) in self.db(s) {
                if k.adv == self.rid && e.age(now) < MAX_AGE {
                    mine.push((s, *k));
                }
            }
        }
        for (s, k) in mine {
            self.premature_age(now, s, k);
        }
        for ifi in 0..self.ifaces.len() {
            self.send_hello(now, ifi);
        }
    }

    /// True once no neighbour still has a self-originated LSA to acknowledge.
    pub fn flushed(&self) -> bool {
        self.ifaces.iter().all(|i| {
            i.nbrs
                .values()
                .all(|n| n.rxmt.iter().all(|(_, k)| k.adv != self.rid))
        })
    }

    // ---------------------------------------------------------------- SPF

    fn run_spf(&mut self, now: Duration) {
        self.stats.spf_runs += 1;
        // Live LSAs only, by reference: no copy of the database per run.
        fn live(db: &Lsdb, now: Duration) -> BTreeMap<LsaKey, &Lsa> {
            db.iter()
                .filter(|(_, e)| e.age(now) < MAX_AGE)
                .map(|(k, e)| (*k, &e.lsa))
                .collect()
        }
        let snap = |db| live(db, now);
        let dbs: Vec<BTreeMap<LsaKey, &Lsa>> = self.areas.iter().map(|a| snap(&a.db)).collect();
        let as_db = snap(&self.as_db);
        let mut results = Vec::new();
        for (ai, db) in dbs.iter().enumerate() {
            let ifs: Vec<(Ipv4Addr, IfaceId)> = self
                .ifaces
                .iter()
                .enumerate()
                .filter(|(_, i)| i.area == ai && i.state != IfState::Down)
                .map(|(n, i)| (i.cfg.addr, n))
                .collect();
            let f = move |a: Ipv4Addr| ifs.iter().find(|(x, _)| *x == a).map(|(_, i)| *i);
            results.push(spf::area_spf(db, self.rid, &f));
        }
        let inputs: Vec<spf::AreaInput<'_, &Lsa>> = self
            .areas
            .iter()
            .enumerate()
            .map(|(ai, a)| spf::AreaInput {
                id: a.cfg.id,
                kind: a.cfg.kind,
                db: &dbs[ai],
                spf: &results[ai],
                active: self
                    .ifaces
                    .iter()
                    .any(|i| i.area == ai && i.state != IfState::Down),
            })
            .collect();
        let mut rt = spf::routing_table(self.rid, &inputs, &as_db);
        // Our own stub networks come out of SPF without a next hop: name the interface.
        for r in rt.values_mut() {
            if r.nexthops.is_empty()
                && let Some(i) = self
                    .ifaces
                    .iter()
                    .position(|i| i.state != IfState::Down && i.cfg.prefix() == r.prefix)
            {
                r.nexthops.insert(Nexthop { iface: i, gw: None });
            }
        }
        let mut asbrs: BTreeMap<Ipv4Addr, (Ipv4Addr, u32)> = BTreeMap::new();
        for (ai, r) in results.iter().enumerate() {
            for (rid, rr) in &r.routers {
                if rr.flags & RTR_E != 0 && asbrs.get(rid).is_none_or(|(_, c)| rr.cost < *c) {
                    asbrs.insert(*rid, (self.areas[ai].cfg.id, rr.cost));
                }
            }
        }
        self.asbrs = asbrs;
        // Diff against the previous table.
        for (p, r) in &rt {
            if self.routes.get(p) != Some(r) {
                self.out.push_back(Output::RouteAdd(r.clone()));
            }
        }
        for p in self.routes.keys() {
            if !rt.contains_key(p) {
                self.out.push_back(Output::RouteDel(*p));
            }
        }
        self.routes = rt;
    }

    // ---------------------------------------------------------------- views

    pub fn routes(&self) -> &BTreeMap<Prefix, Route> {
        &self.routes
    }

    pub fn iface_name(&self, i: IfaceId) -> &str {
        &self.ifaces[i].cfg.name
    }

    pub fn neighbors(&self, now: Duration) -> Vec<NeighborView> {
        let mut v = Vec::new();
        for i in &self.ifaces {
            for n in i.nbrs.values() {
                let role = if i.cfg.net_type == NetType::PointToPoint {
                    "-"
                } else if n.addr == i.dr {
                    "DR"
                } else if n.addr == i.bdr {
                    "Backup"
                } else {
                    "DROther"
                };
                v.push(NeighborView {
                    router_id: n.rid,
                    priority: n.prio,
                    state: n.state,
                    role: role.to_string(),
                    dead_time_ms: n.inactivity.saturating_sub(now).as_millis() as u64,
                    address: n.addr,
                    interface: i.cfg.name.clone(),
                    retransmit: n.rxmt.len(),
                    request: n.req.len(),
                    summary: n.summary.len(),
                });
            }
        }
        v
    }

    fn rid_at(&self, i: &Iface, addr: Ipv4Addr) -> Ipv4Addr {
        if addr == i.cfg.addr && !addr.is_unspecified() {
            return self.rid;
        }
        i.nbrs.get(&addr).map_or(Ipv4Addr::UNSPECIFIED, |n| n.rid)
    }

    pub fn interfaces(&self) -> Vec<InterfaceView> {
        self.ifaces
            .iter()
            .map(|i| InterfaceView {
                name: i.cfg.name.clone(),
                address: format!("{}/{}", i.cfg.addr, i.cfg.prefix_len),
                ip: i.cfg.addr,
                area: self.areas[i.area].cfg.id,
                network_type: i.cfg.net_type,
                state: i.state,
                cost: i.cfg.cost,
                priority: i.cfg.priority,
                hello: i.cfg.hello_interval,
                dead: i.cfg.dead_interval,
                retransmit: i.cfg.retransmit_interval,
                dr: i.dr,
                bdr: i.bdr,
                dr_id: self.rid_at(i, i.dr),
                bdr_id: self.rid_at(i, i.bdr),
                neighbors: i.nbrs.len(),
                adjacent: i
                    .nbrs
                    .values()
                    .filter(|n| n.state == NbrState::Full)
                    .count(),
                passive: i.cfg.passive,
            })
            .collect()
    }

    pub fn database(&self, now: Duration) -> Vec<LsaView> {
        let mut v = Vec::new();
        for s in self.all_scopes() {
            let area = match s {
                Scope::Area(a) => Some(self.areas[a].cfg.id),
                Scope::Link(i) => Some(self.areas[self.ifaces[i].area].cfg.id),
                Scope::As => None,
            };
            for e in self.db(s).values() {
                let h = e.hdr(now);
                v.push(LsaView {
                    area,
                    ls_type: h.ls_type,
                    id: h.id,
                    adv: h.adv,
                    age: h.age,
                    seq: format!("{:#010x}", h.seq as u32),
                    checksum: format!("{:#06x}", h.checksum),
                    length: h.length,
                });
            }
        }
        v
    }

    /// Stable, comparable dump of every database (for simulations and tests): keys with
    /// sequence numbers and checksums, ages left out.
    pub fn lsdb_digest(&self) -> Vec<(String, LsaKey, i32, u16)> {
        let mut v = Vec::new();
        for s in self.all_scopes() {
            let tag = match s {
                Scope::Link(_) => continue,
                Scope::Area(a) => self.areas[a].cfg.id.to_string(),
                Scope::As => "AS".to_string(),
            };
            for (k, e) in self.db(s) {
                v.push((tag.clone(), *k, e.lsa.hdr.seq, e.lsa.hdr.checksum));
            }
        }
        v
    }

    /// A neighbour's state by router id, for tests.
    pub fn neighbor_state(&self, rid: Ipv4Addr) -> Option<NbrState> {
        self.ifaces
            .iter()
            .flat_map(|i| i.nbrs.values())
            .find(|n| n.rid == rid)
            .map(|n| n.state)
    }

    /// Interface state and DR/BDR, for tests.
    pub fn iface_state(&self, i: IfaceId) -> (IfState, Ipv4Addr, Ipv4Addr) {
        let i = &self.ifaces[i];
        (i.state, i.dr, i.bdr)
    }

    /// Look up an LSA by key in any scope.
    pub fn lookup(&self, k: &LsaKey, now: Duration) -> Option<Lsa> {
        self.all_scopes()
            .into_iter()
            .find_map(|s| self.db(s).get(k).map(|e| e.lsa_at(now)))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NeighborView {
    pub router_id: Ipv4Addr,
    pub priority: u8,
    pub state: NbrState,
    pub role: String,
    pub dead_time_ms: u64,
    pub address: Ipv4Addr,
    pub interface: String,
    pub retransmit: usize,
    pub request: usize,
    pub summary: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct InterfaceView {
    pub name: String,
    pub address: String,
    pub ip: Ipv4Addr,
    pub area: Ipv4Addr,
    pub network_type: NetType,
    pub state: IfState,
    pub cost: u16,
    pub priority: u8,
    pub hello: u16,
    pub dead: u32,
    pub retransmit: u16,
    pub dr: Ipv4Addr,
    pub bdr: Ipv4Addr,
    pub dr_id: Ipv4Addr,
    pub bdr_id: Ipv4Addr,
    pub neighbors: usize,
    pub adjacent: usize,
    pub passive: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LsaView {
    pub area: Option<Ipv4Addr>,
    pub ls_type: u8,
    pub id: Ipv4Addr,
    pub adv: Ipv4Addr,
    pub age: u16,
    pub seq: String,
    pub checksum: String,
    pub length: u16,
}
