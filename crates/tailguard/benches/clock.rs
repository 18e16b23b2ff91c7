//! Clock read costs: the monotonic clock (vDSO) against the thread CPU clock (a system call).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tailguard::clock::{Clock, ManualClock, SharedClock, SystemClock, ThreadCpuClock, process_cpu_time};

fn clocks(c: &mut Criterion) {
    let mut group = c.benchmark_group("clock");
    group.bench_function("system_now_nanos", |b| b.iter(|| black_box(SystemClock.now_nanos())));
    let shared: SharedClock = SystemClock::shared();
    group.bench_function("shared_dyn_now_nanos", |b| b.iter(|| black_box(shared.now_nanos())));
    group.bench_function("std_instant_now", |b| b.iter(|| black_box(Instant::now())));
    group.bench_function("system_thread_cpu_nanos", |b| b.iter(|| black_box(SystemClock.thread_cpu_nanos())));
    group.bench_function("process_cpu_time", |b| b.iter(|| black_box(process_cpu_time())));
    // A thread's clock read by id, as a sampler reads another thread's (same system call).
    if let Some(clock) = ThreadCpuClock::current() {
        group.bench_function("thread_cpu_clock_elapsed", |b| b.iter(|| black_box(clock.elapsed())));
    }
    let manual = ManualClock::new();
    group.bench_function("manual_now_nanos", |b| b.iter(|| black_box(manual.now_nanos())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = clocks
}
criterion_main!(benches);
