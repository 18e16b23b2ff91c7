//! Histogram hot paths: `record` uncontended and from two threads, snapshot and quantile.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tailguard::histogram::{Histogram, WindowConfig, WindowedHistogram};

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("histogram");
    let histogram = Histogram::new();
    let mut value = 1u64;
    group.bench_function("record_uncontended", |b| {
        b.iter(|| {
            // A cheap LCG spreads values over many buckets, as real latencies do.
            value = value.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            histogram.record(black_box(value >> 40));
        });
    });
    let window = WindowedHistogram::new(WindowConfig::DEFAULT).unwrap();
    group.bench_function("windowed_record_nanos", |b| {
        b.iter(|| window.record_nanos(black_box(123_456)));
    });
    group.bench_function("record_two_threads", |b| {
        b.iter_custom(|iters| {
            let histogram = Arc::new(Histogram::new());
            let barrier = Arc::new(Barrier::new(2));
            let other = {
                let (h, barrier) = (histogram.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..iters {
                        h.record(black_box(100_000 + (i & 1023)));
                    }
                })
            };
            barrier.wait();
            let start = Instant::now();
            for i in 0..iters {
                histogram.record(black_box(100_000 + (i & 1023)));
            }
            let elapsed = start.elapsed();
            other.join().unwrap();
            elapsed
        });
    });
    for i in 0..100_000u64 {
        histogram.record(i * 97);
    }
    group.bench_function("snapshot", |b| b.iter(|| black_box(histogram.snapshot())));
    let snapshot = histogram.snapshot();
    group.bench_function("p99", |b| b.iter(|| black_box(snapshot.p99())));
    group.bench_function("window_snapshot", |b| b.iter(|| black_box(window.snapshot())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = record
}
criterion_main!(benches);
