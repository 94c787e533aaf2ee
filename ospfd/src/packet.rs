//! OSPFv2 packets (RFC 2328 A.3): the common header and the Hello, Database Description,
//! Link State Request, Link State Update and Link State Acknowledgment bodies, with their codec.
//! Verifying and sealing checksums and authentication lives in [`crate::auth`].

use std::net::Ipv4Addr;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::consts::*;
use crate::error::Error;
use crate::lsa::{Lsa, LsaHeader, get_ip, need};

/// The 64-bit authentication field of the header, by AuType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthField {
    Null([u8; 8]),
    Simple([u8; 8]),
    /// Cryptographic authentication (RFC 2328 D.3):
    /// ```text
    /// |              0                |    Key ID     | Auth Data Len |
    /// |                 Cryptographic sequence number                 |
    /// ```
    Crypto {
        key_id: u8,
        len: u8,
        seq: u32,
    },
    Other {
        autype: u16,
        data: [u8; 8],
    },
}

impl AuthField {
    pub fn autype(&self) -> u16 {
        match self {
            AuthField::Null(_) => AUTH_NULL,
            AuthField::Simple(_) => AUTH_SIMPLE,
            AuthField::Crypto { .. } => AUTH_CRYPTO,
            AuthField::Other { autype, .. } => *autype,
        }
    }
}

/// Common OSPF packet header (RFC 2328 A.3.1).
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Version #   |     Type      |         Packet length         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          Router ID                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           Area ID                             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Checksum            |             AuType            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Authentication                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Authentication                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// Packet type and length are derived from the body when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub router_id: Ipv4Addr,
    pub area_id: Ipv4Addr,
    pub checksum: u16,
    pub auth: AuthField,
}

/// Hello body (RFC 2328 A.3.2).
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        Network Mask                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         HelloInterval         |    Options    |    Rtr Pri    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     RouterDeadInterval                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      Designated Router                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                   Backup Designated Router                    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          Neighbor                             |  ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub mask: Ipv4Addr,
    pub hello_interval: u16,
    pub options: u8,
    pub priority: u8,
    pub dead_interval: u32,
    pub dr: Ipv4Addr,
    pub bdr: Ipv4Addr,
    pub neighbors: Vec<Ipv4Addr>,
}

/// Database Description body (RFC 2328 A.3.3).
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Interface MTU         |    Options    |0|0|0|0|0|I|M|MS
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     DD sequence number                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                      An LSA Header  ...                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbDesc {
    pub mtu: u16,
    pub options: u8,
    pub flags: u8,
    pub seq: u32,
    pub headers: Vec<LsaHeader>,
}

/// One Link State Request entry (RFC 2328 A.3.4).
/// ```text
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                          LS type                              |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Link State ID                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                     Advertising Router                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LsRequest {
    pub ls_type: u32,
    pub id: Ipv4Addr,
    pub adv: Ipv4Addr,
}

/// The body of a packet. LS Update (A.3.5) is `# LSAs` (32 bits) followed by whole LSAs;
/// LS Ack (A.3.6) is a list of LSA headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Hello(Hello),
    DbDesc(DbDesc),
    LsRequest(Vec<LsRequest>),
    LsUpdate(Vec<Lsa>),
    LsAck(Vec<LsaHeader>),
}

impl Body {
    pub fn packet_type(&self) -> u8 {
        match self {
            Body::Hello(_) => PKT_HELLO,
            Body::DbDesc(_) => PKT_DD,
            Body::LsRequest(_) => PKT_LSR,
            Body::LsUpdate(_) => PKT_LSU,
            Body::LsAck(_) => PKT_LSACK,
        }
    }
}

/// A whole OSPF packet as carried in an IP payload: header, body, and whatever follows the
/// OSPF length (the cryptographic authentication trailer, or LLS data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub hdr: Header,
    pub body: Body,
    pub trailer: Bytes,
}

impl Packet {
    /// Decode an IP payload.
    pub fn decode(buf: &mut impl Buf) -> Result<Self, Error> {
        need(buf, HEADER_LEN)?;
        let version = buf.get_u8();
        if version != VERSION {
            return Err(Error::BadVersion(version));
        }
        let ptype = buf.get_u8();
        let len = usize::from(buf.get_u16());
        if len < HEADER_LEN || len - 4 > buf.remaining() {
            return Err(Error::BadLength(len));
        }
        let router_id = get_ip(buf);
        let area_id = get_ip(buf);
        let checksum = buf.get_u16();
        let autype = buf.get_u16();
        let mut data = [0u8; 8];
        buf.copy_to_slice(&mut data);
        let auth = match autype {
            AUTH_NULL => AuthField::Null(data),
            AUTH_SIMPLE => AuthField::Simple(data),
            AUTH_CRYPTO => AuthField::Crypto {
                key_id: data[2],
                len: data[3],
                seq: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            },
            _ => AuthField::Other { autype, data },
        };
        let mut b = buf.copy_to_bytes(len - HEADER_LEN);
        let trailer = buf.copy_to_bytes(buf.remaining());
        let b = &mut b;
        let body = match ptype {
            PKT_HELLO => {
                need(b, 20)?;
                let mask = get_ip(b);
                let hello_interval = b.get_u16();
                let options = b.get_u8();
                let priority = b.get_u8();
                let dead_interval = b.get_u32();
                let dr = get_ip(b);
                let bdr = get_ip(b);
                if !b.remaining().is_multiple_of(4) {
                    return Err(Error::BadLength(len));
                }
                let mut neighbors = Vec::new();
                while b.has_remaining() {
                    neighbors.push(get_ip(b));
                }
                Body::Hello(Hello {
                    mask,
                    hello_interval,
                    options,
                    priority,
                    dead_interval,
                    dr,
                    bdr,
                    neighbors,
                })
            }
            PKT_DD => {
                need(b, 8)?;
                let mtu = b.get_u16();
                let options = b.get_u8();
                let flags = b.get_u8();
                let seq = b.get_u32();
                if !b.remaining().is_multiple_of(LSA_HEADER_LEN) {
                    return Err(Error::BadLength(len));
                }
                let mut headers = Vec::new();
                while b.has_remaining() {
                    headers.push(LsaHeader::decode(b)?);
                }
                Body::DbDesc(DbDesc {
                    mtu,
                    options,
                    flags,
                    seq,
                    headers,
                })
            }
            PKT_LSR => {
                if !b.remaining().is_multiple_of(12) {
                    return Err(Error::BadLength(len));
                }
                let mut v = Vec::new();
                while b.has_remaining() {
                    v.push(LsRequest {
                        ls_type: b.get_u32(),
                        id: get_ip(b),
                        adv: get_ip(b),
                    });
                }
                Body::LsRequest(v)
            }
            PKT_LSU => {
                need(b, 4)?;
                let n = b.get_u32();
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(Lsa::decode(b)?);
                }
                if b.has_remaining() {
                    return Err(Error::BadLength(len));
                }
                Body::LsUpdate(v)
            }
            PKT_LSACK => {
                if !b.remaining().is_multiple_of(LSA_HEADER_LEN) {
                    return Err(Error::BadLength(len));
                }
                let mut v = Vec::new();
                while b.has_remaining() {
                    v.push(LsaHeader::decode(b)?);
                }
                Body::LsAck(v)
            }
            t => return Err(Error::BadPacketType(t)),
        };
        Ok(Packet {
            hdr: Header {
                router_id,
                area_id,
                checksum,
                auth,
            },
            body,
            trailer,
        })
    }

    /// Encode as stored: the checksum, authentication field and trailer are written as they are.
    /// Use [`crate::auth::seal`] to fill them in for sending.
    pub fn encode(&self, buf: &mut impl BufMut) {
        let mut body = BytesMut::new();
        match &self.body {
            Body::Hello(h) => {
                body.put_u32(h.mask.into());
                body.put_u16(h.hello_interval);
                body.put_u8(h.options);
                body.put_u8(h.priority);
                body.put_u32(h.dead_interval);
                body.put_u32(h.dr.into());
                body.put_u32(h.bdr.into());
                for n in &h.neighbors {
                    body.put_u32((*n).into());
                }
            }
            Body::DbDesc(d) => {
                body.put_u16(d.mtu);
                body.put_u8(d.options);
                body.put_u8(d.flags);
                body.put_u32(d.seq);
                for h in &d.headers {
                    h.encode(&mut body);
                }
            }
            Body::LsRequest(v) => {
                for r in v {
                    body.put_u32(r.ls_type);
                    body.put_u32(r.id.into());
                    body.put_u32(r.adv.into());
                }
            }
            Body::LsUpdate(v) => {
                body.put_u32(v.len() as u32);
                for l in v {
                    l.encode(&mut body);
                }
            }
            Body::LsAck(v) => {
                for h in v {
                    h.encode(&mut body);
                }
            }
        }
        buf.put_u8(VERSION);
        buf.put_u8(self.body.packet_type());
        buf.put_u16((HEADER_LEN + body.len()) as u16);
        buf.put_u32(self.hdr.router_id.into());
        buf.put_u32(self.hdr.area_id.into());
        buf.put_u16(self.hdr.checksum);
        buf.put_u16(self.hdr.auth.autype());
        match self.hdr.auth {
            AuthField::Null(d) | AuthField::Simple(d) | AuthField::Other { data: d, .. } => {
                buf.put_slice(&d)
            }
            AuthField::Crypto { key_id, len, seq } => {
                buf.put_u16(0);
                buf.put_u8(key_id);
                buf.put_u8(len);
                buf.put_u32(seq);
            }
        }
        buf.put_slice(&body);
        buf.put_slice(&self.trailer);
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}
