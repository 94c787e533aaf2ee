//! `fuxi-ospfd`: run the OSPFv2 daemon, or query a running one.
//!
//! ```text
//! fuxi-ospfd [-c FILE]                       run (default /etc/fuxi/ospfd.toml)
//! fuxi-ospfd --check -c FILE                 validate a configuration and exit
//! fuxi-ospfd [-s SOCK] show neighbors|interfaces|database|routes [--json]
//! fuxi-ospfd [-s SOCK] watch                 route changes as JSON lines (for the controller)
//! fuxi-ospfd [-s SOCK] metrics               Prometheus text format
//! fuxi-ospfd [-s SOCK] supply JSON           replace the routes supplied for redistribution,
//!                                            e.g. '[{"prefix":"10.96.0.0/12","metric":20}]'
//! ```

use fuxi_ospfd::config::FileConfig;
use fuxi_ospfd::{daemon, show};

const USAGE: &str = "usage: fuxi-ospfd [-c FILE] [--check] | [-s SOCK] show neighbors|interfaces|database|routes|stats [--json] | [-s SOCK] watch | metrics | supply JSON";

fn main() {
    if let Err(e) = real_main() {
        eprintln!("fuxi-ospfd: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut config = "/etc/fuxi/ospfd.toml".to_string();
    let mut sock: Option<String> = None;
    let mut check = false;
    let mut json = false;
    let mut words = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" | "--config" => config = args.next().ok_or(USAGE)?,
            "-s" | "--control" => sock = Some(args.next().ok_or(USAGE)?),
            "--check" => check = true,
            "--json" => json = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            w => words.push(w.to_string()),
        }
    }
    let sock_path = || -> String {
        sock.clone().unwrap_or_else(|| {
            std::fs::read_to_string(&config)
                .ok()
                .and_then(|t| FileConfig::parse(&t).ok())
                .map_or_else(|| "/run/fuxi-ospfd.sock".to_string(), |c| c.control_socket)
        })
    };
    match words.first().map(String::as_str) {
        None => {
            let text = std::fs::read_to_string(&config).map_err(|e| format!("{config}: {e}"))?;
            let cfg = FileConfig::parse(&text).map_err(|e| format!("{config}: {e}"))?;
            if check {
                println!("{config}: OK");
                return Ok(());
            }
            daemon::run(cfg)
        }
        Some("show") => {
            let what = words.get(1).map(String::as_str).unwrap_or("");
            let what = match what {
                "neighbor" | "neighbors" | "neighbour" | "neighbours" => "neighbors",
                "interface" | "interfaces" => "interfaces",
                "database" | "db" => "database",
                "route" | "routes" => "routes",
                "stats" => "stats",
                _ => return Err(USAGE.into()),
            };
            let out = daemon::query(&sock_path(), &format!("show {what}"))?;
            if json || what == "stats" {
                print!("{out}");
                return Ok(());
            }
            let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| e.to_string())?;
            if let Some(e) = v.get("error") {
                return Err(e.to_string());
            }
            let text = match what {
                "neighbors" => show::neighbors(&v),
                "interfaces" => show::interfaces(&v),
                "database" => show::database(&v),
                _ => show::routes(&v),
            };
            print!("{text}");
            Ok(())
        }
        Some("watch") => daemon::watch(&sock_path()),
        Some("supply") => {
            let json = words.get(1).ok_or(USAGE)?;
            let out = daemon::query(&sock_path(), &format!("supply {json}"))?;
            print!("{out}");
            if out.contains("\"error\"") {
                return Err("rejected".into());
            }
            Ok(())
        }
        Some("metrics") => {
            print!("{}", daemon::query(&sock_path(), "metrics")?);
            Ok(())
        }
        Some(_) => Err(USAGE.into()),
    }
}
