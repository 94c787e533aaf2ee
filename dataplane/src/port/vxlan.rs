//! [`VxlanPort`]: userspace VXLAN (RFC 7348) over UDP, one port per remote endpoint. The
//! VNI is the packet's `tunnel_id` (TUNNEL_ID in OpenFlow): set on receive from the
//! header, taken from the packet on send.
//!
//! The ports of one local address (in one network namespace) share one UDP socket, so any
//! number of remote endpoints can use UDP 4789 on one switch, as the kernel's and Open
//! vSwitch's tunnels do. Datagrams are told apart by their source IP address (not the
//! source port: a sender may pick it per flow, as Linux does): whichever port reads the
//! socket keeps the datagrams of its own remote, queues those of another port's remote in
//! that port's inbox and wakes it, and drops the rest (counted as its `rx_dropped`).
//! Each port's pollable descriptor is an epoll set of the shared socket and its inbox's
//! eventfd, so a datapath thread sleeping on it wakes for both.
//!
//! Offload cannot follow a packet into a tunnel, so GSO frames are segmented and partial
//! checksums completed in software before encapsulation. The outer UDP source port is
//! the socket's; the outer checksum is left to the kernel's UDP socket.
//! [`encap`] and [`decap`] are pure functions.

#![allow(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use super::offload::software_offload;
use super::{Packet, PacketBatch, Port, PortStats};

/// IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// VXLAN header length.
pub const VXLAN_HDR_LEN: usize = 8;
const FLAG_I: u8 = 0x08;
/// Datagrams an inbox holds for a port whose thread has not read them yet.
const INBOX_MAX: usize = 1024;

/// Write the VXLAN header for `vni` (low 24 bits) and `frame` into `out` (cleared first).
pub fn encap(vni: u32, frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let v = (vni & 0x00ff_ffff).to_be_bytes();
    out.extend_from_slice(&[FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]);
    out.extend_from_slice(frame);
}

/// Split a VXLAN datagram into (VNI, inner frame); `None` if it is not one (too short,
/// I flag clear, inner frame shorter than an Ethernet header).
pub fn decap(dgram: &[u8]) -> Option<(u32, &[u8])> {
    if dgram.len() < VXLAN_HDR_LEN + 14 || dgram[0] & FLAG_I == 0 {
        return None;
    }
    let vni = u32::from_be_bytes([0, dgram[4], dgram[5], dgram[6]]);
    Some((vni, &dgram[VXLAN_HDR_LEN..]))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Inner frames (with their VNI) read for a port by another port, and the eventfd that
/// tells its thread.
#[derive(Debug)]
struct Inbox {
    frames: Mutex<VecDeque<(u32, Vec<u8>)>>,
    event: OwnedFd,
}

impl Inbox {
    fn new() -> io::Result<Inbox> {
        // SAFETY: plain syscall; the fd is checked and owned right away.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Inbox {
            frames: Mutex::new(VecDeque::new()),
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            event: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Queues a frame; false if the inbox is full. The reader wakes the owner once per
    /// batch ([`Inbox::wake`]), not per frame.
    fn push(&self, vni: u32, frame: &[u8]) -> bool {
        let mut q = lock(&self.frames);
        if q.len() >= INBOX_MAX {
            return false;
        }
        q.push_back((vni, frame.to_vec()));
        true
    }

    /// Makes the owner's descriptor readable.
    fn wake(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to an eventfd we own. A full counter
        // (EAGAIN) still leaves it readable, which is all the wake-up needs.
        unsafe { libc::write(self.event.as_raw_fd(), one.as_ptr().cast(), 8) };
    }

    /// Clears the wake-up (before the queue is drained, so a push after this wakes
    /// again).
    fn clear(&self) {
        let mut b = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live buffer from an eventfd we own;
        // EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.event.as_raw_fd(), b.as_mut_ptr().cast(), 8) };
    }
}

/// One UDP socket and the inboxes of the ports that use it, by remote IP.
#[derive(Debug)]
struct Shared {
    sock: UdpSocket,
    ports: Mutex<HashMap<IpAddr, Arc<Inbox>>>,
    key: (u64, u64, SocketAddr),
}

impl Drop for Shared {
    fn drop(&mut self) {
        let mut r = lock(registry());
        if r.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            r.remove(&self.key);
        }
    }
}

type Registry = Mutex<HashMap<(u64, u64, SocketAddr), Weak<Shared>>>;

/// Open sockets by (network namespace device and inode, local address).
fn registry() -> &'static Registry {
    static R: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    R.get_or_init(Registry::default)
}

/// The calling thread's network namespace (device, inode).
fn netns_id() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").map_or((0, 0), |m| (m.dev(), m.ino()))
}

/// The socket bound to `local` in this namespace: the one other ports use, or a new one.
fn shared_socket(local: SocketAddr) -> io::Result<Arc<Shared>> {
    let (dev, ino) = netns_id();
    let mut r = lock(registry());
    // A port bound to port 0 gets its own socket (nothing to share with).
    if local.port() != 0
        && let Some(s) = r.get(&(dev, ino, local)).and_then(Weak::upgrade)
    {
        return Ok(s);
    }
    let sock = UdpSocket::bind(local)?;
    sock.set_nonblocking(true)?;
    let key = (dev, ino, sock.local_addr()?);
    let s = Arc::new(Shared {
        sock,
        ports: Mutex::new(HashMap::new()),
        key,
    });
    r.insert(key, Arc::downgrade(&s));
    Ok(s)
}

/// An epoll set of `fds` (level-triggered, readable).
fn epoll_of(fds: &[RawFd]) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the fd is checked and owned right away.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `ep` is a fresh descriptor nobody else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    for &fd in fds {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd as u64,
        };
        // SAFETY: `ep` and `fd` are open descriptors; `ev` is a live epoll_event.
        if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(ep)
}

/// A VXLAN tunnel to one remote endpoint as a [`Port`].
#[derive(Debug)]
pub struct VxlanPort {
    name: String,
    shared: Arc<Shared>,
    inbox: Arc<Inbox>,
    epoll: OwnedFd,
    remote: SocketAddr,
    buf: Vec<u8>,
    segs: Vec<Packet>,
    /// Inboxes this read queued frames in, woken once at its end.
    to_wake: Vec<Arc<Inbox>>,
    stats: PortStats,
}

impl VxlanPort {
    /// A tunnel to `remote` from `local` (e.g. `0.0.0.0:4789`): on the socket other ports
    /// of `local` in this network namespace use, or on a new one bound to it. Another
    /// port of the same socket with the same remote IP address is refused (AddrInUse).
    pub fn new(name: &str, local: SocketAddr, remote: SocketAddr) -> io::Result<VxlanPort> {
        let shared = shared_socket(local)?;
        let inbox = Arc::new(Inbox::new()?);
        {
            let mut ports = lock(&shared.ports);
            if ports.contains_key(&remote.ip()) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("a VXLAN port to {} on {local} exists", remote.ip()),
                ));
            }
            ports.insert(remote.ip(), inbox.clone());
        }
        let epoll = epoll_of(&[shared.sock.as_raw_fd(), inbox.event.as_raw_fd()])?;
        Ok(VxlanPort {
            name: name.to_string(),
            shared,
            inbox,
            epoll,
            remote,
            buf: vec![0; 65536],
            segs: Vec::new(),
            to_wake: Vec::new(),
            stats: PortStats::default(),
        })
    }

    /// The local address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.sock.local_addr()
    }

    /// Whether this port and `other` send and receive on the same UDP socket.
    pub fn shares_socket_with(&self, other: &VxlanPort) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The remote endpoint.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    fn send_one(&mut self, vni: u32, frame: &[u8]) -> bool {
        let mut b = std::mem::take(&mut self.buf);
        encap(vni, frame, &mut b);
        let r = self.shared.sock.send_to(&b, self.remote);
        self.buf = b;
        match r {
            Ok(_) => {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += frame.len() as u64;
                true
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.stats.tx_dropped += 1;
                false
            }
            Err(_) => {
                self.stats.tx_errors += 1;
                false
            }
        }
    }
}

impl Drop for VxlanPort {
    fn drop(&mut self) {
        let mut ports = lock(&self.shared.ports);
        if ports
            .get(&self.remote.ip())
            .is_some_and(|i| Arc::ptr_eq(i, &self.inbox))
        {
            ports.remove(&self.remote.ip());
        }
    }
}

impl Port for VxlanPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> PortStats {
        self.stats
    }

    /// An epoll set of the shared socket and this port's inbox: readable when either is.
    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.epoll.as_raw_fd())
    }

    fn recv_batch(&mut self, out: &mut PacketBatch) -> io::Result<usize> {
        let mut n = 0;
        // First what other ports read for this one.
        self.inbox.clear();
        {
            let mut q = lock(&self.inbox.frames);
            while out.room() > 0 {
                let Some((vni, frame)) = q.pop_front() else {
                    break;
                };
                let p = out.push().expect("room checked");
                p.data.extend_from_slice(&frame);
                p.tunnel_id = u64::from(vni);
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += frame.len() as u64;
                n += 1;
            }
            if !q.is_empty() {
                // Not all fitted: stay readable.
                drop(q);
                self.inbox.wake();
            }
        }
        // (Sending encapsulates into the same buffer, which may leave it shorter.)
        if self.buf.len() < 65536 {
            self.buf.resize(65536, 0);
        }
        let mut failed = None;
        while out.room() > 0 {
            let (len, from) = match self.shared.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            let Some((vni, frame)) = decap(&self.buf[..len]) else {
                self.stats.rx_dropped += 1;
                continue;
            };
            if from.ip() != self.remote.ip() {
                let other = lock(&self.shared.ports).get(&from.ip()).cloned();
                match other {
                    Some(o) if o.push(vni, frame) => {
                        if !self.to_wake.iter().any(|w| Arc::ptr_eq(w, &o)) {
                            self.to_wake.push(o);
                        }
                    }
                    _ => self.stats.rx_dropped += 1,
                }
                continue;
            }
            let p = out.push().expect("room checked");
            p.data.extend_from_slice(frame);
            p.tunnel_id = u64::from(vni);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += frame.len() as u64;
            n += 1;
        }
        for o in self.to_wake.drain(..) {
            o.wake();
        }
        match failed {
            Some(e) if n == 0 => Err(e),
            _ => Ok(n),
        }
    }

    /// Accepted counts from the front, as the [`Port`] contract says: the first packet
    /// the socket refuses ends the batch, and it and the ones after it are counted as
    /// dropped (a caller that offers them again must not send the earlier ones twice).
    /// A packet software offload cannot handle is dropped, counted, and accepted; a GSO
    /// frame is accepted once any of its segments went.
    fn send_batch(&mut self, pkts: &mut [Packet]) -> io::Result<usize> {
        let total = pkts.len();
        for (i, p) in pkts.iter_mut().enumerate() {
            let vni = p.tunnel_id as u32;
            let went = if !p.needs_offload() {
                self.send_one(vni, &p.data)
            } else {
                let mut segs = std::mem::take(&mut self.segs);
                segs.clear();
                let went = if software_offload(p, &mut segs).is_err() {
                    self.stats.tx_dropped += 1;
                    true
                } else {
                    let mut any = false;
                    for s in &segs {
                        if !self.send_one(vni, &s.data) {
                            break;
                        }
                        any = true;
                    }
                    any
                };
                self.segs = segs;
                went
            };
            if !went {
                // `send_one` counted this one; the rest are dropped (and consumed: a
                // caller must not offer them again).
                self.stats.tx_dropped += (total - i - 1) as u64;
                return Ok(total);
            }
        }
        Ok(total)
    }
}
