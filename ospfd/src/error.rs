//! The one typed error of the OSPF core: decoding and authentication failures.

use thiserror::Error;

/// Everything that can be wrong with a received OSPF packet or LSA.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("unsupported OSPF version {0}")]
    BadVersion(u8),
    #[error("unknown packet type {0}")]
    BadPacketType(u8),
    #[error("bad packet length {0}")]
    BadLength(usize),
    #[error("bad LSA length {0}")]
    BadLsaLength(usize),
    #[error("LSA checksum mismatch")]
    BadLsaChecksum,
    #[error("packet checksum mismatch")]
    BadChecksum,
    #[error("authentication type {got} does not match configured {want}")]
    AuthTypeMismatch { got: u16, want: u16 },
    #[error("simple password mismatch")]
    BadPassword,
    #[error("unknown key id {0}")]
    UnknownKeyId(u8),
    #[error("authentication data length {got}, expected {want}")]
    BadAuthLength { got: usize, want: usize },
    #[error("message digest mismatch")]
    BadDigest,
    #[error("cryptographic sequence number {got} is below last seen {last}")]
    SeqReplay { got: u32, last: u32 },
}
