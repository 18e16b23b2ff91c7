//! The front door starts every part and its shutdown leaves no tailguard thread running.
//! One test in this binary, so that no other test's threads are counted.
#![cfg(feature = "tokio")]

use tailguard::admission::{Request, WorkQueueConfig};
use tailguard::observe::ProbeConfig;
use tailguard::{StartError, Tailguard};

/// Threads of this process, and how many of them are named `tailguard-…` (`comm` keeps the
/// first 15 bytes). A new thread names itself once it runs, so counts right after a start are
/// of all threads; the runtime's workers already run, and nothing else here starts threads.
fn threads() -> (usize, usize) {
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .expect("Linux /proc")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .collect();
    let tailguard = names.iter().filter(|name| name.starts_with("tailguard-")).count();
    (names.len(), tailguard)
}

/// The counts once joined threads are gone from /proc: a joined thread has ended, but the
/// kernel removes its entry a moment after `join` returns, so look again a bounded number of
/// times.
fn settled(expected: (usize, usize)) -> (usize, usize) {
    let mut counts = threads();
    for _ in 0..100_000 {
        if counts == expected {
            break;
        }
        std::thread::yield_now();
        counts = threads();
    }
    counts
}

#[test]
fn start_runs_every_part_and_shutdown_joins_every_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("front-door-test")
        .enable_all()
        .build()
        .unwrap();
    let before = threads();
    assert_eq!(before.1, 0, "no tailguard thread before the start");

    let guard = Tailguard::builder()
        .cores(2.0)
        .work_queue(WorkQueueConfig::default())
        .start(runtime.handle())
        .unwrap();
    // probe, limiter, work-queue sampler, and the exporter with `metrics`.
    let parts = 3 + usize::from(cfg!(feature = "metrics"));
    assert_eq!(threads().0, before.0 + parts);
    assert_eq!(guard.cores(), 2.0);
    assert_eq!(guard.limiter().config().cores, 2.0);
    let queue = guard.work_queue().expect("asked for").clone();
    assert_eq!(queue.config().cores, 2.0);
    let limiter = guard.limiter().clone();
    drop(queue.try_admit(&Request::new()).unwrap());

    guard.shutdown();
    assert_eq!(settled(before), before, "a tailguard thread outlived shutdown");
    // Handles given out stay usable as values: the limiter refuses, the queue still admits.
    assert!(limiter.is_stopped());
    drop(queue.try_admit(&Request::new()).unwrap());

    // Dropping the handle does the same; so does a start that fails half-way.
    let guard = Tailguard::builder().start(runtime.handle()).unwrap();
    drop(guard);
    assert_eq!(settled(before), before);
    let bad_probe = Tailguard::builder().probe(ProbeConfig::with_rate_hz(0)).start(runtime.handle());
    assert!(matches!(bad_probe, Err(StartError::Probe(_))), "{bad_probe:?}");
    let bad_queue = WorkQueueConfig { min_slots: 8, max_slots: 2, ..WorkQueueConfig::default() };
    let failed = Tailguard::builder().work_queue(bad_queue).start(runtime.handle());
    assert!(matches!(failed, Err(StartError::WorkQueue(_))), "{failed:?}");
    assert!(failed.unwrap_err().to_string().starts_with("work queue settings: "));
    #[cfg(feature = "metrics")]
    {
        use tailguard::guard::MetricsExport;
        let never = MetricsExport::Every(std::time::Duration::ZERO);
        let failed = Tailguard::builder().metrics_export(never).start(runtime.handle());
        assert!(matches!(failed, Err(StartError::Export(_))), "{failed:?}");
    }
    assert_eq!(settled(before), before, "a failed start left a thread running");
}
