//! OpenFlow 1.3 instructions (spec §7.2.4): what a flow entry does when it matches.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------------------------------+-------------------------------+
//! |             type              |     len (multiple of 8)       |
//! +-------------------------------+-------------------------------+
//! |   GOTO_TABLE: table_id, pad[3]  |  METER: meter_id            |
//! |   WRITE_METADATA: pad[4], metadata(64), metadata_mask(64)     |
//! |   WRITE/APPLY/CLEAR_ACTIONS: pad[4], actions...               |
//! +---------------------------------------------------------------+
//! ```

use bytes::{Buf, BufMut};

use crate::action::Action;
use crate::error::{DecodeError, ErrorCode, fail};

pub const OFPIT_GOTO_TABLE: u16 = 1;
pub const OFPIT_WRITE_METADATA: u16 = 2;
pub const OFPIT_WRITE_ACTIONS: u16 = 3;
pub const OFPIT_APPLY_ACTIONS: u16 = 4;
pub const OFPIT_CLEAR_ACTIONS: u16 = 5;
pub const OFPIT_METER: u16 = 6;
pub const OFPIT_EXPERIMENTER: u16 = 0xffff;

/// One instruction.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Instruction {
    GotoTable(u8),
    WriteMetadata {
        metadata: u64,
        mask: u64,
    },
    WriteActions(Vec<Action>),
    ApplyActions(Vec<Action>),
    ClearActions,
    Meter(u32),
    /// An experimenter instruction; `data` is everything after the experimenter id. Only
    /// Nicira and ONF experimenters decode (others are BAD_INSTRUCTION/BAD_EXPERIMENTER).
    Experimenter {
        experimenter: u32,
        data: Vec<u8>,
    },
}

impl Instruction {
    /// The OFPIT_* number.
    pub fn instruction_type(&self) -> u16 {
        match self {
            Instruction::GotoTable(_) => OFPIT_GOTO_TABLE,
            Instruction::WriteMetadata { .. } => OFPIT_WRITE_METADATA,
            Instruction::WriteActions(_) => OFPIT_WRITE_ACTIONS,
            Instruction::ApplyActions(_) => OFPIT_APPLY_ACTIONS,
            Instruction::ClearActions => OFPIT_CLEAR_ACTIONS,
            Instruction::Meter(_) => OFPIT_METER,
            Instruction::Experimenter { .. } => OFPIT_EXPERIMENTER,
        }
    }

    /// Length on the wire.
    pub fn wire_len(&self) -> usize {
        match self {
            Instruction::GotoTable(_) | Instruction::ClearActions | Instruction::Meter(_) => 8,
            Instruction::WriteMetadata { .. } => 24,
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => 8 + Action::list_len(a),
            Instruction::Experimenter { data, .. } => (8 + data.len()).next_multiple_of(8),
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        let len = self.wire_len();
        buf.put_u16(self.instruction_type());
        buf.put_u16(len as u16);
        match self {
            Instruction::GotoTable(t) => {
                buf.put_u8(*t);
                buf.put_bytes(0, 3);
            }
            Instruction::WriteMetadata { metadata, mask } => {
                buf.put_bytes(0, 4);
                buf.put_u64(*metadata);
                buf.put_u64(*mask);
            }
            Instruction::WriteActions(a) | Instruction::ApplyActions(a) => {
                buf.put_bytes(0, 4);
                Action::encode_list(a, buf);
            }
            Instruction::ClearActions => buf.put_bytes(0, 4),
            Instruction::Meter(m) => buf.put_u32(*m),
            Instruction::Experimenter { experimenter, data } => {
                buf.put_u32(*experimenter);
                buf.put_slice(data);
                buf.put_bytes(0, len - 8 - data.len());
            }
        }
    }

    /// Reads one instruction.
    pub fn decode(buf: &mut impl Buf) -> Result<Instruction, DecodeError> {
        if buf.remaining() < 4 {
            return fail(
                ErrorCode::BAD_INSTRUCTION_BAD_LEN,
                "truncated instruction header",
            );
        }
        let itype = buf.get_u16();
        let len = usize::from(buf.get_u16());
        if len < 8 || len % 8 != 0 || buf.remaining() < len - 4 {
            return fail(
                ErrorCode::BAD_INSTRUCTION_BAD_LEN,
                "instruction length does not fit",
            );
        }
        let mut body = Buf::take(&mut *buf, len - 4);
        let fixed = |want: usize| -> Result<(), DecodeError> {
            if len == want {
                Ok(())
            } else {
                fail(
                    ErrorCode::BAD_INSTRUCTION_BAD_LEN,
                    "wrong length for the instruction type",
                )
            }
        };
        let inst = match itype {
            OFPIT_GOTO_TABLE => fixed(8).map(|_| Instruction::GotoTable(body.get_u8()))?,
            OFPIT_WRITE_METADATA => {
                fixed(24)?;
                body.advance(4);
                let metadata = body.get_u64();
                let mask = body.get_u64();
                Instruction::WriteMetadata { metadata, mask }
            }
            OFPIT_WRITE_ACTIONS | OFPIT_APPLY_ACTIONS => {
                body.advance(4);
                let n = body.remaining();
                let actions = Action::decode_list(&mut body, n)?;
                if itype == OFPIT_WRITE_ACTIONS {
                    Instruction::WriteActions(actions)
                } else {
                    Instruction::ApplyActions(actions)
                }
            }
            OFPIT_CLEAR_ACTIONS => fixed(8).map(|_| Instruction::ClearActions)?,
            OFPIT_METER => fixed(8).map(|_| Instruction::Meter(body.get_u32()))?,
            OFPIT_EXPERIMENTER => {
                let experimenter = body.get_u32();
                if !crate::action::known_experimenter(experimenter) {
                    body.advance(body.remaining());
                    return fail(
                        ErrorCode::BAD_INSTRUCTION_BAD_EXPERIMENTER,
                        "unknown instruction experimenter",
                    );
                }
                let mut data = vec![0; body.remaining()];
                body.copy_to_slice(&mut data);
                Instruction::Experimenter { experimenter, data }
            }
            _ => {
                body.advance(body.remaining());
                return fail(
                    ErrorCode::BAD_INSTRUCTION_UNKNOWN_INST,
                    "unknown instruction type",
                );
            }
        };
        body.advance(body.remaining());
        Ok(inst)
    }

    /// Reads instructions until `buf` is empty.
    pub fn decode_all(buf: &mut impl Buf) -> Result<Vec<Instruction>, DecodeError> {
        let mut out = Vec::new();
        while buf.has_remaining() {
            out.push(Instruction::decode(buf)?);
        }
        Ok(out)
    }

    /// Writes a list of instructions.
    pub fn encode_list(insts: &[Instruction], buf: &mut impl BufMut) {
        for i in insts {
            i.encode(buf);
        }
    }

    /// Length of a list of instructions on the wire.
    pub fn list_len(insts: &[Instruction]) -> usize {
        insts.iter().map(Instruction::wire_len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(i: &Instruction, expect: &[u8]) {
        let mut v = Vec::new();
        i.encode(&mut v);
        assert_eq!(v, expect);
        assert_eq!(v.len(), i.wire_len());
        assert_eq!(
            &Instruction::decode_all(&mut &v[..]).unwrap()[..],
            std::slice::from_ref(i)
        );
    }

    #[test]
    fn layouts() {
        round_trip(&Instruction::GotoTable(3), &[0, 1, 0, 8, 3, 0, 0, 0]);
        round_trip(&Instruction::ClearActions, &[0, 5, 0, 8, 0, 0, 0, 0]);
        round_trip(&Instruction::Meter(1), &[0, 6, 0, 8, 0, 0, 0, 1]);
        round_trip(
            &Instruction::WriteMetadata {
                metadata: 0x1234,
                mask: 0xffff,
            },
            &[
                0, 2, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
            ],
        );
        round_trip(
            &Instruction::ApplyActions(vec![Action::output(2)]),
            &[
                0, 4, 0, 24, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        );
        round_trip(
            &Instruction::WriteActions(vec![]),
            &[0, 3, 0, 8, 0, 0, 0, 0],
        );
    }

    fn err(bytes: &[u8]) -> ErrorCode {
        Instruction::decode_all(&mut &bytes[..]).unwrap_err().code
    }

    #[test]
    fn refusals_carry_the_spec_codes() {
        assert_eq!(
            err(&[0, 7, 0, 8, 0, 0, 0, 0]),
            ErrorCode::BAD_INSTRUCTION_UNKNOWN_INST
        );
        assert_eq!(
            err(&[0, 1, 0, 16, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ErrorCode::BAD_INSTRUCTION_BAD_LEN
        );
        assert_eq!(
            err(&[0, 1, 0, 9, 3, 0, 0, 0, 0]),
            ErrorCode::BAD_INSTRUCTION_BAD_LEN
        );
        assert_eq!(err(&[0, 1, 0]), ErrorCode::BAD_INSTRUCTION_BAD_LEN);
        // An apply-actions whose action has an unknown type reports the action's error.
        assert_eq!(
            err(&[0, 4, 0, 16, 0, 0, 0, 0, 0, 77, 0, 8, 0, 0, 0, 0]),
            ErrorCode::BAD_ACTION_BAD_TYPE
        );
    }
}
