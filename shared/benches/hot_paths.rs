//! Criterion benches for the pure functions on Relay's event path:
//! building an event frame, reading its id back, parsing a client frame,
//! and encoding/decoding a poll/SSE cursor.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use relay_shared::cursor::Cursor;
use relay_shared::event::{frame_id, write_frame, StreamId};
use relay_shared::protocol::parse_client_frame;
use relay_shared::topic::Topic;

const DATA: &str = r#"{"percent":40,"step":"match","message":"row 50000 of 100000","processed":50000,"total":100000}"#;

fn frames(c: &mut Criterion) {
    let id = StreamId {
        ms: 1_732_240_000_000,
        seq: 3,
    };
    c.bench_function("write_frame", |b| {
        let mut out = String::with_capacity(256);
        b.iter(|| {
            out.clear();
            write_frame(
                &mut out,
                black_box("job:7f3a9c"),
                id,
                black_box("\"job.progress\""),
                black_box(DATA),
            );
            black_box(out.len())
        })
    });
    let mut frame = String::new();
    write_frame(&mut frame, "job:7f3a9c", id, "\"job.progress\"", DATA);
    c.bench_function("frame_id", |b| {
        b.iter(|| frame_id(black_box(frame.as_bytes())))
    });
}

fn client_frames(c: &mut Criterion) {
    let subscribe =
        r#"{"op":"subscribe","id":1,"topic":"job:7f3a","since":"1732240000000-3","epoch":"k3x9"}"#;
    let publish = r#"{"op":"publish","id":3,"topic":"chat:room1","type":"message","data":{"text":"hi","n":[1,2,3]}}"#;
    c.bench_function("parse_client_frame/subscribe", |b| {
        b.iter(|| parse_client_frame(black_box(subscribe)).is_ok())
    });
    c.bench_function("parse_client_frame/publish", |b| {
        b.iter(|| parse_client_frame(black_box(publish)).is_ok())
    });
    c.bench_function("parse_client_frame/ping", |b| {
        b.iter(|| parse_client_frame(black_box(r#"{"op":"ping"}"#)).is_ok())
    });
}

fn cursors(c: &mut Criterion) {
    let mut cursor = Cursor::default();
    for i in 0..4 {
        let topic = Topic::new(&format!("chat:room{i}")).expect("topic");
        cursor.set(
            &topic,
            "k3x9a1b2",
            StreamId {
                ms: 1_732_240_000_000 + i,
                seq: i,
            },
        );
    }
    c.bench_function("cursor_encode/4_topics", |b| {
        b.iter(|| black_box(&cursor).encode())
    });
    let text = cursor.encode();
    c.bench_function("cursor_decode/4_topics", |b| {
        b.iter(|| Cursor::decode(black_box(&text)).is_ok())
    });
}

criterion_group!(benches, frames, client_frames, cursors);
criterion_main!(benches);
