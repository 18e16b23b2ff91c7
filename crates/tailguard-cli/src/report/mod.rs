//! The experiment's report: the figures of every mode, rendered as a terminal table, JSON and a
//! self-contained HTML page with plots.
//!
//! The data model ([`DemoReport`]) is plain serde data, so the JSON written with `--json` holds every
//! figure the table and the page show, and more (the time series and the latency CDFs).

mod html;
mod svg;
mod table;

use serde::{Deserialize, Serialize};

pub use html::render_html;
pub use table::render_table;

/// Everything one run of the experiment measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DemoReport {
    /// The machine the run was taken on.
    pub machine: Machine,
    /// The settings of the run.
    pub settings: Settings,
    /// One entry per mode, in the order they ran.
    pub modes: Vec<ModeResult>,
    /// Notes that explain the figures (what limited a goal, warnings about the run).
    pub notes: Vec<String>,
    /// The overload scenario (`--scenario overload`); `None` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overload: Option<Overload>,
}

/// The machine the run was taken on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU cores available to the process.
    pub cores: usize,
    /// Operating system and architecture.
    pub os: String,
}

/// The settings of the run, as given or defaulted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Length of each mode's measurement, in seconds.
    pub duration_secs: f64,
    /// Target foreground load as a fraction of the machine.
    pub load: f64,
    /// Offered foreground rate, requests per second (from calibration).
    pub rate_rps: f64,
    /// Keys in the store.
    pub keys: u64,
    /// Seed of the keyspace and the request schedule.
    pub seed: u64,
    /// Target p99 scheduling latency of the limiter, in milliseconds.
    pub target_p99_ms: f64,
    /// Where elastic work ran: `threads` or `runtime`.
    pub elastic_on: String,
}

/// What one mode measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ModeResult {
    /// The mode, e.g. `baseline`, `uncontrolled`, `static:0.25`, `elastic`.
    pub name: String,
    /// The foreground service.
    pub foreground: Foreground,
    /// p99 scheduling latency of the foreground runtime over the run, in milliseconds.
    pub sched_p99_ms: Option<f64>,
    /// The elastic work; `None` when the mode ran none (baseline).
    pub elastic: Option<Elastic>,
    /// One point per sampling interval.
    pub series: Vec<SeriesPoint>,
    /// Foreground latency CDF: `(latency_ms, fraction of requests at or below it)`.
    pub latency_cdf: Vec<(f64, f64)>,
}

/// Foreground figures of one mode.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Foreground {
    /// Requests the generator scheduled.
    pub offered: u64,
    /// Requests completed.
    pub requests: u64,
    /// Requests that failed or were still in flight when the mode ended.
    pub failed: u64,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// Latency percentiles from the scheduled arrival, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// 99.9th percentile latency, ms.
    pub p999_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Share of the machine's CPU the foreground used (the whole process less elastic work).
    pub cpu_share: f64,
    /// Requests the generator dispatched more than 1 ms after their scheduled time (their
    /// latency still counts from the schedule).
    pub late_starts: u64,
    /// The generator's largest lag behind its schedule, ms.
    pub max_start_lag_ms: f64,
}

/// Elastic figures of one mode.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Elastic {
    /// Keys backed up per second.
    pub keys_per_sec: f64,
    /// Keys walked by the catch-up scan per second.
    pub scan_keys_per_sec: f64,
    /// Backup bytes written per second (compressed).
    pub bytes_per_sec: f64,
    /// Share of the whole machine's CPU the elastic work used.
    pub cpu_share: f64,
    /// Elastic CPU as a fraction of the CPU the foreground left idle.
    pub idle_share_used: f64,
    /// Export requests issued; each one took a grant.
    pub requests: u64,
    /// Export requests that stopped at `over_limit()` before the end of their range.
    pub preemptions: u64,
    /// Backups completed during the mode.
    pub backups: u64,
    /// Whether every completed backup restored to exactly the source data (`None` when none
    /// completed).
    pub verified: Option<bool>,
    /// Mean elastic share the limiter allowed, of all cores (None when uncontrolled).
    pub mean_share: Option<f64>,
}

/// One sampling interval of a mode.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the mode started.
    pub t_secs: f64,
    /// Foreground requests completed per second in this interval.
    pub fg_rps: f64,
    /// Foreground p50 latency in this interval, ms.
    pub fg_p50_ms: Option<f64>,
    /// Foreground p99 latency in this interval, ms.
    pub fg_p99_ms: Option<f64>,
    /// Scheduling-latency p99 of the samples taken during the interval, ms.
    pub sched_p99_ms: Option<f64>,
    /// Elastic share allowed by the limiter, of all cores.
    pub share: Option<f64>,
    /// Elastic CPU used in this interval, as a share of all cores.
    pub elastic_cpu_share: Option<f64>,
    /// Offered foreground load in this interval, as a share of the machine (the adapt scenario
    /// moves it).
    pub offered_load: Option<f64>,
}

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

impl DemoReport {
    /// The mode named `name`, if it ran.
    pub fn mode(&self, name: &str) -> Option<&ModeResult> {
        self.modes.iter().find(|m| m.name == name)
    }

    /// Foreground p99 of `mode` relative to baseline's, when both ran.
    pub fn p99_vs_baseline(&self, mode: &ModeResult) -> Option<f64> {
        let base = self.mode("baseline")?.foreground.p99_ms;
        (base > 0.0).then(|| mode.foreground.p99_ms / base)
    }
}

/// Formats milliseconds compactly: `0.412`, `12.3`, `1840`.
pub fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "-".to_owned()
    } else if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 100.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.0}")
    }
}

/// Formats a fraction as a percentage: `41.7%`.
pub fn fmt_pct(fraction: f64) -> String {
    if fraction.is_finite() { format!("{:.1}%", fraction * 100.0) } else { "-".to_owned() }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small report with every field filled, shared by the renderers' tests.
    pub(crate) fn sample_report() -> DemoReport {
        let mode = |name: &str, p99: f64, elastic: Option<f64>| ModeResult {
            name: name.to_owned(),
            foreground: Foreground {
                requests: 10_000,
                throughput_rps: 1000.0,
                p50_ms: 0.2,
                p99_ms: p99,
                p999_ms: p99 * 2.0,
                max_ms: p99 * 5.0,
                cpu_share: 0.4,
                late_starts: 0,
                max_start_lag_ms: 0.1,
                offered: 10_000,
                failed: 0,
            },
            sched_p99_ms: Some(p99 / 2.0),
            elastic: elastic.map(|share| Elastic {
                keys_per_sec: 50_000.0 * share,
                scan_keys_per_sec: 500_000.0 * share,
                bytes_per_sec: 1e7 * share,
                cpu_share: share,
                idle_share_used: share / 0.6,
                requests: 40,
                preemptions: 30,
                backups: 3,
                verified: Some(true),
                mean_share: Some(share),
            }),
            series: (0..10)
                .map(|i| SeriesPoint {
                    t_secs: f64::from(i),
                    fg_rps: 1000.0,
                    fg_p50_ms: Some(0.2),
                    fg_p99_ms: Some(p99 + f64::from(i) * 0.01),
                    sched_p99_ms: Some(p99 / 2.0),
                    share: elastic,
                    elastic_cpu_share: elastic,
                    offered_load: Some(0.4),
                })
                .collect(),
            latency_cdf: vec![(0.1, 0.2), (0.2, 0.5), (p99, 0.99), (p99 * 5.0, 1.0)],
        };
        DemoReport {
            machine: Machine { cores: 2, os: "linux x86_64".into() },
            settings: Settings {
                duration_secs: 10.0,
                load: 0.4,
                rate_rps: 1000.0,
                keys: 100_000,
                seed: 7,
                target_p99_ms: 1.0,
                elastic_on: "threads".into(),
            },
            modes: vec![
                mode("baseline", 0.8, None),
                mode("uncontrolled", 12.0, Some(0.6)),
                mode("elastic", 1.1, Some(0.45)),
                mode("static:0.25", 1.0, Some(0.25)),
            ],
            notes: vec!["a note <with> markup & such".into()],
            overload: None,
        }
    }

    /// An overload report with every field filled: heartbeat p99 800 ms without the queue and
    /// 0.4 ms with it, tenants 1:1 without and 2:1 with, throughput 2 % lower with the queue.
    pub(crate) fn sample_overload() -> Overload {
        let class = |name: &str, tenant: u64, priority: i8, rps: f64, p99: f64, cpu: f64| OverloadClass {
            name: name.to_owned(),
            tenant,
            priority,
            offered: (rps * 12.0) as u64,
            offered_rps: rps * 1.2,
            completed: (rps * 10.0) as u64,
            throughput_rps: rps,
            rejected: 10,
            backlog: 3,
            p50_ms: Some(p99 / 4.0),
            p99_ms: Some(p99),
            max_ms: Some(p99 * 2.0),
            cpu_share: cpu,
        };
        let tenant = |name: &str, tenant: u64, weight: u32, cpu: f64, of_tenants: f64| TenantShare {
            name: name.to_owned(),
            tenant,
            weight,
            weight_share: f64::from(weight) / 3.0,
            cpu_share: cpu,
            tenants_cpu_fraction: of_tenants,
        };
        let mode = |name: &str, rps: [f64; 3], p99: [f64; 3], cpu: [f64; 3], queue: Option<QueueStats>| {
            let total = cpu[1] + cpu[2];
            OverloadMode {
                name: name.to_owned(),
                window_secs: 10.0,
                cut_short: false,
                throughput_rps: rps.iter().sum(),
                cpu_share: cpu.iter().sum(),
                process_cpu_share: 0.97,
                requests_per_cpu_second: rps.iter().sum::<f64>() / 1.94,
                late_starts: 2,
                max_start_lag_ms: 1.5,
                left_in_flight: 0,
                classes: vec![
                    class("heartbeat", 0, 50, rps[0], p99[0], cpu[0]),
                    class("tenant-a", 1, 0, rps[1], p99[1], cpu[1]),
                    class("tenant-b", 2, 0, rps[2], p99[2], cpu[2]),
                ],
                tenants: vec![
                    tenant("a", 1, 2, cpu[1], cpu[1] / total),
                    tenant("b", 2, 1, cpu[2], cpu[2] / total),
                ],
                queue,
            }
        };
        Overload {
            tenant_load: 1.3,
            heartbeat_load: 0.01,
            capacity_rps: 10_000.0,
            calibrated_rps: 8_000.0,
            hop_bytes: 16_384,
            request_cpu_us: 200.0,
            max_wait_ms: 250.0,
            admission_threshold: 32.0,
            modes: vec![
                mode("no-queue", [100.0, 4_950.0, 4_950.0], [800.0, 820.0, 830.0], [0.01, 0.4, 0.4], None),
                mode(
                    "queue",
                    [100.0, 6_500.0, 3_200.0],
                    [0.4, 120.0, 240.0],
                    [0.01, 0.52, 0.26],
                    Some(QueueStats {
                        final_slots: 8,
                        mean_slots: 7.5,
                        max_slots: 12,
                        mean_runnable_per_cpu: Some(1.2),
                        admitted: 98_000,
                        admitted_after_queueing: 90_000,
                        rejected_deadline: 30_000,
                        slot_increases: 400,
                        slot_decreases: 396,
                        wait_p99_ms: Some(200.0),
                    }),
                ),
            ],
        }
    }

    #[test]
    fn ratios_against_baseline() {
        let report = sample_report();
        let elastic = report.mode("elastic").unwrap();
        let ratio = report.p99_vs_baseline(elastic).unwrap();
        assert!((ratio - 1.1 / 0.8).abs() < 1e-9);
    }

    #[test]
    fn json_round_trips() {
        let report = sample_report();
        let json = serde_json::to_string(&report).unwrap();
        let back: DemoReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.modes.len(), 4);
        assert_eq!(back.modes[2].series.len(), 10);
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_ms(0.4123), "0.412");
        assert_eq!(fmt_ms(12.345), "12.35");
        assert_eq!(fmt_ms(1840.2), "1840");
        assert_eq!(fmt_ms(f64::NAN), "-");
        assert_eq!(fmt_pct(0.417), "41.7%");
    }
}
