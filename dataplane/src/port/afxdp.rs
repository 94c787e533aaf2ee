//! [`AfXdpPort`]: a Linux interface through an AF_XDP socket (xsk-rs / libxdp), behind the
//! cargo feature `afxdp`.
//!
//! One socket on queue 0 of the interface, one UMEM of its own (4096 frames of 4 KiB by
//! default): half the frames sit in the fill ring for the kernel to receive into, the
//! other half are the transmit pool.
//!
//! - rx: up to 32 descriptors per `recv_batch` from the rx ring, each frame copied into
//!   the caller's reusable packet buffer and handed straight back to the fill ring.
//! - tx: frames from the pool, filled with a copy of each packet, produced on the tx ring
//!   in batches of up to 32 and kicked with one `sendto` when the kernel asks for it
//!   (`XDP_USE_NEED_WAKEUP`; in copy mode it always does, and each kick transmits up to
//!   32 frames). Completed frames return to the pool from the completion ring at the
//!   start of every `recv_batch`/`send_batch`. Frames are complete: no offload metadata
//!   crosses an AF_XDP socket, so [`Port::offloads`] is false and GSO super-frames or
//!   partial checksums from other ports are finished in software here before they leave.
//! - the socket fd is pollable (readable when the rx ring holds frames; in copy mode
//!   `poll` also drives pending transmissions), so an idle datapath thread sleeps.
//!
//! Modes ([`XdpMode`], named like Open vSwitch's `options:xdp-mode`): best-effort (the
//! default) tries native (driver) mode with zero-copy, then native with copy, then generic
//! (SKB) mode with copy, and keeps the first that binds; the others insist on one.
//! libxdp attaches its default XDP program (redirect queue 0 to this socket, pass
//! anything else) and removes it when the port is dropped.
//!
//! # veth (what works here, kernel 6.18)
//!
//! veth has no zero-copy, so best-effort ends in native mode with copy. Both native-copy
//! and generic mode receive and transmit on a veth without anything on the peer: no XDP
//! program there, no `ethtool -K` change (an XDP program on the *peer* is only needed to
//! receive frames another device `XDP_REDIRECT`s into a veth, which this port never does:
//! its transmissions are ordinary skbs through `veth_xmit`). What the senders behind a
//! veth must do, as for Open vSwitch's AF_XDP ports: turn transmit checksum offload off
//! (`ethtool -K IFACE tx off`, which also turns TSO off) for TCP or UDP to pass. An
//! AF_XDP socket receives the bare frame without the skb's CHECKSUM_PARTIAL state, so a
//! frame whose checksum the sender left to "hardware" leaves with the pseudo-header sum
//! in its checksum field and is dropped by the receiving stack; and in generic mode a
//! GSO super-frame is longer than a frame and is dropped (`rx_dropped`). ICMP (ping) is
//! always checksummed in software and passes either way.
//!
//! The socket is bound in the network namespace of the thread that opens the port (see
//! [`super::netns`]); afterwards the port may move to any thread.

// Port I/O module: the rings and the UMEM are shared with the kernel; xsk-rs marks every
// access `unsafe` because a frame must not be touched while the kernel owns it. Every
// block says why the frame is ours.
#![allow(unsafe_code)]

use std::fmt;
use std::io::{self, Write};
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig, XdpFlags,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::afpacket::{if_flags, if_mac, ifreq, ifreq_ioctl};
use super::offload;
use super::{BATCH, Packet, PacketBatch, Port, PortStats};

/// Bytes at the start of every UMEM frame the kernel keeps for XDP (`XDP_PACKET_HEADROOM`).
const XDP_PACKET_HEADROOM: usize = 256;

/// How the XDP program and the socket are attached (Open vSwitch's `xdp-mode` values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native with zero-copy, else native with copy, else generic: the first that binds.
    #[default]
    BestEffort,
    /// Native (driver) mode, zero-copy: only drivers with AF_XDP zero-copy support.
    NativeZeroCopy,
    /// Native (driver) mode, frames copied into the UMEM.
    Native,
    /// Generic (SKB) mode, frames copied: works on any interface.
    Generic,
}

impl XdpMode {
    /// The names Open vSwitch uses: `best-effort`, `native-with-zerocopy`, `native`,
    /// `generic`.
    pub fn parse(s: &str) -> Option<XdpMode> {
        Some(match s {
            "best-effort" => XdpMode::BestEffort,
            "native-with-zerocopy" => XdpMode::NativeZeroCopy,
            "native" => XdpMode::Native,
            "generic" => XdpMode::Generic,
            _ => return None,
        })
    }

    /// The name [`XdpMode::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::BestEffort => "best-effort",
            XdpMode::NativeZeroCopy => "native-with-zerocopy",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }

    /// The concrete modes to try, in order.
    fn attempts(self) -> &'static [XdpMode] {
        match self {
            XdpMode::BestEffort => &[XdpMode::NativeZeroCopy, XdpMode::Native, XdpMode::Generic],
            XdpMode::NativeZeroCopy => &[XdpMode::NativeZeroCopy],
            XdpMode::Native => &[XdpMode::Native],
            XdpMode::Generic => &[XdpMode::Generic],
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ring and UMEM geometry of an [`AfXdpPort`].
#[derive(Clone, Copy, Debug)]
pub struct AfXdpConfig {
    /// Interface queue to bind (veth: 0).
    pub queue: u32,
    /// Attach mode.
    pub mode: XdpMode,
    /// Descriptors per ring (rx, tx, fill, completion); a power of two. The UMEM holds
    /// twice as many frames: one ring's worth to receive into, one to transmit from.
    pub ring_size: u32,
    /// Bytes per UMEM frame (a power of two, ≥ 2048); 256 of them are the kernel's
    /// headroom, the rest is the biggest frame that passes (3840 with 4096).
    pub frame_size: u32,
    /// Bind with `XDP_USE_NEED_WAKEUP` (the kernel says when it needs a syscall to go
    /// on; without it every transmit batch costs a `sendto`).
    pub need_wakeup: bool,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            queue: 0,
            mode: XdpMode::BestEffort,
            ring_size: 2048,
            frame_size: 4096,
            need_wakeup: true,
        }
    }
}

/// A Linux interface as a [`Port`] through AF_XDP (see the module docs).
pub struct AfXdpPort {
    name: String,
    ifindex: u32,
    mode: XdpMode,
    /// A datagram socket for interface ioctls (flags, MAC) in the port's namespace.
    ctl: OwnedFd,
    umem: Umem,
    fq: FillQueue,
    cq: CompQueue,
    tx: TxQueue,
    rx: RxQueue,
    /// Transmit frames not in the kernel's hands.
    free: Vec<FrameDesc>,
    /// Transmit frames produced and not completed yet.
    in_flight: u32,
    /// The last wait for a free transmit frame was in vain.
    starved: bool,
    /// Received frames not yet back in the fill ring (only if the ring was full).
    refill: Vec<FrameDesc>,
    /// Scratch descriptors for one ring operation.
    descs: Vec<FrameDesc>,
    frame_size: usize,
    umem_len: usize,
    ring_size: u32,
    need_wakeup: bool,
    stats: PortStats,
}

impl fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("fd", &self.rx.fd().as_raw_fd())
            .finish()
    }
}

fn err(what: &str, e: impl std::error::Error) -> io::Error {
    // Keep the OS error, if any, so callers can tell EPERM from EOPNOTSUPP.
    let os = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .and_then(io::Error::raw_os_error);
    match os {
        Some(code) => io::Error::new(
            io::Error::from_raw_os_error(code).kind(),
            format!("{what}: {e}: {}", io::Error::from_raw_os_error(code)),
        ),
        None => io::Error::other(format!("{what}: {e}")),
    }
}

// libbpf and libxdp (linked statically by xsk-rs) print their progress to stderr: every
// open says "No bpffs found", "skipping unrecognized data section", ... Failures come back
// as error codes anyway, so they are silenced unless `FUXI_XDP_DEBUG` is set.
unsafe extern "C" {
    fn libbpf_set_print(f: *const libc::c_void) -> *const libc::c_void;
    fn libxdp_set_print(f: *const libc::c_void) -> *const libc::c_void;
}

fn quiet_libs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("FUXI_XDP_DEBUG").is_none() {
            // SAFETY: both take a nullable function pointer ("no printer") and only store
            // it; nothing else in this process sets a printer concurrently (Once).
            unsafe {
                libbpf_set_print(std::ptr::null());
                libxdp_set_print(std::ptr::null());
            }
        }
    });
}

impl AfXdpPort {
    /// Open `name` (in the current thread's network namespace) with default settings.
    pub fn open(name: &str) -> io::Result<AfXdpPort> {
        AfXdpPort::open_with(name, &AfXdpConfig::default())
    }

    /// Open `name` with the given mode and geometry. With [`XdpMode::BestEffort`] the
    /// error, if every mode fails, is the last one's (generic mode).
    pub fn open_with(name: &str, cfg: &AfXdpConfig) -> io::Result<AfXdpPort> {
        if !cfg.ring_size.is_power_of_two() || cfg.ring_size < BATCH as u32 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring_size must be a power of two ≥ 32",
            ));
        }
        if !cfg.frame_size.is_power_of_two() || cfg.frame_size < 2048 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame_size must be a power of two ≥ 2048",
            ));
        }
        quiet_libs();
        // SAFETY: plain syscall; the fd is checked and owned right away.
        let c = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if c < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `c` is a fresh fd nobody else owns.
        let ctl = unsafe { OwnedFd::from_raw_fd(c) };
        let mut ifr = ifreq(name)?;
        ifreq_ioctl(ctl.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr)?;
        // SAFETY: SIOCGIFINDEX filled the `ifru_ifindex` member.
        let ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex } as u32;
        let mut last = None;
        for &mode in cfg.mode.attempts() {
            match Self::try_open(name, cfg, mode) {
                Ok(parts) => return Ok(parts.into_port(name, ifindex, mode, ctl, cfg)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no XDP mode to try")))
    }

    fn try_open(name: &str, cfg: &AfXdpConfig, mode: XdpMode) -> io::Result<Parts> {
        let qs = |n| QueueSize::new(n).map_err(|e| err("ring size", e));
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(cfg.frame_size).map_err(|e| err("frame size", e))?)
            .fill_queue_size(qs(cfg.ring_size)?)
            .comp_queue_size(qs(cfg.ring_size)?)
            .build()
            .map_err(|e| err("UMEM config", e))?;
        let frames = NonZeroU32::new(2 * cfg.ring_size).expect("ring_size ≥ 32");
        let (umem, mut descs) =
            Umem::new(umem_cfg, frames, false).map_err(|e| err("cannot create UMEM", e))?;
        let (xdp, mut bind) = match mode {
            XdpMode::NativeZeroCopy => (XdpFlags::XDP_FLAGS_DRV_MODE, BindFlags::XDP_ZEROCOPY),
            XdpMode::Native => (XdpFlags::XDP_FLAGS_DRV_MODE, BindFlags::XDP_COPY),
            XdpMode::Generic | XdpMode::BestEffort => {
                (XdpFlags::XDP_FLAGS_SKB_MODE, BindFlags::XDP_COPY)
            }
        };
        if cfg.need_wakeup {
            bind |= BindFlags::XDP_USE_NEED_WAKEUP;
        }
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(qs(cfg.ring_size)?)
            .tx_queue_size(qs(cfg.ring_size)?)
            .libxdp_flags(LibxdpFlags::empty())
            .xdp_flags(xdp)
            .bind_flags(bind)
            .build();
        let iface: Interface = name
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
        // SAFETY: the UMEM is fresh and not shared, so `new`'s condition about an
        // already-bound shared UMEM (INHIBIT_PROG_LOAD) does not apply.
        let (tx, rx, fq_cq) = unsafe { Socket::new(sock_cfg, &umem, &iface, cfg.queue) }
            .map_err(|e| err(&format!("cannot bind AF_XDP socket ({mode})"), e))?;
        let (mut fq, cq) =
            fq_cq.ok_or_else(|| io::Error::other("UMEM came without fill/completion rings"))?;
        // First half of the frames: receive buffers, all in the fill ring.
        let tx_frames = descs.split_off(cfg.ring_size as usize);
        // SAFETY: these frames were just created and are not in any ring yet.
        let filled = unsafe { fq.produce(&descs) };
        if filled != descs.len() {
            return Err(io::Error::other("cannot fill the fill ring"));
        }
        let umem_len = 2 * cfg.ring_size as usize * cfg.frame_size as usize;
        Ok(Parts {
            umem,
            fq,
            cq,
            tx,
            rx,
            free: tx_frames,
            umem_len,
        })
    }

    /// The mode the socket is bound in (never best-effort).
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Frames the completion ring has returned go back to the transmit pool; a transmit
    /// the kernel has not finished is kicked again.
    fn reclaim(&mut self) {
        if self.in_flight > 0 {
            loop {
                // SAFETY: the completion ring hands back frames the kernel is done with;
                // `descs` only receives their addresses.
                let n = unsafe { self.cq.consume(&mut self.descs) };
                if n == 0 {
                    break;
                }
                self.in_flight = self.in_flight.saturating_sub(n as u32);
                self.starved = false;
                self.free.extend_from_slice(&self.descs[..n]);
                if n < self.descs.len() {
                    break;
                }
            }
        }
        // Descriptors still in the tx ring (a kick found the device busy, or more than one
        // kick's worth was queued): kick again.
        if self.tx.nb_free_exact() < self.ring_size && self.tx_wants_kick() {
            self.kick_tx();
        }
    }

    fn tx_wants_kick(&self) -> bool {
        !self.need_wakeup || self.tx.needs_wakeup()
    }

    fn kick_tx(&mut self) {
        // SAFETY: a zero-length send on our own socket: "transmit what the tx ring holds".
        let r = unsafe {
            libc::sendto(
                self.tx.fd().as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if r < 0 {
            // EAGAIN/EBUSY/ENOBUFS: the rest goes on the next kick; ENETDOWN: link down,
            // the frames complete as dropped. Nothing to report per packet here.
            let _ = io::Error::last_os_error();
        }
    }

    /// Put `frame` (≤ one frame) into a pool frame and onto `descs`; false if no frame.
    fn stage(&mut self, frame: &[u8], n: &mut usize) -> bool {
        let Some(mut d) = self.free.pop() else {
            return false;
        };
        let written = {
            // SAFETY: `d` came from the pool: the kernel is done with it (completion
            // ring) or never had it, and only this port has its address.
            let mut data = unsafe { self.umem.data_mut(&mut d) };
            let mut cur = data.cursor();
            cur.set_pos(0);
            cur.write_all(frame).is_ok()
        };
        if !written {
            // Cannot happen (the caller checks the frame capacity); keep the frame.
            self.free.push(d);
            return false;
        }
        self.descs[*n] = d;
        *n += 1;
        true
    }

    /// Produce `descs[..n]` on the tx ring and kick; returns how many went.
    fn flush(&mut self, n: &mut usize) -> usize {
        if *n == 0 {
            return 0;
        }
        // SAFETY: every staged frame is ours and filled; from here on the kernel owns the
        // ones produced until the completion ring hands them back.
        let k = unsafe { self.tx.produce(&self.descs[..*n]) };
        self.in_flight += k as u32;
        if k < *n {
            // The tx ring is as big as the pool, so this does not happen; were it to, the
            // frames go back to the pool and the packets count as dropped.
            self.free.extend_from_slice(&self.descs[k..*n]);
            self.stats.tx_dropped += (*n - k) as u64;
            self.stats.tx_packets -= (*n - k) as u64;
        }
        if k > 0 && self.tx_wants_kick() {
            self.kick_tx();
        }
        *n = 0;
        k
    }

    /// Make sure `need` frames are free (beyond the `n` staged), flushing what is staged
    /// and waiting briefly for completions if not: in copy mode the kernel completes a
    /// frame once the receiving device has consumed it, within microseconds on veth.
    /// After one wait in vain (link down: nothing completes) it does not wait again until
    /// a completion comes back, so a dead link costs no spinning per batch.
    fn make_room(&mut self, need: usize, n: &mut usize) -> bool {
        let mut tries = 0;
        let limit = if self.starved { 1 } else { 64 };
        while self.free.len() < need {
            if tries == limit {
                self.starved = true;
                return false;
            }
            if tries > 0 {
                std::thread::yield_now();
            }
            self.flush(n);
            self.reclaim();
            tries += 1;
        }
        true
    }

    /// Largest frame that fits one UMEM frame (after the kernel's headroom).
    fn max_frame(&self) -> usize {
        self.frame_size - XDP_PACKET_HEADROOM
    }
}

/// What one mode attempt opened.
struct Parts {
    umem: Umem,
    fq: FillQueue,
    cq: CompQueue,
    tx: TxQueue,
    rx: RxQueue,
    free: Vec<FrameDesc>,
    umem_len: usize,
}

impl Parts {
    fn into_port(
        self,
        name: &str,
        ifindex: u32,
        mode: XdpMode,
        ctl: OwnedFd,
        cfg: &AfXdpConfig,
    ) -> AfXdpPort {
        AfXdpPort {
            name: name.to_string(),
            ifindex,
            mode,
            ctl,
            umem: self.umem,
            fq: self.fq,
            cq: self.cq,
            tx: self.tx,
            rx: self.rx,
            free: self.free,
            in_flight: 0,
            starved: false,
            refill: Vec::new(),
            descs: vec![FrameDesc::default(); BATCH],
            frame_size: cfg.frame_size as usize,
            umem_len: self.umem_len,
            ring_size: cfg.ring_size,
            need_wakeup: cfg.need_wakeup,
            stats: PortStats::default(),
        }
    }
}

impl Port for AfXdpPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn ifindex(&self) -> Option<u32> {
        Some(self.ifindex)
    }

    fn mac(&self) -> Option<[u8; 6]> {
        if_mac(self.ctl.as_raw_fd(), &self.name).ok()
    }

    fn link_up(&self) -> bool {
        if_flags(self.ctl.as_raw_fd(), &self.name)
            .map(|f| {
                f & (libc::IFF_UP | libc::IFF_RUNNING) as u32
                    == (libc::IFF_UP | libc::IFF_RUNNING) as u32
            })
            .unwrap_or(false)
    }

    fn stats(&self) -> PortStats {
        let mut s = self.stats;
        if let Ok(x) = self.rx.fd().xdp_statistics() {
            // Cumulative in the kernel: frames too big, rx ring full, bad descriptors.
            s.rx_dropped += x.rx_dropped() + x.rx_ring_full() + x.rx_invalid_descs();
            s.tx_errors += x.tx_invalid_descs();
        }
        s
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.rx.fd().as_raw_fd())
    }

    fn recv_batch(&mut self, out: &mut PacketBatch) -> io::Result<usize> {
        self.reclaim();
        if !self.refill.is_empty() {
            // SAFETY: frames in `refill` came off the rx ring and were copied out.
            let k = unsafe { self.fq.produce(&self.refill) };
            self.refill.drain(..k);
        }
        let want = out.room().min(BATCH);
        if want == 0 {
            return Ok(0);
        }
        // SAFETY: `descs` only receives the addresses and lengths of frames the kernel
        // filled and hands over; they are ours until produced on the fill ring again.
        let n = unsafe { self.rx.consume(&mut self.descs[..want]) };
        if n == 0 {
            return Ok(0);
        }
        let mut got = 0;
        for d in &self.descs[..n] {
            let len = d.lengths().data();
            let off = d.addr() % self.frame_size;
            // The kernel keeps frames inside the UMEM; check anyway before building a
            // slice, so a bad descriptor cannot make us read outside it.
            if d.addr() >= self.umem_len || off + len > self.frame_size || len < 14 {
                self.stats.rx_dropped += 1;
                continue;
            }
            // SAFETY: the frame came off the rx ring (ours until it goes back to the fill
            // ring below) and [addr, addr+len) lies inside one UMEM frame (checked).
            let data = unsafe { self.umem.data(d) };
            let p = out.push().expect("room checked");
            p.data.extend_from_slice(&data);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += len as u64;
            got += 1;
        }
        // SAFETY: the frames were copied out above and are not referenced any more.
        let k = unsafe { self.fq.produce(&self.descs[..n]) };
        if k < n {
            self.refill.extend_from_slice(&self.descs[k..n]);
        }
        if self.need_wakeup && self.fq.needs_wakeup() {
            // SAFETY: a zero-length, non-blocking receive on our own socket wakes the
            // driver up to refill its rx queue from the fill ring.
            unsafe {
                libc::recvfrom(
                    self.rx.fd().as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
        }
        Ok(got)
    }

    /// Every packet is consumed: sent, or counted in `tx_errors` (cannot be sent: too big
    /// for a frame, offload impossible) or `tx_dropped` (no free frame even after waiting
    /// briefly for completions). So the return value is always `pkts.len()`, and a caller
    /// that retries the rest never sends a packet twice.
    fn send_batch(&mut self, pkts: &mut [Packet]) -> io::Result<usize> {
        self.reclaim();
        let max = self.max_frame();
        let mut n = 0;
        let mut seg_buf: Vec<Vec<u8>> = Vec::new();
        for (i, p) in pkts.iter_mut().enumerate() {
            if p.vnet.is_gso() {
                // Segment in software; all segments or none.
                seg_buf.clear();
                let r = offload::segment(&p.data, &p.vnet, |s| seg_buf.push(s.to_vec()));
                if r.is_err() || seg_buf.iter().any(|s| s.len() > max) {
                    self.stats.tx_errors += 1;
                    continue;
                }
                if !self.make_room(seg_buf.len(), &mut n) {
                    self.stats.tx_dropped += (pkts.len() - i) as u64;
                    break;
                }
                for s in std::mem::take(&mut seg_buf) {
                    if n == BATCH {
                        self.flush(&mut n);
                    }
                    self.stage(&s, &mut n);
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += s.len() as u64;
                }
                continue;
            }
            if p.vnet.needs_csum() && offload::complete_checksum(&mut p.data, &mut p.vnet).is_err()
            {
                self.stats.tx_errors += 1;
                continue;
            }
            if p.data.len() > max {
                self.stats.tx_errors += 1;
                continue;
            }
            if n == BATCH {
                self.flush(&mut n);
            }
            if !self.make_room(1, &mut n) || !self.stage(&p.data, &mut n) {
                self.stats.tx_dropped += (pkts.len() - i) as u64;
                break;
            }
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += p.data.len() as u64;
        }
        self.flush(&mut n);
        Ok(pkts.len())
    }
}
