//! `fuxi-ofctl trace`: asks fuxi-switchd, through its management socket (JSON lines), what
//! its pipeline does with a packet, and prints the answer table by table, as
//! `ovs-appctl ofproto/trace` does. The JSON is tiny and fixed, so it is written and read
//! here by hand: a request object with two strings, and the reply's `ok`, `text`, `error`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// A JSON string literal for `s`.
pub fn json_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The value of the top-level string field `name` in the JSON object `obj`, unescaped
/// (None if absent or not a string). Only looks at top-level keys.
pub fn json_field(obj: &str, name: &str) -> Option<String> {
    let b = obj.as_bytes();
    let mut i = 0;
    let mut depth = 0i32;
    while i < b.len() {
        match b[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth -= 1,
            b'"' => {
                let (s, end) = read_string(obj, i)?;
                i = end;
                // A key at depth 1 followed by ':'.
                let rest = obj[i..].trim_start();
                if depth == 1 && rest.starts_with(':') {
                    let vstart = obj.len() - rest.len() + 1;
                    let v = obj[vstart..].trim_start();
                    let vpos = obj.len() - v.len();
                    if s == name {
                        return if v.starts_with('"') {
                            read_string(obj, vpos).map(|(s, _)| s)
                        } else {
                            let end = v.find([',', '}']).unwrap_or(v.len());
                            Some(v[..end].trim().to_string())
                        };
                    }
                    i = vpos;
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Reads the JSON string starting at byte `start` (a '"'); returns it and the index after.
fn read_string(s: &str, start: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut it = s[start + 1..].char_indices();
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Some((out, start + 1 + i + 1)),
            '\\' => {
                let (_, e) = it.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| it.next().map(|x| x.1)).collect();
                        let cp = u32::from_str_radix(&hex, 16).ok()?;
                        out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}

/// Asks the switch at management socket `path` to trace `flow`; returns the text to print.
pub fn trace(path: &Path, flow: &str, timeout: Duration) -> Result<String, String> {
    let mut s = UnixStream::connect(path).map_err(|e| {
        format!(
            "{}: cannot connect ({e}); is fuxi-switchd running?",
            path.display()
        )
    })?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let req = format!("{{\"cmd\":\"trace\",\"flow\":{}}}\n", json_string(flow));
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut line = String::new();
    BufReader::new(&s)
        .read_line(&mut line)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if line.is_empty() {
        return Err(format!(
            "{}: no answer (trace needs fuxi-switchd's management socket)",
            path.display()
        ));
    }
    if json_field(&line, "ok").as_deref() == Some("true") {
        json_field(&line, "text").ok_or_else(|| "reply without text".to_string())
    } else {
        Err(json_field(&line, "error").unwrap_or_else(|| line.trim().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_of_the_fields_we_use() {
        assert_eq!(json_string("a\"b\\c\n"), r#""a\"b\\c\n""#);
        let obj = r#"{"actions":["output:2"],"ok":true,"steps":[{"text":"inner"}],"text":"Flow: x\n 0. \"y\"\u0041"}"#;
        assert_eq!(json_field(obj, "ok").as_deref(), Some("true"));
        assert_eq!(
            json_field(obj, "text").as_deref(),
            Some("Flow: x\n 0. \"y\"A")
        );
        assert_eq!(json_field(obj, "error"), None);
        let err = r#"{"error":"bad flow `x`","ok":false}"#;
        assert_eq!(json_field(err, "ok").as_deref(), Some("false"));
        assert_eq!(json_field(err, "error").as_deref(), Some("bad flow `x`"));
    }
}
