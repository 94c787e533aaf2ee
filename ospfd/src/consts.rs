//! Registry numbers and architectural constants of OSPFv2 (RFC 2328 appendix B and C,
//! RFC 5709, RFC 3101, RFC 5250). Nothing but constants lives here.

use std::net::Ipv4Addr;

/// IP protocol number of OSPF.
pub const IPPROTO_OSPF: u8 = 89;
/// AllSPFRouters.
pub const ALL_SPF_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 5);
/// AllDRouters.
pub const ALL_D_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 6);
/// Linux `rtm_protocol` value FRR and iproute2 use for OSPF routes (`proto ospf`).
pub const RTPROT_OSPF: u8 = 188;

/// OSPF version carried in every packet header.
pub const VERSION: u8 = 2;
/// Length of the common packet header.
pub const HEADER_LEN: usize = 24;
/// Length of an LSA header.
pub const LSA_HEADER_LEN: usize = 20;

// Packet types.
pub const PKT_HELLO: u8 = 1;
pub const PKT_DD: u8 = 2;
pub const PKT_LSR: u8 = 3;
pub const PKT_LSU: u8 = 4;
pub const PKT_LSACK: u8 = 5;

// Authentication types.
pub const AUTH_NULL: u16 = 0;
pub const AUTH_SIMPLE: u16 = 1;
pub const AUTH_CRYPTO: u16 = 2;

// LSA types.
pub const LSA_ROUTER: u8 = 1;
pub const LSA_NETWORK: u8 = 2;
pub const LSA_SUMMARY_NET: u8 = 3;
pub const LSA_SUMMARY_ASBR: u8 = 4;
pub const LSA_AS_EXTERNAL: u8 = 5;
pub const LSA_NSSA: u8 = 7;
pub const LSA_OPAQUE_LINK: u8 = 9;
pub const LSA_OPAQUE_AREA: u8 = 10;
pub const LSA_OPAQUE_AS: u8 = 11;

// Options field bits (RFC 2328 A.2, RFC 5250, RFC 3101).
pub const OPT_MT: u8 = 0x01;
pub const OPT_E: u8 = 0x02;
pub const OPT_MC: u8 = 0x04;
pub const OPT_NP: u8 = 0x08;
pub const OPT_L: u8 = 0x10;
pub const OPT_DC: u8 = 0x20;
pub const OPT_O: u8 = 0x40;
pub const OPT_DN: u8 = 0x80;

// DD flags.
pub const DD_MS: u8 = 0x01;
pub const DD_M: u8 = 0x02;
pub const DD_I: u8 = 0x04;

// Router-LSA flags.
pub const RTR_B: u8 = 0x01;
pub const RTR_E: u8 = 0x02;
pub const RTR_V: u8 = 0x04;
pub const RTR_NT: u8 = 0x10;

// Router-LSA link types.
pub const LINK_P2P: u8 = 1;
pub const LINK_TRANSIT: u8 = 2;
pub const LINK_STUB: u8 = 3;
pub const LINK_VIRTUAL: u8 = 4;

// Architectural constants (RFC 2328 appendix B), in seconds.
pub const LS_REFRESH_TIME: u16 = 1800;
pub const MIN_LS_INTERVAL: u64 = 5;
pub const MIN_LS_ARRIVAL: u64 = 1;
pub const MAX_AGE: u16 = 3600;
pub const CHECK_AGE: u16 = 300;
pub const MAX_AGE_DIFF: u16 = 900;
pub const LS_INFINITY: u32 = 0x00ff_ffff;
pub const INITIAL_SEQ: i32 = i32::MIN + 1; // 0x80000001
pub const MAX_SEQ: i32 = i32::MAX; // 0x7fffffff
pub const INF_TRANS_DELAY: u16 = 1;

/// RFC 5709 Apad constant, repeated to the hash length.
pub const APAD_WORD: u32 = 0x878F_E1F3;
