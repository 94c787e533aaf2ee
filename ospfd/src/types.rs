//! Plain value types shared by the core, the SPF and the daemon: prefixes, routes, next hops,
//! configuration of areas and interfaces as the core sees it.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::Serialize;

use crate::auth::AuthConfig;
use crate::lsa::len_mask;

/// Index of an interface in [`Config::ifaces`].
pub type IfaceId = usize;

/// An IPv4 prefix, always stored with host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Prefix {
    pub fn new(addr: Ipv4Addr, len: u8) -> Self {
        let len = len.min(32);
        Prefix {
            addr: Ipv4Addr::from(u32::from(addr) & u32::from(len_mask(len))),
            len,
        }
    }
    pub fn mask(&self) -> Ipv4Addr {
        len_mask(self.len)
    }
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & u32::from(self.mask()) == u32::from(self.addr)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = a.parse().map_err(|e| format!("{s}: {e}"))?;
        let len: u8 = l.parse().map_err(|e| format!("{s}: {e}"))?;
        if len > 32 {
            return Err(format!("{s}: prefix length above 32"));
        }
        Ok(Prefix::new(addr, len))
    }
}

/// One next hop: an interface and, unless the destination is on the link, a gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Nexthop {
    pub iface: IfaceId,
    pub gw: Option<Ipv4Addr>,
}

/// Path type of a route, in order of preference (RFC 2328 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum PathType {
    Intra,
    Inter,
    Ext1,
    Ext2,
}

/// A computed route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub prefix: Prefix,
    pub path: PathType,
    pub area: Option<Ipv4Addr>,
    pub cost: u32,
    /// Type-2 external metric (0 otherwise).
    pub cost2: u32,
    pub nexthops: BTreeSet<Nexthop>,
}

impl Route {
    /// True if the prefix is on a directly attached link (nothing for the kernel to learn).
    pub fn connected(&self) -> bool {
        self.nexthops.iter().all(|n| n.gw.is_none())
    }
}

/// Area kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AreaKind {
    Normal,
    Stub { no_summary: bool, default_cost: u32 },
    Nssa { no_summary: bool, default_cost: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaConfig {
    pub id: Ipv4Addr,
    pub kind: AreaKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NetType {
    Broadcast,
    PointToPoint,
}

/// An OSPF interface as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceConfig {
    pub name: String,
    pub area: Ipv4Addr,
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
    pub mtu: u16,
    pub net_type: NetType,
    pub cost: u16,
    pub hello_interval: u16,
    pub dead_interval: u32,
    pub retransmit_interval: u16,
    pub priority: u8,
    pub passive: bool,
    pub auth: AuthConfig,
}

impl IfaceConfig {
    /// A broadcast interface with FRR's default timers.
    pub fn new(name: &str, area: Ipv4Addr, addr: Ipv4Addr, prefix_len: u8) -> Self {
        IfaceConfig {
            name: name.to_string(),
            area,
            addr,
            prefix_len,
            mtu: 1500,
            net_type: NetType::Broadcast,
            cost: 10,
            hello_interval: 10,
            dead_interval: 40,
            retransmit_interval: 5,
            priority: 1,
            passive: false,
            auth: AuthConfig::Null,
        }
    }
    pub fn prefix(&self) -> Prefix {
        Prefix::new(self.addr, self.prefix_len)
    }
}

/// A route redistributed into OSPF as an AS-external (or NSSA) LSA.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExternalRoute {
    pub prefix: Prefix,
    pub metric: u32,
    /// Metric type 2 (the default in FRR and BIRD) when true.
    pub e2: bool,
    pub tag: u32,
    pub fwd: Ipv4Addr,
}

/// Configuration of one OSPF instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub router_id: Ipv4Addr,
    pub areas: Vec<AreaConfig>,
    pub ifaces: Vec<IfaceConfig>,
    pub externals: Vec<ExternalRoute>,
    /// Starting point of the cryptographic sequence number (the daemon uses wall-clock seconds
    /// so that it keeps increasing across restarts).
    pub crypto_seq_base: u32,
}
