//! Output formats: every reply printed the way `ovs-ofctl -O OpenFlow13` prints it.

use std::fmt::Write as _;

use fuxi_openflow::msg::port::{config, features, state};
use fuxi_openflow::msg::switch::capabilities;
use fuxi_openflow::msg::{
    AggregateStats, Bucket, Desc, ErrorMsg, FlowRemoved, GroupDesc, GroupFeatures, GroupStats,
    GroupType, MeterBand, MeterConfig, MeterFeatures, MeterStats, PacketIn, Port, PortStats,
    PortStatus, SwitchConfig, SwitchFeatures, TableFeatureProp, TableFeatures, TableStats, meter,
};
use fuxi_openflow::{FieldId, Message};

use fuxi_openflow::text::{
    FlowSpec, format_action_list as format_actions, format_actions as format_instructions,
    format_flow, format_port as port_text,
};

/// A match as ovs-ofctl prints it, with `priority=` in front unless it is the default.
fn format_match(m: &fuxi_openflow::Match, priority: Option<u16>) -> String {
    let body = fuxi_openflow::text::format_match(m);
    match priority.filter(|p| *p != fuxi_openflow::text::DEFAULT_PRIORITY) {
        Some(p) if body.is_empty() => format!("priority={p}"),
        Some(p) => format!("priority={p},{body}"),
        None => body,
    }
}

/// One `dump-flows` line, without the leading space.
fn format_flow_stats(fs: &fuxi_openflow::msg::FlowStats, stats: bool) -> String {
    let mut spec = FlowSpec::from_flow_stats(fs);
    if !stats {
        spec.stats = None;
    }
    format_flow(&spec)
}

/// `OFPT_X (OF1.3) (xid=0x..):`
pub fn head(name: &str, xid: u32) -> String {
    format!("{name} (OF1.3) (xid={xid:#x}):")
}

fn dur(sec: u32, nsec: u32) -> String {
    format!("{}.{:03}s", sec, nsec / 1_000_000)
}

/// ovs-ofctl's hex dump: offset, 16 bytes with a dash in the middle, ASCII.
pub fn hex_dump(data: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in data.chunks(16).enumerate() {
        let _ = write!(s, "{:08x}  ", i * 16);
        for j in 0..16 {
            match chunk.get(j) {
                Some(b) => {
                    let sep = if j == 7 { '-' } else { ' ' };
                    let _ = write!(s, "{b:02x}{sep}");
                }
                None => s.push_str("   "),
            }
        }
        s.push('|');
        for b in chunk {
            s.push(if b.is_ascii_graphic() || *b == b' ' {
                *b as char
            } else {
                '.'
            });
        }
        s.push_str("|\n");
    }
    s
}

/// An ERROR as ovs-ofctl prints it: the code's name, then the offending message, decoded
/// when it can be, as a hex dump otherwise.
pub fn format_error(xid: u32, e: &ErrorMsg) -> String {
    let name = match e.code.name() {
        Some(n) => n.to_string(),
        None => e.code.to_string(),
    };
    let mut s = format!("{} {name}\n", head("OFPT_ERROR", xid));
    if e.data.len() >= 8 {
        let mut data = e.data.clone();
        let inner_xid = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        // The data may be cut at 64 bytes: the header length says more.
        let declared = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let decoded = if declared == data.len() {
            Message::decode(&data)
                .ok()
                .map(|(_, m)| m)
                .or_else(|| lenient_flow_mod(&data))
        } else {
            None
        };
        match decoded {
            Some(m) => {
                s.push_str(&format_message(inner_xid, &m));
                s.push('\n');
            }
            None => {
                let mt = data[1];
                data.truncate(data.len());
                let _ = writeln!(
                    s,
                    "{} ***decode error: {name}***",
                    head(msg_type_name(mt), inner_xid)
                );
                s.push_str(&hex_dump(&data));
            }
        }
    } else if !e.data.is_empty() {
        s.push_str(&hex_dump(&e.data));
    }
    s.trim_end().to_string()
}

/// A FLOW_MOD whose match the strict decoder refuses (the very reason it came back in an
/// ERROR, e.g. a missing prerequisite), decoded without the match checks so it can be shown.
fn lenient_flow_mod(data: &[u8]) -> Option<Message> {
    use fuxi_openflow::msg::{FlowMod, FlowModCommand};
    use fuxi_openflow::{Instruction, Match, OxmTlv};
    if data.len() < 8 + 40 + 4 || data[1] != 14 {
        return None;
    }
    let b = &data[8..];
    let u16at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let u32at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64at = |i: usize| (u64::from(u32at(i)) << 32) | u64::from(u32at(i + 4));
    let mlen = usize::from(u16at(42));
    if u16at(40) != 1 || mlen < 4 || b.len() < 40 + mlen.next_multiple_of(8) {
        return None;
    }
    let mut tlvs = &b[44..40 + mlen];
    let mut fields = Vec::new();
    while !tlvs.is_empty() {
        fields.push(OxmTlv::decode(&mut tlvs).ok()?);
    }
    let mut rest = &b[40 + mlen.next_multiple_of(8)..];
    let instructions = Instruction::decode_all(&mut rest).ok()?;
    Some(Message::FlowMod(FlowMod {
        cookie: u64at(0),
        cookie_mask: u64at(8),
        table_id: b[16],
        command: FlowModCommand::from_u8(b[17])?,
        idle_timeout: u16at(18),
        hard_timeout: u16at(20),
        priority: u16at(22),
        buffer_id: u32at(24),
        out_port: u32at(28),
        out_group: u32at(32),
        flags: u16at(36),
        match_: Match { fields },
        instructions,
    }))
}

fn msg_type_name(t: u8) -> &'static str {
    match t {
        0 => "OFPT_HELLO",
        1 => "OFPT_ERROR",
        2 => "OFPT_ECHO_REQUEST",
        3 => "OFPT_ECHO_REPLY",
        4 => "OFPT_EXPERIMENTER",
        5 => "OFPT_FEATURES_REQUEST",
        6 => "OFPT_FEATURES_REPLY",
        7 => "OFPT_GET_CONFIG_REQUEST",
        8 => "OFPT_GET_CONFIG_REPLY",
        9 => "OFPT_SET_CONFIG",
        10 => "OFPT_PACKET_IN",
        11 => "OFPT_FLOW_REMOVED",
        12 => "OFPT_PORT_STATUS",
        13 => "OFPT_PACKET_OUT",
        14 => "OFPT_FLOW_MOD",
        15 => "OFPT_GROUP_MOD",
        16 => "OFPT_PORT_MOD",
        17 => "OFPT_TABLE_MOD",
        18 => "OFPST_REQUEST",
        19 => "OFPST_REPLY",
        20 => "OFPT_BARRIER_REQUEST",
        21 => "OFPT_BARRIER_REPLY",
        29 => "OFPT_METER_MOD",
        _ => "OFPT_UNKNOWN",
    }
}

/// A message we sent, as the second part of an error report.
pub fn format_message(xid: u32, m: &Message) -> String {
    match m {
        Message::FlowMod(fm) => {
            use fuxi_openflow::msg::FlowModCommand as C;
            let cmd = match fm.command {
                C::Add => "ADD",
                C::Modify => "MOD",
                C::ModifyStrict => "MOD_STRICT",
                C::Delete => "DEL",
                C::DeleteStrict => "DEL_STRICT",
            };
            let mut s = format!("{} {cmd}", head("OFPT_FLOW_MOD", xid));
            if fm.table_id != 0 && fm.table_id != 0xff {
                let _ = write!(s, " table:{}", fm.table_id);
            }
            let mm = format_match(&fm.match_, Some(fm.priority));
            if !mm.is_empty() {
                let _ = write!(s, " {mm}");
            }
            if fm.cookie != 0 {
                let _ = write!(s, " cookie:{:#x}", fm.cookie);
            }
            if fm.idle_timeout != 0 {
                let _ = write!(s, " idle:{}", fm.idle_timeout);
            }
            if fm.hard_timeout != 0 {
                let _ = write!(s, " hard:{}", fm.hard_timeout);
            }
            let _ = write!(s, " actions={}", format_instructions(&fm.instructions));
            s
        }
        Message::GroupMod(gm) => {
            use fuxi_openflow::msg::GroupModCommand as C;
            let cmd = match gm.command {
                C::Add => "ADD",
                C::Modify => "MOD",
                C::Delete => "DEL",
                C::AddOrMod => "ADD_OR_MOD",
            };
            format!(
                "{} {cmd} {}",
                head("OFPT_GROUP_MOD", xid),
                format_group(gm.group_type, gm.group_id, &gm.buckets)
            )
        }
        Message::MeterMod(mm) => {
            use fuxi_openflow::msg::MeterModCommand as C;
            let cmd = match mm.command {
                C::Add => "ADD",
                C::Modify => "MOD",
                C::Delete => "DEL",
            };
            format!(
                "{} {cmd} {}",
                head("OFPT_METER_MOD", xid),
                format_meter_config(&MeterConfig {
                    flags: mm.flags,
                    meter_id: mm.meter_id,
                    bands: mm.bands.clone(),
                })
            )
        }
        other => head(other.name(), xid),
    }
}

/// `show`: features, then port descriptions.
pub fn format_features(xid: u32, f: &SwitchFeatures) -> String {
    let mut s = format!(
        "{} dpid:{:016x}\nn_tables:{}, n_buffers:{}\ncapabilities:",
        head("OFPT_FEATURES_REPLY", xid),
        f.datapath_id,
        f.n_tables,
        f.n_buffers
    );
    for (bit, name) in [
        (capabilities::FLOW_STATS, "FLOW_STATS"),
        (capabilities::TABLE_STATS, "TABLE_STATS"),
        (capabilities::PORT_STATS, "PORT_STATS"),
        (capabilities::GROUP_STATS, "GROUP_STATS"),
        (capabilities::IP_REASM, "IP_REASM"),
        (capabilities::QUEUE_STATS, "QUEUE_STATS"),
        (capabilities::PORT_BLOCKED, "PORT_BLOCKED"),
    ] {
        if f.capabilities & bit != 0 {
            let _ = write!(s, " {name}");
        }
    }
    s
}

/// `OFPT_GET_CONFIG_REPLY`.
pub fn format_config(xid: u32, c: &SwitchConfig) -> String {
    let frags = match c.flags & 3 {
        0 => "normal",
        1 => "drop",
        2 => "reassemble",
        _ => "nx-match",
    };
    format!(
        "{} frags={frags} miss_send_len={}",
        head("OFPT_GET_CONFIG_REPLY", xid),
        c.miss_send_len
    )
}

fn bits_text(v: u32, names: &[(u32, &str)]) -> String {
    if v == 0 {
        return "0".into();
    }
    let mut parts: Vec<String> = names
        .iter()
        .filter(|(b, _)| v & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known: u32 = names.iter().map(|(b, _)| b).fold(0, |a, b| a | b);
    if v & !known != 0 {
        parts.push(format!("{:#x}", v & !known));
    }
    parts.join(" ")
}

const PORT_FEATURES: &[(u32, &str)] = &[
    (features::F_10MB_HD, "10MB-HD"),
    (features::F_10MB_FD, "10MB-FD"),
    (features::F_100MB_HD, "100MB-HD"),
    (features::F_100MB_FD, "100MB-FD"),
    (features::F_1GB_HD, "1GB-HD"),
    (features::F_1GB_FD, "1GB-FD"),
    (features::F_10GB_FD, "10GB-FD"),
    (features::F_40GB_FD, "40GB-FD"),
    (features::F_100GB_FD, "100GB-FD"),
    (features::F_1TB_FD, "1TB-FD"),
    (features::F_OTHER, "OTHER"),
    (features::COPPER, "COPPER"),
    (features::FIBER, "FIBER"),
    (features::AUTONEG, "AUTO_NEG"),
    (features::PAUSE, "AUTO_PAUSE"),
    (features::PAUSE_ASYM, "AUTO_PAUSE_ASYM"),
];

/// One port description, as in `show` and `dump-ports-desc` (lines start with a space).
pub fn format_port(p: &Port) -> String {
    let mut s = format!(
        " {}({}): addr:{}\n",
        port_text(p.port_no),
        p.name,
        p.hw_addr
    );
    let _ = writeln!(
        s,
        "     config:     {}",
        bits_text(
            p.config,
            &[
                (config::PORT_DOWN, "PORT_DOWN"),
                (config::NO_RECV, "NO_RECV"),
                (config::NO_FWD, "NO_FWD"),
                (config::NO_PACKET_IN, "NO_PACKET_IN"),
            ]
        )
    );
    let _ = writeln!(
        s,
        "     state:      {}",
        bits_text(
            p.state,
            &[
                (state::LINK_DOWN, "LINK_DOWN"),
                (state::BLOCKED, "BLOCKED"),
                (state::LIVE, "LIVE"),
            ]
        )
    );
    for (v, label) in [
        (p.curr, "current:   "),
        (p.advertised, "advertised:"),
        (p.supported, "supported: "),
        (p.peer, "peer:      "),
    ] {
        if v != 0 {
            let _ = writeln!(s, "     {label} {}", bits_text(v, PORT_FEATURES));
        }
    }
    if p.curr_speed != 0 || p.max_speed != 0 {
        let _ = writeln!(
            s,
            "     speed: {} Mbps now, {} Mbps max",
            p.curr_speed / 1000,
            p.max_speed / 1000
        );
    }
    s.trim_end().to_string()
}

/// `OFPST_PORT_DESC reply`.
pub fn format_port_desc(xid: u32, ports: &[Port]) -> String {
    let mut s = head("OFPST_PORT_DESC reply", xid);
    let mut ports: Vec<&Port> = ports.iter().collect();
    ports.sort_by_key(|p| p.port_no);
    for p in ports {
        s.push('\n');
        s.push_str(&format_port(p));
    }
    s
}

/// `OFPST_DESC reply`.
pub fn format_desc(xid: u32, d: &Desc) -> String {
    format!(
        "{}\nManufacturer: {}\nHardware: {}\nSoftware: {}\nSerial Num: {}\nDP Description: {}",
        head("OFPST_DESC reply", xid),
        d.mfr_desc,
        d.hw_desc,
        d.sw_desc,
        d.serial_num,
        d.dp_desc
    )
}

/// `OFPST_TABLE reply`, with runs of tables equal to the one before collapsed into "ditto".
pub fn format_tables(xid: u32, tables: &[TableStats]) -> String {
    let mut s = head("OFPST_TABLE reply", xid);
    let same = |a: &TableStats, b: &TableStats| {
        (a.active_count, a.lookup_count, a.matched_count)
            == (b.active_count, b.lookup_count, b.matched_count)
    };
    let mut i = 0;
    while i < tables.len() {
        let t = &tables[i];
        if i > 0 && same(t, &tables[i - 1]) {
            let mut j = i;
            while j + 1 < tables.len() && same(&tables[j + 1], t) {
                j += 1;
            }
            if j == i {
                let _ = write!(s, "\n  table {}: ditto\n", t.table_id);
            } else {
                let _ = write!(
                    s,
                    "\n  tables {}...{}: ditto\n",
                    t.table_id, tables[j].table_id
                );
            }
            i = j + 1;
            continue;
        }
        let _ = write!(
            s,
            "\n  table {}:\n    active={}, lookup={}, matched={}\n",
            t.table_id, t.active_count, t.lookup_count, t.matched_count
        );
        i += 1;
    }
    s.trim_end().to_string()
}

/// `OFPST_PORT reply`.
pub fn format_port_stats(xid: u32, ports: &[PortStats]) -> String {
    let mut s = format!("{} {} ports", head("OFPST_PORT reply", xid), ports.len());
    for p in ports {
        let _ = write!(
            s,
            "\n  port {:>2}: rx pkts={}, bytes={}, drop={}, errs={}, frame={}, over={}, crc={}\
             \n           tx pkts={}, bytes={}, drop={}, errs={}, coll={}\
             \n           duration={}",
            port_text(p.port_no),
            p.rx_packets,
            p.rx_bytes,
            p.rx_dropped,
            p.rx_errors,
            p.rx_frame_err,
            p.rx_over_err,
            p.rx_crc_err,
            p.tx_packets,
            p.tx_bytes,
            p.tx_dropped,
            p.tx_errors,
            p.collisions,
            dur(p.duration_sec, p.duration_nsec)
        );
    }
    s
}

/// `OFPST_FLOW reply` and its flow lines.
/// Without statistics there is no header either, as with ovs-ofctl's `--no-stats`.
pub fn format_flows(xid: u32, flows: &[fuxi_openflow::msg::FlowStats], stats: bool) -> String {
    let mut lines = Vec::with_capacity(flows.len() + 1);
    if stats {
        lines.push(head("OFPST_FLOW reply", xid));
    }
    for f in flows {
        lines.push(format!(" {}", format_flow_stats(f, stats)));
    }
    lines.join("\n")
}

/// `OFPST_AGGREGATE reply`.
pub fn format_aggregate(xid: u32, a: &AggregateStats) -> String {
    format!(
        "{} packet_count={} byte_count={} flow_count={}",
        head("OFPST_AGGREGATE reply", xid),
        a.packet_count,
        a.byte_count,
        a.flow_count
    )
}

fn group_type_name(t: GroupType) -> &'static str {
    match t {
        GroupType::All => "all",
        GroupType::Select => "select",
        GroupType::Indirect => "indirect",
        GroupType::FastFailover => "ff",
    }
}

/// A group in add-group syntax (`group_id=1,type=select,bucket=actions=output:1,...`).
pub fn format_group(t: GroupType, id: u32, buckets: &[Bucket]) -> String {
    let mut s = format!("group_id={id},type={}", group_type_name(t));
    for b in buckets {
        s.push_str(",bucket=");
        if t == GroupType::Select && b.weight != 1 {
            let _ = write!(s, "weight:{},", b.weight);
        }
        if b.watch_port != fuxi_openflow::consts::OFPP_ANY {
            let _ = write!(s, "watch_port:{},", port_text(b.watch_port));
        }
        if b.watch_group != fuxi_openflow::consts::OFPG_ANY {
            let _ = write!(s, "watch_group:{},", b.watch_group);
        }
        s.push_str("actions=");
        s.push_str(&format_actions(&b.actions));
    }
    s
}

/// `OFPST_GROUP_DESC reply`.
pub fn format_group_desc(xid: u32, groups: &[GroupDesc]) -> String {
    let mut s = head("OFPST_GROUP_DESC reply", xid);
    for g in groups {
        s.push_str("\n ");
        s.push_str(&format_group(g.group_type, g.group_id, &g.buckets));
    }
    s
}

/// `OFPST_GROUP reply`.
pub fn format_group_stats(xid: u32, groups: &[GroupStats]) -> String {
    let mut s = head("OFPST_GROUP reply", xid);
    for g in groups {
        let _ = write!(
            s,
            "\n group_id={},duration={},ref_count={},packet_count={},byte_count={}",
            g.group_id,
            dur(g.duration_sec, g.duration_nsec),
            g.ref_count,
            g.packet_count,
            g.byte_count
        );
        for (i, b) in g.bucket_stats.iter().enumerate() {
            let _ = write!(
                s,
                ",bucket{i}:packet_count={},byte_count={}",
                b.packet_count, b.byte_count
            );
        }
    }
    s
}

/// A meter in dump-meters syntax (two or more lines).
pub fn format_meter_config(m: &MeterConfig) -> String {
    let mut s = format!("meter={}", meter_id_text(m.meter_id));
    for (bit, name) in [
        (meter::flags::KBPS, "kbps"),
        (meter::flags::PKTPS, "pktps"),
        (meter::flags::BURST, "burst"),
        (meter::flags::STATS, "stats"),
    ] {
        if m.flags & bit != 0 {
            let _ = write!(s, " {name}");
        }
    }
    s.push_str(" bands=");
    // Open vSwitch fills in a burst size even without BURST; ovs-ofctl shows it only with.
    let burst = m.flags & meter::flags::BURST != 0;
    for b in &m.bands {
        s.push('\n');
        match b {
            MeterBand::Drop { rate, burst_size } => {
                let _ = write!(s, "type=drop rate={rate}");
                if burst && *burst_size != 0 {
                    let _ = write!(s, " burst_size={burst_size}");
                }
            }
            MeterBand::DscpRemark {
                rate,
                burst_size,
                prec_level,
            } => {
                let _ = write!(s, "type=dscp_remark rate={rate}");
                if burst && *burst_size != 0 {
                    let _ = write!(s, " burst_size={burst_size}");
                }
                let _ = write!(s, " prec_level={prec_level}");
            }
            MeterBand::Experimenter {
                rate,
                burst_size,
                experimenter,
                ..
            } => {
                let _ = write!(
                    s,
                    "type=experimenter rate={rate} burst_size={burst_size} \
                     experimenter={experimenter:#x}"
                );
            }
        }
    }
    s
}

fn meter_id_text(id: u32) -> String {
    match id {
        fuxi_openflow::consts::OFPM_SLOWPATH => "slowpath".into(),
        fuxi_openflow::consts::OFPM_CONTROLLER => "controller".into(),
        fuxi_openflow::consts::OFPM_ALL => "all".into(),
        n => n.to_string(),
    }
}

/// `OFPST_METER_CONFIG reply`.
pub fn format_meter_configs(xid: u32, meters: &[MeterConfig]) -> String {
    let body: Vec<String> = meters.iter().map(format_meter_config).collect();
    let mut s = head("OFPST_METER_CONFIG reply", xid);
    if !body.is_empty() {
        s.push('\n');
        s.push_str(&body.join("\n\n"));
    }
    s
}

/// `OFPST_METER reply`.
pub fn format_meter_stats(xid: u32, meters: &[MeterStats]) -> String {
    let body: Vec<String> = meters
        .iter()
        .map(|m| {
            let mut s = format!(
                "meter:{} flow_count:{} packet_in_count:{} byte_in_count:{} duration:{} bands:",
                meter_id_text(m.meter_id),
                m.flow_count,
                m.packet_in_count,
                m.byte_in_count,
                dur(m.duration_sec, m.duration_nsec)
            );
            for (i, b) in m.band_stats.iter().enumerate() {
                let _ = write!(
                    s,
                    "\n{i}: packet_count:{} byte_count:{}",
                    b.packet_band_count, b.byte_band_count
                );
            }
            s
        })
        .collect();
    let mut s = head("OFPST_METER reply", xid);
    if !body.is_empty() {
        s.push('\n');
        s.push_str(&body.join("\n\n"));
    }
    s
}

fn field_names(ids: &[fuxi_openflow::msg::OxmId]) -> String {
    ids.iter()
        .map(|id| {
            let class = (id.header >> 16) as u16;
            let field = ((id.header >> 9) & 0x7f) as u8;
            match (class, FieldId::from_u8(field)) {
                (0x8000, Some(f)) => f
                    .oxm_name()
                    .trim_start_matches("OXM_OF_")
                    .to_ascii_lowercase(),
                _ => format!("{:#010x}", id.header),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn id_names(ids: &[fuxi_openflow::msg::FeatureId], instructions: bool) -> String {
    ids.iter()
        .map(|i| {
            let n = if instructions {
                match i.id_type {
                    1 => "goto_table",
                    2 => "write_metadata",
                    3 => "write_actions",
                    4 => "apply_actions",
                    5 => "clear_actions",
                    6 => "meter",
                    _ => "",
                }
            } else {
                match i.id_type {
                    0 => "output",
                    11 => "copy_ttl_out",
                    12 => "copy_ttl_in",
                    15 => "set_mpls_ttl",
                    16 => "dec_mpls_ttl",
                    17 => "push_vlan",
                    18 => "strip_vlan",
                    19 => "push_mpls",
                    20 => "pop_mpls",
                    21 => "set_queue",
                    22 => "group",
                    23 => "mod_nw_ttl",
                    24 => "dec_ttl",
                    25 => "set_field",
                    26 => "push_pbb",
                    27 => "pop_pbb",
                    _ => "",
                }
            };
            if n.is_empty() {
                format!("{:#x}", i.id_type)
            } else {
                n.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn next_tables(t: &[u8]) -> String {
    // Ranges: 1-253.
    let mut parts = Vec::new();
    let mut i = 0;
    while i < t.len() {
        let mut j = i;
        while j + 1 < t.len() && t[j + 1] == t[j].wrapping_add(1) {
            j += 1;
        }
        if j > i {
            parts.push(format!("{}-{}", t[i], t[j]));
        } else {
            parts.push(t[i].to_string());
        }
        i = j + 1;
    }
    parts.join(" ")
}

fn table_features_body(t: &TableFeatures) -> String {
    let mut s = String::new();
    if !t.name.is_empty() {
        let _ = writeln!(s, "    name=\"{}\"", t.name);
    }
    let _ = writeln!(
        s,
        "    metadata: match={:#x} write={:#x}",
        t.metadata_match, t.metadata_write
    );
    let _ = writeln!(s, "    max_entries={}", t.max_entries);
    let mut lines: Vec<(String, String)> = Vec::new();
    for p in &t.properties {
        let (k, v) = match p {
            TableFeatureProp::Instructions(i) => ("instructions", id_names(i, true)),
            TableFeatureProp::InstructionsMiss(i) => ("instructions (miss)", id_names(i, true)),
            TableFeatureProp::NextTables(n) => ("next tables", next_tables(n)),
            TableFeatureProp::NextTablesMiss(n) => ("next tables (miss)", next_tables(n)),
            TableFeatureProp::WriteActions(a) => ("write actions", id_names(a, false)),
            TableFeatureProp::WriteActionsMiss(a) => ("write actions (miss)", id_names(a, false)),
            TableFeatureProp::ApplyActions(a) => ("apply actions", id_names(a, false)),
            TableFeatureProp::ApplyActionsMiss(a) => ("apply actions (miss)", id_names(a, false)),
            TableFeatureProp::Match(m) => ("match", field_names(m)),
            TableFeatureProp::Wildcards(m) => ("wildcards", field_names(m)),
            TableFeatureProp::WriteSetfield(m) => ("write set-field", field_names(m)),
            TableFeatureProp::WriteSetfieldMiss(m) => ("write set-field (miss)", field_names(m)),
            TableFeatureProp::ApplySetfield(m) => ("apply set-field", field_names(m)),
            TableFeatureProp::ApplySetfieldMiss(m) => ("apply set-field (miss)", field_names(m)),
            TableFeatureProp::Experimenter { experimenter, .. }
            | TableFeatureProp::ExperimenterMiss { experimenter, .. } => {
                ("experimenter", format!("{experimenter:#x}"))
            }
        };
        lines.push((k.to_string(), v));
    }
    for (k, v) in lines {
        let _ = writeln!(s, "    {k}: {v}");
    }
    s
}

/// `OFPST_TABLE_FEATURES reply` (tables whose features equal the previous table's are
/// collapsed into "ditto", as ovs-ofctl does).
pub fn format_table_features(xid: u32, tables: &[TableFeatures]) -> String {
    let mut s = head("OFPST_TABLE_FEATURES reply", xid);
    let bodies: Vec<String> = tables.iter().map(table_features_body).collect();
    // Next tables differ from table to table ("1-253", "2-253"); ditto ignores them.
    let same: Vec<String> = bodies
        .iter()
        .map(|b| {
            b.lines()
                .filter(|l| !l.trim_start().starts_with("next tables"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let mut i = 0;
    while i < tables.len() {
        if i > 0 && same[i] == same[i - 1] {
            let mut j = i;
            while j + 1 < tables.len() && same[j + 1] == same[i] {
                j += 1;
            }
            if j == i {
                let _ = write!(s, "\n  table {}: ditto\n", tables[i].table_id);
            } else {
                let _ = write!(
                    s,
                    "\n  tables {}...{}: ditto\n",
                    tables[i].table_id, tables[j].table_id
                );
            }
            i = j + 1;
            continue;
        }
        let _ = write!(s, "\n  table {}:\n{}", tables[i].table_id, bodies[i]);
        i += 1;
    }
    s.trim_end().to_string()
}

/// `OFPT_PORT_STATUS`.
pub fn format_port_status(xid: u32, ps: &PortStatus) -> String {
    let reason = match ps.reason {
        0 => "ADD",
        1 => "DEL",
        2 => "MOD",
        _ => "UNKNOWN",
    };
    format!(
        "{} {reason}:{}",
        head("OFPT_PORT_STATUS", xid),
        format_port(&ps.desc)
    )
}

/// `OFPT_FLOW_REMOVED`.
pub fn format_flow_removed(xid: u32, fr: &FlowRemoved) -> String {
    let reason = match fr.reason {
        0 => "idle",
        1 => "hard",
        2 => "delete",
        3 => "group_delete",
        4 => "meter_delete",
        _ => "unknown",
    };
    let mut s = format!(
        "{} {}",
        head("OFPT_FLOW_REMOVED", xid),
        format_match(&fr.match_, Some(fr.priority))
    );
    let _ = write!(s, " reason={reason} table_id={}", fr.table_id);
    if fr.cookie != 0 {
        let _ = write!(s, " cookie:{:#x}", fr.cookie);
    }
    let _ = write!(
        s,
        " duration{} idle{} hard{} pkts{} bytes{}",
        dur(fr.duration_sec, fr.duration_nsec),
        fr.idle_timeout,
        fr.hard_timeout,
        fr.packet_count,
        fr.byte_count
    );
    s
}

/// A one-line summary of an Ethernet frame (`arp,dl_src=..,arp_spa=..` style).
pub fn packet_summary(p: &[u8]) -> String {
    if p.len() < 14 {
        return format!("truncated frame ({} bytes)", p.len());
    }
    let mac = |b: &[u8]| {
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    };
    let mut et = u16::from_be_bytes([p[12], p[13]]);
    let mut off = 14;
    let mut vlan = ",vlan_tci=0x0000".to_string();
    if (et == 0x8100 || et == 0x88a8) && p.len() >= 18 {
        let tci = u16::from_be_bytes([p[14], p[15]]);
        vlan = format!(",dl_vlan={},dl_vlan_pcp={}", tci & 0xfff, tci >> 13);
        et = u16::from_be_bytes([p[16], p[17]]);
        off = 18;
    }
    let l2 = format!("dl_src={},dl_dst={}", mac(&p[6..12]), mac(&p[0..6]));
    let rest = &p[off..];
    match et {
        0x0800 if rest.len() >= 20 => {
            let proto = rest[9];
            let ip = |b: &[u8]| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
            let ihl = usize::from(rest[0] & 0xf) * 4;
            let name = match proto {
                1 => "icmp",
                6 => "tcp",
                17 => "udp",
                132 => "sctp",
                _ => "ip",
            };
            let mut s = format!(
                "{name}{vlan},{l2},nw_src={},nw_dst={}",
                ip(&rest[12..16]),
                ip(&rest[16..20]),
            );
            if name == "ip" {
                let _ = write!(s, ",nw_proto={proto}");
            }
            let frag = if u16::from_be_bytes([rest[6], rest[7]]) & 0x3fff != 0 {
                "yes"
            } else {
                "no"
            };
            let _ = write!(
                s,
                ",nw_tos={},nw_ecn={},nw_ttl={},nw_frag={frag}",
                rest[1] & 0xfc,
                rest[1] & 3,
                rest[8]
            );
            let l4 = rest.get(ihl..).unwrap_or(&[]);
            if matches!(proto, 6 | 17 | 132) && l4.len() >= 4 {
                let _ = write!(
                    s,
                    ",tp_src={},tp_dst={}",
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]])
                );
            } else if proto == 1 && l4.len() >= 2 {
                let _ = write!(s, ",icmp_type={},icmp_code={}", l4[0], l4[1]);
            }
            s
        }
        0x0806 if rest.len() >= 28 => {
            let ip = |b: &[u8]| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
            format!(
                "arp{vlan},{l2},arp_spa={},arp_tpa={},arp_op={},arp_sha={},arp_tha={}",
                ip(&rest[14..18]),
                ip(&rest[24..28]),
                u16::from_be_bytes([rest[6], rest[7]]),
                mac(&rest[8..14]),
                mac(&rest[18..24])
            )
        }
        0x86dd if rest.len() >= 40 => {
            let a = |b: &[u8]| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[..16]);
                std::net::Ipv6Addr::from(o).to_string()
            };
            let proto = rest[6];
            let name = match proto {
                58 => "icmp6",
                6 => "tcp6",
                17 => "udp6",
                132 => "sctp6",
                _ => "ipv6",
            };
            let mut s = format!(
                "{name}{vlan},{l2},ipv6_src={},ipv6_dst={}",
                a(&rest[8..24]),
                a(&rest[24..40])
            );
            if name == "ipv6" {
                let _ = write!(s, ",nw_proto={proto}");
            }
            let _ = write!(s, ",nw_ttl={}", rest[7]);
            let l4 = &rest[40..];
            if matches!(proto, 6 | 17 | 132) && l4.len() >= 4 {
                let _ = write!(
                    s,
                    ",tp_src={},tp_dst={}",
                    u16::from_be_bytes([l4[0], l4[1]]),
                    u16::from_be_bytes([l4[2], l4[3]])
                );
            } else if proto == 58 && l4.len() >= 2 {
                let _ = write!(s, ",icmp_type={},icmp_code={}", l4[0], l4[1]);
            }
            s
        }
        _ => format!("{}{vlan},{l2},dl_type={et:#06x}", "eth"),
    }
}

/// `OFPT_PACKET_IN`.
pub fn format_packet_in(xid: u32, pi: &PacketIn) -> String {
    let reason = match pi.reason {
        0 => "no_match",
        1 => "action",
        2 => "invalid_ttl",
        _ => "unknown",
    };
    let mut s = head("OFPT_PACKET_IN", xid);
    if pi.table_id != 0 {
        let _ = write!(s, " table_id={}", pi.table_id);
    }
    let _ = write!(s, " cookie={:#x} total_len={}", pi.cookie, pi.total_len);
    let m = format_match(&pi.match_, None);
    if !m.is_empty() {
        let _ = write!(s, " {m}");
    }
    let _ = write!(s, " (via {reason}) data_len={}", pi.data.len());
    if pi.buffer_id == fuxi_openflow::consts::OFP_NO_BUFFER {
        s.push_str(" (unbuffered)");
    } else {
        let _ = write!(s, " buffer={:#010x}", pi.buffer_id);
    }
    s.push('\n');
    s.push_str(&packet_summary(&pi.data));
    s
}

/// An async message for `monitor`; `None` for messages it does not print.
pub fn format_async(xid: u32, m: &Message) -> Option<String> {
    Some(match m {
        Message::PacketIn(pi) => format_packet_in(xid, pi),
        Message::FlowRemoved(fr) => format_flow_removed(xid, fr),
        Message::PortStatus(ps) => format_port_status(xid, ps),
        Message::Error(e) => format_error(xid, e),
        _ => return None,
    })
}

/// Action types in the order ovs-ofctl lists them: (OFPAT number, name).
const ACTION_NAMES: &[(u32, &str)] = &[
    (0, "output"),
    (22, "group"),
    (25, "set_field"),
    (18, "strip_vlan"),
    (17, "push_vlan"),
    (23, "mod_nw_ttl"),
    (24, "dec_ttl"),
    (15, "set_mpls_ttl"),
    (16, "dec_mpls_ttl"),
    (19, "push_mpls"),
    (20, "pop_mpls"),
    (21, "set_queue"),
    (11, "copy_ttl_out"),
    (12, "copy_ttl_in"),
    (26, "push_pbb"),
    (27, "pop_pbb"),
];

/// `OFPST_GROUP_FEATURES reply`.
pub fn format_group_features(xid: u32, f: &GroupFeatures) -> String {
    let mut s = format!(
        "{}\n Group table:\n    Types:  {:#x}\n    Capabilities:  {:#x}",
        head("OFPST_GROUP_FEATURES reply", xid),
        f.types,
        f.capabilities
    );
    for (i, name) in ["all", "select", "indirect", "fast failover"]
        .iter()
        .enumerate()
    {
        if f.types & (1 << i) == 0 {
            continue;
        }
        let acts: Vec<&str> = ACTION_NAMES
            .iter()
            .filter(|(bit, _)| f.actions[i] & (1 << bit) != 0)
            .map(|(_, n)| *n)
            .collect();
        let _ = write!(
            s,
            "\n    {name} group:\n       max_groups={:#x}\n       actions: {}",
            f.max_groups[i],
            acts.join(" ")
        );
    }
    s
}

/// `OFPST_METER_FEATURES reply`.
pub fn format_meter_features(xid: u32, f: &MeterFeatures) -> String {
    let mut bands = Vec::new();
    if f.band_types & (1 << meter::OFPMBT_DROP) != 0 {
        bands.push("drop");
    }
    if f.band_types & (1 << meter::OFPMBT_DSCP_REMARK) != 0 {
        bands.push("dscp_remark");
    }
    let caps: Vec<&str> = [
        (meter::flags::KBPS, "kbps"),
        (meter::flags::PKTPS, "pktps"),
        (meter::flags::BURST, "burst"),
        (meter::flags::STATS, "stats"),
    ]
    .iter()
    .filter(|(b, _)| f.capabilities & u32::from(*b) != 0)
    .map(|(_, n)| *n)
    .collect();
    format!(
        "{}\nmax_meter:{} max_bands:{} max_color:{}\nband_types: {}\ncapabilities: {}",
        head("OFPST_METER_FEATURES reply", xid),
        f.max_meter,
        f.max_bands,
        f.max_color,
        bands.join(" "),
        caps.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_summaries() {
        let arp = decode(
            "ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000009",
        );
        assert_eq!(
            packet_summary(&arp),
            "arp,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,\
             arp_spa=10.0.0.1,arp_tpa=10.0.0.9,arp_op=1,arp_sha=02:00:00:00:00:01,\
             arp_tha=00:00:00:00:00:00"
        );
        let udp = decode(
            "020000000002020000000001080045000020000000004011000001020304050607080000001400000000",
        );
        assert_eq!(
            packet_summary(&udp),
            "udp,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,\
             nw_src=1.2.3.4,nw_dst=5.6.7.8,nw_tos=0,nw_ecn=0,nw_ttl=64,nw_frag=no,tp_src=0,tp_dst=20"
        );
        // IPv6 UDP, VLAN 5.
        let mut v6 = decode("0200000000020200000000018100000586dd6000000000081140");
        v6.extend([0u8; 15]);
        v6.push(1);
        v6.extend([0u8; 15]);
        v6.push(2);
        v6.extend(decode("0035003500080000"));
        assert_eq!(
            packet_summary(&v6),
            "udp6,dl_vlan=5,dl_vlan_pcp=0,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02,\
             ipv6_src=::1,ipv6_dst=::2,nw_ttl=64,tp_src=53,tp_dst=53"
        );
        assert_eq!(packet_summary(&[1, 2, 3]), "truncated frame (3 bytes)");
    }

    fn decode(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn hex_dump_matches_ovs_layout() {
        let d = hex_dump(&(0u8..20).collect::<Vec<_>>());
        assert_eq!(
            d,
            "00000000  00 01 02 03 04 05 06 07-08 09 0a 0b 0c 0d 0e 0f |................|\n\
             00000010  10 11 12 13                                     |....|\n"
        );
    }
}
