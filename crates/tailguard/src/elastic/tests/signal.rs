//! The latency signal as the limiter sees it, on a manual clock: warming, live, silent (the
//! fail-safe fall to the floor) and back.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;
use crate::histogram::{WindowConfig, WindowedHistogram};

const MS: Duration = Duration::from_millis(1);

/// An adaptive limiter on one core starting at the ceiling, steered by a default window.
fn limiter(clock: &ManualClock, silence: Duration) -> (Arc<WindowedHistogram>, Limiter) {
    let window = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let limiter = Limiter::builder()
        .cores(1.0)
        .initial_share(0.75)
        .silence(silence)
        .clock(clock.shared())
        .latency_window(window.clone())
        .build()
        .unwrap();
    (window, limiter)
}

/// One 100 ms tick with `samples` samples of 100 µs (far under the 1 ms target) and work
/// waiting for grants, so a live signal holds the share at the ceiling.
fn tick(clock: &ManualClock, window: &WindowedHistogram, limiter: &Limiter, samples: u32) -> LimiterSnapshot {
    for _ in 0..samples {
        window.record(Duration::from_micros(100));
    }
    // Take every grant there is, then one more that is refused: demand, and a share in use.
    let grants: Vec<_> = std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect();
    clock.advance(100 * MS);
    drop(grants);
    limiter.tick();
    limiter.snapshot()
}

#[test]
fn a_silent_signal_decays_the_share_to_the_floor_and_control_resumes_when_samples_return() {
    let clock = ManualClock::new();
    let (window, limiter) = limiter(&clock, Duration::from_secs(1));
    assert_eq!(limiter.snapshot().signal, SignalState::Warming);
    for _ in 0..20 {
        tick(&clock, &window, &limiter, 300);
    }
    let live = limiter.snapshot();
    assert_eq!(live.signal, SignalState::Live);
    assert_eq!(live.share, 0.75);
    // The probe stops. The recent 500 ms still holds the last samples for 4 ticks; the silence
    // span (1 s) counts from the last tick that heard them.
    let mut silent_at = None;
    for i in 1..=40 {
        let snapshot = tick(&clock, &window, &limiter, 0);
        if let SignalState::Silent { since } = snapshot.signal {
            silent_at.get_or_insert((i, since));
        } else {
            assert!(silent_at.is_none(), "silent, then not, without samples (tick {i})");
            assert_eq!(snapshot.share, 0.75, "the share holds until the silence span has passed");
        }
    }
    let (first_silent_tick, since) = silent_at.expect("the limiter noticed the silence");
    assert_eq!(first_silent_tick, 14, "4 ticks until the recent part is empty, then 1 s");
    assert_eq!(since, Duration::from_secs(1));
    let silent = limiter.snapshot();
    assert_eq!(silent.share, 0.05, "fell to the floor");
    assert!(limiter.history().iter().any(|t| t.share > 0.05 && t.share < 0.75), "it decays, in steps");
    // Samples return: live again, and the share climbs from the floor.
    let back = tick(&clock, &window, &limiter, 300);
    assert_eq!(back.signal, SignalState::Live);
    for _ in 0..20 {
        tick(&clock, &window, &limiter, 300);
    }
    assert!(limiter.snapshot().share > 0.2, "{}", limiter.snapshot().share);
}

#[test]
fn a_fixed_share_has_no_signal_to_lose() {
    let clock = ManualClock::new();
    let limiter = Limiter::builder()
        .cores(1.0)
        .controller(ControllerKind::Fixed(0.3))
        .clock(clock.shared())
        .build()
        .unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(limiter.tick(), 0.3);
    assert_eq!(limiter.snapshot().signal, SignalState::None);
}

#[test]
fn a_signal_silent_from_the_start_stays_at_the_floor() {
    let clock = ManualClock::new();
    let (_window, limiter) = limiter(&clock, Duration::from_millis(500));
    for _ in 0..30 {
        clock.advance(100 * MS);
        assert_eq!(limiter.tick(), 0.05);
    }
    assert!(matches!(limiter.snapshot().signal, SignalState::Silent { .. }));
}
