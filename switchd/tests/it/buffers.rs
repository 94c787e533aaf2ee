//! Packet buffering: a packet-in cut to max_len keeps the whole packet in the switch under
//! a buffer id; a PACKET_OUT or FLOW_MOD naming the id sends the whole packet on; used,
//! unknown and expired ids get BAD_REQUEST errors and the connection stays up. Needs root.

use fuxi_openflow::consts::{OFP_NO_BUFFER, OFPP_CONTROLLER};
use fuxi_openflow::msg::{self, FlowModCommand};
use fuxi_openflow::{Action, ErrorCode, FieldId, Instruction, Match, Message, Oxm};

use crate::util::*;

/// Echo requests from host 1 larger than 200 bytes, as host 2 receives them.
const BIG_ECHO: &str = "icmp[icmptype] == icmp-echo and greater 200";

/// Pings host 2 once from host 1 with 200 bytes of payload (a 242-byte frame) and returns
/// the packet-in that the table-miss flow sends for it.
fn big_ping_packet_in(topo: &Topo, c: &mut OfConn) -> msg::PacketIn {
    let h1 = topo.hosts[0].clone();
    // ping waits for a reply that only comes once the controller has acted: in the
    // background.
    let ping = std::thread::spawn(move || {
        sh_ok(&format!(
            "ip netns exec {h1} ping -c 1 -W 1 -s 200 10.9.0.2"
        ))
    });
    let pi = c.wait_for("packet-in of the ping", |_, m| match m {
        Message::PacketIn(pi)
            if pi.match_.get(FieldId::InPort).map(|o| o.value) == Some(1)
                && pi.total_len == 242 =>
        {
            Some(pi)
        }
        _ => None,
    });
    let _ = ping.join();
    pi
}

fn packet_out(buffer_id: u32, in_port: u32, out: u32) -> Message {
    Message::PacketOut(msg::PacketOut {
        buffer_id,
        in_port,
        actions: vec![Action::Output {
            port: out,
            max_len: 0,
        }],
        data: vec![],
    })
}

#[test]
fn buffered_packet_in_then_packet_out_and_flow_mod_by_buffer_id() {
    let Some((topo, sd)) = setup_switch("bu", 2) else {
        return;
    };
    let ns = Some(topo.sw.as_str());
    let t = sd.target.as_str();
    let h2 = topo.hosts[1].as_str();
    let show = ofctl_ok_in(ns, &["show", t]);
    assert!(show.contains("n_buffers:256"), "{show}");
    ofctl_ok_in(ns, &["add-flow", t, "priority=0,actions=CONTROLLER:64"]);
    let mut c = OfConn::connect(ns, sd.port);

    // 1. The packet-in carries 64 bytes and a buffer id; a packet-out naming the id sends
    //    the whole 242-byte frame.
    let cap = Capture::start(h2, "v2", 1, BIG_ECHO);
    let pi = big_ping_packet_in(&topo, &mut c);
    assert_eq!(pi.data.len(), 64, "{pi:?}");
    assert_ne!(pi.buffer_id, OFP_NO_BUFFER);
    assert_eq!(&pi.data[6..12], &[2, 0, 0, 0, 0, 1]);
    c.send(10, &packet_out(pi.buffer_id, 1, 2));
    let seen = c.barrier(11);
    assert_eq!(error_for(&seen, 10), None, "{seen:?}");
    let lines = cap.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("length 242"), "{lines:?}");
    assert!(lines[0].contains("10.9.0.1 > 10.9.0.2"), "{lines:?}");

    // 2. The same id again: BUFFER_EMPTY; an id never given: BUFFER_UNKNOWN (as a
    //    packet-out and as a flow-mod); the connection stays up.
    c.send(12, &packet_out(pi.buffer_id, 1, 2));
    c.send(13, &packet_out(0x00ab_cd07, OFPP_CONTROLLER, 2));
    let mut fm = msg::FlowMod {
        cookie: 0,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 5,
        buffer_id: 0x00ab_cd07,
        out_port: 0,
        out_group: 0,
        flags: 0,
        match_: Match {
            fields: vec![Oxm::in_port(3).into()],
        },
        instructions: vec![],
    };
    c.send(14, &Message::FlowMod(fm.clone()));
    let seen = c.barrier(15);
    assert_eq!(
        error_for(&seen, 12),
        Some(ErrorCode::BAD_REQUEST_BUFFER_EMPTY)
    );
    assert_eq!(
        error_for(&seen, 13),
        Some(ErrorCode::BAD_REQUEST_BUFFER_UNKNOWN)
    );
    assert_eq!(
        error_for(&seen, 14),
        Some(ErrorCode::BAD_REQUEST_BUFFER_UNKNOWN)
    );
    c.send(16, &Message::EchoRequest(b"up".to_vec()));
    c.wait_for("echo reply", |x, m| {
        (x == 16 && m == Message::EchoReply(b"up".to_vec())).then_some(())
    });

    // 3. A flow-mod naming a new buffer: the flow is added, then the buffered packet goes
    //    through the tables and meets it (counted there), and leaves on port 2.
    let cap = Capture::start(h2, "v2", 1, BIG_ECHO);
    let pi = big_ping_packet_in(&topo, &mut c);
    assert_eq!(pi.data.len(), 64);
    assert_ne!(pi.buffer_id, OFP_NO_BUFFER);
    fm.buffer_id = pi.buffer_id;
    fm.priority = 10;
    fm.match_ = Match {
        fields: vec![Oxm::in_port(1).into()],
    };
    fm.instructions = vec![Instruction::ApplyActions(vec![Action::Output {
        port: 2,
        max_len: 0,
    }])];
    c.send(20, &Message::FlowMod(fm));
    let seen = c.barrier(21);
    assert_eq!(error_for(&seen, 20), None, "{seen:?}");
    let lines = cap.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("length 242"), "{lines:?}");
    let dump = ofctl_ok_in(ns, &["dump-flows", t]);
    assert_eq!(
        packets_of(&dump, "priority=10,in_port=1"),
        Some(1),
        "{dump}"
    );

    // 4. Packets that fit max_len are not buffered and come whole: a small ping from
    //    host 2 (a 50-byte frame; no flow for port 2).
    let h2 = h2.to_string();
    let ping = std::thread::spawn(move || {
        sh_ok(&format!("ip netns exec {h2} ping -c 1 -W 1 -s 8 10.9.0.1"))
    });
    let pi = c.wait_for("an unbuffered packet-in", |_, m| match m {
        Message::PacketIn(pi) if pi.total_len <= 64 => Some(pi),
        _ => None,
    });
    let _ = ping.join();
    assert_eq!(pi.buffer_id, OFP_NO_BUFFER);
    assert_eq!(pi.data.len(), usize::from(pi.total_len));
}
