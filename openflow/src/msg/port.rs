//! Ports: `ofp_port` (in PORT_STATUS and the port-description reply), PORT_STATUS and
//! PORT_MOD. Port statistics live with the other multipart bodies.

use bytes::BufMut;

use crate::error::DecodeError;
use crate::oxm::MacAddr;
use crate::wire::{Rd, get_mac, get_str, need, put_str};

/// Length of a port name field, NUL included.
pub const OFP_MAX_PORT_NAME_LEN: usize = 16;

/// `ofp_port_config` bits.
pub mod config {
    pub const PORT_DOWN: u32 = 1 << 0;
    pub const NO_RECV: u32 = 1 << 2;
    pub const NO_FWD: u32 = 1 << 5;
    pub const NO_PACKET_IN: u32 = 1 << 6;
}

/// `ofp_port_state` bits.
pub mod state {
    pub const LINK_DOWN: u32 = 1 << 0;
    pub const BLOCKED: u32 = 1 << 1;
    pub const LIVE: u32 = 1 << 2;
}

/// `ofp_port_features` bits (curr, advertised, supported, peer).
pub mod features {
    pub const F_10MB_HD: u32 = 1 << 0;
    pub const F_10MB_FD: u32 = 1 << 1;
    pub const F_100MB_HD: u32 = 1 << 2;
    pub const F_100MB_FD: u32 = 1 << 3;
    pub const F_1GB_HD: u32 = 1 << 4;
    pub const F_1GB_FD: u32 = 1 << 5;
    pub const F_10GB_FD: u32 = 1 << 6;
    pub const F_40GB_FD: u32 = 1 << 7;
    pub const F_100GB_FD: u32 = 1 << 8;
    pub const F_1TB_FD: u32 = 1 << 9;
    pub const F_OTHER: u32 = 1 << 10;
    pub const COPPER: u32 = 1 << 11;
    pub const FIBER: u32 = 1 << 12;
    pub const AUTONEG: u32 = 1 << 13;
    pub const PAUSE: u32 = 1 << 14;
    pub const PAUSE_ASYM: u32 = 1 << 15;
}

/// `ofp_port`: a port's description.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                           port_no                             |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |                    hw_addr (6)                |    pad (2)    |
/// +---------------------------------------------------------------+
/// |                   name (16, NUL-terminated)                   |
/// +---------------------------------------------------------------+
/// | config | state | curr | advertised | supported | peer         |
/// | curr_speed (kbps) | max_speed (kbps)            (u32 each)    |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Port {
    pub port_no: u32,
    pub hw_addr: MacAddr,
    /// At most 16 bytes of UTF-8 without NUL (longer names are cut when encoded).
    pub name: String,
    pub config: u32,
    pub state: u32,
    pub curr: u32,
    pub advertised: u32,
    pub supported: u32,
    pub peer: u32,
    pub curr_speed: u32,
    pub max_speed: u32,
}

impl Port {
    pub const LEN: usize = 64;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.port_no);
        buf.put_bytes(0, 4);
        buf.put_slice(&self.hw_addr.0);
        buf.put_bytes(0, 2);
        put_str(buf, &self.name, OFP_MAX_PORT_NAME_LEN);
        for w in [
            self.config,
            self.state,
            self.curr,
            self.advertised,
            self.supported,
            self.peer,
            self.curr_speed,
            self.max_speed,
        ] {
            buf.put_u32(w);
        }
    }

    pub fn decode(buf: &mut &[u8]) -> Result<Port, DecodeError> {
        need(buf, Self::LEN, "truncated port description")?;
        let port_no = buf.u32();
        buf.skip(4);
        let hw_addr = get_mac(buf);
        buf.skip(2);
        let name = get_str(buf, OFP_MAX_PORT_NAME_LEN);
        Ok(Port {
            port_no,
            hw_addr,
            name,
            config: buf.u32(),
            state: buf.u32(),
            curr: buf.u32(),
            advertised: buf.u32(),
            supported: buf.u32(),
            peer: buf.u32(),
            curr_speed: buf.u32(),
            max_speed: buf.u32(),
        })
    }
}

/// PORT_STATUS reasons.
pub const OFPPR_ADD: u8 = 0;
pub const OFPPR_DELETE: u8 = 1;
pub const OFPPR_MODIFY: u8 = 2;

/// OFPT_PORT_STATUS body.
///
/// ```text
/// +---------------+-----------------------------------------------+
/// |    reason     |                    pad (7)                    |
/// +---------------+-----------------------------------------------+
/// |                       desc (ofp_port, 64)                     |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PortStatus {
    pub reason: u8,
    pub desc: Port,
}

impl PortStatus {
    pub const LEN: usize = 8 + Port::LEN;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.reason);
        buf.put_bytes(0, 7);
        self.desc.encode(buf);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<PortStatus, DecodeError> {
        need(buf, Self::LEN, "truncated port status")?;
        let reason = buf.u8();
        buf.skip(7);
        Ok(PortStatus {
            reason,
            desc: Port::decode(buf)?,
        })
    }
}

/// OFPT_PORT_MOD body.
///
/// ```text
/// +---------------------------------------------------------------+
/// |                           port_no                             |
/// +---------------------------------------------------------------+
/// |                            pad (4)                            |
/// +---------------------------------------------------------------+
/// |                    hw_addr (6)                |    pad (2)    |
/// +---------------------------------------------------------------+
/// |                config          |            mask              |
/// +---------------------------------------------------------------+
/// |              advertise         |           pad (4)            |
/// +---------------------------------------------------------------+
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct PortMod {
    pub port_no: u32,
    pub hw_addr: MacAddr,
    pub config: u32,
    pub mask: u32,
    pub advertise: u32,
}

impl PortMod {
    pub const LEN: usize = 32;

    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u32(self.port_no);
        buf.put_bytes(0, 4);
        buf.put_slice(&self.hw_addr.0);
        buf.put_bytes(0, 2);
        buf.put_u32(self.config);
        buf.put_u32(self.mask);
        buf.put_u32(self.advertise);
        buf.put_bytes(0, 4);
    }

    pub fn decode(buf: &mut &[u8]) -> Result<PortMod, DecodeError> {
        need(buf, Self::LEN, "truncated port mod")?;
        let port_no = buf.u32();
        buf.skip(4);
        let hw_addr = get_mac(buf);
        buf.skip(2);
        let m = PortMod {
            port_no,
            hw_addr,
            config: buf.u32(),
            mask: buf.u32(),
            advertise: buf.u32(),
        };
        buf.skip(4);
        Ok(m)
    }
}
