//! Registry numbers of OpenFlow 1.3 that more than one module needs: reserved ports, groups,
//! tables and meters, buffer ids, the wire version. Message-specific numbers live with their
//! message.

/// OpenFlow 1.3's wire version.
pub const OFP_VERSION: u8 = 0x04;

/// Largest number of a physical or logical port.
pub const OFPP_MAX: u32 = 0xffff_ff00;
/// Send the packet out the input port.
pub const OFPP_IN_PORT: u32 = 0xffff_fff8;
/// Submit the packet to the first flow table (packet-out only).
pub const OFPP_TABLE: u32 = 0xffff_fff9;
/// Forward using non-OpenFlow pipeline.
pub const OFPP_NORMAL: u32 = 0xffff_fffa;
/// Flood using non-OpenFlow pipeline.
pub const OFPP_FLOOD: u32 = 0xffff_fffb;
/// All standard ports except the input port.
pub const OFPP_ALL: u32 = 0xffff_fffc;
/// Send to the controller.
pub const OFPP_CONTROLLER: u32 = 0xffff_fffd;
/// The local OpenFlow "port".
pub const OFPP_LOCAL: u32 = 0xffff_fffe;
/// Wildcard port in requests; "no port" in output filters.
pub const OFPP_ANY: u32 = 0xffff_ffff;

/// Largest group number.
pub const OFPG_MAX: u32 = 0xffff_ff00;
/// All groups (group delete, group stats).
pub const OFPG_ALL: u32 = 0xffff_fffc;
/// Wildcard group in requests.
pub const OFPG_ANY: u32 = 0xffff_ffff;

/// Largest table number.
pub const OFPTT_MAX: u8 = 0xfe;
/// All tables (flow mod delete, stats).
pub const OFPTT_ALL: u8 = 0xff;

/// Largest meter number.
pub const OFPM_MAX: u32 = 0xffff_0000;
/// Meter for slow datapath.
pub const OFPM_SLOWPATH: u32 = 0xffff_fffd;
/// Meter for controller connection.
pub const OFPM_CONTROLLER: u32 = 0xffff_fffe;
/// All meters (stats, delete).
pub const OFPM_ALL: u32 = 0xffff_ffff;

/// `buffer_id` meaning "not buffered".
pub const OFP_NO_BUFFER: u32 = 0xffff_ffff;
/// Output-to-controller `max_len` meaning "send the whole packet, do not buffer".
pub const OFPCML_NO_BUFFER: u16 = 0xffff;
/// Output-to-controller `max_len` largest value that may be buffered.
pub const OFPCML_MAX: u16 = 0xffe5;

/// Queue wildcards in queue stats requests.
pub const OFPQ_ALL: u32 = 0xffff_ffff;

/// The name OVS prints for a reserved port, if `port` is one.
pub fn reserved_port_name(port: u32) -> Option<&'static str> {
    Some(match port {
        OFPP_IN_PORT => "IN_PORT",
        OFPP_TABLE => "TABLE",
        OFPP_NORMAL => "NORMAL",
        OFPP_FLOOD => "FLOOD",
        OFPP_ALL => "ALL",
        OFPP_CONTROLLER => "CONTROLLER",
        OFPP_LOCAL => "LOCAL",
        OFPP_ANY => "ANY",
        _ => return None,
    })
}
