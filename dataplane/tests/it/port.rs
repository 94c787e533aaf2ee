//! Port tests: the in-memory port and the software offload (pure), then every Linux port
//! against real kernel peers inside network namespaces this file creates and removes
//! (names unique per process; no host interface is touched). Needs root; a missing
//! capability is a failure, not a skip.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etherparse::{NetHeaders, PacketBuilder, PacketHeaders, TransportHeader};
use fuxi_dataplane::port::afpacket::{AfPacketConfig, AfPacketPort};
use fuxi_dataplane::port::fwd::forward_pair;
use fuxi_dataplane::port::netlink::{LinkEvent, LinkMonitor, parse_link_messages};
use fuxi_dataplane::port::offload::{
    self, F_NEEDS_CSUM, GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, VnetHdr, csum_add, csum_fold,
};
use fuxi_dataplane::port::tap::TapPort;
use fuxi_dataplane::port::vxlan::{self, VxlanPort};
use fuxi_dataplane::port::{
    BATCH, BorrowedBatch, MemPort, Packet, PacketBatch, Port, RxPacket, netns,
};

// ---------------------------------------------------------------------------------------
// Frames.

pub(crate) fn tcp4(payload: &[u8], seq: u32) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .tcp(1234, 80, seq, 1000)
        .psh();
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

pub(crate) fn tcp6(payload: &[u8], seq: u32) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv6([1; 16], [2; 16], 64)
        .tcp(1234, 80, seq, 1000)
        .fin();
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

pub(crate) fn udp4(payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000, 2000);
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

/// Turn a complete frame into its CHECKSUM_PARTIAL form: the L4 checksum field holds the
/// pseudo-header sum, as the kernel leaves it.
pub(crate) fn make_partial(
    frame: &mut [u8],
    l3: usize,
    l4: usize,
    csum_off: usize,
    v6: bool,
) -> VnetHdr {
    let proto = u32::from(if csum_off == 16 { 6u8 } else { 17 });
    let len = (frame.len() - l4) as u32;
    let mut s = if v6 {
        csum_add(0, &frame[l3 + 8..l3 + 40])
    } else {
        csum_add(0, &frame[l3 + 12..l3 + 20])
    };
    s += proto + len;
    let p = csum_fold(s);
    frame[l4 + csum_off..l4 + csum_off + 2].copy_from_slice(&p.to_be_bytes());
    VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: l4 as u16,
        csum_offset: csum_off as u16,
        ..VnetHdr::default()
    }
}

/// Check every checksum of an IPv4/IPv6 TCP/UDP frame with etherparse; return (tcp seq,
/// payload).
fn check_frame(f: &[u8]) -> (u32, Vec<u8>, u8) {
    let h = PacketHeaders::from_ethernet_slice(f).expect("parses");
    let payload = h.payload.slice().to_vec();
    match (h.net.expect("ip"), h.transport.expect("l4")) {
        (NetHeaders::Ipv4(ip, _), TransportHeader::Tcp(t)) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "ipv4 hdr csum"
            );
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv4(&ip, &payload).unwrap(),
                "tcp4 csum"
            );
            let fl = u8::from(t.fin) | (u8::from(t.psh) << 3) | (u8::from(t.cwr) << 7);
            (t.sequence_number, payload, fl)
        }
        (NetHeaders::Ipv6(ip, _), TransportHeader::Tcp(t)) => {
            assert_eq!(
                t.checksum,
                t.calc_checksum_ipv6(&ip, &payload).unwrap(),
                "tcp6 csum"
            );
            let fl = u8::from(t.fin) | (u8::from(t.psh) << 3) | (u8::from(t.cwr) << 7);
            (t.sequence_number, payload, fl)
        }
        (NetHeaders::Ipv4(ip, _), TransportHeader::Udp(u)) => {
            assert_eq!(
                ip.header_checksum,
                ip.calc_header_checksum(),
                "ipv4 hdr csum"
            );
            assert_eq!(
                u.checksum,
                u.calc_checksum_ipv4(&ip, &payload).unwrap(),
                "udp csum"
            );
            assert_eq!(usize::from(u.length), payload.len() + 8);
            (0, payload, 0)
        }
        other => panic!("unexpected headers {other:?}"),
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

// ---------------------------------------------------------------------------------------
// Pure: offload, MemPort, VXLAN codec, netlink parser.

#[test]
fn port_checksum_completion_tcp_udp_v4_v6() {
    for (mut f, l3, l4, off, v6) in [
        (tcp4(&pattern(333), 7), 14, 34, 16, false),
        (tcp6(&pattern(1001), 9), 14, 54, 16, true),
        (udp4(&pattern(77)), 14, 34, 6, false),
    ] {
        let good = f.clone();
        let mut vnet = make_partial(&mut f, l3, l4, off, v6);
        assert_ne!(f, good);
        offload::complete_checksum(&mut f, &mut vnet).unwrap();
        assert_eq!(f, good);
        assert!(!vnet.needs_csum());
    }
    // Offsets outside the frame are refused, not a panic.
    let mut f = udp4(b"x");
    let mut v = VnetHdr {
        flags: F_NEEDS_CSUM,
        csum_start: 40,
        csum_offset: 6,
        ..VnetHdr::default()
    };
    assert!(offload::complete_checksum(&mut f, &mut v).is_err());
}

#[test]
fn port_partial_checksum_survives_header_rewrites() {
    // A partial TCP packet whose addresses and ports the pipeline rewrote (here: with a
    // wrong incremental update scribbled over the field) is right after a refresh.
    let good = {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 7, 9], [10, 0, 0, 2], 64)
            .tcp(4321, 80, 7, 1000)
            .psh();
        let mut v = Vec::new();
        b.write(&mut v, &pattern(500)).unwrap();
        v
    };
    let mut f = tcp4(&pattern(500), 7);
    let vnet = make_partial(&mut f, 14, 34, 16, false);
    f[26..30].copy_from_slice(&[192, 168, 7, 9]);
    f[34..36].copy_from_slice(&4321u16.to_be_bytes());
    f[24..26].copy_from_slice(&good[24..26]); // IPv4 header checksum, as exec keeps it
    f[50] ^= 0x5a; // a wrong update of the partial field
    offload::refresh_partial_checksum(&mut f, &vnet).unwrap();
    let mut v = vnet;
    offload::complete_checksum(&mut f, &mut v).unwrap();
    assert_eq!(f, good);
}

#[test]
fn port_gso_segmentation_tcp_v4_v6_and_uso() {
    let payload = pattern(4000);
    for (frame, gso, l4) in [
        (tcp4(&payload, 1000), GSO_TCPV4, 34u16),
        (tcp6(&payload, 0xffff_ff00), GSO_TCPV6, 54),
        (udp4(&payload), GSO_UDP_L4, 34),
    ] {
        let mut f = frame.clone();
        let hlen = if gso == GSO_UDP_L4 { l4 + 8 } else { l4 + 20 };
        let mut v = make_partial(
            &mut f,
            14,
            l4.into(),
            if gso == GSO_UDP_L4 { 6 } else { 16 },
            gso == GSO_TCPV6,
        );
        v.gso_type = gso;
        v.gso_size = 1400;
        v.hdr_len = hlen;
        let mut segs = Vec::new();
        offload::segment(&f, &v, |s| segs.push(s.to_vec())).unwrap();
        assert_eq!(segs.len(), 3, "4000 / 1400");
        let mut got = Vec::new();
        let (seq0, _, _) = check_frame(&frame);
        for (i, s) in segs.iter().enumerate() {
            let (seq, p, flags) = check_frame(s);
            if gso != GSO_UDP_L4 {
                assert_eq!(seq, seq0.wrapping_add(got.len() as u32));
                let last_flag = if gso == GSO_TCPV4 { 0x08 } else { 0x01 };
                assert_eq!(
                    flags & last_flag != 0,
                    i == 2,
                    "PSH/FIN on the last segment only"
                );
            }
            got.extend_from_slice(&p);
        }
        assert_eq!(got, payload);
        // software_offload on a Packet gives the same segments.
        let mut pkt = Packet {
            data: f,
            vnet: v,
            tunnel_id: 5,
        };
        let mut out = Vec::new();
        offload::software_offload(&mut pkt, &mut out).unwrap();
        assert_eq!(out.iter().map(|p| p.data.clone()).collect::<Vec<_>>(), segs);
        assert!(out.iter().all(|p| p.tunnel_id == 5 && !p.needs_offload()));
    }
    // Garbage GSO frames are refused without panicking.
    for n in 0..80 {
        let f = pattern(n);
        let v = VnetHdr {
            gso_type: GSO_TCPV4,
            gso_size: 100,
            csum_start: 34,
            ..VnetHdr::default()
        };
        let _ = offload::segment(&f, &v, |_| {});
    }
}

/// An IPv4 BIG TCP super-frame (over 64 KiB, so its IPv4 total length is 0, as Linux
/// builds it): segmented from the frame length, every segment complete.
fn big_tcp4(payload: &[u8]) -> (Vec<u8>, VnetHdr) {
    let mut f = tcp4(&[], 7000);
    f.extend_from_slice(payload);
    f[16..18].copy_from_slice(&[0, 0]); // tot_len 0: BIG TCP
    f[24..26].copy_from_slice(&[0, 0]);
    let c = !csum_fold(csum_add(0, &f[14..34]));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let mut v = make_partial(&mut f, 14, 34, 16, false);
    v.gso_type = GSO_TCPV4;
    v.gso_size = 1448;
    v.hdr_len = 54;
    (f, v)
}

#[test]
fn port_gso_segmentation_big_tcp_v4_total_length_zero() {
    let payload = pattern(150_000);
    let (f, v) = big_tcp4(&payload);
    assert!(f.len() > 65_535 + 14);
    let mut segs = Vec::new();
    offload::segment(&f, &v, |s| segs.push(s.to_vec())).unwrap();
    assert_eq!(segs.len(), 150_000usize.div_ceil(1448));
    let mut got = Vec::new();
    for s in &segs {
        assert_eq!(
            usize::from(u16::from_be_bytes([s[16], s[17]])),
            s.len() - 14
        );
        let (seq, p, _) = check_frame(s);
        assert_eq!(seq, 7000 + got.len() as u32);
        got.extend_from_slice(&p);
    }
    assert_eq!(got, payload);
    // Its partial checksum refreshed after a rewrite is the one segmenting expects (the
    // pseudo-header length above 16 bits folds in, as the kernel sums it).
    let mut g = f.clone();
    offload::refresh_partial_checksum(&mut g, &v).unwrap();
    assert_eq!(g, f);
}

#[test]
fn port_vnet_hdr_bytes_round_trip() {
    let v = VnetHdr {
        flags: 1,
        gso_type: 1,
        hdr_len: 66,
        gso_size: 1448,
        csum_start: 34,
        csum_offset: 16,
    };
    assert_eq!(VnetHdr::from_bytes(&v.to_bytes()), v);
    assert_eq!(v.to_bytes()[..2], [1, 1]);
}

#[test]
fn port_mem_pair_batches_and_software_offload() {
    let (mut a, mut b) = MemPort::pair("a", "b");
    for i in 0..70u8 {
        a.inject(&[i; 60]);
    }
    let mut batch = PacketBatch::new();
    let mut seen = 0;
    loop {
        batch.clear();
        let n = a.recv_batch(&mut batch).unwrap();
        assert!(n <= BATCH);
        if n == 0 {
            break;
        }
        for p in batch.iter() {
            assert_eq!(p.data, vec![seen as u8; 60]);
            seen += 1;
        }
        // What a sends, b receives.
        assert_eq!(a.send_batch(batch.as_mut_slice()).unwrap(), n);
    }
    assert_eq!(seen, 70);
    assert_eq!(a.stats().rx_packets, 70);
    assert_eq!(a.stats().tx_packets, 70);
    batch.clear();
    assert_eq!(b.recv_batch(&mut batch).unwrap(), 32);
    assert_eq!(batch.as_slice()[31].data, vec![31u8; 60]);

    // A GSO frame sent on a port without offload leaves segmented, checksums done.
    let mut p = MemPort::new("plain");
    let mut f = tcp4(&pattern(3000), 1);
    let mut v = make_partial(&mut f, 14, 34, 16, false);
    v.gso_type = GSO_TCPV4;
    v.gso_size = 1000;
    v.hdr_len = 54;
    let mut pk = [Packet {
        data: f.clone(),
        vnet: v,
        tunnel_id: 0,
    }];
    assert_eq!(p.send_batch(&mut pk).unwrap(), 1);
    let sent = p.take_sent();
    assert_eq!(sent.len(), 3);
    for s in &sent {
        check_frame(&s.data);
    }
    // Bench mode: replay cycles through its frames in full batches; discard counts.
    let mut bench = MemPort::new("bench");
    bench.replay(vec![
        Packet::from_frame(&[1; 60]),
        Packet::from_frame(&[2; 64]),
    ]);
    bench.set_discard(true);
    for _ in 0..3 {
        batch.clear();
        assert_eq!(bench.recv_batch(&mut batch).unwrap(), BATCH);
        assert_eq!(batch.as_slice()[1].data, vec![2; 64]);
        assert_eq!(bench.send_batch(batch.as_mut_slice()).unwrap(), BATCH);
    }
    assert_eq!(bench.stats().tx_packets, 3 * BATCH as u64);
    assert!(bench.take_sent().is_empty());
    // With offload the frame goes as is.
    p.set_offloads(true);
    p.send_batch(&mut pk).unwrap();
    assert_eq!(p.take_sent()[0].data, f);
}

#[test]
fn port_vxlan_codec() {
    let mut out = Vec::new();
    vxlan::encap(0x00ab_cdef, &[9u8; 20], &mut out);
    assert_eq!(out[..8], [0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
    let (vni, inner) = vxlan::decap(&out).unwrap();
    assert_eq!(vni, 0x00ab_cdef);
    assert_eq!(inner, &[9u8; 20]);
    assert!(vxlan::decap(&out[..10]).is_none());
    let p = Packet {
        tunnel_id: u64::from(vni),
        ..Packet::from_frame(inner)
    };
    let m = p.rx_meta(7);
    assert_eq!((m.in_port, m.in_phy_port, m.tunnel_id), (7, 7, 0x00ab_cdef));
    out[0] = 0;
    assert!(vxlan::decap(&out).is_none());
}

/// An RTM_NEWLINK message as the kernel sends it: nlmsghdr, ifinfomsg, IFLA_IFNAME,
/// IFLA_OPERSTATE (plus one attribute we skip), then NLMSG_DONE.
fn newlink_bytes(ty: u16, ifindex: i32, flags: u32, name: &str, oper: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 0]); // family, pad
    body.extend_from_slice(&1u16.to_ne_bytes()); // ARPHRD_ETHER
    body.extend_from_slice(&ifindex.to_ne_bytes());
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    let mut attr = |t: u16, v: &[u8]| {
        body.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&t.to_ne_bytes());
        body.extend_from_slice(v);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    };
    let mut n = name.as_bytes().to_vec();
    n.push(0);
    attr(3, &n);
    attr(4, &1500u32.to_ne_bytes()); // IFLA_MTU, skipped
    attr(16, &[oper]);
    let mut m = Vec::new();
    m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&[0; 10]);
    m.extend_from_slice(&body);
    m
}

#[test]
fn port_netlink_parse() {
    let mut buf = newlink_bytes(16, 7, 0x1_1043, "veth0", 6);
    buf.extend(newlink_bytes(16, 8, 0x1003, "veth1", 2));
    buf.extend(newlink_bytes(17, 9, 0x1003, "gone", 2));
    let mut done = vec![0u8; 20];
    done[0] = 20;
    done[4] = 3;
    buf.extend(&done);
    let mut ev = Vec::new();
    assert!(parse_link_messages(&buf, &mut ev));
    assert_eq!(ev.len(), 3);
    assert_eq!(
        ev[0],
        LinkEvent {
            ifindex: 7,
            name: Some("veth0".into()),
            flags: 0x1_1043,
            operstate: Some(6),
            deleted: false
        }
    );
    assert!(ev[0].is_up());
    assert!(!ev[1].is_up() && ev[1].admin_up());
    assert!(ev[2].deleted && !ev[2].is_up());
    // Every truncation parses without panic and yields a prefix.
    for n in 0..buf.len() {
        let mut e = Vec::new();
        parse_link_messages(&buf[..n], &mut e);
        assert!(e.len() <= 3);
    }
}

// ---------------------------------------------------------------------------------------
// Namespaces.

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn sh(cmd: &str) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("run sh");
    assert!(
        o.status.success(),
        "`{cmd}` failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A network namespace that is deleted on drop.
pub(crate) struct Ns(String);

impl Ns {
    pub(crate) fn new(tag: &str) -> Ns {
        let name = format!(
            "fxp{}-{}{}",
            std::process::id(),
            tag,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        sh(&format!("ip netns add {name}"));
        let ns = Ns(name);
        ns.exec("ip link set lo up");
        ns.exec("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1");
        ns
    }
    pub(crate) fn exec(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} {cmd}", self.0))
    }
    pub(crate) fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        netns::run_in(&self.0, f).expect("enter netns")
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// h1 (eth0 10.9.0.1) --veth-- sw (p1, p2) --veth-- h2 (eth0 10.9.0.2).
pub(crate) struct Topo {
    pub(crate) sw: Ns,
    pub(crate) h1: Ns,
    pub(crate) h2: Ns,
}

impl Topo {
    pub(crate) fn new() -> Topo {
        let (sw, h1, h2) = (Ns::new("sw"), Ns::new("h1"), Ns::new("h2"));
        for (p, h, ip, mac) in [
            ("p1", &h1, "10.9.0.1", "02:00:00:00:00:01"),
            ("p2", &h2, "10.9.0.2", "02:00:00:00:00:02"),
        ] {
            sw.exec(&format!(
                "ip link add {p} type veth peer name eth0 netns {}",
                h.0
            ));
            sw.exec(&format!("ip link set {p} up"));
            h.exec(&format!("ip link set eth0 address {mac}"));
            h.exec(&format!("ip addr add {ip}/24 dev eth0"));
            h.exec("ip link set eth0 up");
        }
        Topo { sw, h1, h2 }
    }
}

/// Open an AF_PACKET port in `ns`; `FUXI_TX_RING=N` selects the mmap tx ring,
/// `FUXI_RX_MMSG=1` recvmmsg instead of the rx ring, `FUXI_RX_ZC=1` the lending ring.
pub(crate) fn open(ns: &Ns, ifname: &'static str) -> AfPacketPort {
    let cfg = AfPacketConfig {
        tx_ring_frames: std::env::var("FUXI_TX_RING")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        rx_mmsg: std::env::var_os("FUXI_RX_MMSG").is_some(),
        rx_zc: std::env::var_os("FUXI_RX_ZC").is_some(),
        ..AfPacketConfig::default()
    };
    ns.run(move || AfPacketPort::open_with(ifname, &cfg))
        .expect("open AF_PACKET port")
}

fn raw_frame(i: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([2, 0, 0, 0, 0, 0x99, 0x88, 0xb5]); // local experimental ethertype
    f.extend(b"FUXI");
    f.extend(i.to_be_bytes());
    f.resize(len, 0xa5);
    f
}

fn marker(f: &[u8]) -> Option<u32> {
    (f.len() >= 22 && f[12..14] == [0x88, 0xb5] && &f[14..18] == b"FUXI")
        .then(|| u32::from_be_bytes(f[18..22].try_into().unwrap()))
}

/// Receive on `p` until `want` marked frames arrived or `t` passed; returns the markers.
fn recv_marked(p: &mut dyn Port, want: usize, t: Duration) -> (Vec<u32>, usize) {
    let mut got = Vec::new();
    let mut batch = PacketBatch::new();
    let mut max_batch = 0;
    let end = Instant::now() + t;
    while got.len() < want && Instant::now() < end {
        batch.clear();
        let n = p.recv_batch(&mut batch).unwrap();
        max_batch = max_batch.max(n);
        got.extend(batch.iter().filter_map(|p| marker(&p.data)));
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    (got, max_batch)
}

fn send_all(p: &mut dyn Port, frames: impl Iterator<Item = Vec<u8>>) {
    let mut pk: Vec<Packet> = frames.map(|f| Packet::from_frame(&f)).collect();
    for c in pk.chunks_mut(BATCH) {
        assert_eq!(p.send_batch(c).unwrap(), c.len());
    }
}

fn counter(ns: &Ns, ifname: &str, c: &str) -> u64 {
    ns.exec(&format!("cat /sys/class/net/{ifname}/statistics/{c}"))
        .trim()
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// AF_PACKET.

#[test]
fn port_afpacket_veth_rx_tx_batches_no_loopback() {
    veth_rx_tx(AfPacketConfig::default());
}

#[test]
fn port_afpacket_recvmmsg_rx_tx_batches_no_loopback() {
    veth_rx_tx(AfPacketConfig {
        rx_mmsg: true,
        ..AfPacketConfig::default()
    });
}

/// The lending ring, received by copy (`recv_batch`).
#[test]
fn port_afpacket_zc_rx_tx_batches_no_loopback() {
    veth_rx_tx(AfPacketConfig {
        rx_zc: true,
        ..AfPacketConfig::default()
    });
}

fn veth_rx_tx(cfg: AfPacketConfig) {
    let t = Topo::new();
    let mut p1 =
        t.sw.run(move || AfPacketPort::open_with("p1", &cfg))
            .unwrap();
    let mut e1 =
        t.h1.run(move || AfPacketPort::open_with("eth0", &cfg))
            .unwrap();
    // A new veth pair reports carrier (IFF_RUNNING) a moment after it is up; under load that
    // has taken most of a second here.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p1.link_up() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(p1.link_up());
    assert!(p1.ifindex().unwrap() > 0);
    assert_eq!(e1.mac(), Some([2, 0, 0, 0, 0, 1]));

    // h1 -> p1: 200 frames in batches; all arrive, in order, batches up to 32.
    let kernel_rx0 = counter(&t.sw, "p1", "rx_packets");
    send_all(&mut e1, (0..200).map(|i| raw_frame(i, 60 + i as usize)));
    let (got, max_batch) = recv_marked(&mut p1, 200, Duration::from_secs(5));
    assert_eq!(got, (0..200).collect::<Vec<_>>());
    assert!(max_batch > 1 && max_batch <= BATCH, "batch {max_batch}");
    assert!(counter(&t.sw, "p1", "rx_packets") - kernel_rx0 >= 200);

    // p1 -> h1: the kernel counts them on eth0, our port there sees them.
    let k0 = counter(&t.h1, "eth0", "rx_packets");
    send_all(&mut p1, (1000..1100).map(|i| raw_frame(i, 1514)));
    let (got, _) = recv_marked(&mut e1, 100, Duration::from_secs(5));
    assert_eq!(got, (1000..1100).collect::<Vec<_>>());
    assert!(counter(&t.h1, "eth0", "rx_packets") - k0 >= 100);
    assert_eq!(p1.stats().tx_packets, 100);

    // Own transmissions are not looped back to p1's rx.
    std::thread::sleep(Duration::from_millis(20));
    let (own, _) = recv_marked(&mut p1, 1, Duration::from_millis(100));
    assert!(own.is_empty(), "own tx looped back: {own:?}");

    // A VLAN-tagged frame arrives with its tag (the kernel strips it; we put it back).
    let mut tagged = raw_frame(7, 64);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x2a]);
    send_all(&mut e1, std::iter::once(tagged.clone()));
    let mut batch = PacketBatch::new();
    let end = Instant::now() + Duration::from_secs(2);
    while batch.is_empty() && Instant::now() < end {
        p1.recv_batch(&mut batch).unwrap();
    }
    assert_eq!(batch.as_slice()[0].data, tagged);
}

/// Sends `frame` (with `vnet`) on `tx` until `rx` receives frames over 1,000 bytes (at
/// most twice: a first one may be dropped, counted in `rx_dropped`); returns those.
fn send_big_until_received(
    tx: &mut dyn Port,
    rx: &mut dyn Port,
    frame: &[u8],
    vnet: VnetHdr,
) -> Vec<Packet> {
    let mut got = Vec::new();
    let mut batch = PacketBatch::new();
    for _ in 0..2 {
        let mut pk = [Packet {
            data: frame.to_vec(),
            vnet,
            tunnel_id: 0,
        }];
        assert_eq!(tx.send_batch(&mut pk).unwrap(), 1);
        let d0 = rx.stats().rx_dropped;
        let end = Instant::now() + Duration::from_secs(2);
        while Instant::now() < end && rx.stats().rx_dropped == d0 && got.is_empty() {
            batch.clear();
            rx.recv_batch(&mut batch).unwrap();
            got.extend(batch.iter().filter(|p| p.data.len() > 1000).cloned());
            std::thread::sleep(Duration::from_millis(1));
        }
        if !got.is_empty() {
            break;
        }
    }
    got
}

/// A BIG TCP super-frame (150 KB, IPv4 total length 0) arrives whole at a recvmmsg port:
/// the first one is dropped (truncated, counted) and makes the receive buffers grow, the
/// next passes with its offload metadata. (Written into a TAP device with its vnet header:
/// the kernel takes it as received there, with no GSO size check on the way.)
#[test]
fn port_afpacket_recvmmsg_passes_big_tcp_frames() {
    let ns = Ns::new("big");
    let tap = ns.run(|| TapPort::open("fxbig0")).unwrap();
    tap.set_admin_up(true).unwrap();
    let mut tap: Box<dyn Port> = Box::new(tap);
    let cfg = AfPacketConfig {
        rx_mmsg: true,
        ..AfPacketConfig::default()
    };
    let mut rx = ns
        .run(move || AfPacketPort::open_with("fxbig0", &cfg))
        .unwrap();
    let (f, v) = big_tcp4(&pattern(150_000));
    let got = send_big_until_received(tap.as_mut(), &mut rx, &f, v);
    assert_eq!(rx.stats().rx_dropped, 1, "the first one grows the buffers");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, f);
    assert_eq!(got[0].vnet.gso_type, GSO_TCPV4);
    assert_eq!(got[0].vnet.gso_size, 1448);
}

/// A BIG TCP super-frame sent on a port leaves whole: opening the port raised the device's
/// GSO limits (`raise_gso`), else the kernel would cut it into MTU-sized segments at xmit
/// (`skb->len` ≥ `gso_ipv4_max_size`, 64 KiB by default).
#[test]
fn port_afpacket_sends_big_tcp_frames_whole() {
    let t = Topo::new();
    let cfg = AfPacketConfig {
        rx_mmsg: true,
        ..AfPacketConfig::default()
    };
    assert!(cfg.raise_gso);
    let mut p1 =
        t.sw.run(move || AfPacketPort::open_with("p1", &cfg))
            .unwrap();
    let mut e1 =
        t.h1.run(move || AfPacketPort::open_with("eth0", &cfg))
            .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p1.link_up() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (f, v) = big_tcp4(&pattern(150_000));
    let all = send_big_until_received(&mut p1, &mut e1, &f, v);
    let (got, segments): (Vec<_>, Vec<_>) = all.into_iter().partition(|p| p.data.len() == f.len());
    let small = segments.len();
    assert_eq!(small, 0, "segmented on the way out");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, f);
    assert_eq!(got[0].vnet.gso_type, GSO_TCPV4);
}

fn zc_cfg(blocks: u32) -> AfPacketConfig {
    AfPacketConfig {
        rx_zc: true,
        zc_blocks: blocks,
        ..AfPacketConfig::default()
    }
}

pub(crate) fn wait_link(p: &dyn Port) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p.link_up() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(p.link_up(), "{} has no carrier", p.name());
}

/// Borrow from `p` until `want` frames were lent or `t` passed; `each` sees every batch
/// before it is released.
fn recv_lent(p: &mut dyn Port, want: usize, t: Duration, mut each: impl FnMut(&BorrowedBatch)) {
    let mut lent = BorrowedBatch::new();
    let mut got = 0;
    let end = Instant::now() + t;
    while got < want && Instant::now() < end {
        let n = p.recv_borrowed(&mut lent).expect("a lending port").unwrap();
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        got += n;
        each(&lent);
        lent.release();
    }
}

/// Zero-copy: frames an `rx_zc` port (p1) lends are sent by p2 straight from p1's ring
/// (`send_frames`) and reach h2 byte-exact with their offload header: a GSO super-frame
/// with a partial checksum, a VLAN-tagged frame (its tag put back in the ring frame), a
/// plain one.
#[test]
fn port_afpacket_zc_lent_frames_go_out_unchanged() {
    let t = Topo::new();
    let mut p1 =
        t.sw.run(|| AfPacketPort::open_with("p1", &zc_cfg(4)))
            .unwrap();
    let mmsg = AfPacketConfig {
        rx_mmsg: true,
        ..AfPacketConfig::default()
    };
    let mut p2 =
        t.sw.run(move || AfPacketPort::open_with("p2", &mmsg))
            .unwrap();
    let mut e1 =
        t.h1.run(move || AfPacketPort::open_with("eth0", &mmsg))
            .unwrap();
    let mut e2 =
        t.h2.run(move || AfPacketPort::open_with("eth0", &mmsg))
            .unwrap();
    wait_link(&p1);
    wait_link(&p2);
    // A p1 with nothing received lends nothing (and is a lending port).
    let mut lent = BorrowedBatch::new();
    assert_eq!(p1.recv_borrowed(&mut lent).unwrap().unwrap(), 0);
    let mut gso = tcp4(&pattern(3000), 1);
    gso[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    let mut v = make_partial(&mut gso, 14, 34, 16, false);
    v.gso_type = GSO_TCPV4;
    v.gso_size = 1000;
    v.hdr_len = 54;
    let mut tagged = raw_frame(7, 200);
    tagged.splice(12..12, [0x81, 0x00, 0x20, 0x2a]);
    let plain = raw_frame(8, 1514);
    let mut pk = [
        Packet {
            data: gso.clone(),
            vnet: v,
            tunnel_id: 0,
        },
        Packet::from_frame(&tagged),
        Packet::from_frame(&plain),
    ];
    assert_eq!(e1.send_batch(&mut pk).unwrap(), 3);
    let mut seen = Vec::new();
    recv_lent(&mut p1, 3, Duration::from_secs(3), |lent| {
        seen.extend(lent.frames().iter().map(|f| (f.data.to_vec(), f.vnet)));
        assert_eq!(p2.send_frames(lent.frames()).unwrap(), lent.len());
    });
    assert_eq!(seen.len(), 3, "lent: {seen:?}");
    assert_eq!(p2.stats().tx_packets, 3);
    // What p1 lent is what h1 sent, offload header included (hdr_len is the kernel's).
    let same = |a: &VnetHdr, b: &VnetHdr| {
        (a.flags, a.gso_type, a.gso_size, a.csum_start, a.csum_offset)
            == (b.flags, b.gso_type, b.gso_size, b.csum_start, b.csum_offset)
    };
    assert_eq!(seen[0].0, gso);
    assert!(same(&seen[0].1, &v), "{:?} vs {v:?}", seen[0].1);
    assert_eq!(seen[1].0, tagged);
    assert_eq!(seen[2].0, plain);
    // And h2 gets it all, as sent.
    let mut got: Vec<Packet> = Vec::new();
    let mut batch = PacketBatch::new();
    let end = Instant::now() + Duration::from_secs(3);
    while got.len() < 3 && Instant::now() < end {
        batch.clear();
        e2.recv_batch(&mut batch).unwrap();
        got.extend(
            batch
                .iter()
                .filter(|p| p.data == gso || p.data == tagged || p.data == plain)
                .cloned(),
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].data, gso);
    assert!(same(&got[0].vnet, &v), "{:?} vs {v:?}", got[0].vnet);
    assert_eq!(got[1].data, tagged);
    assert_eq!(got[2].data, plain);
}

/// A frame the kernel refuses in the middle of a batch (GSO without a segment size) is
/// counted as an error and the batch still counts as consumed, so a caller that retries
/// from the return value sends nothing twice; the frames around it arrive once each.
#[test]
fn port_afpacket_refused_frame_is_counted_and_the_batch_consumed() {
    let t = Topo::new();
    let mmsg = AfPacketConfig {
        rx_mmsg: true,
        ..AfPacketConfig::default()
    };
    let mut p1 =
        t.sw.run(move || AfPacketPort::open_with("p1", &mmsg))
            .unwrap();
    let mut e1 =
        t.h1.run(move || AfPacketPort::open_with("eth0", &mmsg))
            .unwrap();
    wait_link(&p1);
    let mut bad = tcp4(&pattern(3000), 1);
    let mut v = make_partial(&mut bad, 14, 34, 16, false);
    v.gso_type = GSO_TCPV4; // gso_size 0: EINVAL
    let mut pk = vec![Packet::from_frame(&raw_frame(1, 60))];
    pk.push(Packet {
        data: bad,
        vnet: v,
        tunnel_id: 0,
    });
    pk.push(Packet::from_frame(&raw_frame(3, 60)));
    assert_eq!(p1.send_batch(&mut pk).unwrap(), 3);
    let st = p1.stats();
    assert_eq!((st.tx_packets, st.tx_errors, st.tx_dropped), (2, 1, 0));
    let (got, _) = recv_marked(&mut e1, 3, Duration::from_millis(300));
    assert_eq!(got, vec![1, 3]);
}

/// The ring's frames are the receiver's until released: with 10 of a 15-frame ring held,
/// only 5 more are received (the rest dropped by the kernel, counted); once released, far
/// more frames than the ring holds pass in order (slots go back, the ring never stalls).
#[test]
fn port_afpacket_zc_slots_go_back_when_released() {
    let t = Topo::new();
    let mut p1 =
        t.sw.run(|| AfPacketPort::open_with("p1", &zc_cfg(1)))
            .unwrap();
    let mmsg = AfPacketConfig {
        rx_mmsg: true,
        ..AfPacketConfig::default()
    };
    let mut e1 =
        t.h1.run(move || AfPacketPort::open_with("eth0", &mmsg))
            .unwrap();
    wait_link(&p1);
    let settle = || std::thread::sleep(Duration::from_millis(50));
    let (mut held, mut more) = (BorrowedBatch::new(), BorrowedBatch::new());
    send_all(&mut e1, (0..10).map(|i| raw_frame(i, 60)));
    settle();
    assert_eq!(p1.recv_borrowed(&mut held).unwrap().unwrap(), 10);
    let d0 = p1.stats().rx_dropped;
    send_all(&mut e1, (10..20).map(|i| raw_frame(i, 60)));
    settle();
    assert_eq!(p1.recv_borrowed(&mut more).unwrap().unwrap(), 5);
    let marks = |b: &BorrowedBatch| -> Vec<u32> {
        b.frames().iter().filter_map(|f| marker(f.data)).collect()
    };
    assert_eq!(marks(&more), (10..15).collect::<Vec<_>>());
    assert_eq!(marks(&held), (0..10).collect::<Vec<_>>());
    assert_eq!(p1.stats().rx_dropped - d0, 5, "ring full: the kernel drops");
    // Still held: nothing new.
    assert_eq!(p1.recv_borrowed(&mut more).unwrap().unwrap(), 0);
    held.release();
    more.release();
    let mut got = Vec::new();
    for round in 0..20u32 {
        send_all(
            &mut e1,
            (round * 10..round * 10 + 10).map(|i| raw_frame(1000 + i, 100)),
        );
        recv_lent(&mut p1, 10, Duration::from_secs(2), |b| {
            got.extend(marks(b))
        });
    }
    assert_eq!(got, (1000..1200).collect::<Vec<_>>());
}

/// A frame bigger than a ring frame (a 150 KB BIG TCP super-frame) makes an `rx_zc` port
/// fall back to `recvmmsg` with big buffers: the first is dropped (counted), the next
/// passes whole; from then on the port lends nothing, keeps its descriptor (readable when
/// something arrives) and receives small frames too.
#[test]
fn port_afpacket_zc_falls_back_to_recvmmsg_for_big_tcp() {
    let ns = Ns::new("zcbig");
    let tap = ns.run(|| TapPort::open("fxzc0")).unwrap();
    tap.set_admin_up(true).unwrap();
    let mut tap: Box<dyn Port> = Box::new(tap);
    let mut rx = ns
        .run(|| AfPacketPort::open_with("fxzc0", &zc_cfg(2)))
        .unwrap();
    let fd = rx.as_raw_fd().unwrap();
    let mut lent = BorrowedBatch::new();
    assert!(rx.recv_borrowed(&mut lent).is_some());
    let (f, v) = big_tcp4(&pattern(150_000));
    let got = send_big_until_received(tap.as_mut(), &mut rx, &f, v);
    assert_eq!(rx.stats().rx_dropped, 1, "the first one makes it fall back");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, f);
    assert_eq!(got[0].vnet.gso_type, GSO_TCPV4);
    assert_eq!(got[0].vnet.gso_size, 1448);
    assert!(rx.recv_borrowed(&mut lent).is_none());
    assert_eq!(rx.as_raw_fd(), Some(fd));
    assert!(!readable(fd));
    let small = tcp4(&pattern(100), 9);
    assert_eq!(
        tap.send_batch(&mut [Packet::from_frame(&small)]).unwrap(),
        1
    );
    let end = Instant::now() + Duration::from_secs(2);
    while !readable(fd) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut batch = PacketBatch::new();
    while batch.is_empty() && Instant::now() < end {
        rx.recv_batch(&mut batch).unwrap();
    }
    assert_eq!(batch.as_slice()[0].data, small);
    assert_eq!(rx.stats().rx_dropped, 1);
}

#[test]
fn port_afpacket_link_monitor_sees_carrier_down_up() {
    let t = Topo::new();
    let p1 = open(&t.sw, "p1");
    let idx = p1.ifindex().unwrap();
    let mut mon = t.sw.run(LinkMonitor::open).unwrap();
    mon.dump().unwrap();
    let wait = |mon: &mut LinkMonitor, up: bool| {
        let end = Instant::now() + Duration::from_secs(5);
        let mut ev = Vec::new();
        while Instant::now() < end {
            ev.clear();
            mon.recv(&mut ev).unwrap();
            if ev
                .iter()
                .any(|e| e.ifindex == idx && e.name.as_deref() == Some("p1") && e.is_up() == up)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no p1 up={up} event");
    };
    wait(&mut mon, true);
    t.h1.exec("ip link set eth0 down"); // the peer goes down: p1 loses carrier
    wait(&mut mon, false);
    assert!(!p1.link_up());
    t.h1.exec("ip link set eth0 up");
    wait(&mut mon, true);
    assert!(p1.link_up());
    t.sw.exec("ip link set p1 down");
    wait(&mut mon, false);
}

/// A TCP stream h1 -> h2 through a two-port forwarder on AF_PACKET ports, with the hosts'
/// tx checksum offload and TSO left on: it only works if GSO super-frames and partial
/// checksums pass through the ports.
#[test]
fn port_afpacket_tcp_stream_through_forwarder() {
    let t = Topo::new();
    let mut p1 = open(&t.sw, "p1");
    let mut p2 = open(&t.sw, "p2");
    assert!(
        t.h1.exec("ethtool -k eth0")
            .contains("tx-tcp-segmentation: on")
    );
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let fwd = std::thread::spawn(move || forward_pair(&mut p1, &mut p2, &s2, false).unwrap());

    const BYTES: usize = 200 << 20;
    let server = netns::run_in(&t.h2.0, || TcpListener::bind("10.9.0.2:5099").unwrap()).unwrap();
    let srv = std::thread::spawn(move || {
        let (mut c, _) = server.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        loop {
            match c.read(&mut buf).unwrap() {
                0 => break,
                k => n += k,
            }
        }
        n
    });
    let start = Instant::now();
    let sent = t.h1.run(|| {
        let mut c = TcpStream::connect_timeout(
            &"10.9.0.2:5099".parse::<SocketAddr>().unwrap(),
            Duration::from_secs(5),
        )
        .unwrap();
        let buf = vec![0x5au8; 1 << 16];
        let mut n = 0;
        while n < BYTES {
            c.write_all(&buf).unwrap();
            n += buf.len();
        }
        n
    });
    let got = srv.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let st = fwd.join().unwrap();
    assert_eq!(got, sent);
    let gbps = got as f64 * 8.0 / secs / 1e9;
    eprintln!("tcp through AF_PACKET forwarder: {gbps:.2} Gbit/s, {st:?}");
    // GSO passed through: far fewer frames than 1448-byte segments.
    assert!(
        (st.a_to_b as usize) < got / 1448 / 2,
        "no GSO frames seen: {st:?}"
    );
}

// ---------------------------------------------------------------------------------------
// TAP and VXLAN.

/// A frame the tap refuses (shorter than an Ethernet header: EINVAL) in the middle of a
/// batch is counted and the batch still counts as consumed, so a caller that retries from
/// the return value sends nothing twice.
#[test]
fn port_tap_refused_frame_is_counted_and_the_batch_consumed() {
    let ns = Ns::new("tapbad");
    let mut tap = ns.run(|| TapPort::open("fxtapb0")).unwrap();
    tap.set_admin_up(true).unwrap();
    let mut pk = vec![
        Packet::from_frame(&raw_frame(1, 60)),
        Packet::from_frame(&[0xff; 10]),
        Packet::from_frame(&raw_frame(3, 60)),
    ];
    assert_eq!(tap.send_batch(&mut pk).unwrap(), 3);
    let st = tap.stats();
    assert_eq!((st.tx_packets, st.tx_errors, st.tx_dropped), (2, 1, 0));
}

#[test]
fn port_tap_read_write_against_kernel_stack() {
    let ns = Ns::new("tap");
    let mut tap = ns.run(|| TapPort::open("fxtap0")).unwrap();
    tap.set_admin_up(true).unwrap();
    ns.exec("ip addr add 10.9.1.1/24 dev fxtap0");
    assert!(tap.link_up());
    let mac = tap.mac().unwrap();
    let name = ns.0.clone();
    let ping = std::thread::spawn(move || {
        Command::new("ip")
            .args([
                "netns", "exec", &name, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.9.1.2",
            ])
            .output()
            .unwrap()
    });
    // The kernel asks for 10.9.1.2 on the tap: read the ARP request.
    let mut batch = PacketBatch::new();
    let end = Instant::now() + Duration::from_secs(5);
    let arp = loop {
        assert!(Instant::now() < end, "no ARP request read from the tap");
        batch.clear();
        tap.recv_batch(&mut batch).unwrap();
        if let Some(p) = batch
            .iter()
            .find(|p| p.data[12..14] == [8, 6] && p.data[38..42] == [10, 9, 1, 2])
        {
            break p.clone();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_eq!(arp.data[6..12], mac);
    // Answer it (write), then the pings arrive (read) and we answer them too.
    let me = [2, 0, 0, 0, 0, 0x77];
    let mut reply = Vec::new();
    reply.extend_from_slice(&mac);
    reply.extend_from_slice(&me);
    reply.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
    reply.extend_from_slice(&me);
    reply.extend_from_slice(&[10, 9, 1, 2]);
    reply.extend_from_slice(&mac);
    reply.extend_from_slice(&[10, 9, 1, 1]);
    assert_eq!(
        tap.send_batch(&mut [Packet::from_frame(&reply)]).unwrap(),
        1
    );
    let mut echoes = 0;
    let end = Instant::now() + Duration::from_secs(5);
    while echoes < 3 && Instant::now() < end {
        batch.clear();
        tap.recv_batch(&mut batch).unwrap();
        for p in batch.as_mut_slice() {
            if p.data[12..14] == [8, 0] && p.data[23] == 1 && p.data[34] == 8 {
                echoes += 1;
                // Echo reply: swap MACs and IPs, type 0, fix the ICMP checksum.
                let d = &mut p.data;
                let (a, b) = (d[0..6].to_vec(), d[6..12].to_vec());
                d[0..6].copy_from_slice(&b);
                d[6..12].copy_from_slice(&a);
                let (s, t) = (d[26..30].to_vec(), d[30..34].to_vec());
                d[26..30].copy_from_slice(&t);
                d[30..34].copy_from_slice(&s);
                d[34] = 0;
                d[36..38].copy_from_slice(&[0, 0]);
                let c = !csum_fold(csum_add(0, &d[34..]));
                d[36..38].copy_from_slice(&c.to_be_bytes());
                let mut one = [p.clone()];
                assert_eq!(tap.send_batch(&mut one).unwrap(), 1);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = ping.join().unwrap();
    assert_eq!(echoes, 3);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3 received"), "ping: {text}");
    assert!(
        ns.exec("ip neigh show 10.9.1.2")
            .contains("02:00:00:00:00:77")
    );
}

#[test]
fn port_vxlan_encap_decap_between_ports_and_with_linux_vxlan() {
    let ns = Ns::new("vx");
    let (mut a, mut b) = ns.run(|| {
        let a = VxlanPort::new(
            "vxa",
            "127.0.0.1:4789".parse().unwrap(),
            "127.0.0.1:4790".parse().unwrap(),
        )
        .unwrap();
        let b = VxlanPort::new(
            "vxb",
            "127.0.0.1:4790".parse().unwrap(),
            "127.0.0.1:4789".parse().unwrap(),
        )
        .unwrap();
        (a, b)
    });
    let mut pk: Vec<Packet> = (0..40)
        .map(|i| Packet {
            tunnel_id: 0x10000 + i as u64,
            ..Packet::from_frame(&raw_frame(i, 100))
        })
        .collect();
    assert_eq!(a.send_batch(&mut pk[..32]).unwrap(), 32);
    assert_eq!(a.send_batch(&mut pk[32..]).unwrap(), 8);
    let mut got = Vec::new();
    let mut batch = PacketBatch::new();
    let end = Instant::now() + Duration::from_secs(3);
    while got.len() < 40 && Instant::now() < end {
        batch.clear();
        b.recv_batch(&mut batch).unwrap();
        got.extend(batch.iter().cloned());
    }
    assert_eq!(got.len(), 40);
    for (i, p) in got.iter().enumerate() {
        assert_eq!(p.data, raw_frame(i as u32, 100));
        assert_eq!(p.tunnel_id, 0x10000 + i as u64);
    }
    // A GSO frame leaves segmented, each segment complete.
    let mut f = tcp4(&pattern(3000), 1);
    let mut v = make_partial(&mut f, 14, 34, 16, false);
    v.gso_type = GSO_TCPV4;
    v.gso_size = 1000;
    v.hdr_len = 54;
    assert_eq!(
        b.send_batch(&mut [Packet {
            data: f,
            vnet: v,
            tunnel_id: 9
        }])
        .unwrap(),
        1
    );
    let mut segs = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    while segs.len() < 3 && Instant::now() < end {
        batch.clear();
        a.recv_batch(&mut batch).unwrap();
        segs.extend(batch.iter().cloned());
    }
    assert_eq!(segs.len(), 3);
    for s in &segs {
        assert_eq!(s.tunnel_id, 9);
        check_frame(&s.data);
    }

    drop((a, b));

    // Interop: the kernel's own VXLAN device (VNI 42) in namespace x, our port in y.
    let y = Ns::new("vy");
    ns.exec(&format!(
        "ip link add fxu0 type veth peer name fxu0 netns {}",
        y.0
    ));
    ns.exec("ip addr add 10.9.3.1/24 dev fxu0");
    ns.exec("ip link set fxu0 up");
    y.exec("ip addr add 10.9.3.2/24 dev fxu0");
    y.exec("ip link set fxu0 up");
    ns.exec(
        "ip link add fxvx0 type vxlan id 42 remote 10.9.3.2 local 10.9.3.1 dstport 4789 nolearning",
    );
    ns.exec("ip link set fxvx0 address 02:00:00:00:00:42 up");
    ns.exec("ip addr add 10.9.2.1/24 dev fxvx0");
    let mut c = y.run(|| {
        VxlanPort::new(
            "vxc",
            "10.9.3.2:4789".parse().unwrap(),
            "10.9.3.1:4789".parse().unwrap(),
        )
        .unwrap()
    });
    let name = ns.0.clone();
    let _ping = std::thread::spawn(move || {
        Command::new("ip")
            .args([
                "netns", "exec", &name, "ping", "-c", "2", "-W", "1", "10.9.2.2",
            ])
            .output()
    });
    // kernel -> us: its ARP request for 10.9.2.2, VNI 42.
    let end = Instant::now() + Duration::from_secs(5);
    let mut arp = None;
    while arp.is_none() && Instant::now() < end {
        batch.clear();
        c.recv_batch(&mut batch).unwrap();
        arp = batch
            .iter()
            .find(|p| p.data.len() >= 42 && p.data[12..14] == [8, 6])
            .cloned();
        std::thread::sleep(Duration::from_millis(2));
    }
    let arp = arp.expect("ARP from the kernel's vxlan device");
    assert_eq!(arp.tunnel_id, 42);
    assert_eq!(arp.data[6..12], [2, 0, 0, 0, 0, 0x42]);
    // us -> kernel: the ARP reply, VNI 42; the kernel learns the neighbour.
    let me = [2, 0, 0, 0, 0, 0x43];
    let mut reply = Vec::new();
    reply.extend_from_slice(&arp.data[6..12]);
    reply.extend_from_slice(&me);
    reply.extend_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
    reply.extend_from_slice(&me);
    reply.extend_from_slice(&[10, 9, 2, 2]);
    reply.extend_from_slice(&arp.data[6..12]);
    reply.extend_from_slice(&[10, 9, 2, 1]);
    assert_eq!(
        c.send_batch(&mut [Packet {
            tunnel_id: 42,
            ..Packet::from_frame(&reply)
        }])
        .unwrap(),
        1
    );
    let end = Instant::now() + Duration::from_secs(3);
    while !ns
        .exec("ip neigh show 10.9.2.2")
        .contains("02:00:00:00:00:43")
    {
        assert!(
            Instant::now() < end,
            "kernel vxlan did not take our ARP reply"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// Real peers through the forwarder: iperf3 (TCP, offloads on) and trafgen (64-byte UDP).
// They print what they measured (run with --release --nocapture for numbers).

fn start_forwarder(
    t: &Topo,
) -> (
    Arc<AtomicBool>,
    std::thread::JoinHandle<fuxi_dataplane::port::fwd::FwdStats>,
) {
    let mut p1 = open(&t.sw, "p1");
    let mut p2 = open(&t.sw, "p2");
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let busy = std::env::var_os("FUXI_FWD_BUSY").is_some();
    let h = std::thread::spawn(move || forward_pair(&mut p1, &mut p2, &s2, busy).unwrap());
    (stop, h)
}

#[test]
fn port_afpacket_iperf3_through_forwarder() {
    let t = Topo::new();
    let (stop, fwd) = start_forwarder(&t);
    let ping = t.h1.exec("ping -c 50 -i 0.01 -q 10.9.0.2");
    assert!(ping.contains(" 0% packet loss"), "ping: {ping}");
    eprintln!(
        "ping via AF_PACKET forwarder: {}",
        ping.lines().last().unwrap_or("")
    );
    let name = t.h2.0.clone();
    let mut srv = Command::new("ip")
        .args(["netns", "exec", &name, "iperf3", "-s", "-1", "-p", "5201"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = t.h1.exec("iperf3 -c 10.9.0.2 -p 5201 -t 2 -J");
    let _ = srv.wait();
    stop.store(true, Ordering::Relaxed);
    let st = fwd.join().unwrap();
    let key = "\"sum_received\":";
    let i = out.find(key).expect("iperf3 json");
    let bps: f64 = out[i..]
        .split("\"bits_per_second\":")
        .nth(1)
        .unwrap()
        .split([',', '}'])
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    eprintln!(
        "iperf3 tcp x1 via AF_PACKET forwarder: {:.2} Gbit/s, {st:?}",
        bps / 1e9
    );
    assert!(bps > 1e8, "iperf3 too slow: {bps}");
}

#[test]
fn port_afpacket_trafgen_64b_through_forwarder() {
    let t = Topo::new();
    let (stop, fwd) = start_forwarder(&t);
    let cfg = std::env::temp_dir().join(format!("fxp{}-udp64.cfg", std::process::id()));
    std::fs::write(
        &cfg,
        "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(saddr=10.9.0.1, daddr=10.9.0.2, ttl=64), udp(sp=4000, dp=9), fill(0x00, 22) }\n",
    )
    .unwrap();
    let d0 = counter(&t.h2, "eth0", "rx_packets");
    let s0 = counter(&t.h1, "eth0", "tx_packets");
    let secs = 2;
    let name = t.h1.0.clone();
    let _ = Command::new("ip")
        .args([
            "netns",
            "exec",
            &name,
            "timeout",
            "-s",
            "INT",
            &secs.to_string(),
            "trafgen",
            "-o",
            "eth0",
            "-i",
        ])
        .arg(&cfg)
        .args(["-P", "1", "--no-sock-mem", "-Q", "-C"])
        .output()
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let st = fwd.join().unwrap();
    let _ = std::fs::remove_file(&cfg);
    let sent = counter(&t.h1, "eth0", "tx_packets") - s0;
    let got = counter(&t.h2, "eth0", "rx_packets") - d0;
    eprintln!(
        "trafgen 64B via AF_PACKET forwarder: sent {sent}, delivered {got} ({:.0} kpps), {st:?}",
        got as f64 / secs as f64 / 1e3
    );
    assert!(got > 1000, "too few delivered: {got} of {sent}");
    assert!(st.a_to_b >= got);
}

#[test]
fn port_afpacket_tx_ring_sends_batches_and_gso() {
    let t = Topo::new();
    let cfg = AfPacketConfig {
        tx_ring_frames: 16,
        ..AfPacketConfig::default()
    };
    let mut p1 =
        t.sw.run(move || AfPacketPort::open_with("p1", &cfg))
            .unwrap();
    let mut e1 = open(&t.h1, "eth0");
    // More frames than the ring holds, in batches: all arrive, in order.
    for round in 0..5u32 {
        send_all(
            &mut p1,
            (round * 32..round * 32 + 32).map(|i| raw_frame(i, 60 + i as usize)),
        );
    }
    let (got, _) = recv_marked(&mut e1, 160, Duration::from_secs(5));
    assert_eq!(got, (0..160).collect::<Vec<_>>());
    assert_eq!(p1.stats().tx_packets, 160);
    // A GSO super-frame through the ring arrives at h1 (veth keeps it one GSO frame,
    // which e1 receives with its vnet header): segmented in software there, every byte
    // is there and every checksum right.
    let mut f = tcp4(&pattern(3000), 1);
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    let mut v = make_partial(&mut f, 14, 34, 16, false);
    v.gso_type = GSO_TCPV4;
    v.gso_size = 1000;
    v.hdr_len = 54;
    let mut pk = [Packet {
        data: f,
        vnet: v,
        tunnel_id: 0,
    }];
    assert_eq!(p1.send_batch(&mut pk).unwrap(), 1);
    let mut batch = PacketBatch::new();
    let mut bytes = Vec::new();
    let end = Instant::now() + Duration::from_secs(3);
    while bytes.len() < 3000 && Instant::now() < end {
        batch.clear();
        e1.recv_batch(&mut batch).unwrap();
        for p in batch.as_mut_slice() {
            if p.data.len() > 54 && p.data[23] == 6 {
                let mut segs = Vec::new();
                offload::software_offload(p, &mut segs).unwrap();
                for s in segs {
                    bytes.extend(check_frame(&s.data).1);
                }
            }
        }
    }
    assert_eq!(bytes, pattern(3000));
}

/// Whether `fd` is readable now (poll with no wait).
#[allow(unsafe_code)]
fn readable(fd: std::os::fd::RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd, count 1, no wait.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

/// Two VXLAN ports to two remotes share one UDP socket on 127.0.0.1:4789: each gets only
/// its remote's datagrams whichever of them reads the socket (the other's wait in its
/// inbox, and its descriptor turns readable), a third sender's are dropped and counted,
/// both send from the shared socket, a remote taken twice is refused, and the socket
/// closes with its last port.
#[test]
fn port_vxlan_ports_share_one_socket_demultiplexed_by_remote() {
    use std::net::UdpSocket;
    let ns = format!("fnvx{}", std::process::id() % 100_000);
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    sh(&format!("ip netns add {ns}"));
    sh(&format!("ip -n {ns} link set lo up"));
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
        }
    }
    let _del = Del(ns.clone());
    netns::run_in(&ns, || {
        let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let local = sa("127.0.0.1:4789");
        let mut a = VxlanPort::new("vxa", local, sa("127.0.0.2:4789")).unwrap();
        let mut b = VxlanPort::new("vxb", local, sa("127.0.0.3:4789")).unwrap();
        assert!(a.shares_socket_with(&b));
        assert_eq!(a.local_addr().unwrap(), local);
        let again = VxlanPort::new("vxa2", local, sa("127.0.0.2:4789"));
        assert_eq!(
            again.err().map(|e| e.kind()),
            Some(std::io::ErrorKind::AddrInUse)
        );
        // Peers: .2 and .3 (the remotes), .4 (nobody's), each from its own port.
        let p2 = UdpSocket::bind("127.0.0.2:4789").unwrap();
        let p3 = UdpSocket::bind("127.0.0.3:40000").unwrap();
        let p4 = UdpSocket::bind("127.0.0.4:4789").unwrap();
        let mut d = Vec::new();
        for i in 0..3 {
            vxlan::encap(2, &raw_frame(i, 60), &mut d);
            p2.send_to(&d, local).unwrap();
            vxlan::encap(3, &raw_frame(10 + i, 60), &mut d);
            p3.send_to(&d, local).unwrap();
        }
        vxlan::encap(4, &raw_frame(20, 60), &mut d);
        p4.send_to(&d, local).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // a reads the whole socket: keeps .2's, queues .3's for b, drops .4's.
        let mut batch = PacketBatch::new();
        assert_eq!(a.recv_batch(&mut batch).unwrap(), 3);
        let got: Vec<(u64, Vec<u8>)> = batch
            .iter()
            .map(|p| (p.tunnel_id, p.data.clone()))
            .collect();
        let want: Vec<(u64, Vec<u8>)> = (0..3).map(|i| (2, raw_frame(i, 60))).collect();
        assert_eq!(got, want);
        assert_eq!(a.stats().rx_dropped, 1);
        assert!(!readable(a.as_raw_fd().unwrap()), "a: nothing left");
        assert!(readable(b.as_raw_fd().unwrap()), "b was not woken");
        batch.clear();
        assert_eq!(b.recv_batch(&mut batch).unwrap(), 3);
        let got: Vec<(u64, Vec<u8>)> = batch
            .iter()
            .map(|p| (p.tunnel_id, p.data.clone()))
            .collect();
        let want: Vec<(u64, Vec<u8>)> = (0..3).map(|i| (3, raw_frame(10 + i, 60))).collect();
        assert_eq!(got, want);
        assert_eq!(b.stats().rx_packets, 3);
        assert!(!readable(b.as_raw_fd().unwrap()), "b: still readable");
        // Sending: from the shared socket to each port's remote.
        let mut one = [Packet {
            tunnel_id: 77,
            ..Packet::from_frame(&raw_frame(5, 60))
        }];
        assert_eq!(a.send_batch(&mut one).unwrap(), 1);
        assert_eq!(b.send_batch(&mut one).unwrap(), 1);
        let mut buf = [0u8; 2048];
        p2.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        p3.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let (n, from) = p2.recv_from(&mut buf).unwrap();
        assert_eq!(from, local);
        assert_eq!(
            vxlan::decap(&buf[..n]).map(|(v, f)| (v, f.to_vec())),
            Some((77, raw_frame(5, 60)))
        );
        // b sends to 127.0.0.3:4789, where nobody listens; p3 (port 40000) gets nothing,
        // but a peer on .3:4789 would: bind one now and send again.
        let p3b = UdpSocket::bind("127.0.0.3:4789").unwrap();
        p3b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        assert_eq!(b.send_batch(&mut one).unwrap(), 1);
        let (n, from) = p3b.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (8 + 60, local));
        // A port gone frees its remote; the last one frees the socket.
        drop(a);
        let c = VxlanPort::new("vxc", local, sa("127.0.0.2:4789")).unwrap();
        assert!(c.shares_socket_with(&b));
        drop((b, c));
        assert!(UdpSocket::bind(local).is_ok(), "socket still open");
    })
    .unwrap();
}
