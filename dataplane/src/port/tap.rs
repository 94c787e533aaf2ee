//! [`TapPort`]: a TAP device (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`), the
//! LOCAL/internal port of a bridge.
//!
//! With the virtio-net header on and `TUNSETOFFLOAD` (csum, TSO4/6, ECN) the host stack
//! hands us GSO super-frames and partial checksums, and takes them back; the fd is
//! non-blocking and pollable. Reads and writes are one syscall per packet (`readv` /
//! `writev` straight into and out of the packet buffers).

// Port I/O module: the tun fd is driven through ioctl/readv/writev.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::afpacket::{if_flags, if_mac, ifreq, ifreq_ioctl};
use super::offload::{VNET_HDR_LEN, VnetHdr};
use super::{Packet, PacketBatch, Port, PortStats};

const TUNSETOFFLOAD: libc::Ioctl = 0x4004_54d0;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const TUN_F_TSO6: libc::c_uint = 0x04;
const TUN_F_TSO_ECN: libc::c_uint = 0x08;
/// Biggest frame we read: a 64 KiB GSO frame plus Ethernet and VLAN headers.
const MAX_FRAME: usize = 65536 + 18;

/// A TAP device as a [`Port`].
#[derive(Debug)]
pub struct TapPort {
    name: String,
    fd: OwnedFd,
    /// A datagram socket for interface ioctls (flags, MAC) in the tap's namespace.
    ctl: OwnedFd,
    stats: PortStats,
}

impl TapPort {
    /// Create (or attach to) the TAP device `name` in the current network namespace.
    /// It goes away when the port is dropped (unless made persistent elsewhere).
    pub fn open(name: &str) -> io::Result<TapPort> {
        let path = c"/dev/net/tun";
        // SAFETY: opening a device file; the fd is checked and owned right away.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut ifr = ifreq(name)?;
        ifr.ifr_ifru.ifru_flags =
            (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as libc::c_short;
        ifreq_ioctl(raw, libc::TUNSETIFF, &mut ifr)?;
        let off = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        // SAFETY: TUNSETOFFLOAD takes its argument by value.
        if unsafe { libc::ioctl(raw, TUNSETOFFLOAD, off as libc::c_ulong) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: plain syscall; fd checked and owned right away.
        let c = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if c < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `c` is a fresh fd nobody else owns.
        let ctl = unsafe { OwnedFd::from_raw_fd(c) };
        Ok(TapPort {
            name: name.to_string(),
            fd,
            ctl,
            stats: PortStats::default(),
        })
    }

    /// Set the interface administratively up or down (like `ip link set NAME up`).
    pub fn set_admin_up(&self, up: bool) -> io::Result<()> {
        let flags = if_flags(self.ctl.as_raw_fd(), &self.name)?;
        let flags = if up {
            flags | libc::IFF_UP as u32
        } else {
            flags & !(libc::IFF_UP as u32)
        };
        let mut ifr = ifreq(&self.name)?;
        ifr.ifr_ifru.ifru_flags = flags as u16 as libc::c_short;
        ifreq_ioctl(self.ctl.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr)
    }
}

impl Port for TapPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn ifindex(&self) -> Option<u32> {
        let mut ifr = ifreq(&self.name).ok()?;
        ifreq_ioctl(self.ctl.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr).ok()?;
        // SAFETY: SIOCGIFINDEX filled the `ifru_ifindex` member.
        Some(unsafe { ifr.ifr_ifru.ifru_ifindex } as u32)
    }

    fn mac(&self) -> Option<[u8; 6]> {
        if_mac(self.ctl.as_raw_fd(), &self.name).ok()
    }

    fn link_up(&self) -> bool {
        if_flags(self.ctl.as_raw_fd(), &self.name)
            .map(|f| f & libc::IFF_UP as u32 != 0)
            .unwrap_or(false)
    }

    fn stats(&self) -> PortStats {
        self.stats
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn offloads(&self) -> bool {
        true
    }

    fn recv_batch(&mut self, out: &mut PacketBatch) -> io::Result<usize> {
        let mut n = 0;
        while out.room() > 0 {
            let p = out.push().expect("room checked");
            p.data.reserve(MAX_FRAME);
            let mut hdr = [0u8; VNET_HDR_LEN];
            let spare = p.data.spare_capacity_mut();
            let mut iov = [
                libc::iovec {
                    iov_base: hdr.as_mut_ptr().cast(),
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: spare.as_mut_ptr().cast(),
                    iov_len: spare.len(),
                },
            ];
            // SAFETY: both iovecs point at writable memory of the given lengths (the
            // header array and the vector's spare capacity).
            let r = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_mut_ptr(), 2) };
            if r < 0 {
                out.unpush();
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock => break,
                    io::ErrorKind::Interrupted => continue,
                    _ => return if n > 0 { Ok(n) } else { Err(e) },
                }
            }
            let r = r as usize;
            if r < VNET_HDR_LEN + 14 {
                out.unpush();
                self.stats.rx_dropped += 1;
                continue;
            }
            // SAFETY: readv initialised `r - 10` bytes of the spare capacity.
            unsafe { p.data.set_len(r - VNET_HDR_LEN) };
            p.vnet = VnetHdr::from_bytes(&hdr);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += p.data.len() as u64;
            n += 1;
        }
        Ok(n)
    }

    fn send_batch(&mut self, pkts: &mut [Packet]) -> io::Result<usize> {
        for p in pkts.iter() {
            let hdr = p.vnet.to_bytes();
            let iov = [
                libc::iovec {
                    iov_base: hdr.as_ptr() as *mut libc::c_void,
                    iov_len: VNET_HDR_LEN,
                },
                libc::iovec {
                    iov_base: p.data.as_ptr() as *mut libc::c_void,
                    iov_len: p.data.len(),
                },
            ];
            // SAFETY: both iovecs point at live readable buffers of the given lengths.
            let r = unsafe { libc::writev(self.fd.as_raw_fd(), iov.as_ptr(), 2) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    self.stats.tx_dropped += 1;
                } else {
                    self.stats.tx_errors += 1;
                }
                continue;
            }
            self.stats.tx_packets += 1;
            self.stats.tx_bytes += p.data.len() as u64;
        }
        // Every frame was written or counted: the whole batch is consumed.
        Ok(pkts.len())
    }
}
