//! The group table (spec §5.6, §6.5): group types and buckets, and group-mod semantics.
//! Choosing and translating buckets for a packet is in `xlate.rs`.

use fuxi_openflow::consts::{OFPG_ALL, OFPG_ANY, OFPG_MAX, OFPP_ANY};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fuxi_openflow::{Action, ErrorCode};

use super::Pipeline;

/// `ofp_group_type`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GroupType {
    /// OFPGT_ALL: every bucket, each on its own copy of the packet.
    All = 0,
    /// OFPGT_SELECT: one bucket, chosen by a hash of the flow, weighted.
    Select = 1,
    /// OFPGT_INDIRECT: the one bucket.
    Indirect = 2,
    /// OFPGT_FF: the first live bucket.
    FastFailover = 3,
}

/// One bucket.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Bucket {
    /// Relative weight (select groups).
    pub weight: u16,
    /// Port whose liveness decides the bucket's (fast failover), or OFPP_ANY.
    pub watch_port: u32,
    /// Group whose liveness decides the bucket's (fast failover), or OFPG_ANY.
    pub watch_group: u32,
    /// Actions, applied in order.
    pub actions: Vec<Action>,
}

impl Bucket {
    /// A bucket with these actions, weight 1 and no watch.
    pub fn new(actions: Vec<Action>) -> Bucket {
        Bucket {
            weight: 1,
            watch_port: OFPP_ANY,
            watch_group: OFPG_ANY,
            actions,
        }
    }
}

/// A group.
#[derive(Clone, Debug)]
pub struct Group {
    /// Type.
    pub group_type: GroupType,
    /// Buckets.
    pub buckets: Vec<Bucket>,
    /// Counters (shared with the caches that credit them).
    pub stats: Arc<GroupStats>,
}

/// Counters of a group and its buckets (spec §7.3.5.9).
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Packets processed by the group.
    pub packets: AtomicU64,
    /// Bytes processed by the group.
    pub bytes: AtomicU64,
    /// (packets, bytes) per bucket.
    pub buckets: Vec<(AtomicU64, AtomicU64)>,
    /// When the group was added.
    pub created: super::Nanos,
}

impl GroupStats {
    fn new(n_buckets: usize, created: super::Nanos) -> Self {
        GroupStats {
            buckets: (0..n_buckets).map(|_| Default::default()).collect(),
            created,
            ..GroupStats::default()
        }
    }

    /// Credits `packets`/`bytes` to the group and to the listed buckets.
    pub fn add(&self, buckets: &[usize], packets: u64, bytes: u64) {
        let r = Ordering::Relaxed;
        self.packets.fetch_add(packets, r);
        self.bytes.fetch_add(bytes, r);
        for &b in buckets {
            if let Some((p, by)) = self.buckets.get(b) {
                p.fetch_add(packets, r);
                by.fetch_add(bytes, r);
            }
        }
    }
}

/// `ofp_group_mod_command`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum GroupModCommand {
    /// OFPGC_ADD.
    Add,
    /// OFPGC_MODIFY.
    Modify,
    /// OFPGC_DELETE.
    Delete,
    /// Open vSwitch's add-or-modify (`--may-create`): add, or modify if it exists.
    AddOrModify,
}

/// A group-mod as the pipeline takes it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct GroupMod {
    /// What to do.
    pub command: GroupModCommand,
    /// Type (add/modify).
    pub group_type: GroupType,
    /// Group id, or OFPG_ALL (delete).
    pub group_id: u32,
    /// Buckets (add/modify).
    pub buckets: Vec<Bucket>,
}

/// Whether `group` reaches `target` through group actions (for loop detection).
fn reaches(p: &Pipeline, from: &[Bucket], target: u32, depth: u32) -> bool {
    if depth > 64 {
        return true;
    }
    from.iter().flat_map(|b| &b.actions).any(|a| match a {
        Action::Group(g) => {
            *g == target
                || p.groups
                    .get(g)
                    .is_some_and(|gr| reaches(p, &gr.buckets, target, depth + 1))
        }
        _ => false,
    })
}

/// Applies `gm` to the pipeline's groups; returns the ids of deleted groups (whose flows the
/// caller removes).
pub(super) fn apply(
    p: &mut Pipeline,
    gm: &GroupMod,
    now: super::Nanos,
) -> Result<Vec<u32>, ErrorCode> {
    match gm.command {
        GroupModCommand::Add | GroupModCommand::Modify | GroupModCommand::AddOrModify => {
            if gm.group_id > OFPG_MAX {
                return Err(ErrorCode::GROUP_MOD_INVALID_GROUP);
            }
            let exists = p.groups.contains_key(&gm.group_id);
            if gm.command == GroupModCommand::Add && exists {
                return Err(ErrorCode::GROUP_MOD_GROUP_EXISTS);
            }
            if gm.command == GroupModCommand::Modify && !exists {
                return Err(ErrorCode::GROUP_MOD_UNKNOWN_GROUP);
            }
            if matches!(gm.group_type, GroupType::Indirect) && gm.buckets.len() != 1 {
                return Err(ErrorCode::GROUP_MOD_BAD_BUCKET);
            }
            for b in &gm.buckets {
                if gm.group_type != GroupType::Select && b.weight != 0 && gm.buckets.len() > 1 {
                    // Weights are only meaningful for select groups; OVS tolerates 0/1.
                    if b.weight > 1 {
                        return Err(ErrorCode::GROUP_MOD_BAD_BUCKET);
                    }
                }
                if gm.group_type == GroupType::FastFailover
                    && b.watch_port == OFPP_ANY
                    && b.watch_group == OFPG_ANY
                {
                    return Err(ErrorCode::GROUP_MOD_BAD_WATCH);
                }
                p.validate_actions(None, &b.actions)?;
            }
            if reaches(p, &gm.buckets, gm.group_id, 0) {
                return Err(ErrorCode::GROUP_MOD_LOOP);
            }
            // A modified group keeps its totals; its buckets start from zero.
            let stats = GroupStats::new(gm.buckets.len(), now);
            if let Some(old) = p.groups.get(&gm.group_id) {
                let r = Ordering::Relaxed;
                stats.packets.store(old.stats.packets.load(r), r);
                stats.bytes.store(old.stats.bytes.load(r), r);
            }
            let group = Group {
                group_type: gm.group_type,
                buckets: gm.buckets.clone(),
                stats: Arc::new(stats),
            };
            p.groups.insert(gm.group_id, group);
            Ok(vec![])
        }
        GroupModCommand::Delete => {
            let doomed: Vec<u32> = if gm.group_id == OFPG_ALL {
                p.groups.keys().copied().collect()
            } else {
                p.groups
                    .contains_key(&gm.group_id)
                    .then_some(gm.group_id)
                    .into_iter()
                    .collect()
            };
            for g in &doomed {
                p.groups.remove(g);
            }
            Ok(doomed)
        }
    }
}
