//! Action execution on bytes: a property test that header rewrites keep every checksum valid
//! (IPv4 header, TCP, UDP, ICMPv4, ICMPv6) and land where the parser reads them back.

use fuxi_dataplane::packet::{Field, Layers, RxMeta, parse};
use fuxi_dataplane::pipeline::DpAction;
use fuxi_dataplane::pipeline::exec::{
    FastActions, L4Csum, Recorder, crc32c, execute, execute_with,
};
use fuxi_dataplane::pipeline::meter::Meters;
use fuxi_dataplane::port::offload::{
    F_NEEDS_CSUM, VnetHdr, complete_checksum, refresh_partial_checksum,
};
use proptest::prelude::*;

use crate::parse::{Frame, L3, L4, frame_strategy};

fn sum16(data: &[u8], init: u32) -> u32 {
    let mut s = init;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// (checksum offset, pseudo-header sum or None for ICMPv4, l4 start, datagram end)
fn l4_info(b: &[u8]) -> Option<(usize, Option<u32>, usize, usize)> {
    let p = parse(b, RxMeta::port(1));
    let l = p.layout.layers;
    if !l.has_l4() || l.has(Layers::SCTP) {
        return None;
    }
    let l3 = usize::from(p.layout.l3);
    let l4 = usize::from(p.layout.l4);
    let proto = p.key.get(Field::IpProto) as u8;
    let (end, pseudo_addrs) = if l.has(Layers::IPV4) {
        (
            l3 + usize::from(u16::from_be_bytes([b[l3 + 2], b[l3 + 3]])),
            &b[l3 + 12..l3 + 20],
        )
    } else {
        (
            l3 + 40 + usize::from(u16::from_be_bytes([b[l3 + 4], b[l3 + 5]])),
            &b[l3 + 8..l3 + 40],
        )
    };
    let end = end.min(b.len());
    let at = if l.has(Layers::TCP) {
        l4 + 16
    } else if l.has(Layers::UDP) {
        l4 + 6
    } else {
        l4 + 2
    };
    let pseudo = if l.has(Layers::ICMPV4) {
        None
    } else {
        let mut ph = pseudo_addrs.to_vec();
        ph.extend(((end - l4) as u32).to_be_bytes());
        ph.extend([0, 0, 0, proto]);
        Some(sum16(&ph, 0))
    };
    Some((at, pseudo, l4, end))
}

fn fill(b: &mut [u8]) {
    let p = parse(b, RxMeta::port(1));
    if p.layout.layers.has(Layers::IPV4) {
        let l3 = usize::from(p.layout.l3);
        let ihl = usize::from(b[l3] & 15) * 4;
        b[l3 + 10..l3 + 12].fill(0);
        let c = !fold(sum16(&b[l3..l3 + ihl], 0));
        b[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    if let Some((at, pseudo, l4, end)) = l4_info(b) {
        b[at..at + 2].fill(0);
        let mut c = !fold(sum16(&b[l4..end], pseudo.unwrap_or(0)));
        if c == 0 && p.layout.layers.has(Layers::UDP) {
            c = 0xffff;
        }
        b[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
}

fn verify(b: &[u8]) -> Result<(), String> {
    let p = parse(b, RxMeta::port(1));
    if p.layout.layers.has(Layers::IPV4) {
        let l3 = usize::from(p.layout.l3);
        let ihl = usize::from(b[l3] & 15) * 4;
        if fold(sum16(&b[l3..l3 + ihl], 0)) != 0xffff {
            return Err("ipv4 header checksum".into());
        }
    }
    if let Some((at, pseudo, l4, end)) = l4_info(b) {
        // Zero is "no checksum" only for UDP; TCP, ICMP and SCTP may compute to it.
        if b[at..at + 2] == [0, 0] && p.layout.layers.has(Layers::UDP) {
            return Err("zero udp checksum".into());
        }
        if fold(sum16(&b[l4..end], pseudo.unwrap_or(0))) != 0xffff {
            return Err(format!("l4 checksum at {at}"));
        }
    }
    Ok(())
}

const REWRITABLE: [Field; 16] = [
    Field::EthSrc,
    Field::EthDst,
    Field::IpDscp,
    Field::IpEcn,
    Field::NwTtl,
    Field::Ipv4Src,
    Field::Ipv4Dst,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::Ipv6Flabel,
    Field::TcpSrc,
    Field::TcpDst,
    Field::UdpSrc,
    Field::UdpDst,
    Field::Icmpv4Type,
    Field::Icmpv6Code,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn rewrites_keep_checksums_valid(
        frame in frame_strategy(),
        edits in prop::collection::vec((0usize..REWRITABLE.len(), any::<u128>()), 1..6),
    ) {
        let mut b = frame.render();
        fill(&mut b);
        prop_assert_eq!(verify(&b), Ok(()));
        let before = parse(&b, RxMeta::port(1));
        let mut acts = Vec::new();
        let mut expect = before.key;
        for (i, v) in edits {
            let f = REWRITABLE[i];
            // Only fields the packet has (what the translation guarantees).
            let l = before.layout.layers;
            let ok = match f {
                Field::EthSrc | Field::EthDst => true,
                Field::IpDscp | Field::IpEcn | Field::NwTtl => {
                    l.has(Layers::IPV4) || l.has(Layers::IPV6)
                }
                Field::Ipv4Src | Field::Ipv4Dst => l.has(Layers::IPV4),
                Field::Ipv6Src | Field::Ipv6Dst | Field::Ipv6Flabel => l.has(Layers::IPV6),
                Field::TcpSrc | Field::TcpDst => l.has(Layers::TCP),
                Field::UdpSrc | Field::UdpDst => l.has(Layers::UDP),
                Field::Icmpv4Type => l.has(Layers::ICMPV4),
                _ => l.has(Layers::ICMPV6),
            };
            if ok {
                let v = v & f.max_value();
                acts.push(DpAction::SetField(f, v));
                expect.set(f, v);
            }
        }
        acts.push(DpAction::Output(2));
        let mut rec = Recorder::default();
        execute(&acts, &mut b, RxMeta::port(1), &Meters::default(), 0, &mut rec);
        let out = &rec.outputs[0].3;
        prop_assert_eq!(verify(out), Ok(()));
        let after = parse(out, RxMeta::port(1));
        prop_assert_eq!(after.key, expect);
    }
}

/// One's complement equality: 0x0000 and 0xffff are both zero.
fn same_sum(a: u16, b: u16) -> bool {
    a == b || (a | b == 0xffff && (a == 0 || b == 0))
}

const PARTIAL_REWRITABLE: [Field; 9] = [
    Field::EthDst,
    Field::NwTtl,
    Field::Ipv4Src,
    Field::Ipv4Dst,
    Field::Ipv6Src,
    Field::Ipv6Dst,
    Field::TcpSrc,
    Field::TcpDst,
    Field::UdpSrc,
];

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    })]

    /// CHECKSUM_PARTIAL (a vnet header's NEEDS_CSUM): the TCP/UDP checksum field holds the
    /// pseudo-header sum. After address and port rewrites it must hold the pseudo-header sum
    /// of the rewritten packet (what `refresh_partial_checksum` computes from scratch), and
    /// completing it must give a valid checksum.
    #[test]
    fn rewrites_keep_partial_checksums_partial(
        frame in frame_strategy(),
        edits in prop::collection::vec((0usize..PARTIAL_REWRITABLE.len(), any::<u128>()), 1..6),
    ) {
        let mut b = frame.render();
        let before = parse(&b, RxMeta::port(1));
        let l = before.layout.layers;
        prop_assume!(l.has(Layers::TCP) || l.has(Layers::UDP));
        let Some((at, _, l4, end)) = l4_info(&b) else { return Ok(()) };
        // The frame ends with the datagram (the offload sums to the frame's end).
        b.truncate(end);
        let vnet = VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: l4 as u16,
            csum_offset: (at - l4) as u16,
            ..VnetHdr::default()
        };
        fill(&mut b);
        refresh_partial_checksum(&mut b, &vnet).unwrap();
        let before = parse(&b, RxMeta::port(1));
        let csum = L4Csum::of(&before, true, vnet.csum_start, vnet.csum_offset);
        prop_assert_eq!(csum, L4Csum::Partial);
        let mut acts = Vec::new();
        for (i, v) in edits {
            let f = PARTIAL_REWRITABLE[i];
            let ok = match f {
                Field::EthDst | Field::NwTtl => true,
                Field::Ipv4Src | Field::Ipv4Dst => l.has(Layers::IPV4),
                Field::Ipv6Src | Field::Ipv6Dst => l.has(Layers::IPV6),
                Field::TcpSrc | Field::TcpDst => l.has(Layers::TCP),
                _ => l.has(Layers::UDP),
            };
            if ok {
                acts.push(DpAction::SetField(f, v & f.max_value()));
            }
        }
        acts.push(DpAction::Output(2));
        let mut rec = Recorder::default();
        execute_with(&acts, &mut b, &before, csum, &Meters::default(), 0, &mut rec);
        let mut out = rec.outputs.remove(0).3;
        let got = u16::from_be_bytes([out[at], out[at + 1]]);
        let mut fresh = out.clone();
        refresh_partial_checksum(&mut fresh, &vnet).unwrap();
        let want = u16::from_be_bytes([fresh[at], fresh[at + 1]]);
        prop_assert!(same_sum(got, want), "partial sum {:#06x}, want {:#06x}", got, want);
        let mut v = vnet;
        complete_checksum(&mut out, &mut v).unwrap();
        prop_assert_eq!(verify(&out), Ok(()));
    }
}

proptest! {
    /// The compact form of Ethernet rewrites and outputs does what the interpreter does;
    /// anything else has no compact form.
    #[test]
    fn fast_actions_equal_the_interpreter(
        frame in frame_strategy(),
        tunnel in 0u64..3,
        steps in prop::collection::vec((0u8..5, any::<u64>()), 0..7),
        cut in 0usize..80,
    ) {
        let mut b = frame.render();
        if cut < b.len() {
            b.truncate(cut);
        }
        let acts: Vec<DpAction> = steps
            .iter()
            .map(|&(k, v)| match k {
                0 => DpAction::SetField(Field::EthDst, u128::from(v & 0xffff_ffff_ffff)),
                1 => DpAction::SetField(Field::EthSrc, u128::from(v & 0xffff_ffff_ffff)),
                2 | 3 => DpAction::Output(v as u32 % 8),
                _ => DpAction::SetField(Field::Ipv4Dst, u128::from(v as u32)),
            })
            .collect();
        let compact = steps.len() <= FastActions::MAX && steps.iter().all(|&(k, _)| k < 4);
        let fast = FastActions::compile(&acts);
        prop_assert_eq!(fast.is_some(), compact);
        let Some(fast) = fast else { return Ok(()) };
        let meta = RxMeta { tunnel_id: tunnel, ..RxMeta::port(1) };
        let mut want = Recorder::default();
        let mut wb = b.clone();
        execute(&acts, &mut wb, meta, &Meters::default(), 0, &mut want);
        let mut got = Recorder::default();
        fast.run(&mut b, tunnel, &mut got);
        prop_assert_eq!(got, want);
        prop_assert_eq!(b, wb);
    }
}

/// 10.0.0.1 → 10.0.0.2 over Ethernet with `l4`, checksums filled.
fn v4_frame(l4: L4) -> Vec<u8> {
    let mut b = Frame {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        vlans: vec![],
        l3: L3::V4 {
            tos: 0,
            ttl: 64,
            frag: 0,
            opt_words: 0,
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            l4,
        },
    }
    .render();
    fill(&mut b);
    b
}

#[test]
fn partial_checksum_needs_matching_offsets() {
    let b = v4_frame(L4::Udp { sp: 1, dp: 2 });
    let p = parse(&b, RxMeta::port(1));
    assert_eq!(L4Csum::of(&p, true, 34, 6), L4Csum::Partial);
    assert_eq!(L4Csum::of(&p, false, 34, 6), L4Csum::Full);
    assert_eq!(L4Csum::of(&p, true, 34, 16), L4Csum::Full);
    assert_eq!(L4Csum::of(&p, true, 38, 6), L4Csum::Full);
}

#[test]
fn sctp_port_rewrite_recomputes_crc32c() {
    let mut b = v4_frame(L4::Sctp { sp: 1, dp: 2 });
    let mut rec = Recorder::default();
    let acts = [
        DpAction::SetField(Field::SctpDst, 3868),
        DpAction::Output(1),
    ];
    execute(
        &acts,
        &mut b,
        RxMeta::port(1),
        &Meters::default(),
        0,
        &mut rec,
    );
    let out = &rec.outputs[0].3;
    let l4 = 34;
    let mut copy = out[l4..].to_vec();
    let crc = u32::from_le_bytes([copy[8], copy[9], copy[10], copy[11]]);
    copy[8..12].fill(0);
    assert_eq!(crc32c(&copy), crc);
    assert_eq!(parse(out, RxMeta::port(1)).key.get(Field::SctpDst), 3868);
}

fn apply_one(b: &[u8], acts: &[DpAction]) -> Vec<u8> {
    let mut rec = Recorder::default();
    let mut acts = acts.to_vec();
    acts.push(DpAction::Output(1));
    execute(
        &acts,
        &mut b.to_vec(),
        RxMeta::port(1),
        &Meters::default(),
        0,
        &mut rec,
    );
    rec.outputs.remove(0).3
}

#[test]
fn neighbour_discovery_rewrites_keep_icmpv6_checksum() {
    let mut b = crate::parse::nd(135, &[(1, [0xaa, 0xbb, 0xcc, 0, 0, 1])]);
    fill(&mut b);
    assert_eq!(verify(&b), Ok(()));
    let out = apply_one(
        &b,
        &[
            DpAction::SetField(
                Field::Ipv6NdTarget,
                0xfe80_0000_0000_0000_0000_0000_0000_0042,
            ),
            DpAction::SetField(Field::Ipv6NdSll, 0x0200_0000_0077),
        ],
    );
    assert_eq!(verify(&out), Ok(()));
    let k = parse(&out, RxMeta::port(1)).key;
    assert_eq!(
        k.get(Field::Ipv6NdTarget),
        0xfe80_0000_0000_0000_0000_0000_0000_0042
    );
    assert_eq!(k.get(Field::Ipv6NdSll), 0x0200_0000_0077);
}

#[test]
fn arp_and_mpls_rewrites() {
    let arp = Frame {
        dst: [0xff; 6],
        src: [2, 0, 0, 0, 0, 1],
        vlans: vec![],
        l3: L3::Arp {
            op: 1,
            sha: [2, 0, 0, 0, 0, 1],
            spa: [10, 0, 0, 1],
            tha: [0; 6],
            tpa: [10, 0, 0, 2],
        },
    }
    .render();
    // An ARP responder's rewrite: op=2, swap addresses.
    let out = apply_one(
        &arp,
        &[
            DpAction::SetField(Field::ArpOp, 2),
            DpAction::SetField(Field::ArpTha, 0x0200_0000_0001),
            DpAction::SetField(Field::ArpTpa, 0x0a00_0001),
            DpAction::SetField(Field::ArpSha, 0x0200_0000_00fe),
            DpAction::SetField(Field::ArpSpa, 0x0a00_0002),
        ],
    );
    let k = parse(&out, RxMeta::port(1)).key;
    assert_eq!(k.get(Field::ArpOp), 2);
    assert_eq!(k.get(Field::ArpSpa), 0x0a00_0002);
    assert_eq!(k.get(Field::ArpTpa), 0x0a00_0001);
    assert_eq!(k.get(Field::ArpSha), 0x0200_0000_00fe);
    assert_eq!(k.get(Field::ArpTha), 0x0200_0000_0001);
    let mpls = Frame {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        vlans: vec![],
        l3: L3::Mpls {
            label: 16,
            tc: 0,
            bos: true,
            ttl: 10,
        },
    }
    .render();
    let out = apply_one(
        &mpls,
        &[
            DpAction::SetField(Field::MplsLabel, 1_000_000),
            DpAction::SetField(Field::MplsTc, 5),
            DpAction::SetField(Field::MplsTtl, 9),
        ],
    );
    let k = parse(&out, RxMeta::port(1)).key;
    assert_eq!(
        (
            k.get(Field::MplsLabel),
            k.get(Field::MplsTc),
            k.get(Field::MplsBos),
            k.get(Field::MplsTtl)
        ),
        (1_000_000, 5, 1, 9)
    );
}
