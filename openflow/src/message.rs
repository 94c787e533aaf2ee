//! The [`Message`] enum — every OpenFlow 1.3 message in both directions, plus the ONF bundle
//! extension — with its one codec, and [`MessageError`], what a refused message turns into
//! (the spec's ERROR type/code and the first 64 bytes of the offender).
//!
//! Bodies are defined in [`crate::msg`]; the header and type numbers in [`crate::header`].
//! Stream framing is [`crate::framer`].
//!
//! ```
//! use fuxi_openflow::msg::{FlowMod, FlowModCommand};
//! use fuxi_openflow::{Action, ErrorCode, Instruction, Match, Message, Oxm};
//!
//! let fm = FlowMod {
//!     priority: 10,
//!     match_: Match::all().with(Oxm::in_port(1)),
//!     instructions: vec![Instruction::ApplyActions(vec![Action::output(2)])],
//!     ..FlowMod::new(FlowModCommand::Add)
//! };
//! let bytes = Message::from(fm.clone()).to_vec(7);
//! let (header, msg) = Message::decode(&bytes).unwrap();
//! assert_eq!((header.xid, msg), (7, Message::FlowMod(fm)));
//!
//! // A refused message carries the ERROR to send back.
//! let err = Message::decode(&bytes[..20]).unwrap_err();
//! assert_eq!(err.code, ErrorCode::BAD_REQUEST_BAD_LEN);
//! let reply: Vec<u8> = err.reply_bytes();
//! assert_eq!(reply[1], 1); // OFPT_ERROR
//! ```

use bytes::BufMut;

use crate::consts::OFP_VERSION;
use crate::error::{DecodeError, ErrorCode, ONF_EXPERIMENTER_ID, fail};
use crate::header::*;
use crate::msg::bundle::{ONFT_BUNDLE_ADD_MESSAGE, ONFT_BUNDLE_CONTROL};
use crate::msg::*;
use crate::wire::{Rd, done, need, rest};

/// Nicira's experimenter id (Open vSwitch extensions).
pub const NX_EXPERIMENTER_ID: u32 = 0x0000_2320;

/// Whether this crate accepts experimenter messages (and experimenter multipart bodies) of
/// this experimenter: ONF (bundles are decoded, other ONF types carried as
/// [`Experimenter`]) and Nicira (carried as [`Experimenter`]). Any other experimenter is
/// refused with BAD_REQUEST/BAD_EXPERIMENTER.
pub fn experimenter_known(experimenter: u32) -> bool {
    matches!(experimenter, ONF_EXPERIMENTER_ID | NX_EXPERIMENTER_ID)
}

/// The ONF exp_types of OpenFlow 1.3 messages Open vSwitch speaks: flow-monitor cancel,
/// paused and resumed (1870-1872), role status (1911), bundle control and add (2300, 2301).
/// Other ONF exp_types are BAD_REQUEST/BAD_EXP_TYPE.
pub const ONF_MESSAGE_TYPES: &[u32] = &[1870, 1871, 1872, 1911, 2300, 2301];

/// How many bytes of the offending message an ERROR carries.
pub const ERROR_DATA_LEN: usize = 64;

/// One OpenFlow 1.3 message (the xid travels next to it, in [`Header`] or as an argument to
/// [`Message::encode`]).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Message {
    Hello(Hello),
    Error(ErrorMsg),
    /// Arbitrary payload, echoed back in the reply.
    EchoRequest(Vec<u8>),
    EchoReply(Vec<u8>),
    /// An experimenter message this crate does not decode further (Nicira, and the ONF
    /// types of [`ONF_MESSAGE_TYPES`] other than bundles). Never ONF with a bundle exp_type
    /// (those are `BundleControl`/`BundleAdd`).
    Experimenter(Experimenter),
    FeaturesRequest,
    FeaturesReply(SwitchFeatures),
    GetConfigRequest,
    GetConfigReply(SwitchConfig),
    SetConfig(SwitchConfig),
    PacketIn(PacketIn),
    FlowRemoved(FlowRemoved),
    PortStatus(PortStatus),
    PacketOut(PacketOut),
    FlowMod(FlowMod),
    GroupMod(GroupMod),
    PortMod(PortMod),
    TableMod(TableMod),
    MultipartRequest(MultipartRequest),
    MultipartReply(MultipartReply),
    BarrierRequest,
    BarrierReply,
    QueueGetConfigRequest(QueueGetConfigRequest),
    QueueGetConfigReply(QueueGetConfigReply),
    RoleRequest(Role),
    RoleReply(Role),
    GetAsyncRequest,
    GetAsyncReply(AsyncConfig),
    SetAsync(AsyncConfig),
    MeterMod(MeterMod),
    /// ONF bundle extension: BUNDLE_CONTROL (OFPT_EXPERIMENTER, exp_type 2300).
    BundleControl(BundleControl),
    /// ONF bundle extension: BUNDLE_ADD_MESSAGE (OFPT_EXPERIMENTER, exp_type 2301).
    BundleAdd(BundleAdd),
}

/// A message that was refused: what goes back to the peer.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("xid {xid:#x}: {code}: {reason}")]
pub struct MessageError {
    /// The offending message's xid (0 when not even the header could be read).
    pub xid: u32,
    pub code: ErrorCode,
    /// Up to the first 64 bytes of the offending message; for HELLO_FAILED, as the spec
    /// asks, an ASCII text saying which versions each side speaks.
    pub data: Vec<u8>,
    /// A short human reason, for logs.
    pub reason: &'static str,
    /// The version to send the ERROR in: the peer's own for BAD_VERSION and
    /// HELLO_FAILED/INCOMPATIBLE (so that a peer of another version can read it, as Open
    /// vSwitch does), 0x04 otherwise.
    pub version: u8,
}

impl MessageError {
    /// The error for `bytes` (the whole offending message, or what there is of it).
    pub fn new(bytes: &[u8], code: ErrorCode, reason: &'static str) -> MessageError {
        let xid = bytes
            .get(4..8)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        let version = match bytes.first() {
            Some(&v)
                if code == ErrorCode::BAD_REQUEST_BAD_VERSION
                    || code == ErrorCode::HELLO_INCOMPATIBLE =>
            {
                v
            }
            _ => OFP_VERSION,
        };
        MessageError {
            xid,
            code,
            data: bytes[..bytes.len().min(ERROR_DATA_LEN)].to_vec(),
            reason,
            version,
        }
    }

    /// The ERROR message to send back (with [`MessageError::xid`]).
    pub fn to_message(&self) -> Message {
        Message::Error(ErrorMsg {
            code: self.code,
            data: self.data.clone(),
        })
    }

    /// The ERROR message to send back, encoded (in [`MessageError::version`]).
    pub fn reply_bytes(&self) -> Vec<u8> {
        let m = self.to_message();
        let mut v = Vec::with_capacity(m.wire_len());
        m.encode_versioned(self.version, self.xid, &mut v);
        v
    }
}

impl Message {
    /// The OFPT_* number.
    pub fn msg_type(&self) -> u8 {
        use Message::*;
        match self {
            Hello(_) => OFPT_HELLO,
            Error(_) => OFPT_ERROR,
            EchoRequest(_) => OFPT_ECHO_REQUEST,
            EchoReply(_) => OFPT_ECHO_REPLY,
            Experimenter(_) | BundleControl(_) | BundleAdd(_) => OFPT_EXPERIMENTER,
            FeaturesRequest => OFPT_FEATURES_REQUEST,
            FeaturesReply(_) => OFPT_FEATURES_REPLY,
            GetConfigRequest => OFPT_GET_CONFIG_REQUEST,
            GetConfigReply(_) => OFPT_GET_CONFIG_REPLY,
            SetConfig(_) => OFPT_SET_CONFIG,
            PacketIn(_) => OFPT_PACKET_IN,
            FlowRemoved(_) => OFPT_FLOW_REMOVED,
            PortStatus(_) => OFPT_PORT_STATUS,
            PacketOut(_) => OFPT_PACKET_OUT,
            FlowMod(_) => OFPT_FLOW_MOD,
            GroupMod(_) => OFPT_GROUP_MOD,
            PortMod(_) => OFPT_PORT_MOD,
            TableMod(_) => OFPT_TABLE_MOD,
            MultipartRequest(_) => OFPT_MULTIPART_REQUEST,
            MultipartReply(_) => OFPT_MULTIPART_REPLY,
            BarrierRequest => OFPT_BARRIER_REQUEST,
            BarrierReply => OFPT_BARRIER_REPLY,
            QueueGetConfigRequest(_) => OFPT_QUEUE_GET_CONFIG_REQUEST,
            QueueGetConfigReply(_) => OFPT_QUEUE_GET_CONFIG_REPLY,
            RoleRequest(_) => OFPT_ROLE_REQUEST,
            RoleReply(_) => OFPT_ROLE_REPLY,
            GetAsyncRequest => OFPT_GET_ASYNC_REQUEST,
            GetAsyncReply(_) => OFPT_GET_ASYNC_REPLY,
            SetAsync(_) => OFPT_SET_ASYNC,
            MeterMod(_) => OFPT_METER_MOD,
        }
    }

    /// Length of the body (everything after the 8-byte header).
    pub fn body_len(&self) -> usize {
        use Message::*;
        match self {
            Hello(h) => h.wire_len(),
            Error(e) => e.wire_len(),
            EchoRequest(d) | EchoReply(d) => d.len(),
            Experimenter(e) => e.wire_len(),
            FeaturesRequest | GetConfigRequest | BarrierRequest | BarrierReply
            | GetAsyncRequest => 0,
            FeaturesReply(_) => SwitchFeatures::LEN,
            GetConfigReply(_) | SetConfig(_) => SwitchConfig::LEN,
            PacketIn(p) => p.wire_len(),
            FlowRemoved(f) => f.wire_len(),
            PortStatus(_) => crate::msg::PortStatus::LEN,
            PacketOut(p) => p.wire_len(),
            FlowMod(f) => f.wire_len(),
            GroupMod(g) => g.wire_len(),
            PortMod(_) => crate::msg::PortMod::LEN,
            TableMod(_) => crate::msg::TableMod::LEN,
            MultipartRequest(m) => m.wire_len(),
            MultipartReply(m) => m.wire_len(),
            QueueGetConfigRequest(_) => crate::msg::QueueGetConfigRequest::LEN,
            QueueGetConfigReply(q) => q.wire_len(),
            RoleRequest(_) | RoleReply(_) => Role::LEN,
            GetAsyncReply(_) | SetAsync(_) => AsyncConfig::LEN,
            MeterMod(m) => m.wire_len(),
            BundleControl(b) => 8 + b.wire_len(),
            BundleAdd(b) => 8 + b.wire_len(),
        }
    }

    /// Length of the whole message. A value longer than [`OFP_MAX_MSG_LEN`] cannot be
    /// sent (split multipart replies first, see [`MultipartReply::split`]).
    pub fn wire_len(&self) -> usize {
        OFP_HEADER_LEN + self.body_len()
    }

    /// Writes the message with version 0x04 and this `xid`.
    pub fn encode(&self, xid: u32, buf: &mut impl BufMut) {
        self.encode_versioned(OFP_VERSION, xid, buf);
    }

    /// Writes the message with another header version: only meant for HELLO and ERROR,
    /// whose layout every version shares (answering a peer in its own version).
    pub fn encode_versioned(&self, version: u8, xid: u32, buf: &mut impl BufMut) {
        let len = self.wire_len();
        debug_assert!(len <= OFP_MAX_MSG_LEN, "message longer than 65535 bytes");
        Header {
            version,
            msg_type: self.msg_type(),
            length: len as u16,
            xid,
        }
        .encode(buf);
        self.encode_body(xid, buf);
    }

    /// The encoded message.
    pub fn to_vec(&self, xid: u32) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.wire_len());
        self.encode(xid, &mut v);
        v
    }

    fn encode_body(&self, xid: u32, buf: &mut impl BufMut) {
        use Message::*;
        match self {
            Hello(h) => h.encode(buf),
            Error(e) => e.encode(buf),
            EchoRequest(d) | EchoReply(d) => buf.put_slice(d),
            Experimenter(e) => e.encode(buf),
            FeaturesRequest | GetConfigRequest | BarrierRequest | BarrierReply
            | GetAsyncRequest => {}
            FeaturesReply(f) => f.encode(buf),
            GetConfigReply(c) | SetConfig(c) => c.encode(buf),
            PacketIn(p) => p.encode(buf),
            FlowRemoved(f) => f.encode(buf),
            PortStatus(p) => p.encode(buf),
            PacketOut(p) => p.encode(buf),
            FlowMod(f) => f.encode(buf),
            GroupMod(g) => g.encode(buf),
            PortMod(p) => p.encode(buf),
            TableMod(t) => t.encode(buf),
            MultipartRequest(m) => m.encode(buf),
            MultipartReply(m) => m.encode(buf),
            QueueGetConfigRequest(q) => q.encode(buf),
            QueueGetConfigReply(q) => q.encode(buf),
            RoleRequest(r) | RoleReply(r) => r.encode(buf),
            GetAsyncReply(a) | SetAsync(a) => a.encode(buf),
            MeterMod(m) => m.encode(buf),
            BundleControl(b) => {
                buf.put_u32(ONF_EXPERIMENTER_ID);
                buf.put_u32(ONFT_BUNDLE_CONTROL);
                b.encode(buf);
            }
            BundleAdd(b) => {
                buf.put_u32(ONF_EXPERIMENTER_ID);
                buf.put_u32(ONFT_BUNDLE_ADD_MESSAGE);
                b.encode(xid, buf);
            }
        }
    }

    /// Decodes exactly one whole message (as the framer yields it).
    ///
    /// Refusals, each with the xid and the first 64 bytes:
    /// - fewer than 8 bytes, or a header length other than `bytes.len()`: BAD_REQUEST/BAD_LEN;
    /// - a HELLO whose version negotiation fails (bitmap without 1.3, or no bitmap and a
    ///   header version below 1.3): HELLO_FAILED/INCOMPATIBLE, with a text as data and to
    ///   be sent in the peer's version. A HELLO of another version that negotiates 1.3 is
    ///   accepted (the header keeps its version);
    /// - an ERROR of any version is accepted (a peer refusing 1.3 answers in its own);
    /// - any other message with a version other than 0x04: BAD_REQUEST/BAD_VERSION;
    /// - an unknown type: BAD_REQUEST/BAD_TYPE; unknown multipart type: BAD_MULTIPART;
    ///   unknown experimenter: BAD_EXPERIMENTER (see [`experimenter_known`]);
    /// - a body that is short or has bytes left over: BAD_REQUEST/BAD_LEN;
    /// - match, instruction, action, group, meter, table-features, role and bundle errors
    ///   with their own types, as the body decoders document.
    pub fn decode(bytes: &[u8]) -> Result<(Header, Message), MessageError> {
        let err = |code, reason| MessageError::new(bytes, code, reason);
        let Some(h) = Header::parse(bytes) else {
            return Err(err(ErrorCode::BAD_REQUEST_BAD_LEN, "shorter than a header"));
        };
        if usize::from(h.length) != bytes.len() || usize::from(h.length) < OFP_HEADER_LEN {
            return Err(err(
                ErrorCode::BAD_REQUEST_BAD_LEN,
                "header length is not the message length",
            ));
        }
        let mut body = &bytes[OFP_HEADER_LEN..];
        if h.msg_type == OFPT_HELLO {
            let hello = match Hello::decode(&mut body) {
                Ok(hello) => hello,
                // Other versions' hello bodies are not ours to judge.
                Err(_) if h.version != OFP_VERSION => crate::msg::Hello::default(),
                Err(e) => return Err(err(e.code, e.reason)),
            };
            return match hello.negotiate(h.version) {
                Some(_) => Ok((h, Message::Hello(hello))),
                None => {
                    let mut e = err(ErrorCode::HELLO_INCOMPATIBLE, "no common OpenFlow version");
                    e.data = hello_failed_text(&hello, h.version).into_bytes();
                    Err(e)
                }
            };
        }
        if h.msg_type == OFPT_ERROR && h.version != OFP_VERSION {
            // Every version's ERROR has this layout; a peer refusing our version sends its own.
            return ErrorMsg::decode(&mut body)
                .map(|e| (h, Message::Error(e)))
                .map_err(|e| err(e.code, e.reason));
        }
        if h.version != OFP_VERSION {
            return Err(err(
                ErrorCode::BAD_REQUEST_BAD_VERSION,
                "only OpenFlow 1.3 is spoken",
            ));
        }
        let mut decode = || -> Result<Message, DecodeError> {
            let m = decode_body(h.msg_type, h.xid, &mut body)?;
            done(body, "bytes left after the message body")?;
            Ok(m)
        };
        decode().map(|m| (h, m)).map_err(|e| err(e.code, e.reason))
    }
}

/// The text a HELLO_FAILED/INCOMPATIBLE carries (the spec wants ASCII text there), worded
/// as Open vSwitch words it.
fn hello_failed_text(hello: &Hello, header_version: u8) -> String {
    let theirs: Vec<u8> = match hello.bitmap() {
        Some(words) => (0..words.len() * 32)
            .filter(|&v| words[v / 32] & (1 << (v % 32)) != 0)
            .map(|v| v as u8)
            .collect(),
        None => vec![header_version],
    };
    let list = theirs
        .iter()
        .map(|v| format!("{v:#04x}"))
        .collect::<Vec<_>>()
        .join(", ");
    let plural = if theirs.len() == 1 { "" } else { "s" };
    format!(
        "We support version {OFP_VERSION:#04x}, you support version{plural} {list}, no common versions."
    )
}

fn decode_body(msg_type: u8, xid: u32, buf: &mut &[u8]) -> Result<Message, DecodeError> {
    use Message as M;
    Ok(match msg_type {
        OFPT_ERROR => M::Error(ErrorMsg::decode(buf)?),
        OFPT_ECHO_REQUEST => M::EchoRequest(rest(buf)),
        OFPT_ECHO_REPLY => M::EchoReply(rest(buf)),
        OFPT_EXPERIMENTER => decode_experimenter(xid, buf)?,
        OFPT_FEATURES_REQUEST => M::FeaturesRequest,
        OFPT_FEATURES_REPLY => M::FeaturesReply(SwitchFeatures::decode(buf)?),
        OFPT_GET_CONFIG_REQUEST => M::GetConfigRequest,
        OFPT_GET_CONFIG_REPLY => M::GetConfigReply(SwitchConfig::decode(buf)?),
        OFPT_SET_CONFIG => M::SetConfig(SwitchConfig::decode(buf)?),
        OFPT_PACKET_IN => M::PacketIn(PacketIn::decode(buf)?),
        OFPT_FLOW_REMOVED => M::FlowRemoved(FlowRemoved::decode(buf)?),
        OFPT_PORT_STATUS => M::PortStatus(PortStatus::decode(buf)?),
        OFPT_PACKET_OUT => M::PacketOut(PacketOut::decode(buf)?),
        OFPT_FLOW_MOD => M::FlowMod(FlowMod::decode(buf)?),
        OFPT_GROUP_MOD => M::GroupMod(GroupMod::decode(buf)?),
        OFPT_PORT_MOD => M::PortMod(PortMod::decode(buf)?),
        OFPT_TABLE_MOD => M::TableMod(TableMod::decode(buf)?),
        OFPT_MULTIPART_REQUEST => M::MultipartRequest(MultipartRequest::decode(buf)?),
        OFPT_MULTIPART_REPLY => M::MultipartReply(MultipartReply::decode(buf)?),
        OFPT_BARRIER_REQUEST => M::BarrierRequest,
        OFPT_BARRIER_REPLY => M::BarrierReply,
        OFPT_QUEUE_GET_CONFIG_REQUEST => {
            M::QueueGetConfigRequest(QueueGetConfigRequest::decode(buf)?)
        }
        OFPT_QUEUE_GET_CONFIG_REPLY => M::QueueGetConfigReply(QueueGetConfigReply::decode(buf)?),
        OFPT_ROLE_REQUEST => M::RoleRequest(Role::decode(buf)?),
        OFPT_ROLE_REPLY => M::RoleReply(Role::decode(buf)?),
        OFPT_GET_ASYNC_REQUEST => M::GetAsyncRequest,
        OFPT_GET_ASYNC_REPLY => M::GetAsyncReply(AsyncConfig::decode(buf)?),
        OFPT_SET_ASYNC => M::SetAsync(AsyncConfig::decode(buf)?),
        OFPT_METER_MOD => M::MeterMod(MeterMod::decode(buf)?),
        _ => return fail(ErrorCode::BAD_REQUEST_BAD_TYPE, "unknown message type"),
    })
}

fn decode_experimenter(xid: u32, buf: &mut &[u8]) -> Result<Message, DecodeError> {
    need(buf, 8, "truncated experimenter header")?;
    let (experimenter, exp_type) = {
        let mut h = &buf[..8];
        (h.u32(), h.u32())
    };
    if !experimenter_known(experimenter) {
        return fail(
            ErrorCode::BAD_REQUEST_BAD_EXPERIMENTER,
            "unknown experimenter",
        );
    }
    match (experimenter, exp_type) {
        (ONF_EXPERIMENTER_ID, ONFT_BUNDLE_CONTROL) => {
            buf.skip(8);
            Ok(Message::BundleControl(BundleControl::decode(buf)?))
        }
        (ONF_EXPERIMENTER_ID, ONFT_BUNDLE_ADD_MESSAGE) => {
            buf.skip(8);
            Ok(Message::BundleAdd(BundleAdd::decode(xid, buf)?))
        }
        (ONF_EXPERIMENTER_ID, t) if !ONF_MESSAGE_TYPES.contains(&t) => fail(
            ErrorCode::BAD_REQUEST_BAD_EXP_TYPE,
            "unknown ONF experimenter message type",
        ),
        _ => Ok(Message::Experimenter(Experimenter::decode(buf)?)),
    }
}

macro_rules! from_body {
    ($($body:ident => $variant:ident),* $(,)?) => {
        $(
            impl From<$body> for Message {
                fn from(b: $body) -> Message {
                    Message::$variant(b)
                }
            }
        )*
    };
}

from_body! {
    Hello => Hello,
    ErrorMsg => Error,
    Experimenter => Experimenter,
    SwitchFeatures => FeaturesReply,
    PacketIn => PacketIn,
    FlowRemoved => FlowRemoved,
    PortStatus => PortStatus,
    PacketOut => PacketOut,
    FlowMod => FlowMod,
    GroupMod => GroupMod,
    PortMod => PortMod,
    TableMod => TableMod,
    MultipartRequest => MultipartRequest,
    MultipartReply => MultipartReply,
    QueueGetConfigRequest => QueueGetConfigRequest,
    QueueGetConfigReply => QueueGetConfigReply,
    MeterMod => MeterMod,
    BundleControl => BundleControl,
    BundleAdd => BundleAdd,
}

impl Message {
    /// The spec's name of the message (`OFPT_*`, or `ONFT_*` for bundles), for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Message::BundleControl(_) => "ONFT_BUNDLE_CONTROL",
            Message::BundleAdd(_) => "ONFT_BUNDLE_ADD_MESSAGE",
            m => msg_type_name(m.msg_type()).unwrap_or("OFPT_?"),
        }
    }
}
