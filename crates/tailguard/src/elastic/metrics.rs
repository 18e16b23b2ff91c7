//! Export of the limiter (feature `metrics`): gauges through the `metrics` facade once per
//! controller tick, and the CPU totals as Prometheus counters in seconds ([`write()`]), because
//! the facade's counters are integers (metrics-rs/metrics#367) and CPU time has to leave in
//! seconds.
//!
//! | name | type | unit | meaning |
//! |---|---|---|---|
//! | `tailguard_elastic_share` | gauge | fraction of all cores | elastic share the controller allows |
//! | `tailguard_elastic_p99_seconds` | gauge | seconds | the latency quantile the controller read on its last tick (absent before the first) |
//! | `tailguard_elastic_target_seconds` | gauge | seconds | the target the controller steered by on its last tick: the configured one, or the adaptive controller's raised by the latency measured without elastic work |
//! | `tailguard_elastic_waiters` | gauge | callers | callers waiting for a grant |
//! | `tailguard_elastic_debt_seconds` | gauge | CPU seconds | debt of the CPU bucket (0 when the balance is positive) |
//! | `tailguard_elastic_signal_silent` | gauge | 0 or 1 | 1 while the latency signal is silent and the share falls to the floor |
//! | `tailguard_elastic_granted_cpu_seconds_total` | counter (text) | CPU seconds | CPU granted to elastic work; monotonically increasing, never reset |
//! | `tailguard_elastic_used_cpu_seconds_total` | counter (text) | CPU seconds | CPU elastic work used under grants; monotonically increasing, never reset |
//!
//! `tailguard_elastic_p99_seconds` is kept beside the scheduling-latency histogram because it
//! is the controller's input: the quantile, window and moment it acted on, which no PromQL over
//! the histogram reproduces.

use std::time::Duration;

use metrics::{Unit, describe_gauge};

use super::LimiterSnapshot;
use crate::prometheus::{Exposition, Kind};

/// One tick's values.
pub(crate) struct TickMetrics {
    pub(crate) share: f64,
    pub(crate) p99: Option<Duration>,
    pub(crate) target: Duration,
    pub(crate) waiters: usize,
    pub(crate) balance_nanos: i64,
    pub(crate) silent: bool,
}

/// Describes the limiter's gauges (units and `# HELP` text) to the installed recorder; call it
/// once after installing one.
pub fn describe() {
    describe_gauge!("tailguard_elastic_share", "Elastic share of all cores the controller allows (0..1).");
    describe_gauge!(
        "tailguard_elastic_p99_seconds",
        Unit::Seconds,
        "Scheduling-latency quantile the controller read on its last tick."
    );
    describe_gauge!(
        "tailguard_elastic_target_seconds",
        Unit::Seconds,
        "Latency target the controller steered by on its last tick (the configured one, or raised by the latency without elastic work)."
    );
    describe_gauge!("tailguard_elastic_waiters", Unit::Count, "Callers waiting for an elastic CPU grant.");
    describe_gauge!(
        "tailguard_elastic_debt_seconds",
        Unit::Seconds,
        "CPU seconds of debt in the elastic CPU bucket."
    );
    describe_gauge!(
        "tailguard_elastic_signal_silent",
        "1 while the latency signal is silent and the elastic share falls to the floor, else 0."
    );
}

/// Writes the limiter's CPU totals as counters in seconds.
pub fn write(out: &mut Exposition, snapshot: &LimiterSnapshot) {
    out.family(
        "tailguard_elastic_granted_cpu_seconds_total",
        Kind::Counter,
        "CPU seconds granted to elastic work. Never reset.",
    )
    .value(&[], snapshot.total_granted.as_secs_f64());
    out.family(
        "tailguard_elastic_used_cpu_seconds_total",
        Kind::Counter,
        "CPU seconds elastic work used under its grants. Never reset.",
    )
    .value(&[], snapshot.total_used.as_secs_f64());
}

pub(crate) fn record(tick: &TickMetrics) {
    metrics::gauge!("tailguard_elastic_share").set(tick.share);
    if let Some(p99) = tick.p99 {
        metrics::gauge!("tailguard_elastic_p99_seconds").set(p99.as_secs_f64());
    }
    metrics::gauge!("tailguard_elastic_target_seconds").set(tick.target.as_secs_f64());
    metrics::gauge!("tailguard_elastic_waiters").set(tick.waiters as f64);
    metrics::gauge!("tailguard_elastic_debt_seconds")
        .set(tick.balance_nanos.min(0).unsigned_abs() as f64 / 1e9);
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
    use crate::prometheus::Exposition;

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
        clock.advance_cpu(Duration::from_millis(700)); // a 50 ms fill - 700 ms used: 650 ms of debt
        drop(handle);
        metrics::with_local_recorder(&recorder, || limiter.tick());
        let values = values.lock().unwrap();
        assert_eq!(values["tailguard_elastic_share"], 0.25);
        assert_eq!(values["tailguard_elastic_waiters"], 0.0);
        assert_eq!(values["tailguard_elastic_target_seconds"], 0.001);
        assert!((values["tailguard_elastic_debt_seconds"] - 0.65).abs() < 1e-9);
        assert!(!values.contains_key("tailguard_elastic_p99_seconds"));
        assert!(values.keys().all(|name| !name.contains("nanos")), "{values:?}");
        let mut out = Exposition::new();
        super::write(&mut out, &limiter.snapshot());
        let text = out.finish();
        assert!(text.contains("\ntailguard_elastic_granted_cpu_seconds_total 0.1\n"), "{text}");
        assert!(text.contains("\ntailguard_elastic_used_cpu_seconds_total 0.7\n"), "{text}");
    }
}
