//! `offload = "tc"`: the kernel flow table forwards microflows whose flows only forward
//! them, with their counts in the flow and port counters, and stops at once (before a
//! barrier reply) when a flow-mod or a port-mod says otherwise. Needs root.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use fuxi_dataplane::port::netns::run_in;

use crate::metrics::{scrape, sum};
use crate::util::{
    Switchd, Topo, forward_1_2, free_port, ofctl_ok_in, packets_of, root_or_skip, sh,
};

/// One UDP flow, 10.9.0.1:4001 → 10.9.0.2:4000, whose datagrams carry sequence numbers.
struct UdpFlow {
    tx: UdpSocket,
    rx: UdpSocket,
}

impl UdpFlow {
    fn new(topo: &Topo) -> UdpFlow {
        let bind = |ns: &str, addr: &'static str| {
            run_in(ns, move || UdpSocket::bind(addr))
                .expect("enter netns")
                .expect("bind")
        };
        let tx = bind(&topo.hosts[0], "10.9.0.1:4001");
        let rx = bind(&topo.hosts[1], "10.9.0.2:4000");
        rx.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        UdpFlow { tx, rx }
    }

    /// Sends datagrams `from..from + n`, 1 ms apart; returns the sequence numbers received.
    fn burst(&self, from: u32, n: u32) -> Vec<u32> {
        for i in from..from + n {
            let mut d = [0u8; 100];
            d[..4].copy_from_slice(&i.to_be_bytes());
            self.tx.send_to(&d, "10.9.0.2:4000").unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 200];
        while let Ok(n) = self.rx.recv(&mut buf) {
            assert_eq!(n, 100);
            got.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
        }
        got.sort_unstable();
        got
    }
}

/// Time for what the kernel forwarded to reach the counters: a harvest round is due a
/// second after the last one (a datapath thread with nothing to do sleeps until then).
const HARVESTED: Duration = Duration::from_millis(2000);

fn seqs(from: u32, n: u32) -> Vec<u32> {
    (from..from + n).collect()
}

/// A switch on a two-host topology with the kernel table required (`--offload tc`) and
/// metrics on, forwarding 1 ↔ 2.
struct Offloaded {
    /// Declared first, so dropped first: the daemon goes before its namespaces.
    sd: Switchd,
    topo: Topo,
    mport: u16,
}

impl Offloaded {
    /// None (the test returns) where root tests are skipped.
    fn start(name: &str) -> Option<Offloaded> {
        if !root_or_skip() {
            return None;
        }
        let topo = Topo::new(name, 2);
        let mport = free_port();
        let m = format!("127.0.0.1:{mport}");
        let sd = Switchd::on_ports(&topo, &["--offload", "tc", "--metrics", &m]);
        forward_1_2(Some(&topo.sw), &sd.target);
        Some(Offloaded { sd, topo, mport })
    }

    fn ns(&self) -> Option<&str> {
        Some(self.topo.sw.as_str())
    }

    /// Packets the kernel took in from port 1, packets the datapath threads handled, and
    /// kernel flow table entries.
    fn counts(&self) -> (u64, u64, u64) {
        let s = scrape(self.ns(), self.mport);
        let rx = s
            .get("fuxi_port_kernel_rx_packets_total{port=\"s1\",ofport=\"1\"}")
            .copied()
            .unwrap_or_else(|| panic!("no kernel counter: {s:?}"));
        let userspace = sum(&s, "fuxi_cache_hits_total", "");
        (rx as u64, userspace as u64, s["fuxi_kernel_flows"] as u64)
    }
}

#[test]
fn offload_tc_forwards_in_the_kernel_and_stops_with_the_flows() {
    let Some(o) = Offloaded::start("offl") else {
        return;
    };
    let (ns, t, topo) = (o.ns(), o.sd.target.as_str(), &o.topo);
    let flow = UdpFlow::new(topo);
    let kernel_rx = || o.counts();
    // The first datagram goes through the switch and puts the microflow into the kernel,
    // which forwards the rest.
    assert_eq!(flow.burst(0, 200), seqs(0, 200));
    std::thread::sleep(HARVESTED);
    let (rx, userspace, entries) = kernel_rx();
    assert!(
        rx >= 150,
        "kernel forwarded {rx} of 200 (userspace {userspace})"
    );
    assert!(userspace < 50, "userspace saw {userspace} packets");
    assert_eq!(entries, 1);
    // Every datagram is counted once in the flow's counters, wherever it was forwarded.
    let dump = ofctl_ok_in(ns, &["dump-flows", t]);
    assert_eq!(packets_of(&dump, "in_port=1"), Some(200), "{dump}");
    let ports = ofctl_ok_in(ns, &["dump-ports", t, "1"]);
    assert!(ports.contains("rx pkts=200,"), "{ports}");

    // A flow-mod that none of its packets could match: the control plane moves the entry
    // to the new tag before it answers (it still forwards the same way), so the burst
    // after it goes through the kernel, all of it, and is counted.
    ofctl_ok_in(
        ns,
        &["add-flow", t, "priority=5,udp,tp_dst=9999,actions=drop"],
    );
    assert_eq!(flow.burst(500, 100), seqs(500, 100));
    std::thread::sleep(HARVESTED);
    let (rx1, userspace1, entries) = kernel_rx();
    assert_eq!(entries, 1);
    assert_eq!(
        (rx1 - rx, userspace1 - userspace),
        (100, 0),
        "kernel, userspace"
    );
    let dump = ofctl_ok_in(ns, &["dump-flows", t]);
    assert_eq!(packets_of(&dump, "in_port=1"), Some(300), "{dump}");
    let rx = rx1;

    // The flows go: not one more datagram passes, though the kernel entry was current.
    ofctl_ok_in(ns, &["del-flows", t]);
    assert_eq!(flow.burst(1000, 50), Vec::<u32>::new());
    // Back: forwarded again, and in the kernel again.
    forward_1_2(ns, t);
    assert_eq!(flow.burst(2000, 100), seqs(2000, 100));
    std::thread::sleep(HARVESTED);
    let (rx2, _, _) = kernel_rx();
    assert!(rx2 >= rx + 50, "kernel forwarded {} of 100 more", rx2 - rx);

    // A port that may not forward takes nothing, until it may again.
    ofctl_ok_in(ns, &["mod-port", t, "2", "no-forward"]);
    assert_eq!(flow.burst(3000, 50), Vec::<u32>::new());
    ofctl_ok_in(ns, &["mod-port", t, "2", "forward"]);
    assert_eq!(flow.burst(4000, 50), seqs(4000, 50));

    // Pings: echo requests and replies are microflows too (after the first of each).
    let (rx4, _, _) = kernel_rx();
    crate::util::sh(&format!(
        "ip netns exec {} ping -q -c 20 -i 0.01 -W 1 10.9.0.2 >/dev/null",
        topo.hosts[0]
    ));
    std::thread::sleep(HARVESTED);
    let (rx5, _, _) = kernel_rx();
    assert!(
        rx5 >= rx4 + 15,
        "kernel forwarded {} of 20 echo requests",
        rx5 - rx4
    );

    // TCP: super-frames go through the kernel whole.
    let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
    let mut srv = std::process::Command::new("ip")
        .args(["netns", "exec", h2, "iperf3", "-s", "-1", "-p", "5298"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let out = std::process::Command::new("ip")
        .args([
            "netns", "exec", h1, "iperf3", "-c", "10.9.0.2", "-p", "5298", "-n", "500M", "-J",
        ])
        .output()
        .unwrap();
    let _ = srv.wait();
    assert!(
        out.status.success(),
        "iperf3 after {:?}: {}",
        start.elapsed(),
        String::from_utf8_lossy(&out.stdout)
    );
    std::thread::sleep(HARVESTED);
    let (rx3, userspace3, _) = kernel_rx();
    assert!(
        rx3 > rx5 + 1000,
        "kernel forwarded {} packets of the TCP transfer (userspace {userspace3})",
        rx3 - rx5
    );
}

/// The switch's epoch map (the one-entry array of the kernel flow table), by its id: found
/// through the daemon's descriptors.
fn epoch_map_id(pid: u32) -> u32 {
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let fd = fd.unwrap();
        let is_map =
            std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy().contains("bpf-map"));
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let field = |k: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u32>().ok())
        };
        if is_map && field("map_type:") == Some(2) && field("max_entries:") == Some(1) {
            return field("map_id:").unwrap();
        }
    }
    panic!("fuxi-switchd {pid} has no epoch map");
}

/// Should the kernel refuse a new generation (here: the epoch map frozen behind the
/// switch's back, so writing it fails), the switch takes the kernel table off every port:
/// the deleted flow stops its traffic all the same, and from then on everything goes
/// through userspace.
#[test]
fn offload_tc_turns_off_when_the_kernel_refuses_a_generation() {
    let Some(o) = Offloaded::start("offx") else {
        return;
    };
    let (ns, t) = (o.ns(), o.sd.target.as_str());
    let flow = UdpFlow::new(&o.topo);
    let counts = || {
        let (rx, hits, _) = o.counts();
        (rx, hits)
    };
    assert_eq!(flow.burst(0, 100), seqs(0, 100));
    std::thread::sleep(HARVESTED);
    let (rx, _) = counts();
    assert!(rx >= 50, "kernel forwarded {rx} of 100");

    crate::util::sh(&format!(
        "bpftool map freeze id {} >/dev/null",
        epoch_map_id(o.sd.pid())
    ));
    ofctl_ok_in(ns, &["del-flows", t]);
    assert_eq!(flow.burst(1000, 50), Vec::<u32>::new());
    forward_1_2(ns, t);
    let (_, hits) = counts();
    assert_eq!(flow.burst(2000, 100), seqs(2000, 100));
    std::thread::sleep(HARVESTED);
    let (rx2, hits2) = counts();
    assert_eq!(rx2, rx, "the kernel forwarded after it was turned off");
    assert!(hits2 >= hits + 95, "userspace forwarded {}", hits2 - hits);
    assert_eq!(o.counts().2, 0);
}

/// Thousands of microflows in the kernel (3,000 UDP source ports, two datagrams each back
/// to back through the switch, then a third each, which the kernel forwards), harvested
/// over several calls: every datagram is forwarded once and in order, and counted once in
/// the flow's and the port's counters. (A flow's second datagram can pass the socket filter
/// before its entry goes in and reach tc after: it must then not be sent twice; and the
/// entry must not go in before the first datagram is sent, or the kernel would forward the
/// second ahead of it.)
#[test]
fn offload_tc_counts_thousands_of_kernel_flows_exactly() {
    let Some(o) = Offloaded::start("offn") else {
        return;
    };
    let (ns, t, topo) = (o.ns(), o.sd.target.as_str(), &o.topo);
    const FLOWS: u16 = 3000;
    let rx = run_in(&topo.hosts[1], || UdpSocket::bind("10.9.0.2:4000"))
        .expect("enter netns")
        .expect("bind");
    rx.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let receiver = std::thread::spawn(move || {
        let mut got = std::collections::HashMap::<u16, Vec<u8>>::new();
        let mut buf = [0u8; 100];
        while let Ok((n, from)) = rx.recv_from(&mut buf) {
            assert_eq!(n, 64);
            got.entry(from.port()).or_default().push(buf[0]);
        }
        got
    });
    let send = |rounds: std::ops::Range<u8>| {
        run_in(&topo.hosts[0], move || {
            for i in 0..FLOWS {
                let s = UdpSocket::bind(("10.9.0.1", 20_000 + i)).unwrap();
                for k in rounds.clone() {
                    s.send_to(&[k; 64], "10.9.0.2:4000").unwrap();
                }
                if i % 4 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
        .expect("enter netns")
    };
    send(0..2);
    std::thread::sleep(Duration::from_millis(300));
    send(2..3);
    let got = receiver.join().unwrap();
    assert_eq!(got.len(), usize::from(FLOWS), "flows received");
    let sorted = |v: &Vec<u8>| {
        let mut v = v.clone();
        v.sort_unstable();
        v
    };
    let wrong: Vec<_> = got
        .iter()
        .filter(|(_, v)| sorted(v) != [0, 1, 2])
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "not received exactly once: {wrong:?}");
    // In order; a few flows' first two may cross when the receiving softirq runs late.
    let crossed = got.values().filter(|v| **v != [0, 1, 2]).count();
    assert!(crossed <= 30, "{crossed} of {FLOWS} flows reordered");

    let want = 3 * u64::from(FLOWS);
    let deadline = Instant::now() + Duration::from_secs(5);
    let (mut flow, mut kernel) = (0, 0);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let dump = ofctl_ok_in(ns, &["dump-flows", t]);
        flow = packets_of(&dump, "in_port=1").unwrap_or(0);
        kernel = o.counts().0;
        if flow == want && kernel >= u64::from(FLOWS) {
            break;
        }
    }
    assert_eq!(flow, want, "flow counter (kernel forwarded {kernel})");
    assert!(
        kernel >= u64::from(FLOWS) - 100,
        "kernel forwarded {kernel} of {want}"
    );
    let ports = ofctl_ok_in(ns, &["dump-ports", t, "1"]);
    assert!(ports.contains(&format!("rx pkts={want},")), "{ports}");

    // One more datagram from a new port after a flow-mod that touches none of them: the
    // thread revalidates (that datagram comes through it), the one megaflow stays and
    // every entry is put back.
    let (_, userspace, _) = o.counts();
    ofctl_ok_in(ns, &["add-flow", t, "priority=5,in_port=9,actions=drop"]);
    let one_more = |port: u16| {
        run_in(&topo.hosts[0], move || {
            let s = UdpSocket::bind(("10.9.0.1", port)).unwrap();
            s.send_to(&[9; 64], "10.9.0.2:4000").unwrap();
        })
        .expect("enter netns")
    };
    one_more(20_000 + FLOWS);
    std::thread::sleep(Duration::from_millis(300));
    let (_, userspace2, entries) = o.counts();
    assert_eq!(entries, u64::from(FLOWS) + 1, "entries kept");
    assert!(
        userspace2 <= userspace + 2,
        "userspace {}",
        userspace2 - userspace
    );

    // A fourth datagram each, through the kernel, and at once a change that stops them
    // (port 2 may not forward): the thread drops every entry, reading their counts in
    // batches first. Nothing is lost from the counts.
    send(3..4);
    ofctl_ok_in(ns, &["mod-port", t, "2", "no-forward"]);
    one_more(20_001 + FLOWS);
    let want = 4 * u64::from(FLOWS) + 2;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        flow = packets_of(&ofctl_ok_in(ns, &["dump-flows", t]), "in_port=1").unwrap_or(0);
        if flow == want {
            break;
        }
    }
    assert_eq!(flow, want, "flow counter after the entries were dropped");
    assert_eq!(o.counts().2, 0, "entries left");
}

/// NORMAL through the kernel table: a MAC learned from another host (a datapath thread's
/// change, not the control plane's) leaves the entries of the streams it does not touch
/// forwarding in the kernel, also those of other threads (three threads, a port each):
/// every datagram of the burst after it goes through the kernel.
#[test]
fn offload_tc_keeps_streams_when_another_mac_is_learned() {
    if !root_or_skip() {
        return;
    }
    let topo = Topo::new("offm", 3);
    let mport = free_port();
    let m = format!("127.0.0.1:{mport}");
    let args = ["--offload", "tc", "--metrics", &m, "--threads", "3"];
    let sd = Switchd::on_ports(&topo, &args);
    let (ns, t) = (Some(topo.sw.as_str()), sd.target.as_str());
    ofctl_ok_in(ns, &["add-flow", t, "actions=normal"]);
    let kernel_rx = || {
        let s = scrape(ns, mport);
        s["fuxi_port_kernel_rx_packets_total{port=\"s1\",ofport=\"1\"}"] as u64
    };
    // h2 makes itself known (ARP is static here): else NORMAL floods h1's datagrams.
    sh(&format!(
        "ip netns exec {} ping -q -c 1 -W 1 10.9.0.1 >/dev/null",
        topo.hosts[1]
    ));
    let flow = UdpFlow::new(&topo);
    assert_eq!(flow.burst(0, 200), seqs(0, 200));
    std::thread::sleep(HARVESTED);
    let rx = kernel_rx();
    assert!(rx >= 150, "kernel forwarded {rx} of 200");
    // h3 appears: its MAC is learned (and h2's reply goes to it).
    sh(&format!(
        "ip netns exec {} ping -q -c 2 -i 0.2 -W 1 10.9.0.2 >/dev/null",
        topo.hosts[2]
    ));
    assert_eq!(flow.burst(1000, 100), seqs(1000, 100));
    std::thread::sleep(HARVESTED);
    assert_eq!(
        kernel_rx() - rx,
        100,
        "datagrams the kernel forwarded after"
    );
}
