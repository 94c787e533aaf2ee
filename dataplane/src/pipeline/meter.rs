//! Meters (spec §5.7, §6.6): token-bucket bands, meter-mod semantics, and the per-packet
//! verdict. Time comes in as `now`; state changes only through `&mut self`.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use fuxi_openflow::ErrorCode;
use fuxi_openflow::consts::{OFPM_ALL, OFPM_MAX};

use super::Nanos;

/// `ofp_meter_flags`.
pub mod mflags {
    /// Rate in kb/s.
    pub const KBPS: u16 = 1 << 0;
    /// Rate in packets/s.
    pub const PKTPS: u16 = 1 << 1;
    /// Use the bands' burst sizes.
    pub const BURST: u16 = 1 << 2;
    /// Collect statistics.
    pub const STATS: u16 = 1 << 3;
}

/// A meter band.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Band {
    /// OFPMBT_DROP.
    Drop {
        /// Rate (kb/s or packets/s per the meter's flags).
        rate: u32,
        /// Burst (kb or packets), used with `mflags::BURST`.
        burst: u32,
    },
    /// OFPMBT_DSCP_REMARK: raise the drop precedence of the DSCP by `prec_level`.
    DscpRemark {
        /// Rate.
        rate: u32,
        /// Burst.
        burst: u32,
        /// Drop-precedence levels to add.
        prec_level: u8,
    },
}

impl Band {
    fn rate(&self) -> u32 {
        match *self {
            Band::Drop { rate, .. } | Band::DscpRemark { rate, .. } => rate,
        }
    }
    fn burst(&self) -> u32 {
        match *self {
            Band::Drop { burst, .. } | Band::DscpRemark { burst, .. } => burst,
        }
    }
}

/// A meter's configuration.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MeterConfig {
    /// `mflags::*`.
    pub flags: u16,
    /// Bands.
    pub bands: Vec<Band>,
}

/// `ofp_meter_mod_command`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MeterModCommand {
    /// OFPMC_ADD.
    Add,
    /// OFPMC_MODIFY.
    Modify,
    /// OFPMC_DELETE.
    Delete,
}

/// A meter-mod as the pipeline takes it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MeterMod {
    /// What to do.
    pub command: MeterModCommand,
    /// Meter id, or OFPM_ALL (delete).
    pub meter_id: u32,
    /// Configuration (add/modify).
    pub config: MeterConfig,
}

/// What a meter says about one packet.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Verdict {
    /// Under every band's rate.
    Pass,
    /// A drop band applies.
    Drop,
    /// A DSCP remark band applies: add this many drop-precedence levels.
    Remark(u8),
}

#[derive(Clone, Debug)]
struct BandState {
    /// Tokens in milli-units (milli-bits or milli-packets).
    tokens: u128,
    packets: u64,
    bytes: u64,
}

/// A meter and its state.
#[derive(Clone, Debug)]
pub struct Meter {
    /// Configuration.
    pub config: MeterConfig,
    bands: Vec<BandState>,
    last: Nanos,
    created: Nanos,
    /// Packets seen.
    pub packets_in: u64,
    /// Bytes seen.
    pub bytes_in: u64,
}

impl Meter {
    fn new(config: MeterConfig, now: Nanos) -> Meter {
        let bands = config
            .bands
            .iter()
            .map(|b| BandState {
                tokens: capacity(config.flags, b),
                packets: 0,
                bytes: 0,
            })
            .collect();
        Meter {
            config,
            bands,
            last: now,
            created: now,
            packets_in: 0,
            bytes_in: 0,
        }
    }

    /// Per band: (packets, bytes) it acted on.
    pub fn band_stats(&self) -> Vec<(u64, u64)> {
        self.bands.iter().map(|b| (b.packets, b.bytes)).collect()
    }

    /// Lifetime at `now`.
    pub fn duration(&self, now: Nanos) -> Nanos {
        now.saturating_sub(self.created)
    }
}

/// Bucket capacity of a band in milli-units.
fn capacity(flags: u16, b: &Band) -> u128 {
    let units = if flags & mflags::BURST != 0 && b.burst() != 0 {
        b.burst()
    } else {
        b.rate()
    };
    let scale = if flags & mflags::PKTPS != 0 { 1 } else { 1000 }; // kb → bits
    u128::from(units) * scale * 1000
}

/// The meter table. Each meter's buckets sit behind their own mutex so that datapath threads
/// can meter through a shared `&Pipeline`; a meter is only locked for one packet's update.
#[derive(Debug, Default)]
pub struct Meters {
    meters: BTreeMap<u32, Mutex<Meter>>,
}

impl Clone for Meters {
    fn clone(&self) -> Self {
        let meters = self
            .meters
            .iter()
            .map(|(id, m)| {
                (
                    *id,
                    Mutex::new(m.lock().unwrap_or_else(PoisonError::into_inner).clone()),
                )
            })
            .collect();
        Meters { meters }
    }
}

impl Meters {
    /// Whether meter `id` exists.
    pub fn contains(&self, id: u32) -> bool {
        self.meters.contains_key(&id)
    }

    /// A snapshot of meter `id` (configuration and counters).
    pub fn get(&self, id: u32) -> Option<Meter> {
        let m = self.meters.get(&id)?;
        Some(m.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }

    /// Ids of every meter.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.meters.keys().copied()
    }

    /// Applies a meter-mod; returns the ids of deleted meters.
    pub(super) fn apply(&mut self, mm: &MeterMod, now: Nanos) -> Result<Vec<u32>, ErrorCode> {
        match mm.command {
            MeterModCommand::Add | MeterModCommand::Modify => {
                if mm.meter_id == 0 || mm.meter_id > OFPM_MAX {
                    return Err(ErrorCode::METER_MOD_INVALID_METER);
                }
                let f = mm.config.flags;
                if f & !(mflags::KBPS | mflags::PKTPS | mflags::BURST | mflags::STATS) != 0
                    || (f & mflags::KBPS != 0 && f & mflags::PKTPS != 0)
                {
                    return Err(ErrorCode::METER_MOD_BAD_FLAGS);
                }
                if mm.config.bands.iter().any(|b| b.rate() == 0) {
                    return Err(ErrorCode::METER_MOD_BAD_RATE);
                }
                let exists = self.meters.contains_key(&mm.meter_id);
                if mm.command == MeterModCommand::Add && exists {
                    return Err(ErrorCode::METER_MOD_METER_EXISTS);
                }
                if mm.command == MeterModCommand::Modify && !exists {
                    return Err(ErrorCode::METER_MOD_UNKNOWN_METER);
                }
                let meter = Meter::new(mm.config.clone(), now);
                self.meters.insert(mm.meter_id, Mutex::new(meter));
                Ok(vec![])
            }
            MeterModCommand::Delete => {
                let doomed: Vec<u32> = if mm.meter_id == OFPM_ALL {
                    self.meters.keys().copied().collect()
                } else {
                    self.meters
                        .remove(&mm.meter_id)
                        .map(|_| mm.meter_id)
                        .into_iter()
                        .collect()
                };
                for id in &doomed {
                    self.meters.remove(id);
                }
                Ok(doomed)
            }
        }
    }

    /// Runs a packet of `len` bytes through meter `id` at `now`. An unknown meter passes.
    pub fn meter(&self, id: u32, len: usize, now: Nanos) -> Verdict {
        let Some(m) = self.meters.get(&id) else {
            return Verdict::Pass;
        };
        let mut m = m.lock().unwrap_or_else(PoisonError::into_inner);
        let m = &mut *m;
        m.packets_in += 1;
        m.bytes_in += len as u64;
        let elapsed = u128::from(now.saturating_sub(m.last));
        m.last = m.last.max(now);
        let pktps = m.config.flags & mflags::PKTPS != 0;
        let cost: u128 = if pktps { 1000 } else { len as u128 * 8 * 1000 };
        // The exceeded band with the highest rate applies.
        let mut hit: Option<usize> = None;
        for (i, (band, st)) in m.config.bands.iter().zip(m.bands.iter_mut()).enumerate() {
            let per_sec: u128 = u128::from(band.rate()) * if pktps { 1 } else { 1000 } * 1000;
            let cap = capacity(m.config.flags, band);
            st.tokens = (st.tokens + elapsed * per_sec / 1_000_000_000).min(cap);
            if st.tokens >= cost {
                st.tokens -= cost;
            } else if hit.is_none_or(|h| m.config.bands[h].rate() < band.rate()) {
                hit = Some(i);
            }
        }
        let Some(i) = hit else { return Verdict::Pass };
        m.bands[i].packets += 1;
        m.bands[i].bytes += len as u64;
        match m.config.bands[i] {
            Band::Drop { .. } => Verdict::Drop,
            Band::DscpRemark { prec_level, .. } => Verdict::Remark(prec_level),
        }
    }
}

/// The DSCP after raising its drop precedence by `levels` (RFC 2597 AF classes only; other
/// code points are left alone).
pub fn remark_dscp(dscp: u8, levels: u8) -> u8 {
    let class = dscp >> 3;
    let dp = (dscp >> 1) & 3;
    if (1..=4).contains(&class) && dscp & 1 == 0 && (1..=3).contains(&dp) {
        let dp = (dp + levels).min(3);
        (class << 3) | (dp << 1)
    } else {
        dscp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Nanos = 1_000_000;

    fn meters(flags: u16, band: Band) -> Meters {
        let mut m = Meters::default();
        let mm = MeterMod {
            command: MeterModCommand::Add,
            meter_id: 1,
            config: MeterConfig {
                flags,
                bands: vec![band],
            },
        };
        m.apply(&mm, 0).unwrap();
        m
    }

    #[test]
    fn pktps_drop_band_limits_rate() {
        // 100 packets/s, burst 10.
        let m = meters(
            mflags::PKTPS | mflags::BURST,
            Band::Drop {
                rate: 100,
                burst: 10,
            },
        );
        let passed = (0..50)
            .filter(|_| m.meter(1, 64, 0) == Verdict::Pass)
            .count();
        assert_eq!(passed, 10, "burst allows 10 back to back");
        // 100 ms later: 10 more tokens.
        let passed = (0..50)
            .filter(|_| m.meter(1, 64, 100 * MS) == Verdict::Pass)
            .count();
        assert_eq!(passed, 10);
        assert_eq!(m.get(1).unwrap().band_stats()[0].0, 80);
    }

    #[test]
    fn kbps_remark_band() {
        // 8 kb/s, burst 8 kb = 1000 bytes.
        let m = meters(
            mflags::KBPS | mflags::BURST,
            Band::DscpRemark {
                rate: 8,
                burst: 8,
                prec_level: 1,
            },
        );
        assert_eq!(m.meter(1, 1000, 0), Verdict::Pass);
        assert_eq!(m.meter(1, 1, 0), Verdict::Remark(1));
        // One second refills 1000 bytes.
        assert_eq!(m.meter(1, 1000, 1_000_000_000), Verdict::Pass);
    }

    #[test]
    fn meter_mod_errors() {
        let mut m = meters(mflags::PKTPS, Band::Drop { rate: 1, burst: 0 });
        let add = MeterMod {
            command: MeterModCommand::Add,
            meter_id: 1,
            config: MeterConfig {
                flags: mflags::PKTPS,
                bands: vec![],
            },
        };
        assert_eq!(m.apply(&add, 0), Err(ErrorCode::METER_MOD_METER_EXISTS));
        let modify = MeterMod {
            command: MeterModCommand::Modify,
            meter_id: 2,
            ..add.clone()
        };
        assert_eq!(m.apply(&modify, 0), Err(ErrorCode::METER_MOD_UNKNOWN_METER));
        let both = MeterMod {
            meter_id: 3,
            config: MeterConfig {
                flags: mflags::PKTPS | mflags::KBPS,
                bands: vec![],
            },
            ..add.clone()
        };
        assert_eq!(m.apply(&both, 0), Err(ErrorCode::METER_MOD_BAD_FLAGS));
        let del = MeterMod {
            command: MeterModCommand::Delete,
            meter_id: OFPM_ALL,
            ..add
        };
        assert_eq!(m.apply(&del, 0), Ok(vec![1]));
        assert!(!m.contains(1));
    }

    #[test]
    fn af_drop_precedence() {
        assert_eq!(remark_dscp(10, 1), 12); // AF11 → AF12
        assert_eq!(remark_dscp(14, 1), 14); // AF13 stays
        assert_eq!(remark_dscp(46, 1), 46); // EF untouched
    }
}
