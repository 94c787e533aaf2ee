//! VXLAN between two switches: two fuxi-switchd instances in two namespaces joined by a
//! veth "underlay" (192.168.77.1 ↔ .2), each with one host namespace on a veth port.
//! Flows put the host's traffic into the tunnel with `set_field:N->tun_id` and let out only
//! what arrives with the expected `tun_id`, so the ping proves the VNI crosses the wire as
//! TUNNEL_ID. Needs root.

use crate::util::*;

/// A fresh namespace with loopback up and IPv6 off (no router solicitations on the wire).
fn add_ns(ns: &str) {
    sh(&format!("ip netns add {ns}"));
    sh(&format!("ip -n {ns} link set lo up"));
    let _ = sh_ok(&format!(
        "ip netns exec {ns} sysctl -qw net.ipv6.conf.all.disable_ipv6=1"
    ));
}

/// Host `i` in namespace `h`: 10.9.0.i, MAC 02:00:00:00:00:0i on `vi`, whose peer is the
/// port `s1` in switch namespace `s`; static neighbours for the other hosts 1..=`n`.
fn attach_host(h: &str, s: &str, i: usize, n: usize) {
    sh(&format!(
        "ip -n {h} link add v{i} type veth peer name s1 netns {s}"
    ));
    sh(&format!(
        "ip -n {h} link set v{i} address 02:00:00:00:00:0{i}"
    ));
    sh(&format!("ip -n {h} addr add 10.9.0.{i}/24 dev v{i}"));
    sh(&format!("ip -n {h} link set v{i} up"));
    sh(&format!("ip -n {s} link set s1 up"));
    for j in (1..=n).filter(|&j| j != i) {
        sh(&format!(
            "ip -n {h} neigh add 10.9.0.{j} lladdr 02:00:00:00:00:0{j} dev v{i}"
        ));
    }
}

/// Namespaces `fxsm…`: switch A and B, hosts 1 (on A) and 2 (on B). Removed on drop.
struct TwoSwitches {
    sw: [String; 2],
    hosts: [String; 2],
}

impl TwoSwitches {
    fn new() -> TwoSwitches {
        let id = std::process::id() % 100_000;
        let t = TwoSwitches {
            sw: [format!("fxsmvx{id}a"), format!("fxsmvx{id}b")],
            hosts: [format!("fxsmvx{id}h1"), format!("fxsmvx{id}h2")],
        };
        t.cleanup();
        for ns in t.sw.iter().chain(&t.hosts) {
            add_ns(ns);
        }
        let [a, b] = &t.sw;
        // The underlay.
        sh(&format!(
            "ip -n {a} link add u0 type veth peer name u0 netns {b}"
        ));
        for (ns, ip) in [(a, "192.168.77.1"), (b, "192.168.77.2")] {
            sh(&format!("ip -n {ns} addr add {ip}/24 dev u0"));
            sh(&format!("ip -n {ns} link set u0 up"));
        }
        // Hosts: 10.9.0.i on vi, switch end s1 in its switch's namespace.
        for (i, (h, s)) in t.hosts.iter().zip(&t.sw).enumerate() {
            attach_host(h, s, i + 1, 2);
        }
        t
    }

    fn cleanup(&self) {
        for ns in self.sw.iter().chain(&self.hosts) {
            let _ = sh_ok(&format!("ip netns del {ns}"));
        }
    }

    fn ping(&self) -> bool {
        sh_ok(&format!(
            "ip netns exec {} ping -c 1 -W 1 10.9.0.2",
            self.hosts[0]
        ))
    }

    fn ping_eventually(&self) -> bool {
        (0..4).any(|_| self.ping())
    }
}

impl Drop for TwoSwitches {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Installs the two flows of one switch: host port 1 → tunnel port 2 with `tun_id=out`,
/// tunnel port 2 with `tun_id=accept` → host port 1.
fn program(ns: &str, target: &str, out: u32, accept: u32) {
    let ns = Some(ns);
    ofctl_ok_in(ns, &["del-flows", target]);
    ofctl_ok_in(
        ns,
        &[
            "add-flow",
            target,
            &format!("priority=10,in_port=1,actions=set_field:{out}->tun_id,output:2"),
        ],
    );
    ofctl_ok_in(
        ns,
        &[
            "add-flow",
            target,
            &format!("priority=10,in_port=2,tun_id={accept},actions=output:1"),
        ],
    );
}

#[test]
fn vxlan_between_two_switches_carries_tunnel_id() {
    if !root_or_skip() {
        return;
    }
    let t = TwoSwitches::new();
    let [a, b] = &t.sw;
    // A's tunnel port from the command line, B's added at runtime on the management
    // socket (a unix socket: reachable from outside B's network namespace).
    let sa = Switchd::start_in(
        Some(a),
        &[
            "--port",
            "s1=1",
            "--port",
            "vx0=2:vxlan:192.168.77.2,192.168.77.1:4789",
        ],
    );
    let sock = std::env::temp_dir().join(format!("fxsm-vx-{}.mgmt", std::process::id()));
    let sb = Switchd::start_in(
        Some(b),
        &["--port", "s1=1", "--mgmt", sock.to_str().unwrap()],
    );
    let r = crate::mgmt::ask(
        &sock,
        r#"{"cmd":"add-port","name":"vx0","ofport":2,"type":"vxlan","remote":"192.168.77.1"}"#,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["port"]["type"], "vxlan", "{r}");
    assert!(!t.ping(), "ping passed with no flows");
    program(a, &sa.target, 100, 100);
    program(b, &sb.target, 100, 100);
    assert!(
        t.ping_eventually(),
        "ping over VXLAN with tun_id 100 failed"
    );
    // What came out of the tunnel matched on tun_id=100, on both sides.
    std::thread::sleep(std::time::Duration::from_millis(300));
    for (ns, sd) in [(a, &sa), (b, &sb)] {
        let dump = ofctl_ok_in(Some(ns), &["dump-flows", &sd.target]);
        assert!(
            packets_of(&dump, "tun_id=0x64").unwrap_or(0) >= 1,
            "{ns}: {dump}"
        );
        let ports = ofctl_ok_in(Some(ns), &["dump-ports", &sd.target, "2"]);
        assert!(!ports.contains("rx pkts=0,"), "{ns}: {ports}");
        assert!(!ports.contains("tx pkts=0,"), "{ns}: {ports}");
    }
    // Switch B now lets out only tun_id 200: A still sends 100, so the ping dies at B.
    program(b, &sb.target, 100, 200);
    assert!(!t.ping(), "ping passed a flow matching another tun_id");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dump = ofctl_ok_in(Some(b), &["dump-flows", &sb.target]);
    assert_eq!(packets_of(&dump, "tun_id=0xc8"), Some(0), "{dump}");
    let ports = ofctl_ok_in(Some(b), &["dump-ports", &sb.target, "2"]);
    assert!(!ports.contains("rx pkts=0,"), "{ports}");
    // A sends 200 from now on (and B answers with 100, which A accepts): it passes again.
    program(a, &sa.target, 200, 100);
    assert!(
        t.ping_eventually(),
        "ping over VXLAN with tun_id 200 one way failed"
    );
    drop((sa, sb));
    let _ = std::fs::remove_file(&sock);
}

/// Three switches in a star: A has two VXLAN ports (to B and to C) that share UDP 4789 on
/// one socket; B and C each have one back to A. Every switch forwards with
/// `actions=normal`, so hosts h1 (on A), h2 (on B) and h3 (on C) reach each other, h2 ↔ h3
/// through A's two tunnel ports. Namespaces `fn…`. Needs root.
#[test]
fn two_vxlan_ports_share_udp_4789_on_one_switch() {
    if !root_or_skip() {
        return;
    }
    let id = std::process::id() % 100_000;
    let sw: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|s| format!("fnvx{id}{s}"))
        .collect();
    let hosts: Vec<String> = (1..=3).map(|i| format!("fnvx{id}h{i}")).collect();
    struct Cleanup(Vec<String>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for ns in &self.0 {
                let _ = sh_ok(&format!("ip netns del {ns}"));
            }
        }
    }
    let all: Vec<String> = sw.iter().chain(&hosts).cloned().collect();
    drop(Cleanup(all.clone()));
    let _cleanup = Cleanup(all.clone());
    for ns in &all {
        add_ns(ns);
    }
    // Underlay: A–B on 192.168.81.0/24, A–C on 192.168.82.0/24.
    for (k, peer) in [(1usize, &sw[1]), (2, &sw[2])] {
        let a = &sw[0];
        sh(&format!(
            "ip -n {a} link add u{k} type veth peer name u0 netns {peer}"
        ));
        sh(&format!("ip -n {a} addr add 192.168.8{k}.1/24 dev u{k}"));
        sh(&format!("ip -n {a} link set u{k} up"));
        sh(&format!("ip -n {peer} addr add 192.168.8{k}.2/24 dev u0"));
        sh(&format!("ip -n {peer} link set u0 up"));
    }
    for (i, (h, s)) in hosts.iter().zip(&sw).enumerate() {
        attach_host(h, s, i + 1, 3);
    }
    let sa = Switchd::start_in(
        Some(&sw[0]),
        &[
            "--port",
            "s1=1",
            "--port",
            "vb=2:vxlan:192.168.81.2",
            "--port",
            "vc=3:vxlan:192.168.82.2",
            "--threads",
            "2",
        ],
    );
    let sb = Switchd::start_in(
        Some(&sw[1]),
        &["--port", "s1=1", "--port", "va=2:vxlan:192.168.81.1"],
    );
    let sc = Switchd::start_in(
        Some(&sw[2]),
        &["--port", "s1=1", "--port", "va=2:vxlan:192.168.82.1"],
    );
    // Both of A's tunnel ports are bound to 0.0.0.0:4789: one socket.
    let udp = sh_out(&format!("ip netns exec {} ss -uanp", sw[0]));
    let on_4789 = udp.lines().filter(|l| l.contains(":4789 ")).count();
    assert_eq!(on_4789, 1, "{udp}");
    for (ns, sd) in [(&sw[0], &sa), (&sw[1], &sb), (&sw[2], &sc)] {
        ofctl_ok_in(
            Some(ns),
            &["add-flow", &sd.target, "priority=0,actions=normal"],
        );
    }
    let ping = |from: usize, to: usize| {
        (0..4).any(|_| {
            sh_ok(&format!(
                "ip netns exec {} ping -c 1 -W 1 10.9.0.{to}",
                hosts[from - 1]
            ))
        })
    };
    assert!(ping(1, 2), "h1 → h2 over A's first tunnel");
    assert!(ping(1, 3), "h1 → h3 over A's second tunnel");
    assert!(ping(2, 3), "h2 → h3 through A's two tunnels");
    assert!(ping(3, 2), "h3 → h2");
    // Both of A's tunnel ports received (whichever thread read the shared socket).
    for port in ["2", "3"] {
        let d = ofctl_ok_in(Some(&sw[0]), &["dump-ports", &sa.target, port]);
        assert!(!d.contains("rx pkts=0,"), "port {port}: {d}");
    }
}

fn sh_out(cmd: &str) -> String {
    let o = std::process::Command::new("bash")
        .args(["-c", cmd])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}
