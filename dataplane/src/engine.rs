//! The engine API a switch daemon drives: one control side that owns the mutable
//! [`Pipeline`] and publishes immutable snapshots, and any number of datapath [`Worker`]s
//! that load the current snapshot once per batch (arc-swap, no lock) and run packets through
//! their own caches.
//!
//! Publication rules:
//! - [`Engine::flow_mod`], [`Engine::group_mod`], [`Engine::meter_mod`] and friends change
//!   the control side's copy only; nothing a datapath sees changes until
//!   [`Engine::publish`] (the agent publishes after each batch of mods it read, and before
//!   answering a barrier).
//! - [`Engine::transaction`] applies several changes all-or-nothing and publishes them as
//!   one snapshot (bundle commit): a datapath sees all of them or none.
//!
//! Counters across republication: flow and group counters are `Arc`s that a clone shares,
//! so they need nothing. Table lookup/matched counters and meter state are copied by
//! `Pipeline::clone`; the engine carries them from the published snapshot into the new one,
//! and adds whatever a datapath still credited to a retired snapshot once the last datapath
//! has let go of it. Statistics are read from the published snapshot.
//!
//! No I/O here: time is an argument, outputs are values ([`Output`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::{ArcSwap, Guard};
use fuxi_openflow::ErrorCode;

use crate::cache::{CacheStats, Datapath, Sinks};
use crate::pipeline::exec::Sink;
use crate::pipeline::{
    FlowMod, FlowRemoved, GroupMod, MeterMod, Nanos, PacketInReason, Pipeline, PortState,
};
use crate::port::offload::VnetHdr;
use crate::port::{BATCH, Frame, Packet, PacketBatch, RxPacket};

/// A snapshot that was replaced while datapaths may still credit its table counters:
/// the snapshot and, per table, the (lookups, matched) already carried into its successor.
struct Retired {
    snapshot: Arc<Pipeline>,
    carried: Vec<(u64, u64)>,
}

/// What [`Engine::on_publish`] calls with each published snapshot.
pub type OnPublish = Box<dyn FnMut(&Pipeline) + Send>;

/// The control side: owns the mutable pipeline, publishes snapshots.
pub struct Engine {
    master: Pipeline,
    current: Arc<ArcSwap<Pipeline>>,
    retired: Vec<Retired>,
    /// The master's meters were refreshed from the published snapshot and changed since:
    /// the next publish must not overwrite them with the published state.
    meters_dirty: bool,
    /// The master differs from the published snapshot.
    dirty: bool,
    publications: u64,
    /// Told the published generation and MAC table version after every publish.
    on_publish: Option<OnPublish>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("generation", &self.master.generation())
            .field("retired", &self.retired.len())
            .field("dirty", &self.dirty)
            .field("publications", &self.publications)
            .finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new(Pipeline::new())
    }
}

/// A datapath's handle on the published snapshot (cheap to clone, `Send + Sync`).
#[derive(Clone)]
pub struct Reader {
    current: Arc<ArcSwap<Pipeline>>,
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("generation", &self.current.load().generation())
            .finish()
    }
}

impl Reader {
    /// The published snapshot. Hold it for one batch, not longer.
    #[inline]
    pub fn load(&self) -> Guard<Arc<Pipeline>> {
        self.current.load()
    }

    /// The published snapshot as an owned `Arc` (control-plane use: packet-out, trace).
    pub fn load_full(&self) -> Arc<Pipeline> {
        self.current.load_full()
    }
}

impl Engine {
    /// An engine whose first published snapshot is `p`.
    pub fn new(p: Pipeline) -> Engine {
        let current = Arc::new(ArcSwap::from_pointee(p.clone()));
        Engine {
            master: p,
            current,
            retired: Vec::new(),
            meters_dirty: false,
            dirty: false,
            publications: 0,
            on_publish: None,
        }
    }

    /// Calls `f(snapshot)` with the published snapshot after every [`Engine::publish`],
    /// also one that had nothing new to show (an expiry may have aged MAC entries out):
    /// what caches outside the datapaths (the kernel flow table, [`crate::cache::kernel`])
    /// need to drop what went stale before a barrier is answered.
    pub fn on_publish(&mut self, f: OnPublish) {
        self.on_publish = Some(f);
    }

    /// A handle for a datapath thread (or anything else that reads the published snapshot).
    pub fn reader(&self) -> Reader {
        Reader {
            current: self.current.clone(),
        }
    }

    /// The control side's pipeline (what the next publish will show).
    pub fn pipeline(&self) -> &Pipeline {
        &self.master
    }

    /// The published snapshot.
    pub fn published(&self) -> Arc<Pipeline> {
        self.current.load_full()
    }

    /// True if changes wait for [`Engine::publish`].
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// How many snapshots have been published.
    pub fn publications(&self) -> u64 {
        self.publications
    }

    /// Before the master's meters change: take the live meter state (tokens, counters) from
    /// the published snapshot, so the change does not roll them back.
    fn refresh_meters(&mut self) {
        if !self.meters_dirty {
            self.master.meters = self.current.load().meters.clone();
            self.meters_dirty = true;
        }
    }

    /// Applies a flow-mod to the control side's pipeline (publish to make it visible).
    pub fn flow_mod(&mut self, fm: &FlowMod, now: Nanos) -> Result<Vec<FlowRemoved>, ErrorCode> {
        let r = self.master.flow_mod(fm, now)?;
        self.dirty = true;
        Ok(r)
    }

    /// Applies a group-mod (publish to make it visible).
    pub fn group_mod(&mut self, gm: &GroupMod, now: Nanos) -> Result<Vec<FlowRemoved>, ErrorCode> {
        let r = self.master.group_mod(gm, now)?;
        self.dirty = true;
        Ok(r)
    }

    /// Applies a meter-mod (publish to make it visible). Other meters keep their state.
    pub fn meter_mod(&mut self, mm: &MeterMod, now: Nanos) -> Result<Vec<FlowRemoved>, ErrorCode> {
        self.refresh_meters();
        let r = self.master.meter_mod(mm, now)?;
        self.dirty = true;
        Ok(r)
    }

    /// Adds or updates a port's state (publish to make it visible).
    pub fn set_port(&mut self, port: u32, state: PortState) {
        self.master.set_port(port, state);
        self.dirty = true;
    }

    /// Removes a port (publish to make it visible).
    pub fn remove_port(&mut self, port: u32) {
        self.master.remove_port(port);
        self.dirty = true;
    }

    /// Sets the switch configuration (publish to make it visible).
    pub fn set_config(&mut self, config: crate::pipeline::Config) {
        self.master.set_config(config);
        self.dirty = true;
    }

    /// Removes timed-out flows at `now` (publish to make it visible), and MAC table
    /// entries past their aging time (visible at once: the table is shared).
    pub fn expire(&mut self, now: Nanos) -> Vec<FlowRemoved> {
        self.master.mac_table.expire(now);
        let r = self.master.expire(now);
        if !r.is_empty() {
            self.dirty = true;
        }
        r
    }

    /// Runs `f` on a copy of the pipeline; if it succeeds the copy replaces the pipeline and
    /// is published at once (all of its changes become visible together), else nothing
    /// changed and nothing is published. Changes not yet published are published with it.
    pub fn transaction<T, E>(
        &mut self,
        f: impl FnOnce(&mut Pipeline) -> Result<T, E>,
    ) -> Result<T, E> {
        self.refresh_meters();
        let mut copy = self.master.clone();
        let r = f(&mut copy)?;
        self.master = copy;
        self.dirty = true;
        self.publish();
        Ok(r)
    }

    /// Makes every change so far visible to datapaths, atomically. When this returns, every
    /// `load` sees the new snapshot (a barrier may be answered). Does nothing if nothing
    /// changed.
    pub fn publish(&mut self) {
        self.publish_snapshot();
        if let Some(f) = self.on_publish.as_mut() {
            f(&self.current.load());
        }
    }

    fn publish_snapshot(&mut self) {
        self.reap();
        if !self.dirty {
            return;
        }
        if !self.meters_dirty {
            // Meters did not change: keep metering from the live state.
            self.master.meters = self.current.load().meters.clone();
        }
        let new = self.master.clone();
        let old = self.current.load_full();
        let mut carried = Vec::with_capacity(new.tables.len());
        for (n, o) in new.tables.iter().zip(&old.tables) {
            let l = o.lookups.load(Ordering::Relaxed);
            let m = o.matched.load(Ordering::Relaxed);
            n.lookups.store(l, Ordering::Relaxed);
            n.matched.store(m, Ordering::Relaxed);
            carried.push((l, m));
        }
        let prev = self.current.swap(Arc::new(new));
        drop(old);
        self.retired.push(Retired {
            snapshot: prev,
            carried,
        });
        self.dirty = false;
        self.meters_dirty = false;
        self.publications += 1;
        self.reap();
    }

    /// Folds the late table credits of retired snapshots no datapath holds any more into
    /// the published one.
    fn reap(&mut self) {
        if self.retired.is_empty() {
            return;
        }
        let cur = self.current.load_full();
        self.retired.retain(|r| {
            // The engine's own reference is the only one left: nobody can credit it now.
            // (arc-swap pays its readers' debts on swap, so guards count here.)
            if Arc::strong_count(&r.snapshot) > 1 {
                return true;
            }
            for ((o, (cl, cm)), n) in r.snapshot.tables.iter().zip(&r.carried).zip(&cur.tables) {
                let dl = o.lookups.load(Ordering::Relaxed).saturating_sub(*cl);
                let dm = o.matched.load(Ordering::Relaxed).saturating_sub(*cm);
                if dl != 0 {
                    n.lookups.fetch_add(dl, Ordering::Relaxed);
                }
                if dm != 0 {
                    n.matched.fetch_add(dm, Ordering::Relaxed);
                }
            }
            false
        });
    }

    /// Table statistics of the published snapshot (late credits folded in first).
    pub fn table_stats(&mut self) -> Vec<(u8, u32, u64, u64)> {
        self.reap();
        self.current.load().table_stats()
    }
}

/// One packet-in a datapath produced: everything the agent needs for OFPT_PACKET_IN.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PacketInEvent {
    /// Why.
    pub reason: PacketInReason,
    /// Bytes the flow asked for (OFPCML_NO_BUFFER: all); the agent cuts.
    pub max_len: u16,
    /// Table of the flow that sent it.
    pub table_id: u8,
    /// Cookie of that flow.
    pub cookie: u64,
    /// Port it came in on.
    pub in_port: u32,
    /// Tunnel id it came with (0: none).
    pub tunnel_id: u64,
    /// The packet as it was when sent to the controller.
    pub data: Vec<u8>,
}

/// What a batch produced: packets per output port and packet-ins. Buffers are reused
/// across batches ([`Output::clear`]).
///
/// A port's outputs are packets of the output's own ([`Output::per_port`]) and, for a batch
/// of borrowed frames ([`Worker::process_frames`]), frames of that batch sent unchanged
/// from where their port lent them (zero-copy); [`Output::send`] hands both out in order.
#[derive(Debug, Default)]
pub struct Output {
    /// Every port that had outputs, in first-output order.
    ports: Vec<PortOut>,
    /// Packets-ins, in order.
    pub packet_ins: Vec<PacketInEvent>,
}

/// One output port's share of a batch.
#[derive(Debug, Default)]
struct PortOut {
    port: u32,
    /// Owned packets: the first `n` are this batch's.
    pkts: Vec<Packet>,
    n: usize,
    /// Lent frames, in output order, each after the owned packets output before it.
    lent: Vec<Lent>,
}

/// An output of a borrowed frame unchanged: frame `index` of the batch, which lies at
/// `addr`, sent after the port's first `before` owned packets, with this tunnel id.
#[derive(Clone, Copy, Debug)]
struct Lent {
    index: u32,
    before: u32,
    addr: usize,
    tunnel_id: u64,
}

impl Output {
    /// Empty.
    pub fn new() -> Output {
        Output::default()
    }

    /// Forgets every packet and packet-in, keeping buffers.
    pub fn clear(&mut self) {
        for po in &mut self.ports {
            po.n = 0;
            po.lent.clear();
        }
        self.packet_ins.clear();
    }

    fn port(&mut self, port: u32) -> &mut PortOut {
        let i = match self.ports.iter().position(|po| po.port == port) {
            Some(i) => i,
            None => {
                self.ports.push(PortOut {
                    port,
                    ..PortOut::default()
                });
                self.ports.len() - 1
            }
        };
        &mut self.ports[i]
    }

    fn slot(&mut self, port: u32) -> &mut Packet {
        let po = self.port(port);
        if po.n == po.pkts.len() {
            po.pkts.push(Packet::default());
        }
        let p = &mut po.pkts[po.n];
        p.reset();
        po.n += 1;
        p
    }

    fn lend(&mut self, port: u32, index: u32, addr: usize, tunnel_id: u64) {
        let po = self.port(port);
        let before = po.n as u32;
        po.lent.push(Lent {
            index,
            before,
            addr,
            tunnel_id,
        });
    }

    /// Ports with packets of their own and those packets, to hand to each port's
    /// `send_batch`. Frames lent by a port ([`Worker::process_frames`]) are not among
    /// them: send a batch of those with [`Output::send`].
    pub fn per_port(&mut self) -> impl Iterator<Item = (u32, &mut [Packet])> {
        self.ports
            .iter_mut()
            .filter(|po| po.n > 0)
            .map(|po| (po.port, &mut po.pkts[..po.n]))
    }

    /// Hands every output to its port, each port's in the order they were output: runs
    /// of owned packets to `owned` (for the port's `send_batch`), runs of frames of
    /// `frames` (the batch given to [`Worker::process_frames`]; empty for
    /// [`Worker::process_batch`]) sent unchanged to `lent` (for the port's `send_frames`),
    /// at most [`BATCH`] at a time.
    pub fn send<'f>(
        &mut self,
        frames: &[Frame<'f>],
        mut owned: impl FnMut(u32, &mut [Packet]),
        mut lent: impl FnMut(u32, &[Frame<'f>]),
    ) {
        let mut run = [Frame::default(); BATCH];
        for po in &mut self.ports {
            let mut done = 0;
            let mut i = 0;
            while i < po.lent.len() {
                let before = po.lent[i].before as usize;
                if before > done {
                    owned(po.port, &mut po.pkts[done..before]);
                    done = before;
                }
                let mut k = 0;
                while let Some(l) = po.lent.get(i)
                    && l.before as usize == before
                    && k < BATCH
                {
                    // Only the frame it was made from (a batch other than the one
                    // processed sends nothing).
                    if let Some(f) = frames.get(l.index as usize)
                        && f.data.as_ptr() as usize == l.addr
                    {
                        run[k] = Frame {
                            tunnel_id: l.tunnel_id,
                            ..*f
                        };
                        k += 1;
                    }
                    i += 1;
                }
                if k > 0 {
                    lent(po.port, &run[..k]);
                }
            }
            if po.n > done {
                owned(po.port, &mut po.pkts[done..po.n]);
            }
        }
    }

    /// Number of packets to send, all ports together.
    pub fn len(&self) -> usize {
        self.ports.iter().map(|po| po.n + po.lent.len()).sum()
    }

    /// True if nothing is to be sent and no packet-in was made.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.packet_ins.is_empty()
    }
}

/// The sink of one packet: outputs take the input packet's offload metadata along.
struct BatchSink<'a> {
    out: &'a mut Output,
    in_port: u32,
    /// The received packet's offload metadata and tunnel key, carried to every output.
    vnet: VnetHdr,
    tunnel_id: u64,
    /// Length of the frame as received (header pushes and pops move offload offsets).
    in_len: usize,
    /// For a borrowed frame: its index in the batch and its address. An output of exactly
    /// those bytes (same address, same length: the frame unchanged, since nothing can
    /// write a borrowed frame) is sent from where it lies instead of copied.
    lent: Option<(u32, usize)>,
}

impl BatchSink<'_> {
    /// A fresh output slot on `port` with the metadata of an output of `len` bytes.
    fn slot(&mut self, port: u32, tunnel_id: u64, len: usize) -> &mut Packet {
        let (vnet, in_len) = (self.vnet, self.in_len);
        let p = self.out.slot(port);
        p.vnet = vnet;
        p.tunnel_id = tunnel_id;
        // A pushed (popped) VLAN or MPLS header moves the L4 offsets by what it added.
        let delta = len as isize - in_len as isize;
        if delta != 0 {
            p.vnet.shift(delta as i16 as u16);
        }
        p
    }
}

impl Sink for BatchSink<'_> {
    /// The packet's last output takes its buffer (a GSO super-frame is 64 KiB: not copied
    /// here; the slot's spare buffer goes back to the receive batch instead).
    fn output_last(
        &mut self,
        port: u32,
        _queue: Option<u32>,
        tunnel_id: u64,
        packet: &mut Vec<u8>,
    ) {
        let p = self.slot(port, tunnel_id, packet.len());
        std::mem::swap(&mut p.data, packet);
    }

    fn output(&mut self, port: u32, _queue: Option<u32>, tunnel_id: u64, packet: &[u8]) {
        if let Some((index, addr)) = self.lent
            && packet.as_ptr() as usize == addr
            && packet.len() == self.in_len
        {
            self.out.lend(port, index, addr, tunnel_id);
            return;
        }
        let p = self.slot(port, tunnel_id, packet.len());
        p.data.extend_from_slice(packet);
    }

    fn packet_in(
        &mut self,
        reason: PacketInReason,
        max_len: u16,
        table_id: u8,
        cookie: u64,
        packet: &[u8],
    ) {
        self.out.packet_ins.push(PacketInEvent {
            reason,
            max_len,
            table_id,
            cookie,
            in_port: self.in_port,
            tunnel_id: self.tunnel_id,
            data: packet.to_vec(),
        });
    }
}

/// The sinks of a batch: each packet's outputs carry its offload metadata.
struct OutputSinks<'a> {
    out: &'a mut Output,
    /// Index in the batch of the next packet (the sink of every packet is asked for
    /// once, in order).
    next: u32,
}

impl Sinks for OutputSinks<'_> {
    type Sink<'a>
        = BatchSink<'a>
    where
        Self: 'a;
    fn sink<'a, P: RxPacket>(&'a mut self, pkt: &P, in_port: u32) -> BatchSink<'a> {
        let index = self.next;
        self.next += 1;
        BatchSink {
            lent: P::BORROWED.then(|| (index, pkt.frame().as_ptr() as usize)),
            out: self.out,
            in_port,
            vnet: *pkt.vnet(),
            tunnel_id: pkt.tunnel_id(),
            in_len: pkt.frame().len(),
        }
    }
}

/// One datapath thread's engine side: its caches and its handle on the snapshot.
#[derive(Debug)]
pub struct Worker {
    reader: Reader,
    dp: Datapath,
}

impl Worker {
    /// A worker reading what `reader` publishes.
    pub fn new(reader: Reader) -> Worker {
        Worker {
            reader,
            dp: Datapath::new(),
        }
    }

    /// Cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.dp.stats
    }

    /// Runs every packet of `batch` (received on `in_port`) through the pipeline published
    /// when the batch started, appending what it sends to `out`. Returns the number of
    /// packets processed. The batch's packets are used up: a packet's last output takes
    /// its buffer rather than a copy (refill the batch before reading it again).
    pub fn process_batch(
        &mut self,
        in_port: u32,
        batch: &mut PacketBatch,
        now: Nanos,
        out: &mut Output,
    ) -> usize {
        let p = self.reader.load();
        let n = batch.len();
        self.dp.process_batch(
            &p,
            in_port,
            batch.as_mut_slice(),
            now,
            &mut OutputSinks { out, next: 0 },
        );
        n
    }

    /// As [`Worker::process_batch`] for frames borrowed from their port
    /// ([`crate::port::Port::recv_borrowed`]): an output of a frame its actions leave
    /// unchanged is sent from where it lies (a lent output: [`Output::send`] with the same
    /// `frames`); a frame they rewrite is copied first, the copy rewritten and output.
    pub fn process_frames(
        &mut self,
        in_port: u32,
        frames: &[Frame<'_>],
        now: Nanos,
        out: &mut Output,
    ) -> usize {
        let p = self.reader.load();
        let mut pkts = [Frame::default(); BATCH];
        for (c, chunk) in frames.chunks(BATCH).enumerate() {
            pkts[..chunk.len()].copy_from_slice(chunk);
            let mut sinks = OutputSinks {
                out: &mut *out,
                next: (c * BATCH) as u32,
            };
            self.dp
                .process_batch(&p, in_port, &mut pkts[..chunk.len()], now, &mut sinks);
        }
        frames.len()
    }

    /// Puts a kernel flow table in front of this worker's caches ([`crate::cache::kernel`]).
    pub fn set_kernel(&mut self, k: Box<dyn crate::cache::kernel::KernelFlows>) {
        self.dp.set_kernel(k);
    }

    /// The packets this worker processed so far have been sent (call after every batch's
    /// sends): the kernel flow table may take what was offered for them.
    pub fn commit_kernel(&mut self) {
        self.dp.commit_kernel();
    }

    /// Credits what the kernel forwarded to this worker's megaflows, as used at `now` (call
    /// before [`Worker::sync_stats`]).
    pub fn harvest_kernel(&mut self, now: Nanos) {
        self.dp.harvest_kernel(now);
    }

    /// When [`Worker::harvest_kernel`] next has work to do: 0 while a round is under way,
    /// the time the next round is due while the kernel holds entries, None without.
    pub fn kernel_next_harvest(&self) -> Option<Nanos> {
        self.dp.kernel_next_harvest()
    }

    /// Adds the counts this worker accumulated to the OpenFlow counters (call at least once
    /// a second, so idle timeouts and stats see traffic).
    pub fn sync_stats(&mut self) {
        let p = self.reader.load();
        self.dp.sync_stats(&p);
    }
}

/// Port numbers a set of port names maps to, kept next to the engine by daemons.
pub type PortMap = BTreeMap<String, u32>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{FlowStatsRequest, GroupModCommand, GroupType};
    use fuxi_openflow::{Action, Instruction, Match, Oxm};
    use std::sync::atomic::AtomicBool;

    fn frame(dst_last: u8) -> Vec<u8> {
        let mut f = vec![0, 0, 0, 0, 0, dst_last, 2, 0, 0, 0, 0, 1, 0x88, 0xb5];
        f.resize(60, 0);
        f
    }

    fn fwd(in_port: u32, out_port: u32) -> FlowMod {
        FlowMod::add(
            0,
            100,
            Match::all().with(Oxm::in_port(in_port)),
            vec![Instruction::ApplyActions(vec![Action::output(out_port)])],
        )
    }

    fn batch_of(frames: &[Vec<u8>]) -> PacketBatch {
        let mut b = PacketBatch::new();
        for f in frames {
            b.push_copy(&Packet::from_frame(f));
        }
        b
    }

    #[test]
    fn the_last_output_takes_the_buffer_and_earlier_ones_copy() {
        let mut e = Engine::default();
        let two = FlowMod::add(
            0,
            100,
            Match::all().with(Oxm::in_port(1)),
            vec![Instruction::ApplyActions(vec![
                Action::output(3),
                Action::output(2),
            ])],
        );
        e.flow_mod(&two, 0).unwrap();
        e.flow_mod(&fwd(4, 2), 0).unwrap();
        e.publish();
        let mut w = Worker::new(e.reader());
        let mut big = frame(1);
        big.resize(9000, 0x5a);
        for (in_port, ports) in [(4, vec![2]), (1, vec![3, 2])] {
            let mut b = batch_of(&[big.clone()]);
            let buf = b.as_slice()[0].data.as_ptr();
            let mut out = Output::new();
            w.process_batch(in_port, &mut b, 0, &mut out);
            let sent: Vec<(u32, bool)> = out
                .per_port()
                .map(|(p, v)| {
                    assert_eq!(v.len(), 1);
                    assert_eq!(v[0].data, big, "port {p}");
                    (p, v[0].data.as_ptr() == buf)
                })
                .collect();
            // Only the last output (port 2) holds the received buffer itself.
            let want: Vec<(u32, bool)> = ports.iter().map(|&p| (p, p == 2)).collect();
            assert_eq!(sent, want);
        }
    }

    /// Borrowed frames: an output of a frame left unchanged is lent (sent from where it
    /// lies, every output of it), a rewritten one is a copy of the output's own, and each
    /// port gets its outputs in order, lent and owned runs interleaved as output.
    #[test]
    fn unchanged_borrowed_frames_are_lent_and_rewritten_ones_copied_in_order() {
        let mut e = Engine::default();
        let to =
            |dst: u8, actions: Vec<Action>| {
                FlowMod::add(
                    0,
                    200,
                    Match::all().with(Oxm::in_port(1)).with(Oxm::eth_dst(
                        fuxi_openflow::oxm::MacAddr([0, 0, 0, 0, 0, dst]),
                    )),
                    vec![Instruction::ApplyActions(actions)],
                )
            };
        e.flow_mod(&to(2, vec![Action::output(2)]), 0).unwrap();
        let rewrite = Action::set_field(Oxm::eth_dst(fuxi_openflow::oxm::MacAddr([
            0, 0, 0, 0, 0, 9,
        ])));
        e.flow_mod(&to(3, vec![rewrite, Action::output(2)]), 0)
            .unwrap();
        e.flow_mod(&to(4, vec![Action::output(2), Action::output(3)]), 0)
            .unwrap();
        e.publish();
        let mut w = Worker::new(e.reader());
        // A B C D: A and C to port 2 unchanged, B rewritten to port 2, D to 2 and 3.
        let mut bytes: Vec<Vec<u8>> = [2u8, 3, 2, 4].iter().map(|&d| frame(d)).collect();
        bytes[2][20] = 0xcc; // C differs from A
        let vnet = VnetHdr {
            flags: 1,
            csum_start: 14,
            csum_offset: 6,
            ..VnetHdr::default()
        };
        let frames: Vec<Frame<'_>> = bytes
            .iter()
            .map(|b| Frame {
                data: b,
                vnet,
                tunnel_id: 0,
            })
            .collect();
        for round in 0..2 {
            let mut out = Output::new();
            assert_eq!(w.process_frames(1, &frames, 0, &mut out), 4);
            assert_eq!(out.len(), 5, "round {round}");
            // (port, lent, frames as sent, whether each lies in an input frame)
            type Sent = (u32, bool, Vec<Vec<u8>>, Vec<bool>);
            let mut sends: Vec<Sent> = Vec::new();
            let inputs: Vec<*const u8> = bytes.iter().map(|b| b.as_ptr()).collect();
            let mut lent_vnets = Vec::new();
            let sends_cell = std::cell::RefCell::new(&mut sends);
            out.send(
                &frames,
                |port, pkts| {
                    sends_cell.borrow_mut().push((
                        port,
                        false,
                        pkts.iter().map(|p| p.data.clone()).collect(),
                        pkts.iter()
                            .map(|p| inputs.contains(&p.data.as_ptr()))
                            .collect(),
                    ))
                },
                |port, fr| {
                    lent_vnets.extend(fr.iter().map(|f| f.vnet));
                    sends_cell.borrow_mut().push((
                        port,
                        true,
                        fr.iter().map(|f| f.data.to_vec()).collect(),
                        fr.iter()
                            .map(|f| inputs.contains(&f.data.as_ptr()))
                            .collect(),
                    ))
                },
            );
            let mut b2 = bytes[1].clone();
            b2[5] = 9;
            let (a, c, d) = (bytes[0].clone(), bytes[2].clone(), bytes[3].clone());
            assert_eq!(
                sends,
                vec![
                    (2, true, vec![a], vec![true]),
                    (2, false, vec![b2], vec![false]),
                    (2, true, vec![c, d.clone()], vec![true, true]),
                    (3, true, vec![d], vec![true]),
                ],
                "round {round}"
            );
            assert!(lent_vnets.iter().all(|v| *v == vnet));
            // Owned packets alone, as before: only B.
            assert_eq!(out.per_port().map(|(_, v)| v.len()).sum::<usize>(), 1);
            // Handed another batch (not the one processed), lent outputs send nothing.
            let copies = bytes.clone();
            let other: Vec<Frame<'_>> = frames
                .iter()
                .zip(&copies)
                .map(|(f, b)| Frame { data: b, ..*f })
                .collect();
            let mut lent_sent = 0;
            out.send(&other, |_, _| {}, |_, fr| lent_sent += fr.len());
            assert_eq!(lent_sent, 0);
            out.clear();
            assert!(out.is_empty());
        }
    }

    #[test]
    fn nothing_is_visible_before_publish_and_everything_after() {
        let mut e = Engine::default();
        let mut w = Worker::new(e.reader());
        let mut out = Output::new();
        e.flow_mod(&fwd(1, 2), 0).unwrap();
        w.process_batch(1, &mut batch_of(&[frame(1)]), 0, &mut out);
        assert_eq!(out.len(), 0, "an unpublished flow forwarded a packet");
        e.publish();
        out.clear();
        w.process_batch(1, &mut batch_of(&[frame(1), frame(2)]), 1, &mut out);
        let sent: Vec<(u32, usize)> = out.per_port().map(|(p, v)| (p, v.len())).collect();
        assert_eq!(sent, vec![(2, 2)]);
    }

    #[test]
    fn flow_counters_survive_republication() {
        let mut e = Engine::default();
        e.flow_mod(&fwd(1, 2), 0).unwrap();
        e.publish();
        let mut w = Worker::new(e.reader());
        let mut out = Output::new();
        w.process_batch(
            1,
            &mut batch_of(&[frame(1), frame(1), frame(1)]),
            1,
            &mut out,
        );
        w.sync_stats();
        // An unrelated change republishes the pipeline.
        e.flow_mod(&fwd(3, 4), 2).unwrap();
        e.publish();
        w.process_batch(1, &mut batch_of(&[frame(1)]), 3, &mut out);
        w.sync_stats();
        let stats = e
            .published()
            .flow_stats(&FlowStatsRequest::all(), 4)
            .unwrap();
        let f = stats
            .iter()
            .find(|s| s.priority == 100 && s.packet_count > 0);
        assert_eq!(f.map(|f| (f.packet_count, f.byte_count)), Some((4, 240)));
        // The control side's copy shares the counters.
        let m = e
            .pipeline()
            .flow_stats(&FlowStatsRequest::all(), 4)
            .unwrap();
        assert_eq!(m.iter().map(|s| s.packet_count).sum::<u64>(), 4);
    }

    #[test]
    fn table_counters_survive_republication_including_late_credits() {
        let mut e = Engine::default();
        e.flow_mod(&fwd(1, 2), 0).unwrap();
        e.publish();
        let mut w = Worker::new(e.reader());
        let mut out = Output::new();
        w.process_batch(1, &mut batch_of(&[frame(1), frame(1)]), 1, &mut out);
        w.sync_stats();
        assert_eq!(e.table_stats()[0], (0, 1, 2, 2));
        // A datapath still holding the old snapshot credits it after the swap.
        let old = e.reader().load_full();
        e.flow_mod(&fwd(3, 4), 2).unwrap();
        e.publish();
        old.tables[0].lookups.fetch_add(5, Ordering::Relaxed);
        old.tables[0].matched.fetch_add(1, Ordering::Relaxed);
        assert_eq!(e.table_stats()[0], (0, 2, 2, 2), "credited before released");
        drop(old);
        assert_eq!(e.table_stats()[0], (0, 2, 7, 3));
        // Misses in the new snapshot keep adding up.
        w.process_batch(9, &mut batch_of(&[frame(1)]), 3, &mut out);
        w.sync_stats();
        assert_eq!(e.table_stats()[0], (0, 2, 8, 3));
    }

    #[test]
    fn group_counters_survive_republication() {
        let mut e = Engine::default();
        let gm = GroupMod {
            command: GroupModCommand::Add,
            group_type: GroupType::All,
            group_id: 7,
            buckets: vec![crate::pipeline::Bucket::new(vec![Action::output(2)])],
        };
        e.group_mod(&gm, 0).unwrap();
        let fm = FlowMod::add(
            0,
            1,
            Match::all(),
            vec![Instruction::ApplyActions(vec![Action::Group(7)])],
        );
        e.flow_mod(&fm, 0).unwrap();
        e.publish();
        let mut w = Worker::new(e.reader());
        let mut out = Output::new();
        w.process_batch(1, &mut batch_of(&[frame(1), frame(2)]), 1, &mut out);
        w.sync_stats();
        e.flow_mod(&fwd(3, 4), 2).unwrap();
        e.publish();
        let p = e.published();
        let g = &p.groups[&7].stats;
        assert_eq!(g.packets.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn meter_state_survives_republication() {
        use crate::pipeline::{Band, MeterConfig, MeterModCommand};
        let mut e = Engine::default();
        let mm = |id| MeterMod {
            command: MeterModCommand::Add,
            meter_id: id,
            config: MeterConfig {
                flags: 0b1010, // PKTPS | STATS
                bands: vec![Band::Drop {
                    rate: 1000,
                    burst: 0,
                }],
            },
        };
        e.meter_mod(&mm(1), 0).unwrap();
        let fm = FlowMod::add(
            0,
            1,
            Match::all(),
            vec![
                Instruction::Meter(1),
                Instruction::ApplyActions(vec![Action::output(2)]),
            ],
        );
        e.flow_mod(&fm, 0).unwrap();
        e.publish();
        let mut w = Worker::new(e.reader());
        let mut out = Output::new();
        w.process_batch(
            1,
            &mut batch_of(&[frame(1), frame(1), frame(1)]),
            1,
            &mut out,
        );
        let seen = |e: &Engine, id| e.published().meters.get(id).map(|m| m.packets_in);
        assert_eq!(seen(&e, 1), Some(3));
        // A flow change and another meter's add both republish; meter 1 keeps its count.
        e.flow_mod(&fwd(3, 4), 2).unwrap();
        e.publish();
        assert_eq!(seen(&e, 1), Some(3));
        e.meter_mod(&mm(2), 3).unwrap();
        e.publish();
        assert_eq!(seen(&e, 1), Some(3));
        assert_eq!(seen(&e, 2), Some(0));
    }

    #[test]
    fn a_failed_transaction_changes_and_publishes_nothing() {
        let mut e = Engine::default();
        let before = e.published().generation();
        let r: Result<(), ErrorCode> = e.transaction(|p| {
            p.flow_mod(&fwd(1, 2), 0)?;
            let mut bad = fwd(1, 3);
            bad.table_id = 255; // OFPTT_ALL in an add: refused
            p.flow_mod(&bad, 0)?;
            Ok(())
        });
        assert_eq!(r, Err(ErrorCode::FLOW_MOD_BAD_TABLE_ID));
        assert_eq!(e.published().generation(), before);
        assert_eq!(e.pipeline().flow_count(0), 0);
        assert_eq!(e.publications(), 0);
    }

    /// A reader running beside the control side never sees half of a transaction: the two
    /// flows of each transaction are both there or both absent, in every snapshot it loads.
    #[test]
    fn datapaths_see_transactions_atomically() {
        let mut e = Engine::default();
        let reader = e.reader();
        let stop = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicBool::new(false));
        let (stop2, started2) = (stop.clone(), started.clone());
        let t = std::thread::spawn(move || {
            let mut loads = 0u64;
            let mut seen_full = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let p = reader.load();
                let (a, b) = (p.flow_count(0), p.flow_count(1));
                assert_eq!(a, b, "half a transaction visible: {a} vs {b}");
                loads += 1;
                started2.store(true, Ordering::Relaxed);
                if a > 0 {
                    seen_full += 1;
                }
            }
            (loads, seen_full)
        });
        // The reader is loading before the first transaction (on a busy machine the 300
        // could otherwise all be over before it runs once).
        while !started.load(Ordering::Relaxed) {
            std::thread::yield_now();
        }
        for i in 0..300u32 {
            e.transaction(|p| -> Result<(), ErrorCode> {
                let m = Match::all().with(Oxm::in_port(i + 1));
                let acts = vec![Instruction::ApplyActions(vec![Action::output(1)])];
                p.flow_mod(&FlowMod::add(0, 1, m.clone(), acts.clone()), 0)?;
                p.flow_mod(&FlowMod::add(1, 1, m, acts), 0)?;
                Ok(())
            })
            .unwrap();
            if i % 3 == 0 {
                e.transaction(|p| -> Result<(), ErrorCode> {
                    p.flow_mod(&FlowMod::delete(255, Match::all()), 0)?;
                    Ok(())
                })
                .unwrap();
            }
        }
        // Once publish returns, every load sees the last snapshot.
        assert_eq!(e.reader().load().flow_count(0), e.pipeline().flow_count(0));
        stop.store(true, Ordering::Relaxed);
        let (loads, _) = t.join().unwrap();
        assert!(loads > 0);
    }

    #[test]
    fn offload_offsets_follow_a_pushed_vlan_tag() {
        let mut e = Engine::default();
        let fm = FlowMod::add(
            0,
            1,
            Match::all(),
            vec![Instruction::ApplyActions(vec![
                Action::output(3),
                Action::PushVlan(0x8100),
                Action::output(2),
                Action::PopVlan,
                Action::output(4),
            ])],
        );
        e.flow_mod(&fm, 0).unwrap();
        e.publish();
        let pkt = partial_udp_packet();
        let mut b = PacketBatch::new();
        b.push_copy(&pkt);
        let mut w = Worker::new(e.reader());
        let mut out = Output::new();
        w.process_batch(1, &mut b, 1, &mut out);
        let starts: Vec<(u32, u16)> = out
            .per_port()
            .map(|(p, v)| (p, v[0].vnet.csum_start))
            .collect();
        assert_eq!(starts, vec![(3, 34), (2, 38), (4, 34)]);
    }

    /// Ethernet + IPv4 10.0.0.1 → 10.0.0.2 + UDP 7 → 9 with the checksum left to the NIC
    /// (NEEDS_CSUM, the L4 field still zero).
    fn partial_udp_packet() -> Packet {
        use crate::port::offload::F_NEEDS_CSUM;
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend([
            0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend([0, 7, 0, 9, 0, 10, 0, 0, 0xab, 0xcd]);
        let mut pkt = Packet::from_frame(&f);
        pkt.vnet.flags = F_NEEDS_CSUM;
        pkt.vnet.csum_start = 34;
        pkt.vnet.csum_offset = 6;
        pkt
    }

    /// A CHECKSUM_PARTIAL packet whose addresses and ports are rewritten leaves with the
    /// rewritten packet's pseudo-header sum, which the NIC completes to a valid checksum.
    #[test]
    fn partial_checksums_survive_rewrites() {
        use crate::port::offload::{complete_checksum, refresh_partial_checksum};
        use fuxi_openflow::FieldId;
        let mut e = Engine::default();
        let fm = FlowMod::add(
            0,
            1,
            Match::all()
                .with(Oxm::eth_type(0x0800))
                .with(Oxm::ip_proto(17)),
            vec![Instruction::ApplyActions(vec![
                Action::set_field(Oxm::ipv4_src(std::net::Ipv4Addr::new(192, 0, 2, 7))),
                Action::set_field(Oxm::exact(FieldId::UdpSrc, 4321)),
                Action::output(2),
            ])],
        );
        e.flow_mod(&fm, 0).unwrap();
        e.publish();
        let mut pkt = partial_udp_packet();
        refresh_partial_checksum(&mut pkt.data, &pkt.vnet).unwrap();
        let mut b = PacketBatch::new();
        b.push_copy(&pkt);
        let mut w = Worker::new(e.reader());
        let mut out = Output::new();
        w.process_batch(1, &mut b, 1, &mut out);
        let (_, sent) = out.per_port().next().unwrap();
        let mut o = sent[0].clone();
        assert_eq!(o.data[26..30], [192, 0, 2, 7]);
        assert_eq!(o.data[34..36], 4321u16.to_be_bytes());
        let mut fresh = o.data.clone();
        refresh_partial_checksum(&mut fresh, &o.vnet).unwrap();
        assert_eq!(o.data[40..42], fresh[40..42], "pseudo-header sum");
        complete_checksum(&mut o.data, &mut o.vnet).unwrap();
        // Pseudo-header + UDP header and payload sum to 0xffff.
        let mut s: u32 = 17 + 10;
        for c in o.data[26..34].chunks(2).chain(o.data[34..44].chunks(2)) {
            s += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        assert_eq!(s, 0xffff, "completed checksum");
    }

    #[test]
    fn packet_ins_carry_port_and_reason() {
        let mut e = Engine::default();
        let fm = FlowMod::add(
            0,
            0,
            Match::all(),
            vec![Instruction::ApplyActions(vec![Action::Output {
                port: fuxi_openflow::consts::OFPP_CONTROLLER,
                max_len: 128,
            }])],
        );
        e.flow_mod(&fm, 0).unwrap();
        e.publish();
        let mut w = Worker::new(e.reader());
        let mut out = Output::new();
        w.process_batch(5, &mut batch_of(&[frame(1)]), 1, &mut out);
        assert_eq!(out.packet_ins.len(), 1);
        let pi = &out.packet_ins[0];
        assert_eq!((pi.in_port, pi.max_len, pi.table_id), (5, 128, 0));
        assert_eq!(pi.data, frame(1));
        assert_eq!(out.len(), 0);
    }
}
