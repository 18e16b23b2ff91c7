//! Hot paths of the work queue: admission + release with a free slot (the lock-free path),
//! with a deadline (one clock read more), async, and under contention from several threads.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tailguard::admission::{Request, WorkQueue, WorkQueueConfig};
use tailguard::clock::SystemClock;

fn queue(slots: u32) -> WorkQueue {
    let config =
        WorkQueueConfig { initial_slots: slots, min_slots: slots, max_slots: slots, ..Default::default() };
    WorkQueue::new(config, SystemClock::shared()).unwrap()
}

fn uncontended(c: &mut Criterion) {
    let queue = queue(64);
    let request = Request::new();
    c.bench_function("admission/admit_release/free_slot", |b| {
        b.iter(|| drop(black_box(queue.admit(black_box(&request)).unwrap())));
    });
    c.bench_function("admission/try_admit_release/free_slot", |b| {
        b.iter(|| drop(black_box(queue.try_admit(black_box(&request)).unwrap())));
    });
    let with_deadline = Request::new().deadline(queue.deadline_in(Duration::from_secs(3600)));
    c.bench_function("admission/admit_release/free_slot_with_deadline", |b| {
        b.iter(|| drop(black_box(queue.admit(black_box(&with_deadline)).unwrap())));
    });
    let mut cx = Context::from_waker(Waker::noop());
    c.bench_function("admission/admit_async_release/free_slot", |b| {
        b.iter(|| {
            let future = pin!(queue.admit_async(black_box(&request)));
            match future.poll(&mut cx) {
                Poll::Ready(result) => drop(black_box(result.unwrap())),
                Poll::Pending => unreachable!("a free slot admits at once"),
            }
        });
    });
}

/// `threads` threads each admit and release in a loop; criterion reports the wall time per
/// admission across all threads (inverse throughput).
fn threaded(c: &mut Criterion, name: &str, threads: u64, slots: u32, work: Duration) {
    let queue = queue(slots);
    c.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(threads);
            let barrier = Arc::new(Barrier::new(threads as usize + 1));
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let queue = queue.clone();
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        let request = Request::new();
                        barrier.wait();
                        for _ in 0..per_thread {
                            let permit = queue.admit(&request).unwrap();
                            if !work.is_zero() {
                                let start = Instant::now();
                                while start.elapsed() < work {
                                    std::hint::spin_loop();
                                }
                            }
                            drop(black_box(permit));
                        }
                    })
                })
                .collect();
            barrier.wait();
            let start = Instant::now();
            for handle in handles {
                handle.join().unwrap();
            }
            start.elapsed()
        });
    });
}

fn contended(c: &mut Criterion) {
    // Enough slots for everyone: contention on the admission word only.
    threaded(c, "admission/admit_release/4_threads_free_slots", 4, 64, Duration::ZERO);
    // Two slots for four threads: waiters queue and are handed slots under the lock.
    threaded(c, "admission/admit_release/4_threads_2_slots", 4, 2, Duration::ZERO);
    // The same with 2 µs of work per request, so that slots are held while others arrive.
    threaded(c, "admission/admit_release/4_threads_2_slots_2us_work", 4, 2, Duration::from_micros(2));
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
