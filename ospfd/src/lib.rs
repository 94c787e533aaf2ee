//! OSPFv2 for Fuxi: a sans-IO protocol core and the `fuxi-ospfd` daemon around it.
//!
//! Everything except [`daemon`] is free of I/O: no sockets, threads or clock. Time comes in as
//! an argument (a [`std::time::Duration`] since an arbitrary epoch) and output goes out as
//! values ([`instance::Output`]).

pub mod auth;
pub mod checksum;
pub mod consts;
pub mod error;
pub mod lsa;
pub mod packet;

pub use error::Error;
pub mod config;
pub mod daemon;
pub mod fuzz;
pub mod instance;
pub mod show;
pub mod spf;
pub mod types;
