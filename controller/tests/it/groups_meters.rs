//! Groups and meters programmed with fuxi-ofctl read back the same through ovs-ofctl.

use crate::ovs::{Ovs, TGT, normalize};

fn same(ovs: &Ovs, args: &[&str]) -> String {
    let ours = ovs.fuxi(args).ok().stdout;
    let theirs = ovs.ovs_ofctl(args).ok().stdout;
    assert_eq!(normalize(&ours), normalize(&theirs), "{args:?}");
    ours
}

#[test]
fn groups_agree_with_ovs_ofctl() {
    let ovs = Ovs::start("groups", 2);
    for g in [
        "group_id=1,type=select,bucket=output:1,bucket=output:2",
        "group_id=2,type=all,bucket=output:1,bucket=actions=output:2",
        "group_id=3,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:2,actions=output:2",
        "group_id=4,type=indirect,bucket=actions=set_field:02:00:00:00:00:01->eth_dst,output:1",
        "group_id=5,type=select,bucket=weight:50,actions=output:1,bucket=weight:150,actions=dec_ttl,output:2",
        "group_id=6,type=indirect,bucket=actions=push_vlan:0x8100,set_field:4196->vlan_vid,group:4",
    ] {
        let o = ovs.fuxi(&["add-group", TGT, g]);
        assert_eq!(o.code, 0, "{g}: {o:#?}");
    }
    let d = same(&ovs, &["dump-groups", TGT]);
    assert_eq!(d.lines().count(), 7, "{d}");
    same(&ovs, &["dump-group-stats", TGT]);
    same(&ovs, &["dump-group-stats", TGT, "group_id=3"]);
    let one = ovs.fuxi(&["dump-groups", TGT, "group_id=4"]).ok().stdout;
    assert_eq!(one.lines().count(), 2, "{one}");
    // A flow through a group, then mod-group, del-groups.
    ovs.fuxi(&["add-flow", TGT, "in_port=1,actions=group:2"])
        .ok();
    let s = same(&ovs, &["dump-group-stats", TGT, "group_id=2"]);
    assert!(s.contains("ref_count=1"), "{s}");
    ovs.fuxi(&["mod-group", TGT, "group_id=2,type=all,bucket=output:2"])
        .ok();
    let d = same(&ovs, &["dump-groups", TGT]);
    assert!(
        d.contains(" group_id=2,type=all,bucket=actions=output:2\n"),
        "{d}"
    );
    ovs.fuxi(&["del-groups", TGT, "group_id=5"]).ok();
    let d = same(&ovs, &["dump-groups", TGT]);
    assert!(!d.contains("group_id=5"), "{d}");
    // Deleting a group deletes the flows that use it.
    ovs.fuxi(&["del-groups", TGT, "group_id=2"]).ok();
    let f = ovs.fuxi(&["dump-flows", TGT]).ok().stdout;
    assert_eq!(f.lines().count(), 1, "{f}");
    ovs.fuxi(&["del-groups", TGT]).ok();
    let d = ovs.ovs_ofctl(&["dump-groups", TGT]).ok().stdout;
    assert_eq!(d.lines().count(), 1, "{d}");
    // Groups from a file, in one bundle.
    let file = ovs.dir.join("groups");
    std::fs::write(
        &file,
        "group_id=10,type=all,bucket=output:1\ngroup_id=11,type=indirect,bucket=output:2\n",
    )
    .unwrap();
    ovs.fuxi(&["--bundle", "add-groups", TGT, file.to_str().unwrap()])
        .ok();
    let d = same(&ovs, &["dump-groups", TGT]);
    assert_eq!(d.lines().count(), 3, "{d}");
}

#[test]
fn meters_agree_with_ovs_ofctl() {
    let ovs = Ovs::start("meters", 2);
    for m in [
        "meter=1,kbps,burst,band=type=drop,rate=1000,burst_size=100",
        "meter=2,pktps,stats,band=type=drop,rate=10",
        "meter=3,kbps,band=type=drop,rate=100",
    ] {
        let o = ovs.fuxi(&["add-meter", TGT, m]);
        assert_eq!(o.code, 0, "{m}: {o:#?}");
    }
    ovs.fuxi(&["add-flow", TGT, "ip,actions=meter:2,output:2"])
        .ok();
    let d = same(&ovs, &["dump-meters", TGT]);
    assert!(
        d.contains("meter=2 pktps stats bands=\ntype=drop rate=10"),
        "{d}"
    );
    same(&ovs, &["dump-meters", TGT, "meter=1"]);
    let s = same(&ovs, &["meter-stats", TGT]);
    assert!(s.contains("meter:2 flow_count:1 "), "{s}");
    same(&ovs, &["meter-stats", TGT, "meter=2"]);
    ovs.fuxi(&["mod-meter", TGT, "meter=3,kbps,band=type=drop,rate=200"])
        .ok();
    let d = same(&ovs, &["dump-meters", TGT, "meter=3"]);
    assert!(d.contains("type=drop rate=200"), "{d}");
    ovs.fuxi(&["del-meters", TGT, "meter=1"]).ok();
    let d = same(&ovs, &["dump-meters", TGT]);
    assert!(!d.contains("meter=1 "), "{d}");
    ovs.fuxi(&["del-meters", TGT]).ok();
    let d = ovs.ovs_ofctl(&["dump-meters", TGT]).ok().stdout;
    assert_eq!(d.lines().count(), 1, "{d}");
    // Deleting the meter removed the flow using it.
    let f = ovs.fuxi(&["dump-flows", TGT]).ok().stdout;
    assert_eq!(f.lines().count(), 1, "{f}");
}

/// Group and meter texts added by ovs-ofctl and by fuxi-ofctl leave the same state.
#[test]
fn group_and_meter_texts_encode_as_ovs_ofctl_encodes_them() {
    let ovs = Ovs::start("gmcorpus", 2);
    let groups = [
        "group_id=1,type=select,bucket=output:1,bucket=output:2",
        "group_id=2,type=all,bucket=output:1,bucket=actions=output:2",
        "group_id=3,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:2,actions=output:2",
        "group_id=4,type=indirect,bucket=actions=set_field:02:00:00:00:00:01->eth_dst,output:1",
        "group_id=5,type=select,bucket=weight:50,actions=output:1,bucket=weight:150,actions=dec_ttl,output:2",
        "group_id=6,type=indirect,bucket=actions=push_vlan:0x8100,set_field:4196->vlan_vid,group:4",
        "group_id=7,type=all,bucket=actions=mod_dl_src:02:00:00:00:00:09,output:LOCAL,bucket=output:IN_PORT",
    ];
    let meters = [
        "meter=1,kbps,burst,band=type=drop,rate=1000,burst_size=100",
        "meter=2,pktps,stats,band=type=drop,rate=10",
        "meter=3,kbps,band=type=drop,rate=100",
        "meter=4,pktps,burst,stats,band=type=drop,rate=50,burst_size=20",
    ];
    let state = |ovs: &Ovs| {
        let g = ovs.ovs_ofctl(&["dump-groups", TGT]).ok().stdout;
        let m = ovs.ovs_ofctl(&["dump-meters", TGT]).ok().stdout;
        // The switch lists them in hash order: compare sorted lines.
        let mut v: Vec<String> = normalize(&format!("{g}{m}"))
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    for g in groups {
        ovs.ovs_ofctl(&["add-group", TGT, g]).ok();
    }
    for m in meters {
        ovs.ovs_ofctl(&["add-meter", TGT, m]).ok();
    }
    let theirs = state(&ovs);
    ovs.ovs_ofctl(&["del-groups", TGT]).ok();
    ovs.ovs_ofctl(&["del-meters", TGT]).ok();
    for g in groups {
        ovs.fuxi(&["add-group", TGT, g]).ok();
    }
    for m in meters {
        ovs.fuxi(&["add-meter", TGT, m]).ok();
    }
    assert_eq!(state(&ovs), theirs);
}
