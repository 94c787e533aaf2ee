//! The NORMAL action through the datapath and its caches: learning, flooding, never back
//! out of the input port, VLAN separation, aging (a virtual clock), MAC moves, reserved
//! addresses, and that every change to the MAC table changes where cached packets go, in
//! this datapath and in another thread's.

use fuxi_dataplane::cache::{Datapath, Source};
use fuxi_dataplane::engine::{Engine, Output, Worker};
use fuxi_dataplane::packet::RxMeta;
use fuxi_dataplane::pipeline::exec::Recorder;
use fuxi_dataplane::pipeline::normal::MacTable;
use fuxi_dataplane::pipeline::{FlowMod, Pipeline, PortState};
use fuxi_dataplane::port::{Packet, PacketBatch};
use fuxi_openflow::consts::{OFPP_CONTROLLER, OFPP_NORMAL};
use fuxi_openflow::{Action, Instruction, Match};

const SEC: u64 = 1_000_000_000;
const BCAST: u8 = 0xff;

/// A switch with ports 1..=4 and one flow: priority 0, actions=NORMAL.
fn normal_switch() -> Pipeline {
    let mut p = Pipeline::new();
    for port in 1..=4 {
        p.set_port(port, PortState { live: true });
    }
    p.flow_mod(&normal_flow(), 0).unwrap();
    p
}

fn normal_flow() -> FlowMod {
    FlowMod::add(
        0,
        0,
        Match::all(),
        vec![Instruction::ApplyActions(vec![Action::output(OFPP_NORMAL)])],
    )
}

fn mac(last: u8) -> [u8; 6] {
    if last == BCAST {
        [0xff; 6]
    } else {
        [2, 0, 0, 0, 0, last]
    }
}

/// An Ethernet frame from MAC `src` to MAC `dst` (last bytes; 0xff: broadcast), tagged
/// with `vlan` if given.
fn frame(src: u8, dst: u8, vlan: Option<u16>) -> Vec<u8> {
    let mut f = mac(dst).to_vec();
    f.extend(mac(src));
    if let Some(v) = vlan {
        f.extend([0x81, 0x00]);
        f.extend(v.to_be_bytes());
    }
    f.extend([0x88, 0xb5]);
    f.resize(64, 0);
    f
}

/// The ports one packet went out of, in order.
fn send(dp: &mut Datapath, p: &Pipeline, in_port: u32, f: Vec<u8>, now: u64) -> Vec<u32> {
    let mut rec = Recorder::default();
    dp.process(p, &mut f.clone(), RxMeta::port(in_port), now, &mut rec);
    for (_, _, _, bytes) in &rec.outputs {
        assert_eq!(*bytes, f, "NORMAL forwards the frame unchanged");
    }
    rec.outputs.iter().map(|o| o.0).collect()
}

#[test]
fn learns_floods_unknown_and_forwards_known_unicast() {
    let p = normal_switch();
    let mut dp = Datapath::new();
    // 1 → 2, unknown: flooded to all but the input.
    assert_eq!(send(&mut dp, &p, 1, frame(1, 2, None), 0), [2, 3, 4]);
    assert_eq!(p.mac_table.lookup(0, 0x0200_0000_0001), Some(1));
    // The reply goes only to where 1 was learned, and teaches 2.
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, None), 1), [1]);
    // The first packet again: it was cached as a flood; now it is unicast.
    assert_eq!(send(&mut dp, &p, 1, frame(1, 2, None), 2), [2]);
    // Broadcast and multicast are flooded even from known sources.
    assert_eq!(send(&mut dp, &p, 3, frame(3, BCAST, None), 3), [1, 2, 4]);
    let mut mcast = frame(3, 0, None);
    mcast[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 1]);
    assert_eq!(send(&mut dp, &p, 3, mcast, 4), [1, 2, 4]);
    // Steady state (3 was learned since: one more translation): from the caches.
    assert_eq!(send(&mut dp, &p, 1, frame(1, 2, None), 5), [2]);
    let mut rec = Recorder::default();
    let src = dp.process(&p, &mut frame(1, 2, None), RxMeta::port(1), 5, &mut rec);
    assert_ne!(src, Source::SlowPath);
    assert_eq!(rec.outputs.iter().map(|o| o.0).collect::<Vec<_>>(), [2]);
}

#[test]
fn never_sends_back_out_of_the_input_port() {
    let p = normal_switch();
    let mut dp = Datapath::new();
    send(&mut dp, &p, 1, frame(1, BCAST, None), 0);
    // 5 is also behind port 1 and sends to 1: the switch stays out of it.
    assert_eq!(
        send(&mut dp, &p, 1, frame(5, 1, None), 1),
        Vec::<u32>::new()
    );
    // A frame to its own source.
    assert_eq!(
        send(&mut dp, &p, 3, frame(7, 7, None), 2),
        Vec::<u32>::new()
    );
    // Down ports are not flooded to.
    let mut p2 = normal_switch();
    p2.set_port(4, PortState { live: false });
    assert_eq!(send(&mut dp, &p2, 1, frame(1, 9, None), 3), [2, 3]);
}

#[test]
fn a_moved_mac_follows_its_new_port() {
    let p = normal_switch();
    let mut dp = Datapath::new();
    send(&mut dp, &p, 1, frame(1, BCAST, None), 0);
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, None), 1), [1]);
    // 1 moves to port 3.
    send(&mut dp, &p, 3, frame(1, BCAST, None), 2);
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, None), 3), [3]);
    // And back.
    send(&mut dp, &p, 1, frame(1, BCAST, None), 4);
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, None), 5), [1]);
}

#[test]
fn vlans_are_separate_learning_domains() {
    let p = normal_switch();
    let mut dp = Datapath::new();
    send(&mut dp, &p, 1, frame(1, BCAST, Some(10)), 0);
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, Some(10)), 1), [1]);
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, Some(20)), 2), [1, 3, 4]);
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, None), 3), [1, 3, 4]);
    // The same MAC may sit on different ports in different VLANs.
    send(&mut dp, &p, 4, frame(1, BCAST, Some(20)), 4);
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, Some(20)), 5), [4]);
    assert_eq!(send(&mut dp, &p, 2, frame(2, 1, Some(10)), 6), [1]);
    // A tagged frame keeps its tag (every port is a trunk).
    let mut rec = Recorder::default();
    let f = frame(3, 1, Some(10));
    dp.process(&p, &mut f.clone(), RxMeta::port(3), 7, &mut rec);
    assert_eq!(rec.outputs.len(), 1);
    assert_eq!(rec.outputs[0].3, f);
}

#[test]
fn entries_age_out_unless_traffic_refreshes_them() {
    let p = normal_switch();
    p.mac_table.configure(10, 100);
    let mut dp = Datapath::new();
    send(&mut dp, &p, 1, frame(1, BCAST, None), 0);
    send(&mut dp, &p, 2, frame(2, 1, None), 0);
    // 1 keeps sending to 2 from the caches; a sync refreshes its entry.
    for t in 1..=6 {
        assert_eq!(send(&mut dp, &p, 1, frame(1, 2, None), t * SEC), [2]);
    }
    dp.sync_stats(&p);
    // 2 has been silent (its own cached flow carried nothing) since 0: gone at 10 s.
    assert_eq!(p.mac_table.expire(10 * SEC), 1);
    assert_eq!(p.mac_table.lookup(0, 0x0200_0000_0002), None);
    assert_eq!(p.mac_table.lookup(0, 0x0200_0000_0001), Some(1));
    // Cached "1 → 2 is on port 2" is gone with it: flooded again.
    assert_eq!(send(&mut dp, &p, 1, frame(1, 2, None), 11 * SEC), [2, 3, 4]);
    // 1 was last seen at 11 s (relearned when the cache was dropped).
    dp.sync_stats(&p);
    assert_eq!(p.mac_table.expire(20 * SEC), 0);
    assert_eq!(p.mac_table.expire(21 * SEC), 1);
    assert!(p.mac_table.is_empty());
}

#[test]
fn the_engine_ages_mac_entries_with_flows() {
    let mut e = Engine::new(normal_switch());
    e.pipeline().mac_table.configure(5, 100);
    let mut w = Worker::new(e.reader());
    let mut out = Output::new();
    let mut b = PacketBatch::new();
    b.push_copy(&Packet::from_frame(&frame(1, BCAST, None)));
    w.process_batch(1, &mut b, 0, &mut out);
    assert_eq!(e.published().mac_table.len(), 1);
    e.expire(4 * SEC);
    assert_eq!(e.published().mac_table.len(), 1);
    e.expire(5 * SEC);
    assert!(e.published().mac_table.is_empty());
}

#[test]
fn reserved_destinations_are_dropped_and_group_sources_not_learned() {
    let p = normal_switch();
    let mut dp = Datapath::new();
    let mut bpdu = frame(1, 0, None);
    bpdu[..6].copy_from_slice(&[0x01, 0x80, 0xc2, 0, 0, 0]);
    assert_eq!(send(&mut dp, &p, 1, bpdu, 0), Vec::<u32>::new());
    let mut lldp = frame(1, 0, None);
    lldp[..6].copy_from_slice(&[0x01, 0x80, 0xc2, 0, 0, 0x0e]);
    assert_eq!(send(&mut dp, &p, 1, lldp, 0), Vec::<u32>::new());
    assert!(
        p.mac_table.is_empty(),
        "a dropped reserved frame teaches nothing"
    );
    let mut f = frame(0, 2, None);
    f[6..12].copy_from_slice(&[0x03, 0, 0, 0, 0, 1]);
    send(&mut dp, &p, 1, f, 0);
    assert!(
        p.mac_table.is_empty(),
        "a group source address is not learned"
    );
}

#[test]
fn another_threads_learning_reaches_this_threads_cache() {
    let mut e = Engine::new(normal_switch());
    e.publish();
    let mut a = Worker::new(e.reader());
    let mut b = Worker::new(e.reader());
    let run = |w: &mut Worker, in_port, f: Vec<u8>| {
        let mut out = Output::new();
        let mut batch = PacketBatch::new();
        batch.push_copy(&Packet::from_frame(&f));
        w.process_batch(in_port, &mut batch, 0, &mut out);
        out.per_port().map(|(p, _)| p).collect::<Vec<_>>()
    };
    // Thread b floods 1 → 2 (unknown) and caches it.
    assert_eq!(run(&mut b, 1, frame(1, 2, None)), [2, 3, 4]);
    assert_eq!(run(&mut b, 1, frame(1, 2, None)), [2, 3, 4]);
    assert_eq!(b.cache_stats().misses, 1);
    // Thread a learns 2 on port 3.
    assert_eq!(run(&mut a, 3, frame(2, 1, None)), [1]);
    // b's next batch goes to port 3 only.
    assert_eq!(run(&mut b, 1, frame(1, 2, None)), [3]);
}

#[test]
fn translation_and_trace_change_nothing_and_removed_ports_are_forgotten() {
    let mut p = normal_switch();
    let f = frame(1, 2, None);
    let t = p.trace(&f, RxMeta::port(1));
    assert!(p.mac_table.is_empty(), "a trace does not learn");
    assert!(t.learn.is_some());
    assert!(p.learn(&t, 0));
    assert!(!p.learn(&t, 1), "learning again is a refresh");
    p.remove_port(1);
    assert!(p.mac_table.is_empty());
}

#[test]
fn packet_out_to_normal_learns_from_real_ports_only() {
    let p = normal_switch();
    let mut rec = Recorder::default();
    let mut f = frame(1, 2, None);
    p.packet_out(
        &mut f,
        OFPP_CONTROLLER,
        &[Action::output(OFPP_NORMAL)],
        0,
        &mut rec,
    );
    assert_eq!(rec.outputs.len(), 4, "from the controller: every port");
    assert!(p.mac_table.is_empty());
    p.packet_out(&mut f, 2, &[Action::output(OFPP_NORMAL)], 0, &mut rec);
    assert_eq!(p.mac_table.lookup(0, 0x0200_0000_0001), Some(2));
}

#[test]
fn a_duplicate_table_is_separate() {
    let t = MacTable::new(300, 10);
    let p = normal_switch();
    let mut dp = Datapath::new();
    send(&mut dp, &p, 1, frame(1, BCAST, None), 0);
    let d = p.mac_table.duplicate();
    assert_eq!(d.entries(), p.mac_table.entries());
    p.mac_table.flush();
    assert_eq!(d.len(), 1);
    assert!(t.is_empty());
}
