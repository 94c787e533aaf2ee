//! ovs-ofctl -O OpenFlow13 against fuxi-switchd: every verb the issue lists, with and
//! without `--no-names` (the name lookup asks for TABLE_FEATURES and PORT_DESC first).

use crate::util::*;

#[test]
fn add_flow_with_and_without_names_then_dump_and_delete() {
    let sd = Switchd::start(&[]);
    let t = sd.target.as_str();
    ofctl_ok(&["add-flow", t, "priority=10,in_port=1,actions=output:2"]);
    ofctl_ok(&[
        "--no-names",
        "add-flow",
        t,
        "table=0,priority=20,ip,nw_dst=10.0.0.1,actions=set_field:10.0.0.9->nw_dst,output:3",
    ]);
    ofctl_ok(&["add-flow", t, "table=1,cookie=0x42,priority=5,actions=drop"]);
    let dump = ofctl_ok(&["dump-flows", t]);
    let lines = flow_lines(&dump);
    assert_eq!(lines.len(), 3, "{dump}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("priority=10,in_port=1 actions=output:2")),
        "{dump}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("priority=20,ip,nw_dst=10.0.0.1")
                && l.contains("actions=set_field:10.0.0.9->ip_dst,output:3")),
        "{dump}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("cookie=0x42, table=1")),
        "{dump}"
    );
    // A filtered dump.
    let d1 = ofctl_ok(&["dump-flows", t, "table=1"]);
    assert_eq!(flow_lines(&d1).len(), 1, "{d1}");
    // Aggregate.
    let agg = ofctl_ok(&["dump-aggregate", t]);
    assert!(agg.contains("flow_count=3"), "{agg}");
    // Delete with and without names.
    ofctl_ok(&["del-flows", t, "in_port=1"]);
    assert_eq!(flow_lines(&ofctl_ok(&["dump-flows", t])).len(), 2);
    ofctl_ok(&["--no-names", "del-flows", t, "table=1"]);
    assert_eq!(flow_lines(&ofctl_ok(&["dump-flows", t])).len(), 1);
    ofctl_ok(&["del-flows", t]);
    assert_eq!(flow_lines(&ofctl_ok(&["dump-flows", t])).len(), 0);
}

#[test]
fn bad_flow_gets_an_error_and_the_connection_keeps_working() {
    let sd = Switchd::start(&[]);
    let t = sd.target.as_str();
    // goto_table backwards: OFPBIC_BAD_TABLE_ID.
    let o = ofctl_in(None, &["add-flow", t, "table=3,actions=goto_table:1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("OFPBIC_BAD_TABLE_ID"), "{err}");
    // Group that does not exist: OFPBAC_BAD_OUT_GROUP.
    let o = ofctl_in(None, &["add-flow", t, "actions=group:77"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("OFPBAC_BAD_OUT_GROUP"), "{err}");
    ofctl_ok(&["add-flow", t, "actions=drop"]);
    assert_eq!(flow_lines(&ofctl_ok(&["dump-flows", t])).len(), 1);
}

#[test]
fn ten_thousand_flows_from_a_file() {
    let sd = Switchd::start(&[]);
    let t = sd.target.as_str();
    let dir = std::env::temp_dir().join(format!("fxsw-flows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("flows.txt");
    let mut text = String::new();
    for i in 0..10_000u32 {
        text.push_str(&format!(
            "table=0,priority={},ip,nw_src=10.{}.{}.{},actions=output:{}\n",
            100 + i % 7,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            1 + i % 4
        ));
    }
    std::fs::write(&file, text).unwrap();
    let started = std::time::Instant::now();
    ofctl_ok(&["add-flows", t, file.to_str().unwrap()]);
    let took = started.elapsed();
    let dump = ofctl_ok(&["dump-flows", t]);
    let lines = flow_lines(&dump);
    assert_eq!(lines.len(), 10_000);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("nw_src=10.0.39.15 actions=output:4"))
    );
    let tables = ofctl_ok(&["dump-tables", t]);
    assert!(tables.contains("active=10000"), "{tables}");
    eprintln!("add-flows of 10000 flows took {took:?}");
    // The same through a bundle replaces them atomically.
    ofctl_ok(&["del-flows", t]);
    ofctl_ok(&["--bundle", "add-flows", t, file.to_str().unwrap()]);
    assert_eq!(flow_lines(&ofctl_ok(&["dump-flows", t])).len(), 10_000);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bundle_is_all_or_nothing() {
    let sd = Switchd::start(&[]);
    let t = sd.target.as_str();
    let dir = std::env::temp_dir().join(format!("fxsw-bundle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.txt");
    std::fs::write(
        &good,
        "priority=1,in_port=1,actions=output:2\npriority=1,in_port=2,actions=output:1\n",
    )
    .unwrap();
    ofctl_ok(&["--bundle", "add-flows", t, good.to_str().unwrap()]);
    assert_eq!(flow_lines(&ofctl_ok(&["dump-flows", t])).len(), 2);
    // Second line refers to a missing group: the whole bundle is refused.
    let bad = dir.join("bad.txt");
    std::fs::write(
        &bad,
        "priority=2,in_port=3,actions=output:4\npriority=2,in_port=4,actions=group:9\n",
    )
    .unwrap();
    let o = ofctl_in(None, &["--bundle", "add-flows", t, bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let dump = ofctl_ok(&["dump-flows", t]);
    assert_eq!(
        flow_lines(&dump).len(),
        2,
        "half a failed bundle applied: {dump}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn groups_meters_ports_tables_desc() {
    let sd = Switchd::start(&[]);
    let t = sd.target.as_str();
    ofctl_ok(&[
        "add-group",
        t,
        "group_id=1,type=select,bucket=weight:10,output:1,bucket=weight:20,output:2",
    ]);
    ofctl_ok(&[
        "add-group",
        t,
        "group_id=2,type=all,bucket=output:1,bucket=output:3",
    ]);
    let g = ofctl_ok(&["dump-groups", t]);
    assert!(
        g.contains("group_id=1,type=select,bucket=weight:10,actions=output:1,bucket=weight:20,actions=output:2"),
        "{g}"
    );
    assert!(g.contains("group_id=2,type=all"), "{g}");
    ofctl_ok(&["add-flow", t, "priority=3,actions=group:1"]);
    let gs = ofctl_ok(&["dump-group-stats", t]);
    assert!(gs.contains("group_id=1,duration="), "{gs}");
    assert!(gs.contains("ref_count=1"), "{gs}");
    ofctl_ok(&["del-groups", t, "group_id=2"]);
    assert!(!ofctl_ok(&["dump-groups", t]).contains("group_id=2"));

    ofctl_ok(&[
        "add-meter",
        t,
        "meter=1,pktps,burst,stats,band=type=drop,rate=100,burst_size=10",
    ]);
    let m = ofctl_ok(&["dump-meters", t]);
    assert!(m.contains("meter=1 pktps burst stats bands="), "{m}");
    assert!(m.contains("type=drop rate=100 burst_size=10"), "{m}");
    ofctl_ok(&["add-flow", t, "priority=4,ip,actions=meter:1,output:2"]);
    let ms = ofctl_ok(&["meter-stats", t]);
    assert!(ms.contains("meter:1 flow_count:1"), "{ms}");
    let mf = ofctl_ok(&["meter-features", t]);
    assert!(mf.contains("max_meter:65536"), "{mf}");

    let ports = ofctl_ok(&["dump-ports", t]);
    assert!(ports.contains("OFPST_PORT reply"), "{ports}");
    let tables = ofctl_ok(&["dump-tables", t]);
    assert!(
        tables.contains("table 0:") || tables.contains("  0:"),
        "{tables}"
    );
    assert!(tables.contains("active=2"), "{tables}");
    let desc = ofctl_ok(&["dump-desc", t]);
    assert!(desc.contains("Manufacturer: Fuxi"), "{desc}");
    let show = ofctl_ok(&["show", t]);
    assert!(show.contains("dpid:00000000000000aa"), "{show}");
    let tf = ofctl_ok(&["dump-table-features", t]);
    assert!(tf.contains("table 254"), "{}", &tf[..tf.len().min(2000)]);
}

#[test]
fn hello_with_another_version_is_refused() {
    use std::io::{Read, Write};
    let sd = Switchd::start(&[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", sd.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    // OpenFlow 1.0 HELLO, no bitmap.
    s.write_all(&[1, 0, 0, 8, 0, 0, 0, 7]).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    // Our HELLO (version 4) first, then ERROR HELLO_FAILED/INCOMPATIBLE in version 1.
    assert_eq!(&got[..2], &[4, 0]);
    let err = &got[usize::from(u16::from_be_bytes([got[2], got[3]]))..];
    assert_eq!((err[0], err[1]), (1, 1), "{got:?}");
    assert_eq!(&err[8..12], &[0, 0, 0, 0]); // OFPET_HELLO_FAILED / OFPHFC_INCOMPATIBLE
}

#[test]
fn echo_barrier_role_and_bad_messages_over_raw_tcp() {
    use fuxi_openflow::{Framer, Message};
    use std::io::{Read, Write};
    let sd = Switchd::start(&[]);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", sd.port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let hello = Message::Hello(fuxi_openflow::msg::Hello::ofp13()).to_vec(1);
    s.write_all(&hello).unwrap();
    s.write_all(&Message::EchoRequest(b"hi".to_vec()).to_vec(2))
        .unwrap();
    // Unknown message type 99: BAD_REQUEST/BAD_TYPE, connection stays up.
    s.write_all(&[4, 99, 0, 8, 0, 0, 0, 3]).unwrap();
    let role = fuxi_openflow::msg::Role {
        role: fuxi_openflow::msg::ControllerRole::Master,
        generation_id: 5,
    };
    s.write_all(&Message::RoleRequest(role).to_vec(4)).unwrap();
    s.write_all(&Message::BarrierRequest.to_vec(5)).unwrap();
    let mut f = Framer::new();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|(x, _)| *x == 5) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed");
        f.push(&buf[..n]);
        while let Ok(Some(fr)) = f.next_frame() {
            let (h, m) = Message::decode(&fr).unwrap();
            seen.push((h.xid, m));
        }
    }
    assert!(matches!(&seen[0].1, Message::Hello(_)));
    assert!(seen.contains(&(2, Message::EchoReply(b"hi".to_vec()))));
    let err = seen.iter().find(|(x, _)| *x == 3).expect("error for xid 3");
    match &err.1 {
        Message::Error(e) => assert_eq!(e.code, fuxi_openflow::ErrorCode::BAD_REQUEST_BAD_TYPE),
        m => panic!("{m:?}"),
    }
    assert!(seen.contains(&(4, Message::RoleReply(role))));
    assert!(seen.contains(&(5, Message::BarrierReply)));
    // A stale generation id is refused.
    let stale = fuxi_openflow::msg::Role {
        role: fuxi_openflow::msg::ControllerRole::Master,
        generation_id: 4,
    };
    s.write_all(&Message::RoleRequest(stale).to_vec(6)).unwrap();
    s.write_all(&Message::BarrierRequest.to_vec(7)).unwrap();
    let mut seen = Vec::new();
    while !seen.iter().any(|(x, _)| *x == 7) {
        let n = s.read(&mut buf).unwrap();
        f.push(&buf[..n]);
        while let Ok(Some(fr)) = f.next_frame() {
            let (h, m) = Message::decode(&fr).unwrap();
            seen.push((h.xid, m));
        }
    }
    match &seen.iter().find(|(x, _)| *x == 6).unwrap().1 {
        Message::Error(e) => assert_eq!(e.code, fuxi_openflow::ErrorCode::ROLE_REQUEST_STALE),
        m => panic!("{m:?}"),
    }
}

/// Reads messages from `s` until `pred` holds for one, or 10 s pass.
fn wait_for(
    s: &mut std::net::TcpStream,
    f: &mut fuxi_openflow::Framer,
    pred: impl Fn(&fuxi_openflow::Message) -> bool,
) -> Option<fuxi_openflow::Message> {
    use std::io::Read;
    s.set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut buf = [0u8; 65536];
    while std::time::Instant::now() < deadline {
        while let Ok(Some(fr)) = f.next_frame() {
            if let Ok((_, m)) = fuxi_openflow::Message::decode(&fr)
                && pred(&m)
            {
                return Some(m);
            }
        }
        match s.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => f.push(&buf[..n]),
            Err(_) => {}
        }
    }
    None
}

#[test]
fn flow_removed_reaches_the_controller_on_timeout_and_delete() {
    use fuxi_openflow::{Framer, Message};
    use std::io::Write;
    let sd = Switchd::start(&[]);
    let t = sd.target.as_str();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", sd.port)).unwrap();
    s.write_all(&Message::Hello(fuxi_openflow::msg::Hello::ofp13()).to_vec(1))
        .unwrap();
    let mut f = Framer::new();
    assert!(wait_for(&mut s, &mut f, |m| matches!(m, Message::Hello(_))).is_some());
    ofctl_ok(&[
        "add-flow",
        t,
        "priority=3,hard_timeout=1,send_flow_rem,in_port=9,actions=drop",
    ]);
    let m =
        wait_for(&mut s, &mut f, |m| matches!(m, Message::FlowRemoved(_))).expect("flow removed");
    match m {
        Message::FlowRemoved(fr) => {
            assert_eq!((fr.priority, fr.reason, fr.hard_timeout), (3, 1, 1)); // OFPRR_HARD_TIMEOUT
        }
        m => panic!("{m:?}"),
    }
    assert_eq!(flow_lines(&ofctl_ok(&["dump-flows", t])).len(), 0);
    ofctl_ok(&[
        "add-flow",
        t,
        "cookie=0x5,priority=4,send_flow_rem,in_port=8,actions=drop",
    ]);
    ofctl_ok(&["del-flows", t, "in_port=8"]);
    let m =
        wait_for(&mut s, &mut f, |m| matches!(m, Message::FlowRemoved(_))).expect("flow removed");
    match m {
        Message::FlowRemoved(fr) => assert_eq!((fr.cookie, fr.reason), (5, 2)), // OFPRR_DELETE
        m => panic!("{m:?}"),
    }
}

#[test]
fn active_controller_connection_reconnects() {
    use fuxi_openflow::{Framer, Message};
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ctl = format!("tcp:{}", l.local_addr().unwrap());
    let _sd = Switchd::start(&["--controller", &ctl]);
    for round in 0..2 {
        let (mut s, _) = l.accept().unwrap();
        s.write_all(&Message::Hello(fuxi_openflow::msg::Hello::ofp13()).to_vec(1))
            .unwrap();
        s.write_all(&Message::FeaturesRequest.to_vec(2)).unwrap();
        let mut f = Framer::new();
        let m = wait_for(&mut s, &mut f, |m| matches!(m, Message::FeaturesReply(_)));
        match m {
            Some(Message::FeaturesReply(fr)) => assert_eq!(fr.datapath_id, 0xaa, "round {round}"),
            m => panic!("round {round}: {m:?}"),
        }
        drop(s); // the switch must come back
    }
}

/// A TABLE_FEATURES request for table `t` with `n` match-field ids (4 bytes each).
fn table_features(t: u8, n: usize) -> fuxi_openflow::msg::table_features::TableFeatures {
    use fuxi_openflow::msg::table_features::{OxmId, TableFeatureProp, TableFeatures};
    TableFeatures {
        table_id: t,
        name: format!("t{t}"),
        metadata_match: 0,
        metadata_write: 0,
        config: 0,
        max_entries: 10,
        properties: vec![TableFeatureProp::Match(
            (0..n)
                .map(|_| OxmId {
                    header: 0x8000_0004, // OXM_OF_IN_PORT
                    experimenter: None,
                })
                .collect(),
        )],
    }
}

fn tf_request(
    more: bool,
    tables: Vec<fuxi_openflow::msg::table_features::TableFeatures>,
) -> fuxi_openflow::Message {
    use fuxi_openflow::msg::{MultipartRequest, MultipartRequestBody};
    fuxi_openflow::Message::MultipartRequest(MultipartRequest {
        flags: u16::from(more), // OFPMPF_REQ_MORE
        body: MultipartRequestBody::TableFeatures(tables),
    })
}

/// Multipart requests split with REQ_MORE (hand-built, over raw TCP): nothing is answered
/// until the last part, then the request is handled once, as a whole; another request
/// coming in between, or too many bytes, gets MULTIPART_BUFFER_OVERFLOW; the connection
/// stays up throughout.
#[test]
fn multipart_request_parts_are_reassembled() {
    use fuxi_openflow::msg::{MultipartReplyBody as RB, MultipartRequest, MultipartRequestBody};
    use fuxi_openflow::{ErrorCode, Message};
    let sd = Switchd::start(&[]);
    let mut c = OfConn::connect(None, sd.port);
    let table_features_replies = |seen: &[(u32, Message)], xid: u32| -> Vec<u8> {
        seen.iter()
            .filter(|(x, _)| *x == xid)
            .flat_map(|(_, m)| match m {
                Message::MultipartReply(r) => match &r.body {
                    RB::TableFeatures(v) => v.iter().map(|t| t.table_id).collect::<Vec<u8>>(),
                    b => panic!("{b:?}"),
                },
                m => panic!("{m:?}"),
            })
            .collect()
    };

    // An empty TABLE_FEATURES request (a query) in two parts: one answer, after the last.
    c.send(30, &tf_request(true, vec![]));
    let seen = c.barrier(31);
    assert!(
        seen.iter().all(|(x, _)| *x != 30),
        "answered a first part: {seen:?}"
    );
    c.send(30, &tf_request(false, vec![]));
    let seen = c.barrier(32);
    let tables = table_features_replies(&seen, 30);
    assert_eq!(tables, (0..tables.len() as u8).collect::<Vec<_>>());
    assert!(tables.len() > 1, "{seen:?}");

    // A TABLE_FEATURES set in three parts: handled once, as a whole (this switch's tables
    // cannot be changed: one EPERM, for the last part).
    c.send(40, &tf_request(true, vec![table_features(0, 10)]));
    c.send(40, &tf_request(true, vec![table_features(1, 10)]));
    let seen = c.barrier(41);
    assert!(seen.iter().all(|(x, _)| *x != 40), "{seen:?}");
    c.send(40, &tf_request(false, vec![table_features(2, 10)]));
    let seen = c.barrier(42);
    let for_40: Vec<_> = seen.iter().filter(|(x, _)| *x == 40).collect();
    assert_eq!(for_40.len(), 1, "{seen:?}");
    assert_eq!(error_for(&seen, 40), Some(ErrorCode::TABLE_FEATURES_EPERM));

    // Another request in between: the collected one is refused, the new one answered.
    c.send(50, &tf_request(true, vec![]));
    let desc = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::Desc,
    });
    c.send(51, &desc);
    let seen = c.barrier(52);
    assert_eq!(
        error_for(&seen, 50),
        Some(ErrorCode::BAD_REQUEST_MULTIPART_BUFFER_OVERFLOW),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(x, m)| *x == 51 && matches!(m, Message::MultipartReply(_))),
        "{seen:?}"
    );

    // Parts of two types under one xid: BAD_MULTIPART when the last comes.
    c.send(55, &tf_request(true, vec![]));
    c.send(55, &desc);
    let seen = c.barrier(56);
    assert_eq!(
        error_for(&seen, 55),
        Some(ErrorCode::BAD_REQUEST_BAD_MULTIPART),
        "{seen:?}"
    );

    // More than 1 MiB of parts: one overflow error; the rest of that request is dropped.
    let big = tf_request(true, vec![table_features(0, 15_000)]); // ~60 KB
    let n = (1 << 20) / 60_000 + 2;
    for _ in 0..n {
        c.send(60, &big);
    }
    c.send(60, &tf_request(false, vec![table_features(1, 10)]));
    let seen = c.barrier(61);
    let for_60: Vec<_> = seen.iter().filter(|(x, _)| *x == 60).collect();
    assert_eq!(for_60.len(), 1, "{for_60:?}");
    assert_eq!(
        error_for(&seen, 60),
        Some(ErrorCode::BAD_REQUEST_MULTIPART_BUFFER_OVERFLOW)
    );

    // Still up, and a later split request works.
    c.send(70, &tf_request(true, vec![]));
    c.send(70, &tf_request(false, vec![]));
    let seen = c.barrier(71);
    assert_eq!(table_features_replies(&seen, 70).len(), tables.len());
}
