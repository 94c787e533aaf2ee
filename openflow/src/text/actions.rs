//! Action and instruction text: `actions=` lists as ovs-ofctl parses them for OpenFlow 1.3
//! (bare ports, `output:`, `controller`, `mod_*`, `set_field:V->F`, `push_*`/`pop_*`,
//! `meter`, `write_actions(...)`, `goto_table`, ...), and the way `ovs-ofctl dump-flows`
//! prints them back.
//!
//! ovs-ofctl's `mod_*` forms become set-field actions (that is how it encodes them for
//! OpenFlow 1.3); `mod_vlan_vid`/`mod_vlan_pcp` push a VLAN tag first when the match says the
//! packet has none. Set-field actions are checked against the match (the field's
//! prerequisites, as changed by earlier push/pop actions), and instructions must come in the
//! order OpenFlow 1.1+ executes them. Open vSwitch extension actions (`resubmit`, `ct`,
//! `load`, `note`, ...) are refused: Fuxi speaks OpenFlow 1.3 only.

use std::fmt::Write as _;

use super::ParseError;
use super::PortNames;
use super::lex::{
    hash_hex, parse_c_uint, parse_ipv4_masked, parse_ipv6_masked, parse_mac_masked, split_kv,
};
use super::matches::{
    ETH_IP, ETH_IPV6, ETH_MPLS, ETH_MPLSM, Slot, Slots, parse_port, parse_port_named, port_text,
};
use crate::action::Action;
use crate::consts::{OFPCML_NO_BUFFER, OFPP_ANY, OFPP_CONTROLLER, OFPP_MAX, reserved_port_name};
use crate::instruction::Instruction;
use crate::oxm::{FieldId, MacAddr, Oxm, OxmTlv};

/// What the parser knows about the packet when it reaches an action: the match, updated by
/// the actions before it. `None` when parsing without a flow (group buckets, packet-out),
/// where nothing is checked and VLAN-setting actions always push a tag.
#[derive(Clone)]
pub(crate) struct FlowState<'n> {
    slots: Option<Slots>,
    /// Port names the text may use besides numbers and reserved names.
    names: PortNames<'n>,
    /// Parsing a `write_actions` set: only set-field prerequisites are checked.
    action_set: bool,
    /// VLAN headers the packet has at this point (Open vSwitch handles at most two).
    vlans: u8,
}

impl<'n> FlowState<'n> {
    pub(crate) fn new(slots: Option<&Slots>, names: PortNames<'n>) -> FlowState<'n> {
        FlowState {
            slots: slots.cloned(),
            names,
            action_set: false,
            vlans: u8::from(slots.is_some_and(Slots::has_vlan)),
        }
    }

    fn has_vlan(&self) -> bool {
        self.slots.as_ref().is_some_and(Slots::has_vlan)
    }

    fn check(&self, ok: impl FnOnce(&Slots) -> bool, what: &str) -> Result<(), ParseError> {
        match &self.slots {
            Some(s) if !ok(s) => Err(ParseError::new(format!(
                "actions are invalid with specified match (OFPBAC_MATCH_INCONSISTENT): {what}"
            ))),
            _ => Ok(()),
        }
    }

    /// Updates the state for an action already accepted.
    fn after(&mut self, a: &Action) {
        if self.action_set {
            return;
        }
        match a {
            Action::PushVlan(_) => self.vlans += 1,
            Action::PopVlan => self.vlans = self.vlans.saturating_sub(1),
            _ => {}
        }
        let vlans = self.vlans;
        let Some(s) = &mut self.slots else { return };
        match a {
            Action::PushVlan(_) => s.set(Slot::VlanTci, 0x1000, 0x1000),
            Action::PopVlan if vlans == 0 => s.set(Slot::VlanTci, 0, 0),
            Action::PushMpls(e) | Action::PopMpls(e) => {
                s.set(Slot::DlType, (*e).into(), 0xffff);
                s.set(Slot::NwProto, 0, 0);
            }
            _ => {}
        }
    }

    fn check_action(&self, a: &Action) -> Result<(), ParseError> {
        if self.action_set && !matches!(a, Action::SetField(_)) {
            return Ok(());
        }
        match a {
            Action::SetField(OxmTlv::Basic(o)) => self.check(
                |s| settable(o.field, s),
                &format!(
                    "set_field {} lacks correct prerequisites",
                    set_field_name(o.field)
                ),
            ),
            Action::PopVlan => self.check(Slots::has_vlan, "pop_vlan without a VLAN tag"),
            Action::PushVlan(_) if self.vlans >= 2 && self.slots.is_some() => Err(ParseError::new(
                "actions are invalid with specified match (OFPBAC_BAD_TAG)",
            )),
            Action::PopMpls(_) | Action::SetMplsTtl(_) | Action::DecMplsTtl => self.check(
                |s| matches!(s.dl_type(), Some(ETH_MPLS | ETH_MPLSM)),
                "MPLS action on a packet that is not MPLS",
            ),
            Action::SetNwTtl(_) | Action::DecNwTtl => {
                self.check(Slots::is_ip, "IP TTL action on a packet that is not IP")
            }
            _ => Ok(()),
        }
    }
}

/// Whether a set-field of `f` is consistent with the packet described by `s`.
fn settable(f: FieldId, s: &Slots) -> bool {
    use FieldId as F;
    let dl = s.dl_type();
    let proto = s.nw_proto();
    let ip4 = dl == Some(ETH_IP);
    let ip6 = dl == Some(ETH_IPV6);
    match f {
        F::InPort | F::InPhyPort | F::Metadata | F::EthDst | F::EthSrc | F::EthType => true,
        F::TunnelId => true,
        F::VlanVid | F::VlanPcp => s.has_vlan(),
        F::IpDscp | F::IpEcn | F::IpProto => ip4 || ip6,
        F::Ipv4Src | F::Ipv4Dst => ip4,
        F::TcpSrc | F::TcpDst => (ip4 || ip6) && proto == Some(6),
        F::UdpSrc | F::UdpDst => (ip4 || ip6) && proto == Some(17),
        F::SctpSrc | F::SctpDst => (ip4 || ip6) && proto == Some(132),
        F::Icmpv4Type | F::Icmpv4Code => ip4 && proto == Some(1),
        F::ArpOp | F::ArpSpa | F::ArpTpa | F::ArpSha | F::ArpTha => dl == Some(0x0806),
        F::Ipv6Src | F::Ipv6Dst | F::Ipv6Flabel | F::Ipv6Exthdr => ip6,
        F::Icmpv6Type | F::Icmpv6Code => ip6 && proto == Some(58),
        F::Ipv6NdTarget => {
            ip6 && proto == Some(58) && matches!(s.exact(Slot::TpSrc), Some(135 | 136))
        }
        F::Ipv6NdSll => ip6 && proto == Some(58) && s.exact(Slot::TpSrc) == Some(135),
        F::Ipv6NdTll => ip6 && proto == Some(58) && s.exact(Slot::TpSrc) == Some(136),
        F::MplsLabel | F::MplsTc | F::MplsBos => matches!(dl, Some(ETH_MPLS | ETH_MPLSM)),
        F::PbbIsid => dl == Some(0x88e7),
    }
}

/// One parsed item of an `actions=` list, before grouping into instructions.
enum Item {
    Apply(Vec<Action>),
    Meter(u32),
    Clear,
    Write(Vec<Action>),
    Metadata(u64, u64),
    Goto(u8),
}

impl Item {
    /// Position in OpenFlow 1.1+'s execution order.
    fn rank(&self) -> u8 {
        match self {
            Item::Meter(_) => 0,
            Item::Apply(_) => 1,
            Item::Clear => 2,
            Item::Write(_) => 3,
            Item::Metadata(..) => 4,
            Item::Goto(_) => 5,
        }
    }
}

const RANK_NAMES: [&str; 6] = [
    "meter",
    "apply_actions",
    "clear_actions",
    "write_actions",
    "write_metadata",
    "goto_table",
];

/// Open vSwitch extension actions, refused by name.
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
    "check_pkt_larger",
    "nat",
    "output_trunc",
    "pop_queue",
    "enqueue",
    "set_field_masked",
    "push",
    "pop",
    "controller2",
    "stack_push",
    "stack_pop",
    "dec_nsh_ttl",
    "encap",
    "decap",
    "debug_recirc",
    "debug_slow",
    "delete_field",
    "set_tunnel_masked",
    "write_pkt_mark",
    "unroll_xlate",
    "mod_nw_ttl_masked",
    "meter_ext",
    "group_ext",
    "set_mpls_ttl_ext",
];

/// Parses an `actions=` value into OpenFlow 1.3 instructions, in execution order.
pub(crate) fn parse_instructions(
    s: &str,
    slots: Option<&Slots>,
    names: PortNames,
) -> Result<Vec<Instruction>, ParseError> {
    let mut state = FlowState::new(slots, names);
    let items = parse_items(s, &mut state, true)?;
    let mut out: Vec<Instruction> = Vec::new();
    let mut last_rank = 0u8;
    let mut seen = [false; 6];
    let mut apply: Vec<Action> = Vec::new();
    let mut write: Option<Vec<Action>> = None;
    for item in items {
        let rank = item.rank();
        if rank < last_rank {
            return Err(ParseError::new(format!(
                "invalid instruction ordering: {} must appear before {}, for OpenFlow 1.1+ \
                 compatibility",
                RANK_NAMES[rank as usize], RANK_NAMES[last_rank as usize]
            )));
        }
        if seen[rank as usize] && rank != 1 {
            return Err(ParseError::new(format!(
                "duplicate {} instruction not allowed, for OpenFlow 1.1+ compatibility",
                RANK_NAMES[rank as usize]
            )));
        }
        seen[rank as usize] = true;
        last_rank = rank;
        match item {
            Item::Apply(a) => apply.extend(a),
            Item::Meter(m) => out.push(Instruction::Meter(m)),
            Item::Clear => {
                flush_apply(&mut out, &mut apply);
                out.push(Instruction::ClearActions);
            }
            Item::Write(a) => {
                flush_apply(&mut out, &mut apply);
                write = Some(a);
            }
            Item::Metadata(v, m) => {
                flush_apply(&mut out, &mut apply);
                flush_write(&mut out, &mut write);
                out.push(Instruction::WriteMetadata {
                    metadata: v,
                    mask: m,
                });
            }
            Item::Goto(t) => {
                flush_apply(&mut out, &mut apply);
                flush_write(&mut out, &mut write);
                out.push(Instruction::GotoTable(t));
            }
        }
    }
    flush_apply(&mut out, &mut apply);
    flush_write(&mut out, &mut write);
    Ok(out)
}

fn flush_apply(out: &mut Vec<Instruction>, apply: &mut Vec<Action>) {
    if !apply.is_empty() {
        out.push(Instruction::ApplyActions(std::mem::take(apply)));
    }
}

fn flush_write(out: &mut Vec<Instruction>, write: &mut Option<Vec<Action>>) {
    if let Some(w) = write.take()
        && !w.is_empty()
    {
        out.push(Instruction::WriteActions(w));
    }
}

/// Parses a plain action list (no instructions), e.g. a group bucket's or a packet-out's.
pub(crate) fn parse_action_list(
    s: &str,
    slots: Option<&Slots>,
    names: PortNames,
) -> Result<Vec<Action>, ParseError> {
    let mut state = FlowState::new(slots, names);
    let items = parse_items(s, &mut state, false)?;
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Apply(a) => out.extend(a),
            other => {
                return Err(ParseError::new(format!(
                    "{} is an instruction, not an action, and cannot be used here",
                    RANK_NAMES[other.rank() as usize]
                )));
            }
        }
    }
    Ok(out)
}

fn parse_items(
    s: &str,
    state: &mut FlowState,
    instructions: bool,
) -> Result<Vec<Item>, ParseError> {
    let kvs = split_kv(s)?;
    let has_drop = kvs.iter().any(|(k, _)| k.eq_ignore_ascii_case("drop"));
    if has_drop && kvs.len() > 1 {
        return Err(ParseError::new(
            "\"drop\" must not be accompanied by any other action or instruction",
        ));
    }
    let mut items = Vec::new();
    for (key, value) in kvs {
        let name = key.to_ascii_lowercase();
        let item = match name.as_str() {
            "drop" => continue,
            "meter" if instructions => Item::Meter(num(&name, value, u32::MAX.into())? as u32),
            "clear_actions" if instructions => Item::Clear,
            "write_actions" if instructions => {
                // The action set is checked against the match, not against apply-actions'
                // changes.
                let mut inner = FlowState {
                    slots: state.slots.clone(),
                    names: state.names,
                    action_set: true,
                    vlans: state.vlans,
                };
                let mut acts = Vec::new();
                for it in parse_items(value, &mut inner, false)? {
                    match it {
                        Item::Apply(a) => acts.extend(a),
                        _ => {
                            return Err(ParseError::new("write_actions may contain only actions"));
                        }
                    }
                }
                Item::Write(acts)
            }
            "write_metadata" if instructions => {
                let (v, m) = match value.split_once('/') {
                    Some((v, m)) => (v, Some(m)),
                    None => (value, None),
                };
                let v = num(&name, v, u64::MAX)?;
                let m = match m {
                    Some(m) => num(&name, m, u64::MAX)?,
                    None => u64::MAX,
                };
                Item::Metadata(v, m)
            }
            "goto_table" if instructions => {
                let t = super::lex::parse_decimal(value)
                    .filter(|t| *t <= 255)
                    .ok_or_else(|| ParseError::new(format!("unknown table \"{value}\"")))?;
                Item::Goto(t as u8)
            }
            _ => Item::Apply(parse_action(&name, key, value, state)?),
        };
        items.push(item);
    }
    Ok(items)
}

fn num(name: &str, v: &str, max: u64) -> Result<u64, ParseError> {
    parse_c_uint(v)
        .filter(|n| *n <= max && !v.starts_with('-'))
        .ok_or_else(|| ParseError::new(format!("{name}: invalid argument \"{v}\"")))
}

fn output(port_text_in: &str, names: PortNames) -> Result<Action, ParseError> {
    let port = parse_port_named(port_text_in, names)
        .ok_or_else(|| ParseError::new(format!("{port_text_in}: output to unknown port")))?;
    if port == OFPP_ANY || (port >= OFPP_MAX && reserved_port_name(port).is_none()) {
        return Err(ParseError::new(
            "actions are invalid with specified match (OFPBAC_BAD_OUT_PORT)",
        ));
    }
    Ok(if port == OFPP_CONTROLLER {
        Action::Output {
            port,
            max_len: OFPCML_NO_BUFFER,
        }
    } else {
        Action::output(port)
    })
}

/// One action keyword; returns the actions it stands for (some forms expand to two).
/// `name` is the keyword in lower case, `key` as written (a port name keeps its case).
fn parse_action(
    name: &str,
    key: &str,
    value: &str,
    state: &mut FlowState,
) -> Result<Vec<Action>, ParseError> {
    let acts = match name {
        "output" => vec![output(value, state.names)?],
        "controller" => {
            let max_len = if value.is_empty() {
                OFPCML_NO_BUFFER
            } else if value.contains('=') {
                let mut max_len = OFPCML_NO_BUFFER;
                for (k, v) in split_kv(value)? {
                    if k != "max_len" {
                        return Err(ParseError::new(format!(
                            "controller({k}=...) needs an Open vSwitch extension; OpenFlow 1.3 \
                             controller output takes only max_len"
                        )));
                    }
                    max_len = num("max_len", v, u16::MAX.into())? as u16;
                }
                max_len
            } else {
                num("controller", value, u16::MAX.into())? as u16
            };
            vec![Action::Output {
                port: OFPP_CONTROLLER,
                max_len,
            }]
        }
        "in_port" | "local" | "flood" | "all" | "normal" | "table" if value.is_empty() => {
            vec![output(name, state.names)?]
        }
        n if n.bytes().all(|b| b.is_ascii_digit()) && value.is_empty() => {
            vec![output(n, state.names)?]
        }
        "set_queue" => vec![Action::SetQueue(num(name, value, u32::MAX.into())? as u32)],
        "group" => vec![Action::Group(num(name, value, u32::MAX.into())? as u32)],
        "strip_vlan" | "pop_vlan" => vec![Action::PopVlan],
        "push_vlan" => {
            let e = num(name, value, u16::MAX.into())? as u16;
            if e != 0x8100 && e != 0x88a8 {
                return Err(ParseError::new(format!(
                    "{value}: not a valid VLAN ethertype"
                )));
            }
            vec![Action::PushVlan(e)]
        }
        "push_mpls" => {
            let e = num(name, value, u16::MAX.into())? as u16;
            if e != 0x8847 && e != 0x8848 {
                return Err(ParseError::new(format!(
                    "{value}: not a valid MPLS ethertype"
                )));
            }
            vec![Action::PushMpls(e)]
        }
        "pop_mpls" => vec![Action::PopMpls(num(name, value, u16::MAX.into())? as u16)],
        "push_pbb" => vec![Action::PushPbb(num(name, value, u16::MAX.into())? as u16)],
        "pop_pbb" => vec![Action::PopPbb],
        "set_mpls_ttl" => vec![Action::SetMplsTtl(num(name, value, 255)? as u8)],
        "dec_mpls_ttl" => vec![Action::DecMplsTtl],
        "mod_nw_ttl" | "set_nw_ttl" => vec![Action::SetNwTtl(num(name, value, 255)? as u8)],
        "dec_ttl" => {
            if !value.is_empty() {
                return Err(ParseError::new(
                    "dec_ttl with controller ids needs an Open vSwitch extension",
                ));
            }
            vec![Action::DecNwTtl]
        }
        "copy_ttl_in" => vec![Action::CopyTtlIn],
        "copy_ttl_out" => vec![Action::CopyTtlOut],
        "mod_dl_src" | "mod_dl_dst" => {
            let mac = value
                .parse::<MacAddr>()
                .map_err(|_| ParseError::new(format!("{value}: invalid Ethernet address")))?;
            let f = if name == "mod_dl_src" {
                FieldId::EthSrc
            } else {
                FieldId::EthDst
            };
            vec![Action::set_field(Oxm::exact(f, mac.to_u128()))]
        }
        "mod_nw_src" | "mod_nw_dst" => {
            let ip = super::lex::parse_ipv4(value)
                .ok_or_else(|| ParseError::new(format!("{value}: invalid IP address")))?;
            let f = if name == "mod_nw_src" {
                FieldId::Ipv4Src
            } else {
                FieldId::Ipv4Dst
            };
            vec![Action::set_field(Oxm::exact(f, u32::from(ip).into()))]
        }
        "mod_tp_src" | "mod_tp_dst" => {
            let port = num(name, value, u16::MAX.into())?;
            let src = name == "mod_tp_src";
            let proto = state.slots.as_ref().and_then(Slots::nw_proto);
            let f = match (proto, src) {
                (Some(17), true) => FieldId::UdpSrc,
                (Some(17), false) => FieldId::UdpDst,
                (Some(132), true) => FieldId::SctpSrc,
                (Some(132), false) => FieldId::SctpDst,
                (Some(6), true) => FieldId::TcpSrc,
                (Some(6), false) => FieldId::TcpDst,
                _ => {
                    return Err(ParseError::new(format!(
                        "{name} needs tcp, udp or sctp in the match"
                    )));
                }
            };
            vec![Action::set_field(Oxm::exact(f, port.into()))]
        }
        "mod_nw_tos" => {
            let tos = parse_c_uint(value)
                .filter(|t| *t <= 255)
                .ok_or_else(|| ParseError::new(format!("invalid TOS \"{value}\"")))?;
            if tos & 3 != 0 {
                return Err(ParseError::new(format!("{value}: not a valid TOS")));
            }
            vec![Action::set_field(Oxm::exact(
                FieldId::IpDscp,
                (tos >> 2).into(),
            ))]
        }
        "mod_nw_ecn" => {
            let ecn = parse_c_uint(value)
                .filter(|t| *t <= 3)
                .ok_or_else(|| ParseError::new(format!("invalid ECN \"{value}\"")))?;
            vec![Action::set_field(Oxm::exact(FieldId::IpEcn, ecn.into()))]
        }
        "mod_vlan_vid" | "mod_vlan_pcp" => {
            let vid = name == "mod_vlan_vid";
            let (max, what) = if vid { (4095, "VID") } else { (7, "PCP") };
            let v = parse_c_uint(value)
                .filter(|v| *v <= max)
                .ok_or_else(|| ParseError::new(format!("{value}: not a valid VLAN {what}")))?;
            let mut out = Vec::new();
            if !state.has_vlan() {
                out.push(Action::PushVlan(0x8100));
            }
            out.push(Action::set_field(if vid {
                Oxm::exact(FieldId::VlanVid, (0x1000 | v).into())
            } else {
                Oxm::exact(FieldId::VlanPcp, v.into())
            }));
            out
        }
        "set_mpls_label" => {
            let v = num(name, value, 0xfffff)?;
            vec![Action::set_field(Oxm::exact(FieldId::MplsLabel, v.into()))]
        }
        "set_mpls_tc" => {
            let v = num(name, value, 7)?;
            vec![Action::set_field(Oxm::exact(FieldId::MplsTc, v.into()))]
        }
        "set_tunnel" | "set_tunnel64" => {
            let v = num(name, value, u64::MAX)?;
            vec![Action::set_field(Oxm::exact(FieldId::TunnelId, v.into()))]
        }
        "set_field" => vec![parse_set_field(value)?],
        n if OVS_EXTENSIONS.contains(&n) => {
            return Err(ParseError::new(format!(
                "{n}: Open vSwitch extension action, not available in OpenFlow 1.3"
            )));
        }
        // A bare port name outputs there, as in ovs-ofctl.
        _ if value.is_empty() && (state.names)(key).is_some() => {
            vec![output(key, state.names)?]
        }
        _ => return Err(ParseError::new(format!("unknown action {name}"))),
    };
    for a in &acts {
        state.check_action(a)?;
        state.after(a);
    }
    Ok(acts)
}

/// `VALUE->FIELD`.
fn parse_set_field(s: &str) -> Result<Action, ParseError> {
    let Some((value, name)) = s.rsplit_once("->") else {
        return Err(ParseError::new(format!("{s}: missing `->'")));
    };
    let (field, tos) = match name {
        "nw_tos" => (FieldId::IpDscp, true),
        n => (
            set_field_by_name(n).ok_or_else(|| {
                if super::matches::is_ovs_extension_field(n) {
                    ParseError::new(format!(
                        "{n}: Open vSwitch extension field, not settable in OpenFlow 1.3"
                    ))
                } else {
                    ParseError::new(format!("{n} is not a valid OXM field name"))
                }
            })?,
            false,
        ),
    };
    if matches!(field, FieldId::EthType | FieldId::IpProto) {
        return Err(ParseError::new(format!("{name} is read-only")));
    }
    if value.contains('/') {
        return Err(ParseError::new(format!(
            "set_field:{s}: a masked set-field needs an Open vSwitch extension (OpenFlow 1.3 \
             set-field has no mask)"
        )));
    }
    let invalid = || ParseError::new(format!("{value} is not a valid value for field {name}"));
    let v: u128 = match field_kind(field) {
        ValueKind::Port => parse_port(value)
            .ok_or_else(|| ParseError::new(format!("{value}: invalid or unknown port for {name}")))?
            .into(),
        ValueKind::Mac => parse_mac_masked(value)?.0,
        ValueKind::Ipv4 => parse_ipv4_masked(value)?.0.into(),
        ValueKind::Ipv6 => parse_ipv6_masked(value)?.0,
        ValueKind::Hex | ValueKind::Dec => parse_c_uint(value).ok_or_else(invalid)?.into(),
    };
    let v = if tos {
        if v & 3 != 0 || v > 255 {
            return Err(invalid());
        }
        v >> 2
    } else {
        v
    };
    if v & !field.full_mask() != 0 || (field == FieldId::VlanVid && v & 0x1000 == 0) {
        return Err(invalid());
    }
    Ok(Action::set_field(Oxm::exact(field, v)))
}

fn set_field_by_name(n: &str) -> Option<FieldId> {
    use FieldId as F;
    if let Some(f) = F::ALL.iter().find(|f| set_field_name(**f) == n) {
        return Some(*f);
    }
    Some(match n {
        "dl_src" => F::EthSrc,
        "dl_dst" => F::EthDst,
        "dl_type" => F::EthType,
        "nw_src" => F::Ipv4Src,
        "nw_dst" => F::Ipv4Dst,
        "ip_ecn" => F::IpEcn,
        "ip_proto" => F::IpProto,
        "tp_src" => F::TcpSrc,
        "tp_dst" => F::TcpDst,
        "tunnel_id" => F::TunnelId,
        "dl_vlan_pcp" => F::VlanPcp,
        _ => return None,
    })
}

/// The name ovs-ofctl prints after `->` in `set_field:V->F`.
pub(crate) fn set_field_name(f: FieldId) -> &'static str {
    use FieldId as F;
    match f {
        F::InPort => "in_port",
        F::InPhyPort => "in_phy_port",
        F::Metadata => "metadata",
        F::EthDst => "eth_dst",
        F::EthSrc => "eth_src",
        F::EthType => "eth_type",
        F::VlanVid => "vlan_vid",
        F::VlanPcp => "vlan_pcp",
        F::IpDscp => "ip_dscp",
        F::IpEcn => "nw_ecn",
        F::IpProto => "nw_proto",
        F::Ipv4Src => "ip_src",
        F::Ipv4Dst => "ip_dst",
        F::TcpSrc => "tcp_src",
        F::TcpDst => "tcp_dst",
        F::UdpSrc => "udp_src",
        F::UdpDst => "udp_dst",
        F::SctpSrc => "sctp_src",
        F::SctpDst => "sctp_dst",
        F::Icmpv4Type => "icmp_type",
        F::Icmpv4Code => "icmp_code",
        F::ArpOp => "arp_op",
        F::ArpSpa => "arp_spa",
        F::ArpTpa => "arp_tpa",
        F::ArpSha => "arp_sha",
        F::ArpTha => "arp_tha",
        F::Ipv6Src => "ipv6_src",
        F::Ipv6Dst => "ipv6_dst",
        F::Ipv6Flabel => "ipv6_label",
        F::Icmpv6Type => "icmpv6_type",
        F::Icmpv6Code => "icmpv6_code",
        F::Ipv6NdTarget => "nd_target",
        F::Ipv6NdSll => "nd_sll",
        F::Ipv6NdTll => "nd_tll",
        F::MplsLabel => "mpls_label",
        F::MplsTc => "mpls_tc",
        F::MplsBos => "mpls_bos",
        F::PbbIsid => "pbb_isid",
        F::TunnelId => "tun_id",
        F::Ipv6Exthdr => "ipv6_exthdr",
    }
}

enum ValueKind {
    Port,
    Mac,
    Ipv4,
    Ipv6,
    Hex,
    Dec,
}

fn field_kind(f: FieldId) -> ValueKind {
    use FieldId as F;
    match f {
        F::InPort | F::InPhyPort => ValueKind::Port,
        F::EthDst | F::EthSrc | F::ArpSha | F::ArpTha | F::Ipv6NdSll | F::Ipv6NdTll => {
            ValueKind::Mac
        }
        F::Ipv4Src | F::Ipv4Dst | F::ArpSpa | F::ArpTpa => ValueKind::Ipv4,
        F::Ipv6Src | F::Ipv6Dst | F::Ipv6NdTarget => ValueKind::Ipv6,
        F::Metadata | F::TunnelId | F::Ipv6Flabel | F::Ipv6Exthdr | F::EthType => ValueKind::Hex,
        _ => ValueKind::Dec,
    }
}

fn fmt_field_value(out: &mut String, f: FieldId, v: u128) {
    match field_kind(f) {
        ValueKind::Port => out.push_str(&port_text(v as u32)),
        ValueKind::Mac => {
            let _ = write!(out, "{}", MacAddr::from_u128(v));
        }
        ValueKind::Ipv4 => {
            let _ = write!(out, "{}", std::net::Ipv4Addr::from(v as u32));
        }
        ValueKind::Ipv6 => {
            let _ = write!(out, "{}", std::net::Ipv6Addr::from(v));
        }
        ValueKind::Hex => out.push_str(&hash_hex(v)),
        ValueKind::Dec => {
            let _ = write!(out, "{v}");
        }
    }
}

/// Prints one action as ovs-ofctl does.
pub(crate) fn fmt_action(out: &mut String, a: &Action) {
    match a {
        Action::Output { port, max_len } => {
            if *port == OFPP_CONTROLLER {
                let _ = write!(out, "CONTROLLER:{max_len}");
            } else if *port < OFPP_MAX || *port == OFPP_ANY {
                let _ = write!(out, "output:{}", port_text(*port));
            } else {
                match reserved_port_name(*port) {
                    Some(n) => out.push_str(n),
                    None => {
                        let _ = write!(out, "output:{port}");
                    }
                }
            }
        }
        Action::CopyTtlOut => out.push_str("copy_ttl_out"),
        Action::CopyTtlIn => out.push_str("copy_ttl_in"),
        Action::SetMplsTtl(t) => {
            let _ = write!(out, "set_mpls_ttl({t})");
        }
        Action::DecMplsTtl => out.push_str("dec_mpls_ttl"),
        Action::PushVlan(e) => {
            let _ = write!(out, "push_vlan:0x{e:04x}");
        }
        Action::PopVlan => out.push_str("pop_vlan"),
        Action::PushMpls(e) => {
            let _ = write!(out, "push_mpls:0x{e:04x}");
        }
        Action::PopMpls(e) => {
            let _ = write!(out, "pop_mpls:0x{e:04x}");
        }
        Action::SetQueue(q) => {
            let _ = write!(out, "set_queue:{q}");
        }
        Action::Group(g) => {
            let _ = write!(out, "group:{g}");
        }
        Action::SetNwTtl(t) => {
            let _ = write!(out, "mod_nw_ttl:{t}");
        }
        Action::DecNwTtl => out.push_str("dec_ttl"),
        Action::SetField(OxmTlv::Basic(o)) => {
            out.push_str("set_field:");
            fmt_field_value(out, o.field, o.value);
            if let Some(m) = o.mask {
                out.push('/');
                fmt_field_value(out, o.field, m);
            }
            let _ = write!(out, "->{}", set_field_name(o.field));
        }
        Action::SetField(OxmTlv::Raw(r)) => {
            let _ = write!(out, "set_field:{}", super::matches::raw_text(r));
        }
        Action::PushPbb(e) => {
            let _ = write!(out, "push_pbb:0x{e:04x}");
        }
        Action::PopPbb => out.push_str("pop_pbb"),
        Action::Experimenter { experimenter, data } => {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            let _ = write!(out, "experimenter(id={experimenter:#x},data=0x{hex})");
        }
    }
}

/// Prints an action list, comma-separated (`drop` when empty).
pub(crate) fn fmt_action_list(out: &mut String, actions: &[Action]) {
    if actions.is_empty() {
        out.push_str("drop");
        return;
    }
    for (i, a) in actions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        fmt_action(out, a);
    }
}

/// Prints instructions as one `actions=` value, in execution order (`drop` when there is
/// nothing to print).
pub(crate) fn fmt_instructions(out: &mut String, insts: &[Instruction]) {
    let mut sorted: Vec<&Instruction> = insts.iter().collect();
    sorted.sort_by_key(|i| inst_rank(i));
    let start = out.len();
    for i in sorted {
        let before = out.len();
        if before > start {
            out.push(',');
        }
        let mark = out.len();
        match i {
            Instruction::Meter(m) => {
                let _ = write!(out, "meter:{m}");
            }
            Instruction::ApplyActions(a) => {
                for (k, a) in a.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    fmt_action(out, a);
                }
            }
            Instruction::ClearActions => out.push_str("clear_actions"),
            Instruction::WriteActions(a) => {
                if !a.is_empty() {
                    out.push_str("write_actions(");
                    fmt_action_list(out, a);
                    out.push(')');
                }
            }
            Instruction::WriteMetadata { metadata, mask } => {
                let _ = write!(out, "write_metadata:{}", hash_hex((*metadata).into()));
                if *mask != u64::MAX {
                    let _ = write!(out, "/{}", hash_hex((*mask).into()));
                }
            }
            Instruction::GotoTable(t) => {
                let _ = write!(out, "goto_table:{t}");
            }
            Instruction::Experimenter { experimenter, data } => {
                let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                let _ = write!(
                    out,
                    "experimenter_instruction(id={experimenter:#x},data=0x{hex})"
                );
            }
        }
        if out.len() == mark {
            // Nothing printed (an empty action list): take the comma back.
            out.truncate(before);
        }
    }
    if out.len() == start {
        out.push_str("drop");
    }
}

fn inst_rank(i: &Instruction) -> u8 {
    match i {
        Instruction::Meter(_) => 0,
        Instruction::ApplyActions(_) => 1,
        Instruction::ClearActions => 2,
        Instruction::WriteActions(_) => 3,
        Instruction::WriteMetadata { .. } => 4,
        Instruction::GotoTable(_) => 5,
        Instruction::Experimenter { .. } => 6,
    }
}
