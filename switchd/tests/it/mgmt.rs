//! The management socket: JSON lines (show, trace, errors) and OpenFlow on the same socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use crate::util::*;

fn ask(path: &std::path::Path, req: &str) -> serde_json::Value {
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
