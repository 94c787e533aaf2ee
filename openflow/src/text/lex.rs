//! The value syntax every ovs-ofctl text form shares: the `key=value` / `key:value` /
//! `key(value)` splitter, integers in C's base-0 notation (`0x` hex, leading-`0` octal,
//! decimal), IPv4 and IPv6 addresses with CIDR or dotted masks, and Ethernet addresses.
//! No knowledge of fields or actions lives here.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::ParseError;
use crate::oxm::MacAddr;

fn is_delim(c: char) -> bool {
    matches!(c, ',' | ' ' | '\t' | '\r' | '\n')
}

/// Splits `s` into `(key, value)` pairs the way ovs-ofctl does: pairs are separated by commas
/// or white space; a key ends at `=`, `:` or `(`; a value after `=`/`:` runs to the next
/// separator outside parentheses, and a value in parentheses runs to the matching `)`.
/// A key without a value has an empty value.
pub(crate) fn split_kv(s: &str) -> Result<Vec<(&str, &str)>, ParseError> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches(is_delim);
        if rest.is_empty() {
            return Ok(out);
        }
        let key_end = rest
            .find(|c: char| matches!(c, ':' | '=' | '(') || is_delim(c))
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = &rest[key_end..];
        let value;
        match rest.chars().next() {
            Some('(') => {
                let mut depth = 0usize;
                let mut end = None;
                for (i, c) in rest.char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(i);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    return Err(ParseError::new(format!(
                        "{key}: missing ')' in \"{}\"",
                        &rest[1..]
                    )));
                };
                value = &rest[1..end];
                rest = &rest[end + 1..];
            }
            Some('=' | ':') => {
                rest = &rest[1..];
                let mut depth = 0usize;
                let mut end = rest.len();
                for (i, c) in rest.char_indices() {
                    match c {
                        '(' => depth += 1,
                        ')' if depth > 0 => depth -= 1,
                        c if depth == 0 && is_delim(c) => {
                            end = i;
                            break;
                        }
                        _ => {}
                    }
                }
                value = &rest[..end];
                rest = &rest[end..];
            }
            _ => value = "",
        }
        if key.is_empty() {
            return Err(ParseError::new(format!(
                "missing keyword before \"{value}\""
            )));
        }
        out.push((key, value));
    }
}

/// An unsigned integer as C's `strtoull(s, NULL, 0)` reads it, but strict: `0x`/`0X` hex,
/// a leading `0` for octal, otherwise decimal; a leading `-` negates modulo 2^64 (so `-1` is
/// all ones); the whole string must be a number.
pub(crate) fn parse_c_uint(s: &str) -> Option<u64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(h, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u64>().ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// A decimal-only unsigned integer (what ovs-ofctl uses for table ids).
pub(crate) fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A number that must fit `max`, for the flow's own keywords (`priority`, timeouts...).
pub(crate) fn parse_bounded(key: &str, s: &str, max: u64) -> Result<u64, ParseError> {
    match parse_c_uint(s) {
        Some(v) if v <= max && !s.starts_with('-') => Ok(v),
        _ => Err(ParseError::new(format!("invalid {key} \"{s}\""))),
    }
}

/// Dotted-quad IPv4 address (each part decimal 0..=255).
pub(crate) fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *o = p.parse::<u8>().ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(out))
}

/// `a.b.c.d`, `a.b.c.d/N` or `a.b.c.d/m.m.m.m` as (value, mask); the value is not yet
/// masked.
pub(crate) fn parse_ipv4_masked(s: &str) -> Result<(u32, u32), ParseError> {
    let bad = || ParseError::new(format!("{s}: invalid IP address"));
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr = u32::from(parse_ipv4(a).ok_or_else(bad)?);
    let mask = match m {
        None => u32::MAX,
        Some(m) if m.contains('.') => u32::from(parse_ipv4(m).ok_or_else(bad)?),
        Some(m) => {
            let n = parse_decimal(m).filter(|n| *n <= 32).ok_or_else(|| {
                ParseError::new(format!(
                    "{s}: IPv4 network prefix bits not between 0 and 32, inclusive"
                ))
            })?;
            prefix_mask(n as u32, 32) as u32
        }
    };
    Ok((addr, mask))
}

/// IPv6 address with an optional `/N` or `/mask`, as (value, mask).
pub(crate) fn parse_ipv6_masked(s: &str) -> Result<(u128, u128), ParseError> {
    let bad = || ParseError::new(format!("{s}: invalid IPv6 address"));
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr = u128::from(a.parse::<Ipv6Addr>().map_err(|_| bad())?);
    let mask = match m {
        None => u128::MAX,
        Some(m) if m.contains(':') => u128::from(m.parse::<Ipv6Addr>().map_err(|_| bad())?),
        Some(m) => {
            let n = parse_decimal(m).filter(|n| *n <= 128).ok_or_else(|| {
                ParseError::new(format!(
                    "{s}: IPv6 network prefix bits not between 0 and 128, inclusive"
                ))
            })?;
            prefix_mask(n as u32, 128)
        }
    };
    Ok((addr, mask))
}

/// Ethernet address with an optional `/mask`, as (value, mask) in the low 48 bits.
pub(crate) fn parse_mac_masked(s: &str) -> Result<(u128, u128), ParseError> {
    let bad = || ParseError::new(format!("{s}: invalid Ethernet address"));
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr = a.parse::<MacAddr>().map_err(|_| bad())?.to_u128();
    let mask = match m {
        None => (1u128 << 48) - 1,
        Some(m) => m.parse::<MacAddr>().map_err(|_| bad())?.to_u128(),
    };
    Ok((addr, mask))
}

/// The mask with the top `n` of `width` bits set.
pub(crate) fn prefix_mask(n: u32, width: u32) -> u128 {
    let full = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    if n == 0 {
        0
    } else if n >= width {
        full
    } else {
        full & !(full >> n)
    }
}

/// If `mask` is a prefix of a `width`-bit field, its length.
pub(crate) fn prefix_len(mask: u128, width: u32) -> Option<u32> {
    let n = if width == 128 {
        mask.leading_ones()
    } else {
        (mask << (128 - width)).leading_ones().min(width)
    };
    (prefix_mask(n, width) == mask).then_some(n)
}

pub(crate) fn fmt_ipv4_masked(out: &mut String, v: u32, m: u32) {
    let _ = write!(out, "{}", Ipv4Addr::from(v));
    if m != u32::MAX {
        match prefix_len(m.into(), 32) {
            Some(n) => {
                let _ = write!(out, "/{n}");
            }
            None => {
                let _ = write!(out, "/{}", Ipv4Addr::from(m));
            }
        }
    }
}

pub(crate) fn fmt_ipv6_masked(out: &mut String, v: u128, m: u128) {
    let _ = write!(out, "{}", Ipv6Addr::from(v));
    if m != u128::MAX {
        match prefix_len(m, 128) {
            Some(n) => {
                let _ = write!(out, "/{n}");
            }
            None => {
                let _ = write!(out, "/{}", Ipv6Addr::from(m));
            }
        }
    }
}

pub(crate) fn fmt_mac_masked(out: &mut String, v: u128, m: u128) {
    let _ = write!(out, "{}", MacAddr::from_u128(v));
    if m != (1u128 << 48) - 1 {
        let _ = write!(out, "/{}", MacAddr::from_u128(m));
    }
}

/// C's `%#x`: `0` for zero, `0x...` otherwise.
pub(crate) fn hash_hex(v: u128) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// Finds `WORD=` or `WORDs=` (`action=`/`actions=`, `band=`/`bands=`) at a keyword boundary
/// (the start, or after a comma or white space): (the text before it, the text after `=`).
pub(crate) fn split_keyword<'a>(s: &'a str, word: &str) -> Option<(&'a str, &'a str)> {
    let mut from = 0;
    while let Some(i) = s[from..].find(word) {
        let at = from + i;
        let boundary = at == 0
            || s[..at]
                .chars()
                .next_back()
                .is_some_and(|c| matches!(c, ',' | ' ' | '\t' | '\r' | '\n'));
        let rest = &s[at + word.len()..];
        let rest = rest.strip_prefix('s').unwrap_or(rest);
        if boundary && let Some(v) = rest.strip_prefix('=') {
            return Some((&s[..at], v));
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        let kv = split_kv("a=1, b:2 c(x,y(z)),d , e=f(g,h),i").unwrap();
        assert_eq!(
            kv,
            vec![
                ("a", "1"),
                ("b", "2"),
                ("c", "x,y(z)"),
                ("d", ""),
                ("e", "f(g,h)"),
                ("i", "")
            ]
        );
        assert!(split_kv("c(x").is_err());
    }

    #[test]
    fn c_numbers() {
        assert_eq!(parse_c_uint("010"), Some(8));
        assert_eq!(parse_c_uint("0X10"), Some(16));
        assert_eq!(parse_c_uint("0"), Some(0));
        assert_eq!(parse_c_uint("-1"), Some(u64::MAX));
        assert_eq!(parse_c_uint("09"), None);
        assert_eq!(parse_c_uint("0x"), None);
        assert_eq!(parse_c_uint(""), None);
        assert_eq!(parse_c_uint("18446744073709551616"), None);
    }

    #[test]
    fn prefixes() {
        assert_eq!(prefix_mask(8, 32), 0xff00_0000);
        assert_eq!(prefix_len(0xff00_0000, 32), Some(8));
        assert_eq!(prefix_len(0xff00_ff00, 32), None);
        assert_eq!(prefix_len(0, 32), Some(0));
        assert_eq!(prefix_len(u128::MAX, 128), Some(128));
        assert_eq!(prefix_mask(128, 128), u128::MAX);
    }
}
