//! The flow key: every OpenFlow 1.3 match field a packet carries, packed into a fixed array of
//! 64-bit words, and [`Field`], the table saying where each field lives in it.
//!
//! A mask is the same struct ([`FlowMask`]), so masking, masked comparison and masked hashing
//! are plain word-wise loops; the classifier and the caches only ever touch the words a mask
//! has bits in. Fields that can never be present in the same packet share storage, as the
//! OpenFlow prerequisites (and so every match) keep them apart: IPv4 and ARP addresses, the
//! TCP/UDP/SCTP ports, the ICMPv4 and ICMPv6 type and code, and ARP SHA/THA with the IPv6 ND
//! SLL/TLL.
//!
//! Parsing lives in `parse.rs`; matching against tables in the classifier.

use std::fmt;

/// Number of 64-bit words in a [`FlowKey`].
pub const KEY_WORDS: usize = 18;

/// Every bit of a word map (bit `i`: word `i`) that names a key word.
pub const ALL_WORDS: u32 = (1 << KEY_WORDS) - 1;

/// The words of an Ethernet (IPv4, TCP/UDP/SCTP) packet without metadata or tunnel id, in
/// this order: in_port, eth_dst/type, eth_src/vid, IPv4 addresses, proto/tos/ports/pcp,
/// ttl/frag/tcp_flags. A key whose map is inside [`COMMON_WORDS`] is hashed and compared
/// by straight-line code over these six.
pub const COMMON: [usize; 6] = [0, 3, 4, 5, 6, 17];
/// [`COMMON`] as a word map.
pub const COMMON_WORDS: u32 = 1 | 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 17;

/// OFPVID_PRESENT: set in `vlan_vid` when the packet has a VLAN tag.
pub const OFPVID_PRESENT: u16 = 0x1000;
/// OFPVID_NONE: `vlan_vid` of an untagged packet.
pub const OFPVID_NONE: u16 = 0x0000;

/// `eth_type` given to 802.3 frames that carry no Ethernet type (no LLC/SNAP), as OVS does.
pub const ETH_TYPE_NONE: u16 = 0x05ff;

/// Bits of the `ipv6_exthdr` pseudo-field (OpenFlow 1.3 §7.2.3.10, `ofp_ipv6exthdr_flags`).
pub mod exthdr {
    /// "No next header" encountered.
    pub const NONEXT: u16 = 1 << 0;
    /// Encrypted Sec Payload header present.
    pub const ESP: u16 = 1 << 1;
    /// Authentication header present.
    pub const AUTH: u16 = 1 << 2;
    /// 1 or 2 dest headers present.
    pub const DEST: u16 = 1 << 3;
    /// Fragment header present.
    pub const FRAG: u16 = 1 << 4;
    /// Router header present.
    pub const ROUTER: u16 = 1 << 5;
    /// Hop-by-hop header present.
    pub const HOP: u16 = 1 << 6;
    /// Unexpected repeats encountered.
    pub const UNREP: u16 = 1 << 7;
    /// Unexpected sequencing encountered.
    pub const UNSEQ: u16 = 1 << 8;
}

/// Bits of the internal `nw_frag` field.
pub mod frag {
    /// The packet is an IP fragment (first or later).
    pub const ANY: u8 = 1 << 0;
    /// The packet is a fragment with a non-zero offset: it has no L4 header.
    pub const LATER: u8 = 1 << 1;
}

macro_rules! fields {
    ($( $(#[$doc:meta])* $name:ident = $oxm:expr, $text:literal, $word:literal, $shift:literal, $slot:literal, $bits:literal; )*) => {
        /// A field of the flow key. The first forty are the OpenFlow 1.3 OXM basic fields, in
        /// OXM field-number order; the rest are internal fields the pipeline needs but no
        /// OpenFlow 1.3 match can name.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
        pub enum Field {
            $( $(#[$doc])* $name, )*
        }

        impl Field {
            /// Every field, OXM ones first in field-number order.
            pub const ALL: &'static [Field] = &[$(Field::$name,)*];

            /// The OXM field number (`OFPXMT_OFB_*`), or `None` for an internal field.
            pub const fn oxm(self) -> Option<u8> {
                match self { $( Field::$name => $oxm, )* }
            }

            /// The name ovs-ofctl prints for the field (OpenFlow 1.3 names where OVS has none).
            pub const fn name(self) -> &'static str {
                match self { $( Field::$name => $text, )* }
            }

            /// Where the field is stored: (word, shift, slot width in bits). 128-bit fields
            /// take two words, high half first, shift 0.
            pub const fn layout(self) -> (usize, u32, u32) {
                match self { $( Field::$name => ($word, $shift, $slot), )* }
            }

            /// Width of the field's meaningful value in bits (OXM width).
            pub const fn bits(self) -> u32 {
                match self { $( Field::$name => $bits, )* }
            }
        }
    };
}

fields! {
    /// Switch input port.
    InPort = Some(0), "in_port", 0, 32, 32, 32;
    /// Switch physical input port.
    InPhyPort = Some(1), "in_phy_port", 0, 0, 32, 32;
    /// Metadata passed between tables.
    Metadata = Some(2), "metadata", 1, 0, 64, 64;
    /// Ethernet destination address.
    EthDst = Some(3), "eth_dst", 3, 16, 48, 48;
    /// Ethernet source address.
    EthSrc = Some(4), "eth_src", 4, 16, 48, 48;
    /// Ethernet frame type (after any VLAN tags).
    EthType = Some(5), "eth_type", 3, 0, 16, 16;
    /// VLAN id of the outer tag, with [`OFPVID_PRESENT`].
    VlanVid = Some(6), "vlan_vid", 4, 0, 16, 13;
    /// VLAN priority of the outer tag.
    VlanPcp = Some(7), "vlan_pcp", 6, 0, 8, 3;
    /// IP DSCP (6 bits in ToS field).
    IpDscp = Some(8), "ip_dscp", 6, 16, 8, 6;
    /// IP ECN (2 bits in ToS field).
    IpEcn = Some(9), "ip_ecn", 6, 8, 8, 2;
    /// IP protocol (IPv4) or upper-layer next header (IPv6).
    IpProto = Some(10), "ip_proto", 6, 24, 8, 8;
    /// IPv4 source address.
    Ipv4Src = Some(11), "ipv4_src", 5, 32, 32, 32;
    /// IPv4 destination address.
    Ipv4Dst = Some(12), "ipv4_dst", 5, 0, 32, 32;
    /// TCP source port.
    TcpSrc = Some(13), "tcp_src", 6, 48, 16, 16;
    /// TCP destination port.
    TcpDst = Some(14), "tcp_dst", 6, 32, 16, 16;
    /// UDP source port.
    UdpSrc = Some(15), "udp_src", 6, 48, 16, 16;
    /// UDP destination port.
    UdpDst = Some(16), "udp_dst", 6, 32, 16, 16;
    /// SCTP source port.
    SctpSrc = Some(17), "sctp_src", 6, 48, 16, 16;
    /// SCTP destination port.
    SctpDst = Some(18), "sctp_dst", 6, 32, 16, 16;
    /// ICMPv4 type.
    Icmpv4Type = Some(19), "icmpv4_type", 8, 8, 8, 8;
    /// ICMPv4 code.
    Icmpv4Code = Some(20), "icmpv4_code", 8, 0, 8, 8;
    /// ARP opcode.
    ArpOp = Some(21), "arp_op", 7, 0, 16, 16;
    /// ARP source IPv4 address.
    ArpSpa = Some(22), "arp_spa", 5, 32, 32, 32;
    /// ARP target IPv4 address.
    ArpTpa = Some(23), "arp_tpa", 5, 0, 32, 32;
    /// ARP source hardware address.
    ArpSha = Some(24), "arp_sha", 7, 16, 48, 48;
    /// ARP target hardware address.
    ArpTha = Some(25), "arp_tha", 8, 16, 48, 48;
    /// IPv6 source address.
    Ipv6Src = Some(26), "ipv6_src", 9, 0, 128, 128;
    /// IPv6 destination address.
    Ipv6Dst = Some(27), "ipv6_dst", 11, 0, 128, 128;
    /// IPv6 flow label.
    Ipv6Flabel = Some(28), "ipv6_flabel", 15, 32, 32, 20;
    /// ICMPv6 type.
    Icmpv6Type = Some(29), "icmpv6_type", 8, 8, 8, 8;
    /// ICMPv6 code.
    Icmpv6Code = Some(30), "icmpv6_code", 8, 0, 8, 8;
    /// Target address for IPv6 neighbour discovery.
    Ipv6NdTarget = Some(31), "ipv6_nd_target", 13, 0, 128, 128;
    /// Source link-layer address option of a neighbour solicitation.
    Ipv6NdSll = Some(32), "ipv6_nd_sll", 7, 16, 48, 48;
    /// Target link-layer address option of a neighbour advertisement.
    Ipv6NdTll = Some(33), "ipv6_nd_tll", 8, 16, 48, 48;
    /// Label of the top MPLS label stack entry.
    MplsLabel = Some(34), "mpls_label", 15, 0, 32, 20;
    /// Traffic class of the top MPLS label stack entry.
    MplsTc = Some(35), "mpls_tc", 16, 8, 8, 3;
    /// Bottom-of-stack bit of the top MPLS label stack entry.
    MplsBos = Some(36), "mpls_bos", 16, 0, 8, 1;
    /// PBB I-SID.
    PbbIsid = Some(37), "pbb_isid", 16, 32, 32, 24;
    /// Logical port metadata (tunnel id).
    TunnelId = Some(38), "tunnel_id", 2, 0, 64, 64;
    /// IPv6 extension header pseudo-field ([`exthdr`] bits).
    Ipv6Exthdr = Some(39), "ipv6_exthdr", 16, 16, 16, 9;
    /// IPv4 TTL or IPv6 hop limit (internal: `dec_nw_ttl` depends on it).
    NwTtl = None, "nw_ttl", 17, 56, 8, 8;
    /// IP fragment state ([`frag`] bits; internal).
    NwFrag = None, "nw_frag", 17, 48, 8, 8;
    /// TTL of the top MPLS label stack entry (internal: `dec_mpls_ttl` depends on it).
    MplsTtl = None, "mpls_ttl", 17, 40, 8, 8;
    /// TCP flags, 12 bits (internal in OpenFlow 1.3).
    TcpFlags = None, "tcp_flags", 17, 16, 16, 12;
    /// Second VLAN tag as `pcp << 13 | OFPVID_PRESENT | vid` (internal: what `pop_vlan` exposes).
    VlanInner = None, "vlan_inner", 17, 0, 16, 16;
}

impl Field {
    /// The field with OXM (OpenFlow basic class) field number `n`.
    pub fn from_oxm(n: u8) -> Option<Field> {
        Field::ALL
            .get(usize::from(n))
            .copied()
            .filter(|f| f.oxm() == Some(n))
    }

    /// The largest value the field can hold (all ones over its OXM width).
    pub const fn max_value(self) -> u128 {
        let b = self.bits();
        if b >= 128 {
            u128::MAX
        } else {
            (1u128 << b) - 1
        }
    }
}

/// A flow key: the value of every field of one packet. Absent fields are zero.
#[derive(Clone, Copy, Eq, Default)]
pub struct FlowKey {
    /// The packed words; see [`Field::layout`].
    pub w: [u64; KEY_WORDS],
}

impl PartialEq for FlowKey {
    /// Word-wise, branch-free (the exact-match cache compares a key per packet).
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let mut diff = 0;
        for i in 0..KEY_WORDS {
            diff |= self.w[i] ^ other.w[i];
        }
        diff == 0
    }
}

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.w.hash(state);
    }
}

/// A mask over a [`FlowKey`]: a one bit means "this bit is significant". Same layout.
pub type FlowMask = FlowKey;

#[inline(always)]
const fn slot_mask(slot: u32) -> u64 {
    if slot >= 64 {
        u64::MAX
    } else {
        (1u64 << slot) - 1
    }
}

impl FlowKey {
    /// The all-zero key (also the all-wildcard mask).
    pub const ZERO: FlowKey = FlowKey { w: [0; KEY_WORDS] };
    /// The all-ones mask (exact match on every bit).
    pub const ONES: FlowKey = FlowKey {
        w: [u64::MAX; KEY_WORDS],
    };

    /// Value of `field`.
    #[inline(always)]
    pub fn get(&self, field: Field) -> u128 {
        let (word, shift, slot) = field.layout();
        if slot == 128 {
            (u128::from(self.w[word]) << 64) | u128::from(self.w[word + 1])
        } else {
            u128::from((self.w[word] >> shift) & slot_mask(slot))
        }
    }

    /// Sets `field` to `value`, truncated to the field's storage slot.
    #[inline(always)]
    pub fn set(&mut self, field: Field, value: u128) {
        let (word, shift, slot) = field.layout();
        if slot == 128 {
            self.w[word] = (value >> 64) as u64;
            self.w[word + 1] = value as u64;
        } else {
            let m = slot_mask(slot) << shift;
            self.w[word] = (self.w[word] & !m) | (((value as u64) << shift) & m);
        }
    }

    /// A mask with every bit of `field`'s OXM width set, nothing else.
    pub fn field_mask(field: Field) -> FlowMask {
        let mut m = FlowKey::ZERO;
        m.set(field, field.max_value());
        m
    }

    /// Adds every bit of `field` to this mask.
    #[inline]
    pub fn add_field(&mut self, field: Field) {
        let cur = self.get(field);
        self.set(field, cur | field.max_value());
    }

    /// Whether this mask has any bit of `field` set.
    #[inline]
    pub fn has_field(&self, field: Field) -> bool {
        self.get(field) != 0
    }

    /// `self & mask`, word-wise.
    #[inline]
    pub fn masked(&self, mask: &FlowMask) -> FlowKey {
        let mut out = FlowKey::ZERO;
        for i in 0..KEY_WORDS {
            out.w[i] = self.w[i] & mask.w[i];
        }
        out
    }

    /// `self |= other`, word-wise (union of masks).
    #[inline]
    pub fn or_assign(&mut self, other: &FlowMask) {
        for i in 0..KEY_WORDS {
            self.w[i] |= other.w[i];
        }
    }

    /// `self |= other` on the listed words only (the non-zero words of `other`).
    #[inline]
    pub fn or_assign_words(&mut self, other: &FlowMask, words: &[u8]) {
        for &i in words {
            let i = usize::from(i);
            if i < KEY_WORDS {
                self.w[i] |= other.w[i];
            }
        }
    }

    /// Whether every bit set in `self` is set in `other` (`self` ⊆ `other` as masks).
    pub fn is_subset_of(&self, other: &FlowMask) -> bool {
        (0..KEY_WORDS).all(|i| self.w[i] & !other.w[i] == 0)
    }

    /// Whether `(self & mask) == value` (value already masked).
    #[inline]
    pub fn matches(&self, mask: &FlowMask, value: &FlowKey) -> bool {
        let mut diff = 0;
        for i in 0..KEY_WORDS {
            diff |= (self.w[i] & mask.w[i]) ^ value.w[i];
        }
        diff == 0
    }

    /// Indices of the non-zero words (of a mask).
    pub fn nonzero_words(&self) -> Vec<u8> {
        (0..KEY_WORDS)
            .filter(|&i| self.w[i] != 0)
            .map(|i| i as u8)
            .collect()
    }

    /// The map of the non-zero words (bit `i`: word `i`).
    pub fn nonzero_map(&self) -> u32 {
        let mut m = 0;
        for (i, &w) in self.w.iter().enumerate() {
            m |= u32::from(w != 0) << i;
        }
        m
    }

    /// Word `i`, or 0 past the end.
    #[inline(always)]
    fn word(&self, i: u32) -> u64 {
        self.w.get(i as usize).copied().unwrap_or(0)
    }

    /// Hash of the words in `map` (bit `i`: word `i`), the map included; every other word
    /// is taken as zero (exact-match caches: a key whose map is a superset of its non-zero
    /// words). Words pair up in a folded multiply each, as in [`FlowKey::hash_full`].
    #[inline]
    pub fn hash_map(&self, map: u32) -> u64 {
        if map & !COMMON_WORDS == 0 {
            // Words outside the map are zero: read the six at their places.
            // Three folded multiplies, the map in the last; no finishing round: every bit
            // of a fold's result depends on every bit of both inputs (its high half).
            let w = &self.w;
            let a = fold(w[0] ^ 0xa409_3822_299f_31d0, w[3] ^ 0x082e_fa98_ec4e_6c89);
            let b = fold(w[4] ^ 0x4528_21e6_38d0_1377, w[5] ^ 0xbe54_66cf_34e9_0c6c);
            let c = fold(
                w[6] ^ 0xc0ac_29b7_c97c_50dd ^ u64::from(map),
                w[17] ^ 0x3f84_d5b5_b547_0917,
            );
            return a ^ b.rotate_left(21) ^ c.rotate_left(42);
        }
        let mut m = map & ALL_WORDS;
        let mut h: u64 = 0x1319_8a2e_0370_7344 ^ u64::from(m);
        while m != 0 {
            let a = self.word(m.trailing_zeros());
            m &= m - 1;
            let b = if m != 0 {
                let b = self.word(m.trailing_zeros());
                m &= m - 1;
                b
            } else {
                0
            };
            h = h.rotate_left(23) ^ fold(a ^ 0xa409_3822_299f_31d0, b ^ 0x082e_fa98_ec4e_6c89);
        }
        finish(h)
    }

    /// Whether every bit is zero.
    pub fn is_zero(&self) -> bool {
        self.w.iter().all(|&w| w == 0)
    }

    /// Hash of `self & mask` over the listed words (the non-zero words of `mask`).
    #[inline]
    pub fn hash_masked(&self, mask: &FlowMask, words: &[u8]) -> u64 {
        self.hash_masked_into(mask, words, None)
    }

    /// [`FlowKey::hash_masked`], OR-ing the same words of `mask` into `wc` in the same pass
    /// (a classifier probe: the wildcards and the hash at once).
    #[inline]
    pub fn hash_masked_or(&self, mask: &FlowMask, words: &[u8], wc: &mut FlowMask) -> u64 {
        self.hash_masked_into(mask, words, Some(wc))
    }

    /// The loop of both: inlined into each, where `wc` is a constant `None` or `Some`.
    #[inline(always)]
    fn hash_masked_into(
        &self,
        mask: &FlowMask,
        words: &[u8],
        mut wc: Option<&mut FlowMask>,
    ) -> u64 {
        let mut h: u64 = 0x243f_6a88_85a3_08d3;
        for &i in words {
            let i = usize::from(i);
            if i < KEY_WORDS {
                if let Some(wc) = wc.as_deref_mut() {
                    wc.w[i] |= mask.w[i];
                }
                h = mix(h ^ (self.w[i] & mask.w[i]));
            }
        }
        finish(h)
    }

    /// Hash of every word (exact-match caches).
    #[inline]
    pub fn hash_full(&self) -> u64 {
        // One folded multiply per pair of words (as wyhash does per 16 bytes): the nine
        // products are independent, only a rotate-xor chains them.
        let mut h: u64 = 0x1319_8a2e_0370_7344;
        for pair in self.w.chunks_exact(2) {
            h = h.rotate_left(23)
                ^ fold(
                    pair[0] ^ 0xa409_3822_299f_31d0,
                    pair[1] ^ 0x082e_fa98_ec4e_6c89,
                );
        }
        finish(h)
    }

    /// Whether `(self & mask) == value` on the listed words (the non-zero words of `mask`,
    /// `value` already masked): [`FlowKey::matches`] touching only the words that matter.
    #[inline]
    pub fn matches_words(&self, mask: &FlowMask, value: &FlowKey, words: &[u8]) -> bool {
        let mut diff = 0;
        for &i in words {
            let i = usize::from(i);
            if i < KEY_WORDS {
                diff |= (self.w[i] & mask.w[i]) ^ value.w[i];
            }
        }
        diff == 0
    }

    /// `self & mask` compacted: the masked value of each non-zero word of `mask`, in word
    /// order, from the start of `out` (the rest of `out` is left as it is). Returns how many
    /// words that is. A megaflow and a classifier rule store their keys this way.
    #[inline]
    pub fn compact_into(&self, mask: &FlowMask, out: &mut [u64; KEY_WORDS]) -> usize {
        let mut j = 0;
        for i in 0..KEY_WORDS {
            if mask.w[i] != 0 {
                out[j] = self.w[i] & mask.w[i];
                j += 1;
            }
        }
        j
    }

    /// Whether `self & mask` equals `compact`, a key under `mask` compacted by
    /// [`FlowKey::compact_into`] (`words`: the non-zero words of `mask`, in order):
    /// [`FlowKey::matches_words`] against a compacted value.
    #[inline(always)]
    pub fn matches_compact(&self, mask: &FlowMask, words: &[u8], compact: &[u64]) -> bool {
        let mut diff = 0;
        for (&i, &v) in words.iter().zip(compact) {
            let i = usize::from(i);
            if i < KEY_WORDS {
                diff |= (self.w[i] & mask.w[i]) ^ v;
            }
        }
        diff == 0
    }

    /// Named accessor for the hot path: Ethernet type.
    #[inline(always)]
    pub fn eth_type(&self) -> u16 {
        self.get(Field::EthType) as u16
    }

    /// Named accessor for the hot path: IP protocol.
    #[inline(always)]
    pub fn ip_proto(&self) -> u8 {
        self.get(Field::IpProto) as u8
    }
}

/// The lookup stages of a key, outermost first: pipeline metadata, L2 (with VLAN, MPLS and
/// PBB), L3, and L4 (everything else). Every bit of the key is in exactly one stage. The
/// classifier checks a rule's fields stage by stage, so that a packet that already differs
/// in, say, its L3 fields does not make the megaflow depend on its L4 ones.
pub fn stage_masks() -> &'static [FlowMask; 4] {
    static STAGES: std::sync::OnceLock<[FlowMask; 4]> = std::sync::OnceLock::new();
    STAGES.get_or_init(|| {
        use Field::*;
        let of = |fields: &[Field]| {
            let mut m = FlowKey::ZERO;
            for &f in fields {
                // Whole storage slots, so shared slots land in one stage.
                let (word, shift, slot) = f.layout();
                if slot == 128 {
                    m.w[word] = u64::MAX;
                    m.w[word + 1] = u64::MAX;
                } else {
                    m.w[word] |= slot_mask(slot) << shift;
                }
            }
            m
        };
        let meta = of(&[InPort, InPhyPort, Metadata, TunnelId]);
        let l2 = of(&[
            EthDst, EthSrc, EthType, VlanVid, VlanPcp, VlanInner, MplsLabel, MplsTc, MplsBos,
            MplsTtl, PbbIsid,
        ]);
        let l3 = of(&[
            IpProto, IpDscp, IpEcn, Ipv4Src, Ipv4Dst, ArpOp, ArpSha, ArpTha, Ipv6Src, Ipv6Dst,
            Ipv6Flabel, Ipv6Exthdr, NwTtl, NwFrag,
        ]);
        let mut l4 = FlowKey::ONES;
        for i in 0..KEY_WORDS {
            l4.w[i] &= !(meta.w[i] | l2.w[i] | l3.w[i]);
        }
        [meta, l2, l3, l4]
    })
}

#[inline(always)]
fn mix(x: u64) -> u64 {
    // One multiply-rotate round (folded multiply, as in foldhash / wyhash).
    let m = u128::from(x) * 0x9e37_79b9_7f4a_7c15u128;
    ((m >> 64) as u64) ^ (m as u64)
}

/// Folded 64×64→128 multiply.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    ((m >> 64) as u64) ^ (m as u64)
}

#[inline(always)]
fn finish(h: u64) -> u64 {
    mix(h ^ (h >> 29))
}

impl fmt::Debug for FlowKey {
    /// Prints the non-zero fields as `name=value` (hex), fields sharing storage once.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut seen = FlowKey::ZERO;
        let mut first = true;
        f.write_str("FlowKey{")?;
        for &field in Field::ALL {
            let v = self.get(field);
            if v == 0 || seen.has_field(field) {
                continue;
            }
            seen.add_field(field);
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{}={:#x}", field.name(), v)?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oxm_numbers_are_dense_and_in_order() {
        for n in 0..40u8 {
            assert_eq!(Field::from_oxm(n).and_then(Field::oxm), Some(n));
        }
        assert_eq!(Field::from_oxm(40), None);
    }

    #[test]
    fn fields_do_not_overlap_unless_shared() {
        // Two fields may share bits only if they are documented aliases.
        let alias = |a: Field, b: Field| a.layout() == b.layout();
        for &a in Field::ALL {
            for &b in Field::ALL {
                if a == b || alias(a, b) {
                    continue;
                }
                let (ma, mb) = (FlowKey::field_mask(a), FlowKey::field_mask(b));
                let overlap = (0..KEY_WORDS).any(|i| ma.w[i] & mb.w[i] != 0);
                assert!(!overlap, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn get_set_round_trip() {
        let mut k = FlowKey::ZERO;
        for (i, &f) in Field::ALL.iter().enumerate() {
            let v = (0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128 >> i) & f.max_value();
            k.set(f, v);
            assert_eq!(k.get(f), v, "{f:?}");
        }
        k.set(Field::VlanVid, 0x1000 | 42);
        assert_eq!(k.get(Field::VlanVid), 0x102a);
    }

    #[test]
    fn stages_partition_the_key() {
        let st = stage_masks();
        for i in 0..KEY_WORDS {
            let union = st.iter().fold(0u64, |a, m| a | m.w[i]);
            assert_eq!(union, u64::MAX, "word {i}");
            for a in 0..4 {
                for b in a + 1..4 {
                    assert_eq!(st[a].w[i] & st[b].w[i], 0, "stages {a} {b} word {i}");
                }
            }
        }
        assert!(st[3].has_field(Field::TcpDst) && st[2].has_field(Field::IpProto));
    }

    #[test]
    fn masked_match_and_hash() {
        let mut k = FlowKey::ZERO;
        k.set(Field::EthType, 0x0800);
        k.set(Field::Ipv4Src, 0x0a00_0001);
        let mut m = FlowKey::field_mask(Field::EthType);
        m.set(Field::Ipv4Src, 0xffff_ff00);
        let v = k.masked(&m);
        let mut k2 = k;
        k2.set(Field::Ipv4Src, 0x0a00_00ff);
        k2.set(Field::TcpSrc, 99);
        assert!(k2.matches(&m, &v));
        let words = m.nonzero_words();
        assert_eq!(k.hash_masked(&m, &words), k2.hash_masked(&m, &words));
        // The fused probe hashes alike and ORs exactly the mask's words.
        let mut wc = FlowKey::field_mask(Field::TcpDst);
        assert_eq!(
            k2.hash_masked_or(&m, &words, &mut wc),
            k.hash_masked(&m, &words)
        );
        let mut want = m;
        want.add_field(Field::TcpDst);
        assert_eq!(wc, want);
        k2.set(Field::Ipv4Src, 0x0a00_0101);
        assert!(!k2.matches(&m, &v));
    }
}
