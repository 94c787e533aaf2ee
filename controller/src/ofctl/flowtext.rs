//! The ovs-ofctl flow text syntax, as far as `fuxi-ofctl` needs it: parse a flow (match,
//! flow keywords, actions) into OpenFlow 1.3 values, and format flow stats, matches and
//! actions the way `ovs-ofctl -O OpenFlow13 dump-flows` prints them.
//!
//! This is a self-contained subset written while `fuxi_openflow::text` was being finished; it
//! covers every OpenFlow 1.3 basic OXM field and action. One deliberate difference from
//! ovs-ofctl: a field whose prerequisite is missing (`nw_src=10.0.0.1` without `ip`) is not
//! dropped with a warning but sent as written, so the switch answers with
//! OFPBMC_BAD_PREREQ — silently widening a match is worse than an error.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use fuxi_openflow::consts::*;
use fuxi_openflow::msg::{FlowMod, FlowModCommand, FlowStats, flow::flags};
use fuxi_openflow::oxm::{OFPVID_PRESENT, RawOxm};
use fuxi_openflow::{Action, FieldId, Instruction, Match, Oxm, OxmTlv};

/// A flow text that could not be parsed.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(s.into()))
}

/// Resolves a port name that is neither a number nor a reserved name (`p1` → 1).
pub type PortNames<'a> = &'a dyn Fn(&str) -> Option<u32>;

/// No port names known.
pub fn no_names(_: &str) -> Option<u32> {
    None
}

/// Open vSwitch's NXM_1 class, where registers live (`reg0` is field 0).
const NXM_1: u16 = 0x0001;
/// ONF's experimenter id; TCP flags are its OXM field 42 in OpenFlow 1.3 (EXT-109).
const ONF_EXPERIMENTER: u32 = 0x4f4e_4600;
const ONF_TCP_FLAGS: u8 = 42;
const TCP_FLAG_NAMES: &[&str] = &["fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"];

fn reg_index(k: &str) -> Option<u8> {
    k.strip_prefix("reg")?
        .parse::<u8>()
        .ok()
        .filter(|n| *n < 16)
}

/// `+syn-ack` (flags that must be set or clear) or `0x012[/0x0ff]`.
fn parse_tcp_flags(s: &str) -> Result<(u16, Option<u16>), ParseError> {
    if s.starts_with(['+', '-']) {
        let (mut v, mut m) = (0u16, 0u16);
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            let set = match c {
                '+' => true,
                '-' => false,
                _ => return err(format!("tcp_flags: {s}: expected + or - before each flag")),
            };
            rest = &rest[1..];
            let end = rest.find(['+', '-']).unwrap_or(rest.len());
            let name = &rest[..end];
            let Some(bit) = TCP_FLAG_NAMES.iter().position(|n| *n == name) else {
                return err(format!("tcp_flags: unknown flag {name}"));
            };
            m |= 1 << bit;
            if set {
                v |= 1 << bit;
            }
            rest = &rest[end..];
        }
        return Ok((v, Some(m)));
    }
    if s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        let mut v = 0u16;
        for name in s.split('|') {
            let Some(bit) = TCP_FLAG_NAMES.iter().position(|n| *n == name) else {
                return err(format!("tcp_flags: unknown flag {name}"));
            };
            v |= 1 << bit;
        }
        return Ok((v, None));
    }
    let (v, m) = parse_value("tcp_flags", Kind::Int(12), s)?;
    Ok((v as u16, m.map(|m| m as u16)))
}

fn tcp_flags_oxm(v: u16, m: Option<u16>) -> RawOxm {
    let mut payload = ONF_EXPERIMENTER.to_be_bytes().to_vec();
    payload.extend(v.to_be_bytes());
    if let Some(m) = m {
        payload.extend(m.to_be_bytes());
    }
    RawOxm {
        class: 0xffff,
        field: ONF_TCP_FLAGS,
        hasmask: m.is_some(),
        payload,
    }
}

/// The text of an extension field ovs-ofctl knows, or a generic `oxm(...)`.
fn raw_field_text(r: &RawOxm) -> String {
    let p = &r.payload;
    if r.class == NXM_1 && r.field < 16 && p.len() == if r.hasmask { 8 } else { 4 } {
        let v = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
        return match r.hasmask {
            true => {
                let m = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                format!("reg{}={v:#x}/{m:#x}", r.field)
            }
            false => format!("reg{}={v:#x}", r.field),
        };
    }
    if r.experimenter() == Some(ONF_EXPERIMENTER)
        && r.field == ONF_TCP_FLAGS
        && p.len() == if r.hasmask { 8 } else { 6 }
    {
        let v = u16::from_be_bytes([p[4], p[5]]);
        let m = if r.hasmask {
            u16::from_be_bytes([p[6], p[7]])
        } else {
            0x0fff
        };
        if m == 0x0fff && v & !0x1ff == 0 {
            let names: Vec<&str> = TCP_FLAG_NAMES
                .iter()
                .enumerate()
                .filter(|(bit, _)| v & (1 << bit) != 0)
                .map(|(_, n)| *n)
                .collect();
            return match names.is_empty() {
                true => "tcp_flags=0".into(),
                false => format!("tcp_flags={}", names.join("|")),
            };
        }
        if m & !0x1ff == 0 {
            let mut s = String::from("tcp_flags=");
            for (bit, name) in TCP_FLAG_NAMES.iter().enumerate() {
                if m & (1 << bit) != 0 {
                    s.push(if v & (1 << bit) != 0 { '+' } else { '-' });
                    s.push_str(name);
                }
            }
            return s;
        }
        return format!("tcp_flags={v:#05x}/{m:#05x}");
    }
    raw_text(r)
}

/// Everything a flow text says: the flow-mod fields and the statistics-request fields.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParsedFlow {
    /// `table=`, if given.
    pub table: Option<u8>,
    pub priority: u16,
    pub cookie: u64,
    /// `cookie=V/M`: the cookie mask (for mod/del/dump filters).
    pub cookie_mask: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub out_port: u32,
    pub out_group: u32,
    pub match_: Match,
    /// `None` when the text had no `actions=`.
    pub instructions: Option<Vec<Instruction>>,
}

impl ParsedFlow {
    /// The FLOW_MOD for `command`. Adds go to table 0 by default, deletes to every table.
    pub fn to_flow_mod(&self, command: FlowModCommand) -> FlowMod {
        let table_default = match command {
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => OFPTT_ALL,
            _ => 0,
        };
        let mut cookie = self.cookie;
        let mut cookie_mask = self.cookie_mask;
        if command == FlowModCommand::Add {
            cookie_mask = 0;
        } else if cookie_mask == 0 {
            cookie = 0;
        }
        FlowMod {
            cookie,
            cookie_mask,
            table_id: self.table.unwrap_or(table_default),
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            priority: self.priority,
            out_port: self.out_port,
            out_group: self.out_group,
            flags: self.flags,
            match_: self.match_.clone(),
            instructions: self.instructions.clone().unwrap_or_default(),
            ..FlowMod::new(command)
        }
    }
}

/// What a flow text is for: it decides which keywords are allowed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Usage {
    /// add-flow(s): `actions=` required.
    Add,
    /// mod-flows: `actions=` required.
    Modify,
    /// del-flows and dump-flows filters: no `actions=`, timeouts refused.
    Filter,
}

/// Splits `s` at top-level commas and whitespace (not inside parentheses).
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | ' ' | '\t' if depth == 0 => {
                if i > start {
                    out.push(&s[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// `123`, `0x7b`: an unsigned integer, at most `max`.
pub fn parse_uint(key: &str, s: &str, max: u128) -> Result<u128, ParseError> {
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u128::from_str_radix(h, 16).ok()
    } else {
        s.parse::<u128>().ok()
    };
    match v {
        Some(v) if v <= max => Ok(v),
        Some(_) => err(format!("{key}: value {s} is out of range (at most {max})")),
        None => err(format!("{key}: {s}: invalid numeric format")),
    }
}

fn parse_mac(s: &str) -> Option<u128> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut v = 0u128;
    for p in parts {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        v = (v << 8) | u128::from(u8::from_str_radix(p, 16).ok()?);
    }
    Some(v)
}

fn prefix_mask(n: u32, width: u32) -> u128 {
    let full = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if n == 0 { 0 } else { full & !(full >> n) }
}

/// A value with an optional `/mask` for a field of `kind`; the mask is `None` when exact.
fn parse_value(key: &str, kind: Kind, s: &str) -> Result<(u128, Option<u128>), ParseError> {
    let (v, m) = match s.split_once('/') {
        Some((v, m)) => (v, Some(m)),
        None => (s, None),
    };
    let bad = || ParseError(format!("{key}: {s}: invalid value"));
    let (value, mask) = match kind {
        Kind::Mac => (
            parse_mac(v).ok_or_else(bad)?,
            m.map(|m| parse_mac(m).ok_or_else(bad)).transpose()?,
        ),
        Kind::Ipv4 => {
            let a: Ipv4Addr = v.parse().map_err(|_| bad())?;
            let mask = match m {
                None => None,
                Some(m) => Some(match m.parse::<u32>() {
                    Ok(n) if n <= 32 => prefix_mask(n, 32),
                    _ => u128::from(u32::from(m.parse::<Ipv4Addr>().map_err(|_| bad())?)),
                }),
            };
            (u128::from(u32::from(a)), mask)
        }
        Kind::Ipv6 => {
            let a: Ipv6Addr = v.parse().map_err(|_| bad())?;
            let mask = match m {
                None => None,
                Some(m) => Some(match m.parse::<u32>() {
                    Ok(n) if n <= 128 => prefix_mask(n, 128),
                    _ => u128::from(m.parse::<Ipv6Addr>().map_err(|_| bad())?),
                }),
            };
            (u128::from(a), mask)
        }
        Kind::Int(bits) => {
            let max = if bits == 128 {
                u128::MAX
            } else {
                (1u128 << bits) - 1
            };
            (
                parse_uint(key, v, max)?,
                m.map(|m| parse_uint(key, m, max)).transpose()?,
            )
        }
    };
    let mask = match mask {
        // A full prefix is an exact match.
        Some(m) if m == full_mask_of(kind) => None,
        m => m,
    };
    Ok((value & mask.unwrap_or(u128::MAX), mask))
}

fn full_mask_of(kind: Kind) -> u128 {
    match kind {
        Kind::Mac => (1 << 48) - 1,
        Kind::Ipv4 => u128::from(u32::MAX),
        Kind::Ipv6 => u128::MAX,
        Kind::Int(128) => u128::MAX,
        Kind::Int(b) => (1u128 << b) - 1,
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Mac,
    Ipv4,
    Ipv6,
    Int(u32),
}

/// Parses a port: a number, a reserved name (`LOCAL`, `CONTROLLER`, ...) or a name the
/// switch knows.
pub fn parse_port(s: &str, names: PortNames) -> Result<u32, ParseError> {
    let reserved = match s.to_ascii_uppercase().as_str() {
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
    if let Some(p) = reserved {
        return Ok(p);
    }
    if let Ok(v) = parse_uint("port", s, u128::from(u32::MAX)) {
        let v = v as u32;
        // OpenFlow 1.0 numbers for reserved ports, as ovs-ofctl accepts them.
        if (0xfff8..=0xffff).contains(&v) {
            return Ok(v | 0xffff_0000);
        }
        return Ok(v);
    }
    names(s).map_or_else(|| err(format!("{s}: unknown port name")), Ok)
}

/// Formats a port as ovs-ofctl does (`LOCAL`, `CONTROLLER`, or the number).
pub fn port_text(p: u32) -> String {
    match reserved_port_name(p) {
        Some(n) => n.to_string(),
        None => p.to_string(),
    }
}

/// Match fields by text name: (names, field, kind).
const FIELDS: &[(&[&str], FieldId, Kind)] = &[
    (&["in_phy_port"], FieldId::InPhyPort, Kind::Int(32)),
    (&["metadata"], FieldId::Metadata, Kind::Int(64)),
    (&["dl_src", "eth_src"], FieldId::EthSrc, Kind::Mac),
    (&["dl_dst", "eth_dst"], FieldId::EthDst, Kind::Mac),
    (&["dl_type", "eth_type"], FieldId::EthType, Kind::Int(16)),
    (&["dl_vlan_pcp", "vlan_pcp"], FieldId::VlanPcp, Kind::Int(3)),
    (&["ip_dscp"], FieldId::IpDscp, Kind::Int(6)),
    (&["nw_ecn", "ip_ecn"], FieldId::IpEcn, Kind::Int(2)),
    (&["nw_proto", "ip_proto"], FieldId::IpProto, Kind::Int(8)),
    (&["nw_src", "ip_src"], FieldId::Ipv4Src, Kind::Ipv4),
    (&["nw_dst", "ip_dst"], FieldId::Ipv4Dst, Kind::Ipv4),
    (&["tcp_src"], FieldId::TcpSrc, Kind::Int(16)),
    (&["tcp_dst"], FieldId::TcpDst, Kind::Int(16)),
    (&["udp_src"], FieldId::UdpSrc, Kind::Int(16)),
    (&["udp_dst"], FieldId::UdpDst, Kind::Int(16)),
    (&["sctp_src"], FieldId::SctpSrc, Kind::Int(16)),
    (&["sctp_dst"], FieldId::SctpDst, Kind::Int(16)),
    (&["icmpv4_type"], FieldId::Icmpv4Type, Kind::Int(8)),
    (&["icmpv4_code"], FieldId::Icmpv4Code, Kind::Int(8)),
    (&["icmpv6_type"], FieldId::Icmpv6Type, Kind::Int(8)),
    (&["icmpv6_code"], FieldId::Icmpv6Code, Kind::Int(8)),
    (&["arp_op"], FieldId::ArpOp, Kind::Int(16)),
    (&["arp_spa"], FieldId::ArpSpa, Kind::Ipv4),
    (&["arp_tpa"], FieldId::ArpTpa, Kind::Ipv4),
    (&["arp_sha"], FieldId::ArpSha, Kind::Mac),
    (&["arp_tha"], FieldId::ArpTha, Kind::Mac),
    (&["ipv6_src"], FieldId::Ipv6Src, Kind::Ipv6),
    (&["ipv6_dst"], FieldId::Ipv6Dst, Kind::Ipv6),
    (&["ipv6_label"], FieldId::Ipv6Flabel, Kind::Int(20)),
    (&["nd_target"], FieldId::Ipv6NdTarget, Kind::Ipv6),
    (&["nd_sll"], FieldId::Ipv6NdSll, Kind::Mac),
    (&["nd_tll"], FieldId::Ipv6NdTll, Kind::Mac),
    (&["mpls_label"], FieldId::MplsLabel, Kind::Int(20)),
    (&["mpls_tc"], FieldId::MplsTc, Kind::Int(3)),
    (&["mpls_bos"], FieldId::MplsBos, Kind::Int(1)),
    (&["pbb_isid"], FieldId::PbbIsid, Kind::Int(24)),
    (&["tun_id", "tunnel_id"], FieldId::TunnelId, Kind::Int(64)),
    (&["ipv6_exthdr"], FieldId::Ipv6Exthdr, Kind::Int(9)),
];

/// Shorthands: (name, eth_type, ip_proto).
const SHORTHANDS: &[(&str, u16, Option<u8>)] = &[
    ("ip", 0x0800, None),
    ("ipv4", 0x0800, None),
    ("icmp", 0x0800, Some(1)),
    ("tcp", 0x0800, Some(6)),
    ("udp", 0x0800, Some(17)),
    ("sctp", 0x0800, Some(132)),
    ("ipv6", 0x86dd, None),
    ("icmp6", 0x86dd, Some(58)),
    ("tcp6", 0x86dd, Some(6)),
    ("udp6", 0x86dd, Some(17)),
    ("sctp6", 0x86dd, Some(132)),
    ("arp", 0x0806, None),
    ("rarp", 0x8035, None),
    ("mpls", 0x8847, None),
    ("mplsm", 0x8848, None),
];

fn field_kind(f: FieldId) -> Kind {
    match f {
        FieldId::InPort => Kind::Int(32),
        FieldId::VlanVid => Kind::Int(13),
        _ => FIELDS
            .iter()
            .find(|(_, id, _)| *id == f)
            .map_or(Kind::Int(f.bits()), |x| x.2),
    }
}

/// Match fields collected while parsing, before the names that depend on the protocol
/// (`tp_src`, `icmp_type`, ...) are resolved.
#[derive(Default)]
struct MatchBuilder {
    fields: Vec<Oxm>,
    /// Open vSwitch extension fields (registers, TCP flags), after the basic ones.
    raw: Vec<RawOxm>,
    /// (name, value text) of protocol-dependent names.
    deferred: Vec<(String, String)>,
}

impl MatchBuilder {
    fn set(&mut self, oxm: Oxm) {
        self.fields.retain(|o| o.field != oxm.field);
        self.fields.push(oxm);
    }

    fn get(&self, f: FieldId) -> Option<u128> {
        self.fields
            .iter()
            .find(|o| o.field == f && o.mask.is_none())
            .map(|o| o.value)
    }

    fn finish(mut self) -> Result<Match, ParseError> {
        let dl_type = self.get(FieldId::EthType);
        let proto = self.get(FieldId::IpProto);
        for (name, value) in std::mem::take(&mut self.deferred) {
            let (src, dst) = match (dl_type, proto) {
                (_, Some(6)) => (FieldId::TcpSrc, FieldId::TcpDst),
                (_, Some(17)) => (FieldId::UdpSrc, FieldId::UdpDst),
                (_, Some(132)) => (FieldId::SctpSrc, FieldId::SctpDst),
                (Some(0x0800), Some(1)) => (FieldId::Icmpv4Type, FieldId::Icmpv4Code),
                (Some(0x86dd), Some(58)) => (FieldId::Icmpv6Type, FieldId::Icmpv6Code),
                _ => {
                    return err(format!(
                        "{name}: needs a transport protocol (tcp, udp, sctp, icmp or icmp6) \
                         in the match"
                    ));
                }
            };
            let is_icmp = src == FieldId::Icmpv4Type || src == FieldId::Icmpv6Type;
            let f = match name.as_str() {
                "tp_src" if !is_icmp => src,
                "tp_dst" if !is_icmp => dst,
                "icmp_type" if is_icmp => src,
                "icmp_code" if is_icmp => dst,
                _ => return err(format!("{name}: not a field of this protocol")),
            };
            let (v, m) = parse_value(&name, field_kind(f), &value)?;
            self.set(Oxm {
                field: f,
                value: v,
                mask: m,
            });
        }
        // dl_vlan_pcp alone means "any VLAN with this PCP", as in ovs-ofctl.
        if self.fields.iter().any(|o| o.field == FieldId::VlanPcp)
            && !self.fields.iter().any(|o| o.field == FieldId::VlanVid)
        {
            let any = u128::from(OFPVID_PRESENT);
            self.fields.push(Oxm::masked(FieldId::VlanVid, any, any));
        }
        // Under arp and rarp, nw_src, nw_dst and nw_proto are the ARP fields.
        if matches!(dl_type, Some(0x0806 | 0x8035)) {
            for o in &mut self.fields {
                o.field = match o.field {
                    FieldId::Ipv4Src => FieldId::ArpSpa,
                    FieldId::Ipv4Dst => FieldId::ArpTpa,
                    FieldId::IpProto => FieldId::ArpOp,
                    f => f,
                };
            }
        }
        // Prerequisites before dependants: OXM field-number order does that.
        self.fields.sort_by_key(|o| o.field);
        let mut m = Match::all();
        for o in self.fields {
            m = m.with(o);
        }
        for r in self.raw {
            m = m.with(OxmTlv::Raw(r));
        }
        Ok(m)
    }
}

/// Parses one flow in ovs-ofctl syntax (`priority=10,ip,nw_dst=10.0.0.2,actions=output:2`).
pub fn parse_flow(text: &str, usage: Usage, names: PortNames) -> Result<ParsedFlow, ParseError> {
    let text = text.trim();
    let (head, actions) = match find_actions(text) {
        Some(i) => (
            &text[..i],
            Some(text[i..].split_once('=').map_or("", |x| x.1).trim()),
        ),
        None => (text, None),
    };
    let mut pf = ParsedFlow {
        table: None,
        priority: 0x8000,
        cookie: 0,
        cookie_mask: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        flags: 0,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        match_: Match::all(),
        instructions: None,
    };
    let mut mb = MatchBuilder::default();
    for item in split_top(head) {
        let (k, v) = match item.split_once('=').or_else(|| item.split_once(':')) {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (item.trim(), None),
        };
        let need = || v.ok_or_else(|| ParseError(format!("field {k} missing value")));
        match k {
            "table" => pf.table = Some(parse_uint(k, need()?, 255)? as u8),
            "priority" => pf.priority = parse_uint(k, need()?, 65535)? as u16,
            "cookie" => {
                let v = need()?;
                match v.split_once('/') {
                    Some(_) if usage == Usage::Add => {
                        return err("cannot set cookie mask when adding a flow");
                    }
                    Some((c, m)) => {
                        pf.cookie = parse_uint(k, c, u128::from(u64::MAX))? as u64;
                        pf.cookie_mask = parse_uint(k, m, u128::from(u64::MAX))? as u64;
                    }
                    None => {
                        pf.cookie = parse_uint(k, v, u128::from(u64::MAX))? as u64;
                        if usage == Usage::Filter {
                            pf.cookie_mask = u64::MAX;
                        }
                    }
                }
            }
            "idle_timeout" | "hard_timeout" if usage == Usage::Filter => {
                return err(format!("{k} is not valid in a flow filter"));
            }
            "idle_timeout" => pf.idle_timeout = parse_uint(k, need()?, 65535)? as u16,
            "hard_timeout" => pf.hard_timeout = parse_uint(k, need()?, 65535)? as u16,
            "send_flow_rem" => pf.flags |= flags::SEND_FLOW_REM,
            "check_overlap" => pf.flags |= flags::CHECK_OVERLAP,
            "reset_counts" => pf.flags |= flags::RESET_COUNTS,
            "no_packet_counts" => pf.flags |= flags::NO_PKT_COUNTS,
            "no_byte_counts" => pf.flags |= flags::NO_BYT_COUNTS,
            "out_port" | "out_group" if usage == Usage::Add => {
                return err(format!("{k} is not valid when adding a flow"));
            }
            // OpenFlow 1.4's eviction importance: not in 1.3, ignored as ovs-ofctl does.
            "importance" => {
                parse_uint(k, need()?, 65535)?;
            }
            "out_port" => pf.out_port = parse_port(need()?, names)?,
            "out_group" => pf.out_group = parse_uint(k, need()?, u128::from(u32::MAX))? as u32,
            "in_port" => mb.set(Oxm::exact(
                FieldId::InPort,
                u128::from(parse_port(need()?, names)?),
            )),
            "dl_vlan" => {
                let vid = parse_uint(k, need()?, 0xffff)? as u16;
                if vid == 0xffff {
                    mb.set(Oxm::exact(FieldId::VlanVid, 0));
                } else {
                    mb.set(Oxm::exact(
                        FieldId::VlanVid,
                        u128::from(OFPVID_PRESENT | (vid & 0xfff)),
                    ));
                }
            }
            "vlan_vid" => {
                let (v, m) = parse_value(k, Kind::Int(13), need()?)?;
                mb.set(Oxm {
                    field: FieldId::VlanVid,
                    value: v,
                    mask: m,
                });
            }
            "vlan_tci" => {
                // Only the forms OpenFlow 1.3 can say: no tag, any tag, a VID (+PCP).
                let (v, m) = parse_value(k, Kind::Int(16), need()?)?;
                let m = m.unwrap_or(0xffff);
                if m & 0x1fff == 0x1fff && v & 0x1fff == 0 {
                    mb.set(Oxm::exact(FieldId::VlanVid, 0));
                } else {
                    let vm = m & 0x1fff;
                    mb.set(Oxm {
                        field: FieldId::VlanVid,
                        value: v & vm,
                        mask: (vm != 0x1fff).then_some(vm),
                    });
                    if m & 0xe000 == 0xe000 {
                        mb.set(Oxm::exact(FieldId::VlanPcp, (v >> 13) & 7));
                    }
                }
            }
            "nw_tos" => {
                let tos = parse_uint(k, need()?, 255)?;
                mb.set(Oxm::exact(FieldId::IpDscp, tos >> 2));
            }
            "tcp_flags" => {
                let (v, m) = parse_tcp_flags(need()?)?;
                mb.raw.retain(|r| r.field != ONF_TCP_FLAGS);
                mb.raw.push(tcp_flags_oxm(v, m));
            }
            _ if reg_index(k).is_some() => {
                let n = reg_index(k).expect("checked");
                let (v, m) = parse_value(k, Kind::Int(32), need()?)?;
                mb.raw.retain(|r| !(r.class == NXM_1 && r.field == n));
                let mut payload = (v as u32).to_be_bytes().to_vec();
                if let Some(m) = m {
                    payload.extend((m as u32).to_be_bytes());
                }
                mb.raw.push(RawOxm {
                    class: NXM_1,
                    field: n,
                    hasmask: m.is_some(),
                    payload,
                });
            }
            "tp_src" | "tp_dst" | "icmp_type" | "icmp_code" => {
                mb.deferred.push((k.to_string(), need()?.to_string()));
            }
            _ => {
                if let Some((_, et, proto)) = SHORTHANDS.iter().find(|s| s.0 == k) {
                    if v.is_some() {
                        return err(format!("{k} does not take a value"));
                    }
                    mb.set(Oxm::exact(FieldId::EthType, u128::from(*et)));
                    if let Some(p) = proto {
                        mb.set(Oxm::exact(FieldId::IpProto, u128::from(*p)));
                    }
                } else if let Some((_, f, kind)) = FIELDS.iter().find(|x| x.0.contains(&k)) {
                    let (value, mask) = parse_value(k, *kind, need()?)?;
                    if mask.is_some() && !f.maskable() {
                        return err(format!("{k}: this field cannot be masked"));
                    }
                    mb.set(Oxm {
                        field: *f,
                        value,
                        mask,
                    });
                } else {
                    return err(format!("unknown keyword {k}"));
                }
            }
        }
    }
    if usage == Usage::Add && pf.table == Some(OFPTT_ALL) {
        pf.table = Some(0);
    }
    pf.match_ = mb.finish()?;
    let ctx = ActCtx::of(&pf.match_);
    match (usage, actions) {
        (Usage::Filter, Some(_)) => return err("actions are not valid in a flow filter"),
        (Usage::Add | Usage::Modify, None) => {
            return err("must specify an action");
        }
        (_, Some(a)) => pf.instructions = Some(parse_instructions_ctx(a, names, &ctx)?),
        (Usage::Filter, None) => {}
    }
    Ok(pf)
}

/// Where `actions=` starts at the top level, if anywhere.
fn find_actions(text: &str) -> Option<usize> {
    let mut depth = 0i32;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            'a' if depth == 0
                && text[i..].starts_with("actions")
                && (i == 0 || matches!(bytes[i - 1], b',' | b' ' | b'\t'))
                && text[i + 7..].trim_start().starts_with(['=', ':']) =>
            {
                return Some(i);
            }
            _ => {}
        }
    }
    None
}

/// Set-field names: (text name, field).
const SET_FIELDS: &[(&str, FieldId)] = &[
    ("in_port", FieldId::InPort),
    ("metadata", FieldId::Metadata),
    ("eth_src", FieldId::EthSrc),
    ("dl_src", FieldId::EthSrc),
    ("eth_dst", FieldId::EthDst),
    ("dl_dst", FieldId::EthDst),
    ("eth_type", FieldId::EthType),
    ("vlan_vid", FieldId::VlanVid),
    ("vlan_pcp", FieldId::VlanPcp),
    ("ip_dscp", FieldId::IpDscp),
    ("ip_ecn", FieldId::IpEcn),
    ("nw_ecn", FieldId::IpEcn),
    ("ip_proto", FieldId::IpProto),
    ("ip_src", FieldId::Ipv4Src),
    ("nw_src", FieldId::Ipv4Src),
    ("ip_dst", FieldId::Ipv4Dst),
    ("nw_dst", FieldId::Ipv4Dst),
    ("tcp_src", FieldId::TcpSrc),
    ("tcp_dst", FieldId::TcpDst),
    ("udp_src", FieldId::UdpSrc),
    ("udp_dst", FieldId::UdpDst),
    ("sctp_src", FieldId::SctpSrc),
    ("sctp_dst", FieldId::SctpDst),
    ("icmp_type", FieldId::Icmpv4Type),
    ("icmp_code", FieldId::Icmpv4Code),
    ("icmpv6_type", FieldId::Icmpv6Type),
    ("icmpv6_code", FieldId::Icmpv6Code),
    ("arp_op", FieldId::ArpOp),
    ("arp_spa", FieldId::ArpSpa),
    ("arp_tpa", FieldId::ArpTpa),
    ("arp_sha", FieldId::ArpSha),
    ("arp_tha", FieldId::ArpTha),
    ("ipv6_src", FieldId::Ipv6Src),
    ("ipv6_dst", FieldId::Ipv6Dst),
    ("ipv6_label", FieldId::Ipv6Flabel),
    ("nd_target", FieldId::Ipv6NdTarget),
    ("nd_sll", FieldId::Ipv6NdSll),
    ("nd_tll", FieldId::Ipv6NdTll),
    ("mpls_label", FieldId::MplsLabel),
    ("mpls_tc", FieldId::MplsTc),
    ("mpls_bos", FieldId::MplsBos),
    ("pbb_isid", FieldId::PbbIsid),
    ("tun_id", FieldId::TunnelId),
    ("tunnel_id", FieldId::TunnelId),
];

fn set_field_name(f: FieldId) -> &'static str {
    SET_FIELDS
        .iter()
        .find(|(_, id)| *id == f)
        .map_or("?", |x| x.0)
}

fn set_field(f: FieldId, v: u128) -> Action {
    Action::SetField(OxmTlv::Basic(Oxm::exact(f, v)))
}

/// What the match says that actions depend on: the transport protocol (for `tp_src` and
/// `mod_tp_dst`) and whether frames carry a VLAN (`mod_vlan_vid` pushes one otherwise).
#[derive(Clone, Copy, Default, Debug)]
pub struct ActCtx {
    pub proto: Option<u8>,
    pub vlan: bool,
}

impl ActCtx {
    /// The context of a flow's match.
    pub fn of(m: &Match) -> ActCtx {
        ActCtx {
            proto: m
                .get(FieldId::IpProto)
                .filter(|o| o.mask.is_none())
                .map(|o| o.value as u8),
            vlan: m
                .get(FieldId::VlanVid)
                .is_some_and(|o| o.value & u128::from(OFPVID_PRESENT) != 0),
        }
    }

    fn transport(&self, k: &str) -> Result<(FieldId, FieldId), ParseError> {
        match self.proto {
            Some(6) => Ok((FieldId::TcpSrc, FieldId::TcpDst)),
            Some(17) => Ok((FieldId::UdpSrc, FieldId::UdpDst)),
            Some(132) => Ok((FieldId::SctpSrc, FieldId::SctpDst)),
            _ => err(format!("{k}: needs tcp, udp or sctp in the match")),
        }
    }
}

/// Parses an `actions=` value into instructions (apply-actions, write_actions(...),
/// clear_actions, write_metadata, goto_table, meter), with no match context.
pub fn parse_instructions(s: &str, names: PortNames) -> Result<Vec<Instruction>, ParseError> {
    parse_instructions_ctx(s, names, &ActCtx::default())
}

/// [`parse_instructions`] for a flow whose match gives `ctx`.
pub fn parse_instructions_ctx(
    s: &str,
    names: PortNames,
    ctx: &ActCtx,
) -> Result<Vec<Instruction>, ParseError> {
    let mut ctx = *ctx;
    let mut saw_drop = false;
    let mut n_items = 0;
    let mut apply = Vec::new();
    let mut meter = None;
    let mut clear = false;
    let mut write = None;
    let mut metadata = None;
    let mut goto = None;
    let mut rank = 0;
    for item in split_top(s) {
        let (k, v) = split_action(item);
        let r = match k {
            "meter" => {
                meter = Some(parse_uint(k, need_arg(k, v)?, u128::from(u32::MAX))? as u32);
                1
            }
            "clear_actions" => {
                clear = true;
                3
            }
            "write_actions" => {
                let inner = v.unwrap_or("");
                let mut wctx = ctx;
                write = Some(parse_actions_ctx(inner, names, &mut wctx)?);
                4
            }
            "write_metadata" => {
                let v = need_arg(k, v)?;
                let (d, m) = match v.split_once('/') {
                    Some((d, m)) => (d, Some(m)),
                    None => (v, None),
                };
                let d = parse_uint(k, d, u128::from(u64::MAX))? as u64;
                let m = m
                    .map(|m| parse_uint(k, m, u128::from(u64::MAX)))
                    .transpose()?
                    .map_or(u64::MAX, |m| m as u64);
                metadata = Some((d, m));
                5
            }
            "goto_table" => {
                goto = Some(parse_uint(k, need_arg(k, v)?, 254)? as u8);
                6
            }
            "drop" => {
                saw_drop = true;
                2
            }
            _ => {
                apply.extend(parse_action(k, v, names, &mut ctx)?);
                2
            }
        };
        n_items += 1;
        if r < rank {
            return err(format!(
                "invalid instruction ordering: {k} must appear before the instructions before it"
            ));
        }
        rank = r;
    }
    if saw_drop && n_items > 1 {
        return err("drop must be the only action");
    }
    let mut out = Vec::new();
    if let Some(m) = meter {
        out.push(Instruction::Meter(m));
    }
    if !apply.is_empty() {
        out.push(Instruction::ApplyActions(apply));
    }
    if clear {
        out.push(Instruction::ClearActions);
    }
    if let Some(w) = write {
        out.push(Instruction::WriteActions(w));
    }
    if let Some((metadata, mask)) = metadata {
        out.push(Instruction::WriteMetadata { metadata, mask });
    }
    if let Some(t) = goto {
        out.push(Instruction::GotoTable(t));
    }
    Ok(out)
}

fn need_arg<'a>(k: &str, v: Option<&'a str>) -> Result<&'a str, ParseError> {
    v.ok_or_else(|| ParseError(format!("{k}: missing argument")))
}

/// `name:arg`, `name(arg)` or `name`.
fn split_action(item: &str) -> (&str, Option<&str>) {
    let item = item.trim();
    if let Some(i) = item.find('(')
        && let Some(inner) = item[i + 1..].strip_suffix(')')
    {
        return (&item[..i], Some(inner));
    }
    if let Some((k, v)) = item.split_once(':') {
        return (k, Some(v));
    }
    if let Some((k, v)) = item.split_once('=') {
        return (k, Some(v));
    }
    (item, None)
}

/// Parses a comma-separated list of actions (no instructions), with no match context.
pub fn parse_action_list(s: &str, names: PortNames) -> Result<Vec<Action>, ParseError> {
    parse_actions_ctx(s, names, &mut ActCtx::default())
}

fn parse_actions_ctx(
    s: &str,
    names: PortNames,
    ctx: &mut ActCtx,
) -> Result<Vec<Action>, ParseError> {
    let mut out = Vec::new();
    let items = split_top(s);
    for item in &items {
        let (k, v) = split_action(item);
        if k == "drop" {
            if items.len() > 1 {
                return err("drop must be the only action");
            }
            continue;
        }
        out.extend(parse_action(k, v, names, ctx)?);
    }
    Ok(out)
}

/// Actions of Open vSwitch's own (Nicira) extensions, which an OpenFlow 1.3 switch need not
/// understand and fuxi-ofctl does not encode.
const OVS_EXTENSIONS: &[&str] = &[
    "resubmit",
    "load",
    "move",
    "note",
    "ct",
    "ct_clear",
    "learn",
    "multipath",
    "bundle",
    "bundle_load",
    "exit",
    "conjunction",
    "sample",
    "fin_timeout",
    "clone",
    "nat",
    "output_trunc",
    "pop_queue",
    "enqueue",
    "push",
    "pop",
    "check_pkt_larger",
    "encap",
    "decap",
    "dec_nsh_ttl",
];

fn parse_action(
    k: &str,
    v: Option<&str>,
    names: PortNames,
    ctx: &mut ActCtx,
) -> Result<Vec<Action>, ParseError> {
    if OVS_EXTENSIONS.contains(&k) {
        return err(format!(
            "{k}: an Open vSwitch extension action, not OpenFlow 1.3 (not supported)"
        ));
    }
    let ctl = |port: u32| -> Action {
        if port == OFPP_CONTROLLER {
            Action::Output {
                port,
                max_len: OFPCML_NO_BUFFER,
            }
        } else {
            Action::output(port)
        }
    };
    let u = |max: u128| -> Result<u128, ParseError> { parse_uint(k, need_arg(k, v)?, max) };
    let mac = || -> Result<u128, ParseError> {
        parse_mac(need_arg(k, v)?).ok_or_else(|| ParseError(format!("{k}: invalid MAC")))
    };
    let ip = || -> Result<u128, ParseError> {
        need_arg(k, v)?
            .parse::<Ipv4Addr>()
            .map(|a| u128::from(u32::from(a)))
            .map_err(|_| ParseError(format!("{k}: invalid IP address")))
    };
    let upper = k.to_ascii_uppercase();
    Ok(vec![match k {
        "output" => {
            let v = need_arg(k, v)?;
            ctl(parse_port(v, names)?)
        }
        "controller" | "CONTROLLER" => {
            let max_len = match v {
                None => 0xffff,
                Some(v) => {
                    let v = v.strip_prefix("max_len=").unwrap_or(v);
                    parse_uint(k, v, 0xffff)? as u16
                }
            };
            Action::Output {
                port: OFPP_CONTROLLER,
                max_len,
            }
        }
        _ if v.is_none()
            && matches!(
                upper.as_str(),
                "IN_PORT" | "NORMAL" | "FLOOD" | "ALL" | "LOCAL" | "TABLE"
            ) =>
        {
            ctl(parse_port(k, names)?)
        }
        "enqueue" => return err("enqueue is not supported in OpenFlow 1.3; use set_queue"),
        "group" => Action::Group(u(u128::from(u32::MAX))? as u32),
        "push_vlan" => {
            ctx.vlan = true;
            Action::PushVlan(u(0xffff)? as u16)
        }
        "pop_vlan" | "strip_vlan" => {
            ctx.vlan = false;
            Action::PopVlan
        }
        "push_mpls" => Action::PushMpls(u(0xffff)? as u16),
        "pop_mpls" => Action::PopMpls(u(0xffff)? as u16),
        "set_mpls_ttl" => Action::SetMplsTtl(u(255)? as u8),
        "dec_mpls_ttl" => Action::DecMplsTtl,
        "set_queue" => Action::SetQueue(u(u128::from(u32::MAX))? as u32),
        "mod_nw_ttl" | "set_nw_ttl" => Action::SetNwTtl(u(255)? as u8),
        "dec_ttl" if v.is_some() => {
            return err("dec_ttl(ids...) is an Open vSwitch extension (not supported)");
        }
        "dec_ttl" => Action::DecNwTtl,
        "copy_ttl_out" => Action::CopyTtlOut,
        "copy_ttl_in" => Action::CopyTtlIn,
        "push_pbb" => Action::PushPbb(u(0xffff)? as u16),
        "pop_pbb" => Action::PopPbb,
        "mod_dl_src" => set_field(FieldId::EthSrc, mac()?),
        "mod_dl_dst" => set_field(FieldId::EthDst, mac()?),
        "mod_nw_src" => set_field(FieldId::Ipv4Src, ip()?),
        "mod_nw_dst" => set_field(FieldId::Ipv4Dst, ip()?),
        "mod_nw_tos" => set_field(FieldId::IpDscp, u(255)? >> 2),
        "mod_nw_ecn" => set_field(FieldId::IpEcn, u(3)?),
        "set_tunnel" | "set_tunnel64" => set_field(FieldId::TunnelId, u(u128::from(u64::MAX))?),
        "mod_tp_src" => set_field(ctx.transport(k)?.0, u(0xffff)?),
        "mod_tp_dst" => set_field(ctx.transport(k)?.1, u(0xffff)?),
        // On a frame without a VLAN, ovs-ofctl's mod_vlan_* push one first.
        "mod_vlan_vid" | "mod_vlan_pcp" => {
            let a = if k == "mod_vlan_vid" {
                set_field(FieldId::VlanVid, u(0xfff)? | u128::from(OFPVID_PRESENT))
            } else {
                set_field(FieldId::VlanPcp, u(7)?)
            };
            if ctx.vlan {
                a
            } else {
                ctx.vlan = true;
                return Ok(vec![Action::PushVlan(0x8100), a]);
            }
        }
        "set_field" | "load" if k == "set_field" => {
            let v = need_arg(k, v)?;
            let Some((value, field)) = v.split_once("->") else {
                return err(format!("{v}: set_field needs VALUE->FIELD"));
            };
            let field = field.trim();
            let f = match field {
                "tp_src" => ctx.transport(field)?.0,
                "tp_dst" => ctx.transport(field)?.1,
                // nw_tos: the DSCP bits of the TOS byte.
                "nw_tos" => {
                    let tos = parse_uint(field, value.trim(), 255)?;
                    return Ok(vec![set_field(FieldId::IpDscp, tos >> 2)]);
                }
                _ => match SET_FIELDS.iter().find(|(n, _)| *n == field) {
                    Some((_, f)) => *f,
                    None => return err(format!("{field}: unknown field for set_field")),
                },
            };
            let (val, mask) = match f {
                FieldId::InPort => (u128::from(parse_port(value, names)?), None),
                f => parse_value(field, field_kind(f), value.trim())?,
            };
            if mask.is_some() {
                return err(format!("{v}: masked set_field is not supported"));
            }
            set_field(f, val)
        }
        _ => {
            // A bare number is an output port, as in ovs-ofctl.
            if v.is_none() && parse_uint(k, k, u128::from(u32::MAX)).is_ok() {
                Action::output(parse_port(k, names)?)
            } else {
                return err(format!("unknown action {k}"));
            }
        }
    }])
}

// ---- formatting ----

fn fmt_mac(v: u128) -> String {
    let b = v.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

fn prefix_len(mask: u128, width: u32) -> Option<u32> {
    let n = mask.count_ones();
    (prefix_mask(n, width) == mask).then_some(n)
}

fn fmt_ipv4(v: u128, m: Option<u128>) -> String {
    let a = Ipv4Addr::from(v as u32);
    match m {
        None => a.to_string(),
        Some(m) => match prefix_len(m, 32) {
            Some(32) => a.to_string(),
            Some(n) => format!("{a}/{n}"),
            None => format!("{a}/{}", Ipv4Addr::from(m as u32)),
        },
    }
}

fn fmt_ipv6(v: u128, m: Option<u128>) -> String {
    let a = Ipv6Addr::from(v);
    match m {
        None => a.to_string(),
        Some(m) => match prefix_len(m, 128) {
            Some(128) => a.to_string(),
            Some(n) => format!("{a}/{n}"),
            None => format!("{a}/{}", Ipv6Addr::from(m)),
        },
    }
}

fn fmt_int(v: u128, m: Option<u128>, hex: bool) -> String {
    match m {
        Some(m) => format!("{v:#x}/{m:#x}"),
        None if hex => format!("{v:#x}"),
        None => v.to_string(),
    }
}

fn fmt_value(f: FieldId, v: u128, m: Option<u128>) -> String {
    match field_kind(f) {
        Kind::Mac => match m {
            Some(m) if m != (1 << 48) - 1 => format!("{}/{}", fmt_mac(v), fmt_mac(m)),
            _ => fmt_mac(v),
        },
        Kind::Ipv4 => fmt_ipv4(v, m),
        Kind::Ipv6 => fmt_ipv6(v, m),
        Kind::Int(_) => match f {
            FieldId::Metadata | FieldId::TunnelId | FieldId::PbbIsid | FieldId::Ipv6Exthdr => {
                fmt_int(v, m, true)
            }
            FieldId::Ipv6Flabel if m.is_none() => format!("{v:#07x}"),
            FieldId::EthType => format!("{v:#06x}"),
            FieldId::InPort | FieldId::InPhyPort => port_text(v as u32),
            _ => fmt_int(v, m, false),
        },
    }
}

/// Formats a match as ovs-ofctl prints it (field order included), with the priority in
/// front when it is not the default.
pub fn format_match(m: &Match, priority: Option<u16>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(p) = priority.filter(|p| *p != 0x8000) {
        parts.push(format!("priority={p}"));
    }
    let get = |f: FieldId| m.get(f).map(|o| (o.value, o.mask));
    let exact = |f: FieldId| m.get(f).filter(|o| o.mask.is_none()).map(|o| o.value);
    let dl_type = exact(FieldId::EthType);
    let proto = exact(FieldId::IpProto);
    let short = SHORTHANDS.iter().find(|(_, et, p)| {
        Some(u128::from(*et)) == dl_type && (p.is_none() || p.map(u128::from) == proto)
    });
    // The most specific shorthand (`tcp` over `ip`).
    let short = SHORTHANDS
        .iter()
        .find(|(_, et, p)| {
            Some(u128::from(*et)) == dl_type && p.is_some() && p.map(u128::from) == proto
        })
        .or(short);
    let proto_implied = short.is_some_and(|s| s.2.is_some());
    if let Some(s) = short {
        parts.push(s.0.to_string());
    }
    push_field(&mut parts, m, "tun_id", FieldId::TunnelId);
    push_field(&mut parts, m, "metadata", FieldId::Metadata);
    let raws: Vec<&RawOxm> = m
        .fields
        .iter()
        .filter_map(|t| match t {
            OxmTlv::Raw(r) => Some(r),
            OxmTlv::Basic(_) => None,
        })
        .collect();
    let is_reg = |r: &RawOxm| r.class == NXM_1 && r.field < 16;
    let is_flags = |r: &RawOxm| r.class == 0xffff && r.field == ONF_TCP_FLAGS;
    for r in raws.iter().filter(|r| is_reg(r)) {
        parts.push(raw_field_text(r));
    }
    push_field(&mut parts, m, "in_port", FieldId::InPort);
    push_field(&mut parts, m, "in_phy_port", FieldId::InPhyPort);
    // VLAN
    let pcp = exact(FieldId::VlanPcp);
    match get(FieldId::VlanVid) {
        Some((v, None)) if v & u128::from(OFPVID_PRESENT) != 0 => {
            parts.push(format!("dl_vlan={}", v & 0xfff));
        }
        Some((0, None)) => parts.push("vlan_tci=0x0000/0x1fff".into()),
        Some((v, Some(mk))) if v == 0x1000 && mk == 0x1000 && pcp.is_some() => {}
        Some((v, mk)) => parts.push(format!("vlan_tci={:#06x}/{:#06x}", v, mk.unwrap_or(0x1fff))),
        None => {}
    }
    if let Some(p) = pcp {
        parts.push(format!("dl_vlan_pcp={p}"));
    }
    push_field(&mut parts, m, "dl_src", FieldId::EthSrc);
    push_field(&mut parts, m, "dl_dst", FieldId::EthDst);
    if short.is_none() {
        push_field(&mut parts, m, "dl_type", FieldId::EthType);
    }
    push_field(&mut parts, m, "mpls_label", FieldId::MplsLabel);
    push_field(&mut parts, m, "mpls_tc", FieldId::MplsTc);
    push_field(&mut parts, m, "mpls_bos", FieldId::MplsBos);
    push_field(&mut parts, m, "pbb_isid", FieldId::PbbIsid);
    push_field(&mut parts, m, "nw_src", FieldId::Ipv4Src);
    push_field(&mut parts, m, "nw_dst", FieldId::Ipv4Dst);
    push_field(&mut parts, m, "ipv6_src", FieldId::Ipv6Src);
    push_field(&mut parts, m, "ipv6_dst", FieldId::Ipv6Dst);
    push_field(&mut parts, m, "ipv6_label", FieldId::Ipv6Flabel);
    push_field(&mut parts, m, "ipv6_exthdr", FieldId::Ipv6Exthdr);
    push_field(&mut parts, m, "arp_spa", FieldId::ArpSpa);
    push_field(&mut parts, m, "arp_tpa", FieldId::ArpTpa);
    if !proto_implied {
        push_field(&mut parts, m, "nw_proto", FieldId::IpProto);
    }
    if let Some(d) = exact(FieldId::IpDscp) {
        parts.push(format!("nw_tos={}", d << 2));
    }
    push_field(&mut parts, m, "nw_ecn", FieldId::IpEcn);
    push_field(&mut parts, m, "arp_op", FieldId::ArpOp);
    push_field(&mut parts, m, "arp_sha", FieldId::ArpSha);
    push_field(&mut parts, m, "arp_tha", FieldId::ArpTha);
    for f in [
        FieldId::TcpSrc,
        FieldId::UdpSrc,
        FieldId::SctpSrc,
        FieldId::TcpDst,
        FieldId::UdpDst,
        FieldId::SctpDst,
    ] {
        let name = if matches!(f, FieldId::TcpSrc | FieldId::UdpSrc | FieldId::SctpSrc) {
            "tp_src"
        } else {
            "tp_dst"
        };
        // Under the matching shorthand the generic name; otherwise the specific one.
        let name = if proto_implied {
            name
        } else {
            set_field_name(f)
        };
        push_field(&mut parts, m, name, f);
    }
    for r in raws.iter().filter(|r| is_flags(r)) {
        parts.push(raw_field_text(r));
    }
    push_field(&mut parts, m, "icmp_type", FieldId::Icmpv4Type);
    push_field(&mut parts, m, "icmp_code", FieldId::Icmpv4Code);
    push_field(&mut parts, m, "icmp_type", FieldId::Icmpv6Type);
    push_field(&mut parts, m, "icmp_code", FieldId::Icmpv6Code);
    push_field(&mut parts, m, "nd_target", FieldId::Ipv6NdTarget);
    push_field(&mut parts, m, "nd_sll", FieldId::Ipv6NdSll);
    push_field(&mut parts, m, "nd_tll", FieldId::Ipv6NdTll);
    for r in raws.iter().filter(|r| !is_reg(r) && !is_flags(r)) {
        parts.push(raw_field_text(r));
    }
    parts.join(",")
}

fn push_field(parts: &mut Vec<String>, m: &Match, name: &str, f: FieldId) {
    if let Some(o) = m.get(f) {
        parts.push(format!("{name}={}", fmt_value(f, o.value, o.mask)));
    }
}

fn raw_text(r: &RawOxm) -> String {
    let mut s = format!("oxm(class={:#06x},field={}", r.class, r.field);
    s.push_str(",value=0x");
    for b in &r.payload {
        let _ = write!(s, "{b:02x}");
    }
    s.push(')');
    s
}

/// Formats one action as ovs-ofctl prints it.
pub fn format_action(a: &Action) -> String {
    match a {
        Action::Output { port, max_len } if *port == OFPP_CONTROLLER => {
            format!("CONTROLLER:{max_len}")
        }
        Action::Output { port, .. } => match reserved_port_name(*port) {
            Some(n) => n.to_string(),
            None => format!("output:{port}"),
        },
        Action::CopyTtlOut => "copy_ttl_out".into(),
        Action::CopyTtlIn => "copy_ttl_in".into(),
        Action::SetMplsTtl(t) => format!("set_mpls_ttl({t})"),
        Action::DecMplsTtl => "dec_mpls_ttl".into(),
        Action::PushVlan(e) => format!("push_vlan:{e:#06x}"),
        Action::PopVlan => "pop_vlan".into(),
        Action::PushMpls(e) => format!("push_mpls:{e:#06x}"),
        Action::PopMpls(e) => format!("pop_mpls:{e:#06x}"),
        Action::SetQueue(q) => format!("set_queue:{q}"),
        Action::Group(g) => format!("group:{g}"),
        Action::SetNwTtl(t) => format!("mod_nw_ttl:{t}"),
        Action::DecNwTtl => "dec_ttl".into(),
        Action::SetField(OxmTlv::Basic(o)) => {
            let v = match o.field {
                FieldId::Metadata | FieldId::TunnelId | FieldId::PbbIsid => {
                    format!("{:#x}", o.value)
                }
                FieldId::Ipv6Flabel => format!("{:#07x}", o.value),
                FieldId::EthType => format!("{:#06x}", o.value),
                f => fmt_value(f, o.value, None),
            };
            format!("set_field:{v}->{}", set_field_name(o.field))
        }
        Action::SetField(OxmTlv::Raw(r)) => format!("set_field:{}", raw_text(r)),
        Action::PushPbb(e) => format!("push_pbb:{e:#06x}"),
        Action::PopPbb => "pop_pbb".into(),
        Action::Experimenter { experimenter, data } => {
            let mut s = format!("experimenter({experimenter:#x},0x");
            for b in data {
                let _ = write!(s, "{b:02x}");
            }
            s.push(')');
            s
        }
    }
}

/// Formats an action list (`drop` when empty).
pub fn format_actions(actions: &[Action]) -> String {
    if actions.is_empty() {
        return "drop".into();
    }
    actions
        .iter()
        .map(format_action)
        .collect::<Vec<_>>()
        .join(",")
}

/// Formats instructions as the `actions=` value ovs-ofctl prints.
pub fn format_instructions(insts: &[Instruction]) -> String {
    let mut parts = Vec::new();
    for i in insts {
        match i {
            Instruction::Meter(m) => parts.push(format!("meter:{m}")),
            Instruction::ApplyActions(a) => {
                parts.extend(a.iter().map(format_action));
            }
            Instruction::ClearActions => parts.push("clear_actions".into()),
            Instruction::WriteActions(a) => {
                let inner: Vec<String> = a.iter().map(format_action).collect();
                parts.push(format!("write_actions({})", inner.join(",")));
            }
            Instruction::WriteMetadata { metadata, mask } => {
                if *mask == u64::MAX {
                    parts.push(format!("write_metadata:{metadata:#x}"));
                } else {
                    parts.push(format!("write_metadata:{metadata:#x}/{mask:#x}"));
                }
            }
            Instruction::GotoTable(t) => parts.push(format!("goto_table:{t}")),
            Instruction::Experimenter { experimenter, .. } => {
                parts.push(format!("experimenter_instruction({experimenter:#x})"));
            }
        }
    }
    if parts.is_empty() {
        "drop".into()
    } else {
        parts.join(",")
    }
}

fn fmt_duration(sec: u32, nsec: u32) -> String {
    format!("{}.{:03}s", sec, nsec / 1_000_000)
}

/// The flags and timeouts part of a flow line (`idle_timeout=30, send_flow_rem `...).
fn fmt_flow_opts(idle: u16, hard: u16, fl: u16) -> String {
    let mut s = String::new();
    if idle != 0 {
        let _ = write!(s, "idle_timeout={idle}, ");
    }
    if hard != 0 {
        let _ = write!(s, "hard_timeout={hard}, ");
    }
    for (bit, name) in [
        (flags::SEND_FLOW_REM, "send_flow_rem"),
        (flags::CHECK_OVERLAP, "check_overlap"),
        (flags::RESET_COUNTS, "reset_counts"),
        (flags::NO_PKT_COUNTS, "no_packet_counts"),
        (flags::NO_BYT_COUNTS, "no_byte_counts"),
    ] {
        if fl & bit != 0 {
            let _ = write!(s, "{name} ");
        }
    }
    s
}

/// One `dump-flows` line, without the leading space.
pub fn format_flow_stats(fs: &FlowStats, stats: bool) -> String {
    let mut s = String::new();
    if stats {
        let _ = write!(
            s,
            "cookie={:#x}, duration={}, table={}, n_packets={}, n_bytes={}, ",
            fs.cookie,
            fmt_duration(fs.duration_sec, fs.duration_nsec),
            fs.table_id,
            fs.packet_count,
            fs.byte_count
        );
    } else {
        if fs.cookie != 0 {
            let _ = write!(s, "cookie={:#x}, ", fs.cookie);
        }
        if fs.table_id != 0 {
            let _ = write!(s, "table={}, ", fs.table_id);
        }
    }
    s.push_str(&fmt_flow_opts(fs.idle_timeout, fs.hard_timeout, fs.flags));
    let m = format_match(&fs.match_, Some(fs.priority));
    s.push_str(&m);
    if !m.is_empty() {
        s.push(' ');
    }
    s.push_str("actions=");
    s.push_str(&format_instructions(&fs.instructions));
    s
}

/// A flow in the syntax `add-flows` reads back (used by diff-flows and replace-flows).
pub fn format_flow_for_file(
    table: u8,
    cookie: u64,
    priority: u16,
    idle: u16,
    hard: u16,
    m: &Match,
    insts: &[Instruction],
) -> String {
    let mut parts = Vec::new();
    if table != 0 {
        parts.push(format!("table={table}"));
    }
    let mm = format_match(m, Some(priority));
    if !mm.is_empty() {
        parts.push(mm);
    }
    if cookie != 0 {
        parts.push(format!("cookie={cookie:#x}"));
    }
    if idle != 0 {
        parts.push(format!("idle_timeout={idle}"));
    }
    if hard != 0 {
        parts.push(format!("hard_timeout={hard}"));
    }
    format!("{} actions={}", parts.join(" "), format_instructions(insts))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(text: &str, expect: &str) {
        let pf = parse_flow(text, Usage::Add, &no_names).unwrap();
        let fs = FlowStats {
            table_id: pf.table.unwrap_or(0),
            duration_sec: 0,
            duration_nsec: 0,
            priority: pf.priority,
            idle_timeout: pf.idle_timeout,
            hard_timeout: pf.hard_timeout,
            flags: pf.flags,
            cookie: pf.cookie,
            packet_count: 0,
            byte_count: 0,
            match_: pf.match_,
            instructions: pf.instructions.unwrap(),
        };
        assert_eq!(format_flow_stats(&fs, false), expect);
    }

    #[test]
    fn flows_format_as_ovs_prints_them() {
        roundtrip("arp,actions=NORMAL", "arp actions=NORMAL");
        roundtrip(
            "priority=100,in_port=1,dl_vlan=10,actions=pop_vlan,output:2",
            "priority=100,in_port=1,dl_vlan=10 actions=pop_vlan,output:2",
        );
        roundtrip(
            "table=0,priority=200,cookie=0x5,ip,nw_src=10.0.0.0/24,tcp,tp_dst=80,idle_timeout=30,\
             actions=mod_nw_dst:1.2.3.4,output:2",
            "cookie=0x5, idle_timeout=30, priority=200,tcp,nw_src=10.0.0.0/24,tp_dst=80 \
             actions=set_field:1.2.3.4->ip_dst,output:2",
        );
        roundtrip(
            "in_port=2,actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:1",
            "in_port=2 actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:1",
        );
        roundtrip(
            "priority=5,udp,actions=meter:1,group:1",
            "priority=5,udp actions=meter:1,group:1",
        );
        roundtrip(
            "metadata=0x5/0xff,tun_id=0x7,in_port=1,tcp,dl_src=02:00:00:00:00:01,\
             dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,dl_vlan=5,dl_vlan_pcp=3,nw_tos=16,\
             nw_ecn=1,nw_src=1.1.1.0/24,nw_dst=2.2.2.2,tp_src=1000,tp_dst=0x10/0xfff0,\
             actions=output:1",
            "tcp,tun_id=0x7,metadata=0x5/0xff,in_port=1,dl_vlan=5,dl_vlan_pcp=3,\
             dl_src=02:00:00:00:00:01,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,\
             nw_src=1.1.1.0/24,nw_dst=2.2.2.2,nw_tos=16,nw_ecn=1,tp_src=1000,\
             tp_dst=0x10/0xfff0 actions=output:1",
        );
        roundtrip(
            "arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_sha=02:00:00:00:00:01,\
             arp_tha=00:00:00:00:00:00,actions=drop",
            "arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_op=1,arp_sha=02:00:00:00:00:01,\
             arp_tha=00:00:00:00:00:00 actions=drop",
        );
        roundtrip(
            "priority=6,actions=write_actions(output:1,group:1),goto_table:3",
            "priority=6 actions=write_actions(output:1,group:1),goto_table:3",
        );
        roundtrip(
            "priority=1,ip,actions=mod_dl_src:02:00:00:00:00:09,mod_nw_tos:8,dec_ttl,\
             mod_nw_ttl:9,set_queue:3,output:IN_PORT",
            "priority=1,ip actions=set_field:02:00:00:00:00:09->eth_src,set_field:2->ip_dscp,\
             dec_ttl,mod_nw_ttl:9,set_queue:3,IN_PORT",
        );
        roundtrip(
            "dl_vlan=0xffff,actions=drop",
            "vlan_tci=0x0000/0x1fff actions=drop",
        );
        roundtrip(
            "ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,ipv6_label=5,nw_proto=17,actions=drop",
            "udp6,ipv6_src=2001:db8::/32,ipv6_dst=::1,ipv6_label=0x00005 actions=drop",
        );
    }

    #[test]
    fn bad_text_is_refused() {
        for t in [
            "foo=1,actions=drop",
            "in_port=1",
            "tp_dst=80,actions=drop",
            "nw_src=1.2.3.400,actions=drop",
            "actions=frobnicate",
            "priority=70000,actions=drop",
        ] {
            assert!(parse_flow(t, Usage::Add, &no_names).is_err(), "{t}");
        }
    }
}
