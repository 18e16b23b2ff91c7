//! Async acquisition and pacing on a real tokio runtime with the limiter thread running.

use std::time::Duration;

use tailguard::elastic::{AcquireRequest, ControllerKind, Limiter, Pacer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_tasks_finish_and_leave_the_limiter_clean() {
    // 50 % of 1 core with 5 ms grants: 8 tasks each needing ~20 ms of CPU have to wait for
    // refills, so completion proves waiters are woken as tokens appear.
    let limiter = Limiter::builder()
        .cores(1.0)
        .controller(ControllerKind::Fixed(0.5))
        .grant(Duration::from_millis(5))
        .start()
        .unwrap();
    // Start in debt: hold a 1 s grant against the 0.5 s capacity until the end.
    let drained = limiter.try_acquire(&AcquireRequest::new().grant(Duration::from_secs(1))).unwrap();
    assert!(limiter.try_acquire(&AcquireRequest::new()).is_err());
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut pacer = Pacer::new(limiter, AcquireRequest::new().priority(i % 2));
                let start = tailguard::clock::thread_cpu_time();
                let mut spins = 0u64;
                while tailguard::clock::thread_cpu_time().saturating_sub(start) < Duration::from_millis(2) {
                    pacer.pace_async().await.unwrap();
                    spins = std::hint::black_box(spins + 1);
                }
                spins
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap() > 0);
    }
    drop(drained);
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.waiters, 0);
    assert!(snapshot.total_granted >= Duration::from_millis(5));
    limiter.stop();
}
