//! Fuzz bodies, called by the cargo-fuzz targets in `fuzz/` (and usable from tests). Each
//! takes arbitrary bytes, must never panic on them, and panics only when the codec breaks an
//! invariant: a message that decodes must re-encode to bytes that decode to the same value,
//! with the length its header says.

use crate::framer::Framer;
use crate::header::OFP_MAX_MSG_LEN;
use crate::message::Message;
use crate::msg::{MultipartReply, MultipartRequest};

/// Decodes `bytes` as one message; if it decodes, checks encode→decode is the identity.
pub fn decode_round_trip(bytes: &[u8]) {
    let Ok((h, m)) = Message::decode(bytes) else {
        return;
    };
    if m.wire_len() > OFP_MAX_MSG_LEN {
        // Only possible for a HELLO (or table features) that omitted its last padding at
        // the very limit; such a value cannot be re-sent as one message.
        return;
    }
    let again = m.to_vec(h.xid);
    assert_eq!(again.len(), m.wire_len(), "wire_len disagrees with encode");
    let (h2, m2) =
        Message::decode(&again).unwrap_or_else(|e| panic!("re-encoded {m:?} does not decode: {e}"));
    assert_eq!(h2.xid, h.xid);
    assert_eq!(usize::from(h2.length), again.len());
    assert_eq!(m2, m, "encode then decode changed the message");
    if let Message::MultipartRequest(r) = &m {
        let parts = r.clone().split(256);
        let whole = MultipartRequest::reassemble(parts).expect("parts of one request reassemble");
        let mut want = r.clone();
        want.flags &= !crate::header::OFPMPF_REQ_MORE;
        assert_eq!(whole, want, "split then reassemble changed the request");
    }
    if let Message::MultipartReply(r) = m {
        // Splitting under a small limit and reassembling gives the reply back.
        let parts = r.clone().split(256);
        let whole = MultipartReply::reassemble(parts).expect("parts of one reply reassemble");
        let mut want = r;
        want.flags &= !crate::header::OFPMPF_REPLY_MORE;
        assert_eq!(whole, want, "split then reassemble changed the reply");
    }
}

/// Feeds `data` through a [`Framer`] in chunks whose size the first byte picks, decodes
/// every frame with [`decode_round_trip`], and also decodes `data` as a single message.
pub fn framer_and_decode(data: &[u8]) {
    let step = data.first().map_or(1, |b| usize::from(b % 17) + 1);
    let mut framer = Framer::new();
    'outer: for chunk in data.chunks(step) {
        framer.push(chunk);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => decode_round_trip(&frame),
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
    }
    decode_round_trip(data);
}
