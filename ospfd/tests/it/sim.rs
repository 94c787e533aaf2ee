//! A deterministic in-memory network of OSPF instances driven by a virtual clock.
//! Segments are broadcast domains joining (router, interface) pairs; packets are delivered
//! after a fixed delay in send order. Links can be cut and restored.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;
use fuxi_ospfd::instance::{Instance, Output};
use fuxi_ospfd::packet::Packet;
use fuxi_ospfd::types::*;
use serde_json::{Value, json};

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
    /// The router whose inputs and outputs are recorded (scenario tests).
    pub tap: Option<usize>,
    pub tape_in: Vec<Value>,
    pub tape_out: Vec<Value>,
}

/// One recorded output as a JSON line: packets decoded to their Debug form.
pub fn summarize(t: Duration, o: &Output) -> Value {
    let t_ms = t.as_millis() as u64;
    match o {
        Output::Send { iface, dst, data } => {
            let pkt = match Packet::decode(&mut &data[..]) {
                Ok(p) => format!("{:?}", p.body),
                Err(e) => format!("undecodable: {e}"),
            };
            json!({"t_ms": t_ms, "send": {"iface": iface, "dst": dst.to_string(), "pkt": pkt}})
        }
        Output::RouteAdd(r) => {
            json!({"t_ms": t_ms, "route_add": format!("{} {:?} cost {}/{} via {:?}", r.prefix, r.path, r.cost, r.cost2, r.nexthops)})
        }
        Output::RouteDel(p) => json!({"t_ms": t_ms, "route_del": p.to_string()}),
        Output::Event(e) => json!({"t_ms": t_ms, "event": e}),
    }
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Replay recorded inputs into a fresh instance; returns (instance, outputs, end time).
pub fn replay(cfg: Config, input: &[Value]) -> (Instance, Vec<Value>, Duration) {
    let t0 = input
        .iter()
        .find(|e| e["ev"] == "new")
        .and_then(|e| e["t_ms"].as_u64())
        .unwrap_or(0);
    let mut inst = Instance::new(cfg, Duration::from_millis(t0));
    let mut out = Vec::new();
    let mut now = Duration::ZERO;
    for ev in input {
        let Some(kind) = ev["ev"].as_str() else {
            continue;
        };
        now = Duration::from_millis(ev["t_ms"].as_u64().unwrap());
        let iface = ev["iface"].as_u64().unwrap_or(0) as usize;
        match kind {
            "new" => {}
            "up" => inst.iface_up(now, iface),
            "down" => inst.iface_down(now, iface),
            "timeout" => inst.handle_timeout(now),
            "shutdown" => inst.shutdown(now),
            "recv" => inst.recv(
                now,
                iface,
                ev["src"].as_str().unwrap().parse().unwrap(),
                ev["dst"].as_str().unwrap().parse().unwrap(),
                &unhex(ev["hex"].as_str().unwrap()),
            ),
            "externals" => {
                let v = ev["prefixes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| ExternalRoute {
                        prefix: p.as_str().unwrap().parse().unwrap(),
                        metric: 20,
                        e2: true,
                        tag: 0,
                        fwd: Ipv4Addr::UNSPECIFIED,
                    })
                    .collect();
                inst.set_externals(now, v)
            }
            other => panic!("unknown event {other}"),
        }
        while let Some(o) = inst.poll_output() {
            out.push(summarize(now, &o));
        }
    }
    (inst, out, now)
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
            tap: None,
            tape_in: vec![],
            tape_out: vec![],
        }
    }

    pub fn add(&mut self, cfg: Config) -> usize {
        self.add_with(cfg, |_| {})
    }

    /// Like [`Net::add`], with `f` adjusting the instance before its interfaces come up.
    pub fn add_with(&mut self, cfg: Config, f: impl FnOnce(&mut Instance)) -> usize {
        let n = cfg.ifaces.len();
        let idx = self.routers.len();
        self.rec(idx, json!({"ev": "new"}));
        self.routers.push(Instance::new(cfg, self.now));
        f(self.routers.last_mut().expect("just pushed"));
        self.routes.push(BTreeMap::new());
        let r = self.routers.len() - 1;
        for i in 0..n {
            self.rec(r, json!({"ev": "up", "iface": i}));
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

    fn rec(&mut self, r: usize, mut v: Value) {
        if self.tap == Some(r) {
            v["t_ms"] = json!(self.now.as_millis() as u64);
            self.tape_in.push(v);
        }
    }

    /// Replace a router by a fresh instance with the same configuration (a crash and restart,
    /// without flushing); its interfaces come up at once.
    pub fn restart(&mut self, r: usize, cfg: Config) {
        let n = cfg.ifaces.len();
        self.routers[r] = Instance::new(cfg, self.now);
        self.routes[r].clear();
        for i in 0..n {
            self.routers[r].iface_up(self.now, i);
        }
        self.collect(r);
    }

    /// Call shutdown on a router (recorded).
    pub fn shutdown(&mut self, r: usize) {
        self.rec(r, json!({"ev": "shutdown"}));
        self.routers[r].shutdown(self.now);
        self.collect(r);
    }

    /// Replace a router's redistributed prefixes (metric 20, E2; recorded).
    pub fn externals(&mut self, r: usize, prefixes: &[&str]) {
        self.rec(r, json!({"ev": "externals", "prefixes": prefixes}));
        let v = prefixes
            .iter()
            .map(|p| ExternalRoute {
                prefix: p.parse().unwrap(),
                metric: 20,
                e2: true,
                tag: 0,
                fwd: Ipv4Addr::UNSPECIFIED,
            })
            .collect();
        self.routers[r].set_externals(self.now, v);
        self.collect(r);
    }

    /// Deliver a hand-made packet to a router now (recorded).
    pub fn inject(&mut self, r: usize, i: IfaceId, src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) {
        self.rec(r, json!({"ev": "recv", "iface": i, "src": src.to_string(), "dst": dst.to_string(), "hex": hexs(data)}));
        self.routers[r].recv(self.now, i, src, dst, data);
        self.collect(r);
    }

    fn collect(&mut self, r: usize) {
        while let Some(o) = self.routers[r].poll_output() {
            if self.tap == Some(r) {
                self.tape_out.push(summarize(self.now, &o));
            }
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
                    self.rec(r, json!({"ev": "recv", "iface": i, "src": p.src.to_string(), "dst": p.dst.to_string(), "hex": hexs(&p.data)}));
                    self.routers[r].recv(self.now, i, p.src, p.dst, &p.data);
                    self.collect(r);
                }
            }
            for r in 0..self.routers.len() {
                if self.routers[r]
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.rec(r, json!({"ev": "timeout"}));
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
