//! Packets between switch and controller: PACKET_IN and PACKET_OUT.

use bytes::BufMut;

use crate::action::Action;
use crate::error::DecodeError;
use crate::error::ErrorCode;
use crate::oxm::Match;
use crate::wire::{Rd, need, rest, take};

/// PACKET_IN reasons.
pub const OFPR_NO_MATCH: u8 = 0;
pub const OFPR_ACTION: u8 = 1;
pub const OFPR_INVALID_TTL: u8 = 2;

/// OFPT_PACKET_IN body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                          buffer_id                            |
/// +-------------------------------+---------------+---------------+
/// |           total_len           |    reason     |   table_id    |
/// +-------------------------------+---------------+---------------+
/// |                          cookie (64)                          |
/// +---------------------------------------------------------------+
/// |                    match (ofp_match, padded)                  |
/// +-------------------------------+-------------------------------+
/// |            pad (2)            |        data (Ethernet) ...    |
/// +-------------------------------+-------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PacketIn {
    pub buffer_id: u32,
    pub total_len: u16,
    pub reason: u8,
    pub table_id: u8,
    pub cookie: u64,
    pub match_: Match,
    pub data: Vec<u8>,
}

impl PacketIn {
    pub const FIXED_LEN: usize = 16;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + self.match_.wire_len() + 2 + self.data.len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.buffer_id);
        buf.put_u16(self.total_len);
        buf.put_u8(self.reason);
        buf.put_u8(self.table_id);
        buf.put_u64(self.cookie);
        self.match_.encode(buf);
        buf.put_bytes(0, 2);
        buf.put_slice(&self.data);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<PacketIn, DecodeError> {
        need(buf, Self::FIXED_LEN + 8, "truncated packet in")?;
        let buffer_id = buf.u32();
        let total_len = buf.u16();
        let reason = buf.u8();
        let table_id = buf.u8();
        let cookie = buf.u64();
        let match_ = Match::decode_reported(buf)?;
        take(
            buf,
            2,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "packet in without its padding",
        )?;
        Ok(PacketIn {
            buffer_id,
            total_len,
            reason,
            table_id,
            cookie,
            match_,
            data: rest(buf),
        })
    }
}

/// OFPT_PACKET_OUT body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                          buffer_id                            |
/// +---------------------------------------------------------------+
/// |                           in_port                             |
/// +-------------------------------+-------------------------------+
/// |          actions_len          |            pad (6)            |
/// +-------------------------------+-------------------------------+
/// |                          actions ...                          |
/// +---------------------------------------------------------------+
/// |          data (only when buffer_id is OFP_NO_BUFFER) ...      |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PacketOut {
    pub buffer_id: u32,
    pub in_port: u32,
    pub actions: Vec<Action>,
    pub data: Vec<u8>,
}

impl PacketOut {
    pub const FIXED_LEN: usize = 16;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + Action::list_len(&self.actions) + self.data.len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.buffer_id);
        buf.put_u32(self.in_port);
        buf.put_u16(Action::list_len(&self.actions) as u16);
        buf.put_bytes(0, 6);
        Action::encode_list(&self.actions, buf);
        buf.put_slice(&self.data);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<PacketOut, DecodeError> {
        need(buf, Self::FIXED_LEN, "truncated packet out")?;
        let buffer_id = buf.u32();
        let in_port = buf.u32();
        let actions_len = usize::from(buf.u16());
        buf.skip(6);
        let mut list = take(
            buf,
            actions_len,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "packet out actions run past the message",
        )?;
        let actions = Action::decode_list(&mut list, actions_len)?;
        Ok(PacketOut {
            buffer_id,
            in_port,
            actions,
            data: rest(buf),
        })
    }
}
