//! Flow-table messages: FLOW_MOD, FLOW_REMOVED and TABLE_MOD. Flow statistics live with the
//! other multipart bodies.

use bytes::BufMut;

use crate::consts::OFPTT_ALL;
use crate::error::{DecodeError, ErrorCode, fail};
use crate::instruction::Instruction;
use crate::oxm::Match;
use crate::wire::{Rd, need};

/// FLOW_MOD flag bits.
pub mod flags {
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    pub const RESET_COUNTS: u16 = 1 << 2;
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
    /// Every flag OpenFlow 1.3 defines.
    pub const ALL: u16 = 0x1f;
}

/// `ofp_flow_mod_command`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum FlowModCommand {
    Add = 0,
    Modify = 1,
    ModifyStrict = 2,
    Delete = 3,
    DeleteStrict = 4,
}

impl FlowModCommand {
    pub fn from_u8(v: u8) -> Option<FlowModCommand> {
        Some(match v {
            0 => FlowModCommand::Add,
            1 => FlowModCommand::Modify,
            2 => FlowModCommand::ModifyStrict,
            3 => FlowModCommand::Delete,
            4 => FlowModCommand::DeleteStrict,
            _ => return None,
        })
    }
}

/// OFPT_FLOW_MOD body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                          cookie (64)                          |
/// +---------------------------------------------------------------+
/// |                       cookie_mask (64)                        |
/// +---------------+---------------+-------------------------------+
/// |   table_id    |    command    |         idle_timeout          |
/// +---------------+---------------+-------------------------------+
/// |         hard_timeout          |           priority            |
/// +-------------------------------+-------------------------------+
/// |                          buffer_id                            |
/// +---------------------------------------------------------------+
/// |                           out_port                            |
/// +---------------------------------------------------------------+
/// |                          out_group                            |
/// +-------------------------------+-------------------------------+
/// |             flags             |            pad (2)            |
/// +-------------------------------+-------------------------------+
/// |                    match (ofp_match, padded)                  |
/// +---------------------------------------------------------------+
/// |                        instructions ...                       |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FlowMod {
    pub cookie: u64,
    pub cookie_mask: u64,
    pub table_id: u8,
    pub command: FlowModCommand,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub priority: u16,
    pub buffer_id: u32,
    pub out_port: u32,
    pub out_group: u32,
    /// [`flags`] bits.
    pub flags: u16,
    pub match_: Match,
    pub instructions: Vec<Instruction>,
}

impl FlowMod {
    pub const FIXED_LEN: usize = 40;

    /// A flow mod with this command and the usual defaults: table 0, cookie 0, no
    /// timeouts, priority 0x8000 (OFP_DEFAULT_PRIORITY), not buffered, any out port and
    /// group, no flags, match-all, no instructions. Fill the rest with struct update syntax.
    pub fn new(command: FlowModCommand) -> FlowMod {
        FlowMod {
            cookie: 0,
            cookie_mask: 0,
            table_id: 0,
            command,
            idle_timeout: 0,
            hard_timeout: 0,
            priority: 0x8000,
            buffer_id: crate::consts::OFP_NO_BUFFER,
            out_port: crate::consts::OFPP_ANY,
            out_group: crate::consts::OFPG_ANY,
            flags: 0,
            match_: Match::all(),
            instructions: Vec::new(),
        }
    }

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + self.match_.wire_len() + Instruction::list_len(&self.instructions)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64(self.cookie);
        buf.put_u64(self.cookie_mask);
        buf.put_u8(self.table_id);
        buf.put_u8(self.command as u8);
        buf.put_u16(self.idle_timeout);
        buf.put_u16(self.hard_timeout);
        buf.put_u16(self.priority);
        buf.put_u32(self.buffer_id);
        buf.put_u32(self.out_port);
        buf.put_u32(self.out_group);
        buf.put_u16(self.flags);
        buf.put_bytes(0, 2);
        self.match_.encode(buf);
        Instruction::encode_list(&self.instructions, buf);
    }

    /// Checks, besides the layout: the command (FLOW_MOD_FAILED/BAD_COMMAND), the flags
    /// (FLOW_MOD_FAILED/BAD_FLAGS), table OFPTT_ALL only for deletes
    /// (FLOW_MOD_FAILED/BAD_TABLE_ID), goto-table only forward
    /// (BAD_INSTRUCTION/BAD_TABLE_ID), each instruction type at most once (the ONF
    /// experimenter error OFPBIC_DUP_INST, as Open vSwitch sends it for 1.3).
    pub fn decode(buf: &mut &[u8]) -> Result<FlowMod, DecodeError> {
        need(buf, Self::FIXED_LEN + 8, "truncated flow mod")?;
        let cookie = buf.u64();
        let cookie_mask = buf.u64();
        let table_id = buf.u8();
        let Some(command) = FlowModCommand::from_u8(buf.u8()) else {
            return fail(ErrorCode::FLOW_MOD_BAD_COMMAND, "unknown flow mod command");
        };
        let idle_timeout = buf.u16();
        let hard_timeout = buf.u16();
        let priority = buf.u16();
        let buffer_id = buf.u32();
        let out_port = buf.u32();
        let out_group = buf.u32();
        let flags = buf.u16();
        buf.skip(2);
        if flags & !self::flags::ALL != 0 {
            return fail(ErrorCode::FLOW_MOD_BAD_FLAGS, "unknown flow mod flags");
        }
        let adds = matches!(
            command,
            FlowModCommand::Add | FlowModCommand::Modify | FlowModCommand::ModifyStrict
        );
        if adds && table_id == OFPTT_ALL {
            return fail(
                ErrorCode::FLOW_MOD_BAD_TABLE_ID,
                "flow add or modify on table ALL",
            );
        }
        let match_ = Match::decode(buf)?;
        let instructions = Instruction::decode_all(buf)?;
        for (i, inst) in instructions.iter().enumerate() {
            let t = inst.instruction_type();
            if instructions[..i].iter().any(|o| o.instruction_type() == t) {
                return fail(
                    ErrorCode::ONF_DUP_INSTRUCTION,
                    "instruction type appears twice",
                );
            }
        }
        if adds
            && instructions
                .iter()
                .any(|i| matches!(i, Instruction::GotoTable(t) if *t <= table_id))
        {
            return fail(
                ErrorCode::BAD_INSTRUCTION_BAD_TABLE_ID,
                "goto-table does not go forward",
            );
        }
        Ok(FlowMod {
            cookie,
            cookie_mask,
            table_id,
            command,
            idle_timeout,
            hard_timeout,
            priority,
            buffer_id,
            out_port,
            out_group,
            flags,
            match_,
            instructions,
        })
    }
}

/// FLOW_REMOVED reasons.
pub const OFPRR_IDLE_TIMEOUT: u8 = 0;
pub const OFPRR_HARD_TIMEOUT: u8 = 1;
pub const OFPRR_DELETE: u8 = 2;
pub const OFPRR_GROUP_DELETE: u8 = 3;

/// OFPT_FLOW_REMOVED body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                          cookie (64)                          |
/// +-------------------------------+---------------+---------------+
/// |           priority            |    reason     |   table_id    |
/// +-------------------------------+---------------+---------------+
/// |                         duration_sec                          |
/// +---------------------------------------------------------------+
/// |                         duration_nsec                         |
/// +-------------------------------+-------------------------------+
/// |         idle_timeout          |         hard_timeout          |
/// +-------------------------------+-------------------------------+
/// |                       packet_count (64)                       |
/// +---------------------------------------------------------------+
/// |                        byte_count (64)                        |
/// +---------------------------------------------------------------+
/// |                    match (ofp_match, padded)                  |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FlowRemoved {
    pub cookie: u64,
    pub priority: u16,
    pub reason: u8,
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
}

impl FlowRemoved {
    pub const FIXED_LEN: usize = 40;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + self.match_.wire_len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64(self.cookie);
        buf.put_u16(self.priority);
        buf.put_u8(self.reason);
        buf.put_u8(self.table_id);
        buf.put_u32(self.duration_sec);
        buf.put_u32(self.duration_nsec);
        buf.put_u16(self.idle_timeout);
        buf.put_u16(self.hard_timeout);
        buf.put_u64(self.packet_count);
        buf.put_u64(self.byte_count);
        self.match_.encode(buf);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<FlowRemoved, DecodeError> {
        need(buf, Self::FIXED_LEN + 8, "truncated flow removed")?;
        Ok(FlowRemoved {
            cookie: buf.u64(),
            priority: buf.u16(),
            reason: buf.u8(),
            table_id: buf.u8(),
            duration_sec: buf.u32(),
            duration_nsec: buf.u32(),
            idle_timeout: buf.u16(),
            hard_timeout: buf.u16(),
            packet_count: buf.u64(),
            byte_count: buf.u64(),
            match_: Match::decode_reported(buf)?,
        })
    }
}

/// OFPT_TABLE_MOD body.
///
/// ```text
/// +---------------+-----------------------------------------------+
/// |   table_id    |                    pad (3)                    |
/// +---------------+-----------------------------------------------+
/// |                            config                             |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct TableMod {
    /// A table, or OFPTT_ALL.
    pub table_id: u8,
    pub config: u32,
}

impl TableMod {
    pub const LEN: usize = 8;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.table_id);
        buf.put_bytes(0, 3);
        buf.put_u32(self.config);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<TableMod, DecodeError> {
        need(buf, Self::LEN, "truncated table mod")?;
        let table_id = buf.u8();
        buf.skip(3);
        Ok(TableMod {
            table_id,
            config: buf.u32(),
        })
    }
}
