//! Kernel routes over a synchronous rtnetlink socket: RTM_NEWROUTE (create/replace, with
//! RTA_MULTIPATH for ECMP) and RTM_DELROUTE, protocol `ospf` (188). Messages are built by hand;
//! every request is acknowledged before the next one.
#![allow(unsafe_code)]

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::consts::RTPROT_OSPF;
use crate::types::Prefix;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_GETROUTE: u16 = 26;
const NLM_F_DUMP: u16 = 0x300;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;

/// A route's next hop as the kernel sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KNexthop {
    pub ifindex: u32,
    pub gw: Option<Ipv4Addr>,
}

#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

fn attr(buf: &mut Vec<u8>, t: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&t.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

impl Netlink {
    pub fn open() -> io::Result<Self> {
        // SAFETY: socket(2); the descriptor is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a valid timeval for the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(Netlink { fd, seq: 1 })
    }

    fn request(&mut self, msg_type: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        self.seq += 1;
        let mut m = Vec::with_capacity(16 + body.len());
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&msg_type.to_ne_bytes());
        m.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        // SAFETY: sockaddr_nl zeroed is a valid "kernel" address.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buffers valid for the lengths given.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                m.as_ptr().cast(),
                m.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        loop {
            // SAFETY: `buf` valid for writes of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            let mut off = 0;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
                let t = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let seq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes"));
                if t == NLMSG_ERROR && seq == self.seq && off + 20 <= n {
                    let err =
                        i32::from_ne_bytes(buf[off + 16..off + 20].try_into().expect("4 bytes"));
                    return if err == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-err))
                    };
                }
                if len < 16 {
                    break;
                }
                off += (len + 3) & !3;
            }
        }
    }

    fn rtmsg(p: Prefix, table: u32) -> Vec<u8> {
        let mut b = vec![
            libc::AF_INET as u8,
            p.len,
            0,
            0,
            if table < 256 { table as u8 } else { 252 },
            RTPROT_OSPF,
            0, // RT_SCOPE_UNIVERSE
            1, // RTN_UNICAST
        ];
        b.extend_from_slice(&0u32.to_ne_bytes());
        attr(&mut b, RTA_TABLE, &table.to_ne_bytes());
        attr(&mut b, RTA_DST, &p.addr.octets());
        b
    }

    /// Install or replace a route.
    pub fn replace(
        &mut self,
        p: Prefix,
        nhs: &[KNexthop],
        table: u32,
        metric: u32,
    ) -> io::Result<()> {
        let mut b = Self::rtmsg(p, table);
        attr(&mut b, RTA_PRIORITY, &metric.to_ne_bytes());
        match nhs {
            [] => return Ok(()),
            [n] => {
                attr(&mut b, RTA_OIF, &n.ifindex.to_ne_bytes());
                if let Some(g) = n.gw {
                    attr(&mut b, RTA_GATEWAY, &g.octets());
                }
            }
            many => {
                let mut mp = Vec::new();
                for n in many {
                    // struct rtnexthop { u16 len; u8 flags; u8 hops; i32 ifindex } + attrs
                    let mut one = Vec::new();
                    if let Some(g) = n.gw {
                        attr(&mut one, RTA_GATEWAY, &g.octets());
                    }
                    mp.extend_from_slice(&((8 + one.len()) as u16).to_ne_bytes());
                    mp.push(0);
                    mp.push(0);
                    mp.extend_from_slice(&(n.ifindex as i32).to_ne_bytes());
                    mp.extend_from_slice(&one);
                }
                attr(&mut b, RTA_MULTIPATH, &mp);
            }
        }
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &b)
    }

    /// Delete every IPv4 route of protocol `ospf` in `table` (left behind by a previous run
    /// that could not clean up). Returns how many were removed.
    pub fn sweep(&mut self, table: u32) -> io::Result<usize> {
        self.seq += 1;
        let mut body = vec![libc::AF_INET as u8, 0, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&0u32.to_ne_bytes());
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
        m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        m.extend_from_slice(&self.seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&body);
        // SAFETY: `m` is valid for its length; the socket is connected to the kernel by default.
        if unsafe { libc::send(self.fd.as_raw_fd(), m.as_ptr().cast(), m.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut stale: Vec<(Prefix, u32)> = Vec::new();
        let mut buf = vec![0u8; 32768];
        'outer: loop {
            // SAFETY: `buf` valid for writes of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            let mut off = 0;
            while off + 16 <= n {
                let len =
                    u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
                let t = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < 16 || off + len > n {
                    break;
                }
                if t == NLMSG_DONE || t == NLMSG_ERROR {
                    break 'outer;
                }
                let msg = &buf[off + 16..off + len];
                if t == RTM_NEWROUTE && msg.len() >= 12 && msg[5] == RTPROT_OSPF {
                    let dst_len = msg[1];
                    let mut rt_table = u32::from(msg[4]);
                    let mut dst = Ipv4Addr::UNSPECIFIED;
                    let mut prio = 0;
                    let mut a = 12;
                    while a + 4 <= msg.len() {
                        let alen = usize::from(u16::from_ne_bytes([msg[a], msg[a + 1]]));
                        let at = u16::from_ne_bytes([msg[a + 2], msg[a + 3]]);
                        if alen < 4 || a + alen > msg.len() {
                            break;
                        }
                        let d = &msg[a + 4..a + alen];
                        match (at, d.len()) {
                            (RTA_DST, 4) => dst = Ipv4Addr::new(d[0], d[1], d[2], d[3]),
                            (RTA_PRIORITY, 4) => {
                                prio = u32::from_ne_bytes(d.try_into().expect("4 bytes"))
                            }
                            (RTA_TABLE, 4) => {
                                rt_table = u32::from_ne_bytes(d.try_into().expect("4 bytes"))
                            }
                            _ => {}
                        }
                        a += (alen + 3) & !3;
                    }
                    if rt_table == table {
                        stale.push((Prefix::new(dst, dst_len), prio));
                    }
                }
                off += (len + 3) & !3;
            }
        }
        for (p, prio) in &stale {
            self.delete(*p, table, *prio)?;
        }
        Ok(stale.len())
    }

    /// Withdraw a route we installed.
    pub fn delete(&mut self, p: Prefix, table: u32, metric: u32) -> io::Result<()> {
        let mut b = Self::rtmsg(p, table);
        attr(&mut b, RTA_PRIORITY, &metric.to_ne_bytes());
        self.request(RTM_DELROUTE, 0, &b)
    }
}
