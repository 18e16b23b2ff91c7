//! Hot paths of the elastic limiter: `over_limit()`, acquire + release, contended acquire.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tailguard::clock::{ManualClock, SharedClock, SystemClock};
use tailguard::elastic::{AcquireRequest, ControllerKind, Limiter};

/// A limiter with tokens to spare, so the benchmarks measure the mechanism, not waiting.
fn roomy(clock: SharedClock) -> Limiter {
    Limiter::builder().cores(64.0).controller(ControllerKind::Fixed(1.0)).clock(clock).build().unwrap()
}

fn over_limit(c: &mut Criterion) {
    let limiter = roomy(SystemClock::shared());
    let request = AcquireRequest::new().grant(Duration::from_secs(1));
    c.bench_function("elastic/over_limit", |b| {
        b.iter_custom(|iters| {
            let mut handle = limiter.acquire(&request).expect("the limiter runs");
            let start = Instant::now();
            for _ in 0..iters {
                if black_box(&handle).over_limit() {
                    handle = limiter.acquire(&request).expect("the limiter runs");
                }
            }
            start.elapsed()
        });
    });
}

fn acquire_release(c: &mut Criterion) {
    let request = AcquireRequest::new();
    let manual = roomy(ManualClock::new().shared());
    c.bench_function("elastic/acquire_release/manual_clock", |b| {
        b.iter(|| drop(black_box(manual.try_acquire(&request).unwrap())));
    });
    let system = roomy(SystemClock::shared());
    c.bench_function("elastic/acquire_release/system_clock", |b| {
        b.iter(|| drop(black_box(system.try_acquire(&request).unwrap())));
    });
}

fn contended(c: &mut Criterion) {
    const THREADS: u64 = 8;
    let limiter = roomy(SystemClock::shared());
    c.bench_function("elastic/acquire_release/8_threads", |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(THREADS);
            let barrier = Arc::new(Barrier::new(THREADS as usize + 1));
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    let limiter = limiter.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        let request = AcquireRequest::new();
                        barrier.wait();
                        for _ in 0..per_thread {
                            drop(black_box(limiter.acquire(&request).expect("the limiter runs")));
                        }
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            for thread in threads {
                thread.join().unwrap();
            }
            // Wall time for `iters` operations spread over the threads: criterion reports the
            // amortised wall time per operation (inverse throughput).
            start.elapsed()
        });
    });
}

criterion_group!(benches, over_limit, acquire_release, contended);
criterion_main!(benches);
