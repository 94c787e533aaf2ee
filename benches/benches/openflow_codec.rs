//! OpenFlow codec throughput: encode and decode of a FLOW_MOD with 8 match fields and 4
//! actions, a PACKET_IN carrying 128 bytes, and a FLOW multipart reply of 1,000 entries (split
//! over several messages with the MORE flag, as a switch must send it, and reassembled).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use fuxi_openflow::consts::{OFP_NO_BUFFER, OFPG_ANY, OFPP_ANY};
use fuxi_openflow::header::OFP_MAX_MSG_LEN;
use fuxi_openflow::msg::{
    FlowMod, FlowModCommand, FlowStats, MultipartReply, MultipartReplyBody, PacketIn,
};
use fuxi_openflow::{Action, FieldId, Instruction, MacAddr, Match, Message, Oxm};

fn eight_field_match(i: u32) -> Match {
    Match::all()
        .with(Oxm::in_port(1 + i % 4))
        .with(Oxm::eth_src(MacAddr([2, 0, 0, 0, 0, 1])))
        .with(Oxm::eth_dst(MacAddr([2, 0, 0, 0, 0, 2])))
        .with(Oxm::eth_type(0x0800))
        .with(Oxm::ip_proto(6))
        .with(Oxm::ipv4_src(Ipv4Addr::from(0x0a00_0000 + i)))
        .with(Oxm::masked(FieldId::Ipv4Dst, 0x0a01_0000, 0xffff_0000))
        .with(Oxm::exact(FieldId::TcpDst, 80))
}

fn four_actions() -> Vec<Instruction> {
    vec![Instruction::ApplyActions(vec![
        Action::set_field(Oxm::eth_src(MacAddr([2, 0, 0, 0, 0, 0xfe]))),
        Action::set_field(Oxm::eth_dst(MacAddr([2, 0, 0, 0, 0, 3]))),
        Action::DecNwTtl,
        Action::output(2),
    ])]
}

fn flow_mod() -> Message {
    Message::FlowMod(FlowMod {
        cookie: 0x1234,
        cookie_mask: 0,
        table_id: 0,
        command: FlowModCommand::Add,
        idle_timeout: 0,
        hard_timeout: 0,
        priority: 100,
        buffer_id: OFP_NO_BUFFER,
        out_port: OFPP_ANY,
        out_group: OFPG_ANY,
        flags: 0,
        match_: eight_field_match(0),
        instructions: four_actions(),
    })
}

fn packet_in() -> Message {
    Message::PacketIn(PacketIn {
        buffer_id: OFP_NO_BUFFER,
        total_len: 128,
        reason: 0,
        table_id: 0,
        cookie: 0,
        match_: Match::all().with(Oxm::in_port(3)),
        data: (0..128u8).collect(),
    })
}

fn flow_reply(n: u32) -> MultipartReply {
    let stats = (0..n)
        .map(|i| FlowStats {
            table_id: 0,
            duration_sec: i,
            duration_nsec: 0,
            priority: 100,
            idle_timeout: 0,
            hard_timeout: 0,
            flags: 0,
            cookie: u64::from(i),
            packet_count: u64::from(i) * 10,
            byte_count: u64::from(i) * 640,
            match_: eight_field_match(i),
            instructions: four_actions(),
        })
        .collect();
    MultipartReply {
        flags: 0,
        body: MultipartReplyBody::Flow(stats),
    }
}

fn single_messages(c: &mut Criterion) {
    for (name, msg) in [
        ("flow_mod_8f_4a", flow_mod()),
        ("packet_in_128", packet_in()),
    ] {
        let bytes = msg.to_vec(7);
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        let mut buf = Vec::with_capacity(bytes.len());
        g.bench_function("encode", |b| {
            b.iter(|| {
                buf.clear();
                black_box(&msg).encode(7, &mut buf);
                black_box(buf.len())
            })
        });
        g.bench_function("decode", |b| {
            b.iter(|| Message::decode(black_box(&bytes)).unwrap())
        });
        g.finish();
    }
}

fn flow_stats_reply(c: &mut Criterion) {
    let reply = flow_reply(1000);
    let parts: Vec<Vec<u8>> = reply
        .clone()
        .split(OFP_MAX_MSG_LEN)
        .into_iter()
        .map(|p| Message::MultipartReply(p).to_vec(9))
        .collect();
    let mut g = c.benchmark_group("flow_reply_1000");
    // One element = one whole 1,000-entry reply (all its parts).
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode", |b| {
        // The clone is setup, not measured: a switch builds the reply once and sends it.
        b.iter_batched(
            || reply.clone(),
            |r| {
                let mut out = Vec::new();
                for p in r.split(OFP_MAX_MSG_LEN) {
                    Message::MultipartReply(p).encode(9, &mut out);
                }
                out.len()
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            let parts = black_box(&parts)
                .iter()
                .map(|bytes| match Message::decode(bytes) {
                    Ok((_, Message::MultipartReply(r))) => r,
                    other => panic!("not a multipart reply: {other:?}"),
                });
            MultipartReply::reassemble(parts).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, single_messages, flow_stats_reply);
criterion_main!(benches);
