//! Real threads under a fixed share never use more than it allows, measured with the process
//! CPU clock.

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
    let cpu_start = process_cpu_time();
    let wall_start = Instant::now();
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
    // Measured from the start: the promise is the share's fill over the elapsed time plus the
    // bucket's capacity (one second of fill, there at the start) plus the grants in flight.
    std::thread::sleep(Duration::from_secs(3));
    let cpu = process_cpu_time() - cpu_start;
    let wall = wall_start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let rate = SHARE * CORES;
    let ceiling = rate * wall.as_secs_f64() + rate + 4.0 * 0.010;
    let share = cpu.as_secs_f64() / (rate * wall.as_secs_f64());
    eprintln!(
        "elastic CPU {cpu:?} over {wall:?}: {share:.3} of the 25 % x 2 cores share, ceiling {ceiling:.3} s"
    );
    // The ceiling holds however loaded the machine (5 % for the clock reads outside grants).
    // Reaching the share needs a free half core, which a loaded CI machine may not give, so
    // the floor only asks that the threads made real progress.
    assert!(
        cpu.as_secs_f64() <= ceiling * 1.05,
        "used {cpu:?}: more than the limiter allows ({ceiling:.3} s)"
    );
    assert!(share >= 0.3, "consumed only {share:.3} of the share");
    let snapshot = limiter.snapshot();
    assert_eq!(snapshot.waiters, 0);
    assert!(snapshot.total_used > Duration::ZERO);
}
