//! The kernel flow table: a cache level in front of the exact-match cache, kept by the
//! kernel (no I/O here: this is what the datapath decides; `port::bpf` does the I/O).
//!
//! A userspace switch copies every byte it forwards twice more than the kernel's bridge
//! does (into its receive ring, out of its buffer), which caps TCP through it near half the
//! bridge's rate. So, as Open vSwitch's kernel datapath holds megaflows the kernel runs
//! without asking `ovs-vswitchd`, a datapath may hand the kernel a *microflow* whose
//! megaflow only forwards it: a program on the input port's ingress (tcx) looks the packet
//! up in a hash map of [`KernelKey`]s and redirects a hit to the output port's device, GSO
//! super-frames and partial checksums untouched, and the port's packet socket skips it.
//! Everything else — a miss, a packet the program does not understand — goes the userspace
//! way as before, and the result is the same as if it had.
//!
//! Which microflows: the key is the input port and the frame's first [`WINDOW`] bytes with
//! the bytes that change from packet to packet of one flow zeroed (IPv4 total length,
//! identification and header checksum; IPv6 payload length; an ICMP echo's checksum), for
//! untagged IPv4 without options (not fragments) and IPv6 without extension headers
//! carrying TCP, UDP, SCTP or an ICMP/ICMPv6 echo request or reply ([`kernel_key`];
//! the program computes the same bytes). Every field the parser gives such a packet, TCP
//! flags aside, comes from those bytes, so two packets with one key have one flow key
//! wherever the megaflow's mask looks, unless the mask covers TCP flags: such a megaflow
//! stays in userspace ([`kernel_output`]), as does one that does anything but output the
//! packet unchanged to one port other than its input.
//!
//! Staleness: an entry is tagged with the pipeline generation and MAC table version its
//! megaflow was translated at ([`tag`]); the program forwards only entries whose tag is the
//! one the kernel was last told is current, which the control plane updates as it publishes
//! and a datapath as it learns. So a flow-mod, a port change or a MAC move stops the kernel
//! using every entry it made stale at once (before a barrier reply): as it publishes, the
//! control plane first moves the entries whose microflows the new pipeline still forwards
//! the same way ([`super::still_forwards`], on [`frame_of`] the key) to the new tag. A
//! datapath then revalidates its caches ([`super::Datapath`]): the entries of megaflows
//! that survive go back in under the new tag if they are not there yet, the others are
//! dropped, their counts credited first.

use std::sync::Arc;

use fuxi_openflow::consts::OFPP_MAX;

use super::Megaflow;
use crate::packet::{Field, FlowMask};
use crate::pipeline::xlate::DpAction;
use crate::pipeline::{Nanos, Pipeline};

/// Bytes of a key: the input port (4, host byte order), the masked window, 2 of padding.
pub const KEY_LEN: usize = 64;
/// Frame bytes a key covers: Ethernet, IPv6 and the L4 ports (IPv4 needs 38).
pub const WINDOW: usize = 58;
/// Frame bytes an IPv4 key covers (the rest of its window is zero).
pub const WINDOW_V4: usize = 38;
/// Where the frame starts in a key.
pub const FRAME_AT: usize = 4;

/// A kernel flow table key.
pub type KernelKey = [u8; KEY_LEN];

/// IP protocol number of ICMP.
pub const ICMP: u8 = 1;
/// IPv6 next header of ICMPv6.
pub const ICMPV6: u8 = 58;

/// IP protocols whose ports sit right after an IPv4 header without options or an IPv6
/// header, the only L4 fields a flow key takes from them (TCP flags aside).
pub fn l4_with_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

/// The kernel key of `frame` received on `in_port`, if the kernel may forward it: untagged
/// IPv4 without options (not a fragment) or IPv6 without extension headers, carrying TCP,
/// UDP or SCTP, or an ICMP or ICMPv6 echo request or reply (whose type and code are all a
/// flow key takes from them: their checksum is zeroed, their id and sequence number lie
/// past the window), at least as long as the bytes the key covers, whose IP length field
/// says where the frame ends and whose L4 header is whole (`l4_whole`).
pub fn kernel_key(in_port: u32, frame: &[u8]) -> Option<KernelKey> {
    let mut k = [0u8; KEY_LEN];
    k[..FRAME_AT].copy_from_slice(&in_port.to_ne_bytes());
    let at = |off: usize| FRAME_AT + off;
    match frame.get(12..14)? {
        [0x08, 0x00] => {
            let f = frame.get(..WINDOW_V4)?;
            // A fragment's key would hold payload bytes where the ports are: one entry per
            // fragment, never used again (a later fragment misses in the kernel anyway).
            let fragment = f[20] & 0x3f != 0 || f[21] != 0;
            let echo = f[23] == ICMP && matches!(f[34], 0 | 8);
            if f[14] != 0x45 || !(l4_with_ports(f[23]) || echo) || fragment {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
            if total + 14 != frame.len() || !l4_whole(frame, 34, f[23]) {
                return None;
            }
            k[at(0)..at(WINDOW_V4)].copy_from_slice(f);
            k[at(16)..at(20)].fill(0); // total length, identification
            k[at(24)..at(26)].fill(0); // header checksum
            if echo {
                k[at(36)..at(38)].fill(0); // ICMP checksum
            }
        }
        [0x86, 0xdd] => {
            let f = frame.get(..WINDOW)?;
            let echo = f[20] == ICMPV6 && matches!(f[54], 128 | 129);
            if !(l4_with_ports(f[20]) || echo) {
                return None;
            }
            let payload = usize::from(u16::from_be_bytes([f[18], f[19]]));
            if payload + 54 != frame.len() || !l4_whole(frame, 54, f[20]) {
                return None;
            }
            k[at(0)..at(WINDOW)].copy_from_slice(f);
            k[at(18)..at(20)].fill(0); // payload length
            if echo {
                k[at(56)..at(58)].fill(0); // ICMPv6 checksum
            }
        }
        _ => return None,
    }
    Some(k)
}

/// A frame with kernel key `key`: the key's window, the rest of a minimal L4 header (TCP:
/// 20 bytes, no flags; UDP: its length; SCTP, ICMP echo: zero) and no payload, the IP
/// length field saying so. Its flow key is every such packet's, TCP flags aside (the one
/// field of a keyed packet outside its key, which no kernel entry's megaflow looks at): a
/// control plane can translate it to check an entry still forwards where it does. None
/// for bytes [`kernel_key`] never gives.
pub fn frame_of(key: &KernelKey) -> Option<Vec<u8>> {
    let f = &key[FRAME_AT..FRAME_AT + WINDOW];
    // Where L4 starts, the IP protocol, where the length field is and what it counts from.
    let (l4, proto, len_at, len_from) = match f[12..14] {
        [0x08, 0x00] => (34, f[23], 16, 14),
        [0x86, 0xdd] => (54, f[20], 18, 54),
        _ => return None,
    };
    let l4_len = match proto {
        6 => 20,
        17 | ICMP | ICMPV6 => 8,
        132 => 12,
        _ => return None,
    };
    let mut frame = f[..l4 + 4].to_vec();
    frame.resize(l4 + l4_len, 0);
    let len = (frame.len() - len_from) as u16;
    frame[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
    match proto {
        6 => frame[l4 + 12] = 0x50,
        17 => frame[l4 + 4..l4 + 6].copy_from_slice(&8u16.to_be_bytes()),
        _ => {}
    }
    Some(frame)
}

/// Whether the L4 header of `proto` at `l4` lies whole in `frame`, which ends where its IP
/// datagram does: the parser then reads it (a TCP header as long as its data offset says),
/// whatever the bytes the key zeroes, so a packet with the key parses as the one that put
/// it in. A datagram whose length field disagrees with the frame, or whose L4 header is cut
/// short, would parse without its L4 fields: such a packet never has a key.
fn l4_whole(frame: &[u8], l4: usize, proto: u8) -> bool {
    let len = frame.len().saturating_sub(l4);
    match proto {
        6 => len >= 20 && (20..=len).contains(&(usize::from(frame[l4 + 12] >> 4) * 4)),
        132 => len >= 12,
        _ => len >= 8,
    }
}

/// The port the kernel may forward a megaflow's packets to: its actions output the packet
/// unchanged to one port, not its input port nor a reserved one, and its mask (`wc`) does
/// not cover TCP flags (the one field of a keyed packet outside its key).
pub fn kernel_output(actions: &[DpAction], wc: &FlowMask, in_port: u32) -> Option<u32> {
    match actions {
        [DpAction::Output(p)] if *p <= OFPP_MAX && *p != in_port => {
            (wc.get(Field::TcpFlags) == 0).then_some(*p)
        }
        _ => None,
    }
}

/// The tag of entries translated at pipeline `generation` and MAC table `mac_version`.
pub fn tag(generation: u64, mac_version: u64) -> u64 {
    (generation & 0xffff_ffff) | (mac_version << 32)
}

/// Which megaflows a revalidation kept ([`KernelFlows::revalidate`]).
pub type Keep<'a> = &'a dyn Fn(&Megaflow) -> bool;

/// The kernel side of a datapath's caches (implemented where I/O is allowed).
pub trait KernelFlows: Send {
    /// A packet with `key` was forwarded by `mf` (translated at `tag`) to `out_port` alone:
    /// the kernel may forward the rest of its microflow. Called for every such packet that
    /// reaches userspace: keeps what it was offered and does nothing the second time.
    fn offer(&mut self, key: &KernelKey, mf: &Arc<Megaflow>, out_port: u32, tag: u64);
    /// The packets processed since the last call have been sent: put in what was offered
    /// for them. (An entry in before its packet left would let the kernel forward the
    /// flow's next packets ahead of it.)
    fn commit(&mut self);
    /// Credits what the kernel forwarded since the last call to the entries' megaflows (as
    /// used at `now`), and drops entries idle for long. May do nothing if called again soon.
    fn harvest(&mut self, now: Nanos);
    /// When a [`KernelFlows::harvest`] call next has work to do (on the clock of its
    /// `now`): 0 while a round is under way (call again soon), the time the next round is
    /// due while there are entries, None without entries.
    fn next_harvest(&self) -> Option<Nanos> {
        None
    }
    /// The datapath revalidated its caches against pipeline `p` and MAC table `mac_version`
    /// (entries tagged older are stale everywhere from now on, but for those the kernel
    /// table finds `p` still forwards the same way: [`super::still_forwards`]): credit
    /// every entry's counts, keep those whose megaflow `keep` says survived, tagged
    /// [`tag`]`(p.generation(), mac_version)`, and drop the rest.
    fn revalidate(&mut self, now: Nanos, p: &Pipeline, mac_version: u64, keep: Keep<'_>);
    /// The datapath drops its caches: [`KernelFlows::revalidate`] keeping nothing.
    fn clear(&mut self, now: Nanos, p: &Pipeline, mac_version: u64) {
        self.revalidate(now, p, mac_version, &|_| false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 with a 20-byte L4 header (as TCP: data offset 5) and 6 bytes of payload.
    fn v4(proto: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend([
            0x45, 0x10, 0, 46, 0x12, 0x34, 0x40, 0, 64, proto, 0xab, 0xcd,
        ]);
        f.extend([10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0, 80]);
        f.extend([0xee; 8]); // TCP seq, ack
        f.extend([0x50, 0x18, 0xee, 0xee, 0xee, 0xee, 0, 0]); // offset, flags, window, ...
        f.extend([0xdd; 6]);
        f
    }

    fn v6(nh: u8) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
        f.extend([0x60, 0x01, 0x23, 0x45, 0, 26, nh, 64]);
        f.extend([0xfd; 16]);
        f.extend([0xfe; 16]);
        f.extend([0x30, 0x39, 0, 80]);
        f.extend([0xee; 8]);
        f.extend([0x50, 0x18, 0xee, 0xee, 0xee, 0xee, 0, 0]);
        f.extend([0xdd; 6]);
        f
    }

    /// `f` with `n` more bytes of payload and its IP length field saying so.
    fn longer(f: &[u8], n: usize) -> Vec<u8> {
        let mut g = f.to_vec();
        g.extend(std::iter::repeat_n(0x77, n));
        let (at, len) = if g[12] == 0x08 {
            (16, g.len() - 14)
        } else {
            (18, g.len() - 54)
        };
        g[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
        g
    }

    /// `frame_of` gives back a frame with the key, whose flow key is the original's but
    /// for TCP flags.
    #[test]
    fn a_keys_frame_has_the_key_and_the_flow_key_of_its_packets() {
        use crate::packet::{RxMeta, parse};
        let mut echo4 = v4(ICMP);
        echo4[34] = 8;
        let mut echo6 = v6(ICMPV6);
        echo6[54] = 129;
        let frames = [v4(6), v4(17), v4(132), echo4, v6(6), v6(17), v6(132), echo6];
        for (i, f) in frames.iter().enumerate() {
            let k = kernel_key(3, f).unwrap_or_else(|| panic!("frame {i}: no key"));
            let g = frame_of(&k).unwrap();
            assert_eq!(kernel_key(3, &g), Some(k), "frame {i}");
            let mut want = parse(f, RxMeta::port(3)).key;
            want.set(Field::TcpFlags, 0);
            assert_eq!(parse(&g, RxMeta::port(3)).key, want, "frame {i}");
        }
        let mut arp = [0u8; KEY_LEN];
        arp[FRAME_AT + 12..FRAME_AT + 14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(frame_of(&arp), None);
    }

    #[test]
    fn the_key_is_the_port_and_the_frame_head_without_the_bytes_that_change_per_packet() {
        let f = v4(6);
        let k = kernel_key(7, &f).unwrap();
        assert_eq!(k[..4], 7u32.to_ne_bytes());
        assert_eq!(k[4..20], f[..16]);
        assert_eq!(k[20..24], [0; 4]);
        assert_eq!(k[24..28], f[20..24]);
        assert_eq!(k[28..30], [0; 2]);
        assert_eq!(k[30..42], f[26..38]);
        assert!(k[42..].iter().all(|&b| b == 0));
        // Another packet of the flow: other length, id, checksum, TCP header past the ports.
        let mut g = longer(&f, 1000);
        g[18..20].copy_from_slice(&[0x99, 0x99]);
        g[24..26].copy_from_slice(&[1, 2]);
        g[38..46].fill(0x11);
        g[47] = 0x02;
        assert_eq!(kernel_key(7, &g), Some(k));
        // Another port, address, port, TTL, TOS or DF bit: another key.
        assert_ne!(kernel_key(8, &f), Some(k));
        for byte in [15, 20, 22, 29, 33, 37] {
            let mut g = f.clone();
            g[byte] ^= 1;
            assert_ne!(kernel_key(7, &g), Some(k), "byte {byte}");
        }
        let f = v6(17);
        let k = kernel_key(1, &f).unwrap();
        assert_eq!(k[4..22], f[..18]);
        assert_eq!(k[22..24], [0; 2]);
        assert_eq!(k[24..62], f[20..58]);
        let mut g = longer(&f, 300);
        g[58..66].fill(0);
        assert_eq!(kernel_key(1, &g), Some(k));
        g[17] ^= 1; // flow label
        assert_ne!(kernel_key(1, &g), Some(k));
    }

    #[test]
    fn only_plain_tcp_udp_and_sctp_frames_have_a_key() {
        for p in [6, 17, 132] {
            assert!(kernel_key(1, &v4(p)).is_some());
            assert!(kernel_key(1, &v6(p)).is_some());
        }
        for p in [1, 47, 50, 58, 0] {
            assert!(kernel_key(1, &v4(p)).is_none(), "ipv4 proto {p}");
            assert!(kernel_key(1, &v6(p)).is_none(), "ipv6 next header {p}");
        }
        // ICMP: echo requests and replies only (v4(1) and v6(58) carry type 0x30, 48).
        for ty in [0, 8] {
            let mut f = v4(ICMP);
            f[34] = ty;
            let k = kernel_key(1, &f).unwrap();
            assert_eq!(k[4 + 36..4 + 38], [0, 0], "checksum zeroed");
            f[36..38].copy_from_slice(&[0x12, 0x34]);
            f[38..42].fill(7); // id, sequence number
            assert_eq!(kernel_key(1, &f), Some(k));
            f[35] = 1; // code
            assert_ne!(kernel_key(1, &f), Some(k));
        }
        for ty in [128, 129] {
            let mut f = v6(ICMPV6);
            f[54] = ty;
            let k = kernel_key(1, &f).unwrap();
            assert_eq!(k[4 + 56..4 + 58], [0, 0], "checksum zeroed");
        }
        for ty in [3, 11, 5] {
            let mut f = v4(ICMP);
            f[34] = ty;
            assert!(kernel_key(1, &f).is_none(), "icmp type {ty}");
        }
        for ty in [1, 133, 135, 136] {
            let mut f = v6(ICMPV6);
            f[54] = ty;
            assert!(kernel_key(1, &f).is_none(), "icmpv6 type {ty}");
        }
        let mut opts = v4(6);
        opts[14] = 0x46;
        assert!(kernel_key(1, &opts).is_none());
        // Fragments (more fragments, or an offset): none; the DF bit alone is fine.
        for (b20, b21) in [(0x20, 0), (0x00, 0xb9), (0x01, 0)] {
            let mut frag = v4(17);
            frag[20..22].copy_from_slice(&[b20, b21]);
            assert!(kernel_key(1, &frag).is_none(), "{b20:#x} {b21:#x}");
        }
        assert!(kernel_key(1, &v4(6)[..37]).is_none());
        assert!(kernel_key(1, &v6(6)[..57]).is_none());
        // The IP length field must say where the frame ends (no Ethernet padding, no BIG
        // TCP length 0), and the L4 header must be whole: else the parser would see no L4
        // header, and such a packet must not take a well-formed one's entry.
        for f in [v4(6), v6(6)] {
            let at = if f[12] == 0x08 { 16 } else { 18 };
            let len = u16::from_be_bytes([f[at], f[at + 1]]);
            for bad in [0, 20, len - 1, len + 1] {
                let mut g = f.clone();
                g[at..at + 2].copy_from_slice(&bad.to_be_bytes());
                assert!(kernel_key(1, &g).is_none(), "length {bad} for {len}");
            }
            let tcp = if f[12] == 0x08 { 34 } else { 54 };
            for offset in [0x00, 0x40, 0x70, 0xf0] {
                let mut g = f.clone();
                g[tcp + 12] = offset;
                assert!(kernel_key(1, &g).is_none(), "data offset {offset:#x}");
            }
            let mut g = f.clone();
            g[tcp + 12] = 0x60; // 24 bytes: whole in the 26 there are
            assert!(kernel_key(1, &g).is_some());
        }
        // UDP and SCTP need 8 and 12 bytes, ICMP 8.
        let cut = |f: &[u8], n: usize| longer(&f[..f.len() - n], 0);
        assert!(kernel_key(1, &cut(&v4(17), 18)).is_some()); // 8 left
        assert!(kernel_key(1, &cut(&v4(17), 19)).is_none());
        assert!(kernel_key(1, &cut(&v4(132), 14)).is_some()); // 12 left
        assert!(kernel_key(1, &cut(&v4(132), 15)).is_none());
        let mut tagged = v4(6);
        tagged.splice(12..12, [0x81, 0x00, 0, 5]);
        assert!(kernel_key(1, &tagged).is_none());
        let mut arp = v4(6);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(kernel_key(1, &arp).is_none());
    }

    #[test]
    fn only_a_single_plain_output_to_another_port_goes_to_the_kernel() {
        let wc = FlowMask::field_mask(Field::Ipv4Dst);
        assert_eq!(kernel_output(&[DpAction::Output(2)], &wc, 1), Some(2));
        assert_eq!(kernel_output(&[DpAction::Output(1)], &wc, 1), None);
        assert_eq!(
            kernel_output(&[DpAction::Output(OFPP_MAX + 1)], &wc, 1),
            None
        );
        assert_eq!(kernel_output(&[], &wc, 1), None);
        let two = [DpAction::Output(2), DpAction::Output(3)];
        assert_eq!(kernel_output(&two, &wc, 1), None);
        let rewrite = [DpAction::SetField(Field::EthDst, 5), DpAction::Output(2)];
        assert_eq!(kernel_output(&rewrite, &wc, 1), None);
        let flags = FlowMask::field_mask(Field::TcpFlags);
        assert_eq!(kernel_output(&[DpAction::Output(2)], &flags, 1), None);
    }

    #[test]
    fn tags_differ_when_either_version_does() {
        assert_ne!(tag(1, 0), tag(2, 0));
        assert_ne!(tag(1, 0), tag(1, 1));
        assert_eq!(tag(5, 3), 5 | (3 << 32));
    }
}
