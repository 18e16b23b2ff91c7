//! Export through the `metrics` facade (feature `metrics`), once per controller tick.
//!
//! | name | kind | unit |
//! |---|---|---|
//! | `tailguard_elastic_share` | gauge | fraction of all cores |
//! | `tailguard_elastic_p99_seconds` | gauge | seconds (latest quantile read; absent before the first) |
//! | `tailguard_elastic_waiters` | gauge | callers waiting for a grant |
//! | `tailguard_elastic_debt_seconds` | gauge | CPU seconds of debt |
//! | `tailguard_elastic_granted_cpu_nanos_total` | counter | CPU nanoseconds, monotonic, never reset |
//! | `tailguard_elastic_used_cpu_nanos_total` | counter | CPU nanoseconds, monotonic, never reset |
//! | `tailguard_elastic_signal_silent` | gauge | 1 while the latency signal is silent and the share falls to the floor, else 0 |

use std::time::Duration;

/// One tick's values.
pub(crate) struct TickMetrics {
    pub(crate) share: f64,
    pub(crate) p99: Option<Duration>,
    pub(crate) waiters: usize,
    pub(crate) balance_nanos: i64,
    pub(crate) total_granted_nanos: u64,
    pub(crate) total_used_nanos: u64,
    pub(crate) silent: bool,
}

pub(crate) fn record(tick: &TickMetrics) {
    metrics::gauge!("tailguard_elastic_share").set(tick.share);
    if let Some(p99) = tick.p99 {
        metrics::gauge!("tailguard_elastic_p99_seconds").set(p99.as_secs_f64());
    }
    metrics::gauge!("tailguard_elastic_waiters").set(tick.waiters as f64);
    metrics::gauge!("tailguard_elastic_debt_seconds")
        .set(tick.balance_nanos.min(0).unsigned_abs() as f64 / 1e9);
    metrics::counter!("tailguard_elastic_granted_cpu_nanos_total").absolute(tick.total_granted_nanos);
    metrics::counter!("tailguard_elastic_used_cpu_nanos_total").absolute(tick.total_used_nanos);
    metrics::gauge!("tailguard_elastic_signal_silent").set(f64::from(u8::from(tick.silent)));
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    use crate::clock::ManualClock;
    use crate::elastic::{AcquireRequest, ControllerKind, Limiter};

    /// Remembers the last value written to each metric.
    #[derive(Default)]
    struct Last(Arc<Mutex<HashMap<String, f64>>>);

    struct Cell(Arc<Mutex<HashMap<String, f64>>>, String);

    impl GaugeFn for Cell {
        fn increment(&self, value: f64) {
            *self.0.lock().unwrap().entry(self.1.clone()).or_default() += value;
        }
        fn decrement(&self, value: f64) {
            GaugeFn::increment(self, -value);
        }
        fn set(&self, value: f64) {
            self.0.lock().unwrap().insert(self.1.clone(), value);
        }
    }

    impl CounterFn for Cell {
        fn increment(&self, value: u64) {
            GaugeFn::increment(self, value as f64);
        }
        fn absolute(&self, value: u64) {
            GaugeFn::set(self, value as f64);
        }
    }

    impl Recorder for Last {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(Cell(self.0.clone(), key.name().to_owned())))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(Cell(self.0.clone(), key.name().to_owned())))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn each_tick_exports_share_waiters_debt_and_cpu_totals() {
        let recorder = Last::default();
        let values = recorder.0.clone();
        let clock = ManualClock::new();
        let limiter = Limiter::builder()
            .cores(2.0)
            .controller(ControllerKind::Fixed(0.25))
            .clock(clock.shared())
            .build()
            .unwrap();
        let handle = limiter.try_acquire(&AcquireRequest::new()).unwrap();
        clock.advance_cpu(Duration::from_millis(700)); // 500 ms - 700 ms used: 200 ms of debt
        drop(handle);
        metrics::with_local_recorder(&recorder, || limiter.tick());
        let values = values.lock().unwrap();
        assert_eq!(values["tailguard_elastic_share"], 0.25);
        assert_eq!(values["tailguard_elastic_waiters"], 0.0);
        assert!((values["tailguard_elastic_debt_seconds"] - 0.2).abs() < 1e-9);
        assert_eq!(values["tailguard_elastic_granted_cpu_nanos_total"], 100e6);
        assert_eq!(values["tailguard_elastic_used_cpu_nanos_total"], 700e6);
        assert!(!values.contains_key("tailguard_elastic_p99_seconds"));
    }
}
