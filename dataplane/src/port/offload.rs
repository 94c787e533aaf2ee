//! Offload metadata and its software fallback (no I/O, no `unsafe`).
//!
//! [`VnetHdr`] is Linux's `struct virtio_net_hdr` (10 bytes, host byte order, as
//! `PACKET_VNET_HDR` and `IFF_VNET_HDR` exchange it). A packet received with
//! `NEEDS_CSUM` still has its L4 checksum to compute (the field holds the pseudo-header
//! sum, the kernel's CHECKSUM_PARTIAL); a packet with a `gso_type` is a super-frame to be
//! cut into `gso_size`-byte segments. A port that can carry the header passes both on;
//! anywhere else, [`software_offload`] does the work:
//!
//! - [`complete_checksum`]: any partial checksum (TCP or UDP over IPv4 or IPv6; it only
//!   needs `csum_start`/`csum_offset`).
//! - [`refresh_partial_checksum`]: after the pipeline rewrote headers of a partial
//!   packet, put the right pseudo-header sum back.
//! - [`segment`]: TCP (v4/v6, also with ECN) and UDP_L4 (USO) super-frames into
//!   complete frames with every checksum filled in. Legacy UFO (IP fragmentation) is
//!   refused.

use thiserror::Error;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the L4 checksum still has to be computed.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the receiver already checked the checksum.
pub const F_DATA_VALID: u8 = 2;
/// Not a GSO frame.
pub const GSO_NONE: u8 = 0;
/// TCP over IPv4 GSO.
pub const GSO_TCPV4: u8 = 1;
/// Legacy UDP fragmentation offload (not supported in software).
pub const GSO_UDP: u8 = 3;
/// TCP over IPv6 GSO.
pub const GSO_TCPV6: u8 = 4;
/// UDP segmentation offload (each segment a datagram).
pub const GSO_UDP_L4: u8 = 5;
/// Flag on `gso_type`: TCP with ECN (CWR only on the first segment).
pub const GSO_ECN: u8 = 0x80;

/// Size of the header on the wire.
pub const VNET_HDR_LEN: usize = 10;

/// Linux `struct virtio_net_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VnetHdr {
    /// `F_NEEDS_CSUM`, `F_DATA_VALID`.
    pub flags: u8,
    /// `GSO_*`, possibly with `GSO_ECN`.
    pub gso_type: u8,
    /// Length of the headers (Ethernet to L4 inclusive) of a GSO frame.
    pub hdr_len: u16,
    /// Payload bytes per segment of a GSO frame.
    pub gso_size: u16,
    /// Offset from the frame start where checksumming starts (the L4 header).
    pub csum_start: u16,
    /// Offset from `csum_start` of the checksum field.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Decode from the 10 bytes the kernel wrote (host byte order).
    pub fn from_bytes(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_ne_bytes([b[2], b[3]]),
            gso_size: u16::from_ne_bytes([b[4], b[5]]),
            csum_start: u16::from_ne_bytes([b[6], b[7]]),
            csum_offset: u16::from_ne_bytes([b[8], b[9]]),
        }
    }

    /// Encode for the kernel.
    pub fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }

    /// True if the L4 checksum is still to be computed.
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    /// True if this is a GSO super-frame.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// Shift the offsets after `n` bytes were inserted before the L3 header (a VLAN tag).
    pub fn shift(&mut self, n: u16) {
        if self.needs_csum() {
            self.csum_start = self.csum_start.wrapping_add(n);
        }
        if self.is_gso() {
            self.hdr_len = self.hdr_len.wrapping_add(n);
        }
    }
}

/// Why the software fallback could not finish a packet.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    /// `csum_start`/`csum_offset` point outside the frame.
    #[error("checksum offsets outside the frame")]
    BadCsumOffsets,
    /// The frame is not the IPv4/IPv6 + TCP/UDP the GSO type says.
    #[error("GSO frame headers do not match its gso_type")]
    BadGsoHeaders,
    /// A GSO type we do not segment (legacy UFO).
    #[error("unsupported GSO type {0}")]
    UnsupportedGso(u8),
}

/// One's-complement sum of `data` added to `sum` (not folded).
pub fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([c[0], c[1]])));
        if sum > 0xffff_0000 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    if let [b] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*b) << 8);
    }
    sum
}

/// Fold a sum to 16 bits (not complemented).
pub fn csum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Finish a CHECKSUM_PARTIAL packet in place and clear `NEEDS_CSUM`. Works for any L4
/// protocol the kernel offloads (the field holds the pseudo-header sum already).
pub fn complete_checksum(frame: &mut [u8], vnet: &mut VnetHdr) -> Result<(), OffloadError> {
    if !vnet.needs_csum() {
        return Ok(());
    }
    let start = usize::from(vnet.csum_start);
    let field = start + usize::from(vnet.csum_offset);
    if field + 2 > frame.len() {
        return Err(OffloadError::BadCsumOffsets);
    }
    let mut c = !csum_fold(csum_add(0, &frame[start..]));
    if c == 0 && vnet.csum_offset == 6 {
        c = 0xffff; // UDP: zero means "no checksum"
    }
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    vnet.flags &= !F_NEEDS_CSUM;
    vnet.flags |= F_DATA_VALID;
    Ok(())
}

/// Offset of the L3 header after Ethernet and any VLAN tags, and its ethertype.
fn l3_of(frame: &[u8]) -> Option<(usize, u16)> {
    let mut l3 = 14;
    let mut et = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    while et == 0x8100 || et == 0x88a8 {
        et = u16::from_be_bytes([*frame.get(l3 + 2)?, *frame.get(l3 + 3)?]);
        l3 += 4;
    }
    Some((l3, et))
}

/// Rewrite the pseudo-header sum a CHECKSUM_PARTIAL packet carries in its L4 checksum
/// field, from the packet's current IP header. Call it after actions changed a partial
/// packet's headers: an incremental checksum update (RFC 1624) is wrong on such a
/// packet (the field is not a complemented full checksum; port rewrites must not touch
/// it, address rewrites must move it the other way). No-op unless `NEEDS_CSUM`.
pub fn refresh_partial_checksum(frame: &mut [u8], vnet: &VnetHdr) -> Result<(), OffloadError> {
    if !vnet.needs_csum() {
        return Ok(());
    }
    let bad = OffloadError::BadCsumOffsets;
    let l4 = usize::from(vnet.csum_start);
    let field = l4 + usize::from(vnet.csum_offset);
    let (l3, et) = l3_of(frame).ok_or(bad)?;
    if field + 2 > frame.len() {
        return Err(bad);
    }
    let proto = match vnet.csum_offset {
        16 => 6u32,
        6 => 17,
        _ => return Err(bad), // not TCP/UDP: leave it alone
    };
    let len = (frame.len() - l4) as u32;
    let sum = match et {
        0x0800 if l4 >= l3 + 20 => csum_add(0, &frame[l3 + 12..l3 + 20]),
        0x86dd if l4 >= l3 + 40 => csum_add(0, &frame[l3 + 8..l3 + 40]),
        _ => return Err(bad),
    };
    let p = csum_fold(sum + proto + len);
    frame[field..field + 2].copy_from_slice(&p.to_be_bytes());
    Ok(())
}

/// Make `pkt` leave-able on a port without offload: complete its checksum, or segment it
/// when it is a GSO frame. Complete frames are appended to `out` (one, or one per
/// segment), each with an empty `vnet` and `pkt`'s `tunnel_id`.
pub fn software_offload(
    pkt: &mut super::Packet,
    out: &mut Vec<super::Packet>,
) -> Result<(), OffloadError> {
    if pkt.vnet.is_gso() {
        let first = out.len();
        segment(&pkt.data, &pkt.vnet, |seg| {
            out.push(super::Packet {
                data: seg.to_vec(),
                vnet: VnetHdr::default(),
                tunnel_id: pkt.tunnel_id,
            })
        })
        .inspect_err(|_| out.truncate(first))?;
        return Ok(());
    }
    complete_checksum(&mut pkt.data, &mut pkt.vnet)?;
    out.push(super::Packet {
        data: pkt.data.clone(),
        vnet: VnetHdr::default(),
        tunnel_id: pkt.tunnel_id,
    });
    Ok(())
}

/// Cut a GSO super-frame into complete frames, calling `emit` with each (a scratch
/// buffer reused between calls). IPv4 gets its total length, id and header checksum
/// fixed; IPv6 its payload length; TCP its sequence number, FIN/PSH (last segment only)
/// and CWR (first only) and a full checksum; UDP_L4 a length and checksum per datagram.
pub fn segment(
    frame: &[u8],
    vnet: &VnetHdr,
    mut emit: impl FnMut(&[u8]),
) -> Result<(), OffloadError> {
    let gso = vnet.gso_type & !GSO_ECN;
    let (is_tcp, v6) = match gso {
        GSO_TCPV4 => (true, false),
        GSO_TCPV6 => (true, true),
        GSO_UDP_L4 => (false, false), // IP version read from the frame
        other => return Err(OffloadError::UnsupportedGso(other)),
    };
    let bad = OffloadError::BadGsoHeaders;
    // L2: Ethernet and any VLAN tags.
    let mut l3 = 14;
    let mut et = u16::from_be_bytes([*frame.get(12).ok_or(bad)?, *frame.get(13).ok_or(bad)?]);
    while et == 0x8100 || et == 0x88a8 {
        et = u16::from_be_bytes([
            *frame.get(l3 + 2).ok_or(bad)?,
            *frame.get(l3 + 3).ok_or(bad)?,
        ]);
        l3 += 4;
    }
    let v6 = match et {
        0x0800 if !v6 || !is_tcp => false,
        0x86dd if v6 || !is_tcp => true,
        _ => return Err(bad),
    };
    let l4 = usize::from(vnet.csum_start);
    if l4 < l3 + if v6 { 40 } else { 20 } || l4 + 8 > frame.len() {
        return Err(bad);
    }
    let hlen = if is_tcp {
        let off = usize::from(frame.get(l4 + 12).ok_or(bad)? >> 4) * 4;
        if off < 20 {
            return Err(bad);
        }
        l4 + off
    } else {
        l4 + 8
    };
    if hlen > frame.len() {
        return Err(bad);
    }
    let mss = usize::from(vnet.gso_size);
    if mss == 0 {
        return Err(bad);
    }
    let payload = &frame[hlen..];
    let nseg = payload.len().div_ceil(mss).max(1);
    let mut seg = Vec::with_capacity(hlen + mss);
    let seq0 = if is_tcp {
        u32::from_be_bytes(frame[l4 + 4..l4 + 8].try_into().map_err(|_| bad)?)
    } else {
        0
    };
    let id0 = if v6 {
        0
    } else {
        u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]])
    };
    for (i, chunk) in payload
        .chunks(mss)
        .chain(std::iter::once(&[][..]))
        .take(nseg)
        .enumerate()
    {
        seg.clear();
        seg.extend_from_slice(&frame[..hlen]);
        seg.extend_from_slice(chunk);
        let l4len = seg.len() - l4;
        // L3 lengths.
        if v6 {
            let plen = (seg.len() - l3 - 40) as u16;
            seg[l3 + 4..l3 + 6].copy_from_slice(&plen.to_be_bytes());
        } else {
            let tot = (seg.len() - l3) as u16;
            seg[l3 + 2..l3 + 4].copy_from_slice(&tot.to_be_bytes());
            if is_tcp {
                seg[l3 + 4..l3 + 6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            }
            let ihl = usize::from(seg[l3] & 0x0f) * 4;
            seg[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
            let c = !csum_fold(csum_add(0, &seg[l3..l3 + ihl]));
            seg[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        // L4 header.
        let csum_field = if is_tcp {
            let seq = seq0.wrapping_add((i * mss) as u32);
            seg[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
            if i + 1 < nseg {
                seg[l4 + 13] &= !(0x01 | 0x08); // FIN, PSH only on the last
            }
            if i > 0 {
                seg[l4 + 13] &= !0x80; // CWR only on the first
            }
            l4 + 16
        } else {
            seg[l4 + 4..l4 + 6].copy_from_slice(&(l4len as u16).to_be_bytes());
            l4 + 6
        };
        seg[csum_field..csum_field + 2].copy_from_slice(&[0, 0]);
        let proto = if is_tcp { 6u32 } else { 17 };
        let mut sum = if v6 {
            csum_add(0, &seg[l3 + 8..l3 + 40])
        } else {
            csum_add(0, &seg[l3 + 12..l3 + 20])
        };
        sum = sum.wrapping_add(proto).wrapping_add(l4len as u32);
        let mut c = !csum_fold(csum_add(sum, &seg[l4..]));
        if c == 0 && !is_tcp {
            c = 0xffff;
        }
        seg[csum_field..csum_field + 2].copy_from_slice(&c.to_be_bytes());
        emit(&seg);
    }
    Ok(())
}
