//! `fuxi-switchd`: the Fuxi OpenFlow 1.3 switch daemon.
//!
//! Startup: read the configuration (file and/or flags), open the ports, start the datapath
//! threads (std threads, run to completion), then the control plane on tokio: the OpenFlow
//! listener and controller connections ([`agent`]), the flow-expiry timer, the link
//! monitor, the management socket ([`mgmt`]), Prometheus `/metrics` ([`metrics`]). SIGTERM/SIGINT stop everything cleanly.

mod agent;
mod config;
mod datapath;
mod kernel;
mod metrics;
mod mgmt;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use fuxi_dataplane::engine::Engine;
use fuxi_dataplane::pipeline::{Pipeline, PortState};
use fuxi_openflow::msg::port::OFPPR_MODIFY;

use crate::agent::Switch;
use crate::config::{FileConfig, Offload, PortConfig, PortType};
use crate::datapath::{DatapathCtx, PortSlot, Ports};
use crate::kernel::Kernel;

/// Command line. Flags override the file.
#[derive(Parser, Debug)]
#[command(
    name = "fuxi-switchd",
    version,
    about = "Fuxi OpenFlow 1.3 userspace switch"
)]
struct Args {
    /// TOML configuration file (see fuxi-switchd.sample.toml).
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Bridge name.
    #[arg(long)]
    bridge: Option<String>,
    /// Datapath id (decimal or 0xHEX).
    #[arg(long)]
    datapath_id: Option<String>,
    /// OpenFlow listener, ptcp:PORT[:IP] ("none" for no listener).
    #[arg(long)]
    listen: Option<String>,
    /// Controller to connect to, tcp:HOST:PORT (repeatable).
    #[arg(long = "controller")]
    controllers: Vec<String>,
    /// Port: NAME[=OFPORT][:TYPE] with TYPE afpacket (default), tap or afxdp[:MODE]
    /// (AF_XDP, in builds with the `afxdp` feature; MODE best-effort (default),
    /// native-with-zerocopy, native or generic), or NAME[=OFPORT]:vxlan:REMOTE[,LOCAL]
    /// with REMOTE and LOCAL each IP, IP:PORT or [IPv6]:PORT (UDP port 4789 by default,
    /// LOCAL 0.0.0.0:4789) (repeatable).
    #[arg(long = "port")]
    ports: Vec<String>,
    /// Fail mode: secure or standalone.
    #[arg(long)]
    fail_mode: Option<String>,
    /// Datapath threads.
    #[arg(long)]
    threads: Option<usize>,
    /// Pin datapath threads to these CPUs, round-robin: a list like 0,2-3 (default: not
    /// pinned).
    #[arg(long)]
    cpus: Option<String>,
    /// Management socket path ("" for none).
    #[arg(long)]
    mgmt: Option<String>,
    /// How AF_PACKET ports receive: mmsg (recvmmsg, the default: no block-retire delay;
    /// ~0.08 ms ping RTT through the switch here), ring (TPACKET_V3 mmap ring: up to
    /// 1 ms per hop when traffic is sparse) or zc (TPACKET_V2 ring, frames forwarded
    /// from where the kernel put them: one copy per frame on the switch's core, not two).
    #[arg(long)]
    rx_mode: Option<String>,
    /// How datapath threads wait for packets: adaptive (the default: busy-poll for
    /// --spin-us after the last packet, then sleep in poll(2); an idle switch uses no
    /// CPU) or always (never sleep, Open vSwitch PMD style: lower latency, a whole core
    /// per thread even when idle).
    #[arg(long)]
    poll_mode: Option<String>,
    /// Adaptive poll mode: microseconds of busy-polling after the last packet before a
    /// datapath thread sleeps (default 200).
    #[arg(long)]
    spin_us: Option<u64>,
    /// Adaptive poll mode: the longest the busy-poll window grows to (microseconds,
    /// default 20000) while packets keep waking the thread soon after it slept; equal to
    /// --spin-us: a fixed window.
    #[arg(long)]
    spin_max_us: Option<u64>,
    /// Prometheus /metrics listener, IP:PORT (default: none).
    #[arg(long)]
    metrics: Option<String>,
    /// Kernel flow table: auto (the default: tc where the kernel has tcx, Linux 6.6, and
    /// rx-mode is not zc; else none), tc (microflows whose flows only forward them from one
    /// AF_PACKET port to another are forwarded by a tcx program in the kernel, without a
    /// copy through the switch; counters are harvested every second) or none (every packet
    /// through the datapath threads).
    #[arg(long)]
    offload: Option<String>,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn parse_port_flag(s: &str) -> Result<PortConfig> {
    let (mut local, mut remote, mut xdp_mode) = (None, None, None);
    let (rest, kind) = match s.split_once(':') {
        Some((r, "afpacket")) => (r, PortType::Afpacket),
        Some((r, "tap")) => (r, PortType::Tap),
        Some((r, "afxdp")) => (r, PortType::Afxdp),
        Some((r, t)) if t.starts_with("afxdp:") => {
            xdp_mode = Some(t["afxdp:".len()..].to_string());
            (r, PortType::Afxdp)
        }
        Some((r, t)) if t.starts_with("vxlan:") => {
            let ends = &t["vxlan:".len()..];
            let (rem, loc) = match ends.split_once(',') {
                Some((r, l)) => (r, Some(l)),
                None => (ends, None),
            };
            remote = Some(rem.to_string());
            local = loc.map(str::to_string);
            (r, PortType::Vxlan)
        }
        Some((_, t)) => {
            anyhow::bail!(
                "--port {s}: type `{t}` is not afpacket, afxdp[:MODE], tap or vxlan:REMOTE[,LOCAL]"
            )
        }
        None => (s, PortType::Afpacket),
    };
    let (name, ofport) = match rest.split_once('=') {
        Some((n, p)) => (
            n,
            p.parse()
                .with_context(|| format!("--port {s}: bad port number"))?,
        ),
        None => (rest, 0),
    };
    Ok(PortConfig {
        name: name.to_string(),
        ofport,
        port_type: kind,
        local,
        remote,
        xdp_mode,
    })
}

/// Opens an `afxdp` port (validated config: the mode name is known).
#[cfg(feature = "afxdp")]
pub(crate) fn open_afxdp(cfg: &PortConfig) -> Result<Box<dyn fuxi_dataplane::port::Port>> {
    use fuxi_dataplane::port::afxdp::{AfXdpConfig, AfXdpPort, XdpMode};
    let mode = match cfg.xdp_mode.as_deref() {
        None => XdpMode::BestEffort,
        Some(m) => XdpMode::parse(m).with_context(|| format!("unknown xdp_mode `{m}`"))?,
    };
    let xc = AfXdpConfig {
        mode,
        ..AfXdpConfig::default()
    };
    let p = AfXdpPort::open_with(&cfg.name, &xc)
        .with_context(|| format!("port {}: cannot open AF_XDP ({mode})", cfg.name))?;
    tracing::info!(port = %cfg.name, mode = %p.mode(), "AF_XDP socket bound");
    Ok(Box::new(p))
}

/// Without the `afxdp` feature there are no AF_XDP ports (config validation says so
/// first; this is for ports added at runtime).
#[cfg(not(feature = "afxdp"))]
pub(crate) fn open_afxdp(cfg: &PortConfig) -> Result<Box<dyn fuxi_dataplane::port::Port>> {
    anyhow::bail!(
        "port {}: afxdp ports need fuxi-switchd built with `--features afxdp`",
        cfg.name
    )
}

fn load_config(args: &Args) -> Result<config::Config> {
    let mut fc = match &args.config {
        Some(p) => FileConfig::load(p)?,
        None => FileConfig::default(),
    };
    if let Some(b) = &args.bridge {
        fc.bridge = Some(b.clone());
    }
    if let Some(d) = &args.datapath_id {
        fc.datapath_id = Some(config::DpidText::Text(d.clone()));
    }
    if let Some(l) = &args.listen {
        fc.listen = Some(l.clone());
    }
    fc.controllers.extend(args.controllers.iter().cloned());
    for p in &args.ports {
        fc.ports.push(parse_port_flag(p)?);
    }
    if let Some(f) = &args.fail_mode {
        fc.fail_mode = Some(f.clone());
    }
    if let Some(t) = args.threads {
        fc.threads = Some(t);
    }
    if let Some(m) = &args.mgmt {
        fc.mgmt = Some(m.clone());
    }
    if let Some(c) = &args.cpus {
        fc.cpus = config::parse_cpus(c).context("--cpus")?;
    }
    if let Some(r) = &args.rx_mode {
        fc.rx_mode = Some(r.clone());
    }
    if let Some(m) = &args.poll_mode {
        fc.poll_mode = Some(m.clone());
    }
    if let Some(us) = args.spin_max_us {
        fc.spin_max_us = Some(us);
    }
    if let Some(us) = args.spin_us {
        fc.spin_us = Some(us);
    }
    if let Some(m) = &args.metrics {
        fc.metrics = Some(m.clone());
    }
    if let Some(o) = &args.offload {
        fc.offload = Some(o.clone());
    }
    match &args.config {
        Some(p) => fc
            .validate()
            .with_context(|| format!("bad config {} (or flags)", p.display())),
        None => fc.validate().context("bad flags"),
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("fuxi-switchd: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let cfg = load_config(&args)?;
    if args.check {
        println!("configuration OK: bridge {}", cfg.bridge);
        return Ok(());
    }
    datapath::check_cpus(&cfg.cpus)?;
    let start = Instant::now();
    let ports = Arc::new(Ports::default());
    let mut pipeline = Pipeline::new();
    let kernel = match cfg.offload {
        Offload::None => None,
        Offload::Tc => Some(Arc::new(Kernel::new(true, ports.clone())?)),
        Offload::Auto => match Kernel::new(false, ports.clone()) {
            Ok(k) => Some(Arc::new(k)),
            Err(e) => {
                tracing::warn!("kernel flow table off: {e:#}");
                None
            }
        },
    };
    for (i, pc) in cfg.ports.iter().enumerate() {
        let slot = PortSlot::open(pc, i % cfg.threads, cfg.rx_mode)?;
        if let Some(k) = &kernel {
            k.attach(&slot)?;
        }
        pipeline.set_port(slot.ofport, PortState { live: slot.live() });
        tracing::info!(port = %slot.name, ofport = slot.ofport, "port added");
        ports.add(slot)?;
    }
    let mut engine = Engine::new(pipeline);
    if let Some(k) = &kernel {
        k.published(&engine.published());
        let k = k.clone();
        engine.on_publish(Box::new(move |p| k.published(p)));
    }
    let reader = engine.reader();
    let (pi_tx, mut pi_rx) = tokio::sync::mpsc::channel(4096);
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let counters: Vec<Arc<datapath::ThreadCounters>> =
        (0..cfg.threads).map(|_| Arc::default()).collect();
    for (id, c) in counters.iter().enumerate() {
        threads.push(datapath::spawn(DatapathCtx {
            id,
            ports: ports.clone(),
            reader: reader.clone(),
            packet_ins: pi_tx.clone(),
            stop: stop.clone(),
            start,
            counters: c.clone(),
            cpu: (!cfg.cpus.is_empty()).then(|| cfg.cpus[id % cfg.cpus.len()]),
            poll_mode: cfg.poll_mode,
            kernel: kernel.clone(),
        })?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut sw = Switch::new(cfg.clone(), engine, ports.clone(), start);
    sw.kernel = kernel;
    let sw = Arc::new(sw);
    let result: Result<()> = rt.block_on(async {
        // Packet-ins from datapath threads to every connection.
        let s = sw.clone();
        tokio::spawn(async move {
            while let Some(pi) = pi_rx.recv().await {
                s.packet_in(pi);
            }
        });
        // Flow expiry.
        let s = sw.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_millis(500));
            loop {
                t.tick().await;
                s.expire();
            }
        });
        // Link monitor.
        spawn_link_monitor(sw.clone(), stop.clone());
        if let Some(addr) = cfg.listen {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            tracing::info!(%addr, bridge = %cfg.bridge, fail_mode = ?cfg.fail_mode, "listening for OpenFlow");
            let s = sw.clone();
            tokio::spawn(async move {
                loop {
                    match l.accept().await {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(agent::serve(s.clone(), stream, peer.to_string()));
                        }
                        Err(e) => {
                            tracing::warn!("accept: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            });
        }
        for c in &cfg.controllers {
            let (s, c) = (sw.clone(), *c);
            tokio::spawn(async move {
                let mut backoff = Duration::from_secs(1);
                loop {
                    match tokio::net::TcpStream::connect(c).await {
                        Ok(stream) => {
                            backoff = Duration::from_secs(1);
                            let _ = stream.set_nodelay(true);
                            agent::serve_controller(s.clone(), stream, c.to_string()).await;
                        }
                        Err(e) => tracing::debug!(controller = %c, "connect: {e}"),
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(8));
                }
            });
        }
        if let Some(addr) = cfg.metrics {
            metrics::start(sw.clone(), counters.clone(), addr).await?;
            tracing::info!(%addr, "serving /metrics");
        }
        let mgmt_path = cfg.mgmt.clone();
        if let Some(path) = &mgmt_path {
            match mgmt::start(sw.clone(), path).await {
                Ok(()) => tracing::info!(%path, "management socket"),
                Err(e) => tracing::warn!(%path, "no management socket: {e:#}"),
            }
        }
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        if let Some(path) = &mgmt_path {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    });
    stop.store(true, Ordering::Relaxed);
    ports.wake_all();
    for t in threads {
        let _ = t.join();
    }
    rt.shutdown_timeout(Duration::from_millis(200));
    // Close every port now, whoever else still holds the switch (the link monitor thread is
    // not joined, a task may outlive the runtime's shutdown): an AF_XDP port takes its XDP
    // program off the interface when dropped, which exiting the process would not do.
    drop(ports.clear());
    result
}

/// Watches links (netlink) and turns changes of our ports into PORT_STATUS and liveness.
fn spawn_link_monitor(sw: Arc<Switch>, stop: Arc<AtomicBool>) {
    let rt = tokio::runtime::Handle::current();
    let r = std::thread::Builder::new()
        .name("fuxi-links".into())
        .spawn(move || {
            let mut mon = match fuxi_dataplane::port::netlink::LinkMonitor::open() {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("no link monitor: {e}");
                    return;
                }
            };
            let _ = mon.dump();
            let mut evs = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                evs.clear();
                match mon.recv(&mut evs) {
                    // Sleep until the kernel has news (a link change is acted on as it
                    // comes, and an idle switch does not wake for nothing); once a second
                    // to see `stop`.
                    Ok(0) => mon.wait(Duration::from_secs(1)),
                    Ok(_) => {}
                    Err(_) => {
                        let _ = mon.dump();
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                for ev in &evs {
                    let table = sw.ports.load();
                    let Some(slot) = table.values().find(|s| s.ifindex == Some(ev.ifindex)) else {
                        continue;
                    };
                    let up = ev.is_up() && !ev.deleted;
                    if slot.link_up.swap(up, Ordering::Relaxed) != up {
                        tracing::info!(port = %slot.name, up, "link changed");
                        let (s, n) = (sw.clone(), slot.ofport);
                        rt.spawn_blocking(move || s.port_changed(n, OFPPR_MODIFY));
                    }
                }
            }
        });
    if let Err(e) = r {
        tracing::warn!("no link monitor thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_flags() {
        let p = parse_port_flag("s1=3").unwrap();
        assert_eq!(
            (p.name.as_str(), p.ofport, p.port_type),
            ("s1", 3, PortType::Afpacket)
        );
        let p = parse_port_flag("t0:tap").unwrap();
        assert_eq!(
            (p.name.as_str(), p.ofport, p.port_type),
            ("t0", 0, PortType::Tap)
        );
        let p = parse_port_flag("vx0=10:vxlan:192.0.2.2").unwrap();
        assert_eq!((p.ofport, p.port_type), (10, PortType::Vxlan));
        assert_eq!(p.remote.as_deref(), Some("192.0.2.2"));
        assert_eq!(p.local, None);
        let p = parse_port_flag("vx1:vxlan:[fd00::2]:4790,10.0.0.1:4790").unwrap();
        assert_eq!(p.remote.as_deref(), Some("[fd00::2]:4790"));
        assert_eq!(p.local.as_deref(), Some("10.0.0.1:4790"));
        assert!(parse_port_flag("x:gre").is_err());
        let p = parse_port_flag("s2=2:afxdp").unwrap();
        assert_eq!(
            (p.ofport, p.port_type, p.xdp_mode),
            (2, PortType::Afxdp, None)
        );
        let p = parse_port_flag("s2:afxdp:generic").unwrap();
        assert_eq!(p.xdp_mode.as_deref(), Some("generic"));
    }
}
