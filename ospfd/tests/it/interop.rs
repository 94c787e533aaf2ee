//! Interop with real FRR (ospfd + zebra) and BIRD 2, for real: each test creates network
//! namespaces joined by veth pairs, runs `fuxi-ospfd` in one and the peer in the other, waits
//! for Full on both sides and for routes in both kernels, then cuts the peer off and checks
//! the withdrawal. Needs root and the `frr`, `bird2` and `iproute2` packages; a missing peer
//! is a failure, not a skip. Tests run one at a time (they are CPU-light but timing-sensitive).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub static SERIAL: Mutex<()> = Mutex::new(());

const FRR: &str = "/usr/lib/frr";
// Short timers keep the suite quick (withdrawal after the dead interval, the broadcast Waiting
// state); four missed hellos still ride out a loaded machine.
pub const HELLO: u32 = 1;
pub const DEAD: u32 = 4;

pub fn sh(cmd: &str) -> String {
    let o = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("bash");
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn sh_ok(cmd: &str) -> String {
    Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

pub fn require_tools() {
    assert!(nix_is_root(), "interop tests need root");
    // FRR's ospfd keeps state in /var/run/frr (normally made by systemd-tmpfiles).
    let _ = sh_ok("mkdir -p /var/run/frr && chown frr:frr /var/run/frr");
    for p in [
        format!("{FRR}/ospfd"),
        format!("{FRR}/zebra"),
        "/usr/sbin/bird".into(),
        "/usr/bin/vtysh".into(),
    ] {
        assert!(
            Path::new(&p).exists(),
            "{p} missing: apt-get install frr bird2"
        );
    }
}

fn nix_is_root() -> bool {
    sh_ok("id -u").trim() == "0"
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Peer {
    Frr,
    Bird,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Auth {
    None,
    Simple,
    Md5,
    HmacSha256,
}

/// How to run one peer daemon.
pub struct Spec {
    pub ns: String,
    /// Sub-directory of the lab for its files.
    pub sub: &'static str,
    pub ifname: &'static str,
    pub rid: &'static str,
    pub link: &'static str,
    pub stub: &'static str,
    pub ptp: bool,
    pub auth: Auth,
    pub prio: u8,
    /// Extra FRR interface stanzas (before `router ospf`) and `router ospf` lines.
    pub frr_extra_if: &'static str,
    pub frr_extra_router: &'static str,
}

/// A lab: netns `<tag>a` (fuxi) and `<tag>b` (peer), veth `fx0` <-> `pe0`, 10.0.12.0/30.
pub struct Lab {
    pub tag: String,
    pub dir: PathBuf,
    pub peer: Peer,
    fuxi: Option<Child>,
    pidfiles: Vec<PathBuf>,
    pub capture: Option<Child>,
    /// fuxi's interface priority.
    pub fuxi_prio: u8,
    /// Appended to fuxi's TOML configuration.
    pub fuxi_extra: String,
    /// Hello and dead intervals of every daemon on the lab's links.
    pub hello: u32,
    pub dead: u32,
    extra_ns: Vec<String>,
}

impl Lab {
    pub fn ns_a(&self) -> String {
        format!("{}a", self.tag)
    }
    pub fn ns_b(&self) -> String {
        format!("{}b", self.tag)
    }

    pub fn new(tag: &str, peer: Peer) -> Lab {
        let dir = PathBuf::from(format!("/tmp/fuxi-ospfd-it/{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("b")).unwrap();
        let lab = Lab {
            tag: tag.into(),
            dir,
            peer,
            fuxi: None,
            pidfiles: vec![],
            capture: None,
            fuxi_prio: 1,
            fuxi_extra: String::new(),
            hello: HELLO,
            dead: DEAD,
            extra_ns: vec![],
        };
        let (a, b) = (lab.ns_a(), lab.ns_b());
        let _ = sh_ok(&format!(
            "ip netns del {a} 2>/dev/null; ip netns del {b} 2>/dev/null"
        ));
        sh(&format!(
            "set -e; ip netns add {a}; ip netns add {b}
             ip link add fx0 netns {a} type veth peer name pe0 netns {b}
             ip -n {a} addr add 10.0.12.1/30 dev fx0; ip -n {b} addr add 10.0.12.2/30 dev pe0
             for ns in {a} {b}; do ip -n $ns link set lo up
               ip -n $ns link add stub0 type dummy 2>/dev/null || ip -n $ns link add stub0 type ifb
               ip -n $ns link set stub0 up; done
             ip -n {a} addr add 10.255.0.1/32 dev lo; ip -n {a} addr add 172.16.1.1/24 dev stub0
             ip -n {b} addr add 10.255.0.2/32 dev lo; ip -n {b} addr add 172.16.2.1/24 dev stub0
             ip -n {a} link set fx0 up; ip -n {b} link set pe0 up"
        ));
        lab
    }

    /// A LAN: hub netns `<tag>h` with bridge br0; fuxi in `<tag>a` (10.0.0.1/24), FRR in
    /// `<tag>b` (.2) and BIRD in `<tag>c` (.3); each has lo 10.255.0.N/32 and stub0
    /// 172.16.N.1/24.
    pub fn new_lan(tag: &str) -> Lab {
        let dir = PathBuf::from(format!("/tmp/fuxi-ospfd-it/{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let h = format!("{tag}h");
        let c = format!("{tag}c");
        let lab = Lab {
            tag: tag.into(),
            dir,
            peer: Peer::Frr,
            fuxi: None,
            pidfiles: vec![],
            capture: None,
            fuxi_prio: 1,
            fuxi_extra: String::new(),
            hello: HELLO,
            dead: DEAD,
            extra_ns: vec![h.clone(), c.clone()],
        };
        let (a, b) = (lab.ns_a(), lab.ns_b());
        let _ = sh_ok(&format!(
            "for n in {a} {b} {c} {h}; do ip netns del $n 2>/dev/null; done"
        ));
        sh(&format!(
            "set -e; for n in {a} {b} {c} {h}; do ip netns add $n; ip -n $n link set lo up; done
             ip -n {h} link add br0 type bridge; ip -n {h} link set br0 up
             ip link add ha netns {h} type veth peer name fx0 netns {a}
             ip link add hb netns {h} type veth peer name pe0 netns {b}
             ip link add hc netns {h} type veth peer name pe0 netns {c}
             for p in ha hb hc; do ip -n {h} link set $p master br0; ip -n {h} link set $p up; done
             n=1; for ns in {a} {b} {c}; do
               ip -n $ns link add stub0 type dummy 2>/dev/null || ip -n $ns link add stub0 type ifb
               ip -n $ns link set stub0 up; ip -n $ns addr add 172.16.$n.1/24 dev stub0
               ip -n $ns addr add 10.255.0.$n/32 dev lo; n=$((n+1)); done
             ip -n {a} addr add 10.0.0.1/24 dev fx0; ip -n {a} link set fx0 up
             ip -n {b} addr add 10.0.0.2/24 dev pe0; ip -n {b} link set pe0 up
             ip -n {c} addr add 10.0.0.3/24 dev pe0; ip -n {c} link set pe0 up"
        ));
        lab
    }

    /// Start tcpdump on the fuxi side, writing `file` in the lab directory.
    pub fn start_capture(&mut self, file: &str) {
        let c = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns_a(),
                "tcpdump",
                "-i",
                "fx0",
                "-U",
                "-s",
                "0",
                "-w",
            ])
            .arg(self.dir.join(file))
            .arg("ip proto 89")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump");
        self.capture = Some(c);
        std::thread::sleep(Duration::from_millis(500));
    }

    pub fn stop_capture(&mut self) {
        if let Some(mut c) = self.capture.take() {
            let _ = sh_ok(&format!("kill -INT {}", c.id()));
            let _ = c.wait();
        }
    }

    pub fn start_peer(&mut self, ptp: bool, auth: Auth) {
        let spec = Spec {
            ns: self.ns_b(),
            sub: "b",
            ifname: "pe0",
            rid: "10.255.0.2",
            link: "10.0.12.0/30",
            stub: "172.16.2.0/24",
            ptp,
            auth,
            prio: 1,
            frr_extra_if: "",
            frr_extra_router: "",
        };
        match self.peer {
            Peer::Frr => self.start_frr(&spec),
            Peer::Bird => self.start_bird(&spec),
        }
    }

    pub fn start_frr(&mut self, sp: &Spec) {
        let (ptp, auth, rid, ifname, link, stub, prio) = (
            sp.ptp, sp.auth, sp.rid, sp.ifname, sp.link, sp.stub, sp.prio,
        );
        let d = self.dir.join(sp.sub);
        std::fs::create_dir_all(&d).unwrap();
        let mut ifx = String::new();
        if ptp {
            ifx += " ip ospf network point-to-point\n";
        }
        match auth {
            Auth::None => {}
            Auth::Md5 => {
                ifx += " ip ospf authentication message-digest\n ip ospf message-digest-key 1 md5 s3cr3t\n"
            }
            Auth::Simple => ifx += " ip ospf authentication\n ip ospf authentication-key s3cr3t\n",
            Auth::HmacSha256 => panic!("FRR 8.4 has no RFC 5709 HMAC-SHA"),
        }
        std::fs::write(d.join("zebra.conf"), "hostname zebra-b\n").unwrap();
        std::fs::write(
            d.join("ospfd.conf"),
            format!(
                "hostname ospfd-b\ndebug ospf event\ndebug ospf nsm\n!\ninterface {ifname}\n ip ospf hello-interval {hello}\n ip ospf dead-interval {dead}\n ip ospf retransmit-interval 2\n ip ospf priority {prio}\n{ifx}!\n{}router ospf\n ospf router-id {rid}\n timers throttle spf 0 50 1000\n redistribute connected\n network {link} area 0\n{} network {rid}/32 area 0\n network {stub} area 0\n passive-interface lo\n passive-interface stub0\n!\n",
                sp.frr_extra_if,
                sp.frr_extra_router,
                hello = self.hello,
                dead = self.dead,
            ),
        )
        .unwrap();
        let ns = sp.ns.clone();
        let p = d.display();
        sh(&format!("chown -R frr:frr {p}"));
        sh(&format!(
            "ip netns exec {ns} {FRR}/zebra -d -u frr -g frr -P 0 -f {p}/zebra.conf -i {p}/zebra.pid -z {p}/zserv.api --vty_socket {p} --log file:{p}/zebra.log"
        ));
        self.pidfiles.push(d.join("zebra.pid"));
        for _ in 0..50 {
            if d.join("zserv.api").exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        sh(&format!(
            "ip netns exec {ns} {FRR}/ospfd -d -u frr -g frr -P 0 -f {p}/ospfd.conf -i {p}/ospfd.pid -z {p}/zserv.api --vty_socket {p} --log file:{p}/ospfd.log"
        ));
        self.pidfiles.push(d.join("ospfd.pid"));
    }

    pub fn start_bird(&mut self, sp: &Spec) {
        let (ptp, auth, rid, ifname, prio) = (sp.ptp, sp.auth, sp.rid, sp.ifname, sp.prio);
        let d = self.dir.join(sp.sub);
        std::fs::create_dir_all(&d).unwrap();
        let nt = if ptp { "ptp" } else { "broadcast" };
        let au = match auth {
            Auth::None => "",
            Auth::Md5 => {
                "authentication cryptographic; password \"s3cr3t\" { id 1; algorithm keyed md5; };"
            }
            Auth::Simple => "authentication simple; password \"s3cr3t\";",
            Auth::HmacSha256 => {
                "authentication cryptographic; password \"s3cr3t\" { id 1; algorithm hmac sha256; };"
            }
        };
        let p = d.display();
        std::fs::write(
            d.join("bird.conf"),
            format!(
                "router id {rid};\nlog \"{p}/bird.log\" all;\nprotocol device {{ scan time 1; }}\nprotocol direct {{ ipv4; interface \"stub0\"; }}\nprotocol kernel {{\n  ipv4 {{ import none; export where source = RTS_OSPF || source = RTS_OSPF_EXT1 || source = RTS_OSPF_EXT2; }};\n}}\nprotocol ospf v2 ospf1 {{\n  tick 1;\n  ipv4 {{ import all; export where source = RTS_DEVICE; }};\n  area 0 {{\n    interface \"{ifname}\" {{ type {nt}; hello {hello}; dead {dead}; retransmit 2; priority {prio}; {au} }};\n    interface \"lo\" {{ stub yes; }};\n  }};\n}}\n",
                hello = self.hello,
                dead = self.dead,
            ),
        )
        .unwrap();
        sh(&format!(
            "ip netns exec {} bird -c {p}/bird.conf -s {p}/bird.ctl -P {p}/bird.pid",
            sp.ns
        ));
        self.pidfiles.push(d.join("bird.pid"));
    }

    pub fn start_fuxi(&mut self, ptp: bool, auth: Auth) {
        let nt = if ptp { "point-to-point" } else { "broadcast" };
        let au = match auth {
            Auth::None => String::new(),
            Auth::Md5 => "auth = { type = \"md5\", key_id = 1, key = \"s3cr3t\" }\n".into(),
            Auth::Simple => "auth = { type = \"simple\", key = \"s3cr3t\" }\n".into(),
            Auth::HmacSha256 => {
                "auth = { type = \"hmac-sha256\", key_id = 1, key = \"s3cr3t\" }\n".into()
            }
        };
        let cfg = format!(
            "router_id = \"10.255.0.1\"\ncontrol_socket = \"{}/fuxi.sock\"\nspf_delay_ms = 50\nmetrics_listen = \"127.0.0.1:9189\"\n\n[[interface]]\nname = \"fx0\"\nnetwork = \"{nt}\"\nhello_interval = {}\ndead_interval = {}\nretransmit_interval = 2\npriority = {}\n{au}\n[[interface]]\nname = \"lo\"\npassive = true\n\n[[interface]]\nname = \"stub0\"\npassive = true\n\n[redistribute]\n[[redistribute.static]]\nprefix = \"203.0.113.0/24\"\nmetric = 30\n",
            self.dir.display(),
            self.hello,
            self.dead,
            self.fuxi_prio
        );
        std::fs::write(self.dir.join("fuxi.toml"), cfg + &self.fuxi_extra).unwrap();
        let log = std::fs::File::create(self.dir.join("fuxi.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns_a(),
                env!("CARGO_BIN_EXE_fuxi-ospfd"),
                "-c",
            ])
            .arg(self.dir.join("fuxi.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn fuxi-ospfd");
        self.fuxi = Some(child);
    }

    /// SIGKILL fuxi-ospfd: no flush, routes left in the kernel.
    pub fn kill_fuxi(&mut self) {
        let mut c = self.fuxi.take().expect("fuxi running");
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Like `fuxi_cli` but an error (daemon not up yet) gives an empty string.
    pub fn fuxi_cli_ok(&self, args: &str) -> String {
        sh_ok(&format!(
            "{} -s {}/fuxi.sock {args}",
            env!("CARGO_BIN_EXE_fuxi-ospfd"),
            self.dir.display()
        ))
    }

    /// SIGTERM fuxi-ospfd and wait for it to exit.
    pub fn stop_fuxi(&mut self) -> std::process::ExitStatus {
        let mut c = self.fuxi.take().expect("fuxi running");
        sh(&format!("kill -TERM {}", c.id()));
        c.wait().unwrap()
    }

    pub fn fuxi_cli(&self, args: &str) -> String {
        sh(&format!(
            "{} -s {}/fuxi.sock {args}",
            env!("CARGO_BIN_EXE_fuxi-ospfd"),
            self.dir.display()
        ))
    }

    pub fn peer_full(&self) -> bool {
        let p = self.dir.join("b");
        let out = match self.peer {
            Peer::Frr => sh_ok(&format!(
                "ip netns exec {} vtysh --vty_socket {} -c 'show ip ospf neighbor'",
                self.ns_b(),
                p.display()
            )),
            Peer::Bird => sh_ok(&format!(
                "birdc -s {}/bird.ctl show ospf neighbors",
                p.display()
            )),
        };
        out.contains("Full")
    }

    pub fn fuxi_full(&self) -> bool {
        sh_ok(&format!(
            "{} -s {}/fuxi.sock show neighbors --json",
            env!("CARGO_BIN_EXE_fuxi-ospfd"),
            self.dir.display()
        ))
        .contains("\"Full\"")
    }

    pub fn route(&self, ns: &str, prefix: &str) -> String {
        sh_ok(&format!("ip -n {ns} route show {prefix}"))
    }

    pub fn peer_pid(&self) -> u32 {
        let f = self.pidfiles.last().unwrap();
        std::fs::read_to_string(f).unwrap().trim().parse().unwrap()
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["fuxi.log", "b/ospfd.log", "b/bird.log", "c/bird.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                let tail: Vec<&str> = t.lines().rev().take(40).collect();
                s += &format!(
                    "==== {f}\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_capture();
        if let Some(mut c) = self.fuxi.take() {
            let _ = sh_ok(&format!("kill -TERM {}", c.id()));
            let _ = c.wait();
        }
        for f in self.pidfiles.iter().rev() {
            if let Ok(p) = std::fs::read_to_string(f) {
                let p = p.trim();
                let _ = sh_ok(&format!(
                    "kill -CONT {p} 2>/dev/null; kill {p} 2>/dev/null; for i in $(seq 30); do kill -0 {p} 2>/dev/null || break; sleep 0.1; done"
                ));
            }
        }
        let _ = sh_ok(&format!(
            "ip netns del {} 2>/dev/null; ip netns del {} 2>/dev/null",
            self.ns_a(),
            self.ns_b()
        ));
        for n in &self.extra_ns {
            let _ = sh_ok(&format!("ip netns del {n} 2>/dev/null"));
        }
        if self.peer == Peer::Frr {
            let _ = sh_ok("rm -f /var/run/frr/ospfd-gr.json; rmdir /var/tmp/frr 2>/dev/null");
        }
    }
}

/// Poll `f` every 100 ms until true or `limit`; returns the time it took.
pub fn wait_for(what: &str, limit: Duration, lab: &Lab, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out after {limit:?} waiting for {what}\n{}",
        lab.logs()
    );
}

/// The whole scenario: adjacency, routes both ways, silence of the peer withdraws within the
/// dead interval, re-convergence, and a SIGTERM flush seen by the peer.
fn scenario(tag: &str, peer: Peer, ptp: bool, auth: Auth) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_tools();
    let mut lab = Lab::new(tag, peer);
    // OSPFD_CAPTURE_DIR=dir: keep a pcap of the fuxi side of the link (used to refresh the
    // byte-exact fixtures under tests/fixtures, see the README there).
    let capture = std::env::var("OSPFD_CAPTURE_DIR").ok();
    if capture.is_some() {
        lab.start_capture("capture.pcap");
    }
    lab.start_peer(ptp, auth);
    lab.start_fuxi(ptp, auth);
    let (a, b) = (lab.ns_a(), lab.ns_b());
    let t_full = wait_for("Full on both sides", Duration::from_secs(60), &lab, || {
        lab.fuxi_full() && lab.peer_full()
    });
    wait_for(
        "routes in both kernels",
        Duration::from_secs(30),
        &lab,
        || {
            lab.route(&a, "172.16.2.0/24").contains("via 10.0.12.2")
                && lab.route(&b, "172.16.1.0/24").contains("via 10.0.12.1")
                && lab.route(&b, "203.0.113.0/24").contains("via 10.0.12.1")
        },
    );
    assert!(lab.route(&a, "172.16.2.0/24").contains("proto ospf"));
    // The peer's loopback too, and fuxi's show commands see it.
    wait_for("peer loopback", Duration::from_secs(10), &lab, || {
        lab.route(&a, "10.255.0.2").contains("via 10.0.12.2")
    });
    let routes = lab.fuxi_cli("show routes");
    assert!(routes.contains("172.16.2.0/24"), "{routes}");
    // The controller's stream: a snapshot of JSON lines, then changes.
    let watch = sh_ok(&format!(
        "timeout 1 {} -s {}/fuxi.sock watch",
        env!("CARGO_BIN_EXE_fuxi-ospfd"),
        lab.dir.display()
    ));
    assert!(
        watch
            .lines()
            .any(|l| l.contains("\"op\":\"add\"") && l.contains("\"prefix\":\"172.16.2.0/24\"")),
        "{watch}"
    );
    // Routes supplied at run time (what the controller does for cluster subnets).
    let r = lab.fuxi_cli(r#"supply '[{"prefix":"198.51.100.0/24","metric":7,"metric_type":1}]'"#);
    assert!(r.contains("\"supplied\":1"), "{r}");
    wait_for(
        "supplied route at the peer",
        Duration::from_secs(10),
        &lab,
        || lab.route(&b, "198.51.100.0/24").contains("via 10.0.12.1"),
    );
    let metrics = lab.fuxi_cli("metrics");
    assert!(metrics.contains("fuxi_ospf_neighbors_full 1"), "{metrics}");
    let http = sh_ok(&format!(
        "ip netns exec {a} bash -c 'exec 3<>/dev/tcp/127.0.0.1/9189; printf \"GET /metrics HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'"
    ));
    assert!(
        http.starts_with("HTTP/1.1 200 OK") && http.contains("fuxi_ospf_neighbors_full 1"),
        "{http}"
    );
    eprintln!(
        "{tag}: Full after {t_full:?}\n{}",
        lab.fuxi_cli("show neighbors")
    );
    // The peer goes silent (SIGSTOP): fuxi withdraws within the dead interval.
    let pid = lab.peer_pid();
    sh(&format!("kill -STOP {pid}"));
    let t = wait_for(
        "withdrawal after peer silence",
        Duration::from_secs(u64::from(DEAD) + 4),
        &lab,
        || !lab.route(&a, "172.16.2.0/24").contains("via"),
    );
    assert!(
        t <= Duration::from_secs(u64::from(DEAD) + 2),
        "withdrawn after {t:?}"
    );
    // It comes back: re-convergence.
    sh(&format!("kill -CONT {pid}"));
    wait_for("re-convergence", Duration::from_secs(60), &lab, || {
        lab.route(&a, "172.16.2.0/24").contains("via 10.0.12.2")
            && lab.fuxi_full()
            && lab.peer_full()
    });
    // SIGTERM: fuxi flushes its LSAs and the peer drops its routes well before the dead interval.
    wait_for("peer route back", Duration::from_secs(30), &lab, || {
        lab.route(&b, "172.16.1.0/24").contains("via 10.0.12.1")
    });
    let st = lab.stop_fuxi();
    assert!(st.success(), "fuxi exit {st:?}");
    if let Some(dir) = capture {
        std::thread::sleep(Duration::from_millis(500));
        lab.stop_capture();
        std::fs::copy(lab.dir.join("capture.pcap"), format!("{dir}/{tag}.pcap")).unwrap();
    }
    assert!(
        !lab.route(&a, "172.16.2.0/24").contains("via"),
        "fuxi left its route behind"
    );
    wait_for(
        "peer withdraws after flush",
        Duration::from_secs(u64::from(DEAD)),
        &lab,
        || {
            !lab.route(&b, "172.16.1.0/24").contains("via")
                && !lab.route(&b, "203.0.113.0/24").contains("via")
        },
    );
    // Restart: re-convergence from scratch.
    let converged = |lab: &Lab| {
        lab.fuxi_full()
            && lab.peer_full()
            && lab.route(&a, "172.16.2.0/24").contains("via 10.0.12.2")
            && lab.route(&b, "172.16.1.0/24").contains("via 10.0.12.1")
    };
    lab.start_fuxi(ptp, auth);
    wait_for(
        "re-convergence after restart",
        Duration::from_secs(30),
        &lab,
        || converged(&lab),
    );
    // SIGKILL leaves LSAs in the peer and routes in our kernel; a new instance must take its
    // LSAs back (higher sequence numbers) and sweep the stale kernel routes.
    lab.kill_fuxi();
    sh(&format!(
        "ip -n {a} route add 192.0.2.0/24 via 10.0.12.2 proto ospf metric 20"
    ));
    lab.start_fuxi(ptp, auth);
    wait_for(
        "re-convergence after SIGKILL",
        Duration::from_secs(30),
        &lab,
        || converged(&lab),
    );
    assert!(
        !lab.route(&a, "192.0.2.0/24").contains("via"),
        "stale route not swept"
    );
}

#[test]
fn frr_broadcast() {
    scenario("fxofb", Peer::Frr, false, Auth::None);
}

#[test]
fn frr_p2p_md5() {
    scenario("fxofp", Peer::Frr, true, Auth::Md5);
}

#[test]
fn bird_broadcast() {
    scenario("fxobb", Peer::Bird, false, Auth::None);
}

#[test]
fn bird_p2p_hmac_sha256() {
    scenario("fxobp", Peer::Bird, true, Auth::HmacSha256);
}

/// Three routers on one LAN with real peers: FRR (10.255.0.2) and BIRD (10.255.0.3) elect
/// BIRD DR and FRR BDR; fuxi then joins with priority 100 and must not take over (DROther,
/// Full with both, routes to both stubs and both peers route to fuxi's). When the DR goes
/// silent, the BDR (FRR) is promoted and fuxi, the best remaining candidate, becomes BDR.
#[test]
fn lan_frr_bird_dr_bdr() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_tools();
    let mut lab = Lab::new_lan("fxolan");
    let (a, b, c) = (lab.ns_a(), lab.ns_b(), format!("{}c", lab.tag));
    let spec = |ns: String, sub, rid, stub| Spec {
        ns,
        sub,
        ifname: "pe0",
        rid,
        link: "10.0.0.0/24",
        stub,
        ptp: false,
        auth: Auth::None,
        prio: 1,
        frr_extra_if: "",
        frr_extra_router: "",
    };
    lab.start_frr(&spec(b.clone(), "b", "10.255.0.2", "172.16.2.0/24"));
    lab.start_bird(&spec(c.clone(), "c", "10.255.0.3", "172.16.3.0/24"));
    let frr = |cmd: &str| {
        sh_ok(&format!(
            "ip netns exec {b} vtysh --vty_socket {}/b -c '{cmd}'",
            lab.dir.display()
        ))
    };
    wait_for(
        "FRR and BIRD adjacent",
        Duration::from_secs(60),
        &lab,
        || frr("show ip ospf neighbor").contains("Full/"),
    );
    let roles = frr("show ip ospf interface pe0");
    assert!(
        roles.contains("Designated Router (ID) 10.255.0.3"),
        "BIRD should be DR: {roles}"
    );
    lab.fuxi_prio = 100;
    lab.start_fuxi(false, Auth::None);
    let fx_if = || lab.fuxi_cli_ok("show interfaces --json");
    let full_count = || {
        lab.fuxi_cli_ok("show neighbors --json")
            .matches("\"Full\"")
            .count()
    };
    wait_for(
        "fuxi Full with DR and BDR",
        Duration::from_secs(60),
        &lab,
        || full_count() == 2,
    );
    let i = fx_if();
    assert!(i.contains("\"state\":\"DROther\""), "{i}");
    assert!(
        i.contains("\"dr\":\"10.0.0.3\"") && i.contains("\"bdr\":\"10.0.0.2\""),
        "{i}"
    );
    wait_for("routes on all three", Duration::from_secs(30), &lab, || {
        lab.route(&a, "172.16.2.0/24").contains("via 10.0.0.2")
            && lab.route(&a, "172.16.3.0/24").contains("via 10.0.0.3")
            && lab.route(&b, "172.16.1.0/24").contains("via 10.0.0.1")
            && lab.route(&c, "172.16.1.0/24").contains("via 10.0.0.1")
    });
    eprintln!("{}", lab.fuxi_cli("show neighbors"));
    // The DR (BIRD) goes silent.
    let bird_pid: u32 = std::fs::read_to_string(lab.dir.join("c/bird.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    sh(&format!("kill -STOP {bird_pid}"));
    wait_for(
        "fuxi promoted to BDR, FRR DR",
        Duration::from_secs(u64::from(DEAD) + 6),
        &lab,
        || {
            let i = fx_if();
            i.contains("\"state\":\"Backup\"") && i.contains("\"dr\":\"10.0.0.2\"")
        },
    );
    wait_for(
        "BIRD's stub withdrawn, FRR's kept",
        Duration::from_secs(10),
        &lab,
        || {
            !lab.route(&a, "172.16.3.0/24").contains("via")
                && lab.route(&a, "172.16.2.0/24").contains("via 10.0.0.2")
        },
    );
    sh(&format!("kill -CONT {bird_pid}"));
}

pub fn bird_full(lab: &Lab, sub: &str) -> bool {
    sh_ok(&format!(
        "birdc -s {}/{sub}/bird.ctl show ospf neighbors",
        lab.dir.display()
    ))
    .contains("Full")
}

pub fn frr_full(lab: &Lab, ns: &str, sub: &str) -> bool {
    sh_ok(&format!(
        "ip netns exec {ns} vtysh --vty_socket {}/{sub} -c 'show ip ospf neighbor'",
        lab.dir.display()
    ))
    .contains("Full")
}

/// ECMP into the kernel: two parallel point-to-point links to FRR. fuxi installs one
/// multipath route with both next hops; when one link goes down the route falls back to the
/// other at once (carrier loss), and FRR also uses both links towards fuxi's stub.
#[test]
fn frr_ecmp_two_links() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_tools();
    let mut lab = Lab::new("fxoec", Peer::Frr);
    let (a, b) = (lab.ns_a(), lab.ns_b());
    sh(&format!(
        "set -e; ip link add fx1 netns {a} type veth peer name pe1 netns {b}
         ip -n {a} addr add 10.0.13.1/30 dev fx1; ip -n {b} addr add 10.0.13.2/30 dev pe1
         ip -n {a} link set fx1 up; ip -n {b} link set pe1 up"
    ));
    let spec = Spec {
        ns: b.clone(),
        sub: "b",
        ifname: "pe0",
        rid: "10.255.0.2",
        link: "10.0.12.0/30",
        stub: "172.16.2.0/24",
        ptp: true,
        auth: Auth::None,
        prio: 1,
        frr_extra_if: Box::leak(
            format!("interface pe1\n ip ospf hello-interval {HELLO}\n ip ospf dead-interval {DEAD}\n ip ospf retransmit-interval 2\n ip ospf network point-to-point\n!\n")
                .into_boxed_str(),
        ),
        frr_extra_router: " network 10.0.13.0/30 area 0\n",
    };
    lab.start_frr(&spec);
    lab.fuxi_extra = format!(
        "\n[[interface]]\nname = \"fx1\"\nnetwork = \"point-to-point\"\nhello_interval = {HELLO}\ndead_interval = {DEAD}\nretransmit_interval = 2\n"
    );
    lab.start_fuxi(true, Auth::None);
    wait_for(
        "multipath routes both ways",
        Duration::from_secs(60),
        &lab,
        || {
            let ra = lab.route(&a, "172.16.2.0/24");
            let rb = lab.route(&b, "172.16.1.0/24");
            ra.contains("nexthop via 10.0.12.2")
                && ra.contains("nexthop via 10.0.13.2")
                && rb.contains("10.0.12.1")
                && rb.contains("10.0.13.1")
        },
    );
    let routes = lab.fuxi_cli("show routes");
    assert!(
        routes.contains("via 10.0.12.2, fx0") && routes.contains("via 10.0.13.2, fx1"),
        "{routes}"
    );
    sh(&format!("ip -n {b} link set pe1 down"));
    let t = wait_for(
        "single path after link down",
        Duration::from_secs(u64::from(DEAD)),
        &lab,
        || {
            let ra = lab.route(&a, "172.16.2.0/24");
            ra.contains("via 10.0.12.2") && !ra.contains("10.0.13.2")
        },
    );
    eprintln!("ECMP fallback after carrier loss: {t:?}");
}

/// Simple password authentication with FRR: adjacency and routes both ways.
#[test]
fn frr_p2p_simple_password() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_tools();
    let mut lab = Lab::new("fxosp", Peer::Frr);
    lab.start_peer(true, Auth::Simple);
    lab.start_fuxi(true, Auth::Simple);
    let (a, b) = (lab.ns_a(), lab.ns_b());
    wait_for(
        "Full and routes with simple auth",
        Duration::from_secs(30),
        &lab,
        || {
            lab.fuxi_full()
                && lab.peer_full()
                && lab.route(&a, "172.16.2.0/24").contains("via 10.0.12.2")
                && lab.route(&b, "172.16.1.0/24").contains("via 10.0.12.1")
        },
    );
}
