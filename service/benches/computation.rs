//! The pure MD5 chain behind `/computation`, without HTTP or the worker pool: the floor
//! that `scripts/bench.sh` compares the endpoint's latency with.

use std::hint::black_box;

use candidates::computation::md5_chain;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("md5_chain");
    // A default request: 50,000 steps seeded with an RFC 3339 timestamp.
    group.throughput(Throughput::Elements(50_000));
    group.bench_function("50000_iterations_timestamp_seed", |b| {
        b.iter(|| {
            md5_chain(
                black_box("2026-11-22T12:00:00.123456789Z"),
                black_box(50_000),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
