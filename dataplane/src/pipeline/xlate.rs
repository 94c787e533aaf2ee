//! Translation: runs a packet's flow key through the OpenFlow pipeline (tables, instructions,
//! action set, groups) and produces the flat list of datapath actions to apply to the packet,
//! the mask of every key bit the outcome depended on (the megaflow mask), the flows whose
//! counters the packet credits, and a trace of the tables visited.
//!
//! The translation works on the key alone, updating it as actions rewrite fields so that
//! later tables see the rewritten packet (as OpenFlow requires). Header rewrites become
//! [`DpAction::SetField`] with the final value, TTL decrements included, so the datapath
//! never needs to know OpenFlow. Applying the actions to bytes is `exec.rs`.

use std::fmt;
use std::sync::Arc;

use arrayvec::ArrayVec;
use fuxi_openflow::consts::{OFPP_ALL, OFPP_CONTROLLER, OFPP_FLOOD, OFPP_IN_PORT, OFPP_NORMAL};
use fuxi_openflow::oxm::{FieldId, OxmTlv, Prereq};
use fuxi_openflow::{Action, Instruction};

use super::group::{GroupStats, GroupType};
use super::matching::field_of;
use super::{FlowStats, Pipeline};
use crate::packet::{Field, FlowKey, FlowMask, OFPVID_PRESENT, RxMeta, parse};

/// `ofp_packet_in_reason`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PacketInReason {
    /// OFPR_NO_MATCH (a table-miss flow entry that outputs to the controller).
    NoMatch = 0,
    /// OFPR_ACTION.
    Action = 1,
    /// OFPR_INVALID_TTL.
    InvalidTtl = 2,
}

/// What the datapath does to a packet. Applied in order by `exec.rs`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum DpAction {
    /// Send a copy of the packet as it is now out of this port.
    Output(u32),
    /// Send a copy to the controller (packet-in).
    Controller {
        /// Why.
        reason: PacketInReason,
        /// Bytes to send (OFPCML_NO_BUFFER: all).
        max_len: u16,
        /// Table of the flow that sent it.
        table_id: u8,
        /// Cookie of the flow that sent it.
        cookie: u64,
    },
    /// Rewrite a header field to this value (checksums follow).
    SetField(Field, u128),
    /// Push a VLAN tag with this TPID and TCI.
    PushVlan {
        /// Ethernet type of the new tag.
        tpid: u16,
        /// Tag control information (PCP, DEI, VID).
        tci: u16,
    },
    /// Pop the outer VLAN tag.
    PopVlan,
    /// Push an MPLS label stack entry.
    PushMpls {
        /// New Ethernet type (0x8847 or 0x8848).
        ethertype: u16,
        /// The label stack entry.
        lse: u32,
    },
    /// Pop the outer MPLS label stack entry.
    PopMpls {
        /// Ethernet type of what is left.
        ethertype: u16,
    },
    /// Queue for the following outputs.
    SetQueue(u32),
    /// Run the packet through a meter; a drop verdict ends the packet's processing.
    Meter(u32),
    /// Apply these actions to a copy of the packet (a group bucket).
    Clone(Vec<DpAction>),
}

/// A list kept inline up to `N` items and on the heap beyond: a translation's actions, flows
/// and trace are short (one entry per table visited, a few actions), so a megaflow holds them
/// inside its own allocation instead of three vectors of their own.
#[derive(Clone)]
pub struct InlineVec<T, const N: usize>(Repr<T, N>);

#[derive(Clone)]
enum Repr<T, const N: usize> {
    Inline(ArrayVec<T, N>),
    Heap(Vec<T>),
}

impl<T, const N: usize> InlineVec<T, N> {
    /// An empty list (no allocation).
    pub const fn new() -> Self {
        InlineVec(Repr::Inline(ArrayVec::new_const()))
    }

    /// Appends `item` (moving the list to the heap when it outgrows `N`).
    #[inline(always)]
    pub fn push(&mut self, item: T) {
        match &mut self.0 {
            Repr::Inline(a) => {
                if let Err(e) = a.try_push(item) {
                    self.spill(e.element());
                }
            }
            Repr::Heap(v) => v.push(item),
        }
    }

    /// Moves a full inline list to the heap and appends `item`.
    #[cold]
    #[inline(never)]
    fn spill(&mut self, item: T) {
        if let Repr::Inline(a) = &mut self.0 {
            let mut v = Vec::with_capacity(2 * N.max(1));
            v.extend(a.drain(..));
            v.push(item);
            self.0 = Repr::Heap(v);
        }
    }

    /// Drops every item; a list on the heap goes back inline (its allocation is freed).
    #[inline]
    pub fn clear(&mut self) {
        match &mut self.0 {
            Repr::Inline(a) => a.clear(),
            Repr::Heap(_) => self.0 = Repr::Inline(ArrayVec::new_const()),
        }
    }

    /// The items, as a vector.
    pub fn into_vec(self) -> Vec<T> {
        match self.0 {
            Repr::Inline(a) => a.into_iter().collect(),
            Repr::Heap(v) => v,
        }
    }
}

impl<T, const N: usize> Default for InlineVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, const N: usize> std::ops::Deref for InlineVec<T, N> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        match &self.0 {
            Repr::Inline(a) => a,
            Repr::Heap(v) => v,
        }
    }
}

impl<T, const N: usize> std::ops::DerefMut for InlineVec<T, N> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.0 {
            Repr::Inline(a) => a,
            Repr::Heap(v) => v,
        }
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a InlineVec<T, N> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<T, const N: usize> FromIterator<T> for InlineVec<T, N> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v = Self::new();
        for x in iter {
            v.push(x);
        }
        v
    }
}

impl<T: fmt::Debug, const N: usize> fmt::Debug for InlineVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: PartialEq, const N: usize> PartialEq for InlineVec<T, N> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq, const N: usize> Eq for InlineVec<T, N> {}

impl<T: PartialEq, const N: usize> PartialEq<Vec<T>> for InlineVec<T, N> {
    fn eq(&self, other: &Vec<T>) -> bool {
        **self == **other
    }
}

impl<T: std::hash::Hash, const N: usize> std::hash::Hash for InlineVec<T, N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

/// A translation's datapath actions.
pub type Actions = InlineVec<DpAction, 4>;
/// The counters of the flows a translation went through.
pub type FlowList = InlineVec<Arc<FlowStats>, 4>;
/// The tables a translation visited.
pub type Trace = InlineVec<TraceStep, 4>;

/// One table visit, for tracing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TraceStep {
    /// Table.
    pub table_id: u8,
    /// The matched flow's (priority, cookie), or None on a table miss.
    pub flow: Option<(u16, u64)>,
}

/// Where a translation writes what the packet went through, besides its actions: the
/// flows it matched, the tables it visited and the groups it took. A [`Translation`]
/// keeps all of it; a datapath's megaflow keeps what its counters need, written in place
/// ([`Pipeline::translate_into`]) instead of built in a `Translation` and copied.
pub trait Record {
    /// A flow matched (its counters).
    fn flow(&mut self, stats: &Arc<FlowStats>);
    /// A table was visited (`step.flow`: what matched, if anything).
    fn step(&mut self, step: TraceStep);
    /// A group was applied, through these buckets.
    fn group(&mut self, stats: &Arc<GroupStats>, buckets: &[usize]);
}

/// What [`Pipeline::translate_into`] returns besides what it recorded and the mask.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// False when the outcome depends on something the key does not hold (headers exposed
    /// by pop_mpls), so it must not be cached.
    pub cacheable: bool,
    /// What an output to NORMAL learned.
    pub learn: Option<super::normal::Learn>,
}

/// A [`Record`] into lists: the flows and groups as they are, each table visited as an
/// `E` — the whole [`TraceStep`] for a [`Translation`], what a megaflow keeps of it for
/// another.
#[derive(Debug)]
pub struct Recorder<'a, E> {
    /// Counters of the flows matched.
    pub flows: &'a mut FlowList,
    /// Tables visited.
    pub trace: &'a mut InlineVec<E, 4>,
    /// Groups applied, with their buckets.
    pub groups: &'a mut Vec<(Arc<GroupStats>, Vec<usize>)>,
}

impl<E: From<TraceStep>> Record for Recorder<'_, E> {
    #[inline]
    fn flow(&mut self, stats: &Arc<FlowStats>) {
        self.flows.push(stats.clone());
    }
    #[inline]
    fn step(&mut self, step: TraceStep) {
        self.trace.push(step.into());
    }
    fn group(&mut self, stats: &Arc<GroupStats>, buckets: &[usize]) {
        self.groups.push((stats.clone(), buckets.to_vec()));
    }
}

/// A [`Translation`]'s record: everything.
type Full<'a> = Recorder<'a, TraceStep>;

/// The outcome of translating one packet.
#[derive(Clone, Debug)]
pub struct Translation {
    /// What to do to the packet.
    pub actions: Actions,
    /// Every key bit the outcome depended on.
    pub wc: FlowMask,
    /// Counters of every flow the packet matched.
    pub flows: FlowList,
    /// Counters of every group the packet went through, with the buckets it took.
    pub groups: Vec<(Arc<GroupStats>, Vec<usize>)>,
    /// Tables visited.
    pub trace: Trace,
    /// False when the outcome depends on something the key does not hold (headers exposed
    /// by pop_mpls), so it must not be cached.
    pub cacheable: bool,
    /// The key after every rewrite.
    pub final_key: FlowKey,
    /// What an output to NORMAL learned (the datapath applies it: [`Pipeline::learn`]).
    pub learn: Option<super::normal::Learn>,
}

/// The action set (spec §5.10): at most one action of each type, set-fields one per field.
#[derive(Clone, Debug, Default)]
struct ActionSet {
    pop_vlan: bool,
    pop_mpls: Option<u16>,
    push_mpls: Option<u16>,
    push_vlan: Option<u16>,
    copy_ttl_out: bool,
    dec_mpls_ttl: bool,
    dec_nw_ttl: bool,
    set_mpls_ttl: Option<u8>,
    set_nw_ttl: Option<u8>,
    set_fields: Vec<(FieldId, u128)>,
    set_queue: Option<u32>,
    group: Option<u32>,
    output: Option<Action>,
    /// Whether a write-actions instruction ran (if not, the set is empty: nothing to do).
    written: bool,
}

impl ActionSet {
    fn write(&mut self, a: &Action) {
        match a {
            Action::PopVlan => self.pop_vlan = true,
            Action::PopMpls(e) => self.pop_mpls = Some(*e),
            Action::PushMpls(e) => self.push_mpls = Some(*e),
            Action::PushVlan(e) => self.push_vlan = Some(*e),
            Action::CopyTtlOut => self.copy_ttl_out = true,
            Action::DecMplsTtl => self.dec_mpls_ttl = true,
            Action::DecNwTtl => self.dec_nw_ttl = true,
            Action::SetMplsTtl(t) => self.set_mpls_ttl = Some(*t),
            Action::SetNwTtl(t) => self.set_nw_ttl = Some(*t),
            Action::SetField(OxmTlv::Basic(o)) => {
                self.set_fields.retain(|(f, _)| *f != o.field);
                self.set_fields.push((o.field, o.value));
            }
            Action::SetQueue(q) => self.set_queue = Some(*q),
            Action::Group(g) => self.group = Some(*g),
            Action::Output { .. } => self.output = Some(a.clone()),
            // Rejected at flow-mod time.
            _ => {}
        }
    }

    /// The actions in the spec's execution order.
    fn in_order(&self) -> Vec<Action> {
        let mut v = Vec::new();
        if self.pop_vlan {
            v.push(Action::PopVlan);
        }
        if let Some(e) = self.pop_mpls {
            v.push(Action::PopMpls(e));
        }
        if let Some(e) = self.push_mpls {
            v.push(Action::PushMpls(e));
        }
        if let Some(e) = self.push_vlan {
            v.push(Action::PushVlan(e));
        }
        if self.copy_ttl_out {
            v.push(Action::CopyTtlOut);
        }
        if self.dec_mpls_ttl {
            v.push(Action::DecMplsTtl);
        }
        if self.dec_nw_ttl {
            v.push(Action::DecNwTtl);
        }
        if let Some(t) = self.set_mpls_ttl {
            v.push(Action::SetMplsTtl(t));
        }
        if let Some(t) = self.set_nw_ttl {
            v.push(Action::SetNwTtl(t));
        }
        for (f, val) in &self.set_fields {
            v.push(Action::set_field(fuxi_openflow::Oxm::exact(*f, *val)));
        }
        if let Some(q) = self.set_queue {
            v.push(Action::SetQueue(q));
        }
        if let Some(g) = self.group {
            v.push(Action::Group(g));
        } else if let Some(o) = &self.output {
            v.push(o.clone());
        }
        v
    }
}

/// Group recursion limit (chains are loop-checked at group-mod time; this bounds depth).
const MAX_GROUP_DEPTH: u32 = 16;

struct Ctx<'a, R> {
    p: &'a Pipeline,
    key: FlowKey,
    /// The caller's (zeroed) mask: every key bit the outcome depended on.
    wc: &'a mut FlowMask,
    rec: R,
    cacheable: bool,
    table_id: u8,
    cookie: u64,
    /// Set when processing must end (invalid TTL).
    stop: bool,
    /// The original packet, for re-parsing headers that pop_mpls exposes.
    packet: Option<&'a [u8]>,
    /// Group nesting depth.
    depth: u32,
    /// Whether the flow being executed has priority 0 and wildcards every field (a
    /// table-miss flow).
    last_flow_wildcards_all: bool,
    /// What NORMAL learned.
    learn: Option<super::normal::Learn>,
}

const IP_TYPES: [u128; 2] = [0x0800, 0x86dd];
const MPLS_TYPES: [u128; 2] = [0x8847, 0x8848];

impl<R: Record> Ctx<'_, R> {
    fn unwc(&mut self, f: Field) {
        self.wc.add_field(f);
    }

    fn eth_type_in(&mut self, types: &[u128]) -> bool {
        self.unwc(Field::EthType);
        types.contains(&self.key.get(Field::EthType))
    }

    /// Whether the packet has the headers `id` lives in (its OXM prerequisites, evaluated on
    /// the current key), unwildcarding what it looked at.
    fn applicable(&mut self, id: FieldId) -> bool {
        for pr in id.prereqs() {
            let ok = match *pr {
                Prereq::Exact { field, values } => {
                    let f = field_of(field);
                    self.unwc(f);
                    values.contains(&self.key.get(f))
                }
                Prereq::VlanPresent => self.vlan_present(),
                Prereq::InPort => true,
            };
            if !ok {
                return false;
            }
        }
        match id {
            FieldId::VlanVid => self.vlan_present(),
            FieldId::TcpSrc
            | FieldId::TcpDst
            | FieldId::UdpSrc
            | FieldId::UdpDst
            | FieldId::SctpSrc
            | FieldId::SctpDst
            | FieldId::Icmpv4Type
            | FieldId::Icmpv4Code
            | FieldId::Icmpv6Type
            | FieldId::Icmpv6Code => {
                // Later fragments carry no L4 header.
                self.unwc(Field::NwFrag);
                self.key.get(Field::NwFrag) & u128::from(crate::packet::key::frag::LATER) == 0
            }
            _ => true,
        }
    }

    fn vlan_present(&mut self) -> bool {
        self.unwc(Field::VlanVid);
        self.key.get(Field::VlanVid) & u128::from(OFPVID_PRESENT) != 0
    }

    fn set(&mut self, out: &mut Actions, f: Field, v: u128) {
        self.key.set(f, v);
        out.push(DpAction::SetField(f, v));
    }

    /// Applies one action immediately (apply-actions, action set, bucket).
    fn action(&mut self, a: &Action, out: &mut Actions) {
        if self.stop {
            return;
        }
        match a {
            Action::Output { port, max_len } => self.output(*port, *max_len, out),
            Action::Group(g) => self.group(*g, out),
            Action::SetQueue(q) => out.push(DpAction::SetQueue(*q)),
            Action::SetField(OxmTlv::Basic(o)) => {
                if !self.applicable(o.field) {
                    return;
                }
                let f = field_of(o.field);
                let v = match o.field {
                    FieldId::VlanVid => (o.value & 0x0fff) | u128::from(OFPVID_PRESENT),
                    _ => o.value & f.max_value(),
                };
                match f {
                    Field::TunnelId | Field::Metadata => {
                        self.key.set(f, v);
                        out.push(DpAction::SetField(f, v));
                    }
                    _ => self.set(out, f, v),
                }
            }
            Action::SetNwTtl(t) => {
                if self.eth_type_in(&IP_TYPES) {
                    self.set(out, Field::NwTtl, u128::from(*t));
                }
            }
            Action::DecNwTtl => {
                if self.eth_type_in(&IP_TYPES) {
                    self.unwc(Field::NwTtl);
                    let ttl = self.key.get(Field::NwTtl);
                    if ttl <= 1 {
                        self.invalid_ttl(out);
                    } else {
                        self.set(out, Field::NwTtl, ttl - 1);
                    }
                }
            }
            Action::SetMplsTtl(t) => {
                if self.eth_type_in(&MPLS_TYPES) {
                    self.set(out, Field::MplsTtl, u128::from(*t));
                }
            }
            Action::DecMplsTtl => {
                if self.eth_type_in(&MPLS_TYPES) {
                    self.unwc(Field::MplsTtl);
                    let ttl = self.key.get(Field::MplsTtl);
                    if ttl <= 1 {
                        self.invalid_ttl(out);
                    } else {
                        self.set(out, Field::MplsTtl, ttl - 1);
                    }
                }
            }
            Action::CopyTtlOut => {
                // Outer MPLS TTL from the IP TTL under it (known when the label was pushed
                // onto an IP packet in this translation).
                if self.eth_type_in(&MPLS_TYPES) {
                    self.unwc(Field::NwTtl);
                    let ttl = self.key.get(Field::NwTtl);
                    if ttl != 0 {
                        self.set(out, Field::MplsTtl, ttl);
                    }
                }
            }
            Action::PushVlan(tpid) => {
                let present = self.vlan_present();
                self.unwc(Field::VlanPcp);
                let (vid, pcp) = if present {
                    (
                        self.key.get(Field::VlanVid) as u16 & 0x0fff,
                        self.key.get(Field::VlanPcp) as u16,
                    )
                } else {
                    (0, 0)
                };
                let tci = (pcp << 13) | vid;
                if present {
                    let inner = (pcp << 13) | OFPVID_PRESENT | vid;
                    self.key.set(Field::VlanInner, u128::from(inner));
                }
                self.key
                    .set(Field::VlanVid, u128::from(OFPVID_PRESENT | vid));
                self.key.set(Field::VlanPcp, u128::from(pcp));
                out.push(DpAction::PushVlan { tpid: *tpid, tci });
            }
            Action::PopVlan => {
                if self.vlan_present() {
                    self.unwc(Field::VlanInner);
                    let inner = self.key.get(Field::VlanInner) as u16;
                    if inner & OFPVID_PRESENT != 0 {
                        self.key.set(Field::VlanVid, u128::from(inner & 0x1fff));
                        self.key.set(Field::VlanPcp, u128::from(inner >> 13));
                    } else {
                        self.key.set(Field::VlanVid, 0);
                        self.key.set(Field::VlanPcp, 0);
                    }
                    self.key.set(Field::VlanInner, 0);
                    out.push(DpAction::PopVlan);
                }
            }
            Action::PushMpls(ethertype) => {
                let was_mpls = self.eth_type_in(&MPLS_TYPES);
                let lse = if was_mpls {
                    for f in [Field::MplsLabel, Field::MplsTc, Field::MplsTtl] {
                        self.unwc(f);
                    }
                    let k = &self.key;
                    ((k.get(Field::MplsLabel) as u32) << 12)
                        | ((k.get(Field::MplsTc) as u32) << 9)
                        | (k.get(Field::MplsTtl) as u32)
                } else {
                    let ip = IP_TYPES.contains(&self.key.get(Field::EthType));
                    let ttl = if ip {
                        self.unwc(Field::NwTtl);
                        self.key.get(Field::NwTtl) as u32
                    } else {
                        0
                    };
                    (1 << 8) | ttl
                };
                let k = &mut self.key;
                k.set(Field::EthType, u128::from(*ethertype));
                k.set(Field::MplsLabel, u128::from(lse >> 12));
                k.set(Field::MplsTc, u128::from((lse >> 9) & 7));
                k.set(Field::MplsBos, u128::from((lse >> 8) & 1));
                k.set(Field::MplsTtl, u128::from(lse & 0xff));
                out.push(DpAction::PushMpls {
                    ethertype: *ethertype,
                    lse,
                });
            }
            Action::PopMpls(ethertype) => {
                if self.eth_type_in(&MPLS_TYPES) {
                    out.push(DpAction::PopMpls {
                        ethertype: *ethertype,
                    });
                    self.key.set(Field::EthType, u128::from(*ethertype));
                    for f in [
                        Field::MplsLabel,
                        Field::MplsTc,
                        Field::MplsBos,
                        Field::MplsTtl,
                    ] {
                        self.key.set(f, 0);
                    }
                    // What is under the label was never parsed: find out from the bytes, and
                    // never cache the result.
                    self.cacheable = false;
                    self.reparse(out);
                }
            }
            Action::CopyTtlIn
            | Action::PushPbb(_)
            | Action::PopPbb
            | Action::SetField(OxmTlv::Raw(_))
            | Action::Experimenter { .. } => {}
        }
    }

    /// Re-derives the key's L3+ fields from the packet after the edits so far.
    fn reparse(&mut self, out: &[DpAction]) {
        let Some(pkt) = self.packet else { return };
        if self.depth > 0 {
            return;
        }
        let mut bytes = pkt.to_vec();
        super::exec::apply_edits(&mut bytes, out);
        let meta = RxMeta {
            in_port: self.key.get(Field::InPort) as u32,
            in_phy_port: self.key.get(Field::InPhyPort) as u32,
            tunnel_id: self.key.get(Field::TunnelId) as u64,
            metadata: self.key.get(Field::Metadata) as u64,
        };
        self.key = parse(&bytes, meta).key;
    }

    fn invalid_ttl(&mut self, out: &mut Actions) {
        if self.p.config.invalid_ttl_to_controller {
            out.push(DpAction::Controller {
                reason: PacketInReason::InvalidTtl,
                max_len: fuxi_openflow::consts::OFPCML_NO_BUFFER,
                table_id: self.table_id,
                cookie: self.cookie,
            });
        }
        self.stop = true;
    }

    fn output(&mut self, port: u32, max_len: u16, out: &mut Actions) {
        self.unwc(Field::InPort);
        let in_port = self.key.get(Field::InPort) as u32;
        match port {
            OFPP_CONTROLLER => out.push(DpAction::Controller {
                reason: if self.table_miss_flow() {
                    PacketInReason::NoMatch
                } else {
                    PacketInReason::Action
                },
                max_len,
                table_id: self.table_id,
                cookie: self.cookie,
            }),
            OFPP_IN_PORT => out.push(DpAction::Output(in_port)),
            OFPP_NORMAL => {
                if let Some(l) = super::normal::translate(self.p, &self.key, self.wc, out) {
                    self.learn = Some(l);
                }
            }
            OFPP_ALL | OFPP_FLOOD => {
                for (&p, st) in &self.p.ports {
                    if st.live && p != in_port {
                        out.push(DpAction::Output(p));
                    }
                }
            }
            // A packet never goes back out the port it came in on unless asked (IN_PORT).
            p if p == in_port => {}
            p => out.push(DpAction::Output(p)),
        }
    }

    /// Whether the current flow is a table-miss flow (priority 0, matches everything).
    fn table_miss_flow(&self) -> bool {
        self.last_flow_wildcards_all
    }

    fn group(&mut self, id: u32, out: &mut Actions) {
        let Some(g) = self.p.groups.get(&id) else {
            return;
        };
        if self.depth >= MAX_GROUP_DEPTH {
            return;
        }
        let buckets: Vec<usize> = match g.group_type {
            GroupType::All => (0..g.buckets.len()).collect(),
            GroupType::Indirect => (0..g.buckets.len().min(1)).collect(),
            GroupType::FastFailover => (0..g.buckets.len())
                .find(|&i| self.bucket_live(id, i, 0))
                .into_iter()
                .collect(),
            GroupType::Select => self.select_bucket(id).into_iter().collect(),
        };
        self.rec.group(&g.stats, &buckets);
        for i in buckets {
            let saved = self.key;
            let mut sub = Actions::new();
            self.depth += 1;
            for a in &g.buckets[i].actions {
                self.action(a, &mut sub);
            }
            self.depth -= 1;
            self.key = saved;
            self.stop = false;
            if !sub.is_empty() {
                out.push(DpAction::Clone(sub.into_vec()));
            }
        }
    }

    fn bucket_live(&self, gid: u32, i: usize, depth: u32) -> bool {
        let Some(b) = self.p.groups.get(&gid).and_then(|g| g.buckets.get(i)) else {
            return false;
        };
        if depth > MAX_GROUP_DEPTH {
            return false;
        }
        let port_ok = b.watch_port == fuxi_openflow::consts::OFPP_ANY
            || self.p.ports.get(&b.watch_port).is_some_and(|s| s.live);
        let group_ok = b.watch_group == fuxi_openflow::consts::OFPG_ANY
            || self.p.groups.get(&b.watch_group).is_some_and(|g| {
                (0..g.buckets.len()).any(|j| self.bucket_live(b.watch_group, j, depth + 1))
            });
        port_ok && group_ok
    }

    /// Select group: a hash of the L2-L4 addresses picks a bucket by weight.
    fn select_bucket(&mut self, gid: u32) -> Option<usize> {
        let g = self.p.groups.get(&gid)?;
        let total: u64 = g.buckets.iter().map(|b| u64::from(b.weight)).sum();
        if total == 0 {
            return None;
        }
        let mut m = FlowKey::ZERO;
        for f in [
            Field::EthSrc,
            Field::EthDst,
            Field::EthType,
            Field::VlanVid,
            Field::Ipv4Src,
            Field::Ipv4Dst,
            Field::Ipv6Src,
            Field::Ipv6Dst,
            Field::IpProto,
            Field::TcpSrc,
            Field::TcpDst,
        ] {
            m.add_field(f);
        }
        self.wc.or_assign(&m);
        let words = m.nonzero_words();
        let h = self.key.hash_masked(&m, &words) % total;
        let mut acc = 0;
        g.buckets.iter().position(|b| {
            acc += u64::from(b.weight);
            h < acc
        })
    }
}

/// A flow's instructions in execution order (spec §5.9), without allocating: a flow has at
/// most one instruction of each type (flow-mods are validated so), each placed in its
/// rank's slot; a list that breaks that rule is sorted instead (stable, as before).
fn in_rank_order(insts: &[Instruction]) -> impl Iterator<Item = &Instruction> {
    let mut slots: [Option<&Instruction>; 7] = [None; 7];
    let mut spill: Vec<&Instruction> = Vec::new();
    for i in insts {
        let slot = &mut slots[usize::from(inst_rank(i))];
        if slot.is_some() {
            spill = insts.iter().collect();
            spill.sort_by_key(|i| inst_rank(i));
            slots = [None; 7];
            break;
        }
        *slot = Some(i);
    }
    slots.into_iter().flatten().chain(spill)
}

/// Whether `insts` are already in execution order, each type once (what a validated
/// flow-mod gives): [`in_rank_order`] would return them as they are.
#[inline]
fn ranks_increase(insts: &[Instruction]) -> bool {
    insts
        .windows(2)
        .all(|w| inst_rank(&w[0]) < inst_rank(&w[1]))
}

/// Instruction execution order (spec §5.9).
fn inst_rank(i: &Instruction) -> u8 {
    match i {
        Instruction::Meter(_) => 0,
        Instruction::ApplyActions(_) => 1,
        Instruction::ClearActions => 2,
        Instruction::WriteActions(_) => 3,
        Instruction::WriteMetadata { .. } => 4,
        Instruction::GotoTable(_) => 5,
        Instruction::Experimenter { .. } => 6,
    }
}

impl<R: Record> Ctx<'_, R> {
    /// Executes one instruction of a flow (the action set and the next table are the
    /// caller's, for the end of the flow).
    #[inline(always)]
    fn instruction(
        &mut self,
        inst: &Instruction,
        out: &mut Actions,
        set: &mut ActionSet,
        next: &mut Option<u8>,
    ) {
        match inst {
            Instruction::Meter(m) => out.push(DpAction::Meter(*m)),
            Instruction::ApplyActions(acts) => {
                for a in acts {
                    self.action(a, out);
                }
            }
            Instruction::ClearActions => *set = ActionSet::default(),
            Instruction::WriteActions(acts) => {
                for a in acts {
                    set.write(a);
                }
                set.written = true;
            }
            Instruction::WriteMetadata { metadata, mask } => {
                let md = self.key.get(Field::Metadata) as u64;
                let v = (md & !mask) | (metadata & mask);
                self.key.set(Field::Metadata, u128::from(v));
            }
            Instruction::GotoTable(t) => *next = Some(*t),
            Instruction::Experimenter { .. } => {}
        }
    }

    /// Runs the packet through the tables from `table` on (spec §5.1), then its action set.
    fn run_tables(&mut self, mut table: u8, out: &mut Actions) {
        let p = self.p;
        let mut set = ActionSet::default();
        loop {
            let Some(t) = p.tables.get(usize::from(table)) else {
                return;
            };
            let Some((_, rule)) = t.flows.lookup(&self.key, self.wc) else {
                // Table miss without a table-miss flow: drop (spec §5.4); the action set is
                // discarded with the packet.
                self.rec.step(TraceStep {
                    table_id: table,
                    flow: None,
                });
                return;
            };
            let e = &rule.value;
            self.rec.flow(&e.stats);
            self.rec.step(TraceStep {
                table_id: table,
                flow: Some((e.priority, e.cookie)),
            });
            self.table_id = table;
            self.cookie = e.cookie;
            // Only a priority-0 flow can be a table-miss flow: no need to scan other masks.
            self.last_flow_wildcards_all = e.priority == 0 && rule.mask.is_zero();
            let mut next = None;
            let insts = &e.instructions[..];
            if ranks_increase(insts) {
                // As validated flow-mods give them: no reordering needed.
                for inst in insts {
                    self.instruction(inst, out, &mut set, &mut next);
                }
            } else {
                for inst in in_rank_order(insts) {
                    self.instruction(inst, out, &mut set, &mut next);
                }
            }
            if self.stop {
                return;
            }
            match next {
                Some(t) if t > table && usize::from(t) < p.tables.len() => table = t,
                _ => {
                    if set.written {
                        for a in set.in_order() {
                            self.action(&a, out);
                        }
                    }
                    return;
                }
            }
        }
    }
}

impl Pipeline {
    #[inline(always)]
    fn ctx<'a, R: Record>(
        &'a self,
        key: &FlowKey,
        packet: Option<&'a [u8]>,
        wc: &'a mut FlowMask,
        rec: R,
    ) -> Ctx<'a, R> {
        *wc = FlowKey::ZERO;
        // The input port is always part of a megaflow (outputs depend on it, and OVS does
        // the same).
        wc.add_field(Field::InPort);
        Ctx {
            p: self,
            key: *key,
            wc,
            rec,
            cacheable: true,
            table_id: 0,
            cookie: 0,
            stop: false,
            packet,
            depth: 0,
            last_flow_wildcards_all: false,
            learn: None,
        }
    }

    /// Runs `f` on a context recording into a new [`Translation`], which it returns.
    fn translation(
        &self,
        key: &FlowKey,
        packet: Option<&[u8]>,
        f: impl FnOnce(&mut Ctx<'_, Full<'_>>, &mut Actions),
    ) -> Translation {
        let mut flows = FlowList::new();
        let mut trace = Trace::new();
        let mut groups = Vec::new();
        let mut actions = Actions::new();
        let mut wc = FlowKey::ZERO;
        let rec = Full {
            flows: &mut flows,
            trace: &mut trace,
            groups: &mut groups,
        };
        let mut cx = self.ctx(key, packet, &mut wc, rec);
        f(&mut cx, &mut actions);
        let (cacheable, final_key, learn) = (cx.cacheable, cx.key, cx.learn);
        Translation {
            actions,
            wc,
            flows,
            groups,
            trace,
            cacheable,
            final_key,
            learn,
        }
    }

    /// Translates a packet with this key, starting at table 0. `packet` (the bytes the key
    /// came from) is only needed to see under an MPLS label that a flow pops.
    pub fn translate(&self, key: &FlowKey, packet: Option<&[u8]>) -> Translation {
        self.translation(key, packet, |cx, out| cx.run_tables(0, out))
    }

    /// [`Pipeline::translate`] writing the actions into `actions`, the mask into `wc` and
    /// the rest into `rec` (the lists as they are: a caller reusing them clears them first),
    /// for a caller that keeps them in place (a datapath's megaflow), without building a
    /// [`Translation`].
    #[inline]
    pub fn translate_into(
        &self,
        key: &FlowKey,
        packet: Option<&[u8]>,
        actions: &mut Actions,
        wc: &mut FlowMask,
        rec: impl Record,
    ) -> Outcome {
        let mut cx = self.ctx(key, packet, wc, rec);
        cx.run_tables(0, actions);
        Outcome {
            cacheable: cx.cacheable,
            learn: cx.learn,
        }
    }

    /// Translates a packet-out: `actions` applied in order to the packet with `key` (its
    /// in_port as the message gave it); an output to OFPP_TABLE runs the packet through the
    /// flow tables from table 0 (spec §7.3.7).
    pub fn translate_packet_out(
        &self,
        key: &FlowKey,
        actions: &[Action],
        packet: Option<&[u8]>,
    ) -> Translation {
        self.translation(key, packet, |cx, out| {
            for a in actions {
                match a {
                    Action::Output {
                        port: fuxi_openflow::consts::OFPP_TABLE,
                        ..
                    } => {
                        cx.run_tables(0, out);
                        cx.stop = false;
                    }
                    a => cx.action(a, out),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fuxi_openflow::Action;

    #[test]
    fn instructions_run_in_spec_order() {
        let insts = [
            Instruction::GotoTable(3),
            Instruction::WriteActions(vec![Action::output(1)]),
            Instruction::ApplyActions(vec![Action::output(2)]),
            Instruction::Meter(7),
            Instruction::ClearActions,
        ];
        let ranks: Vec<u8> = in_rank_order(&insts).map(inst_rank).collect();
        assert_eq!(ranks, [0, 1, 2, 3, 5]);
        // Two of one type (never from a validated flow-mod): sorted, stable, all kept.
        let dup = [
            Instruction::ApplyActions(vec![Action::output(1)]),
            Instruction::Meter(1),
            Instruction::ApplyActions(vec![Action::output(2)]),
        ];
        let got: Vec<&Instruction> = in_rank_order(&dup).collect();
        assert_eq!(got, [&dup[1], &dup[0], &dup[2]]);
        assert_eq!(in_rank_order(&[]).count(), 0);
        // Already ordered lists skip the reordering; anything else does not.
        let ordered = [
            Instruction::ApplyActions(vec![Action::output(2)]),
            Instruction::GotoTable(3),
        ];
        assert!(ranks_increase(&ordered) && ranks_increase(&[]));
        assert!(!ranks_increase(&insts) && !ranks_increase(&dup));
        let same = [Instruction::ClearActions, Instruction::ClearActions];
        assert!(!ranks_increase(&same));
    }
}
