//! Hot paths of the elastic limiter: `over_limit()`, acquire + release, contended acquire, and
//! a poll of an elastic task (`Limiter::elastic`) against a bare poll.

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
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

/// A future that is never ready. With a limiter it holds a grant taken inside its own poll
/// (charged with the task's running time when it runs as an elastic task), checks it once per
/// poll, and takes a new one when it is used up.
struct Spin<'a> {
    limiter: Option<&'a Limiter>,
    grant: Option<tailguard::elastic::ElasticHandle>,
}

impl Future for Spin<'_> {
    type Output = ();

    #[inline]
    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if let Some(limiter) = self.limiter {
            if self.grant.as_ref().is_none_or(|grant| black_box(grant).over_limit()) {
                let request = AcquireRequest::new().grant(Duration::from_secs(1));
                self.grant = None;
                self.grant = Some(limiter.try_acquire(&request).expect("tokens to spare"));
            }
        }
        Poll::Pending
    }
}

/// One poll of an always-pending future: bare, wrapped as an elastic task, and wrapped with an
/// `over_limit()` check inside (its grant charged with the task's running time).
fn task_poll(c: &mut Criterion) {
    let limiter = roomy(SystemClock::shared());
    let mut cx = Context::from_waker(Waker::noop());
    let mut group = c.benchmark_group("elastic/task_poll");
    group.bench_function("bare", |b| {
        let mut future = Spin { limiter: None, grant: None };
        b.iter(|| black_box(Pin::new(&mut future).poll(&mut cx)));
    });
    group.bench_function("elastic_task", |b| {
        let mut task = Box::pin(limiter.elastic(Spin { limiter: None, grant: None }));
        b.iter(|| black_box(task.as_mut().poll(&mut cx)));
    });
    group.bench_function("elastic_task_over_limit", |b| {
        let mut task = Box::pin(limiter.elastic(Spin { limiter: Some(&limiter), grant: None }));
        b.iter(|| black_box(task.as_mut().poll(&mut cx)));
    });
    group.bench_function("bare_over_limit", |b| {
        // The same check on a grant metered by the thread CPU clock, for comparison.
        let mut future = Spin { limiter: Some(&limiter), grant: None };
        b.iter(|| black_box(Pin::new(&mut future).poll(&mut cx)));
    });
    group.finish();
}

criterion_group!(benches, over_limit, acquire_release, contended, task_poll);
criterion_main!(benches);
