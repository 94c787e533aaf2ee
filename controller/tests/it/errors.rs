//! Errors: the switch's OpenFlow ERROR printed as ovs-ofctl prints it (exit 1), bad text
//! (exit 1, nothing sent), unreachable targets; and `monitor` printing async messages.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ovs::{Ovs, TGT, normalize};

#[test]
fn errors_are_reported_and_exit_nonzero() {
    let ovs = Ovs::start("errors", 2);
    // A match field without its prerequisite: ovs-ofctl drops the field from the match and
    // says so; fuxi-ofctl does the same, and the flows it leaves are the same.
    for text in ["nw_src=10.0.0.1,actions=drop", "tcp_dst=80,actions=drop"] {
        let theirs = ovs.ovs_ofctl(&["add-flow", TGT, text]);
        let their_flows = ovs.fuxi(&["--no-stats", "dump-flows", TGT]).ok().stdout;
        ovs.fuxi(&["del-flows", TGT]).ok();
        let o = ovs.fuxi(&["add-flow", TGT, text]);
        assert_eq!((o.code, theirs.code), (0, 0), "{text}: {o:#?} {theirs:#?}");
        assert!(
            o.stderr.contains("dropped") && o.stderr.contains("prerequisites not met"),
            "{o:#?}"
        );
        let ours = ovs.fuxi(&["--no-stats", "dump-flows", TGT]).ok().stdout;
        assert_eq!(ours, their_flows, "{text}");
        assert!(ours.contains(" actions=drop"), "{ours}");
        ovs.fuxi(&["del-flows", TGT]).ok();
    }
    // The refused flow mod is printed back decoded when it decodes, as ovs-ofctl does.
    let o = ovs.fuxi(&["add-flow", TGT, "actions=group:99"]);
    let theirs = ovs.ovs_ofctl(&["add-flow", TGT, "actions=group:99"]);
    assert_eq!((o.code, theirs.code), (1, 1));
    assert_eq!(normalize(&o.stderr), normalize(&theirs.stderr));
    // Nothing was added.
    let d = ovs.fuxi(&["dump-flows", TGT]).ok().stdout;
    assert_eq!(d.lines().count(), 1, "{d}");

    // Bad text: exit 1, a clear message, nothing sent.
    for (args, want) in [
        (
            &["add-flow", TGT, "foo=1,actions=drop"][..],
            "unknown keyword foo",
        ),
        (&["add-flow", TGT, "in_port=1"], "must specify an action"),
        (
            &["add-flow", TGT, "nw_dst=1.2.3.999,ip,actions=drop"],
            "1.2.3.999: invalid IP address",
        ),
        (
            &["add-flow", TGT, "actions=frobnicate"],
            "unknown action frobnicate",
        ),
        // Open vSwitch's extensions (NXM registers) are not OpenFlow 1.3.
        (
            &["add-flow", TGT, "reg0=5,actions=drop"],
            "reg0: Open vSwitch extension field",
        ),
        (
            &["add-flow", TGT, "in_port=nosuchport,actions=drop"],
            "nosuchport: invalid or unknown port",
        ),
        (
            &["add-group", TGT, "group_id=1,type=nope,bucket=output:1"],
            "unknown group type",
        ),
        (
            &["add-meter", TGT, "meter=1,band=rate=5"],
            "rate before a band type",
        ),
        (&["-O", "OpenFlow10", "dump-flows", TGT], "OpenFlow13 only"),
        (&["dump-flows", "tcp:127.0.0.1:1"], "connection failed"),
        (
            &["dump-flows", "unix:/nonexistent/br0.mgmt"],
            "connection failed",
        ),
    ] {
        let o = ovs.fuxi(args);
        assert_eq!(o.code, 1, "{args:?}: {o:#?}");
        assert!(o.stderr.contains(want), "{args:?}: {o:#?}");
    }
    // A switch that does not speak OpenFlow 1.3.
    ovs.vsctl(&["set", "bridge", "br0", "protocols=OpenFlow10"])
        .ok();
    std::thread::sleep(Duration::from_millis(300));
    let o = ovs.fuxi(&["dump-flows", TGT]);
    assert_eq!(o.code, 1, "{o:#?}");
    assert!(
        o.stderr
            .contains("does not offer OpenFlow 1.3 (its HELLO has version 0x01)"),
        "{o:#?}"
    );
    ovs.vsctl(&["set", "bridge", "br0", "protocols=OpenFlow13"])
        .ok();
    std::thread::sleep(Duration::from_millis(300));
    // A file with a bad line names the line.
    let file = ovs.dir.join("bad.flows");
    std::fs::write(
        &file,
        "arp,actions=NORMAL\nip,nw_src=1.2.3.4,actions=bogus\n",
    )
    .unwrap();
    let o = ovs.fuxi(&["add-flows", TGT, file.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("line 2: unknown action bogus"), "{o:#?}");
}

#[test]
fn monitor_prints_async_messages() {
    let ovs = Ovs::start("monitor", 2);
    ovs.fuxi(&[
        "add-flow",
        TGT,
        "priority=300,in_port=1,actions=CONTROLLER:128",
    ])
    .ok();
    ovs.fuxi(&[
        "add-flow",
        TGT,
        "priority=301,in_port=2,hard_timeout=1,send_flow_rem,actions=drop",
    ])
    .ok();
    let log = ovs.dir.join("monitor.out");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ovs.ns, env!("CARGO_BIN_EXE_fuxi-ofctl")])
        .args(["monitor", &ovs.mgmt()])
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // A packet through the table reaches the controller action.
    ovs.fuxi(&[
        "packet-out",
        TGT,
        "in_port=1 packet=ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000009 actions=output:TABLE",
    ])
    .ok();
    ovs.fuxi(&["mod-port", TGT, "2", "down"]).ok();
    // The hard timeout expires (OVS looks about once a second): wait for all three.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut out = String::new();
    while std::time::Instant::now() < deadline {
        out = std::fs::read_to_string(&log).unwrap_or_default();
        if ["OFPT_PACKET_IN", "OFPT_PORT_STATUS", "OFPT_FLOW_REMOVED"]
            .iter()
            .all(|m| out.contains(m))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // End only the process we started, by its id.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    assert!(
        out.contains("OFPT_PACKET_IN (OF1.3) (xid=0x0): cookie=0x0 total_len=42 in_port=1 (via action) data_len=42 (unbuffered)\narp,vlan_tci=0x0000,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_spa=10.0.0.1,arp_tpa=10.0.0.9,arp_op=1"),
        "{out}"
    );
    assert!(
        out.contains("OFPT_PORT_STATUS (OF1.3) (xid=0x0): MOD: 2(p2): addr:02:00:00:00:01:02"),
        "{out}"
    );
    assert!(
        out.contains(
            "OFPT_FLOW_REMOVED (OF1.3) (xid=0x0): priority=301,in_port=2 reason=hard table_id=0"
        ),
        "{out}"
    );
}
