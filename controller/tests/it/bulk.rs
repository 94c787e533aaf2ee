//! 10,000 flows from a file (and from standard input), one by one and as one atomic bundle.

use crate::ovs::{Ovs, TGT, flow_lines};

fn ten_thousand() -> String {
    let mut s = String::from("# 10,000 flows\n");
    for i in 0..10_000u32 {
        s.push_str(&format!(
            "priority={},ip,nw_dst=10.{}.{}.{},actions=output:{}\n",
            i % 100 + 1,
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff,
            i % 2 + 1
        ));
    }
    s
}

fn flow_count(ovs: &Ovs) -> String {
    let a = ovs.fuxi(&["dump-aggregate", TGT]).ok().stdout;
    a.split("flow_count=")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string()
}

#[test]
fn ten_thousand_flows_plain_and_bundled() {
    let ovs = Ovs::start("bulk", 2);
    let file = ovs.dir.join("10k.flows");
    let text = ten_thousand();
    std::fs::write(&file, &text).unwrap();
    let f = file.to_str().unwrap();

    let t = std::time::Instant::now();
    ovs.fuxi(&["add-flows", TGT, f]).ok();
    eprintln!("add-flows 10k: {:?}", t.elapsed());
    assert_eq!(flow_count(&ovs), "10000");
    let ours = ovs.fuxi(&["dump-flows", TGT]).ok().stdout;
    let theirs = ovs.ovs_ofctl(&["dump-flows", TGT]).ok().stdout;
    let (a, b) = (flow_lines(&ours), flow_lines(&theirs));
    assert_eq!(a.len(), 10_000);
    assert_eq!(
        a, b,
        "10k flows dump the same through fuxi-ofctl and ovs-ofctl"
    );
    ovs.fuxi(&["del-flows", TGT]).ok();
    assert_eq!(flow_count(&ovs), "0");

    let t = std::time::Instant::now();
    ovs.fuxi(&["--bundle", "add-flows", TGT, f]).ok();
    eprintln!("add-flows --bundle 10k: {:?}", t.elapsed());
    assert_eq!(flow_count(&ovs), "10000");
    ovs.fuxi(&["del-flows", TGT]).ok();

    // From standard input.
    ovs.fuxi_stdin(&["add-flows", TGT, "-"], Some(&text)).ok();
    assert_eq!(flow_count(&ovs), "10000");
    ovs.fuxi(&["del-flows", TGT]).ok();

    // A bundle with one bad flow (a group that does not exist) changes nothing.
    let bad = format!("{text}priority=1,actions=group:12345\n");
    std::fs::write(&file, bad).unwrap();
    let o = ovs.fuxi(&["--bundle", "add-flows", TGT, f]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("OFPT_ERROR (OF1.3)"), "{o:#?}");
    assert!(o.stderr.contains("OFPBAC_BAD_OUT_GROUP"), "{o:#?}");
    assert_eq!(flow_count(&ovs), "0", "the bundle was atomic");
    // Without --bundle, the good flows stay and the error is still reported.
    let o = ovs.fuxi(&["add-flows", TGT, f]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("OFPBAC_BAD_OUT_GROUP"), "{o:#?}");
    assert_eq!(flow_count(&ovs), "10000");
}
