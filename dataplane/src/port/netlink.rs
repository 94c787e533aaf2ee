//! Link monitor: rtnetlink `RTM_NEWLINK`/`RTM_DELLINK` messages as [`LinkEvent`]s, which
//! the daemon turns into PORT_STATUS and fast-failover liveness.
//!
//! [`parse_link_messages`] is a pure function over the bytes of one netlink datagram
//! (testable with captured bytes); [`LinkMonitor`] is the thin socket around it
//! (`NETLINK_ROUTE`, group `RTMGRP_LINK`, non-blocking, pollable; [`LinkMonitor::dump`]
//! asks for every link's current state).

// Port I/O module: the netlink socket is driven through raw syscalls.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

const NLMSG_HDR: usize = 16;
const IFINFO_LEN: usize = 16;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const IFLA_IFNAME: u16 = 3;
const IFLA_OPERSTATE: u16 = 16;
const RTMGRP_LINK: u32 = 1;
const IFF_UP: u32 = 0x1;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x1_0000;
/// RFC 2863 operational states (`IF_OPER_*`).
pub const OPER_UNKNOWN: u8 = 0;
/// `IF_OPER_UP`.
pub const OPER_UP: u8 = 6;

/// One link's state as a netlink message reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    /// Interface index (in the monitor's network namespace).
    pub ifindex: u32,
    /// Interface name, when the message carried it.
    pub name: Option<String>,
    /// `IFF_*` flags.
    pub flags: u32,
    /// `IFLA_OPERSTATE`, when present.
    pub operstate: Option<u8>,
    /// The link was deleted (`RTM_DELLINK`).
    pub deleted: bool,
}

impl LinkEvent {
    /// Administratively up (`IFF_UP`).
    pub fn admin_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    /// Can carry packets: exists, admin up, carrier (`IFF_RUNNING` / `IFF_LOWER_UP`),
    /// and the operational state, if given, is up or unknown (e.g. loopback, tun).
    pub fn is_up(&self) -> bool {
        !self.deleted
            && self.admin_up()
            && self.flags & (IFF_RUNNING | IFF_LOWER_UP) != 0
            && matches!(self.operstate, None | Some(OPER_UNKNOWN) | Some(OPER_UP))
    }
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(o..o + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// The attributes (type, value) of a link message's body (`msg`: after the nlmsghdr,
/// starting with the ifinfomsg); a malformed one ends the walk.
fn link_attrs(msg: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut attrs = msg.get(IFINFO_LEN..).unwrap_or_default();
    std::iter::from_fn(move || {
        let alen = usize::from(u16_at(attrs, 0)?);
        let aty = u16_at(attrs, 2)? & 0x3fff;
        if alen < 4 || alen > attrs.len() {
            return None;
        }
        let val = &attrs[4..alen];
        attrs = attrs.get((alen + 3) & !3..).unwrap_or_default();
        Some((aty, val))
    })
}

/// Parse every link message in one netlink datagram (host byte order, as the kernel
/// sends it), appending one event per `RTM_NEWLINK`/`RTM_DELLINK`. Other messages are
/// skipped; a truncated message ends the parse. Returns true if `NLMSG_DONE` was seen
/// (end of a dump).
pub fn parse_link_messages(mut buf: &[u8], out: &mut Vec<LinkEvent>) -> bool {
    let mut done = false;
    while buf.len() >= NLMSG_HDR {
        let (Some(len), Some(ty)) = (u32_at(buf, 0), u16_at(buf, 4)) else {
            break;
        };
        let len = len as usize;
        if len < NLMSG_HDR || len > buf.len() {
            break;
        }
        let msg = &buf[NLMSG_HDR..len];
        if ty == NLMSG_DONE {
            done = true;
        }
        if (ty == RTM_NEWLINK || ty == RTM_DELLINK) && msg.len() >= IFINFO_LEN {
            let ifindex = u32_at(msg, 4).unwrap_or(0);
            let flags = u32_at(msg, 8).unwrap_or(0);
            let mut ev = LinkEvent {
                ifindex,
                name: None,
                flags,
                operstate: None,
                deleted: ty == RTM_DELLINK,
            };
            for (aty, val) in link_attrs(msg) {
                match aty {
                    IFLA_IFNAME => {
                        let s = val.split(|&c| c == 0).next().unwrap_or(&[]);
                        ev.name = Some(String::from_utf8_lossy(s).into_owned());
                    }
                    IFLA_OPERSTATE => ev.operstate = val.first().copied(),
                    _ => {}
                }
            }
            out.push(ev);
        }
        let adv = (len + 3) & !3;
        if adv >= buf.len() {
            break;
        }
        buf = &buf[adv..];
    }
    done
}

/// A netlink socket subscribed to link changes in the current network namespace.
#[derive(Debug)]
pub struct LinkMonitor {
    fd: OwnedFd,
    buf: Vec<u8>,
    seq: u32,
}

impl LinkMonitor {
    /// Open and subscribe to `RTMGRP_LINK` (non-blocking).
    pub fn open() -> io::Result<LinkMonitor> {
        // SAFETY: plain syscall; the fd is checked and owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `sockaddr_nl` is plain old data; all-zero is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = RTMGRP_LINK;
        // SAFETY: `sa` is a valid sockaddr_nl of the length passed.
        let r = unsafe {
            libc::bind(
                raw,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(LinkMonitor {
            fd,
            buf: vec![0; 32768],
            seq: 0,
        })
    }

    /// Ask the kernel for every link's current state; the answers arrive through
    /// [`LinkMonitor::recv`] like any event.
    pub fn dump(&mut self) -> io::Result<()> {
        self.seq += 1;
        let mut req = [0u8; NLMSG_HDR + IFINFO_LEN];
        req[0..4].copy_from_slice(&((NLMSG_HDR + IFINFO_LEN) as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        req[NLMSG_HDR] = libc::AF_UNSPEC as u8;
        // SAFETY: `req` is a readable buffer of the length passed.
        let r = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Read every pending datagram, appending its link events to `out`; returns how
    /// many were appended (0: nothing pending). `ENOBUFS` (events lost because we were
    /// slow) is returned as an error: the caller should [`LinkMonitor::dump`] again.
    pub fn recv(&mut self, out: &mut Vec<LinkEvent>) -> io::Result<usize> {
        let before = out.len();
        loop {
            // SAFETY: `buf` is writable for its length.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            parse_link_messages(&self.buf[..r as usize], out);
        }
        Ok(out.len() - before)
    }

    /// Sleeps until a message is pending or `timeout` has passed.
    pub fn wait(&self, timeout: Duration) {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd that lives across the call.
        unsafe { libc::poll(&mut p, 1, ms) };
    }
}

impl AsRawFd for LinkMonitor {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IFLA_GSO_MAX_SIZE: u16 = 41;
const IFLA_TSO_MAX_SIZE: u16 = 59;
const IFLA_GSO_IPV4_MAX_SIZE: u16 = 63;
/// The kernel's `GSO_MAX_SIZE`.
const GSO_MAX: u32 = 512 << 10;

/// One rtnetlink request about link `ifindex` (nlmsghdr, ifinfomsg, u32 attributes) on a
/// socket of its own; returns the first reply message (header included).
fn link_request(
    ifindex: libc::c_int,
    ty: u16,
    flags: u16,
    attrs: &[(u16, u32)],
) -> io::Result<Vec<u8>> {
    let len = NLMSG_HDR + IFINFO_LEN + 8 * attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16 | flags).to_ne_bytes());
    m.extend_from_slice(&[0; 8]); // seq, pid
    m.extend_from_slice(&[0; 4]); // ifi_family, pad, ifi_type
    m.extend_from_slice(&ifindex.to_ne_bytes());
    m.extend_from_slice(&[0; 8]); // ifi_flags, ifi_change
    for (t, v) in attrs {
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&t.to_ne_bytes());
        m.extend_from_slice(&v.to_ne_bytes());
    }
    // SAFETY: plain syscall; the returned fd is checked and owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `m` is a live buffer of the length passed; the kernel only reads it.
    let r = unsafe { libc::send(fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: `buf` is writable for its length; the kernel writes at most that.
    let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(r as usize);
    Ok(buf)
}

/// Raises link `ifindex`'s `gso_max_size` and `gso_ipv4_max_size` to its `tso_max_size`
/// (at most the kernel's 512 KiB) where they are lower (see
/// [`super::afpacket::AfPacketConfig::raise_gso`]).
pub(crate) fn raise_gso(ifindex: libc::c_int) -> io::Result<()> {
    let reply = link_request(ifindex, RTM_GETLINK, 0, &[])?;
    let attr = |want: u16| {
        let msg = reply.get(NLMSG_HDR..)?;
        link_attrs(msg)
            .find(|(t, v)| *t == want && v.len() >= 4)
            .and_then(|(_, v)| u32_at(v, 0))
    };
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "no link attributes");
    let tso = attr(IFLA_TSO_MAX_SIZE).ok_or_else(bad)?.min(GSO_MAX);
    let gso = attr(IFLA_GSO_MAX_SIZE).ok_or_else(bad)?;
    let gso4 = attr(IFLA_GSO_IPV4_MAX_SIZE).ok_or_else(bad)?;
    if gso >= tso && gso4 >= tso {
        return Ok(());
    }
    let ack = link_request(
        ifindex,
        RTM_NEWLINK,
        NLM_F_ACK,
        &[
            (IFLA_GSO_MAX_SIZE, tso.max(gso)),
            (IFLA_GSO_IPV4_MAX_SIZE, tso.max(gso4)),
        ],
    )?;
    match (u16_at(&ack, 4), u32_at(&ack, NLMSG_HDR)) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(e)) => Err(io::Error::from_raw_os_error(-(e as i32))),
        _ => Err(bad()),
    }
}
