//! Hot paths of the work queue: admission + release with a free slot (the lock-free path),
//! with a deadline (one clock read more), async, under contention from several threads, and
//! the locked path of a queue with a standing backlog of waiters.

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tailguard::admission::{
    AdmitError, AdmitFuture, Deadline, Permit, Priority, Request, TenantId, WorkQueue, WorkQueueConfig,
};
use tailguard::clock::{Clock, ManualClock, SystemClock};

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
    c.bench_function("admission/submit_release/free_slot", |b| {
        // The job runs at once on this thread with its permit, and drops it.
        b.iter(|| queue.submit(black_box(&request), |permit| drop(black_box(permit.unwrap()))));
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

thread_local! {
    /// Indices of the backlog futures woken on this thread, in order.
    static WOKEN: RefCell<Vec<usize>> = RefCell::new(Vec::with_capacity(1024));
}

/// A waker as cheap as a no-op one that records which backlog future it belongs to: its data
/// pointer is the future's index, never dereferenced.
fn index_waker(index: usize) -> Waker {
    const VTABLE: RawWakerVTable = RawWakerVTable::new(
        |data| RawWaker::new(data, &VTABLE),
        |data| WOKEN.with(|woken| woken.borrow_mut().push(data as usize)),
        |data| WOKEN.with(|woken| woken.borrow_mut().push(data as usize)),
        |_| {},
    );
    // SAFETY: every function of the vtable ignores or copies the data pointer (an integer, never
    // dereferenced), so the waker is valid on any thread and for any lifetime.
    unsafe { Waker::from_raw(RawWaker::new(index as *const (), &VTABLE)) }
}

/// A one-slot queue on a manual clock whose slot is held while async waiters queue behind it.
struct Backlog {
    clock: ManualClock,
    queue: WorkQueue,
    futures: Vec<Option<AdmitFuture>>,
    wakers: Vec<Waker>,
    free: Vec<usize>,
    held: Option<Permit>,
    arrivals: u64,
}

impl Backlog {
    fn new() -> Self {
        let clock = ManualClock::new();
        let config = WorkQueueConfig {
            initial_slots: 1,
            min_slots: 1,
            max_slots: 1,
            cores: 2.0,
            ..Default::default()
        };
        let queue = WorkQueue::new(config, clock.shared()).unwrap();
        let held = Some(queue.try_admit(&Request::new()).unwrap());
        Backlog { clock, queue, futures: Vec::new(), wakers: Vec::new(), free: Vec::new(), held, arrivals: 0 }
    }

    /// Queues a request (its first poll must be pending).
    fn enqueue(&mut self, request: &Request) {
        let index = self.free.pop().unwrap_or_else(|| {
            self.futures.push(None);
            self.wakers.push(index_waker(self.wakers.len()));
            self.futures.len() - 1
        });
        let mut future = self.queue.admit_async(request);
        let mut cx = Context::from_waker(&self.wakers[index]);
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending(), "the slot is held: it queues");
        self.futures[index] = Some(future);
        self.arrivals += 1;
    }

    /// A request of tenant `arrivals % 3` at one of two priorities, failing at `deadline`.
    fn request(&self, priority: Priority, deadline: Deadline) -> Request {
        Request::new().tenant(TenantId(self.arrivals % 3)).priority(priority).deadline(deadline)
    }

    /// Releases the held slot (the queue hands it to the next waiter), then polls every woken
    /// future: the admitted one's permit becomes the held one, expired ones are dropped.
    fn release_and_collect(&mut self) {
        drop(self.held.take());
        let mut woken = WOKEN.with(|woken| std::mem::take(&mut *woken.borrow_mut()));
        for &index in &woken {
            let Some(future) = self.futures[index].as_mut() else { continue };
            let mut cx = Context::from_waker(&self.wakers[index]);
            match Pin::new(future).poll(&mut cx) {
                Poll::Ready(Ok(permit)) => {
                    assert!(self.held.replace(permit).is_none(), "one slot, one permit");
                }
                Poll::Ready(Err(AdmitError::DeadlineExceeded { .. })) => {}
                other => panic!("a woken waiter is done: {other:?}"),
            }
            self.futures[index] = None;
            self.free.push(index);
        }
        woken.clear();
        WOKEN.with(|cell| *cell.borrow_mut() = woken);
        assert!(self.held.is_some(), "the released slot went to a waiter");
    }
}

/// The locked path under overload, single thread: every request queues behind a standing
/// backlog, and each release hands the slot to the next waiter, which collects it.
fn queued(c: &mut Criterion) {
    const BACKLOG: usize = 1000;
    let priorities = [Priority::NORMAL, Priority::HIGH];
    let mut steady = Backlog::new();
    let far = Deadline::at_nanos(steady.clock.now_nanos() + 3_600_000_000_000);
    while steady.arrivals < BACKLOG as u64 {
        let request = steady.request(priorities[steady.arrivals as usize / 3 % 2], far);
        steady.enqueue(&request);
    }
    // One arrival (tenants 0..3 in turn, two priorities, a deadline an hour away), one release
    // that grants the next waiter, one poll that collects its permit: the backlog stays at 1000.
    c.bench_function("admission/queued/enqueue_grant_collect_release", |b| {
        b.iter(|| {
            let request = steady.request(priorities[steady.arrivals as usize / 3 % 2], far);
            steady.enqueue(black_box(&request));
            steady.release_and_collect();
        });
    });
    drop(steady);

    // Two arrivals per step of 1 µs: a high-priority one (deadline an hour away) that a release
    // admits, and a normal one with a 500 µs deadline that nothing admits: it expires 500 steps
    // later, at the next event. The backlog stays at ~500 of each.
    let step = Duration::from_micros(1);
    let mut expiring = Backlog::new();
    let far = Deadline::at_nanos(expiring.clock.now_nanos() + 3_600_000_000_000);
    for _ in 0..BACKLOG / 2 {
        let high = expiring.request(Priority::HIGH, far);
        expiring.enqueue(&high);
        let soon = expiring.queue.deadline_in(step * 500);
        let normal = expiring.request(Priority::NORMAL, soon);
        expiring.enqueue(&normal);
        expiring.clock.advance(step);
    }
    c.bench_function("admission/queued/enqueue_expire_grant_collect_release", |b| {
        b.iter(|| {
            expiring.clock.advance(step);
            let high = expiring.request(Priority::HIGH, far);
            expiring.enqueue(black_box(&high));
            let soon = expiring.queue.deadline_in(step * 500);
            let normal = expiring.request(Priority::NORMAL, soon);
            expiring.enqueue(black_box(&normal));
            expiring.release_and_collect();
        });
    });
}

criterion_group!(benches, uncontended, contended, queued);
criterion_main!(benches);
