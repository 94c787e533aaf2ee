//! The OpenFlow 1.3 pipeline: flow tables, groups, meters and ports, the flow-mod,
//! group-mod and meter-mod semantics that change them, timeouts, and the translation of a
//! packet's key into datapath actions ([`xlate`]) that [`exec`] then applies to its bytes.
//!
//! Nothing here does I/O or reads a clock: `now` (nanoseconds on the datapath's monotonic
//! clock) is an argument. Flow-mods arrive as [`FlowMod`] values (the agent converts the wire
//! message); errors are OpenFlow [`ErrorCode`]s. Every change bumps [`Pipeline::generation`],
//! which is what invalidates the flow caches.

pub mod exec;
pub mod group;
pub mod matching;
pub mod meter;
pub mod normal;
pub mod wire;
pub mod xlate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fuxi_openflow::consts::{
    OFPG_ANY, OFPP_ANY, OFPP_CONTROLLER, OFPP_IN_PORT, OFPP_LOCAL, OFPP_MAX, OFPTT_ALL,
};
use fuxi_openflow::oxm::{FieldId, OxmTlv};
use fuxi_openflow::{Action, ErrorCode, Instruction, Match};

use crate::classifier::{Classifier, Rule, RuleId};
use crate::packet::{FlowKey, FlowMask};

pub use group::{Bucket, Group, GroupMod, GroupModCommand, GroupStats, GroupType};
pub use matching::MatchLayout;
pub use meter::{Band, MeterConfig, MeterMod, MeterModCommand, Meters};
pub use xlate::{Actions, DpAction, FlowList, InlineVec, PacketInReason, Trace, Translation};

/// Nanoseconds on the datapath's monotonic clock.
pub type Nanos = u64;

/// Number of flow tables (0..=254, as Open vSwitch has).
pub const N_TABLES: usize = 255;

/// `ofp_flow_mod_flags`.
pub mod flags {
    /// Send a flow-removed message when the flow expires or is deleted.
    pub const SEND_FLOW_REM: u16 = 1 << 0;
    /// Check for overlapping entries first.
    pub const CHECK_OVERLAP: u16 = 1 << 1;
    /// Reset flow packet and byte counts.
    pub const RESET_COUNTS: u16 = 1 << 2;
    /// Don't keep track of packet count.
    pub const NO_PKT_COUNTS: u16 = 1 << 3;
    /// Don't keep track of byte count.
    pub const NO_BYT_COUNTS: u16 = 1 << 4;
}

/// `ofp_flow_mod_command`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FlowModCommand {
    /// OFPFC_ADD.
    Add,
    /// OFPFC_MODIFY: all flows covered by the match.
    Modify,
    /// OFPFC_MODIFY_STRICT: the flow with this exact match and priority.
    ModifyStrict,
    /// OFPFC_DELETE.
    Delete,
    /// OFPFC_DELETE_STRICT.
    DeleteStrict,
}

/// A flow-mod as the pipeline takes it (the agent converts `ofp_flow_mod`; `buffer_id` is
/// the agent's business).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowMod {
    /// What to do.
    pub command: FlowModCommand,
    /// Table, or OFPTT_ALL (deletes only).
    pub table_id: u8,
    /// Cookie of an added flow; filter for modify/delete together with `cookie_mask`.
    pub cookie: u64,
    /// Which cookie bits must equal for modify/delete (0: no filter).
    pub cookie_mask: u64,
    /// Priority.
    pub priority: u16,
    /// Seconds of idleness before removal (0: none).
    pub idle_timeout: u16,
    /// Seconds before removal (0: none).
    pub hard_timeout: u16,
    /// `flags::*`.
    pub flags: u16,
    /// Delete filter: only flows that output to this port (OFPP_ANY: no filter).
    pub out_port: u32,
    /// Delete filter: only flows that use this group (OFPG_ANY: no filter).
    pub out_group: u32,
    /// The match.
    pub r#match: Match,
    /// The instructions.
    pub instructions: Vec<Instruction>,
}

impl FlowMod {
    /// An OFPFC_ADD with no timeouts, flags or cookie.
    pub fn add(table_id: u8, priority: u16, m: Match, instructions: Vec<Instruction>) -> Self {
        FlowMod {
            command: FlowModCommand::Add,
            table_id,
            cookie: 0,
            cookie_mask: 0,
            priority,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            r#match: m,
            instructions,
        }
    }

    /// A delete of everything `m` covers in `table_id` (OFPTT_ALL for every table).
    pub fn delete(table_id: u8, m: Match) -> Self {
        FlowMod {
            command: FlowModCommand::Delete,
            ..FlowMod::add(table_id, 0, m, vec![])
        }
    }
}

/// Counters of one flow, shared with the cache entries that credit it.
#[derive(Debug, Default)]
pub struct FlowStats {
    /// Packets matched.
    pub packets: AtomicU64,
    /// Bytes matched.
    pub bytes: AtomicU64,
    /// `now` of the last packet matched (for the idle timeout).
    pub last_used: AtomicU64,
}

impl FlowStats {
    /// Credits one packet of `len` bytes at `now`.
    #[inline]
    pub fn hit(&self, len: usize, now: Nanos) {
        self.add(1, len as u64, now);
    }

    /// Credits `packets` packets and `bytes` bytes, the last at `used` (a datapath's sync).
    pub fn add(&self, packets: u64, bytes: u64, used: Nanos) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_used.fetch_max(used, Ordering::Relaxed);
    }

    fn snapshot(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// One flow entry.
#[derive(Clone, Debug)]
pub struct FlowEntry {
    /// Cookie.
    pub cookie: u64,
    /// Priority.
    pub priority: u16,
    /// `flags::*` as added.
    pub flags: u16,
    /// Idle timeout, seconds.
    pub idle_timeout: u16,
    /// Hard timeout, seconds.
    pub hard_timeout: u16,
    /// The order and masks of the match's TLVs: with the rule's key and mask, the match as
    /// given (flow stats report it back verbatim; see [`FlowEntry::to_match`]).
    pub layout: MatchLayout,
    /// The instructions (flows added with identical instructions one after another share
    /// one copy).
    pub instructions: Arc<[Instruction]>,
    /// When added.
    pub created: Nanos,
    /// Counters.
    pub stats: Arc<FlowStats>,
}

impl FlowEntry {
    /// The match as added, given the rule's masked key and mask.
    pub fn to_match(&self, key: &FlowKey, mask: &FlowMask) -> Match {
        self.layout.rebuild(key, mask)
    }
}

impl Rule<FlowEntry> {
    /// The flow's match as added (rebuilt from the rule's key and mask).
    pub fn flow_match(&self) -> Match {
        self.value.to_match(&self.key(), &self.mask)
    }
}

/// Why a flow left its table (`ofp_flow_removed_reason`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RemovedReason {
    /// OFPRR_IDLE_TIMEOUT.
    IdleTimeout = 0,
    /// OFPRR_HARD_TIMEOUT.
    HardTimeout = 1,
    /// OFPRR_DELETE.
    Delete = 2,
    /// OFPRR_GROUP_DELETE.
    GroupDelete = 3,
}

/// A flow that left its table with OFPFF_SEND_FLOW_REM set: what a flow-removed message says.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowRemoved {
    /// Table it was in.
    pub table_id: u8,
    /// Cookie.
    pub cookie: u64,
    /// Priority.
    pub priority: u16,
    /// Why.
    pub reason: RemovedReason,
    /// Lifetime in nanoseconds.
    pub duration: Nanos,
    /// Idle timeout, seconds.
    pub idle_timeout: u16,
    /// Hard timeout, seconds.
    pub hard_timeout: u16,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The match.
    pub r#match: Match,
}

/// A flow or aggregate stats request, as the pipeline takes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowStatsRequest {
    /// Table, or OFPTT_ALL.
    pub table_id: u8,
    /// Only flows that output to this port (OFPP_ANY: all).
    pub out_port: u32,
    /// Only flows that use this group (OFPG_ANY: all).
    pub out_group: u32,
    /// Cookie to compare under `cookie_mask`.
    pub cookie: u64,
    /// Cookie bits that must equal.
    pub cookie_mask: u64,
    /// Only flows this match covers.
    pub r#match: Match,
}

impl FlowStatsRequest {
    /// Every flow in every table.
    pub fn all() -> Self {
        FlowStatsRequest {
            table_id: OFPTT_ALL,
            out_port: OFPP_ANY,
            out_group: OFPG_ANY,
            cookie: 0,
            cookie_mask: 0,
            r#match: Match::all(),
        }
    }
}

/// One flow in a flow stats reply.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FlowStatsEntry {
    /// Table.
    pub table_id: u8,
    /// Priority.
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// Flags as added.
    pub flags: u16,
    /// Idle timeout, seconds.
    pub idle_timeout: u16,
    /// Hard timeout, seconds.
    pub hard_timeout: u16,
    /// Age in nanoseconds.
    pub duration: Nanos,
    /// Packets matched.
    pub packet_count: u64,
    /// Bytes matched.
    pub byte_count: u64,
    /// The match as added.
    pub r#match: Match,
    /// The instructions.
    pub instructions: Arc<[Instruction]>,
}

/// State of a port, as far as forwarding needs it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PortState {
    /// Link up and not administratively down (fast-failover liveness, flooding).
    pub live: bool,
}

/// Switch configuration the pipeline obeys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Config {
    /// OFPC_INVALID_TTL_TO_CONTROLLER: packets whose TTL a decrement would take to zero go to
    /// the controller (reason OFPR_INVALID_TTL) instead of being dropped.
    pub invalid_ttl_to_controller: bool,
}

/// One flow table.
#[derive(Debug, Default)]
pub struct Table {
    /// The flows, shared copy-on-write between a pipeline and its clones: cloning a
    /// pipeline copies no flow, and a change copies only the table it touches (the first
    /// change after a clone; [`Table::flows_mut`]).
    pub flows: Arc<Classifier<FlowEntry>>,
    /// Packets looked up in this table (credited by `Datapath::sync_stats`).
    pub lookups: AtomicU64,
    /// Of those, packets that matched a flow.
    pub matched: AtomicU64,
}

impl Table {
    /// The flows, to change: copied first if a clone of the pipeline shares them.
    pub fn flows_mut(&mut self) -> &mut Classifier<FlowEntry> {
        Arc::make_mut(&mut self.flows)
    }
}

impl Clone for Table {
    fn clone(&self) -> Self {
        let r = Ordering::Relaxed;
        Table {
            flows: self.flows.clone(),
            lookups: AtomicU64::new(self.lookups.load(r)),
            matched: AtomicU64::new(self.matched.load(r)),
        }
    }
}

/// The whole pipeline state of one switch. `Clone` is cheap: the flow tables are shared
/// until one of the two changes them, and then only the changed table is copied (flow
/// counters stay shared either way); table lookup counters are per copy. This is what a
/// control plane that edits a copy and publishes it (arc-swap) needs.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// Flow tables 0..N_TABLES.
    pub tables: Vec<Table>,
    /// Groups by id.
    pub groups: BTreeMap<u32, Group>,
    /// Meters.
    pub meters: Meters,
    /// Ports by number.
    pub ports: BTreeMap<u32, PortState>,
    /// Switch configuration.
    pub config: Config,
    /// The MAC learning table of the NORMAL action, shared by every clone (learning is
    /// not a pipeline change: it has its own version, see [`normal`]).
    pub mac_table: Arc<normal::MacTable>,
    generation: u64,
    /// Flows with an idle or hard timeout: when 0, timeout scans are skipped.
    timed: usize,
    /// The instructions of the last flow added: an add with the same ones shares them.
    last_instructions: Option<Arc<[Instruction]>>,
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a flow's instructions output to `port` (flow-mod/stats `out_port` filter).
fn outputs_to(insts: &[Instruction], port: u32) -> bool {
    actions_of(insts).any(|a| matches!(a, Action::Output { port: p, .. } if *p == port))
}

/// Whether a flow's instructions use group `group`.
fn uses_group(insts: &[Instruction], group: u32) -> bool {
    actions_of(insts).any(|a| matches!(a, Action::Group(g) if *g == group))
}

fn actions_of(insts: &[Instruction]) -> impl Iterator<Item = &Action> {
    insts.iter().flat_map(|i| match i {
        Instruction::ApplyActions(a) | Instruction::WriteActions(a) => a.as_slice(),
        _ => &[],
    })
}

fn uses_meter(insts: &[Instruction], meter: u32) -> bool {
    insts
        .iter()
        .any(|i| matches!(i, Instruction::Meter(m) if *m == meter))
}

/// Generations are unique across every pipeline in the process, so that a datapath handed
/// a clone that was changed separately never mistakes it for the pipeline it cached.
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Pipeline {
    /// An empty pipeline: every table empty (table-miss drops), no groups, meters or ports.
    pub fn new() -> Self {
        Pipeline {
            tables: (0..N_TABLES).map(|_| Table::default()).collect(),
            groups: BTreeMap::new(),
            meters: Meters::default(),
            ports: BTreeMap::new(),
            config: Config::default(),
            mac_table: Arc::default(),
            generation: next_generation(),
            timed: 0,
            last_instructions: None,
        }
    }

    /// Changes every time flows, groups, meters, ports or config change; caches built at
    /// another generation are stale.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn bump(&mut self) {
        self.generation = next_generation();
    }

    /// Adds or updates a port.
    pub fn set_port(&mut self, port: u32, state: PortState) {
        self.ports.insert(port, state);
        self.bump();
    }

    /// Removes a port.
    pub fn remove_port(&mut self, port: u32) {
        self.ports.remove(&port);
        self.mac_table.flush_port(port);
        self.bump();
    }

    /// Sets the switch configuration.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
        self.bump();
    }

    /// Checks a flow-mod's instructions against the spec and this switch's abilities.
    fn validate_instructions(
        &self,
        table_id: u8,
        m: &Match,
        insts: &[Instruction],
    ) -> Result<(), ErrorCode> {
        let mut seen = [false; 7];
        for inst in insts {
            let t = usize::from(inst.instruction_type());
            if let Some(s) = seen.get_mut(t) {
                if *s {
                    // Each instruction type at most once (spec §5.9).
                    return Err(ErrorCode::BAD_INSTRUCTION_UNSUP_INST);
                }
                *s = true;
            }
            match inst {
                Instruction::GotoTable(t) => {
                    if *t <= table_id || usize::from(*t) >= N_TABLES {
                        return Err(ErrorCode::BAD_INSTRUCTION_BAD_TABLE_ID);
                    }
                }
                Instruction::Meter(id) => {
                    if !self.meters.contains(*id) {
                        return Err(ErrorCode::METER_MOD_UNKNOWN_METER);
                    }
                }
                Instruction::ApplyActions(acts) | Instruction::WriteActions(acts) => {
                    self.validate_actions(Some(m), acts)?;
                }
                Instruction::WriteMetadata { .. } | Instruction::ClearActions => {}
                Instruction::Experimenter { .. } => {
                    return Err(ErrorCode::BAD_INSTRUCTION_UNKNOWN_INST);
                }
            }
        }
        Ok(())
    }

    /// Checks an action list (flow instruction or group bucket).
    /// `m` is the flow's match (None for group buckets, which have none): set-fields must be
    /// consistent with it.
    pub(crate) fn validate_actions(
        &self,
        m: Option<&Match>,
        acts: &[Action],
    ) -> Result<(), ErrorCode> {
        for a in acts {
            match a {
                Action::Output { port, .. } => {
                    let ok = (*port >= 1 && *port <= OFPP_MAX)
                        || matches!(
                            *port,
                            OFPP_IN_PORT
                                | fuxi_openflow::consts::OFPP_NORMAL
                                | fuxi_openflow::consts::OFPP_ALL
                                | fuxi_openflow::consts::OFPP_FLOOD
                                | OFPP_CONTROLLER
                                | OFPP_LOCAL
                        );
                    if !ok {
                        return Err(ErrorCode::BAD_ACTION_BAD_OUT_PORT);
                    }
                }
                Action::Group(g) if !self.groups.contains_key(g) => {
                    return Err(ErrorCode::BAD_ACTION_BAD_OUT_GROUP);
                }
                Action::PushVlan(t) if !matches!(*t, 0x8100 | 0x88a8) => {
                    return Err(ErrorCode::BAD_ACTION_BAD_ARGUMENT);
                }
                Action::PushMpls(t) if !matches!(*t, 0x8847 | 0x8848) => {
                    return Err(ErrorCode::BAD_ACTION_BAD_ARGUMENT);
                }
                Action::SetField(OxmTlv::Basic(o)) => {
                    if matches!(
                        o.field,
                        FieldId::Ipv6Exthdr | FieldId::PbbIsid | FieldId::InPort
                    ) || matches!(o.field, FieldId::InPhyPort)
                    {
                        return Err(ErrorCode::BAD_ACTION_BAD_SET_TYPE);
                    }
                    // The field's prerequisites must hold in the match (VLAN fields may
                    // follow a push_vlan; MPLS fields a push_mpls).
                    let pushes = |f: fn(&Action) -> bool| acts.iter().any(f);
                    let vlan_ok = matches!(o.field, FieldId::VlanVid | FieldId::VlanPcp)
                        && pushes(|a| matches!(a, Action::PushVlan(_)));
                    let mpls_ok = matches!(
                        o.field,
                        FieldId::MplsLabel | FieldId::MplsTc | FieldId::MplsBos
                    ) && pushes(|a| matches!(a, Action::PushMpls(_)));
                    if let Some(m) = m
                        && !vlan_ok
                        && !mpls_ok
                    {
                        let probe = Match {
                            fields: vec![OxmTlv::Basic(*o)],
                        };
                        let mut with = m.clone();
                        with.fields.retain(|f| f.key() != OxmTlv::Basic(*o).key());
                        with.fields.extend(probe.fields);
                        if with.validate().is_err() {
                            return Err(ErrorCode::BAD_ACTION_MATCH_INCONSISTENT);
                        }
                    }
                }
                Action::SetField(OxmTlv::Raw(_)) => return Err(ErrorCode::BAD_ACTION_BAD_SET_TYPE),
                Action::CopyTtlIn | Action::PushPbb(_) | Action::PopPbb => {
                    return Err(ErrorCode::BAD_ACTION_BAD_TYPE);
                }
                Action::Experimenter { .. } => return Err(ErrorCode::BAD_ACTION_BAD_EXPERIMENTER),
                _ => {}
            }
        }
        Ok(())
    }

    fn tables_for(&self, table_id: u8, allow_all: bool) -> Result<Vec<usize>, ErrorCode> {
        if table_id == OFPTT_ALL && allow_all {
            Ok((0..N_TABLES).collect())
        } else if usize::from(table_id) < N_TABLES {
            Ok(vec![usize::from(table_id)])
        } else {
            Err(ErrorCode::FLOW_MOD_BAD_TABLE_ID)
        }
    }

    /// Flows a modify/delete selects: (table, rule id).
    fn select(
        &self,
        fm: &FlowMod,
        strict: bool,
        key: &FlowKey,
        mask: &FlowMask,
    ) -> Result<Vec<(usize, RuleId)>, ErrorCode> {
        let mut out = Vec::new();
        let is_delete = matches!(
            fm.command,
            FlowModCommand::Delete | FlowModCommand::DeleteStrict
        );
        for t in self.tables_for(fm.table_id, is_delete)? {
            let cls = &self.tables[t].flows;
            let cand: Vec<RuleId> = if strict {
                cls.find_exact(key, mask, u32::from(fm.priority))
                    .into_iter()
                    .collect()
            } else {
                cls.iter()
                    .filter(|(_, r)| matching::covered_by(&r.key(), &r.mask, key, mask))
                    .map(|(id, _)| id)
                    .collect()
            };
            for id in cand {
                let Some(r) = cls.get(id) else { continue };
                let e = &r.value;
                if (e.cookie ^ fm.cookie) & fm.cookie_mask != 0 {
                    continue;
                }
                if is_delete {
                    if fm.out_port != OFPP_ANY && !outputs_to(&e.instructions, fm.out_port) {
                        continue;
                    }
                    if fm.out_group != OFPG_ANY && !uses_group(&e.instructions, fm.out_group) {
                        continue;
                    }
                }
                out.push((t, id));
            }
        }
        Ok(out)
    }

    /// Applies a flow-mod at `now` (spec §6.4). Returns the flows it removed that asked for a
    /// flow-removed message. On error nothing changed.
    pub fn flow_mod(&mut self, fm: &FlowMod, now: Nanos) -> Result<Vec<FlowRemoved>, ErrorCode> {
        let mut key = FlowKey::ZERO;
        let mut mask = FlowKey::ZERO;
        matching::match_to_key_into(&fm.r#match, &mut key, &mut mask)?;
        let mut removed = Vec::new();
        match fm.command {
            FlowModCommand::Add => {
                if fm.table_id == OFPTT_ALL {
                    return Err(ErrorCode::FLOW_MOD_BAD_TABLE_ID);
                }
                let t = usize::from(fm.table_id);
                if t >= N_TABLES {
                    return Err(ErrorCode::FLOW_MOD_BAD_TABLE_ID);
                }
                self.validate_instructions(fm.table_id, &fm.r#match, &fm.instructions)?;
                let prio = u32::from(fm.priority);
                let cls = &self.tables[t].flows;
                // "Two flow entries overlap if a single packet may match both, and both
                // entries have the same priority" (§6.4): an identical entry overlaps too.
                if fm.flags & flags::CHECK_OVERLAP != 0 {
                    let clash = cls.iter().any(|(_, r)| {
                        r.priority == prio && matching::overlaps(&r.key(), &r.mask, &key, &mask)
                    });
                    if clash {
                        return Err(ErrorCode::FLOW_MOD_OVERLAP);
                    }
                }
                let stats = Arc::new(FlowStats::default());
                stats.last_used.store(now, Ordering::Relaxed);
                let entry = FlowEntry {
                    cookie: fm.cookie,
                    priority: fm.priority,
                    flags: fm.flags,
                    idle_timeout: fm.idle_timeout,
                    hard_timeout: fm.hard_timeout,
                    layout: MatchLayout::of(&fm.r#match),
                    instructions: self.share_instructions(&fm.instructions),
                    created: now,
                    stats,
                };
                if entry.idle_timeout != 0 || entry.hard_timeout != 0 {
                    self.timed += 1;
                }
                // An identical flow (same match and priority) is replaced; its counters
                // carry over unless RESET_COUNTS.
                let flows = self.tables[t].flows_mut();
                let (id, old) = flows.replace(&key, &mask, prio, entry);
                if let Some(old) = old.map(|r| r.value) {
                    if old.idle_timeout != 0 || old.hard_timeout != 0 {
                        self.timed -= 1;
                    }
                    if fm.flags & flags::RESET_COUNTS == 0
                        && let Some(new) = flows.get(id)
                    {
                        let (p, b) = old.stats.snapshot();
                        new.value.stats.packets.store(p, Ordering::Relaxed);
                        new.value.stats.bytes.store(b, Ordering::Relaxed);
                    }
                }
            }
            FlowModCommand::Modify | FlowModCommand::ModifyStrict => {
                let strict = fm.command == FlowModCommand::ModifyStrict;
                let sel = self.select(fm, strict, &key, &mask)?;
                for &(t, id) in &sel {
                    let m = &self.tables[t].flows.get(id).map(Rule::flow_match);
                    if let Some(m) = m {
                        self.validate_instructions(t as u8, m, &fm.instructions)?;
                    }
                }
                let insts: Arc<[Instruction]> = fm.instructions.clone().into();
                for (t, id) in sel {
                    if let Some(e) = self.tables[t].flows_mut().get_mut(id) {
                        e.instructions = insts.clone();
                        if fm.flags & flags::RESET_COUNTS != 0 {
                            e.stats.packets.store(0, Ordering::Relaxed);
                            e.stats.bytes.store(0, Ordering::Relaxed);
                        }
                    }
                }
            }
            FlowModCommand::Delete | FlowModCommand::DeleteStrict => {
                let strict = fm.command == FlowModCommand::DeleteStrict;
                for (t, id) in self.select(fm, strict, &key, &mask)? {
                    self.remove_flow(t, id, RemovedReason::Delete, now, &mut removed);
                }
            }
        }
        self.bump();
        Ok(removed)
    }

    fn remove_flow(
        &mut self,
        t: usize,
        id: RuleId,
        reason: RemovedReason,
        now: Nanos,
        out: &mut Vec<FlowRemoved>,
    ) {
        let Some(rule) = self.tables[t].flows_mut().remove(id) else {
            return;
        };
        let e = &rule.value;
        if e.idle_timeout != 0 || e.hard_timeout != 0 {
            self.timed -= 1;
        }
        if e.flags & flags::SEND_FLOW_REM != 0 {
            let (packet_count, byte_count) = e.stats.snapshot();
            out.push(FlowRemoved {
                table_id: t as u8,
                cookie: e.cookie,
                priority: e.priority,
                reason,
                duration: now.saturating_sub(e.created),
                idle_timeout: e.idle_timeout,
                hard_timeout: e.hard_timeout,
                packet_count,
                byte_count,
                r#match: rule.flow_match(),
            });
        }
    }

    /// `insts` as a shared list: the previous add's, when equal (a controller adding many
    /// flows with the same actions stores them once), else a new one.
    fn share_instructions(&mut self, insts: &[Instruction]) -> Arc<[Instruction]> {
        if let Some(last) = &self.last_instructions
            && **last == *insts
        {
            return last.clone();
        }
        let new: Arc<[Instruction]> = insts.into();
        self.last_instructions = Some(new.clone());
        new
    }

    /// Removes the flows whose idle or hard timeout has passed at `now`.
    pub fn expire(&mut self, now: Nanos) -> Vec<FlowRemoved> {
        const SEC: u64 = 1_000_000_000;
        if self.timed == 0 {
            return Vec::new();
        }
        let mut due = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            for (id, r) in table.flows.iter() {
                let e = &r.value;
                let hard = e.hard_timeout != 0
                    && now >= e.created.saturating_add(u64::from(e.hard_timeout) * SEC);
                let last = e.stats.last_used.load(Ordering::Relaxed);
                let idle = e.idle_timeout != 0
                    && now >= last.saturating_add(u64::from(e.idle_timeout) * SEC);
                if hard {
                    due.push((t, id, RemovedReason::HardTimeout));
                } else if idle {
                    due.push((t, id, RemovedReason::IdleTimeout));
                }
            }
        }
        let mut out = Vec::new();
        if !due.is_empty() {
            for (t, id, why) in due {
                self.remove_flow(t, id, why, now, &mut out);
            }
            self.bump();
        }
        out
    }

    /// The earliest `now` at which [`Pipeline::expire`] may have work (None: no timeouts).
    /// Idle deadlines move later as traffic arrives, so this is a lower bound.
    pub fn poll_timeout(&self) -> Option<Nanos> {
        const SEC: u64 = 1_000_000_000;
        if self.timed == 0 {
            return None;
        }
        let mut best: Option<Nanos> = None;
        for table in &self.tables {
            for (_, r) in table.flows.iter() {
                let e = &r.value;
                let mut consider = |t: Nanos| best = Some(best.map_or(t, |b| b.min(t)));
                if e.hard_timeout != 0 {
                    consider(e.created + u64::from(e.hard_timeout) * SEC);
                }
                if e.idle_timeout != 0 {
                    let last = e.stats.last_used.load(Ordering::Relaxed);
                    consider(last + u64::from(e.idle_timeout) * SEC);
                }
            }
        }
        best
    }

    /// Per table: (table id, active flows, lookups, matched), for table stats (spec
    /// §7.3.5.4). Lookups and matches include what datapaths have synced so far.
    pub fn table_stats(&self) -> Vec<(u8, u32, u64, u64)> {
        let r = Ordering::Relaxed;
        let t = self.tables.iter().enumerate();
        t.map(|(i, t)| {
            (
                i as u8,
                t.flows.len() as u32,
                t.lookups.load(r),
                t.matched.load(r),
            )
        })
        .collect()
    }

    /// What the pipeline does with `packet` received with `meta` (ofproto/trace): the
    /// translation, with the tables and flows visited. Changes no counter.
    pub fn trace(&self, packet: &[u8], meta: crate::packet::RxMeta) -> Translation {
        self.translate(&crate::packet::parse(packet, meta).key, Some(packet))
    }

    /// Executes a packet-out (spec §7.3.7): `actions` on `packet` as if received on
    /// `in_port` (OFPP_CONTROLLER for none), sending results to `sink`. Flows the packet
    /// meets through OFPP_TABLE are credited.
    pub fn packet_out(
        &self,
        packet: &mut Vec<u8>,
        in_port: u32,
        actions: &[Action],
        now: Nanos,
        sink: &mut impl exec::Sink,
    ) {
        let meta = crate::packet::RxMeta::port(in_port);
        let parsed = crate::packet::parse(packet, meta);
        let t = self.translate_packet_out(&parsed.key, actions, Some(packet));
        for f in &t.flows {
            f.hit(packet.len(), now);
        }
        self.learn(&t, now);
        exec::execute_parsed(&t.actions, packet, &parsed, &self.meters, now, sink);
    }

    /// Applies what translation `t` learned through NORMAL, at `now` (a datapath does this
    /// for every translation it runs; [`Pipeline::translate`] itself changes nothing).
    /// Returns true if the MAC table changed.
    pub fn learn(&self, t: &Translation, now: Nanos) -> bool {
        t.learn.is_some_and(|l| self.mac_table.learn(l, now))
    }

    /// Number of flows that use group `id` (group stats' `ref_count`).
    pub fn group_ref_count(&self, id: u32) -> u32 {
        let n = self.tables.iter().flat_map(|t| t.flows.iter());
        n.filter(|(_, r)| uses_group(&r.value.instructions, id))
            .count() as u32
    }

    /// Number of flows in table `t`.
    pub fn flow_count(&self, t: u8) -> usize {
        self.tables.get(usize::from(t)).map_or(0, |t| t.flows.len())
    }

    /// Flow statistics (spec §7.3.5.2): the flows in `req.table_id` (or all tables) that
    /// the request's match covers (non-strict), filtered by out_port, out_group and cookie.
    pub fn flow_stats(
        &self,
        req: &FlowStatsRequest,
        now: Nanos,
    ) -> Result<Vec<FlowStatsEntry>, ErrorCode> {
        let (key, mask) = matching::match_to_key(&req.r#match)?;
        let fm = FlowMod {
            command: FlowModCommand::Delete,
            cookie: req.cookie,
            cookie_mask: req.cookie_mask,
            out_port: req.out_port,
            out_group: req.out_group,
            ..FlowMod::add(req.table_id, 0, Match::all(), vec![])
        };
        let mut out = Vec::new();
        for (t, id) in self.select(&fm, false, &key, &mask)? {
            let Some(r) = self.tables[t].flows.get(id) else {
                continue;
            };
            let e = &r.value;
            let (packet_count, byte_count) = e.stats.snapshot();
            out.push(FlowStatsEntry {
                table_id: t as u8,
                priority: e.priority,
                cookie: e.cookie,
                flags: e.flags,
                idle_timeout: e.idle_timeout,
                hard_timeout: e.hard_timeout,
                duration: now.saturating_sub(e.created),
                packet_count,
                byte_count,
                r#match: r.flow_match(),
                instructions: e.instructions.clone(),
            });
        }
        // Stable order for replies and tests: table, then priority high to low.
        out.sort_by(|a, b| {
            a.table_id
                .cmp(&b.table_id)
                .then(b.priority.cmp(&a.priority))
        });
        Ok(out)
    }

    /// Aggregate statistics (spec §7.3.5.3): (packets, bytes, flows) over what
    /// [`Pipeline::flow_stats`] would list.
    pub fn aggregate_stats(&self, req: &FlowStatsRequest) -> Result<(u64, u64, u32), ErrorCode> {
        let flows = self.flow_stats(req, 0)?;
        let packets = flows.iter().map(|f| f.packet_count).sum();
        let bytes = flows.iter().map(|f| f.byte_count).sum();
        Ok((packets, bytes, flows.len() as u32))
    }

    /// Applies a group-mod (spec §6.5). Deleting a group also deletes the flows that use it.
    pub fn group_mod(&mut self, gm: &GroupMod, now: Nanos) -> Result<Vec<FlowRemoved>, ErrorCode> {
        let mut removed = Vec::new();
        let doomed = group::apply(self, gm, now)?;
        for g in doomed {
            let mut hits = Vec::new();
            for (t, table) in self.tables.iter().enumerate() {
                for (id, r) in table.flows.iter() {
                    if uses_group(&r.value.instructions, g) {
                        hits.push((t, id));
                    }
                }
            }
            for (t, id) in hits {
                self.remove_flow(t, id, RemovedReason::GroupDelete, now, &mut removed);
            }
        }
        self.bump();
        Ok(removed)
    }

    /// Applies a meter-mod (spec §6.6). Deleting a meter also deletes the flows that use it.
    pub fn meter_mod(&mut self, mm: &MeterMod, now: Nanos) -> Result<Vec<FlowRemoved>, ErrorCode> {
        let mut removed = Vec::new();
        let doomed = self.meters.apply(mm, now)?;
        for m in doomed {
            let mut hits = Vec::new();
            for (t, table) in self.tables.iter().enumerate() {
                for (id, r) in table.flows.iter() {
                    if uses_meter(&r.value.instructions, m) {
                        hits.push((t, id));
                    }
                }
            }
            for (t, id) in hits {
                self.remove_flow(t, id, RemovedReason::Delete, now, &mut removed);
            }
        }
        self.bump();
        Ok(removed)
    }
}
