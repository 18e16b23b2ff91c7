//! The CPU capacity the CLI's runtimes and limiters are sized to.

use std::time::Duration;

use tailguard::budget::{CpuLimit, CpuLimitSource};

/// The elastic grant where no quota binds (DESIGN §5).
pub const DEFAULT_GRANT: Duration = Duration::from_millis(100);
/// The grant per core of a cgroup CPU quota: a tenth of the default CFS period (100 ms).
pub const GRANT_PER_QUOTA_CORE: Duration = Duration::from_millis(10);

/// The CPU capacity this process may use (affinity, cgroup quota, cpuset: the smallest), and
/// the limit that binds.
pub fn detect() -> CpuLimit {
    CpuLimit::detect()
}

/// Logs the capacity and where it came from.
pub fn log(limit: &CpuLimit) {
    tracing::info!(cores = limit.cores, source = %limit.source, "CPU capacity");
}

/// Threads to run on `cores` of capacity: one per whole core begun, at least one.
pub fn whole_cpus(cores: f64) -> usize {
    (cores.ceil() as usize).max(1)
}

/// The elastic grant when none is given: [`DEFAULT_GRANT`], or under a cgroup CPU quota a tenth
/// of the quota per period (`cores × 10 ms`, from 1 ms to [`DEFAULT_GRANT`]). A grant larger
/// than the quota left in a period spends it in one burst, and CFS then stalls every thread of
/// the cgroup, foreground included, until the next period: measured on a 0.5-core node at a
/// 5 % share, a foreground p99 spike every 4 s, one per 100 ms grant (docs/design-notes.md,
/// "A cluster run").
pub fn default_grant(limit: &CpuLimit) -> Duration {
    if is_quota(limit) {
        GRANT_PER_QUOTA_CORE.mul_f64(limit.cores).clamp(Duration::from_millis(1), DEFAULT_GRANT)
    } else {
        DEFAULT_GRANT
    }
}

/// The token bucket's fill under a cgroup CPU quota: a full bucket then holds
/// `share × cores × 10 ms`, never more than one quota grant ([`GRANT_PER_QUOTA_CORE`] per core).
pub const QUOTA_BURST: Duration = Duration::from_millis(10);

/// The bucket's fill when none is given: the library's default (100 ms at the share's rate),
/// or [`QUOTA_BURST`] under a cgroup CPU quota. A bucket left full between jobs is spent at
/// once when the next job starts, on top of the foreground: at a share of 0.4 of 0.5 cores,
/// 20 ms of CPU in the first period, which with the foreground's 20 ms reached the quota, and
/// CFS stalled the whole cgroup for 7–16 ms at the start of each backup (docs/design-notes.md,
/// "A cluster run").
pub fn default_burst(limit: &CpuLimit) -> Duration {
    if is_quota(limit) { QUOTA_BURST } else { tailguard::elastic::DEFAULT_BURST }
}

/// Whether the capacity is a cgroup CPU quota's.
fn is_quota(limit: &CpuLimit) -> bool {
    matches!(limit.source, CpuLimitSource::CgroupV1Quota { .. } | CpuLimitSource::CgroupV2Quota { .. })
}

/// The adaptive controller's quiet factor when none is given: 1.5, or 0 (off) under a cgroup
/// CPU quota. Without a quota the latency the machine has with no elastic work running is a
/// neighbour's doing (a host taking its cores away), which elastic work may not be blamed for;
/// under a quota it is the cgroup's own foreground reaching the quota, and raising the target
/// over it hands elastic work CPU the foreground needs: measured on a 0.5-core node, the share
/// climbed to 0.44 and the foreground p99 to 80× its baseline (docs/design-notes.md, "The
/// machine's own latency").
pub fn default_quiet_factor(limit: &CpuLimit) -> f64 {
    if is_quota(limit) { 0.0 } else { DEFAULT_QUIET_FACTOR }
}

/// The quiet factor where no quota binds (the library's default).
pub const DEFAULT_QUIET_FACTOR: f64 = 1.5;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn limit(cores: f64, source: CpuLimitSource) -> CpuLimit {
        CpuLimit { cores, host_cpus: 16, source }
    }

    #[test]
    fn a_quota_gets_a_tenth_of_itself_per_period() {
        let v1 = |cores| limit(cores, CpuLimitSource::CgroupV1Quota { path: PathBuf::from("/q") });
        assert_eq!(default_grant(&v1(0.5)), Duration::from_millis(5));
        assert_eq!(default_grant(&v1(2.0)), Duration::from_millis(20));
        assert_eq!(default_grant(&v1(0.05)), Duration::from_millis(1), "at least 1 ms");
        assert_eq!(default_grant(&v1(16.0)), DEFAULT_GRANT, "at most the default");
        let v2 = limit(1.5, CpuLimitSource::CgroupV2Quota { path: PathBuf::from("/q") });
        assert_eq!(default_grant(&v2), Duration::from_millis(15));
    }

    #[test]
    fn the_quiet_factor_is_off_under_a_quota() {
        let v1 = limit(0.5, CpuLimitSource::CgroupV1Quota { path: PathBuf::from("/q") });
        assert_eq!(default_quiet_factor(&v1), 0.0);
        let v2 = limit(1.5, CpuLimitSource::CgroupV2Quota { path: PathBuf::from("/q") });
        assert_eq!(default_quiet_factor(&v2), 0.0);
        assert_eq!(default_quiet_factor(&limit(2.0, CpuLimitSource::Affinity)), DEFAULT_QUIET_FACTOR);
        assert_eq!(DEFAULT_QUIET_FACTOR, tailguard::elastic::LimiterConfig::default().quiet_factor);
    }

    #[test]
    fn no_quota_the_default() {
        assert_eq!(default_grant(&limit(2.0, CpuLimitSource::Affinity)), DEFAULT_GRANT);
        let cpuset = limit(2.0, CpuLimitSource::Cpuset { path: PathBuf::from("/c") });
        assert_eq!(default_grant(&cpuset), DEFAULT_GRANT);
        assert_eq!(default_burst(&cpuset), tailguard::elastic::DEFAULT_BURST);
    }

    #[test]
    fn a_quota_s_bucket_holds_no_more_than_a_grant() {
        let v1 = limit(0.5, CpuLimitSource::CgroupV1Quota { path: PathBuf::from("/q") });
        assert_eq!(default_burst(&v1), QUOTA_BURST);
        // Full at the ceiling's rate, the bucket holds less than one grant of the quota.
        let full = QUOTA_BURST.mul_f64(0.75 * v1.cores);
        assert!(full <= default_grant(&v1), "{full:?}");
        let v2 = limit(1.5, CpuLimitSource::CgroupV2Quota { path: PathBuf::from("/q") });
        assert_eq!(default_burst(&v2), QUOTA_BURST);
    }
}
