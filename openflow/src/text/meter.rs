//! Meter text as `ovs-ofctl add-meter`/`dump-meters` use it:
//! `meter=1 kbps burst stats bands=type=drop rate=1000 burst_size=100`. After `bands=`, each
//! `type=` starts a new band.

use std::fmt::Write as _;

use super::ParseError;
use super::lex::{parse_c_uint, split_keyword, split_kv};
use crate::consts::OFPM_ALL;
use crate::msg::meter::{MeterBand, MeterConfig, MeterMod, MeterModCommand, flags};

/// Which command the meter text is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MeterUsage {
    /// `add-meter`/`mod-meter`.
    Add,
    /// `del-meters`/`dump-meters`: only `meter=` (default: all).
    Delete,
}

/// A meter as text describes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MeterSpec {
    pub meter_id: u32,
    /// `crate::msg::meter::flags` bits.
    pub flags: u16,
    pub bands: Vec<MeterBand>,
}

impl MeterSpec {
    /// The meter a METER_CONFIG reply entry describes.
    pub fn from_meter_config(c: &MeterConfig) -> MeterSpec {
        MeterSpec {
            meter_id: c.meter_id,
            flags: c.flags,
            bands: c.bands.clone(),
        }
    }

    pub fn to_meter_mod(&self, command: MeterModCommand) -> MeterMod {
        MeterMod {
            command,
            flags: self.flags,
            meter_id: self.meter_id,
            bands: self.bands.clone(),
        }
    }
}

const FLAG_NAMES: [(&str, u16); 4] = [
    ("kbps", flags::KBPS),
    ("pktps", flags::PKTPS),
    ("burst", flags::BURST),
    ("stats", flags::STATS),
];

fn num32(k: &str, v: &str) -> Result<u32, ParseError> {
    parse_c_uint(v)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ParseError::new(format!("invalid {k} \"{v}\"")))
}

/// Parses meter text.
pub fn parse_meter(s: &str, usage: MeterUsage) -> Result<MeterSpec, ParseError> {
    // `bands=`, or `band=`, which ovs-ofctl takes too.
    let (head, bands_text) = match split_keyword(s, "band") {
        Some((h, b)) => (h, Some(b)),
        None => (s, None),
    };
    let mut m = MeterSpec {
        meter_id: OFPM_ALL,
        flags: 0,
        bands: Vec::new(),
    };
    let mut have_id = false;
    for (k, v) in split_kv(head)? {
        if k == "meter" {
            m.meter_id = if v.eq_ignore_ascii_case("all") {
                OFPM_ALL
            } else {
                num32(k, v)?
            };
            have_id = true;
        } else if let Some((_, bit)) = FLAG_NAMES.iter().find(|(n, _)| *n == k)
            && usage == MeterUsage::Add
        {
            m.flags |= bit;
        } else {
            return Err(ParseError::new(format!("unknown keyword {k}")));
        }
    }
    if usage == MeterUsage::Delete {
        if bands_text.is_some() {
            return Err(ParseError::new("bands are not allowed here"));
        }
        return Ok(m);
    }
    if !have_id {
        return Err(ParseError::new("must specify a meter id"));
    }
    if m.flags & (flags::KBPS | flags::PKTPS) == 0 {
        m.flags |= flags::KBPS;
    }
    // (type, rate, burst_size, prec_level) under construction.
    let mut cur: Option<(u16, u32, u32, u8)> = None;
    let mut bands = Vec::new();
    let finish = |c: Option<(u16, u32, u32, u8)>, bands: &mut Vec<MeterBand>| {
        if let Some((t, rate, burst_size, prec_level)) = c {
            bands.push(if t == 1 {
                MeterBand::Drop { rate, burst_size }
            } else {
                MeterBand::DscpRemark {
                    rate,
                    burst_size,
                    prec_level,
                }
            });
        }
    };
    for (k, v) in split_kv(bands_text.unwrap_or(""))? {
        match k {
            "type" => {
                finish(cur.take(), &mut bands);
                let t = match v {
                    "drop" => 1,
                    "dscp_remark" => 2,
                    _ => return Err(ParseError::new(format!("unknown band type \"{v}\""))),
                };
                cur = Some((t, 0, 0, 0));
            }
            "rate" | "burst_size" | "prec_level" => {
                let Some(c) = cur.as_mut() else {
                    return Err(ParseError::new(format!("{k} before a band type")));
                };
                match k {
                    "rate" => c.1 = num32(k, v)?,
                    "burst_size" => c.2 = num32(k, v)?,
                    _ => {
                        c.3 = u8::try_from(num32(k, v)?)
                            .map_err(|_| ParseError::new(format!("invalid {k} \"{v}\"")))?
                    }
                }
            }
            _ => return Err(ParseError::new(format!("unknown keyword {k}"))),
        }
    }
    finish(cur, &mut bands);
    m.bands = bands;
    Ok(m)
}

/// Prints a meter on one line in the syntax `add-meter` takes (`dump-meters` prints the
/// same words with a line break after `bands=` and between bands).
pub fn format_meter(m: &MeterSpec) -> String {
    let mut out = String::from("meter=");
    if m.meter_id == OFPM_ALL {
        out.push_str("all");
    } else {
        let _ = write!(out, "{}", m.meter_id);
    }
    for (name, bit) in FLAG_NAMES {
        if m.flags & bit != 0 {
            let _ = write!(out, " {name}");
        }
    }
    out.push_str(" bands=");
    for (i, b) in m.bands.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match b {
            MeterBand::Drop { rate, burst_size } => {
                let _ = write!(out, "type=drop rate={rate}");
                if *burst_size != 0 {
                    let _ = write!(out, " burst_size={burst_size}");
                }
            }
            MeterBand::DscpRemark {
                rate,
                burst_size,
                prec_level,
            } => {
                let _ = write!(out, "type=dscp_remark rate={rate}");
                if *burst_size != 0 {
                    let _ = write!(out, " burst_size={burst_size}");
                }
                let _ = write!(out, " prec_level={prec_level}");
            }
            MeterBand::Experimenter {
                rate,
                burst_size,
                experimenter,
                ..
            } => {
                let _ = write!(
                    out,
                    "type=experimenter rate={rate} burst_size={burst_size} experimenter={experimenter:#x}"
                );
            }
        }
    }
    out
}

/// Prints a meter as `ovs-ofctl -O OpenFlow13 dump-meters` does: a line break after
/// `bands=` and between bands (no trailing newline).
pub fn format_meter_dump(m: &MeterSpec) -> String {
    let one = format_meter(m);
    let (head, bands) = one.split_once(" bands=").unwrap_or((&one, ""));
    let mut out = format!("{head} bands=");
    for band in bands.split(" type=").filter(|b| !b.is_empty()) {
        out.push('\n');
        if !band.starts_with("type=") {
            out.push_str("type=");
        }
        out.push_str(band);
    }
    out
}
