//! The switch side of OpenFlow 1.3: one task per connection (passive listener or active
//! controller), all sharing the [`Switch`]. A connection reads whatever arrived, handles
//! every whole message in order, publishes the pipeline once if anything changed, then
//! writes its replies: a barrier's reply leaves only after everything before it is
//! visible. Asynchronous messages
//! (packet-in, flow-removed, port-status) come through a broadcast channel and are
//! filtered per connection by role and async config.
//!
//! A packet-in cut shorter than its packet keeps the whole packet in the switch's
//! [`PacketBuffers`] (one pool for all connections, as Open vSwitch's pktbuf): the
//! controller gets the cut data and a buffer id, and a PACKET_OUT or FLOW_MOD naming that id
//! applies to the whole packet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use fuxi_dataplane::engine::{Engine, PacketInEvent};
use fuxi_dataplane::packet::{RxMeta, parse};
use fuxi_dataplane::pipeline::exec::Recorder;
use fuxi_dataplane::pipeline::matching::packet_in_match;
use fuxi_dataplane::pipeline::{
    self as pl, Band, FlowRemoved, GroupType, Pipeline, PortState, RemovedReason,
};
use fuxi_openflow::consts::*;
use fuxi_openflow::msg::FlowModCommand;
use fuxi_openflow::msg::bundle::BundleCtrlType;
use fuxi_openflow::msg::table_features::{FeatureId, OxmId, TableFeatureProp, TableFeatures};
use fuxi_openflow::msg::{self, MultipartReplyBody as RB, MultipartRequestBody as QB};
use fuxi_openflow::{ErrorCode, FieldId, Framer, MacAddr, Message, MessageError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;

use crate::config::{Config, FailMode};
use crate::datapath::{Ports, nanos_since};

/// Something every connection may have to tell its controller.
#[derive(Clone, Debug)]
pub enum AsyncEvent {
    /// A packet for the controller, and the buffer that keeps it (OFP_NO_BUFFER: none; the
    /// whole packet goes to the controller).
    PacketIn(Arc<PacketInEvent>, u32),
    /// A flow left its table with SEND_FLOW_REM.
    FlowRemoved(Arc<FlowRemoved>),
    /// A port was added, removed or changed.
    PortStatus(u8, Arc<msg::Port>),
}

/// Buffers a switch keeps for packet-ins (Open vSwitch: 256).
pub const N_BUFFERS: usize = 256;
/// Low bits of a buffer id: the slot; the bits above: the slot's cookie.
const BUFFER_BITS: u32 = 8;
/// A cookie never reaches this, so no buffer id is OFP_NO_BUFFER.
const BUFFER_COOKIE_MAX: u32 = (1 << (32 - BUFFER_BITS)) - 1;
/// How long a buffered packet waits for its controller (Open vSwitch: 5 s). Until then
/// its slot is not reused; after it the id is unknown.
pub const BUFFER_TIMEOUT_NS: u64 = 5_000_000_000;

/// A packet kept for a packet-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffered {
    /// The whole packet.
    pub data: Vec<u8>,
    /// Port it came in on.
    pub in_port: u32,
}

#[derive(Debug, Default)]
struct BufferSlot {
    cookie: u32,
    packet: Option<Buffered>,
    stored: u64,
}

/// The switch's packet buffers: a ring of [`N_BUFFERS`] slots. An id is the slot number
/// in the low 8 bits and the slot's cookie (bumped on every store) above, so an id of a
/// slot that has been reused since is told apart from the current one. No I/O and no
/// clock: times are arguments (ns on the daemon's clock).
#[derive(Debug)]
pub struct PacketBuffers {
    slots: Vec<BufferSlot>,
    next: usize,
}

impl Default for PacketBuffers {
    fn default() -> Self {
        PacketBuffers {
            slots: (0..N_BUFFERS).map(|_| BufferSlot::default()).collect(),
            next: 0,
        }
    }
}

impl PacketBuffers {
    /// Keeps `packet`; returns its buffer id, or OFP_NO_BUFFER when the next slot still
    /// holds a packet younger than [`BUFFER_TIMEOUT_NS`] (then the controller gets the
    /// whole packet instead).
    pub fn store(&mut self, packet: Buffered, now: u64) -> u32 {
        let idx = self.next;
        let busy =
            |s: &BufferSlot| s.packet.is_some() && now.saturating_sub(s.stored) < BUFFER_TIMEOUT_NS;
        if busy(&self.slots[idx]) {
            return OFP_NO_BUFFER;
        }
        self.next = (idx + 1) % N_BUFFERS;
        let slot = &mut self.slots[idx];
        slot.cookie = if slot.cookie + 1 >= BUFFER_COOKIE_MAX {
            0
        } else {
            slot.cookie + 1
        };
        slot.packet = Some(packet);
        slot.stored = now;
        (slot.cookie << BUFFER_BITS) | idx as u32
    }

    /// Takes the packet `id` names. BUFFER_EMPTY when it was taken already; BUFFER_UNKNOWN
    /// when the id was never given, its slot has been reused, or it expired.
    pub fn take(&mut self, id: u32, now: u64) -> Result<Buffered, ErrorCode> {
        let slot = &mut self.slots[(id & ((1 << BUFFER_BITS) - 1)) as usize];
        if id == OFP_NO_BUFFER || slot.cookie != id >> BUFFER_BITS || slot.stored == 0 {
            return Err(ErrorCode::BAD_REQUEST_BUFFER_UNKNOWN);
        }
        let Some(p) = slot.packet.take() else {
            return Err(ErrorCode::BAD_REQUEST_BUFFER_EMPTY);
        };
        if now.saturating_sub(slot.stored) >= BUFFER_TIMEOUT_NS {
            return Err(ErrorCode::BAD_REQUEST_BUFFER_UNKNOWN);
        }
        Ok(p)
    }
}

/// Roles as stored per connection.
const ROLE_EQUAL: u8 = 1;
const ROLE_MASTER: u8 = 2;
const ROLE_SLAVE: u8 = 3;

/// The switch every connection talks to.
#[derive(Debug)]
pub struct Switch {
    /// Configuration.
    pub cfg: Config,
    /// The pipeline's control side.
    pub engine: Mutex<Engine>,
    /// Ports.
    pub ports: Arc<Ports>,
    /// Asynchronous messages for every connection.
    pub events: broadcast::Sender<AsyncEvent>,
    /// Clock origin (shared with datapath threads).
    pub start: Instant,
    /// Switch config flags (SET_CONFIG).
    pub flags: AtomicU64,
    /// Roles of live connections by id.
    roles: Mutex<HashMap<u64, Arc<AtomicU8>>>,
    /// Highest generation id seen in a master/slave role request.
    generation_id: Mutex<Option<u64>>,
    next_conn: AtomicU64,
    /// Packets kept for packet-ins.
    buffers: Mutex<PacketBuffers>,
    /// Controller connections and standalone fail-open state.
    fail_open: Mutex<FailOpen>,
    /// The kernel flow table, if offload is on (ports added at runtime are attached).
    pub kernel: Option<Arc<crate::kernel::Kernel>>,
}

/// Controller connections as standalone mode counts them.
#[derive(Debug, Default)]
struct FailOpen {
    /// Active controller connections up now.
    up: usize,
    /// When the last one went down (ns; 0: the daemon's start).
    down_since: u64,
    /// The fail-open flow is in (or was found there already).
    active: bool,
}

/// The flow standalone mode adds while no controller is connected (as Open vSwitch does
/// on a bridge without controllers): table 0, priority 0, every packet to NORMAL.
pub fn fail_open_flow() -> pl::FlowMod {
    pl::FlowMod::add(
        0,
        0,
        fuxi_openflow::Match::all(),
        vec![fuxi_openflow::Instruction::ApplyActions(vec![
            fuxi_openflow::Action::output(OFPP_NORMAL),
        ])],
    )
}

impl Switch {
    /// A switch with these parts.
    pub fn new(cfg: Config, engine: Engine, ports: Arc<Ports>, start: Instant) -> Switch {
        let (events, _) = broadcast::channel(4096);
        let sw = Switch {
            cfg,
            engine: Mutex::new(engine),
            ports,
            events,
            start,
            flags: AtomicU64::new(0),
            roles: Mutex::new(HashMap::new()),
            generation_id: Mutex::new(None),
            next_conn: AtomicU64::new(1),
            buffers: Mutex::new(PacketBuffers::default()),
            fail_open: Mutex::new(FailOpen::default()),
            kernel: None,
        };
        sw.engine()
            .pipeline()
            .mac_table
            .configure(sw.cfg.mac_aging_time, sw.cfg.mac_table_size);
        sw.fail_open_tick();
        sw
    }

    fn fail_open_state(&self) -> MutexGuard<'_, FailOpen> {
        self.fail_open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Standalone mode: adds the NORMAL flow when no controller connection is up and none
    /// has been for `fail_open_delay` (at once when no controller is configured). Leaves
    /// a priority-0 catch-all flow that is there already alone. Called at start and with
    /// every expiry tick.
    pub fn fail_open_tick(&self) {
        if self.cfg.fail_mode != FailMode::Standalone {
            return;
        }
        let now = self.now();
        let mut st = self.fail_open_state();
        if st.active || st.up > 0 {
            return;
        }
        let delay = u64::from(self.cfg.fail_open_delay) * 1_000_000_000;
        if !self.cfg.controllers.is_empty() && now.saturating_sub(st.down_since) < delay {
            return;
        }
        st.active = true;
        let mut e = self.engine();
        let taken = e.pipeline().tables[0]
            .flows
            .iter()
            .any(|(_, r)| r.priority == 0 && r.mask.is_zero());
        if !taken && e.flow_mod(&fail_open_flow(), now).is_ok() {
            e.publish();
            tracing::info!(bridge = %self.cfg.bridge, "no controller: standalone, NORMAL forwarding");
        }
    }

    /// An active controller connection came up: standalone mode's NORMAL flow goes (if it
    /// is still the one it added).
    pub fn controller_up(&self) {
        let mut st = self.fail_open_state();
        st.up += 1;
        if !std::mem::take(&mut st.active) {
            return;
        }
        let flow = fail_open_flow();
        let mut e = self.engine();
        let ours = e.pipeline().tables[0].flows.iter().any(|(_, r)| {
            r.priority == 0
                && r.mask.is_zero()
                && r.value.cookie == 0
                && *r.value.instructions == *flow.instructions
        });
        if ours {
            let del = pl::FlowMod {
                command: pl::FlowModCommand::DeleteStrict,
                ..pl::FlowMod::delete(0, fuxi_openflow::Match::all())
            };
            let now = self.now();
            if let Ok(removed) = e.flow_mod(&del, now) {
                e.publish();
                drop(e);
                self.flows_removed(removed);
                tracing::info!(bridge = %self.cfg.bridge, "controller connected: NORMAL fallback removed");
            }
        }
    }

    /// An active controller connection went down.
    pub fn controller_down(&self) {
        let now = self.now();
        let mut st = self.fail_open_state();
        st.up = st.up.saturating_sub(1);
        if st.up == 0 {
            st.down_since = now;
        }
    }

    /// Now on the daemon's clock.
    pub fn now(&self) -> u64 {
        nanos_since(self.start)
    }

    /// Locks the engine.
    pub fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes every change now: at the end of every read of a connection (before its
    /// replies, barrier replies included, are written) and before reading state
    /// (multipart, packet-out). Since tables and subtables are copy-on-write this costs
    /// pointer copies; the first change after it copies the subtable it touches.
    pub fn publish_now(&self) {
        let mut e = self.engine();
        if e.is_dirty() {
            e.publish();
        }
    }

    /// Tells every connection about removed flows.
    pub fn flows_removed(&self, removed: Vec<FlowRemoved>) {
        for r in removed {
            let _ = self.events.send(AsyncEvent::FlowRemoved(Arc::new(r)));
        }
    }

    /// Removes timed-out flows and publishes (called every second).
    pub fn expire(&self) {
        let now = self.now();
        let removed = {
            let mut e = self.engine();
            let r = e.expire(now);
            e.publish();
            r
        };
        self.flows_removed(removed);
        self.fail_open_tick();
    }

    /// The OpenFlow description of port `ofport`.
    pub fn port_desc(&self, ofport: u32) -> Option<msg::Port> {
        let s = self.ports.get(ofport)?;
        let up = s.link_up.load(Ordering::Relaxed);
        let config = s.config.load(Ordering::Relaxed);
        let mut state = if up {
            msg::port::state::LIVE
        } else {
            msg::port::state::LINK_DOWN
        };
        if config & msg::port::config::PORT_DOWN != 0 {
            state &= !msg::port::state::LIVE;
        }
        let f = msg::port::features::F_10GB_FD | msg::port::features::COPPER;
        Some(msg::Port {
            port_no: s.ofport,
            hw_addr: MacAddr(s.mac),
            name: s.name.clone(),
            config,
            state,
            curr: f,
            advertised: 0,
            supported: 0,
            peer: 0,
            curr_speed: 10_000_000,
            max_speed: 0,
        })
    }

    /// Records a port's link state, updates the pipeline's liveness and tells controllers.
    pub fn port_changed(&self, ofport: u32, reason: u8) {
        if let Some(s) = self.ports.get(ofport) {
            let mut e = self.engine();
            e.set_port(ofport, PortState { live: s.live() });
            e.publish();
        }
        if let Some(d) = self.port_desc(ofport) {
            let _ = self
                .events
                .send(AsyncEvent::PortStatus(reason, Arc::new(d)));
        }
    }

    /// Sends a packet-in to every connection, keeping the packet in a buffer when the
    /// packet-in carries less than all of it.
    pub fn packet_in(&self, ev: PacketInEvent) {
        let cut = ev.max_len != OFPCML_NO_BUFFER && usize::from(ev.max_len) < ev.data.len();
        let buffer_id = if cut {
            let b = Buffered {
                data: ev.data.clone(),
                in_port: ev.in_port,
            };
            self.buffers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .store(b, self.now().max(1))
        } else {
            OFP_NO_BUFFER
        };
        let _ = self
            .events
            .send(AsyncEvent::PacketIn(Arc::new(ev), buffer_id));
    }

    /// Takes the buffered packet `id` names (see [`PacketBuffers::take`]).
    pub fn take_buffer(&self, id: u32) -> Result<Buffered, ErrorCode> {
        self.buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take(id, self.now().max(1))
    }

    /// Runs a packet-out: `actions` on `data` as if received on `in_port`.
    pub fn packet_out(&self, in_port: u32, actions: &[fuxi_openflow::Action], data: &[u8]) {
        self.publish_now();
        let p = self.engine().published();
        let mut rec = Recorder::default();
        let mut pkt = data.to_vec();
        p.packet_out(&mut pkt, in_port, actions, self.now(), &mut rec);
        self.deliver(in_port, rec);
    }

    /// Sends what a recorder caught to ports and controllers.
    pub fn deliver(&self, in_port: u32, rec: Recorder) {
        for (port, _, tunnel_id, bytes) in rec.outputs {
            if let Some(s) = self.ports.get(port) {
                let mut p = fuxi_dataplane::port::Packet::from_frame(&bytes);
                p.tunnel_id = tunnel_id;
                s.send(std::slice::from_mut(&mut p));
            }
        }
        for (reason, max_len, table_id, cookie, data) in rec.packet_ins {
            self.packet_in(PacketInEvent {
                reason,
                max_len,
                table_id,
                cookie,
                in_port,
                tunnel_id: 0,
                data,
            });
        }
    }
}

/// A bundle being built on one connection.
#[derive(Debug, Default)]
struct Bundle {
    flags: u16,
    closed: bool,
    msgs: Vec<(u32, Message)>,
}

/// Bytes of one multipart request's parts (sent with REQ_MORE) a connection collects at most
/// (Open vSwitch: 1 MiB); beyond, MULTIPART_BUFFER_OVERFLOW.
pub const MULTIPART_MAX_BYTES: usize = 1 << 20;

/// A multipart request whose parts are being collected (REQ_MORE set on all but the last).
#[derive(Debug)]
struct Collecting {
    xid: u32,
    /// The first part as received (for an error about the whole sequence).
    first: Vec<u8>,
    parts: Vec<msg::MultipartRequest>,
    bytes: usize,
    /// Overflowed: the error was sent; later parts are dropped until the last one.
    failed: bool,
}

/// One connection's state (the sans-I/O part: messages in, messages out).
#[derive(Debug)]
pub struct Conn {
    sw: Arc<Switch>,
    id: u64,
    role: Arc<AtomicU8>,
    async_cfg: msg::AsyncConfig,
    miss_send_len: u16,
    bundles: HashMap<u32, Bundle>,
    /// A multipart request being collected.
    collecting: Option<Collecting>,
    /// Replies to write, encoded.
    pub out: Vec<u8>,
    /// Set when the connection must close after writing `out`.
    pub close: bool,
    hello_seen: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.sw
            .roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

fn default_async() -> msg::AsyncConfig {
    msg::AsyncConfig {
        // [master/equal, slave]
        packet_in_mask: [0b011, 0],
        port_status_mask: [0b111, 0b111],
        flow_removed_mask: [0b1111, 0],
    }
}

fn mp(body: RB) -> msg::MultipartReply {
    msg::MultipartReply { flags: 0, body }
}

fn dur(ns: u64) -> (u32, u32) {
    ((ns / 1_000_000_000) as u32, (ns % 1_000_000_000) as u32)
}

fn group_type_wire(t: GroupType) -> msg::GroupType {
    match t {
        GroupType::All => msg::GroupType::All,
        GroupType::Select => msg::GroupType::Select,
        GroupType::Indirect => msg::GroupType::Indirect,
        GroupType::FastFailover => msg::GroupType::FastFailover,
    }
}

fn band_wire(b: &Band) -> msg::MeterBand {
    match *b {
        Band::Drop { rate, burst } => msg::MeterBand::Drop {
            rate,
            burst_size: burst,
        },
        Band::DscpRemark {
            rate,
            burst,
            prec_level,
        } => msg::MeterBand::DscpRemark {
            rate,
            burst_size: burst,
            prec_level,
        },
    }
}

fn flow_req(r: &msg::FlowStatsRequest) -> pl::FlowStatsRequest {
    pl::FlowStatsRequest {
        table_id: r.table_id,
        out_port: r.out_port,
        out_group: r.out_group,
        cookie: r.cookie,
        cookie_mask: r.cookie_mask,
        r#match: r.match_.clone(),
    }
}

/// Action types this switch implements (table and group features).
const ACTION_TYPES: &[u16] = &[0, 11, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27];

fn table_features() -> Vec<TableFeatures> {
    let insts: Vec<FeatureId> = (1..=6)
        .map(|t| FeatureId {
            id_type: t,
            data: vec![],
        })
        .collect();
    let acts: Vec<FeatureId> = ACTION_TYPES
        .iter()
        .map(|&t| FeatureId {
            id_type: t,
            data: vec![],
        })
        .collect();
    let oxm = |f: FieldId, mask: bool| OxmId {
        header: (0x8000u32 << 16)
            | (u32::from(f.num()) << 9)
            | (u32::from(mask) << 8)
            | (f.bytes() as u32 * if mask { 2 } else { 1 }),
        experimenter: None,
    };
    let matchable: Vec<OxmId> = FieldId::ALL.iter().map(|&f| oxm(f, f.maskable())).collect();
    let wild: Vec<OxmId> = FieldId::ALL.iter().map(|&f| oxm(f, false)).collect();
    let settable: Vec<OxmId> = FieldId::ALL
        .iter()
        .filter(|f| !matches!(f, FieldId::InPort | FieldId::InPhyPort | FieldId::Metadata))
        .map(|&f| oxm(f, false))
        .collect();
    (0..N_TABLES_U8)
        .map(|t| {
            let next: Vec<u8> = (t + 1..N_TABLES_U8).collect();
            TableFeatures {
                table_id: t,
                name: format!("table{t}"),
                metadata_match: u64::MAX,
                metadata_write: u64::MAX,
                config: 0,
                max_entries: 1_000_000,
                properties: vec![
                    TableFeatureProp::Instructions(insts.clone()),
                    TableFeatureProp::InstructionsMiss(insts.clone()),
                    TableFeatureProp::NextTables(next.clone()),
                    TableFeatureProp::NextTablesMiss(next),
                    TableFeatureProp::WriteActions(acts.clone()),
                    TableFeatureProp::WriteActionsMiss(acts.clone()),
                    TableFeatureProp::ApplyActions(acts.clone()),
                    TableFeatureProp::ApplyActionsMiss(acts.clone()),
                    TableFeatureProp::Match(matchable.clone()),
                    TableFeatureProp::Wildcards(wild.clone()),
                    TableFeatureProp::WriteSetfield(settable.clone()),
                    TableFeatureProp::WriteSetfieldMiss(settable.clone()),
                    TableFeatureProp::ApplySetfield(settable.clone()),
                    TableFeatureProp::ApplySetfieldMiss(settable.clone()),
                ],
            }
        })
        .collect()
}

const N_TABLES_U8: u8 = pl::N_TABLES as u8;

/// Applies one state-changing message to a pipeline (used both directly and in bundles).
fn apply_mod(p: &mut Pipeline, m: &Message, now: u64) -> Result<Vec<FlowRemoved>, ErrorCode> {
    match m {
        Message::FlowMod(fm) => p.flow_mod(&pl::FlowMod::from(fm), now),
        Message::GroupMod(gm) => p.group_mod(&pl::GroupMod::from(gm), now),
        Message::MeterMod(mm) => p.meter_mod(&pl::MeterMod::try_from(mm)?, now),
        _ => Err(ErrorCode::BUNDLE_MSG_UNSUP),
    }
}

impl Conn {
    /// A new connection to `sw`; its HELLO is already in `out`.
    pub fn new(sw: Arc<Switch>) -> Conn {
        let id = sw.next_conn.fetch_add(1, Ordering::Relaxed);
        let role = Arc::new(AtomicU8::new(ROLE_EQUAL));
        sw.roles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, role.clone());
        let mut c = Conn {
            sw,
            id,
            role,
            async_cfg: default_async(),
            miss_send_len: 128,
            bundles: HashMap::new(),
            collecting: None,
            out: Vec::new(),
            close: false,
            hello_seen: false,
        };
        c.send(0, &Message::Hello(msg::Hello::ofp13()));
        c
    }

    fn send(&mut self, xid: u32, m: &Message) {
        m.encode(xid, &mut self.out);
    }

    fn error(&mut self, bytes: &[u8], code: ErrorCode, reason: &'static str) {
        let e = MessageError::new(bytes, code, reason);
        tracing::debug!(conn = self.id, "sending error: {e}");
        self.out.extend(e.reply_bytes());
    }

    fn is_slave(&self) -> bool {
        self.role.load(Ordering::Relaxed) == ROLE_SLAVE
    }

    /// Handles one framed message (`bytes`, whole). Replies go to `out`.
    pub fn handle(&mut self, bytes: &[u8]) {
        let (h, m) = match Message::decode(bytes) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(conn = self.id, "refused message: {e}");
                self.out.extend(e.reply_bytes());
                if e.code == ErrorCode::HELLO_INCOMPATIBLE {
                    self.close = true;
                }
                return;
            }
        };
        let xid = h.xid;
        if !self.hello_seen && !matches!(m, Message::Hello(_)) {
            // Lenient, as Open vSwitch: a peer that skips HELLO still speaks 1.3.
            self.hello_seen = true;
        }
        let modifies = matches!(
            m,
            Message::FlowMod(_)
                | Message::GroupMod(_)
                | Message::MeterMod(_)
                | Message::PortMod(_)
                | Message::TableMod(_)
                | Message::PacketOut(_)
                | Message::BundleControl(_)
                | Message::BundleAdd(_)
        );
        if modifies && self.is_slave() {
            self.error(bytes, ErrorCode::BAD_REQUEST_IS_SLAVE, "slave");
            return;
        }
        let sw = self.sw.clone();
        let now = sw.now();
        match m {
            Message::Hello(_) => self.hello_seen = true,
            Message::Error(e) => tracing::info!(conn = self.id, "peer sent error {}", e.code),
            Message::EchoRequest(d) => self.send(xid, &Message::EchoReply(d)),
            Message::EchoReply(_) => {}
            Message::FeaturesRequest => {
                let f = msg::SwitchFeatures {
                    datapath_id: sw.cfg.datapath_id,
                    n_buffers: N_BUFFERS as u32,
                    n_tables: N_TABLES_U8,
                    auxiliary_id: 0,
                    capabilities: 0x1 | 0x2 | 0x4 | 0x8,
                    reserved: 0,
                };
                self.send(xid, &Message::FeaturesReply(f));
            }
            Message::GetConfigRequest => {
                let c = msg::SwitchConfig {
                    flags: sw.flags.load(Ordering::Relaxed) as u16,
                    miss_send_len: self.miss_send_len,
                };
                self.send(xid, &Message::GetConfigReply(c));
            }
            Message::SetConfig(c) => {
                if c.flags & !0x3 != 0 {
                    self.error(bytes, ErrorCode::SWITCH_CONFIG_BAD_FLAGS, "bad flags");
                } else {
                    sw.flags.store(u64::from(c.flags), Ordering::Relaxed);
                    self.miss_send_len = c.miss_send_len;
                }
            }
            Message::FlowMod(ref fm) => {
                let r = sw.engine().flow_mod(&pl::FlowMod::from(fm), now);
                match r {
                    Ok(removed) => {
                        sw.flows_removed(removed);
                        // The buffered packet goes through the tables, the new flow
                        // included (spec §6.4; OFPP_TABLE). Deletes ignore buffer_id.
                        let adds = !matches!(
                            fm.command,
                            FlowModCommand::Delete | FlowModCommand::DeleteStrict
                        );
                        if adds && fm.buffer_id != OFP_NO_BUFFER {
                            match sw.take_buffer(fm.buffer_id) {
                                Ok(b) => {
                                    let table = fuxi_openflow::Action::Output {
                                        port: OFPP_TABLE,
                                        max_len: 0,
                                    };
                                    sw.packet_out(b.in_port, &[table], &b.data);
                                }
                                Err(c) => self.error(bytes, c, "buffer"),
                            }
                        }
                    }
                    Err(c) => self.error(bytes, c, "flow-mod refused"),
                }
            }
            Message::GroupMod(ref gm) => match sw.engine().group_mod(&gm.into(), now) {
                Ok(removed) => sw.flows_removed(removed),
                Err(c) => self.error(bytes, c, "group-mod refused"),
            },
            Message::MeterMod(ref mm) => {
                let r = pl::MeterMod::try_from(mm).and_then(|mm| sw.engine().meter_mod(&mm, now));
                match r {
                    Ok(removed) => sw.flows_removed(removed),
                    Err(c) => self.error(bytes, c, "meter-mod refused"),
                }
            }
            Message::PortMod(pm) => self.port_mod(bytes, &pm),
            Message::TableMod(tm) => {
                if tm.table_id != OFPTT_ALL && usize::from(tm.table_id) >= pl::N_TABLES {
                    self.error(bytes, ErrorCode::TABLE_MOD_BAD_TABLE, "no such table");
                }
            }
            Message::PacketOut(po) => {
                if !(po.in_port <= OFPP_MAX
                    || matches!(po.in_port, OFPP_CONTROLLER | OFPP_LOCAL | OFPP_ANY))
                {
                    self.error(bytes, ErrorCode::BAD_REQUEST_BAD_PORT, "bad in_port");
                } else if po.buffer_id == OFP_NO_BUFFER {
                    sw.packet_out(po.in_port, &po.actions, &po.data);
                } else {
                    // The buffered packet instead of `data` (which should be empty).
                    match sw.take_buffer(po.buffer_id) {
                        Ok(b) => sw.packet_out(po.in_port, &po.actions, &b.data),
                        Err(c) => self.error(bytes, c, "buffer"),
                    }
                }
            }
            Message::BarrierRequest => {
                // The reply waits in `out`, which is written only after the publication
                // that ends this read (see `serve`): everything before the barrier is
                // visible before its reply leaves. Reads after it publish first.
                self.send(xid, &Message::BarrierReply);
            }
            Message::MultipartRequest(req) => self.multipart_part(bytes, xid, req, now),
            Message::QueueGetConfigRequest(q) => {
                let r = msg::QueueGetConfigReply {
                    port: q.port,
                    queues: vec![],
                };
                self.send(xid, &Message::QueueGetConfigReply(r));
            }
            Message::RoleRequest(r) => self.role_request(bytes, xid, r),
            Message::GetAsyncRequest => {
                let a = self.async_cfg;
                self.send(xid, &Message::GetAsyncReply(a));
            }
            Message::SetAsync(a) => self.async_cfg = a,
            Message::BundleControl(bc) => self.bundle_control(bytes, xid, bc),
            Message::BundleAdd(ba) => {
                let ok = matches!(
                    *ba.message,
                    Message::FlowMod(_) | Message::GroupMod(_) | Message::MeterMod(_)
                );
                match self.bundles.get_mut(&ba.bundle_id) {
                    None => {
                        // An add opens the bundle implicitly (as Open vSwitch does).
                        if ok {
                            let b = Bundle {
                                flags: ba.flags,
                                ..Bundle::default()
                            };
                            self.bundles.insert(ba.bundle_id, b);
                            if let Some(b) = self.bundles.get_mut(&ba.bundle_id) {
                                b.msgs.push((xid, *ba.message));
                            }
                        } else {
                            self.error(bytes, ErrorCode::BUNDLE_MSG_UNSUP, "not bundleable");
                        }
                    }
                    Some(b) if b.closed => {
                        self.error(bytes, ErrorCode::BUNDLE_BUNDLE_CLOSED, "closed")
                    }
                    Some(_) if !ok => {
                        self.error(bytes, ErrorCode::BUNDLE_MSG_UNSUP, "not bundleable")
                    }
                    Some(b) => b.msgs.push((xid, *ba.message)),
                }
            }
            Message::Experimenter(_) => {
                self.error(bytes, ErrorCode::BAD_REQUEST_BAD_EXP_TYPE, "not supported")
            }
            Message::FeaturesReply(_)
            | Message::GetConfigReply(_)
            | Message::PacketIn(_)
            | Message::FlowRemoved(_)
            | Message::PortStatus(_)
            | Message::MultipartReply(_)
            | Message::BarrierReply
            | Message::QueueGetConfigReply(_)
            | Message::RoleReply(_)
            | Message::GetAsyncReply(_) => self.error(
                bytes,
                ErrorCode::BAD_REQUEST_BAD_TYPE,
                "switch-to-controller",
            ),
        }
    }

    fn port_mod(&mut self, bytes: &[u8], pm: &msg::PortMod) {
        let Some(slot) = self.sw.ports.get(pm.port_no) else {
            return self.error(bytes, ErrorCode::PORT_MOD_BAD_PORT, "no such port");
        };
        if pm.hw_addr.0 != slot.mac {
            return self.error(bytes, ErrorCode::PORT_MOD_BAD_HW_ADDR, "hw_addr differs");
        }
        use msg::port::config as c;
        let known = c::PORT_DOWN | c::NO_RECV | c::NO_FWD | c::NO_PACKET_IN;
        if pm.mask & !known != 0 {
            return self.error(bytes, ErrorCode::PORT_MOD_BAD_CONFIG, "unsupported bits");
        }
        let old = slot.config.load(Ordering::Relaxed);
        let new = (old & !pm.mask) | (pm.config & pm.mask);
        slot.config.store(new, Ordering::Relaxed);
        if new != old {
            self.sw.port_changed(pm.port_no, msg::port::OFPPR_MODIFY);
        }
    }

    fn role_request(&mut self, bytes: &[u8], xid: u32, r: msg::Role) {
        use msg::ControllerRole as R;
        let sw = self.sw.clone();
        if matches!(r.role, R::Master | R::Slave) {
            let mut g = sw
                .generation_id
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(cur) = *g
                && (r.generation_id.wrapping_sub(cur) as i64) < 0
            {
                return self.error(bytes, ErrorCode::ROLE_REQUEST_STALE, "stale generation");
            }
            *g = Some(r.generation_id);
        }
        match r.role {
            R::NoChange => {}
            R::Equal => self.role.store(ROLE_EQUAL, Ordering::Relaxed),
            R::Slave => self.role.store(ROLE_SLAVE, Ordering::Relaxed),
            R::Master => {
                for (id, role) in sw
                    .roles
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                {
                    if *id != self.id && role.load(Ordering::Relaxed) == ROLE_MASTER {
                        role.store(ROLE_SLAVE, Ordering::Relaxed);
                    }
                }
                self.role.store(ROLE_MASTER, Ordering::Relaxed);
            }
        }
        let role = match self.role.load(Ordering::Relaxed) {
            ROLE_MASTER => R::Master,
            ROLE_SLAVE => R::Slave,
            _ => R::Equal,
        };
        let gen_id = sw
            .generation_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(0);
        self.send(
            xid,
            &Message::RoleReply(msg::Role {
                role,
                generation_id: gen_id,
            }),
        );
    }

    fn bundle_control(&mut self, bytes: &[u8], xid: u32, bc: msg::BundleControl) {
        use BundleCtrlType as T;
        let reply = |t| {
            Message::BundleControl(msg::BundleControl {
                bundle_id: bc.bundle_id,
                ctrl_type: t,
                flags: bc.flags,
                properties: vec![],
            })
        };
        match bc.ctrl_type {
            T::OpenRequest => {
                if self.bundles.contains_key(&bc.bundle_id) {
                    return self.error(bytes, ErrorCode::BUNDLE_BAD_ID, "bundle exists");
                }
                if self.bundles.len() >= 64 {
                    return self.error(bytes, ErrorCode::BUNDLE_OUT_OF_BUNDLES, "too many");
                }
                let b = Bundle {
                    flags: bc.flags,
                    ..Bundle::default()
                };
                self.bundles.insert(bc.bundle_id, b);
                self.send(xid, &reply(T::OpenReply));
            }
            T::CloseRequest => match self.bundles.get_mut(&bc.bundle_id) {
                None => self.error(bytes, ErrorCode::BUNDLE_BAD_ID, "no such bundle"),
                Some(b) if b.closed => {
                    self.error(bytes, ErrorCode::BUNDLE_BUNDLE_CLOSED, "already closed")
                }
                Some(b) => {
                    b.closed = true;
                    self.send(xid, &reply(T::CloseReply));
                }
            },
            T::DiscardRequest => match self.bundles.remove(&bc.bundle_id) {
                None => self.error(bytes, ErrorCode::BUNDLE_BAD_ID, "no such bundle"),
                Some(_) => self.send(xid, &reply(T::DiscardReply)),
            },
            T::CommitRequest => {
                let Some(b) = self.bundles.remove(&bc.bundle_id) else {
                    return self.error(bytes, ErrorCode::BUNDLE_BAD_ID, "no such bundle");
                };
                if b.flags != bc.flags {
                    return self.error(bytes, ErrorCode::BUNDLE_BAD_FLAGS, "flags differ");
                }
                let sw = self.sw.clone();
                let now = sw.now();
                let r = sw.engine().transaction(|p| {
                    let mut removed = Vec::new();
                    for (i, (_, m)) in b.msgs.iter().enumerate() {
                        removed.extend(apply_mod(p, m, now).map_err(|c| (i, c))?);
                    }
                    Ok(removed)
                });
                match r {
                    Ok(removed) => {
                        sw.flows_removed(removed);
                        self.send(xid, &reply(T::CommitReply));
                    }
                    Err((i, code)) => {
                        if let Some((mxid, m)) = b.msgs.get(i) {
                            let mb = m.to_vec(*mxid);
                            self.error(&mb, code, "bundled message refused");
                        }
                        self.error(bytes, ErrorCode::BUNDLE_MSG_FAILED, "commit failed");
                    }
                }
            }
            T::OpenReply | T::CloseReply | T::CommitReply | T::DiscardReply => {
                self.error(bytes, ErrorCode::BUNDLE_BAD_TYPE, "reply type in a request")
            }
        }
    }

    /// One multipart request message: a whole request, or a part of one sent with REQ_MORE.
    /// Parts are collected until the last (REQ_MORE clear) and the request is then handled
    /// as one. One request is collected at a time: a multipart request with another xid
    /// breaks the collected one off (MULTIPART_BUFFER_OVERFLOW for it; the new one is
    /// handled), as does collecting more than [`MULTIPART_MAX_BYTES`] (the error once, then
    /// the rest of that request's parts are dropped). Other messages may come in between.
    fn multipart_part(&mut self, bytes: &[u8], xid: u32, req: msg::MultipartRequest, now: u64) {
        const OVERFLOW: ErrorCode = ErrorCode::BAD_REQUEST_MULTIPART_BUFFER_OVERFLOW;
        if let Some(c) = self.collecting.take_if(|c| c.xid != xid)
            && !c.failed
        {
            self.error(
                &c.first,
                OVERFLOW,
                "another multipart request came in between",
            );
        }
        let more = req.more();
        let whole = if let Some(c) = self.collecting.as_mut() {
            if !c.failed {
                c.bytes += bytes.len();
                if c.bytes > MULTIPART_MAX_BYTES {
                    c.failed = true;
                    c.parts = Vec::new();
                    self.error(bytes, OVERFLOW, "multipart request too long");
                } else {
                    c.parts.push(req);
                }
            }
            if more {
                return;
            }
            let Some(c) = self.collecting.take() else {
                return;
            };
            if c.failed {
                return;
            }
            match msg::MultipartRequest::reassemble(c.parts) {
                Ok(w) => w,
                Err(e) => return self.error(bytes, e.code, e.reason),
            }
        } else if more {
            self.collecting = Some(Collecting {
                xid,
                first: bytes.to_vec(),
                parts: vec![req],
                bytes: bytes.len(),
                failed: false,
            });
            return;
        } else {
            req
        };
        match self.multipart(&whole, now) {
            Ok(replies) => {
                for r in replies {
                    for part in r.split(fuxi_openflow::header::OFP_MAX_MSG_LEN) {
                        self.send(xid, &Message::MultipartReply(part));
                    }
                }
            }
            Err(c) => self.error(bytes, c, "multipart refused"),
        }
    }

    fn multipart(
        &mut self,
        req: &msg::MultipartRequest,
        now: u64,
    ) -> Result<Vec<msg::MultipartReply>, ErrorCode> {
        let sw = self.sw.clone();
        sw.publish_now();
        let p = sw.engine().published();
        Ok(vec![match &req.body {
            QB::Desc => mp(RB::Desc(msg::Desc {
                mfr_desc: "Fuxi".into(),
                hw_desc: "fuxi-switchd userspace datapath".into(),
                sw_desc: env!("CARGO_PKG_VERSION").into(),
                serial_num: "None".into(),
                dp_desc: sw.cfg.bridge.clone(),
            })),
            QB::Flow(r) => {
                let flows = p.flow_stats(&flow_req(r), now)?;
                let v = flows
                    .into_iter()
                    .map(|f| {
                        let (s, n) = dur(f.duration);
                        msg::FlowStats {
                            table_id: f.table_id,
                            duration_sec: s,
                            duration_nsec: n,
                            priority: f.priority,
                            idle_timeout: f.idle_timeout,
                            hard_timeout: f.hard_timeout,
                            flags: f.flags,
                            cookie: f.cookie,
                            packet_count: f.packet_count,
                            byte_count: f.byte_count,
                            match_: f.r#match,
                            instructions: f.instructions.to_vec(),
                        }
                    })
                    .collect();
                mp(RB::Flow(v))
            }
            QB::Aggregate(r) => {
                let (packet_count, byte_count, flow_count) = p.aggregate_stats(&flow_req(r))?;
                mp(RB::Aggregate(msg::AggregateStats {
                    packet_count,
                    byte_count,
                    flow_count,
                }))
            }
            QB::Table => {
                let v = sw
                    .engine()
                    .table_stats()
                    .into_iter()
                    .map(|(t, a, l, m)| msg::TableStats {
                        table_id: t,
                        active_count: a,
                        lookup_count: l,
                        matched_count: m,
                    })
                    .collect();
                mp(RB::Table(v))
            }
            QB::PortStats(port) => {
                let table = sw.ports.load();
                if *port != OFPP_ANY && !table.contains_key(port) {
                    return Err(ErrorCode::BAD_REQUEST_BAD_PORT);
                }
                let v = table
                    .values()
                    .filter(|s| *port == OFPP_ANY || s.ofport == *port)
                    .map(|s| {
                        let st = s.stats();
                        let (ds, dn) = dur(s.created.elapsed().as_nanos() as u64);
                        msg::PortStats {
                            port_no: s.ofport,
                            rx_packets: st.rx_packets,
                            tx_packets: st.tx_packets,
                            rx_bytes: st.rx_bytes,
                            tx_bytes: st.tx_bytes,
                            rx_dropped: st.rx_dropped,
                            tx_dropped: st.tx_dropped,
                            rx_errors: 0,
                            tx_errors: st.tx_errors,
                            rx_frame_err: 0,
                            rx_over_err: 0,
                            rx_crc_err: 0,
                            collisions: 0,
                            duration_sec: ds,
                            duration_nsec: dn,
                        }
                    })
                    .collect();
                mp(RB::PortStats(v))
            }
            QB::PortDesc => {
                let ports = sw.ports.load();
                let v = ports.keys().filter_map(|&n| sw.port_desc(n)).collect();
                mp(RB::PortDesc(v))
            }
            QB::Queue(_) => mp(RB::Queue(vec![])),
            QB::Group(id) => {
                let v = p
                    .groups
                    .iter()
                    .filter(|(g, _)| *id == OFPG_ALL || **g == *id)
                    .map(|(g, grp)| {
                        let r = Ordering::Relaxed;
                        let (s, n) = dur(now.saturating_sub(grp.stats.created));
                        msg::GroupStats {
                            group_id: *g,
                            ref_count: p.group_ref_count(*g),
                            packet_count: grp.stats.packets.load(r),
                            byte_count: grp.stats.bytes.load(r),
                            duration_sec: s,
                            duration_nsec: n,
                            bucket_stats: grp
                                .stats
                                .buckets
                                .iter()
                                .map(|(pk, by)| msg::BucketCounter {
                                    packet_count: pk.load(r),
                                    byte_count: by.load(r),
                                })
                                .collect(),
                        }
                    })
                    .collect();
                mp(RB::Group(v))
            }
            QB::GroupDesc => {
                let v = p
                    .groups
                    .iter()
                    .map(|(g, grp)| msg::GroupDesc {
                        group_type: group_type_wire(grp.group_type),
                        group_id: *g,
                        buckets: grp
                            .buckets
                            .iter()
                            .map(|b| msg::Bucket {
                                weight: b.weight,
                                watch_port: b.watch_port,
                                watch_group: b.watch_group,
                                actions: b.actions.clone(),
                            })
                            .collect(),
                    })
                    .collect();
                mp(RB::GroupDesc(v))
            }
            QB::GroupFeatures => {
                let mut acts = 0u32;
                for &a in ACTION_TYPES {
                    acts |= 1 << a;
                }
                mp(RB::GroupFeatures(msg::GroupFeatures {
                    types: 0xf,
                    capabilities: 0x1 | 0x2 | 0x4,
                    max_groups: [65535; 4],
                    actions: [acts; 4],
                }))
            }
            QB::Meter(id) => {
                let v = p
                    .meters
                    .ids()
                    .filter(|m| *id == OFPM_ALL || m == id)
                    .filter_map(|m| {
                        let meter = p.meters.get(m)?;
                        let (s, n) = dur(meter.duration(now));
                        Some(msg::MeterStats {
                            meter_id: m,
                            flow_count: meter_flow_count(&p, m),
                            packet_in_count: meter.packets_in,
                            byte_in_count: meter.bytes_in,
                            duration_sec: s,
                            duration_nsec: n,
                            band_stats: meter
                                .band_stats()
                                .into_iter()
                                .map(|(pk, by)| msg::MeterBandStats {
                                    packet_band_count: pk,
                                    byte_band_count: by,
                                })
                                .collect(),
                        })
                    })
                    .collect();
                mp(RB::Meter(v))
            }
            QB::MeterConfig(id) => {
                let v = p
                    .meters
                    .ids()
                    .filter(|m| *id == OFPM_ALL || m == id)
                    .filter_map(|m| {
                        let meter = p.meters.get(m)?;
                        Some(msg::MeterConfig {
                            flags: meter.config.flags,
                            meter_id: m,
                            bands: meter.config.bands.iter().map(band_wire).collect(),
                        })
                    })
                    .collect();
                mp(RB::MeterConfig(v))
            }
            QB::MeterFeatures => mp(RB::MeterFeatures(msg::MeterFeatures {
                max_meter: 65536,
                band_types: (1 << 1) | (1 << 2),
                capabilities: 0xf,
                max_bands: 16,
                max_color: 0,
            })),
            QB::TableFeatures(set) => {
                if !set.is_empty() {
                    self.check_table_features_set(set)?;
                }
                mp(RB::TableFeatures(table_features()))
            }
            QB::Experimenter(_) => return Err(ErrorCode::BAD_REQUEST_BAD_EXPERIMENTER),
        }])
    }

    /// A TABLE_FEATURES request with a body asks to reconfigure the tables to exactly the
    /// listed ones (spec 1.3.5 §7.3.5.18). This switch's tables are fixed: a request for
    /// what they are already is a success (answered with the features, as a set that
    /// took effect is); any other is refused with an OFPET_TABLE_FEATURES_FAILED code —
    /// BAD_TABLE for a table that does not exist, else EPERM, the code Open vSwitch
    /// gives every set request. A slave may not change the switch (IS_SLAVE).
    fn check_table_features_set(&self, set: &[TableFeatures]) -> Result<(), ErrorCode> {
        if self.is_slave() {
            return Err(ErrorCode::BAD_REQUEST_IS_SLAVE);
        }
        if set.iter().any(|t| usize::from(t.table_id) >= pl::N_TABLES) {
            return Err(ErrorCode::TABLE_FEATURES_BAD_TABLE);
        }
        if set != table_features().as_slice() {
            return Err(ErrorCode::TABLE_FEATURES_EPERM);
        }
        Ok(())
    }

    /// Encodes an asynchronous event for this connection, if its role and async config
    /// want it.
    pub fn on_event(&mut self, ev: &AsyncEvent) {
        let slot = usize::from(self.is_slave());
        match ev {
            AsyncEvent::PacketIn(pi, buffer_id) => {
                if self.async_cfg.packet_in_mask[slot] & (1 << (pi.reason as u32)) == 0 {
                    return;
                }
                let parsed = parse(
                    &pi.data,
                    RxMeta {
                        tunnel_id: pi.tunnel_id,
                        ..RxMeta::port(pi.in_port)
                    },
                );
                let mut m = packet_in_match(&parsed.key);
                // The packet-in match carries in_port first, as switches send it.
                m.fields.retain(
                    |f| !matches!(f, fuxi_openflow::OxmTlv::Basic(o) if o.field == FieldId::InPort),
                );
                m.fields
                    .insert(0, fuxi_openflow::Oxm::in_port(pi.in_port).into());
                // Cut to max_len only when the rest is kept in a buffer (spec §7.4.1: an
                // unbuffered packet-in carries the whole packet).
                let max = if *buffer_id == OFP_NO_BUFFER {
                    pi.data.len()
                } else {
                    usize::from(pi.max_len)
                };
                let data = pi.data[..pi.data.len().min(max)].to_vec();
                let p = msg::PacketIn {
                    buffer_id: *buffer_id,
                    total_len: pi.data.len().min(65535) as u16,
                    reason: pi.reason as u8,
                    table_id: pi.table_id,
                    cookie: pi.cookie,
                    match_: m,
                    data,
                };
                self.send(0, &Message::PacketIn(p));
            }
            AsyncEvent::FlowRemoved(fr) => {
                let bit = 1 << (fr.reason as u32);
                if self.async_cfg.flow_removed_mask[slot] & bit == 0 {
                    return;
                }
                let _ = RemovedReason::Delete;
                self.send(0, &Message::FlowRemoved(msg::FlowRemoved::from(&**fr)));
            }
            AsyncEvent::PortStatus(reason, desc) => {
                if self.async_cfg.port_status_mask[slot] & (1 << u32::from(*reason)) == 0 {
                    return;
                }
                let ps = msg::PortStatus {
                    reason: *reason,
                    desc: (**desc).clone(),
                };
                self.send(0, &Message::PortStatus(ps));
            }
        }
    }
}

fn meter_flow_count(p: &Pipeline, meter: u32) -> u32 {
    p.tables
        .iter()
        .flat_map(|t| t.flows.iter())
        .filter(|(_, r)| {
            r.value
                .instructions
                .iter()
                .any(|i| matches!(i, fuxi_openflow::Instruction::Meter(m) if *m == meter))
        })
        .count() as u32
}

/// Serves one connection to a configured controller (an active connection, which standalone
/// mode counts) until it closes.
pub async fn serve_controller<S>(sw: Arc<Switch>, stream: S, peer: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    struct Down(Arc<Switch>);
    impl Drop for Down {
        fn drop(&mut self) {
            self.0.controller_down();
        }
    }
    sw.controller_up();
    let _down = Down(sw.clone());
    serve(sw, stream, peer).await;
}

/// Serves one OpenFlow connection until it closes.
pub async fn serve<S>(sw: Arc<Switch>, stream: S, peer: String)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut events = sw.events.subscribe();
    let mut conn = Conn::new(sw.clone());
    let mut framer = Framer::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut last_rx = Instant::now();
    let mut echo_sent = false;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tracing::info!(%peer, conn = conn.id, "OpenFlow connection up");
    loop {
        if !conn.out.is_empty() {
            if wr.write_all(&conn.out).await.is_err() {
                break;
            }
            conn.out.clear();
        }
        if conn.close {
            break;
        }
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                last_rx = Instant::now();
                echo_sent = false;
                framer.push(&buf[..n]);
                loop {
                    match framer.next_frame() {
                        Ok(Some(frame)) => conn.handle(&frame),
                        Ok(None) => break,
                        Err(e) => {
                            conn.out.extend(e.0.reply_bytes());
                            conn.close = true;
                            break;
                        }
                    }
                }
                // Everything read so far becomes visible before any reply is written.
                sw.publish_now();
            }
            ev = events.recv() => {
                match ev {
                    Ok(ev) => conn.on_event(&ev),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(conn = conn.id, "dropped {n} async messages");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            _ = tick.tick() => {
                let idle = last_rx.elapsed();
                if idle > Duration::from_secs(30) {
                    tracing::info!(%peer, "no answer to echo: closing");
                    break;
                }
                if idle > Duration::from_secs(5) && !echo_sent {
                    conn.send(0xec40, &Message::EchoRequest(vec![]));
                    echo_sent = true;
                }
            }
        }
    }
    let _ = wr.shutdown().await;
    tracing::info!(%peer, conn = conn.id, "OpenFlow connection down");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        let cfg = crate::config::FileConfig::default().validate().unwrap();
        let sw = Switch::new(
            cfg,
            Engine::default(),
            Arc::new(Ports::default()),
            Instant::now(),
        );
        let mut c = Conn::new(Arc::new(sw));
        c.out.clear();
        c
    }

    /// Every message `c` wrote since the last call, with its xid.
    fn written(c: &mut Conn) -> Vec<(u32, Message)> {
        let mut f = Framer::new();
        f.push(&std::mem::take(&mut c.out));
        let mut v = Vec::new();
        while let Ok(Some(fr)) = f.next_frame() {
            let (h, m) = Message::decode(&fr).unwrap();
            v.push((h.xid, m));
        }
        v
    }

    /// Sends a TABLE_FEATURES request with `set` as its body (split with REQ_MORE as a
    /// controller must) and returns what came back: the table ids of the reply, or the
    /// error.
    fn table_features_set(c: &mut Conn, set: Vec<TableFeatures>) -> Result<Vec<u8>, ErrorCode> {
        let req = msg::MultipartRequest {
            flags: 0,
            body: QB::TableFeatures(set),
        };
        for part in req.split(fuxi_openflow::header::OFP_MAX_MSG_LEN) {
            c.handle(&Message::MultipartRequest(part).to_vec(7));
        }
        let mut ids = Vec::new();
        for (xid, m) in written(c) {
            assert_eq!(xid, 7);
            match m {
                Message::Error(e) => return Err(e.code),
                Message::MultipartReply(r) => match r.body {
                    RB::TableFeatures(v) => ids.extend(v.iter().map(|t| t.table_id)),
                    b => panic!("{b:?}"),
                },
                m => panic!("{m:?}"),
            }
        }
        Ok(ids)
    }

    #[test]
    fn table_features_set_requests_succeed_only_for_the_tables_as_they_are() {
        let mut c = conn();
        // The tables as they are: a success, answered with the features.
        let all = table_features();
        let ids = table_features_set(&mut c, all.clone()).unwrap();
        assert_eq!(ids, (0..N_TABLES_U8).collect::<Vec<_>>());
        // Anything else cannot be done here.
        let mut fewer = all.clone();
        fewer.pop();
        assert_eq!(
            table_features_set(&mut c, fewer),
            Err(ErrorCode::TABLE_FEATURES_EPERM)
        );
        let mut bigger = all.clone();
        bigger[3].max_entries += 1;
        assert_eq!(
            table_features_set(&mut c, bigger),
            Err(ErrorCode::TABLE_FEATURES_EPERM)
        );
        let mut none = all[..1].to_vec();
        none[0].table_id = 255;
        assert_eq!(
            table_features_set(&mut c, none),
            Err(ErrorCode::TABLE_FEATURES_BAD_TABLE)
        );
        // A query still answers, and a slave may not set.
        assert_eq!(table_features_set(&mut c, vec![]).unwrap().len(), 255);
        c.role.store(ROLE_SLAVE, Ordering::Relaxed);
        assert_eq!(
            table_features_set(&mut c, all),
            Err(ErrorCode::BAD_REQUEST_IS_SLAVE)
        );
    }

    fn pkt(b: u8) -> Buffered {
        Buffered {
            data: vec![b; 100],
            in_port: u32::from(b),
        }
    }

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_buffer_is_taken_once_then_empty() {
        let mut b = PacketBuffers::default();
        let id = b.store(pkt(1), S);
        assert_ne!(id, OFP_NO_BUFFER);
        assert_eq!(b.take(id, 2 * S), Ok(pkt(1)));
        assert_eq!(b.take(id, 2 * S), Err(ErrorCode::BAD_REQUEST_BUFFER_EMPTY));
    }

    #[test]
    fn unknown_reused_and_expired_ids_are_unknown() {
        let mut b = PacketBuffers::default();
        let unknown = ErrorCode::BAD_REQUEST_BUFFER_UNKNOWN;
        assert_eq!(b.take(0, S), Err(unknown));
        assert_eq!(b.take(7, S), Err(unknown));
        assert_eq!(b.take(OFP_NO_BUFFER, S), Err(unknown));
        let first = b.store(pkt(1), S);
        assert_eq!(b.take(first ^ (1 << BUFFER_BITS), S), Err(unknown));
        // Expired: the packet is gone, and its id unknown.
        assert_eq!(b.take(first, S + BUFFER_TIMEOUT_NS), Err(unknown));
        // Every other slot, then the first slot comes round again.
        let later = 10 * S;
        let ids: Vec<u32> = (1..N_BUFFERS)
            .map(|i| b.store(pkt(i as u8), later))
            .collect();
        assert!(ids.iter().all(|&i| i != OFP_NO_BUFFER));
        // The first slot has come round again: same slot, new cookie.
        let again = b.store(pkt(9), later + BUFFER_TIMEOUT_NS);
        assert_eq!(again & 0xff, first & 0xff);
        assert_ne!(again, first);
        assert_eq!(b.take(first, later + BUFFER_TIMEOUT_NS), Err(unknown));
        assert_eq!(b.take(again, later + BUFFER_TIMEOUT_NS), Ok(pkt(9)));
    }

    #[test]
    fn a_full_pool_buffers_nothing_until_packets_expire() {
        let mut b = PacketBuffers::default();
        let ids: Vec<u32> = (0..N_BUFFERS).map(|i| b.store(pkt(i as u8), S)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), N_BUFFERS);
        assert_eq!(b.store(pkt(1), S + 1), OFP_NO_BUFFER);
        // A taken buffer frees its slot at once... but only the next slot in the ring
        // is tried, as Open vSwitch does.
        assert_eq!(b.take(ids[0], S + 2), Ok(pkt(0)));
        let id = b.store(pkt(2), S + 3);
        assert_eq!(id & 0xff, 0);
        assert_eq!(b.store(pkt(3), S + 4), OFP_NO_BUFFER);
        assert_ne!(b.store(pkt(4), S + BUFFER_TIMEOUT_NS), OFP_NO_BUFFER);
        assert_eq!(b.take(ids[3], S + 2), Ok(pkt(3)));
    }

    #[test]
    fn cookies_wrap_without_making_no_buffer() {
        let mut b = PacketBuffers::default();
        b.slots[N_BUFFERS - 1].cookie = BUFFER_COOKIE_MAX - 1;
        b.next = N_BUFFERS - 1;
        let id = b.store(pkt(1), S);
        assert_ne!(id, OFP_NO_BUFFER);
        assert_eq!(id, N_BUFFERS as u32 - 1);
        assert_eq!(b.take(id, S), Ok(pkt(1)));
    }
}
