//! Ports of the bridge and the datapath threads that poll them (this module does I/O).
//!
//! The port table is published like the pipeline (arc-swap): a datapath thread loads it
//! once per round, so ports are added and removed at runtime without a lock on the packet
//! path. Each port sits behind its own mutex: its datapath thread takes it to receive, any
//! thread to send (outputs across threads, packet-outs) — uncontended on one thread.
//!
//! A datapath thread runs to completion: receive up to 32 packets per port, run them
//! through the engine worker, send per output port, hand packet-ins to the control plane.
//! How it waits is [`PollMode`]: adaptive (the default) busy-polls under load — after a
//! round that found packets it keeps polling its ports for the spin window before it
//! sleeps in poll(2) on their descriptors and its [`Waker`] (which a port added or removed,
//! or stop, writes to), so packets that follow within that window pay no sleep and
//! wake-up, and an idle switch still uses no CPU. A sleep lasts 100 ms while there is
//! periodic work (stats to sync in the second after traffic, a kernel harvest round under
//! way), else up to a second: an idle switch wakes about once a second. The window
//! starts at 200 µs and grows, up to 20 ms, while packets keep waking the thread soon after
//! it slept ([`SpinWindow`]): traffic with gaps under 20 ms (a ping every 10 ms) keeps the
//! thread polling, at the price of its core. Always never sleeps (a whole core per thread,
//! no wake-up on any packet's path). With `cpus`
//! configured, thread i pins itself to `cpus[i % len]` (sched_setaffinity) before its
//! first round.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use fuxi_dataplane::cache::CacheStats;
use fuxi_dataplane::engine::{Output, PacketInEvent, Reader, Worker};
use fuxi_dataplane::port::afpacket::{AfPacketConfig, AfPacketPort};
use fuxi_dataplane::port::bpf::KernelPort;
use fuxi_dataplane::port::tap::TapPort;
use fuxi_dataplane::port::vxlan::VxlanPort;
use fuxi_dataplane::port::{BorrowedBatch, Frame, Packet, PacketBatch, Port, PortStats};
use fuxi_openflow::msg::port::config as pcfg;

use crate::config::{PollMode, PortConfig, PortType, RxMode};
use crate::kernel::{Kernel, KernelCounts, ThreadKernel};

/// One port of the bridge.
pub struct PortSlot {
    /// OpenFlow port number.
    pub ofport: u32,
    /// Interface name.
    pub name: String,
    /// Type.
    pub kind: PortType,
    /// Datapath thread that receives from it.
    pub thread: usize,
    /// Linux ifindex, if any.
    pub ifindex: Option<u32>,
    /// Hardware address.
    pub mac: [u8; 6],
    /// Descriptor to poll.
    pub fd: Option<RawFd>,
    /// When it was added.
    pub created: Instant,
    /// OpenFlow port config bits (PORT_DOWN, NO_RECV, NO_FWD, NO_PACKET_IN).
    pub config: AtomicU32,
    /// Link state as last seen.
    pub link_up: AtomicBool,
    /// The port itself.
    pub port: Mutex<Box<dyn Port>>,
    /// The kernel flow table's programs on it, if attached (`offload = "tc"`).
    pub kernel_port: OnceLock<KernelPort>,
    /// What the kernel forwarded from and to it.
    pub kernel_counts: KernelCounts,
}

impl fmt::Debug for PortSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortSlot")
            .field("ofport", &self.ofport)
            .field("name", &self.name)
            .field("thread", &self.thread)
            .finish()
    }
}

impl PortSlot {
    /// Opens the port a configuration entry describes.
    pub fn open(cfg: &PortConfig, thread: usize, rx_mode: RxMode) -> Result<PortSlot> {
        let port: Box<dyn Port> = match cfg.port_type {
            PortType::Afpacket => {
                let ac = AfPacketConfig {
                    rx_mmsg: rx_mode == RxMode::Mmsg,
                    rx_zc: rx_mode == RxMode::Zc,
                    ..AfPacketConfig::default()
                };
                Box::new(
                    AfPacketPort::open_with(&cfg.name, &ac)
                        .with_context(|| format!("port {}: cannot open AF_PACKET", cfg.name))?,
                )
            }
            PortType::Tap => {
                let t = TapPort::open(&cfg.name)
                    .with_context(|| format!("port {}: cannot create TAP", cfg.name))?;
                t.set_admin_up(true)
                    .with_context(|| format!("port {}: cannot bring up", cfg.name))?;
                Box::new(t)
            }
            PortType::Vxlan => {
                let addr = |s: &Option<String>| -> Result<SocketAddr> {
                    Ok(s.as_deref().unwrap_or_default().parse()?)
                };
                Box::new(
                    VxlanPort::new(&cfg.name, addr(&cfg.local)?, addr(&cfg.remote)?)
                        .with_context(|| format!("port {}: cannot open VXLAN", cfg.name))?,
                )
            }
            PortType::Afxdp => crate::open_afxdp(cfg)?,
        };
        Ok(PortSlot::from_port(cfg.ofport, cfg.port_type, port, thread))
    }

    /// Wraps an opened port.
    pub fn from_port(ofport: u32, kind: PortType, port: Box<dyn Port>, thread: usize) -> Self {
        PortSlot {
            ofport,
            name: port.name().to_string(),
            kind,
            thread,
            ifindex: port.ifindex(),
            mac: port.mac().unwrap_or([0; 6]),
            fd: port.as_raw_fd(),
            created: Instant::now(),
            config: AtomicU32::new(0),
            link_up: AtomicBool::new(port.link_up()),
            port: Mutex::new(port),
            kernel_port: OnceLock::new(),
            kernel_counts: KernelCounts::default(),
        }
    }

    /// Locks the port.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Port>> {
        self.port.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counters (with what the kernel flow table forwarded).
    pub fn stats(&self) -> PortStats {
        let mut s = self.lock().stats();
        let k = &self.kernel_counts;
        let r = Ordering::Relaxed;
        s.rx_packets += k.rx_packets.load(r);
        s.rx_bytes += k.rx_bytes.load(r);
        s.tx_packets += k.tx_packets.load(r);
        s.tx_bytes += k.tx_bytes.load(r);
        s
    }

    /// Whether forwarding may use it (link up, not administratively down).
    pub fn live(&self) -> bool {
        self.link_up.load(Ordering::Relaxed)
            && self.config.load(Ordering::Relaxed) & pcfg::PORT_DOWN == 0
    }

    /// Sends packets unless the port is down or NO_FWD; returns how many went.
    pub fn send(&self, pkts: &mut [Packet]) -> usize {
        self.send_from(pkts.len(), |port, from| port.send_batch(&mut pkts[from..]))
    }

    /// As [`PortSlot::send`] for frames borrowed from a receive ring (sent unchanged).
    pub fn send_frames(&self, frames: &[Frame<'_>]) -> usize {
        self.send_from(frames.len(), |port, from| port.send_frames(&frames[from..]))
    }

    /// Offers `n` packets to the port, `send(port, from)` sending those from `from` on,
    /// until all are taken or the port takes none; nothing if the port may not forward.
    fn send_from(
        &self,
        n: usize,
        mut send: impl FnMut(&mut dyn Port, usize) -> std::io::Result<usize>,
    ) -> usize {
        if self.config.load(Ordering::Relaxed) & (pcfg::PORT_DOWN | pcfg::NO_FWD) != 0 {
            return 0;
        }
        let mut sent = 0;
        let mut port = self.lock();
        while sent < n {
            match send(port.as_mut(), sent) {
                Ok(0) | Err(_) => break,
                Ok(k) => sent += k,
            }
        }
        sent
    }
}

/// Port number → port.
pub type PortTable = BTreeMap<u32, Arc<PortSlot>>;

/// The bridge's ports, published for datapath threads.
#[derive(Debug)]
pub struct Ports {
    table: ArcSwap<PortTable>,
    edit: Mutex<()>,
    /// One per datapath thread: written when the table changes, so a sleeping thread polls
    /// a new port at once.
    wakers: Mutex<Vec<Arc<Waker>>>,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            table: ArcSwap::from_pointee(PortTable::new()),
            edit: Mutex::new(()),
            wakers: Mutex::new(Vec::new()),
        }
    }
}

/// An eventfd a datapath thread sleeps on beside its ports: [`Waker::wake`] ends its sleep.
#[derive(Debug)]
pub struct Waker(OwnedFd);

impl Waker {
    fn new() -> std::io::Result<Waker> {
        // SAFETY: plain syscall; the fd is checked and owned right away.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Waker(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the thread's next or current poll(2) return.
    pub fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: `one` is 8 readable bytes. A full counter (EAGAIN) is already a wake-up.
        unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    /// Resets it after a wake-up.
    fn drain(&self) {
        let mut n = [0u8; 8];
        // SAFETY: `n` is 8 writable bytes.
        unsafe { libc::read(self.0.as_raw_fd(), n.as_mut_ptr().cast(), 8) };
    }
}

impl Ports {
    /// A waker for a new datapath thread, woken with every change of the table.
    pub fn waker(&self) -> std::io::Result<Arc<Waker>> {
        let w = Arc::new(Waker::new()?);
        self.wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(w.clone());
        Ok(w)
    }

    /// Wakes every datapath thread (after a change of the table, or to stop them).
    pub fn wake_all(&self) {
        for w in self
            .wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            w.wake();
        }
    }

    /// The current table.
    pub fn load(&self) -> Arc<PortTable> {
        self.table.load_full()
    }

    /// Port by number.
    pub fn get(&self, ofport: u32) -> Option<Arc<PortSlot>> {
        self.table.load().get(&ofport).cloned()
    }

    /// Port by name.
    pub fn by_name(&self, name: &str) -> Option<Arc<PortSlot>> {
        self.table.load().values().find(|s| s.name == name).cloned()
    }

    /// Adds a port (refused if the number or name is taken).
    pub fn add(&self, slot: PortSlot) -> Result<Arc<PortSlot>> {
        let _g = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let mut t = (*self.table.load_full()).clone();
        if t.contains_key(&slot.ofport) {
            anyhow::bail!("port number {} is taken", slot.ofport);
        }
        if t.values().any(|s| s.name == slot.name) {
            anyhow::bail!("port {} exists", slot.name);
        }
        let slot = Arc::new(slot);
        t.insert(slot.ofport, slot.clone());
        self.table.store(Arc::new(t));
        self.wake_all();
        Ok(slot)
    }

    /// Removes a port by number.
    pub fn remove(&self, ofport: u32) -> Option<Arc<PortSlot>> {
        let _g = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let mut t = (*self.table.load_full()).clone();
        let r = t.remove(&ofport);
        self.table.store(Arc::new(t));
        self.wake_all();
        r
    }

    /// Removes every port: returns the table they were in.
    pub fn clear(&self) -> Arc<PortTable> {
        let _g = self.edit.lock().unwrap_or_else(PoisonError::into_inner);
        let t = self.table.swap(Arc::new(PortTable::new()));
        self.wake_all();
        t
    }

    /// A free port number.
    pub fn free_number(&self) -> u32 {
        let t = self.table.load();
        (1..).find(|n| !t.contains_key(n)).unwrap_or(1)
    }
}

/// Nanoseconds since `start` (the daemon's monotonic clock).
pub fn nanos_since(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

/// One datapath thread's counters, copied from its worker (at most 100 ms old) for
/// `/metrics`.
#[derive(Debug, Default)]
pub struct ThreadCounters {
    /// Packets the exact-match cache answered.
    pub emc_hits: AtomicU64,
    /// Packets the megaflow cache answered.
    pub megaflow_hits: AtomicU64,
    /// Packets translated by the full pipeline (upcalls).
    pub upcalls: AtomicU64,
    /// Upcalls whose result could not be cached.
    pub uncacheable: AtomicU64,
    /// Cache flushes (every megaflow dropped).
    pub flushes: AtomicU64,
    /// Cache revalidations after a pipeline or MAC table change.
    pub revalidations: AtomicU64,
    /// Megaflows a revalidation kept.
    pub revalidated: AtomicU64,
    /// Packet-ins handed to the control plane.
    pub packet_ins: AtomicU64,
    /// Packet-ins dropped because the control plane's queue was full.
    pub packet_ins_dropped: AtomicU64,
    /// Times the thread slept in poll(2) because its ports had nothing.
    pub sleeps: AtomicU64,
    /// The adaptive busy-poll window after the last sleep (µs; 0 in always mode).
    pub spin_window_us: AtomicU64,
}

impl ThreadCounters {
    fn store_cache(&self, c: &CacheStats) {
        let r = Ordering::Relaxed;
        self.emc_hits.store(c.emc_hits, r);
        self.megaflow_hits.store(c.megaflow_hits, r);
        self.upcalls.store(c.misses, r);
        self.uncacheable.store(c.uncacheable, r);
        self.flushes.store(c.flushes, r);
        self.revalidations.store(c.revalidations, r);
        self.revalidated.store(c.revalidated, r);
    }
}

/// What a datapath thread needs.
#[derive(Debug, Clone)]
pub struct DatapathCtx {
    /// This thread's index.
    pub id: usize,
    /// The ports.
    pub ports: Arc<Ports>,
    /// The published pipeline.
    pub reader: Reader,
    /// Packet-ins go here (dropped when full).
    pub packet_ins: tokio::sync::mpsc::Sender<PacketInEvent>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// The daemon's clock origin.
    pub start: Instant,
    /// This thread's counters.
    pub counters: Arc<ThreadCounters>,
    /// The CPU to pin this thread to, if any.
    pub cpu: Option<usize>,
    /// How the thread waits for packets.
    pub poll_mode: PollMode,
    /// The kernel flow table, if offload is on.
    pub kernel: Option<Arc<Kernel>>,
}

/// The CPUs this process may run on (its affinity mask).
fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain old data; all-zero is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = 8 * std::mem::size_of_val(&set);
    // SAFETY: CPU_ISSET reads the set for an index below its size in bits.
    Ok((0..n)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Checks that every CPU in `cpus` is one this process may run on.
pub fn check_cpus(cpus: &[usize]) -> Result<()> {
    if cpus.is_empty() {
        return Ok(());
    }
    let allowed = allowed_cpus().context("cannot read the CPU affinity")?;
    for (i, c) in cpus.iter().enumerate() {
        if !allowed.contains(c) {
            anyhow::bail!(
                "key `cpus[{i}]`: CPU {c} is not one this process may run on ({allowed:?})"
            );
        }
    }
    Ok(())
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (config validation); CPU_SET writes within `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The busy-poll window of [`PollMode::Adaptive`]: how long a datapath thread keeps
/// polling after the last packet before it sleeps.
///
/// It starts at `base`. When packets wake the thread up within `max` of the last ones,
/// a longer window would have caught them without the wake-up (a cross-CPU wake-up of an
/// idle core: ~100 µs of round-trip time on a KVM guest), so it doubles, up to `max`; when
/// they come later than that, or a sleep ends with nothing, it falls back to `base`. So
/// traffic whose gaps are shorter than `max` (a ping every 10 ms) keeps the thread
/// polling, sparser traffic pays the wake-up, and an idle switch sleeps after one window.
/// KVM grows and shrinks its halt-polling window the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpinWindow {
    base: Duration,
    max: Duration,
    cur: Duration,
}

impl SpinWindow {
    /// Where a window of 0 starts growing from.
    const GROW_START: Duration = Duration::from_micros(50);

    fn new(base: Duration, max: Duration) -> SpinWindow {
        SpinWindow {
            base,
            max: max.max(base),
            cur: base,
        }
    }

    /// A sleep ended: woken by packets `Some(gap)` after the last ones, or `None`
    /// (timed out, or a port failed).
    fn slept(&mut self, woken_after: Option<Duration>) {
        self.cur = match woken_after {
            Some(gap) if gap <= self.max => (self.cur.max(Self::GROW_START) * 2).min(self.max),
            _ => self.base,
        };
    }
}

/// Starts datapath thread `ctx.id`.
pub fn spawn(ctx: DatapathCtx) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("fuxi-dp{}", ctx.id))
        .spawn(move || run(ctx))
}

fn run(ctx: DatapathCtx) {
    if let Some(cpu) = ctx.cpu {
        match pin_to(cpu) {
            Ok(()) => tracing::info!(thread = ctx.id, cpu, "datapath thread pinned"),
            Err(e) => tracing::warn!(thread = ctx.id, cpu, "cannot pin datapath thread: {e}"),
        }
    }
    let mut worker = Worker::new(ctx.reader.clone());
    // Without one (no eventfd), the thread sleeps 50 ms at most, to see port changes.
    let waker = ctx
        .ports
        .waker()
        .inspect_err(|e| tracing::warn!(thread = ctx.id, "no waker: {e}"))
        .ok();
    if let Some(k) = &ctx.kernel {
        worker.set_kernel(Box::new(ThreadKernel::new(k.clone())));
    }
    let mut batch = PacketBatch::new();
    // Frames a port lends (zero-copy receive): held from the receive to the end of the
    // sends, then handed back; the port is not locked meanwhile.
    let mut lent = BorrowedBatch::new();
    let mut out = Output::new();
    let mut pollfds: Vec<libc::pollfd> = Vec::new();
    let mut last_sync = Instant::now();
    let mut last_busy = Instant::now();
    // Adaptive: how long to keep polling after the last packet (under load, where the gaps
    // between batches are shorter, the thread never sleeps; after a burst it spins this
    // long, then costs nothing). Always: forever.
    let mut window = match ctx.poll_mode {
        PollMode::Adaptive { spin, spin_max } => Some(SpinWindow::new(spin, spin_max)),
        PollMode::Always => None,
    };
    tracing::debug!(thread = ctx.id, poll_mode = ?ctx.poll_mode, "datapath thread running");
    while !ctx.stop.load(Ordering::Relaxed) {
        let table = ctx.ports.load();
        let mut busy = false;
        for slot in table.values().filter(|s| s.thread == ctx.id) {
            let (n, borrowed) = {
                let mut port = slot.lock();
                match port.recv_borrowed(&mut lent) {
                    Some(r) => (r.unwrap_or(0), true),
                    None => {
                        batch.clear();
                        (port.recv_batch(&mut batch).unwrap_or(0), false)
                    }
                }
            };
            if n == 0 {
                continue;
            }
            busy = true;
            if slot.config.load(Ordering::Relaxed) & (pcfg::PORT_DOWN | pcfg::NO_RECV) != 0 {
                lent.release();
                continue;
            }
            out.clear();
            let now = nanos_since(ctx.start);
            if borrowed {
                worker.process_frames(slot.ofport, lent.frames(), now, &mut out);
            } else {
                worker.process_batch(slot.ofport, &mut batch, now, &mut out);
            }
            out.send(
                lent.frames(),
                |port, pkts| {
                    if let Some(dst) = table.get(&port) {
                        dst.send(pkts);
                    }
                },
                |port, frames| {
                    if let Some(dst) = table.get(&port) {
                        dst.send_frames(frames);
                    }
                },
            );
            // The ring slots go back only now that every output of them was sent; the
            // kernel may take the batch's microflows only now too.
            lent.release();
            worker.commit_kernel();
            let no_pi = slot.config.load(Ordering::Relaxed) & pcfg::NO_PACKET_IN != 0;
            for pi in out.packet_ins.drain(..) {
                if !no_pi {
                    let c = match ctx.packet_ins.try_send(pi) {
                        Ok(()) => &ctx.counters.packet_ins,
                        Err(_) => &ctx.counters.packet_ins_dropped,
                    };
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if last_sync.elapsed() >= Duration::from_millis(100) {
            worker.harvest_kernel(nanos_since(ctx.start));
            worker.sync_stats();
            ctx.counters.store_cache(&worker.cache_stats());
            last_sync = Instant::now();
        }
        if busy {
            last_busy = Instant::now();
            continue;
        }
        let Some(window) = window.as_mut() else {
            std::hint::spin_loop();
            continue;
        };
        if last_busy.elapsed() < window.cur {
            // Busy-poll: more packets are likely to follow the ones just handled.
            std::hint::spin_loop();
        } else {
            ctx.counters.sleeps.fetch_add(1, Ordering::Relaxed);
            pollfds.clear();
            for slot in table.values().filter(|s| s.thread == ctx.id) {
                if let Some(fd) = slot.fd {
                    pollfds.push(libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                }
            }
            let ports_polled = pollfds.len();
            if let Some(w) = &waker {
                pollfds.push(libc::pollfd {
                    fd: w.0.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // Periodic work wants the thread back: stats to sync soon after traffic, a
            // kernel harvest round under way or due (what the kernel forwarded reaches the
            // counters within a second or so). Else it wakes for packets, the waker (a
            // port added, stop) or once a second (stats).
            let harvest_in = (worker.kernel_next_harvest())
                .map(|t| t.saturating_sub(nanos_since(ctx.start)).div_ceil(1_000_000));
            let timeout = if waker.is_none() {
                50
            } else if last_busy.elapsed() < Duration::from_secs(1) || harvest_in == Some(0) {
                100
            } else {
                harvest_in.map_or(1000, |ms| ms.clamp(1, 1000) as i32)
            };
            // SAFETY: `pollfds` is a valid, initialised array of `pollfds.len()` entries
            // that lives across the call; the descriptors belong to ports kept alive by
            // `table` (an Arc) and to `waker` for the duration of the call.
            let n =
                unsafe { libc::poll(pollfds.as_mut_ptr(), pollfds.len() as libc::nfds_t, timeout) };
            if let Some(w) = waker
                .as_ref()
                .filter(|_| n > 0 && pollfds[ports_polled].revents != 0)
            {
                w.drain();
            }
            let ports = &pollfds[..ports_polled];
            // A port whose device went away polls as always ready: do not spin on it.
            let bad = libc::POLLERR | libc::POLLHUP | libc::POLLNVAL;
            if ports.iter().any(|p| p.revents & bad != 0) {
                std::thread::sleep(Duration::from_millis(50));
                window.slept(None);
            } else {
                let woke = ports.iter().any(|p| p.revents != 0);
                window.slept(woke.then(|| last_busy.elapsed()));
            }
            ctx.counters
                .spin_window_us
                .store(window.cur.as_micros() as u64, Ordering::Relaxed);
        }
    }
    worker.sync_stats();
    ctx.counters.store_cache(&worker.cache_stats());
    tracing::debug!(thread = ctx.id, "datapath thread stopped");
}

#[cfg(test)]
mod tests {
    use fuxi_dataplane::engine::Engine;
    use fuxi_dataplane::pipeline::Pipeline;

    use super::*;

    /// Starts one datapath thread with no ports.
    fn idle_thread(
        poll_mode: PollMode,
    ) -> (
        Arc<Ports>,
        Arc<ThreadCounters>,
        Arc<AtomicBool>,
        JoinHandle<()>,
    ) {
        let engine = Engine::new(Pipeline::new());
        let (packet_ins, _rx) = tokio::sync::mpsc::channel(1);
        let counters = Arc::new(ThreadCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let ports: Arc<Ports> = Arc::default();
        let h = spawn(DatapathCtx {
            id: 0,
            ports: ports.clone(),
            reader: engine.reader(),
            packet_ins,
            stop: stop.clone(),
            start: Instant::now(),
            counters: counters.clone(),
            cpu: None,
            poll_mode,
            kernel: None,
        })
        .unwrap();
        (ports, counters, stop, h)
    }

    /// Stops a thread of [`idle_thread`]; returns how long it took.
    fn stop_thread(ports: &Ports, stop: &AtomicBool, h: JoinHandle<()>) -> Duration {
        let t = Instant::now();
        stop.store(true, Ordering::Relaxed);
        ports.wake_all();
        h.join().unwrap();
        t.elapsed()
    }

    /// Runs one datapath thread with no ports for `dur`; returns how often it slept.
    fn sleeps_while_idle(poll_mode: PollMode, dur: Duration) -> u64 {
        let (ports, counters, stop, h) = idle_thread(poll_mode);
        std::thread::sleep(dur);
        stop_thread(&ports, &stop, h);
        counters.sleeps.load(Ordering::Relaxed)
    }

    #[test]
    fn always_poll_never_sleeps_and_adaptive_sleeps_when_idle() {
        let dur = Duration::from_millis(300);
        assert_eq!(sleeps_while_idle(PollMode::Always, dur), 0);
        // Idle from the start: the window passes, then every poll(2) sleeps (100 ms each in
        // the first second, which counts as just after traffic).
        let adaptive = |spin, spin_max| PollMode::Adaptive { spin, spin_max };
        let spin = Duration::from_micros(200);
        let n = sleeps_while_idle(adaptive(spin, Duration::from_millis(20)), dur);
        assert!((2..=4).contains(&n), "{n} sleeps in 300 ms");
        // A window longer than the test: it never gets to sleep.
        let spin = Duration::from_secs(1);
        assert_eq!(sleeps_while_idle(adaptive(spin, spin), dur), 0);
    }

    #[test]
    fn an_idle_thread_wakes_once_a_second_and_at_once_for_a_new_port_or_stop() {
        let ms = Duration::from_millis;
        let (ports, counters, stop, h) = idle_thread(PollMode::Adaptive {
            spin: Duration::from_micros(200),
            spin_max: ms(20),
        });
        let sleeps = || counters.sleeps.load(Ordering::Relaxed);
        // Past the first second (100 ms sleeps), then 1.5 s of 1 s sleeps.
        std::thread::sleep(ms(1300));
        let s0 = sleeps();
        std::thread::sleep(ms(1500));
        let s1 = sleeps();
        assert!(s1 - s0 <= 2, "{} sleeps in 1.5 s", s1 - s0);
        // A port added: the thread comes round at once (and sleeps again).
        let port = Box::new(fuxi_dataplane::port::MemPort::new("m1"));
        ports
            .add(PortSlot::from_port(1, PortType::Afpacket, port, 0))
            .unwrap();
        std::thread::sleep(ms(50));
        assert_eq!(sleeps(), s1 + 1, "no wake-up for the new port");
        // Stop is seen at once too.
        let took = stop_thread(&ports, &stop, h);
        assert!(took < ms(200), "stopping took {took:?}");
    }

    #[test]
    fn the_spin_window_grows_while_packets_come_back_soon_and_shrinks_when_idle() {
        let us = Duration::from_micros;
        let mut w = SpinWindow::new(us(200), us(20_000));
        assert_eq!(w.cur, us(200));
        // A ping every 10 ms: each wake-up 10 ms after the last packet doubles the window
        // until it covers the gap (then the thread stops sleeping).
        let mut grown = vec![];
        while w.cur < us(10_000) {
            w.slept(Some(us(10_000)));
            grown.push(w.cur.as_micros());
        }
        assert_eq!(grown, [400, 800, 1600, 3200, 6400, 12_800]);
        // It never passes the longest window.
        w.slept(Some(us(15_000)));
        w.slept(Some(us(15_000)));
        assert_eq!(w.cur, us(20_000));
        // A gap longer than the longest window: back to the start.
        w.slept(Some(us(20_001)));
        assert_eq!(w.cur, us(200));
        // So is a sleep that ended with nothing (the poll timeout).
        w.slept(Some(us(300)));
        assert_eq!(w.cur, us(400));
        w.slept(None);
        assert_eq!(w.cur, us(200));
        // A window of 0 grows from 50 µs; a longest window of the base never grows.
        let mut w = SpinWindow::new(us(0), us(1000));
        w.slept(Some(us(10)));
        assert_eq!(w.cur, us(100));
        let mut w = SpinWindow::new(us(200), us(200));
        w.slept(Some(us(10)));
        assert_eq!(w.cur, us(200));
    }
}
