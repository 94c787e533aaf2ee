//! The management socket: JSON lines (show, trace, errors) and OpenFlow on the same socket;
//! also daemon-level settings checked from outside (CPU pinning of datapath threads).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use crate::util::*;

/// Sends one JSON request line to the management socket at `path`; returns the reply.
pub fn ask(path: &std::path::Path, req: &str) -> serde_json::Value {
    let mut s = UnixStream::connect(path).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap()
}

#[test]
fn json_show_trace_and_openflow_on_one_socket() {
    let dir = std::env::temp_dir().join(format!("fxsw-mgmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("br7.mgmt");
    let sd = Switchd::start(&["--bridge", "br7", "--mgmt", sock.to_str().unwrap()]);
    let unix = format!("unix:{}", sock.display());
    // OpenFlow over the management socket, as Open vSwitch's BR.mgmt.
    ofctl_ok(&[
        "add-flow",
        &unix,
        "priority=10,in_port=1,actions=goto_table:1",
    ]);
    ofctl_ok(&[
        "add-flow",
        &sd.target,
        "table=1,priority=7,cookie=0x99,ip,nw_dst=10.0.0.2,actions=set_field:10.0.0.3->ip_dst,output:3",
    ]);
    let show = ask(&sock, r#"{"cmd":"show"}"#);
    assert_eq!(show["ok"], true, "{show}");
    assert_eq!(show["bridge"], "br7");
    assert_eq!(show["datapath_id"], "00000000000000aa");
    assert_eq!(show["tables"][1]["flows"], 1, "{show}");
    let tr = ask(
        &sock,
        r#"{"cmd":"trace","flow":"in_port=1,tcp,nw_dst=10.0.0.2,tp_dst=80"}"#,
    );
    assert_eq!(tr["ok"], true, "{tr}");
    assert_eq!(tr["steps"][0]["table"], 0);
    assert_eq!(tr["steps"][1]["priority"], 7);
    assert_eq!(tr["steps"][1]["cookie"], 0x99);
    let text = tr["text"].as_str().unwrap();
    assert!(
        text.contains("1. ip,nw_dst=10.0.0.2, priority 7, cookie 0x99"),
        "{text}"
    );
    assert!(
        text.contains("Datapath actions: set_field:0xa000003->Ipv4Dst,output:3"),
        "{text}"
    );
    let miss = ask(&sock, r#"{"cmd":"trace","flow":"in_port=5"}"#);
    assert_eq!(miss["actions"].as_array().map(Vec::len), Some(0), "{miss}");
    assert!(
        miss["text"].as_str().unwrap().contains("No match"),
        "{miss}"
    );
    let bad = ask(&sock, r#"{"cmd":"nope"}"#);
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"].as_str().unwrap().contains("unknown cmd"),
        "{bad}"
    );
    let bad = ask(&sock, "not json");
    assert_eq!(bad["ok"], false);
    drop(sd);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--threads 2 --cpus 1,0`: datapath thread i runs only on CPU cpus[i] (read back from
/// /proc); a CPU the process may not use is refused at startup, naming the key.
#[test]
fn datapath_threads_are_pinned_to_the_configured_cpus() {
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpus = if ncpu >= 2 { "1,0" } else { "0" };
    let sd = Switchd::start(&["--threads", "2", "--cpus", cpus]);
    let want: Vec<&str> = cpus.split(',').collect();
    // A thread pins itself first thing; give a just-spawned one a moment.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut seen = 0;
    for e in std::fs::read_dir(format!("/proc/{}/task", sd.pid())).unwrap() {
        let dir = e.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let Some(i) = comm.trim().strip_prefix("fuxi-dp") else {
            continue;
        };
        let i: usize = i.parse().unwrap();
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        assert_eq!(list, want[i % want.len()], "thread fuxi-dp{i}");
        seen += 1;
    }
    assert_eq!(seen, 2, "datapath threads not found");
    drop(sd);
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fuxi-switchd"))
        .args(["--listen", "none", "--mgmt", "", "--cpus", "1000"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("key `cpus[0]`"), "{err}");
}
