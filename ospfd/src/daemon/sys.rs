//! Thin libc wrappers the daemon needs: per-interface raw IP sockets for protocol 89 with
//! AllSPFRouters/AllDRouters membership, interface address lookup, a signalfd for
//! SIGTERM/SIGINT, and poll(2). Every `unsafe` block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::consts::*;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live value of the size we pass; the kernel only reads it.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// A raw OSPF socket bound to one interface.
#[derive(Debug)]
pub struct RawSock {
    fd: OwnedFd,
}

impl RawSock {
    pub fn open(ifname: &str, ifindex: u32, addr: Ipv4Addr) -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the returned descriptor is owned below.
        let fd = cvt(unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(IPPROTO_OSPF),
            )
        })?;
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        let name = CString::new(ifname).map_err(|_| io::Error::other("bad interface name"))?;
        let nb = name.as_bytes_with_nul();
        // SAFETY: the name buffer is valid for its length.
        cvt(unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                nb.as_ptr().cast(),
                nb.len() as libc::socklen_t,
            )
        })?;
        let mreqn = |group: Ipv4Addr| libc::ip_mreqn {
            imr_multiaddr: libc::in_addr {
                s_addr: u32::from(group).to_be(),
            },
            imr_address: libc::in_addr {
                s_addr: u32::from(addr).to_be(),
            },
            imr_ifindex: ifindex as libc::c_int,
        };
        setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            &mreqn(ALL_SPF_ROUTERS),
        )?;
        setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            &mreqn(ALL_D_ROUTERS),
        )?;
        setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            &mreqn(Ipv4Addr::UNSPECIFIED),
        )?;
        setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_LOOP,
            &0 as &libc::c_int,
        )?;
        setsockopt(
            raw,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_TTL,
            &1 as &libc::c_int,
        )?;
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_TTL, &1 as &libc::c_int)?;
        setsockopt(raw, libc::IPPROTO_IP, libc::IP_TOS, &0xc0 as &libc::c_int)?;
        Ok(RawSock { fd })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receive one datagram: (src, dst, OSPF payload). `None` when nothing is pending.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<(Ipv4Addr, Ipv4Addr, usize, usize)>> {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(self.fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let n = n as usize;
        if n < 20 {
            return Ok(Some((Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED, 0, 0)));
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
        let dst = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
        Ok(Some((src, dst, ihl.min(n), n)))
    }

    pub fn send(&self, dst: Ipv4Addr, data: &[u8]) -> io::Result<()> {
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(dst).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: `data` and `sa` are valid for the lengths given.
        cvt(unsafe {
            libc::sendto(
                self.fd(),
                data.as_ptr().cast(),
                data.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ) as libc::c_int
        })
        .map(|_| ())
    }
}

/// Index of a named interface.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// Every IPv4 address in this network namespace: (interface name, address, prefix length).
pub fn ipv4_addrs() -> Vec<(String, Ipv4Addr, u8)> {
    let mut v = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return v;
    }
    let mut p = head;
    while !p.is_null() {
        // SAFETY: `p` is a node of the list returned by getifaddrs, alive until freeifaddrs.
        let ifa = unsafe { &*p };
        p = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_netmask.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so both point to sockaddr_in.
        let (a, m) = unsafe {
            (
                &*(ifa.ifa_addr as *const libc::sockaddr_in),
                &*(ifa.ifa_netmask as *const libc::sockaddr_in),
            )
        };
        // SAFETY: ifa_name is a valid C string for the life of the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let addr = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
        let len = u32::from_be(m.sin_addr.s_addr).leading_ones() as u8;
        v.push((name, addr, len));
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    v
}

/// MTU and whether the link is up (operstate up or unknown, as for loopback).
pub fn link_info(name: &str) -> (u16, bool) {
    let rd =
        |f: &str| std::fs::read_to_string(format!("/sys/class/net/{name}/{f}")).unwrap_or_default();
    let mtu = rd("mtu").trim().parse().unwrap_or(1500);
    let op = rd("operstate");
    let flags = u32::from_str_radix(rd("flags").trim().trim_start_matches("0x"), 16).unwrap_or(0);
    let up = flags & 1 != 0 && matches!(op.trim(), "up" | "unknown");
    (mtu, up)
}

/// Block SIGTERM and SIGINT and return a descriptor that becomes readable when one arrives.
pub fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: sigset operations on a local, initialised set; signalfd returns a new descriptor.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        cvt(libc::pthread_sigmask(
            libc::SIG_BLOCK,
            &set,
            std::ptr::null_mut(),
        ))?;
        let fd = cvt(libc::signalfd(
            -1,
            &set,
            libc::SFD_NONBLOCK | libc::SFD_CLOEXEC,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// poll(2) on `fds` for readability; returns which are readable.
pub fn poll_read(fds: &[RawFd], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut p: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `p` is a valid array of pollfd of the given length.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, timeout_ms) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(p.iter().map(|x| x.revents != 0).collect())
}
