//! OXM match fields (spec §7.2.3): the 40 OpenFlow-basic fields with their widths, masks and
//! prerequisites, experimenter and other-class TLVs carried through unchanged, and `ofp_match`.
//!
//! A basic field's value and mask are kept as big-endian numbers in a `u128` (every basic field
//! is at most 16 bytes wide), so that code which treats fields generically — the classifier,
//! the text syntax — needs no per-field type, while typed constructors and accessors
//! (`Oxm::ipv4_src`, `Oxm::as_mac`, ...) serve code that wants them.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{Buf, BufMut};

use crate::error::{DecodeError, ErrorCode, fail};

/// Backward-compatible NXM class 0 (Open vSwitch).
pub const OFPXMC_NXM_0: u16 = 0x0000;
/// Backward-compatible NXM class 1 (Open vSwitch).
pub const OFPXMC_NXM_1: u16 = 0x0001;
/// The OpenFlow-basic class.
pub const OFPXMC_OPENFLOW_BASIC: u16 = 0x8000;
/// Experimenter class: the payload starts with a 32-bit experimenter id.
pub const OFPXMC_EXPERIMENTER: u16 = 0xffff;

/// Bit set in VLAN_VID when a VLAN tag is present.
pub const OFPVID_PRESENT: u16 = 0x1000;
/// VLAN_VID value meaning "no VLAN tag".
pub const OFPVID_NONE: u16 = 0x0000;

/// OFPMT_OXM, the only match type of OpenFlow 1.3.
pub const OFPMT_OXM: u16 = 1;
/// OFPMT_STANDARD, the deprecated OpenFlow 1.1 match.
pub const OFPMT_STANDARD: u16 = 0;

/// IPV6_EXTHDR pseudo-field bits (spec §7.2.3.10).
pub mod exthdr {
    pub const NONEXT: u16 = 1 << 0;
    pub const ESP: u16 = 1 << 1;
    pub const AUTH: u16 = 1 << 2;
    pub const DEST: u16 = 1 << 3;
    pub const FRAG: u16 = 1 << 4;
    pub const ROUTER: u16 = 1 << 5;
    pub const HOP: u16 = 1 << 6;
    pub const UNREP: u16 = 1 << 7;
    pub const UNSEQ: u16 = 1 << 8;
}

macro_rules! fields {
    ($( $num:literal $variant:ident $oxm_name:literal bytes=$bytes:literal bits=$bits:literal mask=$mask:literal ),* $(,)?) => {
        /// An OpenFlow-basic OXM field (`oxm_field` within class 0x8000).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        #[repr(u8)]
        pub enum FieldId {
            $( $variant = $num, )*
        }

        impl FieldId {
            /// Every basic field, in field-number order.
            pub const ALL: &'static [FieldId] = &[ $( FieldId::$variant, )* ];

            /// The field with this `oxm_field` number.
            pub fn from_u8(n: u8) -> Option<FieldId> {
                match n {
                    $( $num => Some(FieldId::$variant), )*
                    _ => None,
                }
            }

            /// The spec's name, `OXM_OF_*`.
            pub fn oxm_name(self) -> &'static str {
                match self { $( FieldId::$variant => $oxm_name, )* }
            }

            /// Width of the value on the wire, in bytes.
            pub fn bytes(self) -> usize {
                match self { $( FieldId::$variant => $bytes, )* }
            }

            /// Number of meaningful low-order bits of the value.
            pub const fn bits(self) -> u32 {
                match self { $( FieldId::$variant => $bits, )* }
            }

            /// Whether the spec allows a mask on this field.
            pub fn maskable(self) -> bool {
                match self { $( FieldId::$variant => $mask, )* }
            }
        }
    };
}

fields! {
    0 InPort "OXM_OF_IN_PORT" bytes=4 bits=32 mask=false,
    1 InPhyPort "OXM_OF_IN_PHY_PORT" bytes=4 bits=32 mask=false,
    2 Metadata "OXM_OF_METADATA" bytes=8 bits=64 mask=true,
    3 EthDst "OXM_OF_ETH_DST" bytes=6 bits=48 mask=true,
    4 EthSrc "OXM_OF_ETH_SRC" bytes=6 bits=48 mask=true,
    5 EthType "OXM_OF_ETH_TYPE" bytes=2 bits=16 mask=false,
    6 VlanVid "OXM_OF_VLAN_VID" bytes=2 bits=13 mask=true,
    7 VlanPcp "OXM_OF_VLAN_PCP" bytes=1 bits=3 mask=false,
    8 IpDscp "OXM_OF_IP_DSCP" bytes=1 bits=6 mask=false,
    9 IpEcn "OXM_OF_IP_ECN" bytes=1 bits=2 mask=false,
    10 IpProto "OXM_OF_IP_PROTO" bytes=1 bits=8 mask=false,
    11 Ipv4Src "OXM_OF_IPV4_SRC" bytes=4 bits=32 mask=true,
    12 Ipv4Dst "OXM_OF_IPV4_DST" bytes=4 bits=32 mask=true,
    // Transport ports take a mask as in Open vSwitch (ovs-ofctl sends `tp_dst=0x1000/0xf000`
    // as a masked OXM in OpenFlow 1.3), though the 1.3 spec lists them as unmaskable.
    13 TcpSrc "OXM_OF_TCP_SRC" bytes=2 bits=16 mask=true,
    14 TcpDst "OXM_OF_TCP_DST" bytes=2 bits=16 mask=true,
    15 UdpSrc "OXM_OF_UDP_SRC" bytes=2 bits=16 mask=true,
    16 UdpDst "OXM_OF_UDP_DST" bytes=2 bits=16 mask=true,
    17 SctpSrc "OXM_OF_SCTP_SRC" bytes=2 bits=16 mask=true,
    18 SctpDst "OXM_OF_SCTP_DST" bytes=2 bits=16 mask=true,
    19 Icmpv4Type "OXM_OF_ICMPV4_TYPE" bytes=1 bits=8 mask=false,
    20 Icmpv4Code "OXM_OF_ICMPV4_CODE" bytes=1 bits=8 mask=false,
    21 ArpOp "OXM_OF_ARP_OP" bytes=2 bits=16 mask=false,
    22 ArpSpa "OXM_OF_ARP_SPA" bytes=4 bits=32 mask=true,
    23 ArpTpa "OXM_OF_ARP_TPA" bytes=4 bits=32 mask=true,
    24 ArpSha "OXM_OF_ARP_SHA" bytes=6 bits=48 mask=true,
    25 ArpTha "OXM_OF_ARP_THA" bytes=6 bits=48 mask=true,
    26 Ipv6Src "OXM_OF_IPV6_SRC" bytes=16 bits=128 mask=true,
    27 Ipv6Dst "OXM_OF_IPV6_DST" bytes=16 bits=128 mask=true,
    28 Ipv6Flabel "OXM_OF_IPV6_FLABEL" bytes=4 bits=20 mask=true,
    29 Icmpv6Type "OXM_OF_ICMPV6_TYPE" bytes=1 bits=8 mask=false,
    30 Icmpv6Code "OXM_OF_ICMPV6_CODE" bytes=1 bits=8 mask=false,
    31 Ipv6NdTarget "OXM_OF_IPV6_ND_TARGET" bytes=16 bits=128 mask=false,
    32 Ipv6NdSll "OXM_OF_IPV6_ND_SLL" bytes=6 bits=48 mask=false,
    33 Ipv6NdTll "OXM_OF_IPV6_ND_TLL" bytes=6 bits=48 mask=false,
    34 MplsLabel "OXM_OF_MPLS_LABEL" bytes=4 bits=20 mask=false,
    35 MplsTc "OXM_OF_MPLS_TC" bytes=1 bits=3 mask=false,
    36 MplsBos "OXM_OF_MPLS_BOS" bytes=1 bits=1 mask=false,
    37 PbbIsid "OXM_OF_PBB_ISID" bytes=3 bits=24 mask=true,
    38 TunnelId "OXM_OF_TUNNEL_ID" bytes=8 bits=64 mask=true,
    39 Ipv6Exthdr "OXM_OF_IPV6_EXTHDR" bytes=2 bits=9 mask=true,
}

/// What a field needs to be present in the same match (spec table 11).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Prereq {
    /// `field` must be matched exactly, to one of `values`.
    Exact {
        field: FieldId,
        values: &'static [u128],
    },
    /// VLAN_VID must be matched with the OFPVID_PRESENT bit set (VLAN_VID != NONE).
    VlanPresent,
    /// IN_PORT must be present.
    InPort,
}

/// `FieldId::full_mask` by field number (the numbers are 0..40 without gaps).
const FULL_MASKS: [u128; 40] = {
    let mut t = [0u128; 40];
    let mut i = 0;
    while i < FieldId::ALL.len() {
        let f = FieldId::ALL[i];
        let bits = f.bits();
        t[f as usize] = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        i += 1;
    }
    t
};

const ETH_IP: &[u128] = &[0x0800, 0x86dd];
const ETH_IPV4: &[u128] = &[0x0800];
const ETH_IPV6: &[u128] = &[0x86dd];
const ETH_ARP: &[u128] = &[0x0806];
const ETH_MPLS: &[u128] = &[0x8847, 0x8848];
const ETH_PBB: &[u128] = &[0x88e7];

impl FieldId {
    /// `oxm_field` number.
    pub fn num(self) -> u8 {
        self as u8
    }

    /// The largest value the field can hold (also its exact-match mask).
    #[inline]
    pub fn full_mask(self) -> u128 {
        FULL_MASKS[self as usize]
    }

    /// The prerequisites a match must satisfy to use this field, all of which must hold.
    pub fn prereqs(self) -> &'static [Prereq] {
        use FieldId::*;
        const IP: Prereq = Prereq::Exact {
            field: EthType,
            values: ETH_IP,
        };
        const IPV4: Prereq = Prereq::Exact {
            field: EthType,
            values: ETH_IPV4,
        };
        const IPV6: Prereq = Prereq::Exact {
            field: EthType,
            values: ETH_IPV6,
        };
        const ARP: Prereq = Prereq::Exact {
            field: EthType,
            values: ETH_ARP,
        };
        const MPLS: Prereq = Prereq::Exact {
            field: EthType,
            values: ETH_MPLS,
        };
        const PBB: Prereq = Prereq::Exact {
            field: EthType,
            values: ETH_PBB,
        };
        const TCP: Prereq = Prereq::Exact {
            field: IpProto,
            values: &[6],
        };
        const UDP: Prereq = Prereq::Exact {
            field: IpProto,
            values: &[17],
        };
        const SCTP: Prereq = Prereq::Exact {
            field: IpProto,
            values: &[132],
        };
        const ICMP: Prereq = Prereq::Exact {
            field: IpProto,
            values: &[1],
        };
        const ICMP6: Prereq = Prereq::Exact {
            field: IpProto,
            values: &[58],
        };
        const ND: Prereq = Prereq::Exact {
            field: Icmpv6Type,
            values: &[135, 136],
        };
        const NS: Prereq = Prereq::Exact {
            field: Icmpv6Type,
            values: &[135],
        };
        const NA: Prereq = Prereq::Exact {
            field: Icmpv6Type,
            values: &[136],
        };
        match self {
            InPhyPort => &[Prereq::InPort],
            VlanPcp => &[Prereq::VlanPresent],
            IpDscp | IpEcn | IpProto => &[IP],
            Ipv4Src | Ipv4Dst => &[IPV4],
            TcpSrc | TcpDst => &[IP, TCP],
            UdpSrc | UdpDst => &[IP, UDP],
            SctpSrc | SctpDst => &[IP, SCTP],
            Icmpv4Type | Icmpv4Code => &[IPV4, ICMP],
            ArpOp | ArpSpa | ArpTpa | ArpSha | ArpTha => &[ARP],
            Ipv6Src | Ipv6Dst | Ipv6Flabel | Ipv6Exthdr => &[IPV6],
            Icmpv6Type | Icmpv6Code => &[IPV6, ICMP6],
            Ipv6NdTarget => &[IPV6, ICMP6, ND],
            Ipv6NdSll => &[IPV6, ICMP6, NS],
            Ipv6NdTll => &[IPV6, ICMP6, NA],
            MplsLabel | MplsTc | MplsBos => &[MPLS],
            PbbIsid => &[PBB],
            InPort | Metadata | EthDst | EthSrc | EthType | VlanVid | TunnelId => &[],
        }
    }
}

/// One OpenFlow-basic OXM TLV: a field, its value and an optional mask.
///
/// Invariants (checked by `decode` and `validate`): `value` and `mask` fit the field's width,
/// a mask only on maskable fields, and no value bit set where the mask is 0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Oxm {
    pub field: FieldId,
    pub value: u128,
    pub mask: Option<u128>,
}

impl Oxm {
    /// An exact match.
    pub const fn exact(field: FieldId, value: u128) -> Oxm {
        Oxm {
            field,
            value,
            mask: None,
        }
    }

    /// A masked match. A mask of all ones is kept as given (OVS sends some that way).
    pub const fn masked(field: FieldId, value: u128, mask: u128) -> Oxm {
        Oxm {
            field,
            value,
            mask: Some(mask),
        }
    }

    pub fn in_port(port: u32) -> Oxm {
        Oxm::exact(FieldId::InPort, port.into())
    }
    pub fn eth_type(ethertype: u16) -> Oxm {
        Oxm::exact(FieldId::EthType, ethertype.into())
    }
    pub fn eth_src(mac: MacAddr) -> Oxm {
        Oxm::exact(FieldId::EthSrc, mac.to_u128())
    }
    pub fn eth_dst(mac: MacAddr) -> Oxm {
        Oxm::exact(FieldId::EthDst, mac.to_u128())
    }
    pub fn ip_proto(proto: u8) -> Oxm {
        Oxm::exact(FieldId::IpProto, proto.into())
    }
    pub fn ipv4_src(addr: Ipv4Addr) -> Oxm {
        Oxm::exact(FieldId::Ipv4Src, u32::from(addr).into())
    }
    pub fn ipv4_dst(addr: Ipv4Addr) -> Oxm {
        Oxm::exact(FieldId::Ipv4Dst, u32::from(addr).into())
    }
    pub fn ipv6_src(addr: Ipv6Addr) -> Oxm {
        Oxm::exact(FieldId::Ipv6Src, u128::from(addr))
    }
    pub fn ipv6_dst(addr: Ipv6Addr) -> Oxm {
        Oxm::exact(FieldId::Ipv6Dst, u128::from(addr))
    }
    pub fn vlan_vid(vid_with_present_bit: u16) -> Oxm {
        Oxm::exact(FieldId::VlanVid, vid_with_present_bit.into())
    }

    /// The effective mask: the given one, or all ones of the field's width.
    pub fn mask_or_full(&self) -> u128 {
        self.mask.unwrap_or_else(|| self.field.full_mask())
    }

    /// True when the mask is absent or covers every bit of the field.
    pub fn is_exact(&self) -> bool {
        self.mask.is_none_or(|m| m == self.field.full_mask())
    }

    /// The value as a MAC address (for 48-bit fields).
    pub fn as_mac(&self) -> MacAddr {
        MacAddr::from_u128(self.value)
    }

    /// The value as an IPv4 address (for 32-bit address fields).
    pub fn as_ipv4(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.value as u32)
    }

    /// The value as an IPv6 address.
    pub fn as_ipv6(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.value)
    }

    /// Length of the TLV on the wire, header included.
    pub fn wire_len(&self) -> usize {
        4 + self.field.bytes() * if self.mask.is_some() { 2 } else { 1 }
    }

    /// Checks the value and mask against the field's width and maskability.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let full = self.field.full_mask();
        if self.value & !full != 0 {
            return fail(ErrorCode::BAD_MATCH_BAD_VALUE, "value wider than the field");
        }
        if let Some(mask) = self.mask {
            if !self.field.maskable() {
                return fail(
                    ErrorCode::BAD_MATCH_BAD_MASK,
                    "mask on a field that takes none",
                );
            }
            if mask & !full != 0 {
                return fail(ErrorCode::BAD_MATCH_BAD_MASK, "mask wider than the field");
            }
            if self.value & !mask != 0 {
                return fail(
                    ErrorCode::BAD_MATCH_BAD_WILDCARDS,
                    "value bits set outside the mask",
                );
            }
        }
        Ok(())
    }

    fn header(&self) -> u32 {
        let len = self.wire_len() as u32 - 4;
        (u32::from(OFPXMC_OPENFLOW_BASIC) << 16)
            | (u32::from(self.field.num()) << 9)
            | (u32::from(self.mask.is_some()) << 8)
            | len
    }

    /// Writes the TLV.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.header());
        put_be(buf, self.value, self.field.bytes());
        if let Some(mask) = self.mask {
            put_be(buf, mask, self.field.bytes());
        }
    }

    /// Reads the payload of a basic TLV whose header has been read. Checks width and
    /// maskability; `len` is the header's payload length, already known to be available.
    fn decode_payload(
        field: u8,
        hasmask: bool,
        len: usize,
        buf: &mut impl Buf,
    ) -> Result<Oxm, DecodeError> {
        let Some(field) = FieldId::from_u8(field) else {
            buf.advance(len);
            return fail(
                ErrorCode::BAD_MATCH_BAD_FIELD,
                "unknown OpenFlow-basic field",
            );
        };
        let width = field.bytes();
        if len != width * if hasmask { 2 } else { 1 } {
            buf.advance(len);
            return fail(
                ErrorCode::BAD_MATCH_BAD_LEN,
                "OXM length does not fit the field",
            );
        }
        let value = get_be(buf, width);
        let mask = hasmask.then(|| get_be(buf, width));
        let oxm = Oxm { field, value, mask };
        oxm.validate()?;
        Ok(oxm)
    }
}

/// Writes the low `width` bytes of `v`, big-endian.
pub(crate) fn put_be(buf: &mut impl BufMut, v: u128, width: usize) {
    let bytes = v.to_be_bytes();
    buf.put_slice(&bytes[16 - width..]);
}

/// Reads `width` bytes (caller has checked they are there) as a big-endian number.
pub(crate) fn get_be(buf: &mut impl Buf, width: usize) -> u128 {
    let mut bytes = [0u8; 16];
    buf.copy_to_slice(&mut bytes[16 - width..]);
    u128::from_be_bytes(bytes)
}

/// An OXM TLV of a class other than OpenFlow-basic (experimenter, or Open vSwitch's NXM
/// classes 0 and 1), or an OpenFlow-basic field this crate does not know in a match a
/// switch reports, carried through byte for byte; other classes are refused with
/// BAD_MATCH/BAD_FIELD when decoded. For the experimenter class the payload begins
/// with the 32-bit experimenter id.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RawOxm {
    pub class: u16,
    pub field: u8,
    pub hasmask: bool,
    pub payload: Vec<u8>,
}

impl RawOxm {
    /// For the experimenter class, the experimenter id.
    pub fn experimenter(&self) -> Option<u32> {
        (self.class == OFPXMC_EXPERIMENTER && self.payload.len() >= 4).then(|| {
            u32::from_be_bytes([
                self.payload[0],
                self.payload[1],
                self.payload[2],
                self.payload[3],
            ])
        })
    }
}

/// One TLV of a match or a set-field action.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum OxmTlv {
    Basic(Oxm),
    Raw(RawOxm),
}

impl From<Oxm> for OxmTlv {
    fn from(oxm: Oxm) -> Self {
        OxmTlv::Basic(oxm)
    }
}

impl OxmTlv {
    /// (class, field): what duplicate detection compares.
    pub fn key(&self) -> (u16, u8) {
        match self {
            OxmTlv::Basic(o) => (OFPXMC_OPENFLOW_BASIC, o.field.num()),
            OxmTlv::Raw(r) => (r.class, r.field),
        }
    }

    pub fn wire_len(&self) -> usize {
        match self {
            OxmTlv::Basic(o) => o.wire_len(),
            OxmTlv::Raw(r) => 4 + r.payload.len(),
        }
    }

    pub fn has_mask(&self) -> bool {
        match self {
            OxmTlv::Basic(o) => o.mask.is_some(),
            OxmTlv::Raw(r) => r.hasmask,
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        match self {
            OxmTlv::Basic(o) => o.encode(buf),
            OxmTlv::Raw(r) => {
                buf.put_u16(r.class);
                buf.put_u8((r.field << 1) | u8::from(r.hasmask));
                buf.put_u8(r.payload.len() as u8);
                buf.put_slice(&r.payload);
            }
        }
    }

    /// Reads one TLV. Errors are the BAD_MATCH codes; a caller decoding a set-field action
    /// maps them to its own.
    pub fn decode(buf: &mut impl Buf) -> Result<OxmTlv, DecodeError> {
        Self::decode_as(buf, false)
    }

    /// [`OxmTlv::decode`]; with `keep_unknown`, an OpenFlow-basic field this crate does not
    /// know (a later version's, such as Open vSwitch's PACKET_TYPE, field 44) is kept as a
    /// [`RawOxm`] of the basic class instead of refused.
    fn decode_as(buf: &mut impl Buf, keep_unknown: bool) -> Result<OxmTlv, DecodeError> {
        let Ok(header) = buf.try_get_u32() else {
            return fail(ErrorCode::BAD_MATCH_BAD_LEN, "truncated OXM header");
        };
        let class = (header >> 16) as u16;
        let field = ((header >> 9) & 0x7f) as u8;
        let hasmask = header & 0x100 != 0;
        let len = (header & 0xff) as usize;
        if buf.remaining() < len {
            return fail(
                ErrorCode::BAD_MATCH_BAD_LEN,
                "OXM payload runs past the match",
            );
        }
        match class {
            OFPXMC_OPENFLOW_BASIC if !keep_unknown || FieldId::from_u8(field).is_some() => {
                Oxm::decode_payload(field, hasmask, len, buf).map(OxmTlv::Basic)
            }
            OFPXMC_OPENFLOW_BASIC | OFPXMC_NXM_0 | OFPXMC_NXM_1 | OFPXMC_EXPERIMENTER => {
                if class == OFPXMC_EXPERIMENTER && len < 4 {
                    buf.advance(len);
                    return fail(
                        ErrorCode::BAD_MATCH_BAD_LEN,
                        "experimenter OXM without its id",
                    );
                }
                let mut payload = vec![0; len];
                buf.copy_to_slice(&mut payload);
                Ok(OxmTlv::Raw(RawOxm {
                    class,
                    field,
                    hasmask,
                    payload,
                }))
            }
            _ => {
                buf.advance(len);
                fail(ErrorCode::BAD_MATCH_BAD_FIELD, "unknown OXM class")
            }
        }
    }
}

/// `ofp_match` of type OFPMT_OXM: the TLVs in the order they were given.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-------------------------------+-------------------------------+
/// |        type (OFPMT_OXM)       |  length (excluding padding)   |
/// +-------------------------------+-------------------------------+
/// |          OXM TLVs ... followed by zero padding to 8 bytes     |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Match {
    pub fields: Vec<OxmTlv>,
}

impl Match {
    /// The match that matches everything.
    pub fn all() -> Match {
        Match::default()
    }

    /// Builder: adds a TLV.
    pub fn with(mut self, tlv: impl Into<OxmTlv>) -> Match {
        self.fields.push(tlv.into());
        self
    }

    /// The basic field `id`, if present.
    pub fn get(&self, id: FieldId) -> Option<&Oxm> {
        self.basic().find(|o| o.field == id)
    }

    /// The basic fields.
    pub fn basic(&self) -> impl Iterator<Item = &Oxm> {
        self.fields.iter().filter_map(|t| match t {
            OxmTlv::Basic(o) => Some(o),
            OxmTlv::Raw(_) => None,
        })
    }

    /// Length without padding (the `length` field).
    pub fn unpadded_len(&self) -> usize {
        4 + self.fields.iter().map(OxmTlv::wire_len).sum::<usize>()
    }

    /// Length on the wire with padding.
    pub fn wire_len(&self) -> usize {
        self.unpadded_len().next_multiple_of(8)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        let len = self.unpadded_len();
        buf.put_u16(OFPMT_OXM);
        buf.put_u16(len as u16);
        for f in &self.fields {
            f.encode(buf);
        }
        buf.put_bytes(0, len.next_multiple_of(8) - len);
    }

    /// Reads an `ofp_match` and its padding, then checks duplicates and prerequisites.
    pub fn decode(buf: &mut impl Buf) -> Result<Match, DecodeError> {
        let m = Self::decode_fields(buf, false)?;
        m.validate()?;
        Ok(m)
    }

    /// Reads a match a switch reports (flow stats, flow removed, packet-in): like
    /// [`Match::decode`], but basic fields this crate does not know (a later version's) are
    /// kept as raw TLVs, so that a controller can show every flow the switch has.
    pub fn decode_reported(buf: &mut impl Buf) -> Result<Match, DecodeError> {
        let m = Self::decode_fields(buf, true)?;
        m.validate()?;
        Ok(m)
    }

    fn decode_fields(buf: &mut impl Buf, keep_unknown: bool) -> Result<Match, DecodeError> {
        let (Ok(mtype), Ok(len)) = (buf.try_get_u16(), buf.try_get_u16()) else {
            return fail(ErrorCode::BAD_MATCH_BAD_LEN, "truncated match header");
        };
        let len = usize::from(len);
        if mtype != OFPMT_OXM {
            return fail(ErrorCode::BAD_MATCH_BAD_TYPE, "match type is not OFPMT_OXM");
        }
        if len < 4 || buf.remaining() < len.next_multiple_of(8) - 4 {
            return fail(
                ErrorCode::BAD_MATCH_BAD_LEN,
                "match length runs past the message",
            );
        }
        let mut body = Buf::take(&mut *buf, len - 4);
        let mut fields = Vec::new();
        while body.has_remaining() {
            fields.push(OxmTlv::decode_as(&mut body, keep_unknown)?);
        }
        buf.advance(len.next_multiple_of(8) - len);
        Ok(Match { fields })
    }

    /// Checks every TLV's value and mask, duplicates, and prerequisites (spec §7.2.3.6).
    ///
    /// Errors are those of checking each TLV in order (duplicate of an earlier one, then its
    /// value and mask), then each basic field's prerequisites in order. One pass records
    /// where each basic field is, so prerequisites are array lookups, not scans.
    pub fn validate(&self) -> Result<(), DecodeError> {
        // Index + 1 of each basic field in `fields` (0: absent).
        let mut at = [0u8; 128];
        let mut any_raw = false;
        for (i, f) in self.fields.iter().enumerate() {
            match f {
                OxmTlv::Basic(o) => {
                    let slot = &mut at[usize::from(o.field.num())];
                    if *slot != 0 {
                        return fail(ErrorCode::BAD_MATCH_DUP_FIELD, "field appears twice");
                    }
                    // More TLVs than fit a u8 cannot all be distinct basic fields; the
                    // saturated index is only used for presence and lookups below.
                    *slot = u8::try_from(i + 1).unwrap_or(u8::MAX);
                    o.validate()?;
                }
                OxmTlv::Raw(r) => {
                    let basic_class = r.class == OFPXMC_OPENFLOW_BASIC;
                    if (any_raw || basic_class)
                        && self.fields[..i].iter().any(|g| g.key() == f.key())
                    {
                        return fail(ErrorCode::BAD_MATCH_DUP_FIELD, "field appears twice");
                    }
                    if basic_class {
                        // Clashes with a later basic TLV of the same field.
                        at[usize::from(r.field & 0x7f)] = u8::try_from(i + 1).unwrap_or(u8::MAX);
                    }
                    any_raw = true;
                }
            }
        }
        let get = |id: FieldId| -> Option<&Oxm> {
            let i = at[usize::from(id.num())];
            if i == 0 {
                return None;
            }
            match self.fields.get(usize::from(i) - 1) {
                Some(OxmTlv::Basic(o)) if o.field == id => Some(o),
                _ => self.get(id),
            }
        };
        for o in self.basic() {
            for p in o.field.prereqs() {
                let ok = match *p {
                    Prereq::InPort => get(FieldId::InPort).is_some(),
                    Prereq::VlanPresent => get(FieldId::VlanVid).is_some_and(|v| {
                        let present = u128::from(OFPVID_PRESENT);
                        v.mask_or_full() & present != 0 && v.value & present != 0
                    }),
                    Prereq::Exact { field, values } => {
                        get(field).is_some_and(|o| o.is_exact() && values.contains(&o.value))
                    }
                };
                if !ok {
                    return fail(
                        ErrorCode::BAD_MATCH_BAD_PREREQ,
                        "field prerequisite missing",
                    );
                }
            }
        }
        Ok(())
    }
}

/// An Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    pub fn to_u128(self) -> u128 {
        let mut b = [0u8; 16];
        b[10..].copy_from_slice(&self.0);
        u128::from_be_bytes(b)
    }

    pub fn from_u128(v: u128) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[10], b[11], b[12], b[13], b[14], b[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = ();

    /// Six colon-separated hex octets (one or two digits each), as ovs-ofctl accepts.
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for o in &mut out {
            let p = parts.next().ok_or(())?;
            if p.is_empty() || p.len() > 2 {
                return Err(());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<Match, DecodeError> {
        let mut b = bytes;
        let m = Match::decode(&mut b)?;
        assert!(b.is_empty(), "padding not consumed");
        Ok(m)
    }

    fn encode(m: &Match) -> Vec<u8> {
        let mut v = Vec::new();
        m.encode(&mut v);
        assert_eq!(v.len(), m.wire_len());
        v
    }

    #[test]
    fn in_port_and_eth_type_round_trip_with_padding() {
        // in_port=1, dl_type=0x0800: 4 + 8 + 6 = 18 bytes, padded to 24.
        let bytes = [
            0x00, 0x01, 0x00, 0x12, 0x80, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01, 0x80, 0x00,
            0x0a, 0x02, 0x08, 0x00, 0, 0, 0, 0, 0, 0,
        ];
        let m = decode(&bytes).unwrap();
        assert_eq!(
            m,
            Match::all()
                .with(Oxm::in_port(1))
                .with(Oxm::eth_type(0x0800))
        );
        assert_eq!(encode(&m), bytes);
    }

    #[test]
    fn masked_ipv4_round_trips() {
        let m = Match::all().with(Oxm::eth_type(0x0800)).with(Oxm::masked(
            FieldId::Ipv4Src,
            0x0a00_0000,
            0xff00_0000,
        ));
        let bytes = encode(&m);
        // header of the masked field: class 0x8000, field 11, hasmask, len 8.
        assert_eq!(&bytes[10..14], &[0x80, 0x00, 0x17, 0x08]);
        assert_eq!(decode(&bytes).unwrap(), m);
    }

    #[test]
    fn empty_match_is_eight_bytes() {
        assert_eq!(encode(&Match::all()), [0, 1, 0, 4, 0, 0, 0, 0]);
    }

    #[test]
    fn prerequisites_are_enforced() {
        let no_proto = Match::all()
            .with(Oxm::eth_type(0x0800))
            .with(Oxm::exact(FieldId::TcpDst, 80));
        assert_eq!(
            no_proto.validate().unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_PREREQ
        );
        let no_eth = Match::all().with(Oxm::ip_proto(6));
        assert_eq!(
            no_eth.validate().unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_PREREQ
        );
        let ipv6_udp = Match::all()
            .with(Oxm::eth_type(0x86dd))
            .with(Oxm::ip_proto(17))
            .with(Oxm::exact(FieldId::UdpSrc, 53));
        ipv6_udp.validate().unwrap();
        let icmp_on_v6 = Match::all()
            .with(Oxm::eth_type(0x86dd))
            .with(Oxm::ip_proto(1))
            .with(Oxm::exact(FieldId::Icmpv4Type, 8));
        assert_eq!(
            icmp_on_v6.validate().unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_PREREQ
        );
        let pcp_no_vlan = Match::all().with(Oxm::exact(FieldId::VlanPcp, 3));
        assert_eq!(
            pcp_no_vlan.validate().unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_PREREQ
        );
        let pcp_vlan_none = Match::all()
            .with(Oxm::vlan_vid(OFPVID_NONE))
            .with(Oxm::exact(FieldId::VlanPcp, 3));
        assert_eq!(
            pcp_vlan_none.validate().unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_PREREQ
        );
        let pcp_any_vlan = Match::all()
            .with(Oxm::masked(FieldId::VlanVid, 0x1000, 0x1000))
            .with(Oxm::exact(FieldId::VlanPcp, 3));
        pcp_any_vlan.validate().unwrap();
        let nd_sll_on_na = Match::all()
            .with(Oxm::eth_type(0x86dd))
            .with(Oxm::ip_proto(58))
            .with(Oxm::exact(FieldId::Icmpv6Type, 136))
            .with(Oxm::exact(FieldId::Ipv6NdSll, 1));
        assert_eq!(
            nd_sll_on_na.validate().unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_PREREQ
        );
        let phy_no_port = Match::all().with(Oxm::exact(FieldId::InPhyPort, 1));
        assert_eq!(
            phy_no_port.validate().unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_PREREQ
        );
    }

    #[test]
    fn duplicate_fields_are_refused() {
        let m = Match::all().with(Oxm::in_port(1)).with(Oxm::in_port(2));
        assert_eq!(
            decode(&encode(&m)).unwrap_err().code,
            ErrorCode::BAD_MATCH_DUP_FIELD
        );
    }

    #[test]
    fn bad_values_masks_and_lengths() {
        let wide_vid = Match::all().with(Oxm::vlan_vid(0x2000));
        assert_eq!(
            decode(&encode(&wide_vid)).unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_VALUE
        );
        let masked_port = Match::all().with(Oxm::masked(FieldId::InPort, 1, 1));
        assert_eq!(
            decode(&encode(&masked_port)).unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_MASK
        );
        let stray_bits = Match::all().with(Oxm::masked(FieldId::Metadata, 0xff, 0xf0));
        assert_eq!(
            decode(&encode(&stray_bits)).unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_WILDCARDS
        );
        // in_port with a 2-byte payload.
        let short = [0, 1, 0, 10, 0x80, 0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode(&short).unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_LEN
        );
        // field 40 does not exist.
        let unknown = [0, 1, 0, 9, 0x80, 0, 40 << 1, 1, 7, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode(&unknown).unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_FIELD
        );
        let standard = [0, 0, 0, 4, 0, 0, 0, 0];
        assert_eq!(
            decode(&standard).unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_TYPE
        );
        let past_end = [0, 1, 0, 40, 0, 0, 0, 0];
        assert_eq!(
            decode(&past_end).unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_LEN
        );
    }

    #[test]
    fn experimenter_and_nxm_tlvs_are_carried_through() {
        let exp = RawOxm {
            class: OFPXMC_EXPERIMENTER,
            field: 5,
            hasmask: false,
            payload: vec![0x00, 0x00, 0x23, 0x20, 0xaa, 0xbb],
        };
        let reg0 = RawOxm {
            class: OFPXMC_NXM_1,
            field: 0,
            hasmask: false,
            payload: vec![0, 0, 0, 7],
        };
        let m = Match::all()
            .with(OxmTlv::Raw(exp.clone()))
            .with(OxmTlv::Raw(reg0));
        let back = decode(&encode(&m)).unwrap();
        assert_eq!(back, m);
        assert_eq!(exp.experimenter(), Some(0x2320));
        let no_id = [0, 1, 0, 6, 0xff, 0xff, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decode(&no_id).unwrap_err().code,
            ErrorCode::BAD_MATCH_BAD_LEN
        );
    }

    #[test]
    fn mac_text() {
        let mac: MacAddr = "0:1:2:a:bb:FF".parse().unwrap();
        assert_eq!(mac.to_string(), "00:01:02:0a:bb:ff");
        assert_eq!(MacAddr::from_u128(mac.to_u128()), mac);
        assert!("00:01:02:03:04".parse::<MacAddr>().is_err());
        assert!("00:01:02:03:04:05:06".parse::<MacAddr>().is_err());
    }
}
