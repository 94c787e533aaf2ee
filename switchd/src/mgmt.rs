//! The management socket (this module does I/O), `/run/fuxi/BRIDGE.mgmt` by default.
//!
//! It speaks two protocols, told apart by the first byte the client sends:
//! - OpenFlow (a version byte, 0x01..=0x06): the socket is an OpenFlow connection, as
//!   Open vSwitch's `BR.mgmt` is — `fuxi-ofctl BR` and `ovs-ofctl unix:PATH` use it;
//! - JSON lines (anything else, normally `{`): one request per line, one reply per line.
//!
//! JSON requests:
//!
//! - `{"cmd":"show"}` → bridge, datapath id, ports, flows per table (non-empty only)
//! - `{"cmd":"list-ports"}` → ports with numbers, types, link state, counters
//! - `{"cmd":"add-port","name":"veth3","ofport":3,"type":"afpacket"}` (ofport, type optional;
//!   type `vxlan` takes `"remote":"IP[:PORT]"` and optionally `"local":"IP[:PORT]"`;
//!   type `afxdp` optionally `"xdp_mode"`: best-effort, native-with-zerocopy, native, generic)
//! - `{"cmd":"del-port","name":"veth3"}`
//! - `{"cmd":"trace","flow":"in_port=1,tcp,nw_dst=10.0.0.2,tp_dst=80"}` → `"text"`: table by
//!   table which flow matched and its actions, then the final flow and the datapath
//!   actions, as `ovs-appctl ofproto/trace` prints them; also `"steps"` and `"actions"`.
//!
//! - `{"cmd":"fdb-show"}` → the MAC table the NORMAL action learned: `"entries"` (port,
//!   vlan, mac, age in seconds) and `"text"` as `ovs-appctl fdb/show` prints it.
//!
//! Replies are `{"ok":true,...}` or `{"ok":false,"error":"..."}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use fuxi_dataplane::pipeline::matching;
use fuxi_dataplane::pipeline::{DpAction, PortState};
use fuxi_openflow::msg::port::{OFPPR_ADD, OFPPR_DELETE};
use fuxi_openflow::{Oxm, OxmTlv};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::agent::{AsyncEvent, Switch};
use crate::config::{PortConfig, PortType};
use crate::datapath::PortSlot;

/// Binds the socket at `path` and serves it in the background.
pub async fn start(sw: Arc<Switch>, path: &str) -> Result<()> {
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let _ = std::fs::remove_file(path);
    let l = tokio::net::UnixListener::bind(path).with_context(|| format!("cannot bind {path}"))?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = l.accept().await {
            tokio::spawn(serve_client(sw.clone(), stream));
        }
    });
    Ok(())
}

async fn serve_client(sw: Arc<Switch>, stream: tokio::net::UnixStream) {
    let (mut rd, mut wr) = stream.into_split();
    let mut first = [0u8; 1];
    match rd.read(&mut first).await {
        Ok(1) => {}
        _ => return,
    }
    if (1..=6).contains(&first[0]) {
        let rd = std::io::Cursor::new(first).chain(rd);
        let io = tokio::io::join(rd, wr);
        crate::agent::serve(sw, io, "unix mgmt".to_string()).await;
        return;
    }
    let rd = std::io::Cursor::new(first).chain(rd);
    let mut lines = BufReader::new(rd).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        let sw2 = sw.clone();
        let reply = tokio::task::spawn_blocking(move || handle(&sw2, &line))
            .await
            .unwrap_or_else(|e| json!({"ok": false, "error": e.to_string()}));
        let mut s = reply.to_string();
        s.push('\n');
        if wr.write_all(s.as_bytes()).await.is_err() {
            break;
        }
    }
}

fn port_json(s: &PortSlot) -> Value {
    let st = s.stats();
    json!({
        "name": s.name,
        "ofport": s.ofport,
        "type": s.kind,
        "link_up": s.link_up.load(Ordering::Relaxed),
        "config": s.config.load(Ordering::Relaxed),
        "rx_packets": st.rx_packets, "rx_bytes": st.rx_bytes, "rx_dropped": st.rx_dropped,
        "tx_packets": st.tx_packets, "tx_bytes": st.tx_bytes, "tx_dropped": st.tx_dropped,
    })
}

/// Handles one request line.
pub fn handle(sw: &Switch, line: &str) -> Value {
    match handle_inner(sw, line) {
        Ok(v) => v,
        Err(e) => json!({"ok": false, "error": format!("{e:#}")}),
    }
}

fn handle_inner(sw: &Switch, line: &str) -> Result<Value> {
    let req: Value = serde_json::from_str(line).context("request is not JSON")?;
    let cmd = req["cmd"].as_str().context("no \"cmd\"")?;
    let ports = || -> Vec<Value> { sw.ports.load().values().map(|s| port_json(s)).collect() };
    match cmd {
        "show" => {
            let p = sw.engine().published();
            let tables: Vec<Value> = (0..=254u8)
                .filter(|&t| p.flow_count(t) > 0)
                .map(|t| json!({"table": t, "flows": p.flow_count(t)}))
                .collect();
            Ok(json!({
                "ok": true,
                "bridge": sw.cfg.bridge,
                "datapath_id": format!("{:016x}", sw.cfg.datapath_id),
                "ports": ports(),
                "tables": tables,
                "groups": p.groups.len(),
            }))
        }
        "list-ports" => Ok(json!({"ok": true, "ports": ports()})),
        "fdb-show" => {
            let now = sw.now();
            let p = sw.engine().published();
            let mut text = String::from(" port  VLAN  MAC                Age\n");
            let mut entries = Vec::new();
            for e in p.mac_table.entries() {
                let b = e.mac.to_be_bytes();
                let mac = format!(
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    b[2], b[3], b[4], b[5], b[6], b[7]
                );
                let age = now.saturating_sub(e.seen) / 1_000_000_000;
                let port = fuxi_openflow::consts::reserved_port_name(e.port)
                    .map_or_else(|| e.port.to_string(), str::to_string);
                text.push_str(&format!("{port:>5}  {:>4}  {mac}  {age:>3}\n", e.vlan));
                entries.push(json!({"port": e.port, "vlan": e.vlan, "mac": mac, "age": age}));
            }
            Ok(json!({"ok": true, "entries": entries, "text": text}))
        }
        "add-port" => {
            let name = req["name"].as_str().context("add-port needs \"name\"")?;
            let kind = match req["type"].as_str().unwrap_or("afpacket") {
                "afpacket" => PortType::Afpacket,
                "tap" => PortType::Tap,
                "vxlan" => PortType::Vxlan,
                "afxdp" => PortType::Afxdp,
                t => anyhow::bail!("type `{t}` is not afpacket, afxdp, tap or vxlan"),
            };
            let ofport = match req["ofport"].as_u64() {
                Some(n) => u32::try_from(n).context("ofport too large")?,
                None => sw.ports.free_number(),
            };
            if sw.ports.by_name(name).is_some() || sw.ports.get(ofport).is_some() {
                anyhow::bail!("port {name} or number {ofport} exists");
            }
            let mut pc = PortConfig {
                name: name.to_string(),
                ofport,
                port_type: kind,
                local: req["local"].as_str().map(str::to_string),
                remote: req["remote"].as_str().map(str::to_string),
                xdp_mode: req["xdp_mode"].as_str().map(str::to_string),
            };
            if let Some(m) = &pc.xdp_mode
                && (kind != PortType::Afxdp || !crate::config::XDP_MODES.contains(&m.as_str()))
            {
                anyhow::bail!(
                    "\"xdp_mode\" `{m}`: only for afxdp ports, one of {:?}",
                    crate::config::XDP_MODES
                );
            }
            if kind == PortType::Vxlan {
                let remote = pc
                    .remote
                    .as_deref()
                    .context("a vxlan port needs \"remote\"")?;
                let remote = crate::config::parse_endpoint(remote).context("\"remote\"")?;
                let local = match pc.local.as_deref() {
                    Some(l) => crate::config::parse_endpoint(l).context("\"local\"")?,
                    None if remote.is_ipv6() => "[::]:4789".parse()?,
                    None => "0.0.0.0:4789".parse()?,
                };
                pc.remote = Some(remote.to_string());
                pc.local = Some(local.to_string());
            }
            let thread = ofport as usize % sw.cfg.threads;
            let slot = PortSlot::open(&pc, thread, sw.cfg.rx_mode)?;
            if let Some(k) = &sw.kernel {
                k.attach(&slot)?;
            }
            let slot = sw.ports.add(slot)?;
            {
                let mut e = sw.engine();
                e.set_port(ofport, PortState { live: slot.live() });
                e.publish();
            }
            if let Some(d) = sw.port_desc(ofport) {
                let _ = sw
                    .events
                    .send(AsyncEvent::PortStatus(OFPPR_ADD, Arc::new(d)));
            }
            Ok(json!({"ok": true, "port": port_json(&slot)}))
        }
        "del-port" => {
            let name = req["name"].as_str().context("del-port needs \"name\"")?;
            let slot = sw.ports.by_name(name).context("no such port")?;
            let desc = sw.port_desc(slot.ofport);
            sw.ports.remove(slot.ofport);
            {
                let mut e = sw.engine();
                e.remove_port(slot.ofport);
                e.publish();
            }
            if let Some(d) = desc {
                let _ = sw
                    .events
                    .send(AsyncEvent::PortStatus(OFPPR_DELETE, Arc::new(d)));
            }
            Ok(json!({"ok": true}))
        }
        "trace" => {
            let flow = req["flow"].as_str().context("trace needs \"flow\"")?;
            trace(sw, flow)
        }
        c => anyhow::bail!("unknown cmd `{c}` (show, list-ports, add-port, del-port, trace)"),
    }
}

fn dp_action(a: &DpAction) -> String {
    match a {
        DpAction::Output(p) => format!("output:{}", fuxi_openflow::text::format_port(*p)),
        DpAction::Controller {
            reason, max_len, ..
        } => format!("controller(reason={reason:?},max_len={max_len})"),
        DpAction::SetField(f, v) => format!("set_field:{v:#x}->{f:?}"),
        DpAction::PushVlan { tpid, tci } => format!("push_vlan(tpid={tpid:#06x},tci={tci:#06x})"),
        DpAction::PopVlan => "pop_vlan".into(),
        DpAction::PushMpls { ethertype, lse } => {
            format!("push_mpls(eth_type={ethertype:#06x},lse={lse:#x})")
        }
        DpAction::PopMpls { ethertype } => format!("pop_mpls(eth_type={ethertype:#06x})"),
        DpAction::SetQueue(q) => format!("set_queue:{q}"),
        DpAction::Meter(m) => format!("meter:{m}"),
        DpAction::Clone(v) => format!(
            "clone({})",
            v.iter().map(dp_action).collect::<Vec<_>>().join(",")
        ),
    }
}

/// What the published pipeline does with a packet described by `flow` (ovs-ofctl match
/// syntax): the tables it meets, the flow it matches in each, the final actions.
fn trace(sw: &Switch, flow: &str) -> Result<Value> {
    use fuxi_openflow::text::{format_actions, format_match, parse_match};
    let m = parse_match(flow).map_err(|e| anyhow::anyhow!("bad flow `{flow}`: {e}"))?;
    let (key, _) =
        matching::match_to_key(&m).map_err(|e| anyhow::anyhow!("bad flow `{flow}`: {e}"))?;
    sw.publish_now();
    let p = sw.engine().published();
    let t = p.translate(&key, None);
    let mut text = format!(
        "Flow: {}\n\nbridge(\"{}\")\n",
        format_match(&m),
        sw.cfg.bridge
    );
    text.push_str(&"-".repeat(sw.cfg.bridge.len() + 10));
    text.push('\n');
    let mut steps = Vec::new();
    for st in &t.trace {
        let table = p.tables.get(usize::from(st.table_id));
        match st.flow {
            Some((prio, cookie)) => {
                // The key may have been rewritten before this table: prefer the entry the
                // original or the final key matches, else any with this priority and cookie.
                let entry = table.and_then(|tb| {
                    let cands: Vec<_> = tb
                        .flows
                        .iter()
                        .map(|(_, r)| r)
                        .filter(|r| r.priority == u32::from(prio) && r.value.cookie == cookie)
                        .collect();
                    cands
                        .iter()
                        .find(|r| {
                            key.masked(&r.mask) == r.key() || t.final_key.masked(&r.mask) == r.key()
                        })
                        .or(cands.first())
                        .copied()
                });
                let (mtext, atext) = entry.map_or_else(
                    || (String::from("?"), String::from("?")),
                    |r| {
                        (
                            format_match(&r.flow_match()),
                            format_actions(&r.value.instructions),
                        )
                    },
                );
                let mshow = if mtext.is_empty() {
                    "(any)"
                } else {
                    mtext.as_str()
                };
                text.push_str(&format!(
                    " {:>2}. {mshow}, priority {prio}, cookie {cookie:#x}\n     {atext}\n",
                    st.table_id
                ));
                steps.push(
                    json!({"table": st.table_id, "priority": prio, "cookie": cookie,
                    "match": mtext, "actions": atext}),
                );
            }
            None => {
                text.push_str(&format!(
                    " {:>2}. No match.\n     drop (table miss)\n",
                    st.table_id
                ));
                steps.push(json!({"table": st.table_id, "miss": true}));
            }
        }
    }
    // The final flow: the traced flow with every field the actions set.
    let mut fin = m.clone();
    for a in &t.actions {
        if let DpAction::SetField(f, v) = a
            && let Some(id) = matching::field_id_of(*f)
        {
            fin.fields
                .retain(|o| !matches!(o, OxmTlv::Basic(b) if b.field == id));
            fin.fields.push(OxmTlv::Basic(Oxm {
                field: id,
                value: *v,
                mask: None,
            }));
        }
    }
    let final_flow = if fin == m {
        "unchanged".to_string()
    } else {
        format_match(&fin)
    };
    let acts: Vec<String> = t.actions.iter().map(dp_action).collect();
    let acts_text = if acts.is_empty() {
        "drop".to_string()
    } else {
        acts.join(",")
    };
    text.push_str(&format!(
        "\nFinal flow: {final_flow}\nDatapath actions: {acts_text}\n"
    ));
    Ok(json!({"ok": true, "text": text, "steps": steps, "actions": acts, "final_flow": final_flow}))
}
