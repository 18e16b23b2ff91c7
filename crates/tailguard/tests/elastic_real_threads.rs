//! Real threads under a fixed share consume that share, measured with the process CPU clock.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tailguard::clock::process_cpu_time;
use tailguard::elastic::{AcquireRequest, ControllerKind, Limiter, Pacer};

#[test]
fn cpu_bound_threads_consume_their_fixed_share() {
    const SHARE: f64 = 0.25;
    const CORES: f64 = 2.0;
    let limiter = Limiter::builder()
        .cores(CORES)
        .controller(ControllerKind::Fixed(SHARE))
        .grant(Duration::from_millis(10))
        .tick(Duration::from_millis(10))
        .start()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let limiter = limiter.clone();
            let stop = stop.clone();
            limiter
                .clone()
                .spawn_elastic_thread(&format!("elastic-{i}"), move || {
                    let mut pacer = Pacer::new(limiter, AcquireRequest::new());
                    let mut x = 1u64;
                    while !stop.load(Ordering::Relaxed) {
                        pacer.pace().unwrap();
                        for _ in 0..1_000 {
                            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                        }
                    }
                    x
                })
                .unwrap()
        })
        .collect();
    // Let the initial full bucket (one second of fill) drain, then measure.
    std::thread::sleep(Duration::from_millis(1_500));
    let cpu_start = process_cpu_time();
    let wall_start = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let cpu = process_cpu_time() - cpu_start;
    let wall = wall_start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let expected = wall.as_secs_f64() * SHARE * CORES;
    let ratio = cpu.as_secs_f64() / expected;
    eprintln!("elastic CPU {cpu:?} over {wall:?}: {ratio:.3} of the 25 % x 2 cores share");
    // The limiter's promise is the ceiling: the bucket never lets the threads run past their
    // share (one grant of slack). Reaching the share needs a free half core, which a loaded CI
    // machine may not give, so the floor only asks that the threads made real progress.
    assert!(ratio <= 1.2, "consumed {ratio:.3} of the share: more than the limiter allows");
    assert!(ratio >= 0.5, "consumed only {ratio:.3} of the share");
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.waiters, 0);
    assert!(snapshot.total_used > Duration::ZERO);
}
