//! The kernel flow table's I/O: BPF maps and the two programs that use them (this module
//! does I/O; what goes into the table is decided in [`crate::cache::kernel`]).
//!
//! - [`KernelTable`]: the flows hash map ([`KernelKey`] → a [`VALUE_LEN`]-byte entry: output
//!   ifindex, tag, packet and byte counts), the epoch array map (two `u64`s: the current tag
//!   and, during a [`KernelTable::transition`], the next one; an entry carrying either is
//!   used) and the per-CPU hidden flag (below), created through raw `bpf(2)`.
//! - A third program, run through `BPF_PROG_TEST_RUN` rather than attached, sets one
//!   entry's tag in place ([`KernelTable::retag`]): a map update would replace the whole
//!   value, losing what a packet counts meanwhile.
//! - [`KernelTable::attach`]: for one input port, a tc program on the device's tcx ingress
//!   that computes the packet's key exactly as [`kernel_key`](crate::cache::kernel::kernel_key)
//!   does, looks it up and `bpf_redirect`s a current hit to its output device, counting it;
//!   and a socket filter on the port's packet socket that drops the same hits, since packet
//!   taps see a packet before tc ingress does. Anything else passes both untouched.
//! - The two decide at two moments (filter, then tc, on one CPU), and the datapath thread may
//!   put an entry in between: the packet would then reach the port *and* be redirected,
//!   forwarded twice (a burst's second packet often is). So the filter leaves its verdict in
//!   a per-CPU flag and tc redirects only a packet the filter hid; a hit whose entry went
//!   stale in between goes neither way (lost, at a change, as a packet in flight may be).
//! - A small eBPF assembler (`Asm`) the programs are written with: no compiler, no object
//!   files, no libbpf.
//!
//! Program outline (r6 = ctx, the key at fp-64..fp, its frame at fp-60):
//!
//! ```text
//! hidden = this CPU's flag; tc: if !hidden: miss;  both: hidden = 0
//! key = 0; key.in_port = IN_PORT
//! if ctx.vlan_present: miss                      (tags are in the key's frame, never here)
//! skb_load_bytes(0, key+4, 14) or miss; ethertype 0800 -> v4, 86dd -> v6, else miss
//! v4: skb_load_bytes(14, key+18, 24) or miss; ihl=5, proto tcp/udp/sctp or an ICMP echo
//!     (its checksum zeroed), zero len+id, csum
//! v6: skb_load_bytes(14, key+18, 44) or miss; next header tcp/udp/sctp or an ICMPv6 echo
//!     (its checksum zeroed), zero payload len
//! e = flows[key] or miss; e.tag in epoch[0] (current, next) or miss
//! tc:     e.packets += 1; e.bytes += ctx.len; return bpf_redirect(e.ifindex, 0)   miss: TCX_NEXT
//! socket: hidden = 1; return 0 (drop)                                              miss: whole packet
//! ```

// This is a port I/O module: it talks to the kernel through raw `bpf(2)` and
// `setsockopt(2)` with pointers to buffers it owns. Every block says why it is sound.
#![allow(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use crate::cache::kernel::{FRAME_AT, ICMP, ICMPV6, KEY_LEN, KernelKey, tag};

/// Bytes of an entry's value.
pub const VALUE_LEN: usize = 32;

// `bpf(2)` commands (enum bpf_cmd).
const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_MAP_LOOKUP_BATCH: u32 = 24;
const BPF_MAP_DELETE_BATCH: u32 = 27;
const BPF_LINK_CREATE: u32 = 28;
const BPF_LINK_DETACH: u32 = 34;

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
/// enum bpf_attach_type: tcx ingress (Linux 6.6).
const BPF_TCX_INGRESS: u32 = 46;
/// Map update flag: create or replace.
const BPF_ANY: u64 = 0;
const SO_ATTACH_BPF: libc::c_int = 50;
/// `SO_DETACH_BPF` is `SO_DETACH_FILTER`.
const SO_DETACH_BPF: libc::c_int = 27;

// Helper ids (enum bpf_func_id).
const FN_MAP_LOOKUP_ELEM: i32 = 1;
const FN_REDIRECT: i32 = 23;
const FN_SKB_LOAD_BYTES: i32 = 26;

// `struct __sk_buff` offsets.
const SKB_LEN: i16 = 0;
const SKB_VLAN_PRESENT: i16 = 20;

/// tcx verdict: run the next program or carry on as without one.
const TCX_NEXT: i32 = -1;
/// Socket filter verdicts: bytes of the packet the socket gets.
const SOCK_DROP: i32 = 0;
const SOCK_WHOLE: i32 = -1; // 0xffff_ffff as the u32 the filter returns

/// What the programs see of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Value {
    out_ifindex: u32,
    tag: u64,
    packets: u64,
    bytes: u64,
}

impl Value {
    // Offsets of the fields in the value (host byte order).
    const IFINDEX: i16 = 0;
    const TAG: i16 = 8;
    const PACKETS: i16 = 16;
    const BYTES: i16 = 24;

    fn to_bytes(self) -> [u8; VALUE_LEN] {
        let mut v = [0u8; VALUE_LEN];
        v[..4].copy_from_slice(&self.out_ifindex.to_ne_bytes());
        v[8..16].copy_from_slice(&self.tag.to_ne_bytes());
        v[16..24].copy_from_slice(&self.packets.to_ne_bytes());
        v[24..].copy_from_slice(&self.bytes.to_ne_bytes());
        v
    }

    fn from_bytes(v: &[u8; VALUE_LEN]) -> Value {
        let u64_at = |o: usize| u64::from_ne_bytes(v[o..o + 8].try_into().unwrap());
        Value {
            out_ifindex: u32::from_ne_bytes(v[..4].try_into().unwrap()),
            tag: u64_at(8),
            packets: u64_at(16),
            bytes: u64_at(24),
        }
    }
}

/// Which of the two programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// tcx ingress (`BPF_PROG_TYPE_SCHED_CLS`): redirects hits, counts them.
    Tc,
    /// The port's packet socket (`BPF_PROG_TYPE_SOCKET_FILTER`): drops hits.
    Socket,
}

/// The kernel flow table's maps and the tag entries must carry to be used.
pub struct KernelTable {
    flows: OwnedFd,
    epoch: OwnedFd,
    /// Per CPU, one `u64`: 1 while the packet in hand is one the socket filter hid from
    /// the port (its tc program may redirect only such a packet).
    hidden: OwnedFd,
    /// Rewrites one entry's tag in place ([`KernelTable::retag`]).
    retag: OwnedFd,
    max_entries: u32,
    /// The (generation, MAC version) the epoch map holds the tag of.
    current: Mutex<(u64, u64)>,
}

impl fmt::Debug for KernelTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = *self.current.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("KernelTable")
            .field("flows", &self.flows.as_raw_fd())
            .field("epoch", &self.epoch.as_raw_fd())
            .field("max_entries", &self.max_entries)
            .field("current", &current)
            .finish()
    }
}

impl KernelTable {
    /// Creates the maps (flows holds at most `max_entries`).
    pub fn new(max_entries: u32) -> io::Result<KernelTable> {
        let flows = map_create(
            "fuxi_flows",
            BPF_MAP_TYPE_HASH,
            KEY_LEN as u32,
            VALUE_LEN as u32,
            max_entries,
        )?;
        let epoch = map_create("fuxi_epoch", BPF_MAP_TYPE_ARRAY, 4, 16, 1)?;
        let hidden = map_create("fuxi_hidden", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1)?;
        let retag = prog_load(
            BPF_PROG_TYPE_SCHED_CLS,
            "fuxi_retag",
            &retag_program(flows.as_raw_fd()),
        )?;
        Ok(KernelTable {
            flows,
            epoch,
            hidden,
            retag,
            max_entries,
            current: Mutex::new((0, 0)),
        })
    }

    /// Loads both programs for OpenFlow port `in_port` and attaches them: tc on `ifindex`'s
    /// tcx ingress, the filter on `sock` (the port's AF_PACKET socket).
    ///
    /// Call it in the network namespace of the device. The filter goes on first: should
    /// the table already hold entries for `in_port`, a hit in between is dropped rather than
    /// both redirected and received.
    pub fn attach(
        &self,
        in_port: u32,
        ifindex: u32,
        sock: BorrowedFd<'_>,
    ) -> io::Result<KernelPort> {
        let filter = self.load(in_port, Flavour::Socket)?;
        let tc = self.load(in_port, Flavour::Tc)?;
        let sock = sock.try_clone_to_owned()?;
        setsockopt(sock.as_raw_fd(), SO_ATTACH_BPF, &filter.as_raw_fd())
            .map_err(|e| io::Error::new(e.kind(), format!("attaching the socket filter: {e}")))?;
        let link = match tcx_attach(&tc, ifindex) {
            Ok(link) => link,
            Err(e) => {
                let _ = setsockopt(sock.as_raw_fd(), SO_DETACH_BPF, &0);
                return Err(e);
            }
        };
        Ok(KernelPort {
            in_port,
            ifindex,
            link: Some(link),
            _tc: tc,
            _filter: filter,
            sock,
        })
    }

    /// Loads the `flavour` program for OpenFlow port `in_port` without attaching it (for
    /// tests: see [`test_run`]).
    pub fn load(&self, in_port: u32, flavour: Flavour) -> io::Result<OwnedFd> {
        let insns = program(
            in_port,
            flavour,
            self.flows.as_raw_fd(),
            self.epoch.as_raw_fd(),
            self.hidden.as_raw_fd(),
        );
        let (ty, name) = match flavour {
            Flavour::Tc => (BPF_PROG_TYPE_SCHED_CLS, "fuxi_tc"),
            Flavour::Socket => (BPF_PROG_TYPE_SOCKET_FILTER, "fuxi_sock"),
        };
        prog_load(ty, name, &insns)
    }

    /// Makes `tag(generation, mac_version)` the current tag, each part the max of what it
    /// was told so far (an older caller never makes stale entries current again); writes
    /// the epoch map only when it changes.
    pub fn set_current(&self, generation: u64, mac_version: u64) -> io::Result<()> {
        self.transition(generation, mac_version, |_| {})
    }

    /// [`KernelTable::set_current`] in two steps, so that entries still right under the
    /// new tag never stop forwarding: the new tag becomes the *next* one (entries carrying
    /// either forward), `retag(new tag)` moves the entries that stay right under pipeline
    /// `generation` to it ([`KernelTable::retag`]), then it becomes the current one alone
    /// and the others stop. `retag` is not called when a newer generation is current
    /// already (what it checks against would be older than the tag). Calls (of both) are
    /// serialised: `retag` must not call either.
    pub fn transition(
        &self,
        generation: u64,
        mac_version: u64,
        retag: impl FnOnce(u64),
    ) -> io::Result<()> {
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let next = (cur.0.max(generation), cur.1.max(mac_version));
        if next == *cur {
            return Ok(());
        }
        let (old, new) = (tag(cur.0, cur.1), tag(next.0, next.1));
        let epoch = |current: u64, next: u64| {
            let mut v = [0u8; 16];
            v[..8].copy_from_slice(&current.to_ne_bytes());
            v[8..].copy_from_slice(&next.to_ne_bytes());
            map_update(&self.epoch, &0u32.to_ne_bytes(), &v)
        };
        if next.0 == generation {
            epoch(old, new)?;
            retag(new);
        }
        epoch(new, 0)?;
        *cur = next;
        Ok(())
    }

    /// Sets the tag of each of `keys`' entries to `tag` in place (counts go on; a packet
    /// being counted meanwhile is not lost, as it would be by [`KernelTable::insert`]), up
    /// to [`RETAG_BATCH`] a `bpf(2)` call; `found` hears, in order, whether each had one.
    pub fn retag(
        &self,
        keys: &[KernelKey],
        tag: u64,
        mut found: impl FnMut(bool),
    ) -> io::Result<()> {
        const ONE: usize = KEY_LEN + 8;
        let mut data = Vec::with_capacity(RETAG_AT + RETAG_BATCH * ONE);
        for chunk in keys.chunks(RETAG_BATCH) {
            // An Ethernet header the kernel takes as one of an unknown type (it checks IP
            // headers), then key and tag, key and tag...
            data.clear();
            data.extend_from_slice(&[0; 12]);
            data.extend_from_slice(&[0x88, 0xb5]);
            for key in chunk {
                data.extend_from_slice(key);
                data.extend_from_slice(&tag.to_ne_bytes());
            }
            let bits = test_run(self.retag.as_fd(), &data)?;
            for i in 0..chunk.len() {
                found(bits & (1 << i) != 0);
            }
        }
        Ok(())
    }

    /// Puts `key` → redirect to `out_ifindex`, tagged `tag`, counts 0 (replaces an existing
    /// entry, whose counts are lost: read them first).
    ///
    /// `out_ifindex` is a device in the input device's network namespace. A full table
    /// refuses a new key with `E2BIG`.
    pub fn insert(&self, key: &KernelKey, out_ifindex: u32, tag: u64) -> io::Result<()> {
        let v = Value {
            out_ifindex,
            tag,
            packets: 0,
            bytes: 0,
        };
        map_update(&self.flows, key, &v.to_bytes())
    }

    /// Cumulative (packets, bytes) the kernel forwarded for `key`; None if it has no entry.
    pub fn counts(&self, key: &KernelKey) -> io::Result<Option<(u64, u64)>> {
        let mut v = [0u8; VALUE_LEN];
        match map_lookup(&self.flows, key, &mut v) {
            Ok(()) => {
                let v = Value::from_bytes(&v);
                Ok(Some((v.packets, v.bytes)))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Calls `each(key, packets, bytes)` for every entry, reading the map in batches of a
    /// thousand (a few `bpf(2)` calls where [`KernelTable::counts`] takes one per entry).
    /// An entry put in or removed meanwhile may or may not be seen; one that stays is.
    pub fn counts_all(&self, mut each: impl FnMut(&KernelKey, u64, u64)) -> io::Result<()> {
        const N: usize = 1024;
        let mut keys = vec![[0u8; KEY_LEN]; N];
        let mut values = vec![[0u8; VALUE_LEN]; N];
        // The hash map's batch token (a bucket number), in and out.
        let (mut token, mut next) = (0u64, 0u64);
        let mut first = true;
        loop {
            let mut attr = BatchAttr {
                in_batch: if first {
                    0
                } else {
                    &token as *const u64 as u64
                },
                out_batch: &mut next as *mut u64 as u64,
                keys: keys.as_mut_ptr() as u64,
                values: values.as_mut_ptr() as u64,
                count: N as u32,
                map_fd: self.flows.as_raw_fd() as u32,
                ..BatchAttr::default()
            };
            // SAFETY: `keys` and `values` hold `count` keys and values of the map's sizes,
            // the tokens 8 bytes (the kernel uses 4), all live for the call; the kernel
            // writes only into them and `attr.count`.
            let done = match unsafe { sys_bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) } {
                Ok(_) => false,
                // The last batch (possibly empty).
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => true,
                Err(e) => return Err(e),
            };
            for (k, v) in keys.iter().zip(&values).take(attr.count as usize) {
                let v = Value::from_bytes(v);
                each(k, v.packets, v.bytes);
            }
            if done {
                return Ok(());
            }
            token = next;
            first = false;
        }
    }

    /// Removes the entries of `keys` (absent ones are fine), in one `bpf(2)` call when all
    /// are there.
    pub fn remove_all(&self, keys: &[KernelKey]) -> io::Result<()> {
        let mut rest = keys;
        while !rest.is_empty() {
            let n = rest.len().min(u32::MAX as usize);
            let mut attr = BatchAttr {
                keys: rest.as_ptr() as u64,
                count: n as u32,
                map_fd: self.flows.as_raw_fd() as u32,
                ..BatchAttr::default()
            };
            // SAFETY: `keys` points to `count` keys of the map's key size, live for the
            // call; the kernel writes back only `count`, a field of `attr`.
            match unsafe { sys_bpf(BPF_MAP_DELETE_BATCH, &mut attr) } {
                // The kernel stops at an absent key; `count` says how many went before it.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    rest = &rest[(attr.count as usize + 1).min(rest.len())..];
                }
                Err(e) => return Err(e),
                Ok(_) => rest = &rest[n..],
            }
        }
        Ok(())
    }
}

/// A port's attached programs; dropping it detaches the tc program, then the socket
/// filter. It holds the port's socket open (a duplicate descriptor) until then, so drop it
/// before or with the port.
#[derive(Debug)]
pub struct KernelPort {
    in_port: u32,
    ifindex: u32,
    /// The tcx link: closing it detaches the tc program.
    link: Option<OwnedFd>,
    _tc: OwnedFd,
    _filter: OwnedFd,
    /// The port's packet socket (a duplicate), to take the filter off.
    sock: OwnedFd,
}

impl KernelPort {
    /// The OpenFlow port the programs were built for.
    pub fn in_port(&self) -> u32 {
        self.in_port
    }

    /// The device whose ingress the tc program is attached to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Takes both programs off the port now, the tc program first (for when the table can
    /// no longer be kept current): from here on the port's packets all reach its socket.
    /// Dropping it afterwards is harmless.
    pub fn detach(&self) -> io::Result<()> {
        if let Some(link) = &self.link {
            let mut attr = LinkDetachAttr {
                link_fd: link.as_raw_fd() as u32,
            };
            // SAFETY: the attr holds no pointers.
            unsafe { sys_bpf(BPF_LINK_DETACH, &mut attr) }
                .map_err(|e| io::Error::new(e.kind(), format!("detaching the tc program: {e}")))?;
        }
        setsockopt(self.sock.as_raw_fd(), SO_DETACH_BPF, &0)
            .map_err(|e| io::Error::new(e.kind(), format!("detaching the socket filter: {e}")))
    }
}

impl Drop for KernelPort {
    fn drop(&mut self) {
        // tc first: while the filter is still on, nothing the tc program forwards reaches
        // userspace twice; the filter must not outlive it, or hits would go nowhere.
        drop(self.link.take());
        let _ = setsockopt(self.sock.as_raw_fd(), SO_DETACH_BPF, &0);
    }
}

/// Runs `prog` once on `frame` through `BPF_PROG_TEST_RUN`; returns its return value.
///
/// A tc program sees the frame from its Ethernet header; a socket filter sees it from the
/// byte after (the kernel pulls the Ethernet header off for every program type but tc's),
/// unlike on a packet socket, where it starts at the Ethernet header too. The kernel
/// refuses (EINVAL) frames of 14 bytes or fewer and IP frames without a whole, plausible
/// IP header.
pub fn test_run(prog: BorrowedFd<'_>, frame: &[u8]) -> io::Result<u32> {
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat: 1,
        ..TestRunAttr::default()
    };
    // SAFETY: `data_in` points to `frame`, live and `data_size_in` bytes long for the call;
    // no output buffers are given.
    unsafe { sys_bpf(BPF_PROG_TEST_RUN, &mut attr) }
        .map_err(|e| io::Error::new(e.kind(), format!("BPF test run: {e}")))?;
    Ok(attr.retval)
}

// ---------------------------------------------------------------------------------------
// The program.

/// A stack byte for what the programs read past the key's window (a TCP data offset),
/// below the key (fp-64) and the epoch map's key (fp-72).
const SCRATCH: i16 = -80;

/// The `flavour` program for OpenFlow port `in_port`, using maps `flows` and `epoch`.
fn program(in_port: u32, flavour: Flavour, flows: RawFd, epoch: RawFd, hidden: RawFd) -> Vec<Insn> {
    // Stack: the key at fp-64 (its frame at fp-60: frame byte i at fp-60+i), the epoch
    // and hidden maps' key at fp-72. Every access is aligned to its size.
    const KEY: i16 = -(KEY_LEN as i16);
    const FRAME: i16 = KEY + FRAME_AT as i16;
    const EPOCH_KEY: i16 = KEY - 8;
    let at = |off: i16| FRAME + off;
    let mut a = Asm::default();
    let miss = a.label();
    let v4 = a.label();
    let lookup = a.label();

    a.mov64_reg(R6, R1);
    // This CPU's hidden flag (R9 keeps it). The filter clears it, and sets it on a hit
    // below; tc takes it: a packet the filter let through to the port is not redirected,
    // whatever the table says by now (or it would be forwarded twice).
    a.st_imm(W, R10, EPOCH_KEY, 0);
    lookup_elem(&mut a, hidden, EPOCH_KEY, miss);
    a.mov64_reg(R9, R0);
    if flavour == Flavour::Tc {
        a.ldx(DW, R1, R9, 0);
        a.jmp_imm(JEQ, R1, 0, miss);
    }
    a.st_imm(DW, R9, 0, 0);
    for i in 0..KEY_LEN as i16 / 8 {
        a.st_imm(DW, R10, KEY + 8 * i, 0);
    }
    a.st_imm(W, R10, KEY, in_port as i32);
    a.ldx(W, R0, R6, SKB_VLAN_PRESENT);
    a.jmp_imm(JNE, R0, 0, miss);

    // Ethernet header; the ethertype as the u16 its two bytes make in host order.
    load_bytes(&mut a, 0, at(0), 14, miss);
    a.ldx(H, R1, R10, at(12));
    a.jmp_imm(JEQ, R1, u16::from_ne_bytes([0x08, 0x00]).into(), v4);
    a.jmp_imm(JNE, R1, u16::from_ne_bytes([0x86, 0xdd]).into(), miss);

    // IPv6 without extension headers: the header and the L4 ports (or ICMPv6 echo).
    let v6_echo = a.label();
    let v6_done = a.label();
    load_bytes(&mut a, 14, at(14), 44, miss);
    a.ldx(B, R1, R10, at(20)); // next header
    a.jmp_imm(JEQ, R1, ICMPV6.into(), v6_echo);
    l4_with_ports(&mut a, R1, miss);
    a.bind(v6_done);
    // The payload length says where the frame ends and the L4 header is whole.
    l4_whole(&mut a, at(18), 54, 0, at(20), 54, miss);
    a.st_imm(H, R10, at(18), 0); // payload length
    a.ja(lookup);
    echo(&mut a, v6_echo, at(54), [128, 129], v6_done, miss);

    // IPv4 without options: the header and the L4 ports (or ICMP echo).
    let v4_echo = a.label();
    let v4_done = a.label();
    a.bind(v4);
    load_bytes(&mut a, 14, at(14), 24, miss);
    a.ldx(B, R1, R10, at(14)); // version, IHL
    a.jmp_imm(JNE, R1, 0x45, miss);
    a.ldx(B, R1, R10, at(23)); // protocol
    a.jmp_imm(JEQ, R1, ICMP.into(), v4_echo);
    l4_with_ports(&mut a, R1, miss);
    a.bind(v4_done);
    // The total length says where the frame ends and the L4 header is whole.
    l4_whole(&mut a, at(16), 14, 20, at(23), 34, miss);
    a.st_imm(W, R10, at(16), 0); // total length, identification
    a.st_imm(H, R10, at(24), 0); // header checksum
    a.ja(lookup);
    echo(&mut a, v4_echo, at(34), [0, 8], v4_done, miss);

    // The entry, if current.
    a.bind(lookup);
    lookup_elem(&mut a, flows, KEY, miss);
    a.mov64_reg(R7, R0);
    a.st_imm(W, R10, EPOCH_KEY, 0);
    lookup_elem(&mut a, epoch, EPOCH_KEY, miss);
    let current = a.label();
    a.ldx(DW, R2, R7, Value::TAG);
    a.ldx(DW, R1, R0, 0);
    a.jmp_reg(JEQ, R1, R2, current);
    a.ldx(DW, R1, R0, 8);
    a.jmp_reg(JNE, R1, R2, miss);
    a.bind(current);

    match flavour {
        Flavour::Tc => {
            a.mov64_imm(R1, 1);
            a.atomic_add64(R7, R1, Value::PACKETS);
            a.ldx(W, R1, R6, SKB_LEN);
            a.atomic_add64(R7, R1, Value::BYTES);
            a.ldx(W, R1, R7, Value::IFINDEX);
            a.mov64_imm(R2, 0);
            a.call(FN_REDIRECT);
            a.exit();
            a.bind(miss);
            a.mov64_imm(R0, TCX_NEXT);
            a.exit();
        }
        Flavour::Socket => {
            a.st_imm(DW, R9, 0, 1);
            a.mov64_imm(R0, SOCK_DROP);
            a.exit();
            a.bind(miss);
            a.mov32_imm(R0, SOCK_WHOLE);
            a.exit();
        }
    }
    a.finish()
}

/// Where the first key starts in the retag program's packet.
const RETAG_AT: usize = 14;
/// Entries one run of the retag program moves at most (its return value's bits).
pub const RETAG_BATCH: usize = 32;

/// The retag program, run through `BPF_PROG_TEST_RUN` on a packet holding an Ethernet
/// header and up to [`RETAG_BATCH`] keys, each followed by a tag: sets each key's entry's
/// tag in place (one aligned 8-byte store, which the tc program reads whole). Returns bit
/// `i` set if key `i` had an entry. Unrolled: a test run costs ~2 µs, a key ~50 ns.
fn retag_program(flows: RawFd) -> Vec<Insn> {
    const KEY: i16 = -(KEY_LEN as i16);
    const TAG: i16 = KEY - 8;
    let mut a = Asm::default();
    let done = a.label();
    a.mov64_reg(R6, R1);
    a.mov64_imm(R7, 0);
    for i in 0..RETAG_BATCH {
        let next = a.label();
        let at = (RETAG_AT + i * (KEY_LEN + 8)) as i32;
        load_bytes(&mut a, at, KEY, KEY_LEN as i32, done);
        load_bytes(&mut a, at + KEY_LEN as i32, TAG, 8, done);
        lookup_elem(&mut a, flows, KEY, next);
        a.ldx(DW, R1, R10, TAG);
        a.stx(DW, R0, R1, Value::TAG);
        a.alu64_imm(OP_OR, R7, 1 << i);
        a.bind(next);
    }
    a.bind(done);
    a.mov64_reg(R0, R7);
    a.exit();
    a.finish()
}

/// R0 = `bpf_map_lookup_elem(map, fp+key)`, to `miss` if there is no such element.
fn lookup_elem(a: &mut Asm, map: RawFd, key: i16, miss: Label) {
    a.ld_map_fd(R1, map);
    a.mov64_reg(R2, R10);
    a.add64_imm(R2, key.into());
    a.call(FN_MAP_LOOKUP_ELEM);
    a.jmp_imm(JEQ, R0, 0, miss);
}

/// `bpf_skb_load_bytes(ctx, off, fp+to, len)`, to `miss` on error (packet too short).
fn load_bytes(a: &mut Asm, off: i32, to: i16, len: i32, miss: Label) {
    a.mov64_reg(R1, R6);
    a.mov64_imm(R2, off);
    a.mov64_reg(R3, R10);
    a.add64_imm(R3, to.into());
    a.mov64_imm(R4, len);
    a.call(FN_SKB_LOAD_BYTES);
    a.jmp_imm(JNE, R0, 0, miss);
}

/// At `here`: an ICMP or ICMPv6 header whose type (at stack offset `ty`) must be one of
/// the two echo types, else to `miss`; its checksum (2 bytes on) is zeroed, then on to
/// `done`.
fn echo(a: &mut Asm, here: Label, ty: i16, types: [i32; 2], done: Label, miss: Label) {
    let ok = a.label();
    a.bind(here);
    a.ldx(B, R1, R10, ty);
    a.jmp_imm(JEQ, R1, types[0], ok);
    a.jmp_imm(JNE, R1, types[1], miss);
    a.bind(ok);
    a.st_imm(H, R10, ty + 2, 0); // checksum
    a.ja(done);
}

/// To `miss` unless the IP length field at stack offset `len_at` (network order) equals the
/// packet's length less `before` (the bytes the field does not count), and the L4 header of
/// the protocol at `proto_at`, at frame offset `l4` (`ip_hdr` bytes of the field's count
/// before it), is whole: 20 bytes and its data offset's worth for TCP, 12 for SCTP, 8 for
/// the rest — as `kernel::l4_whole`. Uses R1–R5 and R8.
fn l4_whole(
    a: &mut Asm,
    len_at: i16,
    before: i32,
    ip_hdr: i32,
    proto_at: i16,
    l4: i32,
    miss: Label,
) {
    let (tcp, other, ok) = (a.label(), a.label(), a.label());
    a.ldx(B, R2, R10, len_at);
    a.alu64_imm(OP_LSH, R2, 8);
    a.ldx(B, R3, R10, len_at + 1);
    a.alu64_reg(OP_OR, R2, R3);
    a.ldx(W, R3, R6, SKB_LEN);
    a.alu64_imm(OP_SUB, R3, before);
    a.jmp_reg(JNE, R2, R3, miss);
    a.jmp_imm(JLT, R2, ip_hdr, miss);
    a.alu64_imm(OP_SUB, R2, ip_hdr);
    a.mov64_reg(R8, R2); // the L4 bytes
    a.ldx(B, R1, R10, proto_at);
    a.jmp_imm(JEQ, R1, 6, tcp);
    a.mov64_imm(R4, 8);
    a.jmp_imm(JNE, R1, 132, other);
    a.mov64_imm(R4, 12);
    a.bind(other);
    a.jmp_reg(JLT, R8, R4, miss);
    a.ja(ok);
    a.bind(tcp);
    a.jmp_imm(JLT, R8, 20, miss);
    load_bytes(a, l4 + 12, SCRATCH, 1, miss);
    a.ldx(B, R1, R10, SCRATCH);
    a.alu64_imm(OP_RSH, R1, 4);
    a.alu64_imm(OP_LSH, R1, 2);
    a.jmp_imm(JLT, R1, 20, miss);
    a.jmp_reg(JGT, R1, R8, miss);
    a.bind(ok);
}

/// To `miss` unless IP protocol `reg` is TCP, UDP or SCTP (see
/// [`crate::cache::kernel::l4_with_ports`]).
fn l4_with_ports(a: &mut Asm, reg: u8, miss: Label) {
    let ok = a.label();
    a.jmp_imm(JEQ, reg, 6, ok);
    a.jmp_imm(JEQ, reg, 17, ok);
    a.jmp_imm(JNE, reg, 132, miss);
    a.bind(ok);
}

// ---------------------------------------------------------------------------------------
// The assembler.

/// One eBPF instruction (struct bpf_insn).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;
const R10: u8 = 10;

// Instruction classes.
const CLS_LD: u8 = 0x00;
const CLS_LDX: u8 = 0x01;
const CLS_ST: u8 = 0x02;
const CLS_STX: u8 = 0x03;
const CLS_ALU: u8 = 0x04;
const CLS_JMP: u8 = 0x05;
const CLS_ALU64: u8 = 0x07;
// Sizes.
const W: u8 = 0x00;
const H: u8 = 0x08;
const B: u8 = 0x10;
const DW: u8 = 0x18;
// Modes.
const MODE_IMM: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const MODE_ATOMIC: u8 = 0xc0;
// Sources.
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
// ALU operations.
const OP_ADD: u8 = 0x00;
const OP_SUB: u8 = 0x10;
const OP_OR: u8 = 0x40;
const OP_LSH: u8 = 0x60;
const OP_RSH: u8 = 0x70;
const OP_MOV: u8 = 0xb0;
// Jump operations.
const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JNE: u8 = 0x50;
const JGT: u8 = 0x20;
const JLT: u8 = 0xa0;
const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
/// `ld_imm64`'s src_reg when the immediate is a map fd.
const PSEUDO_MAP_FD: u8 = 1;

/// A jump target, bound to an instruction index by [`Asm::bind`].
#[derive(Clone, Copy, Debug)]
struct Label(usize);

/// Instructions being written, with jumps to labels resolved at the end.
#[derive(Debug, Default)]
struct Asm {
    insns: Vec<Insn>,
    /// Instruction index of each label, once bound.
    labels: Vec<Option<usize>>,
    /// Jumps whose offset is their label's.
    jumps: Vec<(usize, Label)>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// The next instruction is `l`'s target.
    fn bind(&mut self, l: Label) {
        assert!(self.labels[l.0].is_none(), "label bound twice");
        self.labels[l.0] = Some(self.insns.len());
    }

    fn emit(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            regs: dst | (src << 4),
            off,
            imm,
        });
    }

    fn mov64_imm(&mut self, dst: u8, imm: i32) {
        self.emit(CLS_ALU64 | OP_MOV | SRC_K, dst, 0, 0, imm);
    }

    fn mov32_imm(&mut self, dst: u8, imm: i32) {
        self.emit(CLS_ALU | OP_MOV | SRC_K, dst, 0, 0, imm);
    }

    fn mov64_reg(&mut self, dst: u8, src: u8) {
        self.emit(CLS_ALU64 | OP_MOV | SRC_X, dst, src, 0, 0);
    }

    fn add64_imm(&mut self, dst: u8, imm: i32) {
        self.alu64_imm(OP_ADD, dst, imm);
    }

    /// dst op= imm (64-bit)
    fn alu64_imm(&mut self, op: u8, dst: u8, imm: i32) {
        self.emit(CLS_ALU64 | op | SRC_K, dst, 0, 0, imm);
    }

    /// dst op= src (64-bit)
    fn alu64_reg(&mut self, op: u8, dst: u8, src: u8) {
        self.emit(CLS_ALU64 | op | SRC_X, dst, src, 0, 0);
    }

    /// dst = *(size *)(src + off)
    fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.emit(CLS_LDX | MODE_MEM | size, dst, src, off, 0);
    }

    /// *(size *)(dst + off) = imm
    fn st_imm(&mut self, size: u8, dst: u8, off: i16, imm: i32) {
        self.emit(CLS_ST | MODE_MEM | size, dst, 0, off, imm);
    }

    /// *(size *)(dst + off) = src.
    fn stx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.emit(CLS_STX | MODE_MEM | size, dst, src, off, 0);
    }

    /// Atomically *(u64 *)(dst + off) += src.
    fn atomic_add64(&mut self, dst: u8, src: u8, off: i16) {
        self.emit(CLS_STX | MODE_ATOMIC | DW, dst, src, off, OP_ADD.into());
    }

    /// dst = the map `fd` (two instructions).
    fn ld_map_fd(&mut self, dst: u8, fd: RawFd) {
        self.emit(CLS_LD | MODE_IMM | DW, dst, PSEUDO_MAP_FD, 0, fd);
        self.emit(0, 0, 0, 0, 0);
    }

    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.jumps.push((self.insns.len(), to));
        self.emit(code, dst, src, 0, imm);
    }

    /// if dst `op` imm goto `to`
    fn jmp_imm(&mut self, op: u8, dst: u8, imm: i32, to: Label) {
        self.jump(CLS_JMP | op | SRC_K, dst, 0, imm, to);
    }

    /// if dst `op` src goto `to`
    fn jmp_reg(&mut self, op: u8, dst: u8, src: u8, to: Label) {
        self.jump(CLS_JMP | op | SRC_X, dst, src, 0, to);
    }

    fn ja(&mut self, to: Label) {
        self.jump(CLS_JMP | JA, 0, 0, 0, to);
    }

    fn call(&mut self, helper: i32) {
        self.emit(CLS_JMP | CALL, 0, 0, 0, helper);
    }

    fn exit(&mut self) {
        self.emit(CLS_JMP | EXIT, 0, 0, 0, 0);
    }

    /// The instructions, every jump's offset resolved (relative to the next instruction).
    fn finish(mut self) -> Vec<Insn> {
        for &(at, l) in &self.jumps {
            let to = self.labels[l.0].expect("jump to an unbound label");
            let off = to as isize - (at as isize + 1);
            self.insns[at].off = i16::try_from(off).expect("jump too far");
        }
        self.insns
    }
}

// ---------------------------------------------------------------------------------------
// bpf(2).

/// The leading fields of `union bpf_attr` for BPF_MAP_CREATE.
#[derive(Default)]
#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM.
#[derive(Default)]
#[repr(C)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD.
#[derive(Default)]
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_LINK_CREATE with the tcx fields.
#[derive(Default)]
#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    relative_fd: u32,
    _pad: u32,
    expected_revision: u64,
}

/// `union bpf_attr` for the BPF_MAP_*_BATCH commands.
#[derive(Default)]
#[repr(C)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `union bpf_attr` for BPF_LINK_DETACH.
#[repr(C)]
struct LinkDetachAttr {
    link_fd: u32,
}

/// `union bpf_attr` for BPF_PROG_TEST_RUN.
#[derive(Default)]
#[repr(C)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `bpf(cmd, attr, sizeof attr)`.
///
/// # Safety
///
/// `T` is a `#[repr(C)]` prefix of `union bpf_attr` for `cmd` without implicit padding,
/// and every pointer in it is valid, for the access the command makes, during the call.
unsafe fn sys_bpf<T>(cmd: u32, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is live and `size_of::<T>()` bytes long; the caller vouches for the
    // pointers inside it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A descriptor `bpf(2)` just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: a new descriptor the kernel returned to us alone; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// A NUL-terminated object name of at most 15 bytes.
fn obj_name(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    n[..name.len().min(15)].copy_from_slice(&name.as_bytes()[..name.len().min(15)]);
    n
}

fn map_create(
    name: &str,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
        map_name: obj_name(name),
        ..MapCreateAttr::default()
    };
    // SAFETY: the attr holds no pointers.
    let fd = unsafe { sys_bpf(BPF_MAP_CREATE, &mut attr) }
        .map_err(|e| io::Error::new(e.kind(), format!("creating BPF map {name}: {e}")))?;
    Ok(owned(fd))
}

fn map_update(map: &OwnedFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags: BPF_ANY,
        ..ElemAttr::default()
    };
    // SAFETY: the kernel reads the map's key size from `key` and value size from `value`;
    // callers pass slices of exactly those sizes, live for the call.
    unsafe { sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

fn map_lookup(map: &OwnedFd, key: &[u8], value: &mut [u8]) -> io::Result<()> {
    let mut attr = ElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..ElemAttr::default()
    };
    // SAFETY: the kernel reads the map's key size from `key` and writes its value size to
    // `value`; callers pass slices of exactly those sizes, live (and `value` exclusive) for
    // the call.
    unsafe { sys_bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) }.map(drop)
}

/// Bytes of verifier log kept for a program the kernel refused.
const LOG_LEN: usize = 1 << 18;
/// Bytes of that log's tail an error message carries.
const LOG_TAIL: usize = 3000;

/// Loads `insns` as a `prog_type` program named `name`, licensed GPL. If the kernel
/// refuses it, loads it again with the verifier's log and puts the log's tail in the error.
fn prog_load(prog_type: u32, name: &str, insns: &[Insn]) -> io::Result<OwnedFd> {
    const LICENSE: &[u8] = b"GPL\0";
    let load = |log: Option<&mut [u8]>| {
        let mut attr = ProgLoadAttr {
            prog_type,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: LICENSE.as_ptr() as u64,
            prog_name: obj_name(name),
            ..ProgLoadAttr::default()
        };
        if let Some(log) = log {
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
        }
        // SAFETY: `insns` points to `insn_cnt` instructions, `license` to a NUL-terminated
        // string, `log_buf` (if set) to `log_size` writable bytes, all live for the call.
        unsafe { sys_bpf(BPF_PROG_LOAD, &mut attr) }.map(owned)
    };
    match load(None) {
        Ok(fd) => Ok(fd),
        Err(first) => {
            let mut log = vec![0u8; LOG_LEN];
            // An ENOSPC here means the log did not fit: what it holds still helps.
            let retry = load(Some(&mut log));
            if let Ok(fd) = retry {
                return Ok(fd);
            }
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let mut tail = text.len().saturating_sub(LOG_TAIL);
            while !text.is_char_boundary(tail) {
                tail += 1;
            }
            Err(io::Error::new(
                first.kind(),
                format!(
                    "loading BPF program {name}: {first}; verifier log tail:\n{}",
                    &text[tail..]
                ),
            ))
        }
    }
}

/// Attaches tc program `prog` to `ifindex`'s tcx ingress; the link detaches it when closed.
fn tcx_attach(prog: &OwnedFd, ifindex: u32) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_TCX_INGRESS,
        ..LinkCreateAttr::default()
    };
    // SAFETY: the attr holds no pointers.
    match unsafe { sys_bpf(BPF_LINK_CREATE, &mut attr) } {
        Ok(fd) => Ok(owned(fd)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(io::Error::new(
            e.kind(),
            format!(
                "attaching to tcx ingress of ifindex {ifindex}: {e} (tcx needs Linux 6.6 or later)"
            ),
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("attaching to tcx ingress of ifindex {ifindex}: {e}"),
        )),
    }
}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live `T` of the given size for the duration of the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_resolve_relative_to_the_next_instruction() {
        let mut a = Asm::default();
        let end = a.label();
        let back = a.label();
        a.bind(back);
        a.jmp_imm(JEQ, R1, 5, end);
        a.mov64_imm(R0, 1);
        a.ld_map_fd(R1, 9);
        a.ja(back);
        a.bind(end);
        a.exit();
        let p = a.finish();
        assert_eq!(p.len(), 6);
        assert_eq!(
            p[0],
            Insn {
                code: 0x15,
                regs: 0x01,
                off: 4,
                imm: 5
            }
        );
        assert_eq!((p[1].code, p[1].imm), (0xb7, 1));
        assert_eq!((p[2].code, p[2].regs, p[2].imm), (0x18, 0x11, 9));
        assert_eq!(p[3], Insn::default());
        assert_eq!((p[4].code, p[4].off), (0x05, -5));
        assert_eq!(p[5].code, 0x95);
    }

    #[test]
    fn instruction_encodings_match_the_uapi() {
        let mut a = Asm::default();
        a.atomic_add64(R7, R1, 16);
        a.ldx(H, R1, R10, -48);
        a.st_imm(W, R10, -64, 7);
        a.mov32_imm(R0, -1);
        let p = a.finish();
        assert_eq!(
            (p[0].code, p[0].regs, p[0].off, p[0].imm),
            (0xdb, 0x17, 16, 0)
        );
        assert_eq!((p[1].code, p[1].regs, p[1].off), (0x69, 0xa1, -48));
        assert_eq!(
            (p[2].code, p[2].regs, p[2].off, p[2].imm),
            (0x62, 0x0a, -64, 7)
        );
        assert_eq!((p[3].code, p[3].imm), (0xb4, -1));
    }

    /// Needs root (CAP_BPF), as the integration tests do.
    #[test]
    fn a_refused_program_reports_the_verifiers_reason() {
        let mut a = Asm::default();
        a.exit(); // r0 never set
        let e = prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "fuxi_bad", &a.finish()).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.raw_os_error(), None);
        assert!(
            msg.contains("fuxi_bad") && msg.contains("R0 !read_ok"),
            "{msg}"
        );
    }

    #[test]
    fn the_table_and_ports_may_be_shared_between_threads() {
        fn shared<T: Send + Sync + fmt::Debug>() {}
        shared::<KernelTable>();
        shared::<KernelPort>();
    }

    #[test]
    fn values_round_trip_in_host_order() {
        let v = Value {
            out_ifindex: 7,
            tag: 1 << 40 | 3,
            packets: 5,
            bytes: 1500,
        };
        let b = v.to_bytes();
        assert_eq!(b[..4], 7u32.to_ne_bytes());
        assert_eq!(b[4..8], [0; 4]);
        assert_eq!(Value::from_bytes(&b), v);
    }
}
