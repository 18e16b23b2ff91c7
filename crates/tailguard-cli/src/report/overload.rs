//! What the overload scenario measured: the tenants' and heartbeats' offered loads, and per
//! mode (without and with the admission queue) each request class, each tenant's CPU against
//! its weight, and the queue's own figures.

use serde::{Deserialize, Serialize};

/// The overload scenario: foreground offered above capacity by two weighted tenants and a
/// high-priority heartbeat class, run without and with the admission queue on one schedule.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Overload {
    /// Offered load of the two tenants together, as a multiple of the machine's capacity.
    pub tenant_load: f64,
    /// Offered load of the heartbeats, as a fraction of the machine's capacity.
    pub heartbeat_load: f64,
    /// Requests per second the saturated service completes (measured with no queue at start);
    /// the offered loads are fractions of it.
    pub capacity_rps: f64,
    /// Requests per second at full load as calibrated at 40 % load (for comparison).
    pub calibrated_rps: f64,
    /// Bytes hashed at each of a request's four hops.
    pub hop_bytes: usize,
    /// CPU one request costs at saturation, in microseconds (cores over capacity, dispatching
    /// included).
    pub request_cpu_us: f64,
    /// Longest a request may wait for admission in the queue mode, in milliseconds.
    pub max_wait_ms: f64,
    /// The queue's overload threshold, runnable tasks per CPU.
    pub admission_threshold: f64,
    /// One entry per mode (`no-queue`, `queue`), in the order they ran.
    pub modes: Vec<OverloadMode>,
}

/// What one mode of the overload scenario measured over its window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OverloadMode {
    /// `no-queue` or `queue`.
    pub name: String,
    /// Length of the measured window, in seconds (shorter than the duration when cut short).
    pub window_secs: f64,
    /// Whether Ctrl-C ended the window early.
    pub cut_short: bool,
    /// Requests of every class completed per second.
    pub throughput_rps: f64,
    /// Time the completed requests' hops ran, as a share of the machine.
    pub cpu_share: f64,
    /// CPU the whole process used, as a share of the machine (requests, dispatching, the
    /// queue and its sampler).
    pub process_cpu_share: f64,
    /// Requests completed per second of the process's CPU: the cost of serving, independent
    /// of how much of the machine other processes took.
    pub requests_per_cpu_second: f64,
    /// Requests dispatched more than 1 ms after their scheduled arrival (latency still counts
    /// from the schedule).
    pub late_starts: u64,
    /// The dispatcher's largest lag behind its schedule, ms.
    pub max_start_lag_ms: f64,
    /// Requests still in flight when the drain after the window gave up (they overlapped the
    /// next mode; normally 0).
    pub left_in_flight: u64,
    /// Per class: heartbeat, tenant-a, tenant-b.
    pub classes: Vec<OverloadClass>,
    /// Per weighted tenant (a, b): CPU share against weight share.
    pub tenants: Vec<TenantShare>,
    /// The work queue's figures over the window; `None` without the queue.
    pub queue: Option<QueueStats>,
}

/// One request class of an overload mode, over the window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OverloadClass {
    /// `heartbeat`, `tenant-a` or `tenant-b`.
    pub name: String,
    /// Its tenant id in the queue.
    pub tenant: u64,
    /// Its priority level in the queue.
    pub priority: i8,
    /// Requests scheduled in the window.
    pub offered: u64,
    /// Scheduled requests per second.
    pub offered_rps: f64,
    /// Requests completed in the window.
    pub completed: u64,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// Requests refused by the queue in the window (their admission deadline passed).
    pub rejected: u64,
    /// Requests dispatched but neither completed nor refused when the window ended.
    pub backlog: u64,
    /// Latency of the completed requests from their scheduled arrival, ms (`None` when none
    /// completed).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// Largest latency, ms.
    pub max_ms: Option<f64>,
    /// Time the completed requests' hops ran, as a share of the machine.
    pub cpu_share: f64,
}

/// A weighted tenant's CPU against its weight.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TenantShare {
    /// `a` or `b`.
    pub name: String,
    /// Its tenant id.
    pub tenant: u64,
    /// Its weight in the queue.
    pub weight: u32,
    /// Its weight over the weighted tenants' weights together.
    pub weight_share: f64,
    /// Its requests' CPU as a share of the machine.
    pub cpu_share: f64,
    /// Its requests' CPU over the weighted tenants' CPU together (compare with `weight_share`).
    pub tenants_cpu_fraction: f64,
}

/// The work queue over one window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct QueueStats {
    /// Slot count when the window ended.
    pub final_slots: u32,
    /// Mean slot count over the window (sampled every 10 ms).
    pub mean_slots: f64,
    /// Largest slot count seen in the window.
    pub max_slots: u32,
    /// Mean run-queue signal over the window, runnable tasks per CPU (sampled with the slots;
    /// `None` without samples).
    pub mean_runnable_per_cpu: Option<f64>,
    /// Requests admitted in the window.
    pub admitted: u64,
    /// Of them, admitted after waiting in the queue.
    pub admitted_after_queueing: u64,
    /// Requests refused in the window because their deadline passed.
    pub rejected_deadline: u64,
    /// Samples in the window that added a slot.
    pub slot_increases: u64,
    /// Samples in the window that removed a slot.
    pub slot_decreases: u64,
    /// Time admitted requests waited for their slot, p99 over the window, ms (`None` when
    /// none was admitted).
    pub wait_p99_ms: Option<f64>,
}

impl Overload {
    /// The mode named `name`, if it ran.
    pub fn mode(&self, name: &str) -> Option<&OverloadMode> {
        self.modes.iter().find(|m| m.name == name)
    }
}

impl OverloadMode {
    /// The class named `name`.
    pub fn class(&self, name: &str) -> Option<&OverloadClass> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// CPU of the first weighted tenant over the second's (`None` unless both are present and
    /// the second used some).
    pub fn tenant_cpu_ratio(&self) -> Option<f64> {
        match &self.tenants[..] {
            [a, b] if b.cpu_share > 0.0 => Some(a.cpu_share / b.cpu_share),
            _ => None,
        }
    }
}
