//! Conversions between the OpenFlow messages (`fuxi_openflow::msg`) and the pipeline's own
//! request and result types, so the switch agent is a thin translator. Wire-only fields
//! (`buffer_id`) stay with the agent.

use fuxi_openflow::ErrorCode;
use fuxi_openflow::msg;

use super::group::{Bucket, GroupMod, GroupModCommand, GroupType};
use super::meter::{Band, MeterConfig, MeterMod, MeterModCommand};
use super::{FlowMod, FlowModCommand, FlowRemoved};

impl From<&msg::FlowMod> for FlowMod {
    fn from(m: &msg::FlowMod) -> Self {
        FlowMod {
            command: match m.command {
                msg::FlowModCommand::Add => FlowModCommand::Add,
                msg::FlowModCommand::Modify => FlowModCommand::Modify,
                msg::FlowModCommand::ModifyStrict => FlowModCommand::ModifyStrict,
                msg::FlowModCommand::Delete => FlowModCommand::Delete,
                msg::FlowModCommand::DeleteStrict => FlowModCommand::DeleteStrict,
            },
            table_id: m.table_id,
            cookie: m.cookie,
            cookie_mask: m.cookie_mask,
            priority: m.priority,
            idle_timeout: m.idle_timeout,
            hard_timeout: m.hard_timeout,
            flags: m.flags,
            out_port: m.out_port,
            out_group: m.out_group,
            r#match: m.match_.clone(),
            instructions: m.instructions.clone(),
        }
    }
}

impl From<&msg::GroupMod> for GroupMod {
    fn from(m: &msg::GroupMod) -> Self {
        GroupMod {
            command: match m.command {
                msg::GroupModCommand::Add => GroupModCommand::Add,
                msg::GroupModCommand::Modify => GroupModCommand::Modify,
                msg::GroupModCommand::Delete => GroupModCommand::Delete,
                msg::GroupModCommand::AddOrMod => GroupModCommand::AddOrModify,
            },
            group_type: match m.group_type {
                msg::GroupType::All => GroupType::All,
                msg::GroupType::Select => GroupType::Select,
                msg::GroupType::Indirect => GroupType::Indirect,
                msg::GroupType::FastFailover => GroupType::FastFailover,
            },
            group_id: m.group_id,
            buckets: m
                .buckets
                .iter()
                .map(|b| Bucket {
                    weight: b.weight,
                    watch_port: b.watch_port,
                    watch_group: b.watch_group,
                    actions: b.actions.clone(),
                })
                .collect(),
        }
    }
}

impl TryFrom<&msg::MeterMod> for MeterMod {
    type Error = ErrorCode;

    /// Experimenter bands are refused (`OFPMMFC_BAD_BAND`).
    fn try_from(m: &msg::MeterMod) -> Result<Self, ErrorCode> {
        let bands = m
            .bands
            .iter()
            .map(|b| match *b {
                msg::MeterBand::Drop { rate, burst_size } => Ok(Band::Drop {
                    rate,
                    burst: burst_size,
                }),
                msg::MeterBand::DscpRemark {
                    rate,
                    burst_size,
                    prec_level,
                } => Ok(Band::DscpRemark {
                    rate,
                    burst: burst_size,
                    prec_level,
                }),
                msg::MeterBand::Experimenter { .. } => Err(ErrorCode::METER_MOD_BAD_BAND),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MeterMod {
            command: match m.command {
                msg::MeterModCommand::Add => MeterModCommand::Add,
                msg::MeterModCommand::Modify => MeterModCommand::Modify,
                msg::MeterModCommand::Delete => MeterModCommand::Delete,
            },
            meter_id: m.meter_id,
            config: MeterConfig {
                flags: m.flags,
                bands,
            },
        })
    }
}

impl From<&FlowRemoved> for msg::FlowRemoved {
    fn from(r: &FlowRemoved) -> Self {
        msg::FlowRemoved {
            cookie: r.cookie,
            priority: r.priority,
            reason: r.reason as u8,
            table_id: r.table_id,
            duration_sec: (r.duration / 1_000_000_000) as u32,
            duration_nsec: (r.duration % 1_000_000_000) as u32,
            idle_timeout: r.idle_timeout,
            hard_timeout: r.hard_timeout,
            packet_count: r.packet_count,
            byte_count: r.byte_count,
            match_: r.r#match.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{Pipeline, RemovedReason};
    use fuxi_openflow::{Action, Instruction, Match, Oxm};

    #[test]
    fn flow_mod_from_message_and_flow_removed_back() {
        let mut m = msg::FlowMod::new(msg::FlowModCommand::Add);
        m.priority = 7;
        m.cookie = 0xabc;
        m.flags = super::super::flags::SEND_FLOW_REM;
        m.match_ = Match::all().with(Oxm::eth_type(0x0800));
        m.instructions = vec![Instruction::ApplyActions(vec![Action::output(2)])];
        let fm = FlowMod::from(&m);
        let mut p = Pipeline::new();
        p.flow_mod(&fm, 0).unwrap();
        let mut d = msg::FlowMod::new(msg::FlowModCommand::Delete);
        d.table_id = fuxi_openflow::consts::OFPTT_ALL;
        let removed = p.flow_mod(&FlowMod::from(&d), 1_500_000_000).unwrap();
        assert_eq!(removed[0].reason, RemovedReason::Delete);
        let wire = msg::FlowRemoved::from(&removed[0]);
        assert_eq!((wire.duration_sec, wire.duration_nsec), (1, 500_000_000));
        assert_eq!((wire.cookie, wire.priority, wire.reason), (0xabc, 7, 2));
        assert_eq!(wire.match_, m.match_);
    }

    #[test]
    fn meter_mod_refuses_experimenter_bands() {
        let m = msg::MeterMod {
            command: msg::MeterModCommand::Add,
            flags: 1,
            meter_id: 1,
            bands: vec![msg::MeterBand::Experimenter {
                rate: 1,
                burst_size: 0,
                experimenter: 1,
                data: vec![],
            }],
        };
        assert_eq!(MeterMod::try_from(&m), Err(ErrorCode::METER_MOD_BAD_BAND));
    }
}
