//! The machine's idle CPU over a window, from `/proc/stat`.
//!
//! The elastic share of idle CPU divides by what the machine leaves idle while the foreground
//! runs alone (the baseline), measured, not inferred: the whole machine's idle time, over the
//! CPUs this process may run on, so that the load generator, the probe, the sampler and any
//! other process all count as busy.
//!
//! It also reads the *steal* time: on a virtual machine, time the hypervisor ran other guests
//! while this one had work. On the project's 2-core VMs it was 4–9 % of the CPU in 3 s spans of
//! one demo run, and it moves every latency the demo measures; the report shows it per window.

use std::path::Path;

/// Cumulative CPU time of the CPUs this process may run on, in clock ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks the CPUs spent idle (idle and waiting for I/O).
    pub idle: u64,
    /// Ticks the hypervisor gave to other guests while these CPUs had work (steal).
    pub steal: u64,
    /// Ticks in every state.
    pub total: u64,
}

impl CpuTimes {
    /// Reads `/proc/stat` for the CPUs in this process's affinity (all CPUs when
    /// `/proc/self/status` does not say); `None` where `/proc/stat` cannot be read.
    pub fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string(Path::new("/proc/stat")).ok()?;
        let allowed = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).map(parse_cpu_list)
            })
            .filter(|cpus| !cpus.is_empty());
        parse_stat(&stat, allowed.as_deref())
    }

    /// The idle fraction of the CPUs between `earlier` and `self`; `None` when no tick passed.
    pub fn idle_since(&self, earlier: &CpuTimes) -> Option<f64> {
        self.fraction_since(earlier, |t| t.idle)
    }

    /// The steal fraction of the CPUs between `earlier` and `self`; `None` when no tick passed.
    pub fn steal_since(&self, earlier: &CpuTimes) -> Option<f64> {
        self.fraction_since(earlier, |t| t.steal)
    }

    fn fraction_since(&self, earlier: &CpuTimes, part: fn(&CpuTimes) -> u64) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|&t| t > 0)?;
        let part = part(self).saturating_sub(part(earlier)).min(total);
        Some(part as f64 / total as f64)
    }
}

/// Sums the `cpuN` lines of `/proc/stat` whose N is in `allowed` (all of them for `None`).
fn parse_stat(stat: &str, allowed: Option<&[usize]>) -> Option<CpuTimes> {
    let mut times = CpuTimes::default();
    let mut seen = false;
    for line in stat.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(cpu) = fields.next().and_then(|name| name.strip_prefix("cpu")) else { continue };
        let Ok(index) = cpu.parse::<usize>() else { continue }; // the `cpu` total line
        if allowed.is_some_and(|allowed| !allowed.contains(&index)) {
            continue;
        }
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let ticks: Vec<u64> = fields.take(8).map_while(|f| f.parse().ok()).collect();
        if ticks.len() < 4 {
            return None;
        }
        times.idle += ticks[3] + ticks.get(4).copied().unwrap_or(0);
        times.steal += ticks.get(7).copied().unwrap_or(0);
        times.total += ticks.iter().sum::<u64>();
        seen = true;
    }
    seen.then_some(times)
}

/// Parses a CPU list such as `0-3,8,10-11`; malformed parts are skipped.
fn parse_cpu_list(list: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in list.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    cpus.extend(a..=b);
                }
            }
            None => cpus.extend(part.parse::<usize>().ok()),
        }
    }
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  300 0 100 1000 20 0 0 30 0 0\n\
                        cpu0 100 0 50 500 10 0 0 10 0 0\n\
                        cpu1 200 0 50 500 10 0 0 20 0 0\n\
                        intr 12345\nctxt 999\n";

    #[test]
    fn sums_the_allowed_cpus() {
        let all = parse_stat(STAT, None).unwrap();
        assert_eq!(all, CpuTimes { idle: 1020, steal: 30, total: 1450 });
        let one = parse_stat(STAT, Some(&[1])).unwrap();
        assert_eq!(one, CpuTimes { idle: 510, steal: 20, total: 780 });
        assert_eq!(parse_stat(STAT, Some(&[7])), None);
        assert_eq!(parse_stat("cpu0 1 2\n", None), None);
    }

    #[test]
    fn idle_fraction_over_a_window() {
        let before = CpuTimes { idle: 100, steal: 10, total: 200 };
        let after = CpuTimes { idle: 160, steal: 15, total: 300 };
        assert_eq!(after.idle_since(&before), Some(0.6));
        assert_eq!(after.steal_since(&before), Some(0.05));
        assert_eq!(before.idle_since(&before), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("1"), [1]);
        assert_eq!(parse_cpu_list("x,2"), [2]);
    }

    #[test]
    fn reads_this_machine() {
        // Linux has /proc/stat; elsewhere the demo falls back to the process's own CPU.
        if cfg!(target_os = "linux") {
            let times = CpuTimes::now().expect("/proc/stat is readable on Linux");
            assert!(times.total >= times.idle && times.total > 0);
        }
    }
}
