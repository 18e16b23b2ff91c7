//! The CPU capacity the CLI's runtimes and limiters are sized to.

use tailguard::budget::CpuLimit;

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
