//! The daemon's TOML configuration (`serde(deny_unknown_fields)` everywhere) and its
//! translation into the core's [`crate::types::Config`]. See `fuxi-ospfd.sample.toml`.

use std::net::Ipv4Addr;

use serde::Deserialize;

use crate::auth::{Algo, AuthConfig, Key};
use crate::types::{AreaConfig, AreaKind, NetType, Prefix};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub router_id: Ipv4Addr,
    #[serde(default = "default_control")]
    pub control_socket: String,
    #[serde(default = "default_spf_delay")]
    pub spf_delay_ms: u64,
    /// Originate nothing at start-up until the first adjacencies are Full (at most
    /// MinLSInterval), so that our first router-LSA already lists them.
    #[serde(default = "default_true")]
    pub startup_hold: bool,
    /// Answer a new neighbour's first hello at once rather than at the next hello tick.
    #[serde(default = "default_true")]
    pub hello_on_new_neighbor: bool,
    /// Serve Prometheus metrics over HTTP at `http://<addr>/metrics` (e.g. "127.0.0.1:9189").
    pub metrics_listen: Option<String>,
    /// Kernel routing table for learned routes (254 = main).
    #[serde(default = "default_table")]
    pub table: u32,
    /// Kernel route metric (FRR's zebra uses 20 for OSPF).
    #[serde(default = "default_metric")]
    pub kernel_metric: u32,
    #[serde(default, rename = "area")]
    pub areas: Vec<AreaFile>,
    #[serde(default, rename = "interface")]
    pub interfaces: Vec<InterfaceFile>,
    #[serde(default)]
    pub redistribute: Redistribute,
}

fn default_control() -> String {
    "/run/fuxi-ospfd.sock".into()
}
fn default_spf_delay() -> u64 {
    200
}
fn default_true() -> bool {
    true
}
fn default_table() -> u32 {
    254
}
fn default_metric() -> u32 {
    20
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AreaType {
    #[default]
    Normal,
    Stub,
    Nssa,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaFile {
    pub id: String,
    #[serde(default, rename = "type")]
    pub kind: AreaType,
    #[serde(default)]
    pub no_summary: bool,
    #[serde(default = "one")]
    pub default_cost: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkFile {
    #[default]
    Broadcast,
    PointToPoint,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceFile {
    pub name: String,
    #[serde(default = "zero_area")]
    pub area: String,
    /// Override the address found on the interface (`a.b.c.d/len`).
    pub address: Option<String>,
    #[serde(default)]
    pub network: NetworkFile,
    #[serde(default = "d_cost")]
    pub cost: u16,
    #[serde(default = "d_hello")]
    pub hello_interval: u16,
    #[serde(default = "d_dead")]
    pub dead_interval: u32,
    #[serde(default = "d_rxmt")]
    pub retransmit_interval: u16,
    #[serde(default = "d_prio")]
    pub priority: u8,
    #[serde(default)]
    pub passive: bool,
    pub auth: Option<AuthFile>,
}

fn zero_area() -> String {
    "0.0.0.0".into()
}
fn d_cost() -> u16 {
    10
}
fn d_hello() -> u16 {
    10
}
fn d_dead() -> u32 {
    40
}
fn d_rxmt() -> u16 {
    5
}
fn d_prio() -> u8 {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuthType {
    Null,
    Simple,
    Md5,
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    #[serde(rename = "type")]
    pub kind: AuthType,
    #[serde(default)]
    pub key: String,
    #[serde(default = "d_key_id")]
    pub key_id: u8,
}

fn d_key_id() -> u8 {
    1
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Redistribute {
    /// Advertise every IPv4 address on non-OSPF interfaces as an external.
    #[serde(default)]
    pub connected: bool,
    #[serde(default = "d_ext_metric")]
    pub metric: u32,
    #[serde(default = "d_ext_type")]
    pub metric_type: u8,
    #[serde(default, rename = "static")]
    pub statics: Vec<StaticRoute>,
}

fn d_ext_metric() -> u32 {
    20
}
fn d_ext_type() -> u8 {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRoute {
    pub prefix: String,
    pub metric: Option<u32>,
    pub metric_type: Option<u8>,
    #[serde(default)]
    pub tag: u32,
}

/// Parse an area id written as dotted quad or as a decimal number.
pub fn parse_area(s: &str) -> Result<Ipv4Addr, String> {
    if s.contains('.') {
        s.parse().map_err(|e| format!("area {s}: {e}"))
    } else {
        s.parse::<u32>()
            .map(Ipv4Addr::from)
            .map_err(|e| format!("area {s}: {e}"))
    }
}

impl FileConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), String> {
        for a in &self.areas {
            parse_area(&a.id)?;
        }
        for i in &self.interfaces {
            parse_area(&i.area)?;
            if let Some(a) = &i.address {
                a.parse::<Prefix>()?;
            }
            if i.dead_interval == 0 || i.hello_interval == 0 {
                return Err(format!("{}: zero hello/dead interval", i.name));
            }
            if let Some(au) = &i.auth
                && au.kind == AuthType::Simple
                && au.key.len() > 8
            {
                return Err(format!("{}: simple password longer than 8 bytes", i.name));
            }
        }
        for s in &self.redistribute.statics {
            s.prefix.parse::<Prefix>()?;
        }
        Ok(())
    }

    pub fn area_configs(&self) -> Vec<AreaConfig> {
        self.areas
            .iter()
            .map(|a| AreaConfig {
                id: parse_area(&a.id).unwrap_or(Ipv4Addr::UNSPECIFIED),
                kind: match a.kind {
                    AreaType::Normal => AreaKind::Normal,
                    AreaType::Stub => AreaKind::Stub {
                        no_summary: a.no_summary,
                        default_cost: a.default_cost,
                    },
                    AreaType::Nssa => AreaKind::Nssa {
                        no_summary: a.no_summary,
                        default_cost: a.default_cost,
                    },
                },
            })
            .collect()
    }
}

impl InterfaceFile {
    pub fn net_type(&self) -> NetType {
        match self.network {
            NetworkFile::Broadcast => NetType::Broadcast,
            NetworkFile::PointToPoint => NetType::PointToPoint,
        }
    }

    pub fn auth_config(&self) -> AuthConfig {
        let Some(a) = &self.auth else {
            return AuthConfig::Null;
        };
        let algo = match a.kind {
            AuthType::Null => return AuthConfig::Null,
            AuthType::Simple => {
                let mut p = [0u8; 8];
                let n = a.key.len().min(8);
                p[..n].copy_from_slice(&a.key.as_bytes()[..n]);
                return AuthConfig::Simple(p);
            }
            AuthType::Md5 => Algo::Md5,
            AuthType::HmacSha1 => Algo::HmacSha1,
            AuthType::HmacSha256 => Algo::HmacSha256,
            AuthType::HmacSha384 => Algo::HmacSha384,
            AuthType::HmacSha512 => Algo::HmacSha512,
        };
        AuthConfig::Crypto(vec![Key {
            id: a.key_id,
            algo,
            secret: a.key.as_bytes().to_vec(),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_parses() {
        let c = FileConfig::parse(include_str!("../fuxi-ospfd.sample.toml")).unwrap();
        assert_eq!(c.interfaces.len(), 3);
        assert!(matches!(
            c.interfaces[0].auth_config(),
            AuthConfig::Crypto(_)
        ));
    }

    #[test]
    fn unknown_fields_rejected() {
        let e = FileConfig::parse("router_id = \"1.1.1.1\"\nbogus = 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = FileConfig::parse("router_id = \"1.1.1.1\"\n[[interface]]\nname=\"x\"\ncots=1\n")
            .unwrap_err();
        assert!(e.contains("cots"), "{e}");
    }
}
