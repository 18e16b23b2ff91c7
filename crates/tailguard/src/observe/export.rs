//! Export of every signal (feature `metrics`): gauges through the [`metrics`] facade, and the
//! scheduling-latency histogram and the PSI stall counter as Prometheus text
//! ([`crate::prometheus`]).
//!
//! | name | type | labels | unit | meaning |
//! |---|---|---|---|---|
//! | `tailguard_scheduling_latency_seconds` | histogram (text) | `source` | seconds | wake→poll delay of every sample since the source started; `_bucket{le}` over 10 µs – 10 s, `_sum`, `_count`; monotonically increasing, never reset |
//! | `tailguard_cpu_pressure_some_stall_seconds_total` | counter (text) | | seconds | PSI `some` total: time some runnable thread waited for a CPU, since boot; never reset |
//! | `tailguard_scheduling_latency_p50_seconds`, `_p99_seconds`, `_p999_seconds`, `_max_seconds` | gauge | `source` | seconds | quantiles of the sliding window (2.5 s by default; not set while it is empty) |
//! | `tailguard_scheduling_latency_window_samples` | gauge | `source` | samples | samples in the window |
//! | `tailguard_run_queue_os_runnable_threads` | gauge | | threads | mean runnable OS threads over the tick |
//! | `tailguard_run_queue_tokio_global_queue_tasks` | gauge | | tasks | mean depth of tokio's global queue |
//! | `tailguard_run_queue_tokio_alive_tasks` | gauge | | tasks | mean alive tasks of the runtime |
//! | `tailguard_cpu_pressure_some_avg10_percent`, `_avg60_percent`, `_avg300_percent` | gauge | | percent | PSI `some` averages |
//!
//! The histogram is the primary latency signal: it aggregates across instances and re-quantiles
//! in PromQL (`histogram_quantile(0.99, sum by (le) (rate(…_bucket[1m])))`). It is rendered
//! from the source's cumulative [`Histogram`](crate::histogram::Histogram) at scrape time rather
//! than re-recorded through the facade: the facade has no way to hand over bucket counts, so it
//! would cost a `record` per sample (see [`crate::prometheus`] for the figures), and it has no
//! `f64` counters for the stall time in seconds. The window quantile gauges are kept beside it
//! because they are what the controller reads (the same window and quantile
//! arithmetic), and because they reach recorders that are not Prometheus, which the text does
//! not; they cannot be aggregated across instances.
//!
//! Publish the gauges once with the `publish_*` functions (e.g. from your own tick), or start a
//! [`PeriodicExporter`] thread that publishes a set of windows and PSI every interval; call
//! [`describe`] once after installing the recorder for the `# HELP` text. Write the
//! histogram and counter with [`write_scheduling_latency`] and [`write_pressure`] when your
//! `/metrics` endpoint renders, after the exporter's own text.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use tailguard::histogram::{WindowConfig, WindowedHistogram};
//! use tailguard::observe::export::{PeriodicExporter, publish_window, write_scheduling_latency};
//!
//! let window = Arc::new(WindowedHistogram::new(WindowConfig::DEFAULT)?);
//! window.record(Duration::from_micros(80));
//! publish_window("instrumented", &window); // goes to whatever recorder is installed
//! let exporter =
//!     PeriodicExporter::start(Duration::from_secs(1), vec![("runtime".into(), Arc::clone(&window))])?;
//! drop(exporter); // stops publishing
//!
//! // At scrape time, after the exporter's own text:
//! let mut text = tailguard::prometheus::Exposition::new();
//! write_scheduling_latency(&mut text, &[("runtime", &window)]);
//! assert!(text.as_str().contains("tailguard_scheduling_latency_seconds_count{source=\"runtime\"} 1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use metrics::{Unit, describe_gauge, gauge};

use super::ConfigError;
use super::psi::{self, Pressure};
use super::run_queue::RunQueueTick;
use crate::histogram::{WindowConfig, WindowedHistogram};
use crate::prometheus::{Exposition, Kind};

/// Name of the scheduling-latency histogram.
pub const SCHEDULING_LATENCY: &str = "tailguard_scheduling_latency_seconds";
/// Name of the PSI stall counter.
pub const PRESSURE_STALL: &str = "tailguard_cpu_pressure_some_stall_seconds_total";

/// Describes every gauge this module publishes (units and `# HELP` text) to the installed
/// recorder; call it once after installing one.
pub fn describe() {
    for (name, what) in [
        (
            "tailguard_scheduling_latency_p50_seconds",
            "Median scheduling latency (wake to poll) over the sliding window, by source.",
        ),
        (
            "tailguard_scheduling_latency_p99_seconds",
            "p99 scheduling latency (wake to poll) over the sliding window, by source.",
        ),
        (
            "tailguard_scheduling_latency_p999_seconds",
            "p99.9 scheduling latency (wake to poll) over the sliding window, by source.",
        ),
        (
            "tailguard_scheduling_latency_max_seconds",
            "Largest scheduling latency (wake to poll) in the sliding window, by source.",
        ),
    ] {
        describe_gauge!(name, Unit::Seconds, what);
    }
    describe_gauge!(
        "tailguard_scheduling_latency_window_samples",
        Unit::Count,
        "Scheduling-latency samples in the sliding window, by source."
    );
    describe_gauge!(
        "tailguard_run_queue_os_runnable_threads",
        Unit::Count,
        "Runnable OS threads (procs_running), mean over the last tick."
    );
    describe_gauge!(
        "tailguard_run_queue_tokio_global_queue_tasks",
        Unit::Count,
        "Tasks in the tokio runtime's global queue, mean over the last tick."
    );
    describe_gauge!(
        "tailguard_run_queue_tokio_alive_tasks",
        Unit::Count,
        "Alive tasks of the tokio runtime, mean over the last tick."
    );
    for (name, window) in [
        ("tailguard_cpu_pressure_some_avg10_percent", "10 s"),
        ("tailguard_cpu_pressure_some_avg60_percent", "60 s"),
        ("tailguard_cpu_pressure_some_avg300_percent", "300 s"),
    ] {
        describe_gauge!(
            name,
            Unit::Percent,
            format!(
                "CPU pressure (PSI some): share of the last {window} in which some runnable thread waited for a CPU."
            )
        );
    }
}

/// Writes the scheduling-latency histogram of each `(source, window)`: every sample since the
/// window's histogram started (its cumulative counts, not the sliding window).
pub fn write_scheduling_latency(out: &mut Exposition, windows: &[(&str, &WindowedHistogram)]) {
    let mut family = out.family(
        SCHEDULING_LATENCY,
        Kind::Histogram,
        "Scheduling latency: delay from a task's wake-up to its poll, by source. Cumulative since start.",
    );
    for (source, window) in windows {
        family.histogram(&[("source", source)], &window.cumulative().snapshot());
    }
}

/// Writes the PSI `some` stall time as a counter.
pub fn write_pressure(out: &mut Exposition, pressure: &Pressure) {
    out.family(
        PRESSURE_STALL,
        Kind::Counter,
        "CPU pressure (PSI some total): time in which some runnable thread waited for a CPU, since boot.",
    )
    .value(&[], pressure.some.total.as_secs_f64());
}

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

/// Publishes CPU pressure averages (the total is a counter in seconds: [`write_pressure`]).
pub fn publish_pressure(pressure: &Pressure) {
    gauge!("tailguard_cpu_pressure_some_avg10_percent").set(pressure.some.avg10);
    gauge!("tailguard_cpu_pressure_some_avg60_percent").set(pressure.some.avg60);
    gauge!("tailguard_cpu_pressure_some_avg300_percent").set(pressure.some.avg300);
}

/// A thread (`tailguard-export`) publishing windows and PSI every interval; stops when dropped.
pub struct PeriodicExporter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PeriodicExporter {
    /// Publishes the gauges of each `(source, window)` and, where present, of
    /// `/proc/pressure/cpu` every `interval`, first at once; [`describe`]s them first.
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
        describe();
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
        assert!(!seen.contains_key("tailguard_cpu_pressure_some_total_seconds{}"));
    }

    #[test]
    fn writes_the_cumulative_histogram_per_source_and_the_stall_counter() {
        let clock = ManualClock::new();
        let window = WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap();
        window.record(Duration::from_micros(80));
        clock.advance(Duration::from_secs(10)); // out of the window, still in the histogram
        window.record(Duration::from_millis(3));
        let idle = WindowedHistogram::with_clock(WindowConfig::DEFAULT, clock.shared()).unwrap();
        let mut out = Exposition::new();
        write_scheduling_latency(&mut out, &[("runtime", &window), ("idle", &idle)]);
        let p = psi::parse_pressure("some avg10=2.50 avg60=1.00 avg300=0.50 total=3500000").unwrap();
        write_pressure(&mut out, &p);
        let text = out.finish();
        assert_eq!(text.matches("# TYPE tailguard_scheduling_latency_seconds histogram").count(), 1);
        for line in [
            "tailguard_scheduling_latency_seconds_bucket{source=\"runtime\",le=\"0.0001\"} 1",
            "tailguard_scheduling_latency_seconds_bucket{source=\"runtime\",le=\"0.0025\"} 1",
            "tailguard_scheduling_latency_seconds_bucket{source=\"runtime\",le=\"0.005\"} 2",
            "tailguard_scheduling_latency_seconds_count{source=\"runtime\"} 2",
            "tailguard_scheduling_latency_seconds_count{source=\"idle\"} 0",
            "# TYPE tailguard_cpu_pressure_some_stall_seconds_total counter",
            "tailguard_cpu_pressure_some_stall_seconds_total 3.5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn refuses_a_bad_interval() {
        let err = PeriodicExporter::start(Duration::ZERO, Vec::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Window(_)), "{err}");
    }
}
