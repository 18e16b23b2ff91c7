//! `over_limit()`: how often it reads the CPU clock, yielding, pre-work, handles moved across threads.

use super::*;

/// A clock that counts CPU-clock reads.
#[derive(Debug)]
struct CountingClock {
    inner: ManualClock,
    cpu_reads: AtomicU64,
}

impl Clock for CountingClock {
    fn now_nanos(&self) -> u64 {
        self.inner.now_nanos()
    }
    fn thread_cpu_nanos(&self) -> u64 {
        self.cpu_reads.fetch_add(1, Ordering::Relaxed);
        self.inner.thread_cpu_nanos()
    }
}

fn counting_limiter() -> (Limiter, Arc<CountingClock>) {
    let clock = Arc::new(CountingClock { inner: ManualClock::new(), cpu_reads: AtomicU64::new(0) });
    let limiter = Limiter::builder()
        .cores(2.0)
        .burst(ONE_SECOND_FILL)
        .controller(ControllerKind::Fixed(0.5))
        .clock(clock.clone())
        .build()
        .unwrap();
    (limiter, clock)
}

#[test]
fn over_limit_reads_the_cpu_clock_about_once_per_millisecond() {
    let (limiter, clock) = counting_limiter();
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    let reads_before = clock.cpu_reads.load(Ordering::Relaxed);
    let mut iterations = 0u64;
    loop {
        iterations += 1;
        clock.inner.advance_cpu(Duration::from_micros(1)); // 1 µs per iteration
        if handle.over_limit() {
            break;
        }
    }
    let reads = clock.cpu_reads.load(Ordering::Relaxed) - reads_before;
    // 100 ms at 1 µs per iteration; overshoot at most a few iterations.
    assert!((100_000..=100_010).contains(&iterations), "{iterations}");
    // ~100 reads at 1 ms each, plus the ramp-up (doubling from 1) and the end-of-grant ones.
    assert!(reads < 200, "{reads} clock reads for {iterations} iterations");
    assert!(handle.used() >= 100 * MS && handle.used() <= 100 * MS + Duration::from_micros(10));
}

#[test]
fn yield_every_checks_the_clock_at_the_yield_interval() {
    let (limiter, clock) = counting_limiter();
    let request = AcquireRequest::new().yield_every(Duration::from_micros(250));
    assert_eq!(request.yield_every, Some(Duration::from_micros(250)));
    let handle = limiter.try_acquire(&request).unwrap();
    let reads_before = clock.cpu_reads.load(Ordering::Relaxed);
    let mut iterations = 0u64;
    loop {
        iterations += 1;
        clock.inner.advance_cpu(Duration::from_micros(1));
        if handle.over_limit() {
            break;
        }
    }
    let reads = clock.cpu_reads.load(Ordering::Relaxed) - reads_before;
    assert!((100_000..=100_010).contains(&iterations), "{iterations}");
    // 400 yields (and clock reads) at 250 µs each, plus the ramp-up: four times the default.
    assert!((400..600).contains(&reads), "{reads} clock reads");
    // Out-of-range intervals are clamped.
    assert_eq!(
        AcquireRequest::new().yield_every(Duration::ZERO).yield_every,
        Some(Duration::from_micros(10))
    );
    assert_eq!(
        AcquireRequest::new().yield_every(Duration::from_secs(1)).yield_every,
        Some(Duration::from_millis(1))
    );
}

#[test]
fn over_limit_shrinks_its_interval_when_iterations_slow_down() {
    let (limiter, clock) = counting_limiter();
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    let mut cost = Duration::from_micros(1);
    loop {
        if handle.used() > 10 * MS {
            cost = Duration::from_micros(100); // iterations become 100× slower
        }
        clock.inner.advance_cpu(cost);
        if handle.over_limit() {
            break;
        }
    }
    // Once the estimator re-learns, checks land every ~1 ms and the overshoot is at most one
    // slow iteration past the grant.
    let used = handle.used();
    assert!(used <= 100 * MS + Duration::from_micros(100), "{used:?}");
}

#[test]
fn start_timer_charges_pre_work_without_eating_the_grant() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let handle = limiter.try_acquire(&AcquireRequest::new().grant(10 * MS)).unwrap();
    clock.advance_cpu(30 * MS); // pre-work: resolving locks
    handle.start_timer();
    assert!(!handle.over_limit());
    clock.advance_cpu(9 * MS);
    assert!(!handle.over_limit());
    clock.advance_cpu(MS);
    assert!(handle.over_limit());
    assert_eq!(handle.used(), 40 * MS);
    drop(handle);
    assert_eq!(limiter.snapshot().total_used, 40 * MS);
    // Charged 30 ms over the 10 ms grant: capacity 500 ms - 40 ms.
    assert_eq!(limiter.snapshot().balance_nanos, 460_000_000);
}

#[test]
fn a_handle_moved_to_another_thread_rebaselines_instead_of_charging_garbage() {
    let clock = ManualClock::new();
    let limiter = fixed_limiter(&clock);
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    clock.advance_cpu(5 * MS);
    assert!(!handle.over_limit());
    assert_eq!(handle.used_at_last_check(), 5 * MS);
    let moved_clock = clock.clone();
    let handle = std::thread::spawn(move || {
        // The other thread's CPU clock has an unrelated origin: the first check there only
        // re-baselines; CPU from then on counts.
        moved_clock.advance_cpu(3 * MS);
        assert!(!handle.over_limit());
        assert_eq!(handle.used_at_last_check(), 5 * MS);
        moved_clock.advance_cpu(2 * MS);
        assert_eq!(handle.used(), 7 * MS);
        handle
    })
    .join()
    .unwrap();
    drop(handle);
    assert_eq!(limiter.snapshot().total_used, 7 * MS);
}
