//! From an OpenFlow [`Match`] to the (key, mask) pair the classifier stores, and the flow-mod
//! relations between matches (non-strict "is covered by", overlap).
//!
//! Prerequisites and value/mask widths are checked by `Match::validate` (openflow crate);
//! this module maps each basic field onto its slot in the [`FlowKey`].

use fuxi_openflow::oxm::{FieldId, Match, OxmTlv};
use fuxi_openflow::{ErrorCode, Oxm};

use crate::packet::{Field, FlowKey, FlowMask, KEY_WORDS};

/// The key field an OXM basic field is stored in.
pub fn field_of(id: FieldId) -> Field {
    // FieldId and Field share the OXM numbering; `Field::from_oxm` covers 0..=39.
    Field::from_oxm(id.num()).unwrap_or(Field::InPort)
}

/// The OXM field a key field is, if it is one.
pub fn field_id_of(field: Field) -> Option<FieldId> {
    FieldId::from_u8(field.oxm()?)
}

/// Converts a match to the classifier's masked key and mask. Rejects what `validate` rejects
/// (bad prerequisites, duplicates, bad values or masks) and any non-basic field, which this
/// switch cannot match on (`OFPBMC_BAD_FIELD`).
pub fn match_to_key(m: &Match) -> Result<(FlowKey, FlowMask), ErrorCode> {
    let mut key = FlowKey::ZERO;
    let mut mask = FlowKey::ZERO;
    match_to_key_into(m, &mut key, &mut mask)?;
    Ok((key, mask))
}

/// [`match_to_key`] into the caller's key and mask (both zero on entry), without moving
/// two 144-byte values through the return (a flow-mod's hot path).
pub fn match_to_key_into(
    m: &Match,
    key: &mut FlowKey,
    mask: &mut FlowMask,
) -> Result<(), ErrorCode> {
    m.validate().map_err(|e| e.code)?;
    for tlv in &m.fields {
        match tlv {
            // Validated: no duplicates, so each field's bits are still zero and are OR-ed
            // in; its value is already masked.
            OxmTlv::Basic(o) => {
                let (word, shift, slot) = OXM_LAYOUT[usize::from(o.field.num())];
                let m = o.mask_or_full();
                let v = o.value & m;
                if slot == 128 {
                    key.w[word] = (v >> 64) as u64;
                    key.w[word + 1] = v as u64;
                    mask.w[word] = (m >> 64) as u64;
                    mask.w[word + 1] = m as u64;
                } else {
                    key.w[word] |= (v as u64) << shift;
                    mask.w[word] |= (m as u64) << shift;
                }
            }
            OxmTlv::Raw(_) => return Err(ErrorCode::BAD_MATCH_BAD_FIELD),
        }
    }
    Ok(())
}

/// [`Field::layout`] of the key field of each OXM basic field, by field number.
const OXM_LAYOUT: [(usize, u32, u32); 40] = {
    let mut t = [(0, 0, 0); 40];
    let mut i = 0;
    while i < 40 {
        // `Field::ALL` starts with the 40 OXM fields in field-number order (checked by
        // `field_numbers_line_up`).
        t[i] = Field::ALL[i].layout();
        i += 1;
    }
    t
};

/// [`match_to_key`], plus the [`MatchLayout`] that rebuilds `m` from the key and mask.
pub fn match_to_key_layout(m: &Match) -> Result<(FlowKey, FlowMask, MatchLayout), ErrorCode> {
    let (key, mask) = match_to_key(m)?;
    Ok((key, mask, MatchLayout::of(m)))
}

/// Bytes of a layout kept inline (a match with more fields is kept on the heap).
const INLINE_FIELDS: usize = 22;
/// Layout byte flag: the TLV carried a mask.
const HAS_MASK: u8 = 0x80;

/// What a flow's match has beyond its (key, mask): the order of its TLVs and which carried
/// a mask (a mask of all ones is kept as given). With the key and mask it rebuilds the match
/// exactly as it was added, for flow stats and flow-removed messages, without keeping the
/// `Match` (6 TLVs of 64 bytes for a 5-tuple) per flow.
///
/// Valid for matches [`match_to_key`] accepted: basic fields only, no duplicates, no value
/// bit outside its mask, so that every value is its key bits.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum MatchLayout {
    /// Up to [`INLINE_FIELDS`] TLVs: one byte each, the field number | `HAS_MASK`.
    Inline {
        /// Number of TLVs.
        len: u8,
        /// The TLVs.
        fields: [u8; INLINE_FIELDS],
    },
    /// More TLVs than fit inline.
    Heap(Box<[u8]>),
}

impl MatchLayout {
    /// The layout of `m` (a match [`match_to_key`] accepted).
    pub fn of(m: &Match) -> MatchLayout {
        let byte = |t: &OxmTlv| match t {
            OxmTlv::Basic(o) => o.field.num() | if o.mask.is_some() { HAS_MASK } else { 0 },
            OxmTlv::Raw(_) => unreachable!("match_to_key refuses non-basic fields"),
        };
        if m.fields.len() <= INLINE_FIELDS {
            let mut fields = [0u8; INLINE_FIELDS];
            for (b, t) in fields.iter_mut().zip(&m.fields) {
                *b = byte(t);
            }
            MatchLayout::Inline {
                len: m.fields.len() as u8,
                fields,
            }
        } else {
            MatchLayout::Heap(m.fields.iter().map(byte).collect())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            MatchLayout::Inline { len, fields } => &fields[..usize::from(*len)],
            MatchLayout::Heap(b) => b,
        }
    }

    /// The match this layout came from, given its masked key and mask.
    pub fn rebuild(&self, key: &FlowKey, mask: &FlowMask) -> Match {
        let fields = self
            .bytes()
            .iter()
            .filter_map(|&b| {
                let id = FieldId::from_u8(b & !HAS_MASK)?;
                let f = field_of(id);
                let value = key.get(f);
                Some(OxmTlv::Basic(if b & HAS_MASK != 0 {
                    Oxm::masked(id, value, mask.get(f))
                } else {
                    Oxm::exact(id, value)
                }))
            })
            .collect();
        Match { fields }
    }
}

#[cfg(test)]
fn add_oxm(key: &mut FlowKey, mask: &mut FlowMask, o: &Oxm) {
    let f = field_of(o.field);
    let m = o.mask_or_full();
    key.set(f, o.value & m);
    mask.set(f, m);
}

/// Whether a rule with (`key`, `mask`) is selected by a non-strict flow-mod or stats request
/// with (`fkey`, `fmask`): the rule's match is at least as specific and agrees on every field
/// the request names.
pub fn covered_by(key: &FlowKey, mask: &FlowMask, fkey: &FlowKey, fmask: &FlowMask) -> bool {
    fmask.is_subset_of(mask) && key.matches(fmask, fkey)
}

/// Whether some packet could match both rules (spec §6.4, OFPFF_CHECK_OVERLAP).
pub fn overlaps(k1: &FlowKey, m1: &FlowMask, k2: &FlowKey, m2: &FlowMask) -> bool {
    (0..KEY_WORDS).all(|i| (k1.w[i] ^ k2.w[i]) & m1.w[i] & m2.w[i] == 0)
}

/// The match a packet-in carries for a packet with `key` (spec §7.4.1: the pipeline fields):
/// in_port always; in_phy_port when it differs; metadata and tunnel_id when non-zero.
pub fn packet_in_match(key: &FlowKey) -> Match {
    let in_port = key.get(Field::InPort);
    let mut m = Match::all().with(Oxm::exact(FieldId::InPort, in_port));
    let phy = key.get(Field::InPhyPort);
    if phy != in_port && phy != 0 {
        m = m.with(Oxm::exact(FieldId::InPhyPort, phy));
    }
    for (f, id) in [
        (Field::Metadata, FieldId::Metadata),
        (Field::TunnelId, FieldId::TunnelId),
    ] {
        let v = key.get(f);
        if v != 0 {
            m = m.with(Oxm::exact(id, v));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use fuxi_openflow::oxm::OFPVID_PRESENT;

    #[test]
    fn field_numbers_line_up() {
        for &id in FieldId::ALL {
            let f = field_of(id);
            assert_eq!(f.oxm(), Some(id.num()));
            assert_eq!(f.bits(), id.bits(), "{id:?}");
            assert_eq!(field_id_of(f), Some(id));
        }
    }

    #[test]
    fn fast_conversion_agrees_with_field_setters() {
        for &id in FieldId::ALL {
            let f = field_of(id);
            assert_eq!(OXM_LAYOUT[usize::from(id.num())], f.layout(), "{id:?}");
            let full = id.full_mask();
            for (v, m) in [(full, None), (full & 0x5555, Some(full & 0x5555 | 1))] {
                let o = Oxm {
                    field: id,
                    value: v,
                    mask: m,
                };
                let mut k = FlowKey::ZERO;
                let mut mask = FlowKey::ZERO;
                add_oxm(&mut k, &mut mask, &o);
                let mut k2 = FlowKey::ZERO;
                let mut mask2 = FlowKey::ZERO;
                let (word, shift, slot) = OXM_LAYOUT[usize::from(id.num())];
                let mm = o.mask_or_full();
                if slot == 128 {
                    k2.w[word] = ((v & mm) >> 64) as u64;
                    k2.w[word + 1] = (v & mm) as u64;
                    mask2.w[word] = (mm >> 64) as u64;
                    mask2.w[word + 1] = mm as u64;
                } else {
                    k2.w[word] |= ((v & mm) as u64) << shift;
                    mask2.w[word] |= (mm as u64) << shift;
                }
                assert_eq!((k, mask), (k2, mask2), "{id:?}");
            }
        }
    }

    #[test]
    fn tcp_match_with_prereqs() {
        let m = Match::all()
            .with(Oxm::eth_type(0x0800))
            .with(Oxm::ip_proto(6))
            .with(Oxm::exact(FieldId::TcpDst, 80))
            .with(Oxm::masked(FieldId::Ipv4Src, 0x0a00_0000, 0xff00_0000));
        let (k, m) = match_to_key(&m).unwrap();
        assert_eq!(k.get(Field::TcpDst), 80);
        assert_eq!(m.get(Field::TcpDst), 0xffff);
        assert_eq!(m.get(Field::Ipv4Src), 0xff00_0000);
        assert_eq!(k.get(Field::EthType), 0x0800);
        // Missing prerequisite.
        let bad = Match::all().with(Oxm::exact(FieldId::TcpDst, 80));
        assert_eq!(match_to_key(&bad), Err(ErrorCode::BAD_MATCH_BAD_PREREQ));
    }

    #[test]
    fn vlan_present_and_none() {
        let any_tag =
            Match::all().with(Oxm::masked(FieldId::VlanVid, OFPVID_PRESENT.into(), 0x1000));
        let (k, m) = match_to_key(&any_tag).unwrap();
        let mut pkt = FlowKey::ZERO;
        pkt.set(Field::VlanVid, 0x1000 | 5);
        assert!(pkt.matches(&m, &k));
        pkt.set(Field::VlanVid, 0);
        assert!(!pkt.matches(&m, &k));
        let untagged = Match::all().with(Oxm::vlan_vid(0));
        let (k, m) = match_to_key(&untagged).unwrap();
        assert!(pkt.matches(&m, &k));
    }

    #[test]
    fn packet_in_match_fields() {
        let mut k = FlowKey::ZERO;
        k.set(Field::InPort, 3);
        k.set(Field::InPhyPort, 3);
        k.set(Field::TunnelId, 99);
        let m = packet_in_match(&k);
        assert_eq!(
            m,
            Match::all()
                .with(Oxm::in_port(3))
                .with(Oxm::exact(FieldId::TunnelId, 99))
        );
        assert!(m.validate().is_ok());
    }

    #[test]
    fn layout_rebuilds_the_match_as_given() {
        let matches = [
            Match::all(),
            Match::all()
                .with(Oxm::exact(FieldId::UdpDst, 80))
                .with(Oxm::ip_proto(17))
                .with(Oxm::masked(FieldId::Ipv4Dst, 0x0a00_0000, 0xff00_0000))
                .with(Oxm::eth_type(0x0800))
                .with(Oxm::masked(FieldId::Ipv4Src, 0x0102_0304, 0xffff_ffff))
                .with(Oxm::in_port(7)),
            Match::all()
                .with(Oxm::masked(FieldId::VlanVid, 0x1000, 0x1000))
                .with(Oxm::exact(FieldId::VlanPcp, 3))
                .with(Oxm::masked(FieldId::Metadata, 0, 0))
                .with(Oxm::eth_type(0x86dd))
                .with(Oxm::masked(FieldId::Ipv6Src, 1 << 100, 3 << 100))
                .with(Oxm::exact(FieldId::Ipv6Dst, u128::MAX - 5))
                .with(Oxm::exact(FieldId::TunnelId, u64::MAX.into()))
                .with(Oxm::masked(
                    FieldId::EthSrc,
                    0x0200_0000_0001,
                    0xffff_ffff_ffff,
                )),
        ];
        for m in matches {
            let (k, mask, layout) = match_to_key_layout(&m).unwrap();
            assert!(matches!(layout, MatchLayout::Inline { .. }));
            assert_eq!(layout.rebuild(&k, &mask), m);
        }
        // Every field, once, in reverse order, past the inline capacity.
        let mut big = Match::all();
        for &id in FieldId::ALL.iter().rev() {
            big = big.with(Oxm::exact(id, 1));
        }
        let mut k = FlowKey::ZERO;
        let mut mask = FlowKey::ZERO;
        for o in big.basic() {
            add_oxm(&mut k, &mut mask, o);
        }
        let layout = MatchLayout::of(&big);
        assert!(matches!(layout, MatchLayout::Heap(_)));
        assert_eq!(layout.rebuild(&k, &mask), big);
    }

    #[test]
    fn covered_and_overlap() {
        let (k1, m1) = match_to_key(&Match::all().with(Oxm::eth_type(0x800))).unwrap();
        let (k2, m2) = match_to_key(
            &Match::all()
                .with(Oxm::eth_type(0x800))
                .with(Oxm::ip_proto(17)),
        )
        .unwrap();
        assert!(covered_by(&k2, &m2, &k1, &m1));
        assert!(!covered_by(&k1, &m1, &k2, &m2));
        assert!(covered_by(&k1, &m1, &FlowKey::ZERO, &FlowKey::ZERO));
        assert!(overlaps(&k1, &m1, &k2, &m2));
        let (k3, m3) = match_to_key(&Match::all().with(Oxm::eth_type(0x86dd))).unwrap();
        assert!(!overlaps(&k1, &m1, &k3, &m3));
    }
}
