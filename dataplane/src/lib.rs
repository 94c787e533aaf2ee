//! Fuxi packet parsing, the OpenFlow 1.3 pipeline and the flow caches (no I/O in the core).
//!
//! - [`packet`]: the flow key (a fixed array of words; a mask is the same type) and the
//!   zero-copy parser that fills it and records where each layer starts.
//! - [`classifier`]: tuple space search over (key, mask, priority) rules, accumulating the
//!   mask of every field a lookup consulted.
//! - [`pipeline`]: flow tables, groups, meters, ports, flow-mod/group-mod/meter-mod
//!   semantics and timeouts; translation of a key into datapath actions (with the megaflow
//!   mask); execution of those actions on packet bytes (checksums kept right).
//! - [`cache`]: one datapath thread's exact-match and megaflow caches in front of the
//!   pipeline, with per-thread counters synced into the OpenFlow ones.
//! - [`fuzz`]: bodies of the cargo-fuzz targets, so each target is a one-liner.
//!
//! Time is always an argument (`now`, nanoseconds on a monotonic clock).
//!
//! ```
//! use fuxi_dataplane::cache::{Datapath, Source};
//! use fuxi_dataplane::packet::RxMeta;
//! use fuxi_dataplane::pipeline::exec::Recorder;
//! use fuxi_dataplane::pipeline::{FlowMod, Pipeline};
//! use fuxi_openflow::{Action, Instruction, Match, Oxm};
//!
//! // in_port=1 → output:2
//! let mut p = Pipeline::new();
//! let fm = FlowMod::add(
//!     0,
//!     100,
//!     Match::all().with(Oxm::in_port(1)),
//!     vec![Instruction::ApplyActions(vec![Action::output(2)])],
//! );
//! p.flow_mod(&fm, 0).unwrap();
//!
//! let mut dp = Datapath::new();
//! let mut out = Recorder::default();
//! let mut frame = vec![0xff; 6];
//! frame.extend([2, 0, 0, 0, 0, 1, 0x88, 0xb5]); // an Ethernet header, local ethertype
//! assert_eq!(dp.process(&p, &mut frame.clone(), RxMeta::port(1), 0, &mut out), Source::SlowPath);
//! // The megaflow the first packet installed; one hit in 100 is also copied into the
//! // exact-match cache (OVS's `emc-insert-inv-prob`).
//! assert_eq!(dp.process(&p, &mut frame, RxMeta::port(1), 1, &mut out), Source::Megaflow);
//! assert_eq!(out.outputs.len(), 2);
//! assert_eq!(out.outputs[0].0, 2);
//! dp.sync_stats(&p); // flow and table counters now include both packets
//! ```

pub mod cache;
pub mod classifier;
pub mod engine;
pub mod fuzz;
pub mod packet;
pub mod pipeline;
pub mod port;
