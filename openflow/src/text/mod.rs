//! The ovs-ofctl flow text syntax, both ways: parse what `ovs-ofctl add-flow`/`del-flows`/
//! `dump-flows` accept, and print flows the way `ovs-ofctl -O OpenFlow13 dump-flows` does.
//!
//! The goal is to be indistinguishable from Open vSwitch 3.1 for everything OpenFlow 1.3 can
//! express: the same field aliases and shorthands, the same OXM bytes on the wire (field
//! order included), the same canonical text back. Checked against captures from real
//! ovs-ofctl in `tests/fixtures/ovs31/flows.jsonl`.
//!
//! Deliberate differences from ovs-ofctl:
//! - Open vSwitch extensions (NXM fields such as `reg0`, `ct_state`, `nw_ttl`; actions such as
//!   `resubmit`, `load`, `ct`, `note`) are refused with a message saying so.
//! - OpenFlow 1.3 things Open vSwitch lacks are accepted: match fields `in_phy_port`,
//!   `pbb_isid`, `ipv6_exthdr`; actions `copy_ttl_in`, `copy_ttl_out`, `push_pbb`,
//!   `pop_pbb`. So every basic-OXM flow prints to text that parses back.
//! - Malformed IPv4 octets (`300.0.0.1`) are refused, where ovs-ofctl silently wraps them.
//! - `set_field:V->nw_tos` is sent as the OpenFlow 1.3 IP_DSCP set-field (V>>2), not as
//!   Open vSwitch's NXM_OF_IP_TOS.
//!
//! What is here: [`FlowSpec`] and [`parse_flow`]/[`format_flow`], match and action helpers,
//! group and meter text (`group` and `meter` modules), and a fuzz body. What is not: the
//! wire codec (`crate::msg`) and anything that talks to a switch.

mod actions;
mod flow;
pub mod group;
mod lex;
mod matches;
pub mod meter;

use std::fmt;

pub use flow::{
    DEFAULT_PRIORITY, FlowSpec, FlowStatsText, FlowUsage, format_flow, parse_flow,
    parse_flow_named, parse_flow_verbose,
};

use crate::action::Action;
use crate::instruction::Instruction;
use crate::oxm::Match;

/// Why a piece of text was refused; the message reads like ovs-ofctl's.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParseError {
    pub message: String,
}

impl ParseError {
    pub fn new(message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// Resolves a port name that is neither a number nor a reserved name (`p1` → 1), as
/// ovs-ofctl does with the switch's port descriptions.
pub type PortNames<'a> = &'a dyn Fn(&str) -> Option<u32>;

/// No port names: only numbers and reserved names are ports.
pub fn no_port_names(_: &str) -> Option<u32> {
    None
}

/// Parses match text (`tcp,nw_src=10.0.0.0/8,tp_dst=80`) into an OXM match in Open vSwitch's
/// wire order. Fields whose prerequisites are missing are dropped, as ovs-ofctl does.
pub fn parse_match(s: &str) -> Result<Match, ParseError> {
    let mut slots = matches::Slots::default();
    for (k, v) in lex::split_kv(s)? {
        if !slots.apply(k, v, &no_port_names)? {
            return Err(unknown_keyword(k));
        }
    }
    slots.normalize();
    slots.to_match()
}

pub(crate) fn unknown_keyword(k: &str) -> ParseError {
    if matches::is_ovs_extension_field(k) {
        ParseError::new(format!(
            "{k}: Open vSwitch extension field, not available in OpenFlow 1.3"
        ))
    } else {
        ParseError::new(format!("unknown keyword {k}"))
    }
}

/// Prints a match as `ovs-ofctl dump-flows` does (without priority). TLVs of classes the text
/// syntax has no name for are printed as `oxm(...)`, which does not parse back.
pub fn format_match(m: &Match) -> String {
    let (slots, raw) = matches::Slots::from_match(m);
    let mut out = String::new();
    slots.format(&mut out);
    for r in raw {
        // Ethernet, the packet type every OpenFlow 1.3 flow has: ovs-ofctl prints nothing.
        if matches::packet_type(&r) == Some((0, 0)) {
            continue;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&matches::raw_text(&r));
    }
    out
}

/// The match that `parse_match(format_match(m))` gives: what Open vSwitch would make of `m`
/// (fields lacking prerequisites dropped, canonical field order, full masks removed).
pub fn normalize_match(m: &Match) -> Result<Match, ParseError> {
    let (mut slots, _) = matches::Slots::from_match(m);
    slots.normalize();
    slots.to_match()
}

/// Parses an `actions=` value (without the `actions=`) into instructions, checked without a
/// match (no prerequisite checks; VLAN-setting actions push a tag).
pub fn parse_actions(s: &str) -> Result<Vec<Instruction>, ParseError> {
    actions::parse_instructions(s, None, &no_port_names)
}

/// Parses a plain action list (group buckets, packet-out): instructions are refused.
pub fn parse_action_list(s: &str) -> Result<Vec<Action>, ParseError> {
    actions::parse_action_list(s, None, &no_port_names)
}

/// [`parse_action_list`] with port names (`output:p1`, or just `p1`).
pub fn parse_action_list_named(s: &str, names: PortNames) -> Result<Vec<Action>, ParseError> {
    actions::parse_action_list(s, None, names)
}

/// A port as ovs-ofctl reads one (reserved names case-insensitively, numbers in decimal,
/// OpenFlow 1.0's 0xff00..=0xffff mapped to their 32-bit reserved equivalents).
pub fn parse_port(s: &str) -> Option<u32> {
    matches::parse_port(s)
}

/// [`parse_port`], then `names`.
pub fn parse_port_named(s: &str, names: PortNames) -> Option<u32> {
    matches::parse_port_named(s, names)
}

/// A port as ovs-ofctl prints one (`LOCAL`, `CONTROLLER`, ... or the number).
pub fn format_port(p: u32) -> String {
    matches::port_text(p)
}

/// Prints instructions as the `actions=` value ovs-ofctl shows (`drop` when empty).
pub fn format_actions(insts: &[Instruction]) -> String {
    let mut out = String::new();
    actions::fmt_instructions(&mut out, insts);
    out
}

/// Prints a plain action list (`drop` when empty).
pub fn format_action_list(acts: &[Action]) -> String {
    let mut out = String::new();
    actions::fmt_action_list(&mut out, acts);
    out
}

/// Fuzz body: parses arbitrary bytes as add-flow text; whenever that succeeds, the printed
/// form must parse back to the same flow and print identically (a fixed point).
pub fn fuzz_parse(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for usage in [FlowUsage::Add, FlowUsage::Delete] {
        let Ok(f) = parse_flow(s, usage) else {
            continue;
        };
        let text = format_flow(&f);
        let back = parse_flow(&text, FlowUsage::Add)
            .unwrap_or_else(|e| panic!("{s:?} printed as {text:?}, which fails: {e}"));
        assert_eq!(back.match_, f.match_, "{s:?} -> {text:?}");
        assert_eq!(back.instructions, f.instructions, "{s:?} -> {text:?}");
        if usage == FlowUsage::Add {
            assert_eq!(back, f, "{s:?} -> {text:?}");
            assert_eq!(format_flow(&back), text);
        }
    }
    let _ = group::parse_group(s, group::GroupUsage::Add);
    let _ = meter::parse_meter(s, meter::MeterUsage::Add);
}
