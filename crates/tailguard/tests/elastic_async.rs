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

/// Spins the CPU for `duration` of wall time.
fn burn(duration: Duration) {
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < duration {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

#[test]
fn a_grant_in_an_elastic_task_is_charged_its_own_running_time_not_the_foregrounds_cpu() {
    // One worker: the elastic task works 2 ms under a grant, yields, and while it waits a
    // foreground task burns 50 ms of CPU on the same thread; then the elastic task works
    // 2 ms more. The worker thread's CPU clock would charge the grant ~54 ms.
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let limiter = Limiter::builder().cores(1.0).controller(ControllerKind::Fixed(0.5)).start().unwrap();
    let elastic = limiter.elastic({
        let limiter = limiter.clone();
        async move {
            let grant = limiter.acquire_async(&AcquireRequest::new()).await.unwrap();
            assert!(grant.charges_task());
            burn(Duration::from_millis(2));
            tokio::task::yield_now().await;
            burn(Duration::from_millis(2));
            grant.used()
        }
    });
    let running = elastic.running_time_handle();
    let (used, thread_cpu) = runtime.block_on(async {
        let cpu_before = tailguard::clock::thread_cpu_time();
        let elastic = tokio::spawn(elastic);
        let foreground = tokio::spawn(async { burn(Duration::from_millis(50)) });
        let used = elastic.await.unwrap();
        foreground.await.unwrap();
        (used, tailguard::clock::thread_cpu_time().saturating_sub(cpu_before))
    });
    assert!(thread_cpu >= Duration::from_millis(50), "the foreground ran on this thread: {thread_cpu:?}");
    // The grant saw the task's own running time (it started right after the acquisition and
    // ended just before the task did) and none of the foreground's 50 ms.
    let own = running.get();
    assert!(used <= own && own - used <= Duration::from_millis(1), "used {used:?}, task ran {own:?}");
    assert!(used >= Duration::from_millis(4) && used < Duration::from_millis(25), "used {used:?}");
    limiter.stop();
}
