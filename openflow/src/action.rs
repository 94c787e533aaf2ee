//! OpenFlow 1.3 actions (spec §7.2.5): every action type with its exact length and padding,
//! and action lists as they appear in instructions, buckets and packet-outs.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------------------------------+-------------------------------+
//! |             type              |   len (multiple of 8, >= 8)   |
//! +-------------------------------+-------------------------------+
//! |                  body of the type, zero padded                |
//! +---------------------------------------------------------------+
//! ```

use bytes::{Buf, BufMut};

use crate::error::{DecodeError, ErrorCode, fail};
use crate::oxm::{Oxm, OxmTlv};

pub const OFPAT_OUTPUT: u16 = 0;
pub const OFPAT_COPY_TTL_OUT: u16 = 11;
pub const OFPAT_COPY_TTL_IN: u16 = 12;
pub const OFPAT_SET_MPLS_TTL: u16 = 15;
pub const OFPAT_DEC_MPLS_TTL: u16 = 16;
pub const OFPAT_PUSH_VLAN: u16 = 17;
pub const OFPAT_POP_VLAN: u16 = 18;
pub const OFPAT_PUSH_MPLS: u16 = 19;
pub const OFPAT_POP_MPLS: u16 = 20;
pub const OFPAT_SET_QUEUE: u16 = 21;
pub const OFPAT_GROUP: u16 = 22;
pub const OFPAT_SET_NW_TTL: u16 = 23;
pub const OFPAT_DEC_NW_TTL: u16 = 24;
pub const OFPAT_SET_FIELD: u16 = 25;
pub const OFPAT_PUSH_PBB: u16 = 26;
pub const OFPAT_POP_PBB: u16 = 27;
pub const OFPAT_EXPERIMENTER: u16 = 0xffff;

/// One action.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Action {
    /// Output to `port`; `max_len` is the byte count sent when `port` is CONTROLLER.
    Output {
        port: u32,
        max_len: u16,
    },
    CopyTtlOut,
    CopyTtlIn,
    SetMplsTtl(u8),
    DecMplsTtl,
    /// Push a VLAN tag with this ethertype (0x8100 or 0x88a8; others are refused with
    /// BAD_ACTION/BAD_ARGUMENT when decoded).
    PushVlan(u16),
    PopVlan,
    /// Push an MPLS shim with this ethertype (0x8847 or 0x8848).
    PushMpls(u16),
    /// Pop the outer MPLS shim; the argument is the ethertype of what is left.
    PopMpls(u16),
    SetQueue(u32),
    Group(u32),
    SetNwTtl(u8),
    DecNwTtl,
    /// Set one header field (an unmasked OXM TLV).
    SetField(OxmTlv),
    PushPbb(u16),
    PopPbb,
    /// An experimenter action; `data` is everything after the experimenter id, padding
    /// included. Only Nicira (0x2320) and ONF experimenters decode (others are
    /// BAD_ACTION/BAD_EXPERIMENTER).
    Experimenter {
        experimenter: u32,
        data: Vec<u8>,
    },
}

impl Action {
    /// Output to a port with the default controller length (OVS prints such an output as
    /// `output:N`).
    pub fn output(port: u32) -> Action {
        Action::Output { port, max_len: 0 }
    }

    /// Set-field of a basic field.
    pub fn set_field(oxm: Oxm) -> Action {
        Action::SetField(OxmTlv::Basic(oxm))
    }

    /// The OFPAT_* number.
    pub fn action_type(&self) -> u16 {
        match self {
            Action::Output { .. } => OFPAT_OUTPUT,
            Action::CopyTtlOut => OFPAT_COPY_TTL_OUT,
            Action::CopyTtlIn => OFPAT_COPY_TTL_IN,
            Action::SetMplsTtl(_) => OFPAT_SET_MPLS_TTL,
            Action::DecMplsTtl => OFPAT_DEC_MPLS_TTL,
            Action::PushVlan(_) => OFPAT_PUSH_VLAN,
            Action::PopVlan => OFPAT_POP_VLAN,
            Action::PushMpls(_) => OFPAT_PUSH_MPLS,
            Action::PopMpls(_) => OFPAT_POP_MPLS,
            Action::SetQueue(_) => OFPAT_SET_QUEUE,
            Action::Group(_) => OFPAT_GROUP,
            Action::SetNwTtl(_) => OFPAT_SET_NW_TTL,
            Action::DecNwTtl => OFPAT_DEC_NW_TTL,
            Action::SetField(_) => OFPAT_SET_FIELD,
            Action::PushPbb(_) => OFPAT_PUSH_PBB,
            Action::PopPbb => OFPAT_POP_PBB,
            Action::Experimenter { .. } => OFPAT_EXPERIMENTER,
        }
    }

    /// Length on the wire, header and padding included.
    pub fn wire_len(&self) -> usize {
        match self {
            Action::Output { .. } => 16,
            Action::SetField(tlv) => (4 + tlv.wire_len()).next_multiple_of(8),
            Action::Experimenter { data, .. } => (8 + data.len()).next_multiple_of(8),
            _ => 8,
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        let len = self.wire_len();
        buf.put_u16(self.action_type());
        buf.put_u16(len as u16);
        match self {
            Action::Output { port, max_len } => {
                buf.put_u32(*port);
                buf.put_u16(*max_len);
                buf.put_bytes(0, 6);
            }
            Action::CopyTtlOut
            | Action::CopyTtlIn
            | Action::DecMplsTtl
            | Action::PopVlan
            | Action::DecNwTtl
            | Action::PopPbb => buf.put_bytes(0, 4),
            Action::SetMplsTtl(ttl) | Action::SetNwTtl(ttl) => {
                buf.put_u8(*ttl);
                buf.put_bytes(0, 3);
            }
            Action::PushVlan(eth)
            | Action::PushMpls(eth)
            | Action::PopMpls(eth)
            | Action::PushPbb(eth) => {
                buf.put_u16(*eth);
                buf.put_bytes(0, 2);
            }
            Action::SetQueue(id) | Action::Group(id) => buf.put_u32(*id),
            Action::SetField(tlv) => {
                tlv.encode(buf);
                buf.put_bytes(0, len - 4 - tlv.wire_len());
            }
            Action::Experimenter { experimenter, data } => {
                buf.put_u32(*experimenter);
                buf.put_slice(data);
                buf.put_bytes(0, len - 8 - data.len());
            }
        }
    }

    /// Reads one action.
    pub fn decode(buf: &mut impl Buf) -> Result<Action, DecodeError> {
        if buf.remaining() < 4 {
            return fail(ErrorCode::BAD_ACTION_BAD_LEN, "truncated action header");
        }
        let atype = buf.get_u16();
        let len = usize::from(buf.get_u16());
        if len < 8 || len % 8 != 0 || buf.remaining() < len - 4 {
            return fail(
                ErrorCode::BAD_ACTION_BAD_LEN,
                "action length is not a multiple of 8 that fits",
            );
        }
        let mut body = Buf::take(&mut *buf, len - 4);
        let fixed = |want: usize| -> Result<(), DecodeError> {
            if len == want {
                Ok(())
            } else {
                fail(
                    ErrorCode::BAD_ACTION_BAD_LEN,
                    "wrong length for the action type",
                )
            }
        };
        let action = match atype {
            OFPAT_OUTPUT => {
                fixed(16)?;
                let port = body.get_u32();
                let max_len = body.get_u16();
                Action::Output { port, max_len }
            }
            OFPAT_COPY_TTL_OUT => fixed(8).map(|_| Action::CopyTtlOut)?,
            OFPAT_COPY_TTL_IN => fixed(8).map(|_| Action::CopyTtlIn)?,
            OFPAT_SET_MPLS_TTL => fixed(8).map(|_| Action::SetMplsTtl(body.get_u8()))?,
            OFPAT_DEC_MPLS_TTL => fixed(8).map(|_| Action::DecMplsTtl)?,
            OFPAT_PUSH_VLAN => {
                fixed(8)?;
                Action::PushVlan(ethertype(body.get_u16(), &[0x8100, 0x88a8])?)
            }
            OFPAT_POP_VLAN => fixed(8).map(|_| Action::PopVlan)?,
            OFPAT_PUSH_MPLS => {
                fixed(8)?;
                Action::PushMpls(ethertype(body.get_u16(), &[0x8847, 0x8848])?)
            }
            OFPAT_POP_MPLS => fixed(8).map(|_| Action::PopMpls(body.get_u16()))?,
            OFPAT_SET_QUEUE => fixed(8).map(|_| Action::SetQueue(body.get_u32()))?,
            OFPAT_GROUP => fixed(8).map(|_| Action::Group(body.get_u32()))?,
            OFPAT_SET_NW_TTL => fixed(8).map(|_| Action::SetNwTtl(body.get_u8()))?,
            OFPAT_DEC_NW_TTL => fixed(8).map(|_| Action::DecNwTtl)?,
            OFPAT_PUSH_PBB => {
                fixed(8)?;
                Action::PushPbb(ethertype(body.get_u16(), &[0x88e7])?)
            }
            OFPAT_POP_PBB => fixed(8).map(|_| Action::PopPbb)?,
            OFPAT_SET_FIELD => decode_set_field(&mut body, len)?,
            OFPAT_EXPERIMENTER => {
                let experimenter = body.get_u32();
                if !known_experimenter(experimenter) {
                    body.advance(body.remaining());
                    return fail(
                        ErrorCode::BAD_ACTION_BAD_EXPERIMENTER,
                        "unknown action experimenter",
                    );
                }
                let mut data = vec![0; body.remaining()];
                body.copy_to_slice(&mut data);
                Action::Experimenter { experimenter, data }
            }
            _ => {
                body.advance(body.remaining());
                return fail(ErrorCode::BAD_ACTION_BAD_TYPE, "unknown action type");
            }
        };
        // Skip the padding of fixed-size actions.
        body.advance(body.remaining());
        Ok(action)
    }

    /// Reads an action list of exactly `len` bytes.
    pub fn decode_list(buf: &mut impl Buf, len: usize) -> Result<Vec<Action>, DecodeError> {
        if buf.remaining() < len {
            return fail(
                ErrorCode::BAD_ACTION_BAD_LEN,
                "action list runs past the message",
            );
        }
        let mut body = Buf::take(&mut *buf, len);
        let mut actions = Vec::new();
        while body.has_remaining() {
            actions.push(Action::decode(&mut body)?);
        }
        Ok(actions)
    }

    /// Writes an action list.
    pub fn encode_list(actions: &[Action], buf: &mut impl BufMut) {
        for a in actions {
            a.encode(buf);
        }
    }

    /// Length of an action list on the wire.
    pub fn list_len(actions: &[Action]) -> usize {
        actions.iter().map(Action::wire_len).sum()
    }
}

/// Experimenters whose actions and instructions are carried: Nicira (Open vSwitch) and ONF.
pub(crate) fn known_experimenter(id: u32) -> bool {
    matches!(id, 0x0000_2320 | crate::error::ONF_EXPERIMENTER_ID)
}

/// A push action's ethertype must be one the spec allows for it (else BAD_ARGUMENT).
fn ethertype(eth: u16, allowed: &[u16]) -> Result<u16, DecodeError> {
    if allowed.contains(&eth) {
        Ok(eth)
    } else {
        fail(
            ErrorCode::BAD_ACTION_BAD_ARGUMENT,
            "ethertype not allowed for this push",
        )
    }
}

/// The body of OFPAT_SET_FIELD: one OXM TLV, no mask, padded to the action's 8-byte length.
fn decode_set_field(body: &mut impl Buf, len: usize) -> Result<Action, DecodeError> {
    let tlv = OxmTlv::decode(body).map_err(|e| {
        let code = if e.code == ErrorCode::BAD_MATCH_BAD_FIELD {
            ErrorCode::BAD_ACTION_BAD_SET_TYPE
        } else if e.code == ErrorCode::BAD_MATCH_BAD_LEN {
            ErrorCode::BAD_ACTION_BAD_SET_LEN
        } else {
            ErrorCode::BAD_ACTION_BAD_SET_ARGUMENT
        };
        DecodeError::new(code, e.reason)
    })?;
    if (4 + tlv.wire_len()).next_multiple_of(8) != len {
        return fail(
            ErrorCode::BAD_ACTION_BAD_SET_LEN,
            "set-field padding is not the minimum",
        );
    }
    if tlv.has_mask() {
        return fail(
            ErrorCode::BAD_ACTION_BAD_SET_ARGUMENT,
            "set-field with a mask",
        );
    }
    Ok(Action::SetField(tlv))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::OFPP_CONTROLLER;
    use crate::oxm::{FieldId, MacAddr};

    fn round_trip(a: &Action, expect: &[u8]) {
        let mut v = Vec::new();
        a.encode(&mut v);
        assert_eq!(v, expect, "encode {a:?}");
        assert_eq!(v.len(), a.wire_len());
        let mut b = &v[..];
        assert_eq!(&Action::decode(&mut b).unwrap(), a);
        assert!(b.is_empty());
    }

    #[test]
    fn fixed_actions_have_spec_layouts() {
        round_trip(
            &Action::Output {
                port: OFPP_CONTROLLER,
                max_len: 0xffff,
            },
            &[
                0, 0, 0, 16, 0xff, 0xff, 0xff, 0xfd, 0xff, 0xff, 0, 0, 0, 0, 0, 0,
            ],
        );
        round_trip(&Action::PushVlan(0x8100), &[0, 17, 0, 8, 0x81, 0x00, 0, 0]);
        round_trip(&Action::PopVlan, &[0, 18, 0, 8, 0, 0, 0, 0]);
        round_trip(&Action::Group(7), &[0, 22, 0, 8, 0, 0, 0, 7]);
        round_trip(&Action::SetNwTtl(64), &[0, 23, 0, 8, 64, 0, 0, 0]);
        round_trip(&Action::DecNwTtl, &[0, 24, 0, 8, 0, 0, 0, 0]);
        round_trip(&Action::PopMpls(0x0800), &[0, 20, 0, 8, 8, 0, 0, 0]);
        round_trip(&Action::SetQueue(3), &[0, 21, 0, 8, 0, 0, 0, 3]);
        round_trip(&Action::CopyTtlIn, &[0, 12, 0, 8, 0, 0, 0, 0]);
        round_trip(&Action::SetMplsTtl(9), &[0, 15, 0, 8, 9, 0, 0, 0]);
    }

    #[test]
    fn set_field_pads_to_eight() {
        let mac: MacAddr = "00:00:00:00:00:01".parse().unwrap();
        // 4 + (4 + 6) = 14 -> 16.
        round_trip(
            &Action::set_field(Oxm::exact(FieldId::EthDst, mac.to_u128())),
            &[0, 25, 0, 16, 0x80, 0, 6, 6, 0, 0, 0, 0, 0, 1, 0, 0],
        );
        // 4 + (4 + 2) = 10 -> 16.
        round_trip(
            &Action::set_field(Oxm::exact(FieldId::TcpDst, 8080)),
            &[0, 25, 0, 16, 0x80, 0, 28, 2, 0x1f, 0x90, 0, 0, 0, 0, 0, 0],
        );
    }

    #[test]
    fn experimenter_keeps_its_bytes() {
        round_trip(
            &Action::Experimenter {
                experimenter: 0x2320,
                data: vec![0, 0x26, 1, 2, 3, 4, 5, 6],
            },
            &[
                0xff, 0xff, 0, 16, 0, 0, 0x23, 0x20, 0, 0x26, 1, 2, 3, 4, 5, 6,
            ],
        );
    }

    fn decode_err(bytes: &[u8]) -> ErrorCode {
        Action::decode_list(&mut &bytes[..], bytes.len())
            .unwrap_err()
            .code
    }

    #[test]
    fn refusals_carry_the_spec_codes() {
        assert_eq!(
            decode_err(&[0, 99, 0, 8, 0, 0, 0, 0]),
            ErrorCode::BAD_ACTION_BAD_TYPE
        );
        assert_eq!(
            decode_err(&[0, 0, 0, 8, 0, 0, 0, 1]),
            ErrorCode::BAD_ACTION_BAD_LEN
        );
        assert_eq!(
            decode_err(&[0, 17, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0]),
            ErrorCode::BAD_ACTION_BAD_LEN
        );
        assert_eq!(
            decode_err(&[0, 17, 0, 16, 0, 0, 0, 0]),
            ErrorCode::BAD_ACTION_BAD_LEN
        );
        assert_eq!(decode_err(&[0, 17, 0]), ErrorCode::BAD_ACTION_BAD_LEN);
        // set_field with a mask.
        assert_eq!(
            decode_err(&[0, 25, 0, 16, 0x80, 0, 29, 4, 0, 80, 0xff, 0xff, 0, 0, 0, 0]),
            ErrorCode::BAD_ACTION_BAD_SET_ARGUMENT
        );
        // set_field of an unknown basic field.
        assert_eq!(
            decode_err(&[0, 25, 0, 16, 0x80, 0, 90, 2, 0, 80, 0, 0, 0, 0, 0, 0]),
            ErrorCode::BAD_ACTION_BAD_SET_TYPE
        );
        // set_field whose TLV claims more bytes than the action has.
        assert_eq!(
            decode_err(&[0, 25, 0, 8, 0x80, 0, 6, 6]),
            ErrorCode::BAD_ACTION_BAD_SET_LEN
        );
        // set_field padded to 24 when 16 is enough.
        let mut over = vec![0, 25, 0, 24, 0x80, 0, 28, 2, 0, 80];
        over.resize(24, 0);
        assert_eq!(decode_err(&over), ErrorCode::BAD_ACTION_BAD_SET_LEN);
        // set_field with an out-of-range value (vlan_vid 0x3000).
        assert_eq!(
            decode_err(&[0, 25, 0, 16, 0x80, 0, 12, 2, 0x30, 0, 0, 0, 0, 0, 0, 0]),
            ErrorCode::BAD_ACTION_BAD_SET_ARGUMENT
        );
    }
}
