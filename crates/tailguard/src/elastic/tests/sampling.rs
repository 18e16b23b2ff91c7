//! Sampling on demand, on a manual clock: the limiter lowers its signal's demand once no work
//! has asked for CPU for `SAMPLING_LINGER`, raises it the moment work asks, and holds its share
//! until the signal is primed again.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::histogram::{WindowConfig, WindowedHistogram};
use crate::observe::sampling::{PRIME_SAMPLES, SAMPLING_LINGER};
use crate::observe::{ProbeSignal, SamplingDemand};

const MS: Duration = Duration::from_millis(1);

/// An adaptive limiter on one core at 0.5, steered by a window with an on-demand signal.
fn limiter(clock: &ManualClock) -> (Arc<ProbeSignal>, Limiter) {
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let signal = Arc::new(ProbeSignal { window, demand: SamplingDemand::new() });
    let limiter = Limiter::builder()
        .cores(1.0)
        .initial_share(0.5)
        .clock(clock.shared())
        .latency_signal(signal.clone())
        .build()
        .unwrap();
    (signal, limiter)
}

/// `samples` samples of `latency` (counted by the demand, as the probe counts them), then one
/// 100 ms tick.
fn tick(clock: &ManualClock, signal: &ProbeSignal, limiter: &Limiter, samples: u64, latency: Duration) {
    for _ in 0..samples {
        signal.window.record(latency);
        signal.demand.sampled();
    }
    clock.advance(100 * MS);
    limiter.tick();
}

#[test]
fn the_demand_falls_after_the_linger_and_rises_on_the_first_ask() {
    let clock = ManualClock::new();
    let (signal, limiter) = limiter(&clock);
    let ticks_to_linger = (SAMPLING_LINGER.as_millis() / 100) as usize;
    for i in 1..=ticks_to_linger + 5 {
        assert_eq!(signal.demand.is_wanted(), i <= ticks_to_linger, "tick {i}");
        tick(&clock, &signal, &limiter, 100, Duration::from_micros(100));
    }
    assert!(!signal.demand.is_wanted(), "nobody asked for {SAMPLING_LINGER:?}");
    // The first ask raises it at once, before any tick.
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    assert!(signal.demand.is_wanted());
    drop(handle);
    // Work that keeps asking keeps it raised; a waiter in line counts as asking.
    for _ in 0..3 * ticks_to_linger {
        let _grants = drain(&limiter);
        tick(&clock, &signal, &limiter, 100, Duration::from_micros(100));
        assert!(signal.demand.is_wanted());
    }
}

#[test]
fn a_refused_ask_raises_the_demand_too() {
    let clock = ManualClock::new();
    let (signal, limiter) = limiter(&clock);
    // One grant over-used by far: the bucket is in debt for seconds, and nobody asks meanwhile.
    let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
    clock.run_for(SAMPLING_LINGER + SAMPLING_LINGER / 2);
    drop(handle);
    limiter.tick();
    assert!(!signal.demand.is_wanted());
    assert!(limiter.try_acquire(&AcquireRequest::new()).is_err(), "the bucket is in debt");
    assert!(signal.demand.is_wanted(), "a refusal is demand");
}

#[test]
fn the_share_holds_until_the_resumed_signal_is_primed() {
    let clock = ManualClock::new();
    let (signal, limiter) = limiter(&clock);
    // Live, latency under the target, work waiting.
    for _ in 0..12 {
        let _grants = drain(&limiter);
        tick(&clock, &signal, &limiter, 300, Duration::from_micros(100));
    }
    assert_eq!(limiter.snapshot().signal, SignalState::Live);
    // Nobody asks: the demand falls; the probe samples at its idle rate (one per tick).
    for _ in 0..(SAMPLING_LINGER.as_millis() / 100) + 30 {
        tick(&clock, &signal, &limiter, 1, Duration::from_micros(100));
    }
    assert!(!signal.demand.is_wanted());
    let idle_share = limiter.snapshot().share;
    // Work asks again while the runtime is slow: the few fresh samples are far over target, but
    // the limiter holds its share until PRIME_SAMPLES arrived at the full rate.
    let _held = drain(&limiter);
    assert!(signal.demand.is_wanted() && !signal.demand.is_primed());
    tick(&clock, &signal, &limiter, PRIME_SAMPLES / 2, Duration::from_millis(20));
    let priming = limiter.snapshot();
    assert_eq!(priming.signal, SignalState::Warming);
    assert_eq!(priming.share, idle_share, "held while priming");
    tick(&clock, &signal, &limiter, PRIME_SAMPLES, Duration::from_millis(20));
    let primed = limiter.snapshot();
    assert_eq!(primed.signal, SignalState::Live);
    assert!(primed.share < idle_share, "steers by the primed signal: {} -> {}", idle_share, primed.share);
}

#[test]
fn a_plain_window_is_always_primed_and_never_told() {
    let clock = ManualClock::new();
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    assert!(LatencySignal::is_primed(&*window));
    window.set_wanted(false); // the default does nothing
    assert!(LatencySignal::is_primed(&*window));
}
