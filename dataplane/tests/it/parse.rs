//! Parser tests: behaviour per protocol on hand-made frames, a differential property test
//! against etherparse on generated frames, and truncation at every length.

use etherparse::{LinkExtHeader, LinkHeader, NetHeaders, PacketHeaders, TransportHeader};
use fuxi_dataplane::packet::key::{ETH_TYPE_NONE, exthdr, frag};
use fuxi_dataplane::packet::{Field, Layers, Layout, RxMeta, parse};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// A small frame generator: a description of a frame, rendered to bytes.

#[derive(Debug, Clone)]
pub struct Frame {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// (TPID, TCI), outer first.
    pub vlans: Vec<(u16, u16)>,
    pub l3: L3,
}

#[derive(Debug, Clone)]
pub enum L3 {
    Arp {
        op: u16,
        sha: [u8; 6],
        spa: [u8; 4],
        tha: [u8; 6],
        tpa: [u8; 4],
    },
    V4 {
        tos: u8,
        ttl: u8,
        frag: u8,
        opt_words: u8,
        src: [u8; 4],
        dst: [u8; 4],
        l4: L4,
    },
    V6 {
        tc: u8,
        flabel: u32,
        hlim: u8,
        src: [u8; 16],
        dst: [u8; 16],
        exts: Vec<u8>,
        l4: L4,
    },
    Mpls {
        label: u32,
        tc: u8,
        bos: bool,
        ttl: u8,
    },
    Other {
        ethertype: u16,
        payload: Vec<u8>,
    },
}

#[derive(Debug, Clone)]
pub enum L4 {
    Tcp {
        sp: u16,
        dp: u16,
        flags: u16,
        opt_words: u8,
    },
    Udp {
        sp: u16,
        dp: u16,
    },
    Sctp {
        sp: u16,
        dp: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
    },
    Raw {
        proto: u8,
        payload: Vec<u8>,
    },
}

impl L4 {
    fn proto(&self, v6: bool) -> u8 {
        match self {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Sctp { .. } => 132,
            L4::Icmp { .. } => {
                if v6 {
                    58
                } else {
                    1
                }
            }
            L4::Raw { proto, .. } => *proto,
        }
    }

    fn render(&self) -> Vec<u8> {
        let mut b = Vec::new();
        match self {
            L4::Tcp {
                sp,
                dp,
                flags,
                opt_words,
            } => {
                b.extend(sp.to_be_bytes());
                b.extend(dp.to_be_bytes());
                b.extend([0, 0, 0, 1, 0, 0, 0, 2]);
                let doff = 5 + u16::from(*opt_words);
                b.extend(((doff << 12) | (flags & 0x0fff)).to_be_bytes());
                b.extend([0xff, 0xff, 0, 0, 0, 0]);
                b.extend(std::iter::repeat_n(1u8, usize::from(*opt_words) * 4)); // NOPs
                b.extend(b"data");
            }
            L4::Udp { sp, dp } => {
                b.extend(sp.to_be_bytes());
                b.extend(dp.to_be_bytes());
                b.extend(12u16.to_be_bytes());
                b.extend([0, 0]);
                b.extend(b"data");
            }
            L4::Sctp { sp, dp } => {
                b.extend(sp.to_be_bytes());
                b.extend(dp.to_be_bytes());
                b.extend([0; 8]);
            }
            L4::Icmp { ty, code } => {
                b.extend([*ty, *code, 0, 0, 0, 1, 0, 2]);
                b.extend(b"ping");
            }
            L4::Raw { payload, .. } => b.extend(payload),
        }
        b
    }
}

/// The IPv6 extension headers the generator can place (in this canonical order).
pub const V6_EXTS: [u8; 5] = [0, 60, 43, 44, 51];

impl Frame {
    pub fn ethertype(&self) -> u16 {
        match &self.l3 {
            L3::Arp { .. } => 0x0806,
            L3::V4 { .. } => 0x0800,
            L3::V6 { .. } => 0x86dd,
            L3::Mpls { .. } => 0x8847,
            L3::Other { ethertype, .. } => *ethertype,
        }
    }

    pub fn render(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(self.dst);
        b.extend(self.src);
        for (tpid, tci) in &self.vlans {
            b.extend(tpid.to_be_bytes());
            b.extend(tci.to_be_bytes());
        }
        b.extend(self.ethertype().to_be_bytes());
        match &self.l3 {
            L3::Arp {
                op,
                sha,
                spa,
                tha,
                tpa,
            } => {
                b.extend([0, 1, 8, 0, 6, 4]);
                b.extend(op.to_be_bytes());
                b.extend(sha);
                b.extend(spa);
                b.extend(tha);
                b.extend(tpa);
            }
            L3::V4 {
                tos,
                ttl,
                frag,
                opt_words,
                src,
                dst,
                l4,
            } => {
                let payload = l4.render();
                let hl = 20 + usize::from(*opt_words) * 4;
                let total = (hl + payload.len()) as u16;
                b.push(0x40 | (hl / 4) as u8);
                b.push(*tos);
                b.extend(total.to_be_bytes());
                b.extend([0x12, 0x34]);
                let fo: u16 = match frag {
                    1 => 0x2000,      // first fragment: MF, offset 0
                    2 => 0x2000 | 10, // middle fragment
                    3 => 20,          // last fragment
                    _ => 0x4000,      // DF
                };
                b.extend(fo.to_be_bytes());
                b.push(*ttl);
                b.push(l4.proto(false));
                b.extend([0, 0]);
                b.extend(src);
                b.extend(dst);
                b.extend(std::iter::repeat_n(1u8, usize::from(*opt_words) * 4)); // NOP options
                b.extend(payload);
            }
            L3::V6 {
                tc,
                flabel,
                hlim,
                src,
                dst,
                exts,
                l4,
            } => {
                let mut payload = Vec::new();
                for (i, &e) in exts.iter().enumerate() {
                    let next = exts.get(i + 1).copied().unwrap_or(l4.proto(true));
                    match e {
                        44 => payload.extend([next, 0, 0, 0, 0, 0, 0, 7]),
                        51 => payload.extend([next, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0]),
                        _ => {
                            payload.extend([next, 1]);
                            payload.extend([0; 14]);
                        }
                    }
                }
                payload.extend(l4.render());
                let first = exts.first().copied().unwrap_or(l4.proto(true));
                let vtf = (6u32 << 28) | (u32::from(*tc) << 20) | (flabel & 0xfffff);
                b.extend(vtf.to_be_bytes());
                b.extend((payload.len() as u16).to_be_bytes());
                b.push(first);
                b.push(*hlim);
                b.extend(src);
                b.extend(dst);
                b.extend(payload);
            }
            L3::Mpls {
                label,
                tc,
                bos,
                ttl,
            } => {
                let lse = (label << 12) | (u32::from(*tc) << 9) | (u32::from(*bos) << 8);
                b.extend((lse | u32::from(*ttl)).to_be_bytes());
                b.extend([0x45, 0, 0, 20]);
            }
            L3::Other { payload, .. } => b.extend(payload),
        }
        b
    }
}

fn l4_strategy() -> impl Strategy<Value = L4> {
    prop_oneof![
        (any::<u16>(), any::<u16>(), any::<u16>(), 0u8..10).prop_map(
            |(sp, dp, flags, opt_words)| L4::Tcp {
                sp,
                dp,
                flags,
                opt_words
            }
        ),
        (any::<u16>(), any::<u16>()).prop_map(|(sp, dp)| L4::Udp { sp, dp }),
        (any::<u16>(), any::<u16>()).prop_map(|(sp, dp)| L4::Sctp { sp, dp }),
        (any::<u8>(), any::<u8>()).prop_map(|(ty, code)| L4::Icmp { ty, code }),
        (
            prop_oneof![Just(2u8), Just(47), Just(89), Just(103)],
            prop::collection::vec(any::<u8>(), 0..16)
        )
            .prop_map(|(proto, payload)| L4::Raw { proto, payload }),
    ]
}

pub fn frame_strategy() -> impl Strategy<Value = Frame> {
    let vlans = prop::collection::vec(
        (prop_oneof![Just(0x8100u16), Just(0x88a8)], any::<u16>()),
        0..3,
    );
    let l3 = prop_oneof![
        (
            any::<u16>(),
            any::<[u8; 6]>(),
            any::<[u8; 4]>(),
            any::<[u8; 6]>(),
            any::<[u8; 4]>()
        )
            .prop_map(|(op, sha, spa, tha, tpa)| L3::Arp {
                op,
                sha,
                spa,
                tha,
                tpa
            }),
        (
            any::<u8>(),
            any::<u8>(),
            0u8..4,
            0u8..4,
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            l4_strategy()
        )
            .prop_map(|(tos, ttl, frag, opt_words, src, dst, l4)| L3::V4 {
                tos,
                ttl,
                frag,
                opt_words,
                src,
                dst,
                l4
            }),
        (
            any::<u8>(),
            any::<u32>(),
            any::<u8>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            prop::collection::vec(any::<bool>(), 5),
            l4_strategy()
        )
            .prop_map(|(tc, flabel, hlim, src, dst, pick, l4)| {
                let exts = V6_EXTS
                    .iter()
                    .zip(&pick)
                    .filter(|(_, p)| **p)
                    .map(|(e, _)| *e);
                L3::V6 {
                    tc,
                    flabel,
                    hlim,
                    src,
                    dst,
                    exts: exts.collect(),
                    l4,
                }
            }),
        (0u32..(1 << 20), 0u8..8, any::<bool>(), any::<u8>()).prop_map(|(label, tc, bos, ttl)| {
            L3::Mpls {
                label,
                tc,
                bos,
                ttl,
            }
        }),
        // Any Ethernet II type but the tag protocol ids, which would make the payload a tag.
        (0x0600u16.., prop::collection::vec(any::<u8>(), 0..20))
            .prop_filter("a VLAN TPID is not an L3 type", |(t, _)| {
                ![0x8100, 0x88a8, 0x9100].contains(t)
            })
            .prop_map(|(ethertype, payload)| L3::Other { ethertype, payload }),
    ];
    (any::<[u8; 6]>(), any::<[u8; 6]>(), vlans, l3).prop_map(|(dst, src, vlans, l3)| Frame {
        dst,
        src,
        vlans,
        l3,
    })
}

fn mac(b: &[u8]) -> u128 {
    b.iter().fold(0u128, |a, &x| (a << 8) | u128::from(x))
}

// ---------------------------------------------------------------------------------------
// Differential test against etherparse.

/// Checks every field our key and etherparse's headers both describe.
/// Returns false if etherparse refused the frame (nothing compared).
fn check_against_etherparse(bytes: &[u8]) -> bool {
    let ours = parse(bytes, RxMeta::port(7));
    let k = &ours.key;
    let Ok(h) = PacketHeaders::from_ethernet_slice(bytes) else {
        return false;
    };
    let Some(LinkHeader::Ethernet2(eth)) = &h.link else {
        panic!("no ethernet")
    };
    assert_eq!(k.get(Field::EthDst), mac(&eth.destination));
    assert_eq!(k.get(Field::EthSrc), mac(&eth.source));
    let mut ethertype = eth.ether_type.0;
    let mut first_vlan = None;
    for ext in &h.link_exts {
        if let LinkExtHeader::Vlan(v) = ext {
            first_vlan.get_or_insert(v.clone());
            ethertype = v.ether_type.0;
        }
    }
    match first_vlan {
        Some(v) => {
            assert_eq!(
                k.get(Field::VlanVid),
                u128::from(v.vlan_id.value() | 0x1000)
            );
            assert_eq!(k.get(Field::VlanPcp), u128::from(v.pcp.value()));
        }
        None => assert_eq!(k.get(Field::VlanVid), 0),
    }
    if h.link_exts.len() < 3 {
        assert_eq!(k.get(Field::EthType), u128::from(ethertype));
    }
    let mut v6 = false;
    match &h.net {
        Some(NetHeaders::Ipv4(ip, _)) => {
            assert!(ours.layout.layers.has(Layers::IPV4));
            assert_eq!(k.get(Field::Ipv4Src), mac(&ip.source));
            assert_eq!(k.get(Field::Ipv4Dst), mac(&ip.destination));
            assert_eq!(k.get(Field::IpDscp), u128::from(ip.dscp.value()));
            assert_eq!(k.get(Field::IpEcn), u128::from(ip.ecn.value()));
            assert_eq!(k.get(Field::IpProto), u128::from(ip.protocol.0));
            assert_eq!(k.get(Field::NwTtl), u128::from(ip.time_to_live));
            let later = ip.fragment_offset.value() != 0;
            let any = later || ip.more_fragments;
            let f = k.get(Field::NwFrag) as u8;
            assert_eq!(f & frag::ANY != 0, any);
            assert_eq!(f & frag::LATER != 0, later);
            if later {
                assert!(!ours.layout.layers.has_l4());
            }
        }
        Some(NetHeaders::Ipv6(ip, exts)) => {
            v6 = true;
            assert!(ours.layout.layers.has(Layers::IPV6));
            assert_eq!(k.get(Field::Ipv6Src), mac(&ip.source));
            assert_eq!(k.get(Field::Ipv6Dst), mac(&ip.destination));
            assert_eq!(k.get(Field::Ipv6Flabel), u128::from(ip.flow_label.value()));
            assert_eq!(k.get(Field::IpDscp), u128::from(ip.traffic_class >> 2));
            assert_eq!(k.get(Field::IpEcn), u128::from(ip.traffic_class & 3));
            assert_eq!(k.get(Field::NwTtl), u128::from(ip.hop_limit));
            if let Ok(last) = exts.next_header(ip.next_header) {
                assert_eq!(k.get(Field::IpProto), u128::from(last.0));
            }
            let mut bits = 0;
            if exts.hop_by_hop_options.is_some() {
                bits |= exthdr::HOP;
            }
            if exts.destination_options.is_some() {
                bits |= exthdr::DEST;
            }
            if exts.routing.is_some() {
                bits |= exthdr::ROUTER;
            }
            if exts.fragment.is_some() {
                bits |= exthdr::FRAG;
            }
            if exts.auth.is_some() {
                bits |= exthdr::AUTH;
            }
            let ours_bits = k.get(Field::Ipv6Exthdr) as u16;
            assert_eq!(ours_bits & !(exthdr::NONEXT | exthdr::ESP), bits);
        }
        Some(NetHeaders::Arp(a)) => {
            assert!(ours.layout.layers.has(Layers::ARP));
            assert_eq!(k.get(Field::ArpOp), u128::from(a.operation.0));
            assert_eq!(k.get(Field::ArpSha), mac(a.sender_hw_addr()));
            assert_eq!(k.get(Field::ArpSpa), mac(a.sender_protocol_addr()));
            assert_eq!(k.get(Field::ArpTha), mac(a.target_hw_addr()));
            assert_eq!(k.get(Field::ArpTpa), mac(a.target_protocol_addr()));
        }
        None => {}
    }
    match &h.transport {
        Some(TransportHeader::Tcp(t)) => {
            assert!(ours.layout.layers.has(Layers::TCP));
            assert_eq!(k.get(Field::TcpSrc), u128::from(t.source_port));
            assert_eq!(k.get(Field::TcpDst), u128::from(t.destination_port));
            assert_eq!(usize::from(ours.layout.l7 - ours.layout.l4), t.header_len());
        }
        Some(TransportHeader::Udp(u)) => {
            assert!(ours.layout.layers.has(Layers::UDP));
            assert_eq!(k.get(Field::UdpSrc), u128::from(u.source_port));
            assert_eq!(k.get(Field::UdpDst), u128::from(u.destination_port));
        }
        Some(TransportHeader::Icmpv4(i)) => {
            assert!(!v6 && ours.layout.layers.has(Layers::ICMPV4));
            let b = i.to_bytes();
            assert_eq!(k.get(Field::Icmpv4Type), u128::from(b[0]));
            assert_eq!(k.get(Field::Icmpv4Code), u128::from(b[1]));
        }
        Some(TransportHeader::Icmpv6(i)) => {
            assert!(v6 && ours.layout.layers.has(Layers::ICMPV6));
            assert_eq!(k.get(Field::Icmpv6Type), u128::from(i.icmp_type.type_u8()));
            assert_eq!(k.get(Field::Icmpv6Code), u128::from(i.icmp_type.code_u8()));
        }
        _ => {}
    }
    // Offsets: l3 and l4 agree with etherparse's header lengths.
    if let (Some(LinkHeader::Ethernet2(_)), Some(net)) = (&h.link, &h.net)
        && ours.layout.l3 != Layout::NONE
    {
        let l2_len = 14 + 4 * h.link_exts.len();
        assert_eq!(usize::from(ours.layout.l3), l2_len);
        if ours.layout.l4 != Layout::NONE && h.transport.is_some() {
            let net_len = match net {
                NetHeaders::Ipv4(ip, e) => ip.header_len() + e.header_len(),
                NetHeaders::Ipv6(ip, e) => ip.header_len() + e.header_len(),
                NetHeaders::Arp(a) => a.packet_len(),
            };
            assert_eq!(usize::from(ours.layout.l4), l2_len + net_len);
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn agrees_with_etherparse(frame in frame_strategy()) {
        let bytes = frame.render();
        // Too many refusals fail the test (proptest's global reject limit).
        prop_assume!(check_against_etherparse(&bytes));
    }

    #[test]
    fn generated_frames_parse_as_described(frame in frame_strategy()) {
        let bytes = frame.render();
        let p = parse(&bytes, RxMeta::port(1));
        let k = &p.key;
        prop_assert_eq!(k.get(Field::EthType), u128::from(frame.ethertype()));
        match &frame.l3 {
            L3::V4 { frag: f, l4, .. } => {
                let later = *f >= 2;
                prop_assert_eq!(p.layout.layers.has_l4(), !later && !matches!(l4, L4::Raw { .. }));
            }
            L3::V6 { exts, l4, .. } => {
                prop_assert_eq!(k.get(Field::IpProto), u128::from(l4.proto(true)));
                prop_assert_eq!(p.layout.layers.has_l4(), !matches!(l4, L4::Raw { .. }));
                let bits = k.get(Field::Ipv6Exthdr) as u16;
                prop_assert_eq!(bits & (exthdr::UNREP | exthdr::UNSEQ), 0, "{:?}", exts);
            }
            L3::Mpls { label, tc, bos, ttl } => {
                prop_assert_eq!(k.get(Field::MplsLabel), u128::from(*label));
                prop_assert_eq!(k.get(Field::MplsTc), u128::from(*tc));
                prop_assert_eq!(k.get(Field::MplsBos), u128::from(*bos));
                prop_assert_eq!(k.get(Field::MplsTtl), u128::from(*ttl));
            }
            _ => {}
        }
    }

    #[test]
    fn every_truncation_parses_without_panic(frame in frame_strategy()) {
        let bytes = frame.render();
        let full = parse(&bytes, RxMeta::port(1)).layout.layers.0;
        for n in 0..=bytes.len() {
            fuxi_dataplane::fuzz::parse_packet(&bytes[..n]);
            let p = parse(&bytes[..n], RxMeta::port(1));
            prop_assert_eq!(p.key.nonzero_map() & !p.map, 0, "map {:#x} of {:?}", p.map, p.key);
            let part = p.layout.layers.0;
            // A prefix reaches no layer the whole frame does not.
            prop_assert_eq!(part & !full, 0, "prefix {} of {:02x?}", n, bytes);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        fuxi_dataplane::fuzz::parse_packet(&bytes);
        let mut b = bytes.clone();
        if b.len() > 14 {
            // Steer random bytes into the interesting ethertypes.
            for (i, et) in [0x0800u16, 0x86dd, 0x0806, 0x8100, 0x8847].iter().enumerate() {
                b[12..14].copy_from_slice(&et.to_be_bytes());
                if i == 0 && b.len() > 14 { b[14] = 0x45; }
                if i == 1 && b.len() > 14 { b[14] = 0x60; }
                fuxi_dataplane::fuzz::parse_packet(&b);
                let meta = RxMeta { metadata: u64::from(b[0] & 1), tunnel_id: u64::from(b[1] & 1), ..RxMeta::port(u32::from(b[2] & 1)) };
                let p = parse(&b, meta);
                prop_assert_eq!(p.key.nonzero_map() & !p.map, 0, "map {:#x} of {:?}", p.map, p.key);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Behaviour tests per protocol.

fn base(l3: L3) -> Frame {
    Frame {
        dst: [2, 0, 0, 0, 0, 2],
        src: [2, 0, 0, 0, 0, 1],
        vlans: vec![],
        l3,
    }
}

fn v4(l4: L4) -> L3 {
    L3::V4 {
        tos: 0xb9,
        ttl: 64,
        frag: 0,
        opt_words: 0,
        src: [10, 0, 0, 1],
        dst: [10, 0, 0, 2],
        l4,
    }
}

fn v6(exts: Vec<u8>, l4: L4) -> L3 {
    let mut src = [0u8; 16];
    src[0] = 0xfe;
    src[1] = 0x80;
    src[15] = 1;
    let mut dst = src;
    dst[15] = 2;
    L3::V6 {
        tc: 0x2e,
        flabel: 0xabcde,
        hlim: 255,
        src,
        dst,
        exts,
        l4,
    }
}

#[test]
fn ethernet_and_qinq_outer_tag() {
    let mut f = base(v4(L4::Udp { sp: 1, dp: 2 }));
    f.vlans = vec![(0x88a8, (5 << 13) | 100), (0x8100, (1 << 13) | 200)];
    let b = f.render();
    let p = parse(&b, RxMeta::port(4));
    assert_eq!(p.key.get(Field::InPort), 4);
    assert_eq!(p.key.get(Field::EthDst), 0x0200_0000_0002);
    assert_eq!(p.key.get(Field::EthSrc), 0x0200_0000_0001);
    assert_eq!(p.key.get(Field::VlanVid), 0x1000 | 100);
    assert_eq!(p.key.get(Field::VlanInner), (1 << 13) | 0x1000 | 200);
    assert_eq!(p.key.get(Field::VlanPcp), 5);
    assert_eq!(p.key.get(Field::EthType), 0x0800);
    assert!(
        p.layout
            .layers
            .has(Layers::ETH | Layers::VLAN | Layers::QINQ | Layers::IPV4)
    );
    assert_eq!(
        (p.layout.vlan, p.layout.eth_type, p.layout.l3),
        (12, 20, 22)
    );
    assert_eq!((p.layout.l4, p.layout.l7), (42, 50));
}

#[test]
fn untagged_has_no_vid_and_llc_without_snap_is_0x5ff() {
    let b = base(v4(L4::Udp { sp: 1, dp: 2 })).render();
    let p = parse(&b, RxMeta::port(1));
    assert_eq!(p.key.get(Field::VlanVid), 0);
    assert_eq!(p.layout.vlan, Layout::NONE);
    let f = base(L3::Other {
        ethertype: 0x0040,
        payload: vec![0x42, 0x42, 0x03, 0, 0, 0, 0, 0],
    });
    assert_eq!(
        parse(&f.render(), RxMeta::port(1)).key.get(Field::EthType),
        0x05ff
    );
    assert_eq!(ETH_TYPE_NONE, 0x05ff);
    // LLC/SNAP with a zero OUI names an Ethernet type.
    let f = base(L3::Other {
        ethertype: 0x0040,
        payload: vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06, 0, 0],
    });
    let p = parse(&f.render(), RxMeta::port(1));
    assert_eq!(p.key.get(Field::EthType), 0x0806);
}

#[test]
fn ipv4_tcp_fields() {
    let b = base(v4(L4::Tcp {
        sp: 12345,
        dp: 80,
        flags: 0x012,
        opt_words: 3,
    }))
    .render();
    let p = parse(&b, RxMeta::port(1));
    let k = p.key;
    assert_eq!(k.get(Field::Ipv4Src), 0x0a00_0001);
    assert_eq!(k.get(Field::Ipv4Dst), 0x0a00_0002);
    assert_eq!(k.get(Field::IpDscp), 0xb9 >> 2);
    assert_eq!(k.get(Field::IpEcn), 1);
    assert_eq!(k.get(Field::IpProto), 6);
    assert_eq!(k.get(Field::NwTtl), 64);
    assert_eq!(k.get(Field::TcpSrc), 12345);
    assert_eq!(k.get(Field::TcpDst), 80);
    assert_eq!(k.get(Field::TcpFlags), 0x012);
    assert_eq!(k.get(Field::NwFrag), 0);
    assert_eq!((p.layout.l3, p.layout.l4, p.layout.l7), (14, 34, 34 + 32));
}

#[test]
fn ipv4_options_are_skipped() {
    let mut l3 = v4(L4::Udp { sp: 53, dp: 5353 });
    if let L3::V4 { opt_words, .. } = &mut l3 {
        *opt_words = 10;
    }
    let p = parse(&base(l3).render(), RxMeta::port(1));
    assert_eq!(p.layout.l4, 14 + 60);
    assert_eq!(p.key.get(Field::UdpSrc), 53);
    assert_eq!(p.key.get(Field::UdpDst), 5353);
}

#[test]
fn ipv4_fragments_first_has_l4_later_does_not() {
    for (f, want_l4, bits) in [(1u8, true, frag::ANY), (2, false, 3), (3, false, 3)] {
        let mut l3 = v4(L4::Udp { sp: 7, dp: 9 });
        if let L3::V4 { frag, .. } = &mut l3 {
            *frag = f;
        }
        let p = parse(&base(l3).render(), RxMeta::port(1));
        assert_eq!(p.layout.layers.has(Layers::UDP), want_l4, "frag {f}");
        assert_eq!(p.key.get(Field::NwFrag), u128::from(bits));
        assert_eq!(p.key.get(Field::UdpSrc), if want_l4 { 7 } else { 0 });
        assert_eq!(p.key.get(Field::IpProto), 17);
    }
}

#[test]
fn ipv4_bad_header_stops_at_l2_and_padding_is_not_l4() {
    let mut b = base(v4(L4::Udp { sp: 7, dp: 9 })).render();
    b[14] = 0x44; // IHL 4
    let p = parse(&b, RxMeta::port(1));
    assert!(!p.layout.layers.has(Layers::IPV4));
    assert_eq!(p.key.get(Field::EthType), 0x0800);
    assert_eq!(p.key.get(Field::Ipv4Src), 0);
    // Total length says the datagram ends before the UDP header: frame padding is ignored.
    let mut b = base(v4(L4::Udp { sp: 7, dp: 9 })).render();
    b[16..18].copy_from_slice(&24u16.to_be_bytes());
    let p = parse(&b, RxMeta::port(1));
    assert!(p.layout.layers.has(Layers::IPV4) && !p.layout.layers.has(Layers::UDP));
}

/// A BIG TCP super-frame (IPv4 total length 0, over 64 KiB, as Linux sends it with
/// GSO above 64 KiB) is IPv4 and TCP; total length 0 on anything else stays a bad header.
#[test]
fn ipv4_big_tcp_total_length_zero() {
    let tcp = L4::Tcp {
        sp: 12345,
        dp: 80,
        flags: 0x010,
        opt_words: 0,
    };
    for (l4, big, ok) in [
        (tcp.clone(), 70_000, true),
        (tcp, 1000, false),
        (L4::Udp { sp: 7, dp: 9 }, 70_000, false),
    ] {
        let mut b = base(v4(l4)).render();
        b.resize(b.len() + big, 0x5a);
        b[16..18].copy_from_slice(&[0, 0]);
        let p = parse(&b, RxMeta::port(1));
        assert_eq!(p.layout.layers.has(Layers::IPV4), ok, "{big}");
        assert_eq!(p.layout.layers.has(Layers::TCP), ok, "{big}");
        assert_eq!(p.key.get(Field::TcpDst), if ok { 80 } else { 0 });
    }
}

#[test]
fn icmpv4_type_code() {
    let p = parse(
        &base(v4(L4::Icmp { ty: 8, code: 0 })).render(),
        RxMeta::port(1),
    );
    assert_eq!(p.key.get(Field::Icmpv4Type), 8);
    assert_eq!(p.key.get(Field::Icmpv4Code), 0);
    let p = parse(
        &base(v4(L4::Icmp { ty: 3, code: 4 })).render(),
        RxMeta::port(1),
    );
    assert_eq!(
        (p.key.get(Field::Icmpv4Type), p.key.get(Field::Icmpv4Code)),
        (3, 4)
    );
}

#[test]
fn sctp_ports() {
    let p = parse(
        &base(v4(L4::Sctp { sp: 2905, dp: 2906 })).render(),
        RxMeta::port(1),
    );
    assert!(p.layout.layers.has(Layers::SCTP));
    assert_eq!(
        (p.key.get(Field::SctpSrc), p.key.get(Field::SctpDst)),
        (2905, 2906)
    );
}

#[test]
fn arp_fields() {
    let f = base(L3::Arp {
        op: 2,
        sha: [0, 1, 2, 3, 4, 5],
        spa: [192, 168, 0, 1],
        tha: [6, 7, 8, 9, 10, 11],
        tpa: [192, 168, 0, 2],
    });
    let p = parse(&f.render(), RxMeta::port(1));
    let k = p.key;
    assert!(p.layout.layers.has(Layers::ARP));
    assert_eq!(k.get(Field::ArpOp), 2);
    assert_eq!(k.get(Field::ArpSpa), 0xc0a8_0001);
    assert_eq!(k.get(Field::ArpTpa), 0xc0a8_0002);
    assert_eq!(k.get(Field::ArpSha), 0x0001_0203_0405);
    assert_eq!(k.get(Field::ArpTha), 0x0607_0809_0a0b);
    assert_eq!(k.get(Field::IpProto), 0);
}

#[test]
fn ipv6_udp_and_exthdr_bits() {
    let p = parse(
        &base(v6(vec![], L4::Udp { sp: 546, dp: 547 })).render(),
        RxMeta::port(1),
    );
    let k = p.key;
    assert_eq!(k.get(Field::Ipv6Src) >> 112, 0xfe80);
    assert_eq!(k.get(Field::Ipv6Dst) & 0xff, 2);
    assert_eq!(k.get(Field::Ipv6Flabel), 0xabcde);
    assert_eq!(k.get(Field::IpDscp), 0x2e >> 2);
    assert_eq!(k.get(Field::IpEcn), 2);
    assert_eq!(k.get(Field::NwTtl), 255);
    assert_eq!(k.get(Field::UdpDst), 547);
    assert_eq!(k.get(Field::Ipv6Exthdr), 0);
    assert_eq!(p.layout.l4, 54);

    let f = base(v6(
        vec![0, 60, 43, 44, 51],
        L4::Tcp {
            sp: 1,
            dp: 2,
            flags: 2,
            opt_words: 0,
        },
    ));
    let p = parse(&f.render(), RxMeta::port(1));
    let bits = exthdr::HOP | exthdr::DEST | exthdr::ROUTER | exthdr::FRAG | exthdr::AUTH;
    assert_eq!(p.key.get(Field::Ipv6Exthdr), u128::from(bits));
    assert_eq!(p.key.get(Field::IpProto), 6);
    assert_eq!(p.key.get(Field::TcpDst), 2);
    assert_eq!(
        p.key.get(Field::NwFrag),
        0,
        "atomic fragment (offset 0, no MF)"
    );
    assert_eq!(p.layout.l4, 54 + 16 * 3 + 8 + 16);
}

#[test]
fn ipv6_unexpected_sequence_and_repeat() {
    // Fragment before routing: out of order.
    let f = base(v6(vec![44, 43], L4::Udp { sp: 1, dp: 2 }));
    let bits = parse(&f.render(), RxMeta::port(1))
        .key
        .get(Field::Ipv6Exthdr) as u16;
    assert_eq!(bits, exthdr::FRAG | exthdr::ROUTER | exthdr::UNSEQ);
    // Hop-by-hop not first.
    let f = base(v6(vec![60, 0], L4::Udp { sp: 1, dp: 2 }));
    let bits = parse(&f.render(), RxMeta::port(1))
        .key
        .get(Field::Ipv6Exthdr) as u16;
    assert_eq!(bits & exthdr::UNSEQ, exthdr::UNSEQ);
    // Two routing headers.
    let f = base(v6(vec![43, 43], L4::Udp { sp: 1, dp: 2 }));
    let bits = parse(&f.render(), RxMeta::port(1))
        .key
        .get(Field::Ipv6Exthdr) as u16;
    assert_eq!(bits, exthdr::ROUTER | exthdr::UNREP);
    // Destination options before and after routing: allowed.
    let f = base(v6(vec![60, 43, 60], L4::Udp { sp: 1, dp: 2 }));
    let bits = parse(&f.render(), RxMeta::port(1))
        .key
        .get(Field::Ipv6Exthdr) as u16;
    assert_eq!(bits, exthdr::DEST | exthdr::ROUTER);
    // Three destination options: repeated.
    let f = base(v6(vec![60, 43, 60, 60], L4::Udp { sp: 1, dp: 2 }));
    let bits = parse(&f.render(), RxMeta::port(1))
        .key
        .get(Field::Ipv6Exthdr) as u16;
    assert_eq!(bits & exthdr::UNREP, exthdr::UNREP);
}

#[test]
fn ipv6_no_next_header_and_esp() {
    let f = base(v6(
        vec![0],
        L4::Raw {
            proto: 59,
            payload: vec![],
        },
    ));
    let p = parse(&f.render(), RxMeta::port(1));
    assert_eq!(
        p.key.get(Field::Ipv6Exthdr),
        u128::from(exthdr::HOP | exthdr::NONEXT)
    );
    assert_eq!(p.key.get(Field::IpProto), 59);
    let f = base(v6(
        vec![],
        L4::Raw {
            proto: 50,
            payload: vec![0; 16],
        },
    ));
    let p = parse(&f.render(), RxMeta::port(1));
    assert_eq!(p.key.get(Field::Ipv6Exthdr), u128::from(exthdr::ESP));
    assert_eq!(p.key.get(Field::IpProto), 50);
    assert!(!p.layout.layers.has_l4());
}

#[test]
fn ipv6_later_fragment_has_no_l4() {
    let mut b = base(v6(vec![44], L4::Udp { sp: 1, dp: 2 })).render();
    // Fragment offset 8 (×8 bytes), M=0.
    b[54 + 2..54 + 4].copy_from_slice(&(8u16 << 3).to_be_bytes());
    let p = parse(&b, RxMeta::port(1));
    assert_eq!(
        p.key.get(Field::NwFrag),
        u128::from(frag::ANY | frag::LATER)
    );
    assert_eq!(p.key.get(Field::IpProto), 17);
    assert!(!p.layout.layers.has_l4());
    assert_eq!(p.key.get(Field::Ipv6Exthdr), u128::from(exthdr::FRAG));
}

pub fn nd(ty: u8, opts: &[(u8, [u8; 6])]) -> Vec<u8> {
    let mut f = base(v6(
        vec![],
        L4::Raw {
            proto: 58,
            payload: vec![],
        },
    ));
    let mut payload = vec![ty, 0, 0, 0, 0x60, 0, 0, 0];
    payload.extend([0x20, 0x01, 0x0d, 0xb8]);
    payload.extend([0; 11]);
    payload.push(9);
    for (t, m) in opts {
        payload.extend([*t, 1]);
        payload.extend(m);
    }
    if let L3::V6 { l4, .. } = &mut f.l3 {
        *l4 = L4::Raw { proto: 58, payload };
    }
    f.render()
}

#[test]
fn icmpv6_neighbour_discovery() {
    let sll = [0xaa, 0xbb, 0xcc, 0, 0, 1];
    let p = parse(&nd(135, &[(1, sll)]), RxMeta::port(1));
    let k = p.key;
    assert!(p.layout.layers.has(Layers::ICMPV6));
    assert_eq!(k.get(Field::Icmpv6Type), 135);
    assert_eq!(
        k.get(Field::Ipv6NdTarget),
        0x2001_0db8_0000_0000_0000_0000_0000_0009
    );
    assert_eq!(k.get(Field::Ipv6NdSll), 0xaabb_cc00_0001);
    assert_eq!(k.get(Field::Ipv6NdTll), 0);
    let p = parse(&nd(136, &[(2, sll)]), RxMeta::port(1));
    assert_eq!(p.key.get(Field::Ipv6NdTll), 0xaabb_cc00_0001);
    assert_eq!(p.key.get(Field::Ipv6NdSll), 0);
    // A TLL option in a solicitation is ignored.
    let p = parse(&nd(135, &[(2, sll)]), RxMeta::port(1));
    assert_eq!(
        (p.key.get(Field::Ipv6NdSll), p.key.get(Field::Ipv6NdTll)),
        (0, 0)
    );
    assert_ne!(p.key.get(Field::Ipv6NdTarget), 0);
    // A repeated SLL option makes the ND part invalid.
    let p = parse(&nd(135, &[(1, sll), (1, sll)]), RxMeta::port(1));
    assert_eq!(p.key.get(Field::Ipv6NdTarget), 0);
    assert_eq!(p.key.get(Field::Icmpv6Type), 135);
    // A zero-length option is invalid too.
    let mut b = nd(135, &[(1, sll)]);
    let n = b.len();
    b[n - 7] = 0;
    assert_eq!(parse(&b, RxMeta::port(1)).key.get(Field::Ipv6NdTarget), 0);
}

#[test]
fn mpls_top_label() {
    let f = base(L3::Mpls {
        label: 0xfffff,
        tc: 5,
        bos: true,
        ttl: 63,
    });
    let p = parse(&f.render(), RxMeta::port(1));
    assert!(p.layout.layers.has(Layers::MPLS));
    assert_eq!(p.layout.mpls, 14);
    assert_eq!(p.key.get(Field::MplsLabel), 0xfffff);
    assert_eq!(p.key.get(Field::MplsTc), 5);
    assert_eq!(p.key.get(Field::MplsBos), 1);
    assert_eq!(p.key.get(Field::MplsTtl), 63);
    assert_eq!(p.layout.l3, Layout::NONE);
}

#[test]
fn pbb_isid_and_given_metadata() {
    let f = base(L3::Other {
        ethertype: 0x88e7,
        payload: vec![0x80, 0x12, 0x34, 0x56],
    });
    let meta = RxMeta {
        in_port: 5,
        in_phy_port: 6,
        tunnel_id: 0x1234,
        metadata: 9,
    };
    let p = parse(&f.render(), meta);
    assert_eq!(p.key.get(Field::PbbIsid), 0x123456);
    assert_eq!(p.key.get(Field::InPort), 5);
    assert_eq!(p.key.get(Field::InPhyPort), 6);
    assert_eq!(p.key.get(Field::TunnelId), 0x1234);
    assert_eq!(p.key.get(Field::Metadata), 9);
}

/// Rough speed check (run with `--ignored --nocapture`, ideally `--release`); the real
/// numbers belong to the criterion benches.
#[test]
#[ignore]
fn parse_speed() {
    let frames = [
        base(v4(L4::Tcp {
            sp: 1,
            dp: 80,
            flags: 0x10,
            opt_words: 3,
        }))
        .render(),
        base(v6(vec![], L4::Udp { sp: 1, dp: 2 })).render(),
        base(L3::Arp {
            op: 1,
            sha: [1; 6],
            spa: [1; 4],
            tha: [0; 6],
            tpa: [2; 4],
        })
        .render(),
    ];
    for f in &frames {
        let n = 2_000_000u32;
        let t = std::time::Instant::now();
        let mut acc = 0u64;
        let mut out = fuxi_dataplane::packet::Parsed::default();
        for i in 0..n {
            fuxi_dataplane::packet::parse_into(std::hint::black_box(f), RxMeta::port(i), &mut out);
            acc = acc.wrapping_add(out.key.w[6]);
        }
        eprintln!("{} bytes: {:?}/packet ({acc})", f.len(), t.elapsed() / n);
    }
}
