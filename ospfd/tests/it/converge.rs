//! By-hand convergence benchmark (ignored in the default run; numbers go to
//! benches/README.md): time to Full and to routes installed in the kernel for fuxi-ospfd,
//! FRR and BIRD paired on one point-to-point veth link (hello 1, dead 4, retransmit 2), in
//! network namespaces `fxoc<N>a` / `fxoc<N>b`.
//!
//! ```text
//! cargo test -p fuxi-ospfd --test it converge::convergence_timing -- --ignored --nocapture
//! ```
//!
//! Two start-ups are measured, each `OSPFD_BENCH_RUNS` times (default 3), medians printed:
//! - **cold**: router B is started, then at t0 router A (both come up together);
//! - **join**: router B has been running alone for `JOIN_WAIT` (longer than MinLSInterval,
//!   as in a running network), then at t0 router A joins.
//!
//! Each of four conditions is polled by its own thread every 10 ms from t0: A Full, B Full,
//! B's stub prefix in A's kernel, A's stub prefix in B's kernel. "Routes" is when both
//! kernels have the other's prefix.

use std::time::{Duration, Instant};

use crate::interop::{Auth, Lab, Peer, Spec, bird_full, frr_full, require_tools, sh_ok};

use crate::interop::SERIAL;

const JOIN_WAIT: Duration = Duration::from_secs(8);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Fuxi,
    Frr,
    Bird,
}

impl Who {
    fn name(self) -> &'static str {
        match self {
            Who::Fuxi => "fuxi-ospfd",
            Who::Frr => "FRR",
            Who::Bird => "BIRD",
        }
    }
}

fn spec(side_a: bool) -> Spec {
    let (ns_sub, ifname, rid, stub) = if side_a {
        ("a", "fx0", "10.255.0.1", "172.16.1.0/24")
    } else {
        ("b", "pe0", "10.255.0.2", "172.16.2.0/24")
    };
    Spec {
        ns: String::new(),
        sub: ns_sub,
        ifname,
        rid,
        link: "10.0.12.0/30",
        stub,
        ptp: true,
        auth: Auth::None,
        prio: 1,
        frr_extra_if: "",
        frr_extra_router: "",
    }
}

fn start(lab: &mut Lab, who: Who, side_a: bool) {
    let mut sp = spec(side_a);
    sp.ns = if side_a { lab.ns_a() } else { lab.ns_b() };
    match who {
        Who::Fuxi => {
            assert!(side_a, "fuxi runs in netns a");
            lab.start_fuxi(true, Auth::None);
        }
        Who::Frr => lab.start_frr(&sp),
        Who::Bird => lab.start_bird(&sp),
    }
}

fn full(lab: &Lab, who: Who, side_a: bool) -> bool {
    let (ns, sub) = if side_a {
        (lab.ns_a(), "a")
    } else {
        (lab.ns_b(), "b")
    };
    match who {
        Who::Fuxi => lab.fuxi_full(),
        Who::Frr => frr_full(lab, &ns, sub),
        Who::Bird => bird_full(lab, sub),
    }
}

/// Times from t0: (A Full, B Full, route in A, route in B).
fn one_run(tag: &str, a: Who, b: Who, join: bool) -> [Duration; 4] {
    let mut lab = Lab::new(
        tag,
        if b == Who::Bird {
            Peer::Bird
        } else {
            Peer::Frr
        },
    );
    lab.hello = 1;
    lab.dead = 4;
    start(&mut lab, b, false);
    if join {
        std::thread::sleep(JOIN_WAIT);
    }
    let t0 = Instant::now();
    start(&mut lab, a, true);
    let (na, nb) = (lab.ns_a(), lab.ns_b());
    let lab = &lab;
    let limit = Duration::from_secs(40);
    let poll = |f: &(dyn Fn() -> bool + Sync)| -> Option<Duration> {
        while t0.elapsed() < limit {
            if f() {
                return Some(t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    };
    let r = std::thread::scope(|s| {
        let h = [
            s.spawn(|| poll(&|| full(lab, a, true))),
            s.spawn(|| poll(&|| full(lab, b, false))),
            s.spawn(|| poll(&|| lab.route(&na, "172.16.2.0/24").contains("via 10.0.12.2"))),
            s.spawn(|| poll(&|| lab.route(&nb, "172.16.1.0/24").contains("via 10.0.12.1"))),
        ];
        h.map(|h| h.join().unwrap())
    });
    r.map(|x| x.unwrap_or_else(|| panic!("{tag} {a:?}/{b:?}: timed out\n{}", lab.logs())))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

#[test]
#[ignore = "by-hand benchmark (~10 min); see benches/README.md"]
fn convergence_timing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_tools();
    let runs: usize = std::env::var("OSPFD_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let only = std::env::var("OSPFD_BENCH_ONLY").unwrap_or_default();
    let pairs = [
        (Who::Fuxi, Who::Frr),
        (Who::Fuxi, Who::Bird),
        (Who::Frr, Who::Bird),
        (Who::Bird, Who::Frr),
        (Who::Frr, Who::Frr),
        (Who::Bird, Who::Bird),
    ];
    let mut table = vec![
        "| start | A (joins at t0) | B | Full, both (s) | routes in A (s) | routes in B (s) | routes, both (s) | all runs: routes, both (s) |".to_string(),
        "|---|---|---|---:|---:|---:|---:|---|".to_string(),
    ];
    for join in [false, true] {
        for (a, b) in pairs {
            let mode = if join { "join" } else { "cold" };
            if !only.is_empty() && !only.split(',').any(|o| o == mode || o == a.name()) {
                continue;
            }
            let mut res = Vec::new();
            for n in 0..runs {
                res.push(one_run(&format!("fxoc{n}"), a, b, join));
                let _ = sh_ok("sleep 0.5");
            }
            let col = |i: usize| median(res.iter().map(|r| r[i]).collect());
            let full = median(res.iter().map(|r| r[0].max(r[1])).collect());
            let both: Vec<Duration> = res.iter().map(|r| r[2].max(r[3])).collect();
            let all = both.iter().map(|d| secs(*d)).collect::<Vec<_>>().join(", ");
            let line = format!(
                "| {mode} | {} | {} | {} | {} | {} | {} | {all} |",
                a.name(),
                b.name(),
                secs(full),
                secs(col(2)),
                secs(col(3)),
                secs(median(both.clone())),
            );
            eprintln!("{line}");
            table.push(line);
        }
    }
    let out = table.join("\n") + "\n";
    eprintln!("\n{out}");
    let _ = std::fs::create_dir_all("/tmp/fuxi-ospfd-it");
    let _ = std::fs::write("/tmp/fuxi-ospfd-it/convergence.md", out);
}
