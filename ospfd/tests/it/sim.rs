//! A deterministic in-memory network of OSPF instances driven by a virtual clock.
//! Segments are broadcast domains joining (router, interface) pairs; packets are delivered
//! after a fixed delay in send order. Links can be cut and restored.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use fuxi_ospfd::instance::{Instance, Output};
use fuxi_ospfd::types::*;

/// Packet filter: (router, interface, payload) -> deliver?
pub type DropFn = Box<dyn FnMut(usize, IfaceId, &[u8]) -> bool>;

pub struct Pending {
    at: Duration,
    seg: usize,
    from: (usize, IfaceId),
    src: Ipv4Addr,
    dst: Ipv4Addr,
    data: Bytes,
}

pub struct Segment {
    pub members: Vec<(usize, IfaceId)>,
    pub up: bool,
}

pub struct Net {
    pub now: Duration,
    pub routers: Vec<Instance>,
    pub segs: Vec<Segment>,
    pub routes: Vec<BTreeMap<Prefix, Route>>,
    pub sent: Vec<(usize, Output)>,
    pub record: bool,
    /// Optional filter: return false to drop a packet (router, iface, data).
    pub drop: Option<DropFn>,
    queue: Vec<Pending>,
    delay: Duration,
}

impl Net {
    pub fn new() -> Self {
        Net {
            now: Duration::ZERO,
            routers: vec![],
            segs: vec![],
            routes: vec![],
            sent: vec![],
            record: false,
            drop: None,
            queue: vec![],
            delay: Duration::from_millis(1),
        }
    }

    pub fn add(&mut self, cfg: Config) -> usize {
        let n = cfg.ifaces.len();
        self.routers.push(Instance::new(cfg, self.now));
        self.routes.push(BTreeMap::new());
        let r = self.routers.len() - 1;
        for i in 0..n {
            self.routers[r].iface_up(self.now, i);
        }
        self.collect(r);
        r
    }

    pub fn segment(&mut self, members: &[(usize, IfaceId)]) -> usize {
        self.segs.push(Segment {
            members: members.to_vec(),
            up: true,
        });
        self.segs.len() - 1
    }

    fn seg_of(&self, r: usize, i: IfaceId) -> Option<usize> {
        self.segs.iter().position(|s| s.members.contains(&(r, i)))
    }

    fn collect(&mut self, r: usize) {
        while let Some(o) = self.routers[r].poll_output() {
            match &o {
                Output::Send { iface, dst, data } => {
                    if let Some(seg) = self.seg_of(r, *iface) {
                        let src = self.addr(r, *iface);
                        self.queue.push(Pending {
                            at: self.now + self.delay,
                            seg,
                            from: (r, *iface),
                            src,
                            dst: *dst,
                            data: data.clone(),
                        });
                    }
                }
                Output::RouteAdd(rt) => {
                    self.routes[r].insert(rt.prefix, rt.clone());
                }
                Output::RouteDel(p) => {
                    self.routes[r].remove(p);
                }
                Output::Event(_) => {}
            }
            if self.record {
                self.sent.push((r, o));
            }
        }
    }

    pub fn addr(&self, r: usize, i: IfaceId) -> Ipv4Addr {
        self.routers[r].interfaces()[i].ip
    }

    /// Advance the virtual clock to `until`, processing everything due on the way.
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let tq = self.queue.iter().map(|p| p.at).min();
            let tr = self.routers.iter().filter_map(|r| r.poll_timeout()).min();
            let next = [tq, tr].into_iter().flatten().min();
            let Some(next) = next else { break };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            // Deliver due packets in order.
            let mut due = Vec::new();
            let mut i = 0;
            while i < self.queue.len() {
                if self.queue[i].at <= self.now {
                    due.push(self.queue.remove(i));
                } else {
                    i += 1;
                }
            }
            for p in due {
                let seg = &self.segs[p.seg];
                if !seg.up {
                    continue;
                }
                let members = seg.members.clone();
                for (r, i) in members {
                    if (r, i) == p.from {
                        continue;
                    }
                    let dst_ok = p.dst.is_multicast() || self.addr(r, i) == p.dst;
                    if !dst_ok {
                        continue;
                    }
                    if let Some(f) = self.drop.as_mut()
                        && !f(r, i, &p.data)
                    {
                        continue;
                    }
                    self.routers[r].recv(self.now, i, p.src, p.dst, &p.data);
                    self.collect(r);
                }
            }
            for r in 0..self.routers.len() {
                if self.routers[r]
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.routers[r].handle_timeout(self.now);
                    self.collect(r);
                }
            }
        }
        self.now = until;
    }

    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    pub fn cut(&mut self, seg: usize) {
        self.segs[seg].up = false;
    }
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

pub fn pfx(s: &str) -> Prefix {
    s.parse().unwrap()
}

pub const BACKBONE: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// A router config with the given interfaces (name, area, addr/len).
pub fn router(rid: &str, ifs: &[(&str, Ipv4Addr, &str)]) -> Config {
    Config {
        router_id: ip(rid),
        areas: vec![],
        ifaces: ifs
            .iter()
            .map(|(n, a, p)| {
                let (addr, len) = p.split_once('/').unwrap();
                IfaceConfig::new(n, *a, ip(addr), len.parse().unwrap())
            })
            .collect(),
        externals: vec![],
        crypto_seq_base: 0,
    }
}
