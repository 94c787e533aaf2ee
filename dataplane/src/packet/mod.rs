//! Packets as the pipeline sees them: the flow key ([`key`]) and the parser that fills it
//! ([`parse()`]). Rewriting packets (actions) lives in the pipeline.

pub mod key;
pub mod parse;

pub use key::{
    ALL_WORDS, COMMON, COMMON_WORDS, Field, FlowKey, FlowMask, KEY_WORDS, OFPVID_NONE,
    OFPVID_PRESENT,
};
pub use parse::{Layers, Layout, Parsed, RxMeta, parse, parse_into, parse_into_hashed};
