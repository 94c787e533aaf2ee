//! Group text as `ovs-ofctl add-group`/`dump-groups` use it:
//! `group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=...`.
//! A bucket runs to the next `bucket=`; inside it `weight:`, `watch_port:`, `watch_group:`
//! set the bucket's parameters, `actions=` starts its action list, and any other token is an
//! action (so `bucket=output:1` is a bucket with one action).

use std::fmt::Write as _;

use super::actions::{fmt_action_list, parse_action_list};
use super::lex::{parse_c_uint, split_kv};
use super::matches::{parse_port_named, port_text};
use super::{ParseError, PortNames, no_port_names};
use crate::consts::{OFPG_ALL, OFPG_ANY, OFPP_ANY};
use crate::msg::group::{Bucket, GroupDesc, GroupMod, GroupModCommand, GroupType};

/// Which command the group text is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GroupUsage {
    /// `add-group`/`mod-group`: `group_id` and `type` required.
    Add,
    /// `del-groups`: only `group_id` (default: all groups).
    Delete,
}

/// A group as text describes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupSpec {
    pub group_id: u32,
    pub group_type: GroupType,
    pub buckets: Vec<Bucket>,
}

impl GroupSpec {
    /// The group a GROUP_DESC reply entry describes.
    pub fn from_group_desc(d: &GroupDesc) -> GroupSpec {
        GroupSpec {
            group_id: d.group_id,
            group_type: d.group_type,
            buckets: d.buckets.clone(),
        }
    }

    pub fn to_group_mod(&self, command: GroupModCommand) -> GroupMod {
        GroupMod {
            command,
            group_type: self.group_type,
            group_id: self.group_id,
            buckets: self.buckets.clone(),
        }
    }
}

fn type_name(t: GroupType) -> &'static str {
    match t {
        GroupType::All => "all",
        GroupType::Select => "select",
        GroupType::Indirect => "indirect",
        GroupType::FastFailover => "ff",
    }
}

fn group_id_text(g: u32) -> String {
    match g {
        OFPG_ALL => "ALL".into(),
        OFPG_ANY => "ANY".into(),
        g => g.to_string(),
    }
}

fn parse_group_id(v: &str) -> Result<u32, ParseError> {
    match v.to_ascii_lowercase().as_str() {
        "all" => Ok(OFPG_ALL),
        "any" => Ok(OFPG_ANY),
        _ => parse_c_uint(v)
            .and_then(|g| u32::try_from(g).ok())
            .ok_or_else(|| ParseError::new(format!("invalid group id \"{v}\""))),
    }
}

/// Parses group text.
pub fn parse_group(s: &str, usage: GroupUsage) -> Result<GroupSpec, ParseError> {
    parse_group_named(s, usage, &no_port_names)
}

/// [`parse_group`] with port names (`watch_port:p1`, `output:p1`).
pub fn parse_group_named(
    s: &str,
    usage: GroupUsage,
    names: PortNames,
) -> Result<GroupSpec, ParseError> {
    // Cut the text into the group part and one part per `bucket=`.
    let mut parts = Vec::new();
    let mut rest = s;
    let find_bucket = |t: &str| {
        let mut from = 0;
        while let Some(i) = t[from..].find("bucket=") {
            let at = from + i;
            if at == 0 || t[..at].ends_with([',', ' ', '\t']) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    };
    let head_end = find_bucket(rest).unwrap_or(rest.len());
    let head = &rest[..head_end];
    rest = &rest[head_end..];
    while !rest.is_empty() {
        let body = &rest["bucket=".len()..];
        let end = find_bucket(body).unwrap_or(body.len());
        parts.push(&body[..end]);
        rest = &body[end..];
    }
    let mut group_id = None;
    let mut group_type = None;
    for (k, v) in split_kv(head)? {
        match k {
            "group_id" => group_id = Some(parse_group_id(v)?),
            "type" if usage == GroupUsage::Add => {
                group_type = Some(match v {
                    "all" => GroupType::All,
                    "select" => GroupType::Select,
                    "indirect" => GroupType::Indirect,
                    "ff" | "fast_failover" => GroupType::FastFailover,
                    _ => return Err(ParseError::new(format!("unknown group type \"{v}\""))),
                });
            }
            "selection_method" | "selection_method_param" | "fields" => {
                return Err(ParseError::new(format!(
                    "{k}: Open vSwitch extension (OpenFlow 1.5 groups), not available in \
                     OpenFlow 1.3"
                )));
            }
            _ => return Err(ParseError::new(format!("unknown keyword {k}"))),
        }
    }
    if usage == GroupUsage::Delete {
        if !parts.is_empty() {
            return Err(ParseError::new("buckets are not allowed here"));
        }
        return Ok(GroupSpec {
            group_id: group_id.unwrap_or(OFPG_ALL),
            group_type: GroupType::All,
            buckets: Vec::new(),
        });
    }
    let group_id = group_id.ok_or_else(|| ParseError::new("must specify a group_id"))?;
    let group_type = group_type.ok_or_else(|| ParseError::new("must specify a type"))?;
    let mut buckets = Vec::new();
    for p in parts {
        buckets.push(parse_bucket(p, group_type, names)?);
    }
    Ok(GroupSpec {
        group_id,
        group_type,
        buckets,
    })
}

fn parse_bucket(s: &str, t: GroupType, names: PortNames) -> Result<Bucket, ParseError> {
    let mut b = Bucket {
        weight: if t == GroupType::Select { 1 } else { 0 },
        watch_port: OFPP_ANY,
        watch_group: OFPG_ANY,
        actions: Vec::new(),
    };
    // Parameters come first; `actions=` (or the first other token) starts the actions.
    let mut rest = s;
    loop {
        let trimmed = rest.trim_start_matches([',', ' ', '\t']);
        let Some((k, v)) = split_kv(trimmed)?.into_iter().next() else {
            rest = trimmed;
            break;
        };
        let consumed = |rest: &str| {
            let after = &rest[k.len()..];
            let after = after.strip_prefix([':', '=']).unwrap_or(after);
            after[v.len()..].to_string()
        };
        match k {
            "weight" => {
                if t != GroupType::Select {
                    return Err(ParseError::new(
                        "Only select groups can have bucket weights.",
                    ));
                }
                b.weight = parse_c_uint(v)
                    .and_then(|w| u16::try_from(w).ok())
                    .ok_or_else(|| ParseError::new(format!("invalid weight \"{v}\"")))?;
            }
            "watch_port" => {
                b.watch_port = parse_port_named(v, names).ok_or_else(|| {
                    ParseError::new(format!("{v}: invalid or unknown port for watch_port"))
                })?;
            }
            "watch_group" => b.watch_group = parse_group_id(v)?,
            "bucket_id" => {
                return Err(ParseError::new(
                    "bucket_id: OpenFlow 1.5 bucket ids are not available in OpenFlow 1.3",
                ));
            }
            "actions" | "action" => {
                rest = &trimmed[k.len() + 1..];
                break;
            }
            _ => {
                rest = trimmed;
                break;
            }
        }
        let r = consumed(trimmed);
        let idx = s.len() - r.len();
        rest = &s[idx..];
    }
    b.actions = parse_action_list(rest, None, names)?;
    Ok(b)
}

/// Prints a group as `ovs-ofctl -O OpenFlow13 dump-groups` does (one line, no indent).
pub fn format_group(g: &GroupSpec) -> String {
    let mut out = format!(
        "group_id={},type={}",
        group_id_text(g.group_id),
        type_name(g.group_type)
    );
    for b in &g.buckets {
        out.push_str(",bucket=");
        // The weight is printed when it is not the default (1 for select groups, else 0).
        let default_weight = u16::from(g.group_type == GroupType::Select);
        if b.weight != default_weight {
            let _ = write!(out, "weight:{},", b.weight);
        }
        if b.watch_port != OFPP_ANY {
            let _ = write!(out, "watch_port:{},", port_text(b.watch_port));
        }
        if b.watch_group != OFPG_ANY {
            let _ = write!(out, "watch_group:{},", group_id_text(b.watch_group));
        }
        out.push_str("actions=");
        fmt_action_list(&mut out, &b.actions);
    }
    out
}
