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

/// Spins until this thread has used `duration` of CPU.
fn burn(duration: Duration) {
    let start = tailguard::clock::thread_cpu_time();
    let mut x = 0u64;
    while tailguard::clock::thread_cpu_time().saturating_sub(start) < duration {
        for _ in 0..1_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
}

#[test]
fn a_grant_in_an_elastic_task_is_charged_its_own_running_time_not_the_foregrounds_cpu() {
    // One worker: the elastic task works 2 ms of CPU under a grant, yields, and while it waits a
    // foreground task burns 50 ms of CPU on the same thread; then the elastic task works 2 ms
    // more. The worker thread's CPU clock would charge the grant ~54 ms. Under load the OS may
    // stretch any of these in wall time, so the test checks what holds whatever the load: the
    // grant was charged at least the elastic task's own CPU, no more than its running time, and
    // nothing of the time the foreground ran.
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
    let (used, whole, foreground) = runtime.block_on(async {
        let started = std::time::Instant::now();
        let elastic = tokio::spawn(elastic);
        let foreground = tokio::spawn(async {
            let started = std::time::Instant::now();
            burn(Duration::from_millis(50));
            started.elapsed()
        });
        let used = elastic.await.unwrap();
        let foreground = foreground.await.unwrap();
        (used, started.elapsed(), foreground)
    });
    let own = running.get();
    assert!(used >= Duration::from_millis(4), "at least the task's own 4 ms of CPU: {used:?}");
    assert!(used <= own, "used {used:?}, the task ran {own:?}");
    assert!(
        used + foreground <= whole + Duration::from_millis(1),
        "the grant overlaps the foreground's run: used {used:?} + foreground {foreground:?} > {whole:?}"
    );
    limiter.stop();
}
