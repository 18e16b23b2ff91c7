//! A utilisation peer: the elastic share set from CPU *utilisation*, not from latency.
//!
//! This is the rule of the nearest prior art in Rust, TiKV's resource control, which limits its
//! background tasks by what the foreground leaves free (`components/resource_control/src/worker.rs`,
//! `GroupQuotaAdjustWorker::do_adjust`, with `BACKGROUND_LIMIT_ADJUST_DURATION`). tailguard
//! ships it as [`ControllerKind::Utilization`](super::ControllerKind::Utilization) so that the
//! demo can run it in the same rounds as its own controllers and report both side by side: a
//! peer for comparison, not a controller we recommend.
//!
//! # The rule
//!
//! Every `period` (default [`DEFAULT_PERIOD`], 10 s; never shorter than [`MIN_PERIOD`], 1 s):
//!
//! ```text
//! capacity   = cores                                  (CPU-seconds per second)
//! background = CPU used by the limiter's grants over the period / period
//! foreground = max(CPU busy over the period / period - background, 0)
//! limit      = max((capacity - foreground) * HEADROOM, capacity * MIN_SHARE)
//!            = max((capacity - busy + background) * 0.8, capacity * 0.10)
//! share      = limit / cores, held within the limiter's [floor, ceiling]
//! ```
//!
//! Between adjustments the share holds; the first period starts at the limiter's first tick. "Busy" comes from a [`CpuUsage`] source: by default the
//! process's own CPU time ([`ProcessCpu`], as TiKV reads its process's CPU), or anything that
//! counts CPU-seconds so far (a machine's `/proc/stat`, a fake in tests). Background use is the
//! CPU the limiter's settled grants used (`LimiterSnapshot::total_used`), so work still holding a
//! grant at the period's end is counted in the next period.
//!
//! Differences from TiKV, none of which change the rule: TiKV skips an adjustment while the
//! process is below 10 % of its quota for two periods in a row (a cost saving; the limit
//! holds); TiKV starts a background group unlimited, this peer at the limiter's initial share
//! (the inactive point by default) until its first period ends; the share is bounded by the
//! limiter's floor and ceiling, like every other controller's. The period is counted in ticks of
//! the limiter's clock, so tests run it on a [`ManualClock`](crate::clock::ManualClock).
//!
//! The rule never reads latency: it leaves the foreground a fifth of what it does not use, and
//! whether that keeps the foreground's tail safe depends on how bursty the foreground is within
//! the period. The demo's `utilization` mode measures exactly that.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::process_cpu_time;

/// How often the share is re-adjusted by default: TiKV's `BACKGROUND_LIMIT_ADJUST_DURATION`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// Shortest period: TiKV skips an adjustment that comes less than 1 s after the last one.
pub const MIN_PERIOD: Duration = Duration::from_secs(1);
/// Fraction of the free CPU given to background work: TiKV reserves 20 % of it for foreground
/// growth.
pub const HEADROOM: f64 = 0.8;
/// Lowest limit, as a fraction of capacity: TiKV never sets the background limit below 10 %.
pub const MIN_SHARE: f64 = 0.10;

/// A source of "CPU busy time so far": CPU-nanoseconds used, summed over all cores,
/// monotonically increasing (a process's CPU time, or a machine's busy time).
pub trait CpuUsage: Send + Sync + 'static {
    /// CPU-nanoseconds used so far; `None` when it cannot be read now (the share then holds).
    fn busy_nanos(&self) -> Option<u64>;
}

/// Any `Fn() -> Option<u64>` is a source (e.g. a closure over a counter in tests).
impl<F> CpuUsage for F
where
    F: Fn() -> Option<u64> + Send + Sync + 'static,
{
    fn busy_nanos(&self) -> Option<u64> {
        self()
    }
}

/// The process's own CPU time, all threads ([`process_cpu_time`]): what TiKV reads. One
/// `clock_gettime` per read (about a microsecond), once per limiter tick.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessCpu;

impl CpuUsage for ProcessCpu {
    fn busy_nanos(&self) -> Option<u64> {
        u64::try_from(process_cpu_time().as_nanos()).ok()
    }
}

impl ProcessCpu {
    /// The process's CPU as a shared source, the default of
    /// [`LimiterBuilder::cpu_usage`](super::LimiterBuilder::cpu_usage).
    pub fn shared() -> Arc<dyn CpuUsage> {
        Arc::new(ProcessCpu)
    }
}

/// CPU totals read at one tick: what the source counts as busy and what the limiter's grants
/// used, both since some fixed origin, in CPU-nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuReading {
    /// CPU busy so far, by the [`CpuUsage`] source (foreground and background together).
    pub busy_nanos: u64,
    /// CPU used by the limiter's settled grants so far (background).
    pub elastic_nanos: u64,
}

/// The rule's state: the reading at the last adjustment and the time since.
#[derive(Clone, Debug)]
pub struct UtilizationRule {
    period: Duration,
    cores: f64,
    floor: f64,
    ceiling: f64,
    /// The reading the current period counts from; `None` until the first reading.
    since: Option<CpuReading>,
    /// Wall time since `since` was read.
    elapsed: Duration,
}

impl UtilizationRule {
    /// The rule for `cores` and the limiter's share bounds, re-adjusting every `period`
    /// (raised to [`MIN_PERIOD`] if shorter).
    pub fn new(period: Duration, cores: f64, floor: f64, ceiling: f64) -> Self {
        UtilizationRule {
            period: period.max(MIN_PERIOD),
            cores,
            floor,
            ceiling,
            since: None,
            elapsed: Duration::ZERO,
        }
    }

    /// The period in force (after the clamp).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// One limiter tick: `elapsed` wall time passed and `reading` was taken now (`None`: the
    /// source could not be read). Returns the share: `share` held, or the rule's new share
    /// once a period has passed since the last adjustment.
    pub fn tick(&mut self, share: f64, elapsed: Duration, reading: Option<CpuReading>) -> f64 {
        let Some(since) = self.since else {
            // The first reading starts the first period.
            self.since = reading;
            return share;
        };
        self.elapsed += elapsed;
        let Some(now) = reading.filter(|_| self.elapsed >= self.period) else { return share };
        let secs = self.elapsed.as_secs_f64();
        self.since = Some(now);
        self.elapsed = Duration::ZERO;
        let rate = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9 / secs;
        let busy = rate(since.busy_nanos, now.busy_nanos);
        let background = rate(since.elastic_nanos, now.elastic_nanos);
        self.share_for(busy, background)
    }

    /// The share for a period in which `busy` cores were used in all, `background` of them by
    /// the limiter's grants.
    pub fn share_for(&self, busy: f64, background: f64) -> f64 {
        let capacity = self.cores;
        let foreground = (busy - background).max(0.0);
        let limit = ((capacity - foreground) * HEADROOM).max(capacity * MIN_SHARE);
        // `limit / cores` is at least MIN_SHARE; the limiter's bounds come last (a ceiling under
        // 10 % wins).
        (limit / self.cores).max(self.floor).min(self.ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(100);

    fn reading(busy_secs: f64, elastic_secs: f64) -> Option<CpuReading> {
        Some(CpuReading { busy_nanos: (busy_secs * 1e9) as u64, elastic_nanos: (elastic_secs * 1e9) as u64 })
    }

    /// Ticks of 100 ms as a table: (busy cores, background cores) used during the tick, and the
    /// share expected after it. A rule on 4 cores, bounds 5 %..75 %, period 1 s.
    fn run_table(period: Duration, table: &[(f64, f64, f64)]) {
        let mut rule = UtilizationRule::new(period, 4.0, 0.05, 0.75);
        let (mut busy, mut elastic, mut share) = (0.0, 0.0, 0.12);
        share = rule.tick(share, Duration::ZERO, reading(busy, elastic));
        for (i, &(busy_cores, background_cores, expected)) in table.iter().enumerate() {
            busy += busy_cores * TICK.as_secs_f64();
            elastic += background_cores * TICK.as_secs_f64();
            share = rule.tick(share, TICK, reading(busy, elastic));
            assert!((share - expected).abs() < 1e-9, "tick {i}: share {share} != {expected}");
        }
    }

    #[test]
    fn the_share_follows_the_rule_once_per_period_and_holds_between() {
        // 4 cores; 1.0 core foreground + 0.5 background: limit (4 - 1.5 + 0.5) * 0.8 = 2.4,
        // share 0.6. It holds for nine ticks, then the tenth ends the period.
        let mut table = vec![(1.5, 0.5, 0.12); 9];
        table.push((1.5, 0.5, 0.6));
        // Next period: foreground 2.0 cores, background 1.0: (4 - 3 + 1) * 0.8 = 1.6 -> 0.4.
        table.extend([(3.0, 1.0, 0.6); 9]);
        table.push((3.0, 1.0, 0.4));
        run_table(Duration::from_secs(1), &table);
    }

    #[test]
    fn the_share_never_falls_below_ten_percent_nor_leaves_the_bounds() {
        let rule = UtilizationRule::new(DEFAULT_PERIOD, 4.0, 0.05, 0.75);
        // Foreground uses the whole machine: (4 - 4) * 0.8 = 0, raised to 10 % of capacity.
        assert!((rule.share_for(4.0, 0.0) - MIN_SHARE).abs() < 1e-12);
        // Even a foreground reading over capacity (a machine source, steal).
        assert!((rule.share_for(6.0, 0.0) - MIN_SHARE).abs() < 1e-12);
        // An idle machine: (4 - 0) * 0.8 = 3.2 cores = 80 %, held to the ceiling.
        assert_eq!(rule.share_for(0.0, 0.0), 0.75);
        // Background counted more than busy (a source that misses the limiter's threads):
        // no negative foreground.
        assert_eq!(rule.share_for(0.5, 1.0), 0.75);
        // A floor above 10 % binds.
        let high_floor = UtilizationRule::new(DEFAULT_PERIOD, 4.0, 0.2, 0.75);
        assert!((high_floor.share_for(4.0, 0.0) - 0.2).abs() < 1e-12);
    }

    #[test]
    fn the_period_is_never_shorter_than_one_second() {
        let rule = UtilizationRule::new(Duration::from_millis(200), 4.0, 0.05, 0.75);
        assert_eq!(rule.period(), MIN_PERIOD);
        assert_eq!(
            UtilizationRule::new(Duration::from_secs(30), 4.0, 0.05, 0.75).period(),
            Duration::from_secs(30)
        );
        // Asked for 200 ms, it still holds for 1 s (ten 100 ms ticks).
        let mut table = vec![(2.0, 0.0, 0.12); 9];
        table.push((2.0, 0.0, 0.4)); // (4 - 2) * 0.8 = 1.6 cores
        run_table(Duration::from_millis(200), &table);
    }

    #[test]
    fn an_unreadable_source_holds_the_share_and_the_period_goes_on() {
        let mut rule = UtilizationRule::new(MIN_PERIOD, 2.0, 0.05, 0.75);
        assert_eq!(rule.tick(0.3, Duration::ZERO, None), 0.3);
        // Starts counting from its first reading.
        assert_eq!(rule.tick(0.3, TICK, reading(0.0, 0.0)), 0.3);
        for _ in 0..9 {
            assert_eq!(rule.tick(0.3, TICK, None), 0.3);
        }
        // 1 s since the first reading (ten ticks), 1 CPU-s busy of which 0.5 background: 0.5
        // core foreground, (2 - 0.5) * 0.8 = 1.2 cores = 60 %.
        let share = rule.tick(0.3, TICK, reading(1.0, 0.5));
        assert!((share - 0.6).abs() < 1e-9, "{share}");
    }
}
