//! The hot-path packet parser: one pass over an Ethernet frame that fills a [`FlowKey`] with
//! every field the frame carries and records where each layer starts ([`Layout`]), so that
//! actions can rewrite headers in place.
//!
//! Zero-copy, no allocation, and no panics: every header is length-checked once by taking a
//! fixed-size array reference, and a truncated or malformed header ends the parse with the
//! layers before it filled in. Action execution and checksums live in the pipeline, not here.

use super::key::{ETH_TYPE_NONE, Field, FlowKey, OFPVID_PRESENT, exthdr, frag};

/// Ethernet types the parser knows.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// ARP.
    pub const ARP: u16 = 0x0806;
    /// Reverse ARP (parsed like ARP).
    pub const RARP: u16 = 0x8035;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
    pub const QINQ: u16 = 0x88a8;
    /// Pre-standard QinQ tag some switches still send.
    pub const QINQ_OLD: u16 = 0x9100;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// MPLS unicast.
    pub const MPLS: u16 = 0x8847;
    /// MPLS multicast.
    pub const MPLS_MCAST: u16 = 0x8848;
    /// Provider backbone bridging I-TAG (802.1ah).
    pub const PBB: u16 = 0x88e7;
}

/// IP protocol numbers the parser knows.
pub mod ipproto {
    /// IPv6 hop-by-hop options.
    pub const HOPOPTS: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating security payload.
    pub const ESP: u8 = 50;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 no next header.
    pub const NONE: u8 = 59;
    /// IPv6 destination options.
    pub const DSTOPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// Which layers the parser reached, as bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Layers(pub u16);

impl Layers {
    /// A complete Ethernet header.
    pub const ETH: u16 = 1 << 0;
    /// At least one VLAN tag.
    pub const VLAN: u16 = 1 << 1;
    /// Two or more VLAN tags.
    pub const QINQ: u16 = 1 << 2;
    /// An MPLS label stack entry.
    pub const MPLS: u16 = 1 << 3;
    /// An Ethernet/IPv4 ARP packet.
    pub const ARP: u16 = 1 << 4;
    /// A valid IPv4 header.
    pub const IPV4: u16 = 1 << 5;
    /// A valid IPv6 header.
    pub const IPV6: u16 = 1 << 6;
    /// A TCP header.
    pub const TCP: u16 = 1 << 7;
    /// A UDP header.
    pub const UDP: u16 = 1 << 8;
    /// An SCTP header.
    pub const SCTP: u16 = 1 << 9;
    /// An ICMPv4 header.
    pub const ICMPV4: u16 = 1 << 10;
    /// An ICMPv6 header.
    pub const ICMPV6: u16 = 1 << 11;
    /// A PBB I-TAG.
    pub const PBB: u16 = 1 << 12;

    /// Whether every bit of `bits` is set.
    #[inline]
    pub fn has(self, bits: u16) -> bool {
        self.0 & bits == bits
    }

    /// Whether an L4 header was parsed.
    #[inline]
    pub fn has_l4(self) -> bool {
        self.0 & (Self::TCP | Self::UDP | Self::SCTP | Self::ICMPV4 | Self::ICMPV6) != 0
    }
}

/// Where the layers of a parsed packet start (byte offsets from the frame start).
/// [`Layout::NONE`] marks a layer that is absent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Layout {
    /// Layers reached.
    pub layers: Layers,
    /// Offset of the outer VLAN tag's TPID (12 when tagged).
    pub vlan: u16,
    /// Offset of the Ethernet type field that names the L3 protocol (after all tags).
    pub eth_type: u16,
    /// Offset of the first MPLS label stack entry.
    pub mpls: u16,
    /// Offset of the network header (IPv4, IPv6, ARP, PBB I-TAG).
    pub l3: u16,
    /// Offset of the transport header.
    pub l4: u16,
    /// Offset of the transport payload.
    pub l7: u16,
}

impl Layout {
    /// Marks an absent layer.
    pub const NONE: u16 = u16::MAX;

    const EMPTY: Layout = Layout {
        layers: Layers(0),
        vlan: Self::NONE,
        eth_type: Self::NONE,
        mpls: Self::NONE,
        l3: Self::NONE,
        l4: Self::NONE,
        l7: Self::NONE,
    };
}

impl Default for Layout {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// What the port tells the parser about a packet besides its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct RxMeta {
    /// OpenFlow port number the packet came in on.
    pub in_port: u32,
    /// Physical port under `in_port` (equal to it for physical ports).
    pub in_phy_port: u32,
    /// Tunnel id (VNI/key) if the packet was decapsulated from a tunnel, else 0.
    pub tunnel_id: u64,
    /// Pipeline metadata to start with (0 for a received packet).
    pub metadata: u64,
}

impl RxMeta {
    /// Meta for a packet received on a physical port.
    pub fn port(in_port: u32) -> RxMeta {
        RxMeta {
            in_port,
            in_phy_port: in_port,
            ..RxMeta::default()
        }
    }
}

/// A parsed packet: its key and its layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Parsed {
    /// Every field the packet has.
    pub key: FlowKey,
    /// Where the layers start.
    pub layout: Layout,
    /// The key words the packet may have non-zero (bit `i`: word `i`); every other word is
    /// zero. OVS's miniflow map: the exact-match cache hashes and compares only these. A
    /// superset (the words of the layers the parser reached), a function of the key alone
    /// in practice, but only its soundness matters: a word outside it is zero.
    pub map: u32,
}

/// Key words each bit of [`Layers`] may write (bit `i` of the table: layer bit `i`).
const LAYER_WORDS: [u32; 13] = {
    const fn w(words: &[usize]) -> u32 {
        let mut m = 0;
        let mut i = 0;
        while i < words.len() {
            m |= 1 << words[i];
            i += 1;
        }
        m
    }
    [
        w(&[3, 4, 6]),                      // ETH: addresses, type, vid, pcp
        w(&[4, 6]),                         // VLAN
        w(&[17]),                           // QINQ: vlan_inner
        w(&[15, 16, 17]),                   // MPLS
        w(&[5, 7, 8]),                      // ARP
        w(&[5, 6, 17]),                     // IPV4: addresses, proto/tos, ttl/frag
        w(&[6, 9, 10, 11, 12, 15, 16, 17]), // IPV6
        w(&[6, 17]),                        // TCP: ports, flags
        w(&[6]),                            // UDP
        w(&[6]),                            // SCTP
        w(&[8]),                            // ICMPV4
        w(&[7, 8, 13, 14]),                 // ICMPV6 with ND
        w(&[16]),                           // PBB
    ]
};

/// [`LAYER_WORDS`] for every value of 8 layer bits starting at `from`.
const fn layer_map_table<const N: usize>(from: usize) -> [u32; N] {
    let mut t = [0u32; N];
    let mut v = 0;
    while v < N {
        let mut m = 0;
        let mut b = 0;
        while b < 8 && from + b < LAYER_WORDS.len() {
            if v & (1 << b) != 0 {
                m |= LAYER_WORDS[from + b];
            }
            b += 1;
        }
        t[v] = m;
        v += 1;
    }
    t
}

static MAP_LO: [u32; 256] = layer_map_table::<256>(0);
static MAP_HI: [u32; 32] = layer_map_table::<32>(8);

/// The key words a packet that reached `layers` (with this metadata) may have non-zero.
#[inline(always)]
fn words_of(layers: Layers, meta: &RxMeta) -> u32 {
    let l = usize::from(layers.0);
    meta_words(meta) | MAP_LO[l & 0xff] | MAP_HI[(l >> 8) & 0x1f]
}

/// The words of [`words_of`] that the metadata decides (in_port's word always).
#[inline(always)]
fn meta_words(meta: &RxMeta) -> u32 {
    1 | (u32::from(meta.metadata != 0) << 1) | (u32::from(meta.tunnel_id != 0) << 2)
}

/// [`words_of`]'s layer words, at compile time.
const fn layer_words(layers: u16) -> u32 {
    let lo = layer_map_table::<256>(0);
    let hi = layer_map_table::<32>(8);
    let l = layers as usize;
    lo[l & 0xff] | hi[(l >> 8) & 0x1f]
}

/// The layer words of the fast path's two shapes.
const UDP_WORDS: u32 = layer_words(Layers::ETH | Layers::IPV4 | Layers::UDP);
const TCP_WORDS: u32 = layer_words(Layers::ETH | Layers::IPV4 | Layers::TCP);

#[inline(always)]
fn arr<const N: usize>(p: &[u8], off: usize) -> Option<&[u8; N]> {
    p.get(off..)?.first_chunk::<N>()
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

#[inline(always)]
fn be32(b: [u8; 4]) -> u32 {
    u32::from_be_bytes(b)
}

#[inline(always)]
fn mac(b: &[u8]) -> u64 {
    match b.first_chunk::<6>() {
        Some(m) => u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]]),
        None => 0,
    }
}

#[inline(always)]
fn be64(b: &[u8; 8]) -> u64 {
    u64::from_be_bytes(*b)
}

#[inline(always)]
fn be128(b: &[u8; 16]) -> u128 {
    u128::from_be_bytes(*b)
}

// Packed word writers for the hot path; positions must agree with `key.rs`'s layout (checked
// by the tests, which compare against `FlowKey::set`).
const W_ETH_DST_TYPE: usize = 3;
const W_ETH_SRC_VID: usize = 4;
const W_NW_ADDRS: usize = 5;
const W_TP_PROTO: usize = 6;
const W_TTL_FLAGS: usize = 17;
// `parse_fast` writes the key as an array literal in this order.
const _: () = assert!(
    W_ETH_DST_TYPE == 3
        && W_ETH_SRC_VID == 4
        && W_NW_ADDRS == 5
        && W_TP_PROTO == 6
        && W_TTL_FLAGS == 17
        && super::key::KEY_WORDS == 18
);

/// Parses an Ethernet frame. Never panics, never allocates; a frame that is cut short or
/// malformed is parsed up to its last valid layer.
pub fn parse(packet: &[u8], meta: RxMeta) -> Parsed {
    let mut out = Parsed::default();
    parse_into(packet, meta, &mut out);
    out
}

/// [`parse`] into a caller-owned [`Parsed`] (overwritten entirely). The fast path is
/// inlined into every caller (the batch loop's is the hot one), the general parser is not.
#[inline(always)]
pub fn parse_into(packet: &[u8], meta: RxMeta, out: &mut Parsed) {
    if !parse_fast(packet, &meta, out) {
        parse_general(packet, meta, out);
    }
}

/// [`parse_into`], also returning `out.key.hash_map(out.map)` (the exact-match cache's
/// hash). On the fast path the hash is taken from the words just written, before they are
/// read back.
#[inline(always)]
pub fn parse_into_hashed(packet: &[u8], meta: RxMeta, out: &mut Parsed) -> u64 {
    if parse_fast(packet, &meta, out) {
        out.key.hash_map(out.map)
    } else {
        parse_general(packet, meta, out);
        out.key.hash_map(out.map)
    }
}

/// [`parse_into`] without the fast path for the common shape: every frame goes through the
/// general parser. Public for tests and fuzzing, which check that both paths agree.
#[doc(hidden)]
#[inline(never)]
pub fn parse_general(packet: &[u8], meta: RxMeta, out: &mut Parsed) {
    parse_layers(packet, &meta, out);
    out.map = words_of(out.layout.layers, &meta);
}

/// The common shape at fixed offsets: untagged Ethernet, IPv4 without options, not a
/// fragment, TCP or UDP whose header lies inside the datagram. Writes every word of the
/// key (and the layout and map) exactly as the general parser would and returns true, or
/// writes nothing and returns false for any other frame (the general parser then decides).
#[inline(always)]
fn parse_fast(p: &[u8], meta: &RxMeta, out: &mut Parsed) -> bool {
    // Ethernet (14) + IPv4 (20) + UDP (8); TCP's other 12 bytes are checked below.
    let Some(h) = p.first_chunk::<42>() else {
        return false;
    };
    // eth_type IPv4, version 4 with a 20-byte header, neither MF nor a fragment offset.
    if be16([h[12], h[13]]) != ethertype::IPV4
        || h[14] != 0x45
        || be16([h[20], h[21]]) & 0x3fff != 0
    {
        return false;
    }
    // The L4 header must end inside the datagram (Ethernet padding is not L4 data).
    let proto = h[23];
    let end = p
        .len()
        .min(14 + ipv4_total(p.len() - 14, be16([h[16], h[17]]), proto));
    let (l4_layer, l7, flags, words) = match proto {
        ipproto::UDP if end >= 42 => (Layers::UDP, 42u16, 0u64, UDP_WORDS),
        ipproto::TCP => {
            let Some(t) = arr::<2>(p, 46) else {
                return false;
            };
            let doff = usize::from(t[0] >> 4) * 4;
            if doff < 20 || end < 34 + doff {
                return false;
            }
            (
                Layers::TCP,
                (34 + doff) as u16,
                u64::from(be16(*t) & 0x0fff),
                TCP_WORDS,
            )
        }
        _ => return false,
    };
    let tos = h[15];
    let eth_dst = be64(h.first_chunk::<8>().unwrap_or(&[0; 8])) & !0xffff;
    let eth_src = be64(h[4..12].first_chunk::<8>().unwrap_or(&[0; 8])) << 16;
    let addrs = be64(h[26..34].first_chunk::<8>().unwrap_or(&[0; 8]));
    let ports = u64::from(be32([h[34], h[35], h[36], h[37]]));
    let tp = (ports << 32)
        | (u64::from(proto) << 24)
        | (u64::from(tos >> 2) << 16)
        | (u64::from(tos & 3) << 8);
    // Every word in one store each (no zeroing pass, no copy of a local key).
    out.key.w = [
        (u64::from(meta.in_port) << 32) | u64::from(meta.in_phy_port),
        meta.metadata,
        meta.tunnel_id,
        eth_dst | u64::from(ethertype::IPV4), // W_ETH_DST_TYPE
        eth_src,                              // W_ETH_SRC_VID (untagged: vid 0)
        addrs,                                // W_NW_ADDRS
        tp,                                   // W_TP_PROTO (vlan_pcp 0)
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        (u64::from(h[22]) << 56) | (flags << 16), // W_TTL_FLAGS: ttl, nw_frag 0, tcp_flags
    ];
    let layers = Layers(Layers::ETH | Layers::IPV4 | l4_layer);
    out.layout = Layout {
        layers,
        vlan: Layout::NONE,
        eth_type: 12,
        mpls: Layout::NONE,
        l3: 14,
        l4: 34,
        l7,
    };
    out.map = meta_words(meta) | words;
    true
}

#[inline(always)]
fn parse_layers(packet: &[u8], meta: &RxMeta, out: &mut Parsed) {
    // Offsets are u16: only the first 64 KiB can hold headers.
    let p = &packet[..packet.len().min(usize::from(u16::MAX))];
    out.key = FlowKey::ZERO;
    out.layout = Layout::EMPTY;
    let key = &mut out.key;
    let lay = &mut out.layout;
    key.w[0] = (u64::from(meta.in_port) << 32) | u64::from(meta.in_phy_port);
    key.w[1] = meta.metadata;
    key.w[2] = meta.tunnel_id;

    let Some(eth) = arr::<14>(p, 0) else { return };
    let mut eth_type = be16([eth[12], eth[13]]);
    let mut off = 12usize;
    lay.layers.0 |= Layers::ETH;
    // One 8-byte load each: dst is the top 48 bits of bytes 0..8, src the low 48 of 4..12.
    let dst = be64(eth.first_chunk::<8>().unwrap_or(&[0; 8])) >> 16;
    let src = be64(eth[4..12].first_chunk::<8>().unwrap_or(&[0; 8])) & 0xffff_ffff_ffff;
    let mut vid_pcp: (u64, u64) = (0, 0);

    // VLAN tags: the outer one gives vlan_vid/vlan_pcp, inner ones are skipped.
    while matches!(
        eth_type,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD
    ) {
        let Some(tag) = arr::<6>(p, off) else { break };
        if lay.layers.has(Layers::VLAN) {
            if !lay.layers.has(Layers::QINQ) {
                let tci = be16([tag[2], tag[3]]);
                let inner = (tci & 0xe000) | OFPVID_PRESENT | (tci & 0x0fff);
                key.set(Field::VlanInner, u128::from(inner));
            }
            lay.layers.0 |= Layers::QINQ;
        } else {
            lay.layers.0 |= Layers::VLAN;
            lay.vlan = off as u16;
            let tci = be16([tag[2], tag[3]]);
            vid_pcp = (
                u64::from((tci & 0x0fff) | OFPVID_PRESENT),
                u64::from(tci >> 13),
            );
        }
        off += 4;
        eth_type = be16([tag[4], tag[5]]);
    }
    // 802.3 length field: LLC/SNAP with a zero OUI carries an Ethernet type.
    if eth_type < 0x0600 {
        match arr::<10>(p, off) {
            Some(s) if s[2..8] == [0xaa, 0xaa, 0x03, 0, 0, 0] => {
                off += 8;
                eth_type = be16([s[8], s[9]]);
            }
            _ => eth_type = ETH_TYPE_NONE,
        }
    }
    lay.eth_type = off as u16;
    key.w[W_ETH_DST_TYPE] = (dst << 16) | u64::from(eth_type);
    key.w[W_ETH_SRC_VID] = (src << 16) | vid_pcp.0;
    key.w[W_TP_PROTO] = vid_pcp.1;
    let l3 = off + 2;

    match eth_type {
        ethertype::IPV4 => parse_ipv4(p, l3, key, lay),
        ethertype::IPV6 => parse_ipv6(p, l3, key, lay),
        ethertype::ARP | ethertype::RARP => parse_arp(p, l3, key, lay),
        ethertype::MPLS | ethertype::MPLS_MCAST => {
            if let Some(e) = arr::<4>(p, l3) {
                let lse = be32(*e);
                lay.layers.0 |= Layers::MPLS;
                lay.mpls = l3 as u16;
                key.set(Field::MplsLabel, u128::from(lse >> 12));
                key.set(Field::MplsTc, u128::from((lse >> 9) & 7));
                key.set(Field::MplsBos, u128::from((lse >> 8) & 1));
                key.set(Field::MplsTtl, u128::from(lse & 0xff));
            }
        }
        ethertype::PBB => {
            if let Some(t) = arr::<4>(p, l3) {
                lay.layers.0 |= Layers::PBB;
                lay.l3 = l3 as u16;
                key.set(Field::PbbIsid, u128::from(be32(*t) & 0x00ff_ffff));
            }
        }
        _ => {}
    }
}

#[inline(always)]
fn set_ip_common(key: &mut FlowKey, tos: u8, ttl: u8) {
    // IpProto, IpDscp, IpEcn share word 6 with the ports and vlan_pcp.
    let w = &mut key.w[W_TP_PROTO];
    *w |= (u64::from(tos >> 2) << 16) | (u64::from(tos & 3) << 8);
    key.set(Field::NwTtl, u128::from(ttl));
}

#[inline(always)]
fn set_ip_proto(key: &mut FlowKey, proto: u8) {
    let w = &mut key.w[W_TP_PROTO];
    *w = (*w & !(0xff << 24)) | (u64::from(proto) << 24);
}

/// An IPv4 datagram's length from its total length field. A TCP super-frame above 64 KiB
/// (BIG TCP: GSO from a device with `gso_ipv4_max_size` over 64 KiB) has 0 there, and is
/// the rest of the frame, as Linux reads it; no frame on a wire is that long.
#[inline(always)]
fn ipv4_total(rest: usize, tot_len: u16, proto: u8) -> usize {
    if tot_len == 0 && rest > 0xffff && proto == ipproto::TCP {
        rest
    } else {
        usize::from(tot_len)
    }
}

#[inline]
fn parse_ipv4(p: &[u8], l3: usize, key: &mut FlowKey, lay: &mut Layout) {
    let Some(h) = arr::<20>(p, l3) else { return };
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let total = ipv4_total(p.len() - l3, be16([h[2], h[3]]), h[9]);
    if h[0] >> 4 != 4 || ihl < 20 || p.len() < l3 + ihl || total < ihl {
        return;
    }
    lay.layers.0 |= Layers::IPV4;
    lay.l3 = l3 as u16;
    key.w[W_NW_ADDRS] = be64(h[12..20].first_chunk::<8>().unwrap_or(&[0; 8]));
    set_ip_common(key, h[1], h[8]);
    let proto = h[9];
    set_ip_proto(key, proto);
    let fo = be16([h[6], h[7]]);
    let offset = fo & 0x1fff;
    let more = fo & 0x2000 != 0;
    if more || offset != 0 {
        let mut f = frag::ANY;
        if offset != 0 {
            f |= frag::LATER;
        }
        key.set(Field::NwFrag, u128::from(f));
        if offset != 0 {
            return;
        }
    }
    // Ethernet padding past the datagram is not L4 data.
    let end = p.len().min(l3 + total);
    parse_l4(&p[..end], l3 + ihl, proto, false, key, lay);
}

fn parse_ipv6(p: &[u8], l3: usize, key: &mut FlowKey, lay: &mut Layout) {
    let Some(h) = arr::<40>(p, l3) else { return };
    if h[0] >> 4 != 6 {
        return;
    }
    lay.layers.0 |= Layers::IPV6;
    lay.l3 = l3 as u16;
    let vtf = be32([h[0], h[1], h[2], h[3]]);
    let tc = (vtf >> 20) as u8;
    key.set(Field::Ipv6Flabel, u128::from(vtf & 0x000f_ffff));
    key.set(
        Field::Ipv6Src,
        be128(h[8..24].first_chunk::<16>().unwrap_or(&[0; 16])),
    );
    key.set(
        Field::Ipv6Dst,
        be128(h[24..40].first_chunk::<16>().unwrap_or(&[0; 16])),
    );
    set_ip_common(key, tc, h[7]);
    let plen = usize::from(be16([h[4], h[5]]));
    // Payload length 0 is a jumbogram (or a GSO super-frame): take the whole frame.
    let end = if plen == 0 {
        p.len()
    } else {
        p.len().min(l3 + 40 + plen)
    };
    let p = &p[..end];

    let mut nh = h[6];
    let mut off = l3 + 40;
    let mut bits: u16 = 0;
    let mut rank = 0u8; // highest RFC 8200 position seen so far
    let mut first = true;
    let mut dest_seen = [false; 2]; // before routing, final
    loop {
        let this_rank;
        let len;
        let next;
        match nh {
            ipproto::NONE => {
                bits |= exthdr::NONEXT;
                break;
            }
            ipproto::ESP => {
                if bits & exthdr::ESP != 0 {
                    bits |= exthdr::UNREP;
                }
                bits |= exthdr::ESP;
                if rank > 5 {
                    bits |= exthdr::UNSEQ;
                }
                break;
            }
            ipproto::HOPOPTS | ipproto::ROUTING | ipproto::DSTOPTS => {
                let Some(e) = arr::<2>(p, off) else { break };
                let l = (usize::from(e[1]) + 1) * 8;
                if p.len() < off + l {
                    break;
                }
                next = e[0];
                len = l;
                let bit = match nh {
                    ipproto::HOPOPTS => exthdr::HOP,
                    ipproto::ROUTING => exthdr::ROUTER,
                    _ => exthdr::DEST,
                };
                this_rank = match nh {
                    ipproto::HOPOPTS => {
                        if !first {
                            bits |= exthdr::UNSEQ;
                        }
                        0
                    }
                    ipproto::ROUTING => 2,
                    _ => {
                        // A destination options header before any routing header is the
                        // first of the two allowed; any other is the final one.
                        if rank <= 1 && !dest_seen[0] && !dest_seen[1] {
                            dest_seen[0] = true;
                            1
                        } else {
                            if dest_seen[1] {
                                bits |= exthdr::UNREP;
                            }
                            dest_seen[1] = true;
                            6
                        }
                    }
                };
                if bit != exthdr::DEST && bits & bit != 0 {
                    bits |= exthdr::UNREP;
                }
                bits |= bit;
            }
            ipproto::FRAGMENT => {
                let Some(e) = arr::<8>(p, off) else { break };
                if bits & exthdr::FRAG != 0 {
                    bits |= exthdr::UNREP;
                }
                bits |= exthdr::FRAG;
                next = e[0];
                len = 8;
                this_rank = 3;
                let fo = be16([e[2], e[3]]);
                let offset = fo >> 3;
                let more = fo & 1 != 0;
                if more || offset != 0 {
                    let f = if offset != 0 {
                        frag::ANY | frag::LATER
                    } else {
                        frag::ANY
                    };
                    key.set(Field::NwFrag, u128::from(f));
                }
                if offset != 0 {
                    if this_rank < rank {
                        bits |= exthdr::UNSEQ;
                    }
                    nh = next;
                    break;
                }
            }
            ipproto::AH => {
                let Some(e) = arr::<2>(p, off) else { break };
                let l = (usize::from(e[1]) + 2) * 4;
                if p.len() < off + l {
                    break;
                }
                if bits & exthdr::AUTH != 0 {
                    bits |= exthdr::UNREP;
                }
                bits |= exthdr::AUTH;
                next = e[0];
                len = l;
                this_rank = 4;
            }
            _ => {
                set_ip_proto(key, nh);
                key.set(Field::Ipv6Exthdr, u128::from(bits));
                parse_l4(p, off, nh, true, key, lay);
                return;
            }
        }
        if this_rank < rank {
            bits |= exthdr::UNSEQ;
        }
        rank = rank.max(this_rank);
        first = false;
        nh = next;
        off += len;
    }
    // Stopped before an upper-layer header: ip_proto is the header we stopped at.
    set_ip_proto(key, nh);
    key.set(Field::Ipv6Exthdr, u128::from(bits));
}

fn parse_arp(p: &[u8], l3: usize, key: &mut FlowKey, lay: &mut Layout) {
    let Some(a) = arr::<28>(p, l3) else { return };
    // Ethernet hardware, IPv4 protocol addresses only.
    if a[0..6] != [0, 1, 8, 0, 6, 4] {
        return;
    }
    lay.layers.0 |= Layers::ARP;
    lay.l3 = l3 as u16;
    let spa = be32([a[14], a[15], a[16], a[17]]);
    let tpa = be32([a[24], a[25], a[26], a[27]]);
    key.w[W_NW_ADDRS] = (u64::from(spa) << 32) | u64::from(tpa);
    key.set(Field::ArpOp, u128::from(be16([a[6], a[7]])));
    key.set(Field::ArpSha, u128::from(mac(&a[8..14])));
    key.set(Field::ArpTha, u128::from(mac(&a[18..24])));
}

/// `p` ends at the end of the IP datagram.
#[inline(always)]
fn parse_l4(p: &[u8], l4: usize, proto: u8, v6: bool, key: &mut FlowKey, lay: &mut Layout) {
    let ports = |key: &mut FlowKey, h: &[u8]| {
        let sd = h.first_chunk::<4>().map_or(0, |b| be32(*b));
        key.w[W_TP_PROTO] |= u64::from(sd) << 32;
    };
    match proto {
        ipproto::TCP => {
            let Some(h) = arr::<20>(p, l4) else { return };
            let doff = usize::from(h[12] >> 4) * 4;
            if doff < 20 || p.len() < l4 + doff {
                return;
            }
            ports(key, h);
            key.set(Field::TcpFlags, u128::from(be16([h[12], h[13]]) & 0x0fff));
            lay.layers.0 |= Layers::TCP;
            lay.l4 = l4 as u16;
            lay.l7 = (l4 + doff) as u16;
        }
        ipproto::UDP => {
            let Some(h) = arr::<8>(p, l4) else { return };
            ports(key, h);
            lay.layers.0 |= Layers::UDP;
            lay.l4 = l4 as u16;
            lay.l7 = (l4 + 8) as u16;
        }
        ipproto::SCTP => {
            let Some(h) = arr::<12>(p, l4) else { return };
            ports(key, h);
            lay.layers.0 |= Layers::SCTP;
            lay.l4 = l4 as u16;
            lay.l7 = (l4 + 12) as u16;
        }
        ipproto::ICMP if !v6 => {
            let Some(h) = arr::<8>(p, l4) else { return };
            key.w[8] |= (u64::from(h[0]) << 8) | u64::from(h[1]);
            lay.layers.0 |= Layers::ICMPV4;
            lay.l4 = l4 as u16;
            lay.l7 = (l4 + 8) as u16;
        }
        ipproto::ICMPV6 if v6 => {
            let Some(h) = arr::<8>(p, l4) else { return };
            key.w[8] |= (u64::from(h[0]) << 8) | u64::from(h[1]);
            lay.layers.0 |= Layers::ICMPV6;
            lay.l4 = l4 as u16;
            lay.l7 = (l4 + 8) as u16;
            if matches!(h[0], 135 | 136) && h[1] == 0 {
                parse_nd(p, l4, h[0], key);
            }
        }
        _ => {}
    }
}

/// Neighbour solicitation (135) / advertisement (136): target and link-layer address option.
/// A malformed or repeated option makes the whole ND part invalid (all three fields zero).
fn parse_nd(p: &[u8], l4: usize, ty: u8, key: &mut FlowKey) {
    let Some(t) = arr::<16>(p, l4 + 8) else {
        return;
    };
    let target = be128(t);
    let mut sll = None;
    let mut tll = None;
    let mut off = l4 + 24;
    while off < p.len() {
        let Some(o) = arr::<2>(p, off) else { return };
        let len = usize::from(o[1]) * 8;
        if len == 0 || p.len() < off + len {
            return;
        }
        if len == 8 {
            let addr = Some(mac(&p[off + 2..off + 8]));
            match (o[0], ty) {
                (1, 135) => {
                    if sll.is_some() {
                        return;
                    }
                    sll = addr;
                }
                (2, 136) => {
                    if tll.is_some() {
                        return;
                    }
                    tll = addr;
                }
                _ => {}
            }
        }
        off += len;
    }
    key.set(Field::Ipv6NdTarget, target);
    key.set(Field::Ipv6NdSll, u128::from(sll.unwrap_or(0)));
    key.set(Field::Ipv6NdTll, u128::from(tll.unwrap_or(0)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_writers_agree_with_layout() {
        assert_eq!(Field::EthType.layout(), (W_ETH_DST_TYPE, 0, 16));
        assert_eq!(Field::EthDst.layout(), (W_ETH_DST_TYPE, 16, 48));
        assert_eq!(Field::EthSrc.layout(), (W_ETH_SRC_VID, 16, 48));
        assert_eq!(Field::VlanVid.layout(), (W_ETH_SRC_VID, 0, 16));
        assert_eq!(Field::Ipv4Src.layout(), (W_NW_ADDRS, 32, 32));
        assert_eq!(Field::Ipv4Dst.layout(), (W_NW_ADDRS, 0, 32));
        assert_eq!(Field::TcpSrc.layout(), (W_TP_PROTO, 48, 16));
        assert_eq!(Field::TcpDst.layout(), (W_TP_PROTO, 32, 16));
        assert_eq!(Field::IpProto.layout(), (W_TP_PROTO, 24, 8));
        assert_eq!(Field::IpDscp.layout(), (W_TP_PROTO, 16, 8));
        assert_eq!(Field::IpEcn.layout(), (W_TP_PROTO, 8, 8));
        assert_eq!(Field::VlanPcp.layout(), (W_TP_PROTO, 0, 8));
        assert_eq!(Field::Icmpv4Type.layout(), (8, 8, 8));
        assert_eq!(Field::Icmpv4Code.layout(), (8, 0, 8));
        assert_eq!(Field::NwTtl.layout(), (W_TTL_FLAGS, 56, 8));
        assert_eq!(Field::NwFrag.layout(), (W_TTL_FLAGS, 48, 8));
        assert_eq!(Field::TcpFlags.layout(), (W_TTL_FLAGS, 16, 16));
    }

    /// Ethernet/IPv4/UDP (60 bytes) or TCP (with `tcp_opt` option bytes) with a
    /// correct header checksum.
    fn frame(tcp: Option<usize>) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
        let l4 = match tcp {
            Some(opt) => {
                let mut t = vec![0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0];
                t.push((((20 + opt) / 4) << 4) as u8);
                t.extend([0x12, 0xff, 0xff, 0, 0, 0, 0]);
                t.resize(20 + opt, 1);
                t
            }
            None => vec![0x04, 0xd2, 0x00, 0x35, 0, 8, 0, 0],
        };
        let total = (20 + l4.len()) as u16;
        f.extend([0x45, 0xb9]);
        f.extend(total.to_be_bytes());
        f.extend([0, 1, 0x40, 0, 64, if tcp.is_some() { 6 } else { 17 }, 0, 0]);
        f.extend([10, 0, 0, 1, 10, 1, 2, 3]);
        f.extend(l4);
        f.resize(f.len().max(60), 0xab);
        f
    }

    fn agree(p: &[u8], meta: RxMeta) -> bool {
        let mut fast = Parsed::default();
        let mut general = Parsed::default();
        let took = parse_fast(p, &meta, &mut fast);
        parse_general(p, meta, &mut general);
        if took {
            assert_eq!(fast, general, "{p:02x?}");
        }
        let mut via = Parsed {
            key: FlowKey::ONES,
            map: u32::MAX,
            ..Parsed::default()
        };
        parse_into(p, meta, &mut via);
        assert_eq!(via, general, "{p:02x?}");
        took
    }

    /// The fast path takes the common shapes and gives exactly what the general parser
    /// gives, for every prefix of them and for every single-byte change of their headers
    /// (each header field's edge values: tags, other types and versions, options,
    /// fragments, short datagrams, TCP data offsets).
    #[test]
    fn fast_path_agrees_with_general_parser() {
        let meta = RxMeta {
            in_port: 7,
            in_phy_port: 9,
            tunnel_id: 0x55,
            metadata: 0x1234,
        };
        let frames = [
            frame(None),
            frame(Some(0)),
            frame(Some(12)),
            frame(Some(40)),
        ];
        let mut taken = 0;
        for f in &frames {
            assert!(agree(f, meta) && agree(f, RxMeta::port(1)), "{f:02x?}");
            for n in 0..f.len() {
                agree(&f[..n], meta);
            }
            for i in 0..f.len().min(60) {
                for v in [
                    0u8, 1, 2, 3, 4, 5, 6, 0x08, 0x11, 0x1f, 0x20, 0x40, 0x45, 0x46, 0x4f, 0x50,
                    0x80, 0x81, 0x86, 0xa0, 0xf0, 0xff,
                ] {
                    let mut g = f.clone();
                    g[i] = v;
                    taken += usize::from(agree(&g, meta));
                }
            }
        }
        assert!(taken > 1000, "fast path taken {taken} times");
        // Pseudo-random bytes over the fixed shape.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut g = frames[(x % 4) as usize].clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x >> 8) as usize % 54;
                g[i] = (x >> 32) as u8;
            }
            agree(&g, meta);
        }
    }

    #[test]
    fn empty_and_short_frames() {
        for n in 0..14 {
            let p = parse(&[0xffu8; 14][..n], RxMeta::port(3));
            assert_eq!(p.layout.layers, Layers(0));
            assert_eq!(p.key.get(Field::InPort), 3);
            assert_eq!(p.key.get(Field::EthType), 0);
        }
    }
}
