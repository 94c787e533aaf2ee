//! Queues: QUEUE_GET_CONFIG_REQUEST/REPLY with the queue properties. Queue statistics live
//! with the other multipart bodies.

use bytes::BufMut;

use crate::error::{DecodeError, ErrorCode, fail};
use crate::wire::{Rd, element, need};

pub const OFPQT_MIN_RATE: u16 = 1;
pub const OFPQT_MAX_RATE: u16 = 2;
pub const OFPQT_EXPERIMENTER: u16 = 0xffff;

/// OFPT_QUEUE_GET_CONFIG_REQUEST body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                    port (or OFPP_ANY)                         |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct QueueGetConfigRequest {
    pub port: u32,
}

impl QueueGetConfigRequest {
    pub const LEN: usize = 8;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.port);
        buf.put_bytes(0, 4);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<QueueGetConfigRequest, DecodeError> {
        need(buf, Self::LEN, "truncated queue config request")?;
        let port = buf.u32();
        buf.skip(4);
        Ok(QueueGetConfigRequest { port })
    }
}

/// One queue property.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |           property            |              len              |
/// +-------------------------------+-------------------------------+
/// |                            pad (4)                            |
/// +-------------------------------+-------------------------------+
/// | MIN/MAX_RATE: rate (1/10 %), pad(6) | EXPERIMENTER: id, pad(4), data |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum QueueProp {
    /// Guaranteed rate in 1/10 of a percent; > 1000 means disabled.
    MinRate(u16),
    /// Maximum rate in 1/10 of a percent; > 1000 means disabled.
    MaxRate(u16),
    Experimenter {
        experimenter: u32,
        data: Vec<u8>,
    },
}

impl QueueProp {
    pub fn wire_len(&self) -> usize {
        match self {
            QueueProp::Experimenter { data, .. } => 16 + data.len(),
            _ => 16,
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        let ptype = match self {
            QueueProp::MinRate(_) => OFPQT_MIN_RATE,
            QueueProp::MaxRate(_) => OFPQT_MAX_RATE,
            QueueProp::Experimenter { .. } => OFPQT_EXPERIMENTER,
        };
        buf.put_u16(ptype);
        buf.put_u16(self.wire_len() as u16);
        buf.put_bytes(0, 4);
        match self {
            QueueProp::MinRate(r) | QueueProp::MaxRate(r) => {
                buf.put_u16(*r);
                buf.put_bytes(0, 6);
            }
            QueueProp::Experimenter { experimenter, data } => {
                buf.put_u32(*experimenter);
                buf.put_bytes(0, 4);
                buf.put_slice(data);
            }
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<QueueProp, DecodeError> {
        let mut b = element(
            buf,
            2,
            16,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "queue property length does not fit",
        )?;
        let ptype = b.u16();
        let len = b.u16();
        b.skip(4);
        match ptype {
            OFPQT_MIN_RATE | OFPQT_MAX_RATE if len != 16 => fail(
                ErrorCode::BAD_REQUEST_BAD_LEN,
                "rate property is not 16 bytes",
            ),
            OFPQT_MIN_RATE => Ok(QueueProp::MinRate(b.u16())),
            OFPQT_MAX_RATE => Ok(QueueProp::MaxRate(b.u16())),
            OFPQT_EXPERIMENTER => {
                let experimenter = b.u32();
                b.skip(4);
                Ok(QueueProp::Experimenter {
                    experimenter,
                    data: b.to_vec(),
                })
            }
            _ => fail(ErrorCode::BAD_REQUEST_BAD_TYPE, "unknown queue property"),
        }
    }
}

/// `ofp_packet_queue`: one queue and its properties.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                           queue_id                            |
/// +---------------------------------------------------------------+
/// |                             port                              |
/// +-------------------------------+-------------------------------+
/// |              len              |            pad (6) ...        |
/// +-------------------------------+-------------------------------+
/// |                        properties ...                         |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PacketQueue {
    pub queue_id: u32,
    pub port: u32,
    pub properties: Vec<QueueProp>,
}

impl PacketQueue {
    pub fn wire_len(&self) -> usize {
        16 + self
            .properties
            .iter()
            .map(QueueProp::wire_len)
            .sum::<usize>()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.queue_id);
        buf.put_u32(self.port);
        buf.put_u16(self.wire_len() as u16);
        buf.put_bytes(0, 6);
        for p in &self.properties {
            p.encode(buf);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<PacketQueue, DecodeError> {
        let mut b = element(
            buf,
            8,
            16,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "queue length does not fit",
        )?;
        let queue_id = b.u32();
        let port = b.u32();
        b.skip(8);
        let mut properties = Vec::new();
        while !b.is_empty() {
            properties.push(QueueProp::decode(&mut b)?);
        }
        Ok(PacketQueue {
            queue_id,
            port,
            properties,
        })
    }
}

/// OFPT_QUEUE_GET_CONFIG_REPLY body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                             port                              |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |                   queues (ofp_packet_queue) ...               |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct QueueGetConfigReply {
    pub port: u32,
    pub queues: Vec<PacketQueue>,
}

impl QueueGetConfigReply {
    pub fn wire_len(&self) -> usize {
        8 + self.queues.iter().map(PacketQueue::wire_len).sum::<usize>()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.port);
        buf.put_bytes(0, 4);
        for q in &self.queues {
            q.encode(buf);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<QueueGetConfigReply, DecodeError> {
        need(buf, 8, "truncated queue config reply")?;
        let port = buf.u32();
        buf.skip(4);
        let mut queues = Vec::new();
        while !buf.is_empty() {
            queues.push(PacketQueue::decode(buf)?);
        }
        Ok(QueueGetConfigReply { port, queues })
    }
}
