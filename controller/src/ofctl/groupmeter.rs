//! Group and meter text, as ovs-ofctl's add-group and add-meter read it:
//!
//! - `group_id=1,type=select,bucket=weight:100,watch_port:1,actions=output:1,bucket=output:2`
//! - `meter=1,kbps,burst,stats,band=type=drop,rate=1000,burst_size=100`
//!
//! A minimal parser kept inside the controller until `fuxi_openflow::text` covers groups
//! and meters.

use fuxi_openflow::consts::{OFPG_ALL, OFPG_ANY, OFPM_ALL, OFPP_ANY};
use fuxi_openflow::msg::{Bucket, GroupType, MeterBand, meter::flags};

use super::flowtext::{ParseError, PortNames, parse_action_list, parse_port, parse_uint};

fn err<T>(s: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(s.into()))
}

/// A parsed group.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParsedGroup {
    /// `None` when the text did not say (only allowed for del-groups: all groups).
    pub group_id: Option<u32>,
    pub group_type: GroupType,
    pub buckets: Vec<Bucket>,
}

/// Splits `s` at top-level commas (not inside parentheses).
fn split_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.retain(|x| !x.is_empty());
    out
}

fn group_id(v: &str) -> Result<u32, ParseError> {
    match v {
        "all" => Ok(OFPG_ALL),
        "any" => Ok(OFPG_ANY),
        _ => Ok(parse_uint("group_id", v, u128::from(u32::MAX))? as u32),
    }
}

/// Parses a group (`add-group`, `mod-group`, `del-groups`).
pub fn parse_group(s: &str, names: PortNames) -> Result<ParsedGroup, ParseError> {
    let mut g = ParsedGroup {
        group_id: None,
        group_type: GroupType::All,
        buckets: Vec::new(),
    };
    let mut type_given = false;
    let mut weights = Vec::new();
    // Everything from the first "bucket=" belongs to buckets.
    let items = split_commas(s);
    let mut i = 0;
    while i < items.len() {
        let item = items[i];
        if let Some(first) = item.strip_prefix("bucket=") {
            // A bucket runs until the next "bucket=".
            let mut parts = vec![first];
            i += 1;
            while i < items.len() && !items[i].starts_with("bucket=") {
                parts.push(items[i]);
                i += 1;
            }
            weights.push(parts.iter().any(|p| p.starts_with("weight")));
            g.buckets.push(parse_bucket(&parts, names)?);
            continue;
        }
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        match k {
            "group_id" => g.group_id = Some(group_id(v)?),
            "type" => {
                type_given = true;
                g.group_type = match v {
                    "all" => GroupType::All,
                    "select" => GroupType::Select,
                    "indirect" => GroupType::Indirect,
                    "ff" | "fast_failover" => GroupType::FastFailover,
                    _ => return err(format!("{v}: unknown group type")),
                }
            }
            "selection_method" | "selection_method_param" | "fields" => {
                return err(format!("{k} needs OpenFlow 1.5"));
            }
            _ => return err(format!("unknown keyword {k}")),
        }
        i += 1;
    }
    // Select buckets weigh 1 unless told otherwise, as in ovs-ofctl.
    if g.group_type == GroupType::Select {
        for (b, explicit) in g.buckets.iter_mut().zip(&weights) {
            if !explicit {
                b.weight = 1;
            }
        }
    }
    if !type_given && !g.buckets.is_empty() {
        return err("must specify a type");
    }
    Ok(g)
}

fn parse_bucket(parts: &[&str], names: PortNames) -> Result<Bucket, ParseError> {
    let mut b = Bucket {
        weight: 0,
        watch_port: OFPP_ANY,
        watch_group: OFPG_ANY,
        actions: Vec::new(),
    };
    let mut actions: Vec<&str> = Vec::new();
    for (n, p) in parts.iter().enumerate() {
        let (k, v) = match p.split_once([':', '=']) {
            Some((k, v)) => (k, Some(v)),
            None => (*p, None),
        };
        match (k, v) {
            ("weight", Some(v)) => b.weight = parse_uint(k, v, 0xffff)? as u16,
            ("watch_port", Some(v)) => b.watch_port = parse_port(v, names)?,
            ("watch_group", Some(v)) => b.watch_group = group_id(v)?,
            ("bucket_id", Some(_)) => {}
            ("actions", Some(v)) => {
                actions.push(v);
                actions.extend(&parts[n + 1..]);
                break;
            }
            _ => actions.push(p),
        }
    }
    b.actions = parse_action_list(&actions.join(","), names)?;
    Ok(b)
}

/// A parsed meter.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParsedMeter {
    /// `None` when the text did not say (del-meters, dump-meters: all meters).
    pub meter_id: Option<u32>,
    pub flags: u16,
    pub bands: Vec<MeterBand>,
}

/// Parses a meter (`add-meter`, `mod-meter`, `del-meters`, `dump-meters`).
pub fn parse_meter(s: &str) -> Result<ParsedMeter, ParseError> {
    let mut m = ParsedMeter {
        meter_id: None,
        flags: 0,
        bands: Vec::new(),
    };
    let items = split_commas(s);
    let mut in_bands = false;
    // (type, rate, burst, prec_level) of the band being read.
    let mut cur: Option<(String, u32, u32, u8)> = None;
    let finish = |cur: &mut Option<(String, u32, u32, u8)>,
                  bands: &mut Vec<MeterBand>|
     -> Result<(), ParseError> {
        if let Some((t, rate, burst_size, prec_level)) = cur.take() {
            bands.push(match t.as_str() {
                "drop" => MeterBand::Drop { rate, burst_size },
                "dscp_remark" => MeterBand::DscpRemark {
                    rate,
                    burst_size,
                    prec_level,
                },
                _ => return err(format!("{t}: unknown meter band type")),
            });
        }
        Ok(())
    };
    for item in items {
        let item = if let Some(rest) = item.strip_prefix("band=") {
            in_bands = true;
            rest
        } else {
            item
        };
        let (k, v) = item.split_once([':', '=']).unwrap_or((item, ""));
        if in_bands {
            match k {
                "type" => {
                    finish(&mut cur, &mut m.bands)?;
                    cur = Some((v.to_string(), 0, 0, 0));
                }
                "rate" | "burst_size" | "prec_level" => {
                    let Some(c) = cur.as_mut() else {
                        return err("band: type must come first");
                    };
                    let n = parse_uint(k, v, u128::from(u32::MAX))? as u32;
                    match k {
                        "rate" => c.1 = n,
                        "burst_size" => c.2 = n,
                        _ => c.3 = u8::try_from(n).map_err(|_| ParseError("prec_level".into()))?,
                    }
                }
                _ => return err(format!("unknown band keyword {k}")),
            }
            continue;
        }
        match k {
            "meter" => {
                m.meter_id = Some(match v {
                    "all" => OFPM_ALL,
                    "slowpath" => fuxi_openflow::consts::OFPM_SLOWPATH,
                    "controller" => fuxi_openflow::consts::OFPM_CONTROLLER,
                    _ => parse_uint(k, v, u128::from(u32::MAX))? as u32,
                })
            }
            "kbps" => m.flags |= flags::KBPS,
            "pktps" => m.flags |= flags::PKTPS,
            "burst" => m.flags |= flags::BURST,
            "stats" => m.flags |= flags::STATS,
            _ => return err(format!("unknown keyword {k}")),
        }
    }
    finish(&mut cur, &mut m.bands)?;
    if m.flags & (flags::KBPS | flags::PKTPS) == 0 && !m.bands.is_empty() {
        m.flags |= flags::KBPS;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::super::flowtext::no_names;
    use super::super::format::{format_group, format_meter_config};
    use super::*;
    use fuxi_openflow::msg::MeterConfig;

    #[test]
    fn groups_round_trip() {
        for (t, expect) in [
            (
                "group_id=1,type=select,bucket=output:1,bucket=output:2",
                "group_id=1,type=select,bucket=actions=output:1,bucket=actions=output:2",
            ),
            (
                "group_id=3,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:2,\
                 actions=output:2",
                "group_id=3,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:2,\
                 actions=output:2",
            ),
            (
                "group_id=4,type=indirect,bucket=actions=set_field:02:00:00:00:00:01->eth_dst,\
                 output:1",
                "group_id=4,type=indirect,bucket=actions=set_field:02:00:00:00:00:01->eth_dst,\
                 output:1",
            ),
        ] {
            let g = parse_group(t, &no_names).unwrap();
            assert_eq!(
                format_group(g.group_type, g.group_id.unwrap(), &g.buckets),
                expect
            );
        }
        assert!(parse_group("group_id=1,bucket=output:1", &no_names).is_err());
        assert!(parse_group("group_id=1,type=bogus", &no_names).is_err());
    }

    #[test]
    fn meters_round_trip() {
        let m = parse_meter(
            "meter=2,pktps,stats,band=type=drop,rate=10,type=dscp_remark,rate=5,prec_level=1",
        )
        .unwrap();
        let c = MeterConfig {
            flags: m.flags,
            meter_id: m.meter_id.unwrap(),
            bands: m.bands,
        };
        assert_eq!(
            format_meter_config(&c),
            "meter=2 pktps stats bands=\ntype=drop rate=10\ntype=dscp_remark rate=5 prec_level=1"
        );
        assert!(parse_meter("meter=1,band=rate=5").is_err());
    }
}
