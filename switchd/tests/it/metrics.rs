//! Prometheus `/metrics`: the exposition parses (HELP/TYPE lines, metric and label syntax),
//! flows per table follow add-flow, other paths get 404 and other methods 405; with root,
//! traffic between two hosts moves the port counters and the cache-level counters.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::util::*;

/// Samples by `name{labels}` (labels as written).
type Samples = BTreeMap<String, f64>;

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

/// Checks `k="v",k2="v2"` (escapes \\ \" \n only); returns the pairs.
fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, r) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad labels {s}"));
        assert!(
            is_name(k) && !k.starts_with("__"),
            "bad label name {k:?} in {s}"
        );
        let mut v = String::new();
        let mut chars = r.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => v.push('\\'),
                    Some((_, '"')) => v.push('"'),
                    Some((_, 'n')) => v.push('\n'),
                    o => panic!("bad escape {o:?} in {s}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => v.push(c),
                None => panic!("unterminated label value in {s}"),
            }
        };
        out.push((k.to_string(), v));
        rest = &r[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else {
            assert!(rest.is_empty(), "junk after label in {s}");
        }
    }
    out
}

/// Parses a text exposition strictly enough to catch what Prometheus would reject.
fn parse_exposition(text: &str) -> Samples {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = Vec::new();
    let mut samples = Samples::new();
    assert!(text.ends_with('\n'), "no final newline");
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("# HELP ") {
            let (name, help) = r.split_once(' ').expect("HELP without text");
            assert!(is_name(name) && !help.is_empty(), "{line}");
            assert!(!helped.contains(&name.to_string()), "second HELP: {line}");
            helped.push(name.to_string());
            continue;
        }
        if let Some(r) = line.strip_prefix("# TYPE ") {
            let (name, kind) = r.split_once(' ').expect("TYPE without type");
            assert!(is_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "second TYPE: {line}"
            );
            if kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "counter not ending in _total: {line}"
                );
            }
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample without value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = match series.split_once('{') {
            Some((n, l)) => {
                let l = l.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                parse_labels(l);
                n
            }
            None => series,
        };
        assert!(is_name(name), "{line}");
        assert!(types.contains_key(name), "sample before its TYPE: {line}");
        assert!(
            samples.insert(series.to_string(), v).is_none(),
            "duplicate series: {line}"
        );
    }
    assert!(types.len() >= 10, "too few families: {types:?}");
    samples
}

/// GET /metrics: status 200, the right content type, and the parsed body.
pub(crate) fn scrape(ns: Option<&str>, port: u16) -> Samples {
    let r = http_in(
        ns,
        port,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
    );
    let (head, body) = r.split_once("\r\n\r\n").expect("no blank line after head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}", body.len())),
        "{head}"
    );
    parse_exposition(body)
}

pub(crate) fn sum(s: &Samples, prefix: &str, needle: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(needle))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn metrics_parse_and_follow_flows_and_http_errors() {
    let mport = free_port();
    let m = format!("127.0.0.1:{mport}");
    let sd = Switchd::start(&["--metrics", &m]);
    let s = scrape(None, mport);
    assert_eq!(s.get("fuxi_table_flows{table=\"0\"}"), Some(&0.0), "{s:?}");
    assert_eq!(
        s.get("fuxi_info{bridge=\"br0\",datapath_id=\"00000000000000aa\"}"),
        Some(&1.0),
        "{s:?}"
    );
    for level in ["emc", "megaflow", "slowpath"] {
        let k = format!("fuxi_cache_hits_total{{thread=\"0\",level=\"{level}\"}}");
        assert_eq!(s.get(&k), Some(&0.0), "{k} in {s:?}");
    }
    ofctl_ok(&["add-flow", &sd.target, "priority=1,in_port=1,actions=drop"]);
    ofctl_ok(&["add-flow", &sd.target, "priority=2,in_port=2,actions=drop"]);
    ofctl_ok(&["add-flow", &sd.target, "table=3,priority=2,actions=drop"]);
    let s = scrape(None, mport);
    assert_eq!(s.get("fuxi_table_flows{table=\"0\"}"), Some(&2.0), "{s:?}");
    assert_eq!(s.get("fuxi_table_flows{table=\"3\"}"), Some(&1.0), "{s:?}");
    // Errors: other paths, other methods, garbage.
    let r = http_in(None, mport, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 404 Not Found\r\n"), "{r}");
    let r = http_in(None, mport, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
    assert!(r.contains("Allow: GET, HEAD\r\n"), "{r}");
    let r = http_in(None, mport, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\n"),
        "{r}"
    );
    let r = http_in(None, mport, "hello\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    drop(sd);
}

#[test]
fn metrics_count_traffic_per_port_and_cache_level() {
    if !root_or_skip() {
        return;
    }
    let topo = Topo::with_prefix("fxsm", "mx", 2);
    let ns = Some(topo.sw.as_str());
    let mport = 9653;
    let m = format!("127.0.0.1:{mport}");
    // Every packet through the datapath thread, so that each is counted at a cache level
    // (the kernel flow table's counts are the offload test's).
    let sd = Switchd::on_ports(&topo, &["--metrics", &m, "--offload", "none"]);
    let t = sd.target.as_str();
    forward_1_2(ns, t);
    let before = scrape(ns, mport);
    assert!(
        topo.ping_eventually(1, 2),
        "ping through forwarding flows failed"
    );
    sh(&format!(
        "ip netns exec {} ping -q -c 5 -i 0.05 -W 1 10.9.0.2 >/dev/null",
        topo.hosts[0]
    ));
    // Datapath threads copy their cache counters every 100 ms.
    std::thread::sleep(Duration::from_millis(400));
    let after = scrape(ns, mport);
    let d = |k: &str| after.get(k).copied().unwrap_or(-1.0) - before.get(k).copied().unwrap_or(0.0);
    let s1 = "{port=\"s1\",ofport=\"1\"}";
    let s2 = "{port=\"s2\",ofport=\"2\"}";
    assert!(
        d(&format!("fuxi_port_rx_packets_total{s1}")) >= 6.0,
        "{after:?}"
    );
    assert!(
        d(&format!("fuxi_port_tx_packets_total{s2}")) >= 6.0,
        "{after:?}"
    );
    assert!(
        d(&format!("fuxi_port_rx_packets_total{s2}")) >= 6.0,
        "{after:?}"
    );
    assert!(
        d(&format!("fuxi_port_rx_bytes_total{s1}")) >= 6.0 * 98.0,
        "{after:?}"
    );
    // The kernel marks a new veth operationally up up to a second after its carrier (link
    // watch), and the switch reports what the kernel says.
    let up = format!("fuxi_port_up{s1}");
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while scrape(ns, mport).get(&up) != Some(&1.0) {
        assert!(std::time::Instant::now() < deadline, "{up} never 1");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(after.contains_key(&format!("fuxi_port_rx_dropped_total{s1}")));
    assert!(after.contains_key(&format!("fuxi_port_tx_dropped_total{s2}")));
    let hits =
        |s: &Samples, level: &str| sum(s, "fuxi_cache_hits_total{", &format!("level=\"{level}\""));
    let upcalls = hits(&after, "slowpath") - hits(&before, "slowpath");
    let cached = hits(&after, "emc") + hits(&after, "megaflow")
        - hits(&before, "emc")
        - hits(&before, "megaflow");
    assert!(upcalls >= 1.0, "no upcall counted: {after:?}");
    assert!(cached >= 6.0, "cache hits did not move: {after:?}");
    assert!(
        d("fuxi_table_lookups_total{table=\"0\"}") >= 1.0,
        "{after:?}"
    );
    assert_eq!(after.get("fuxi_table_flows{table=\"0\"}"), Some(&2.0));
    drop(sd);
}
