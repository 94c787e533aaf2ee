//! OpenFlow 1.3 (wire version 0x04) for Fuxi: every message as an owned value with one
//! codec, the stream framer, the spec's error codes, and the ovs-ofctl flow text syntax.
//!
//! This crate does no I/O: no sockets, threads, clock or runtime. Bytes come in, values go
//! out, and the other way round.

pub mod action;
pub mod consts;
pub mod error;
pub mod framer;
pub mod fuzz;
pub mod header;
pub mod instruction;
pub mod message;
pub mod msg;
pub mod oxm;
pub mod text;
mod wire;

pub use action::Action;
pub use error::{DecodeError, ErrorCode};
pub use framer::Framer;
pub use header::Header;
pub use instruction::Instruction;
pub use message::{Message, MessageError};
pub use oxm::{FieldId, MacAddr, Match, Oxm, OxmTlv};
