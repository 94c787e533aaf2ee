//! Recorded-input, expected-output scenarios. Each scenario lives in
//! `tests/scenarios/<name>/`: `input.jsonl` holds every call made into one router (its creation,
//! interfaces coming up, received packets as hex, timer firings, API calls) with virtual times,
//! and `expected.jsonl` every output it produced (packets decoded, routes, state changes).
//! The test replays the inputs into a fresh instance and compares outputs line by line, then
//! checks the property the scenario proves on the final state.
//!
//! The recordings come from the in-memory simulation (`sim.rs`) with the other routers
//! played by real instances. After a reviewed behaviour change, regenerate with
//! `OSPFD_SCENARIO_REGEN=1 cargo test -p fuxi-ospfd --test it scenarios`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use fuxi_ospfd::auth::{Algo, AuthConfig, Key};
use fuxi_ospfd::consts::*;
use fuxi_ospfd::instance::{IfState, Instance, NbrState};
use fuxi_ospfd::lsa::*;
use fuxi_ospfd::packet::*;
use fuxi_ospfd::types::*;
use serde_json::{Value, json};

use crate::sim::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(name)
}

fn read_jsonl(p: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (regenerate with OSPFD_SCENARIO_REGEN=1)",
                p.display()
            )
        })
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_jsonl(p: &PathBuf, head: Option<Value>, v: &[Value]) {
    let mut s = String::new();
    for l in head.iter().chain(v) {
        s += &serde_json::to_string(l).unwrap();
        s.push('\n');
    }
    std::fs::write(p, s).unwrap();
}

/// Run (or regenerate) one scenario: `record` builds the simulation with `net.tap` set to the
/// router under test, whose configuration is `cfg`.
fn scenario(
    name: &str,
    proves: &str,
    cfg: Config,
    record: impl FnOnce(&mut Net),
    check: impl FnOnce(&Instance, Duration),
) {
    let d = dir(name);
    if std::env::var("OSPFD_SCENARIO_REGEN").is_ok() {
        let mut net = Net::new();
        record(&mut net);
        std::fs::create_dir_all(&d).unwrap();
        write_jsonl(
            &d.join("input.jsonl"),
            Some(json!({"comment": proves})),
            &net.tape_in,
        );
        write_jsonl(&d.join("expected.jsonl"), None, &net.tape_out);
    }
    let input = read_jsonl(&d.join("input.jsonl"));
    let expected = read_jsonl(&d.join("expected.jsonl"));
    let (inst, out, end) = replay(cfg, &input);
    for (k, (got, want)) in out.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "{name}: output line {} differs", k + 1);
    }
    assert_eq!(out.len(), expected.len(), "{name}: output count");
    check(&inst, end);
}

fn lan(rid: &str, addr: &str, prio: u8) -> Config {
    let mut c = router(rid, &[("eth0", BACKBONE, addr)]);
    c.ifaces[0].priority = prio;
    c
}

#[test]
fn dr_election_late_joiner() {
    let cfg = lan("9.9.9.9", "10.0.0.9/24", 200);
    let c2 = cfg.clone();
    scenario(
        "dr_election",
        "DR/BDR election on a LAN: 1.1.1.1 and 3.3.3.3 elect 3.3.3.3 DR and 1.1.1.1 BDR; the recorded router 9.9.9.9 joins later with priority 200 and becomes DROther without taking over, reaches Full with both.",
        cfg,
        |net| {
            let a = net.add(lan("1.1.1.1", "10.0.0.1/24", 1));
            let c = net.add(lan("3.3.3.3", "10.0.0.3/24", 1));
            let seg = net.segment(&[(a, 0), (c, 0)]);
            net.run_for(secs(50));
            net.tap = Some(2);
            let b = net.add(c2);
            net.segs[seg].members.push((b, 0));
            net.run_for(secs(60));
        },
        |inst, _| {
            assert_eq!(
                inst.iface_state(0),
                (IfState::DROther, ip("10.0.0.3"), ip("10.0.0.1"))
            );
            assert_eq!(inst.neighbor_state(ip("3.3.3.3")), Some(NbrState::Full));
            assert_eq!(inst.neighbor_state(ip("1.1.1.1")), Some(NbrState::Full));
        },
    );
}

fn p2p(rid: &str, addr: &str) -> Config {
    let mut c = router(rid, &[("eth0", BACKBONE, addr)]);
    c.ifaces[0].net_type = NetType::PointToPoint;
    c
}

fn many_externals(n: usize) -> Vec<ExternalRoute> {
    (0..n)
        .map(|k| ExternalRoute {
            prefix: Prefix::new(Ipv4Addr::new(100, (k / 256) as u8, (k % 256) as u8, 0), 24),
            metric: 20,
            e2: true,
            tag: 0,
            fwd: Ipv4Addr::UNSPECIFIED,
        })
        .collect()
}

fn dd_case(name: &str, me: &str, peer: &str, proves: &str) {
    let cfg = p2p(me, "10.0.0.2/30");
    let c2 = cfg.clone();
    let peer = peer.to_string();
    scenario(
        name,
        proves,
        cfg,
        move |net| {
            let mut a = p2p(&peer, "10.0.0.1/30");
            a.externals = many_externals(300);
            let a = net.add(a);
            net.run_for(secs(1));
            net.tap = Some(1);
            let b = net.add(c2);
            net.segment(&[(a, 0), (b, 0)]);
            net.run_for(secs(20));
        },
        |inst, end| {
            let peer = inst.neighbors(end)[0].router_id;
            assert_eq!(inst.neighbor_state(peer), Some(NbrState::Full));
            let ext = inst
                .database(end)
                .iter()
                .filter(|l| l.ls_type == LSA_AS_EXTERNAL)
                .count();
            assert_eq!(ext, 300);
            assert_eq!(inst.routes().len(), 301);
        },
    );
}

#[test]
fn dd_exchange_as_master() {
    dd_case(
        "dd_master",
        "9.9.9.9",
        "1.1.1.1",
        "Database exchange where the recorded router (9.9.9.9) is master: it wins the ExStart negotiation, drives sequence numbers through several DD packets (300 AS-external LSAs from the peer), requests them, loads and reaches Full with all 300 installed and routed.",
    );
}

#[test]
fn dd_exchange_as_slave() {
    dd_case(
        "dd_slave",
        "1.1.1.1",
        "9.9.9.9",
        "Database exchange where the recorded router (1.1.1.1) is slave: it adopts the master's sequence number, echoes it, answers with its own summaries, and reaches Full with the master's 300 AS-external LSAs.",
    );
}

#[test]
fn retransmission_until_acked() {
    let cfg = p2p("2.2.2.2", "10.0.0.2/30");
    let c2 = cfg.clone();
    scenario(
        "retransmission",
        "Reliable flooding: after Full (t=40 s), the recorded router 2.2.2.2 originates an AS-external LSA while every LS Ack from the peer is lost for 12 s; it retransmits the LSA to the neighbour every RxmtInterval (5 s) until an ack finally arrives, then stops.",
        cfg,
        move |net| {
            net.tap = Some(0);
            let b = net.add(c2);
            let a = net.add(p2p("1.1.1.1", "10.0.0.1/30"));
            net.segment(&[(a, 0), (b, 0)]);
            net.run_for(secs(40));
            // Acks towards the recorded router are lost until the filter is removed.
            net.drop = Some(Box::new(move |r, _i, data| {
                !(r == 0 && data[1] == PKT_LSACK)
            }));
            net.externals(0, &["198.51.100.0/24"]);
            net.run_for(secs(12));
            net.drop = None;
            net.run_for(secs(10));
        },
        |inst, end| {
            assert_eq!(inst.neighbors(end)[0].retransmit, 0);
        },
    );
    // The recording shows the retransmissions themselves.
    let out = read_jsonl(&dir("retransmission").join("expected.jsonl"));
    let lsu_with_ext = out
        .iter()
        .filter(|o| {
            o["send"]["pkt"]
                .as_str()
                .is_some_and(|p| p.starts_with("LsUpdate") && p.contains("ls_type: 5"))
        })
        .count();
    assert!(
        lsu_with_ext >= 3,
        "flood + at least two retransmissions, got {lsu_with_ext}"
    );
}

#[test]
fn maxage_flush_from_neighbour() {
    let cfg = p2p("2.2.2.2", "10.0.0.2/30");
    let c2 = cfg.clone();
    scenario(
        "maxage_flush",
        "MaxAge flushing: the peer 1.1.1.1 redistributes 192.0.2.0/24 then shuts down and flushes its LSAs (premature aging). The recorded router 2.2.2.2 acknowledges the MaxAge copies, withdraws the route at once, and removes the LSAs from its database once no retransmission is pending.",
        cfg,
        move |net| {
            let mut a = p2p("1.1.1.1", "10.0.0.1/30");
            a.externals.push(ExternalRoute {
                prefix: pfx("192.0.2.0/24"),
                metric: 20,
                e2: true,
                tag: 0,
                fwd: ip("0.0.0.0"),
            });
            net.tap = Some(1);
            let a = net.add(a);
            let b = net.add(c2);
            net.segment(&[(a, 0), (b, 0)]);
            net.run_for(secs(20));
            net.shutdown(a);
            net.run_for(secs(5));
        },
        |inst, end| {
            assert!(!inst.routes().contains_key(&pfx("192.0.2.0/24")));
            assert!(
                !inst
                    .database(end)
                    .iter()
                    .any(|l| l.adv == ip("1.1.1.1") && l.ls_type == LSA_AS_EXTERNAL)
            );
        },
    );
}

fn ext_lsu(seq: i32, metric: u32) -> Vec<u8> {
    let mut l = Lsa {
        hdr: LsaHeader {
            age: 1,
            options: OPT_E,
            ls_type: LSA_AS_EXTERNAL,
            id: ip("198.18.0.0"),
            adv: ip("7.7.7.7"),
            seq,
            checksum: 0,
            length: 0,
        },
        body: LsaBody::External(ExternalLsa {
            mask: ip("255.255.0.0"),
            e2: true,
            metric,
            fwd: ip("0.0.0.0"),
            tag: 0,
            tos: vec![],
            reserved: 0,
        }),
    };
    l.to_bytes_sealed();
    let p = Packet {
        hdr: Header {
            router_id: ip("1.1.1.1"),
            area_id: BACKBONE,
            checksum: 0,
            auth: AuthField::Null([0; 8]),
        },
        body: Body::LsUpdate(vec![l]),
        trailer: bytes::Bytes::new(),
    };
    let mut v = p.to_bytes().to_vec();
    fuxi_ospfd::auth::seal(&mut v, &AuthConfig::Null, 0);
    v
}

#[test]
fn min_ls_arrival() {
    let cfg = p2p("2.2.2.2", "10.0.0.2/30");
    let c2 = cfg.clone();
    scenario(
        "min_ls_arrival",
        "MinLSArrival: the neighbour floods instance 0x80000005 of an AS-external LSA, then 0x80000006 only 0.5 s later (discarded: no install, no ack), then 0x80000007 1.5 s after the first (accepted, acked, flooded).",
        cfg,
        move |net| {
            net.tap = Some(0);
            let b = net.add(c2);
            let a = net.add(p2p("1.1.1.1", "10.0.0.1/30"));
            net.segment(&[(a, 0), (b, 0)]);
            net.run_for(secs(40));
            net.inject(
                b,
                0,
                ip("10.0.0.1"),
                ALL_SPF_ROUTERS,
                &ext_lsu(INITIAL_SEQ + 4, 10),
            );
            net.run_for(Duration::from_millis(500));
            net.inject(
                b,
                0,
                ip("10.0.0.1"),
                ALL_SPF_ROUTERS,
                &ext_lsu(INITIAL_SEQ + 5, 11),
            );
            net.run_for(Duration::from_millis(1000));
            net.inject(
                b,
                0,
                ip("10.0.0.1"),
                ALL_SPF_ROUTERS,
                &ext_lsu(INITIAL_SEQ + 6, 12),
            );
            net.run_for(secs(3));
        },
        |inst, end| {
            let k = LsaKey {
                ls_type: LSA_AS_EXTERNAL,
                id: ip("198.18.0.0"),
                adv: ip("7.7.7.7"),
            };
            assert_eq!(inst.lookup(&k, end).unwrap().hdr.seq, INITIAL_SEQ + 6);
        },
    );
    // Acks went out for the first and third instance only.
    let out = read_jsonl(&dir("min_ls_arrival").join("expected.jsonl"));
    let acked = |seq: i32| {
        out.iter().any(|o| {
            o["send"]["pkt"].as_str().is_some_and(|p| {
                p.starts_with("LsAck")
                    && p.contains(&format!("id: 198.18.0.0, adv: 7.7.7.7, seq: {seq},"))
            })
        })
    };
    assert!(acked(INITIAL_SEQ + 4));
    assert!(!acked(INITIAL_SEQ + 5));
    assert!(acked(INITIAL_SEQ + 6));
    let input = read_jsonl(&dir("min_ls_arrival").join("input.jsonl"));
    assert_eq!(
        input
            .iter()
            .filter(|e| e["ev"] == "recv" && e["hex"].as_str().unwrap().contains("c6120000"))
            .count(),
        3
    );
}

#[test]
fn auth_failure_keeps_neighbour_out() {
    let md5 = |k: &[u8]| {
        AuthConfig::Crypto(vec![Key {
            id: 1,
            algo: Algo::Md5,
            secret: k.to_vec(),
        }])
    };
    let mut cfg = p2p("2.2.2.2", "10.0.0.2/30");
    cfg.ifaces[0].auth = md5(b"s3cr3t");
    let c2 = cfg.clone();
    scenario(
        "auth_failure",
        "Authentication failure: the peer signs with keyed MD5 under a different secret. Every packet it sends is dropped with 'message digest mismatch'; no neighbour is ever created, nothing is installed.",
        cfg,
        move |net| {
            net.tap = Some(0);
            let b = net.add(c2);
            let mut a = p2p("1.1.1.1", "10.0.0.1/30");
            a.ifaces[0].auth = md5(b"wrong");
            let a = net.add(a);
            net.segment(&[(a, 0), (b, 0)]);
            net.run_for(secs(45));
        },
        |inst, end| {
            assert!(inst.neighbors(end).is_empty());
            assert!(inst.stats.auth_failures >= 3);
            assert_eq!(inst.routes().len(), 1, "only the own link");
        },
    );
}
