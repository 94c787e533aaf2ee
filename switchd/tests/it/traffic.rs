//! Traffic through fuxi-switchd: hosts in network namespaces on veth pairs whose switch
//! ends live in a switch namespace where the daemon runs. Needs root.

use std::io::Write;
use std::time::{Duration, Instant};

use fuxi_openflow::Message;

use crate::util::*;

#[test]
fn forwarding_counters_and_a_drop_flow() {
    let Some((topo, sd)) = setup_switch("fw", 2) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    assert!(!topo.ping(1, 2), "ping passed with no flows");
    forward_1_2(ns, t);
    assert!(
        topo.ping_eventually(1, 2),
        "ping through forwarding flows failed"
    );
    assert!(topo.ping(2, 1));
    // Counters reach dump-flows (datapath threads sync them at least every 100 ms).
    std::thread::sleep(Duration::from_millis(300));
    let dump = ofctl_ok_in(ns, &["dump-flows", t]);
    assert!(packets_of(&dump, "in_port=1").unwrap_or(0) >= 2, "{dump}");
    assert!(packets_of(&dump, "in_port=2").unwrap_or(0) >= 2, "{dump}");
    let ports = ofctl_ok_in(ns, &["dump-ports", t, "1"]);
    assert!(!ports.contains("rx pkts=0,"), "{ports}");
    // A higher-priority drop for ICMP stops the ping; removing it restores it.
    ofctl_ok_in(ns, &["add-flow", t, "priority=20,icmp,actions=drop"]);
    assert!(!topo.ping(1, 2), "ping passed a drop flow");
    std::thread::sleep(Duration::from_millis(300));
    let dump = ofctl_ok_in(ns, &["dump-flows", t]);
    assert!(packets_of(&dump, "icmp").unwrap_or(0) >= 1, "{dump}");
    ofctl_ok_in(ns, &["--strict", "del-flows", t, "priority=20,icmp"]);
    assert!(topo.ping_eventually(1, 2));
    // mod-port: an administratively down port neither sends nor receives.
    ofctl_ok_in(ns, &["mod-port", t, "2", "down"]);
    let desc = ofctl_ok_in(ns, &["dump-ports-desc", t]);
    assert!(desc.contains("PORT_DOWN"), "{desc}");
    assert!(!topo.ping(1, 2), "ping passed a down port");
    ofctl_ok_in(ns, &["mod-port", t, "2", "up"]);
    assert!(topo.ping_eventually(1, 2));
}

#[test]
fn set_field_rewrites_the_destination() {
    let Some((topo, sd)) = setup_switch("sf", 2) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    // Host 1 believes 10.9.0.99 lives at host 2's MAC; the switch rewrites .99 <-> .2.
    sh(&format!(
        "ip -n {} neigh replace 10.9.0.99 lladdr 02:00:00:00:00:02 dev v1",
        topo.hosts[0]
    ));
    ofctl_ok_in(
        ns,
        &[
            "add-flow",
            t,
            "priority=10,in_port=1,ip,nw_dst=10.9.0.99,actions=set_field:10.9.0.2->ip_dst,output:2",
        ],
    );
    ofctl_ok_in(
        ns,
        &[
            "add-flow",
            t,
            "priority=10,in_port=2,ip,nw_src=10.9.0.2,actions=set_field:10.9.0.99->ip_src,output:1",
        ],
    );
    assert!(topo.ping_eventually(1, 99), "rewritten ping failed");
}

#[test]
fn push_vlan_is_seen_tagged_by_the_receiver() {
    let Some((topo, sd)) = setup_switch("vl", 2) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
    ofctl_ok_in(
        ns,
        &[
            "add-flow",
            t,
            "priority=10,in_port=1,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:2",
        ],
    );
    let dump = ofctl_ok_in(ns, &["dump-flows", t]);
    assert!(
        dump.contains("push_vlan:0x8100,set_field:4196->vlan_vid,output:2"),
        "{dump}"
    );
    // Capture on host 2 what arrives from the switch (the kernel shows the tag with -e).
    let cap = std::env::temp_dir().join(format!("fxsw-vlan-{}.txt", std::process::id()));
    let mut tcpdump = std::process::Command::new("ip")
        .args([
            "netns", "exec", h2, "timeout", "10", "tcpdump", "-l", "-c", "1", "-e", "-n",
        ])
        .args(["-i", "v2", "vlan 100 and icmp"])
        .stdout(std::fs::File::create(&cap).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..5 {
        let _ = sh_ok(&format!("ip netns exec {h1} ping -c 1 -W 1 10.9.0.2"));
        if tcpdump.try_wait().unwrap().is_some() {
            break;
        }
    }
    let _ = tcpdump.wait();
    let out = std::fs::read_to_string(&cap).unwrap_or_default();
    let _ = std::fs::remove_file(&cap);
    assert!(
        out.contains("vlan 100"),
        "no VLAN 100 frame seen on host 2: {out:?}"
    );
    assert!(out.contains("02:00:00:00:00:01"), "{out}");
    assert!(out.contains("10.9.0.1 > 10.9.0.2"), "{out}");
}

#[test]
fn packet_out_leaves_the_port() {
    let Some((topo, sd)) = setup_switch("po", 2) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    let before = ofctl_ok_in(ns, &["dump-ports", t, "2"]);
    assert!(before.contains("tx pkts=0,"), "{before}");
    // A broadcast ARP request frame.
    let pkt = "ffffffffffff020000000001080600010800060400010200000000010a090001\
               0000000000000a090002";
    ofctl_ok_in(
        ns,
        &[
            "packet-out",
            t,
            &format!("in_port=controller packet={pkt} actions=output:2"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let after = ofctl_ok_in(ns, &["dump-ports", t, "2"]);
        if after.contains("tx pkts=1,") {
            break;
        }
        assert!(Instant::now() < deadline, "{after}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Through the flow table (OFPP_TABLE): a flow for packets from the controller.
    ofctl_ok_in(
        ns,
        &[
            "add-flow",
            t,
            "priority=1,in_port=controller,actions=output:1",
        ],
    );
    ofctl_ok_in(
        ns,
        &[
            "packet-out",
            t,
            &format!("in_port=controller packet={pkt} actions=table"),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dump = ofctl_ok_in(ns, &["dump-flows", t]);
        let after = ofctl_ok_in(ns, &["dump-ports", t, "1"]);
        if after.contains("tx pkts=1,") && packets_of(&dump, "in_port=CONTROLLER") == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "{after}\n{dump}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn table_miss_to_controller_sends_packet_in() {
    let Some((topo, sd)) = setup_switch("pi", 2) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    ofctl_ok_in(ns, &["add-flow", t, "priority=0,actions=CONTROLLER:65535"]);
    let port = sd.port;
    let sw_ns = topo.sw.clone();
    // A controller connection inside the switch namespace.
    let ctl = watch_controller(sw_ns, port, "packet-in", |m| match m {
        Message::PacketIn(pi)
            if pi.reason == 0
                && pi
                    .match_
                    .get(fuxi_openflow::FieldId::InPort)
                    .map(|o| o.value)
                    == Some(1) =>
        {
            Some(pi.data)
        }
        _ => None,
    });
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let _ = topo.ping(1, 2);
        if ctl.is_finished() {
            break;
        }
    }
    let data = ctl.join().unwrap().expect("packet-in");
    // From host 1's MAC.
    assert_eq!(&data[6..12], &[2, 0, 0, 0, 0, 1]);
}

/// tx packets of OpenFlow port `port` as dump-ports prints them.
fn tx_pkts(ns: Option<&str>, t: &str, port: u32) -> u64 {
    let out = ofctl_ok_in(ns, &["dump-ports", t, &port.to_string()]);
    out.split("tx pkts=")
        .nth(1)
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no tx pkts in {out}"))
}

#[test]
fn link_down_sends_port_status_and_fails_over() {
    let Some((topo, sd)) = setup_switch("ff", 3) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    ofctl_ok_in(
        ns,
        &[
            "add-group",
            t,
            "group_id=1,type=fast_failover,bucket=watch_port:2,output:2,bucket=watch_port:3,output:3",
        ],
    );
    ofctl_ok_in(
        ns,
        &["add-flow", t, "priority=10,in_port=1,actions=group:1"],
    );
    let send = || {
        for _ in 0..3 {
            let _ = sh_ok(&format!(
                "ip netns exec {} ping -c 1 -W 1 -i 0.2 10.9.0.2",
                topo.hosts[0]
            ));
        }
    };
    let (a2, a3) = (tx_pkts(ns, t, 2), tx_pkts(ns, t, 3));
    send();
    let (b2, b3) = (tx_pkts(ns, t, 2), tx_pkts(ns, t, 3));
    assert!(
        b2 >= a2 + 3 && b3 == a3,
        "live bucket 1 not used: {a2},{a3} -> {b2},{b3}"
    );
    // A controller connection watches for PORT_STATUS while port 2's link goes down.
    let port = sd.port;
    let sw_ns = topo.sw.clone();
    let ctl = watch_controller(sw_ns, port, "port-status", |m| match m {
        Message::PortStatus(ps) if ps.desc.port_no == 2 => Some(ps.desc.state),
        _ => None,
    });
    std::thread::sleep(Duration::from_millis(500));
    sh(&format!("ip -n {} link set s2 down", topo.sw));
    let state = ctl.join().unwrap().expect("port status");
    assert_eq!(state & 1, 1, "port 2 not LINK_DOWN: state {state:#x}");
    let desc = ofctl_ok_in(ns, &["dump-ports-desc", t]);
    assert!(desc.contains("LINK_DOWN"), "{desc}");
    send();
    let (c2, c3) = (tx_pkts(ns, t, 2), tx_pkts(ns, t, 3));
    assert!(
        c3 >= b3 + 3 && c2 == b2,
        "did not fail over: {b2},{b3} -> {c2},{c3}"
    );
}

#[test]
fn ports_added_and_removed_at_runtime_through_the_management_socket() {
    use std::io::BufRead;
    if !root_or_skip() {
        return;
    }
    let topo = Topo::new("rt", 2);
    let dir = std::env::temp_dir().join(format!("fxsw-rt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("br0.mgmt");
    // Only port 1 at start.
    let sd = Switchd::start_in(
        Some(&topo.sw),
        &["--port", "s1=1", "--mgmt", sock.to_str().unwrap()],
    );
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    forward_1_2(ns, t);
    assert!(!topo.ping(1, 2), "ping passed without port 2");
    let ask = |req: &str| -> serde_json::Value {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(b"\n").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(&s).read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let r = ask(r#"{"cmd":"add-port","name":"s2","ofport":2}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert!(topo.ping_eventually(1, 2), "ping failed after add-port");
    let ports = ask(r#"{"cmd":"list-ports"}"#);
    let names: Vec<&str> = ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, vec!["s1", "s2"]);
    let desc = ofctl_ok_in(ns, &["dump-ports-desc", t]);
    assert!(desc.contains("2(s2)"), "{desc}");
    let r = ask(r#"{"cmd":"add-port","name":"s2"}"#);
    assert_eq!(r["ok"], false, "a port added twice: {r}");
    let r = ask(r#"{"cmd":"del-port","name":"s2"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert!(!topo.ping(1, 2), "ping passed after del-port");
    let desc = ofctl_ok_in(ns, &["dump-ports-desc", t]);
    assert!(!desc.contains("(s2)"), "{desc}");
    drop(sd);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn table_miss_reaches_ovs_ofctl_monitor() {
    let Some((topo, sd)) = setup_switch("mo", 2) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    ofctl_ok_in(ns, &["add-flow", t, "priority=0,actions=CONTROLLER:128"]);
    let run = std::env::temp_dir().join(format!("fxsw-mon-{}", std::process::id()));
    std::fs::create_dir_all(&run).unwrap();
    let out = run.join("monitor.txt");
    // ovs-ofctl keeps a control socket in OVS_RUNDIR; stdbuf: timeout's SIGTERM would
    // lose a block-buffered stdout.
    let mut mon = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.sw,
            "timeout",
            "8",
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
        ])
        .args(["monitor", t, "65534"])
        .env("OVS_RUNDIR", &run)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(run.join("monitor.err")).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let _ = sh_ok(&format!(
        "ip netns exec {} ping -c 2 -W 1 10.9.0.2",
        topo.hosts[0]
    ));
    let _ = mon.wait();
    let text = std::fs::read_to_string(&out).unwrap_or_default()
        + &std::fs::read_to_string(run.join("monitor.err")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&run);
    assert!(
        text.contains("OFPT_PACKET_IN (OF1.3)") && text.contains("in_port=1 (via no_match)"),
        "{text}"
    );
    assert!(text.contains("dl_src=02:00:00:00:00:01"), "{text}");
}

#[test]
fn select_group_spreads_flows_over_its_buckets() {
    let Some((topo, sd)) = setup_switch("sg", 3) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    ofctl_ok_in(
        ns,
        &[
            "add-group",
            t,
            "group_id=5,type=select,bucket=output:2,bucket=output:3",
        ],
    );
    ofctl_ok_in(
        ns,
        &["add-flow", t, "priority=10,in_port=1,ip,actions=group:5"],
    );
    let h1 = &topo.hosts[0];
    let (a2, a3) = (tx_pkts(ns, t, 2), tx_pkts(ns, t, 3));
    for i in 0..16 {
        let ip = format!("10.9.0.{}", 100 + i);
        sh(&format!(
            "ip -n {h1} neigh replace {ip} lladdr 02:00:00:00:00:02 dev v1"
        ));
        let _ = sh_ok(&format!("ip netns exec {h1} ping -c 1 -W 0.3 {ip}"));
    }
    let (b2, b3) = (tx_pkts(ns, t, 2), tx_pkts(ns, t, 3));
    assert_eq!(
        (b2 - a2) + (b3 - a3),
        16,
        "every packet leaves by exactly one bucket"
    );
    assert!(
        b2 > a2 && b3 > a3,
        "16 flows all took one bucket: {} / {}",
        b2 - a2,
        b3 - a3
    );
    std::thread::sleep(Duration::from_millis(300));
    let gs = ofctl_ok_in(ns, &["dump-group-stats", t]);
    assert!(gs.contains("packet_count=16"), "{gs}");
}

#[test]
fn always_poll_forwards_and_never_lets_its_thread_sleep() {
    if !root_or_skip() {
        return;
    }
    let topo = Topo::new("pm", 2);
    let ns = Some(topo.sw.as_str());
    let mport = 9654;
    let m = format!("127.0.0.1:{mport}");
    let key = "fuxi_datapath_sleeps_total{thread=\"0\"}";
    let mut slept = Vec::new();
    for mode in ["adaptive", "always"] {
        let sd = Switchd::on_ports(&topo, &["--poll-mode", mode, "--metrics", &m]);
        let t = sd.target.as_str();
        forward_1_2(ns, t);
        assert!(topo.ping_eventually(1, 2), "{mode}: no ping");
        // No traffic for 1 s: an adaptive thread sleeps, an always-polling one never does
        // (counters reach /metrics every 100 ms).
        let s0 = crate::metrics::scrape(ns, mport)[key];
        std::thread::sleep(Duration::from_secs(1));
        slept.push(crate::metrics::scrape(ns, mport)[key] - s0);
    }
    assert!(
        slept[0] > 0.0 && slept[1] == 0.0,
        "sleeps in 1 s idle: adaptive {}, always {}",
        slept[0],
        slept[1]
    );
}

/// `--rx-mode zc`: frames the ports lend are forwarded from where the kernel put them
/// (pings both ways, a TCP stream of GSO super-frames with offloads on), and a flow that
/// rewrites them still works (its packets are copied first).
#[test]
fn zc_rx_mode_forwards_lent_and_rewritten_packets() {
    if !root_or_skip() {
        return;
    }
    let topo = Topo::new("zc", 2);
    let ns = Some(topo.sw.as_str());
    let sd = Switchd::on_ports(&topo, &["--rx-mode", "zc"]);
    let t = sd.target.as_str();
    let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
    forward_1_2(ns, t);
    assert!(topo.ping_eventually(1, 2), "no ping through lent frames");
    assert!(topo.ping(2, 1));
    let mut srv = std::process::Command::new("ip")
        .args(["netns", "exec", h2, "iperf3", "-s", "-1", "-p", "5299"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", h1, "iperf3", "-c", "10.9.0.2", "-p", "5299",
        ])
        .args(["-n", "200M", "-J"])
        .output()
        .unwrap();
    let _ = srv.wait();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "iperf3: {json}");
    let received: f64 = json
        .split("\"sum_received\":")
        .nth(1)
        .and_then(|s| s.split("\"bytes\":").nth(1))
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(received >= 200e6, "received {received} bytes: {json}");
    // Super-frames went through whole: far fewer packets than 1448-byte segments.
    let ports = ofctl_ok_in(ns, &["dump-ports", t, "2"]);
    let tx: u64 = ports
        .split("tx pkts=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    assert!(tx < 200_000_000 / 1448 / 2, "{ports}");
    // A rewriting flow in front: its packets are copies, rewritten.
    sh(&format!(
        "ip -n {h1} neigh replace 10.9.0.99 lladdr 02:00:00:00:00:02 dev v1"
    ));
    ofctl_ok_in(
        ns,
        &[
            "add-flow",
            t,
            "priority=20,in_port=1,ip,nw_dst=10.9.0.99,actions=set_field:10.9.0.2->ip_dst,output:2",
        ],
    );
    ofctl_ok_in(
        ns,
        &[
            "add-flow",
            t,
            "priority=20,in_port=2,ip,nw_src=10.9.0.2,nw_dst=10.9.0.1,icmp,actions=set_field:10.9.0.99->ip_src,output:1",
        ],
    );
    assert!(topo.ping_eventually(1, 99), "rewritten ping failed");
}
