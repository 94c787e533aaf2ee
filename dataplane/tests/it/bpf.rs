//! Kernel flow table tests (`port::bpf`): the programs load; run as the kernel runs them on
//! a received packet (the port socket's filter, then tc, on one CPU, through
//! `BPF_PROG_TEST_RUN`), they compute the key `kernel_key` computes, the filter drops
//! current hits and tc redirects exactly those, counting them — never a packet the filter
//! let through; and on veths inside network namespaces a flow's packets stop reaching the
//! AF_PACKET port and reach the output device once its key is in the table. Needs root; a
//! missing capability is a failure.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use fuxi_dataplane::cache::kernel::{FRAME_AT, KernelKey, kernel_key, tag};
use fuxi_dataplane::port::afpacket::AfPacketPort;
use fuxi_dataplane::port::bpf::{Flavour, KernelTable, test_run};
use fuxi_dataplane::port::{Packet, PacketBatch, Port};

use fuxi_dataplane::port::offload::GSO_TCPV4;

use crate::port::{Ns, Topo, make_partial, open, tcp4, tcp6, udp4, wait_link};

/// The OpenFlow port the programs are built for.
const PORT: u32 = 3;
/// Where hits go (test runs do not look at it).
const OUT: u32 = 42;
/// The tc program's verdicts: `bpf_redirect`'s TC_ACT_REDIRECT, TCX_NEXT.
const REDIRECT: u32 = 7;
const NEXT: u32 = u32::MAX;
/// The socket filter's: drop, the whole packet.
const DROP: u32 = 0;
const WHOLE: u32 = u32::MAX;

// ---------------------------------------------------------------------------------------
// Frames.

const MACS: ([u8; 6], [u8; 6]) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);

fn udp6(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6([1; 16], [2; 16], 64)
        .udp(1000, 2000)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn icmp4() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut v, &[0x55; 40])
        .unwrap();
    v
}

fn icmp6() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6([1; 16], [2; 16], 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut v, &[0x55; 40])
        .unwrap();
    v
}

/// UDP over IPv4 relabelled SCTP (nothing here checks the L4 checksum).
fn sctp4() -> Vec<u8> {
    let mut f = udp4(&[0x77; 30]);
    f[23] = 132;
    f
}

/// TCP over IPv4 with 4 bytes of options (NOPs).
fn tcp4_options() -> Vec<u8> {
    let mut f = tcp4(&[0x66; 20], 1);
    f[14] = 0x46;
    f.splice(34..34, [1, 1, 1, 1]);
    f
}

/// UDP over IPv6 behind a hop-by-hop header (a PadN option).
fn udp6_hop_by_hop() -> Vec<u8> {
    let mut f = udp6(&[0x44; 30]);
    f[20] = 0; // hop-by-hop
    f.splice(54..54, [17, 0, 1, 4, 0, 0, 0, 0]);
    f
}

fn arp() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend(MACS.0);
    f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend(MACS.0);
    f.extend([10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    f.resize(60, 0);
    f
}

fn tagged(mut f: Vec<u8>) -> Vec<u8> {
    f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
    f
}

/// Another packet of `f`'s flow: other IP length, id and checksum (IPv4) or payload
/// length (IPv6), TCP sequence and flags, payload.
fn next_of_flow(f: &[u8]) -> Vec<u8> {
    let mut g = f.to_vec();
    g.extend([0x99; 17]);
    let len = g.len();
    let (l4, proto) = if g[12..14] == [0x08, 0x00] {
        g[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        g[18..20].copy_from_slice(&[0xbe, 0xef]);
        g[24..26].copy_from_slice(&[0x12, 0x34]);
        (34, g[23])
    } else {
        g[18..20].copy_from_slice(&((len - 54) as u16).to_be_bytes());
        (54, g[20])
    };
    // TCP sequence; UDP length and checksum; SCTP verification tag.
    g[l4 + 4..l4 + 8].copy_from_slice(&[9, 9, 9, 9]);
    if proto == 6 {
        g[l4 + 13] ^= 0x18; // TCP flags
    }
    g
}

/// `f` with its IPv4 or IPv6 destination address changed.
fn other_address(f: &[u8]) -> Vec<u8> {
    let mut g = f.to_vec();
    let last = if g[12..14] == [0x08, 0x00] { 33 } else { 53 };
    g[last] ^= 0x40;
    g
}

/// The key `kernel_key` would give `f` if it did not look at the IPv4 header length nor
/// the IP protocol (nor, for ICMP, the type, nor the IP length field and the TCP data
/// offset): put in the table for frames without a key, so
/// a program that skipped those checks would hit. (Fragments get none: the program need not
/// tell them, its key holds their fragment bits and no fragment's key ever goes in.)
fn decoy_key(in_port: u32, f: &[u8]) -> Option<KernelKey> {
    let v4 = f.get(12..14)? == [0x08, 0x00];
    let proto_at = if v4 { 23 } else { 20 };
    let (icmp, echo, type_at) = if v4 { (1, 8, 34) } else { (58, 128, 54) };
    let mut g = f.to_vec();
    if *g.get(proto_at)? == icmp && g.len() > type_at {
        g[type_at] = echo;
    } else {
        g[proto_at] = 6;
    }
    if v4 {
        g[14] = 0x45;
    }
    // A length field that says where the frame ends, a TCP header whole (neither is in
    // the key: a program that skipped these checks would hit).
    let (len_at, before, l4) = if v4 { (16, 14, 34) } else { (18, 54, 54) };
    if let Some(len) = g.len().checked_sub(before) {
        g[len_at..len_at + 2].copy_from_slice(&(len as u16).to_be_bytes());
    }
    if g[proto_at] == 6 && g.len() > l4 + 12 {
        g[l4 + 12] = 0x50;
    }
    let mut k = kernel_key(in_port, &g)?; // None if not IP or too short
    for at in [14, proto_at, type_at] {
        if let (Some(b), Some(x)) = (f.get(at), k.get_mut(FRAME_AT + at)) {
            *x = *b;
        }
    }
    Some(k)
}

/// `f` with byte `at` set to `v`.
fn with_byte(mut f: Vec<u8>, at: usize, v: u8) -> Vec<u8> {
    f[at] = v;
    f
}

fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("ipv4 tcp", tcp4(&[0x11; 20], 100)),
        ("ipv4 udp", udp4(&[0x22; 30])),
        ("ipv4 sctp", sctp4()),
        ("ipv4 icmp", icmp4()),
        ("ipv4 with options", tcp4_options()),
        ("ipv6 tcp", tcp6(&[0x33; 20], 100)),
        ("ipv6 udp", udp6(&[0x44; 30])),
        ("ipv6 hop-by-hop", udp6_hop_by_hop()),
        ("ipv6 icmp", icmp6()),
        ("ipv4 icmp unreachable", with_byte(icmp4(), 34, 3)),
        ("ipv6 neighbour solicitation", with_byte(icmp6(), 54, 135)),
        (
            "ipv4 udp first fragment",
            with_byte(udp4(&[0x22; 30]), 20, 0x20),
        ),
        // Lengths that would make the parser see no L4 header.
        (
            "ipv4 tcp, total length short",
            with_byte(tcp4(&[0x11; 20], 100), 17, 40),
        ),
        (
            "ipv4 tcp, data offset past the end",
            with_byte(tcp4(&[], 100), 46, 0xf0),
        ),
        (
            "ipv4 tcp, data offset 16",
            with_byte(tcp4(&[0x11; 20], 100), 46, 0x40),
        ),
        (
            "ipv6 udp, payload length long",
            with_byte(udp6(&[0x44; 30]), 19, 39),
        ),
        (
            "ipv6 tcp, data offset past the end",
            with_byte(tcp6(&[], 100), 66, 0xf0),
        ),
        ("arp", arp()),
        ("802.1q ipv4 tcp", tagged(tcp4(&[0x11; 20], 100))),
        ("802.1q ipv6 udp", tagged(udp6(&[0x44; 30]))),
        ("ipv4 too short", tcp4(&[], 1)[..37].to_vec()),
        ("ipv6 too short", udp6(&[])[..57].to_vec()),
        // (A test run refuses an IP frame shorter than its IP header.)
        ("ipv4 header only", tcp4(&[], 1)[..34].to_vec()),
        ("ipv6 header only", udp6(&[])[..54].to_vec()),
        ("ethernet and a byte", arp()[..15].to_vec()),
    ]
}

// ---------------------------------------------------------------------------------------
// Test runs.

#[test]
fn bpf_both_programs_load() {
    let table = KernelTable::new(1024).expect("create the maps");
    for flavour in [Flavour::Tc, Flavour::Socket] {
        table
            .load(PORT, flavour)
            .unwrap_or_else(|e| panic!("{flavour:?}: {e}"));
    }
}

/// Pins the calling thread to the CPU it is on: the two programs share a per-CPU flag, so
/// a test runs them on one CPU, as the kernel does for a packet.
#[allow(unsafe_code)]
fn pin_here() {
    // SAFETY: plain libc calls on a cpu_set_t of our own.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
    }
}

/// A port's two programs.
struct Progs {
    sock: OwnedFd,
    tc: OwnedFd,
}

impl Progs {
    fn new(table: &KernelTable, port: u32) -> Progs {
        pin_here();
        Progs {
            sock: table.load(port, Flavour::Socket).unwrap(),
            tc: table.load(port, Flavour::Tc).unwrap(),
        }
    }

    /// The socket filter's verdict on frame `f`. Its test run starts after the Ethernet
    /// header (tc's starts at it; a packet socket's filter sees the whole frame), so it
    /// runs on the frame behind 14 bytes of padding.
    fn filter(&self, f: &[u8]) -> u32 {
        let mut padded = vec![0xaa; 12];
        padded.extend([0x88, 0xb5]); // local experimental: no L3 checks
        padded.extend(f);
        test_run(self.sock.as_fd(), &padded).unwrap_or_else(|e| panic!("{} bytes: {e}", f.len()))
    }

    fn tc(&self, f: &[u8]) -> u32 {
        test_run(self.tc.as_fd(), f).unwrap_or_else(|e| panic!("{} bytes: {e}", f.len()))
    }

    /// Frame `f` received as the kernel runs it: the filter, then tc. Returns tc's verdict
    /// after checking the filter's agrees (dropped from the port exactly when redirected).
    fn ingress(&self, f: &[u8]) -> u32 {
        let hidden = self.filter(f);
        let tc = self.tc(f);
        assert_eq!(
            hidden == DROP,
            tc == REDIRECT,
            "filter {hidden:#x}, tc {tc:#x}"
        );
        tc
    }
}

/// Received frames hit exactly when `kernel_key` gives them a key that is in the table,
/// with that key: redirected, counted, the bytes that change within a flow ignored; a miss
/// on another port or address and on a removed entry.
#[test]
fn bpf_programs_compute_kernel_key() {
    let table = KernelTable::new(1024).unwrap();
    table.set_current(5, 2).unwrap();
    let now = tag(5, 2);
    let port = Progs::new(&table, PORT);
    let other_port = Progs::new(&table, PORT + 1);
    let mut keyed = 0;
    for (what, f) in corpus() {
        let key = kernel_key(PORT, &f);
        assert_eq!(port.ingress(&f), NEXT, "{what}: before insert");
        if let Some(k) = key.or_else(|| decoy_key(PORT, &f)) {
            table.insert(&k, OUT, now).unwrap();
        }
        let want = if key.is_some() { REDIRECT } else { NEXT };
        assert_eq!(port.ingress(&f), want, "{what}");
        let Some(k) = key else { continue };
        keyed += 1;
        assert_eq!(
            table.counts(&k).unwrap(),
            Some((1, f.len() as u64)),
            "{what}"
        );

        let g = next_of_flow(&f);
        assert_eq!(kernel_key(PORT, &g), Some(k), "{what}: the test's own flow");
        assert_eq!(port.ingress(&g), REDIRECT, "{what}: next packet");
        let bytes = (f.len() + g.len()) as u64;
        assert_eq!(table.counts(&k).unwrap(), Some((2, bytes)), "{what}");

        let h = other_address(&f);
        assert_ne!(kernel_key(PORT, &h), Some(k));
        assert_eq!(port.ingress(&h), NEXT, "{what}: other address");
        assert_eq!(other_port.ingress(&f), NEXT, "{what}: other port");
        assert_eq!(
            table.counts(&k).unwrap(),
            Some((2, bytes)),
            "{what}: misses count"
        );
        table.remove_all(&[k]).unwrap();
        assert_eq!(port.ingress(&f), NEXT, "{what}: removed");
        assert_eq!(table.counts(&k).unwrap(), None);
        table.remove_all(&[k]).unwrap();
    }
    assert_eq!(keyed, 7);
}

/// The filter and tc decide at two moments; the table may change in between. A packet the
/// filter let through to the port is never redirected (an entry put in meanwhile
/// notwithstanding: the packet would go out twice), and tc alone redirects nothing; a hit
/// whose entry went stale in between goes neither way.
#[test]
fn bpf_tc_redirects_only_what_the_filter_hid() {
    let table = KernelTable::new(16).unwrap();
    table.set_current(1, 1).unwrap();
    let port = Progs::new(&table, PORT);
    let f = udp4(&[7; 20]);
    let k = kernel_key(PORT, &f).unwrap();

    assert_eq!(port.filter(&f), WHOLE);
    table.insert(&k, OUT, tag(1, 1)).unwrap();
    assert_eq!(port.tc(&f), NEXT, "inserted between filter and tc");
    assert_eq!(port.tc(&f), NEXT, "tc alone");
    assert_eq!(table.counts(&k).unwrap(), Some((0, 0)));

    assert_eq!(port.filter(&f), DROP);
    assert_eq!(port.tc(&f), REDIRECT);
    assert_eq!(port.tc(&f), NEXT, "the filter's verdict is used once");
    assert_eq!(table.counts(&k).unwrap(), Some((1, f.len() as u64)));

    assert_eq!(port.filter(&f), DROP);
    table.set_current(2, 1).unwrap();
    assert_eq!(port.tc(&f), NEXT, "stale between filter and tc");
    assert_eq!(table.counts(&k).unwrap(), Some((1, f.len() as u64)));

    // A miss clears what a hit before it left (its tc run never came).
    table.insert(&k, OUT, tag(2, 1)).unwrap();
    assert_eq!(port.filter(&f), DROP);
    assert_eq!(port.filter(&other_address(&f)), WHOLE);
    assert_eq!(port.tc(&f), NEXT);
}

#[test]
fn bpf_stale_entries_miss_and_older_callers_do_not_revive_them() {
    let table = KernelTable::new(16).unwrap();
    let port = Progs::new(&table, PORT);
    let f = tcp4(&[1; 10], 1);
    let k = kernel_key(PORT, &f).unwrap();
    table.set_current(3, 1).unwrap();
    table.insert(&k, OUT, tag(3, 1)).unwrap();
    assert_eq!(port.ingress(&f), REDIRECT);
    for (generation, mac) in [(4, 1), (3, 1), (2, 0)] {
        table.set_current(generation, mac).unwrap();
        assert_eq!(port.ingress(&f), NEXT, "after ({generation}, {mac})");
    }
    // Generation 4 stays; a newer MAC version goes with it.
    table.set_current(3, 2).unwrap();
    table.insert(&k, OUT, tag(4, 1)).unwrap();
    assert_eq!(port.ingress(&f), NEXT, "tag(4, 1) after MAC 2");
    table.insert(&k, OUT, tag(4, 2)).unwrap();
    assert_eq!(port.ingress(&f), REDIRECT);
    assert_eq!(table.counts(&k).unwrap(), Some((1, f.len() as u64)));
}

/// A transition to a new tag: while entries are moved to it, those moved and those not yet
/// both forward; after it only the moved ones do, their counts carried on.
#[test]
fn bpf_a_transition_keeps_retagged_entries_forwarding_and_stops_the_rest() {
    let table = KernelTable::new(16).unwrap();
    let port = Progs::new(&table, PORT);
    let a = tcp4(&[1; 10], 1);
    let b = other_address(&a);
    let (ka, kb) = (kernel_key(PORT, &a).unwrap(), kernel_key(PORT, &b).unwrap());
    table.set_current(1, 1).unwrap();
    table.insert(&ka, OUT, tag(1, 1)).unwrap();
    table.insert(&kb, OUT, tag(1, 1)).unwrap();
    assert_eq!(port.ingress(&a), REDIRECT);
    let mut called = 0;
    table
        .transition(2, 1, |new| {
            called += 1;
            assert_eq!(new, tag(2, 1));
            assert_eq!(port.ingress(&b), REDIRECT, "not moved yet, still current");
            let mut found = Vec::new();
            table
                .retag(&[ka, keys(20)[19]], new, |f| found.push(f))
                .unwrap();
            assert_eq!(found, [true, false], "the second is absent");
            assert_eq!(port.ingress(&a), REDIRECT, "moved: the next tag");
            assert_eq!(port.ingress(&b), REDIRECT);
        })
        .unwrap();
    assert_eq!(called, 1);
    assert_eq!(port.ingress(&a), REDIRECT);
    assert_eq!(port.ingress(&b), NEXT, "not moved: stale");
    let len = a.len() as u64;
    assert_eq!(table.counts(&ka).unwrap(), Some((3, 3 * len)));
    // Nothing newer: nothing to move.
    table.transition(2, 0, |_| called += 1).unwrap();
    assert_eq!(called, 1);
    assert_eq!(port.ingress(&a), REDIRECT);
}

/// Entries are moved 32 a run of the retag program: all of a hundred are, none absent is,
/// and what they counted stays.
#[test]
fn bpf_retag_moves_entries_in_batches() {
    let table = KernelTable::new(256).unwrap();
    let keys = keys(130);
    for (i, k) in keys.iter().enumerate().take(100) {
        table
            .insert(k, OUT, if i % 2 == 0 { 7 } else { 8 })
            .unwrap();
    }
    let mut found = Vec::new();
    table.retag(&keys, 9, |f| found.push(f)).unwrap();
    assert_eq!(found.len(), 130);
    assert!(found[..100].iter().all(|&f| f) && found[100..].iter().all(|&f| !f));
    // Only the tag changed: a transition to 9 keeps every entry forwarding.
    table.set_current(1, 0).unwrap();
    let port = Progs::new(&table, PORT);
    let f = tcp4(&[], 1);
    let k = kernel_key(PORT, &f).unwrap();
    assert_eq!(k, keys[0]);
    assert_eq!(port.ingress(&f), NEXT, "tag 9 is not current");
    table.retag(&[k], tag(1, 0), |_| {}).unwrap();
    assert_eq!(port.ingress(&f), REDIRECT);
    table.retag(&keys[..1], tag(1, 0), |_| {}).unwrap();
    assert_eq!(table.counts(&k).unwrap(), Some((1, f.len() as u64)));
    assert_eq!(table.counts(&keys[120]).unwrap(), None, "not put in");
}

/// `n` distinct keys (one TCP frame on ports `PORT..PORT + n`).
fn keys(n: u32) -> Vec<KernelKey> {
    (0..n)
        .map(|i| kernel_key(PORT + i, &tcp4(&[], 1)).unwrap())
        .collect()
}

#[test]
fn bpf_a_full_table_refuses_new_keys_but_replaces_old_ones() {
    let table = KernelTable::new(2).unwrap();
    let keys = keys(3);
    table.insert(&keys[0], OUT, 0).unwrap();
    table.insert(&keys[1], OUT, 0).unwrap();
    let e = table.insert(&keys[2], OUT, 0).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::E2BIG));
    table.insert(&keys[1], OUT + 1, 0).unwrap();
    table.remove_all(&keys[..1]).unwrap();
    table.insert(&keys[2], OUT, 0).unwrap();
    assert_eq!(table.counts(&keys[0]).unwrap(), None);
    assert_eq!(table.counts(&keys[2]).unwrap(), Some((0, 0)));
}

/// `counts_all` reads every entry once, with its counts, over several batches.
#[test]
fn bpf_counts_all_reads_every_entry_once() {
    let table = KernelTable::new(4096).unwrap();
    table
        .counts_all(|_, _, _| panic!("an empty table has entries"))
        .unwrap();
    let keys = keys(3000);
    for k in &keys {
        table.insert(k, OUT, tag(1, 1)).unwrap();
    }
    table.set_current(1, 1).unwrap();
    let port = Progs::new(&table, PORT + 7);
    let f = tcp4(&[], 1);
    assert_eq!(port.ingress(&f), REDIRECT);
    let mut seen = std::collections::HashMap::new();
    table
        .counts_all(|k, packets, bytes| {
            assert!(seen.insert(*k, (packets, bytes)).is_none(), "seen twice");
        })
        .unwrap();
    assert_eq!(seen.len(), keys.len());
    for (i, k) in keys.iter().enumerate() {
        let want = if i == 7 { (1, f.len() as u64) } else { (0, 0) };
        assert_eq!(seen.get(k), Some(&want), "key {i}");
    }
}

/// `remove_all` takes out every listed entry in one call, absent keys (the kernel stops at
/// each) included, and nothing else.
#[test]
fn bpf_remove_all_takes_out_the_listed_entries_only() {
    let table = KernelTable::new(64).unwrap();
    let keys = keys(12);
    for k in &keys[..10] {
        table.insert(k, OUT, 0).unwrap();
    }
    let (absent, other) = (keys[10], keys[11]);
    table.remove_all(&[]).unwrap();
    table
        .remove_all(&[keys[0], keys[1], absent, keys[2], absent, other, keys[3]])
        .unwrap();
    let present = |k: &KernelKey| table.counts(k).unwrap().is_some();
    assert_eq!(
        keys[..10].iter().map(present).collect::<Vec<_>>(),
        [[false; 4].as_slice(), &[true; 6]].concat()
    );
    table.remove_all(&[keys[9], keys[4], absent]).unwrap();
    table.remove_all(&keys[5..9]).unwrap();
    assert!(!keys.iter().any(present));
}

/// The filter passes a frame whole unless it is a hit, and reads the frame from its
/// Ethernet header on (unpadded, a hit's frame is something else).
#[test]
fn bpf_socket_filter_drops_hits_only() {
    let table = KernelTable::new(1024).unwrap();
    let port = Progs::new(&table, PORT);
    let mut hits = 0;
    for (what, f) in corpus() {
        if let Some(k) = kernel_key(PORT, &f).or_else(|| decoy_key(PORT, &f)) {
            table.insert(&k, OUT, tag(0, 0)).unwrap();
        }
        let want = if kernel_key(PORT, &f).is_some() {
            DROP
        } else {
            WHOLE
        };
        assert_eq!(port.filter(&f), want, "{what}");
        if want == DROP {
            hits += 1;
            let unpadded = test_run(port.sock.as_fd(), &f).unwrap();
            assert_eq!(unpadded, WHOLE, "{what} unpadded");
        }
    }
    assert_eq!(hits, 7);
}

fn marked(i: u32) -> Vec<u8> {
    let mut payload = i.to_be_bytes().to_vec();
    payload.extend([0x5a; 60]);
    tcp4(&payload, 1000 + i)
}

/// The number of a frame of the test flow.
fn marker(f: &[u8]) -> Option<u32> {
    let flow = marked(0);
    (f.len() == flow.len() && kernel_key(PORT, f) == kernel_key(PORT, &flow))
        .then(|| u32::from_be_bytes(f[54..58].try_into().unwrap()))
}

/// What `pick` makes of the frames `p` receives within `t` (stops early at `want`).
fn recv_with<T>(
    p: &mut AfPacketPort,
    want: usize,
    t: Duration,
    mut pick: impl FnMut(&[u8]) -> Option<T>,
) -> Vec<T> {
    let mut got = Vec::new();
    let mut batch = PacketBatch::new();
    let end = Instant::now() + t;
    while got.len() < want && Instant::now() < end {
        batch.clear();
        if p.recv_batch(&mut batch).unwrap() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        got.extend(batch.iter().filter_map(|p| pick(&p.data)));
    }
    got
}

/// Markers of the flow's frames `p` receives within `t` (stops early at `want`).
fn recv(p: &mut AfPacketPort, want: usize, t: Duration) -> Vec<(u32, Vec<u8>)> {
    recv_with(p, want, t, |f| Some((marker(f)?, f.to_vec())))
}

/// Markers of the flow's frames with a VLAN tag `p` receives within `t`.
fn recv_tagged(p: &mut AfPacketPort, want: usize, t: Duration) -> Vec<u32> {
    recv_with(p, want, t, |f| {
        if f.get(12..14) != Some(&[0x81, 0x00]) {
            return None;
        }
        let mut f = f.to_vec();
        f.drain(12..16);
        marker(&f)
    })
}

fn send(p: &mut AfPacketPort, range: std::ops::Range<u32>) {
    let mut pk: Vec<Packet> = range.map(|i| Packet::from_frame(&marked(i))).collect();
    assert_eq!(p.send_batch(&mut pk).unwrap(), pk.len());
}

fn ifindex(ns: &Ns, ifname: &str) -> u32 {
    ns.exec(&format!("cat /sys/class/net/{ifname}/ifindex"))
        .trim()
        .parse()
        .unwrap()
}

/// h1 -> p1: before the flow's key is in the table its frames reach the AF_PACKET port on
/// p1; after, they go out p2 to h2 unchanged, the port sees none of them, and the entry
/// counts them; once the entry goes stale they reach the port again.
#[test]
fn bpf_veth_hits_bypass_the_port_and_reach_the_output_device() {
    let t = Topo::new();
    let table = Arc::new(KernelTable::new(1024).unwrap());
    table.set_current(1, 1).unwrap();
    let p1 = open(&t.sw, "p1");
    let mut e1 = open(&t.h1, "eth0");
    let mut e2 = open(&t.h2, "eth0");
    wait_link(&p1);
    wait_link(&e1);
    wait_link(&e2);
    let (p1_index, p2_index) = (ifindex(&t.sw, "p1"), ifindex(&t.sw, "p2"));
    assert_eq!(p1.ifindex(), Some(p1_index));
    let tb = table.clone();
    let (mut p1, kp) = t.sw.run(move || {
        let kp = tb.attach(PORT, p1_index, p1.as_fd());
        (p1, kp)
    });
    let mut kp = Some(kp.expect("attach"));
    let k = kp.as_ref().unwrap();
    assert_eq!((k.in_port(), k.ifindex()), (PORT, p1_index));

    // No entry: the port gets the flow.
    send(&mut e1, 0..10);
    let got: Vec<u32> = recv(&mut p1, 10, Duration::from_secs(5))
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());

    // An entry: the kernel forwards the flow to p2, byte for byte; the port sees nothing.
    let key: KernelKey = kernel_key(PORT, &marked(0)).unwrap();
    table.insert(&key, p2_index, tag(1, 1)).unwrap();
    send(&mut e1, 10..30);
    let out = recv(&mut e2, 20, Duration::from_secs(5));
    assert_eq!(
        out.iter().map(|m| m.0).collect::<Vec<_>>(),
        (10..30).collect::<Vec<_>>()
    );
    for (i, f) in &out {
        assert_eq!(f, &marked(*i));
    }
    let seen = recv(&mut p1, 1, Duration::from_millis(300));
    assert!(
        seen.is_empty(),
        "the port got hits: {:?}",
        seen.iter().map(|m| m.0).collect::<Vec<_>>()
    );
    let len = marked(0).len() as u64;
    assert_eq!(table.counts(&key).unwrap(), Some((20, 20 * len)));

    // The flow's frames with an 802.1Q tag (which the kernel takes off into the skb before
    // tc sees the frame): not the flow, so the port gets them.
    let mut e1_tagged = Vec::new();
    for i in 100..105 {
        let mut f = marked(i);
        f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        e1_tagged.push(Packet::from_frame(&f));
    }
    assert_eq!(e1.send_batch(&mut e1_tagged).unwrap(), 5);
    let got = recv_tagged(&mut p1, 5, Duration::from_secs(5));
    assert_eq!(got, (100..105).collect::<Vec<_>>());
    assert!(recv(&mut e2, 1, Duration::from_millis(200)).is_empty());
    assert_eq!(table.counts(&key).unwrap(), Some((20, 20 * len)));

    // Stale: back to the port, not to h2.
    table.set_current(2, 1).unwrap();
    send(&mut e1, 30..35);
    let got: Vec<u32> = recv(&mut p1, 5, Duration::from_secs(5))
        .into_iter()
        .map(|m| m.0)
        .collect();
    assert_eq!(got, (30..35).collect::<Vec<_>>());
    assert!(recv(&mut e2, 1, Duration::from_millis(200)).is_empty());
    assert_eq!(table.counts(&key).unwrap(), Some((20, 20 * len)));

    // Detached (`detach`, then dropped): the port gets everything, even with a current
    // entry.
    table.insert(&key, p2_index, tag(2, 1)).unwrap();
    kp.as_ref().unwrap().detach().unwrap();
    for batch in [35..40, 40..45] {
        send(&mut e1, batch.clone());
        let got: Vec<u32> = recv(&mut p1, 5, Duration::from_secs(5))
            .into_iter()
            .map(|m| m.0)
            .collect();
        assert_eq!(got, batch.collect::<Vec<_>>());
        assert!(recv(&mut e2, 1, Duration::from_millis(200)).is_empty());
        assert_eq!(table.counts(&key).unwrap(), Some((0, 0)));
        drop(kp.take());
    }
}

/// A TCP GSO super-frame (with a partial checksum) of a forwarded flow goes out p2 whole,
/// offload metadata and all, and counts as one packet of its full length.
#[test]
fn bpf_veth_gso_super_frames_pass_whole() {
    let t = Topo::new();
    let table = Arc::new(KernelTable::new(16).unwrap());
    let p1 = open(&t.sw, "p1");
    let mut e1 = open(&t.h1, "eth0");
    let mut e2 = open(&t.h2, "eth0");
    wait_link(&p1);
    wait_link(&e1);
    let (p1_index, p2_index) = (ifindex(&t.sw, "p1"), ifindex(&t.sw, "p2"));
    let tb = table.clone();
    let (mut p1, kp) = t.sw.run(move || {
        let kp = tb.attach(PORT, p1_index, p1.as_fd());
        (p1, kp)
    });
    let _kp = kp.expect("attach");

    let mut f = tcp4(&[0x3c; 4000], 77);
    let mut vnet = make_partial(&mut f, 14, 34, 16, false);
    vnet.gso_type = GSO_TCPV4;
    vnet.gso_size = 1400;
    vnet.hdr_len = 54;
    let key = kernel_key(PORT, &f).unwrap();
    table.insert(&key, p2_index, tag(0, 0)).unwrap();
    let mut pk = [Packet {
        data: f.clone(),
        vnet,
        tunnel_id: 0,
    }];
    assert_eq!(e1.send_batch(&mut pk).unwrap(), 1);

    let mut got = Vec::new();
    let mut batch = PacketBatch::new();
    let end = Instant::now() + Duration::from_secs(5);
    while got.is_empty() && Instant::now() < end {
        batch.clear();
        e2.recv_batch(&mut batch).unwrap();
        got.extend(batch.iter().filter(|p| p.data.len() > 1000).cloned());
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got.len(), 1, "one frame, not segments");
    assert_eq!(got[0].data, f);
    assert_eq!(
        (got[0].vnet.gso_type, got[0].vnet.gso_size),
        (GSO_TCPV4, 1400)
    );
    assert_eq!(table.counts(&key).unwrap(), Some((1, f.len() as u64)));
    batch.clear();
    std::thread::sleep(Duration::from_millis(100));
    p1.recv_batch(&mut batch).unwrap();
    assert!(
        batch.iter().all(|p| p.data.len() < 1000),
        "the port got the super-frame"
    );
}
