//! Saturating a 2-worker runtime with CPU-bound tasks must raise the runtime probe's p99 far
//! above its idle value. Real threads, so only a generous ratio is asserted, never a time.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tailguard::histogram::HistogramSnapshot;
use tailguard::observe::ProbeConfig;
use tailguard::observe::runtime_probe::RuntimeProbe;

/// Waits until the probe has recorded `samples` more samples than `since`, and returns the
/// samples recorded since then.
fn collect(probe: &RuntimeProbe, since: &HistogramSnapshot, samples: u64) -> HistogramSnapshot {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = probe.window().cumulative().snapshot();
        let delta = now.since(since);
        if delta.count() >= samples {
            return delta;
        }
        assert!(Instant::now() < deadline, "the probe recorded only {} samples", delta.count());
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[test]
fn probe_p99_rises_when_the_runtime_is_saturated() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let probe = RuntimeProbe::start(runtime.handle(), ProbeConfig::with_rate_hz(1_000)).unwrap();

    let start = probe.window().cumulative().snapshot();
    let idle = collect(&probe, &start, 500);
    let idle_p99 = idle.p99().unwrap();

    // Eight CPU-bound tasks on two workers, each holding its worker 10 ms per poll.
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..8 {
        let stop = stop.clone();
        runtime.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                spin_for(Duration::from_millis(10));
                tokio::task::yield_now().await;
            }
        });
    }
    let before_load = probe.window().cumulative().snapshot();
    let loaded = collect(&probe, &before_load, 100);
    stop.store(true, Ordering::Relaxed);
    let loaded_p99 = loaded.p99().unwrap();

    eprintln!("idle p99 {idle_p99:?} ({} samples), saturated p99 {loaded_p99:?}", idle.count());
    // Eight 10 ms polls queued on two workers keep a probe waiting several milliseconds by
    // construction, however slow the machine; the idle p99 is whatever the machine gives, so it
    // is only compared, never bounded.
    assert!(loaded_p99 >= Duration::from_millis(5), "saturated p99 {loaded_p99:?} below 5 ms");
    assert!(loaded_p99 > idle_p99, "saturated p99 {loaded_p99:?} should be above idle p99 {idle_p99:?}");
}
