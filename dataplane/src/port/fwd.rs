//! A two-port, run-to-completion forwarder: whatever one port receives goes out the
//! other, in batches, no classification. The test harness and the raw port benchmark
//! (what the ports alone can do, before any pipeline) use it.
//!
//! Measured 2026-11-26 on a 2-vCPU AMD EPYC VM (kernel 6.18), h1 -veth- [p1 fwd p2]
//! -veth- h2, release build, `cargo test --release --test it port::port_afpacket_`,
//! three interleaved rounds:
//!
//! | rx / tx | iperf3 TCP x1, offloads on | trafgen 64 B UDP delivered | ping RTT avg |
//! |---|---|---|---|
//! | V3 ring / sendmmsg (default) | 10.6–11.7 Gbit/s | 362–372 kpps | 0.5–1.8 ms |
//! | V3 ring / V2 tx ring | 8.7–8.9 Gbit/s | 364–380 kpps | — |
//! | recvmmsg / sendmmsg (`rx_mmsg`) | 13.2–15.6 Gbit/s | 198–230 kpps | 0.07–0.08 ms |
//! | Linux bridge, same topology | 21.7–22.7 Gbit/s | 260–267 kpps | — |
//!
//! The V3 ring's block retire timeout (1 ms minimum) is what costs the ring its latency
//! on sparse traffic.
//! (trafgen offers ~670 kpps from one CPU; the forwarder runs on the other. The bridge
//! forwards in trafgen's own softirq, on trafgen's CPU.)
//!
//! A port that lends its frames ([`Port::recv_borrowed`], the `rx_zc` TPACKET_V2 ring)
//! is forwarded without a copy of ours: the other port sends straight from the ring
//! ([`Port::send_frames`]), then the slots go back. Measured 2026-11-27 16:53–16:58 UTC,
//! same topology, forwarder on CPU 1, iperf3 client / ping / trafgen on CPU 0 (server
//! unpinned), 8 s per test, six alternated rounds (`rx_mmsg` A, `rx_zc` B), load 1.9–3.4,
//! medians (per-run numbers in the `ring` helper's notes):
//!
//! | rx / tx | TCP x1 | TCP x4 | forwarder CPU x1 / x4 | 64 B delivered | ping median |
//! |---|---|---|---|---|---|
//! | recvmmsg / sendmmsg, quiet rounds | 17.10 Gbit/s | 14.94 Gbit/s | 75 / 89 % | 252 kpps | 77 µs |
//! | V2 ring lent / sendmmsg from the ring, quiet rounds | 18.13 Gbit/s | 16.94 Gbit/s | 67 / 70 % | 374 kpps | 64 µs |
//! | recvmmsg / sendmmsg, loaded rounds | 9.20 | 11.69 | 49 / 68 % | 122 kpps | 65 µs |
//! | V2 ring lent, loaded rounds | 9.10 | 14.57 | 39 / 59 % | 187 kpps | 64 µs |
//!
//! The copy into the ring runs on the sender's core (CPU 0 went from 60–73 % to 95–100 %
//! busy), so one stream is then bound by the sender; four streams and small packets gain.

// Port I/O module: `poll(2)` on the ports' descriptors.
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{BorrowedBatch, PacketBatch, Port};

/// What a forwarder moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FwdStats {
    /// Packets received on `a` and sent on `b`.
    pub a_to_b: u64,
    /// Packets received on `b` and sent on `a`.
    pub b_to_a: u64,
    /// Batches that moved at least one packet.
    pub batches: u64,
}

/// Forward between `a` and `b` until `stop` is set. When both are idle it sleeps in
/// `poll(2)` on their descriptors (1 ms at most, to notice `stop`), unless `busy_poll`.
/// Frames a port lends are sent from where they lie and handed back after the send.
pub fn forward_pair(
    a: &mut dyn Port,
    b: &mut dyn Port,
    stop: &AtomicBool,
    busy_poll: bool,
) -> io::Result<FwdStats> {
    let mut st = FwdStats::default();
    let mut batch = PacketBatch::new();
    let mut lent = BorrowedBatch::new();
    while !stop.load(Ordering::Relaxed) {
        let mut moved = 0;
        for dir in 0..2 {
            let (rx, tx): (&mut dyn Port, &mut dyn Port) = if dir == 0 {
                (&mut *a, &mut *b)
            } else {
                (&mut *b, &mut *a)
            };
            let n = if let Some(n) = rx.recv_borrowed(&mut lent) {
                // Zero-copy: sent from the receive ring, then its slots go back.
                let n = n?;
                if n > 0 {
                    tx.send_frames(lent.frames())?;
                }
                lent.release();
                n
            } else {
                batch.clear();
                let n = rx.recv_batch(&mut batch)?;
                if n > 0 {
                    tx.send_batch(batch.as_mut_slice())?;
                }
                n
            };
            if n == 0 {
                continue;
            }
            st.batches += 1;
            if dir == 0 {
                st.a_to_b += n as u64;
            } else {
                st.b_to_a += n as u64;
            }
            moved += n;
        }
        if moved == 0 && !busy_poll {
            let mut fds = [libc::pollfd {
                fd: -1,
                events: libc::POLLIN,
                revents: 0,
            }; 2];
            for (p, fd) in fds.iter_mut().zip([a.as_raw_fd(), b.as_raw_fd()]) {
                p.fd = fd.unwrap_or(-1); // poll ignores negative fds
            }
            if fds.iter().all(|p| p.fd < 0) {
                std::thread::yield_now();
                continue;
            }
            // SAFETY: `fds` is a valid array of pollfd of the length passed.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1) };
        }
    }
    Ok(st)
}
