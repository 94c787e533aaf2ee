//! AF_XDP ports (`--port NAME=N:afxdp[:MODE]`, cargo feature `afxdp`): hosts in network
//! namespaces on veth pairs whose switch ends are AF_XDP sockets. Needs root.
//!
//! What is proved: libxdp's XDP program is attached while the switch runs and removed on a
//! clean shutdown; ping passes through output flows and is dropped by a drop flow, with
//! the port and flow counters to show it; in generic (SKB) mode, full-size frames and a
//! TCP transfer pass when the senders do their own checksums (`ethtool -K v tx off`, the
//! documented requirement for AF_XDP on veth); an afxdp port added over the management
//! socket forwards, and del-port takes its XDP program off the interface.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn setup(tag: &str, mode: Option<&str>) -> Option<(Topo, Switchd)> {
    if !root_or_skip() {
        return None;
    }
    let topo = Topo::new(tag, 2);
    let suffix = mode.map(|m| format!(":{m}")).unwrap_or_default();
    let ports: Vec<String> = (1..=2)
        .flat_map(|i| ["--port".into(), format!("s{i}={i}:afxdp{suffix}")])
        .collect();
    let args: Vec<&str> = ports.iter().map(String::as_str).collect();
    let sd = Switchd::start_in(Some(&topo.sw), &args);
    Some((topo, sd))
}

/// (rx packets, tx packets) of `port` from `ovs-ofctl dump-ports`.
fn port_counts(ns: &str, target: &str, port: u32) -> (u64, u64) {
    let out = ofctl_ok_in(Some(ns), &["dump-ports", target, &port.to_string()]);
    let num = |key: &str| -> u64 {
        out.split(key)
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` in {out}"))
    };
    (num("rx pkts="), num("tx pkts="))
}

/// The `ip link` line of the switch-side veth `dev`, with its XDP attachment if any.
fn link(ns: &str, dev: &str) -> String {
    let o = Command::new("ip")
        .args(["-n", ns, "-d", "link", "show", dev])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn afxdp_ports_forward_and_drop_with_counters() {
    let Some((topo, sd)) = setup("xd", None) else {
        return;
    };
    let (ns, t) = (topo.sw.as_str(), sd.target.as_str());
    for dev in ["s1", "s2"] {
        let l = link(ns, dev);
        assert!(l.contains("prog/xdp"), "no XDP program on {dev}: {l}");
    }
    assert!(!topo.ping(1, 2), "ping passed with no flows");
    forward_1_2(Some(ns), t);
    assert!(
        topo.ping_eventually(1, 2),
        "ping through output flows failed"
    );
    assert!(topo.ping(2, 1));
    let pings = 5;
    let ok = sh_ok(&format!(
        "ip netns exec {} ping -c {pings} -i 0.05 -W 1 10.9.0.2",
        topo.hosts[0]
    ));
    assert!(ok, "a burst of pings lost packets");
    std::thread::sleep(Duration::from_millis(300));
    let (rx1, tx1) = port_counts(ns, t, 1);
    let (rx2, tx2) = port_counts(ns, t, 2);
    // Every echo request entered on 1 and left on 2; every reply the other way.
    assert!(
        rx1 >= pings + 2 && tx2 >= pings + 2,
        "port 1 rx {rx1}, port 2 tx {tx2}"
    );
    assert!(
        rx2 >= pings + 2 && tx1 >= pings + 2,
        "port 2 rx {rx2}, port 1 tx {tx1}"
    );
    let dump = ofctl_ok_in(Some(ns), &["dump-flows", t]);
    assert!(
        packets_of(&dump, "in_port=1").unwrap_or(0) >= pings,
        "{dump}"
    );

    // A drop flow for ICMP: requests still arrive on port 1, nothing leaves on port 2.
    ofctl_ok_in(Some(ns), &["add-flow", t, "priority=20,icmp,actions=drop"]);
    assert!(!topo.ping(1, 2), "ping passed a drop flow");
    assert!(!topo.ping(1, 2), "ping passed a drop flow");
    std::thread::sleep(Duration::from_millis(300));
    let (rx1d, _) = port_counts(ns, t, 1);
    let (_, tx2d) = port_counts(ns, t, 2);
    assert!(
        rx1d >= rx1 + 2,
        "dropped pings were not received: {rx1} -> {rx1d}"
    );
    assert_eq!(tx2d, tx2, "port 2 sent something while ICMP was dropped");
    let dump = ofctl_ok_in(Some(ns), &["dump-flows", t]);
    assert!(packets_of(&dump, "icmp").unwrap_or(0) >= 2, "{dump}");
    ofctl_ok_in(Some(ns), &["--strict", "del-flows", t, "priority=20,icmp"]);
    assert!(topo.ping_eventually(1, 2), "ping did not come back");

    // A clean shutdown takes libxdp's program off the interfaces.
    sh(&format!("kill -TERM {}", sd.pid()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while link(ns, "s1").contains("prog/xdp") || link(ns, "s2").contains("prog/xdp") {
        assert!(
            Instant::now() < deadline,
            "XDP program left after SIGTERM: {}",
            link(ns, "s1")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn afxdp_generic_mode_carries_full_frames_and_tcp() {
    let Some((topo, sd)) = setup("xg", Some("generic")) else {
        return;
    };
    let (ns, t) = (topo.sw.as_str(), sd.target.as_str());
    let l = link(ns, "s1");
    assert!(l.contains("xdpgeneric"), "not in generic mode: {l}");
    forward_1_2(Some(ns), t);
    assert!(
        topo.ping_eventually(1, 2),
        "ping through output flows failed"
    );
    // Frames of 1514 bytes (ICMP checksums are done in software: offloads do not matter).
    assert!(
        sh_ok(&format!(
            "ip netns exec {} ping -c 3 -i 0.05 -W 1 -s 1472 -M do 10.9.0.2",
            topo.hosts[0]
        )),
        "full-size pings failed"
    );
    // TCP: the senders must checksum in software (no CHECKSUM_PARTIAL across AF_XDP).
    for (i, h) in topo.hosts.iter().enumerate() {
        sh(&format!(
            "ip netns exec {h} ethtool -K v{} tx off >/dev/null",
            i + 1
        ));
    }
    let port = free_port();
    let mut server = Command::new("ip")
        .args(["netns", "exec", &topo.hosts[1], "iperf3", "-s", "-1", "-p"])
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start iperf3 -s");
    std::thread::sleep(Duration::from_millis(300));
    let out = Command::new("ip")
        .args(["netns", "exec", &topo.hosts[0], "timeout", "20"])
        .args(["iperf3", "-c", "10.9.0.2", "-t", "1", "-J", "-p"])
        .arg(port.to_string())
        .output()
        .expect("run iperf3 -c");
    let _ = server.kill();
    let _ = server.wait();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let bytes = v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(
        bytes > 1_000_000,
        "TCP through AF_XDP ports moved {bytes} bytes: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::thread::sleep(Duration::from_millis(300));
    let (rx1, _) = port_counts(ns, t, 1);
    let (_, tx2) = port_counts(ns, t, 2);
    assert!(rx1 > 500 && tx2 > 500, "port 1 rx {rx1}, port 2 tx {tx2}");
}

#[test]
fn afxdp_port_added_and_removed_at_runtime() {
    if !root_or_skip() {
        return;
    }
    let topo = Topo::new("xr", 2);
    let dir = std::env::temp_dir().join(format!("fxsw-xr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("br0.mgmt");
    let sd = Switchd::start_in(
        Some(&topo.sw),
        &["--port", "s1=1:afxdp", "--mgmt", sock.to_str().unwrap()],
    );
    let (ns, t) = (topo.sw.as_str(), sd.target.as_str());
    forward_1_2(Some(ns), t);
    assert!(!topo.ping(1, 2), "ping passed without port 2");
    let ask = |req: &str| crate::mgmt::ask(&sock, req);
    let r = ask(r#"{"cmd":"add-port","name":"s2","ofport":2,"type":"afxdp","xdp_mode":"turbo"}"#);
    assert_eq!(r["ok"], false, "a bad xdp_mode was accepted: {r}");
    let r = ask(r#"{"cmd":"add-port","name":"s2","ofport":2,"type":"afxdp","xdp_mode":"generic"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["port"]["type"], "afxdp", "{r}");
    assert!(link(ns, "s2").contains("xdpgeneric"), "{}", link(ns, "s2"));
    assert!(topo.ping_eventually(1, 2), "ping failed after add-port");
    let r = ask(r#"{"cmd":"del-port","name":"s2"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert!(!topo.ping(1, 2), "ping passed after del-port");
    assert!(
        !link(ns, "s2").contains("prog/xdp"),
        "XDP program left after del-port: {}",
        link(ns, "s2")
    );
    drop(sd);
    let _ = std::fs::remove_dir_all(&dir);
}
