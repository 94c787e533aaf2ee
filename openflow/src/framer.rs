//! Stream framing: bytes from a TCP (or TLS) stream in any chunking in, whole OpenFlow
//! messages out. The framer reads only the 8-byte header's length; it never looks at the
//! version, since every OpenFlow version shares that header (a wrong version is refused per
//! message by [`Message::decode`], after which the stream goes on).
//!
//! A header whose length is below 8 cannot be framed: the framer returns a
//! [`FramingError`] carrying the BAD_REQUEST/BAD_LEN error to send, and from then on the
//! stream is unusable — every later call returns the same error and pushed bytes are
//! dropped. The connection must be closed after sending the error.

use bytes::{Bytes, BytesMut};

use crate::error::ErrorCode;
use crate::header::{Header, OFP_HEADER_LEN};
use crate::message::{Message, MessageError};

/// The stream cannot be framed any more; send `.0.reply_bytes()` and close.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("OpenFlow stream unusable: {0}")]
pub struct FramingError(pub MessageError);

/// Cuts a byte stream into messages. See the module documentation.
#[derive(Debug, Default)]
pub struct Framer {
    buf: BytesMut,
    dead: Option<FramingError>,
}

impl Framer {
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Appends bytes read from the stream. Ignored once the stream is unusable.
    pub fn push(&mut self, data: &[u8]) {
        if self.dead.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held that do not yet make a whole message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a framing error has made the stream unusable.
    pub fn is_dead(&self) -> bool {
        self.dead.is_some()
    }

    /// The next whole message's bytes, `Ok(None)` if more input is needed, or the framing
    /// error (forever, once it has happened).
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FramingError> {
        if let Some(e) = &self.dead {
            return Err(e.clone());
        }
        let Some(h) = Header::parse(&self.buf) else {
            return Ok(None);
        };
        let len = usize::from(h.length);
        if len < OFP_HEADER_LEN {
            let e = FramingError(MessageError::new(
                &self.buf[..OFP_HEADER_LEN],
                ErrorCode::BAD_REQUEST_BAD_LEN,
                "header length below 8",
            ));
            self.buf = BytesMut::new();
            self.dead = Some(e.clone());
            return Err(e);
        }
        if self.buf.len() < len {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    /// The next whole message, decoded: `Ok(Some(Ok(..)))` for a message,
    /// `Ok(Some(Err(e)))` for a refused message (send `e.reply_bytes()`; the stream goes
    /// on), `Ok(None)` when more input is needed, `Err` when the stream is unusable.
    #[allow(clippy::type_complexity)]
    pub fn next_message(
        &mut self,
    ) -> Result<Option<Result<(Header, Message), MessageError>>, FramingError> {
        Ok(self.next_frame()?.map(|f| Message::decode(&f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_across_chunks_and_dies_on_short_length() {
        let mut f = Framer::new();
        let barrier = Message::BarrierRequest.to_vec(7);
        let mut stream = barrier.clone();
        stream.extend_from_slice(&barrier);
        f.push(&stream[..3]);
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&stream[3..12]);
        assert_eq!(f.next_frame().unwrap().unwrap(), barrier);
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&stream[12..]);
        let (h, m) = f.next_message().unwrap().unwrap().unwrap();
        assert_eq!((h.xid, m), (7, Message::BarrierRequest));
        f.push(&[4, 0, 0, 7, 0, 0, 0, 9]);
        let e = f.next_frame().unwrap_err();
        assert_eq!(e.0.code, ErrorCode::BAD_REQUEST_BAD_LEN);
        assert_eq!(e.0.xid, 9);
        f.push(&barrier);
        assert!(f.next_frame().is_err());
        assert!(f.is_dead());
    }
}
