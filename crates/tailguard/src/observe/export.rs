//! Export of every signal through the [`metrics`] facade (feature `metrics`).
//!
//! Gauges, named with their units, labelled `source` where several sources share a name:
//!
//! | gauge | labels | meaning |
//! |---|---|---|
//! | `tailguard_scheduling_latency_p50_seconds`, `_p99_seconds`, `_p999_seconds`, `_max_seconds` | `source` | quantiles of a window (not set while it is empty) |
//! | `tailguard_scheduling_latency_window_samples` | `source` | samples in the window |
//! | `tailguard_run_queue_os_runnable_threads` | | mean runnable OS threads over the tick |
//! | `tailguard_run_queue_tokio_global_queue_tasks` | | mean depth of tokio's global queue |
//! | `tailguard_run_queue_tokio_alive_tasks` | | mean alive tasks of the runtime |
//! | `tailguard_cpu_pressure_some_avg10_percent`, `_avg60_percent`, `_avg300_percent` | | PSI `some` averages |
//! | `tailguard_cpu_pressure_some_total_seconds` | | cumulative stall time |
//!
//! Publish once with the `publish_*` functions (e.g. from your own tick), or start a
//! [`PeriodicExporter`] thread that publishes a set of windows and PSI every interval.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tailguard::histogram::{WindowConfig, WindowedHistogram};
//! use tailguard::observe::export::{PeriodicExporter, publish_window};
//!
//! let window = Arc::new(WindowedHistogram::new(WindowConfig::DEFAULT)?);
//! window.record(Duration::from_micros(80));
//! publish_window("instrumented", &window); // goes to whatever recorder is installed
//! let exporter = PeriodicExporter::start(Duration::from_secs(1), vec![("runtime".into(), window)])?;
//! drop(exporter); // stops publishing
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::gauge;

use super::ConfigError;
use super::psi::{self, Pressure};
use super::run_queue::RunQueueTick;
use crate::histogram::{WindowConfig, WindowedHistogram};

/// Publishes a window's quantiles and sample count, labelled `source`.
pub fn publish_window(source: &str, window: &WindowedHistogram) {
    let histogram = window.snapshot().histogram;
    let label = source.to_owned();
    gauge!("tailguard_scheduling_latency_window_samples", "source" => label.clone())
        .set(histogram.count() as f64);
    let quantiles = histogram.summary();
    let gauges = [
        ("tailguard_scheduling_latency_p50_seconds", quantiles.p50),
        ("tailguard_scheduling_latency_p99_seconds", quantiles.p99),
        ("tailguard_scheduling_latency_p999_seconds", quantiles.p999),
        ("tailguard_scheduling_latency_max_seconds", quantiles.max),
    ];
    for (name, value) in gauges {
        if let Some(value) = value {
            gauge!(name, "source" => label.clone()).set(value.as_secs_f64());
        }
    }
}

/// Publishes one tick of run-queue averages; absent fields are not set.
pub fn publish_run_queue(tick: &RunQueueTick) {
    if let Some(v) = tick.os_runnable {
        gauge!("tailguard_run_queue_os_runnable_threads").set(v);
    }
    if let Some(v) = tick.tokio_global_queue {
        gauge!("tailguard_run_queue_tokio_global_queue_tasks").set(v);
    }
    if let Some(v) = tick.tokio_alive_tasks {
        gauge!("tailguard_run_queue_tokio_alive_tasks").set(v);
    }
}

/// Publishes CPU pressure.
pub fn publish_pressure(pressure: &Pressure) {
    gauge!("tailguard_cpu_pressure_some_avg10_percent").set(pressure.some.avg10);
    gauge!("tailguard_cpu_pressure_some_avg60_percent").set(pressure.some.avg60);
    gauge!("tailguard_cpu_pressure_some_avg300_percent").set(pressure.some.avg300);
    gauge!("tailguard_cpu_pressure_some_total_seconds").set(pressure.some.total.as_secs_f64());
}

/// A thread (`tailguard-export`) publishing windows and PSI every interval; stops when dropped.
pub struct PeriodicExporter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeriodicExporter {
    /// Publishes each `(source, window)` and, where present, `/proc/pressure/cpu` every
    /// `interval`, first at once.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Window`] when `interval` is outside 1 ms ..= 1 h.
    ///
    /// # Panics
    ///
    /// Panics if the OS cannot spawn the exporter thread.
    pub fn start(
        interval: Duration,
        windows: Vec<(String, Arc<WindowedHistogram>)>,
    ) -> Result<Self, ConfigError> {
        WindowConfig { slot: interval, slots: 1 }.validate()?;
        let stop = Arc::new(AtomicBool::new(false));
        let for_thread = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tailguard-export".into())
            .spawn(move || {
                let mut next = Instant::now();
                while !for_thread.load(Ordering::Relaxed) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::park_timeout(next - now);
                        continue;
                    }
                    for (source, window) in &windows {
                        publish_window(source, window);
                    }
                    if let Some(pressure) = psi::read_cpu_pressure() {
                        publish_pressure(&pressure);
                    }
                    next = (next + interval).max(now);
                }
            })
            .expect("the OS refused to spawn the tailguard-export thread");
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for PeriodicExporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A failure to join must not turn a drop into a panic.
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for PeriodicExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeriodicExporter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use metrics::{Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Records the last value set on every gauge, keyed by name and labels.
    #[derive(Default)]
    struct Capture(Arc<Mutex<BTreeMap<String, f64>>>);

    struct Slot(String, Arc<Mutex<BTreeMap<String, f64>>>);

    impl GaugeFn for Slot {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, value: f64) {
            self.1.lock().unwrap().insert(self.0.clone(), value);
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            let labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            Gauge::from_arc(Arc::new(Slot(name, self.0.clone())))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn publishes_quantiles_in_seconds_with_source_labels() {
        let capture = Capture::default();
        let clock = ManualClock::new();
        let window = WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap();
        let empty = WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap();
        for _ in 0..99 {
            window.record(Duration::from_micros(100));
        }
        window.record(Duration::from_millis(8));
        metrics::with_local_recorder(&capture, || {
            publish_window("runtime", &window);
            publish_window("idle", &empty);
            publish_run_queue(&RunQueueTick { os_runnable: Some(1.5), ..Default::default() });
            let p = psi::parse_pressure("some avg10=2.50 avg60=1.00 avg300=0.50 total=3000000").unwrap();
            publish_pressure(&p);
        });
        let seen = capture.0.lock().unwrap();
        let get = |k: &str| *seen.get(k).unwrap_or_else(|| panic!("{k} not published: {seen:?}"));
        assert_eq!(get("tailguard_scheduling_latency_window_samples{source=runtime}"), 100.0);
        let p50 = get("tailguard_scheduling_latency_p50_seconds{source=runtime}");
        assert!((p50 - 100e-6).abs() < 4e-6, "{p50}");
        let max = get("tailguard_scheduling_latency_max_seconds{source=runtime}");
        assert!((max - 8e-3).abs() < 3e-4, "{max}");
        assert_eq!(get("tailguard_scheduling_latency_window_samples{source=idle}"), 0.0);
        assert!(!seen.contains_key("tailguard_scheduling_latency_p99_seconds{source=idle}"));
        assert_eq!(get("tailguard_run_queue_os_runnable_threads{}"), 1.5);
        assert!(!seen.contains_key("tailguard_run_queue_tokio_global_queue_tasks{}"));
        assert_eq!(get("tailguard_cpu_pressure_some_avg10_percent{}"), 2.5);
        assert_eq!(get("tailguard_cpu_pressure_some_total_seconds{}"), 3.0);
    }

    #[test]
    fn refuses_a_bad_interval() {
        let err = PeriodicExporter::start(Duration::ZERO, Vec::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Window(_)), "{err}");
    }
}
