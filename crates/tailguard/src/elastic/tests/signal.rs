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

/// A source that counts what the limiter tells it and says whether it is primed.
struct Told {
    window: WindowedHistogram,
    wanted: std::sync::atomic::AtomicBool,
    primed: std::sync::atomic::AtomicBool,
}

impl LatencySignal for Told {
    fn window_snapshot(&self) -> crate::histogram::WindowSnapshot {
        self.window.snapshot()
    }
    fn set_wanted(&self, wanted: bool) {
        self.wanted.store(wanted, std::sync::atomic::Ordering::Relaxed);
    }
    fn is_primed(&self) -> bool {
        self.primed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[test]
fn a_merged_signal_reads_every_sample_and_tells_every_source() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let clock = ManualClock::new();
    let probe = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let tasks = Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
    let told = Arc::new(Told {
        window: WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap(),
        wanted: AtomicBool::new(false),
        primed: AtomicBool::new(false),
    });
    // The probe's 100 samples at 100 µs are outnumbered by the requests' 1000 at 2 ms.
    for _ in 0..100 {
        probe.record(Duration::from_micros(100));
    }
    for _ in 0..1000 {
        tasks.record(2 * MS);
    }
    clock.advance(100 * MS);
    let signal = MergedSignal::new(vec![probe.clone(), tasks.clone(), told.clone()]);
    let (window, recent) = signal.window_snapshot_with_recent(RECENT_SPAN);
    assert_eq!(window.histogram.count(), 1100);
    assert!(window.histogram.p99().unwrap() >= 2 * MS);
    assert_eq!(window.span, probe.snapshot().span);
    assert!(!window.warm);
    // The recent part and the total merge the sources that keep them (`Told` keeps neither).
    assert_eq!(recent.unwrap().count(), 1100);
    assert_eq!(signal.total_snapshot().unwrap().count(), 1100);
    // Demand reaches every source; primed only once every source is.
    signal.set_wanted(true);
    assert!(told.wanted.load(Ordering::Relaxed));
    assert!(!signal.is_primed());
    told.primed.store(true, Ordering::Relaxed);
    assert!(signal.is_primed());
}

#[test]
fn requests_stopping_do_not_silence_a_signal_merged_with_the_probe() {
    // The same two sources, steering by the requests' delays alone and merged with the probe.
    // The requests stop after 2 s: alone they fall silent, merged the probe keeps them live.
    for merged in [false, true] {
        let clock = ManualClock::new();
        let window =
            || Arc::new(WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap());
        let (probe, tasks) = (window(), window());
        let signal: Arc<dyn LatencySignal> = if merged {
            Arc::new(MergedSignal::new(vec![probe.clone(), tasks.clone()]))
        } else {
            tasks.clone()
        };
        let limiter = Limiter::builder()
            .cores(1.0)
            .initial_share(0.75)
            .silence(Duration::from_secs(1))
            .clock(clock.shared())
            .latency_signal(signal)
            .build()
            .unwrap();
        let mut states = Vec::new();
        for i in 0..60 {
            for _ in 0..100 {
                probe.record(Duration::from_micros(100));
            }
            if i < 20 {
                for _ in 0..300 {
                    tasks.record(Duration::from_micros(100));
                }
            }
            let grants: Vec<_> =
                std::iter::from_fn(|| limiter.try_acquire(&AcquireRequest::new()).ok()).collect();
            clock.advance(100 * MS);
            drop(grants);
            limiter.tick();
            states.push(limiter.snapshot().signal);
        }
        let silent = states.iter().filter(|s| matches!(s, SignalState::Silent { .. })).count();
        assert_eq!(states[19], SignalState::Live, "merged: {merged}");
        if merged {
            assert_eq!(silent, 0, "the probe keeps a merged signal live: {states:?}");
            assert_eq!(limiter.snapshot().share, 0.75);
        } else {
            assert!(silent >= 20, "requests alone fall silent once they stop: {states:?}");
        }
    }
}
