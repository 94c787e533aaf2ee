//! The daemon's configuration: the TOML file (see `fuxi-switchd.sample.toml`), command-line
//! overrides, and validation with messages that name the offending key.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// A datapath id as written: an integer or a (hex) string.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum DpidText {
    /// `datapath_id = 42`
    Int(u64),
    /// `datapath_id = "0x2a"` or `"42"`
    Text(String),
}

/// Port types.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortType {
    /// An existing Linux interface through AF_PACKET.
    Afpacket,
    /// A TAP device the switch creates.
    Tap,
    /// A userspace VXLAN tunnel.
    Vxlan,
    /// An existing Linux interface through an AF_XDP socket (needs the cargo feature
    /// `afxdp`).
    Afxdp,
}

/// XDP attach modes an `afxdp` port accepts (Open vSwitch's `options:xdp-mode` names).
pub const XDP_MODES: [&str; 4] = ["best-effort", "native-with-zerocopy", "native", "generic"];

/// One `[[ports]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Interface name.
    pub name: String,
    /// OpenFlow port number (1..=0xffffff00); 0 or absent: the next free one.
    #[serde(default)]
    pub ofport: u32,
    /// Type (default afpacket).
    #[serde(default = "default_port_type", rename = "type")]
    pub port_type: PortType,
    /// VXLAN: local "IP[:PORT]" to bind (default 0.0.0.0:4789).
    #[serde(default)]
    pub local: Option<String>,
    /// VXLAN: remote "IP[:PORT]" (port default 4789).
    #[serde(default)]
    pub remote: Option<String>,
    /// AF_XDP: attach mode, one of [`XDP_MODES`] (default best-effort).
    #[serde(default)]
    pub xdp_mode: Option<String>,
}

fn default_port_type() -> PortType {
    PortType::Afpacket
}

/// The file as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Bridge name.
    pub bridge: Option<String>,
    /// Datapath id.
    pub datapath_id: Option<DpidText>,
    /// "ptcp:PORT[:IP]".
    pub listen: Option<String>,
    /// "tcp:HOST:PORT" each.
    #[serde(default)]
    pub controllers: Vec<String>,
    /// "secure" or "standalone".
    pub fail_mode: Option<String>,
    /// Standalone: seconds without any controller connection before the switch falls
    /// back to NORMAL forwarding (default 15: Open vSwitch's three inactivity probes).
    pub fail_open_delay: Option<u32>,
    /// Seconds a learned MAC stays without traffic (NORMAL; default 300, as Open vSwitch's
    /// `mac-aging-time`).
    pub mac_aging_time: Option<u32>,
    /// Most MACs learned (NORMAL; default 2048, as Open vSwitch's `mac-table-size`).
    pub mac_table_size: Option<usize>,
    /// Datapath threads.
    pub threads: Option<usize>,
    /// CPUs to pin datapath threads to: thread i runs on `cpus[i % len]` (default: none).
    #[serde(default)]
    pub cpus: Vec<usize>,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// Management socket path (default /run/fuxi/BRIDGE.mgmt; "" for none).
    pub mgmt: Option<String>,
    /// How AF_PACKET ports receive: "mmsg" (recvmmsg, default), "ring" (TPACKET_V3) or
    /// "zc" (a TPACKET_V2 ring whose frames are forwarded without a copy of the switch's).
    pub rx_mode: Option<String>,
    /// How datapath threads wait for packets: "adaptive" (default) or "always".
    pub poll_mode: Option<String>,
    /// Adaptive mode: µs of busy-polling after the last packet before sleeping (200;
    /// unused by "always").
    pub spin_us: Option<u64>,
    /// Adaptive mode: the longest the busy-poll window grows to when packets keep
    /// arriving soon after the thread went to sleep (µs; `spin_us` = never grows).
    pub spin_max_us: Option<u64>,
    /// Prometheus `/metrics` listener "IP:PORT" (default: none).
    pub metrics: Option<String>,
    /// Kernel flow table in front of the caches: "auto" (default), "tc" or "none".
    pub offload: Option<String>,
}

/// Fail mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Keep flows, no fallback forwarding.
    Secure,
    /// While no controller connection is up (none configured, or all lost for
    /// `fail_open_delay`), a priority-0 `actions=NORMAL` flow in table 0 makes the switch
    /// a learning switch; it goes when a controller connects (Open vSwitch's fail-open).
    Standalone,
}

/// How AF_PACKET ports receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RxMode {
    /// `recvmmsg` into the switch's buffers.
    #[default]
    Mmsg,
    /// A TPACKET_V3 ring, copied out of.
    Ring,
    /// A TPACKET_V2 ring whose frames the datapath borrows and egress ports send from
    /// (`AfPacketConfig::rx_zc`); falls back to `recvmmsg` on a port that receives a
    /// frame bigger than a ring frame (BIG TCP).
    Zc,
}

/// How a datapath thread waits when its ports have nothing to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollMode {
    /// Keep polling for a window after the last round that found a packet, then sleep in
    /// poll(2) on the ports' descriptors: an idle switch uses no CPU. The window starts at
    /// `spin` and doubles, up to `spin_max`, each time packets wake the thread within
    /// `spin_max` of the last ones (traffic whose gaps a longer window would have covered);
    /// it falls back to `spin` when a gap is longer or a sleep ends with nothing
    /// (as KVM grows and shrinks its halt-polling window).
    Adaptive {
        /// The busy-poll window it starts from and falls back to.
        spin: Duration,
        /// The longest the window grows to.
        spin_max: Duration,
    },
    /// Never sleep (Open vSwitch PMD style): a thread takes its whole core, idle or not,
    /// and no packet waits for a wake-up.
    Always,
}

/// The default busy-poll window of [`PollMode::Adaptive`].
pub const DEFAULT_SPIN: Duration = Duration::from_micros(200);

/// The default longest busy-poll window of [`PollMode::Adaptive`].
pub const DEFAULT_SPIN_MAX: Duration = Duration::from_millis(20);

/// The longest busy-poll window `spin_us` and `spin_max_us` accept (1 s).
pub const MAX_SPIN_US: u64 = 1_000_000;

/// The validated configuration the daemon runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bridge name.
    pub bridge: String,
    /// Datapath id.
    pub datapath_id: u64,
    /// Passive OpenFlow listener.
    pub listen: Option<SocketAddr>,
    /// Active controller connections.
    pub controllers: Vec<SocketAddr>,
    /// Fail mode.
    pub fail_mode: FailMode,
    /// Standalone: how long all controllers may be down before NORMAL takes over, seconds.
    pub fail_open_delay: u32,
    /// MAC aging time, seconds (≥ 1).
    pub mac_aging_time: u32,
    /// MAC table size (≥ 1).
    pub mac_table_size: usize,
    /// Datapath threads (≥ 1).
    pub threads: usize,
    /// CPUs datapath threads are pinned to, round-robin (empty: not pinned).
    pub cpus: Vec<usize>,
    /// Ports, numbers assigned.
    pub ports: Vec<PortConfig>,
    /// Management socket path, if any.
    pub mgmt: Option<String>,
    /// How AF_PACKET ports receive.
    pub rx_mode: RxMode,
    /// How datapath threads wait for packets.
    pub poll_mode: PollMode,
    /// Prometheus `/metrics` listener, if any.
    pub metrics: Option<SocketAddr>,
    /// Whether forwarding-only microflows between AF_PACKET ports go to the kernel.
    pub offload: Offload,
}

/// Where microflows whose megaflow only forwards may be forwarded
/// ([`fuxi_dataplane::cache::kernel`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Offload {
    /// Every packet through the datapath threads.
    None,
    /// A tcx program on each AF_PACKET port's ingress redirects them in the kernel; the
    /// switch does not start if the kernel refuses.
    Tc,
    /// As `Tc` where the kernel allows it (tcx: Linux 6.6), else as `None`, with a
    /// warning; `None` with `rx_mode = "zc"`.
    #[default]
    Auto,
}

/// CPU numbers accepted in `cpus` (the size of a Linux `cpu_set_t`).
pub const MAX_CPUS: usize = 1024;

/// Parses a CPU list as `taskset -c` writes it: "0,2-3".
pub fn parse_cpus(s: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("`{s}` is not a CPU list like 0,2-3");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().with_context(bad)?, b.parse().with_context(bad)?);
                if a > b || b >= MAX_CPUS {
                    bail!("{}", bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().with_context(bad)?),
        }
    }
    Ok(out)
}

/// The UDP port VXLAN endpoints default to.
pub const VXLAN_UDP_PORT: u16 = 4789;

/// Parses a tunnel endpoint: "IP", "IP:PORT" or "[IPv6]:PORT"; the port defaults to 4789.
pub fn parse_endpoint(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s
        .trim_matches(['[', ']'])
        .parse()
        .with_context(|| format!("`{s}` is not IP, IP:PORT or [IPv6]:PORT"))?;
    Ok(SocketAddr::new(ip, VXLAN_UDP_PORT))
}

/// Parses "ptcp:PORT[:IP]" (IP defaults to 127.0.0.1).
pub fn parse_listen(s: &str) -> Result<SocketAddr> {
    let Some(rest) = s.strip_prefix("ptcp:") else {
        bail!("`{s}` is not ptcp:PORT[:IP]");
    };
    let (port, ip) = match rest.split_once(':') {
        Some((p, ip)) => (p, ip.trim_matches(['[', ']'])),
        None => (rest, "127.0.0.1"),
    };
    let port: u16 = port.parse().with_context(|| format!("bad port in `{s}`"))?;
    let ip: IpAddr = ip
        .parse()
        .with_context(|| format!("bad address in `{s}`"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Parses "tcp:HOST:PORT" (HOST an IP address).
pub fn parse_controller(s: &str) -> Result<SocketAddr> {
    let Some(rest) = s.strip_prefix("tcp:") else {
        bail!("`{s}` is not tcp:HOST:PORT");
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        bail!("`{s}` is not tcp:HOST:PORT");
    };
    let port: u16 = port.parse().with_context(|| format!("bad port in `{s}`"))?;
    let ip: IpAddr = host
        .trim_matches(['[', ']'])
        .parse()
        .with_context(|| format!("bad address in `{s}`"))?;
    Ok(SocketAddr::new(ip, port))
}

/// Parses a datapath id: decimal, or hex with 0x, or 16 hex digits.
pub fn parse_dpid(s: &str) -> Result<u64> {
    let t = s.trim();
    let r = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16)
    } else if t.len() == 16 {
        u64::from_str_radix(t, 16)
    } else {
        t.parse()
    };
    r.with_context(|| format!("`{s}` is not a datapath id (decimal or 0xHEX)"))
}

impl FileConfig {
    /// Reads and parses a TOML file; errors name the file, line and key.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("bad config {}", path.display()))
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<FileConfig> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Validates into a [`Config`]; errors name the key.
    pub fn validate(self) -> Result<Config> {
        let bridge = self.bridge.unwrap_or_else(|| "br0".to_string());
        if bridge.is_empty() || bridge.len() > 15 || bridge.contains('/') {
            bail!("key `bridge`: `{bridge}` must be 1-15 characters without '/'");
        }
        let datapath_id = match self.datapath_id {
            None => 1,
            Some(DpidText::Int(n)) => n,
            Some(DpidText::Text(s)) => parse_dpid(&s).context("key `datapath_id`")?,
        };
        let listen = match self.listen.as_deref() {
            None => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 6653)),
            Some("" | "none") => None,
            Some(s) => Some(parse_listen(s).context("key `listen`")?),
        };
        let controllers = self
            .controllers
            .iter()
            .enumerate()
            .map(|(i, c)| parse_controller(c).with_context(|| format!("key `controllers[{i}]`")))
            .collect::<Result<Vec<_>>>()?;
        let fail_mode = match self.fail_mode.as_deref() {
            None | Some("secure") => FailMode::Secure,
            Some("standalone") => FailMode::Standalone,
            Some(o) => bail!("key `fail_mode`: `{o}` is not secure or standalone"),
        };
        let fail_open_delay = self.fail_open_delay.unwrap_or(15);
        let mac_aging_time = self.mac_aging_time.unwrap_or(300);
        if mac_aging_time == 0 {
            bail!("key `mac_aging_time`: must be at least 1 second");
        }
        let mac_table_size = self.mac_table_size.unwrap_or(2048);
        if mac_table_size == 0 || mac_table_size > 1_000_000 {
            bail!("key `mac_table_size`: {mac_table_size} is not in 1..=1000000");
        }
        let threads = self.threads.unwrap_or(1);
        if threads == 0 || threads > 64 {
            bail!("key `threads`: {threads} is not in 1..=64");
        }
        for (i, &c) in self.cpus.iter().enumerate() {
            if c >= MAX_CPUS {
                bail!("key `cpus[{i}]`: {c} is not a CPU number below {MAX_CPUS}");
            }
            if self.cpus[..i].contains(&c) {
                bail!("key `cpus[{i}]`: CPU {c} is listed twice");
            }
        }
        let cpus = self.cpus;
        let mut ports = self.ports;
        let mut used: Vec<u32> = ports.iter().map(|p| p.ofport).filter(|&n| n != 0).collect();
        for (i, p) in ports.iter_mut().enumerate() {
            if p.name.is_empty() || p.name.len() > 15 {
                bail!(
                    "key `ports[{i}].name`: `{}` must be 1-15 characters",
                    p.name
                );
            }
            if p.ofport > fuxi_openflow::consts::OFPP_MAX {
                bail!("key `ports[{i}].ofport`: {} is above 0xffffff00", p.ofport);
            }
            if p.ofport == 0 {
                let n = (1..).find(|n| !used.contains(n)).unwrap_or(1);
                p.ofport = n;
                used.push(n);
            }
            if p.port_type == PortType::Vxlan {
                let remote = match &p.remote {
                    None => bail!("key `ports[{i}].remote`: a vxlan port needs it"),
                    Some(s) => {
                        parse_endpoint(s).with_context(|| format!("key `ports[{i}].remote`"))?
                    }
                };
                let local = match &p.local {
                    None if remote.is_ipv6() => {
                        SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), VXLAN_UDP_PORT)
                    }
                    None => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), VXLAN_UDP_PORT),
                    Some(s) => {
                        parse_endpoint(s).with_context(|| format!("key `ports[{i}].local`"))?
                    }
                };
                // Normalised, so the port opener parses plain socket addresses.
                p.remote = Some(remote.to_string());
                p.local = Some(local.to_string());
            } else if p.local.is_some() || p.remote.is_some() {
                bail!("key `ports[{i}].local`/`remote`: only vxlan ports have them");
            }
            if p.port_type == PortType::Afxdp {
                if !cfg!(feature = "afxdp") {
                    bail!(
                        "key `ports[{i}].type`: afxdp ports need fuxi-switchd built with \
                         `--features afxdp`"
                    );
                }
                if let Some(m) = &p.xdp_mode
                    && !XDP_MODES.contains(&m.as_str())
                {
                    bail!(
                        "key `ports[{i}].xdp_mode`: `{m}` is not one of {}",
                        XDP_MODES.join(", ")
                    );
                }
            } else if p.xdp_mode.is_some() {
                bail!("key `ports[{i}].xdp_mode`: only afxdp ports have it");
            }
        }
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].iter().any(|q| q.ofport == p.ofport) {
                bail!("key `ports[{i}].ofport`: {} is used twice", p.ofport);
            }
            if ports[..i].iter().any(|q| q.name == p.name) {
                bail!("key `ports[{i}].name`: `{}` is used twice", p.name);
            }
        }
        let rx_mode = match self.rx_mode.as_deref() {
            Some("ring") => RxMode::Ring,
            None | Some("mmsg") => RxMode::Mmsg,
            Some("zc") => RxMode::Zc,
            Some(o) => bail!("key `rx_mode`: `{o}` is not mmsg, ring or zc"),
        };
        let spin = match self.spin_us {
            None => DEFAULT_SPIN,
            Some(us) if us <= MAX_SPIN_US => Duration::from_micros(us),
            Some(us) => bail!("key `spin_us`: {us} is above {MAX_SPIN_US} (1 s)"),
        };
        let spin_max = match self.spin_max_us {
            None => DEFAULT_SPIN_MAX.max(spin),
            Some(us) if us > MAX_SPIN_US => {
                bail!("key `spin_max_us`: {us} is above {MAX_SPIN_US} (1 s)")
            }
            Some(us) if Duration::from_micros(us) < spin => {
                bail!(
                    "key `spin_max_us`: {us} is below spin_us ({})",
                    spin.as_micros()
                )
            }
            Some(us) => Duration::from_micros(us),
        };
        let poll_mode = match self.poll_mode.as_deref() {
            None | Some("adaptive") => PollMode::Adaptive { spin, spin_max },
            Some("always") => PollMode::Always,
            Some(o) => bail!("key `poll_mode`: `{o}` is not adaptive or always"),
        };
        let offload = match self.offload.as_deref() {
            Some("none") => Offload::None,
            None | Some("auto") if rx_mode == RxMode::Zc => Offload::None,
            None | Some("auto") => Offload::Auto,
            Some("tc") if rx_mode == RxMode::Zc => {
                bail!("key `offload`: \"tc\" needs rx_mode mmsg or ring, not zc")
            }
            Some("tc") => Offload::Tc,
            Some(o) => bail!("key `offload`: `{o}` is not auto, tc or none"),
        };
        let mgmt = match self.mgmt {
            Some(s) if s.is_empty() => None,
            Some(s) => Some(s),
            None => Some(format!("/run/fuxi/{bridge}.mgmt")),
        };
        let metrics = match self.metrics.as_deref() {
            None | Some("" | "none") => None,
            Some(s) => Some(
                s.parse::<SocketAddr>()
                    .with_context(|| format!("key `metrics`: `{s}` is not IP:PORT"))?,
            ),
        };
        Ok(Config {
            metrics,
            cpus,
            bridge,
            datapath_id,
            listen,
            controllers,
            fail_mode,
            fail_open_delay,
            mac_aging_time,
            mac_table_size,
            threads,
            ports,
            mgmt,
            rx_mode,
            poll_mode,
            offload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_parses() {
        let text = include_str!("../fuxi-switchd.sample.toml");
        let c = FileConfig::parse(text).unwrap().validate().unwrap();
        assert_eq!(c.bridge, "br0");
        assert_eq!(c.datapath_id, 0xf001);
        assert_eq!(c.listen, Some("127.0.0.1:6653".parse().unwrap()));
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[1].ofport, 2);
        assert_eq!(c.metrics, None, "metrics are off by default");
        assert!(c.cpus.is_empty(), "threads are not pinned by default");
        assert_eq!(
            c.poll_mode,
            PollMode::Adaptive {
                spin: DEFAULT_SPIN,
                spin_max: DEFAULT_SPIN_MAX
            },
            "datapath threads sleep when idle by default"
        );
        // The commented-out examples (`# key = value` with a lower-case key) parse too.
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| {
                        r.starts_with("[[")
                            || r.split_once(" = ").is_some_and(|(k, _)| {
                                k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                            })
                    })
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = FileConfig::parse(&uncommented).unwrap().validate().unwrap();
        assert_eq!(c.metrics, Some("127.0.0.1:9653".parse().unwrap()));
        assert_eq!(c.cpus, vec![0, 1]);
        assert_eq!(c.ports[2].remote.as_deref(), Some("192.0.2.2:4789"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = FileConfig::parse("bridge = \"b\"\nlisten = 5\n").unwrap_err();
        assert!(format!("{e:#}").contains("listen"), "{e:#}");
        let e = FileConfig::parse("bogus = 1\n").unwrap_err();
        assert!(format!("{e:#}").contains("bogus"), "{e:#}");
        let e = FileConfig::parse("listen = \"tcp:1\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(format!("{e:#}").contains("key `listen`"), "{e:#}");
        let e = FileConfig::parse(
            "[[ports]]\nname = \"a\"\nofport = 1\n[[ports]]\nname = \"b\"\nofport = 1\n",
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(format!("{e:#}").contains("ports[1].ofport"), "{e:#}");
        let e = FileConfig::parse("[[ports]]\nname = \"a\"\ntype = \"vxlan\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(format!("{e:#}").contains("ports[0].remote"), "{e:#}");
        let e = FileConfig::parse("metrics = \"localhost\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(format!("{e:#}").contains("key `metrics`"), "{e:#}");
        let v = |t: &str| FileConfig::parse(t).unwrap().validate();
        let e = v("offload = \"xdp\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("key `offload`"), "{e:#}");
        let e = v("offload = \"tc\"\nrx_mode = \"zc\"\n").unwrap_err();
        assert!(format!("{e:#}").contains("needs rx_mode"), "{e:#}");
        assert_eq!(v("offload = \"tc\"\n").unwrap().offload, Offload::Tc);
        assert_eq!(v("").unwrap().offload, Offload::Auto);
        assert_eq!(v("rx_mode = \"zc\"\n").unwrap().offload, Offload::None);
        assert_eq!(v("offload = \"none\"\n").unwrap().offload, Offload::None);
    }

    #[test]
    fn vxlan_endpoints_default_to_4789() {
        let c = FileConfig::parse(
            "[[ports]]\nname = \"vx\"\ntype = \"vxlan\"\nremote = \"192.0.2.2\"\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        assert_eq!(c.ports[0].remote.as_deref(), Some("192.0.2.2:4789"));
        assert_eq!(c.ports[0].local.as_deref(), Some("0.0.0.0:4789"));
        assert_eq!(parse_endpoint("[::1]:5").unwrap().to_string(), "[::1]:5");
        assert_eq!(parse_endpoint("::1").unwrap().to_string(), "[::1]:4789");
        assert!(parse_endpoint("nope").is_err());
    }

    #[test]
    fn afxdp_ports() {
        let text = "[[ports]]\nname = \"a\"\ntype = \"afxdp\"\nxdp_mode = \"generic\"\n";
        let r = FileConfig::parse(text).unwrap().validate();
        if cfg!(feature = "afxdp") {
            let c = r.unwrap();
            assert_eq!(c.ports[0].port_type, PortType::Afxdp);
            assert_eq!(c.ports[0].xdp_mode.as_deref(), Some("generic"));
            let e = FileConfig::parse(&text.replace("generic", "turbo"))
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(format!("{e:#}").contains("ports[0].xdp_mode"), "{e:#}");
        } else {
            let e = r.unwrap_err();
            assert!(format!("{e:#}").contains("--features afxdp"), "{e:#}");
        }
        let e = FileConfig::parse("[[ports]]\nname = \"a\"\nxdp_mode = \"native\"\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(format!("{e:#}").contains("only afxdp ports"), "{e:#}");
    }

    #[cfg(feature = "afxdp")]
    #[test]
    fn afxdp_modes_match_the_dataplane() {
        use fuxi_dataplane::port::afxdp::XdpMode;
        for m in XDP_MODES {
            assert_eq!(XdpMode::parse(m).map(XdpMode::as_str), Some(m));
        }
        assert_eq!(XdpMode::parse("turbo"), None);
    }

    #[test]
    fn poll_modes() {
        let mode = |text: &str| {
            FileConfig::parse(text)
                .unwrap()
                .validate()
                .map(|c| c.poll_mode)
        };
        let adaptive = |spin_us: u64, max_us: u64| PollMode::Adaptive {
            spin: Duration::from_micros(spin_us),
            spin_max: Duration::from_micros(max_us),
        };
        assert_eq!(
            mode("").unwrap(),
            PollMode::Adaptive {
                spin: DEFAULT_SPIN,
                spin_max: DEFAULT_SPIN_MAX
            }
        );
        assert_eq!(mode("poll_mode = \"always\"\n").unwrap(), PollMode::Always);
        // The window is an adaptive-mode setting; "always" never sleeps, so it is unused.
        assert_eq!(
            mode("poll_mode = \"always\"\nspin_us = 5\n").unwrap(),
            PollMode::Always
        );
        let max = DEFAULT_SPIN_MAX.as_micros() as u64;
        assert_eq!(
            mode("poll_mode = \"adaptive\"\nspin_us = 0\n").unwrap(),
            adaptive(0, max)
        );
        assert_eq!(mode("spin_us = 1500\n").unwrap(), adaptive(1500, max));
        // A window above the default longest one is its own longest.
        assert_eq!(
            mode("spin_us = 900000\n").unwrap(),
            adaptive(900_000, 900_000)
        );
        // spin_max_us = spin_us: a window that never grows.
        assert_eq!(
            mode("spin_us = 300\nspin_max_us = 300\n").unwrap(),
            adaptive(300, 300)
        );
        assert_eq!(mode("spin_max_us = 5000\n").unwrap(), adaptive(200, 5000));
        for (text, key) in [
            (
                "spin_max_us = 100\n",
                "key `spin_max_us`: 100 is below spin_us (200)",
            ),
            ("spin_max_us = 1000001\n", "key `spin_max_us`"),
            ("poll_mode = \"pmd\"\n", "key `poll_mode`"),
            ("spin_us = 1000001\n", "key `spin_us`"),
        ] {
            let e = mode(text).unwrap_err();
            assert!(format!("{e:#}").contains(key), "{text}: {e:#}");
        }
        let e = FileConfig::parse("spin_us = -1\n").unwrap_err();
        assert!(format!("{e:#}").contains("spin_us"), "{e:#}");
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0,2-4").unwrap(), vec![0, 2, 3, 4]);
        assert_eq!(parse_cpus("1").unwrap(), vec![1]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("x").is_err());
        let c = FileConfig::parse("threads = 2\ncpus = [1, 0]\n")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(c.cpus, vec![1, 0]);
        let e = FileConfig::parse("cpus = [1, 1]\n")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(format!("{e:#}").contains("key `cpus[1]`"), "{e:#}");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_listen("ptcp:6653").unwrap().to_string(),
            "127.0.0.1:6653"
        );
        assert_eq!(
            parse_listen("ptcp:1:0.0.0.0").unwrap().to_string(),
            "0.0.0.0:1"
        );
        assert_eq!(parse_controller("tcp:10.0.0.1:6653").unwrap().port(), 6653);
        assert_eq!(parse_dpid("0x10").unwrap(), 16);
        assert_eq!(parse_dpid("0000000000000010").unwrap(), 16);
        assert_eq!(parse_dpid("10").unwrap(), 10);
    }
}
