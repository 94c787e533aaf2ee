//! Applying datapath actions to packet bytes: header rewrites with incremental checksum
//! updates (IPv4 header, TCP, UDP, ICMPv4, ICMPv6; SCTP's CRC32c recomputed), VLAN and
//! MPLS push/pop, meters, outputs to a [`Sink`].
//!
//! The packet is an owned `Vec<u8>` the caller lends; nothing here allocates except to copy
//! a packet for a group bucket ([`DpAction::Clone`]) that is not the last action.

use super::Nanos;
use super::meter::{Meters, Verdict, remark_dscp};
use super::xlate::{DpAction, PacketInReason};
use crate::packet::parse::ipproto;
use crate::packet::{Field, Layers, Layout, Parsed, RxMeta, parse};

/// Where packets leave the datapath.
pub trait Sink {
    /// Send `packet` out of `port`, on `queue` if one was set, with the tunnel key
    /// `tunnel_id` (0: none) for tunnel ports.
    fn output(&mut self, port: u32, queue: Option<u32>, tunnel_id: u64, packet: &[u8]);
    /// As [`Sink::output`] for the packet's last use: the sink may take the buffer
    /// (leaving any buffer, contents unspecified, in its place) instead of copying it. By
    /// default it copies.
    #[inline(always)]
    fn output_last(&mut self, port: u32, queue: Option<u32>, tunnel_id: u64, packet: &mut Vec<u8>) {
        self.output(port, queue, tunnel_id, packet);
    }
    /// Send `packet` (the agent cuts it to `max_len`) to the controller.
    fn packet_in(
        &mut self,
        reason: PacketInReason,
        max_len: u16,
        table_id: u8,
        cookie: u64,
        packet: &[u8],
    );
}

impl<T: Sink + ?Sized> Sink for &mut T {
    #[inline(always)]
    fn output(&mut self, port: u32, queue: Option<u32>, tunnel_id: u64, packet: &[u8]) {
        (**self).output(port, queue, tunnel_id, packet);
    }
    #[inline(always)]
    fn output_last(&mut self, port: u32, queue: Option<u32>, tunnel_id: u64, packet: &mut Vec<u8>) {
        (**self).output_last(port, queue, tunnel_id, packet);
    }
    #[inline(always)]
    fn packet_in(
        &mut self,
        reason: PacketInReason,
        max_len: u16,
        table_id: u8,
        cookie: u64,
        packet: &[u8],
    ) {
        (**self).packet_in(reason, max_len, table_id, cookie, packet);
    }
}

/// A sink that records everything (tests, traces).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorder {
    /// (port, queue, tunnel id, bytes) per output.
    pub outputs: Vec<(u32, Option<u32>, u64, Vec<u8>)>,
    /// (reason, max_len, table, cookie, bytes) per packet-in.
    pub packet_ins: Vec<(PacketInReason, u16, u8, u64, Vec<u8>)>,
}

impl Sink for Recorder {
    fn output(&mut self, port: u32, queue: Option<u32>, tunnel_id: u64, packet: &[u8]) {
        self.outputs.push((port, queue, tunnel_id, packet.to_vec()));
    }
    fn packet_in(&mut self, r: PacketInReason, max_len: u16, t: u8, cookie: u64, p: &[u8]) {
        self.packet_ins.push((r, max_len, t, cookie, p.to_vec()));
    }
}

/// What the packet's L4 checksum field holds, so that rewrites keep it right.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum L4Csum {
    /// A complete checksum, as on the wire: every rewrite under it is folded in.
    #[default]
    Full,
    /// CHECKSUM_PARTIAL (a vnet header's `NEEDS_CSUM`): the TCP or UDP checksum field holds
    /// only the pseudo-header sum; the L4 header and payload are summed later (by the NIC or
    /// the software fallback). An address rewrite changes the pseudo-header, so it is
    /// folded into the field as a sum (not as a checksum); a port rewrite is summed later
    /// and leaves the field alone.
    Partial,
}

impl L4Csum {
    /// [`L4Csum::Partial`] when offload metadata (`needs_csum`, `csum_start`,
    /// `csum_offset`) names the checksum field of `parsed`'s TCP or UDP header; otherwise
    /// [`L4Csum::Full`] (a partial checksum of some other header is not one the actions
    /// touch).
    pub fn of(parsed: &Parsed, needs_csum: bool, csum_start: u16, csum_offset: u16) -> L4Csum {
        let l = parsed.layout.layers;
        let at = if l.has(Layers::TCP) {
            16
        } else if l.has(Layers::UDP) {
            6
        } else {
            return L4Csum::Full;
        };
        if needs_csum && csum_start == parsed.layout.l4 && csum_offset == at {
            L4Csum::Partial
        } else {
            L4Csum::Full
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct State {
    queue: Option<u32>,
    tunnel_id: u64,
    csum: L4Csum,
    parsed: Parsed,
}

/// Applies `actions` to `packet` (received with `meta`), sending copies to `sink`; meters
/// run at `now`.
pub fn execute(
    actions: &[DpAction],
    packet: &mut Vec<u8>,
    meta: RxMeta,
    meters: &Meters,
    now: Nanos,
    sink: &mut impl Sink,
) {
    execute_parsed(actions, packet, &parse(packet, meta), meters, now, sink);
}

/// [`execute`] for a packet already parsed (`parsed` must describe `packet`).
pub fn execute_parsed(
    actions: &[DpAction],
    packet: &mut Vec<u8>,
    parsed: &Parsed,
    meters: &Meters,
    now: Nanos,
    sink: &mut impl Sink,
) {
    execute_with(actions, packet, parsed, L4Csum::Full, meters, now, sink);
}

/// [`execute_parsed`] for a packet whose L4 checksum field holds `csum`.
pub fn execute_with(
    actions: &[DpAction],
    packet: &mut Vec<u8>,
    parsed: &Parsed,
    csum: L4Csum,
    meters: &Meters,
    now: Nanos,
    sink: &mut impl Sink,
) {
    let mut st = State {
        queue: None,
        tunnel_id: parsed.key.get(Field::TunnelId) as u64,
        csum,
        parsed: *parsed,
    };
    run(actions, packet, &mut st, Some(meters), now, sink);
}

/// One step of [`FastActions`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FastOp {
    /// Write the 6 bytes at this offset (an Ethernet address: no checksum covers it).
    Mac(u8, [u8; 6]),
    /// Send to a port.
    Output(u32),
}

/// Datapath actions precompiled for the packet path, when they are only Ethernet address
/// set-fields and outputs (at most [`FastActions::MAX`] of them): run without the general
/// interpreter, its state and its copy of the parsed packet, with the same effect as
/// [`execute_parsed`] (outputs on no queue, with the packet's tunnel id).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FastActions {
    n: u8,
    ops: [FastOp; FastActions::MAX],
}

impl FastActions {
    /// Most steps kept inline.
    pub const MAX: usize = 4;

    /// The compact form of `actions`, if they have one.
    pub fn compile(actions: &[DpAction]) -> Option<FastActions> {
        if actions.len() > Self::MAX {
            return None;
        }
        let mut f = FastActions {
            n: 0,
            ops: [FastOp::Output(0); Self::MAX],
        };
        for (slot, a) in f.ops.iter_mut().zip(actions) {
            *slot = match a {
                DpAction::Output(port) => FastOp::Output(*port),
                DpAction::SetField(Field::EthDst, v) => FastOp::Mac(0, mac_bytes(*v)),
                DpAction::SetField(Field::EthSrc, v) => FastOp::Mac(6, mac_bytes(*v)),
                _ => return None,
            };
        }
        f.n = actions.len() as u8;
        Some(f)
    }

    /// If they only output (no rewrite), sends `packet` (tunnel id `tunnel_id`) to each
    /// port and returns true; otherwise does nothing and returns false. For a packet the
    /// datapath does not own (a borrowed frame): no copy when none is needed.
    #[inline(always)]
    pub fn run_shared(&self, packet: &[u8], tunnel_id: u64, sink: &mut impl Sink) -> bool {
        if let (1, FastOp::Output(port)) = (self.n, self.ops[0]) {
            sink.output(port, None, tunnel_id, packet);
            return true;
        }
        let ops = self.ops.get(..usize::from(self.n)).unwrap_or_default();
        if ops.iter().any(|op| matches!(op, FastOp::Mac(..))) {
            return false;
        }
        for op in ops {
            if let FastOp::Output(port) = *op {
                sink.output(port, None, tunnel_id, packet);
            }
        }
        true
    }

    /// Applies them to `packet` (its tunnel id `tunnel_id`), sending to `sink`; a last
    /// output hands the buffer over ([`Sink::output_last`]): the packet is used up.
    #[inline]
    pub fn run(&self, packet: &mut Vec<u8>, tunnel_id: u64, sink: &mut impl Sink) {
        let n = usize::from(self.n);
        for (i, op) in self.ops.iter().take(n).enumerate() {
            match *op {
                FastOp::Output(port) if i + 1 == n => {
                    sink.output_last(port, None, tunnel_id, packet)
                }
                FastOp::Mac(at, mac) => {
                    let at = usize::from(at);
                    if let Some(d) = packet.get_mut(at..at + 6) {
                        d.copy_from_slice(&mac);
                    }
                }
                FastOp::Output(port) => sink.output(port, None, tunnel_id, packet),
            }
        }
    }
}

/// Applies only the header edits of `actions` (no outputs, meters or clones) — what the
/// translation needs to look under a popped MPLS label.
pub fn apply_edits(packet: &mut Vec<u8>, actions: &[DpAction]) {
    let mut st = State {
        queue: None,
        tunnel_id: 0,
        csum: L4Csum::Full,
        parsed: parse(packet, RxMeta::default()),
    };
    for a in actions {
        edit(a, packet, &mut st);
    }
}

fn run(
    actions: &[DpAction],
    packet: &mut Vec<u8>,
    st: &mut State,
    meters: Option<&Meters>,
    now: Nanos,
    sink: &mut impl Sink,
) -> bool {
    for (i, a) in actions.iter().enumerate() {
        match a {
            DpAction::Output(port) => sink.output(*port, st.queue, st.tunnel_id, packet),
            DpAction::Controller {
                reason,
                max_len,
                table_id,
                cookie,
            } => sink.packet_in(*reason, *max_len, *table_id, *cookie, packet),
            DpAction::SetQueue(q) => st.queue = Some(*q),
            DpAction::Meter(id) => {
                let verdict = match meters {
                    Some(m) => m.meter(*id, packet.len(), now),
                    None => Verdict::Pass,
                };
                match verdict {
                    Verdict::Pass => {}
                    Verdict::Drop => return false,
                    Verdict::Remark(levels) => {
                        let dscp = st.parsed.key.get(Field::IpDscp) as u8;
                        let l = st.parsed.layout.layers;
                        if l.has(Layers::IPV4) || l.has(Layers::IPV6) {
                            set_field(
                                packet,
                                st,
                                Field::IpDscp,
                                u128::from(remark_dscp(dscp, levels)),
                            );
                        }
                    }
                }
            }
            DpAction::Clone(sub) => {
                if i + 1 == actions.len() {
                    // Last action: no copy needed.
                    let mut st2 = *st;
                    run(sub, packet, &mut st2, meters, now, sink);
                } else {
                    let mut copy = packet.clone();
                    let mut st2 = *st;
                    run(sub, &mut copy, &mut st2, meters, now, sink);
                }
            }
            other => edit(other, packet, st),
        }
    }
    true
}

fn reparse(packet: &[u8], st: &mut State) {
    let k = &st.parsed.key;
    let meta = RxMeta {
        in_port: k.get(Field::InPort) as u32,
        in_phy_port: k.get(Field::InPhyPort) as u32,
        tunnel_id: k.get(Field::TunnelId) as u64,
        metadata: k.get(Field::Metadata) as u64,
    };
    st.parsed = parse(packet, meta);
}

fn edit(a: &DpAction, packet: &mut Vec<u8>, st: &mut State) {
    let lay = st.parsed.layout;
    match a {
        DpAction::SetField(f, v) => set_field(packet, st, *f, *v),
        DpAction::PushVlan { tpid, tci } => {
            if packet.len() >= 14 {
                let mut tag = [0u8; 4];
                tag[..2].copy_from_slice(&tpid.to_be_bytes());
                tag[2..].copy_from_slice(&tci.to_be_bytes());
                packet.splice(12..12, tag);
                reparse(packet, st);
            }
        }
        DpAction::PopVlan => {
            if lay.vlan != Layout::NONE {
                let at = usize::from(lay.vlan);
                packet.drain(at..at + 4);
                reparse(packet, st);
            }
        }
        DpAction::PushMpls { ethertype, lse } => {
            if lay.eth_type != Layout::NONE {
                let et = usize::from(lay.eth_type);
                let at = et + 2;
                if packet.len() >= at {
                    packet.splice(at..at, lse.to_be_bytes());
                    packet[et..et + 2].copy_from_slice(&ethertype.to_be_bytes());
                    reparse(packet, st);
                }
            }
        }
        DpAction::PopMpls { ethertype } => {
            if lay.mpls != Layout::NONE && lay.eth_type != Layout::NONE {
                let at = usize::from(lay.mpls);
                let et = usize::from(lay.eth_type);
                packet.drain(at..at + 4);
                packet[et..et + 2].copy_from_slice(&ethertype.to_be_bytes());
                reparse(packet, st);
            }
        }
        DpAction::SetQueue(q) => st.queue = Some(*q),
        DpAction::Output(_)
        | DpAction::Controller { .. }
        | DpAction::Meter(_)
        | DpAction::Clone(_) => {}
    }
}

/// How a checksum field is updated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SumKind {
    /// A complete one's complement checksum.
    Full,
    /// A complete checksum where 0 means "no checksum" (UDP over IPv4).
    FullZeroIsNone,
    /// A partial (pseudo-header) sum, not complemented ([`L4Csum::Partial`]).
    Partial,
}

/// Checksums a rewrite must keep right.
#[derive(Clone, Copy, Default)]
struct Sums {
    /// IPv4 header checksum offset.
    ip: Option<usize>,
    /// L4 checksum offset and kind.
    l4: Option<(usize, SumKind)>,
}

/// One's complement incremental update (RFC 1624, eqn. 3) over 16-bit words.
fn csum_update(csum: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut s = u32::from(!csum);
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        let o = u16::from_be_bytes([o[0], *o.get(1).unwrap_or(&0)]);
        let n = u16::from_be_bytes([n[0], *n.get(1).unwrap_or(&0)]);
        s += u32::from(!o) + u32::from(n);
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn fix_sum(packet: &mut [u8], at: usize, old: &[u8], new: &[u8], kind: SumKind) {
    let Some(b) = packet.get_mut(at..at + 2) else {
        return;
    };
    let cur = u16::from_be_bytes([b[0], b[1]]);
    let n = match kind {
        SumKind::Full => csum_update(cur, old, new),
        SumKind::FullZeroIsNone => {
            if cur == 0 {
                return;
            }
            match csum_update(cur, old, new) {
                0 => 0xffff,
                n => n,
            }
        }
        // The field is the sum itself: add what the checksum update would add to `!csum`.
        SumKind::Partial => !csum_update(!cur, old, new),
    };
    b.copy_from_slice(&n.to_be_bytes());
}

/// Replaces `packet[off..off+new.len()]` (off even relative to the checksummed headers),
/// fixing the listed checksums.
fn put(packet: &mut [u8], off: usize, new: &[u8], sums: Sums) {
    let Some(dst) = packet.get_mut(off..off + new.len()) else {
        return;
    };
    let mut old = [0u8; 16];
    let n = new.len().min(16);
    old[..n].copy_from_slice(&dst[..n]);
    dst.copy_from_slice(new);
    if let Some(at) = sums.ip {
        fix_sum(packet, at, &old[..n], new, SumKind::Full);
    }
    if let Some((at, kind)) = sums.l4 {
        fix_sum(packet, at, &old[..n], new, kind);
    }
}

fn be16_at(p: &[u8], off: usize) -> u16 {
    p.get(off..off + 2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

fn mac_bytes(v: u128) -> [u8; 6] {
    let b = v.to_be_bytes();
    [b[10], b[11], b[12], b[13], b[14], b[15]]
}

/// The L4 checksum a change to the IP pseudo-header (addresses) must fix.
fn l4_pseudo_sum(lay: &Layout, csum: L4Csum) -> Option<(usize, SumKind)> {
    let l4 = usize::from(lay.l4);
    let l = lay.layers;
    let tcp_udp = |kind| {
        if csum == L4Csum::Partial {
            SumKind::Partial
        } else {
            kind
        }
    };
    if l.has(Layers::TCP) {
        Some((l4 + 16, tcp_udp(SumKind::Full)))
    } else if l.has(Layers::UDP) {
        let kind = if l.has(Layers::IPV4) {
            SumKind::FullZeroIsNone
        } else {
            SumKind::Full
        };
        Some((l4 + 6, tcp_udp(kind)))
    } else if l.has(Layers::ICMPV6) {
        Some((l4 + 2, SumKind::Full))
    } else {
        None
    }
}

/// The checksum covering the L4 header itself (none to fix when a partial TCP or UDP
/// checksum is completed later: the header is summed then).
fn l4_own_sum(lay: &Layout, csum: L4Csum) -> Option<(usize, SumKind)> {
    let l4 = usize::from(lay.l4);
    let l = lay.layers;
    if l.has(Layers::ICMPV4) {
        Some((l4 + 2, SumKind::Full))
    } else if csum == L4Csum::Partial && (l.has(Layers::TCP) || l.has(Layers::UDP)) {
        None
    } else {
        l4_pseudo_sum(lay, csum)
    }
}

fn set_field(packet: &mut [u8], st: &mut State, f: Field, v: u128) {
    let lay = st.parsed.layout;
    let l = lay.layers;
    let l3 = usize::from(lay.l3);
    let l4 = usize::from(lay.l4);
    let v4 = l.has(Layers::IPV4);
    let v6 = l.has(Layers::IPV6);
    let ip_sum = Sums {
        ip: v4.then_some(l3 + 10),
        l4: None,
    };
    let addr_sums = Sums {
        ip: v4.then_some(l3 + 10),
        l4: l4_pseudo_sum(&lay, st.csum),
    };
    match f {
        Field::EthDst => put(packet, 0, &mac_bytes(v), Sums::default()),
        Field::EthSrc => put(packet, 6, &mac_bytes(v), Sums::default()),
        Field::EthType if lay.eth_type != Layout::NONE => {
            put(
                packet,
                usize::from(lay.eth_type),
                &(v as u16).to_be_bytes(),
                Sums::default(),
            );
        }
        Field::VlanVid | Field::VlanPcp if lay.vlan != Layout::NONE => {
            let at = usize::from(lay.vlan) + 2;
            let tci = be16_at(packet, at);
            let tci = if f == Field::VlanVid {
                (tci & 0xf000) | (v as u16 & 0x0fff)
            } else {
                (tci & 0x1fff) | ((v as u16 & 7) << 13)
            };
            put(packet, at, &tci.to_be_bytes(), Sums::default());
        }
        Field::IpDscp | Field::IpEcn => {
            if v4 {
                let w = be16_at(packet, l3);
                let tos = w as u8;
                let tos = if f == Field::IpDscp {
                    ((v as u8) << 2) | (tos & 3)
                } else {
                    (tos & 0xfc) | (v as u8 & 3)
                };
                put(
                    packet,
                    l3,
                    &((w & 0xff00) | u16::from(tos)).to_be_bytes(),
                    ip_sum,
                );
            } else if v6 {
                let w = be16_at(packet, l3);
                let tc = (w >> 4) as u8;
                let tc = if f == Field::IpDscp {
                    ((v as u8) << 2) | (tc & 3)
                } else {
                    (tc & 0xfc) | (v as u8 & 3)
                };
                put(
                    packet,
                    l3,
                    &((w & 0xf00f) | (u16::from(tc) << 4)).to_be_bytes(),
                    ip_sum,
                );
            }
        }
        Field::NwTtl => {
            if v4 {
                let w = be16_at(packet, l3 + 8);
                put(
                    packet,
                    l3 + 8,
                    &((w & 0x00ff) | ((v as u16) << 8)).to_be_bytes(),
                    ip_sum,
                );
            } else if v6 {
                let w = be16_at(packet, l3 + 6);
                put(
                    packet,
                    l3 + 6,
                    &((w & 0xff00) | (v as u16 & 0xff)).to_be_bytes(),
                    ip_sum,
                );
            }
        }
        Field::Ipv4Src | Field::Ipv4Dst if v4 => {
            let at = if f == Field::Ipv4Src {
                l3 + 12
            } else {
                l3 + 16
            };
            put(packet, at, &(v as u32).to_be_bytes(), addr_sums);
        }
        Field::ArpSpa | Field::ArpTpa | Field::ArpSha | Field::ArpTha if l.has(Layers::ARP) => {
            match f {
                Field::ArpSha => put(packet, l3 + 8, &mac_bytes(v), Sums::default()),
                Field::ArpSpa => put(packet, l3 + 14, &(v as u32).to_be_bytes(), Sums::default()),
                Field::ArpTha => put(packet, l3 + 18, &mac_bytes(v), Sums::default()),
                _ => put(packet, l3 + 24, &(v as u32).to_be_bytes(), Sums::default()),
            }
        }
        Field::ArpOp if l.has(Layers::ARP) => {
            put(packet, l3 + 6, &(v as u16).to_be_bytes(), Sums::default())
        }
        Field::Ipv6Src | Field::Ipv6Dst if v6 => {
            let at = if f == Field::Ipv6Src { l3 + 8 } else { l3 + 24 };
            put(packet, at, &v.to_be_bytes(), addr_sums);
        }
        Field::Ipv6Flabel if v6 => {
            let w = packet
                .get(l3..l3 + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let w = (w & 0xfff0_0000) | (v as u32 & 0x000f_ffff);
            put(packet, l3, &w.to_be_bytes(), Sums::default());
        }
        Field::TcpSrc
        | Field::TcpDst
        | Field::UdpSrc
        | Field::UdpDst
        | Field::SctpSrc
        | Field::SctpDst
            if l.has_l4() =>
        {
            let src = matches!(f, Field::TcpSrc | Field::UdpSrc | Field::SctpSrc);
            let at = if src { l4 } else { l4 + 2 };
            if l.has(Layers::SCTP) {
                put(packet, at, &(v as u16).to_be_bytes(), Sums::default());
                fix_sctp_crc(packet, &st.parsed);
            } else if l.has(Layers::TCP) || l.has(Layers::UDP) {
                put(
                    packet,
                    at,
                    &(v as u16).to_be_bytes(),
                    Sums {
                        ip: None,
                        l4: l4_own_sum(&lay, st.csum),
                    },
                );
            }
        }
        Field::Icmpv4Type | Field::Icmpv4Code | Field::Icmpv6Type | Field::Icmpv6Code
            if l.has(Layers::ICMPV4) || l.has(Layers::ICMPV6) =>
        {
            let w = be16_at(packet, l4);
            let w = if matches!(f, Field::Icmpv4Type | Field::Icmpv6Type) {
                (w & 0x00ff) | ((v as u16) << 8)
            } else {
                (w & 0xff00) | (v as u16 & 0xff)
            };
            put(
                packet,
                l4,
                &w.to_be_bytes(),
                Sums {
                    ip: None,
                    l4: l4_own_sum(&lay, st.csum),
                },
            );
        }
        Field::Ipv6NdTarget if l.has(Layers::ICMPV6) => {
            put(
                packet,
                l4 + 8,
                &v.to_be_bytes(),
                Sums {
                    ip: None,
                    l4: l4_own_sum(&lay, st.csum),
                },
            );
        }
        Field::Ipv6NdSll | Field::Ipv6NdTll if l.has(Layers::ICMPV6) => {
            let want = if f == Field::Ipv6NdSll { 1 } else { 2 };
            let end = datagram_end(packet, &lay);
            let mut off = l4 + 24;
            while off + 8 <= end {
                let (t, len) = (packet[off], usize::from(packet[off + 1]) * 8);
                if len == 0 {
                    break;
                }
                if t == want && len == 8 {
                    put(
                        packet,
                        off + 2,
                        &mac_bytes(v),
                        Sums {
                            ip: None,
                            l4: l4_own_sum(&lay, st.csum),
                        },
                    );
                    break;
                }
                off += len;
            }
        }
        Field::MplsLabel | Field::MplsTc | Field::MplsBos | Field::MplsTtl
            if lay.mpls != Layout::NONE =>
        {
            let at = usize::from(lay.mpls);
            let lse = packet
                .get(at..at + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let v = v as u32;
            let lse = match f {
                Field::MplsLabel => (lse & 0xfff) | (v << 12),
                Field::MplsTc => (lse & !0xe00) | ((v & 7) << 9),
                Field::MplsBos => (lse & !0x100) | ((v & 1) << 8),
                _ => (lse & !0xff) | (v & 0xff),
            };
            put(packet, at, &lse.to_be_bytes(), Sums::default());
        }
        Field::TunnelId => st.tunnel_id = v as u64,
        _ => {}
    }
    // Keep the parsed view in step with the bytes.
    st.parsed.key.set(f, v);
    if f == Field::EthType {
        reparse(packet, st);
    }
}

/// End of the IP datagram (excludes Ethernet padding).
fn datagram_end(packet: &[u8], lay: &Layout) -> usize {
    let l3 = usize::from(lay.l3);
    let n = if lay.layers.has(Layers::IPV4) {
        l3 + usize::from(be16_at(packet, l3 + 2))
    } else if lay.layers.has(Layers::IPV6) {
        l3 + 40 + usize::from(be16_at(packet, l3 + 4))
    } else {
        packet.len()
    };
    n.min(packet.len())
}

fn fix_sctp_crc(packet: &mut [u8], parsed: &Parsed) {
    let lay = parsed.layout;
    if parsed.key.get(Field::IpProto) != u128::from(ipproto::SCTP) {
        return;
    }
    let l4 = usize::from(lay.l4);
    let end = datagram_end(packet, &lay);
    if end < l4 + 12 {
        return;
    }
    packet[l4 + 8..l4 + 12].fill(0);
    let crc = crc32c(&packet[l4..end]);
    packet[l4 + 8..l4 + 12].copy_from_slice(&crc.to_le_bytes());
}

/// CRC32c (Castagnoli), bitwise: SCTP rewrites are rare.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1624_example() {
        // Full recompute equals incremental update.
        let mut hdr = [
            0x45u8, 0, 0, 0x54, 0, 0, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let full = |h: &[u8]| {
            let mut s = 0u32;
            for c in h.chunks(2) {
                s += u32::from(u16::from_be_bytes([c[0], c[1]]));
            }
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        };
        let c = full(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        let mut p = hdr.to_vec();
        put(
            &mut p,
            12,
            &[192, 168, 1, 1],
            Sums {
                ip: Some(10),
                l4: None,
            },
        );
        let got = u16::from_be_bytes([p[10], p[11]]);
        p[10] = 0;
        p[11] = 0;
        assert_eq!(got, full(&p));
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }
}
