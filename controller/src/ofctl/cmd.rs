//! The command line: options, verbs, and what each verb does.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use fuxi_openflow::consts::*;
use fuxi_openflow::msg::bundle::flags as bundle_flags;
use fuxi_openflow::msg::port::config;
use fuxi_openflow::msg::{
    BundleAdd, BundleControl, BundleCtrlType, FlowModCommand, FlowStats, FlowStatsRequest,
    GroupModCommand, MeterModCommand, MultipartReplyBody as R, MultipartRequest,
    MultipartRequestBody as Q, PacketOut, Port, PortMod, SwitchConfig,
};
use fuxi_openflow::{Instruction, Match, Message};

use fuxi_openflow::text::group::{GroupUsage, parse_group, parse_group_named};
use fuxi_openflow::text::meter::{MeterUsage, parse_meter};
use fuxi_openflow::text::{
    DEFAULT_PRIORITY, FlowSpec, FlowUsage, ParseError, PortNames, format_actions, format_match,
    no_port_names, parse_action_list_named, parse_flow_named, parse_port_named,
};

use super::conn::{Conn, ConnError, Target};
use super::format::{self as fmt, format_async};

const TARGETS: &str = "\
TARGET is tcp:HOST[:PORT] (port 6653 by default), unix:PATH, or a bridge name BR, meaning
unix:RUNDIR/BR.mgmt with RUNDIR from --rundir or $FUXI_RUNDIR; without either,
/run/fuxi/BR.mgmt (fuxi-switchd) if it exists, else /var/run/openvswitch/BR.mgmt (Open vSwitch).

FLOW, GROUP and METER use ovs-ofctl's syntax, e.g.
  fuxi-ofctl add-flow br0 'priority=10,ip,nw_dst=10.0.0.2,actions=output:2'
  fuxi-ofctl add-group br0 'group_id=1,type=select,bucket=output:1,bucket=output:2'
  fuxi-ofctl add-meter br0 'meter=1,kbps,band=type=drop,rate=1000'
Only OpenFlow 1.3 is spoken. As in ovs-ofctl, a match field whose prerequisite is missing
(nw_src without ip) is dropped from the match, with a warning on standard error.";

/// The command line.
#[derive(Parser, Debug)]
#[command(
    name = "fuxi-ofctl",
    version,
    about = "Administer OpenFlow 1.3 switches, as ovs-ofctl -O OpenFlow13 does",
    after_help = TARGETS
)]
pub struct Cli {
    /// OpenFlow versions to allow (only OpenFlow13 is spoken; accepted for compatibility).
    #[arg(
        short = 'O',
        long = "protocols",
        global = true,
        value_name = "VERSIONS"
    )]
    pub protocols: Option<String>,
    /// Print port numbers, not names (the default; accepted for compatibility).
    #[arg(long, global = true)]
    pub no_names: bool,
    /// Leave statistics (cookie 0, duration, table 0, counters) out of flow dumps.
    #[arg(long, global = true)]
    pub no_stats: bool,
    /// Send the flow and group modifications of one command as one atomic ONF bundle.
    #[arg(long, global = true)]
    pub bundle: bool,
    /// Match flows strictly (priority and match exactly) in mod-flows and del-flows.
    #[arg(long, global = true)]
    pub strict: bool,
    /// Seconds to wait for the switch at each step.
    #[arg(short = 't', long, global = true, default_value_t = 10)]
    pub timeout: u64,
    /// Where a bare bridge name's management socket lives.
    #[arg(long, global = true)]
    pub rundir: Option<PathBuf>,
    /// Sort dump-flows output by FIELD, highest first (only `priority`, the default).
    #[arg(long, global = true, value_name = "FIELD", num_args = 0..=1, require_equals = true,
          default_missing_value = "priority")]
    pub rsort: Option<String>,
    /// Sort dump-flows output by FIELD, lowest first (only `priority`, the default).
    #[arg(long, global = true, value_name = "FIELD", num_args = 0..=1, require_equals = true,
          default_missing_value = "priority")]
    pub sort: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Switch features, port descriptions and configuration.
    Show { target: String },
    /// Switch description.
    DumpDesc { target: String },
    /// Table statistics.
    DumpTables { target: String },
    /// Table features.
    DumpTableFeatures { target: String },
    /// Port statistics (all ports, or one).
    DumpPorts {
        target: String,
        port: Option<String>,
    },
    /// Port descriptions (all ports, or one).
    DumpPortsDesc {
        target: String,
        port: Option<String>,
    },
    /// Change a port's configuration: up, down, receive, no-receive, forward, no-forward,
    /// packet-in, no-packet-in.
    ModPort {
        target: String,
        port: String,
        action: String,
    },
    /// Flows (all, or those matching FLOW).
    DumpFlows {
        target: String,
        flow: Option<String>,
    },
    /// Aggregate statistics of flows (all, or those matching FLOW).
    DumpAggregate {
        target: String,
        flow: Option<String>,
    },
    /// Add one flow.
    AddFlow { target: String, flow: String },
    /// Add the flows in FILE (`-`: standard input), one per line.
    AddFlows { target: String, file: String },
    /// Modify the actions of the flows matching FLOW.
    ModFlows { target: String, flow: String },
    /// Delete flows (all, or those matching FLOW).
    DelFlows {
        target: String,
        flow: Option<String>,
    },
    /// Make the switch's flows equal to those in FILE, changing only what differs.
    ReplaceFlows { target: String, file: String },
    /// Print the differences between two flow sets (each a switch or a file); exit 2 if any.
    DiffFlows { source1: String, source2: String },
    /// Add a group.
    AddGroup { target: String, group: String },
    /// Add the groups in FILE, one per line.
    AddGroups { target: String, file: String },
    /// Modify a group.
    ModGroup { target: String, group: String },
    /// Delete groups (all, or `group_id=N`).
    DelGroups {
        target: String,
        group: Option<String>,
    },
    /// Group descriptions (all, or `group_id=N`).
    DumpGroups {
        target: String,
        group: Option<String>,
    },
    /// Group table features.
    DumpGroupFeatures { target: String },
    /// Meter features.
    MeterFeatures { target: String },
    /// Group statistics (all, or `group_id=N`).
    DumpGroupStats {
        target: String,
        group: Option<String>,
    },
    /// Add a meter.
    AddMeter { target: String, meter: String },
    /// Modify a meter.
    ModMeter { target: String, meter: String },
    /// Delete meters (all, or `meter=N`).
    DelMeters {
        target: String,
        meter: Option<String>,
    },
    /// Meter configurations (all, or `meter=N`).
    DumpMeters {
        target: String,
        meter: Option<String>,
    },
    /// Meter statistics (all, or `meter=N`).
    MeterStats {
        target: String,
        meter: Option<String>,
    },
    /// Send a packet: `packet-out TARGET "in_port=P packet=HEX actions=A"`, or
    /// `packet-out TARGET IN_PORT ACTIONS HEX...`.
    PacketOut {
        target: String,
        #[arg(num_args = 1..)]
        args: Vec<String>,
    },
    /// Print asynchronous messages (packet-in, flow-removed, port-status) until interrupted.
    /// MISS_LEN (default 65535) is sent as the miss_send_len of the switch configuration.
    Monitor {
        target: String,
        miss_len: Option<u16>,
    },
    /// What the switch does with a packet (fuxi-switchd only, through its management
    /// socket): table by table the flow it matches, then the final flow and actions, as
    /// `ovs-appctl ofproto/trace`. FLOW is a match, e.g. in_port=1,tcp,nw_dst=10.0.0.2,tp_dst=80.
    Trace { target: String, flow: String },
}

/// What a command failed with, and the exit code it means.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("{0}")]
    Parse(#[from] ParseError),
    #[error("{0}")]
    Conn(#[from] ConnError),
    #[error("{0}")]
    Other(String),
    /// Standard output was closed (`| head`): stop quietly.
    #[error("")]
    Quiet,
    /// diff-flows found differences: exit 2, nothing more to print.
    #[error("flow tables differ")]
    Differ,
}

impl CmdError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            CmdError::Differ => 2,
            _ => 1,
        }
    }
}

fn other<T>(s: impl Into<String>) -> Result<T, CmdError> {
    Err(CmdError::Other(s.into()))
}

/// Runs the command line; everything it prints goes to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), CmdError> {
    if let Some(p) = &cli.protocols
        && !p
            .split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("OpenFlow13"))
    {
        return other(format!(
            "{p}: fuxi-ofctl speaks OpenFlow13 only (use -O OpenFlow13)"
        ));
    }
    let mut ctx = Ctx { cli, out };
    ctx.dispatch()
}

struct Ctx<'a> {
    cli: &'a Cli,
    out: &'a mut dyn Write,
}

fn mp(body: Q) -> MultipartRequest {
    MultipartRequest { flags: 0, body }
}

/// Parses a flow as ovs-ofctl does, printing its warnings (match fields dropped for lack of
/// prerequisites) on standard error.
fn parse_flow(text: &str, usage: FlowUsage, names: PortNames) -> Result<FlowSpec, ParseError> {
    let (f, warnings) = parse_flow_named(text, usage, names)?;
    for w in warnings {
        eprintln!("fuxi-ofctl: {text}: {w}");
    }
    Ok(f)
}

/// A port number, reserved name or (with `names`) port name.
fn parse_port(s: &str, names: PortNames) -> Result<u32, ParseError> {
    parse_port_named(s, names)
        .ok_or_else(|| ParseError::new(format!("{s}: invalid or unknown port")))
}

/// Every flow of every table.
fn all_flows() -> FlowStatsRequest {
    FlowSpec::new(FlowUsage::Delete).to_flow_stats_request()
}

/// Reads a flow file: one flow per line, `#` comments and blank lines skipped. Lines may
/// start with `add`, `modify`, `modify_strict`, `delete` or `delete_strict` (as in
/// ovs-ofctl); the default is `add`.
pub fn read_flow_lines(path: &str) -> Result<Vec<(usize, String)>, CmdError> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let f = std::fs::File::open(path).map_err(|e| CmdError::Other(format!("{path}: {e}")))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut lines = Vec::new();
    for (i, l) in reader.lines().enumerate() {
        let l = l.map_err(|e| CmdError::Other(format!("{path}: {e}")))?;
        let t = l.split('#').next().unwrap_or("").trim();
        if !t.is_empty() {
            lines.push((i + 1, t.to_string()));
        }
    }
    Ok(lines)
}

fn line_command(text: &str) -> (FlowModCommand, &str) {
    let (w, rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
    let cmd = match w {
        "add" => FlowModCommand::Add,
        "modify" => FlowModCommand::Modify,
        "modify_strict" => FlowModCommand::ModifyStrict,
        "delete" => FlowModCommand::Delete,
        "delete_strict" => FlowModCommand::DeleteStrict,
        _ => return (FlowModCommand::Add, text),
    };
    (cmd, rest.trim())
}

/// Parses with port names resolved through `names` (fetched on demand).
fn with_names<T>(
    conn: &mut Option<&mut Conn>,
    cache: &mut Option<HashMap<String, u32>>,
    f: impl Fn(&dyn Fn(&str) -> Option<u32>) -> Result<T, ParseError>,
) -> Result<T, CmdError> {
    match f(&no_port_names) {
        Ok(v) => Ok(v),
        // Port names are fetched from the switch only when the text needs them (a bare
        // `p1` action reads as an unknown action until names are known).
        Err(e) if e.message.contains("unknown port") || e.message.contains("unknown action") => {
            if cache.is_none() {
                let Some(c) = conn.as_deref_mut() else {
                    return Err(e.into());
                };
                let ports = port_desc(c)?.1;
                *cache = Some(ports.into_iter().map(|p| (p.name, p.port_no)).collect());
            }
            let map = cache.as_ref().expect("filled above");
            Ok(f(&|n: &str| map.get(n).copied())?)
        }
        Err(e) => Err(e.into()),
    }
}

fn port_desc(c: &mut Conn) -> Result<(u32, Vec<Port>), CmdError> {
    let (xid, r) = c.multipart(mp(Q::PortDesc))?;
    match r.body {
        R::PortDesc(p) => Ok((xid, p)),
        _ => other("unexpected reply to a port description request"),
    }
}

fn flows_of(c: &mut Conn, req: FlowStatsRequest) -> Result<(u32, Vec<FlowStats>), CmdError> {
    let (xid, r) = c.multipart(mp(Q::Flow(req)))?;
    match r.body {
        R::Flow(f) => Ok((xid, f)),
        _ => other("unexpected reply to a flow stats request"),
    }
}

/// A flow as diff-flows and replace-flows compare them.
#[derive(Clone, PartialEq, Eq, Debug)]
struct FlowEntry {
    table: u8,
    priority: u16,
    match_: Match,
    cookie: u64,
    idle: u16,
    hard: u16,
    instructions: Vec<Instruction>,
}

impl FlowEntry {
    fn from_stats(f: FlowStats) -> FlowEntry {
        FlowEntry {
            table: f.table_id,
            priority: f.priority,
            match_: f.match_,
            cookie: f.cookie,
            idle: f.idle_timeout,
            hard: f.hard_timeout,
            instructions: f.instructions,
        }
    }

    fn key(&self) -> (u8, u16, String) {
        (self.table, self.priority, format_match(&self.match_))
    }

    /// The flow as ovs-ofctl's diff-flows prints it (a line `add-flows` reads back):
    /// `table=N priority=P,MATCH cookie=C idle_timeout=I hard_timeout=H actions=A`, each part
    /// only when it is not the default.
    fn text(&self) -> String {
        let mut parts = Vec::new();
        if self.table != 0 {
            parts.push(format!("table={}", self.table));
        }
        let m = format_match(&self.match_);
        match (self.priority != DEFAULT_PRIORITY, m.is_empty()) {
            (true, true) => parts.push(format!("priority={}", self.priority)),
            (true, false) => parts.push(format!("priority={},{m}", self.priority)),
            (false, true) => {}
            (false, false) => parts.push(m),
        }
        if self.cookie != 0 {
            parts.push(format!("cookie={:#x}", self.cookie));
        }
        if self.idle != 0 {
            parts.push(format!("idle_timeout={}", self.idle));
        }
        if self.hard != 0 {
            parts.push(format!("hard_timeout={}", self.hard));
        }
        parts.push(format!("actions={}", format_actions(&self.instructions)));
        parts.join(" ")
    }

    /// Whether the switch would need a change to go from `self` to `other`.
    fn same_as(&self, other: &FlowEntry) -> bool {
        self.cookie == other.cookie
            && self.idle == other.idle
            && self.hard == other.hard
            && fmt_insts(&self.instructions) == fmt_insts(&other.instructions)
    }
}

fn fmt_insts(i: &[Instruction]) -> String {
    format_actions(i)
}

impl Ctx<'_> {
    /// How a dump-flows or dump-aggregate filter is read: `priority` only with `--strict`.
    fn filter_usage(&self) -> FlowUsage {
        if self.cli.strict {
            FlowUsage::DeleteStrict
        } else {
            FlowUsage::Delete
        }
    }

    fn target(&self, s: &str) -> Result<Target, CmdError> {
        let rundir = self
            .cli
            .rundir
            .clone()
            .or_else(|| std::env::var_os("FUXI_RUNDIR").map(PathBuf::from));
        Ok(Target::parse(s, rundir.as_deref())?)
    }

    fn open(&self, s: &str) -> Result<Conn, CmdError> {
        let t = self.target(s)?;
        Ok(Conn::open(
            &t,
            Duration::from_secs(self.cli.timeout.max(1)),
        )?)
    }

    fn trace(&mut self, target: &str, flow: &str) -> Result<(), CmdError> {
        let path = match self.target(target)? {
            Target::Unix(p) => p,
            Target::Tcp(t) => {
                return other(format!(
                    "{t}: trace needs fuxi-switchd's management socket: give the bridge name \
                     or unix:/run/fuxi/BR.mgmt"
                ));
            }
        };
        let timeout = Duration::from_secs(self.cli.timeout.max(1));
        let text = super::trace::trace(&path, flow, timeout).map_err(CmdError::Other)?;
        write!(self.out, "{text}").map_err(|e| CmdError::Other(format!("write: {e}")))
    }

    fn say(&mut self, s: &str) -> Result<(), CmdError> {
        writeln!(self.out, "{s}").map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CmdError::Quiet,
            _ => CmdError::Other(format!("write: {e}")),
        })
    }

    fn dispatch(&mut self) -> Result<(), CmdError> {
        let cli = self.cli;
        match &cli.cmd {
            Cmd::Show { target } => self.show(target),
            Cmd::DumpDesc { target } => {
                let mut c = self.open(target)?;
                let (xid, r) = c.multipart(mp(Q::Desc))?;
                let R::Desc(d) = r.body else {
                    return other("unexpected reply");
                };
                self.say(&fmt::format_desc(xid, &d))
            }
            Cmd::DumpTables { target } => {
                let mut c = self.open(target)?;
                let (xid, r) = c.multipart(mp(Q::Table))?;
                let R::Table(t) = r.body else {
                    return other("unexpected reply");
                };
                self.say(&fmt::format_tables(xid, &t))
            }
            Cmd::DumpTableFeatures { target } => {
                let mut c = self.open(target)?;
                let (xid, r) = c.multipart(mp(Q::TableFeatures(Vec::new())))?;
                let R::TableFeatures(t) = r.body else {
                    return other("unexpected reply");
                };
                self.say(&fmt::format_table_features(xid, &t))
            }
            Cmd::DumpPorts { target, port } => {
                let mut c = self.open(target)?;
                let p = match port {
                    None => OFPP_ANY,
                    Some(p) => {
                        let mut cache = None;
                        with_names(&mut Some(&mut c), &mut cache, |n| parse_port(p, n))?
                    }
                };
                let (xid, r) = c.multipart(mp(Q::PortStats(p)))?;
                let R::PortStats(s) = r.body else {
                    return other("unexpected reply");
                };
                self.say(&fmt::format_port_stats(xid, &s))
            }
            Cmd::DumpPortsDesc { target, port } => {
                let mut c = self.open(target)?;
                let (xid, mut ports) = port_desc(&mut c)?;
                if let Some(p) = port {
                    let names: HashMap<String, u32> =
                        ports.iter().map(|p| (p.name.clone(), p.port_no)).collect();
                    let n = parse_port(p, &|s: &str| names.get(s).copied())?;
                    ports.retain(|x| x.port_no == n);
                }
                self.say(&fmt::format_port_desc(xid, &ports))
            }
            Cmd::ModPort {
                target,
                port,
                action,
            } => self.mod_port(target, port, action),
            Cmd::DumpFlows { target, flow } => self.dump_flows(target, flow.as_deref()),
            Cmd::DumpAggregate { target, flow } => {
                let mut c = self.open(target)?;
                let mut cache = None;
                let usage = self.filter_usage();
                let pf = with_names(&mut Some(&mut c), &mut cache, |n| {
                    parse_flow(flow.as_deref().unwrap_or(""), usage, n)
                })?;
                let (xid, r) = c.multipart(mp(Q::Aggregate(pf.to_flow_stats_request())))?;
                let R::Aggregate(a) = r.body else {
                    return other("unexpected reply");
                };
                self.say(&fmt::format_aggregate(xid, &a))
            }
            Cmd::AddFlow { target, flow } => {
                self.flow_mods(target, &[(0, flow.clone())], FlowModCommand::Add)
            }
            Cmd::AddFlows { target, file } => {
                let lines = read_flow_lines(file)?;
                self.flow_mods(target, &lines, FlowModCommand::Add)
            }
            Cmd::ModFlows { target, flow } => {
                let cmd = if cli.strict {
                    FlowModCommand::ModifyStrict
                } else {
                    FlowModCommand::Modify
                };
                self.flow_mods(target, &[(0, flow.clone())], cmd)
            }
            Cmd::DelFlows { target, flow } => {
                let cmd = if cli.strict {
                    FlowModCommand::DeleteStrict
                } else {
                    FlowModCommand::Delete
                };
                self.flow_mods(target, &[(0, flow.clone().unwrap_or_default())], cmd)
            }
            Cmd::ReplaceFlows { target, file } => self.replace_flows(target, file),
            Cmd::DiffFlows { source1, source2 } => self.diff_flows(source1, source2),
            Cmd::AddGroup { target, group } => {
                self.group_mods(target, std::slice::from_ref(group), GroupModCommand::Add)
            }
            Cmd::AddGroups { target, file } => {
                let lines: Vec<String> = read_flow_lines(file)?.into_iter().map(|l| l.1).collect();
                self.group_mods(target, &lines, GroupModCommand::Add)
            }
            Cmd::ModGroup { target, group } => {
                self.group_mods(target, std::slice::from_ref(group), GroupModCommand::Modify)
            }
            Cmd::DelGroups { target, group } => self.group_mods(
                target,
                &[group.clone().unwrap_or_default()],
                GroupModCommand::Delete,
            ),
            Cmd::DumpGroups { target, group } => self.dump_groups(target, group.as_deref(), false),
            Cmd::DumpGroupFeatures { target } => {
                let mut c = self.open(target)?;
                let (xid, r) = c.multipart(mp(Q::GroupFeatures))?;
                let R::GroupFeatures(g) = r.body else {
                    return other("unexpected reply");
                };
                self.say(&fmt::format_group_features(xid, &g))
            }
            Cmd::MeterFeatures { target } => {
                let mut c = self.open(target)?;
                let (xid, r) = c.multipart(mp(Q::MeterFeatures))?;
                let R::MeterFeatures(m) = r.body else {
                    return other("unexpected reply");
                };
                self.say(&fmt::format_meter_features(xid, &m))
            }
            Cmd::DumpGroupStats { target, group } => {
                self.dump_groups(target, group.as_deref(), true)
            }
            Cmd::AddMeter { target, meter } => self.meter_mod(target, meter, MeterModCommand::Add),
            Cmd::ModMeter { target, meter } => {
                self.meter_mod(target, meter, MeterModCommand::Modify)
            }
            Cmd::DelMeters { target, meter } => self.meter_mod(
                target,
                meter.as_deref().unwrap_or(""),
                MeterModCommand::Delete,
            ),
            Cmd::DumpMeters { target, meter } => self.dump_meters(target, meter.as_deref(), false),
            Cmd::MeterStats { target, meter } => self.dump_meters(target, meter.as_deref(), true),
            Cmd::PacketOut { target, args } => self.packet_out(target, args),
            Cmd::Monitor { target, miss_len } => self.monitor(target, *miss_len),
            Cmd::Trace { target, flow } => self.trace(target, flow),
        }
    }

    fn show(&mut self, target: &str) -> Result<(), CmdError> {
        let mut c = self.open(target)?;
        let xid = c.send(&Message::FeaturesRequest)?;
        let Message::FeaturesReply(f) = c.wait_reply(xid)? else {
            return other("unexpected reply to a features request");
        };
        self.say(&fmt::format_features(xid, &f))?;
        let (pxid, ports) = port_desc(&mut c)?;
        self.say(&fmt::format_port_desc(pxid, &ports))?;
        let cxid = c.send(&Message::GetConfigRequest)?;
        let Message::GetConfigReply(cfg) = c.wait_reply(cxid)? else {
            return other("unexpected reply to a get-config request");
        };
        self.say(&fmt::format_config(cxid, &cfg))
    }

    fn mod_port(&mut self, target: &str, port: &str, action: &str) -> Result<(), CmdError> {
        let mut c = self.open(target)?;
        let (_, ports) = port_desc(&mut c)?;
        let names: HashMap<String, u32> =
            ports.iter().map(|p| (p.name.clone(), p.port_no)).collect();
        let n = parse_port(port, &|s: &str| names.get(s).copied())?;
        let Some(p) = ports.iter().find(|p| p.port_no == n) else {
            return other(format!("{port}: no such port"));
        };
        let (bit, on) = match action.to_ascii_lowercase().as_str() {
            "up" => (config::PORT_DOWN, false),
            "down" => (config::PORT_DOWN, true),
            "receive" => (config::NO_RECV, false),
            "no-receive" => (config::NO_RECV, true),
            "forward" => (config::NO_FWD, false),
            "no-forward" => (config::NO_FWD, true),
            "packet-in" => (config::NO_PACKET_IN, false),
            "no-packet-in" => (config::NO_PACKET_IN, true),
            a => return other(format!("unknown mod-port command '{a}'")),
        };
        let pm = PortMod {
            port_no: p.port_no,
            hw_addr: p.hw_addr,
            config: if on { bit } else { 0 },
            mask: bit,
            advertise: 0,
        };
        c.mods_with_barrier(&[Message::PortMod(pm)])?;
        Ok(())
    }

    fn dump_flows(&mut self, target: &str, flow: Option<&str>) -> Result<(), CmdError> {
        let mut c = self.open(target)?;
        let mut cache = None;
        let usage = self.filter_usage();
        let pf = with_names(&mut Some(&mut c), &mut cache, |n| {
            parse_flow(flow.unwrap_or(""), usage, n)
        })?;
        let (xid, mut flows) = flows_of(&mut c, pf.to_flow_stats_request())?;
        for f in [&self.cli.sort, &self.cli.rsort].into_iter().flatten() {
            if f != "priority" {
                return other(format!("{f}: fuxi-ofctl sorts by priority only"));
            }
        }
        // Stable sorts: equal priorities keep the switch's order.
        if self.cli.sort.is_some() {
            flows.sort_by_key(|f| f.priority);
        } else if self.cli.rsort.is_some() {
            flows.sort_by_key(|f| std::cmp::Reverse(f.priority));
        }
        self.say(&fmt::format_flows(xid, &flows, !self.cli.no_stats))
    }

    /// Parses `lines` into flow mods and sends them (in a bundle with `--bundle`).
    fn flow_mods(
        &mut self,
        target: &str,
        lines: &[(usize, String)],
        default_cmd: FlowModCommand,
    ) -> Result<(), CmdError> {
        let mut c = self.open(target)?;
        let mut cache = None;
        let mut msgs = Vec::with_capacity(lines.len());
        for (lineno, text) in lines {
            let (cmd, text) = if default_cmd == FlowModCommand::Add {
                line_command(text)
            } else {
                (default_cmd, text.as_str())
            };
            let usage = match cmd {
                FlowModCommand::Add => FlowUsage::Add,
                FlowModCommand::Modify | FlowModCommand::ModifyStrict => FlowUsage::Modify,
                FlowModCommand::Delete => FlowUsage::Delete,
                FlowModCommand::DeleteStrict => FlowUsage::DeleteStrict,
            };
            let pf = with_names(&mut Some(&mut c), &mut cache, |n| {
                parse_flow(text, usage, n)
            })
            .map_err(|e| match (lineno, e) {
                (0, e) => e,
                (l, e) => CmdError::Other(format!("line {l}: {e}")),
            })?;
            msgs.push(Message::FlowMod(pf.to_flow_mod(cmd)));
        }
        self.send_mods(&mut c, msgs)
    }

    fn send_mods(&mut self, c: &mut Conn, msgs: Vec<Message>) -> Result<(), CmdError> {
        if self.cli.bundle {
            bundle(c, msgs)
        } else {
            Ok(c.mods_with_barrier(&msgs)?)
        }
    }

    fn load_flows(&self, source: &str) -> Result<Vec<FlowEntry>, CmdError> {
        // A readable file is a file; anything else is a switch.
        if source == "-" || Path::new(source).is_file() {
            let mut out = Vec::new();
            for (lineno, text) in read_flow_lines(source)? {
                let pf = parse_flow(&text, FlowUsage::Add, &no_port_names)
                    .map_err(|e| CmdError::Other(format!("{source}:{lineno}: {e}")))?;
                out.push(FlowEntry {
                    table: pf.table_id,
                    priority: pf.priority,
                    match_: pf.match_,
                    cookie: pf.cookie,
                    idle: pf.idle_timeout,
                    hard: pf.hard_timeout,
                    instructions: pf.instructions,
                });
            }
            return Ok(out);
        }
        let mut c = self.open(source)?;
        let (_, flows) = flows_of(&mut c, all_flows())?;
        Ok(flows.into_iter().map(FlowEntry::from_stats).collect())
    }

    fn diff_flows(&mut self, a: &str, b: &str) -> Result<(), CmdError> {
        let fa = self.load_flows(a)?;
        let fb = self.load_flows(b)?;
        let ma: BTreeMap<_, _> = fa.into_iter().map(|f| (f.key(), f)).collect();
        let mb: BTreeMap<_, _> = fb.into_iter().map(|f| (f.key(), f)).collect();
        let mut differ = false;
        let mut keys: Vec<_> = ma.keys().chain(mb.keys()).cloned().collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            match (ma.get(&k), mb.get(&k)) {
                (Some(x), Some(y)) if x.same_as(y) => {}
                (x, y) => {
                    differ = true;
                    if let Some(x) = x {
                        self.say(&format!("-{}", x.text()))?;
                    }
                    if let Some(y) = y {
                        self.say(&format!("+{}", y.text()))?;
                    }
                }
            }
        }
        if differ {
            Err(CmdError::Differ)
        } else {
            Ok(())
        }
    }

    fn replace_flows(&mut self, target: &str, file: &str) -> Result<(), CmdError> {
        let want = self.load_flows(file)?;
        let mut c = self.open(target)?;
        let (_, have) = flows_of(&mut c, all_flows())?;
        let have: BTreeMap<_, _> = have
            .into_iter()
            .map(|f| {
                let e = FlowEntry::from_stats(f);
                (e.key(), e)
            })
            .collect();
        let want: BTreeMap<_, _> = want.into_iter().map(|f| (f.key(), f)).collect();
        let mut msgs = Vec::new();
        for (k, h) in &have {
            if !want.contains_key(k) {
                msgs.push(Message::FlowMod(fuxi_openflow::msg::FlowMod {
                    table_id: h.table,
                    priority: h.priority,
                    match_: h.match_.clone(),
                    ..fuxi_openflow::msg::FlowMod::new(FlowModCommand::DeleteStrict)
                }));
            }
        }
        for (k, w) in &want {
            if have.get(k).is_some_and(|h| h.same_as(w)) {
                continue;
            }
            msgs.push(Message::FlowMod(fuxi_openflow::msg::FlowMod {
                table_id: w.table,
                priority: w.priority,
                cookie: w.cookie,
                idle_timeout: w.idle,
                hard_timeout: w.hard,
                match_: w.match_.clone(),
                instructions: w.instructions.clone(),
                ..fuxi_openflow::msg::FlowMod::new(FlowModCommand::Add)
            }));
        }
        self.send_mods(&mut c, msgs)
    }

    fn group_mods(
        &mut self,
        target: &str,
        texts: &[String],
        command: GroupModCommand,
    ) -> Result<(), CmdError> {
        let mut c = self.open(target)?;
        let mut cache = None;
        let mut msgs = Vec::new();
        let usage = match command {
            GroupModCommand::Delete => GroupUsage::Delete,
            _ => GroupUsage::Add,
        };
        for text in texts {
            let g = with_names(&mut Some(&mut c), &mut cache, |n| {
                parse_group_named(text, usage, n)
            })?;
            msgs.push(Message::GroupMod(g.to_group_mod(command)));
        }
        self.send_mods(&mut c, msgs)
    }

    fn dump_groups(
        &mut self,
        target: &str,
        group: Option<&str>,
        stats: bool,
    ) -> Result<(), CmdError> {
        let mut c = self.open(target)?;
        let id = match group {
            Some(g) => Some(parse_group(g, GroupUsage::Delete)?.group_id),
            None => None,
        };
        if stats {
            let (xid, r) = c.multipart(mp(Q::Group(id.unwrap_or(OFPG_ALL))))?;
            let R::Group(g) = r.body else {
                return other("unexpected reply");
            };
            self.say(&fmt::format_group_stats(xid, &g))
        } else {
            let (xid, r) = c.multipart(mp(Q::GroupDesc))?;
            let R::GroupDesc(mut g) = r.body else {
                return other("unexpected reply");
            };
            if let Some(id) = id.filter(|i| *i != OFPG_ALL) {
                g.retain(|x| x.group_id == id);
            }
            self.say(&fmt::format_group_desc(xid, &g))
        }
    }

    fn meter_mod(
        &mut self,
        target: &str,
        text: &str,
        command: MeterModCommand,
    ) -> Result<(), CmdError> {
        let usage = match command {
            MeterModCommand::Delete => MeterUsage::Delete,
            _ => MeterUsage::Add,
        };
        let m = parse_meter(text, usage)?;
        let mut c = self.open(target)?;
        c.mods_with_barrier(&[Message::MeterMod(m.to_meter_mod(command))])?;
        Ok(())
    }

    fn dump_meters(
        &mut self,
        target: &str,
        meter: Option<&str>,
        stats: bool,
    ) -> Result<(), CmdError> {
        let id = match meter {
            Some(m) => parse_meter(m, MeterUsage::Delete)?.meter_id,
            None => OFPM_ALL,
        };
        let mut c = self.open(target)?;
        if stats {
            let (xid, r) = c.multipart(mp(Q::Meter(id)))?;
            let R::Meter(m) = r.body else {
                return other("unexpected reply");
            };
            self.say(&fmt::format_meter_stats(xid, &m))
        } else {
            let (xid, r) = c.multipart(mp(Q::MeterConfig(id)))?;
            let R::MeterConfig(m) = r.body else {
                return other("unexpected reply");
            };
            self.say(&fmt::format_meter_configs(xid, &m))
        }
    }

    fn packet_out(&mut self, target: &str, args: &[String]) -> Result<(), CmdError> {
        let mut c = self.open(target)?;
        let mut cache = None;
        let (in_port, actions, hex) =
            if args.len() == 1 || args[0].contains("packet=") || args[0].contains("actions=") {
                let joined = args.join(" ");
                let (head, actions) = match joined.find("actions=") {
                    Some(i) => (&joined[..i], &joined[i + 8..]),
                    None => return other("packet-out: must specify actions="),
                };
                let mut in_port = "CONTROLLER".to_string();
                let mut packet = None;
                for item in head.split([',', ' ']).filter(|s| !s.is_empty()) {
                    match item.split_once('=') {
                        Some(("in_port", v)) => in_port = v.to_string(),
                        Some(("packet", v)) => packet = Some(v.to_string()),
                        _ => return other(format!("packet-out: unknown keyword {item}")),
                    }
                }
                let Some(p) = packet else {
                    return other("packet-out: must specify packet=");
                };
                (in_port, actions.trim().to_string(), vec![p])
            } else if args.len() >= 3 {
                (args[0].clone(), args[1].clone(), args[2..].to_vec())
            } else {
                return other("packet-out: usage: packet-out TARGET IN_PORT ACTIONS PACKET...");
            };
        let port = with_names(&mut Some(&mut c), &mut cache, |n| parse_port(&in_port, n))?;
        let acts = with_names(&mut Some(&mut c), &mut cache, |n| {
            parse_action_list_named(&actions, n)
        })?;
        let mut msgs = Vec::new();
        for h in hex {
            let h: String = h
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '.')
                .collect();
            let data = decode_hex(&h).ok_or_else(|| {
                CmdError::Other(format!("{h}: packet must be an even number of hex digits"))
            })?;
            msgs.push(Message::PacketOut(PacketOut {
                buffer_id: OFP_NO_BUFFER,
                in_port: port,
                actions: acts.clone(),
                data,
            }));
        }
        Ok(c.mods_with_barrier(&msgs)?)
    }

    fn monitor(&mut self, target: &str, miss_len: Option<u16>) -> Result<(), CmdError> {
        let mut c = self.open(target)?;
        // Open vSwitch sends asynchronous messages to a service connection only once it
        // has asked for packet-ins, i.e. set a miss_send_len.
        let cfg = SwitchConfig {
            flags: 0,
            miss_send_len: miss_len.unwrap_or(OFPCML_NO_BUFFER),
        };
        c.mods_with_barrier(&[Message::SetConfig(cfg)])?;
        loop {
            let (h, m) = c.recv(None)?;
            if let Some(s) = format_async(h.xid, &m) {
                self.say(&s)?;
                self.out.flush().ok();
            }
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Sends `msgs` as one atomic, ordered ONF bundle: open, add each, commit. Any error (to
/// an add or to the commit) fails the whole bundle, and the switch changes nothing.
fn bundle(c: &mut Conn, msgs: Vec<Message>) -> Result<(), CmdError> {
    const BUNDLE_ID: u32 = 1;
    let flags = bundle_flags::ATOMIC | bundle_flags::ORDERED;
    let ctl = |t| {
        Message::BundleControl(BundleControl {
            bundle_id: BUNDLE_ID,
            ctrl_type: t,
            flags,
            properties: Vec::new(),
        })
    };
    let reply = c.transact(&ctl(BundleCtrlType::OpenRequest))?;
    if !matches!(&reply, Message::BundleControl(b) if b.ctrl_type == BundleCtrlType::OpenReply) {
        return other("unexpected reply to a bundle open request");
    }
    for m in msgs {
        c.queue(&Message::BundleAdd(BundleAdd {
            bundle_id: BUNDLE_ID,
            flags,
            message: Box::new(m),
            properties: Vec::new(),
        }))?;
    }
    let commit_xid = c.queue(&ctl(BundleCtrlType::CommitRequest))?;
    c.flush()?;
    // Errors to adds arrive before the commit's reply (or error).
    let mut first_err = None;
    loop {
        match c.recv(Some(c.timeout)) {
            Ok((h, Message::BundleControl(b))) if h.xid == commit_xid => {
                if b.ctrl_type == BundleCtrlType::CommitReply {
                    break;
                }
                return other("unexpected reply to a bundle commit request");
            }
            Ok((h, Message::Error(error))) => {
                let is_commit = h.xid == commit_xid;
                first_err.get_or_insert(ConnError::Refused { xid: h.xid, error });
                if is_commit {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match first_err {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
