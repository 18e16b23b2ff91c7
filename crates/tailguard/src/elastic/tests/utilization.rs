//! The utilisation peer through the limiter: no latency signal, the share set from a fake CPU
//! source and the grants' own use once per period, held between.

use super::*;

/// A limiter on 2 cores under the utilisation peer with a 1 s period, reading `busy` (CPU
/// nanoseconds so far) as its source.
fn peer_limiter(clock: &ManualClock, busy: &Arc<AtomicU64>) -> Limiter {
    let busy = Arc::clone(busy);
    Limiter::builder()
        .cores(2.0)
        .controller(ControllerKind::Utilization { period: Duration::from_secs(1) })
        .clock(clock.shared())
        .cpu_usage(Arc::new(move || Some(busy.load(Ordering::Relaxed))))
        .build()
        .unwrap()
}

/// Ticks every 100 ms for `ticks` ticks; each tick the source counts `busy_cores` busy.
fn run(clock: &ManualClock, busy: &AtomicU64, limiter: &Limiter, ticks: usize, busy_cores: f64) -> Vec<f64> {
    (0..ticks)
        .map(|_| {
            clock.advance(100 * MS);
            busy.fetch_add((busy_cores * 100e6) as u64, Ordering::Relaxed);
            limiter.tick()
        })
        .collect()
}

#[test]
fn the_peer_needs_no_latency_signal_and_starts_at_the_inactive_point() {
    let clock = ManualClock::new();
    let busy = Arc::new(AtomicU64::new(0));
    let limiter = peer_limiter(&clock, &busy);
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.share, 0.12);
    assert!(snapshot.warm, "no blind start: it reads no window");
    assert_eq!(snapshot.signal, SignalState::None);
    assert_eq!(limiter.config().controller.name(), "utilization");
}

#[test]
fn the_share_follows_the_free_cpu_once_per_period() {
    let clock = ManualClock::new();
    let busy = Arc::new(AtomicU64::new(0));
    let limiter = peer_limiter(&clock, &busy);
    // The first tick starts the period; the next ten end it. Foreground 1 core of 2:
    // (2 - 1) * 0.8 = 0.8 cores = 40 %, held from then on until the next period ends.
    let shares = run(&clock, &busy, &limiter, 11, 1.0);
    assert!(shares[..10].iter().all(|&s| s == 0.12), "{shares:?}");
    assert!((shares[10] - 0.4).abs() < 1e-9, "{shares:?}");
    assert!((limiter.snapshot().share - 0.4).abs() < 1e-9);

    // Elastic work uses 0.5 CPU-s of grants over the next period, the source counts it too:
    // foreground still 1 core, (2 - 1.5 + 0.5) * 0.8 = 0.8 cores = 40 %.
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    clock.advance_cpu(500 * MS);
    drop(handle);
    assert_eq!(limiter.snapshot().total_used, 500 * MS);
    let shares = run(&clock, &busy, &limiter, 10, 1.5);
    assert!((shares[9] - 0.4).abs() < 1e-9, "{shares:?}");

    // The foreground takes the whole machine: the share falls to 10 % of capacity, not below.
    let shares = run(&clock, &busy, &limiter, 10, 2.0);
    assert!(shares[..9].iter().all(|&s| (s - 0.4).abs() < 1e-9), "held between: {shares:?}");
    assert!((shares[9] - 0.10).abs() < 1e-9, "{shares:?}");
    // And the bucket fills at the new share.
    assert!((limiter.snapshot().share - 0.10).abs() < 1e-9);
}
