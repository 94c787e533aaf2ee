//! Meters: METER_MOD with its bands, and the meter multipart bodies (meter stats, meter
//! configuration, meter features).

use bytes::BufMut;

use crate::error::{DecodeError, ErrorCode, fail};
use crate::wire::{Rd, element, need};

/// METER_MOD and meter-config flag bits.
pub mod flags {
    pub const KBPS: u16 = 1 << 0;
    pub const PKTPS: u16 = 1 << 1;
    pub const BURST: u16 = 1 << 2;
    pub const STATS: u16 = 1 << 3;
    pub const ALL: u16 = 0xf;
}

pub const OFPMBT_DROP: u16 = 1;
pub const OFPMBT_DSCP_REMARK: u16 = 2;
pub const OFPMBT_EXPERIMENTER: u16 = 0xffff;

/// `ofp_meter_mod_command`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u16)]
pub enum MeterModCommand {
    Add = 0,
    Modify = 1,
    Delete = 2,
}

/// One meter band.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |             type              |              len              |
/// +-------------------------------+-------------------------------+
/// |                             rate                              |
/// +---------------------------------------------------------------+
/// |                          burst_size                           |
/// +---------------------------------------------------------------+
/// | DROP: pad(4) | DSCP_REMARK: prec_level, pad(3) |              |
/// | EXPERIMENTER: experimenter, then data                         |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum MeterBand {
    Drop {
        rate: u32,
        burst_size: u32,
    },
    DscpRemark {
        rate: u32,
        burst_size: u32,
        prec_level: u8,
    },
    /// `data` follows the experimenter id up to the band's length.
    Experimenter {
        rate: u32,
        burst_size: u32,
        experimenter: u32,
        data: Vec<u8>,
    },
}

impl MeterBand {
    pub fn wire_len(&self) -> usize {
        match self {
            MeterBand::Experimenter { data, .. } => 16 + data.len(),
            _ => 16,
        }
    }

    pub fn rate(&self) -> u32 {
        match self {
            MeterBand::Drop { rate, .. }
            | MeterBand::DscpRemark { rate, .. }
            | MeterBand::Experimenter { rate, .. } => *rate,
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        let (btype, rate, burst) = match self {
            MeterBand::Drop { rate, burst_size } => (OFPMBT_DROP, rate, burst_size),
            MeterBand::DscpRemark {
                rate, burst_size, ..
            } => (OFPMBT_DSCP_REMARK, rate, burst_size),
            MeterBand::Experimenter {
                rate, burst_size, ..
            } => (OFPMBT_EXPERIMENTER, rate, burst_size),
        };
        buf.put_u16(btype);
        buf.put_u16(self.wire_len() as u16);
        buf.put_u32(*rate);
        buf.put_u32(*burst);
        match self {
            MeterBand::Drop { .. } => buf.put_bytes(0, 4),
            MeterBand::DscpRemark { prec_level, .. } => {
                buf.put_u8(*prec_level);
                buf.put_bytes(0, 3);
            }
            MeterBand::Experimenter {
                experimenter, data, ..
            } => {
                buf.put_u32(*experimenter);
                buf.put_slice(data);
            }
        }
    }

    /// Unknown band type is METER_MOD_FAILED/BAD_BAND; a length that does not fit the type
    /// is BAD_REQUEST/BAD_LEN.
    pub fn decode(buf: &mut &[u8]) -> Result<MeterBand, DecodeError> {
        let mut b = element(
            buf,
            2,
            16,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "meter band length does not fit",
        )?;
        let btype = b.u16();
        let len = usize::from(b.u16());
        let rate = b.u32();
        let burst_size = b.u32();
        match btype {
            OFPMBT_DROP | OFPMBT_DSCP_REMARK if len != 16 => {
                fail(ErrorCode::BAD_REQUEST_BAD_LEN, "meter band is not 16 bytes")
            }
            OFPMBT_DROP => Ok(MeterBand::Drop { rate, burst_size }),
            OFPMBT_DSCP_REMARK => Ok(MeterBand::DscpRemark {
                rate,
                burst_size,
                prec_level: b.u8(),
            }),
            OFPMBT_EXPERIMENTER => Ok(MeterBand::Experimenter {
                rate,
                burst_size,
                experimenter: b.u32(),
                data: b.to_vec(),
            }),
            _ => fail(ErrorCode::METER_MOD_BAD_BAND, "unknown meter band type"),
        }
    }

    pub fn list_len(bands: &[MeterBand]) -> usize {
        bands.iter().map(MeterBand::wire_len).sum()
    }

    pub fn decode_all(buf: &mut &[u8]) -> Result<Vec<MeterBand>, DecodeError> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            out.push(MeterBand::decode(buf)?);
        }
        Ok(out)
    }
}

/// OFPT_METER_MOD body.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |            command            |             flags             |
/// +-------------------------------+-------------------------------+
/// |                           meter_id                            |
/// +---------------------------------------------------------------+
/// |                           bands ...                           |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MeterMod {
    pub command: MeterModCommand,
    /// [`flags`] bits.
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl MeterMod {
    pub const FIXED_LEN: usize = 8;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + MeterBand::list_len(&self.bands)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.command as u16);
        buf.put_u16(self.flags);
        buf.put_u32(self.meter_id);
        for b in &self.bands {
            b.encode(buf);
        }
    }

    /// Unknown command is METER_MOD_FAILED/BAD_COMMAND; unknown flags, or both KBPS and
    /// PKTPS, BAD_FLAGS.
    pub fn decode(buf: &mut &[u8]) -> Result<MeterMod, DecodeError> {
        need(buf, Self::FIXED_LEN, "truncated meter mod")?;
        let command = match buf.u16() {
            0 => MeterModCommand::Add,
            1 => MeterModCommand::Modify,
            2 => MeterModCommand::Delete,
            _ => return fail(ErrorCode::METER_MOD_BAD_COMMAND, "unknown meter command"),
        };
        let flags = buf.u16();
        if flags & !self::flags::ALL != 0 {
            return fail(ErrorCode::METER_MOD_BAD_FLAGS, "unknown meter flags");
        }
        if flags & self::flags::KBPS != 0 && flags & self::flags::PKTPS != 0 {
            return fail(ErrorCode::METER_MOD_BAD_FLAGS, "both KBPS and PKTPS");
        }
        let meter_id = buf.u32();
        Ok(MeterMod {
            command,
            flags,
            meter_id,
            bands: MeterBand::decode_all(buf)?,
        })
    }
}

/// One meter's configuration in the meter-config reply (`ofp_meter_config`).
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |            length             |             flags             |
/// +-------------------------------+-------------------------------+
/// |                           meter_id                            |
/// +---------------------------------------------------------------+
/// |                           bands ...                           |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MeterConfig {
    pub flags: u16,
    pub meter_id: u32,
    pub bands: Vec<MeterBand>,
}

impl MeterConfig {
    pub fn wire_len(&self) -> usize {
        8 + MeterBand::list_len(&self.bands)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.wire_len() as u16);
        buf.put_u16(self.flags);
        buf.put_u32(self.meter_id);
        for b in &self.bands {
            b.encode(buf);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<MeterConfig, DecodeError> {
        let mut b = element(
            buf,
            0,
            8,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "meter config length does not fit",
        )?;
        b.skip(2);
        let flags = b.u16();
        let meter_id = b.u32();
        Ok(MeterConfig {
            flags,
            meter_id,
            bands: MeterBand::decode_all(&mut b)?,
        })
    }
}

/// Per-band counters in meter stats.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MeterBandStats {
    pub packet_band_count: u64,
    pub byte_band_count: u64,
}

/// One meter's statistics (`ofp_meter_stats`).
///
/// ```text
/// +---------------------------------------------------------------+
/// |                           meter_id                            |
/// +-------------------------------+-------------------------------+
/// |              len              |            pad (6) ...        |
/// +-------------------------------+-------------------------------+
/// |                          flow_count                           |
/// +---------------------------------------------------------------+
/// |      packet_in_count (64)     |     byte_in_count (64)        |
/// +---------------------------------------------------------------+
/// |         duration_sec          |       duration_nsec           |
/// +---------------------------------------------------------------+
/// |                band_stats (16 bytes each) ...                 |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct MeterStats {
    pub meter_id: u32,
    pub flow_count: u32,
    pub packet_in_count: u64,
    pub byte_in_count: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub band_stats: Vec<MeterBandStats>,
}

impl MeterStats {
    pub fn wire_len(&self) -> usize {
        40 + 16 * self.band_stats.len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.meter_id);
        buf.put_u16(self.wire_len() as u16);
        buf.put_bytes(0, 6);
        buf.put_u32(self.flow_count);
        buf.put_u64(self.packet_in_count);
        buf.put_u64(self.byte_in_count);
        buf.put_u32(self.duration_sec);
        buf.put_u32(self.duration_nsec);
        for s in &self.band_stats {
            buf.put_u64(s.packet_band_count);
            buf.put_u64(s.byte_band_count);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<MeterStats, DecodeError> {
        let mut b = element(
            buf,
            4,
            40,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "meter stats length does not fit",
        )?;
        if (b.len() - 40) % 16 != 0 {
            return fail(ErrorCode::BAD_REQUEST_BAD_LEN, "partial meter band stats");
        }
        let meter_id = b.u32();
        b.skip(8);
        let mut s = MeterStats {
            meter_id,
            flow_count: b.u32(),
            packet_in_count: b.u64(),
            byte_in_count: b.u64(),
            duration_sec: b.u32(),
            duration_nsec: b.u32(),
            band_stats: Vec::new(),
        };
        while !b.is_empty() {
            s.band_stats.push(MeterBandStats {
                packet_band_count: b.u64(),
                byte_band_count: b.u64(),
            });
        }
        Ok(s)
    }
}

/// Meter features reply (`ofp_meter_features`).
///
/// ```text
/// +---------------------------------------------------------------+
/// |                           max_meter                           |
/// +---------------------------------------------------------------+
/// |                  band_types (bit = OFPMBT_*)                  |
/// +---------------------------------------------------------------+
/// |                capabilities (bit = OFPMF_*)                   |
/// +---------------+---------------+-------------------------------+
/// |   max_bands   |   max_color   |            pad (2)            |
/// +---------------+---------------+-------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct MeterFeatures {
    pub max_meter: u32,
    pub band_types: u32,
    pub capabilities: u32,
    pub max_bands: u8,
    pub max_color: u8,
}

impl MeterFeatures {
    pub const LEN: usize = 16;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.max_meter);
        buf.put_u32(self.band_types);
        buf.put_u32(self.capabilities);
        buf.put_u8(self.max_bands);
        buf.put_u8(self.max_color);
        buf.put_bytes(0, 2);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<MeterFeatures, DecodeError> {
        need(buf, Self::LEN, "truncated meter features")?;
        let f = MeterFeatures {
            max_meter: buf.u32(),
            band_types: buf.u32(),
            capabilities: buf.u32(),
            max_bands: buf.u8(),
            max_color: buf.u8(),
        };
        buf.skip(2);
        Ok(f)
    }
}
