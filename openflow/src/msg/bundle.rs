//! The ONF bundle extension for OpenFlow 1.3 (ONF EXT-230), as Open vSwitch sends it:
//! OFPT_EXPERIMENTER messages with experimenter 0x4f4e4600 and exp_type 2300
//! (BUNDLE_CONTROL) or 2301 (BUNDLE_ADD_MESSAGE). The body layouts are OpenFlow 1.4's
//! `ofp_bundle_ctrl_msg` and `ofp_bundle_add_msg`, after the 16-byte experimenter header.

use bytes::BufMut;

use crate::error::{DecodeError, ErrorCode, fail};
use crate::header::{
    Header, OFP_HEADER_LEN, OFPT_FLOW_MOD, OFPT_GROUP_MOD, OFPT_PACKET_OUT, OFPT_PORT_MOD,
};
use crate::message::Message;
use crate::wire::{Rd, element, need, pad8, take};

/// exp_type of BUNDLE_CONTROL.
pub const ONFT_BUNDLE_CONTROL: u32 = 2300;
/// exp_type of BUNDLE_ADD_MESSAGE.
pub const ONFT_BUNDLE_ADD_MESSAGE: u32 = 2301;

/// Bundle flag bits.
pub mod flags {
    pub const ATOMIC: u16 = 1 << 0;
    pub const ORDERED: u16 = 1 << 1;
    pub const ALL: u16 = 0x3;
}

/// Bundle property type: experimenter.
pub const OFPBPT_EXPERIMENTER: u16 = 0xffff;

/// `ofp_bundle_ctrl_type`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u16)]
pub enum BundleCtrlType {
    OpenRequest = 0,
    OpenReply = 1,
    CloseRequest = 2,
    CloseReply = 3,
    CommitRequest = 4,
    CommitReply = 5,
    DiscardRequest = 6,
    DiscardReply = 7,
}

impl BundleCtrlType {
    pub fn from_u16(v: u16) -> Option<BundleCtrlType> {
        use BundleCtrlType::*;
        Some(match v {
            0 => OpenRequest,
            1 => OpenReply,
            2 => CloseRequest,
            3 => CloseReply,
            4 => CommitRequest,
            5 => CommitReply,
            6 => DiscardRequest,
            7 => DiscardReply,
            _ => return None,
        })
    }
}

/// One bundle property, carried as type and body (for the experimenter type the body starts
/// with the experimenter id and exp_type).
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |             type              |  length (excluding padding)   |
/// +-------------------------------+-------------------------------+
/// |                  data ... zero padding to 8                   |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct BundleProp {
    pub prop_type: u16,
    pub data: Vec<u8>,
}

impl BundleProp {
    fn wire_len(&self) -> usize {
        (4 + self.data.len()).next_multiple_of(8)
    }

    fn encode(&self, buf: &mut impl BufMut) {
        let len = 4 + self.data.len();
        buf.put_u16(self.prop_type);
        buf.put_u16(len as u16);
        buf.put_slice(&self.data);
        buf.put_bytes(0, pad8(len));
    }

    fn decode_all(buf: &mut &[u8]) -> Result<Vec<BundleProp>, DecodeError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            let mut b = element(
                buf,
                2,
                4,
                ErrorCode::BAD_REQUEST_BAD_LEN,
                "bundle property does not fit",
            )?;
            let len = b.len();
            buf.skip(pad8(len).min(buf.len()));
            let prop_type = b.u16();
            b.skip(2);
            out.push(BundleProp {
                prop_type,
                data: b.to_vec(),
            });
        }
        Ok(out)
    }
}

/// BUNDLE_CONTROL body (after the experimenter header).
///
/// ```text
/// +---------------------------------------------------------------+
/// |                           bundle_id                           |
/// +-------------------------------+-------------------------------+
/// |             type              |             flags             |
/// +-------------------------------+-------------------------------+
/// |                        properties ...                         |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct BundleControl {
    pub bundle_id: u32,
    pub ctrl_type: BundleCtrlType,
    /// [`flags`] bits.
    pub flags: u16,
    pub properties: Vec<BundleProp>,
}

impl BundleControl {
    pub fn wire_len(&self) -> usize {
        8 + self
            .properties
            .iter()
            .map(BundleProp::wire_len)
            .sum::<usize>()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.bundle_id);
        buf.put_u16(self.ctrl_type as u16);
        buf.put_u16(self.flags);
        for p in &self.properties {
            p.encode(buf);
        }
    }

    /// Unknown control type is BUNDLE/BAD_TYPE, unknown flags BUNDLE/BAD_FLAGS.
    pub fn decode(buf: &mut &[u8]) -> Result<BundleControl, DecodeError> {
        need(buf, 8, "truncated bundle control")?;
        let bundle_id = buf.u32();
        let Some(ctrl_type) = BundleCtrlType::from_u16(buf.u16()) else {
            return fail(ErrorCode::BUNDLE_BAD_TYPE, "unknown bundle control type");
        };
        let flags = buf.u16();
        if flags & !self::flags::ALL != 0 {
            return fail(ErrorCode::BUNDLE_BAD_FLAGS, "unknown bundle flags");
        }
        Ok(BundleControl {
            bundle_id,
            ctrl_type,
            flags,
            properties: BundleProp::decode_all(buf)?,
        })
    }
}

/// BUNDLE_ADD_MESSAGE body (after the experimenter header). The inner message is a whole
/// OpenFlow message with its own header; properties, if any, follow it after padding to 8.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                           bundle_id                           |
/// +-------------------------------+-------------------------------+
/// |            pad (2)            |             flags             |
/// +-------------------------------+-------------------------------+
/// |          message (ofp_header + body, its own length)          |
/// +---------------------------------------------------------------+
/// |               properties (after padding to 8) ...             |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct BundleAdd {
    pub bundle_id: u32,
    /// [`flags`] bits.
    pub flags: u16,
    /// The inner message, sent with the outer message's xid. Only a FLOW_MOD, GROUP_MOD,
    /// PORT_MOD or PACKET_OUT decodes (as Open vSwitch allows); encoding takes any.
    pub message: Box<Message>,
    pub properties: Vec<BundleProp>,
}

impl BundleAdd {
    pub fn wire_len(&self) -> usize {
        let inner = 8 + self.message.wire_len();
        if self.properties.is_empty() {
            inner
        } else {
            inner.next_multiple_of(8)
                + self
                    .properties
                    .iter()
                    .map(BundleProp::wire_len)
                    .sum::<usize>()
        }
    }

    /// Writes the body; the inner message gets `xid`, the outer message's.
    pub fn encode(&self, xid: u32, buf: &mut impl BufMut) {
        buf.put_u32(self.bundle_id);
        buf.put_u16(0);
        buf.put_u16(self.flags);
        self.message.encode(xid, buf);
        if !self.properties.is_empty() {
            buf.put_bytes(0, pad8(8 + self.message.wire_len()));
            for p in &self.properties {
                p.encode(buf);
            }
        }
    }

    /// `xid` is the outer message's. The inner message must fit (else BUNDLE/MSG_BAD_LEN),
    /// carry the same xid (BUNDLE/MSG_BAD_XID), be of a bundlable type (BUNDLE/MSG_UNSUP),
    /// and decode; its own decode error is returned as is.
    pub fn decode(xid: u32, buf: &mut &[u8]) -> Result<BundleAdd, DecodeError> {
        need(buf, 8 + OFP_HEADER_LEN, "truncated bundle add")?;
        let bundle_id = buf.u32();
        buf.skip(2);
        let flags = buf.u16();
        if flags & !self::flags::ALL != 0 {
            return fail(ErrorCode::BUNDLE_BAD_FLAGS, "unknown bundle flags");
        }
        let Some(h) = Header::parse(buf) else {
            return fail(ErrorCode::BUNDLE_MSG_BAD_LEN, "truncated inner message");
        };
        let inner_len = usize::from(h.length);
        if inner_len < OFP_HEADER_LEN {
            return fail(
                ErrorCode::BUNDLE_MSG_BAD_LEN,
                "inner message shorter than 8",
            );
        }
        let inner = take(
            buf,
            inner_len,
            ErrorCode::BUNDLE_MSG_BAD_LEN,
            "inner message runs past the bundle add",
        )?;
        if !matches!(
            h.msg_type,
            OFPT_FLOW_MOD | OFPT_GROUP_MOD | OFPT_PORT_MOD | OFPT_PACKET_OUT
        ) {
            return fail(ErrorCode::BUNDLE_MSG_UNSUP, "message cannot be bundled");
        }
        if h.xid != xid {
            return fail(
                ErrorCode::BUNDLE_MSG_BAD_XID,
                "inner xid differs from the outer",
            );
        }
        let (_, message) =
            Message::decode(inner).map_err(|e| DecodeError::new(e.code, e.reason))?;
        if !buf.is_empty() {
            buf.skip(pad8(8 + inner_len).min(buf.len()));
        }
        Ok(BundleAdd {
            bundle_id,
            flags,
            message: Box::new(message),
            properties: BundleProp::decode_all(buf)?,
        })
    }
}
