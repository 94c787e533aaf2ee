//! Crate-private helpers for reading and writing message bodies: bounds-checked slicing of
//! length-prefixed elements, fixed-width strings, padding. Message layouts live in `msg/`.

use bytes::BufMut;

use crate::error::{DecodeError, ErrorCode, fail};
use crate::oxm::MacAddr;

/// Fails with BAD_REQUEST/BAD_LEN unless `buf` holds at least `n` bytes.
pub(crate) fn need(buf: &[u8], n: usize, reason: &'static str) -> Result<(), DecodeError> {
    if buf.len() < n {
        fail(ErrorCode::BAD_REQUEST_BAD_LEN, reason)
    } else {
        Ok(())
    }
}

/// Fails with BAD_REQUEST/BAD_LEN unless `buf` is empty.
pub(crate) fn done(buf: &[u8], reason: &'static str) -> Result<(), DecodeError> {
    if buf.is_empty() {
        Ok(())
    } else {
        fail(ErrorCode::BAD_REQUEST_BAD_LEN, reason)
    }
}

/// Splits the first `n` bytes off `buf`, failing with `code` if there are fewer.
pub(crate) fn take<'a>(
    buf: &mut &'a [u8],
    n: usize,
    code: ErrorCode,
    reason: &'static str,
) -> Result<&'a [u8], DecodeError> {
    if buf.len() < n {
        return fail(code, reason);
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

/// Splits off an element whose big-endian u16 length sits at byte `at` of it; the length must
/// be at least `min` and fit in `buf`.
pub(crate) fn element<'a>(
    buf: &mut &'a [u8],
    at: usize,
    min: usize,
    code: ErrorCode,
    reason: &'static str,
) -> Result<&'a [u8], DecodeError> {
    if buf.len() < at + 2 {
        return fail(code, reason);
    }
    let len = usize::from(u16::from_be_bytes([buf[at], buf[at + 1]]));
    if len < min.max(at + 2) {
        return fail(code, reason);
    }
    take(buf, len, code, reason)
}

/// Takes the rest of `buf`.
pub(crate) fn rest(buf: &mut &[u8]) -> Vec<u8> {
    let v = buf.to_vec();
    *buf = &[];
    v
}

/// Reads a NUL-padded string field of `n` bytes (caller checked they are there). The value
/// stops at the first NUL; bytes that are not UTF-8 are replaced, and the result is cut at a
/// character boundary so that it always fits `n` bytes again.
pub(crate) fn get_str(buf: &mut &[u8], n: usize) -> String {
    let (field, tail) = buf.split_at(n);
    *buf = tail;
    let end = field.iter().position(|&b| b == 0).unwrap_or(n);
    let mut s = String::from_utf8_lossy(&field[..end]).into_owned();
    let mut cut = s.len().min(n);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s
}

/// Writes a string into an `n`-byte NUL-padded field, cut to `n` bytes if longer.
pub(crate) fn put_str(buf: &mut impl BufMut, s: &str, n: usize) {
    let b = &s.as_bytes()[..s.len().min(n)];
    buf.put_slice(b);
    buf.put_bytes(0, n - b.len());
}

/// Reads a MAC address (caller checked the 6 bytes are there).
pub(crate) fn get_mac(buf: &mut &[u8]) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&buf[..6]);
    *buf = &buf[6..];
    MacAddr(m)
}

/// Big-endian readers over a slice whose length the caller has checked.
pub(crate) trait Rd {
    fn u8(&mut self) -> u8;
    fn u16(&mut self) -> u16;
    fn u32(&mut self) -> u32;
    fn u64(&mut self) -> u64;
    fn skip(&mut self, n: usize);
}

impl Rd for &[u8] {
    fn u8(&mut self) -> u8 {
        let v = self[0];
        *self = &self[1..];
        v
    }
    fn u16(&mut self) -> u16 {
        let v = u16::from_be_bytes([self[0], self[1]]);
        *self = &self[2..];
        v
    }
    fn u32(&mut self) -> u32 {
        let v = u32::from_be_bytes([self[0], self[1], self[2], self[3]]);
        *self = &self[4..];
        v
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self[..8]);
        *self = &self[8..];
        u64::from_be_bytes(b)
    }
    fn skip(&mut self, n: usize) {
        *self = &self[n..];
    }
}

/// Zero bytes that bring `len` up to a multiple of 8.
pub(crate) fn pad8(len: usize) -> usize {
    len.next_multiple_of(8) - len
}
