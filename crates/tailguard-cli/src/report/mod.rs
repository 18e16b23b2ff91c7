//! The experiment's report: the figures of every mode, rendered as a terminal table, JSON and a
//! self-contained HTML page with plots.
//!
//! The data model ([`DemoReport`]) is plain serde data, so the JSON written with `--json` holds every
//! figure the table and the page show, and more (the time series and the latency CDFs).

mod facts;
#[cfg(test)]
pub(crate) mod fixtures;
mod html;
mod overload;
mod svg;
mod table;

use serde::{Deserialize, Serialize};

pub use html::{PAGE_STYLE, render_html, render_scatter};
pub use overload::{Overload, OverloadClass, OverloadMode, QueueStats, TenantShare};
/// The chart pieces, for pages of other runs (`tailguard cluster`).
pub use svg::{Chart, Scale, Series, escape};
pub use table::render_table;

/// The isolation goal for foreground p99 with elastic work running, against the baseline's.
pub const P99_GOAL: f64 = 1.5;
/// The goal for the CPU elastic work uses, as a share of the CPU the foreground leaves idle.
pub const IDLE_GOAL: f64 = 0.7;

/// Everything one run of the experiment measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct DemoReport {
    /// The machine the run was taken on.
    pub machine: Machine,
    /// The settings of the run.
    pub settings: Settings,
    /// Every measured window, in the order they ran: each mode once per round, the baseline
    /// twice.
    pub runs: Vec<ModeResult>,
    /// One entry per mode, in the order given: its figures over the rounds (medians with
    /// intervals) and its comparisons with the baseline.
    pub modes: Vec<ModeSummary>,
    /// The baseline measured against itself (A/A), the run's noise floor; `None` without a
    /// baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<Ratios>,
    /// Notes that explain the figures (the verdicts, what limited a goal, warnings about the
    /// run).
    pub notes: Vec<String>,
    /// Windows measured again because the host stole from them (`--rerun-stolen`), in the order
    /// they ran; the figures above are those of their reruns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rerun: Vec<RerunWindow>,
    /// The overload scenario (`--scenario overload`); `None` for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overload: Option<Overload>,
}

/// A window measured again because the hypervisor stole more than `--stolen-over` of the CPU
/// during it: what it showed, on record beside its rerun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RerunWindow {
    /// Its mode.
    pub name: String,
    /// Its round, from 1.
    pub round: u32,
    /// CPU time stolen over the window, as a share of the machine's.
    pub machine_steal: f64,
    /// The foreground's p99 over the window, ms.
    pub fg_p99_ms: f64,
    /// Elastic CPU as a share of the machine; `None` for a mode without elastic work.
    pub elastic_cpu_share: Option<f64>,
}

impl RerunWindow {
    /// The record of `window`.
    pub fn of(window: &ModeResult) -> Self {
        RerunWindow {
            name: window.name.clone(),
            round: window.round,
            machine_steal: window.machine_steal.unwrap_or(0.0),
            fg_p99_ms: window.foreground.p99_ms,
            elastic_cpu_share: window.elastic.as_ref().map(|e| e.cpu_share),
        }
    }
}

/// The machine the run was taken on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU cores available to the process: possibly fractional under a cgroup quota.
    pub cores: f64,
    /// Operating system and architecture.
    pub os: String,
}

/// The settings of the run, as given or defaulted.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settings {
    /// Length of each mode's measurement, in seconds.
    pub duration_secs: f64,
    /// Time each mode ran before its measurement, in seconds (the baseline's is shorter: it
    /// has no limiter to settle).
    #[serde(default)]
    pub warmup_secs: f64,
    /// Rounds: each mode ran once per round (the baseline twice), in a rotating order.
    #[serde(default)]
    pub rounds: u32,
    /// The statistic behind `p99_vs_baseline` and the verdicts: `intervals`, `window` or
    /// `pooled` (see `Ratios`).
    #[serde(default)]
    pub statistic: String,
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
    /// How the os-priority modes put elastic threads at the idle priority: `sched-idle` or
    /// `cgroup` (empty in reports from before it was recorded).
    #[serde(default)]
    pub idle_by: String,
    /// What the latency controllers steered by: `probe`, `tasks`, `threads` or `requests`
    /// (empty in reports from before it was recorded).
    #[serde(default)]
    pub signal: String,
    /// The machine's idle CPU during the baseline runs, as a fraction of all its cores: what
    /// the elastic share of idle CPU divides by. `None` without a baseline.
    #[serde(default)]
    pub idle_cpu: Option<f64>,
    /// Where `idle_cpu` came from: `/proc/stat` (the whole machine) or `process` (the
    /// process's own CPU, where `/proc/stat` cannot be read).
    #[serde(default)]
    pub idle_source: String,
    /// Whether the foreground runtime's workers were pinned one per CPU (`--pin-workers`).
    #[serde(default)]
    pub pin_workers: bool,
    /// The load generator's priority while it dispatched: `realtime` (SCHED_FIFO) or `normal`
    /// (`--generator-priority`, or its fallback where the OS refused it); empty in reports from
    /// before it was recorded, whose generator ran at normal priority.
    #[serde(default)]
    pub generator_priority: String,
    /// How often a window the host stole from was measured again (`--rerun-stolen`).
    #[serde(default)]
    pub rerun_stolen: u32,
    /// Steal above which a window's figures count as the host's (`--stolen-over`), as a share
    /// of the machine's CPU time; `None` in reports from before it was recorded.
    #[serde(default)]
    pub stolen_over: Option<f64>,
}

/// A figure over rounds: the median, and a 95 % bootstrap interval over the rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The median over rounds (for a pooled ratio, the ratio of the pooled runs).
    pub median: f64,
    /// Low end of the interval.
    pub low: f64,
    /// High end of the interval.
    pub high: f64,
    /// Rounds the figure rests on.
    pub rounds: u32,
}

impl Estimate {
    /// Whether the interval has `goal` strictly inside: the rounds do not settle which side of
    /// the goal the figure is on.
    pub fn straddles(&self, goal: f64) -> bool {
        self.low < goal && goal < self.high
    }

    /// The figure as `median [low–high]`, each formatted by `fmt`; just the median when the
    /// interval is a point.
    pub fn render(&self, fmt: impl Fn(f64) -> String) -> String {
        if self.rounds <= 1 || !(self.low.is_finite() && self.high.is_finite()) || self.low == self.high {
            fmt(self.median)
        } else {
            format!("{} [{}–{}]", fmt(self.median), fmt(self.low), fmt(self.high))
        }
    }
}

/// One ratio by each of the statistics the demo can compare with: which is steadiest across
/// repeated runs is measured (docs/design-notes.md), and `Settings::statistic` names the one
/// the verdicts use.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Ratios {
    /// The p99 of all rounds' requests pooled, against the baseline's pooled the same way;
    /// interval from a paired bootstrap over rounds.
    pub pooled: Option<Estimate>,
    /// Per round, the window's p99 against the round's baselines'; median over rounds.
    pub window: Option<Estimate>,
    /// Per round, the median of the window's per-interval p99s against the baselines';
    /// median over rounds (a burst in one interval moves it little).
    pub intervals: Option<Estimate>,
}

impl Ratios {
    /// The ratio by the statistic named `name` (`pooled`, `window` or `intervals`).
    pub fn by(&self, name: &str) -> Option<Estimate> {
        match name {
            "pooled" => self.pooled,
            "window" => self.window,
            "intervals" => self.intervals,
            _ => None,
        }
    }
}

/// One mode over all its rounds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ModeSummary {
    /// The mode, e.g. `baseline`, `uncontrolled`, `static:0.25`, `elastic`.
    pub name: String,
    /// Measured windows of this mode (the baseline runs twice per round).
    pub runs: u32,
    /// Completed foreground requests per second.
    pub throughput_rps: Estimate,
    /// Foreground latency percentiles from the scheduled arrival, ms.
    pub p50_ms: Estimate,
    /// 99th percentile, ms.
    pub p99_ms: Estimate,
    /// 99.9th percentile, ms.
    pub p999_ms: Estimate,
    /// Largest latency, ms.
    pub max_ms: Estimate,
    /// p99 scheduling latency of the foreground runtime over the measured windows, ms.
    pub sched_p99_ms: Option<Estimate>,
    /// The hypervisor's steal over the mode's windows, as a share of the machine.
    #[serde(default)]
    pub machine_steal: Option<Estimate>,
    /// Foreground p99 against the baseline's, by each statistic; `None` without a baseline.
    pub p99_vs_baseline: Option<Ratios>,
    /// Uncontrolled's foreground p99 over this mode's, by each statistic: how many times lower
    /// this mode keeps it. `None` unless both ran.
    pub lower_than_uncontrolled: Option<Ratios>,
    /// The elastic work; `None` for the baseline.
    pub elastic: Option<ElasticSummary>,
    /// The response to the adapt scenario's load steps over the rounds; `None` in the other
    /// scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepSummary>,
}

/// A mode's elastic work over its rounds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ElasticSummary {
    /// Keys backed up per second.
    pub keys_per_sec: Estimate,
    /// Keys walked by the catch-up scan per second.
    pub scan_keys_per_sec: Estimate,
    /// Share of the whole machine's CPU the elastic work used.
    pub cpu_share: Estimate,
    /// The limiter's accounted elastic CPU over the measured elastic CPU, per window (`None`
    /// without a limiter): 1 when grants are charged with exactly the work's own time.
    #[serde(default)]
    pub accounted_over_measured: Option<Estimate>,
    /// Elastic CPU over the idle CPU the baseline runs left (`Settings::idle_cpu`).
    pub idle_share_used: Option<Estimate>,
    /// Mean elastic share the limiter allowed, of all cores (None when uncontrolled).
    pub mean_share: Option<Estimate>,
    /// Backups completed in all rounds.
    pub backups: u64,
    /// Whether every completed backup restored to exactly the source data (`None` when none
    /// completed).
    pub verified: Option<bool>,
}

/// What one measured window (one mode in one round) measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ModeResult {
    /// The mode, e.g. `baseline`, `uncontrolled`, `static:0.25`, `elastic`.
    pub name: String,
    /// The round it ran in, from 1.
    #[serde(default)]
    pub round: u32,
    /// Its place in the round's order, from 1.
    #[serde(default)]
    pub position: u32,
    /// The foreground service.
    pub foreground: Foreground,
    /// p99 scheduling latency of the foreground runtime over the measured window, ms.
    pub sched_p99_ms: Option<f64>,
    /// CPU the whole process used over the window, as a share of the machine.
    #[serde(default)]
    pub process_cpu_share: f64,
    /// The machine's idle CPU over the window, as a share of its cores (`/proc/stat`); `None`
    /// where it cannot be read.
    #[serde(default)]
    pub machine_idle: Option<f64>,
    /// Time the hypervisor gave other guests while this machine's CPUs had work (steal), over
    /// the window, as a share of its cores; `None` where it cannot be read.
    #[serde(default)]
    pub machine_steal: Option<f64>,
    /// The elastic work; `None` when the mode ran none (baseline).
    pub elastic: Option<Elastic>,
    /// The response to the adapt scenario's load steps; `None` in the other scenarios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepResponse>,
    /// One point per sampling interval.
    pub series: Vec<SeriesPoint>,
    /// Foreground latency CDF: `(latency_ms, fraction of requests at or below it)`.
    pub latency_cdf: Vec<(f64, f64)>,
    /// The limiter's controller ticks from its start (the warm-up included) to the end of the
    /// measured window; empty for modes without a limiter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ticks: Vec<TickPoint>,
}

/// One controller tick of a mode's limiter, as the JSON report keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TickPoint {
    /// Seconds from the start of the measured window (negative during the warm-up).
    pub t_secs: f64,
    /// The share after the tick, of all cores.
    pub share: f64,
    /// The window's latency quantile the controller read, ms.
    pub p99_ms: Option<f64>,
    /// The same over the window's recent part, ms.
    pub recent_p99_ms: Option<f64>,
    /// Fraction of the tick during which elastic work waited for a grant.
    pub waiting_fraction: f64,
    /// CPU granted over the last 500 ms as a fraction of what the share allowed.
    pub used_fraction: f64,
    /// The adaptive controller's knee after the tick, when it remembers one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knee: Option<f64>,
}

/// One window's response to the load steps of the adapt scenario (`demo/step.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepResponse {
    /// Seconds from the step up until scheduling p99 was under target for two intervals in a
    /// row; `None` when it never was before the step down.
    pub recovery_secs: Option<f64>,
    /// Intervals over target per 10 s of the high phase after recovery; `None` when nothing of
    /// the phase is left after it.
    pub crossings_per_10s: Option<f64>,
    /// Seconds from the step down until the share stayed within 10 % of its settled
    /// level; `None` without a step down or a share.
    pub settle_after_down_secs: Option<f64>,
    /// Pairs of consecutive intervals over which elastic CPU ran more than 0.05 of the machine
    /// above the share, on average.
    pub overrun_pairs: u32,
    /// Pairs of consecutive intervals with both a share and elastic CPU.
    pub pairs: u32,
}

/// A mode's step response over its rounds: medians with their intervals.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepSummary {
    /// Recovery after the step up, seconds.
    pub recovery_secs: Option<Estimate>,
    /// Intervals over target per 10 s after recovery.
    pub crossings_per_10s: Option<Estimate>,
    /// Settling time of the share after the step down, seconds.
    pub settle_after_down_secs: Option<Estimate>,
    /// Pairs of intervals with elastic CPU above its share by more than 0.05 of the machine,
    /// per window.
    pub overrun_pairs: Estimate,
}

/// Foreground figures of one window.
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
    /// Share of the machine's CPU the process used beside the elastic work: the service, the
    /// load generator, the probe and the sampler.
    pub cpu_share: f64,
    /// Requests the generator dispatched more than 1 ms after their scheduled time (their
    /// latency still counts from the schedule).
    pub late_starts: u64,
    /// The generator's largest lag behind its schedule, ms.
    pub max_start_lag_ms: f64,
    /// Where the latency went: the p99 of each of its parts (absent in reports from before
    /// they were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_p99_ms: Option<LatencyPartsMs>,
}

/// The p99 of each consecutive part of the foreground requests' latency, ms. Each is its own
/// part's p99: they do not add up to the latency's p99, but none exceeds it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPartsMs {
    /// From the scheduled arrival to the load generator's dispatch: its own lag.
    pub lag: Option<f64>,
    /// From the dispatch to the request task's first poll: the wait for a runtime worker.
    pub queue: Option<f64>,
    /// From that poll to the response: the service's own latency.
    pub served: Option<f64>,
}

/// Elastic figures of one window.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Elastic {
    /// Keys backed up per second.
    pub keys_per_sec: f64,
    /// Keys walked by the catch-up scan per second.
    pub scan_keys_per_sec: f64,
    /// Backup bytes written per second (compressed).
    pub bytes_per_sec: f64,
    /// Share of the whole machine's CPU the elastic work used, as the work measured it
    /// (thread CPU time around each slice of work).
    pub cpu_share: f64,
    /// The same as the limiter accounted it: the CPU its settled grants were charged with
    /// (`None` without a limiter). Grants settle when they end, so it lags by up to a grant.
    #[serde(default)]
    pub accounted_cpu_share: Option<f64>,
    /// Elastic CPU as a fraction of the idle CPU the baseline runs left (`None` without a
    /// baseline).
    pub idle_share_used: Option<f64>,
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
    /// The hypervisor's steal in this interval, as a share of the machine.
    #[serde(default)]
    pub steal: Option<f64>,
    /// The target the limiter's controller steered by at the end of the interval, ms: the
    /// configured one, or the adaptive controller's raised by the latency without elastic work.
    #[serde(default)]
    pub target_ms: Option<f64>,
    /// The share at which the adaptive controller last saw latency go over target, while it
    /// held the share under it or remembered it, at the end of the interval; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub knee: Option<f64>,
    /// p99 in this interval of the service's own latency the limiters steered by, ms: its
    /// hops' wake or spawn to poll (`--signal tasks`) or its requests' latency (`requests`);
    /// absent with the probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal_p99_ms: Option<f64>,
    /// The p99 of each part of the foreground's latency in this interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fg_parts_p99_ms: Option<LatencyPartsMs>,
}

impl DemoReport {
    /// Foreground p99 of `mode` against the baseline's, by the run's statistic.
    pub fn p99_vs_baseline(&self, mode: &ModeSummary) -> Option<Estimate> {
        mode.p99_vs_baseline.as_ref()?.by(&self.settings.statistic)
    }

    /// Uncontrolled's p99 over `mode`'s, by the run's statistic.
    pub fn lower_than_uncontrolled(&self, mode: &ModeSummary) -> Option<Estimate> {
        mode.lower_than_uncontrolled.as_ref()?.by(&self.settings.statistic)
    }

    /// The baseline against itself (A/A) by the run's statistic: the noise floor.
    pub fn noise_floor(&self) -> Option<Estimate> {
        self.noise.as_ref()?.by(&self.settings.statistic)
    }

    /// The run of mode `name` whose foreground p99 is the median of its runs (the lower middle
    /// one for an even count): the one whose time series the report draws.
    pub fn typical_run(&self, name: &str) -> Option<&ModeResult> {
        let mut runs: Vec<&ModeResult> = self.runs.iter().filter(|r| r.name == name).collect();
        runs.sort_by(|a, b| a.foreground.p99_ms.total_cmp(&b.foreground.p99_ms));
        runs.get(runs.len().saturating_sub(1) / 2).copied()
    }

    /// Each mode's typical run, in the order of the modes.
    pub fn typical_runs(&self) -> Vec<&ModeResult> {
        self.modes.iter().filter_map(|m| self.typical_run(&m.name)).collect()
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
mod tests {
    use super::fixtures::sample_report;
    use super::*;

    #[test]
    fn ratios_by_the_runs_statistic() {
        let mut report = sample_report();
        let elastic = &report.modes[2];
        assert_eq!(report.p99_vs_baseline(elastic).unwrap().median, 1.38);
        assert_eq!(report.lower_than_uncontrolled(elastic).map(|e| e.rounds), Some(2));
        report.settings.statistic = "window".into();
        let elastic = &report.modes[2];
        assert!(report.lower_than_uncontrolled(elastic).is_none(), "only the pooled ratio is filled in");
        assert_eq!(report.noise_floor().unwrap().median, 1.02);
    }

    #[test]
    fn typical_run_is_the_median_window() {
        let mut report = sample_report();
        report.runs[2].foreground.p99_ms = 5.0; // elastic, round 1
        report.runs[7].foreground.p99_ms = 1.0; // elastic, round 2
        assert_eq!(report.typical_run("elastic").unwrap().round, 2);
        assert_eq!(report.typical_runs().len(), 4);
        assert!(report.typical_run("os-priority").is_none());
    }

    #[test]
    fn estimates_render_with_their_interval() {
        let e = Estimate { median: 1.5, low: 1.2, high: 1.9, rounds: 5 };
        assert_eq!(e.render(|x| format!("{x:.1}")), "1.5 [1.2–1.9]");
        assert!(e.straddles(1.5) && e.straddles(1.8) && !e.straddles(2.0) && !e.straddles(1.2));
        let one = Estimate { median: 1.5, low: 1.5, high: 1.5, rounds: 1 };
        assert_eq!(one.render(|x| format!("{x:.1}")), "1.5");
    }

    #[test]
    fn json_round_trips() {
        let report = sample_report();
        let json = serde_json::to_string(&report).unwrap();
        let back: DemoReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.modes.len(), 4);
        assert_eq!(back.runs.len(), 10);
        assert_eq!(back.runs[2].series.len(), 10);
        assert_eq!(
            back.modes[2].p99_vs_baseline.as_ref().unwrap().window,
            report.modes[2].p99_vs_baseline.as_ref().unwrap().window
        );
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
