//! Text tables for `fuxi-ospfd show ...`, laid out like FRR's `show ip ospf ...`, built from
//! the JSON the control socket returns. Pure formatting; no I/O.

use serde_json::Value;

fn s(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        x => x.to_string(),
    }
}

pub fn neighbors(v: &Value) -> String {
    let mut o = format!(
        "{:<15} {:>3} {:<15} {:>9} {:<15} {:<20} {:>5} {:>5} {:>5}\n",
        "Neighbor ID",
        "Pri",
        "State",
        "Dead Time",
        "Address",
        "Interface",
        "RXmtL",
        "RqstL",
        "DBsmL"
    );
    for n in v.as_array().into_iter().flatten() {
        let dead = n["dead_time_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
        o += &format!(
            "{:<15} {:>3} {:<15} {:>8.3}s {:<15} {:<20} {:>5} {:>5} {:>5}\n",
            s(n, "router_id"),
            s(n, "priority"),
            format!("{}/{}", s(n, "state"), s(n, "role")),
            dead,
            s(n, "address"),
            format!("{}:{}", s(n, "interface"), s(n, "address")),
            s(n, "retransmit"),
            s(n, "request"),
            s(n, "summary")
        );
    }
    o
}

pub fn interfaces(v: &Value) -> String {
    let mut o = String::new();
    for i in v.as_array().into_iter().flatten() {
        o += &format!(
            "{} is up\n  Internet Address {}, Area {}\n  Network Type {}, Cost: {}\n  Transmit Delay is 1 sec, State {}, Priority {}\n  Designated Router (ID) {}, Interface Address {}\n  Backup Designated Router (ID) {}, Interface Address {}\n  Timer intervals configured, Hello {}s, Dead {}s, Retransmit {}\n  Neighbor Count is {}, Adjacent neighbor count is {}{}\n",
            s(i, "name"),
            s(i, "address"),
            s(i, "area"),
            s(i, "network_type").to_uppercase(),
            s(i, "cost"),
            s(i, "state"),
            s(i, "priority"),
            s(i, "dr_id"),
            s(i, "dr"),
            s(i, "bdr_id"),
            s(i, "bdr"),
            s(i, "hello"),
            s(i, "dead"),
            s(i, "retransmit"),
            s(i, "neighbors"),
            s(i, "adjacent"),
            if i["passive"].as_bool() == Some(true) {
                "\n  No Hellos (Passive interface)"
            } else {
                ""
            }
        );
    }
    o
}

pub fn database(v: &Value) -> String {
    let names = [
        (1, "Router Link States"),
        (2, "Net Link States"),
        (3, "Summary Link States"),
        (4, "ASBR-Summary Link States"),
        (5, "AS External Link States"),
        (7, "NSSA-external Link States"),
        (9, "Link-Local Opaque-LSA"),
        (10, "Area-Local Opaque-LSA"),
        (11, "AS-Global Opaque-LSA"),
    ];
    let mut o = String::new();
    let all: Vec<&Value> = v.as_array().into_iter().flatten().collect();
    let mut areas: Vec<String> = all.iter().map(|l| s(l, "area")).collect();
    areas.sort();
    areas.dedup();
    // AS-scope ("-") last, as FRR prints it.
    areas.sort_by_key(|a| a == "-");
    for a in areas {
        for (t, name) in names {
            let rows: Vec<&&Value> = all
                .iter()
                .filter(|l| s(l, "area") == a && l["ls_type"].as_u64() == Some(t))
                .collect();
            if rows.is_empty() {
                continue;
            }
            if a == "-" {
                o += &format!("\n                {name}\n\n");
            } else {
                o += &format!("\n                {name} (Area {a})\n\n");
            }
            o += "Link ID         ADV Router      Age  Seq#       CkSum\n";
            for l in rows {
                o += &format!(
                    "{:<15} {:<15} {:>4} {} {}\n",
                    s(l, "id"),
                    s(l, "adv"),
                    s(l, "age"),
                    s(l, "seq"),
                    s(l, "checksum")
                );
            }
        }
    }
    o
}

pub fn routes(v: &Value) -> String {
    let mut o = String::new();
    for r in v.as_array().into_iter().flatten() {
        let kind = match s(r, "path").as_str() {
            "Intra" => "N",
            "Inter" => "N IA",
            "Ext1" => "N E1",
            _ => "N E2",
        };
        let cost = if s(r, "path") == "Ext2" {
            format!("[{}/{}]", s(r, "cost"), s(r, "cost2"))
        } else {
            format!("[{}]", s(r, "cost"))
        };
        let area = if r["area"].is_null() {
            String::new()
        } else {
            format!(" area: {}", s(r, "area"))
        };
        o += &format!("{:<5}{:<18} {}{}\n", kind, s(r, "prefix"), cost, area);
        for n in r["nexthops"].as_array().into_iter().flatten() {
            if n["gateway"].is_null() {
                o += &format!("{:23}directly attached to {}\n", "", s(n, "interface"));
            } else {
                o += &format!("{:23}via {}, {}\n", "", s(n, "gateway"), s(n, "interface"));
            }
        }
    }
    o
}
