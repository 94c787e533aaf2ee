//! The `fuxi-ospfd` daemon: the only module that does I/O. One thread, one poll loop: raw
//! OSPF sockets per interface, a signalfd, the control socket and its clients; every input is
//! fed to the sans-IO [`Instance`] with the current time, and its outputs are carried out
//! (packets sent, kernel routes replaced or withdrawn, route changes streamed to watchers).

pub mod netlink;
pub mod sys;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::config::{FileConfig, parse_area};
use crate::instance::{Instance, Output};
use crate::types::*;
use netlink::{KNexthop, Netlink};
use sys::RawSock;

/// A route as the control socket reports it (also the line format of `watch`).
#[derive(Debug, Clone, Serialize)]
pub struct RouteJson {
    pub prefix: Prefix,
    pub path: PathType,
    pub area: Option<Ipv4Addr>,
    pub cost: u32,
    pub cost2: u32,
    pub nexthops: Vec<NexthopJson>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NexthopJson {
    pub interface: String,
    pub gateway: Option<Ipv4Addr>,
}

#[derive(Debug, Serialize)]
struct RouteEvent<'a> {
    op: &'a str,
    #[serde(flatten)]
    route: RouteJsonOrPrefix,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
enum RouteJsonOrPrefix {
    Route(RouteJson),
    Prefix { prefix: Prefix },
}

fn log(msg: &str) {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    eprintln!("{}.{:03} fuxi-ospfd: {msg}", t.as_secs(), t.subsec_millis());
}

struct Daemon {
    inst: Instance,
    start: Instant,
    socks: Vec<Option<RawSock>>,
    ifindex: Vec<u32>,
    link_up: Vec<bool>,
    names: Vec<String>,
    nl: Netlink,
    installed: BTreeMap<Prefix, Vec<KNexthop>>,
    table: u32,
    metric: u32,
    watchers: Vec<UnixStream>,
    cfg: FileConfig,
    /// Routes supplied over the control socket (`supply`), redistributed as externals.
    supplied: Vec<ExternalRoute>,
}

/// One route supplied over the control socket: `supply [{"prefix": "a.b.c.d/n", ...}]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Supplied {
    prefix: String,
    #[serde(default = "twenty")]
    metric: u32,
    #[serde(default = "two")]
    metric_type: u8,
    #[serde(default)]
    tag: u32,
}

fn twenty() -> u32 {
    20
}
fn two() -> u8 {
    2
}

impl Daemon {
    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn route_json(&self, r: &Route) -> RouteJson {
        RouteJson {
            prefix: r.prefix,
            path: r.path,
            area: r.area,
            cost: r.cost,
            cost2: r.cost2,
            nexthops: r
                .nexthops
                .iter()
                .map(|n| NexthopJson {
                    interface: self.names[n.iface].clone(),
                    gateway: n.gw,
                })
                .collect(),
        }
    }

    fn notify(&mut self, ev: &RouteEvent<'_>) {
        let Ok(mut line) = serde_json::to_string(ev) else {
            return;
        };
        line.push('\n');
        self.watchers
            .retain_mut(|w| w.write_all(line.as_bytes()).is_ok());
    }

    fn drain(&mut self) {
        while let Some(o) = self.inst.poll_output() {
            match o {
                Output::Send { iface, dst, data } => {
                    if let Some(Some(s)) = self.socks.get(iface)
                        && let Err(e) = s.send(dst, &data)
                    {
                        log(&format!("send on {} to {dst}: {e}", self.names[iface]));
                    }
                }
                Output::RouteAdd(r) => {
                    let nhs: Vec<KNexthop> = r
                        .nexthops
                        .iter()
                        .filter(|n| n.gw.is_some())
                        .map(|n| KNexthop {
                            ifindex: self.ifindex[n.iface],
                            gw: n.gw,
                        })
                        .collect();
                    if nhs.is_empty() {
                        if self.installed.remove(&r.prefix).is_some() {
                            let _ = self.nl.delete(r.prefix, self.table, self.metric);
                        }
                    } else if self.installed.get(&r.prefix) != Some(&nhs) {
                        match self.nl.replace(r.prefix, &nhs, self.table, self.metric) {
                            Ok(()) => {
                                log(&format!(
                                    "route {} installed ({:?}, cost {})",
                                    r.prefix, r.path, r.cost
                                ));
                                self.installed.insert(r.prefix, nhs);
                            }
                            Err(e) => log(&format!("route {}: {e}", r.prefix)),
                        }
                    }
                    let j = self.route_json(&r);
                    self.notify(&RouteEvent {
                        op: "add",
                        route: RouteJsonOrPrefix::Route(j),
                    });
                }
                Output::RouteDel(p) => {
                    if self.installed.remove(&p).is_some() {
                        match self.nl.delete(p, self.table, self.metric) {
                            Ok(()) => log(&format!("route {p} withdrawn")),
                            Err(e) => log(&format!("withdraw {p}: {e}")),
                        }
                    }
                    self.notify(&RouteEvent {
                        op: "del",
                        route: RouteJsonOrPrefix::Prefix { prefix: p },
                    });
                }
                Output::Event(s) => log(&s),
            }
        }
    }

    fn read_packets(&mut self, i: usize, buf: &mut [u8]) {
        for _ in 0..64 {
            let Some(Some(s)) = self.socks.get(i) else {
                return;
            };
            match s.recv(buf) {
                Ok(Some((src, dst, off, n))) => {
                    if n > off {
                        let now = self.now();
                        let payload = buf[off..n].to_vec();
                        self.inst.recv(now, i, src, dst, &payload);
                        self.drain();
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    log(&format!("recv on {}: {e}", self.names[i]));
                    return;
                }
            }
        }
    }

    fn check_links(&mut self) {
        for i in 0..self.names.len() {
            let (_, up) = sys::link_info(&self.names[i]);
            if up != self.link_up[i] {
                self.link_up[i] = up;
                let now = self.now();
                if up {
                    self.inst.iface_up(now, i);
                } else {
                    self.inst.iface_down(now, i);
                }
                self.drain();
            }
        }
    }

    fn externals(&self) -> Vec<ExternalRoute> {
        let r = &self.cfg.redistribute;
        let mut v = self.supplied.clone();
        for s in &r.statics {
            if let Ok(p) = s.prefix.parse::<Prefix>() {
                v.push(ExternalRoute {
                    prefix: p,
                    metric: s.metric.unwrap_or(r.metric),
                    e2: s.metric_type.unwrap_or(r.metric_type) != 1,
                    tag: s.tag,
                    fwd: Ipv4Addr::UNSPECIFIED,
                });
            }
        }
        if r.connected {
            for (name, addr, len) in sys::ipv4_addrs() {
                if addr.is_loopback() || self.names.contains(&name) {
                    continue;
                }
                v.push(ExternalRoute {
                    prefix: Prefix::new(addr, len),
                    metric: r.metric,
                    e2: r.metric_type != 1,
                    tag: 0,
                    fwd: Ipv4Addr::UNSPECIFIED,
                });
            }
        }
        v
    }

    /// Prometheus text exposition of the counters and states.
    fn metrics(&self) -> String {
        let st = &self.inst.stats;
        let now = self.now();
        let mut o = String::new();
        for (name, help, v) in [
            (
                "ospf_rx_packets_total",
                "OSPF packets received",
                st.rx_packets,
            ),
            ("ospf_rx_errors_total", "OSPF packets dropped", st.rx_errors),
            (
                "ospf_auth_failures_total",
                "OSPF packets failing authentication",
                st.auth_failures,
            ),
            ("ospf_tx_packets_total", "OSPF packets sent", st.tx_packets),
            ("ospf_spf_runs_total", "SPF computations", st.spf_runs),
        ] {
            o += &format!(
                "# HELP fuxi_{name} {help}.\n# TYPE fuxi_{name} counter\nfuxi_{name} {v}\n"
            );
        }
        let full = self
            .inst
            .neighbors(now)
            .iter()
            .filter(|n| n.state == crate::instance::NbrState::Full)
            .count();
        o += &format!(
            "# HELP fuxi_ospf_neighbors_full Neighbours in state Full.\n# TYPE fuxi_ospf_neighbors_full gauge\nfuxi_ospf_neighbors_full {full}\n"
        );
        o += &format!(
            "# HELP fuxi_ospf_routes Routes in the OSPF routing table.\n# TYPE fuxi_ospf_routes gauge\nfuxi_ospf_routes {}\n",
            self.inst.routes().len()
        );
        o += &format!(
            "# HELP fuxi_ospf_lsas LSAs in all databases.\n# TYPE fuxi_ospf_lsas gauge\nfuxi_ospf_lsas {}\n",
            self.inst.database(now).len()
        );
        o
    }

    /// Answer one HTTP request: `GET /metrics` gets the Prometheus text, anything else 404.
    fn serve_metrics(&self, mut s: std::net::TcpStream) {
        let _ = s.set_nonblocking(false);
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut line = String::new();
        let mut r = BufReader::new(&s);
        if r.read_line(&mut line).is_err() {
            return;
        }
        // Drain the headers.
        let mut h = String::new();
        while r.read_line(&mut h).is_ok_and(|n| n > 2) {
            h.clear();
        }
        let (status, body) = if line.starts_with("GET /metrics") {
            ("200 OK", self.metrics())
        } else {
            ("404 Not Found", "not found\n".to_string())
        };
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    fn control(&mut self, mut s: UnixStream) {
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut line = String::new();
        if BufReader::new(&s).read_line(&mut line).is_err() {
            return;
        }
        let now = self.now();
        let resp = match line.trim() {
            "show neighbors" => serde_json::to_string(&self.inst.neighbors(now)),
            "show interfaces" => serde_json::to_string(&self.inst.interfaces()),
            "show database" => serde_json::to_string(&self.inst.database(now)),
            "show routes" => {
                let v: Vec<RouteJson> = self
                    .inst
                    .routes()
                    .values()
                    .map(|r| self.route_json(r))
                    .collect();
                serde_json::to_string(&v)
            }
            "show stats" => serde_json::to_string(&self.inst.stats),
            l if l.starts_with("supply ") => {
                match serde_json::from_str::<Vec<Supplied>>(&l["supply ".len()..]) {
                    Ok(list) => {
                        let mut v = Vec::new();
                        let mut err = None;
                        for x in list {
                            match x.prefix.parse::<Prefix>() {
                                Ok(p) => v.push(ExternalRoute {
                                    prefix: p,
                                    metric: x.metric.min(crate::consts::LS_INFINITY - 1),
                                    e2: x.metric_type != 1,
                                    tag: x.tag,
                                    fwd: Ipv4Addr::UNSPECIFIED,
                                }),
                                Err(e) => err = Some(e),
                            }
                        }
                        match err {
                            Some(e) => Ok(serde_json::json!({ "error": e }).to_string()),
                            None => {
                                let n = v.len();
                                self.supplied = v;
                                let ext = self.externals();
                                self.inst.set_externals(now, ext);
                                self.drain();
                                Ok(serde_json::json!({ "supplied": n }).to_string())
                            }
                        }
                    }
                    Err(e) => Ok(serde_json::json!({ "error": e.to_string() }).to_string()),
                }
            }
            "metrics" => Ok(self.metrics()),
            "watch" => {
                let v: Vec<RouteJson> = self
                    .inst
                    .routes()
                    .values()
                    .map(|r| self.route_json(r))
                    .collect();
                for r in v {
                    let ev = RouteEvent {
                        op: "add",
                        route: RouteJsonOrPrefix::Route(r),
                    };
                    if let Ok(mut l) = serde_json::to_string(&ev) {
                        l.push('\n');
                        if s.write_all(l.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
                let _ = s.set_nonblocking(true);
                self.watchers.push(s);
                return;
            }
            other => Ok(
                serde_json::json!({ "error": format!("unknown command {other:?}") }).to_string(),
            ),
        };
        if let Ok(mut r) = resp {
            r.push('\n');
            let _ = s.write_all(r.as_bytes());
        }
    }
}

/// Run the daemon until SIGTERM/SIGINT.
pub fn run(cfg: FileConfig) -> Result<(), String> {
    let sig = sys::signal_fd().map_err(|e| format!("signalfd: {e}"))?;
    let start = Instant::now();
    let addrs = sys::ipv4_addrs();
    let mut ifaces = Vec::new();
    let mut ifindex = Vec::new();
    let mut names = Vec::new();
    for i in &cfg.interfaces {
        let (addr, len) = match &i.address {
            Some(a) => {
                let (ip, l) = a.split_once('/').ok_or("address needs /len")?;
                (
                    ip.parse::<Ipv4Addr>().map_err(|e| e.to_string())?,
                    l.parse::<u8>().map_err(|e| e.to_string())?,
                )
            }
            None => addrs
                .iter()
                .filter(|(n, _, _)| n == &i.name)
                .min_by_key(|(_, a, _)| a.is_loopback())
                .map(|(_, a, l)| (*a, *l))
                .ok_or_else(|| format!("interface {} has no IPv4 address", i.name))?,
        };
        if addr.is_loopback() {
            return Err(format!(
                "interface {} has only {addr}/{len}; add an address (e.g. the router id /32) or set `address`",
                i.name
            ));
        }
        let idx = sys::ifindex(&i.name).ok_or_else(|| format!("no interface {}", i.name))?;
        let (mtu, _) = sys::link_info(&i.name);
        let mut c = IfaceConfig::new(&i.name, parse_area(&i.area)?, addr, len);
        c.mtu = mtu;
        c.net_type = i.net_type();
        c.cost = i.cost;
        c.hello_interval = i.hello_interval;
        c.dead_interval = i.dead_interval;
        c.retransmit_interval = i.retransmit_interval;
        c.priority = i.priority;
        c.passive = i.passive || i.name == "lo";
        c.auth = i.auth_config();
        ifaces.push(c);
        ifindex.push(idx);
        names.push(i.name.clone());
    }
    let crypto_seq_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0);
    let core = Config {
        router_id: cfg.router_id,
        areas: cfg.area_configs(),
        ifaces: ifaces.clone(),
        externals: vec![],
        crypto_seq_base,
    };
    let mut inst = Instance::new(core, Duration::ZERO);
    inst.spf_delay = Duration::from_millis(cfg.spf_delay_ms);
    inst.startup_hold = cfg.startup_hold;
    inst.hello_on_new_neighbor = cfg.hello_on_new_neighbor;
    let mut socks = Vec::new();
    for (k, c) in ifaces.iter().enumerate() {
        if c.passive {
            socks.push(None);
        } else {
            socks.push(Some(
                RawSock::open(&c.name, ifindex[k], c.addr)
                    .map_err(|e| format!("raw socket on {}: {e}", c.name))?,
            ));
        }
    }
    let mut nl = Netlink::open().map_err(|e| format!("netlink: {e}"))?;
    match nl.sweep(cfg.table) {
        Ok(0) => {}
        Ok(n) => log(&format!(
            "removed {n} stale proto-ospf routes from table {}",
            cfg.table
        )),
        Err(e) => log(&format!("sweeping stale routes: {e}")),
    }
    let _ = std::fs::remove_file(&cfg.control_socket);
    let listener = UnixListener::bind(&cfg.control_socket)
        .map_err(|e| format!("control socket {}: {e}", cfg.control_socket))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let http = match &cfg.metrics_listen {
        Some(a) => {
            let l =
                std::net::TcpListener::bind(a).map_err(|e| format!("metrics_listen {a}: {e}"))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Some(l)
        }
        None => None,
    };
    let n = names.len();
    let mut d = Daemon {
        inst,
        start,
        socks,
        ifindex,
        link_up: vec![false; n],
        names,
        nl,
        installed: BTreeMap::new(),
        table: cfg.table,
        metric: cfg.kernel_metric,
        watchers: Vec::new(),
        cfg: cfg.clone(),
        supplied: Vec::new(),
    };
    log(&format!(
        "router id {} starting with {n} interfaces",
        cfg.router_id
    ));
    d.check_links();
    let ext = d.externals();
    let now = d.now();
    d.inst.set_externals(now, ext);
    d.drain();
    let mut buf = vec![0u8; 65536];
    let mut last_scan = Instant::now();
    let mut stopping: Option<Instant> = None;
    loop {
        let now = d.now();
        let wait = d
            .inst
            .poll_timeout()
            .map_or(Duration::from_secs(1), |t| t.saturating_sub(now));
        let wait = wait.min(Duration::from_secs(1));
        let mut fds = vec![sig.as_raw_fd(), listener.as_raw_fd()];
        fds.extend(d.socks.iter().map(|s| s.as_ref().map_or(-1, |s| s.fd())));
        fds.push(http.as_ref().map_or(-1, |h| h.as_raw_fd()));
        let ready = sys::poll_read(&fds, wait.as_millis().max(1) as i32)
            .map_err(|e| format!("poll: {e}"))?;
        if ready[0] && stopping.is_none() {
            log("signal received: flushing self-originated LSAs");
            let now = d.now();
            d.inst.shutdown(now);
            d.drain();
            stopping = Some(Instant::now());
        }
        if ready[1] {
            while let Ok((s, _)) = listener.accept() {
                let _ = s.set_nonblocking(false);
                d.control(s);
            }
        }
        for i in 0..d.socks.len() {
            if ready[2 + i] {
                d.read_packets(i, &mut buf);
            }
        }
        if ready[2 + d.socks.len()]
            && let Some(h) = &http
        {
            while let Ok((s, _)) = h.accept() {
                d.serve_metrics(s);
            }
        }
        let now = d.now();
        if d.inst.poll_timeout().is_some_and(|t| t <= now) {
            d.inst.handle_timeout(now);
            d.drain();
        }
        if let Some(t) = stopping {
            if d.inst.flushed() || t.elapsed() > Duration::from_secs(3) {
                break;
            }
            continue;
        }
        if last_scan.elapsed() >= Duration::from_secs(1) {
            last_scan = Instant::now();
            d.check_links();
            let ext = d.externals();
            let now = d.now();
            d.inst.set_externals(now, ext);
            d.drain();
        }
    }
    let prefixes: Vec<Prefix> = d.installed.keys().copied().collect();
    for p in prefixes {
        let _ = d.nl.delete(p, d.table, d.metric);
    }
    let _ = std::fs::remove_file(&cfg.control_socket);
    log("stopped");
    Ok(())
}

/// Client side of the control socket: send one command, return the reply.
pub fn query(sock: &str, cmd: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("{sock}: {e}"))?;
    s.write_all(format!("{cmd}\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Stream route events to stdout until the daemon goes away.
pub fn watch(sock: &str) -> Result<(), String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("{sock}: {e}"))?;
    s.write_all(b"watch\n").map_err(|e| e.to_string())?;
    let r = BufReader::new(s);
    let mut out = std::io::stdout();
    for l in r.lines() {
        let l = l.map_err(|e| e.to_string())?;
        if writeln!(out, "{l}").is_err() {
            break;
        }
        let _ = out.flush();
    }
    Ok(())
}
