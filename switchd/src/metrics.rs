//! Prometheus `/metrics` (this module does I/O): a minimal HTTP/1.1 server on tokio that
//! answers `GET /metrics` (and `HEAD`) in the text exposition format 0.0.4, one request
//! per connection (`Connection: close`). Other paths get 404, other methods 405, requests
//! that are not HTTP 400. Off unless `metrics = "IP:PORT"` or `--metrics IP:PORT` is given.
//!
//! What is exported (counters end in `_total`):
//!
//! - `fuxi_port_{rx,tx}_{packets,bytes,dropped}_total{port,ofport}`,
//!   `fuxi_port_tx_errors_total{port,ofport}` and
//!   `fuxi_port_up{port,ofport}` — per port, from the port's own counters;
//! - `fuxi_cache_hits_total{thread,level}` with `level` `emc`, `megaflow` or `slowpath`:
//!   every packet a datapath thread processes is counted at exactly one level, the
//!   `slowpath` ones being the upcalls (translations by the full pipeline). So
//!   `sum(rate(fuxi_cache_hits_total{level="slowpath"}[1m]))` is upcalls/s and
//!   `sum by (level) (rate(fuxi_cache_hits_total[1m])) / ignoring(level) group_left
//!   sum(rate(fuxi_cache_hits_total[1m]))` the hit rate per level. Copied from the
//!   datapath threads every 100 ms;
//! - `fuxi_upcalls_uncacheable_total{thread}`, `fuxi_cache_flushes_total{thread}` (every
//!   megaflow dropped), `fuxi_cache_revalidations_total{thread}` (after a pipeline or MAC
//!   table change), `fuxi_cache_revalidated_megaflows_total{thread}` (megaflows they kept),
//!   `fuxi_packet_ins_total{thread}`, `fuxi_packet_ins_dropped_total{thread}`,
//!   `fuxi_datapath_sleeps_total{thread}` (times the thread slept in poll(2): 0 in
//!   `poll_mode = "always"`), `fuxi_datapath_spin_window_seconds{thread}` (gauge: the
//!   adaptive busy-poll window after the thread's last sleep);
//! - `fuxi_table_flows{table}`, `fuxi_table_lookups_total{table}`,
//!   `fuxi_table_matched_total{table}` — for table 0 and every table that has flows or
//!   has seen a lookup;
//! - `fuxi_groups`, `fuxi_info{bridge,datapath_id}` (always 1), `fuxi_uptime_seconds`;
//! - with `offload = "tc"`: `fuxi_kernel_flows` (gauge: microflows in the kernel flow
//!   table) and `fuxi_port_kernel_rx_packets_total{port,ofport}` (what the kernel
//!   forwarded from the port, also counted in its rx counters).
//!
//! [`render`] builds the text from a [`Snapshot`] and [`respond`] answers a request head:
//! both are pure and unit-tested here; [`start`] is the socket side.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use fuxi_dataplane::port::PortStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::agent::Switch;
use crate::datapath::ThreadCounters;

/// One port's numbers.
#[derive(Debug, Clone)]
pub struct PortSnap {
    /// Interface name.
    pub name: String,
    /// OpenFlow port number.
    pub ofport: u32,
    /// Link up and not administratively down.
    pub up: bool,
    /// Counters.
    pub stats: PortStats,
    /// Packets from it the kernel flow table forwarded (included in `stats`).
    pub kernel_rx_packets: u64,
}

/// One datapath thread's numbers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSnap {
    /// Exact-match cache hits.
    pub emc_hits: u64,
    /// Megaflow cache hits.
    pub megaflow_hits: u64,
    /// Upcalls.
    pub upcalls: u64,
    /// Uncacheable upcalls.
    pub uncacheable: u64,
    /// Cache flushes.
    pub flushes: u64,
    /// Cache revalidations.
    pub revalidations: u64,
    /// Megaflows revalidations kept.
    pub revalidated: u64,
    /// Packet-ins queued.
    pub packet_ins: u64,
    /// Packet-ins dropped.
    pub packet_ins_dropped: u64,
    /// Sleeps in poll(2).
    pub sleeps: u64,
    /// Adaptive busy-poll window (µs).
    pub spin_window_us: u64,
}

impl ThreadSnap {
    fn of(c: &ThreadCounters) -> ThreadSnap {
        let r = Ordering::Relaxed;
        ThreadSnap {
            emc_hits: c.emc_hits.load(r),
            megaflow_hits: c.megaflow_hits.load(r),
            upcalls: c.upcalls.load(r),
            uncacheable: c.uncacheable.load(r),
            flushes: c.flushes.load(r),
            revalidations: c.revalidations.load(r),
            revalidated: c.revalidated.load(r),
            packet_ins: c.packet_ins.load(r),
            packet_ins_dropped: c.packet_ins_dropped.load(r),
            sleeps: c.sleeps.load(r),
            spin_window_us: c.spin_window_us.load(r),
        }
    }
}

/// Everything `/metrics` shows, taken at once.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Bridge name.
    pub bridge: String,
    /// Datapath id.
    pub datapath_id: u64,
    /// Seconds since start.
    pub uptime: f64,
    /// Ports by number.
    pub ports: Vec<PortSnap>,
    /// Datapath threads by index.
    pub threads: Vec<ThreadSnap>,
    /// (table id, flows, lookups, matched).
    pub tables: Vec<(u8, u32, u64, u64)>,
    /// Groups.
    pub groups: usize,
    /// Entries in the kernel flow table, if offload is on.
    pub kernel_flows: Option<u64>,
}

/// Takes a snapshot of the switch.
pub fn snapshot(sw: &Switch, threads: &[Arc<ThreadCounters>]) -> Snapshot {
    let p = sw.engine().published();
    let tables = p
        .table_stats()
        .into_iter()
        .filter(|&(t, flows, lookups, _)| t == 0 || flows > 0 || lookups > 0)
        .collect();
    let ports = sw
        .ports
        .load()
        .values()
        .map(|s| PortSnap {
            name: s.name.clone(),
            ofport: s.ofport,
            up: s.live(),
            stats: s.stats(),
            kernel_rx_packets: s.kernel_counts.rx_packets.load(Ordering::Relaxed),
        })
        .collect();
    Snapshot {
        bridge: sw.cfg.bridge.clone(),
        datapath_id: sw.cfg.datapath_id,
        uptime: sw.start.elapsed().as_secs_f64(),
        ports,
        threads: threads.iter().map(|c| ThreadSnap::of(c)).collect(),
        tables,
        groups: p.groups.len(),
        kernel_flows: sw
            .kernel
            .as_ref()
            .map(|k| k.entries.load(Ordering::Relaxed)),
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Writes one metric family: HELP, TYPE, then a sample per (labels, value).
fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, V)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {v}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        }
    }
}

/// The text exposition of a snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut o = String::with_capacity(4096);
    family(
        &mut o,
        "fuxi_info",
        "gauge",
        "The bridge this switch runs (always 1).",
        [(
            format!(
                "bridge=\"{}\",datapath_id=\"{:016x}\"",
                escape(&s.bridge),
                s.datapath_id
            ),
            1,
        )],
    );
    family(
        &mut o,
        "fuxi_uptime_seconds",
        "gauge",
        "Seconds since the switch started.",
        [(String::new(), format!("{:.3}", s.uptime))],
    );
    let pl = |p: &PortSnap| format!("port=\"{}\",ofport=\"{}\"", escape(&p.name), p.ofport);
    family(
        &mut o,
        "fuxi_port_up",
        "gauge",
        "1 if the port's link is up and it is not administratively down.",
        s.ports.iter().map(|p| (pl(p), u8::from(p.up))),
    );
    type Get = fn(&PortStats) -> u64;
    let port_counters: [(&str, &str, Get); 7] = [
        ("rx_packets", "Packets received.", |st| st.rx_packets),
        ("rx_bytes", "Bytes received.", |st| st.rx_bytes),
        ("rx_dropped", "Packets dropped on receive.", |st| {
            st.rx_dropped
        }),
        ("tx_packets", "Packets sent.", |st| st.tx_packets),
        ("tx_bytes", "Bytes sent.", |st| st.tx_bytes),
        ("tx_dropped", "Packets dropped on send.", |st| st.tx_dropped),
        ("tx_errors", "Send errors.", |st| st.tx_errors),
    ];
    for (name, help, get) in port_counters {
        family(
            &mut o,
            &format!("fuxi_port_{name}_total"),
            "counter",
            help,
            s.ports.iter().map(|p| (pl(p), get(&p.stats))),
        );
    }
    if let Some(n) = s.kernel_flows {
        family(
            &mut o,
            "fuxi_port_kernel_rx_packets_total",
            "counter",
            "Packets from the port that the kernel flow table forwarded (offload = \"tc\"; \
             included in fuxi_port_rx_packets_total, harvested every second).",
            s.ports.iter().map(|p| (pl(p), p.kernel_rx_packets)),
        );
        family(
            &mut o,
            "fuxi_kernel_flows",
            "gauge",
            "Microflows in the kernel flow table.",
            [(String::new(), n)],
        );
    }
    let th = |i: usize| format!("thread=\"{i}\"");
    family(
        &mut o,
        "fuxi_cache_hits_total",
        "counter",
        "Packets by the level that answered them: emc, megaflow, or slowpath (an upcall: translated by the full pipeline).",
        s.threads.iter().enumerate().flat_map(|(i, t)| {
            [
                ("emc", t.emc_hits),
                ("megaflow", t.megaflow_hits),
                ("slowpath", t.upcalls),
            ]
            .map(|(level, v)| (format!("{},level=\"{level}\"", th(i)), v))
        }),
    );
    type GetT = fn(&ThreadSnap) -> u64;
    let thread_counters: [(&str, &str, GetT); 7] = [
        (
            "fuxi_upcalls_uncacheable_total",
            "Upcalls whose result could not be cached.",
            |t| t.uncacheable,
        ),
        (
            "fuxi_cache_flushes_total",
            "Cache flushes: every megaflow dropped.",
            |t| t.flushes,
        ),
        (
            "fuxi_cache_revalidations_total",
            "Cache revalidations after a pipeline or MAC table change.",
            |t| t.revalidations,
        ),
        (
            "fuxi_cache_revalidated_megaflows_total",
            "Megaflows a revalidation kept.",
            |t| t.revalidated,
        ),
        (
            "fuxi_packet_ins_total",
            "Packet-ins handed to the control plane.",
            |t| t.packet_ins,
        ),
        (
            "fuxi_packet_ins_dropped_total",
            "Packet-ins dropped: the control plane's queue was full.",
            |t| t.packet_ins_dropped,
        ),
        (
            "fuxi_datapath_sleeps_total",
            "Times the datapath thread slept in poll(2) because its ports had nothing.",
            |t| t.sleeps,
        ),
    ];
    for (name, help, get) in thread_counters {
        family(
            &mut o,
            name,
            "counter",
            help,
            s.threads.iter().enumerate().map(|(i, t)| (th(i), get(t))),
        );
    }
    family(
        &mut o,
        "fuxi_datapath_spin_window_seconds",
        "gauge",
        "How long the datapath thread busy-polls after the last packet before it sleeps \
         (adaptive poll mode; grows while packets keep waking it soon after it slept).",
        s.threads
            .iter()
            .enumerate()
            .map(|(i, t)| (th(i), t.spin_window_us as f64 / 1e6)),
    );
    let tl = |t: u8| format!("table=\"{t}\"");
    family(
        &mut o,
        "fuxi_table_flows",
        "gauge",
        "Flows in the table.",
        s.tables.iter().map(|&(t, n, _, _)| (tl(t), u64::from(n))),
    );
    family(
        &mut o,
        "fuxi_table_lookups_total",
        "counter",
        "Packets looked up in the table.",
        s.tables.iter().map(|&(t, _, n, _)| (tl(t), n)),
    );
    family(
        &mut o,
        "fuxi_table_matched_total",
        "counter",
        "Packets that matched a flow in the table.",
        s.tables.iter().map(|&(t, _, _, n)| (tl(t), n)),
    );
    family(
        &mut o,
        "fuxi_groups",
        "gauge",
        "Groups in the group table.",
        [(String::new(), s.groups)],
    );
    o
}

/// What to answer a request with.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the metrics (the body is left out for HEAD).
    Metrics {
        /// Whether to send the body.
        body: bool,
    },
    /// An error status with a short text body.
    Error(u16, &'static str),
}

/// Decides the answer from a request head (the bytes up to the blank line).
pub fn respond(head: &[u8]) -> Answer {
    let Ok(text) = std::str::from_utf8(head) else {
        return Answer::Error(400, "Bad Request");
    };
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::Error(400, "Bad Request");
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() {
        return Answer::Error(400, "Bad Request");
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Answer::Error(404, "Not Found");
    }
    match method {
        "GET" => Answer::Metrics { body: true },
        "HEAD" => Answer::Metrics { body: false },
        _ => Answer::Error(405, "Method Not Allowed"),
    }
}

/// The bytes of a whole response.
fn response(answer: &Answer, metrics: impl FnOnce() -> String) -> Vec<u8> {
    let (status, reason, ctype, body, send_body) = match answer {
        Answer::Metrics { body } => (
            200,
            "OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(),
            *body,
        ),
        Answer::Error(code, reason) => (
            *code,
            *reason,
            "text/plain; charset=utf-8",
            format!("{code} {reason}\n"),
            true,
        ),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if send_body {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Largest request head accepted.
const MAX_HEAD: usize = 8192;

/// Binds `addr` and serves `/metrics` in the background.
pub async fn start(
    sw: Arc<Switch>,
    threads: Vec<Arc<ThreadCounters>>,
    addr: SocketAddr,
) -> Result<()> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for /metrics"))?;
    let threads: Arc<[Arc<ThreadCounters>]> = threads.into();
    tokio::spawn(async move {
        loop {
            match l.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve(sw.clone(), threads.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!("metrics accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

async fn serve(
    sw: Arc<Switch>,
    threads: Arc<[Arc<ThreadCounters>]>,
    mut stream: tokio::net::TcpStream,
) {
    let mut buf = Vec::with_capacity(1024);
    let read_head = async {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Some(end);
            }
            if buf.len() > MAX_HEAD {
                return None;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let answer = match tokio::time::timeout(Duration::from_secs(10), read_head).await {
        Ok(Some(end)) => respond(&buf[..end]),
        Ok(None) if buf.len() > MAX_HEAD => Answer::Error(431, "Request Header Fields Too Large"),
        _ => return,
    };
    let bytes = match answer {
        Answer::Metrics { .. } => {
            let sw2 = sw.clone();
            let text = tokio::task::spawn_blocking(move || render(&snapshot(&sw2, &threads)))
                .await
                .unwrap_or_default();
            response(&answer, || text)
        }
        Answer::Error(..) => response(&answer, String::new),
    };
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed() {
        assert_eq!(
            respond(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Answer::Metrics { body: true }
        );
        assert_eq!(
            respond(b"GET /metrics?x=1 HTTP/1.0"),
            Answer::Metrics { body: true }
        );
        assert_eq!(
            respond(b"HEAD /metrics HTTP/1.1"),
            Answer::Metrics { body: false }
        );
        assert_eq!(respond(b"GET / HTTP/1.1"), Answer::Error(404, "Not Found"));
        assert_eq!(
            respond(b"POST /metrics HTTP/1.1"),
            Answer::Error(405, "Method Not Allowed")
        );
        assert_eq!(respond(b"hello"), Answer::Error(400, "Bad Request"));
        assert_eq!(
            respond(b"GET /metrics SPDY/3"),
            Answer::Error(400, "Bad Request")
        );
        let r = String::from_utf8(response(
            &Answer::Error(405, "Method Not Allowed"),
            String::new,
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert!(r.contains("\r\nAllow: GET, HEAD\r\n"), "{r}");
        let r =
            String::from_utf8(response(&Answer::Metrics { body: false }, || "abc".into())).unwrap();
        assert!(
            r.contains("Content-Length: 3\r\n") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
    }

    #[test]
    fn text_exposition() {
        let s = Snapshot {
            bridge: "b\"r".into(),
            datapath_id: 0xaa,
            uptime: 1.5,
            ports: vec![PortSnap {
                name: "s1".into(),
                ofport: 1,
                up: true,
                stats: PortStats {
                    rx_packets: 3,
                    tx_bytes: 100,
                    ..PortStats::default()
                },
                kernel_rx_packets: 2,
            }],
            threads: vec![ThreadSnap {
                emc_hits: 5,
                upcalls: 2,
                ..ThreadSnap::default()
            }],
            tables: vec![(0, 2, 7, 6)],
            groups: 0,
            kernel_flows: Some(4),
        };
        let t = render(&s);
        for want in [
            "# TYPE fuxi_port_rx_packets_total counter\n",
            "fuxi_port_rx_packets_total{port=\"s1\",ofport=\"1\"} 3\n",
            "fuxi_port_tx_bytes_total{port=\"s1\",ofport=\"1\"} 100\n",
            "fuxi_cache_hits_total{thread=\"0\",level=\"emc\"} 5\n",
            "fuxi_cache_hits_total{thread=\"0\",level=\"slowpath\"} 2\n",
            "fuxi_table_flows{table=\"0\"} 2\n",
            "fuxi_info{bridge=\"b\\\"r\",datapath_id=\"00000000000000aa\"} 1\n",
            "fuxi_uptime_seconds 1.500\n",
            "fuxi_port_kernel_rx_packets_total{port=\"s1\",ofport=\"1\"} 2\n",
            "fuxi_kernel_flows 4\n",
        ] {
            assert!(t.contains(want), "{want} missing from\n{t}");
        }
        // Every family has HELP then TYPE, then its samples only.
        let mut current = "";
        for l in t.lines() {
            if let Some(r) = l.strip_prefix("# HELP ") {
                current = r.split(' ').next().unwrap();
            } else if let Some(r) = l.strip_prefix("# TYPE ") {
                assert!(r.starts_with(current), "{l}");
            } else {
                assert!(l.starts_with(current), "{l} outside {current}");
            }
        }
        assert_eq!(escape("a\\b\nc"), "a\\\\b\\nc");
        // Without offload, no kernel families.
        let t = render(&Snapshot {
            kernel_flows: None,
            ..s
        });
        assert!(!t.contains("kernel"), "{t}");
    }
}
