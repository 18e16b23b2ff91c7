//! Time a cgroup CPU quota throttled this process, counted as scheduling delay.
//!
//! Under a CFS quota (v1 `cpu.cfs_quota_us`, v2 `cpu.max`), a cgroup that has used its quota
//! for the period is throttled: none of its threads runs until the next period begins, up to a
//! whole period (100 ms by default) later. A probe inside the cgroup cannot see it — the thread
//! that stamps the wake and the task that records the delay are stopped together, and the probe
//! resumes on time as seen from inside. Measured in a `tailguard cluster` run, a 0.5-core node
//! on a CPU of its own: the probe's p99 stayed at 0.4–0.6 ms while its foreground p99 rose
//! from 1.7 ms to 27–41 ms, and the share climbed to 0.5.
//!
//! [`CgroupThrottle`] reads the quota cgroup's `cpu.stat` (`nr_throttled`, and v1's
//! `throttled_time` in ns or v2's `throttled_usec`) and records what a probe outside the
//! cgroup, firing every `period`, would have recorded: for each throttled stretch of length
//! `s` (the throttled time over the throttled periods, at most one CFS period), samples of
//! `period`, `2 × period`, … up to `s`. A few short stretches a second add a few samples
//! among a thousand and move no p99; a stretch in every period lifts it to tens of ms.
//!
//! The runtime probe reads it about every 100 ms (one file read, a few µs) when
//! [`ProbeConfig::count_throttling`](super::ProbeConfig::count_throttling) is on, as it is by
//! default.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::budget::{CpuLimit, CpuLimitSource};
use crate::clock::duration_nanos;
use crate::histogram::WindowedHistogram;

/// CFS period assumed when the cgroup's cannot be read (the kernel's default).
const DEFAULT_CFS_PERIOD: Duration = Duration::from_millis(100);
/// Most samples one read records: a bound on the work of a read after a long gap.
const MAX_SAMPLES_PER_READ: u64 = 10_000;

/// Running totals of a cgroup's `cpu.stat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThrottleStat {
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Time it was throttled, nanoseconds (summed over CPUs by the kernel).
    pub throttled_nanos: u64,
}

impl ThrottleStat {
    /// Parses `cpu.stat` of cgroup v1 (`throttled_time`, ns) or v2 (`throttled_usec`).
    pub fn parse(text: &str) -> Option<ThrottleStat> {
        let mut periods = None;
        let mut nanos = None;
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(key), Some(value)) = (fields.next(), fields.next()) else { continue };
            let Ok(value) = value.parse::<u64>() else { continue };
            match key {
                "nr_throttled" => periods = Some(value),
                "throttled_time" => nanos = Some(value),
                "throttled_usec" => nanos = Some(value.saturating_mul(1_000)),
                _ => {}
            }
        }
        Some(ThrottleStat { throttled_periods: periods?, throttled_nanos: nanos? })
    }
}

/// Reads a quota cgroup's throttling and records it into a latency window.
#[derive(Debug)]
pub struct CgroupThrottle {
    stat: PathBuf,
    cfs_period: Duration,
    last: Option<ThrottleStat>,
}

impl CgroupThrottle {
    /// A reader for the cgroup whose quota binds this process, if a quota does.
    pub fn detect() -> Option<CgroupThrottle> {
        Self::for_limit(&CpuLimit::detect())
    }

    /// A reader for the cgroup whose quota `limit` names; `None` when no quota binds.
    pub fn for_limit(limit: &CpuLimit) -> Option<CgroupThrottle> {
        let (CpuLimitSource::CgroupV1Quota { path } | CpuLimitSource::CgroupV2Quota { path }) = &limit.source
        else {
            return None;
        };
        let cfs_period = limit.source.quota_period().unwrap_or(DEFAULT_CFS_PERIOD);
        Some(CgroupThrottle { stat: path.join("cpu.stat"), cfs_period, last: None })
    }

    /// The `cpu.stat` file read.
    pub fn stat_path(&self) -> &Path {
        &self.stat
    }

    /// Reads `cpu.stat` and records the throttling since the last read into `window`, as a
    /// probe outside the cgroup firing every `period` would have seen it; returns the samples
    /// recorded (`None` when the file cannot be read). The first read only sets the baseline.
    pub fn record(&mut self, window: &WindowedHistogram, period: Duration) -> Option<u64> {
        let now = ThrottleStat::parse(&std::fs::read_to_string(&self.stat).ok()?)?;
        Some(self.record_stat(now, window, period))
    }

    /// [`record`](Self::record) from a reading already taken.
    pub fn record_stat(&mut self, now: ThrottleStat, window: &WindowedHistogram, period: Duration) -> u64 {
        let Some(last) = self.last.replace(now) else { return 0 };
        let delays = stall_delays(last, now, self.cfs_period, period);
        let mut recorded = 0;
        for (delay, times) in delays {
            for _ in 0..times {
                window.record_nanos(delay);
            }
            recorded += times;
        }
        recorded
    }
}

/// The delays a probe firing every `period` outside the cgroup would have recorded over the
/// throttling from `last` to `now`, as `(delay ns, how many)`: for each throttled stretch
/// (the mean length, at most `cfs_period`), one sample at each multiple of `period` within it.
fn stall_delays(
    last: ThrottleStat,
    now: ThrottleStat,
    cfs_period: Duration,
    period: Duration,
) -> Vec<(u64, u64)> {
    let stretches = now.throttled_periods.saturating_sub(last.throttled_periods);
    let nanos = now.throttled_nanos.saturating_sub(last.throttled_nanos);
    let period = duration_nanos(period).max(1);
    if stretches == 0 || nanos == 0 {
        return Vec::new();
    }
    let stretch = (nanos / stretches).min(duration_nanos(cfs_period));
    let per_stretch = stretch / period;
    if per_stretch == 0 {
        return Vec::new();
    }
    // Each stretch gives the same samples; bound the total a read records.
    let stretches = stretches.min(MAX_SAMPLES_PER_READ / per_stretch).max(1);
    (1..=per_stretch.min(MAX_SAMPLES_PER_READ)).map(|k| (k * period, stretches)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::histogram::WindowConfig;

    const V1: &str = "nr_periods 120\nnr_throttled 7\nthrottled_time 210000000\n";
    const V2: &str = "usage_usec 8000\nuser_usec 5000\nsystem_usec 3000\nnr_periods 50\nnr_throttled 3\n\
                      throttled_usec 90000\nnr_bursts 0\nburst_usec 0\n";

    #[test]
    fn parses_v1_and_v2() {
        assert_eq!(
            ThrottleStat::parse(V1),
            Some(ThrottleStat { throttled_periods: 7, throttled_nanos: 210_000_000 })
        );
        assert_eq!(
            ThrottleStat::parse(V2),
            Some(ThrottleStat { throttled_periods: 3, throttled_nanos: 90_000_000 })
        );
        assert_eq!(ThrottleStat::parse("nr_periods 3\n"), None);
        assert_eq!(ThrottleStat::parse("nr_throttled x\nthrottled_time 5\n"), None);
    }

    #[test]
    fn a_stretch_becomes_what_an_outside_probe_would_have_recorded() {
        let ms = Duration::from_millis(1);
        let last = ThrottleStat { throttled_periods: 10, throttled_nanos: 1_000_000_000 };
        // Two stretches of 3.5 ms: samples at 1, 2 and 3 ms, twice each.
        let now = ThrottleStat { throttled_periods: 12, throttled_nanos: 1_007_000_000 };
        assert_eq!(
            stall_delays(last, now, Duration::from_millis(100), ms),
            [(1_000_000, 2), (2_000_000, 2), (3_000_000, 2)]
        );
        // No throttling, or stretches shorter than a period: nothing.
        assert!(stall_delays(last, last, Duration::from_millis(100), ms).is_empty());
        let short = ThrottleStat { throttled_periods: 12, throttled_nanos: 1_001_000_000 };
        assert!(stall_delays(last, short, Duration::from_millis(100), ms).is_empty());
        // A stretch is at most a CFS period, however the kernel summed it over CPUs.
        let long = ThrottleStat { throttled_periods: 11, throttled_nanos: 1_500_000_000 };
        let delays = stall_delays(last, long, Duration::from_millis(100), ms);
        assert_eq!(delays.len(), 100);
        assert_eq!(delays.last(), Some(&(100_000_000, 1)));
    }

    #[test]
    fn records_into_the_window_from_the_second_reading_on() {
        let window = WindowedHistogram::new(WindowConfig::DEFAULT).unwrap();
        let dir = std::env::temp_dir().join(format!("tailguard-throttle-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cpu.cfs_period_us"), "100000\n").unwrap();
        let stat = dir.join("cpu.stat");
        std::fs::write(&stat, V1).unwrap();
        let limit = CpuLimit {
            cores: 0.5,
            host_cpus: 2,
            source: CpuLimitSource::CgroupV1Quota { path: dir.clone() },
        };
        let mut throttle = CgroupThrottle::for_limit(&limit).unwrap();
        let ms = Duration::from_millis(1);
        assert_eq!(throttle.record(&window, ms), Some(0));
        // One more stretch of 30 ms.
        std::fs::write(&stat, "nr_periods 121\nnr_throttled 8\nthrottled_time 240000000\n").unwrap();
        assert_eq!(throttle.record(&window, ms), Some(30));
        let snapshot = window.snapshot().histogram;
        assert_eq!(snapshot.count(), 30);
        let p99 = snapshot.quantile(0.99).unwrap().unwrap();
        assert!(p99 >= Duration::from_millis(29), "{p99:?}");
        std::fs::remove_file(&stat).unwrap();
        assert_eq!(throttle.record(&window, ms), None);
        // A v2 quota's period is cpu.max's second field.
        std::fs::write(dir.join("cpu.max"), "50000 200000\n").unwrap();
        let v2 = CpuLimit { source: CpuLimitSource::CgroupV2Quota { path: dir.clone() }, ..limit };
        assert_eq!(CgroupThrottle::for_limit(&v2).unwrap().cfs_period, Duration::from_millis(200));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_a_quota_gives_a_reader() {
        let quota = |source| CpuLimit { cores: 0.5, host_cpus: 2, source };
        let dir = PathBuf::from("/sys/fs/cgroup/x");
        let v1 = CgroupThrottle::for_limit(&quota(CpuLimitSource::CgroupV1Quota { path: dir.clone() }));
        assert_eq!(v1.map(|t| t.stat), Some(dir.join("cpu.stat")));
        let v2 = CgroupThrottle::for_limit(&quota(CpuLimitSource::CgroupV2Quota { path: dir.clone() }));
        assert_eq!(v2.map(|t| t.cfs_period), Some(DEFAULT_CFS_PERIOD));
        assert!(CgroupThrottle::for_limit(&quota(CpuLimitSource::Affinity)).is_none());
        assert!(CgroupThrottle::for_limit(&quota(CpuLimitSource::Cpuset { path: dir })).is_none());
    }
}
