//! The control loop through the limiter: blind start, cuts over target, the floor under overload, the recent part of the window.

use super::*;

/// An adaptive limiter on 2 cores starting at a 50 % share, steered by a default window; both
/// on `clock`.
fn windowed_limiter(clock: &ManualClock) -> (Arc<WindowedHistogram>, Limiter) {
    windowed_limiter_with(clock, 0.0)
}

/// The same, its working target at least `quiet_factor` × the latency of ticks without
/// elastic work (0: the configured 1 ms alone).
fn windowed_limiter_with(clock: &ManualClock, quiet_factor: f64) -> (Arc<WindowedHistogram>, Limiter) {
    windowed_limiter_built(clock, |builder| builder.quiet_factor(quiet_factor))
}

/// The same, with `configure` applied to its builder.
fn windowed_limiter_built(
    clock: &ManualClock,
    configure: impl FnOnce(LimiterBuilder) -> LimiterBuilder,
) -> (Arc<WindowedHistogram>, Limiter) {
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let builder = Limiter::builder()
        .cores(2.0)
        .burst(ONE_SECOND_FILL)
        .initial_share(0.5)
        .clock(clock.shared())
        .latency_window(window.clone());
    (window, configure(builder).build().unwrap())
}

#[test]
fn blind_start_grants_at_the_floor_until_the_window_is_warm() {
    let clock = ManualClock::new();
    let (window, limiter) = windowed_limiter(&clock);
    // Warm once the window holds `WARM_SPAN` (1 s) of samples, ten ticks.
    for _ in 0..9 {
        window.record(Duration::from_micros(200));
        clock.advance(100 * MS);
        assert_eq!(limiter.tick(), 0.05);
    }
    let snapshot = limiter.snapshot();
    assert!(!snapshot.warm);
    assert_eq!(snapshot.share, 0.05);
    for _ in 0..21 {
        window.record(Duration::from_micros(200));
        clock.advance(100 * MS);
        limiter.tick();
    }
    let snapshot = limiter.snapshot();
    assert!(snapshot.warm);
    assert!(snapshot.share >= 0.45, "{}", snapshot.share);
    assert!(snapshot.latest_p99.unwrap() < MS);
    assert_eq!(limiter.history().len(), 30);
}

#[test]
fn the_limiter_steps_down_when_latency_is_over_target() {
    let clock = ManualClock::new();
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let limiter = Limiter::builder()
        .cores(2.0)
        .burst(ONE_SECOND_FILL)
        .initial_share(0.5)
        .controller(ControllerKind::Reference)
        .clock(clock.shared())
        .latency_window(window.clone())
        .build()
        .unwrap();
    for _ in 0..30 {
        window.record(5 * MS);
        clock.advance(100 * MS);
        limiter.tick();
    }
    let history = limiter.history();
    let warm_ticks = history.iter().filter(|t| t.share > 0.05).count();
    // Warm from tick 10 on (1 s of samples): -0.02 % per tick from 0.5 for 21 ticks.
    assert_eq!(warm_ticks, 21);
    let last = history.last().unwrap();
    assert!((last.share - (0.5 - 21.0 * 0.0002)).abs() < 1e-9, "{}", last.share);
}

#[test]
fn permanent_overload_still_grants_at_the_floor() {
    let clock = ManualClock::new();
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let limiter = Limiter::builder()
        .cores(2.0)
        .burst(ONE_SECOND_FILL)
        .initial_share(0.75)
        .clock(clock.shared())
        .latency_window(window.clone())
        .build()
        .unwrap();
    let mut granted = Duration::ZERO;
    for tick in 0..600 {
        window.record(Duration::from_millis(50)); // 50× over target, forever
        clock.advance(100 * MS);
        limiter.tick();
        while let Ok(handle) = limiter.try_acquire(&AcquireRequest::new().grant(10 * MS)) {
            if tick >= 100 {
                granted += handle.granted();
            }
            clock.advance_cpu(10 * MS);
        }
        if tick >= 100 {
            assert_eq!(limiter.snapshot().share, 0.05, "tick {tick}");
        }
    }
    // From tick 100 on: 50 s at 5 % of 2 cores = 5 s of CPU, give or take the bucket's
    // 0.1 s capacity and one grant: the floor keeps elastic work going.
    assert!((granted.as_secs_f64() - 5.0).abs() <= 0.11, "{granted:?}");
}

/// One 100 ms tick on `clock` whose window got 300 samples of `latency`; returns the share.
fn tick_with(clock: &ManualClock, window: &WindowedHistogram, limiter: &Limiter, latency: Duration) -> f64 {
    for _ in 0..300 {
        window.record(latency);
    }
    clock.advance(100 * MS);
    limiter.tick()
}

#[test]
fn the_adaptive_limiter_holds_once_the_recent_part_of_the_window_recovers() {
    let clock = ManualClock::new();
    let (window, limiter) = windowed_limiter(&clock);
    let tick_with = |latency: Duration| tick_with(&clock, &window, &limiter, latency);
    // Warm after 1 s of samples; 5 ms is over the 1 ms target: the share is cut, twice.
    for _ in 0..11 {
        tick_with(5 * MS);
    }
    let snapshot = limiter.snapshot();
    let cut = snapshot.share;
    assert!(cut < 0.5, "{cut}");
    // Nothing was granted: the bucket was full, and the second cut forfeited its unspent tokens.
    assert_eq!(snapshot.balance_nanos, 0);
    // Good latency from here: cuts go on while the recent part (500 ms) still holds bad
    // samples, then the share holds though the whole window is still over target.
    let shares: Vec<f64> = (0..8).map(|_| tick_with(Duration::from_micros(100))).collect();
    assert!(shares[0] < cut && shares[3] < shares[0], "{shares:?}");
    assert_eq!(shares[4], shares[7], "{shares:?}");
    assert!(limiter.snapshot().latest_p99.unwrap() > Duration::from_millis(1));
}

#[test]
fn a_cut_ends_the_grants_in_flight_and_forfeits_their_rest() {
    let clock = ManualClock::new();
    let (window, limiter) = windowed_limiter(&clock);
    let tick_with = |latency: Duration| tick_with(&clock, &window, &limiter, latency);
    // Warm and under target: the share holds at 50 % of 2 cores; the bucket fills.
    for _ in 0..10 {
        tick_with(Duration::from_micros(200));
    }
    let share = limiter.snapshot().share;
    let request = AcquireRequest::new().grant(Duration::from_millis(50));
    let grant = limiter.try_acquire(&request).unwrap();
    let untouched = limiter.try_acquire(&request).unwrap();
    clock.advance_cpu(5 * MS);
    assert!(!grant.over_limit());
    // A cut: within a check or two the grant says stop, 45 ms before its end.
    assert!(tick_with(5 * MS) < share * (1.0 - CUT_FORFEITS));
    let checks = (0..3).take_while(|_| !grant.over_limit()).count();
    assert!(checks < 3, "the grant ran on after the cut");
    let before = limiter.snapshot().balance_nanos;
    drop(grant);
    // The 45 ms left of the grant are not given back; nor are the 50 ms of the one unused.
    drop(untouched);
    assert_eq!(limiter.snapshot().balance_nanos, before);
    // A grant taken after the cut (once tokens exist again) is not ended by it.
    clock.advance(100 * MS);
    let after = limiter.try_acquire(&AcquireRequest::new().grant(Duration::from_millis(10))).unwrap();
    clock.advance_cpu(MS);
    assert!(!after.over_limit());
}

#[test]
fn latency_the_machine_has_without_elastic_work_raises_the_working_target() {
    let clock = ManualClock::new();
    let (window, limiter) = windowed_limiter_with(&clock, 1.5);
    let tick_with = |latency: Duration| tick_with(&clock, &window, &limiter, latency);
    // 2 ms with nothing granted: the machine's own latency, over the 1 ms target. Elastic work
    // is not blamed: the working target becomes 1.5 × 2 ms, and the share is not cut.
    for _ in 0..20 {
        tick_with(2 * MS);
    }
    let snapshot = limiter.snapshot();
    let quiet = snapshot.quiet_p99.expect("quiet ticks seen");
    assert!(quiet >= Duration::from_micros(1_900) && quiet <= Duration::from_micros(2_100), "{quiet:?}");
    assert_eq!(snapshot.working_target, quiet.mul_f64(1.5));
    // Only the decay of an unused share (2 %/s over the second since the window warmed).
    assert!(snapshot.share > 0.47, "{}", snapshot.share);
    // With work holding a grant, 5 ms is elastic work's doing (over 3 ms): cut.
    let handle = limiter.try_acquire(&AcquireRequest::new().grant(10 * MS)).unwrap();
    let before = limiter.snapshot().share;
    for _ in 0..5 {
        tick_with(5 * MS);
    }
    assert!(limiter.snapshot().share < before, "{} !< {before}", limiter.snapshot().share);
    drop(handle);
    // Off (factor 0), the same 2 ms without work is cut, as by the configured target alone.
    let (window, limiter) = windowed_limiter(&clock);
    for _ in 0..20 {
        super::control::tick_with(&clock, &window, &limiter, 2 * MS);
    }
    assert!(limiter.snapshot().share < 0.4, "{}", limiter.snapshot().share);
    assert_eq!(limiter.snapshot().working_target, Duration::from_millis(1));
}

#[test]
fn work_that_never_pauses_is_drained_now_and_then_to_measure_the_quiet_latency() {
    let clock = ManualClock::new();
    let (window, limiter) = windowed_limiter_with(&clock, 1.5);
    let request = AcquireRequest::new().grant(10 * MS);
    // Work holds a grant through every tick; latency is 2.5 ms while it does and 2 ms while it
    // does not (the machine's own), both over the 1 ms target.
    let mut handle = limiter.try_acquire(&request).ok();
    let (mut drained, mut refused_in_a_row) = (0, 0);
    for _ in 0..150 {
        let latency = if handle.is_some() { Duration::from_micros(2_500) } else { 2 * MS };
        tick_with(&clock, &window, &limiter, latency);
        drop(handle.take());
        handle = limiter.try_acquire(&request).ok();
        if handle.is_none() {
            refused_in_a_row += 1;
            drained = drained.max(refused_in_a_row);
        } else {
            refused_in_a_row = 0;
        }
    }
    // Drains: nothing granted for DRAIN_TICKS ticks in a row (tokens were plenty).
    assert_eq!(drained, DRAIN_TICKS as usize);
    let snapshot = limiter.snapshot();
    let quiet = snapshot.quiet_p99.expect("the drains measured the quiet latency");
    assert!(quiet >= Duration::from_micros(1_900) && quiet <= Duration::from_micros(2_100), "{quiet:?}");
    // 2.5 ms is under 1.5 × 2 ms: once measured, no more cuts (a cut at 2.5 ms over a 1 ms
    // target is 0.023 a tick); the share only decays, the work using less than half of it.
    assert!(snapshot.working_target > Duration::from_micros(2_800), "{:?}", snapshot.working_target);
    let history = limiter.history();
    let last = &history[history.len() - 20..];
    assert!(last.windows(2).all(|w| w[1].share >= w[0].share - 0.002 - 1e-9), "{last:?}");
}

#[test]
fn the_quiet_headroom_brings_the_working_target_down_to_a_multiple_of_the_quiet_latency() {
    let clock = ManualClock::new();
    let quiet_then_loaded = |headroom: f64, quiet: Duration, loaded: Duration| {
        let (window, limiter) = windowed_limiter_built(&clock, |builder| builder.quiet_headroom(headroom));
        for _ in 0..20 {
            tick_with(&clock, &window, &limiter, quiet);
        }
        let target = limiter.snapshot().working_target;
        // The work takes all its share's 500 ms (0.5 of 2 cores): its share does not follow a
        // lower use down.
        let handle = limiter.try_acquire(&AcquireRequest::new().grant(500 * MS)).unwrap();
        let before = limiter.snapshot().share;
        for _ in 0..5 {
            tick_with(&clock, &window, &limiter, loaded);
        }
        drop(handle);
        // A cut, not the decay of a share the work does not use (2 %/s, 0.01 over five ticks).
        (target, limiter.snapshot().share < before - 0.02)
    };
    let near = |d: Duration, expected: Duration| d.abs_diff(expected) <= expected / 20;
    // 0.2 ms without elastic work, 0.6 ms with it: over 2 × 0.2 ms, cut; with the headroom
    // off, 0.6 ms is under the 1 ms target and not cut.
    let (target, cut) = quiet_then_loaded(2.0, Duration::from_micros(200), Duration::from_micros(600));
    assert!(near(target, Duration::from_micros(400)), "{target:?}");
    assert!(cut);
    let (target, cut) = quiet_then_loaded(0.0, Duration::from_micros(200), Duration::from_micros(600));
    assert_eq!(target, MS);
    assert!(!cut);
    // Never under MIN_WORKING_TARGET, however quiet the machine.
    let (target, _) = quiet_then_loaded(2.0, Duration::from_micros(5), Duration::from_micros(20));
    assert_eq!(target, MIN_WORKING_TARGET);
    // A noisy machine (2 ms without elastic work) still raises it, to 1.5 × 2 ms.
    let (target, _) = quiet_then_loaded(2.0, 2 * MS, 2 * MS);
    assert!(near(target, 3 * MS), "{target:?}");
}

#[test]
fn latency_while_the_host_steals_the_cpu_holds_the_share_instead_of_cutting() {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    let clock = ManualClock::new();
    // The machine's CPU time in jiffies: 20 a tick on 2 CPUs, some of them stolen.
    let counters = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let source = counters.clone();
    let (window, limiter) = windowed_limiter_built(&clock, |builder| {
        builder
            .quiet_factor(0.0)
            .steal_source(Arc::new(move || Some((source.0.load(Relaxed), source.1.load(Relaxed)))))
    });
    let tick = |latency: Duration, stolen: u64| {
        counters.0.fetch_add(stolen, Relaxed);
        counters.1.fetch_add(20, Relaxed);
        tick_with(&clock, &window, &limiter, latency)
    };
    for _ in 0..20 {
        tick(Duration::from_micros(200), 0);
    }
    let _work = limiter.try_acquire(&AcquireRequest::new().grant(10 * MS)).unwrap();
    let before = limiter.snapshot().share;
    // 2 ms, twice the target, while a tenth of the machine is stolen: held, not cut.
    for _ in 0..10 {
        tick(2 * MS, 2);
    }
    let held = limiter.snapshot().share;
    assert_eq!(held, before);
    assert_eq!(limiter.snapshot().steal, Some(0.1));
    // Over STEAL_CUT_ABOVE × the target, steal excuses nothing: cut.
    for _ in 0..3 {
        tick(10 * MS, 2);
    }
    let cut = limiter.snapshot().share;
    assert!(cut < held - 0.05, "{cut} !< {held}");
    // 2 ms once nothing has been stolen for a span: cut, as without the steal reading.
    for _ in 0..5 {
        tick(2 * MS, 0);
    }
    let after = limiter.snapshot().share;
    for _ in 0..3 {
        tick(2 * MS, 0);
    }
    assert!(limiter.snapshot().share < after - 0.01, "{} !< {after}", limiter.snapshot().share);
    // Off (steal_hold 0), the same steal does not hold the share.
    let stolen = Arc::new(AtomicU64::new(0));
    let source = stolen.clone();
    let (window, off) = windowed_limiter_built(&clock, |builder| {
        builder.quiet_factor(0.0).steal_hold(0.0).steal_source(Arc::new(move || {
            let stolen = source.fetch_add(2, Relaxed);
            Some((stolen, stolen * 10))
        }))
    });
    for _ in 0..20 {
        tick_with(&clock, &window, &off, Duration::from_micros(200));
    }
    let _work = off.try_acquire(&AcquireRequest::new().grant(10 * MS)).unwrap();
    let before = off.snapshot().share;
    for _ in 0..5 {
        tick_with(&clock, &window, &off, 2 * MS);
    }
    assert!(off.snapshot().share < before - 0.05, "{} !< {before}", off.snapshot().share);
    assert_eq!(off.snapshot().steal, None);
}
