//! Hot paths of the elastic limiter: `over_limit()`, acquire + release, contended acquire, a
//! poll of an elastic task (`Limiter::elastic`) against a bare poll, and the wait queue under a
//! standing backlog (`elastic/queued/*`).

use std::cell::RefCell;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tailguard::clock::{ManualClock, SharedClock, SystemClock};
use tailguard::elastic::{
    AcquireError, AcquireFuture, AcquireRequest, ControllerKind, ElasticHandle, Limiter,
};
use tailguard::order::Priority;

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

/// A limiter on a manual clock whose one grant's worth of tokens is held while async waiters
/// queue behind it: 5 % of one core holds 50 ms, and the held 100 ms grant leaves 50 ms of
/// debt, so each release of the (unused) held grant puts the balance back above zero for
/// exactly one more grant.
struct Backlog {
    clock: ManualClock,
    limiter: Limiter,
    futures: Vec<Option<AcquireFuture>>,
    wakers: Vec<Waker>,
    free: Vec<usize>,
    held: Option<ElasticHandle>,
    arrivals: u64,
}

impl Backlog {
    fn new() -> Self {
        let clock = ManualClock::new();
        let limiter = Limiter::builder()
            .cores(1.0)
            .controller(ControllerKind::Fixed(0.05))
            .clock(clock.shared())
            .build()
            .unwrap();
        let held = Some(limiter.try_acquire(&AcquireRequest::new()).unwrap());
        // Wake-ups left over from an earlier backlog's teardown name none of this one's futures.
        WOKEN.with(|woken| woken.borrow_mut().clear());
        Backlog {
            clock,
            limiter,
            futures: Vec::new(),
            wakers: Vec::new(),
            free: Vec::new(),
            held,
            arrivals: 0,
        }
    }

    /// Queues a request (its first poll must be pending), giving up after `timeout` if set.
    fn enqueue(&mut self, request: &AcquireRequest, timeout: Option<Duration>) {
        let index = self.free.pop().unwrap_or_else(|| {
            self.futures.push(None);
            self.wakers.push(index_waker(self.wakers.len()));
            self.futures.len() - 1
        });
        let mut future = match timeout {
            Some(timeout) => self.limiter.acquire_async_timeout(request, timeout),
            None => self.limiter.acquire_async(request),
        };
        let mut cx = Context::from_waker(&self.wakers[index]);
        assert!(Pin::new(&mut future).poll(&mut cx).is_pending(), "the tokens are held: it queues");
        self.futures[index] = Some(future);
        self.arrivals += 1;
    }

    /// Releases the held grant (the limiter grants the next waiter), then polls every woken
    /// future: the granted one's handle becomes the held one, timed-out ones are dropped.
    fn release_and_collect(&mut self) {
        drop(self.held.take());
        let mut woken = WOKEN.with(|woken| std::mem::take(&mut *woken.borrow_mut()));
        for &index in &woken {
            let Some(future) = self.futures[index].as_mut() else { continue };
            let mut cx = Context::from_waker(&self.wakers[index]);
            match Pin::new(future).poll(&mut cx) {
                Poll::Ready(Ok(handle)) => {
                    assert!(self.held.replace(handle).is_none(), "one grant's worth, one grant");
                }
                Poll::Ready(Err(AcquireError::Timeout(_))) => {}
                other => panic!("a woken waiter is done: {:?}", other.map(|r| r.map(|h| h.granted()))),
            }
            self.futures[index] = None;
            self.free.push(index);
        }
        woken.clear();
        WOKEN.with(|cell| *cell.borrow_mut() = woken);
        assert!(self.held.is_some(), "the released tokens went to a waiter");
    }
}

/// The wait queue under a standing backlog of 1000 async waiters, on one thread: each step
/// queues a new waiter, releases the held grant (the limiter grants the next waiter and, after
/// unlocking, wakes it) and polls the granted future, which collects its handle.
fn queued(c: &mut Criterion) {
    const BACKLOG: u64 = 1000;
    let mut group = c.benchmark_group("elastic/queued");
    // Three tenants in turn, two priorities.
    let request = |arrivals: u64| {
        let priority = if arrivals / 3 % 2 == 0 { QUEUED_NORMAL } else { QUEUED_HIGH };
        AcquireRequest::new().tenant(arrivals % 3).priority(priority)
    };
    let mut steady = Backlog::new();
    while steady.arrivals < BACKLOG {
        steady.enqueue(&request(steady.arrivals), None);
    }
    group.bench_function("enqueue_grant_collect_release", |b| {
        b.iter(|| {
            steady.enqueue(black_box(&request(steady.arrivals)), None);
            steady.release_and_collect();
        });
    });
    drop(steady);

    // No tenants, one priority: arrival order alone.
    let mut plain = Backlog::new();
    while plain.arrivals < BACKLOG {
        plain.enqueue(&AcquireRequest::new(), None);
    }
    group.bench_function("no_tenants", |b| {
        b.iter(|| {
            plain.enqueue(black_box(&AcquireRequest::new()), None);
            plain.release_and_collect();
        });
    });
    drop(plain);

    // Two arrivals per step of 1 µs: a high-priority one that a release grants, and a normal
    // one with a 500 µs timeout that nothing grants: it times out 500 steps later, at the next
    // release. The backlog stays at ~500 of each.
    let step = Duration::from_micros(1);
    let mut expiring = Backlog::new();
    let high = |arrivals: u64| AcquireRequest::new().tenant(arrivals % 3).priority(QUEUED_HIGH);
    let normal = |arrivals: u64| AcquireRequest::new().tenant(arrivals % 3).priority(QUEUED_NORMAL);
    for _ in 0..BACKLOG / 2 {
        expiring.enqueue(&high(expiring.arrivals), None);
        expiring.enqueue(&normal(expiring.arrivals), Some(step * 500));
        expiring.clock.advance(step);
    }
    group.bench_function("enqueue_expire_grant_collect_release", |b| {
        b.iter(|| {
            expiring.clock.advance(step);
            expiring.enqueue(black_box(&high(expiring.arrivals)), None);
            expiring.enqueue(black_box(&normal(expiring.arrivals)), Some(step * 500));
            expiring.release_and_collect();
        });
    });
    group.finish();
}

/// The two priorities of the queued benchmarks.
const QUEUED_NORMAL: Priority = Priority::NORMAL;
const QUEUED_HIGH: Priority = Priority::HIGH;

criterion_group!(benches, over_limit, acquire_release, contended, task_poll, queued);
criterion_main!(benches);
