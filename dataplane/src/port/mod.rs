//! Ports: where packets enter and leave the datapath (this module does I/O).
//!
//! Everything a datapath thread talks to is a [`Port`]: a batched, non-blocking,
//! pollable packet endpoint. Implementations:
//!
//! - [`MemPort`]: in-memory queues, for tests and benches (no I/O).
//! - [`afpacket::AfPacketPort`]: a Linux interface through AF_PACKET, TPACKET_V3 mmap rx
//!   ring, `sendmmsg` tx, `PACKET_VNET_HDR` so GSO super-frames and checksum offload pass
//!   through unchanged.
//! - `afxdp::AfXdpPort` (cargo feature `afxdp`): a Linux interface through an AF_XDP
//!   socket (xsk-rs), native or generic XDP mode, copy or zero-copy.
//! - [`tap::TapPort`]: a TAP device (the LOCAL/internal port).
//! - [`vxlan::VxlanPort`]: userspace VXLAN over a UDP socket, one port per remote.
//!
//! Also here: [`bpf`] (the kernel flow table's maps and its tc and socket-filter programs,
//! through raw `bpf(2)`), [`offload`] (the virtio-net header, software checksum completion and TCP
//! segmentation for packets that leave where offload cannot follow), [`netlink`] (link
//! up/down events: a pure parser plus a thin socket), [`netns`] (enter a network
//! namespace on the current thread) and [`fwd`] (a two-port run-to-completion forwarder
//! used by tests and benches).
//!
//! What does not live here: parsing keys, the pipeline, the caches (see [`crate::packet`],
//! [`crate::pipeline`], [`crate::cache`]).
//!
//! # Using a port (run to completion)
//!
//! ```
//! use fuxi_dataplane::port::{MemPort, PacketBatch, Port};
//!
//! let (mut a, mut b) = MemPort::pair("a", "b");
//! let mut batch = PacketBatch::new();
//! a.inject(&[0u8; 60]); // something arrives on port a
//! let n = a.recv_batch(&mut batch).unwrap(); // up to 32 at a time
//! assert_eq!(n, 1);
//! // ... classify, rewrite in place ...
//! let sent = b.send_batch(batch.as_mut_slice()).unwrap();
//! assert_eq!(sent, 1);
//! batch.clear(); // buffers are kept for the next round: no allocation in steady state
//! ```

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

pub mod afpacket;
#[cfg(feature = "afxdp")]
pub mod afxdp;
pub mod bpf;
pub mod fwd;
pub mod netlink;
pub mod netns;
pub mod offload;
pub mod tap;
pub mod vxlan;

pub use offload::VnetHdr;

/// The most packets one `recv_batch` returns.
pub const BATCH: usize = 32;

/// One packet: the Ethernet frame (no FCS) plus offload and tunnel metadata.
///
/// `data` is a reusable buffer; a port overwrites it on receive (keeping its capacity),
/// so a [`PacketBatch`] allocates only while it warms up. A frame may be a GSO
/// super-frame (up to 64 KiB) when `vnet.gso_type != GSO_NONE`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packet {
    /// The Ethernet frame, starting at the destination MAC. VLAN tags the kernel took
    /// off on receive are put back, so the frame is what was on the wire.
    pub data: Vec<u8>,
    /// Offload metadata (virtio-net header): checksum still to do, GSO segmentation still
    /// to do. All zero for an ordinary, complete frame.
    pub vnet: VnetHdr,
    /// Tunnel id (VXLAN VNI) a tunnel port decapsulated the packet from, or the one to
    /// encapsulate it with on a tunnel port's tx; 0 otherwise.
    pub tunnel_id: u64,
}

impl Packet {
    /// A packet holding a copy of `frame`, no offload, no tunnel.
    pub fn from_frame(frame: &[u8]) -> Packet {
        Packet {
            data: frame.to_vec(),
            ..Packet::default()
        }
    }

    /// Empty the packet, keeping its buffer.
    pub fn reset(&mut self) {
        self.data.clear();
        self.vnet = VnetHdr::default();
        self.tunnel_id = 0;
    }

    /// True if the packet still needs offload work (checksum or segmentation) done by
    /// whoever transmits it.
    pub fn needs_offload(&self) -> bool {
        self.vnet.needs_csum() || self.vnet.is_gso()
    }
}

/// A received frame the datapath borrows where it lies, in memory its port owns (an
/// AF_XDP UMEM chunk, a TPACKET ring block, [`MemPort`]'s replay area): zero-copy receive.
///
/// The bytes are a shared borrow, so nothing can rewrite them in place: when a packet's
/// actions rewrite it, the datapath first copies it into a buffer of its own (copy on
/// write, [`RxPacket::writable`]); a packet that is only forwarded is never copied by the
/// datapath (its sink copies what it keeps). The port's memory is what the port received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The Ethernet frame, starting at the destination MAC.
    pub data: &'a [u8],
    /// Offload metadata, as [`Packet::vnet`].
    pub vnet: VnetHdr,
    /// Tunnel id, as [`Packet::tunnel_id`].
    pub tunnel_id: u64,
}

/// What the datapath needs of a received packet, whether it owns its buffer ([`Packet`])
/// or borrows it from the port ([`Frame`]).
pub trait RxPacket {
    /// The frame's bytes as received.
    fn frame(&self) -> &[u8];
    /// Offload metadata.
    fn vnet(&self) -> &VnetHdr;
    /// Tunnel id it was received with (0: none).
    fn tunnel_id(&self) -> u64;
    /// A buffer holding the frame that actions may rewrite and a sink may take over: the
    /// packet's own buffer, or, for a borrowed frame, a copy of it put in `scratch`. Called
    /// at most once per packet.
    fn writable<'s>(&'s mut self, scratch: &'s mut Vec<u8>) -> &'s mut Vec<u8>;
    /// True if [`RxPacket::writable`] has to copy (so that a packet that is only
    /// forwarded had better not ask for it).
    const BORROWED: bool;

    /// The pipeline's receive metadata for this packet arriving on OpenFlow port
    /// `in_port` (the tunnel id a tunnel port decapsulated it with included).
    #[inline(always)]
    fn rx_meta(&self, in_port: u32) -> crate::packet::RxMeta {
        crate::packet::RxMeta {
            tunnel_id: self.tunnel_id(),
            ..crate::packet::RxMeta::port(in_port)
        }
    }
}

impl RxPacket for Packet {
    #[inline(always)]
    fn frame(&self) -> &[u8] {
        &self.data
    }
    #[inline(always)]
    fn vnet(&self) -> &VnetHdr {
        &self.vnet
    }
    #[inline(always)]
    fn tunnel_id(&self) -> u64 {
        self.tunnel_id
    }
    #[inline(always)]
    fn writable<'s>(&'s mut self, _: &'s mut Vec<u8>) -> &'s mut Vec<u8> {
        &mut self.data
    }
    const BORROWED: bool = false;
}

impl RxPacket for Frame<'_> {
    #[inline(always)]
    fn frame(&self) -> &[u8] {
        self.data
    }
    #[inline(always)]
    fn vnet(&self) -> &VnetHdr {
        &self.vnet
    }
    #[inline(always)]
    fn tunnel_id(&self) -> u64 {
        self.tunnel_id
    }
    #[inline]
    fn writable<'s>(&'s mut self, scratch: &'s mut Vec<u8>) -> &'s mut Vec<u8> {
        scratch.clear();
        scratch.extend_from_slice(self.data);
        scratch
    }
    const BORROWED: bool = true;
}

/// Memory a port lends out with [`BorrowedBatch`]: hands slots back to the port (or the
/// kernel) once the frames in them are no longer needed.
pub trait SlotOwner: Send + Sync + std::fmt::Debug {
    /// Give these slots back, in this order.
    fn release(&self, slots: &[u32]);
}

/// Frames received without a copy (zero-copy receive), borrowed where a port's receive
/// ring holds them ([`Port::recv_borrowed`]).
///
/// The ring memory stays alive as long as the batch holds frames in it (the batch keeps its
/// owner in an `Arc`, so the port's lock need not be held), and the slots stay the
/// receiver's until [`BorrowedBatch::release`] (or the next receive into the batch, or
/// dropping it) hands them back, in the order received. So an egress port may send
/// straight from them ([`Port::send_frames`]) while the ingress port is unlocked.
#[derive(Debug, Default)]
pub struct BorrowedBatch {
    owner: Option<std::sync::Arc<dyn SlotOwner>>,
    /// The frames; the `'static` is a lie kept inside: they live as long as `owner` holds
    /// the memory and their slots are not released, and are only handed out borrowed
    /// from `&self` (see [`BorrowedBatch::frames`]).
    frames: Vec<Frame<'static>>,
    slots: Vec<u32>,
}

impl BorrowedBatch {
    /// An empty batch.
    pub fn new() -> BorrowedBatch {
        BorrowedBatch {
            owner: None,
            frames: Vec::with_capacity(BATCH),
            slots: Vec::with_capacity(BATCH),
        }
    }

    /// The frames, in the order received.
    pub fn frames(&self) -> &[Frame<'_>] {
        &self.frames
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Room left before the batch holds [`BATCH`] frames.
    pub fn room(&self) -> usize {
        BATCH.saturating_sub(self.frames.len())
    }

    /// Hand every slot back to its owner (in order) and forget the frames (and the
    /// owner: its memory may go once nothing else holds it).
    pub fn release(&mut self) {
        self.frames.clear();
        if let Some(o) = self.owner.take()
            && !self.slots.is_empty()
        {
            o.release(&self.slots);
        }
        self.slots.clear();
    }

    /// Start filling the batch from `owner`'s memory: releases what it held.
    pub(crate) fn begin(&mut self, owner: &std::sync::Arc<dyn SlotOwner>) {
        self.release();
        self.owner = Some(owner.clone());
    }

    /// Append a frame lying in slot `slot` of the owner given to [`BorrowedBatch::begin`].
    /// The caller (a port) guarantees that `frame.data` stays valid and unchanged until
    /// the slot is released, and that the owner's `Arc` keeps that memory mapped.
    pub(crate) fn push(&mut self, frame: Frame<'static>, slot: u32) {
        self.frames.push(frame);
        self.slots.push(slot);
    }
}

impl Drop for BorrowedBatch {
    fn drop(&mut self) {
        self.release();
    }
}

/// A batch of up to [`BATCH`] packets whose buffers are reused round after round.
///
/// `recv_batch` appends to it; the engine processes `as_mut_slice()` in place and calls
/// `clear()` (which keeps every buffer) before the next receive.
#[derive(Debug, Default)]
pub struct PacketBatch {
    pkts: Vec<Packet>,
    len: usize,
}

impl PacketBatch {
    /// An empty batch (buffers are allocated as packets arrive and then kept).
    pub fn new() -> PacketBatch {
        PacketBatch::default()
    }

    /// Packets in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no packets.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left before the batch holds [`BATCH`] packets.
    pub fn room(&self) -> usize {
        BATCH - self.len
    }

    /// Forget the packets, keep the buffers.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Append a packet slot (reset, buffer kept) and return it, or `None` if full.
    /// A receiver that then finds nothing to put there calls [`PacketBatch::unpush`].
    pub fn push(&mut self) -> Option<&mut Packet> {
        if self.len >= BATCH {
            return None;
        }
        if self.len == self.pkts.len() {
            self.pkts.push(Packet::default());
        }
        let p = &mut self.pkts[self.len];
        p.reset();
        self.len += 1;
        Some(p)
    }

    /// Drop the last packet pushed (its buffer is kept).
    pub fn unpush(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    /// Append a copy of `pkt`; false if the batch is full.
    #[inline]
    pub fn push_copy(&mut self, pkt: &Packet) -> bool {
        self.push_frame(&pkt.data, pkt.vnet, pkt.tunnel_id)
    }

    /// Append a packet holding a copy of `frame`, with this metadata; false if the batch
    /// is full.
    #[inline]
    pub fn push_frame(&mut self, frame: &[u8], vnet: VnetHdr, tunnel_id: u64) -> bool {
        if self.len >= BATCH {
            return false;
        }
        if self.len == self.pkts.len() {
            self.pkts.push(Packet::default());
        }
        let Some(p) = self.pkts.get_mut(self.len) else {
            return false;
        };
        self.len += 1;
        p.data.clear();
        p.data.extend_from_slice(frame);
        p.vnet = vnet;
        p.tunnel_id = tunnel_id;
        true
    }

    /// The packets.
    pub fn as_slice(&self) -> &[Packet] {
        &self.pkts[..self.len]
    }

    /// The packets, to rewrite in place or hand to `send_batch`.
    pub fn as_mut_slice(&mut self) -> &mut [Packet] {
        &mut self.pkts[..self.len]
    }

    /// Iterate over the packets.
    pub fn iter(&self) -> std::slice::Iter<'_, Packet> {
        self.as_slice().iter()
    }
}

/// Per-port counters (this port's own view; summed by whoever asks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received (a GSO super-frame counts once).
    pub rx_packets: u64,
    /// Bytes received (frame bytes).
    pub rx_bytes: u64,
    /// Packets the kernel or the port dropped on receive (ring full, truncated, bad).
    pub rx_dropped: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets not sent: no room (the socket would block), or offload could not be done.
    pub tx_dropped: u64,
    /// Packets the kernel refused with an error.
    pub tx_errors: u64,
}

/// A batched, non-blocking packet endpoint. See the module docs for the loop shape.
///
/// Contract, for the engine:
/// - `recv_batch` never blocks. It appends at most `out.room()` packets (at most
///   [`BATCH`]) and returns how many; `Ok(0)` means "nothing now": wait for
///   [`Port::as_raw_fd`] to be readable (poll/epoll, level-triggered) or poll again.
/// - `send_batch` never blocks. It returns how many packets were accepted; the others
///   were dropped and counted in `tx_dropped`/`tx_errors` (a datapath does not queue).
///   Packets may be modified in place (software checksum completion when the port cannot
///   carry offload metadata), so pass them as `&mut`.
/// - A packet whose `vnet` asks for offload (GSO, partial checksum) is sent as is by a
///   port where [`Port::offloads`] is true; any other port finishes the work in software
///   (checksum completion; TCP segmentation of GSO frames) before it leaves.
/// - A packet with `NEEDS_CSUM` carries, in its L4 checksum field, the pseudo-header sum,
///   not a checksum. The engine's actions keep it one through rewrites (an address rewrite
///   adjusts the sum, a port rewrite leaves it; `pipeline::exec`); code that rewrites a
///   packet by other means calls [`offload::refresh_partial_checksum`] afterwards (it sums
///   the first IP header, so not for a partial checksum of a tunnel's inner packet).
/// - Errors are for the port itself failing (device gone); a bad packet is counted, not
///   returned as an error.
/// - A port is `Send`: open it where it must be opened (e.g. in a network namespace,
///   see [`netns`]) and move it to its datapath thread.
pub trait Port: Send + std::fmt::Debug {
    /// Interface-style name (the Linux interface name for Linux ports).
    fn name(&self) -> &str;

    /// Linux ifindex, if the port is a Linux interface (in its own network namespace).
    fn ifindex(&self) -> Option<u32> {
        None
    }

    /// Hardware address of the port, if it has one.
    fn mac(&self) -> Option<[u8; 6]> {
        None
    }

    /// True if the link is up (admin up and carrier); ports without a link say true.
    fn link_up(&self) -> bool {
        true
    }

    /// Counters so far.
    fn stats(&self) -> PortStats;

    /// The file descriptor to poll for readability, if any (MemPort has none).
    fn as_raw_fd(&self) -> Option<RawFd> {
        None
    }

    /// True if packets sent on this port may carry offload metadata (GSO, partial
    /// checksum) and packets received may too.
    fn offloads(&self) -> bool {
        false
    }

    /// Receive up to `out.room()` packets, appending them to `out`.
    fn recv_batch(&mut self, out: &mut PacketBatch) -> io::Result<usize>;

    /// Send packets; returns how many were consumed from the front: sent, or counted in
    /// `tx_dropped`/`tx_errors`. A caller offers the rest again (a port that cannot take
    /// more right now returns fewer), so a packet counted as dropped must be consumed, or
    /// the packets after it would go out twice.
    fn send_batch(&mut self, pkts: &mut [Packet]) -> io::Result<usize>;

    /// Zero-copy receive: borrow up to `out.room()` frames where the port's ring holds
    /// them (releasing what `out` held first); `None` if this port cannot (or, for now,
    /// does not: e.g. after falling back to copying receive) lend frames, in which case
    /// [`Port::recv_batch`] is the way to receive.
    fn recv_borrowed(&mut self, out: &mut BorrowedBatch) -> Option<io::Result<usize>> {
        let _ = out;
        None
    }

    /// Send frames that are not the caller's to modify (borrowed from a receive ring);
    /// returns how many were accepted (from the front). By default a copy of each is
    /// sent with [`Port::send_batch`].
    fn send_frames(&mut self, frames: &[Frame<'_>]) -> io::Result<usize> {
        let mut sent = 0;
        let mut batch = PacketBatch::new();
        for chunk in frames.chunks(BATCH) {
            batch.clear();
            for f in chunk {
                batch.push_frame(f.data, f.vnet, f.tunnel_id);
            }
            sent += self.send_batch(batch.as_mut_slice())?;
        }
        Ok(sent)
    }
}

/// An in-memory port: packets sent on it go to its `tx` queue (or to its peer's rx queue
/// when made with [`MemPort::pair`]); packets injected into it are received.
///
/// For tests and benches: it does no I/O and allocates only when queues grow.
#[derive(Debug, Default)]
pub struct MemPort {
    name: String,
    /// Packets waiting to be received.
    pub rx: VecDeque<Packet>,
    /// Packets sent (when not linked to a peer).
    pub tx: VecDeque<Packet>,
    peer: Option<std::sync::Arc<std::sync::Mutex<VecDeque<Packet>>>>,
    own: Option<std::sync::Arc<std::sync::Mutex<VecDeque<Packet>>>>,
    offloads: bool,
    /// Most packets `tx` may hold; the rest of a batch is dropped (0 = unbounded).
    pub tx_limit: usize,
    stats: PortStats,
    /// Bench mode: frames received over and over (see [`MemPort::replay`]).
    replay: Replay,
    /// Bench mode: sent packets are only counted.
    discard: bool,
}

/// [`MemPort::replay`]'s frames: `area` holds them back to back, each at a 64-byte
/// boundary of memory; `frames` says where (16 bytes a frame), and `meta` holds each
/// frame's tunnel id and offload header only if some frame has one (empty otherwise).
/// Both lists go on past the `count` frames with the first [`BATCH`] again (wrapping), so
/// that the [`BATCH`] frames from any `next` are one run.
#[derive(Debug, Default)]
struct Replay {
    area: Vec<u8>,
    frames: Vec<(usize, usize)>,
    meta: Vec<(u64, VnetHdr)>,
    count: usize,
    next: usize,
}

impl Replay {
    fn new(pkts: &[Packet]) -> Replay {
        const LINE: usize = 64;
        let up = |n: usize| n.div_ceil(LINE) * LINE;
        // Reserved whole first: the area never moves, so the alignment computed from its
        // address stays true.
        let total = LINE + pkts.iter().map(|p| up(p.data.len())).sum::<usize>();
        let mut area = Vec::with_capacity(total);
        let pad = (LINE - area.as_ptr() as usize % LINE) % LINE;
        area.resize(pad, 0);
        let mut frames = Vec::with_capacity(pkts.len());
        for p in pkts {
            let start = area.len();
            area.extend_from_slice(&p.data);
            area.resize(start + up(p.data.len()), 0);
            frames.push((start, p.data.len()));
        }
        let plain = pkts
            .iter()
            .all(|p| p.tunnel_id == 0 && p.vnet == VnetHdr::default());
        let mut meta: Vec<_> = if plain {
            Vec::new()
        } else {
            pkts.iter().map(|p| (p.tunnel_id, p.vnet)).collect()
        };
        let count = frames.len();
        if count > 0 {
            for i in 0..BATCH {
                frames.push(frames[i % count]);
                if !meta.is_empty() {
                    meta.push(meta[i % count]);
                }
            }
        }
        Replay {
            area,
            frames,
            meta,
            count,
            next: 0,
        }
    }
}

impl MemPort {
    /// A standalone in-memory port.
    pub fn new(name: &str) -> MemPort {
        MemPort {
            name: name.to_string(),
            ..MemPort::default()
        }
    }

    /// Two ports joined like a veth pair: what one sends, the other receives.
    pub fn pair(a: &str, b: &str) -> (MemPort, MemPort) {
        let qa = std::sync::Arc::new(std::sync::Mutex::new(VecDeque::new()));
        let qb = std::sync::Arc::new(std::sync::Mutex::new(VecDeque::new()));
        let mut pa = MemPort::new(a);
        let mut pb = MemPort::new(b);
        pa.own = Some(qa.clone());
        pa.peer = Some(qb.clone());
        pb.own = Some(qb);
        pb.peer = Some(qa);
        (pa, pb)
    }

    /// Say whether this port carries offload metadata (default false: it completes
    /// checksums and segments GSO frames in software on tx, like a plain NIC).
    pub fn set_offloads(&mut self, on: bool) {
        self.offloads = on;
    }

    /// Queue a frame to be received.
    pub fn inject(&mut self, frame: &[u8]) {
        self.inject_packet(Packet::from_frame(frame));
    }

    /// Queue a packet (with its metadata) to be received.
    pub fn inject_packet(&mut self, pkt: Packet) {
        match &self.own {
            Some(q) => q.lock().unwrap_or_else(|e| e.into_inner()).push_back(pkt),
            None => self.rx.push_back(pkt),
        }
    }

    /// Bench mode: from now on `recv_batch` returns full batches of copies of `pkts`,
    /// cycling through them, forever (copied into the batch's reused buffers: no
    /// allocation once warm). An empty list turns it off.
    ///
    /// The frames are kept as a NIC's receive buffers would be: one contiguous area, each
    /// frame starting on a 64-byte boundary, with a dense array of where each is and its
    /// metadata; a receive copies each frame into the batch's buffer, as the NIC's DMA
    /// would, so the datapath gets a buffer of its own to rewrite and send.
    pub fn replay(&mut self, pkts: Vec<Packet>) {
        self.replay = Replay::new(&pkts);
    }

    /// Zero-copy receive (bench mode): fills `out` with the next [`BATCH`] frames of the
    /// [`MemPort::replay`] list, borrowed where they lie in the replay area (nothing is
    /// copied), and returns [`BATCH`] (0, and `out` untouched, when not replaying). As a zero-copy AF_XDP or
    /// TPACKET ring port hands out frames in its own memory; the borrow ends before the
    /// port is used again, and since it is shared nothing can change what later rounds
    /// receive ([`Frame`]: actions that rewrite a packet work on a copy).
    pub fn recv_frames<'a>(&'a mut self, out: &mut [Frame<'a>; BATCH]) -> usize {
        let r = &mut self.replay;
        let area: &'a [u8] = &r.area;
        let Some(run) = r.frames.get(r.next..r.next + BATCH) else {
            return 0;
        };
        let mut bytes = 0;
        for (f, &(start, len)) in out.iter_mut().zip(run) {
            f.data = area.get(start..start + len).unwrap_or_default();
            (f.tunnel_id, f.vnet) = (0, VnetHdr::default());
            bytes += len as u64;
        }
        if let Some(meta) = r.meta.get(r.next..r.next + BATCH) {
            for (f, &(tunnel_id, vnet)) in out.iter_mut().zip(meta) {
                (f.tunnel_id, f.vnet) = (tunnel_id, vnet);
            }
        }
        r.next = (r.next + BATCH) % r.count.max(1);
        let n = BATCH;
        self.stats.rx_packets += n as u64;
        self.stats.rx_bytes += bytes;
        n
    }

    /// Bench mode: `send_batch` counts packets and drops them (no queue, no copy).
    pub fn set_discard(&mut self, on: bool) {
        self.discard = on;
    }

    /// Take everything sent so far (unlinked port).
    pub fn take_sent(&mut self) -> Vec<Packet> {
        self.tx.drain(..).collect()
    }
}

impl Port for MemPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> PortStats {
        self.stats
    }

    fn offloads(&self) -> bool {
        self.offloads
    }

    fn recv_batch(&mut self, out: &mut PacketBatch) -> io::Result<usize> {
        let mut n = 0;
        if self.replay.count != 0 {
            // As a NIC's DMA would: each frame lands in the batch's own buffer.
            let r = &mut self.replay;
            let mut bytes = 0;
            // Every slot up to BATCH exists (buffers kept), then each is filled in turn.
            if out.pkts.len() < BATCH {
                out.pkts.resize_with(BATCH, Packet::default);
            }
            for p in out.pkts.iter_mut().take(BATCH).skip(out.len) {
                let Some(&(start, len)) = r.frames.get(r.next) else {
                    break;
                };
                p.data.clear();
                // A frame of up to a line is copied as its whole (padded) line: a
                // fixed-size copy, inlined, then cut to the frame's length.
                if let Some(line) = r.area.get(start..).and_then(|a| a.first_chunk::<64>())
                    && len <= 64
                {
                    p.data.extend_from_slice(line);
                    p.data.truncate(len);
                } else if let Some(frame) = r.area.get(start..start + len) {
                    p.data.extend_from_slice(frame);
                } else {
                    break;
                }
                match r.meta.get(r.next) {
                    Some(&(tunnel_id, vnet)) => (p.tunnel_id, p.vnet) = (tunnel_id, vnet),
                    None => (p.tunnel_id, p.vnet) = (0, VnetHdr::default()),
                }
                r.next += 1;
                if r.next == r.count {
                    r.next = 0;
                }
                bytes += len as u64;
                n += 1;
            }
            out.len += n;
            self.stats.rx_packets += n as u64;
            self.stats.rx_bytes += bytes;
            return Ok(n);
        }
        let mut own = self
            .own
            .as_ref()
            .map(|q| q.lock().unwrap_or_else(|e| e.into_inner()));
        let q = match own.as_deref_mut() {
            Some(q) => q,
            None => &mut self.rx,
        };
        while out.room() > 0 {
            let Some(pkt) = q.pop_front() else { break };
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += pkt.data.len() as u64;
            out.push_copy(&pkt);
            n += 1;
        }
        Ok(n)
    }

    fn send_batch(&mut self, pkts: &mut [Packet]) -> io::Result<usize> {
        if self.discard {
            for p in pkts.iter() {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += p.data.len() as u64;
            }
            return Ok(pkts.len());
        }
        let mut sent = 0;
        let mut segs = Vec::new();
        for (i, p) in pkts.iter_mut().enumerate() {
            let queued = match &self.peer {
                Some(q) => q.lock().unwrap_or_else(|e| e.into_inner()).len(),
                None => self.tx.len(),
            };
            if self.tx_limit != 0 && queued >= self.tx_limit {
                self.stats.tx_dropped += (pkts.len() - i) as u64;
                break;
            }
            segs.clear();
            if self.offloads || !p.needs_offload() {
                segs.push(p.clone());
            } else if offload::software_offload(p, &mut segs).is_err() {
                self.stats.tx_dropped += 1;
                continue;
            }
            for s in segs.drain(..) {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += s.data.len() as u64;
                match &self.peer {
                    Some(q) => q.lock().unwrap_or_else(|e| e.into_inner()).push_back(s),
                    None => self.tx.push_back(s),
                }
            }
            sent += 1;
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replay hands out the frames in order, wrapping across batches, each with its own
    /// metadata, in buffers of the batch's own: rewriting one changes nothing that is
    /// received later. Frames sit on 64-byte boundaries of the replay area.
    #[test]
    fn replay_cycles_through_copies_with_metadata() {
        let frames: Vec<Packet> = [60usize, 0, 130, 64, 1]
            .iter()
            .enumerate()
            .map(|(i, &len)| Packet {
                data: (0..len).map(|b| (b + 17 * i) as u8).collect(),
                vnet: VnetHdr {
                    csum_start: i as u16,
                    ..VnetHdr::default()
                },
                tunnel_id: 100 + i as u64,
            })
            .collect();
        let mut port = MemPort::new("r");
        port.replay(frames.clone());
        for &(start, _) in &port.replay.frames {
            assert_eq!((port.replay.area.as_ptr() as usize + start) % 64, 0);
        }
        assert_eq!(port.replay.count, frames.len());
        assert_eq!(port.replay.meta.len(), frames.len() + BATCH);
        let mut batch = PacketBatch::new();
        let mut seen = 0;
        let mut bytes = 0;
        for _ in 0..4 {
            batch.clear();
            assert_eq!(port.recv_batch(&mut batch).unwrap(), BATCH);
            for pkt in batch.as_mut_slice() {
                assert_eq!(*pkt, frames[seen % frames.len()], "packet {seen}");
                bytes += pkt.data.len() as u64;
                seen += 1;
                pkt.data.iter_mut().for_each(|b| *b = !*b);
                pkt.data.push(0xee);
            }
        }
        assert_eq!(port.stats().rx_packets, 4 * BATCH as u64);
        assert_eq!(port.stats().rx_bytes, bytes);
        // Partly full batch: only the room is filled.
        batch.clear();
        batch.push_copy(&frames[0]);
        assert_eq!(port.recv_batch(&mut batch).unwrap(), BATCH - 1);
        assert_eq!(batch.as_slice()[1], frames[seen % frames.len()]);
        // Frames without metadata keep none (and are received with none).
        let plain: Vec<Packet> = frames.iter().map(|f| Packet::from_frame(&f.data)).collect();
        port.replay(plain.clone());
        assert!(port.replay.meta.is_empty());
        let mut k = 0;
        for _ in 0..2 {
            batch.clear();
            assert_eq!(port.recv_batch(&mut batch).unwrap(), BATCH);
            for pkt in batch.as_mut_slice() {
                assert_eq!(*pkt, plain[k % plain.len()], "packet {k}");
                k += 1;
                pkt.tunnel_id = 9;
                pkt.vnet.flags = 1;
            }
        }
        // An empty list turns replay off.
        port.replay(Vec::new());
        batch.clear();
        assert_eq!(port.recv_batch(&mut batch).unwrap(), 0);
        let mut out = [Frame::default(); BATCH];
        assert_eq!(port.recv_frames(&mut out), 0);
    }

    /// Zero-copy receive hands out the replay frames where they lie (pointers into the
    /// replay area), in the same order as copying receive, wrapping, each with its own
    /// metadata (none for plain frames), and counts them; the two receives share the
    /// position in the list.
    #[test]
    fn recv_frames_borrows_the_replay_frames_in_order() {
        for plain in [false, true] {
            let frames: Vec<Packet> = [60usize, 0, 130, 64, 1]
                .iter()
                .enumerate()
                .map(|(i, &len)| Packet {
                    data: (0..len).map(|b| (b + 31 * i) as u8).collect(),
                    vnet: VnetHdr {
                        csum_start: if plain { 0 } else { 7 + i as u16 },
                        ..VnetHdr::default()
                    },
                    tunnel_id: if plain { 0 } else { 200 + i as u64 },
                })
                .collect();
            let mut port = MemPort::new("z");
            port.replay(frames.clone());
            let area = port.replay.area.as_ptr_range();
            let mut seen = 0;
            let mut bytes = 0;
            for round in 0..5 {
                if round == 2 {
                    // A copying receive in between moves the same position on.
                    let mut batch = PacketBatch::new();
                    assert_eq!(port.recv_batch(&mut batch).unwrap(), BATCH);
                    for pkt in batch.iter() {
                        assert_eq!(*pkt, frames[seen % frames.len()], "packet {seen}");
                        bytes += pkt.data.len() as u64;
                        seen += 1;
                    }
                    continue;
                }
                let mut out = [Frame::default(); BATCH];
                assert_eq!(port.recv_frames(&mut out), BATCH);
                for f in &out {
                    let want = &frames[seen % frames.len()];
                    assert_eq!(f.data, &want.data[..], "frame {seen}");
                    assert_eq!((f.vnet, f.tunnel_id), (want.vnet, want.tunnel_id));
                    if !f.data.is_empty() {
                        assert!(area.contains(&f.data.as_ptr()), "frame {seen} was copied");
                    }
                    bytes += f.data.len() as u64;
                    seen += 1;
                }
            }
            assert_eq!(port.stats().rx_packets, seen as u64);
            assert_eq!(port.stats().rx_bytes, bytes);
        }
        // One frame: every frame of a batch is it.
        let mut port = MemPort::new("one");
        port.replay(vec![Packet::from_frame(&[9; 60])]);
        for _ in 0..3 {
            let mut out = [Frame::default(); BATCH];
            assert_eq!(port.recv_frames(&mut out), BATCH);
            assert!(out.iter().all(|f| f.data == [9; 60]));
        }
    }
}
