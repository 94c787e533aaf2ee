//! Session and switch-configuration bodies: HELLO (with version negotiation), ERROR,
//! EXPERIMENTER, FEATURES_REPLY, GET_CONFIG_REPLY/SET_CONFIG, ROLE_REQUEST/REPLY and the
//! asynchronous-message configuration. Bodies without fields (barrier, echo payloads...) are
//! carried directly by [`crate::Message`].

use bytes::BufMut;

use crate::consts::OFP_VERSION;
use crate::error::{DecodeError, ErrorCode, OFPET_EXPERIMENTER, fail};
use crate::wire::{Rd, need, pad8, rest, take};

/// Hello element type: the bitmap of supported versions.
pub const OFPHET_VERSIONBITMAP: u16 = 1;

/// One element of a HELLO body.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |             type              |  length (excluding padding)   |
/// +-------------------------------+-------------------------------+
/// | VERSIONBITMAP: bitmaps (u32 each, bit n = version n) ... pad to 8 |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum HelloElement {
    /// Bitmaps of supported versions: bit `n` of word `i` is version `32*i + n`.
    VersionBitmap(Vec<u32>),
    /// An element this crate does not know (spec: ignore it); carried through. `etype` is
    /// never [`OFPHET_VERSIONBITMAP`].
    Unknown { etype: u16, data: Vec<u8> },
}

/// OFPT_HELLO body: a list of elements.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Hello {
    pub elements: Vec<HelloElement>,
}

impl Hello {
    /// The HELLO Fuxi sends: a version bitmap with OpenFlow 1.3 only.
    pub fn ofp13() -> Hello {
        Hello {
            elements: vec![HelloElement::VersionBitmap(vec![1 << OFP_VERSION])],
        }
    }

    /// The version bitmap, if the peer sent one.
    pub fn bitmap(&self) -> Option<&[u32]> {
        self.elements.iter().find_map(|e| match e {
            HelloElement::VersionBitmap(b) => Some(&b[..]),
            HelloElement::Unknown { .. } => None,
        })
    }

    /// Version negotiation (spec §6.3.1) for a side that speaks only OpenFlow 1.3:
    /// `header_version` is the version in the peer's HELLO header. Returns the agreed
    /// version, or `None` when the two sides have no version in common (the caller sends
    /// HELLO_FAILED/INCOMPATIBLE and closes).
    pub fn negotiate(&self, header_version: u8) -> Option<u8> {
        match self.bitmap() {
            Some(words) => {
                let w = usize::from(OFP_VERSION / 32);
                let bit = OFP_VERSION % 32;
                words
                    .get(w)
                    .is_some_and(|x| x & (1 << bit) != 0)
                    .then_some(OFP_VERSION)
            }
            None => (header_version >= OFP_VERSION).then_some(OFP_VERSION),
        }
    }

    pub fn wire_len(&self) -> usize {
        self.elements
            .iter()
            .map(|e| {
                let len = match e {
                    HelloElement::VersionBitmap(b) => 4 + 4 * b.len(),
                    HelloElement::Unknown { data, .. } => 4 + data.len(),
                };
                len.next_multiple_of(8)
            })
            .sum()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        for e in &self.elements {
            match e {
                HelloElement::VersionBitmap(words) => {
                    let len = 4 + 4 * words.len();
                    buf.put_u16(OFPHET_VERSIONBITMAP);
                    buf.put_u16(len as u16);
                    for w in words {
                        buf.put_u32(*w);
                    }
                    buf.put_bytes(0, pad8(len));
                }
                HelloElement::Unknown { etype, data } => {
                    let len = 4 + data.len();
                    buf.put_u16(*etype);
                    buf.put_u16(len as u16);
                    buf.put_slice(data);
                    buf.put_bytes(0, pad8(len));
                }
            }
        }
    }

    /// Reads the elements filling `buf`. The last element's padding may be missing.
    pub fn decode(buf: &mut &[u8]) -> Result<Hello, DecodeError> {
        let mut elements = Vec::new();
        while !buf.is_empty() {
            need(buf, 4, "truncated hello element")?;
            let etype = (&buf[..]).u16();
            let len = usize::from((&buf[2..]).u16());
            if len < 4 {
                return fail(
                    ErrorCode::BAD_REQUEST_BAD_LEN,
                    "hello element shorter than 4",
                );
            }
            let mut body = take(
                buf,
                len,
                ErrorCode::BAD_REQUEST_BAD_LEN,
                "hello element runs past the message",
            )?;
            body.skip(4);
            let padding = pad8(len).min(buf.len());
            buf.skip(padding);
            elements.push(if etype == OFPHET_VERSIONBITMAP {
                if body.len() % 4 != 0 {
                    return fail(
                        ErrorCode::BAD_REQUEST_BAD_LEN,
                        "version bitmap not a whole number of words",
                    );
                }
                let mut words = Vec::with_capacity(body.len() / 4);
                while !body.is_empty() {
                    words.push(body.u32());
                }
                HelloElement::VersionBitmap(words)
            } else {
                HelloElement::Unknown {
                    etype,
                    data: body.to_vec(),
                }
            });
        }
        Ok(Hello { elements })
    }
}

/// OFPT_ERROR body. An experimenter error (type 0xffff) carries `exp_type` and the
/// experimenter id in [`ErrorCode::Experimenter`].
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |             type              |      code (or exp_type)       |
/// +-------------------------------+-------------------------------+
/// |        experimenter (only when type is OFPET_EXPERIMENTER)    |
/// +---------------------------------------------------------------+
/// |  data: at least 64 bytes of the offending request, or text    |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ErrorMsg {
    pub code: ErrorCode,
    pub data: Vec<u8>,
}

impl ErrorMsg {
    pub fn wire_len(&self) -> usize {
        match self.code {
            ErrorCode::Standard { .. } => 4 + self.data.len(),
            ErrorCode::Experimenter { .. } => 8 + self.data.len(),
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.code.etype());
        buf.put_u16(self.code.code());
        if let ErrorCode::Experimenter { experimenter, .. } = self.code {
            buf.put_u32(experimenter);
        }
        buf.put_slice(&self.data);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<ErrorMsg, DecodeError> {
        need(buf, 4, "truncated error message")?;
        let etype = buf.u16();
        let code = buf.u16();
        let code = if etype == OFPET_EXPERIMENTER {
            need(buf, 4, "experimenter error without its id")?;
            ErrorCode::Experimenter {
                exp_type: code,
                experimenter: buf.u32(),
            }
        } else {
            ErrorCode::Standard { etype, code }
        };
        Ok(ErrorMsg {
            code,
            data: rest(buf),
        })
    }
}

/// OFPT_EXPERIMENTER body (and the experimenter multipart body) for experimenters this
/// crate does not decode further.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                         experimenter                          |
/// +---------------------------------------------------------------+
/// |                           exp_type                            |
/// +---------------------------------------------------------------+
/// |                         data ...                              |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Experimenter {
    pub experimenter: u32,
    pub exp_type: u32,
    pub data: Vec<u8>,
}

impl Experimenter {
    pub fn wire_len(&self) -> usize {
        8 + self.data.len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.experimenter);
        buf.put_u32(self.exp_type);
        buf.put_slice(&self.data);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Experimenter, DecodeError> {
        need(buf, 8, "truncated experimenter header")?;
        Ok(Experimenter {
            experimenter: buf.u32(),
            exp_type: buf.u32(),
            data: rest(buf),
        })
    }
}

/// Capability bits of [`SwitchFeatures::capabilities`].
pub mod capabilities {
    pub const FLOW_STATS: u32 = 1 << 0;
    pub const TABLE_STATS: u32 = 1 << 1;
    pub const PORT_STATS: u32 = 1 << 2;
    pub const GROUP_STATS: u32 = 1 << 3;
    pub const IP_REASM: u32 = 1 << 5;
    pub const QUEUE_STATS: u32 = 1 << 6;
    pub const PORT_BLOCKED: u32 = 1 << 8;
}

/// OFPT_FEATURES_REPLY body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                      datapath_id (64)                         |
/// +---------------------------------------------------------------+
/// |                          n_buffers                            |
/// +---------------+---------------+-------------------------------+
/// |   n_tables    | auxiliary_id  |              pad              |
/// +---------------+---------------+-------------------------------+
/// |                         capabilities                          |
/// +---------------------------------------------------------------+
/// |                           reserved                            |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SwitchFeatures {
    pub datapath_id: u64,
    pub n_buffers: u32,
    pub n_tables: u8,
    pub auxiliary_id: u8,
    pub capabilities: u32,
    pub reserved: u32,
}

impl SwitchFeatures {
    pub const LEN: usize = 24;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64(self.datapath_id);
        buf.put_u32(self.n_buffers);
        buf.put_u8(self.n_tables);
        buf.put_u8(self.auxiliary_id);
        buf.put_bytes(0, 2);
        buf.put_u32(self.capabilities);
        buf.put_u32(self.reserved);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<SwitchFeatures, DecodeError> {
        need(buf, Self::LEN, "truncated features reply")?;
        let datapath_id = buf.u64();
        let n_buffers = buf.u32();
        let n_tables = buf.u8();
        let auxiliary_id = buf.u8();
        buf.skip(2);
        Ok(SwitchFeatures {
            datapath_id,
            n_buffers,
            n_tables,
            auxiliary_id,
            capabilities: buf.u32(),
            reserved: buf.u32(),
        })
    }
}

/// Fragment handling in [`SwitchConfig::flags`].
pub const OFPC_FRAG_NORMAL: u16 = 0;
pub const OFPC_FRAG_DROP: u16 = 1;
pub const OFPC_FRAG_REASM: u16 = 2;
pub const OFPC_FRAG_MASK: u16 = 3;

/// OFPT_GET_CONFIG_REPLY and OFPT_SET_CONFIG body.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |             flags             |         miss_send_len         |
/// +-------------------------------+-------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct SwitchConfig {
    pub flags: u16,
    pub miss_send_len: u16,
}

impl SwitchConfig {
    pub const LEN: usize = 4;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.flags);
        buf.put_u16(self.miss_send_len);
    }

    /// Flags outside OFPC_FRAG_MASK are SWITCH_CONFIG_FAILED/BAD_FLAGS.
    pub fn decode(buf: &mut &[u8]) -> Result<SwitchConfig, DecodeError> {
        need(buf, Self::LEN, "truncated switch config")?;
        let flags = buf.u16();
        if flags & !OFPC_FRAG_MASK != 0 {
            return fail(ErrorCode::SWITCH_CONFIG_BAD_FLAGS, "unknown config flags");
        }
        Ok(SwitchConfig {
            flags,
            miss_send_len: buf.u16(),
        })
    }
}

/// Controller role (spec §6.3.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u32)]
pub enum ControllerRole {
    NoChange = 0,
    Equal = 1,
    Master = 2,
    Slave = 3,
}

impl ControllerRole {
    pub fn from_u32(v: u32) -> Option<ControllerRole> {
        Some(match v {
            0 => ControllerRole::NoChange,
            1 => ControllerRole::Equal,
            2 => ControllerRole::Master,
            3 => ControllerRole::Slave,
            _ => return None,
        })
    }
}

/// OFPT_ROLE_REQUEST and OFPT_ROLE_REPLY body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                             role                              |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |                      generation_id (64)                       |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Role {
    pub role: ControllerRole,
    pub generation_id: u64,
}

impl Role {
    pub const LEN: usize = 16;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.role as u32);
        buf.put_bytes(0, 4);
        buf.put_u64(self.generation_id);
    }

    /// An unknown role is ROLE_REQUEST_FAILED/BAD_ROLE.
    pub fn decode(buf: &mut &[u8]) -> Result<Role, DecodeError> {
        need(buf, Self::LEN, "truncated role message")?;
        let Some(role) = ControllerRole::from_u32(buf.u32()) else {
            return fail(ErrorCode::ROLE_REQUEST_BAD_ROLE, "unknown controller role");
        };
        buf.skip(4);
        Ok(Role {
            role,
            generation_id: buf.u64(),
        })
    }
}

/// OFPT_GET_ASYNC_REPLY and OFPT_SET_ASYNC body. Index 0 of each pair is for the master or
/// equal role, index 1 for the slave role; bit `n` enables reason `n`.
///
/// ```text
/// +---------------------------------------------------------------+
/// |            packet_in_mask[0]     |     packet_in_mask[1]      |
/// |          port_status_mask[0]     |   port_status_mask[1]      |
/// |         flow_removed_mask[0]     |  flow_removed_mask[1]      |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct AsyncConfig {
    pub packet_in_mask: [u32; 2],
    pub port_status_mask: [u32; 2],
    pub flow_removed_mask: [u32; 2],
}

impl AsyncConfig {
    pub const LEN: usize = 24;

    pub fn encode(&self, buf: &mut impl BufMut) {
        for w in self
            .packet_in_mask
            .iter()
            .chain(&self.port_status_mask)
            .chain(&self.flow_removed_mask)
        {
            buf.put_u32(*w);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<AsyncConfig, DecodeError> {
        need(buf, Self::LEN, "truncated async config")?;
        Ok(AsyncConfig {
            packet_in_mask: [buf.u32(), buf.u32()],
            port_status_mask: [buf.u32(), buf.u32()],
            flow_removed_mask: [buf.u32(), buf.u32()],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_bitmap_layout_and_negotiation() {
        let h = Hello::ofp13();
        let mut v = Vec::new();
        h.encode(&mut v);
        assert_eq!(v, [0, 1, 0, 8, 0, 0, 0, 0x10]);
        assert_eq!(Hello::decode(&mut &v[..]).unwrap(), h);
        assert_eq!(h.negotiate(4), Some(4));
        let ovs = Hello {
            elements: vec![HelloElement::VersionBitmap(vec![0x3e])],
        };
        assert_eq!(ovs.negotiate(6), Some(4));
        let of10 = Hello {
            elements: vec![HelloElement::VersionBitmap(vec![0x02])],
        };
        assert_eq!(of10.negotiate(1), None);
        assert_eq!(Hello::default().negotiate(1), None);
        assert_eq!(Hello::default().negotiate(5), Some(4));
    }

    #[test]
    fn experimenter_error_layout() {
        let e = ErrorMsg {
            code: ErrorCode::BUNDLE_BAD_ID,
            data: vec![1, 2],
        };
        let mut v = Vec::new();
        e.encode(&mut v);
        assert_eq!(v, [0xff, 0xff, 0x08, 0xfe, 0x4f, 0x4e, 0x46, 0, 1, 2]);
        assert_eq!(ErrorMsg::decode(&mut &v[..]).unwrap(), e);
    }
}
