//! [`VxlanPort`]: userspace VXLAN (RFC 7348) over a UDP socket, one port per remote
//! endpoint. The VNI is the packet's `tunnel_id` (TUNNEL_ID in OpenFlow): set on
//! receive from the header, taken from the packet on send.
//!
//! Offload cannot follow a packet into a tunnel, so GSO frames are segmented and partial
//! checksums completed in software before encapsulation. The outer UDP source port is
//! the socket's (one per port); the outer checksum is left to the kernel's UDP socket.
//! [`encap`] and [`decap`] are pure functions.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use super::offload::software_offload;
use super::{Packet, PacketBatch, Port, PortStats};

/// IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// VXLAN header length.
pub const VXLAN_HDR_LEN: usize = 8;
const FLAG_I: u8 = 0x08;

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

/// A VXLAN tunnel to one remote endpoint as a [`Port`].
#[derive(Debug)]
pub struct VxlanPort {
    name: String,
    sock: UdpSocket,
    remote: SocketAddr,
    buf: Vec<u8>,
    segs: Vec<Packet>,
    stats: PortStats,
}

impl VxlanPort {
    /// Bind `local` (e.g. `0.0.0.0:4789`) and tunnel to `remote`.
    pub fn new(name: &str, local: SocketAddr, remote: SocketAddr) -> io::Result<VxlanPort> {
        let sock = UdpSocket::bind(local)?;
        sock.set_nonblocking(true)?;
        Ok(VxlanPort {
            name: name.to_string(),
            sock,
            remote,
            buf: vec![0; 65536],
            segs: Vec::new(),
            stats: PortStats::default(),
        })
    }

    /// The local address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The remote endpoint.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    fn send_one(&mut self, vni: u32, frame: &[u8]) -> bool {
        let mut b = std::mem::take(&mut self.buf);
        encap(vni, frame, &mut b);
        let r = self.sock.send_to(&b, self.remote);
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

impl Port for VxlanPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> PortStats {
        self.stats
    }

    fn as_raw_fd(&self) -> Option<RawFd> {
        Some(self.sock.as_raw_fd())
    }

    fn recv_batch(&mut self, out: &mut PacketBatch) -> io::Result<usize> {
        let mut n = 0;
        if self.buf.len() < 65536 {
            self.buf.resize(65536, 0);
        }
        while out.room() > 0 {
            let (len, from) = match self.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return if n > 0 { Ok(n) } else { Err(e) },
            };
            if from.ip() != self.remote.ip() {
                self.stats.rx_dropped += 1;
                continue;
            }
            let Some((vni, frame)) = decap(&self.buf[..len]) else {
                self.stats.rx_dropped += 1;
                continue;
            };
            let p = out.push().expect("room checked");
            p.data.extend_from_slice(frame);
            p.tunnel_id = u64::from(vni);
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += frame.len() as u64;
            n += 1;
        }
        Ok(n)
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
                // `send_one` counted this one.
                self.stats.tx_dropped += (total - i - 1) as u64;
                return Ok(i);
            }
        }
        Ok(total)
    }
}
