//! The demo's workload: a foreground key-value service and two elastic background jobs.
//!
//! Nothing here depends on the limiter: every point where elastic control plugs in is a
//! closure, so the demo driver wires `tailguard`'s grants and pacer in from outside.
//!
//! - [`keyspace`]: [`KeyspaceConfig`](keyspace::KeyspaceConfig) — `keys` ordered [`Key`](keyspace::Key)s with seeded values;
//!   `value_of(key)` regenerates any value (same seed ⇒ same data).
//! - [`store`]: [`Store`](store::Store) — range-sharded `RwLock<BTreeMap>`; `get`, `put`, `scan_into(from, max)`.
//! - [`service`]: [`Service`](service::Service) — `call(Op)` hops client → server → storage task and back on the
//!   caller's runtime, with [`WorkConfig::hash_bytes_per_hop`](service::WorkConfig::hash_bytes_per_hop) bytes hashed per hop.
//! - [`generator`]: [`GeneratorConfig`](generator::GeneratorConfig) + [`RateSchedule`](generator::RateSchedule) (constant or piecewise, e.g. loads
//!   20 % → 60 % → 20 %) → seeded Poisson [`Arrival`](generator::Arrival)s; [`generator::run`] dispatches them
//!   open-loop and reports latency from the *scheduled* arrival, overall and per interval
//!   (offered rate, throughput, late starts, p50/p99/p99.9); [`calibrate`](generator::calibrate) measures the CPU per
//!   request and [`Calibration::rate_for_load`](generator::Calibration::rate_for_load) turns a load into a rate.
//! - [`dispatch`]: [`Dispatcher`](dispatch::Dispatcher) — a dispatching thread's priority (`SCHED_FIFO` for the
//!   demo's generator) and the timer slack its sleeps get.
//! - [`backup`]: [`export`](backup::export) (one preemptible request: stops when `stop()` says so, returns a
//!   chunk and a resumption key), [`BackupDriver`](backup::BackupDriver) (re-issues requests, one grant each, writes
//!   `PATH.partial` then renames to `PATH`), [`restore`](backup::restore) and [`verify`](backup::verify).
//! - [`scan`]: [`catch_up_scan`](scan::catch_up_scan) — per-range digests and a value-size index, `pace()` per key.
//!
//! # Driving it (the same code runs in `tests::driving_every_piece`)
//!
//! ```ignore
//! let keyspace = KeyspaceConfig::default();
//! let store = Arc::new(Store::populate(&keyspace, 64));
//! let service = Service::new(runtime.handle().clone(), Arc::clone(&store), keyspace, WorkConfig::default());
//! let calibration = calibrate(&service, 20_000, 64, keyspace.keys);
//! let schedule = RateSchedule::constant(calibration.rate_for_load(0.4))?;
//! let config = GeneratorConfig::new(schedule, Duration::from_secs(30), seed, keyspace.keys);
//! // Foreground on its own thread:
//! let fg = std::thread::spawn(move || generator::run(&service, &config, Duration::from_secs(5), &|| false));
//! // Elastic backup: one grant per export request, `over_limit()` after every key.
//! let driver = BackupDriver::new(Arc::clone(&store), "backup.tgb");
//! let stats = driver.run(|| { let grant = limiter.acquire(); move || grant.over_limit() }, &|| ctrl_c.load(Relaxed))?;
//! let report = verify(Path::new("backup.tgb"), &store)?;
//! // Catch-up scan under a pacer:
//! let summary = catch_up_scan(&store, 1_000, &mut || pacer.pace());
//! ```

pub mod arrivals;
pub mod backup;
pub mod dispatch;
pub mod generator;
pub mod keyspace;
pub mod scan;
pub mod service;
pub mod store;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::Duration;

    use super::backup::{BackupDriver, verify};
    use super::generator::{self, DEFAULT_LOAD, GeneratorConfig, RateSchedule, calibrate};
    use super::keyspace::KeyspaceConfig;
    use super::scan::catch_up_scan;
    use super::service::{Service, WorkConfig};
    use super::store::Store;

    /// The module doc's example at small scale, with stand-ins for the limiter: a grant that
    /// says "over limit" every 37 keys and a pacer that counts calls. The backup runs while the
    /// foreground is writing (puts rewrite canonical values) and still verifies exactly.
    #[test]
    fn driving_every_piece() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let keyspace = KeyspaceConfig { keys: 5_000, mean_value_bytes: 128, seed: 42 };
        let store = Arc::new(Store::populate(&keyspace, 8));
        let work = WorkConfig { hash_bytes_per_hop: 512 };
        let service = Service::new(runtime.handle().clone(), Arc::clone(&store), keyspace, work);
        let calibration = calibrate(&service, 500, 8, keyspace.keys);
        assert!(calibration.rate_for_load(0.4) > 0.0);
        let schedule = RateSchedule::from_loads(&[0.2, 0.6, 0.2], 3_000.0).unwrap();
        let mut config = GeneratorConfig::new(schedule, Duration::from_millis(300), 7, keyspace.keys);
        config.put_fraction = 0.5;
        config.interval = Duration::from_millis(100);
        let fg_service = Arc::clone(&service);
        let fg = std::thread::spawn(move || {
            generator::run(&fg_service, &config, Duration::from_secs(10), &|| false)
        });

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("backup.tgb");
        let driver = BackupDriver::new(Arc::clone(&store), &path);
        let acquired = AtomicU64::new(0);
        let stats = driver
            .run(
                || {
                    acquired.fetch_add(1, Relaxed);
                    let mut keys = 0;
                    move || {
                        keys += 1;
                        keys % 37 == 0
                    }
                },
                &|| false,
            )
            .unwrap();
        assert_eq!(stats.requests, acquired.load(Relaxed));
        assert_eq!(stats.preemptions, 5_000 / 37);
        let report = verify(Path::new(&path), &store).unwrap();
        assert_eq!(report.keys, 5_000);

        let mut paced = 0;
        let summary = catch_up_scan(&store, 1_000, &mut || paced += 1);
        assert_eq!((summary.keys, paced, summary.ranges.len()), (5_000, 5_000, 5));

        let fg = fg.join().unwrap();
        assert_eq!(fg.completed + fg.failed, fg.offered);
        assert_eq!(fg.intervals.len(), 3);
        assert!(fg.intervals[1].offered_rate_per_sec > fg.intervals[0].offered_rate_per_sec);
    }

    /// Figures for the report, in a release build:
    /// `cargo test --release -p tailguard-cli workload::tests::measure -- --ignored --nocapture`.
    #[test]
    #[ignore = "measurement, run by hand in release"]
    fn measure() {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let keyspace = KeyspaceConfig::default();
        let store = Arc::new(Store::populate(&keyspace, 64));
        let service =
            Service::new(runtime.handle().clone(), Arc::clone(&store), keyspace, WorkConfig::default());
        let cal = calibrate(&service, 20_000, 64, keyspace.keys);
        println!(
            "calibration: {:?} CPU/request, {:.2} cores, rate for 40 % load {:.0}/s",
            cal.cpu_per_request,
            cal.cores,
            cal.rate_for_load(0.4)
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.tgb");
        for every in [u64::MAX, 1_000, 10] {
            let driver = BackupDriver::new(Arc::clone(&store), &path);
            let stats = driver
                .run(
                    || {
                        let mut n = 0;
                        move || {
                            n += 1;
                            n % every == 0
                        }
                    },
                    &|| false,
                )
                .unwrap();
            let t = std::time::Instant::now();
            verify(&path, &store).unwrap();
            println!(
                "backup preempted every {} keys: {} requests, {:.0} keys/s, {:.1} MB/s raw, {:.1} MB compressed, \
                 verify {:?}",
                if every == u64::MAX { "∞".to_owned() } else { every.to_string() },
                stats.requests,
                stats.keys_per_sec(),
                stats.raw_bytes_per_sec() / 1e6,
                stats.compressed_bytes as f64 / 1e6,
                t.elapsed()
            );
        }
        let schedule = RateSchedule::constant(cal.rate_for_load(DEFAULT_LOAD)).unwrap();
        let config = GeneratorConfig::new(schedule, Duration::from_secs(3), 1, keyspace.keys);
        let fg = generator::run(&service, &config, Duration::from_secs(5), &|| false);
        let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        println!(
            "foreground alone at 40 %: {} offered, {} completed, {} late starts (max lag {:?}), \
             p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
            fg.offered,
            fg.completed,
            fg.late_starts,
            fg.max_start_lag,
            ms(fg.latency.p50()),
            ms(fg.latency.p99()),
            ms(fg.latency.p999())
        );
        let t = std::time::Instant::now();
        let summary = catch_up_scan(&store, 1_000, &mut || ());
        println!("catch-up scan: {} keys in {:?}", summary.keys, t.elapsed());
    }
}
