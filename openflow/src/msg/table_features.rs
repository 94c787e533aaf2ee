//! Table features (spec §7.3.5.5): the `ofp_table_features` entry of the TABLE_FEATURES
//! multipart request and reply, and every table-feature property type.

use bytes::BufMut;

use crate::consts::OFPTT_ALL;
use crate::error::{DecodeError, ErrorCode, fail};
use crate::oxm::OFPXMC_EXPERIMENTER;
use crate::wire::{Rd, element, get_str, pad8, put_str, take};

/// Length of a table name field, NUL included.
pub const OFP_MAX_TABLE_NAME_LEN: usize = 32;

pub const OFPTFPT_INSTRUCTIONS: u16 = 0;
pub const OFPTFPT_INSTRUCTIONS_MISS: u16 = 1;
pub const OFPTFPT_NEXT_TABLES: u16 = 2;
pub const OFPTFPT_NEXT_TABLES_MISS: u16 = 3;
pub const OFPTFPT_WRITE_ACTIONS: u16 = 4;
pub const OFPTFPT_WRITE_ACTIONS_MISS: u16 = 5;
pub const OFPTFPT_APPLY_ACTIONS: u16 = 6;
pub const OFPTFPT_APPLY_ACTIONS_MISS: u16 = 7;
pub const OFPTFPT_MATCH: u16 = 8;
pub const OFPTFPT_WILDCARDS: u16 = 10;
pub const OFPTFPT_WRITE_SETFIELD: u16 = 12;
pub const OFPTFPT_WRITE_SETFIELD_MISS: u16 = 13;
pub const OFPTFPT_APPLY_SETFIELD: u16 = 14;
pub const OFPTFPT_APPLY_SETFIELD_MISS: u16 = 15;
pub const OFPTFPT_EXPERIMENTER: u16 = 0xfffe;
pub const OFPTFPT_EXPERIMENTER_MISS: u16 = 0xffff;

/// An instruction or action id in a table-feature property: the type, and for experimenter
/// ones what follows the 4-byte header (the experimenter id and more).
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |             type              |   len (4 + data.len())        |
/// +-------------------------------+-------------------------------+
/// |                      data (experimenter only) ...             |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FeatureId {
    pub id_type: u16,
    pub data: Vec<u8>,
}

impl FeatureId {
    /// A standard id (OFPIT_* or OFPAT_*), 4 bytes on the wire.
    pub fn new(id_type: u16) -> FeatureId {
        FeatureId {
            id_type,
            data: Vec::new(),
        }
    }

    fn wire_len(&self) -> usize {
        4 + self.data.len()
    }

    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.id_type);
        buf.put_u16(self.wire_len() as u16);
        buf.put_slice(&self.data);
    }

    fn decode(buf: &mut &[u8]) -> Result<FeatureId, DecodeError> {
        let mut b = element(
            buf,
            2,
            4,
            ErrorCode::TABLE_FEATURES_BAD_LEN,
            "instruction or action id length does not fit",
        )?;
        let id_type = b.u16();
        b.skip(2);
        Ok(FeatureId {
            id_type,
            data: b.to_vec(),
        })
    }
}

/// An OXM id in a table-feature property: the 32-bit OXM header, and for the experimenter
/// class (0xffff) the experimenter id that follows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct OxmId {
    pub header: u32,
    /// Present exactly when the header's class is OFPXMC_EXPERIMENTER.
    pub experimenter: Option<u32>,
}

impl OxmId {
    /// The id of an OpenFlow-basic field, unmasked, with its payload length.
    pub fn basic(field: crate::oxm::FieldId) -> OxmId {
        OxmId {
            header: (0x8000 << 16) | (u32::from(field.num()) << 9) | field.bytes() as u32,
            experimenter: None,
        }
    }

    fn class(header: u32) -> u16 {
        (header >> 16) as u16
    }

    fn wire_len(&self) -> usize {
        if self.experimenter.is_some() { 8 } else { 4 }
    }
}

/// One table-feature property.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |             type              |  length (excluding padding)   |
/// +-------------------------------+-------------------------------+
/// |   ids / table ids / OXM ids / experimenter body ... pad to 8  |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum TableFeatureProp {
    Instructions(Vec<FeatureId>),
    InstructionsMiss(Vec<FeatureId>),
    NextTables(Vec<u8>),
    NextTablesMiss(Vec<u8>),
    WriteActions(Vec<FeatureId>),
    WriteActionsMiss(Vec<FeatureId>),
    ApplyActions(Vec<FeatureId>),
    ApplyActionsMiss(Vec<FeatureId>),
    Match(Vec<OxmId>),
    Wildcards(Vec<OxmId>),
    WriteSetfield(Vec<OxmId>),
    WriteSetfieldMiss(Vec<OxmId>),
    ApplySetfield(Vec<OxmId>),
    ApplySetfieldMiss(Vec<OxmId>),
    Experimenter {
        experimenter: u32,
        exp_type: u32,
        data: Vec<u8>,
    },
    ExperimenterMiss {
        experimenter: u32,
        exp_type: u32,
        data: Vec<u8>,
    },
}

impl TableFeatureProp {
    /// The OFPTFPT_* number.
    pub fn prop_type(&self) -> u16 {
        use TableFeatureProp::*;
        match self {
            Instructions(_) => OFPTFPT_INSTRUCTIONS,
            InstructionsMiss(_) => OFPTFPT_INSTRUCTIONS_MISS,
            NextTables(_) => OFPTFPT_NEXT_TABLES,
            NextTablesMiss(_) => OFPTFPT_NEXT_TABLES_MISS,
            WriteActions(_) => OFPTFPT_WRITE_ACTIONS,
            WriteActionsMiss(_) => OFPTFPT_WRITE_ACTIONS_MISS,
            ApplyActions(_) => OFPTFPT_APPLY_ACTIONS,
            ApplyActionsMiss(_) => OFPTFPT_APPLY_ACTIONS_MISS,
            Match(_) => OFPTFPT_MATCH,
            Wildcards(_) => OFPTFPT_WILDCARDS,
            WriteSetfield(_) => OFPTFPT_WRITE_SETFIELD,
            WriteSetfieldMiss(_) => OFPTFPT_WRITE_SETFIELD_MISS,
            ApplySetfield(_) => OFPTFPT_APPLY_SETFIELD,
            ApplySetfieldMiss(_) => OFPTFPT_APPLY_SETFIELD_MISS,
            Experimenter { .. } => OFPTFPT_EXPERIMENTER,
            ExperimenterMiss { .. } => OFPTFPT_EXPERIMENTER_MISS,
        }
    }

    /// Length without padding (the `length` field).
    pub fn unpadded_len(&self) -> usize {
        use TableFeatureProp::*;
        4 + match self {
            Instructions(ids)
            | InstructionsMiss(ids)
            | WriteActions(ids)
            | WriteActionsMiss(ids)
            | ApplyActions(ids)
            | ApplyActionsMiss(ids) => ids.iter().map(FeatureId::wire_len).sum(),
            NextTables(t) | NextTablesMiss(t) => t.len(),
            Match(ids)
            | Wildcards(ids)
            | WriteSetfield(ids)
            | WriteSetfieldMiss(ids)
            | ApplySetfield(ids)
            | ApplySetfieldMiss(ids) => ids.iter().map(OxmId::wire_len).sum(),
            Experimenter { data, .. } | ExperimenterMiss { data, .. } => 8 + data.len(),
        }
    }

    pub fn wire_len(&self) -> usize {
        self.unpadded_len().next_multiple_of(8)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        use TableFeatureProp::*;
        let len = self.unpadded_len();
        buf.put_u16(self.prop_type());
        buf.put_u16(len as u16);
        match self {
            Instructions(ids)
            | InstructionsMiss(ids)
            | WriteActions(ids)
            | WriteActionsMiss(ids)
            | ApplyActions(ids)
            | ApplyActionsMiss(ids) => {
                for id in ids {
                    id.encode(buf);
                }
            }
            NextTables(t) | NextTablesMiss(t) => buf.put_slice(t),
            Match(ids)
            | Wildcards(ids)
            | WriteSetfield(ids)
            | WriteSetfieldMiss(ids)
            | ApplySetfield(ids)
            | ApplySetfieldMiss(ids) => {
                for id in ids {
                    buf.put_u32(id.header);
                    if let Some(e) = id.experimenter {
                        buf.put_u32(e);
                    }
                }
            }
            Experimenter {
                experimenter,
                exp_type,
                data,
            }
            | ExperimenterMiss {
                experimenter,
                exp_type,
                data,
            } => {
                buf.put_u32(*experimenter);
                buf.put_u32(*exp_type);
                buf.put_slice(data);
            }
        }
        buf.put_bytes(0, pad8(len));
    }

    /// Unknown property types are TABLE_FEATURES_FAILED/BAD_TYPE, lengths that do not fit
    /// BAD_LEN. The last property's padding may be missing.
    pub fn decode(buf: &mut &[u8]) -> Result<TableFeatureProp, DecodeError> {
        const BAD_LEN: ErrorCode = ErrorCode::TABLE_FEATURES_BAD_LEN;
        let mut b = element(buf, 2, 4, BAD_LEN, "table feature property does not fit")?;
        let ptype = b.u16();
        let len = usize::from(b.u16());
        let padding = pad8(len).min(buf.len());
        buf.skip(padding);
        let feature_ids = |mut b: &[u8]| -> Result<Vec<FeatureId>, DecodeError> {
            let mut ids = Vec::new();
            while !b.is_empty() {
                ids.push(FeatureId::decode(&mut b)?);
            }
            Ok(ids)
        };
        let oxm_ids = |mut b: &[u8]| -> Result<Vec<OxmId>, DecodeError> {
            let mut ids = Vec::new();
            while !b.is_empty() {
                let header = take(&mut b, 4, BAD_LEN, "partial OXM id")?.u32();
                let experimenter = if OxmId::class(header) == OFPXMC_EXPERIMENTER {
                    Some(take(&mut b, 4, BAD_LEN, "experimenter OXM id without its id")?.u32())
                } else {
                    None
                };
                ids.push(OxmId {
                    header,
                    experimenter,
                });
            }
            Ok(ids)
        };
        use TableFeatureProp::*;
        Ok(match ptype {
            OFPTFPT_INSTRUCTIONS => Instructions(feature_ids(b)?),
            OFPTFPT_INSTRUCTIONS_MISS => InstructionsMiss(feature_ids(b)?),
            OFPTFPT_NEXT_TABLES => NextTables(b.to_vec()),
            OFPTFPT_NEXT_TABLES_MISS => NextTablesMiss(b.to_vec()),
            OFPTFPT_WRITE_ACTIONS => WriteActions(feature_ids(b)?),
            OFPTFPT_WRITE_ACTIONS_MISS => WriteActionsMiss(feature_ids(b)?),
            OFPTFPT_APPLY_ACTIONS => ApplyActions(feature_ids(b)?),
            OFPTFPT_APPLY_ACTIONS_MISS => ApplyActionsMiss(feature_ids(b)?),
            OFPTFPT_MATCH => Match(oxm_ids(b)?),
            OFPTFPT_WILDCARDS => Wildcards(oxm_ids(b)?),
            OFPTFPT_WRITE_SETFIELD => WriteSetfield(oxm_ids(b)?),
            OFPTFPT_WRITE_SETFIELD_MISS => WriteSetfieldMiss(oxm_ids(b)?),
            OFPTFPT_APPLY_SETFIELD => ApplySetfield(oxm_ids(b)?),
            OFPTFPT_APPLY_SETFIELD_MISS => ApplySetfieldMiss(oxm_ids(b)?),
            OFPTFPT_EXPERIMENTER | OFPTFPT_EXPERIMENTER_MISS => {
                let head = take(&mut b, 8, BAD_LEN, "experimenter property without its ids")?;
                let (experimenter, exp_type) = {
                    let mut h = head;
                    (h.u32(), h.u32())
                };
                let data = b.to_vec();
                if ptype == OFPTFPT_EXPERIMENTER {
                    Experimenter {
                        experimenter,
                        exp_type,
                        data,
                    }
                } else {
                    ExperimenterMiss {
                        experimenter,
                        exp_type,
                        data,
                    }
                }
            }
            _ => {
                return fail(
                    ErrorCode::TABLE_FEATURES_BAD_TYPE,
                    "unknown table feature property",
                );
            }
        })
    }
}

/// `ofp_table_features`: one table's features.
///
/// ```text
/// +-------------------------------+---------------+---------------+
/// |            length             |   table_id    |   pad (5) ... |
/// +-------------------------------+---------------+---------------+
/// |                    name (32, NUL-terminated)                  |
/// +---------------------------------------------------------------+
/// |                      metadata_match (64)                      |
/// +---------------------------------------------------------------+
/// |                      metadata_write (64)                      |
/// +---------------------------------------------------------------+
/// |            config             |          max_entries          |
/// +---------------------------------------------------------------+
/// |                        properties ...                         |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct TableFeatures {
    pub table_id: u8,
    /// At most 32 bytes of UTF-8 without NUL.
    pub name: String,
    pub metadata_match: u64,
    pub metadata_write: u64,
    pub config: u32,
    pub max_entries: u32,
    pub properties: Vec<TableFeatureProp>,
}

impl TableFeatures {
    pub const FIXED_LEN: usize = 64;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN
            + self
                .properties
                .iter()
                .map(TableFeatureProp::wire_len)
                .sum::<usize>()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.wire_len() as u16);
        buf.put_u8(self.table_id);
        buf.put_bytes(0, 5);
        put_str(buf, &self.name, OFP_MAX_TABLE_NAME_LEN);
        buf.put_u64(self.metadata_match);
        buf.put_u64(self.metadata_write);
        buf.put_u32(self.config);
        buf.put_u32(self.max_entries);
        for p in &self.properties {
            p.encode(buf);
        }
    }

    /// Table OFPTT_ALL is TABLE_FEATURES_FAILED/BAD_TABLE.
    pub fn decode(buf: &mut &[u8]) -> Result<TableFeatures, DecodeError> {
        let mut b = element(
            buf,
            0,
            Self::FIXED_LEN,
            ErrorCode::TABLE_FEATURES_BAD_LEN,
            "table features length does not fit",
        )?;
        b.skip(2);
        let table_id = b.u8();
        if table_id == OFPTT_ALL {
            return fail(
                ErrorCode::TABLE_FEATURES_BAD_TABLE,
                "table features for table ALL",
            );
        }
        b.skip(5);
        let name = get_str(&mut b, OFP_MAX_TABLE_NAME_LEN);
        let mut t = TableFeatures {
            table_id,
            name,
            metadata_match: b.u64(),
            metadata_write: b.u64(),
            config: b.u32(),
            max_entries: b.u32(),
            properties: Vec::new(),
        };
        while !b.is_empty() {
            t.properties.push(TableFeatureProp::decode(&mut b)?);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(p: &TableFeatureProp, expect: &[u8]) {
        let mut v = Vec::new();
        p.encode(&mut v);
        assert_eq!(v, expect);
        assert_eq!(v.len(), p.wire_len());
        let mut b = &v[..];
        assert_eq!(&TableFeatureProp::decode(&mut b).unwrap(), p);
        assert!(b.is_empty());
    }

    #[test]
    fn property_layouts_pad_to_eight() {
        round_trip(
            &TableFeatureProp::NextTables(vec![1, 2, 3]),
            &[0, 2, 0, 7, 1, 2, 3, 0],
        );
        round_trip(
            &TableFeatureProp::Instructions(vec![FeatureId::new(1), FeatureId::new(4)]),
            &[0, 0, 0, 12, 0, 1, 0, 4, 0, 4, 0, 4, 0, 0, 0, 0],
        );
        round_trip(
            &TableFeatureProp::Match(vec![
                OxmId::basic(crate::oxm::FieldId::InPort),
                OxmId {
                    header: 0xffff_0a04,
                    experimenter: Some(0x2320),
                },
            ]),
            &[
                0, 8, 0, 16, 0x80, 0, 0, 4, 0xff, 0xff, 0x0a, 0x04, 0, 0, 0x23, 0x20,
            ],
        );
        round_trip(
            &TableFeatureProp::ExperimenterMiss {
                experimenter: 0x2320,
                exp_type: 9,
                data: vec![0xaa],
            },
            &[
                0xff, 0xff, 0, 13, 0, 0, 0x23, 0x20, 0, 0, 0, 9, 0xaa, 0, 0, 0,
            ],
        );
    }

    #[test]
    fn table_features_entry_layout() {
        let t = TableFeatures {
            table_id: 3,
            name: "t3".into(),
            metadata_match: 1,
            metadata_write: 2,
            config: 0,
            max_entries: 1000,
            properties: vec![TableFeatureProp::NextTablesMiss(vec![4])],
        };
        let mut v = Vec::new();
        t.encode(&mut v);
        assert_eq!(v.len(), 72);
        assert_eq!(&v[..8], &[0, 72, 3, 0, 0, 0, 0, 0]);
        assert_eq!(&v[8..11], b"t3\0");
        assert_eq!(&v[64..], &[0, 3, 0, 5, 4, 0, 0, 0]);
        assert_eq!(TableFeatures::decode(&mut &v[..]).unwrap(), t);
    }
}
