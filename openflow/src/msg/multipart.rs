//! MULTIPART_REQUEST and MULTIPART_REPLY: the multipart header, every request and reply
//! body of OpenFlow 1.3, the statistics structures that only appear here, and splitting a
//! long reply into several messages under the 64 KiB limit (and reassembling them).
//! Group, meter, port and table-feature structures shared with other messages live in their
//! own modules.

use bytes::BufMut;

use crate::error::{DecodeError, ErrorCode, fail};
use crate::header::*;
use crate::instruction::Instruction;
use crate::msg::group::{GroupDesc, GroupFeatures, GroupStats};
use crate::msg::meter::{MeterConfig, MeterFeatures, MeterStats};
use crate::msg::port::Port;
use crate::msg::switch::Experimenter;
use crate::msg::table_features::TableFeatures;
use crate::oxm::Match;
use crate::wire::{Rd, element, get_str, need, put_str};

/// Length of the multipart header after `ofp_header`: type, flags, pad.
pub const MULTIPART_HEADER_LEN: usize = 8;

/// Description string lengths.
pub const DESC_STR_LEN: usize = 256;
pub const SERIAL_NUM_LEN: usize = 32;

/// Switch description (`ofp_desc`), the DESC reply.
///
/// ```text
/// +---------------------------------------------------------------+
/// | mfr_desc (256) | hw_desc (256) | sw_desc (256) |              |
/// | serial_num (32) | dp_desc (256)   (NUL-padded strings)        |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Desc {
    pub mfr_desc: String,
    pub hw_desc: String,
    pub sw_desc: String,
    pub serial_num: String,
    pub dp_desc: String,
}

impl Desc {
    pub const LEN: usize = 4 * DESC_STR_LEN + SERIAL_NUM_LEN;

    pub fn encode(&self, buf: &mut impl BufMut) {
        put_str(buf, &self.mfr_desc, DESC_STR_LEN);
        put_str(buf, &self.hw_desc, DESC_STR_LEN);
        put_str(buf, &self.sw_desc, DESC_STR_LEN);
        put_str(buf, &self.serial_num, SERIAL_NUM_LEN);
        put_str(buf, &self.dp_desc, DESC_STR_LEN);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Desc, DecodeError> {
        need(buf, Self::LEN, "truncated switch description")?;
        Ok(Desc {
            mfr_desc: get_str(buf, DESC_STR_LEN),
            hw_desc: get_str(buf, DESC_STR_LEN),
            sw_desc: get_str(buf, DESC_STR_LEN),
            serial_num: get_str(buf, SERIAL_NUM_LEN),
            dp_desc: get_str(buf, DESC_STR_LEN),
        })
    }
}

/// FLOW and AGGREGATE request body (`ofp_flow_stats_request`).
///
/// ```text
/// +---------------+-----------------------------------------------+
/// |   table_id    |                    pad (3)                    |
/// +---------------+-----------------------------------------------+
/// |                           out_port                            |
/// +---------------------------------------------------------------+
/// |                          out_group                            |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |                 cookie (64)   |   cookie_mask (64)            |
/// +---------------------------------------------------------------+
/// |                    match (ofp_match, padded)                  |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FlowStatsRequest {
    pub table_id: u8,
    pub out_port: u32,
    pub out_group: u32,
    pub cookie: u64,
    pub cookie_mask: u64,
    pub match_: Match,
}

impl FlowStatsRequest {
    pub const FIXED_LEN: usize = 32;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + self.match_.wire_len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.table_id);
        buf.put_bytes(0, 3);
        buf.put_u32(self.out_port);
        buf.put_u32(self.out_group);
        buf.put_bytes(0, 4);
        buf.put_u64(self.cookie);
        buf.put_u64(self.cookie_mask);
        self.match_.encode(buf);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<FlowStatsRequest, DecodeError> {
        need(buf, Self::FIXED_LEN + 8, "truncated flow stats request")?;
        let table_id = buf.u8();
        buf.skip(3);
        let out_port = buf.u32();
        let out_group = buf.u32();
        buf.skip(4);
        Ok(FlowStatsRequest {
            table_id,
            out_port,
            out_group,
            cookie: buf.u64(),
            cookie_mask: buf.u64(),
            match_: Match::decode(buf)?,
        })
    }
}

/// One flow in the FLOW reply (`ofp_flow_stats`).
///
/// ```text
/// +-------------------------------+---------------+---------------+
/// |            length             |   table_id    |      pad      |
/// +-------------------------------+---------------+---------------+
/// |          duration_sec         |        duration_nsec          |
/// +-------------------------------+-------------------------------+
/// |   priority    | idle_timeout  | hard_timeout  |    flags      |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |  cookie (64) | packet_count (64) | byte_count (64)            |
/// +---------------------------------------------------------------+
/// |           match (ofp_match, padded), instructions ...         |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct FlowStats {
    pub table_id: u8,
    pub duration_sec: u32,
    pub duration_nsec: u32,
    pub priority: u16,
    pub idle_timeout: u16,
    pub hard_timeout: u16,
    pub flags: u16,
    pub cookie: u64,
    pub packet_count: u64,
    pub byte_count: u64,
    pub match_: Match,
    pub instructions: Vec<Instruction>,
}

impl FlowStats {
    pub const FIXED_LEN: usize = 48;

    pub fn wire_len(&self) -> usize {
        Self::FIXED_LEN + self.match_.wire_len() + Instruction::list_len(&self.instructions)
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.wire_len() as u16);
        buf.put_u8(self.table_id);
        buf.put_u8(0);
        buf.put_u32(self.duration_sec);
        buf.put_u32(self.duration_nsec);
        buf.put_u16(self.priority);
        buf.put_u16(self.idle_timeout);
        buf.put_u16(self.hard_timeout);
        buf.put_u16(self.flags);
        buf.put_bytes(0, 4);
        buf.put_u64(self.cookie);
        buf.put_u64(self.packet_count);
        buf.put_u64(self.byte_count);
        self.match_.encode(buf);
        Instruction::encode_list(&self.instructions, buf);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<FlowStats, DecodeError> {
        let mut b = element(
            buf,
            0,
            Self::FIXED_LEN + 8,
            ErrorCode::BAD_REQUEST_BAD_LEN,
            "flow stats length does not fit",
        )?;
        b.skip(2);
        let table_id = b.u8();
        b.skip(1);
        let duration_sec = b.u32();
        let duration_nsec = b.u32();
        let priority = b.u16();
        let idle_timeout = b.u16();
        let hard_timeout = b.u16();
        let flags = b.u16();
        b.skip(4);
        Ok(FlowStats {
            table_id,
            duration_sec,
            duration_nsec,
            priority,
            idle_timeout,
            hard_timeout,
            flags,
            cookie: b.u64(),
            packet_count: b.u64(),
            byte_count: b.u64(),
            match_: Match::decode_reported(&mut b)?,
            instructions: Instruction::decode_all(&mut b)?,
        })
    }
}

/// AGGREGATE reply body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |        packet_count (64)       |      byte_count (64)         |
/// +---------------------------------------------------------------+
/// |          flow_count            |          pad (4)             |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct AggregateStats {
    pub packet_count: u64,
    pub byte_count: u64,
    pub flow_count: u32,
}

impl AggregateStats {
    pub const LEN: usize = 24;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u64(self.packet_count);
        buf.put_u64(self.byte_count);
        buf.put_u32(self.flow_count);
        buf.put_bytes(0, 4);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<AggregateStats, DecodeError> {
        need(buf, Self::LEN, "truncated aggregate stats")?;
        let s = AggregateStats {
            packet_count: buf.u64(),
            byte_count: buf.u64(),
            flow_count: buf.u32(),
        };
        buf.skip(4);
        Ok(s)
    }
}

/// One table in the TABLE reply (`ofp_table_stats`).
///
/// ```text
/// +---------------+-----------------------------------------------+
/// |   table_id    |                    pad (3)                    |
/// +---------------+-----------------------------------------------+
/// |                         active_count                          |
/// +---------------------------------------------------------------+
/// |      lookup_count (64)        |     matched_count (64)        |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct TableStats {
    pub table_id: u8,
    pub active_count: u32,
    pub lookup_count: u64,
    pub matched_count: u64,
}

impl TableStats {
    pub const LEN: usize = 24;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.table_id);
        buf.put_bytes(0, 3);
        buf.put_u32(self.active_count);
        buf.put_u64(self.lookup_count);
        buf.put_u64(self.matched_count);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<TableStats, DecodeError> {
        need(buf, Self::LEN, "truncated table stats")?;
        let table_id = buf.u8();
        buf.skip(3);
        Ok(TableStats {
            table_id,
            active_count: buf.u32(),
            lookup_count: buf.u64(),
            matched_count: buf.u64(),
        })
    }
}

/// One port in the PORT_STATS reply (`ofp_port_stats`).
///
/// ```text
/// +---------------------------------------------------------------+
/// |            port_no             |           pad (4)            |
/// +---------------------------------------------------------------+
/// | rx_packets tx_packets rx_bytes tx_bytes rx_dropped tx_dropped |
/// | rx_errors tx_errors rx_frame_err rx_over_err rx_crc_err       |
/// | collisions                                   (u64 each)       |
/// +---------------------------------------------------------------+
/// |          duration_sec          |        duration_nsec         |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PortStats {
    pub port_no: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_frame_err: u64,
    pub rx_over_err: u64,
    pub rx_crc_err: u64,
    pub collisions: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

impl PortStats {
    pub const LEN: usize = 112;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.port_no);
        buf.put_bytes(0, 4);
        for c in [
            self.rx_packets,
            self.tx_packets,
            self.rx_bytes,
            self.tx_bytes,
            self.rx_dropped,
            self.tx_dropped,
            self.rx_errors,
            self.tx_errors,
            self.rx_frame_err,
            self.rx_over_err,
            self.rx_crc_err,
            self.collisions,
        ] {
            buf.put_u64(c);
        }
        buf.put_u32(self.duration_sec);
        buf.put_u32(self.duration_nsec);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<PortStats, DecodeError> {
        need(buf, Self::LEN, "truncated port stats")?;
        let port_no = buf.u32();
        buf.skip(4);
        Ok(PortStats {
            port_no,
            rx_packets: buf.u64(),
            tx_packets: buf.u64(),
            rx_bytes: buf.u64(),
            tx_bytes: buf.u64(),
            rx_dropped: buf.u64(),
            tx_dropped: buf.u64(),
            rx_errors: buf.u64(),
            tx_errors: buf.u64(),
            rx_frame_err: buf.u64(),
            rx_over_err: buf.u64(),
            rx_crc_err: buf.u64(),
            collisions: buf.u64(),
            duration_sec: buf.u32(),
            duration_nsec: buf.u32(),
        })
    }
}

/// QUEUE request body (`ofp_queue_stats_request`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct QueueStatsRequest {
    /// A port or OFPP_ANY.
    pub port_no: u32,
    /// A queue or OFPQ_ALL.
    pub queue_id: u32,
}

/// One queue in the QUEUE reply (`ofp_queue_stats`).
///
/// ```text
/// +---------------------------------------------------------------+
/// |            port_no             |           queue_id           |
/// +---------------------------------------------------------------+
/// |  tx_bytes (64) | tx_packets (64) | tx_errors (64)             |
/// +---------------------------------------------------------------+
/// |          duration_sec          |        duration_nsec         |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct QueueStats {
    pub port_no: u32,
    pub queue_id: u32,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub duration_sec: u32,
    pub duration_nsec: u32,
}

impl QueueStats {
    pub const LEN: usize = 40;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.port_no);
        buf.put_u32(self.queue_id);
        buf.put_u64(self.tx_bytes);
        buf.put_u64(self.tx_packets);
        buf.put_u64(self.tx_errors);
        buf.put_u32(self.duration_sec);
        buf.put_u32(self.duration_nsec);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<QueueStats, DecodeError> {
        need(buf, Self::LEN, "truncated queue stats")?;
        Ok(QueueStats {
            port_no: buf.u32(),
            queue_id: buf.u32(),
            tx_bytes: buf.u64(),
            tx_packets: buf.u64(),
            tx_errors: buf.u64(),
            duration_sec: buf.u32(),
            duration_nsec: buf.u32(),
        })
    }
}

/// The body of a MULTIPART_REQUEST, by multipart type.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum MultipartRequestBody {
    Desc,
    Flow(FlowStatsRequest),
    Aggregate(FlowStatsRequest),
    Table,
    /// Port number or OFPP_ANY (`ofp_port_stats_request`: port_no, pad 4).
    PortStats(u32),
    Queue(QueueStatsRequest),
    /// Group id or OFPG_ALL (`ofp_group_stats_request`: group_id, pad 4).
    Group(u32),
    GroupDesc,
    GroupFeatures,
    /// Meter id or OFPM_ALL (`ofp_meter_multipart_request`: meter_id, pad 4).
    Meter(u32),
    /// Meter id or OFPM_ALL.
    MeterConfig(u32),
    MeterFeatures,
    /// Empty to read the features; non-empty to set them.
    TableFeatures(Vec<TableFeatures>),
    PortDesc,
    Experimenter(Experimenter),
}

/// The body of a MULTIPART_REPLY, by multipart type.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum MultipartReplyBody {
    Desc(Desc),
    Flow(Vec<FlowStats>),
    Aggregate(AggregateStats),
    Table(Vec<TableStats>),
    PortStats(Vec<PortStats>),
    Queue(Vec<QueueStats>),
    Group(Vec<GroupStats>),
    GroupDesc(Vec<GroupDesc>),
    GroupFeatures(GroupFeatures),
    Meter(Vec<MeterStats>),
    MeterConfig(Vec<MeterConfig>),
    MeterFeatures(MeterFeatures),
    TableFeatures(Vec<TableFeatures>),
    PortDesc(Vec<Port>),
    Experimenter(Experimenter),
}

/// OFPT_MULTIPART_REQUEST body.
///
/// ```text
/// +-------------------------------+-------------------------------+
/// |             type              |      flags (REQ_MORE)         |
/// +-------------------------------+-------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |                            body ...                           |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MultipartRequest {
    pub flags: u16,
    pub body: MultipartRequestBody,
}

/// OFPT_MULTIPART_REPLY body (same layout as the request, flag REPLY_MORE).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct MultipartReply {
    pub flags: u16,
    pub body: MultipartReplyBody,
}

fn list<T>(
    buf: &mut &[u8],
    f: fn(&mut &[u8]) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(f(buf)?);
    }
    Ok(out)
}

fn id_pad(buf: &mut &[u8]) -> Result<u32, DecodeError> {
    need(buf, 8, "truncated multipart request body")?;
    let id = buf.u32();
    buf.skip(4);
    Ok(id)
}

fn put_id_pad(buf: &mut impl BufMut, id: u32) {
    buf.put_u32(id);
    buf.put_bytes(0, 4);
}

impl MultipartRequestBody {
    /// The OFPMP_* number.
    pub fn mp_type(&self) -> u16 {
        use MultipartRequestBody::*;
        match self {
            Desc => OFPMP_DESC,
            Flow(_) => OFPMP_FLOW,
            Aggregate(_) => OFPMP_AGGREGATE,
            Table => OFPMP_TABLE,
            PortStats(_) => OFPMP_PORT_STATS,
            Queue(_) => OFPMP_QUEUE,
            Group(_) => OFPMP_GROUP,
            GroupDesc => OFPMP_GROUP_DESC,
            GroupFeatures => OFPMP_GROUP_FEATURES,
            Meter(_) => OFPMP_METER,
            MeterConfig(_) => OFPMP_METER_CONFIG,
            MeterFeatures => OFPMP_METER_FEATURES,
            TableFeatures(_) => OFPMP_TABLE_FEATURES,
            PortDesc => OFPMP_PORT_DESC,
            Experimenter(_) => OFPMP_EXPERIMENTER,
        }
    }

    pub fn wire_len(&self) -> usize {
        use MultipartRequestBody::*;
        match self {
            Desc | Table | GroupDesc | GroupFeatures | MeterFeatures | PortDesc => 0,
            Flow(r) | Aggregate(r) => r.wire_len(),
            PortStats(_) | Queue(_) | Group(_) | Meter(_) | MeterConfig(_) => 8,
            TableFeatures(t) => t.iter().map(|t| t.wire_len()).sum(),
            Experimenter(e) => e.wire_len(),
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        use MultipartRequestBody::*;
        match self {
            Desc | Table | GroupDesc | GroupFeatures | MeterFeatures | PortDesc => {}
            Flow(r) | Aggregate(r) => r.encode(buf),
            PortStats(id) | Group(id) | Meter(id) | MeterConfig(id) => put_id_pad(buf, *id),
            Queue(q) => {
                buf.put_u32(q.port_no);
                buf.put_u32(q.queue_id);
            }
            TableFeatures(t) => t.iter().for_each(|t| t.encode(buf)),
            Experimenter(e) => e.encode(buf),
        }
    }

    /// Reads the body of multipart type `mp_type`; an unknown type is
    /// BAD_REQUEST/BAD_MULTIPART.
    pub fn decode(mp_type: u16, buf: &mut &[u8]) -> Result<MultipartRequestBody, DecodeError> {
        use MultipartRequestBody as B;
        Ok(match mp_type {
            OFPMP_DESC => B::Desc,
            OFPMP_FLOW => B::Flow(FlowStatsRequest::decode(buf)?),
            OFPMP_AGGREGATE => B::Aggregate(FlowStatsRequest::decode(buf)?),
            OFPMP_TABLE => B::Table,
            OFPMP_PORT_STATS => B::PortStats(id_pad(buf)?),
            OFPMP_QUEUE => {
                need(buf, 8, "truncated queue stats request")?;
                B::Queue(QueueStatsRequest {
                    port_no: buf.u32(),
                    queue_id: buf.u32(),
                })
            }
            OFPMP_GROUP => B::Group(id_pad(buf)?),
            OFPMP_GROUP_DESC => B::GroupDesc,
            OFPMP_GROUP_FEATURES => B::GroupFeatures,
            OFPMP_METER => B::Meter(id_pad(buf)?),
            OFPMP_METER_CONFIG => B::MeterConfig(id_pad(buf)?),
            OFPMP_METER_FEATURES => B::MeterFeatures,
            OFPMP_TABLE_FEATURES => B::TableFeatures(list(buf, TableFeatures::decode)?),
            OFPMP_PORT_DESC => B::PortDesc,
            OFPMP_EXPERIMENTER => B::Experimenter(decode_experimenter(buf)?),
            _ => {
                return fail(
                    ErrorCode::BAD_REQUEST_BAD_MULTIPART,
                    "unknown multipart type",
                );
            }
        })
    }
}

/// The experimenter multipart body; unknown experimenters are refused as in
/// [`crate::message::experimenter_known`].
fn decode_experimenter(buf: &mut &[u8]) -> Result<Experimenter, DecodeError> {
    let e = Experimenter::decode(buf)?;
    if !crate::message::experimenter_known(e.experimenter) {
        return fail(
            ErrorCode::BAD_REQUEST_BAD_EXPERIMENTER,
            "unknown experimenter",
        );
    }
    Ok(e)
}

impl MultipartReplyBody {
    /// The OFPMP_* number.
    pub fn mp_type(&self) -> u16 {
        use MultipartReplyBody::*;
        match self {
            Desc(_) => OFPMP_DESC,
            Flow(_) => OFPMP_FLOW,
            Aggregate(_) => OFPMP_AGGREGATE,
            Table(_) => OFPMP_TABLE,
            PortStats(_) => OFPMP_PORT_STATS,
            Queue(_) => OFPMP_QUEUE,
            Group(_) => OFPMP_GROUP,
            GroupDesc(_) => OFPMP_GROUP_DESC,
            GroupFeatures(_) => OFPMP_GROUP_FEATURES,
            Meter(_) => OFPMP_METER,
            MeterConfig(_) => OFPMP_METER_CONFIG,
            MeterFeatures(_) => OFPMP_METER_FEATURES,
            TableFeatures(_) => OFPMP_TABLE_FEATURES,
            PortDesc(_) => OFPMP_PORT_DESC,
            Experimenter(_) => OFPMP_EXPERIMENTER,
        }
    }

    pub fn wire_len(&self) -> usize {
        use MultipartReplyBody::*;
        match self {
            Desc(_) => self::Desc::LEN,
            Flow(v) => v.iter().map(FlowStats::wire_len).sum(),
            Aggregate(_) => AggregateStats::LEN,
            Table(v) => v.len() * TableStats::LEN,
            PortStats(v) => v.len() * self::PortStats::LEN,
            Queue(v) => v.len() * QueueStats::LEN,
            Group(v) => v.iter().map(GroupStats::wire_len).sum(),
            GroupDesc(v) => v.iter().map(self::GroupDesc::wire_len).sum(),
            GroupFeatures(_) => self::GroupFeatures::LEN,
            Meter(v) => v.iter().map(MeterStats::wire_len).sum(),
            MeterConfig(v) => v.iter().map(self::MeterConfig::wire_len).sum(),
            MeterFeatures(_) => self::MeterFeatures::LEN,
            TableFeatures(v) => v.iter().map(self::TableFeatures::wire_len).sum(),
            PortDesc(v) => v.len() * Port::LEN,
            Experimenter(e) => e.wire_len(),
        }
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        use MultipartReplyBody::*;
        match self {
            Desc(d) => d.encode(buf),
            Flow(v) => v.iter().for_each(|x| x.encode(buf)),
            Aggregate(a) => a.encode(buf),
            Table(v) => v.iter().for_each(|x| x.encode(buf)),
            PortStats(v) => v.iter().for_each(|x| x.encode(buf)),
            Queue(v) => v.iter().for_each(|x| x.encode(buf)),
            Group(v) => v.iter().for_each(|x| x.encode(buf)),
            GroupDesc(v) => v.iter().for_each(|x| x.encode(buf)),
            GroupFeatures(f) => f.encode(buf),
            Meter(v) => v.iter().for_each(|x| x.encode(buf)),
            MeterConfig(v) => v.iter().for_each(|x| x.encode(buf)),
            MeterFeatures(f) => f.encode(buf),
            TableFeatures(v) => v.iter().for_each(|x| x.encode(buf)),
            PortDesc(v) => v.iter().for_each(|x| x.encode(buf)),
            Experimenter(e) => e.encode(buf),
        }
    }

    /// Reads the body of multipart type `mp_type`; an unknown type is
    /// BAD_REQUEST/BAD_MULTIPART.
    pub fn decode(mp_type: u16, buf: &mut &[u8]) -> Result<MultipartReplyBody, DecodeError> {
        use MultipartReplyBody as B;
        Ok(match mp_type {
            OFPMP_DESC => B::Desc(Desc::decode(buf)?),
            OFPMP_FLOW => B::Flow(list(buf, FlowStats::decode)?),
            OFPMP_AGGREGATE => B::Aggregate(AggregateStats::decode(buf)?),
            OFPMP_TABLE => B::Table(list(buf, TableStats::decode)?),
            OFPMP_PORT_STATS => B::PortStats(list(buf, PortStats::decode)?),
            OFPMP_QUEUE => B::Queue(list(buf, QueueStats::decode)?),
            OFPMP_GROUP => B::Group(list(buf, GroupStats::decode)?),
            OFPMP_GROUP_DESC => B::GroupDesc(list(buf, GroupDesc::decode)?),
            OFPMP_GROUP_FEATURES => B::GroupFeatures(GroupFeatures::decode(buf)?),
            OFPMP_METER => B::Meter(list(buf, MeterStats::decode)?),
            OFPMP_METER_CONFIG => B::MeterConfig(list(buf, MeterConfig::decode)?),
            OFPMP_METER_FEATURES => B::MeterFeatures(MeterFeatures::decode(buf)?),
            OFPMP_TABLE_FEATURES => B::TableFeatures(list(buf, TableFeatures::decode)?),
            OFPMP_PORT_DESC => B::PortDesc(list(buf, Port::decode)?),
            OFPMP_EXPERIMENTER => B::Experimenter(decode_experimenter(buf)?),
            _ => {
                return fail(
                    ErrorCode::BAD_REQUEST_BAD_MULTIPART,
                    "unknown multipart type",
                );
            }
        })
    }
}

impl MultipartRequest {
    /// Whether REQ_MORE is set (more parts follow).
    pub fn more(&self) -> bool {
        self.flags & OFPMPF_REQ_MORE != 0
    }

    pub fn wire_len(&self) -> usize {
        MULTIPART_HEADER_LEN + self.body.wire_len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.body.mp_type());
        buf.put_u16(self.flags);
        buf.put_bytes(0, 4);
        self.body.encode(buf);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<MultipartRequest, DecodeError> {
        need(buf, MULTIPART_HEADER_LEN, "truncated multipart header")?;
        let mp_type = buf.u16();
        let flags = buf.u16();
        buf.skip(4);
        Ok(MultipartRequest {
            flags,
            body: MultipartRequestBody::decode(mp_type, buf)?,
        })
    }

    /// Splits a TABLE_FEATURES request that does not fit one message of `max_msg_len`
    /// bytes into parts, all but the last flagged REQ_MORE. Other bodies come back whole.
    pub fn split(self, max_msg_len: usize) -> Vec<MultipartRequest> {
        let room = max_msg_len.saturating_sub(OFP_HEADER_LEN + MULTIPART_HEADER_LEN);
        let flags = self.flags & !OFPMPF_REQ_MORE;
        let bodies = match self.body {
            MultipartRequestBody::TableFeatures(v) => chunk(v, room, TableFeatures::wire_len)
                .into_iter()
                .map(MultipartRequestBody::TableFeatures)
                .collect(),
            body => vec![body],
        };
        with_more(bodies, flags, OFPMPF_REQ_MORE)
            .map(|(flags, body)| MultipartRequest { flags, body })
            .collect()
    }

    /// Joins the parts of a request sent with REQ_MORE into one (flag cleared). Parts must
    /// all have the same type; only TABLE_FEATURES may have more than one part.
    pub fn reassemble(
        parts: impl IntoIterator<Item = MultipartRequest>,
    ) -> Result<MultipartRequest, DecodeError> {
        let mut it = parts.into_iter();
        let Some(mut whole) = it.next() else {
            return fail(ErrorCode::BAD_REQUEST_BAD_MULTIPART, "no parts");
        };
        for p in it {
            match (&mut whole.body, p.body) {
                (
                    MultipartRequestBody::TableFeatures(a),
                    MultipartRequestBody::TableFeatures(b),
                ) => a.extend(b),
                _ => {
                    return fail(
                        ErrorCode::BAD_REQUEST_BAD_MULTIPART,
                        "parts of different types, or of a type that has one part",
                    );
                }
            }
            whole.flags = p.flags;
        }
        whole.flags &= !OFPMPF_REQ_MORE;
        Ok(whole)
    }
}

impl MultipartReply {
    /// Whether REPLY_MORE is set (more parts follow).
    pub fn more(&self) -> bool {
        self.flags & OFPMPF_REPLY_MORE != 0
    }

    pub fn wire_len(&self) -> usize {
        MULTIPART_HEADER_LEN + self.body.wire_len()
    }

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.body.mp_type());
        buf.put_u16(self.flags);
        buf.put_bytes(0, 4);
        self.body.encode(buf);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<MultipartReply, DecodeError> {
        need(buf, MULTIPART_HEADER_LEN, "truncated multipart header")?;
        let mp_type = buf.u16();
        let flags = buf.u16();
        buf.skip(4);
        Ok(MultipartReply {
            flags,
            body: MultipartReplyBody::decode(mp_type, buf)?,
        })
    }

    /// Splits a reply whose body is a list into messages of at most `max_msg_len` bytes each
    /// (use [`OFP_MAX_MSG_LEN`]), all but the last flagged REPLY_MORE. Elements are never
    /// cut: one element larger than the room is sent alone. A reply that is not a list, or
    /// that fits, comes back as one part; an empty list as one empty part.
    pub fn split(self, max_msg_len: usize) -> Vec<MultipartReply> {
        use MultipartReplyBody as B;
        let room = max_msg_len.saturating_sub(OFP_HEADER_LEN + MULTIPART_HEADER_LEN);
        let flags = self.flags & !OFPMPF_REPLY_MORE;
        fn go<T>(v: Vec<T>, room: usize, len: fn(&T) -> usize, f: fn(Vec<T>) -> B) -> Vec<B> {
            chunk(v, room, len).into_iter().map(f).collect()
        }
        let bodies = match self.body {
            B::Flow(v) => go(v, room, FlowStats::wire_len, B::Flow),
            B::Table(v) => go(v, room, |_| TableStats::LEN, B::Table),
            B::PortStats(v) => go(v, room, |_| PortStats::LEN, B::PortStats),
            B::Queue(v) => go(v, room, |_| QueueStats::LEN, B::Queue),
            B::Group(v) => go(v, room, GroupStats::wire_len, B::Group),
            B::GroupDesc(v) => go(v, room, GroupDesc::wire_len, B::GroupDesc),
            B::Meter(v) => go(v, room, MeterStats::wire_len, B::Meter),
            B::MeterConfig(v) => go(v, room, MeterConfig::wire_len, B::MeterConfig),
            B::TableFeatures(v) => go(v, room, TableFeatures::wire_len, B::TableFeatures),
            B::PortDesc(v) => go(v, room, |_| Port::LEN, B::PortDesc),
            body => vec![body],
        };
        with_more(bodies, flags, OFPMPF_REPLY_MORE)
            .map(|(flags, body)| MultipartReply { flags, body })
            .collect()
    }

    /// Joins the parts of a reply sent with REPLY_MORE into one (flag cleared). Parts must
    /// all have the same type, and only list bodies may have more than one part.
    pub fn reassemble(
        parts: impl IntoIterator<Item = MultipartReply>,
    ) -> Result<MultipartReply, DecodeError> {
        use MultipartReplyBody as B;
        let mut it = parts.into_iter();
        let Some(mut whole) = it.next() else {
            return fail(ErrorCode::BAD_REQUEST_BAD_MULTIPART, "no parts");
        };
        for p in it {
            match (&mut whole.body, p.body) {
                (B::Flow(a), B::Flow(b)) => a.extend(b),
                (B::Table(a), B::Table(b)) => a.extend(b),
                (B::PortStats(a), B::PortStats(b)) => a.extend(b),
                (B::Queue(a), B::Queue(b)) => a.extend(b),
                (B::Group(a), B::Group(b)) => a.extend(b),
                (B::GroupDesc(a), B::GroupDesc(b)) => a.extend(b),
                (B::Meter(a), B::Meter(b)) => a.extend(b),
                (B::MeterConfig(a), B::MeterConfig(b)) => a.extend(b),
                (B::TableFeatures(a), B::TableFeatures(b)) => a.extend(b),
                (B::PortDesc(a), B::PortDesc(b)) => a.extend(b),
                _ => {
                    return fail(
                        ErrorCode::BAD_REQUEST_BAD_MULTIPART,
                        "parts of different types, or of a type that has one part",
                    );
                }
            }
            whole.flags = p.flags;
        }
        whole.flags &= !OFPMPF_REPLY_MORE;
        Ok(whole)
    }
}

/// Cuts `items` into runs whose summed length fits `room` (an oversized item alone).
fn chunk<T>(items: Vec<T>, room: usize, len: fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = vec![Vec::new()];
    let mut used = 0;
    for item in items {
        let l = len(&item);
        let cur = out.last_mut().expect("never empty");
        if used + l > room && !cur.is_empty() {
            out.push(Vec::new());
            used = 0;
        }
        used += l;
        out.last_mut().expect("never empty").push(item);
    }
    out
}

/// Pairs each body with its flags: MORE on all but the last.
fn with_more<B>(bodies: Vec<B>, flags: u16, more: u16) -> impl Iterator<Item = (u16, B)> {
    let n = bodies.len();
    bodies
        .into_iter()
        .enumerate()
        .map(move |(i, b)| (if i + 1 < n { flags | more } else { flags }, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_packs_greedily_and_never_cuts_an_element() {
        let len = |x: &usize| *x;
        assert_eq!(
            chunk(vec![3, 3, 3, 3], 6, len),
            vec![vec![3, 3], vec![3, 3]]
        );
        assert_eq!(chunk(vec![10, 1], 6, len), vec![vec![10], vec![1]]);
        assert_eq!(
            chunk(Vec::<usize>::new(), 6, len),
            vec![Vec::<usize>::new()]
        );
    }

    #[test]
    fn split_sets_more_on_all_but_the_last() {
        let reply = MultipartReply {
            flags: 0,
            body: MultipartReplyBody::Table(vec![TableStats::default(); 5]),
        };
        // Room for two 24-byte entries after the 16-byte headers.
        let parts = reply.clone().split(16 + 48);
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts.iter().map(|p| p.flags).collect::<Vec<_>>(),
            [OFPMPF_REPLY_MORE, OFPMPF_REPLY_MORE, 0]
        );
        assert!(parts[0].more() && !parts[2].more());
        assert_eq!(MultipartReply::reassemble(parts).unwrap(), reply);
    }

    #[test]
    fn multipart_header_layout() {
        let r = MultipartRequest {
            flags: OFPMPF_REQ_MORE,
            body: MultipartRequestBody::PortStats(7),
        };
        let mut v = Vec::new();
        r.encode(&mut v);
        assert_eq!(v, [0, 4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0]);
        assert_eq!(MultipartRequest::decode(&mut &v[..]).unwrap(), r);
    }
}
