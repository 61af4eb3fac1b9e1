//! Criterion bench for topic pattern matching (JWT `topics`/`publish`
//! claims), checked on every subscribe and publish.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use relay_gateway::auth::pattern_matches;

fn patterns(c: &mut Criterion) {
    let cases = [
        ("exact", "chat:room1", "chat:room1"),
        ("star", "chat:*", "chat:room1"),
        ("star_miss", "chat:*", "chat:room1:x"),
        ("double_star", "org:acme:**", "org:acme:team:7:dash"),
        ("miss_prefix", "org:acme:**", "org:other:team:7"),
    ];
    for (name, pattern, topic) in cases {
        c.bench_function(&format!("pattern_matches/{name}"), |b| {
            b.iter(|| pattern_matches(black_box(pattern), black_box(topic)))
        });
    }
}

criterion_group!(benches, patterns);
criterion_main!(benches);
