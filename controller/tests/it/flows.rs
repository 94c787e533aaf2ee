//! Flows programmed with fuxi-ofctl into a real Open vSwitch read back the same through
//! fuxi-ofctl and through ovs-ofctl; filters, deletes, modifications, diff and replace.

use crate::ovs::{Ovs, TGT, flow_lines, normalize};

/// Flows of many field and action kinds, as one would type them.
pub const FLOWS: &[&str] = &[
    "priority=100,in_port=1,dl_vlan=10,actions=pop_vlan,output:2",
    "table=0,priority=200,cookie=0x5,ip,nw_src=10.0.0.0/24,tcp,tp_dst=80,idle_timeout=30,actions=mod_nw_dst:1.2.3.4,output:2",
    "arp,actions=NORMAL",
    "in_port=2,actions=push_vlan:0x8100,set_field:4106->vlan_vid,output:1",
    "priority=5,udp,actions=group:1",
    "ip,nw_dst=10.0.0.1,tcp,actions=goto_table:1",
    "table=1,priority=1,actions=clear_actions,write_actions(output:2)",
    "priority=7,metadata=0x5/0xff,tun_id=0x7,in_port=1,tcp,dl_src=02:00:00:00:00:01,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,dl_vlan=5,dl_vlan_pcp=3,nw_tos=16,nw_ecn=1,nw_src=1.1.1.0/24,nw_dst=2.2.2.2,tp_src=1000,tp_dst=0x10/0xfff0,actions=output:1",
    "priority=8,ipv6,ipv6_src=2001:db8::/32,ipv6_dst=::1,ipv6_label=5,nw_proto=17,actions=drop",
    "priority=9,icmp6,icmpv6_type=135,nd_target=fe80::1,nd_sll=02:00:00:00:00:01,actions=drop",
    "priority=10,icmp,icmp_type=8,icmp_code=0,actions=drop",
    "priority=11,arp,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2,arp_sha=02:00:00:00:00:01,arp_tha=00:00:00:00:00:00,actions=drop",
    "priority=12,dl_type=0x8847,mpls_label=10,mpls_tc=1,mpls_bos=1,actions=pop_mpls:0x0800,output:2",
    "priority=13,vlan_tci=0x1000/0x1000,actions=drop",
    "priority=14,dl_vlan=0xffff,actions=drop",
    "priority=15,ip,nw_proto=47,ip_dscp=10,actions=drop",
    "priority=16,udp6,udp_src=53,actions=drop",
    "priority=17,sctp,sctp_dst=9,actions=drop",
    "priority=18,in_port=LOCAL,dl_type=0x88cc,actions=drop",
    "priority=19,ip,actions=mod_dl_src:02:00:00:00:00:09,mod_dl_dst:02:00:00:00:00:0a,mod_nw_src:1.1.1.1,mod_nw_tos:8,dec_ttl,mod_nw_ttl:9,set_queue:3,output:IN_PORT",
    "priority=20,tcp,actions=set_field:5->tcp_src,set_field:6->tcp_dst,FLOOD",
    "priority=21,dl_vlan=7,actions=mod_vlan_vid:8,mod_vlan_pcp:2,strip_vlan,ALL",
    "priority=22,actions=push_mpls:0x8847,dec_mpls_ttl,set_field:5->mpls_label,LOCAL,CONTROLLER:65535",
    "priority=23,actions=write_metadata:0x5/0xff,goto_table:2",
    "priority=24,actions=write_actions(output:1,group:1),goto_table:3",
    "priority=25,udp,actions=set_field:02:00:00:00:00:01->eth_dst,set_field:53->udp_dst,output:1,output:2",
    "priority=26,in_port=1,actions=in_port",
    "priority=27,hard_timeout=600,send_flow_rem,ip,nw_src=192.168.1.1,actions=meter:1,output:2",
    "priority=28,actions=set_field:0x5->tun_id,output:p1",
    "priority=0,actions=CONTROLLER:128",
    "table=3,cookie=0x99,priority=30,ip,nw_dst=10.1.0.0/255.255.0.0,actions=drop",
    "priority=31,tcp,tcp_flags=+syn-ack,actions=drop",
    "priority=32,tcp,tcp_flags=syn|ack,actions=drop",
    "priority=33,in_port=p2,actions=output:p1,p2",
];

fn same_flows(ovs: &Ovs, filter: Option<&str>) {
    let mut a = vec!["dump-flows", TGT];
    a.extend(filter);
    let ours = ovs.fuxi(&a).ok().stdout;
    let theirs = ovs.ovs_ofctl(&a).ok().stdout;
    assert_eq!(flow_lines(&ours), flow_lines(&theirs), "filter {filter:?}");
    // Without statistics the texts are identical, line for line.
    let mut a = vec!["--no-stats", "dump-flows", TGT];
    a.extend(filter);
    let ours = ovs.fuxi(&a).ok().stdout;
    let theirs = ovs.ovs_ofctl(&a).ok().stdout;
    assert_eq!(
        ours.lines().skip(1).collect::<Vec<_>>(),
        theirs.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn flows_agree_with_ovs_ofctl() {
    let ovs = Ovs::start("flows", 2);
    ovs.fuxi(&[
        "add-group",
        TGT,
        "group_id=1,type=select,bucket=output:1,bucket=output:2",
    ])
    .ok();
    ovs.fuxi(&["add-meter", TGT, "meter=1,kbps,band=type=drop,rate=1000"])
        .ok();
    for f in FLOWS {
        let o = ovs.fuxi(&["-O", "OpenFlow13", "add-flow", TGT, f]);
        assert_eq!(o.code, 0, "{f}: {o:#?}");
    }
    let ours = ovs.fuxi(&["dump-flows", TGT]).ok().stdout;
    assert_eq!(flow_lines(&ours).len(), FLOWS.len(), "{ours}");
    assert!(
        ours.starts_with("OFPST_FLOW reply (OF1.3) (xid=0x2):\n"),
        "{ours}"
    );
    same_flows(&ovs, None);
    for filter in [
        "tcp",
        "in_port=1",
        "table=1",
        "table=3",
        "cookie=0x5/-1",
        "cookie=0x99/0xff",
        "ip,nw_dst=10.0.0.1",
        "out_port=2",
        "udp",
        "arp",
    ] {
        let filter = filter.replace("/-1", "/0xffffffffffffffff");
        same_flows(&ovs, Some(&filter));
    }
    // Aggregates agree.
    for filter in [None, Some("tcp"), Some("table=1")] {
        let mut a = vec!["dump-aggregate", TGT];
        a.extend(filter);
        assert_eq!(
            normalize(&ovs.fuxi(&a).ok().stdout),
            normalize(&ovs.ovs_ofctl(&a).ok().stdout)
        );
    }
    // The management socket and a bridge name with --rundir reach the same switch.
    let via_unix = ovs
        .fuxi_unix(&["--no-stats", "dump-flows", TGT])
        .ok()
        .stdout;
    let rundir = ovs.dir.join("run");
    let via_name = ovs
        .fuxi_unix(&[
            "--rundir",
            rundir.to_str().unwrap(),
            "--no-stats",
            "dump-flows",
            "br0",
        ])
        .ok()
        .stdout;
    let via_tcp = ovs.fuxi(&["--no-stats", "dump-flows", TGT]).ok().stdout;
    assert_eq!(via_unix, via_tcp);
    assert_eq!(via_name, via_tcp);

    // Sorted by priority, both ways, as ovs-ofctl sorts.
    for opt in ["--sort", "--rsort", "--rsort=priority"] {
        let ours: Vec<String> = ovs
            .fuxi(&[opt, "--no-stats", "dump-flows", TGT, "table=0"])
            .ok()
            .stdout
            .lines()
            .map(|l| {
                l.split(" actions=")
                    .next()
                    .unwrap()
                    .split("priority=")
                    .nth(1)
                    .unwrap_or("32768")
                    .split(',')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let theirs: Vec<String> = ovs
            .ovs_ofctl(&[opt, "--no-stats", "dump-flows", TGT, "table=0"])
            .ok()
            .stdout
            .lines()
            .map(|l| {
                l.split(" actions=")
                    .next()
                    .unwrap()
                    .split("priority=")
                    .nth(1)
                    .unwrap_or("32768")
                    .split(',')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ours, theirs, "{opt}");
    }
    // mod-flows changes actions of what matches, and only that.
    ovs.fuxi(&["mod-flows", TGT, "arp,actions=output:1"]).ok();
    ovs.fuxi(&[
        "--strict",
        "mod-flows",
        TGT,
        "priority=10,icmp,icmp_type=8,icmp_code=0,actions=output:2",
    ])
    .ok();
    let d = ovs.fuxi(&["--no-stats", "dump-flows", TGT]).ok().stdout;
    assert!(d.contains(" arp actions=output:1\n"), "{d}");
    assert!(
        d.contains("priority=10,icmp,icmp_type=8,icmp_code=0 actions=output:2"),
        "{d}"
    );
    same_flows(&ovs, None);

    // del-flows with filters removes exactly what ovs-ofctl's filter selects.
    let count = |ovs: &Ovs| flow_lines(&ovs.fuxi(&["dump-flows", TGT]).ok().stdout).len();
    let before = count(&ovs);
    let tcp = flow_lines(&ovs.fuxi(&["dump-flows", TGT, "tcp"]).ok().stdout).len();
    assert!(tcp >= 3);
    ovs.fuxi(&["del-flows", TGT, "tcp"]).ok();
    assert_eq!(count(&ovs), before - tcp);
    assert!(flow_lines(&ovs.ovs_ofctl(&["dump-flows", TGT, "tcp"]).ok().stdout).is_empty());
    same_flows(&ovs, None);
    // Strict: only the exact priority and match.
    ovs.fuxi(&["--strict", "del-flows", TGT, "priority=100,in_port=1"])
        .ok();
    assert_eq!(
        count(&ovs),
        before - tcp,
        "a strict delete with another match deletes nothing"
    );
    ovs.fuxi(&[
        "--strict",
        "del-flows",
        TGT,
        "priority=100,in_port=1,dl_vlan=10",
    ])
    .ok();
    assert_eq!(count(&ovs), before - tcp - 1);
    // By cookie and by table.
    ovs.fuxi(&["del-flows", TGT, "cookie=0x99/0xffffffffffffffff"])
        .ok();
    assert!(flow_lines(&ovs.ovs_ofctl(&["dump-flows", TGT, "table=3"]).ok().stdout).is_empty());
    ovs.fuxi(&["del-flows", TGT, "table=1"]).ok();
    assert!(flow_lines(&ovs.ovs_ofctl(&["dump-flows", TGT, "table=1"]).ok().stdout).is_empty());
    // By out_port.
    let to2 = flow_lines(&ovs.fuxi(&["dump-flows", TGT, "out_port=2"]).ok().stdout).len();
    assert!(to2 > 0);
    let n = count(&ovs);
    ovs.fuxi(&["del-flows", TGT, "out_port=2"]).ok();
    assert_eq!(count(&ovs), n - to2);
    same_flows(&ovs, None);

    // diff-flows and replace-flows.
    let file = ovs.dir.join("want.flows");
    std::fs::write(
        &file,
        "# wanted flows\npriority=7,in_port=1,actions=output:2\narp,actions=NORMAL\n\n\
         table=2,priority=3,ip,nw_src=10.0.0.5,actions=drop\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let d = ovs.fuxi(&["diff-flows", TGT, f]);
    assert_eq!(d.code, 2, "{d:#?}");
    assert!(
        d.stdout.contains("+priority=7,in_port=1 actions=output:2"),
        "{d:#?}"
    );
    assert!(
        d.stdout
            .contains("-arp actions=output:1\n+arp actions=NORMAL"),
        "{d:#?}"
    );
    let theirs = ovs.ovs_ofctl(&["diff-flows", TGT, f]);
    assert_eq!(theirs.code, 2);
    let mut a: Vec<&str> = d.stdout.lines().collect();
    let mut b: Vec<&str> = theirs.stdout.lines().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "diff-flows agrees with ovs-ofctl's");
    ovs.fuxi(&["replace-flows", TGT, f]).ok();
    let d = ovs.fuxi(&["diff-flows", TGT, f]);
    assert_eq!((d.code, d.stdout.as_str()), (0, ""), "{d:#?}");
    assert_eq!(ovs.ovs_ofctl(&["diff-flows", TGT, f]).code, 0);
    assert_eq!(count(&ovs), 3);
    // Again in one bundle, to a different set.
    std::fs::write(
        &file,
        "priority=9,in_port=2,actions=output:1\narp,actions=NORMAL\n",
    )
    .unwrap();
    ovs.fuxi(&["--bundle", "replace-flows", TGT, f]).ok();
    assert_eq!(ovs.ovs_ofctl(&["diff-flows", TGT, f]).code, 0);
    assert_eq!(count(&ovs), 2);

    // del-flows without a filter empties every table.
    ovs.fuxi(&["del-flows", TGT]).ok();
    assert_eq!(count(&ovs), 0);
}

#[test]
fn switch_descriptions_agree_with_ovs_ofctl() {
    let ovs = Ovs::start("desc", 2);
    for verb in [
        &["show", TGT][..],
        &["dump-desc", TGT],
        &["dump-tables", TGT],
        &["dump-ports-desc", TGT],
        &["dump-ports", TGT, "1"],
        &["dump-group-features", TGT],
        &["meter-features", TGT],
    ] {
        let ours = ovs.fuxi(verb).ok().stdout;
        let theirs = ovs.ovs_ofctl(verb).ok().stdout;
        assert_eq!(normalize(&ours), normalize(&theirs), "{verb:?}");
    }
    // One port (ovs-ofctl prints them all in OpenFlow 1.3; we filter).
    let one = ovs.fuxi(&["dump-ports-desc", TGT, "p2"]).ok().stdout;
    assert!(
        one.contains(" 2(p2): addr:02:00:00:00:01:02") && !one.contains("(p1)"),
        "{one}"
    );
    // All ports: same port lines (ovs-ofctl and we may list them in another order).
    let ours = ovs.fuxi(&["dump-ports", TGT]).ok().stdout;
    let theirs = ovs.ovs_ofctl(&["dump-ports", TGT]).ok().stdout;
    let mut a: Vec<String> = normalize(&ours).lines().map(str::to_string).collect();
    let mut b: Vec<String> = normalize(&theirs).lines().map(str::to_string).collect();
    a.sort();
    b.sort();
    // rx/tx counters of LOCAL may move between the two dumps; compare the shape.
    assert_eq!(a.len(), b.len(), "{ours}\n{theirs}");
    let tf = ovs.fuxi(&["dump-table-features", TGT]).ok().stdout;
    assert!(tf.starts_with("OFPST_TABLE_FEATURES reply (OF1.3)"), "{tf}");
    assert!(tf.contains("  table 0:") && tf.contains("ditto"), "{tf}");

    // mod-port: down, seen by ovs-ofctl; up again.
    ovs.fuxi(&["mod-port", TGT, "p2", "down"]).ok();
    let d = ovs.ovs_ofctl(&["dump-ports-desc", TGT, "2"]).ok().stdout;
    assert!(d.contains("config:     PORT_DOWN"), "{d}");
    ovs.fuxi(&["mod-port", TGT, "2", "up"]).ok();
    let d = ovs.ovs_ofctl(&["dump-ports-desc", TGT, "2"]).ok().stdout;
    assert!(d.contains("config:     0"), "{d}");
}

/// The same flow texts, added by ovs-ofctl and by fuxi-ofctl, leave the same flows in Open
/// vSwitch; texts ovs-ofctl refuses, fuxi-ofctl refuses too.
#[test]
fn flow_texts_encode_as_ovs_ofctl_encodes_them() {
    let ovs = Ovs::start("corpus", 2);
    ovs.fuxi(&["add-group", TGT, "group_id=1,type=all,bucket=output:1"])
        .ok();
    ovs.fuxi(&["add-meter", TGT, "meter=1,kbps,band=type=drop,rate=100"])
        .ok();
    let same = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/same_as_ovs.flows"
    );
    ovs.ovs_ofctl(&["add-flows", TGT, same]).ok();
    let theirs = ovs
        .ovs_ofctl(&["--no-stats", "dump-flows", TGT])
        .ok()
        .stdout;
    ovs.ovs_ofctl(&["del-flows", TGT]).ok();
    ovs.fuxi(&["add-flows", TGT, same]).ok();
    let ours = ovs
        .ovs_ofctl(&["--no-stats", "dump-flows", TGT])
        .ok()
        .stdout;
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert!(sorted(&theirs).len() > 30, "{theirs}");
    assert_eq!(sorted(&ours), sorted(&theirs));

    let refused = include_str!("../fixtures/refused.flows");
    for line in refused
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let o = ovs.fuxi(&["add-flow", TGT, line]);
        assert_eq!(o.code, 1, "{line}: {o:#?}");
    }
    let left = ovs
        .ovs_ofctl(&["--no-stats", "dump-flows", TGT])
        .ok()
        .stdout;
    assert_eq!(
        sorted(&left),
        sorted(&ours),
        "refused flows changed nothing"
    );
}
