//! NORMAL and standalone mode with real traffic: hosts in network namespaces ping through
//! an `actions=normal` flow (unicast stays off the third port once learned), through a
//! standalone switch with no controller and no flows, and through a standalone switch
//! whose controller goes away and comes back. Needs root.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::util::*;

/// Hosts h1..hN on ports 1..N of a switch started with `extra` arguments.
fn setup(tag: &str, n: usize, extra: &[&str]) -> Option<(Topo, Switchd)> {
    if !root_or_skip() {
        return None;
    }
    let topo = Topo::with_prefix("fn", tag, n);
    let mut args: Vec<String> = (1..=n)
        .flat_map(|i| ["--port".into(), format!("s{i}={i}")])
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sd = Switchd::start_in(Some(&topo.sw), &args);
    Some((topo, sd))
}

/// Packets the switch sent out of `port`.
fn tx_pkts(ns: &str, target: &str, port: u32) -> u64 {
    let out = ofctl_ok_in(Some(ns), &["dump-ports", target, &port.to_string()]);
    let v = out.split("tx pkts=").nth(1).expect("tx pkts");
    v.split(',').next().unwrap().trim().parse().unwrap()
}

fn has_normal_flow(ns: &str, target: &str) -> bool {
    let dump = ofctl_ok_in(Some(ns), &["dump-flows", target]);
    flow_lines(&dump)
        .iter()
        .any(|l| l.ends_with("priority=0 actions=NORMAL"))
}

/// Waits up to `secs` for `f` to hold.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn hosts_ping_through_actions_normal_and_learned_unicast_stays_unicast() {
    let mgmt = std::env::temp_dir().join(format!("fn-nrm-{}.mgmt", std::process::id()));
    let Some((topo, sd)) = setup("nrm", 3, &["--mgmt", mgmt.to_str().unwrap()]) else {
        return;
    };
    let ns = topo.sw.as_str();
    let t = sd.target.as_str();
    assert!(!topo.ping(1, 2), "secure mode without flows forwarded");
    ofctl_ok_in(Some(ns), &["add-flow", t, "priority=0,actions=normal"]);
    assert!(topo.ping_eventually(1, 2), "ping 1 → 2 through NORMAL");
    assert!(topo.ping(2, 3), "ping 2 → 3 through NORMAL");
    assert!(topo.ping(3, 1), "ping 3 → 1 through NORMAL");
    // Every host is learned now: 1 ↔ 2 traffic never reaches port 3.
    let before = tx_pkts(ns, t, 3);
    for _ in 0..3 {
        assert!(topo.ping(1, 2));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        tx_pkts(ns, t, 3),
        before,
        "learned unicast was flooded to port 3"
    );
    // The pings after the first of each direction went through the kernel flow table,
    // whose counts reach the flow within a second.
    let mut dump = String::new();
    assert!(
        eventually(3, || {
            dump = ofctl_ok_in(Some(ns), &["dump-flows", t]);
            packets_of(&dump, "actions=NORMAL").unwrap_or(0) >= 12
        }),
        "{dump}"
    );
    // The MAC table, as ovs-appctl fdb/show would list it.
    let r = crate::mgmt::ask(&mgmt, r#"{"cmd":"fdb-show"}"#);
    assert_eq!(r["ok"], true, "{r}");
    let learned: Vec<(u64, String)> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["port"].as_u64().unwrap(),
                e["mac"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = (1..=3)
        .map(|i| (i, format!("02:00:00:00:00:0{i}")))
        .collect();
    assert_eq!(learned, want, "{r}");
    let text = r["text"].as_str().unwrap();
    assert!(
        text.starts_with(" port  VLAN  MAC                Age\n"),
        "{text}"
    );
    assert!(text.contains("    2     0  02:00:00:00:00:02"), "{text}");
    let _ = std::fs::remove_file(&mgmt);
}

#[test]
fn a_standalone_switch_without_controllers_forwards_with_no_flows_added() {
    let Some((topo, sd)) = setup("sta", 3, &["--fail-mode", "standalone"]) else {
        return;
    };
    let ns = topo.sw.as_str();
    let t = sd.target.as_str();
    assert!(has_normal_flow(ns, t), "no priority=0 actions=NORMAL flow");
    assert!(topo.ping_eventually(1, 2));
    assert!(topo.ping(3, 2));
    // It is an ordinary flow: deleting it stops forwarding (as in Open vSwitch).
    ofctl_ok_in(Some(ns), &["del-flows", t]);
    assert!(!topo.ping(1, 2), "forwarded after del-flows");
}

/// A listening socket inside namespace `ns`.
fn listen_in(ns: &str, port: u16) -> TcpListener {
    let l = fuxi_dataplane::port::netns::run_in(ns, move || TcpListener::bind(("127.0.0.1", port)))
        .expect("enter the namespace")
        .expect("bind the controller port");
    l.set_nonblocking(true).unwrap();
    l
}

fn accept_within(l: &TcpListener, secs: u64) -> Option<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok((s, _)) = l.accept() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn standalone_falls_back_to_normal_while_the_controller_is_away() {
    if !root_or_skip() {
        return;
    }
    let cport = free_port();
    let conf = std::env::temp_dir().join(format!("fn-standalone-{}.toml", std::process::id()));
    std::fs::write(
        &conf,
        format!(
            "fail_mode = \"standalone\"\nfail_open_delay = 1\n\
             controllers = [\"tcp:127.0.0.1:{cport}\"]\n"
        ),
    )
    .unwrap();
    let topo = Topo::with_prefix("fn", "ctl", 2);
    let ns = topo.sw.clone();
    let listener = listen_in(&ns, cport);
    let conf_s = conf.to_str().unwrap().to_string();
    let sd = Switchd::start_in(
        Some(&ns),
        &["--config", &conf_s, "--port", "s1=1", "--port", "s2=2"],
    );
    let t = sd.target.clone();
    let ctl = accept_within(&listener, 10).expect("the switch connects to its controller");
    // Connected, and longer than the delay: no fallback.
    std::thread::sleep(Duration::from_millis(1800));
    assert!(
        !has_normal_flow(&ns, &t),
        "NORMAL flow with a controller up"
    );
    assert!(
        !topo.ping(1, 2),
        "forwarded with a controller up and no flows"
    );
    // The controller goes away (and stays away: nobody listens).
    drop(ctl);
    drop(listener);
    assert!(
        eventually(6, || has_normal_flow(&ns, &t)),
        "no NORMAL flow after the controller left"
    );
    assert!(topo.ping_eventually(1, 2), "no forwarding in fail-open");
    // It comes back: the switch reconnects (back-off at most 8 s) and the flow goes.
    let listener = listen_in(&ns, cport);
    let _ctl = accept_within(&listener, 15).expect("the switch reconnects");
    assert!(
        eventually(5, || !has_normal_flow(&ns, &t)),
        "NORMAL flow still there with the controller back"
    );
    assert!(!topo.ping(1, 2), "forwarded after the controller came back");
    let _ = std::fs::remove_file(conf);
}
