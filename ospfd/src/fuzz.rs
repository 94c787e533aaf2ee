//! Fuzz target bodies, kept in the crate so each `fuzz/fuzz_targets/ospfd_*.rs` is one line
//! (`fuzz_target!(|d: &[u8]| fuxi_ospfd::fuzz::decode(d));`). Each checks invariants with
//! assertions; a panic is a finding.

use std::net::Ipv4Addr;
use std::time::Duration;

use bytes::Bytes;

use crate::auth::{self, Algo, AuthConfig, Key};
use crate::consts::*;
use crate::instance::Instance;
use crate::lsa::{Lsa, LsaBody, LsaHeader, NetworkLsa, RouterLink, RouterLsa};
use crate::packet::*;
use crate::types::*;

/// Packet and LSA decoders: never panic; whatever decodes re-encodes to the same bytes
/// (up to the OSPF length plus trailer) and decodes again to the same value. The one field a
/// packet does not keep is the reserved half-word of cryptographic authentication (RFC 2328
/// D.3: sent as zero, ignored on receipt; a packet is never forwarded as received), so it is
/// compared as zero. LSAs, which are flooded as received, keep every byte.
pub fn decode(data: &[u8]) {
    if let Ok(p) = Packet::decode(&mut &data[..]) {
        let b = p.to_bytes();
        let mut want = data.to_vec();
        if matches!(p.hdr.auth, AuthField::Crypto { .. }) {
            want[16..18].fill(0);
        }
        assert_eq!(&b[..], &want[..], "re-encoding differs");
        let again = Packet::decode(&mut &b[..]).expect("re-decodes");
        assert_eq!(again, p);
    }
    if let Ok(l) = Lsa::decode(&mut &data[..]) {
        let b = l.to_bytes();
        assert_eq!(&b[..], &data[..b.len()]);
    }
    let md5 = AuthConfig::Crypto(vec![Key {
        id: 1,
        algo: Algo::Md5,
        secret: b"k".to_vec(),
    }]);
    let sha = AuthConfig::Crypto(vec![Key {
        id: 1,
        algo: Algo::HmacSha512,
        secret: b"k".to_vec(),
    }]);
    for c in [AuthConfig::Null, AuthConfig::Simple(*b"password"), md5, sha] {
        let _ = auth::verify(data, &c, Some(5));
    }
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }
}

const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER_RID: Ipv4Addr = Ipv4Addr::new(2, 2, 2, 2);

fn peer_lsa(c: &mut Cursor<'_>) -> Option<Lsa> {
    let kind = c.u8()? % 3;
    let seq = INITIAL_SEQ.wrapping_add(i32::from(c.u8()? % 8));
    let age = [0, 1, 1800, MAX_AGE][usize::from(c.u8()? % 4)];
    let (t, id, body) = match kind {
        0 => (
            LSA_ROUTER,
            PEER_RID,
            LsaBody::Router(RouterLsa {
                flags: c.u8()? & 7,
                links: vec![RouterLink {
                    id: Ipv4Addr::new(10, 0, 0, c.u8()?),
                    data: Ipv4Addr::new(10, 0, 0, 2),
                    link_type: LINK_TRANSIT,
                    metric: 10,
                    tos: vec![],
                }],
                reserved: 0,
            }),
        ),
        1 => (
            LSA_NETWORK,
            Ipv4Addr::new(10, 0, 0, 2),
            LsaBody::Network(NetworkLsa {
                mask: Ipv4Addr::new(255, 255, 255, 0),
                routers: vec![PEER_RID, ME],
            }),
        ),
        _ => (
            LSA_AS_EXTERNAL,
            Ipv4Addr::new(198, 18, c.u8()? % 4, 0),
            LsaBody::External(crate::lsa::ExternalLsa {
                mask: Ipv4Addr::new(255, 255, 255, 0),
                e2: true,
                metric: u32::from(c.u8()?),
                fwd: Ipv4Addr::UNSPECIFIED,
                tag: 0,
                tos: vec![],
                reserved: 0,
            }),
        ),
    };
    let mut l = Lsa {
        hdr: LsaHeader {
            age,
            options: OPT_E,
            ls_type: t,
            id,
            adv: PEER_RID,
            seq,
            checksum: 0,
            length: 0,
        },
        body,
    };
    l.to_bytes_sealed();
    Some(l)
}

/// Neighbour/interface state machine driven by an operation sequence: well-formed packets of
/// every type with fuzzed fields from a peer, timer advances, interface flaps and raw bytes.
/// The instance must never panic and its timers must always lie in the future after a
/// timeout has been handled.
pub fn neighbor_sm(data: &[u8]) {
    let mut ic = IfaceConfig::new("eth0", Ipv4Addr::UNSPECIFIED, ME, 24);
    ic.hello_interval = 1;
    ic.dead_interval = 4;
    ic.retransmit_interval = 1;
    let cfg = Config {
        router_id: Ipv4Addr::new(1, 1, 1, 1),
        areas: vec![],
        ifaces: vec![ic],
        externals: vec![],
        crypto_seq_base: 0,
    };
    let mut now = Duration::ZERO;
    let mut inst = Instance::new(cfg, now);
    inst.iface_up(now, 0);
    let peer = Ipv4Addr::new(10, 0, 0, 2);
    let mut c = Cursor(data);
    let mut steps = 0;
    while let Some(op) = c.u8() {
        steps += 1;
        if steps > 256 {
            break;
        }
        let body = match op % 8 {
            0 => {
                let nbrs = if c.u8().unwrap_or(0) & 1 == 1 {
                    vec![Ipv4Addr::new(1, 1, 1, 1)]
                } else {
                    vec![]
                };
                let dr = [Ipv4Addr::UNSPECIFIED, ME, peer][usize::from(c.u8().unwrap_or(0) % 3)];
                Some(Body::Hello(Hello {
                    mask: Ipv4Addr::new(255, 255, 255, 0),
                    hello_interval: 1,
                    options: OPT_E,
                    priority: c.u8().unwrap_or(1),
                    dead_interval: 4,
                    dr,
                    bdr: Ipv4Addr::UNSPECIFIED,
                    neighbors: nbrs,
                }))
            }
            1 => {
                let flags = c.u8().unwrap_or(0) & 7;
                let seq = c.u32().unwrap_or(0);
                let headers = peer_lsa(&mut c).map(|l| vec![l.hdr]).unwrap_or_default();
                Some(Body::DbDesc(DbDesc {
                    mtu: 1500,
                    options: OPT_E | OPT_O,
                    flags,
                    seq,
                    headers,
                }))
            }
            2 => Some(Body::LsRequest(vec![LsRequest {
                ls_type: u32::from(c.u8().unwrap_or(1) % 12),
                id: Ipv4Addr::new(1, 1, 1, 1),
                adv: Ipv4Addr::new(1, 1, 1, 1),
            }])),
            3 => peer_lsa(&mut c).map(|l| Body::LsUpdate(vec![l])),
            4 => peer_lsa(&mut c).map(|l| Body::LsAck(vec![l.hdr])),
            5 => {
                now += Duration::from_millis(u64::from(c.u8().unwrap_or(0)) * 40);
                inst.handle_timeout(now);
                if let Some(t) = inst.poll_timeout() {
                    assert!(t > now, "timer {t:?} not in the future at {now:?}");
                }
                None
            }
            6 => {
                if c.u8().unwrap_or(0) & 1 == 0 {
                    inst.iface_down(now, 0);
                } else {
                    inst.iface_up(now, 0);
                }
                None
            }
            _ => {
                let n = usize::from(c.u8().unwrap_or(0)).min(c.0.len());
                let (raw, rest) = c.0.split_at(n);
                c.0 = rest;
                inst.recv(now, 0, peer, ALL_SPF_ROUTERS, raw);
                None
            }
        };
        if let Some(body) = body {
            let p = Packet {
                hdr: Header {
                    router_id: PEER_RID,
                    area_id: Ipv4Addr::UNSPECIFIED,
                    checksum: 0,
                    auth: AuthField::Null([0; 8]),
                },
                body,
                trailer: Bytes::new(),
            };
            let mut v = p.to_bytes().to_vec();
            auth::seal(&mut v, &AuthConfig::Null, 0);
            inst.recv(now, 0, peer, ALL_SPF_ROUTERS, &v);
        }
        while inst.poll_output().is_some() {}
        let _ = inst.neighbors(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            decode(&data);
        }

        #[test]
        fn neighbor_sm_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            neighbor_sm(&data);
        }
    }

    #[test]
    fn neighbor_sm_reaches_full_with_a_scripted_peer() {
        // Hello with us listed (2-Way -> ExStart as we are DR candidates), then time.
        neighbor_sm(&[
            0, 1, 1, 1, 5, 25, 0, 1, 0, 1, 5, 200, 3, 2, 0, 0, 1, 4, 0, 0, 0, 5, 100,
        ]);
    }
}
