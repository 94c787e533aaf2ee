//! A whole flow line: the flow's own keywords (`table`, `priority`, `cookie`, timeouts,
//! flags, `out_port`, the stats `dump-flows` prints), the match, and `actions=`.

use std::fmt::Write as _;

use super::actions::{fmt_instructions, parse_instructions};
use super::lex::{parse_bounded, parse_c_uint, parse_decimal, split_keyword, split_kv};
use super::matches::{Slots, parse_port_named};
use super::{ParseError, PortNames, no_port_names};
use crate::consts::{OFP_NO_BUFFER, OFPG_ANY, OFPP_ANY, OFPTT_ALL};
use crate::instruction::Instruction;
use crate::msg::flow::{FlowMod, FlowModCommand, flags};
use crate::msg::multipart::{FlowStats, FlowStatsRequest};
use crate::oxm::Match;

/// The default priority, which ovs-ofctl does not print.
pub const DEFAULT_PRIORITY: u16 = 0x8000;

/// Which ovs-ofctl command the text is for; it decides the defaults and which keywords are
/// allowed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FlowUsage {
    /// `add-flow`: `actions=` required, no cookie mask, no `out_port`.
    Add,
    /// `mod-flows`: `actions=` required; `cookie=V` sets the cookie, `cookie=V/M` selects.
    Modify,
    /// `del-flows` and `dump-flows` filters: no actions, no priority, no timeouts;
    /// `out_port`/`out_group` allowed; the table defaults to all tables.
    Delete,
    /// `del-flows --strict`: like `Delete`, and `priority` is allowed.
    DeleteStrict,
}

impl FlowUsage {
    fn is_delete(self) -> bool {
        matches!(self, FlowUsage::Delete | FlowUsage::DeleteStrict)
    }
}

/// Flow statistics as `dump-flows` prints them.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FlowStatsText {
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub packet_count: u64,
    pub byte_count: u64,
    /// Seconds since last hit (Open vSwitch's NXM stats only; never in OpenFlow 1.3).
    pub idle_age: Option<u32>,
    /// Seconds since last modification (printed only when it differs from the duration).
    pub hard_age: Option<u32>,
}

/// One flow as text describes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowSpec {
    pub table_id: u8,
    pub priority: u16,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    /// `crate::msg::flow::flags` bits.
    pub flags: u16,
    pub out_port: u32,
    pub out_group: u32,
    pub match_: Match,
    pub instructions: Vec<Instruction>,
    pub stats: Option<FlowStatsText>,
}

impl FlowSpec {
    /// A flow with every default of `usage`.
    pub fn new(usage: FlowUsage) -> FlowSpec {
        FlowSpec {
            table_id: if usage.is_delete() { OFPTT_ALL } else { 0 },
            priority: DEFAULT_PRIORITY,
            cookie: 0,
            cookie_mask: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            match_: Match::all(),
            instructions: Vec::new(),
            stats: None,
        }
    }

    /// The FLOW_MOD ovs-ofctl would send for this flow.
    pub fn to_flow_mod(&self, command: FlowModCommand) -> FlowMod {
        FlowMod {
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            table_id: self.table_id,
            command,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            priority: self.priority,
            buffer_id: OFP_NO_BUFFER,
            out_port: self.out_port,
            out_group: self.out_group,
            flags: self.flags,
            match_: self.match_.clone(),
            instructions: self.instructions.clone(),
        }
    }

    /// The FLOW (dump-flows) request for this filter.
    pub fn to_flow_stats_request(&self) -> FlowStatsRequest {
        FlowStatsRequest {
            table_id: self.table_id,
            out_port: self.out_port,
            out_group: self.out_group,
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            match_: self.match_.clone(),
        }
    }

    /// The flow a FLOW reply entry describes, stats included.
    pub fn from_flow_stats(fs: &FlowStats) -> FlowSpec {
        FlowSpec {
            table_id: fs.table_id,
            priority: fs.priority,
            cookie: fs.cookie,
            cookie_mask: 0,
            idle_timeout: fs.idle_timeout,
            hard_timeout: fs.hard_timeout,
            flags: fs.flags,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            match_: fs.match_.clone(),
            instructions: fs.instructions.clone(),
            stats: Some(FlowStatsText {
                duration_sec: fs.duration_sec,
                duration_nsec: fs.duration_nsec,
                packet_count: fs.packet_count,
                byte_count: fs.byte_count,
                idle_age: None,
                hard_age: None,
            }),
        }
    }
}

const FLAG_NAMES: [(&str, u16); 5] = [
    ("send_flow_rem", flags::SEND_FLOW_REM),
    ("check_overlap", flags::CHECK_OVERLAP),
    ("reset_counts", flags::RESET_COUNTS),
    ("no_packet_counts", flags::NO_PKT_COUNTS),
    ("no_byte_counts", flags::NO_BYT_COUNTS),
];

/// Parses one flow line as ovs-ofctl does for `usage`.
pub fn parse_flow(s: &str, usage: FlowUsage) -> Result<FlowSpec, ParseError> {
    parse_flow_verbose(s, usage).map(|(f, _)| f)
}

/// Like [`parse_flow`], also returning warnings (the match fields dropped for lack of
/// prerequisites, which ovs-ofctl logs).
pub fn parse_flow_verbose(
    s: &str,
    usage: FlowUsage,
) -> Result<(FlowSpec, Vec<String>), ParseError> {
    parse_flow_named(s, usage, &no_port_names)
}

/// [`parse_flow_verbose`] with port names: `in_port=p1`, `out_port=p1`, `output:p1`.
pub fn parse_flow_named(
    s: &str,
    usage: FlowUsage,
    names: PortNames,
) -> Result<(FlowSpec, Vec<String>), ParseError> {
    let mut f = FlowSpec::new(usage);
    let (match_text, actions_text) = match split_keyword(s, "action") {
        Some((m, a)) => (m, Some(a)),
        None => (s, None),
    };
    let mut slots = Slots::default();
    let mut stats: Option<FlowStatsText> = None;
    for (k, v) in split_kv(match_text)? {
        match k {
            "table" => {
                f.table_id = parse_decimal(v)
                    .filter(|t| *t <= 255)
                    .ok_or_else(|| ParseError::new(format!("unknown table \"{v}\"")))?
                    as u8;
            }
            "priority" if usage != FlowUsage::Delete => {
                f.priority = parse_bounded(k, v, u16::MAX.into())? as u16
            }
            "idle_timeout" if !usage.is_delete() => {
                f.idle_timeout = parse_bounded(k, v, u16::MAX.into())? as u16
            }
            "hard_timeout" if !usage.is_delete() => {
                f.hard_timeout = parse_bounded(k, v, u16::MAX.into())? as u16
            }
            // OpenFlow 1.4's; checked, then ignored for OpenFlow 1.3 as ovs-ofctl does.
            "importance" if !usage.is_delete() => {
                parse_bounded(k, v, u16::MAX.into())?;
            }
            "cookie" => {
                let bad = || ParseError::new(format!("invalid cookie \"{v}\""));
                match v.split_once('/') {
                    Some((c, m)) => {
                        if usage == FlowUsage::Add {
                            return Err(ParseError::new("flow additions cannot use a cookie mask"));
                        }
                        f.cookie = parse_c_uint(c).ok_or_else(bad)?;
                        f.cookie_mask = parse_c_uint(m).ok_or_else(bad)?;
                    }
                    None => {
                        if usage.is_delete() {
                            return Err(ParseError::new(format!(
                                "cannot set cookie (to match on a cookie, specify a mask, e.g. \
                                 cookie={v}/-1)"
                            )));
                        }
                        f.cookie = parse_c_uint(v).ok_or_else(bad)?;
                    }
                }
            }
            "out_port" if usage.is_delete() => {
                f.out_port = parse_port_named(v, names).ok_or_else(|| {
                    ParseError::new(format!("{v}: invalid or unknown port for out_port"))
                })?;
            }
            "out_group" if usage.is_delete() => {
                f.out_group = parse_c_uint(v)
                    .and_then(|g| u32::try_from(g).ok())
                    .ok_or_else(|| ParseError::new(format!("invalid out_group \"{v}\"")))?;
            }
            "duration" => {
                let st = stats.get_or_insert_default();
                let d = v.strip_suffix('s').unwrap_or(v);
                let (sec, frac) = d.split_once('.').unwrap_or((d, ""));
                let bad = || ParseError::new(format!("invalid duration \"{v}\""));
                st.duration_sec = parse_decimal(sec)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(bad)?;
                if !frac.is_empty() {
                    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(bad());
                    }
                    st.duration_nsec = format!("{frac:0<9}").parse().map_err(|_| bad())?;
                }
            }
            "n_packets" | "n_bytes" | "idle_age" | "hard_age" => {
                let n = parse_decimal(v)
                    .ok_or_else(|| ParseError::new(format!("invalid {k} \"{v}\"")))?;
                let st = stats.get_or_insert_default();
                let small = || {
                    u32::try_from(n).map_err(|_| ParseError::new(format!("invalid {k} \"{v}\"")))
                };
                match k {
                    "n_packets" => st.packet_count = n,
                    "n_bytes" => st.byte_count = n,
                    "idle_age" => st.idle_age = Some(small()?),
                    _ => st.hard_age = Some(small()?),
                }
            }
            _ => {
                if let Some((_, bit)) = FLAG_NAMES.iter().find(|(n, _)| *n == k) {
                    if usage.is_delete() {
                        return Err(super::unknown_keyword(k));
                    }
                    f.flags |= bit;
                } else if !slots.apply(k, v, names)? {
                    return Err(super::unknown_keyword(k));
                }
            }
        }
    }
    if usage == FlowUsage::Add && f.table_id == OFPTT_ALL {
        f.table_id = 0;
    }
    let dropped = slots.normalize();
    let warnings = if dropped.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "normalization dropped {} from the match: prerequisites not met",
            dropped.join(", ")
        )]
    };
    f.match_ = slots.to_match()?;
    // ovs-ofctl prints hard_age only when it differs from the duration: one equal to it
    // says nothing more (and prints as nothing).
    if let Some(st) = stats.as_mut()
        && st.hard_age == Some(st.duration_sec)
    {
        st.hard_age = None;
    }
    f.stats = stats;
    match (usage, actions_text) {
        (FlowUsage::Delete | FlowUsage::DeleteStrict, Some(_)) => {
            return Err(ParseError::new("unknown keyword actions"));
        }
        (FlowUsage::Delete | FlowUsage::DeleteStrict, None) => {}
        (_, None) => return Err(ParseError::new("must specify an action")),
        (_, Some(a)) => {
            f.instructions = parse_instructions(a, Some(&slots), names)?;
            for i in &f.instructions {
                if let Instruction::GotoTable(t) = i
                    && *t <= f.table_id
                {
                    return Err(ParseError::new(
                        "actions are invalid with specified match (OFPBIC_BAD_TABLE_ID)",
                    ));
                }
            }
        }
    }
    Ok((f, warnings))
}

fn fmt_duration(out: &mut String, sec: u32, nsec: u32) {
    let _ = write!(out, "{sec}");
    if nsec > 0 {
        // Milliseconds when exact, otherwise nanoseconds.
        if nsec.is_multiple_of(1_000_000) {
            let _ = write!(out, ".{:03}", nsec / 1_000_000);
        } else {
            let _ = write!(out, ".{nsec:09}");
        }
    }
    out.push('s');
}

/// Prints a flow as `ovs-ofctl -O OpenFlow13 dump-flows` does: with stats when the flow
/// carries them, as `--no-stats` otherwise. No leading space.
pub fn format_flow(f: &FlowSpec) -> String {
    let mut out = String::new();
    let st = f.stats.as_ref();
    if st.is_some() || f.cookie != 0 {
        let _ = write!(out, "cookie={:#x}, ", f.cookie);
    }
    if let Some(st) = st {
        out.push_str("duration=");
        fmt_duration(&mut out, st.duration_sec, st.duration_nsec);
        out.push_str(", ");
    }
    if st.is_some() || f.table_id != 0 {
        let _ = write!(out, "table={}, ", f.table_id);
    }
    if let Some(st) = st {
        let _ = write!(
            out,
            "n_packets={}, n_bytes={}, ",
            st.packet_count, st.byte_count
        );
    }
    if f.idle_timeout != 0 {
        let _ = write!(out, "idle_timeout={}, ", f.idle_timeout);
    }
    if f.hard_timeout != 0 {
        let _ = write!(out, "hard_timeout={}, ", f.hard_timeout);
    }
    for (name, bit) in FLAG_NAMES {
        if f.flags & bit != 0 {
            let _ = write!(out, "{name} ");
        }
    }
    if let Some(st) = st {
        if let Some(a) = st.idle_age {
            let _ = write!(out, "idle_age={a}, ");
        }
        if let Some(a) = st.hard_age
            && a != st.duration_sec
        {
            let _ = write!(out, "hard_age={a}, ");
        }
    }
    let mut m = String::new();
    if f.priority != DEFAULT_PRIORITY {
        let _ = write!(m, "priority={}", f.priority);
    }
    let body = super::format_match(&f.match_);
    if !body.is_empty() {
        if !m.is_empty() {
            m.push(',');
        }
        m.push_str(&body);
    }
    if !m.is_empty() {
        out.push_str(&m);
        out.push(' ');
    }
    out.push_str("actions=");
    fmt_instructions(&mut out, &f.instructions);
    out
}
