//! `fuxi-ofctl`: an ovs-ofctl-style OpenFlow 1.3 command line tool.
//!
//! - [`conn`]: the blocking connection (HELLO, xids, multipart, barriers, echo, timeouts);
//! - the ovs-ofctl text syntax for flows, groups and meters is `fuxi_openflow::text`'s;
//! - [`format`]: every reply printed as `ovs-ofctl -O OpenFlow13` prints it;
//! - [`cmd`]: the options and verbs;
//! - [`trace`]: `trace`, through fuxi-switchd's management socket.

pub mod cmd;
pub mod conn;
pub mod format;
pub mod trace;
