//! Test helpers: the daemon as a child process, ovs-ofctl, network namespaces.

use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running fuxi-switchd, killed on drop.
pub struct Switchd {
    child: Child,
    /// OpenFlow listener port on 127.0.0.1.
    pub port: u16,
    /// `tcp:127.0.0.1:PORT`.
    pub target: String,
}

impl Drop for Switchd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nobody listens on now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Switchd {
    /// The child's process id (the daemon's, when started outside a namespace).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the daemon with these extra arguments (ports etc.) and waits until it
    /// accepts OpenFlow connections.
    pub fn start(extra: &[&str]) -> Switchd {
        Self::start_in(None, extra)
    }

    /// Starts the daemon inside network namespace `ns` (if given).
    pub fn start_in(ns: Option<&str>, extra: &[&str]) -> Switchd {
        let port = free_port();
        let bin = env!("CARGO_BIN_EXE_fuxi-switchd");
        let listen = format!("ptcp:{port}:127.0.0.1");
        let mut args: Vec<String> = vec![
            "--listen".into(),
            listen,
            "--datapath-id".into(),
            "0x00000000000000aa".into(),
        ];
        if !extra.contains(&"--mgmt") {
            args.extend(["--mgmt".to_string(), String::new()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(&args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fuxi-switchd");
        let mut sd = Switchd {
            child,
            port,
            target: format!("tcp:127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = match ns {
                None => std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                Some(ns) => Command::new("ip")
                    .args(["netns", "exec", ns, "bash", "-c"])
                    .arg(format!("exec 3<>/dev/tcp/127.0.0.1/{port}"))
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()),
            };
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "fuxi-switchd did not start");
            if let Ok(Some(st)) = sd.child.try_wait() {
                panic!("fuxi-switchd exited at start: {st}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        sd
    }
}

/// Sends `request` (a whole HTTP/1.1 request) to 127.0.0.1:`port`, inside `ns` if given,
/// and returns everything the server answers until it closes the connection.
pub fn http_in(ns: Option<&str>, port: u16, request: &str) -> String {
    match ns {
        None => {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).expect("read reply");
            out
        }
        Some(ns) => {
            let o = Command::new("ip")
                .args(["netns", "exec", ns, "timeout", "10", "bash", "-c"])
                .arg(format!(
                    "exec 3<>/dev/tcp/127.0.0.1/{port}; printf '%s' \"$0\" >&3; cat <&3"
                ))
                .arg(request)
                .output()
                .expect("run bash");
            assert!(o.status.success(), "http to {ns}:{port} failed: {o:?}");
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
    }
}

/// Runs `ovs-ofctl -O OpenFlow13 ARGS` (optionally inside `ns`) and returns its output.
pub fn ofctl_in(ns: Option<&str>, args: &[&str]) -> Output {
    let mut c = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ovs-ofctl"]);
            c
        }
        None => Command::new("ovs-ofctl"),
    };
    c.args(["-O", "OpenFlow13", "-t", "20"])
        .args(args)
        .output()
        .expect("run ovs-ofctl")
}

/// Runs ovs-ofctl and asserts success; returns stdout.
pub fn ofctl_ok_in(ns: Option<&str>, args: &[&str]) -> String {
    let o = ofctl_in(ns, args);
    assert!(
        o.status.success(),
        "ovs-ofctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Installs the two flows (priority 10) that forward between ports 1 and 2.
pub fn forward_1_2(ns: Option<&str>, t: &str) {
    for f in [
        "priority=10,in_port=1,actions=output:2",
        "priority=10,in_port=2,actions=output:1",
    ] {
        ofctl_ok_in(ns, &["add-flow", t, f]);
    }
}

/// [`ofctl_ok_in`] outside any namespace.
pub fn ofctl_ok(args: &[&str]) -> String {
    ofctl_ok_in(None, args)
}

/// Flow lines of a dump-flows output (header dropped), with durations removed.
pub fn flow_lines(dump: &str) -> Vec<String> {
    dump.lines()
        .filter(|l| l.starts_with(' ') && l.contains("actions="))
        .map(|l| {
            l.trim()
                .split(", ")
                .filter(|f| !f.starts_with("duration="))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect()
}

/// `n_packets` of the flow line containing `needle`.
pub fn packets_of(dump: &str, needle: &str) -> Option<u64> {
    let line = dump.lines().find(|l| l.contains(needle))?;
    let v = line.split("n_packets=").nth(1)?;
    v.split(',').next()?.trim().parse().ok()
}

/// Whether a test that needs root (network namespaces, veth pairs, packet sockets) may
/// run. As root: true. Otherwise the test fails, saying so, unless the environment sets
/// `FUXI_SKIP_ROOT_TESTS=1`: then it prints a loud SKIPPED line and this returns false
/// (the caller returns, and the harness reports a pass).
pub fn root_or_skip() -> bool {
    if is_root() {
        return true;
    }
    // The test harness names each test's thread after the test.
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("this test");
    if std::env::var("FUXI_SKIP_ROOT_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("*** SKIPPED {test}: needs root (FUXI_SKIP_ROOT_TESTS=1) ***");
        return false;
    }
    panic!(
        "{test} needs root (network namespaces, veth pairs, packet sockets): run the tests \
         as root, or set FUXI_SKIP_ROOT_TESTS=1 to skip the tests that need it"
    );
}

/// The switch namespace topology of [`Topo::new`] with `n` hosts and fuxi-switchd running
/// in it on ports `s1=1 .. sN=N`; None when the test is skipped (see [`root_or_skip`]).
pub fn setup_switch(tag: &str, n: usize) -> Option<(Topo, Switchd)> {
    if !root_or_skip() {
        return None;
    }
    let topo = Topo::new(tag, n);
    let sd = Switchd::on_ports(&topo, &[]);
    Some((topo, sd))
}

impl Switchd {
    /// Starts the daemon in `topo`'s switch namespace on its ports `s1=1 .. sN=N`, with
    /// `extra` arguments.
    pub fn on_ports(topo: &Topo, extra: &[&str]) -> Switchd {
        let mut args: Vec<String> = (1..=topo.hosts.len())
            .flat_map(|i| ["--port".into(), format!("s{i}={i}")])
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Switchd::start_in(Some(&topo.sw), &args)
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a command, asserting success.
pub fn sh(cmd: &str) {
    let s = Command::new("bash").args(["-c", cmd]).status().unwrap();
    assert!(s.success(), "command failed: {cmd}");
}

/// Runs a command, returning whether it succeeded (output hidden).
pub fn sh_ok(cmd: &str) -> bool {
    Command::new("bash")
        .args(["-c", cmd])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A test topology: namespace `sw` holds the switch's veth ends `s1..sN`; host namespaces
/// `h1..hN` hold `v1..vN` with 10.9.0.i/24 and MAC 02:00:00:00:00:0i. Everything is
/// removed on drop (also when the test panics).
pub struct Topo {
    /// Switch namespace.
    pub sw: String,
    /// Host namespaces.
    pub hosts: Vec<String>,
}

impl Topo {
    pub fn new(tag: &str, n: usize) -> Topo {
        Self::with_prefix("fxsw", tag, n)
    }

    /// As [`Topo::new`], with namespaces named `PREFIX TAG PID ...`.
    pub fn with_prefix(prefix: &str, tag: &str, n: usize) -> Topo {
        let id = std::process::id() % 100_000;
        let sw = format!("{prefix}{tag}{id}s");
        let hosts: Vec<String> = (1..=n).map(|i| format!("{prefix}{tag}{id}h{i}")).collect();
        let t = Topo { sw, hosts };
        t.cleanup();
        sh(&format!("ip netns add {}", t.sw));
        sh(&format!("ip -n {} link set lo up", t.sw));
        let _ = sh_ok(&format!(
            "ip netns exec {} sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
            t.sw
        ));
        for (i, h) in t.hosts.iter().enumerate() {
            let i = i + 1;
            sh(&format!("ip netns add {h}"));
            let _ = sh_ok(&format!(
                "ip netns exec {h} sysctl -qw net.ipv6.conf.all.disable_ipv6=1"
            ));
            sh(&format!(
                "ip -n {h} link add v{i} type veth peer name s{i} netns {}",
                t.sw
            ));
            sh(&format!(
                "ip -n {h} link set v{i} address 02:00:00:00:00:0{i}"
            ));
            sh(&format!("ip -n {h} addr add 10.9.0.{i}/24 dev v{i}"));
            sh(&format!("ip -n {h} link set v{i} up"));
            sh(&format!("ip -n {h} link set lo up"));
            sh(&format!("ip -n {} link set s{i} up", t.sw));
            // Static neighbours: tests do not depend on ARP unless they want to.
            for j in 1..=n {
                if j != i {
                    sh(&format!(
                        "ip -n {h} neigh add 10.9.0.{j} lladdr 02:00:00:00:00:0{j} dev v{i}"
                    ));
                }
            }
        }
        t
    }

    fn cleanup(&self) {
        for ns in std::iter::once(&self.sw).chain(&self.hosts) {
            let _ = sh_ok(&format!("ip netns del {ns}"));
        }
    }

    /// Whether host `from` (1-based) can ping 10.9.0.`to`.
    pub fn ping(&self, from: usize, to: usize) -> bool {
        sh_ok(&format!(
            "ip netns exec {} ping -c 1 -W 1 10.9.0.{to}",
            self.hosts[from - 1]
        ))
    }

    /// Ping that retries a few times (first packets may meet a cold cache/ARP).
    pub fn ping_eventually(&self, from: usize, to: usize) -> bool {
        (0..4).any(|_| self.ping(from, to))
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// A controller connection to the switch listening on 127.0.0.1:`port` inside namespace
/// `ns`, on its own thread: says HELLO, then hands every message it receives to `pick`
/// until `pick` returns a value or 15 s pass.
pub fn watch_controller<T: Send + 'static>(
    ns: String,
    port: u16,
    what: &'static str,
    mut pick: impl FnMut(fuxi_openflow::Message) -> Option<T> + Send + 'static,
) -> std::thread::JoinHandle<Result<T, String>> {
    use fuxi_openflow::{Framer, Message};
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        fuxi_dataplane::port::netns::run_in(&ns, move || -> Result<T, String> {
            let mut s =
                std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            let hello = Message::Hello(fuxi_openflow::msg::Hello::ofp13()).to_vec(1);
            s.write_all(&hello).map_err(|e| e.to_string())?;
            let mut f = Framer::new();
            let mut buf = [0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                let n = match s.read(&mut buf) {
                    Ok(0) => return Err("closed".into()),
                    Ok(n) => n,
                    Err(_) => continue,
                };
                f.push(&buf[..n]);
                while let Ok(Some(fr)) = f.next_frame() {
                    if let Ok((_, m)) = Message::decode(&fr)
                        && let Some(v) = pick(m)
                    {
                        return Ok(v);
                    }
                }
            }
            Err(format!("no {what}"))
        })
        .map_err(|e| e.to_string())
        .and_then(|r| r)
    })
}

/// A raw OpenFlow 1.3 connection to a switch, for tests that play the controller: HELLO
/// sent on connect; messages sent and awaited one by one.
pub struct OfConn {
    s: std::net::TcpStream,
    f: fuxi_openflow::Framer,
}

impl OfConn {
    /// Connects to 127.0.0.1:`port` inside namespace `ns` (here if none).
    pub fn connect(ns: Option<&str>, port: u16) -> OfConn {
        let s = match ns {
            None => std::net::TcpStream::connect(("127.0.0.1", port)),
            Some(ns) => fuxi_dataplane::port::netns::run_in(ns, move || {
                std::net::TcpStream::connect(("127.0.0.1", port))
            })
            .expect("enter the namespace"),
        }
        .expect("connect to the switch");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut c = OfConn {
            s,
            f: fuxi_openflow::Framer::new(),
        };
        c.send(
            1,
            &fuxi_openflow::Message::Hello(fuxi_openflow::msg::Hello::ofp13()),
        );
        c
    }

    /// Sends `m` with `xid`.
    pub fn send(&mut self, xid: u32, m: &fuxi_openflow::Message) {
        self.send_raw(&m.to_vec(xid));
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.s.write_all(bytes).expect("send to the switch");
    }

    /// Reads messages until `pick` returns a value for one (given its xid); panics after
    /// 10 s or when the switch closes the connection.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(u32, fuxi_openflow::Message) -> Option<T>,
    ) -> T {
        use std::io::Read;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 65536];
        loop {
            while let Some(fr) = self.f.next_frame().expect("framing") {
                let (h, m) = fuxi_openflow::Message::decode(&fr).expect("decode");
                if let Some(v) = pick(h.xid, m) {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "no {what} within 10 s");
            match self.s.read(&mut buf) {
                Ok(0) => panic!("the switch closed the connection waiting for {what}"),
                Ok(n) => self.f.push(&buf[..n]),
                Err(_) => {}
            }
        }
    }

    /// Sends a barrier and returns every message that came before its reply (xid, message).
    pub fn barrier(&mut self, xid: u32) -> Vec<(u32, fuxi_openflow::Message)> {
        self.send(xid, &fuxi_openflow::Message::BarrierRequest);
        let mut seen = Vec::new();
        self.wait_for("barrier reply", |x, m| {
            if x == xid && m == fuxi_openflow::Message::BarrierReply {
                return Some(());
            }
            seen.push((x, m));
            None
        });
        seen
    }
}

/// The error code of the ERROR with `xid` among `msgs`, if any.
pub fn error_for(
    msgs: &[(u32, fuxi_openflow::Message)],
    xid: u32,
) -> Option<fuxi_openflow::ErrorCode> {
    msgs.iter().find_map(|(x, m)| match m {
        fuxi_openflow::Message::Error(e) if *x == xid => Some(e.code),
        _ => None,
    })
}

/// tcpdump on interface `dev` inside namespace `ns`: text lines (`-e -n`) of the first
/// `count` packets matching `filter`, written to a file until [`Capture::lines`].
pub struct Capture {
    child: Child,
    path: std::path::PathBuf,
}

impl Capture {
    /// Starts the capture and waits until tcpdump listens.
    pub fn start(ns: &str, dev: &str, count: usize, filter: &str) -> Capture {
        let path = std::env::temp_dir().join(format!(
            "fxsw-cap-{}-{ns}-{}.txt",
            std::process::id(),
            free_port()
        ));
        let err = path.with_extension("err");
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "timeout", "15", "tcpdump", "-l", "-e", "-n",
            ])
            .args(["-c", &count.to_string(), "-i", dev, filter])
            .stdout(std::fs::File::create(&path).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .expect("run tcpdump");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !std::fs::read_to_string(&err).is_ok_and(|s| s.contains("listening on")) {
            assert!(Instant::now() < deadline, "tcpdump did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_file(&err);
        Capture { child, path }
    }

    /// Waits (at most until tcpdump's 15 s timeout) for the packets and returns the lines.
    pub fn lines(mut self) -> Vec<String> {
        let _ = self.child.wait();
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.path);
    }
}
