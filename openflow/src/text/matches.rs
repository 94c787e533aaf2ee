//! Match text: the field names and aliases ovs-ofctl accepts, the shorthands (`ip`, `tcp6`,
//! `arp`...), value syntax per field, and the two directions between text and an OXM
//! [`Match`].
//!
//! Both directions go through [`Slots`], a model of how Open vSwitch holds a match: one slot
//! per packet-header field, where several names share a slot (`tp_src`, `tcp_src`,
//! `icmp_type` are all the transport source; `nw_src` and `arp_spa` share one; VLAN is one
//! 16-bit TCI). That model is what makes ovs-ofctl's results reproducible: `tcp,tp_src=1,
//! nw_proto=17` is a UDP match, `dl_vlan=5000` is VLAN 904, and fields whose prerequisites
//! are not met are dropped (with a warning) rather than refused. Encoding emits OXM TLVs in
//! the order Open vSwitch 3.1 puts them on the wire; formatting prints fields in the order
//! `ovs-ofctl dump-flows` prints them.
//!
//! What does not live here: the flow's own keywords (`priority`, `cookie`, ...) and actions.

use std::fmt::Write as _;

use super::lex::{
    fmt_ipv4_masked, fmt_ipv6_masked, fmt_mac_masked, hash_hex, parse_c_uint, parse_ipv4_masked,
    parse_ipv6_masked, parse_mac_masked,
};
use super::{ParseError, PortNames};
use crate::consts::reserved_port_name;
use crate::oxm::{FieldId, Match, OFPXMC_EXPERIMENTER, Oxm, OxmTlv, RawOxm};

/// ONF's experimenter id, under which OpenFlow 1.3 carries TCP flags (ONF EXT-109).
const ONF_EXPERIMENTER: u32 = 0x4f4e_4600;
/// The ONF OXM field number of TCP flags.
const ONF_TCP_FLAGS: u8 = 42;

pub(crate) const ETH_IP: u128 = 0x0800;
pub(crate) const ETH_IPV6: u128 = 0x86dd;
pub(crate) const ETH_ARP: u128 = 0x0806;
pub(crate) const ETH_RARP: u128 = 0x8035;
pub(crate) const ETH_MPLS: u128 = 0x8847;
pub(crate) const ETH_MPLSM: u128 = 0x8848;
pub(crate) const ETH_PBB: u128 = 0x88e7;

/// One header-field slot of the Open vSwitch match model.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(usize)]
pub(crate) enum Slot {
    InPort,
    InPhyPort,
    Metadata,
    TunId,
    DlSrc,
    DlDst,
    DlType,
    VlanTci,
    MplsLabel,
    MplsTc,
    MplsBos,
    PbbIsid,
    NwSrc,
    NwDst,
    Ipv6Src,
    Ipv6Dst,
    Ipv6Label,
    Ipv6Exthdr,
    NwProto,
    NwTos,
    TpSrc,
    TpDst,
    TcpFlags,
    ArpSha,
    ArpTha,
    NdTarget,
}

const N_SLOTS: usize = Slot::NdTarget as usize + 1;

impl Slot {
    fn bits(self) -> u32 {
        use Slot::*;
        match self {
            InPort | InPhyPort | NwSrc | NwDst => 32,
            Metadata | TunId => 64,
            DlSrc | DlDst | ArpSha | ArpTha => 48,
            DlType | VlanTci | TpSrc | TpDst => 16,
            MplsLabel | Ipv6Label => 20,
            MplsTc => 3,
            MplsBos => 1,
            PbbIsid => 24,
            Ipv6Src | Ipv6Dst | NdTarget => 128,
            Ipv6Exthdr => 9,
            NwProto | NwTos => 8,
            TcpFlags => 12,
        }
    }

    fn full(self) -> u128 {
        if self.bits() == 128 {
            u128::MAX
        } else {
            (1u128 << self.bits()) - 1
        }
    }

    /// The name printed in normalisation warnings.
    fn name(self) -> &'static str {
        use Slot::*;
        match self {
            InPort => "in_port",
            InPhyPort => "in_phy_port",
            Metadata => "metadata",
            TunId => "tun_id",
            DlSrc => "dl_src",
            DlDst => "dl_dst",
            DlType => "dl_type",
            VlanTci => "vlan_tci",
            MplsLabel => "mpls_label",
            MplsTc => "mpls_tc",
            MplsBos => "mpls_bos",
            PbbIsid => "pbb_isid",
            NwSrc => "nw_src",
            NwDst => "nw_dst",
            Ipv6Src => "ipv6_src",
            Ipv6Dst => "ipv6_dst",
            Ipv6Label => "ipv6_label",
            Ipv6Exthdr => "ipv6_exthdr",
            NwProto => "nw_proto",
            NwTos => "nw_tos",
            TpSrc => "tp_src",
            TpDst => "tp_dst",
            TcpFlags => "tcp_flags",
            ArpSha => "arp_sha",
            ArpTha => "arp_tha",
            NdTarget => "nd_target",
        }
    }
}

/// A match as Open vSwitch models it: (value, mask) per slot, mask 0 meaning wildcarded.
/// Values are always within their masks.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub(crate) struct Slots {
    v: [(u128, u128); N_SLOTS],
}

impl Slots {
    pub(crate) fn get(&self, s: Slot) -> Option<(u128, u128)> {
        let (v, m) = self.v[s as usize];
        (m != 0).then_some((v, m))
    }

    /// The value if the slot is matched exactly.
    pub(crate) fn exact(&self, s: Slot) -> Option<u128> {
        self.get(s).filter(|(_, m)| *m == s.full()).map(|(v, _)| v)
    }

    pub(crate) fn set(&mut self, s: Slot, v: u128, m: u128) {
        let m = m & s.full();
        self.v[s as usize] = (v & m, m);
    }

    fn clear(&mut self, s: Slot) {
        self.v[s as usize] = (0, 0);
    }

    pub(crate) fn dl_type(&self) -> Option<u128> {
        self.exact(Slot::DlType)
    }

    pub(crate) fn nw_proto(&self) -> Option<u128> {
        self.exact(Slot::NwProto)
    }

    pub(crate) fn is_ip(&self) -> bool {
        matches!(self.dl_type(), Some(ETH_IP | ETH_IPV6))
    }

    fn is_arp(&self) -> bool {
        matches!(self.dl_type(), Some(ETH_ARP | ETH_RARP))
    }

    /// True when the VLAN TCI is matched with the CFI (tag present) bit set.
    pub(crate) fn has_vlan(&self) -> bool {
        self.get(Slot::VlanTci)
            .is_some_and(|(v, m)| v & m & 0x1000 != 0)
    }

    /// Whether `slot`'s prerequisites hold in this match.
    fn applies(&self, slot: Slot) -> bool {
        use Slot::*;
        let dl = self.dl_type();
        let proto = self.nw_proto();
        let ip4 = dl == Some(ETH_IP);
        let ip6 = dl == Some(ETH_IPV6);
        let ip = ip4 || ip6;
        let icmp6 = ip6 && proto == Some(58);
        // The ICMPv6 type is the low byte of the transport source slot.
        let nd_type = self.exact(TpSrc).map(|t| t & 0xff);
        match slot {
            InPort | Metadata | TunId | DlSrc | DlDst | DlType | VlanTci => true,
            InPhyPort => self.get(InPort).is_some(),
            MplsLabel | MplsTc | MplsBos => matches!(dl, Some(ETH_MPLS | ETH_MPLSM)),
            PbbIsid => dl == Some(ETH_PBB),
            NwSrc | NwDst => ip4 || self.is_arp(),
            Ipv6Src | Ipv6Dst | Ipv6Label | Ipv6Exthdr => ip6,
            NwProto => ip || self.is_arp(),
            NwTos => ip,
            TpSrc | TpDst => {
                ip && matches!(proto, Some(6 | 17 | 132)) || ip4 && proto == Some(1) || icmp6
            }
            TcpFlags => ip && proto == Some(6),
            ArpSha => self.is_arp() || icmp6 && nd_type == Some(135),
            ArpTha => self.is_arp() || icmp6 && nd_type == Some(136),
            NdTarget => icmp6 && matches!(nd_type, Some(135 | 136)),
        }
    }

    /// Drops every slot whose prerequisites are not met, as Open vSwitch does; returns the
    /// names of what was dropped.
    pub(crate) fn normalize(&mut self) -> Vec<&'static str> {
        use Slot::*;
        let mut dropped = Vec::new();
        // Later slots depend on earlier ones (TpSrc decides ND fields), so check in an order
        // where a slot's deciders are settled first.
        for s in [
            InPhyPort, MplsLabel, MplsTc, MplsBos, PbbIsid, NwSrc, NwDst, Ipv6Src, Ipv6Dst,
            Ipv6Label, Ipv6Exthdr, NwProto, NwTos, TpSrc, TpDst, TcpFlags, ArpSha, ArpTha,
            NdTarget,
        ] {
            if self.get(s).is_some() && !self.applies(s) {
                self.clear(s);
                dropped.push(s.name());
            }
        }
        dropped
    }

    // ---------------------------------------------------------------- OXM -> slots

    /// Reads a match as Open vSwitch decodes one: every field into its slot. TLVs the model
    /// has no slot for (other than ONF TCP flags) are returned.
    pub(crate) fn from_match(m: &Match) -> (Slots, Vec<RawOxm>) {
        let mut s = Slots::default();
        let mut other = Vec::new();
        for tlv in &m.fields {
            match tlv {
                OxmTlv::Basic(o) => s.put_oxm(o),
                OxmTlv::Raw(r) => match tcp_flags_of(r) {
                    Some((v, m)) => s.set(Slot::TcpFlags, v.into(), m.into()),
                    None => other.push(r.clone()),
                },
            }
        }
        (s, other)
    }

    fn put_oxm(&mut self, o: &Oxm) {
        use FieldId as F;
        let m = o.mask_or_full();
        let v = o.value & m;
        let slot = match o.field {
            F::InPort => Slot::InPort,
            F::InPhyPort => Slot::InPhyPort,
            F::Metadata => Slot::Metadata,
            F::EthDst => Slot::DlDst,
            F::EthSrc => Slot::DlSrc,
            F::EthType => Slot::DlType,
            F::VlanVid => {
                let (tv, tm) = self.v[Slot::VlanTci as usize];
                let tm = (tm & !0x1fff) | (m & 0x1fff);
                let tv = (tv & !0x1fff) | (v & 0x1fff);
                self.set(Slot::VlanTci, tv, tm);
                return;
            }
            F::VlanPcp => {
                let (tv, tm) = self.v[Slot::VlanTci as usize];
                let tv = (tv & !0xe000) | ((v & 7) << 13) | 0x1000;
                self.set(Slot::VlanTci, tv, tm | 0xf000);
                return;
            }
            F::IpDscp => {
                let (tv, tm) = self.v[Slot::NwTos as usize];
                self.set(Slot::NwTos, (tv & 3) | ((v << 2) & 0xfc), tm | 0xfc);
                return;
            }
            F::IpEcn => {
                let (tv, tm) = self.v[Slot::NwTos as usize];
                self.set(Slot::NwTos, (tv & 0xfc) | (v & 3), tm | 3);
                return;
            }
            F::IpProto | F::ArpOp => Slot::NwProto,
            F::Ipv4Src | F::ArpSpa => Slot::NwSrc,
            F::Ipv4Dst | F::ArpTpa => Slot::NwDst,
            F::TcpSrc | F::UdpSrc | F::SctpSrc | F::Icmpv4Type | F::Icmpv6Type => Slot::TpSrc,
            F::TcpDst | F::UdpDst | F::SctpDst | F::Icmpv4Code | F::Icmpv6Code => Slot::TpDst,
            F::ArpSha | F::Ipv6NdSll => Slot::ArpSha,
            F::ArpTha | F::Ipv6NdTll => Slot::ArpTha,
            F::Ipv6Src => Slot::Ipv6Src,
            F::Ipv6Dst => Slot::Ipv6Dst,
            F::Ipv6Flabel => Slot::Ipv6Label,
            F::Ipv6NdTarget => Slot::NdTarget,
            F::MplsLabel => Slot::MplsLabel,
            F::MplsTc => Slot::MplsTc,
            F::MplsBos => Slot::MplsBos,
            F::PbbIsid => Slot::PbbIsid,
            F::TunnelId => Slot::TunId,
            F::Ipv6Exthdr => Slot::Ipv6Exthdr,
        };
        // An exact match of a narrower field (ICMP type in the 16-bit transport slot) is
        // an exact match of the slot.
        let m = if o.is_exact() { slot.full() } else { m };
        self.set(slot, v, m);
    }

    // ---------------------------------------------------------------- slots -> OXM

    /// Encodes the match the way Open vSwitch 3.1 does for OpenFlow 1.3: fixed field order,
    /// exact matches without a mask, wildcarded fields left out. Call `normalize` first.
    pub(crate) fn to_match(&self) -> Result<Match, ParseError> {
        use FieldId as F;
        let mut out = Match::all();
        fn put_in(out: &mut Match, f: FieldId, slot: Option<(u128, u128)>) {
            if let Some((v, m)) = slot {
                let full = f.full_mask();
                let o = if m & full == full {
                    Oxm::exact(f, v & full)
                } else {
                    Oxm::masked(f, v & m & full, m & full)
                };
                out.fields.push(OxmTlv::Basic(o));
            }
        }
        // An exact slot is an exact field, whatever the field's width.
        let g = |s: Slot| {
            self.get(s).map(|(v, m)| {
                if m == s.full() {
                    (v, u128::MAX)
                } else {
                    (v, m)
                }
            })
        };
        put_in(&mut out, F::InPort, g(Slot::InPort));
        put_in(&mut out, F::InPhyPort, g(Slot::InPhyPort));
        put_in(&mut out, F::EthSrc, g(Slot::DlSrc));
        put_in(&mut out, F::EthDst, g(Slot::DlDst));
        put_in(&mut out, F::EthType, g(Slot::DlType));
        if let Some((tv, tm)) = self.get(Slot::VlanTci) {
            let (vid, vid_m) = (tv & 0x1fff, tm & 0x1fff);
            if vid_m != 0 {
                put_in(&mut out, F::VlanVid, Some((vid, vid_m)));
            }
            if tm & 0xe000 != 0 {
                // Open vSwitch sends the PCP whenever the VID value is non-zero; without the
                // tag-present bit that is a match no switch accepts, so it is left out here.
                if vid & 0x1000 != 0 {
                    put_in(&mut out, F::VlanPcp, Some((tv >> 13, 7)));
                } else if tv & 0xe000 != 0 {
                    return Err(ParseError::new(format!(
                        "vlan_tci={tv:#06x}/{tm:#06x}: a VLAN priority without a VLAN tag \
                         cannot be expressed in OpenFlow 1.3"
                    )));
                }
            }
        }
        put_in(&mut out, F::MplsTc, g(Slot::MplsTc));
        put_in(&mut out, F::MplsBos, g(Slot::MplsBos));
        put_in(&mut out, F::MplsLabel, g(Slot::MplsLabel));
        put_in(&mut out, F::PbbIsid, g(Slot::PbbIsid));
        let dl = self.dl_type();
        let proto = self.nw_proto();
        if self.is_ip() {
            if dl == Some(ETH_IP) {
                put_in(&mut out, F::Ipv4Src, g(Slot::NwSrc));
                put_in(&mut out, F::Ipv4Dst, g(Slot::NwDst));
            } else {
                put_in(&mut out, F::Ipv6Src, g(Slot::Ipv6Src));
                put_in(&mut out, F::Ipv6Dst, g(Slot::Ipv6Dst));
                put_in(&mut out, F::Ipv6Flabel, g(Slot::Ipv6Label));
                put_in(&mut out, F::Ipv6Exthdr, g(Slot::Ipv6Exthdr));
            }
            if let Some((tv, tm)) = g(Slot::NwTos) {
                if tm & 0xfc != 0 {
                    put_in(&mut out, F::IpDscp, Some((tv >> 2, 0x3f)));
                }
                if tm & 3 != 0 {
                    put_in(&mut out, F::IpEcn, Some((tv & 3, 3)));
                }
            }
            put_in(&mut out, F::IpProto, g(Slot::NwProto));
            let (src, dst) = (g(Slot::TpSrc), g(Slot::TpDst));
            let byte = |s: Option<(u128, u128)>| s.map(|(v, _)| (v & 0xff, 0xff));
            match (dl, proto) {
                (_, Some(6)) => {
                    put_in(&mut out, F::TcpSrc, src);
                    put_in(&mut out, F::TcpDst, dst);
                    if let Some((v, m)) = g(Slot::TcpFlags) {
                        out.fields
                            .push(OxmTlv::Raw(tcp_flags_tlv(v as u16, m as u16)));
                    }
                }
                (_, Some(17)) => {
                    put_in(&mut out, F::UdpSrc, src);
                    put_in(&mut out, F::UdpDst, dst);
                }
                (_, Some(132)) => {
                    put_in(&mut out, F::SctpSrc, src);
                    put_in(&mut out, F::SctpDst, dst);
                }
                (Some(ETH_IP), Some(1)) => {
                    put_in(&mut out, F::Icmpv4Type, byte(src));
                    put_in(&mut out, F::Icmpv4Code, byte(dst));
                }
                (Some(ETH_IPV6), Some(58)) => {
                    put_in(&mut out, F::Icmpv6Type, byte(src));
                    put_in(&mut out, F::Icmpv6Code, byte(dst));
                    put_in(&mut out, F::Ipv6NdTarget, g(Slot::NdTarget));
                    put_in(&mut out, F::Ipv6NdSll, g(Slot::ArpSha));
                    put_in(&mut out, F::Ipv6NdTll, g(Slot::ArpTha));
                }
                _ => {}
            }
        } else if self.is_arp() {
            put_in(&mut out, F::ArpOp, g(Slot::NwProto));
            put_in(&mut out, F::ArpSpa, g(Slot::NwSrc));
            put_in(&mut out, F::ArpTpa, g(Slot::NwDst));
            put_in(&mut out, F::ArpSha, g(Slot::ArpSha));
            put_in(&mut out, F::ArpTha, g(Slot::ArpTha));
        }
        put_in(&mut out, F::TunnelId, g(Slot::TunId));
        put_in(&mut out, F::Metadata, g(Slot::Metadata));
        Ok(out)
    }

    // ---------------------------------------------------------------- text

    /// Prints the match as `ovs-ofctl dump-flows` does (no priority, no trailing comma).
    pub(crate) fn format(&self, out: &mut String) {
        let start = out.len();
        let dl = self.dl_type();
        let proto = self.nw_proto();
        let mut skip_type = false;
        let mut skip_proto = false;
        if let Some(dl) = dl {
            skip_type = true;
            let short = match dl {
                ETH_IP => match proto {
                    Some(1) => Some("icmp"),
                    Some(6) => Some("tcp"),
                    Some(17) => Some("udp"),
                    Some(132) => Some("sctp"),
                    _ => None,
                },
                ETH_IPV6 => match proto {
                    Some(58) => Some("icmp6"),
                    Some(6) => Some("tcp6"),
                    Some(17) => Some("udp6"),
                    Some(132) => Some("sctp6"),
                    _ => None,
                },
                _ => None,
            };
            match short {
                Some(name) => {
                    skip_proto = true;
                    out.push_str(name);
                }
                None => match dl {
                    ETH_IP => out.push_str("ip"),
                    ETH_IPV6 => out.push_str("ipv6"),
                    ETH_ARP => out.push_str("arp"),
                    ETH_RARP => out.push_str("rarp"),
                    ETH_MPLS => out.push_str("mpls"),
                    ETH_MPLSM => out.push_str("mplsm"),
                    _ => skip_type = false,
                },
            }
            if skip_type {
                out.push(',');
            }
        }
        let hex64 = |out: &mut String, name: &str, s: Slot| {
            if let Some((v, m)) = self.get(s) {
                let _ = write!(out, "{name}={}", hash_hex(v));
                if m != s.full() {
                    let _ = write!(out, "/{}", hash_hex(m));
                }
                out.push(',');
            }
        };
        hex64(out, "tun_id", Slot::TunId);
        hex64(out, "metadata", Slot::Metadata);
        if let Some((v, _)) = self.get(Slot::InPort) {
            let _ = write!(out, "in_port={},", port_text(v as u32));
        }
        if let Some((v, _)) = self.get(Slot::InPhyPort) {
            let _ = write!(out, "in_phy_port={},", port_text(v as u32));
        }
        if let Some((v, m)) = self.get(Slot::VlanTci) {
            let cfi = v & m & 0x1000 != 0;
            let (vid_m, pcp_m) = (m & 0x0fff, m & 0xe000);
            if cfi
                && (vid_m == 0 || vid_m == 0x0fff)
                && (pcp_m == 0 || pcp_m == 0xe000)
                && (vid_m != 0 || pcp_m != 0)
            {
                if vid_m != 0 {
                    let _ = write!(out, "dl_vlan={},", v & 0xfff);
                }
                if pcp_m != 0 {
                    let _ = write!(out, "dl_vlan_pcp={},", v >> 13);
                }
            } else if m == 0xffff {
                let _ = write!(out, "vlan_tci=0x{v:04x},");
            } else {
                let _ = write!(out, "vlan_tci=0x{v:04x}/0x{m:04x},");
            }
        }
        let mac = |out: &mut String, name: &str, s: Slot| {
            if let Some((v, m)) = self.get(s) {
                let _ = write!(out, "{name}=");
                fmt_mac_masked(out, v, m);
                out.push(',');
            }
        };
        let ipv4 = |out: &mut String, name: &str, s: Slot| {
            if let Some((v, m)) = self.get(s) {
                let _ = write!(out, "{name}=");
                fmt_ipv4_masked(out, v as u32, m as u32);
                out.push(',');
            }
        };
        let ipv6 = |out: &mut String, name: &str, s: Slot| {
            if let Some((v, m)) = self.get(s) {
                let _ = write!(out, "{name}=");
                fmt_ipv6_masked(out, v, m);
                out.push(',');
            }
        };
        let dec = |out: &mut String, name: &str, s: Slot| {
            if let Some((v, m)) = self.get(s) {
                if m == s.full() {
                    let _ = write!(out, "{name}={v},");
                } else {
                    let _ = write!(out, "{name}={v:#x}/{m:#x},");
                }
            }
        };
        mac(out, "dl_src", Slot::DlSrc);
        mac(out, "dl_dst", Slot::DlDst);
        if !skip_type && let Some((v, _)) = self.get(Slot::DlType) {
            let _ = write!(out, "dl_type=0x{v:04x},");
        }
        let arp = self.is_arp();
        if dl == Some(ETH_IPV6) {
            ipv6(out, "ipv6_src", Slot::Ipv6Src);
            ipv6(out, "ipv6_dst", Slot::Ipv6Dst);
            if let Some((v, m)) = self.get(Slot::Ipv6Label) {
                let _ = write!(out, "ipv6_label=0x{v:05x}");
                if m != Slot::Ipv6Label.full() {
                    let _ = write!(out, "/0x{m:05x}");
                }
                out.push(',');
            }
            if let Some((v, m)) = self.get(Slot::Ipv6Exthdr) {
                let _ = write!(out, "ipv6_exthdr={v:#x}");
                if m != Slot::Ipv6Exthdr.full() {
                    let _ = write!(out, "/{m:#x}");
                }
                out.push(',');
            }
        } else if arp {
            ipv4(out, "arp_spa", Slot::NwSrc);
            ipv4(out, "arp_tpa", Slot::NwDst);
        } else {
            ipv4(out, "nw_src", Slot::NwSrc);
            ipv4(out, "nw_dst", Slot::NwDst);
        }
        if !skip_proto && let Some((v, _)) = self.get(Slot::NwProto) {
            let name = if arp { "arp_op" } else { "nw_proto" };
            let _ = write!(out, "{name}={v},");
        }
        if arp {
            mac(out, "arp_sha", Slot::ArpSha);
            mac(out, "arp_tha", Slot::ArpTha);
        }
        if let Some((v, m)) = self.get(Slot::NwTos) {
            if m & 0xfc != 0 {
                let _ = write!(out, "nw_tos={},", v & 0xfc);
            }
            if m & 3 != 0 {
                let _ = write!(out, "nw_ecn={},", v & 3);
            }
        }
        dec(out, "mpls_label", Slot::MplsLabel);
        dec(out, "mpls_tc", Slot::MplsTc);
        dec(out, "mpls_bos", Slot::MplsBos);
        dec(out, "pbb_isid", Slot::PbbIsid);
        let ip4 = dl == Some(ETH_IP);
        let ip6 = dl == Some(ETH_IPV6);
        // ICMP type and code are one byte on the wire: printed as the exact byte sent.
        let icmp = |out: &mut String, name: &str, s: Slot| {
            if let Some((v, _)) = self.get(s) {
                let _ = write!(out, "{name}={},", v & 0xff);
            }
        };
        if ip4 && proto == Some(1) {
            icmp(out, "icmp_type", Slot::TpSrc);
            icmp(out, "icmp_code", Slot::TpDst);
        } else if ip6 && proto == Some(58) {
            icmp(out, "icmp_type", Slot::TpSrc);
            icmp(out, "icmp_code", Slot::TpDst);
            ipv6(out, "nd_target", Slot::NdTarget);
            mac(out, "nd_sll", Slot::ArpSha);
            mac(out, "nd_tll", Slot::ArpTha);
        } else {
            dec(out, "tp_src", Slot::TpSrc);
            dec(out, "tp_dst", Slot::TpDst);
        }
        if let Some((v, m)) = self.get(Slot::TcpFlags) {
            out.push_str("tcp_flags=");
            fmt_tcp_flags(out, v as u16, m as u16);
            out.push(',');
        }
        if out.len() > start && out.ends_with(',') {
            out.pop();
        }
    }

    /// Applies one `name=value` of match text. Returns `Ok(false)` if `name` is not a match
    /// field or shorthand.
    pub(crate) fn apply(
        &mut self,
        name: &str,
        value: &str,
        names: PortNames,
    ) -> Result<bool, ParseError> {
        if value.is_empty()
            && let Some((dl, proto)) = shorthand(name)
        {
            self.set(Slot::DlType, dl, 0xffff);
            if let Some(p) = proto {
                self.set(Slot::NwProto, p, 0xff);
            }
            return Ok(true);
        }
        let Some(f) = text_field(name) else {
            return Ok(false);
        };
        if value.is_empty() {
            return Err(ParseError::new(format!("field {name} missing value")));
        }
        match f.kind {
            Kind::Port => {
                let p = parse_port_named(value, names).ok_or_else(|| {
                    ParseError::new(format!("{value}: invalid or unknown port for {name}"))
                })?;
                self.set(f.slot, p.into(), u32::MAX.into());
            }
            Kind::Mac => {
                let (v, m) = parse_mac_masked(value)?;
                self.set(f.slot, v, m);
            }
            Kind::Ipv4 => {
                let (v, m) = parse_ipv4_masked(value)?;
                self.set(f.slot, v.into(), m.into());
            }
            Kind::Ipv6 => {
                let (v, m) = parse_ipv6_masked(value)?;
                self.set(f.slot, v, m);
            }
            Kind::TcpFlags => {
                let (v, m) = parse_tcp_flags(value)?;
                self.set(f.slot, v.into(), m.into());
            }
            Kind::Int {
                bytes,
                maskable,
                op,
            } => {
                let (v, m) = parse_int_masked(value, f.canonical, bytes, maskable)?;
                self.apply_int(&f, op, bytes, v, m, value)?;
            }
        }
        Ok(true)
    }

    fn apply_int(
        &mut self,
        f: &TextField,
        op: IntOp,
        bytes: u32,
        v: u128,
        m: u128,
        text: &str,
    ) -> Result<(), ParseError> {
        let (tci, tci_m) = self.v[Slot::VlanTci as usize];
        let (tos, tos_m) = self.v[Slot::NwTos as usize];
        match op {
            IntOp::Plain => {
                let full_text = if bytes >= 8 {
                    u64::MAX.into()
                } else {
                    (1u128 << (8 * bytes)) - 1
                };
                let m = if m == full_text { f.slot.full() } else { m };
                self.set(f.slot, v, m)
            }
            IntOp::Checked(bits) => {
                if v >> bits != 0 {
                    return Err(ParseError::new(format!(
                        "{text}: value too large for {bits}-bit field {}",
                        f.canonical
                    )));
                }
                self.set(f.slot, v, m);
            }
            IntOp::DlVlan => {
                if v == 0xffff {
                    self.set(Slot::VlanTci, 0, 0xffff);
                } else {
                    self.set(
                        Slot::VlanTci,
                        (tci & !0x1fff) | 0x1000 | (v & 0xfff),
                        tci_m | 0x1fff,
                    );
                }
            }
            IntOp::VlanVid => self.set(
                Slot::VlanTci,
                (tci & !0x1fff) | (v & m & 0x1fff),
                (tci_m & !0x1fff) | (m & 0x1fff),
            ),
            IntOp::VlanPcp => self.set(
                Slot::VlanTci,
                (tci & !0xe000) | ((v & 7) << 13) | 0x1000,
                tci_m | 0xf000,
            ),
            IntOp::Tci => self.set(Slot::VlanTci, v, m),
            IntOp::Tos => self.set(Slot::NwTos, (tos & 3) | (v & 0xfc), tos_m | 0xfc),
            IntOp::IpDscp => {
                if v > 63 {
                    return Err(ParseError::new(format!(
                        "{v} is not a valid value for field ip_dscp"
                    )));
                }
                self.set(Slot::NwTos, (tos & 3) | (v << 2), tos_m | 0xfc)
            }
            IntOp::Ecn => self.set(Slot::NwTos, (tos & 0xfc) | (v & 3), tos_m | 3),
        }
        Ok(())
    }
}

/// How an integer field's value lands in its slot.
#[derive(Clone, Copy, Debug)]
enum IntOp {
    /// Stored as is, truncated to the slot's width (as Open vSwitch does for `mpls_label`).
    Plain,
    /// Refused if wider than this many bits.
    Checked(u32),
    DlVlan,
    VlanVid,
    VlanPcp,
    Tci,
    Tos,
    IpDscp,
    Ecn,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Port,
    Mac,
    Ipv4,
    Ipv6,
    TcpFlags,
    /// An integer of at most `bytes` bytes.
    Int {
        bytes: u32,
        maskable: bool,
        op: IntOp,
    },
}

#[derive(Debug)]
struct TextField {
    slot: Slot,
    /// The name used in error messages.
    canonical: &'static str,
    kind: Kind,
}

const fn int(bytes: u32, maskable: bool, op: IntOp) -> Kind {
    Kind::Int {
        bytes,
        maskable,
        op,
    }
}

/// The match fields ovs-ofctl accepts in OpenFlow 1.3 (basic OXM fields plus ONF TCP
/// flags), by every name it accepts them under.
fn text_field(name: &str) -> Option<TextField> {
    use IntOp::*;
    use Slot::*;
    let (slot, canonical, kind) = match name {
        "in_port" => (InPort, "in_port", Kind::Port),
        "in_phy_port" => (InPhyPort, "in_phy_port", Kind::Port),
        "pbb_isid" => (PbbIsid, "pbb_isid", int(3, true, Plain)),
        "ipv6_exthdr" => (Ipv6Exthdr, "ipv6_exthdr", int(2, true, Checked(9))),
        "metadata" => (Metadata, "metadata", int(8, true, Plain)),
        "tun_id" | "tunnel_id" => (TunId, "tun_id", int(8, true, Plain)),
        "dl_src" | "eth_src" => (DlSrc, "eth_src", Kind::Mac),
        "dl_dst" | "eth_dst" => (DlDst, "eth_dst", Kind::Mac),
        "dl_type" | "eth_type" => (DlType, "eth_type", int(2, false, Plain)),
        "dl_vlan" => (VlanTci, "dl_vlan", int(2, false, DlVlan)),
        "vlan_vid" => (VlanTci, "vlan_vid", int(2, true, VlanVid)),
        "dl_vlan_pcp" | "vlan_pcp" => (VlanTci, "dl_vlan_pcp", int(1, false, VlanPcp)),
        "vlan_tci" => (VlanTci, "vlan_tci", int(2, true, Tci)),
        "mpls_label" => (MplsLabel, "mpls_label", int(4, false, Plain)),
        "mpls_tc" => (MplsTc, "mpls_tc", int(1, false, Plain)),
        "mpls_bos" => (MplsBos, "mpls_bos", int(1, false, Plain)),
        "nw_src" | "ip_src" => (NwSrc, "ip_src", Kind::Ipv4),
        "nw_dst" | "ip_dst" => (NwDst, "ip_dst", Kind::Ipv4),
        "arp_spa" => (NwSrc, "arp_spa", Kind::Ipv4),
        "arp_tpa" => (NwDst, "arp_tpa", Kind::Ipv4),
        "ipv6_src" => (Ipv6Src, "ipv6_src", Kind::Ipv6),
        "ipv6_dst" => (Ipv6Dst, "ipv6_dst", Kind::Ipv6),
        "ipv6_label" => (Ipv6Label, "ipv6_label", int(4, true, Checked(20))),
        "nw_proto" | "ip_proto" => (NwProto, "nw_proto", int(1, false, Plain)),
        "arp_op" => (NwProto, "arp_op", int(2, false, Plain)),
        "nw_tos" => (NwTos, "nw_tos", int(1, false, Tos)),
        "ip_dscp" => (NwTos, "ip_dscp", int(1, false, IpDscp)),
        "nw_ecn" | "ip_ecn" => (NwTos, "nw_ecn", int(1, false, Ecn)),
        "tp_src" | "tcp_src" => (TpSrc, "tcp_src", int(2, true, Plain)),
        "tp_dst" | "tcp_dst" => (TpDst, "tcp_dst", int(2, true, Plain)),
        "udp_src" => (TpSrc, "udp_src", int(2, true, Plain)),
        "udp_dst" => (TpDst, "udp_dst", int(2, true, Plain)),
        "sctp_src" => (TpSrc, "sctp_src", int(2, true, Plain)),
        "sctp_dst" => (TpDst, "sctp_dst", int(2, true, Plain)),
        "icmp_type" => (TpSrc, "icmp_type", int(1, false, Plain)),
        "icmp_code" => (TpDst, "icmp_code", int(1, false, Plain)),
        "icmpv6_type" => (TpSrc, "icmpv6_type", int(1, false, Plain)),
        "icmpv6_code" => (TpDst, "icmpv6_code", int(1, false, Plain)),
        "tcp_flags" => (TcpFlags, "tcp_flags", Kind::TcpFlags),
        "arp_sha" => (ArpSha, "arp_sha", Kind::Mac),
        "arp_tha" => (ArpTha, "arp_tha", Kind::Mac),
        "nd_sll" => (ArpSha, "nd_sll", Kind::Mac),
        "nd_tll" => (ArpTha, "nd_tll", Kind::Mac),
        "nd_target" => (NdTarget, "nd_target", Kind::Ipv6),
        _ => return None,
    };
    Some(TextField {
        slot,
        canonical,
        kind,
    })
}

/// Match keywords ovs-ofctl knows that need an Open vSwitch extension (NXM fields) rather
/// than OpenFlow 1.3; refused with a message that says so.
pub(crate) fn is_ovs_extension_field(name: &str) -> bool {
    const EXT: &[&str] = &[
        "nw_ttl",
        "nw_frag",
        "ip_frag",
        "ct_state",
        "ct_zone",
        "ct_mark",
        "ct_label",
        "pkt_mark",
        "skb_priority",
        "recirc_id",
        "dp_hash",
        "conj_id",
        "actset_output",
        "tun_src",
        "tun_dst",
        "tun_flags",
        "tun_ipv6_src",
        "tun_ipv6_dst",
        "tun_gbp_id",
        "tun_gbp_flags",
        "packet_type",
        "ct_nw_src",
        "ct_nw_dst",
        "ct_nw_proto",
        "ct_tp_src",
        "ct_tp_dst",
        "ct_ipv6_src",
        "ct_ipv6_dst",
        "nsh_spi",
        "nsh_si",
        "dl_vlan1",
        "vlan_tci1",
    ];
    EXT.contains(&name)
        || ["reg", "xreg", "xxreg", "tun_metadata"].iter().any(|p| {
            name.strip_prefix(p)
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
}

/// `ip`, `tcp6`, ... as (eth_type, ip_proto).
fn shorthand(name: &str) -> Option<(u128, Option<u128>)> {
    Some(match name {
        "ip" | "ipv4" => (ETH_IP, None),
        "ipv6" => (ETH_IPV6, None),
        "icmp" => (ETH_IP, Some(1)),
        "icmp6" => (ETH_IPV6, Some(58)),
        "tcp" => (ETH_IP, Some(6)),
        "tcp6" => (ETH_IPV6, Some(6)),
        "udp" => (ETH_IP, Some(17)),
        "udp6" => (ETH_IPV6, Some(17)),
        "sctp" => (ETH_IP, Some(132)),
        "sctp6" => (ETH_IPV6, Some(132)),
        "arp" => (ETH_ARP, None),
        "rarp" => (ETH_RARP, None),
        "mpls" => (ETH_MPLS, None),
        "mplsm" => (ETH_MPLSM, None),
        _ => return None,
    })
}

/// `value[/mask]` for an integer field of `bytes` bytes, as (value, mask) with the value
/// masked. Non-maskable fields accept only the all-ones mask.
fn parse_int_masked(
    s: &str,
    name: &str,
    bytes: u32,
    maskable: bool,
) -> Result<(u128, u128), ParseError> {
    let width_max = if bytes >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * bytes)) - 1
    };
    let num = |t: &str| -> Result<u64, ParseError> {
        let v = parse_c_uint(t)
            .ok_or_else(|| ParseError::new(format!("{s}: invalid value for field {name}")))?;
        if v > width_max {
            return Err(ParseError::new(format!(
                "{s}: value too large for {bytes}-byte field {name}"
            )));
        }
        Ok(v)
    };
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (num(v)?, num(m)?),
        None => (num(s)?, width_max),
    };
    if m != width_max && !maskable {
        return Err(ParseError::new(format!(
            "{s}: invalid mask for field {name}"
        )));
    }
    Ok(((v & m).into(), m.into()))
}

/// A port number or reserved port name, as ovs-ofctl reads one: names case-insensitively,
/// numbers in decimal; OpenFlow 1.0's 16-bit reserved numbers (0xff00 and up) map to their
/// 32-bit equivalents.
pub(crate) fn parse_port(s: &str) -> Option<u32> {
    use crate::consts::*;
    let named = match s.to_ascii_uppercase().as_str() {
        "IN_PORT" => Some(OFPP_IN_PORT),
        "TABLE" => Some(OFPP_TABLE),
        "NORMAL" => Some(OFPP_NORMAL),
        "FLOOD" => Some(OFPP_FLOOD),
        "ALL" => Some(OFPP_ALL),
        "CONTROLLER" => Some(OFPP_CONTROLLER),
        "LOCAL" => Some(OFPP_LOCAL),
        "ANY" | "NONE" => Some(OFPP_ANY),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    let n = super::lex::parse_decimal(s)?;
    let n = u32::try_from(n).ok()?;
    Some(if (0xff00..=0xffff).contains(&n) {
        0xffff_0000 | n
    } else {
        n
    })
}

/// [`parse_port`], then `names` for anything that is neither a number nor a reserved name.
pub(crate) fn parse_port_named(s: &str, names: PortNames) -> Option<u32> {
    parse_port(s).or_else(|| names(s))
}

/// A port as ovs-ofctl prints it: the reserved name, or the number.
pub(crate) fn port_text(p: u32) -> String {
    match reserved_port_name(p) {
        Some(n) => n.to_string(),
        None => p.to_string(),
    }
}

const TCP_FLAG_NAMES: [&str; 9] = ["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"];

fn tcp_flag_name(bit: u32) -> String {
    match TCP_FLAG_NAMES.get(bit as usize) {
        Some(n) => n.to_string(),
        None => format!("[{:x}]", 1u32 << bit),
    }
}

/// `+syn-ack` (masked), `syn|ack` (exact) or numeric `value[/mask]`.
fn parse_tcp_flags(s: &str) -> Result<(u16, u16), ParseError> {
    if s.starts_with(['+', '-']) {
        let (mut v, mut m) = (0u16, 0u16);
        let mut rest = s;
        while let Some(sign) = rest.chars().next() {
            rest = &rest[1..];
            let end = rest.find(['+', '-']).unwrap_or(rest.len());
            let name = &rest[..end];
            rest = &rest[end..];
            let bit = flag_bit(name)?;
            if m & bit != 0 {
                return Err(ParseError::new(format!(
                    "{name}: Each TCP flag can be specified only once"
                )));
            }
            m |= bit;
            if sign == '+' {
                v |= bit;
            }
        }
        return Ok((v, m));
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        let (v, m) = parse_int_masked(s, "tcp_flags", 2, true)?;
        return Ok(((v & 0xfff) as u16, (m & 0xfff) as u16));
    }
    let mut v = 0;
    for name in s.split('|') {
        v |= flag_bit(name)?;
    }
    Ok((v, 0xfff))
}

fn flag_bit(name: &str) -> Result<u16, ParseError> {
    if let Some(i) = TCP_FLAG_NAMES.iter().position(|n| *n == name) {
        return Ok(1 << i);
    }
    if let Some(h) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'))
        && let Ok(v) = u16::from_str_radix(h, 16)
        && v.is_power_of_two()
        && v <= 0x800
    {
        return Ok(v);
    }
    Err(ParseError::new(format!("{name}: unknown TCP flag(s)")))
}

fn fmt_tcp_flags(out: &mut String, v: u16, m: u16) {
    if m == 0xfff {
        if v == 0 {
            out.push('0');
            return;
        }
        let names: Vec<String> = (0..12)
            .filter(|b| v & (1 << b) != 0)
            .map(tcp_flag_name)
            .collect();
        out.push_str(&names.join("|"));
    } else {
        for b in (0..12).filter(|b| m & (1 << b) != 0) {
            out.push(if v & (1 << b) != 0 { '+' } else { '-' });
            out.push_str(&tcp_flag_name(b));
        }
    }
}

fn tcp_flags_tlv(v: u16, m: u16) -> RawOxm {
    let mut payload = ONF_EXPERIMENTER.to_be_bytes().to_vec();
    payload.extend_from_slice(&v.to_be_bytes());
    let hasmask = m != 0xfff;
    if hasmask {
        payload.extend_from_slice(&m.to_be_bytes());
    }
    RawOxm {
        class: OFPXMC_EXPERIMENTER,
        field: ONF_TCP_FLAGS,
        hasmask,
        payload,
    }
}

fn tcp_flags_of(r: &RawOxm) -> Option<(u16, u16)> {
    if r.class != OFPXMC_EXPERIMENTER
        || r.field != ONF_TCP_FLAGS
        || r.experimenter() != Some(ONF_EXPERIMENTER)
    {
        return None;
    }
    let p = &r.payload[4..];
    match (r.hasmask, p.len()) {
        (false, 2) => Some((u16::from_be_bytes([p[0], p[1]]) & 0xfff, 0xfff)),
        (true, 4) => {
            let m = u16::from_be_bytes([p[2], p[3]]) & 0xfff;
            Some((u16::from_be_bytes([p[0], p[1]]) & m, m))
        }
        _ => None,
    }
}

/// Text of a raw TLV this module cannot name (printed so that nothing is silently lost;
/// not parseable back).
pub(crate) fn raw_text(r: &RawOxm) -> String {
    if let Some((ns, ty)) = packet_type(r) {
        return format!("packet_type=({ns},{ty:#x})");
    }
    let hex: String = r.payload.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "oxm(class={:#06x},field={},hasmask={},payload=0x{hex})",
        r.class, r.field, r.hasmask
    )
}

/// Open vSwitch's PACKET_TYPE (OpenFlow 1.5's basic field 44, which Open vSwitch also reports
/// in OpenFlow 1.3): (namespace, type).
pub(crate) fn packet_type(r: &RawOxm) -> Option<(u16, u16)> {
    const PACKET_TYPE: u8 = 44;
    match (r.class, r.field, r.hasmask, r.payload.as_slice()) {
        (crate::oxm::OFPXMC_OPENFLOW_BASIC, PACKET_TYPE, false, &[a, b, c, d]) => {
            Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])))
        }
        _ => None,
    }
}
