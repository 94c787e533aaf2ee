//! Message bodies, grouped by what they are about. Each struct has the spec's layout above
//! it, `decode(&mut &[u8])`, `encode(&mut impl BufMut)` and a length (`LEN` or
//! `wire_len()`); the [`crate::Message`] enum ties them to the header.

pub mod bundle;
pub mod flow;
pub mod group;
pub mod meter;
pub mod multipart;
pub mod packet;
pub mod port;
pub mod queue;
pub mod switch;
pub mod table_features;

pub use bundle::{BundleAdd, BundleControl, BundleCtrlType, BundleProp};
pub use flow::{FlowMod, FlowModCommand, FlowRemoved, TableMod};
pub use group::{
    Bucket, BucketCounter, GroupDesc, GroupFeatures, GroupMod, GroupModCommand, GroupStats,
    GroupType,
};
pub use meter::{
    MeterBand, MeterBandStats, MeterConfig, MeterFeatures, MeterMod, MeterModCommand, MeterStats,
};
pub use multipart::{
    AggregateStats, Desc, FlowStats, FlowStatsRequest, MultipartReply, MultipartReplyBody,
    MultipartRequest, MultipartRequestBody, PortStats, QueueStats, QueueStatsRequest, TableStats,
};
pub use packet::{PacketIn, PacketOut};
pub use port::{Port, PortMod, PortStatus};
pub use queue::{PacketQueue, QueueGetConfigReply, QueueGetConfigRequest, QueueProp};
pub use switch::{
    AsyncConfig, ControllerRole, ErrorMsg, Experimenter, Hello, HelloElement, Role, SwitchConfig,
    SwitchFeatures,
};
pub use table_features::{FeatureId, OxmId, TableFeatureProp, TableFeatures};
