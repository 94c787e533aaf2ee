//! Every refusal the codec makes, one test each: the spec's ERROR type and code, the
//! offending message's xid, and its first 64 bytes as the ERROR's data.

use fuxi_openflow::action::Action;
use fuxi_openflow::consts::*;
use fuxi_openflow::error::ONF_EXPERIMENTER_ID;
use fuxi_openflow::framer::Framer;
use fuxi_openflow::header::*;
use fuxi_openflow::msg::*;
use fuxi_openflow::oxm::FieldId;
use fuxi_openflow::{ErrorCode, Instruction, Match, Message, Oxm};

const XID: u32 = 0x0a0b_0c0d;

/// Asserts `bytes` are refused with `code`, and that the ERROR reply is right.
fn refused(bytes: &[u8], code: ErrorCode) {
    let e = Message::decode(bytes).expect_err("must be refused");
    assert_eq!(e.code, code, "{e}");
    if code == ErrorCode::HELLO_INCOMPATIBLE {
        // The spec wants a text here.
        let text = String::from_utf8(e.data.clone()).unwrap();
        assert!(text.contains("no common versions"), "{text}");
    } else {
        assert_eq!(e.data, &bytes[..bytes.len().min(64)]);
    }
    if bytes.len() >= 8 {
        assert_eq!(e.xid, u32::from_be_bytes(bytes[4..8].try_into().unwrap()));
    }
    let reply = e.reply_bytes();
    let (h, m) = Message::decode(&reply).unwrap();
    assert_eq!(h.msg_type, OFPT_ERROR);
    assert_eq!(h.version, e.version);
    assert_eq!(h.xid, e.xid);
    assert_eq!(
        m,
        Message::Error(ErrorMsg {
            code,
            data: e.data.clone()
        })
    );
}

fn enc(m: &Message) -> Vec<u8> {
    m.to_vec(XID)
}

/// Re-writes the header length after a body edit.
fn fix_len(mut b: Vec<u8>) -> Vec<u8> {
    let n = b.len() as u16;
    b[2..4].copy_from_slice(&n.to_be_bytes());
    b
}

fn flow_mod() -> FlowMod {
    FlowMod {
        cookie: 0,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 1,
        buffer_id: OFP_NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: 0,
        match_: Match::all().with(Oxm::in_port(1)),
        instructions: vec![Instruction::ApplyActions(vec![Action::output(2)])],
    }
}

// ------------------------------------------------------------------ header

#[test]
fn bad_version() {
    let mut b = enc(&Message::FeaturesRequest);
    b[0] = 5;
    refused(&b, ErrorCode::BAD_REQUEST_BAD_VERSION);
    b[0] = 1;
    refused(&b, ErrorCode::BAD_REQUEST_BAD_VERSION);
}

#[test]
fn hello_negotiation_failure() {
    // OpenFlow 1.0 hello without a bitmap.
    refused(&[1, 0, 0, 8, 0, 0, 0, 1], ErrorCode::HELLO_INCOMPATIBLE);
    let e = Message::decode(&[1, 0, 0, 8, 0, 0, 0, 1]).unwrap_err();
    assert_eq!(e.version, 1);
    assert_eq!(
        e.data,
        b"We support version 0x04, you support version 0x01, no common versions."
    );
    // A 1.3 header whose bitmap offers only 1.0 and 1.5.
    let h = Message::Hello(Hello {
        elements: vec![HelloElement::VersionBitmap(vec![0x42])],
    });
    refused(&enc(&h), ErrorCode::HELLO_INCOMPATIBLE);
    let e = Message::decode(&enc(&h)).unwrap_err();
    assert_eq!(
        e.data,
        b"We support version 0x04, you support versions 0x01, 0x06, no common versions."
    );
    // A 1.5 hello that offers 1.3 is accepted, and so is one without a bitmap.
    let mut ok = enc(&Message::Hello(Hello::ofp13()));
    ok[0] = 6;
    assert_eq!(Message::decode(&ok).unwrap().0.version, 6);
    assert!(Message::decode(&[6, 0, 0, 8, 0, 0, 0, 1]).is_ok());
}

#[test]
fn bad_length_header() {
    let b = enc(&Message::BarrierRequest);
    // Header length longer and shorter than the bytes given.
    let mut long = b.clone();
    long[3] = 9;
    refused(&long, ErrorCode::BAD_REQUEST_BAD_LEN);
    let mut short = b.clone();
    short[3] = 4;
    refused(&short, ErrorCode::BAD_REQUEST_BAD_LEN);
    // Fewer than 8 bytes.
    refused(&b[..5], ErrorCode::BAD_REQUEST_BAD_LEN);
}

#[test]
fn bad_length_body() {
    // A body where none belongs.
    refused(
        &fix_len([enc(&Message::BarrierRequest), vec![0; 8]].concat()),
        ErrorCode::BAD_REQUEST_BAD_LEN,
    );
    // A fixed body one byte short, and one byte long.
    let cfg = enc(&Message::SetConfig(SwitchConfig::default()));
    refused(
        &fix_len(cfg[..cfg.len() - 1].to_vec()),
        ErrorCode::BAD_REQUEST_BAD_LEN,
    );
    refused(
        &fix_len([cfg, vec![0]].concat()),
        ErrorCode::BAD_REQUEST_BAD_LEN,
    );
    // A port-stats reply with a partial entry.
    let r = enc(&Message::MultipartReply(MultipartReply {
        flags: 0,
        body: MultipartReplyBody::PortStats(vec![PortStats::default()]),
    }));
    refused(
        &fix_len(r[..r.len() - 8].to_vec()),
        ErrorCode::BAD_REQUEST_BAD_LEN,
    );
}

#[test]
fn unknown_type() {
    let mut b = enc(&Message::BarrierRequest);
    b[1] = 30;
    refused(&b, ErrorCode::BAD_REQUEST_BAD_TYPE);
    b[1] = 0xff;
    refused(&b, ErrorCode::BAD_REQUEST_BAD_TYPE);
}

#[test]
fn unknown_multipart_type() {
    let mut b = enc(&Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::Desc,
    }));
    b[8..10].copy_from_slice(&14u16.to_be_bytes());
    refused(&b, ErrorCode::BAD_REQUEST_BAD_MULTIPART);
    b[1] = OFPT_MULTIPART_REPLY;
    refused(&b, ErrorCode::BAD_REQUEST_BAD_MULTIPART);
}

#[test]
fn unknown_experimenter() {
    let m = Message::Experimenter(Experimenter {
        experimenter: 0x00ab_cdef,
        exp_type: 1,
        data: vec![],
    });
    refused(&enc(&m), ErrorCode::BAD_REQUEST_BAD_EXPERIMENTER);
    let mp = Message::MultipartRequest(MultipartRequest {
        flags: 0,
        body: MultipartRequestBody::Experimenter(Experimenter {
            experimenter: 0x00ab_cdef,
            exp_type: 1,
            data: vec![1, 2, 3, 4],
        }),
    });
    refused(&enc(&mp), ErrorCode::BAD_REQUEST_BAD_EXPERIMENTER);
    // ONF with an exp_type nobody defined.
    let onf = Message::Experimenter(Experimenter {
        experimenter: ONF_EXPERIMENTER_ID,
        exp_type: 999,
        data: vec![],
    });
    refused(&enc(&onf), ErrorCode::BAD_REQUEST_BAD_EXP_TYPE);
}

// ------------------------------------------------------------------ match, actions, instructions

#[test]
fn match_errors_propagate() {
    let mut fm = flow_mod();
    fm.match_ = Match::all()
        .with(Oxm::eth_type(0x0800))
        .with(Oxm::exact(FieldId::TcpDst, 80));
    refused(
        &enc(&Message::FlowMod(fm.clone())),
        ErrorCode::BAD_MATCH_BAD_PREREQ,
    );
    fm.match_ = Match::all().with(Oxm::in_port(1)).with(Oxm::in_port(2));
    refused(
        &enc(&Message::FlowMod(fm.clone())),
        ErrorCode::BAD_MATCH_DUP_FIELD,
    );
    // The same in a packet-in, a flow-removed and a flow-stats request.
    let pi = Message::PacketIn(PacketIn {
        buffer_id: OFP_NO_BUFFER,
        total_len: 0,
        reason: 0,
        table_id: 0,
        cookie: 0,
        match_: fm.match_.clone(),
        data: vec![],
    });
    refused(&enc(&pi), ErrorCode::BAD_MATCH_DUP_FIELD);
    // Unknown basic field number 40 in a flow mod: patch the in_port TLV's field.
    let mut b = enc(&Message::FlowMod(flow_mod()));
    b[54] = 40 << 1;
    refused(&b, ErrorCode::BAD_MATCH_BAD_FIELD);
}

#[test]
fn action_errors_propagate() {
    let po = PacketOut {
        buffer_id: OFP_NO_BUFFER,
        in_port: OFPP_CONTROLLER,
        actions: vec![Action::output(1)],
        data: vec![0; 14],
    };
    let mut b = enc(&Message::PacketOut(po.clone()));
    // action type 99
    b[24..26].copy_from_slice(&99u16.to_be_bytes());
    refused(&b, ErrorCode::BAD_ACTION_BAD_TYPE);
    // actions_len past the end of the message
    let mut b = enc(&Message::PacketOut(po.clone()));
    b[16..18].copy_from_slice(&200u16.to_be_bytes());
    refused(&b, ErrorCode::BAD_REQUEST_BAD_LEN);
    // an output action claiming 24 bytes
    let mut b = enc(&Message::PacketOut(po));
    b[26..28].copy_from_slice(&24u16.to_be_bytes());
    b[16..18].copy_from_slice(&24u16.to_be_bytes());
    refused(&b, ErrorCode::BAD_ACTION_BAD_LEN);
    // push_vlan of a non-VLAN ethertype
    let mut fm = flow_mod();
    fm.instructions = vec![Instruction::ApplyActions(vec![Action::PushVlan(0x0800)])];
    refused(
        &enc(&Message::FlowMod(fm)),
        ErrorCode::BAD_ACTION_BAD_ARGUMENT,
    );
    // an action of an unknown experimenter in a group bucket
    let gm = Message::GroupMod(GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::All,
        group_id: 1,
        buckets: vec![Bucket {
            weight: 0,
            watch_port: OFPP_ANY,
            watch_group: OFPG_ANY,
            actions: vec![Action::Experimenter {
                experimenter: 0x00ab_cdef,
                data: vec![0; 8],
            }],
        }],
    });
    refused(&enc(&gm), ErrorCode::BAD_ACTION_BAD_EXPERIMENTER);
}

#[test]
fn instruction_errors_propagate() {
    let mut b = enc(&Message::FlowMod(flow_mod()));
    // the apply-actions instruction starts after 48 + 16 bytes
    b[64..66].copy_from_slice(&9u16.to_be_bytes());
    refused(&b, ErrorCode::BAD_INSTRUCTION_UNKNOWN_INST);
    let mut fm = flow_mod();
    fm.instructions = vec![Instruction::ClearActions, Instruction::ClearActions];
    refused(&enc(&Message::FlowMod(fm)), ErrorCode::ONF_DUP_INSTRUCTION);
}

// ------------------------------------------------------------------ flow, group, meter

#[test]
fn flow_mod_bad_table_id() {
    let mut fm = flow_mod();
    fm.table_id = OFPTT_ALL;
    refused(
        &enc(&Message::FlowMod(fm.clone())),
        ErrorCode::FLOW_MOD_BAD_TABLE_ID,
    );
    // Deleting from all tables is fine.
    fm.command = FlowModCommand::Delete;
    assert!(Message::decode(&enc(&Message::FlowMod(fm))).is_ok());
    // goto_table must go forward.
    let mut fm = flow_mod();
    fm.table_id = 3;
    fm.instructions = vec![Instruction::GotoTable(3)];
    refused(
        &enc(&Message::FlowMod(fm)),
        ErrorCode::BAD_INSTRUCTION_BAD_TABLE_ID,
    );
}

#[test]
fn flow_mod_bad_command_and_flags() {
    let mut b = enc(&Message::FlowMod(flow_mod()));
    b[25] = 5;
    refused(&b, ErrorCode::FLOW_MOD_BAD_COMMAND);
    let mut fm = flow_mod();
    fm.flags = 0x20;
    refused(&enc(&Message::FlowMod(fm)), ErrorCode::FLOW_MOD_BAD_FLAGS);
}

#[test]
fn group_mod_errors() {
    let gm = GroupMod {
        command: GroupModCommand::Add,
        group_type: GroupType::Select,
        group_id: 1,
        buckets: vec![Bucket {
            weight: 1,
            watch_port: OFPP_ANY,
            watch_group: OFPG_ANY,
            actions: vec![Action::output(1)],
        }],
    };
    let good = enc(&Message::GroupMod(gm));
    let mut b = good.clone();
    b[8..10].copy_from_slice(&3u16.to_be_bytes());
    refused(&b, ErrorCode::GROUP_MOD_BAD_COMMAND);
    let mut b = good.clone();
    b[10] = 4;
    refused(&b, ErrorCode::GROUP_MOD_BAD_TYPE);
    let mut b = good.clone();
    b[16..18].copy_from_slice(&8u16.to_be_bytes());
    refused(&b, ErrorCode::GROUP_MOD_BAD_BUCKET);
    let mut b = good;
    b[16..18].copy_from_slice(&64u16.to_be_bytes());
    refused(&b, ErrorCode::GROUP_MOD_BAD_BUCKET);
}

#[test]
fn meter_mod_errors() {
    let mm = MeterMod {
        command: MeterModCommand::Add,
        flags: meter::flags::KBPS,
        meter_id: 1,
        bands: vec![MeterBand::Drop {
            rate: 1000,
            burst_size: 0,
        }],
    };
    let good = enc(&Message::MeterMod(mm));
    let mut b = good.clone();
    b[9] = 3;
    refused(&b, ErrorCode::METER_MOD_BAD_COMMAND);
    let mut b = good.clone();
    b[11] = 0x13;
    refused(&b, ErrorCode::METER_MOD_BAD_FLAGS);
    let mut b = good.clone();
    b[11] = 3;
    refused(&b, ErrorCode::METER_MOD_BAD_FLAGS);
    let mut b = good.clone();
    b[17] = 3;
    refused(&b, ErrorCode::METER_MOD_BAD_BAND);
    let mut b = good;
    b[19] = 8;
    refused(&b, ErrorCode::BAD_REQUEST_BAD_LEN);
}

// ------------------------------------------------------------------ other bodies

#[test]
fn bad_role() {
    let mut b = enc(&Message::RoleRequest(Role {
        role: ControllerRole::Master,
        generation_id: 1,
    }));
    b[11] = 4;
    refused(&b, ErrorCode::ROLE_REQUEST_BAD_ROLE);
}

#[test]
fn bad_switch_config_flags() {
    let b = enc(&Message::SetConfig(SwitchConfig {
        flags: 4,
        miss_send_len: 128,
    }));
    refused(&b, ErrorCode::SWITCH_CONFIG_BAD_FLAGS);
}

#[test]
fn table_features_errors() {
    let req = |t: TableFeatures| {
        enc(&Message::MultipartRequest(MultipartRequest {
            flags: 0,
            body: MultipartRequestBody::TableFeatures(vec![t]),
        }))
    };
    let all = TableFeatures {
        table_id: OFPTT_ALL,
        ..TableFeatures::default()
    };
    refused(&req(all), ErrorCode::TABLE_FEATURES_BAD_TABLE);
    let t = TableFeatures {
        table_id: 0,
        properties: vec![TableFeatureProp::NextTables(vec![1, 2])],
        ..TableFeatures::default()
    };
    let good = req(t);
    // property type 9 does not exist
    let mut b = good.clone();
    b[16 + 64..16 + 66].copy_from_slice(&9u16.to_be_bytes());
    refused(&b, ErrorCode::TABLE_FEATURES_BAD_TYPE);
    // property length past the entry
    let mut b = good.clone();
    b[16 + 66..16 + 68].copy_from_slice(&40u16.to_be_bytes());
    refused(&b, ErrorCode::TABLE_FEATURES_BAD_LEN);
    // entry length shorter than its fixed part
    let mut b = good;
    b[16..18].copy_from_slice(&32u16.to_be_bytes());
    refused(&b, ErrorCode::TABLE_FEATURES_BAD_LEN);
}

#[test]
fn bundle_errors() {
    let ctrl = enc(&Message::BundleControl(BundleControl {
        bundle_id: 1,
        ctrl_type: BundleCtrlType::OpenRequest,
        flags: 1,
        properties: vec![],
    }));
    let mut b = ctrl.clone();
    b[21] = 8;
    refused(&b, ErrorCode::BUNDLE_BAD_TYPE);
    let mut b = ctrl;
    b[23] = 4;
    refused(&b, ErrorCode::BUNDLE_BAD_FLAGS);

    let add = |inner: Message| {
        enc(&Message::BundleAdd(BundleAdd {
            bundle_id: 1,
            flags: 1,
            message: Box::new(inner),
            properties: vec![],
        }))
    };
    refused(&add(Message::BarrierRequest), ErrorCode::BUNDLE_MSG_UNSUP);
    let good = add(Message::FlowMod(flow_mod()));
    let mut b = good.clone();
    b[31] ^= 1; // the inner xid
    refused(&b, ErrorCode::BUNDLE_MSG_BAD_XID);
    let mut b = good.clone();
    b[26..28].copy_from_slice(&0x1000u16.to_be_bytes()); // inner length past the end
    refused(&b, ErrorCode::BUNDLE_MSG_BAD_LEN);
    let mut b = good;
    b[26..28].copy_from_slice(&4u16.to_be_bytes());
    refused(&b, ErrorCode::BUNDLE_MSG_BAD_LEN);
    // The inner message's own error comes out as is.
    let mut fm = flow_mod();
    fm.table_id = OFPTT_ALL;
    refused(&add(Message::FlowMod(fm)), ErrorCode::FLOW_MOD_BAD_TABLE_ID);
}

// ------------------------------------------------------------------ the ERROR itself

#[test]
fn error_data_is_the_first_64_bytes() {
    let mut fm = flow_mod();
    fm.table_id = OFPTT_ALL;
    fm.instructions = vec![Instruction::ApplyActions(vec![Action::output(1); 8])];
    let b = enc(&Message::FlowMod(fm));
    assert!(b.len() > 64);
    let e = Message::decode(&b).unwrap_err();
    assert_eq!(e.data.len(), 64);
    assert_eq!(e.data, b[..64]);
    assert_eq!(e.xid, XID);
    // type 5 (FLOW_MOD_FAILED), code 2 (BAD_TABLE_ID), then the 64 bytes.
    let reply = e.reply_bytes();
    assert_eq!(&reply[..8], &[4, 1, 0, 76, 0x0a, 0x0b, 0x0c, 0x0d]);
    assert_eq!(&reply[8..12], &[0, 5, 0, 2]);
    assert_eq!(&reply[12..], &b[..64]);
}

#[test]
fn experimenter_error_reply_layout() {
    let mut fm = flow_mod();
    fm.instructions = vec![Instruction::ClearActions, Instruction::ClearActions];
    let e = Message::decode(&enc(&Message::FlowMod(fm))).unwrap_err();
    let reply = e.reply_bytes();
    // type 0xffff, exp_type 2600, experimenter ONF.
    assert_eq!(
        &reply[8..16],
        &[0xff, 0xff, 0x0a, 0x28, 0x4f, 0x4e, 0x46, 0x00]
    );
}

#[test]
fn framer_refuses_short_length_and_stays_dead() {
    let mut f = Framer::new();
    f.push(&enc(&Message::EchoRequest(vec![1, 2, 3])));
    assert!(f.next_message().unwrap().unwrap().is_ok());
    f.push(&[4, 0, 0, 7, 0, 0, 0, 42, 9, 9]);
    let e = f.next_frame().unwrap_err().0;
    assert_eq!(e.code, ErrorCode::BAD_REQUEST_BAD_LEN);
    assert_eq!(e.xid, 42);
    assert_eq!(e.data, [4, 0, 0, 7, 0, 0, 0, 42]);
    f.push(&enc(&Message::BarrierRequest));
    assert!(f.next_frame().is_err());
    assert!(f.next_message().is_err());
    assert!(f.is_dead());
}

#[test]
fn framer_passes_per_message_refusals_and_goes_on() {
    let mut f = Framer::new();
    let mut bad = enc(&Message::BarrierRequest);
    bad[1] = 99;
    f.push(&bad);
    f.push(&enc(&Message::BarrierRequest));
    let e = f.next_message().unwrap().unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::BAD_REQUEST_BAD_TYPE);
    let (_, m) = f.next_message().unwrap().unwrap().unwrap();
    assert_eq!(m, Message::BarrierRequest);
}
