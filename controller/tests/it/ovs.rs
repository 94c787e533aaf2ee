//! A private Open vSwitch (userspace datapath) in a network namespace, and helpers to run
//! `fuxi-ofctl` and the real `ovs-ofctl` against it. Needs root and Open vSwitch: when either
//! is missing the tests fail (they never skip).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/ovs_env.sh");
const FUXI: &str = env!("CARGO_BIN_EXE_fuxi-ofctl");

/// Placeholder for the switch target in argument lists.
pub const TGT: &str = "@TGT@";

/// One running Open vSwitch; stopped (by pidfile) and its namespace deleted on drop.
pub struct Ovs {
    pub ns: String,
    pub dir: PathBuf,
}

/// The result of one command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics with the output unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Ovs {
    /// Starts OVS with `ports` veth ports (OpenFlow ports 1..=ports). `tag` names the
    /// namespace (with the process id and a sequence number, so parallel runs never clash).
    pub fn start(tag: &str, ports: u32) -> Ovs {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let ns = format!("fxct-{tag}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&ns);
        let ovs = Ovs { ns, dir };
        let o = ovs.script("start", ports);
        assert!(
            o.status.success(),
            "could not start Open vSwitch (are openvswitch-switch installed and we root?):\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        ovs
    }

    fn script(&self, verb: &str, ports: u32) -> Output {
        Command::new("bash")
            .arg(SCRIPT)
            .arg(verb)
            .env("NS", &self.ns)
            .env("W", &self.dir)
            .env("PORTS", ports.to_string())
            .stdin(Stdio::null())
            .output()
            .expect("bash runs")
    }

    /// The management socket of br0 (reachable from outside the namespace).
    pub fn mgmt(&self) -> String {
        format!("unix:{}/run/br0.mgmt", self.dir.display())
    }

    /// Runs `fuxi-ofctl ARGS` inside the namespace, `TGT` meaning tcp:127.0.0.1:6653.
    pub fn fuxi(&self, args: &[&str]) -> Out {
        self.fuxi_stdin(args, None)
    }

    /// As [`Ovs::fuxi`], feeding `stdin`.
    pub fn fuxi_stdin(&self, args: &[&str], stdin: Option<&str>) -> Out {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == TGT { "tcp:127.0.0.1:6653" } else { *a })
            .collect();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, FUXI]).args(&args);
        run(cmd, stdin)
    }

    /// Runs `fuxi-ofctl ARGS` outside the namespace, `TGT` meaning the management socket.
    pub fn fuxi_unix(&self, args: &[&str]) -> Out {
        let mgmt = self.mgmt();
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == TGT { mgmt.as_str() } else { *a })
            .collect();
        let mut cmd = Command::new(FUXI);
        cmd.args(&args);
        run(cmd, None)
    }

    /// Runs `ovs-vsctl ARGS` against this instance's database.
    pub fn vsctl(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new("ovs-vsctl");
        cmd.args(args)
            .env("OVS_RUNDIR", self.dir.join("run"))
            .env("OVS_DBDIR", self.dir.join("db"))
            .env("OVS_LOGDIR", self.dir.join("log"))
            .env("OVS_SYSCONFDIR", self.dir.join("etc"));
        run(cmd, None)
    }

    /// Runs the real `ovs-ofctl -O OpenFlow13 ARGS` inside the namespace.
    pub fn ovs_ofctl(&self, args: &[&str]) -> Out {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == TGT { "tcp:127.0.0.1:6653" } else { *a })
            .collect();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "ovs-ofctl", "-O", "OpenFlow13"])
            .args(&args);
        run(cmd, None)
    }
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Out {
    use std::io::Write;
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("command starts");
    if let Some(s) = stdin {
        let mut i = child.stdin.take().expect("piped");
        i.write_all(s.as_bytes()).expect("stdin written");
    }
    Out::from(child.wait_with_output().expect("command runs"))
}

impl Drop for Ovs {
    fn drop(&mut self) {
        let _ = self.script("stop", 0);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Output with what legitimately differs between two dumps blanked: xids, durations and
/// ovs-ofctl's log lines.
pub fn normalize(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        let mut l = line.to_string();
        for key in ["xid=0x", "duration=", "duration:", "duration"] {
            l = blank_after(&l, key);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Replaces the token after each `key` (up to `,`, `)`, space or end) with `*`.
fn blank_after(s: &str, key: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let end = rest.find([',', ')', ' ']).unwrap_or(rest.len());
        out.push('*');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The flow lines of a dump-flows output, normalized and sorted (the header dropped).
pub fn flow_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = normalize(s)
        .lines()
        .filter(|l| l.starts_with(' '))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}
