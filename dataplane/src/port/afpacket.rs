//! [`AfPacketPort`]: a Linux interface through an AF_PACKET socket.
//!
//! - rx: a TPACKET_V3 mmap ring (blocks of 256 KiB so a 64 KiB GSO super-frame fits, a
//!   1 ms block retire timeout), one copy from the ring into the caller's reusable buffer;
//!   VLAN tags the kernel stripped are put back into the frame. Or, with
//!   [`AfPacketConfig::rx_mmsg`], `recvmmsg` straight into the packet buffers: no
//!   block-retire latency (≈0.08 ms vs 0.5–1.8 ms ping RTT through a forwarder), faster
//!   TCP, fewer small-packet pps (see [`super::fwd`] for the numbers). Or, with
//!   [`AfPacketConfig::rx_zc`], a TPACKET_V2 ring whose frames are lent out
//!   ([`Port::recv_borrowed`]) and sent by egress ports straight from the ring
//!   ([`Port::send_frames`]): the kernel's copy into the ring runs where the packet
//!   arrives (on veth: in the sending host's softirq), so the switch's core does one copy
//!   per frame instead of two, with per-frame status (no block-retire delay). A slot stays
//!   the receiver's until the [`BorrowedBatch`] holding it is released.
//! - tx: `sendmmsg` batches of up to 32 with `PACKET_QDISC_BYPASS` (default), or a
//!   TPACKET_V2 mmap tx ring on a second, send-only socket
//!   ([`AfPacketConfig::tx_ring_frames`]).
//! - `PACKET_VNET_HDR` both ways: a GSO super-frame or a CHECKSUM_PARTIAL packet is
//!   received with its [`VnetHdr`] and sent on unchanged (the kernel segments or
//!   checksums it only if the egress device cannot).
//! - BIG TCP (a sending host with `gso_ipv4_max_size`/`gso_max_size` above 64 KiB):
//!   super-frames up to 512 KiB pass whole with `recvmmsg`; the receive buffers start at
//!   64 KiB and grow the first time a frame comes truncated (that frame is counted in
//!   `rx_dropped`; TCP sends it again). An IPv4 BIG TCP frame has `tot_len` 0; the
//!   offload code works from the frame length, so it segments such a frame correctly.
//!   The rx ring (256 KiB blocks) drops frames that do not fit a block; the `rx_zc` ring
//!   (64 KiB frames) switches the port to `recvmmsg` with big buffers the first time one
//!   comes truncated (a spare socket takes over the port's descriptor number). Opening a port
//!   raises its device's GSO limits to its TSO limit ([`AfPacketConfig::raise_gso`], through [`super::netlink::raise_gso`]), so
//!   such frames also leave whole.
//! - own transmissions are not looped back (`PACKET_IGNORE_OUTGOING`, and
//!   `PACKET_OUTGOING` frames are skipped), the interface is put in promiscuous mode
//!   (`PACKET_MR_PROMISC`, undone by the kernel when the socket closes), the fd is
//!   non-blocking and pollable.
//!
//! The socket is bound in the network namespace of the thread that opens the port (see
//! [`super::netns`]); afterwards the port may move to any thread.

// This is a port I/O module: it owns a socket and an mmap'ed ring shared with the
// kernel, which needs raw syscalls and pointer reads. Every block says why it is sound.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::offload::{VNET_HDR_LEN, VnetHdr};
use super::{BATCH, BorrowedBatch, Frame, Packet, PacketBatch, Port, PortStats, SlotOwner};

const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_AUXDATA: libc::c_int = 8;
/// Biggest frame `recvmmsg` reads at first: a 64 KiB GSO frame plus Ethernet and VLAN
/// headers.
const MAX_FRAME: usize = 65536 + 18;
/// Biggest frame once a bigger one was seen: BIG TCP super-frames go up to the kernel's
/// `GSO_MAX_SIZE` (512 KiB; `gso_ipv4_max_size`/`gso_max_size` above 64 KiB on the
/// sending host's device), plus Ethernet and VLAN headers.
const BIG_FRAME: usize = (512 << 10) + 18;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_VNET_HDR: libc::c_int = 15;
const PACKET_QDISC_BYPASS: libc::c_int = 20;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_TX_RING: libc::c_int = 13;
const PACKET_LOSS: libc::c_int = 14;
const TPACKET_V2: libc::c_int = 1;
const TPACKET_V3: libc::c_int = 2;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_WRONG_FORMAT: u32 = 4;
/// Frame data starts after `tpacket2_hdr` (32 bytes) on a TPACKET_V2 tx ring.
const TX_DATA_OFF: usize = 32;
const TX_FRAME: usize = 1 << 17;
const PACKET_MR_PROMISC: u16 = 1;
const PACKET_OUTGOING: u8 = 4;
const ETH_P_ALL: u16 = 0x0003;

const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_VLAN_VALID: u32 = 0x10;
const TP_STATUS_VLAN_TPID_VALID: u32 = 0x40;
/// A `rx_zc` ring frame lent out: not `TP_STATUS_KERNEL` (so the kernel leaves it alone)
/// and without `TP_STATUS_USER` (which the kernel sets on every frame it fills), so the
/// receiver does not take it for a new one when it comes round the ring again.
const TP_STATUS_LENT: u32 = 1 << 27;

/// TPACKET_V2 rx ring (zero-copy receive): blocks of 1 MiB, each holding
/// [`ZC_PER_BLOCK`] frames of [`ZC_FRAME`] bytes: a 64 KiB GSO frame plus Ethernet and
/// VLAN headers after the frame's own headers (`tpacket2_hdr`, `sockaddr_ll`, the
/// virtio-net header: the MAC header starts at byte 76).
const ZC_BLOCK: usize = 1 << 20;
const ZC_PER_BLOCK: usize = 15;
const ZC_FRAME: usize = (ZC_BLOCK / ZC_PER_BLOCK) & !15;
/// Offsets inside `struct tpacket2_hdr` (then `sockaddr_ll` at 32: `sll_pkttype` is byte
/// 42; the kernel puts the MAC header at `tp_mac` ≥ 52 + 10 (vnet header) + 14).
const H2_LEN: usize = 4;
const H2_SNAPLEN: usize = 8;
const H2_MAC: usize = 12;
const H2_VLAN_TCI: usize = 24;
const H2_VLAN_TPID: usize = 26;
const H2_PKTTYPE: usize = 32 + 10;
const H2_MIN_MAC: usize = 32 + 20 + VNET_HDR_LEN;

/// Offsets inside `struct tpacket_block_desc` (version, offset_to_priv, then
/// `tpacket_hdr_v1`: block_status, num_pkts, offset_to_first_pkt, ...).
const BD_STATUS: usize = 8;
const BD_NUM_PKTS: usize = 12;
const BD_FIRST: usize = 16;
/// Offsets inside `struct tpacket3_hdr`.
const H_NEXT: usize = 0;
const H_SNAPLEN: usize = 12;
const H_LEN: usize = 16;
const H_STATUS: usize = 20;
const H_MAC: usize = 24;
const H_VLAN_TCI: usize = 32;
const H_VLAN_TPID: usize = 36;
/// `sockaddr_ll` follows the 48-byte header; `sll_pkttype` is its byte 10.
const H_PKTTYPE: usize = 48 + 10;

#[repr(C)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

#[repr(C)]
struct PacketMreq {
    ifindex: libc::c_int,
    type_: u16,
    alen: u16,
    address: [u8; 8],
}

/// Ring geometry and socket options of an [`AfPacketPort`].
#[derive(Clone, Copy, Debug)]
pub struct AfPacketConfig {
    /// Bytes per rx block (power of two, ≥ 64 KiB + headers for GSO frames).
    pub block_size: u32,
    /// Number of rx blocks.
    pub block_nr: u32,
    /// How long the kernel holds a partly filled block before handing it over (ms).
    pub retire_ms: u32,
    /// Put the interface in promiscuous mode.
    pub promisc: bool,
    /// Send bytes the socket may have in flight.
    pub sndbuf: usize,
    /// Receive with `recvmmsg` instead of the TPACKET_V3 ring: no block retire delay
    /// (the ring adds up to `retire_ms` per hop when traffic is sparse), one more
    /// syscall per batch, and one copy instead of two (the kernel copies into the ring,
    /// then the port into the packet buffer): TCP through fuxi-switchd on veth measured
    /// 8.0–9.5 Gbps (1 and 4 streams) with the ring vs 9.0–11.7 with `recvmmsg`
    /// (2026-11-27, loaded machine, interleaved). VLAN tags come back through
    /// `PACKET_AUXDATA`.
    pub rx_mmsg: bool,
    /// Receive buffer bytes of the socket in `rx_mmsg` mode (the ring needs none). TCP
    /// through fuxi-switchd on veth (2026-11-27, loaded machine, interleaved): 1 MiB loses
    /// frames (10⁴ retransmits per 6 s ×1, 3·10⁵ ×4); 32 MiB is no faster than 8 MiB.
    /// Neither `PACKET_QDISC_BYPASS` off nor `SO_BUSY_POLL` (50 µs, prefer-busy-poll)
    /// changed TCP measurably, nor did taking fewer frames per `recvmmsg` when they are
    /// big (a 64–256 KiB budget per call, to keep the copies' working set in L2: the
    /// calls average ~4.5 super-frames already).
    pub rcvbuf: usize,
    /// Transmit through a TPACKET_V2 mmap tx ring on a second socket (this many
    /// 128 KiB frames) instead of `sendmmsg`; 0 = `sendmmsg`. The frame data is copied
    /// into the ring here instead of by the kernel, so it saves no copy; TCP through
    /// fuxi-switchd on veth measured 6.7–7.9 Gbps with a 64-frame ring vs 9.0–11.7 with
    /// `sendmmsg` (2026-11-27, loaded machine, interleaved).
    pub tx_ring_frames: u32,
    /// Raise the device's `gso_max_size` and `gso_ipv4_max_size` to its `tso_max_size`
    /// (at most 512 KiB) when they are lower, so BIG TCP super-frames from the hosts leave
    /// whole instead of being segmented by the kernel inside our `sendmmsg`. Measured with
    /// BIG TCP on the hosts only (2026-11-27, veth, loaded machine): 0.03 Gbps through
    /// fuxi-switchd without it (the kernel's segments overflow and the frames are lost),
    /// 12.5 with the switch's ports raised. The setting stays after the port closes.
    pub raise_gso: bool,
    /// Receive through a TPACKET_V2 ring whose frames the datapath borrows
    /// ([`Port::recv_borrowed`]) and egress ports send from directly
    /// ([`Port::send_frames`]): the kernel's copy into the ring runs where the packet
    /// arrives (the sending host's softirq on veth), so the switch's core does one copy
    /// per frame (the send) instead of two. Takes precedence over `rx_mmsg`.
    ///
    /// Measured 2026-11-27 (veth, senders on CPU 0, switch on CPU 1, load 1.5–1.9): the raw
    /// forwarder ([`super::fwd`]) gains (TCP x4 +13 %, 64 B +48 %); through fuxi-switchd
    /// (side-by-side harness, two runs, six alternated rounds against `rx_mmsg`, medians)
    /// TCP x1 −9 % (11.0 vs 12.15 Gbit/s, and more retransmits: 190–765 vs 0–360 per
    /// 10 s), x4 +5 % (13.98 vs 13.28), 64 B UDP +52 % (0.337 vs 0.22 Mpps), ping median
    /// 44 vs 54 µs. One stream is not bound by the switch's core, and the copy moved onto
    /// the sender's (CPU 0 then 90–100 % busy), so it slows the sender; a third run with
    /// other work on the machine (load 2.2–2.9, CPU 0 shared) was worse still: x1 10.88 vs
    /// 10.99, x4 8.91 vs 11.85, 64 B +8 %. Hence not the default. Rings smaller than 16
    /// blocks drop under four streams (2–4 blocks: 2·10⁵–9·10⁵ retransmits per 8 s).
    pub rx_zc: bool,
    /// Blocks of 1 MiB (15 frames each) of the `rx_zc` ring.
    pub zc_blocks: u32,
}

impl Default for AfPacketConfig {
    fn default() -> Self {
        AfPacketConfig {
            block_size: 1 << 18,
            block_nr: 32,
            retire_ms: 1,
            promisc: true,
            sndbuf: 4 << 20,
            tx_ring_frames: 0,
            raise_gso: true,
            rx_mmsg: false,
            rcvbuf: 8 << 20,
            rx_zc: false,
            zc_blocks: 16,
        }
    }
}

/// A Linux interface as a [`Port`] (see the module docs).
#[derive(Debug)]
pub struct AfPacketPort {
    name: String,
    fd: OwnedFd,
    ifindex: u32,
    /// The TPACKET_V3 rx ring (neither `mmsg` nor `zc`).
    v3: Option<RingMap>,
    block_size: usize,
    block_nr: usize,
    /// Block being read, packets left in it, offset of the next one.
    cur: usize,
    left: u32,
    off: usize,
    stats: PortStats,
    kernel_drops: Cell<u64>,
    tx: Option<TxRing>,
    /// Receive with `recvmmsg` (no rx ring).
    mmsg: bool,
    /// Receive buffer size for `recvmmsg`: [`MAX_FRAME`], or [`BIG_FRAME`] after a frame
    /// came truncated (a BIG TCP super-frame; that one is dropped, TCP sends it again).
    max_frame: usize,
    /// The TPACKET_V2 rx ring whose frames are lent out (`rx_zc`).
    zc: Option<ZcRing>,
    /// Where `recv_batch` borrows frames of `zc` before copying them.
    zc_copy: BorrowedBatch,
    /// `rx_zc`: a second socket, set up for `recvmmsg` but bound to no protocol (so it
    /// receives nothing), that takes over the first time a frame does not fit a ring
    /// frame (BIG TCP), keeping the port's descriptor number.
    spare: Option<OwnedFd>,
    promisc: bool,
}

/// A ring the kernel allocated for a packet socket, mapped; unmapped when dropped. A
/// TPACKET_V2 rx ring's is shared with the [`BorrowedBatch`]es that hold frames in it (so
/// it stays mapped until the last of them lets go).
#[derive(Debug)]
struct RingMap {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; every access to a frame's status word is
// atomic, and a frame's bytes are only read while its status says user space owns it.
unsafe impl Send for RingMap {}
// SAFETY: as above.
unsafe impl Sync for RingMap {}

impl Drop for RingMap {
    fn drop(&mut self) {
        // SAFETY: the mapping was created in `RingMap::map` with this length; this is its
        // last owner, so nothing uses it after this point.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len);
        }
    }
}

impl RingMap {
    /// Maps the `len` bytes of ring (rx, or tx after it) the kernel just allocated for `fd`.
    fn map(fd: RawFd, len: usize) -> io::Result<RingMap> {
        // SAFETY: maps memory the kernel allocated for this socket; the result is checked,
        // and unmapped once when the `RingMap` is dropped.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RingMap {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Frame `slot`'s header (`slot` < the ring's frame count).
    fn frame(&self, slot: usize) -> *mut u8 {
        let off = slot / ZC_PER_BLOCK * ZC_BLOCK + slot % ZC_PER_BLOCK * ZC_FRAME;
        debug_assert!(off + ZC_FRAME <= self.len);
        // SAFETY: callers pass slot < frame count, so the frame lies inside the mapping.
        unsafe { self.ptr.add(off) }
    }

    fn status(&self, slot: usize) -> &AtomicU32 {
        // SAFETY: the status word starts the frame, 16-byte aligned inside the mapping,
        // lives as long as `self`, and the kernel touches it only as a u32: an atomic.
        unsafe { &*(self.frame(slot) as *const AtomicU32) }
    }
}

impl SlotOwner for RingMap {
    fn release(&self, slots: &[u32]) {
        for &s in slots {
            self.status(s as usize)
                .store(TP_STATUS_KERNEL, Ordering::Release);
        }
    }
}

/// The rx ring of an `rx_zc` port and where the next frame is read.
#[derive(Debug)]
struct ZcRing {
    map: Arc<RingMap>,
    owner: Arc<dyn SlotOwner>,
    frames: usize,
    head: usize,
}

/// A TPACKET_V2 tx ring on its own socket (bound with protocol 0, so it receives
/// nothing).
#[derive(Debug)]
struct TxRing {
    fd: OwnedFd,
    map: RingMap,
    frames: usize,
    head: usize,
}

impl TxRing {
    fn open(ifindex: libc::c_int, frames: u32, sndbuf: usize) -> io::Result<TxRing> {
        let fd = packet_socket(sndbuf)?;
        let raw = fd.as_raw_fd();
        setsockopt(raw, SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        setsockopt(raw, SOL_PACKET, PACKET_LOSS, &1 as &libc::c_int)?;
        let req = [TX_FRAME as u32, frames, TX_FRAME as u32, frames]; // tpacket_req
        setsockopt(raw, SOL_PACKET, PACKET_TX_RING, &req)?;
        let map = RingMap::map(raw, frames as usize * TX_FRAME)?;
        let tx = TxRing {
            fd,
            map,
            frames: frames as usize,
            head: 0,
        };
        // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = ifindex; // protocol 0: a send-only socket
        // SAFETY: `sll` is a valid sockaddr_ll of the length passed.
        cvt(unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(tx)
    }

    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: frame `i` < frames starts page-aligned inside the mapping; its first
        // word is the status the kernel and we hand back and forth.
        unsafe { &*(self.map.ptr.add(i * TX_FRAME) as *const AtomicU32) }
    }

    fn kick(&self) -> io::Result<()> {
        // SAFETY: a zero-length send on our own socket: "transmit what the ring holds".
        let r = unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock && e.raw_os_error() != Some(libc::ENOBUFS) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Queue what fits and transmit; returns (accepted, refused as too big, errors seen).
    fn send(&mut self, pkts: &[Packet]) -> io::Result<(usize, u64, u64)> {
        let (mut sent, mut big, mut bad) = (0, 0, 0);
        let mut kicked = false;
        for p in pkts {
            if VNET_HDR_LEN + p.data.len() > TX_FRAME - TX_DATA_OFF {
                big += 1;
                continue;
            }
            let mut st = self.status(self.head).load(Ordering::Acquire);
            if st != TP_STATUS_AVAILABLE && st != TP_STATUS_WRONG_FORMAT && !kicked {
                self.kick()?;
                kicked = true;
                st = self.status(self.head).load(Ordering::Acquire);
            }
            if st == TP_STATUS_WRONG_FORMAT {
                bad += 1;
            } else if st != TP_STATUS_AVAILABLE {
                break; // ring full: the rest is dropped by the caller
            }
            let f = self.head * TX_FRAME;
            // SAFETY: the frame is ours (status AVAILABLE/WRONG_FORMAT, seen with
            // Acquire) and `TX_DATA_OFF + 10 + len` ≤ TX_FRAME was checked above.
            unsafe {
                let h = self.map.ptr.add(f);
                (h.add(4) as *mut u32).write_unaligned((VNET_HDR_LEN + p.data.len()) as u32);
                let d = h.add(TX_DATA_OFF);
                std::ptr::copy_nonoverlapping(p.vnet.to_bytes().as_ptr(), d, VNET_HDR_LEN);
                std::ptr::copy_nonoverlapping(p.data.as_ptr(), d.add(VNET_HDR_LEN), p.data.len());
            }
            self.status(self.head)
                .store(TP_STATUS_SEND_REQUEST, Ordering::Release);
            self.head = (self.head + 1) % self.frames;
            sent += 1;
        }
        if sent > 0 {
            self.kick()?;
        }
        Ok((sent, big, bad))
    }
}

// SAFETY: the ring pointer is owned by this port alone (the mapping lives as long as the
// port and is only touched through `&mut self` or atomics), so moving the port to
// another thread is sound.
unsafe impl Send for AfPacketPort {}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the given size for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// An `ifreq` naming `name`.
pub(crate) fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.is_empty() || name.len() >= ifr.ifr_name.len() || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(ifr)
}

/// A packet socket (protocol 0: receives nothing until bound) set up for `recvmmsg`.
fn mmsg_socket(cfg: &AfPacketConfig) -> io::Result<OwnedFd> {
    let fd = packet_socket(cfg.sndbuf)?;
    set_mmsg_options(fd.as_raw_fd(), cfg)?;
    Ok(fd)
}

/// A non-blocking packet socket of protocol 0 (it receives nothing until bound), with
/// what every socket of a port has: vnet headers both ways, the qdisc bypass, its own
/// transmissions not looped back, `sndbuf` bytes of send buffer.
fn packet_socket(sndbuf: usize) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is checked and owned right away.
    let raw = cvt(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `raw` is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    setsockopt(raw, SOL_PACKET, PACKET_VNET_HDR, &1 as &libc::c_int)?;
    setsockopt(raw, SOL_PACKET, PACKET_QDISC_BYPASS, &1 as &libc::c_int)?;
    setsockopt(raw, SOL_PACKET, PACKET_IGNORE_OUTGOING, &1 as &libc::c_int)?;
    let sndbuf = sndbuf as libc::c_int;
    if setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &sndbuf).is_err() {
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf)?;
    }
    Ok(fd)
}

/// What a `recvmmsg` socket needs: VLAN tags through `PACKET_AUXDATA`, the receive buffer.
fn set_mmsg_options(raw: RawFd, cfg: &AfPacketConfig) -> io::Result<()> {
    setsockopt(raw, SOL_PACKET, PACKET_AUXDATA, &1 as &libc::c_int)?;
    let rcvbuf = cfg.rcvbuf as libc::c_int;
    if setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &rcvbuf).is_err() {
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf)?;
    }
    Ok(())
}

/// Put `ifindex` in promiscuous mode for as long as socket `raw` lives.
fn add_promisc(raw: RawFd, ifindex: libc::c_int) -> io::Result<()> {
    let mreq = PacketMreq {
        ifindex,
        type_: PACKET_MR_PROMISC,
        alen: 0,
        address: [0; 8],
    };
    setsockopt(raw, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
}

/// Bind packet socket `raw` to `ifindex` and `protocol` (host order; 0: receive nothing).
fn bind_to(raw: RawFd, ifindex: libc::c_int, protocol: u16) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: `sll` is a valid sockaddr_ll of the length passed.
    cvt(unsafe {
        libc::bind(
            raw,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `ioctl(fd, req, &mut ifreq)`.
pub(crate) fn ifreq_ioctl(fd: RawFd, req: libc::Ioctl, ifr: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: the interface ioctls used here read and write only within the `ifreq`.
    cvt(unsafe { libc::ioctl(fd, req, ifr as *mut libc::ifreq) }).map(drop)
}

/// Interface flags (`IFF_*`) of `name`, asked through `fd`'s network namespace.
pub(crate) fn if_flags(fd: RawFd, name: &str) -> io::Result<u32> {
    let mut ifr = ifreq(name)?;
    ifreq_ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled the `ifru_flags` member.
    Ok(u32::from(unsafe { ifr.ifr_ifru.ifru_flags } as u16))
}

/// Hardware address of `name`.
pub(crate) fn if_mac(fd: RawFd, name: &str) -> io::Result<[u8; 6]> {
    let mut ifr = ifreq(name)?;
    ifreq_ioctl(fd, libc::SIOCGIFHWADDR, &mut ifr)?;
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(mac)
}

impl AfPacketPort {
    /// Open `name` (in the current thread's network namespace) with default settings.
    pub fn open(name: &str) -> io::Result<AfPacketPort> {
        AfPacketPort::open_with(name, &AfPacketConfig::default())
    }

    /// Open `name` with the given ring and socket settings.
    pub fn open_with(name: &str, cfg: &AfPacketConfig) -> io::Result<AfPacketPort> {
        // Protocol 0: receive nothing until bound, so the ring holds only this port.
        let fd = packet_socket(cfg.sndbuf)?;
        let raw = fd.as_raw_fd();
        let mut ifr = ifreq(name)?;
        ifreq_ioctl(raw, libc::SIOCGIFINDEX, &mut ifr)?;
        // SAFETY: SIOCGIFINDEX filled the `ifru_ifindex` member.
        let ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex };

        let version = if cfg.rx_zc { TPACKET_V2 } else { TPACKET_V3 };
        setsockopt(raw, SOL_PACKET, PACKET_VERSION, &version)?;
        let mut zc = None;
        let mut spare = None;
        let v3 = if cfg.rx_zc {
            spare = Some(mmsg_socket(cfg)?);
            let blocks = cfg.zc_blocks.max(1);
            let frames = blocks * ZC_PER_BLOCK as u32;
            let req = [ZC_BLOCK as u32, blocks, ZC_FRAME as u32, frames]; // tpacket_req
            setsockopt(raw, SOL_PACKET, PACKET_RX_RING, &req)?;
            let map = Arc::new(RingMap::map(raw, ZC_BLOCK * blocks as usize)?);
            zc = Some(ZcRing {
                owner: map.clone(),
                map,
                frames: frames as usize,
                head: 0,
            });
            None
        } else if cfg.rx_mmsg {
            set_mmsg_options(raw, cfg)?;
            None
        } else {
            let frame_size = 2048u32;
            let req = TpacketReq3 {
                block_size: cfg.block_size,
                block_nr: cfg.block_nr,
                frame_size,
                frame_nr: cfg.block_size / frame_size * cfg.block_nr,
                retire_blk_tov: cfg.retire_ms,
                sizeof_priv: 0,
                feature_req_word: 0,
            };
            setsockopt(raw, SOL_PACKET, PACKET_RX_RING, &req)?;
            Some(RingMap::map(
                raw,
                cfg.block_size as usize * cfg.block_nr as usize,
            )?)
        };
        let port = AfPacketPort {
            name: name.to_string(),
            fd,
            ifindex: ifindex as u32,
            v3,
            mmsg: cfg.rx_mmsg,
            max_frame: MAX_FRAME,
            zc,
            zc_copy: BorrowedBatch::new(),
            spare,
            promisc: cfg.promisc,
            block_size: cfg.block_size as usize,
            block_nr: cfg.block_nr as usize,
            cur: 0,
            left: 0,
            off: 0,
            stats: PortStats::default(),
            kernel_drops: Cell::new(0),
            tx: match cfg.tx_ring_frames {
                0 => None,
                n => Some(TxRing::open(ifindex, n, cfg.sndbuf)?),
            },
        };
        if cfg.raise_gso {
            // Best effort: an older kernel or a device without the attributes keeps its
            // sizes, which only matters for BIG TCP senders.
            let _ = super::netlink::raise_gso(ifindex);
        }
        if cfg.promisc {
            add_promisc(raw, ifindex)?;
        }
        bind_to(raw, ifindex, ETH_P_ALL)?;
        Ok(port)
    }

    /// `rx_zc` → `recvmmsg` (see `spare`): the spare socket starts receiving, the ring's
    /// stops, and the spare takes the port's descriptor number (so whoever polls it need
    /// not know). The ring stays mapped until the last batch holding frames of it lets go.
    fn leave_ring(&mut self) -> io::Result<()> {
        let Some(spare) = self.spare.take() else {
            return Ok(());
        };
        let ifindex = self.ifindex as libc::c_int;
        if self.promisc {
            add_promisc(spare.as_raw_fd(), ifindex)?;
        }
        bind_to(spare.as_raw_fd(), ifindex, ETH_P_ALL)?;
        bind_to(self.fd.as_raw_fd(), ifindex, 0)?;
        // SAFETY: both descriptors are open and ours; dup2 atomically makes the port's
        // number refer to the spare socket (closing the ring socket's reference) and
        // `spare`'s own number is closed when it drops below.
        cvt(unsafe { libc::dup2(spare.as_raw_fd(), self.fd.as_raw_fd()) })?;
        self.zc = None;
        self.zc_copy.release();
        self.mmsg = true;
        self.max_frame = BIG_FRAME;
        Ok(())
    }

    fn block(&self, i: usize) -> *mut u8 {
        let ring = self.v3.as_ref().map_or(std::ptr::null_mut(), |m| m.ptr);
        // SAFETY: only called with a V3 ring, and i < block_nr, so the offset stays
        // inside the mapping.
        unsafe { ring.add(i * self.block_size) }
    }

    fn block_status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the block status word is 4-byte aligned inside the mapping, lives as
        // long as `self`, and the kernel accesses it concurrently only as a u32 word;
        // an atomic is the right way to share it.
        unsafe { &*(self.block(i).add(BD_STATUS) as *const AtomicU32) }
    }

    fn read_u32(&self, p: *const u8) -> u32 {
        // SAFETY: callers pass pointers inside a block the kernel handed to user space
        // (TP_STATUS_USER observed with Acquire), so nobody writes it meanwhile.
        unsafe { (p as *const u32).read_unaligned() }
    }

    fn read_u16(&self, p: *const u8) -> u16 {
        // SAFETY: as in `read_u32`.
        unsafe { (p as *const u16).read_unaligned() }
    }

    /// Hand the current block back to the kernel and move to the next.
    fn release_block(&mut self) {
        self.block_status(self.cur)
            .store(TP_STATUS_KERNEL, Ordering::Release);
        self.cur = (self.cur + 1) % self.block_nr;
        self.left = 0;
    }
}

impl AfPacketPort {
    /// Lend up to `out.room()` frames of the `rx_zc` ring (see [`Port::recv_borrowed`]).
    fn recv_zc(&mut self, out: &mut BorrowedBatch, max: usize) -> io::Result<usize> {
        let Some(zc) = &mut self.zc else {
            return Ok(0);
        };
        out.begin(&zc.owner);
        let mut n = 0;
        let mut big = false;
        while out.room() > 0 && n < max {
            let slot = zc.head;
            let st = zc.map.status(slot).load(Ordering::Acquire);
            if st & TP_STATUS_USER == 0 {
                break;
            }
            zc.head = (slot + 1) % zc.frames;
            let h = zc.map.frame(slot);
            // SAFETY (reads below): the frame is ours (TP_STATUS_USER seen with Acquire:
            // the kernel wrote it before and leaves it alone until we hand it back), and
            // every offset read lies in its header (< H2_MIN_MAC ≤ ZC_FRAME).
            let (len, snaplen, mac, tci, tpid, pkttype) = unsafe {
                (
                    (h.add(H2_LEN) as *const u32).read_unaligned() as usize,
                    (h.add(H2_SNAPLEN) as *const u32).read_unaligned() as usize,
                    usize::from((h.add(H2_MAC) as *const u16).read_unaligned()),
                    (h.add(H2_VLAN_TCI) as *const u16).read_unaligned(),
                    (h.add(H2_VLAN_TPID) as *const u16).read_unaligned(),
                    *h.add(H2_PKTTYPE),
                )
            };
            let vlan = st & TP_STATUS_VLAN_VALID != 0;
            let ok = mac >= H2_MIN_MAC + if vlan { 4 } else { 0 }
                && mac + snaplen <= ZC_FRAME
                && snaplen == len
                && snaplen >= 14;
            if pkttype == PACKET_OUTGOING || !ok {
                if pkttype != PACKET_OUTGOING {
                    self.stats.rx_dropped += 1;
                }
                zc.map
                    .status(slot)
                    .store(TP_STATUS_KERNEL, Ordering::Release);
                if snaplen < len && self.spare.is_some() {
                    // A frame bigger than a ring frame (BIG TCP on the sender): from the
                    // next receive on, `recvmmsg` with buffers that fit it.
                    big = true;
                    break;
                }
                continue;
            }
            // SAFETY: [mac - 10, mac + snaplen) lies in this frame (checked above), which
            // is ours until released.
            let mut vnet = VnetHdr::from_bytes(unsafe {
                &*(h.add(mac - VNET_HDR_LEN) as *const [u8; VNET_HDR_LEN])
            });
            let (start, flen) = if vlan {
                // Put the tag the kernel took off back in place: the MAC addresses move
                // 4 bytes down (over the vnet header, read above), the tag follows them.
                let tpid = if st & TP_STATUS_VLAN_TPID_VALID != 0 {
                    tpid
                } else {
                    0x8100
                };
                // SAFETY: [mac - 4, mac + 12) is inside this frame (mac ≥ H2_MIN_MAC + 4),
                // ours to write until released; `copy` handles the overlap.
                unsafe {
                    std::ptr::copy(h.add(mac), h.add(mac - 4), 12);
                    (h.add(mac + 8) as *mut [u8; 2]).write(tpid.to_be_bytes());
                    (h.add(mac + 10) as *mut [u8; 2]).write(tci.to_be_bytes());
                }
                vnet.shift(4);
                (mac - 4, snaplen + 4)
            } else {
                (mac, snaplen)
            };
            // SAFETY: the range lies in the frame (checked above); the mapping lives as
            // long as `zc.owner`'s Arc, which `out` holds, and the bytes do not change
            // until the slot is released through `out`, which drops this slice first.
            let data: &'static [u8] = unsafe { std::slice::from_raw_parts(h.add(start), flen) };
            zc.map.status(slot).store(TP_STATUS_LENT, Ordering::Relaxed);
            out.push(
                Frame {
                    data,
                    vnet,
                    tunnel_id: 0,
                },
                slot as u32,
            );
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += flen as u64;
            n += 1;
        }
        if big {
            // Switch now, so that what the sender sends next is not lost in the ring.
            self.leave_ring()?;
        }
        Ok(n)
    }

    /// `sendmmsg` `n` frames (`get(i)`: frame `i`'s bytes and offload header), 32 per
    /// call. Every frame is consumed: sent, or counted in `tx_errors` (refused) or
    /// `tx_dropped` (no room even after yielding, link down); so it returns `n` (as the
    /// AF_XDP port does), and a caller that retries the rest never sends a frame twice.
    /// Before, it returned the frames sent, and a caller retrying from there sent again
    /// what followed a refused frame.
    fn send_mmsg<'a>(
        &mut self,
        n: usize,
        get: impl Fn(usize) -> (&'a [u8], VnetHdr),
    ) -> io::Result<usize> {
        let mut i = 0;
        let mut again = 0;
        while i < n {
            let end = n.min(i + BATCH);
            let mut hdrs = [[0u8; VNET_HDR_LEN]; BATCH];
            // SAFETY: iovec/mmsghdr are plain old data; all-zero is valid.
            let mut iov: [libc::iovec; 2 * BATCH] = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            let mut lens = [0usize; BATCH];
            for k in 0..end - i {
                let (data, vnet) = get(i + k);
                hdrs[k] = vnet.to_bytes();
                lens[k] = data.len();
                iov[2 * k] = libc::iovec {
                    iov_base: hdrs[k].as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                };
                iov[2 * k + 1] = libc::iovec {
                    iov_base: data.as_ptr() as *mut libc::c_void,
                    iov_len: data.len(),
                };
                msgs[k].msg_hdr.msg_iov = &mut iov[2 * k];
                msgs[k].msg_hdr.msg_iovlen = 2;
            }
            // SAFETY: every msg points at two iovecs over live buffers (`hdrs`, the
            // frames' bytes, borrowed for 'a) that outlive the call; the kernel only
            // reads them.
            let r = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    (end - i) as libc::c_uint,
                    0,
                )
            };
            if r > 0 {
                let r = r as usize;
                for len in &lens[..r] {
                    self.stats.tx_packets += 1;
                    self.stats.tx_bytes += *len as u64;
                }
                i += r;
                again = 0;
                continue;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) if again < 64 => {
                    // The socket's send budget is in flight; it frees within
                    // microseconds on veth. Yield briefly rather than drop a TCP burst.
                    again += 1;
                    std::thread::yield_now();
                }
                Some(libc::EAGAIN) | Some(libc::ENOBUFS) => {
                    self.stats.tx_dropped += (n - i) as u64;
                    break;
                }
                Some(libc::EINTR) => {}
                Some(libc::ENXIO) | Some(libc::ENODEV) | Some(libc::ENETDOWN) => {
                    // Link down or device gone: drop the rest, report once.
                    self.stats.tx_dropped += (n - i) as u64;
                    if err.raw_os_error() == Some(libc::ENODEV) {
                        return Err(err);
                    }
                    break;
                }
                _ => {
                    // This one packet was refused (too big, bad vnet header): skip it.
                    self.stats.tx_errors += 1;
                    i += 1;
                }
            }
        }
        Ok(n)
    }

    /// `recvmmsg` straight into the batch's buffers (vnet header in its own iovec, the
    /// VLAN tag from the `PACKET_AUXDATA` control message).
    fn recv_mmsg(&mut self, out: &mut PacketBatch) -> io::Result<usize> {
        let room = out.room();
        if room == 0 {
            return Ok(0);
        }
        let start = out.len;
        let mut hdrs = [[0u8; VNET_HDR_LEN]; BATCH];
        let mut ctrl = [[0u64; 8]; BATCH];
        // SAFETY: iovec/mmsghdr are plain old data; all-zero is valid.
        let mut iov: [libc::iovec; 2 * BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for k in 0..room {
            let p = out.push().expect("room checked");
            p.data.reserve(self.max_frame);
            let spare = p.data.spare_capacity_mut();
            iov[2 * k] = libc::iovec {
                iov_base: hdrs[k].as_mut_ptr().cast(),
                iov_len: VNET_HDR_LEN,
            };
            iov[2 * k + 1] = libc::iovec {
                iov_base: spare.as_mut_ptr().cast(),
                iov_len: spare.len(),
            };
            msgs[k].msg_hdr.msg_iov = &mut iov[2 * k];
            msgs[k].msg_hdr.msg_iovlen = 2;
            msgs[k].msg_hdr.msg_control = ctrl[k].as_mut_ptr().cast();
            msgs[k].msg_hdr.msg_controllen = std::mem::size_of_val(&ctrl[k]) as _;
        }
        // SAFETY: every message points at writable buffers that outlive the call: its
        // vnet header array, the spare capacity of its packet buffer, its control array.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                room as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            out.len = start;
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let r = r as usize;
        let mut keep = start;
        for k in 0..r {
            let m = &msgs[k];
            let len = m.msg_len as usize;
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len < VNET_HDR_LEN + 14 {
                if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 && self.max_frame < BIG_FRAME {
                    // A super-frame above 64 KiB (BIG TCP on the sender): make room for
                    // the biggest the kernel builds from the next call on. Buffers that
                    // never see one keep their size until they are reused here.
                    self.max_frame = BIG_FRAME;
                }
                self.stats.rx_dropped += 1;
                continue;
            }
            // VLAN tag from the auxdata control message, if the kernel stripped one.
            let mut vlan = None;
            // SAFETY: the kernel filled `msg_controllen` bytes of `ctrl[k]` with
            // well-formed cmsgs; CMSG_FIRSTHDR/NXTHDR stay inside that length.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                while !c.is_null() {
                    if (*c).cmsg_level == SOL_PACKET && (*c).cmsg_type == PACKET_AUXDATA {
                        let d = libc::CMSG_DATA(c);
                        let status = (d as *const u32).read_unaligned();
                        let tci = (d.add(16) as *const u16).read_unaligned();
                        let tpid = (d.add(18) as *const u16).read_unaligned();
                        if status & TP_STATUS_VLAN_VALID != 0 {
                            let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                                tpid
                            } else {
                                0x8100
                            };
                            vlan = Some((tpid, tci));
                        }
                    }
                    c = libc::CMSG_NXTHDR(&m.msg_hdr, c);
                }
            }
            let slot = start + k;
            out.pkts.swap(keep, slot);
            let p = &mut out.pkts[keep];
            // SAFETY: recvmmsg wrote `len - 10` bytes into this buffer's spare capacity
            // (the buffers moved with their packets in the swap above).
            unsafe { p.data.set_len(len - VNET_HDR_LEN) };
            p.vnet = VnetHdr::from_bytes(&hdrs[k]);
            if let Some((tpid, tci)) = vlan {
                let mut tag = [0u8; 4];
                tag[..2].copy_from_slice(&tpid.to_be_bytes());
                tag[2..].copy_from_slice(&tci.to_be_bytes());
                p.data.splice(12..12, tag);
                p.vnet.shift(4);
            }
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += p.data.len() as u64;
            keep += 1;
        }
        out.len = keep;
        Ok(keep - start)
    }
}

/// The port's receiving socket (for a socket filter: see [`super::bpf::KernelTable::attach`]).
/// An `rx_zc` port that falls back to `recvmmsg` puts another socket behind this number.
impl AsFd for AfPacketPort {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Port for AfPacketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn ifindex(&self) -> Option<u32> {
        Some(self.ifindex)
    }

    fn mac(&self) -> Option<[u8; 6]> {
        if_mac(self.fd.as_raw_fd(), &self.name).ok()
    }

    fn link_up(&self) -> bool {
        if_flags(self.fd.as_raw_fd(), &self.name)
            .map(|f| {
                f & (libc::IFF_UP | libc::IFF_RUNNING) as u32
                    == (libc::IFF_UP | libc::IFF_RUNNING) as u32
            })
            .unwrap_or(false)
    }

    fn stats(&self) -> PortStats {
        let mut st = [0u32; 3]; // tpacket_stats_v3: packets, drops, freeze_q_cnt
        let mut len = std::mem::size_of_val(&st) as libc::socklen_t;
        // SAFETY: `st` is writable for `len` bytes; the kernel writes at most that.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                st.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r == 0 {
            // Reading resets the kernel's counters: accumulate.
            self.kernel_drops
                .set(self.kernel_drops.get() + u64::from(st[1]));
        }
        let mut s = self.stats;
        s.rx_dropped += self.kernel_drops.get();
        s
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn offloads(&self) -> bool {
        true
    }

    fn recv_batch(&mut self, out: &mut PacketBatch) -> io::Result<usize> {
        if self.zc.is_some() {
            // Copying receive from the lending ring (for callers that do not borrow).
            let mut b = std::mem::take(&mut self.zc_copy);
            let n = self.recv_zc(&mut b, out.room());
            for f in b.frames() {
                out.push_frame(f.data, f.vnet, f.tunnel_id);
            }
            b.release();
            self.zc_copy = b;
            return n;
        }
        if self.mmsg {
            return self.recv_mmsg(out);
        }
        let mut n = 0;
        while out.room() > 0 {
            if self.left == 0 {
                let status = self.block_status(self.cur).load(Ordering::Acquire);
                if status & TP_STATUS_USER == 0 {
                    break;
                }
                let b = self.block(self.cur);
                // SAFETY: header fields of a block we now own (see `read_u32`).
                self.left = self.read_u32(unsafe { b.add(BD_NUM_PKTS) });
                self.off = self.read_u32(unsafe { b.add(BD_FIRST) }) as usize;
                if self.left == 0 {
                    self.release_block();
                    continue;
                }
            }
            let b = self.block(self.cur);
            let off = self.off;
            // Bounds: the kernel keeps every packet inside its block; still check before
            // building a slice so a corrupt ring cannot make us read outside the mapping.
            // SAFETY (for the adds below): `off` < block_size, checked next.
            if off + H_PKTTYPE + 1 > self.block_size {
                self.release_block();
                continue;
            }
            let h = unsafe { b.add(off) };
            let next = self.read_u32(unsafe { h.add(H_NEXT) }) as usize;
            let snaplen = self.read_u32(unsafe { h.add(H_SNAPLEN) }) as usize;
            let wire_len = self.read_u32(unsafe { h.add(H_LEN) }) as usize;
            let status = self.read_u32(unsafe { h.add(H_STATUS) });
            let mac = usize::from(self.read_u16(unsafe { h.add(H_MAC) }));
            let tci = self.read_u32(unsafe { h.add(H_VLAN_TCI) }) as u16;
            let tpid = self.read_u16(unsafe { h.add(H_VLAN_TPID) });
            // SAFETY: inside the header checked above.
            let pkttype = unsafe { *h.add(H_PKTTYPE) };
            self.left -= 1;
            self.off = off + next;
            let ok_bounds = mac >= VNET_HDR_LEN && off + mac + snaplen <= self.block_size;
            if pkttype != PACKET_OUTGOING && ok_bounds && snaplen == wire_len && snaplen >= 14 {
                // SAFETY: the range [off+mac-10, off+mac+snaplen) was checked to lie in
                // this block, which the kernel does not touch until we release it.
                let (vh, frame) = unsafe {
                    (
                        std::slice::from_raw_parts(h.add(mac - VNET_HDR_LEN), VNET_HDR_LEN),
                        std::slice::from_raw_parts(h.add(mac), snaplen),
                    )
                };
                let p = out.push().expect("room checked");
                p.vnet = VnetHdr::from_bytes(vh.try_into().expect("10 bytes"));
                if status & TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                        tpid
                    } else {
                        0x8100
                    };
                    p.data.extend_from_slice(&frame[..12]);
                    p.data.extend_from_slice(&tpid.to_be_bytes());
                    p.data.extend_from_slice(&tci.to_be_bytes());
                    p.data.extend_from_slice(&frame[12..]);
                    p.vnet.shift(4);
                } else {
                    p.data.extend_from_slice(frame);
                }
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += p.data.len() as u64;
                n += 1;
            } else if pkttype != PACKET_OUTGOING {
                self.stats.rx_dropped += 1;
            }
            if self.left == 0 || next == 0 {
                self.release_block();
            }
        }
        Ok(n)
    }

    fn send_batch(&mut self, pkts: &mut [Packet]) -> io::Result<usize> {
        if let Some(tx) = &mut self.tx {
            let (sent, big, bad) = tx.send(pkts)?;
            for p in &pkts[..sent] {
                self.stats.tx_bytes += p.data.len() as u64;
            }
            self.stats.tx_packets += (sent as u64).saturating_sub(bad);
            self.stats.tx_errors += big + bad;
            self.stats.tx_dropped += (pkts.len() - sent) as u64 - big;
            // Consumed, as with sendmmsg (see `send_mmsg`).
            return Ok(pkts.len());
        }
        self.send_mmsg(pkts.len(), |i| (&pkts[i].data, pkts[i].vnet))
    }

    fn recv_borrowed(&mut self, out: &mut BorrowedBatch) -> Option<io::Result<usize>> {
        self.zc.as_ref()?;
        Some(self.recv_zc(out, BATCH))
    }

    fn send_frames(&mut self, frames: &[Frame<'_>]) -> io::Result<usize> {
        if self.tx.is_some() {
            let mut pk: Vec<Packet> = frames
                .iter()
                .map(|f| Packet {
                    data: f.data.to_vec(),
                    vnet: f.vnet,
                    tunnel_id: f.tunnel_id,
                })
                .collect();
            return self.send_batch(&mut pk);
        }
        self.send_mmsg(frames.len(), |i| (frames[i].data, frames[i].vnet))
    }
}
