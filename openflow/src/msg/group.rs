//! Groups: GROUP_MOD with its buckets, and the group multipart bodies (group stats, group
//! description, group features).

use bytes::BufMut;

use crate::action::Action;
use crate::error::{DecodeError, ErrorCode, fail};
use crate::wire::{Rd, element, need};

/// `ofp_group_mod_command`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u16)]
pub enum GroupModCommand {
    Add = 0,
    Modify = 1,
    Delete = 2,
    /// Open vSwitch extension (`ovs-ofctl --may-create mod-group`): add, or modify if the
    /// group exists.
    AddOrMod = 0x8000,
}

/// `ofp_group_type`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum GroupType {
    All = 0,
    Select = 1,
    Indirect = 2,
    FastFailover = 3,
}

impl GroupType {
    pub fn from_u8(v: u8) -> Option<GroupType> {
        Some(match v {
            0 => GroupType::All,
            1 => GroupType::Select,
            2 => GroupType::Indirect,
            3 => GroupType::FastFailover,
            _ => return None,
        })
    }

    fn decode(v: u8) -> Result<GroupType, DecodeError> {
        GroupType::from_u8(v).map_or_else(
            || fail(ErrorCode::GROUP_MOD_BAD_TYPE, "unknown group type"),
            Ok,
        )
    }
}

/// `ofp_bucket`.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |              len              |            weight             |
/// +-------------------------------+-------------------------------+
/// |                          watch_port                           |
/// +---------------------------------------------------------------+
/// |                          watch_group                          |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |                          actions ...                          |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Bucket {
    /// Relative weight (select groups only).
    pub weight: u16,
    /// Port whose liveness decides this bucket (fast-failover), or OFPP_ANY.
    pub watch_port: u32,
    /// Group whose liveness decides this bucket (fast-failover), or OFPG_ANY.
    pub watch_group: u32,
    pub actions: Vec<Action>,
}

impl Bucket {
    pub const FIXED_LEN: usize = 16;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + Action::list_len(&self.actions)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.wire_len() as u16);
        buf.put_u16(self.weight);
        buf.put_u32(self.watch_port);
        buf.put_u32(self.watch_group);
        buf.put_bytes(0, 4);
        Action::encode_list(&self.actions, buf);
    }

    /// A bucket whose length does not fit is GROUP_MOD_FAILED/BAD_BUCKET.
    pub fn decode(buf: &mut &[u8]) -> Result<Bucket, DecodeError> {
        let mut b = element(
            buf,
            0,
            Self::FIXED_LEN,
            ErrorCode::GROUP_MOD_BAD_BUCKET,
            "bucket length does not fit",
        )?;
        b.skip(2);
        let weight = b.u16();
        let watch_port = b.u32();
        let watch_group = b.u32();
        b.skip(4);
        let n = b.len();
        Ok(Bucket {
            weight,
            watch_port,
            watch_group,
            actions: Action::decode_list(&mut b, n)?,
        })
    }

    pub fn list_len(buckets: &[Bucket]) -> usize {
        buckets.iter().map(Bucket::wire_len).sum()
    }

    pub fn decode_all(buf: &mut &[u8]) -> Result<Vec<Bucket>, DecodeError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            out.push(Bucket::decode(buf)?);
        }
        Ok(out)
    }
}

/// OFPT_GROUP_MOD body.
///
/// ```text
/// +-------------------------------+---------------+---------------+
/// |            command            |     type      |      pad      |
/// +-------------------------------+---------------+---------------+
/// |                           group_id                            |
/// +---------------------------------------------------------------+
/// |                          buckets ...                          |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct GroupMod {
    pub command: GroupModCommand,
    pub group_type: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl GroupMod {
    pub const FIXED_LEN: usize = 8;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + Bucket::list_len(&self.buckets)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.command as u16);
        buf.put_u8(self.group_type as u8);
        buf.put_u8(0);
        buf.put_u32(self.group_id);
        for b in &self.buckets {
            b.encode(buf);
        }
    }

    /// Unknown command is GROUP_MOD_FAILED/BAD_COMMAND, unknown type BAD_TYPE.
    pub fn decode(buf: &mut &[u8]) -> Result<GroupMod, DecodeError> {
        need(buf, Self::FIXED_LEN, "truncated group mod")?;
        let command = match buf.u16() {
            0 => GroupModCommand::Add,
            1 => GroupModCommand::Modify,
            2 => GroupModCommand::Delete,
            0x8000 => GroupModCommand::AddOrMod,
            _ => return fail(ErrorCode::GROUP_MOD_BAD_COMMAND, "unknown group command"),
        };
        let group_type = GroupType::decode(buf.u8())?;
        buf.skip(1);
        let group_id = buf.u32();
        Ok(GroupMod {
            command,
            group_type,
            group_id,
            buckets: Bucket::decode_all(buf)?,
        })
    }
}

/// One group in the group-description reply (`ofp_group_desc`).
///
/// ```text
/// +-------------------------------+---------------+---------------+
/// |            length             |     type      |      pad      |
/// +-------------------------------+---------------+---------------+
/// |                           group_id                            |
/// +---------------------------------------------------------------+
/// |                          buckets ...                          |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct GroupDesc {
    pub group_type: GroupType,
    pub group_id: u32,
    pub buckets: Vec<Bucket>,
}

impl GroupDesc {
    pub fn wire_len(&self) -> usize {
        8 + Bucket::list_len(&self.buckets)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.wire_len() as u16);
        buf.put_u8(self.group_type as u8);
        buf.put_u8(0);
        buf.put_u32(self.group_id);
        for b in &self.buckets {
            b.encode(buf);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<GroupDesc, DecodeError> {
        let mut b = element(
            buf,
            0,
            8,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "group description length does not fit",
        )?;
        b.skip(2);
        let group_type = GroupType::decode(b.u8())?;
        b.skip(1);
        let group_id = b.u32();
        Ok(GroupDesc {
            group_type,
            group_id,
            buckets: Bucket::decode_all(&mut b)?,
        })
    }
}

/// Per-bucket counters in group stats.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct BucketCounter {
    pub packet_count: u64,
    pub byte_count: u64,
}

/// One group's statistics (`ofp_group_stats`).
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |            length             |            pad (2)            |
/// +-------------------------------+-------------------------------+
/// |                           group_id                            |
/// +---------------------------------------------------------------+
/// |                           ref_count                           |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |              packet_count (64)  |  byte_count (64)            |
/// +---------------------------------------------------------------+
/// |         duration_sec            |  duration_nsec              |
/// +---------------------------------------------------------------+
/// |    bucket_stats: (packet_count, byte_count) per bucket ...    |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct GroupStats {
    pub group_id: u32,
    pub ref_count: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub bucket_stats: Vec<BucketCounter>,
}

impl GroupStats {
    pub fn wire_len(&self) -> usize {
        40 + 16 * self.bucket_stats.len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.wire_len() as u16);
        buf.put_bytes(0, 2);
        buf.put_u32(self.group_id);
        buf.put_u32(self.ref_count);
        buf.put_bytes(0, 4);
        buf.put_u64(self.packet_count);
        buf.put_u64(self.byte_count);
        buf.put_u32(self.duration_sec);
        buf.put_u32(self.duration_nsec);
        for c in &self.bucket_stats {
            buf.put_u64(c.packet_count);
            buf.put_u64(c.byte_count);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<GroupStats, DecodeError> {
        let mut b = element(
            buf,
            0,
            40,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "group stats length does not fit",
        )?;
        if (b.len() - 40) % 16 != 0 {
            return fail(ErrorCode::BAD_REQUEST_BAD_LEN, "partial bucket counter");
        }
        b.skip(4);
        let group_id = b.u32();
        let ref_count = b.u32();
        b.skip(4);
        let mut s = GroupStats {
            group_id,
            ref_count,
            packet_count: b.u64(),
            byte_count: b.u64(),
            duration_sec: b.u32(),
            duration_nsec: b.u32(),
            bucket_stats: Vec::new(),
        };
        while !b.is_empty() {
            s.bucket_stats.push(BucketCounter {
                packet_count: b.u64(),
                byte_count: b.u64(),
            });
        }
        Ok(s)
    }
}

/// Group features reply (`ofp_group_features`). Arrays are indexed by group type.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                 types       |      capabilities               |
/// +---------------------------------------------------------------+
/// |                      max_groups[4] (u32 each)                 |
/// +---------------------------------------------------------------+
/// |                       actions[4] (u32 each)                   |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct GroupFeatures {
    /// Bitmap of supported group types (bit = `GroupType as u8`).
    pub types: u32,
    /// OFPGFC_* bits.
    pub capabilities: u32,
    pub max_groups: [u32; 4],
    /// Per group type, bitmap of supported OFPAT_* (bit = action type).
    pub actions: [u32; 4],
}

impl GroupFeatures {
    pub const LEN: usize = 40;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.types);
        buf.put_u32(self.capabilities);
        for w in self.max_groups.iter().chain(&self.actions) {
            buf.put_u32(*w);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<GroupFeatures, DecodeError> {
        need(buf, Self::LEN, "truncated group features")?;
        let mut f = GroupFeatures {
            types: buf.u32(),
            capabilities: buf.u32(),
            ..GroupFeatures::default()
        };
        for w in f.max_groups.iter_mut() {
            *w = buf.u32();
        }
        for w in f.actions.iter_mut() {
            *w = buf.u32();
        }
        Ok(f)
    }
}
