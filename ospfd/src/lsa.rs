//! LSAs: the header, the typed bodies of types 1–5 and 7, opaque types 9–11 kept as bytes,
//! their codec and the ordering of instances (RFC 2328 13.1). No flooding or storage here.

use std::cmp::Ordering;
use std::net::Ipv4Addr;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::checksum;
use crate::consts::*;
use crate::error::Error;

pub(crate) fn need(buf: &impl Buf, n: usize) -> Result<(), Error> {
    if buf.remaining() < n {
        Err(Error::Truncated {
            need: n,
            have: buf.remaining(),
        })
    } else {
        Ok(())
    }
}

pub(crate) fn get_ip(buf: &mut impl Buf) -> Ipv4Addr {
    Ipv4Addr::from(buf.get_u32())
}

/// Identity of an LSA in a database: (type, link state id, advertising router).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LsaKey {
    pub ls_type: u8,
    pub id: Ipv4Addr,
    pub adv: Ipv4Addr,
}

/// LSA header (RFC 2328 A.4.1).
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |            LS age             |    Options    |    LS type    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Link State ID                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Advertising Router                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     LS sequence number                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         LS checksum           |             length            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LsaHeader {
    pub age: u16,
    pub options: u8,
    pub ls_type: u8,
    pub id: Ipv4Addr,
    pub adv: Ipv4Addr,
    pub seq: i32,
    pub checksum: u16,
    pub length: u16,
}

impl LsaHeader {
    pub fn key(&self) -> LsaKey {
        LsaKey {
            ls_type: self.ls_type,
            id: self.id,
            adv: self.adv,
        }
    }

    pub fn decode(buf: &mut impl Buf) -> Result<Self, Error> {
        need(buf, LSA_HEADER_LEN)?;
        Ok(LsaHeader {
            age: buf.get_u16(),
            options: buf.get_u8(),
            ls_type: buf.get_u8(),
            id: get_ip(buf),
            adv: get_ip(buf),
            seq: buf.get_i32(),
            checksum: buf.get_u16(),
            length: buf.get_u16(),
        })
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.age);
        buf.put_u8(self.options);
        buf.put_u8(self.ls_type);
        buf.put_u32(self.id.into());
        buf.put_u32(self.adv.into());
        buf.put_i32(self.seq);
        buf.put_u16(self.checksum);
        buf.put_u16(self.length);
    }

    /// Which of two instances is more recent (RFC 2328 13.1). `Greater` means `self` is newer.
    pub fn compare(&self, other: &LsaHeader) -> Ordering {
        if self.seq != other.seq {
            return self.seq.cmp(&other.seq);
        }
        if self.checksum != other.checksum {
            return self.checksum.cmp(&other.checksum);
        }
        let (a, b) = (self.age.min(MAX_AGE), other.age.min(MAX_AGE));
        if a == MAX_AGE && b != MAX_AGE {
            return Ordering::Greater;
        }
        if b == MAX_AGE && a != MAX_AGE {
            return Ordering::Less;
        }
        if a.abs_diff(b) > MAX_AGE_DIFF {
            // The younger one is newer.
            return b.cmp(&a);
        }
        Ordering::Equal
    }
}

/// One link of a router-LSA.
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          Link ID                              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Link Data                             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     Type      |     # TOS     |            metric             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      TOS      |        0      |          TOS  metric          |  (repeated # TOS times)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterLink {
    pub id: Ipv4Addr,
    pub data: Ipv4Addr,
    pub link_type: u8,
    pub metric: u16,
    /// Extra TOS entries (TOS, reserved byte, TOS metric) as the 32-bit words on the wire,
    /// kept only so that bytes round-trip.
    pub tos: Vec<u32>,
}

/// Router-LSA body (RFC 2328 A.4.2).
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |    0    |V|E|B|        0      |            # links            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 links (see RouterLink) ...                    |
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RouterLsa {
    pub flags: u8,
    pub links: Vec<RouterLink>,
    /// The reserved byte after the flags: zero when we originate, but an LSA is flooded
    /// exactly as received (its checksum covers this byte), so it is kept.
    pub reserved: u8,
}

impl std::fmt::Debug for RouterLsa {
    // The reserved byte shows only when it is set, so the recorded scenario outputs (Debug
    // text) stay as they were before the field existed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RouterLsa");
        d.field("flags", &self.flags).field("links", &self.links);
        if self.reserved != 0 {
            d.field("reserved", &self.reserved);
        }
        d.finish()
    }
}

/// Network-LSA body (RFC 2328 A.4.3).
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Network Mask                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Attached Router                        |  ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkLsa {
    pub mask: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
}

/// Summary-LSA body, types 3 and 4 (RFC 2328 A.4.4).
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Network Mask                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      0        |                  metric                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     TOS       |                TOS  metric                    |  ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SummaryLsa {
    pub mask: Ipv4Addr,
    pub metric: u32,
    /// Extra TOS words (TOS << 24 | metric), kept for round-trips.
    pub tos: Vec<u32>,
    /// The reserved byte before the metric: zero when we originate, kept as received
    /// because the LSA is flooded as received (its checksum covers it).
    pub reserved: u8,
}

// Reserved bits show in Debug only when set, so recorded scenario outputs stay as they were.
impl std::fmt::Debug for SummaryLsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("SummaryLsa");
        d.field("mask", &self.mask)
            .field("metric", &self.metric)
            .field("tos", &self.tos);
        if self.reserved != 0 {
            d.field("reserved", &self.reserved);
        }
        d.finish()
    }
}

/// AS-external-LSA (type 5, RFC 2328 A.4.5) and NSSA-LSA (type 7, RFC 3101 2.2) body.
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Network Mask                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |E|     0       |                  metric                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Forwarding address                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      External Route Tag                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |E|    TOS      |                TOS  metric                    |  (TOS entries:
/// |                      Forwarding address                       |   12 bytes each,
/// |                      External Route Tag                       |   kept raw)
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalLsa {
    pub mask: Ipv4Addr,
    /// E bit: type 2 metric when true.
    pub e2: bool,
    pub metric: u32,
    pub fwd: Ipv4Addr,
    pub tag: u32,
    pub tos: Vec<[u32; 3]>,
    /// The seven reserved bits after the E bit (0..=0x7f): zero when we originate, kept as
    /// received because the LSA is flooded as received.
    pub reserved: u8,
}

impl std::fmt::Debug for ExternalLsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ExternalLsa");
        d.field("mask", &self.mask)
            .field("e2", &self.e2)
            .field("metric", &self.metric)
            .field("fwd", &self.fwd)
            .field("tag", &self.tag)
            .field("tos", &self.tos);
        if self.reserved != 0 {
            d.field("reserved", &self.reserved);
        }
        d.finish()
    }
}

/// The body of an LSA. Opaque LSAs (9, 10, 11) and unknown types are carried as bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsaBody {
    Router(RouterLsa),
    Network(NetworkLsa),
    Summary(SummaryLsa),
    External(ExternalLsa),
    Opaque(Bytes),
    Unknown(Bytes),
}

/// A whole LSA: header plus typed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lsa {
    pub hdr: LsaHeader,
    pub body: LsaBody,
}

impl LsaBody {
    fn decode(ls_type: u8, mut b: Bytes) -> Result<Self, Error> {
        let buf = &mut b;
        Ok(match ls_type {
            LSA_ROUTER => {
                need(buf, 4)?;
                let flags = buf.get_u8();
                let reserved = buf.get_u8();
                let n = buf.get_u16();
                let mut links = Vec::with_capacity(usize::from(n).min(256));
                for _ in 0..n {
                    need(buf, 12)?;
                    let id = get_ip(buf);
                    let data = get_ip(buf);
                    let link_type = buf.get_u8();
                    let ntos = buf.get_u8();
                    let metric = buf.get_u16();
                    let mut tos = Vec::new();
                    for _ in 0..ntos {
                        need(buf, 4)?;
                        tos.push(buf.get_u32());
                    }
                    links.push(RouterLink {
                        id,
                        data,
                        link_type,
                        metric,
                        tos,
                    });
                }
                if buf.has_remaining() {
                    return Err(Error::BadLsaLength(buf.remaining()));
                }
                LsaBody::Router(RouterLsa {
                    flags,
                    links,
                    reserved,
                })
            }
            LSA_NETWORK => {
                need(buf, 4)?;
                let mask = get_ip(buf);
                if !buf.remaining().is_multiple_of(4) {
                    return Err(Error::BadLsaLength(buf.remaining()));
                }
                let mut routers = Vec::new();
                while buf.has_remaining() {
                    routers.push(get_ip(buf));
                }
                LsaBody::Network(NetworkLsa { mask, routers })
            }
            LSA_SUMMARY_NET | LSA_SUMMARY_ASBR => {
                need(buf, 8)?;
                let mask = get_ip(buf);
                let w = buf.get_u32();
                let (reserved, metric) = ((w >> 24) as u8, w & 0x00ff_ffff);
                if !buf.remaining().is_multiple_of(4) {
                    return Err(Error::BadLsaLength(buf.remaining()));
                }
                let mut tos = Vec::new();
                while buf.has_remaining() {
                    tos.push(buf.get_u32());
                }
                LsaBody::Summary(SummaryLsa {
                    mask,
                    metric,
                    tos,
                    reserved,
                })
            }
            LSA_AS_EXTERNAL | LSA_NSSA => {
                need(buf, 16)?;
                let mask = get_ip(buf);
                let w = buf.get_u32();
                let fwd = get_ip(buf);
                let tag = buf.get_u32();
                if !buf.remaining().is_multiple_of(12) {
                    return Err(Error::BadLsaLength(buf.remaining()));
                }
                let mut tos = Vec::new();
                while buf.has_remaining() {
                    tos.push([buf.get_u32(), buf.get_u32(), buf.get_u32()]);
                }
                LsaBody::External(ExternalLsa {
                    mask,
                    e2: w & 0x8000_0000 != 0,
                    metric: w & 0x00ff_ffff,
                    fwd,
                    tag,
                    tos,
                    reserved: ((w >> 24) & 0x7f) as u8,
                })
            }
            LSA_OPAQUE_LINK | LSA_OPAQUE_AREA | LSA_OPAQUE_AS => LsaBody::Opaque(b),
            _ => LsaBody::Unknown(b),
        })
    }

    fn encode(&self, buf: &mut impl BufMut) {
        match self {
            LsaBody::Router(r) => {
                buf.put_u8(r.flags);
                buf.put_u8(r.reserved);
                buf.put_u16(r.links.len() as u16);
                for l in &r.links {
                    buf.put_u32(l.id.into());
                    buf.put_u32(l.data.into());
                    buf.put_u8(l.link_type);
                    buf.put_u8(l.tos.len() as u8);
                    buf.put_u16(l.metric);
                    for t in &l.tos {
                        buf.put_u32(*t);
                    }
                }
            }
            LsaBody::Network(n) => {
                buf.put_u32(n.mask.into());
                for r in &n.routers {
                    buf.put_u32((*r).into());
                }
            }
            LsaBody::Summary(s) => {
                buf.put_u32(s.mask.into());
                buf.put_u32(u32::from(s.reserved) << 24 | (s.metric & 0x00ff_ffff));
                for t in &s.tos {
                    buf.put_u32(*t);
                }
            }
            LsaBody::External(e) => {
                buf.put_u32(e.mask.into());
                let e_bit = if e.e2 { 0x8000_0000 } else { 0 };
                let reserved = u32::from(e.reserved & 0x7f) << 24;
                buf.put_u32(e_bit | reserved | (e.metric & 0x00ff_ffff));
                buf.put_u32(e.fwd.into());
                buf.put_u32(e.tag);
                for t in &e.tos {
                    for w in t {
                        buf.put_u32(*w);
                    }
                }
            }
            LsaBody::Opaque(b) | LsaBody::Unknown(b) => buf.put_slice(b),
        }
    }
}

impl Lsa {
    /// Decode one LSA; the header's length field says how much of `buf` it takes.
    pub fn decode(buf: &mut impl Buf) -> Result<Self, Error> {
        let hdr = LsaHeader::decode(buf)?;
        let len = usize::from(hdr.length);
        if len < LSA_HEADER_LEN {
            return Err(Error::BadLsaLength(len));
        }
        need(buf, len - LSA_HEADER_LEN)?;
        let body = buf.copy_to_bytes(len - LSA_HEADER_LEN);
        let body = LsaBody::decode(hdr.ls_type, body)?;
        Ok(Lsa { hdr, body })
    }

    /// Encode exactly as the header says (length and checksum are written as stored).
    pub fn encode(&self, buf: &mut impl BufMut) {
        self.hdr.encode(buf);
        self.body.encode(buf);
    }

    /// Encode to bytes after fixing up the length and Fletcher checksum fields.
    pub fn to_bytes_sealed(&mut self) -> Bytes {
        let mut b = BytesMut::new();
        self.hdr.checksum = 0;
        self.encode(&mut b);
        let len = b.len() as u16;
        b[18..20].copy_from_slice(&len.to_be_bytes());
        let c = checksum::lsa_fletcher(&b);
        b[16..18].copy_from_slice(&c.to_be_bytes());
        self.hdr.length = len;
        self.hdr.checksum = c;
        b.freeze()
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

/// Prefix length of a contiguous netmask.
pub fn mask_len(mask: Ipv4Addr) -> u8 {
    u32::from(mask).leading_ones() as u8
}

/// Netmask of a prefix length.
pub fn len_mask(len: u8) -> Ipv4Addr {
    if len == 0 {
        Ipv4Addr::UNSPECIFIED
    } else {
        Ipv4Addr::from(u32::MAX << (32 - u32::from(len.min(32))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(seq: i32, ck: u16, age: u16) -> LsaHeader {
        LsaHeader {
            age,
            options: 0,
            ls_type: 1,
            id: Ipv4Addr::LOCALHOST,
            adv: Ipv4Addr::LOCALHOST,
            seq,
            checksum: ck,
            length: 20,
        }
    }

    #[test]
    fn newer_rules() {
        assert_eq!(
            hdr(INITIAL_SEQ + 1, 0, 0).compare(&hdr(INITIAL_SEQ, 0, 0)),
            Ordering::Greater
        );
        assert_eq!(hdr(5, 2, 0).compare(&hdr(5, 1, 0)), Ordering::Greater);
        assert_eq!(
            hdr(5, 1, MAX_AGE).compare(&hdr(5, 1, 10)),
            Ordering::Greater
        );
        assert_eq!(hdr(5, 1, 10).compare(&hdr(5, 1, 1000)), Ordering::Greater);
        assert_eq!(hdr(5, 1, 10).compare(&hdr(5, 1, 500)), Ordering::Equal);
    }

    #[test]
    fn router_lsa_roundtrip() {
        let mut l = Lsa {
            hdr: hdr(INITIAL_SEQ, 0, 0),
            body: LsaBody::Router(RouterLsa {
                flags: RTR_B,
                links: vec![RouterLink {
                    id: Ipv4Addr::new(10, 0, 0, 0),
                    data: Ipv4Addr::new(255, 255, 255, 0),
                    link_type: LINK_STUB,
                    metric: 10,
                    tos: vec![0x0200_0005],
                }],
                reserved: 0,
            }),
        };
        let b = l.to_bytes_sealed();
        assert!(checksum::lsa_valid(&b));
        let d = Lsa::decode(&mut b.clone()).unwrap();
        assert_eq!(d, l);
        assert_eq!(d.to_bytes(), b);
    }

    /// Found by the ospfd_decode fuzzer: reserved bytes that a peer set must survive
    /// decode/encode, or the LSA we reflood no longer matches its checksum.
    #[test]
    fn router_lsa_reserved_bytes_round_trip() {
        let mut l = Lsa {
            hdr: hdr(INITIAL_SEQ, 0, 0),
            body: LsaBody::Router(RouterLsa {
                flags: RTR_B,
                links: vec![RouterLink {
                    id: Ipv4Addr::new(10, 0, 0, 0),
                    data: Ipv4Addr::new(255, 255, 255, 0),
                    link_type: LINK_STUB,
                    metric: 10,
                    tos: vec![0x02ab_0005],
                }],
                reserved: 0xf8,
            }),
        };
        let b = l.to_bytes_sealed();
        assert_eq!(b[20..22], [RTR_B, 0xf8]);
        assert_eq!(b[36..40], [0x02, 0xab, 0x00, 0x05]);
        assert!(checksum::lsa_valid(&b));
        let d = Lsa::decode(&mut b.clone()).unwrap();
        assert_eq!(d, l);
        assert_eq!(d.to_bytes(), b);
        assert!(format!("{d:?}").contains("reserved: 248"));
        l.body = match l.body {
            LsaBody::Router(r) => LsaBody::Router(RouterLsa { reserved: 0, ..r }),
            other => other,
        };
        assert!(!format!("{l:?}").contains("reserved"));
    }

    /// Also from the fuzzer: the reserved bits of summary and external LSAs survive too.
    #[test]
    fn summary_and_external_reserved_bits_round_trip() {
        let mut hs = hdr(INITIAL_SEQ, 0, 0);
        hs.ls_type = LSA_SUMMARY_NET;
        let mut he = hdr(INITIAL_SEQ, 0, 0);
        he.ls_type = LSA_AS_EXTERNAL;
        for (mut l, word) in [
            (
                Lsa {
                    hdr: hs,
                    body: LsaBody::Summary(SummaryLsa {
                        mask: Ipv4Addr::new(255, 255, 255, 0),
                        metric: 20,
                        tos: vec![],
                        reserved: 0x77,
                    }),
                },
                [0x77, 0, 0, 20],
            ),
            (
                Lsa {
                    hdr: he,
                    body: LsaBody::External(ExternalLsa {
                        mask: Ipv4Addr::new(255, 255, 255, 0),
                        e2: true,
                        metric: 20,
                        fwd: Ipv4Addr::UNSPECIFIED,
                        tag: 0,
                        tos: vec![],
                        reserved: 0x77,
                    }),
                },
                [0xf7, 0, 0, 20],
            ),
        ] {
            let b = l.to_bytes_sealed();
            assert_eq!(b[24..28], word);
            assert!(checksum::lsa_valid(&b));
            let d = Lsa::decode(&mut b.clone()).unwrap();
            assert_eq!(d, l);
            assert_eq!(d.to_bytes(), b);
        }
    }

    #[test]
    fn masks() {
        assert_eq!(mask_len(Ipv4Addr::new(255, 255, 255, 252)), 30);
        assert_eq!(len_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(len_mask(0), Ipv4Addr::UNSPECIFIED);
    }
}
