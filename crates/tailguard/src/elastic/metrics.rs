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

use std::time::Duration;

/// One tick's values.
pub(crate) struct TickMetrics {
    pub(crate) share: f64,
    pub(crate) p99: Option<Duration>,
    pub(crate) waiters: usize,
    pub(crate) balance_nanos: i64,
    pub(crate) total_granted_nanos: u64,
    pub(crate) total_used_nanos: u64,
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
}
