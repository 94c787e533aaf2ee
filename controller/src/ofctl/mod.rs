//! `fuxi-ofctl`: an ovs-ofctl-style OpenFlow 1.3 command line tool.
//!
//! - [`conn`]: the blocking connection (HELLO, xids, multipart, barriers, echo, timeouts);
//! - [`flowtext`], [`groupmeter`]: the ovs-ofctl text syntax for flows, groups and meters;
//! - [`format`]: every reply printed as `ovs-ofctl -O OpenFlow13` prints it;
//! - [`cmd`]: the options and verbs;
//! - [`trace`]: `trace`, through fuxi-switchd's management socket.

pub mod cmd;
pub mod conn;
pub mod flowtext;
pub mod format;
pub mod groupmeter;
pub mod trace;
