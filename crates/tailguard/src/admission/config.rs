//! Work-queue configuration, its defaults and their sources, and validation.

use std::time::Duration;

use thiserror::Error;

/// CockroachDB's `admission.kv_slot_adjuster.overload_threshold`: runnable goroutines per CPU at
/// or above which the CPU counts as overloaded.
pub const DEFAULT_OVERLOAD_THRESHOLD: f64 = 32.0;
/// CockroachDB's `MinCPUSlots`.
pub const DEFAULT_MIN_SLOTS: u32 = 1;
/// CockroachDB's `MaxCPUSlots`.
pub const DEFAULT_MAX_SLOTS: u32 = 100_000;
/// The most slots a queue can have (the slot count lives in 31 bits of the admission word).
pub const MAX_SLOTS_LIMIT: u32 = (1 << 31) - 1;
/// CockroachDB's short sampling period of the run queue (`samplePeriodShort`).
pub const DEFAULT_SAMPLE_PERIOD: Duration = Duration::from_millis(1);
/// CockroachDB's long sampling period, used while idle (`samplePeriodLong`).
pub const DEFAULT_IDLE_SAMPLE_PERIOD: Duration = Duration::from_millis(250);
/// How often tenant usage is reset (CockroachDB resets its tenants' usage every second).
pub const DEFAULT_USAGE_RESET: Duration = Duration::from_secs(1);
/// Tenants no longer tracked whose totals are kept: four times `tailguard serve`'s default
/// `--max-tenants`, ~200 KiB at most.
pub const DEFAULT_RETIRED_TENANTS: usize = 4096;

/// In which order the waiters of one tenant and priority are admitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueOrder {
    /// First come, first served (the default).
    #[default]
    Fifo,
    /// First come, first served until the oldest waiter of a tenant and priority has waited at
    /// least `after`; from then on the newest is served first, so that under overload fresh
    /// requests, which can still meet their deadlines, run while old ones time out ("adaptive
    /// LIFO"). Back to FIFO as soon as the oldest waiter has waited less than `after`.
    LifoUnderOverload {
        /// Queueing time of the oldest waiter that counts as overload.
        after: Duration,
    },
}

/// The full, validated configuration of a [`WorkQueue`](super::WorkQueue).
///
/// Defaults follow CockroachDB's KV slot adjuster unless noted.
///
/// | field | default | from |
/// |---|---|---|
/// | `overload_threshold` | 32 runnable per CPU | `admission.kv_slot_adjuster.overload_threshold` |
/// | `min_slots` / `max_slots` | 1 / 100 000 | `MinCPUSlots` / `MaxCPUSlots` |
/// | `initial_slots` | one per core | ours: the adjuster moves it by one per sample from there |
/// | `sample_period` | 1 ms | `samplePeriodShort` |
/// | `idle_sample_period` | 250 ms | `samplePeriodLong` |
/// | `usage_reset` | 1 s | the work queue's per-second reset of tenant usage |
/// | `order` | FIFO | |
/// | `queue_limit` | none | |
/// | `cores` | detected (cgroup quota respected) | |
/// | `retired_tenants` | 4096 | ours: totals kept of tenants no longer tracked (~200 KiB at most) |
/// | `count_admitted` | off | ours: admitted requests as runnable, for [`WorkQueue::submit`](super::WorkQueue::submit) |
#[derive(Clone, Debug, PartialEq)]
pub struct WorkQueueConfig {
    /// Slots at start.
    pub initial_slots: u32,
    /// Fewest slots the adjuster leaves (at least 1: some work must always be admitted).
    pub min_slots: u32,
    /// Most slots the adjuster gives.
    pub max_slots: u32,
    /// Runnable tasks per CPU at or above which the CPU is overloaded and the slot count goes
    /// down by one per sample (if slots are in use and no earlier decrease is still pending);
    /// at or below half of it, and with every slot in use, the count goes up by one.
    ///
    /// The default (32) was chosen for goroutines. An OS thread pool sees far smaller numbers
    /// (a runnable thread per CPU beyond the running one already means queueing), so a service
    /// steering by OS runnable threads wants a threshold of a few threads per CPU.
    pub overload_threshold: f64,
    /// How the signal is sampled while work is admitted or waiting.
    pub sample_period: Duration,
    /// How the signal is sampled while nothing is admitted and nobody waits.
    pub idle_sample_period: Duration,
    /// How often tenant usage (admissions through the queue) is reset to zero.
    pub usage_reset: Duration,
    /// Order within a tenant and priority.
    pub order: QueueOrder,
    /// Most requests allowed to wait; beyond it admission fails with
    /// [`AdmitError::QueueFull`](super::AdmitError::QueueFull). `None`: no limit.
    pub queue_limit: Option<usize>,
    /// Cores the tenant CPU caps are shares of, and admitted requests are counted over.
    pub cores: f64,
    /// Counts every admitted request as one runnable task: each sample of the signal gets
    /// `slots in use / cores` added. For CPU-bound requests admitted with
    /// [`WorkQueue::submit`](super::WorkQueue::submit) on an async runtime, whose runnable
    /// tasks sit in worker-local queues that [`TokioRunQueue`](super::TokioRunQueue) cannot
    /// read (the slots then settle near `threshold × cores / 2`). Default: off; leave it off for
    /// requests that hold a slot while they wait on I/O.
    pub count_admitted: bool,
    /// Most tenants no longer tracked whose totals (CPU, requests) the queue keeps, so that
    /// they never go back when an idle tenant is forgotten and returns; beyond it the tenant
    /// retired longest ago is folded into one aggregate
    /// ([`WorkQueueSnapshot::evicted_tenants`](super::WorkQueueSnapshot::evicted_tenants)).
    /// About 50 bytes an entry.
    pub retired_tenants: usize,
}

impl Default for WorkQueueConfig {
    fn default() -> Self {
        let cores = crate::budget::detected_cores();
        WorkQueueConfig {
            // Whole cores; at most 4096 of them, so the cast cannot truncate.
            initial_slots: (cores.ceil() as u32).max(DEFAULT_MIN_SLOTS),
            min_slots: DEFAULT_MIN_SLOTS,
            max_slots: DEFAULT_MAX_SLOTS,
            overload_threshold: DEFAULT_OVERLOAD_THRESHOLD,
            sample_period: DEFAULT_SAMPLE_PERIOD,
            idle_sample_period: DEFAULT_IDLE_SAMPLE_PERIOD,
            usage_reset: DEFAULT_USAGE_RESET,
            order: QueueOrder::Fifo,
            queue_limit: None,
            cores,
            count_admitted: false,
            retired_tenants: DEFAULT_RETIRED_TENANTS,
        }
    }
}

/// A configuration value out of range. Each message names the field and what to change.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Slot bounds must satisfy `1 <= min_slots <= initial_slots <= max_slots <= 2^31 - 1`.
    #[error(
        "slots min_slots={min} initial_slots={initial} max_slots={max} are invalid: need \
         1 <= min_slots <= initial_slots <= max_slots <= 2147483647"
    )]
    Slots {
        /// The minimum given.
        min: u32,
        /// The initial count given.
        initial: u32,
        /// The maximum given.
        max: u32,
    },
    /// `overload_threshold` must be finite and positive.
    #[error(
        "overload_threshold {0} is invalid: use a finite positive number of runnable tasks per CPU (default 32)"
    )]
    OverloadThreshold(f64),
    /// Sampling periods must be within 10 µs ..= 10 s, the idle one no shorter than the busy one.
    #[error(
        "sample periods sample_period={busy:?} idle_sample_period={idle:?} are invalid: use \
         10µs ..= 10s with idle_sample_period >= sample_period (default 1ms and 250ms)"
    )]
    SamplePeriod {
        /// The busy period given.
        busy: Duration,
        /// The idle period given.
        idle: Duration,
    },
    /// `usage_reset` must be within 1 ms ..= 1 h.
    #[error("usage_reset {0:?} is out of range: use 1ms ..= 1h (default 1s)")]
    UsageReset(Duration),
    /// The LIFO switch-over wait must be at most 1 h.
    #[error("order LifoUnderOverload after={0:?} is out of range: use 0 ..= 1h")]
    LifoAfter(Duration),
    /// `queue_limit` must be at least 1 when set.
    #[error("queue_limit 0 is invalid: use None for no limit, or at least 1")]
    QueueLimit,
    /// `cores` must be finite, >= 0.01 and <= 4096.
    #[error("cores {0} is out of range: use 0.01 ..= 4096 (default: detected)")]
    Cores(f64),
    /// A tenant CPU cap must be a share of the machine in (0, 1].
    #[error("tenant cap {0} is out of range: use a share of the machine's CPU in (0, 1]")]
    TenantCap(f64),
}

impl WorkQueueConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// The first field out of range, as a [`ConfigError`] naming it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (min, initial, max) = (self.min_slots, self.initial_slots, self.max_slots);
        if !(1 <= min && min <= initial && initial <= max && max <= MAX_SLOTS_LIMIT) {
            return Err(ConfigError::Slots { min, initial, max });
        }
        if !(self.overload_threshold.is_finite() && self.overload_threshold > 0.0) {
            return Err(ConfigError::OverloadThreshold(self.overload_threshold));
        }
        let period_range = Duration::from_micros(10)..=Duration::from_secs(10);
        let (busy, idle) = (self.sample_period, self.idle_sample_period);
        if !(period_range.contains(&busy) && period_range.contains(&idle) && idle >= busy) {
            return Err(ConfigError::SamplePeriod { busy, idle });
        }
        if !(Duration::from_millis(1)..=Duration::from_secs(3600)).contains(&self.usage_reset) {
            return Err(ConfigError::UsageReset(self.usage_reset));
        }
        if let QueueOrder::LifoUnderOverload { after } = self.order {
            if after > Duration::from_secs(3600) {
                return Err(ConfigError::LifoAfter(after));
            }
        }
        if self.queue_limit == Some(0) {
            return Err(ConfigError::QueueLimit);
        }
        if !(self.cores.is_finite() && (0.01..=4096.0).contains(&self.cores)) {
            return Err(ConfigError::Cores(self.cores));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_reference() {
        let config = WorkQueueConfig::default();
        config.validate().unwrap();
        assert_eq!(config.overload_threshold, 32.0);
        assert_eq!((config.min_slots, config.max_slots), (1, 100_000));
        assert_eq!(config.sample_period, Duration::from_millis(1));
        assert_eq!(config.idle_sample_period, Duration::from_millis(250));
        assert!(config.initial_slots >= 1);
    }

    #[test]
    fn each_invalid_field_is_named() {
        let base = WorkQueueConfig { cores: 2.0, initial_slots: 2, ..Default::default() };
        let cases: Vec<(WorkQueueConfig, &str)> = vec![
            (WorkQueueConfig { min_slots: 0, ..base.clone() }, "min_slots"),
            (WorkQueueConfig { initial_slots: 200_000, ..base.clone() }, "initial_slots"),
            (WorkQueueConfig { max_slots: u32::MAX, initial_slots: 5, ..base.clone() }, "max_slots"),
            (WorkQueueConfig { overload_threshold: f64::NAN, ..base.clone() }, "overload_threshold"),
            (WorkQueueConfig { sample_period: Duration::ZERO, ..base.clone() }, "sample_period"),
            (
                WorkQueueConfig { idle_sample_period: Duration::from_micros(100), ..base.clone() },
                "idle_sample_period",
            ),
            (WorkQueueConfig { usage_reset: Duration::ZERO, ..base.clone() }, "usage_reset"),
            (
                WorkQueueConfig {
                    order: QueueOrder::LifoUnderOverload { after: Duration::from_secs(7200) },
                    ..base.clone()
                },
                "LifoUnderOverload",
            ),
            (WorkQueueConfig { queue_limit: Some(0), ..base.clone() }, "queue_limit"),
            (WorkQueueConfig { cores: 0.0, ..base.clone() }, "cores"),
        ];
        for (config, field) in cases {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(field), "{message:?} should name {field}");
        }
    }
}
