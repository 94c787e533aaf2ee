//! The management socket (this module does I/O): JSON lines over a unix socket, one
//! request per line, one reply per line. Requests:
//!
//! - `{"cmd":"show"}` → bridge, datapath id, ports, flows per table (non-empty only)
//! - `{"cmd":"list-ports"}` → ports with numbers, types, link state, counters
//! - `{"cmd":"add-port","name":"veth3","ofport":3,"type":"afpacket"}` (ofport, type optional)
//! - `{"cmd":"del-port","name":"veth3"}`
//!
//! Replies are `{"ok":true,...}` or `{"ok":false,"error":"..."}`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use fuxi_dataplane::pipeline::PortState;
use fuxi_openflow::msg::port::{OFPPR_ADD, OFPPR_DELETE};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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
            let sw = sw.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = stream.into_split();
                let mut lines = BufReader::new(rd).lines();
                while let Ok(Some(line)) = lines.next_line().await {
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
            });
        }
    });
    Ok(())
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
        "add-port" => {
            let name = req["name"].as_str().context("add-port needs \"name\"")?;
            let kind = match req["type"].as_str().unwrap_or("afpacket") {
                "afpacket" => PortType::Afpacket,
                "tap" => PortType::Tap,
                t => anyhow::bail!("type `{t}` is not afpacket or tap"),
            };
            let ofport = match req["ofport"].as_u64() {
                Some(n) => u32::try_from(n).context("ofport too large")?,
                None => sw.ports.free_number(),
            };
            if sw.ports.by_name(name).is_some() || sw.ports.get(ofport).is_some() {
                anyhow::bail!("port {name} or number {ofport} exists");
            }
            let pc = PortConfig {
                name: name.to_string(),
                ofport,
                port_type: kind,
                local: None,
                remote: None,
            };
            let thread = ofport as usize % sw.cfg.threads;
            let slot = sw.ports.add(PortSlot::open(&pc, thread)?)?;
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
        c => anyhow::bail!("unknown cmd `{c}` (show, list-ports, add-port, del-port)"),
    }
}
