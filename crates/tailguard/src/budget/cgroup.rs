//! The CPU capacity this process may really use: the CPUs it may run on, a cgroup CPU quota
//! (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) and a cpuset, whichever is
//! smallest, as a fraction of cores.
//!
//! `std::thread::available_parallelism` rounds a fractional quota down to whole CPUs (a
//! container limited to 1500m reads as 1) and ignores a quota it cannot read, so a token bucket
//! filled at share × cores would hand out a third less CPU than the container may use, or more
//! than it may. [`CpuLimit::detect`] reads the limits themselves, walks the cgroup hierarchy
//! up to the root of its mount (a parent's quota binds its children too), takes the smallest,
//! and says which source won.
//!
//! ```
//! use tailguard::budget::CpuLimit;
//!
//! let limit = CpuLimit::detect();
//! assert!(limit.cores > 0.0 && limit.cores <= limit.host_cpus as f64);
//! println!("{:.2} cores ({})", limit.cores, limit.source);
//! ```
//!
//! Reading costs a few file reads (~tens of µs); it happens once, when a limiter's
//! configuration is built.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The CPU capacity this process may use, and where the figure came from.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuLimit {
    /// Cores, possibly fractional (a 1500m quota is 1.5).
    pub cores: f64,
    /// CPUs the process may run on (its affinity mask), the ceiling of every other source.
    pub host_cpus: usize,
    /// Which limit is the smallest.
    pub source: CpuLimitSource,
}

/// Which limit bounds the CPU capacity.
#[derive(Clone, Debug, PartialEq)]
pub enum CpuLimitSource {
    /// The CPUs of the affinity mask: no cgroup limit is smaller (or none could be read).
    Affinity,
    /// A cgroup v2 `cpu.max` quota, in the directory named.
    CgroupV2Quota {
        /// The cgroup directory whose `cpu.max` binds.
        path: PathBuf,
    },
    /// A cgroup v1 CFS quota (`cpu.cfs_quota_us` over `cpu.cfs_period_us`), in the directory
    /// named.
    CgroupV1Quota {
        /// The cgroup directory whose quota binds.
        path: PathBuf,
    },
    /// The CPUs of the cgroup's cpuset.
    Cpuset {
        /// The cgroup directory whose cpuset binds.
        path: PathBuf,
    },
    /// Nothing could be read: `available_parallelism`, or 1.
    Fallback {
        /// Why the limits could not be read.
        reason: String,
    },
}

impl fmt::Display for CpuLimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuLimitSource::Affinity => f.write_str("the CPUs of the affinity mask"),
            CpuLimitSource::CgroupV2Quota { path } => write!(f, "cgroup v2 cpu.max in {}", path.display()),
            CpuLimitSource::CgroupV1Quota { path } => write!(f, "cgroup v1 CFS quota in {}", path.display()),
            CpuLimitSource::Cpuset { path } => write!(f, "the cpuset of {}", path.display()),
            CpuLimitSource::Fallback { reason } => write!(f, "available parallelism ({reason})"),
        }
    }
}

impl CpuLimitSource {
    /// The CFS period of the quota this source names (v2 `cpu.max`'s second field, v1
    /// `cpu.cfs_period_us`); `None` for other sources or when it cannot be read.
    pub fn quota_period(&self) -> Option<Duration> {
        let micros = match self {
            CpuLimitSource::CgroupV2Quota { path } => {
                read(path, "cpu.max")?.split_whitespace().nth(1)?.parse::<u64>().ok()?
            }
            CpuLimitSource::CgroupV1Quota { path } => {
                read(path, "cpu.cfs_period_us")?.trim().parse::<u64>().ok()?
            }
            _ => return None,
        };
        (micros > 0).then(|| Duration::from_micros(micros))
    }
}

impl CpuLimit {
    /// Reads this process's limits from `/proc` and the cgroup file systems.
    pub fn detect() -> CpuLimit {
        Self::detect_in(Path::new("/"))
    }

    /// Reads the limits from a tree rooted at `root` (`proc/self/status`, `proc/self/cgroup`,
    /// `proc/self/mountinfo`, and the mount points they name under `root`): the real one is
    /// `/`; tests pass fixture trees.
    pub fn detect_in(root: &Path) -> CpuLimit {
        let status = read(root, "proc/self/status");
        let host_cpus = status
            .as_deref()
            .and_then(|status| status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")))
            .map(count_cpu_list)
            .filter(|&n| n > 0);
        let Some(host_cpus) = host_cpus else {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            return CpuLimit {
                cores: cpus as f64,
                host_cpus: cpus,
                source: CpuLimitSource::Fallback { reason: "no affinity list in /proc/self/status".into() },
            };
        };
        let mut limit = CpuLimit { cores: host_cpus as f64, host_cpus, source: CpuLimitSource::Affinity };
        let (Some(cgroups), Some(mounts)) =
            (read(root, "proc/self/cgroup"), read(root, "proc/self/mountinfo"))
        else {
            return limit;
        };
        for (cores, source) in cgroup_limits(root, &cgroups, &mounts) {
            if cores > 0.0 && cores < limit.cores {
                limit.cores = cores;
                limit.source = source;
            }
        }
        limit
    }
}

/// Every CPU limit the cgroups of this process set: quotas up the hierarchy, and cpusets.
fn cgroup_limits(root: &Path, cgroups: &str, mounts: &str) -> Vec<(f64, CpuLimitSource)> {
    let mounts: Vec<Mount> = mounts.lines().filter_map(Mount::parse).collect();
    let mut limits = Vec::new();
    for (id, controllers, path) in cgroups.lines().filter_map(cgroup_line) {
        let controllers: Vec<&str> = controllers.split(',').collect();
        if id == "0" && controllers == [""] {
            let Some(mount) = mounts.iter().find(|m| m.fs_type == "cgroup2") else { continue };
            let Some(dir) = mount.dir_of(root, path) else { continue };
            for level in mount.levels(root, &dir) {
                if let Some(cores) = read(&level, "cpu.max").as_deref().and_then(parse_cpu_max) {
                    limits.push((cores, CpuLimitSource::CgroupV2Quota { path: mount.shown(root, &level) }));
                }
            }
            if let Some(cpus) = read(&dir, "cpuset.cpus.effective").map(|list| count_cpu_list(&list)) {
                limits.push((cpus as f64, CpuLimitSource::Cpuset { path: mount.shown(root, &dir) }));
            }
            continue;
        }
        for controller in ["cpu", "cpuset"] {
            if !controllers.contains(&controller) {
                continue;
            }
            let Some(mount) = mounts.iter().find(|m| m.fs_type == "cgroup" && m.has_option(controller))
            else {
                continue;
            };
            let Some(dir) = mount.dir_of(root, path) else { continue };
            if controller == "cpu" {
                for level in mount.levels(root, &dir) {
                    let quota = read(&level, "cpu.cfs_quota_us").and_then(|q| q.trim().parse::<i64>().ok());
                    let period = read(&level, "cpu.cfs_period_us").and_then(|p| p.trim().parse::<i64>().ok());
                    if let (Some(quota), Some(period)) = (quota, period) {
                        if quota > 0 && period > 0 {
                            let path = mount.shown(root, &level);
                            limits
                                .push((quota as f64 / period as f64, CpuLimitSource::CgroupV1Quota { path }));
                        }
                    }
                }
            } else {
                let cpus = read(&dir, "cpuset.effective_cpus").or_else(|| read(&dir, "cpuset.cpus"));
                if let Some(cpus) = cpus.map(|list| count_cpu_list(&list)).filter(|&n| n > 0) {
                    limits.push((cpus as f64, CpuLimitSource::Cpuset { path: mount.shown(root, &dir) }));
                }
            }
        }
    }
    limits
}

/// One line of `/proc/self/cgroup`: `hierarchy-id:controllers:path`.
pub(super) fn cgroup_line(line: &str) -> Option<(&str, &str, &str)> {
    let mut fields = line.splitn(3, ':');
    Some((fields.next()?, fields.next()?, fields.next()?))
}

/// A cgroup mount from `/proc/self/mountinfo`.
#[derive(Debug)]
pub(super) struct Mount {
    /// The path within the cgroup hierarchy that is mounted (not `/` inside some containers).
    root: String,
    /// Where it is mounted.
    point: String,
    pub(super) fs_type: String,
    super_options: String,
}

impl Mount {
    /// `id parent major:minor root point options [optional...] - type source super-options`.
    pub(super) fn parse(line: &str) -> Option<Mount> {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split_whitespace().collect();
        let mut after = after.split_whitespace();
        let fs_type = after.next()?.to_owned();
        if fs_type != "cgroup" && fs_type != "cgroup2" {
            return None;
        }
        let _source = after.next();
        Some(Mount {
            root: unescape((*fields.get(3)?).to_owned()),
            point: unescape((*fields.get(4)?).to_owned()),
            fs_type,
            super_options: after.next().unwrap_or("").to_owned(),
        })
    }

    pub(super) fn has_option(&self, option: &str) -> bool {
        self.super_options.split(',').any(|o| o == option)
    }

    /// The directory of cgroup `path` under this mount, below `root`.
    pub(super) fn dir_of(&self, root: &Path, path: &str) -> Option<PathBuf> {
        // Inside a container the mount's root may be the container's own cgroup: the path is
        // then given relative to it (or is the root itself).
        let relative = path.strip_prefix(self.root.as_str()).unwrap_or(path);
        let mut dir = root.join(self.point.trim_start_matches('/'));
        for part in relative.split('/').filter(|p| !p.is_empty() && *p != "." && *p != "..") {
            dir.push(part);
        }
        dir.is_dir().then_some(dir)
    }

    /// `dir` and each parent up to the mount point: a parent's quota binds its children.
    fn levels(&self, root: &Path, dir: &Path) -> Vec<PathBuf> {
        let top = root.join(self.point.trim_start_matches('/'));
        let mut levels = Vec::new();
        let mut level = Some(dir);
        while let Some(current) = level {
            levels.push(current.to_path_buf());
            if current == top {
                break;
            }
            level = current.parent().filter(|parent| parent.starts_with(&top));
        }
        levels
    }

    /// `path` as the process sees it (without a fixture tree's root).
    pub(super) fn shown(&self, root: &Path, path: &Path) -> PathBuf {
        path.strip_prefix(root).map_or_else(|_| path.to_path_buf(), |relative| Path::new("/").join(relative))
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(text: String) -> String {
    if !text.contains('\\') {
        return text;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            std::str::from_utf8(digits).ok().and_then(|digits| u8::from_str_radix(digits, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `quota period` of a v2 `cpu.max` as cores; `None` for `max` (no quota) or malformed input.
fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota: f64 = fields.next()?.parse().ok()?; // "max" does not parse: no quota
    let period: f64 = fields.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// CPUs in a list such as `0-3,8,10-11`; malformed parts count nothing.
fn count_cpu_list(list: &str) -> usize {
    list.trim()
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(part.parse::<usize>().is_ok()),
        })
        .sum()
}

/// Reads `dir/name` as text, if it exists.
pub(super) fn read(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(case: &str) -> CpuLimit {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cgroup").join(case);
        assert!(root.is_dir(), "fixture {case} exists");
        CpuLimit::detect_in(&root)
    }

    #[test]
    fn v2_fractional_quota() {
        let limit = fixture("v2-fractional");
        assert_eq!(limit.host_cpus, 4);
        assert!((limit.cores - 1.5).abs() < 1e-12, "{limit:?}");
        assert_eq!(
            limit.source,
            CpuLimitSource::CgroupV2Quota { path: "/sys/fs/cgroup/kubepods/pod1".into() }
        );
    }

    #[test]
    fn v2_a_parents_quota_binds_its_child() {
        let limit = fixture("v2-nested");
        assert!((limit.cores - 0.5).abs() < 1e-12, "{limit:?}");
        assert_eq!(limit.source, CpuLimitSource::CgroupV2Quota { path: "/sys/fs/cgroup/batch".into() });
    }

    #[test]
    fn v2_max_leaves_the_cpuset() {
        let limit = fixture("v2-max-cpuset");
        assert_eq!(limit.cores, 2.0);
        assert_eq!(limit.source, CpuLimitSource::Cpuset { path: "/sys/fs/cgroup/app".into() });
    }

    #[test]
    fn v1_quota_in_a_container_whose_mount_root_is_its_own_cgroup() {
        let limit = fixture("v1-container");
        assert_eq!(limit.host_cpus, 8);
        assert!((limit.cores - 2.5).abs() < 1e-12, "{limit:?}");
        assert_eq!(limit.source, CpuLimitSource::CgroupV1Quota { path: "/sys/fs/cgroup/cpu,cpuacct".into() });
    }

    #[test]
    fn v1_unlimited_quota_leaves_the_cpuset() {
        let limit = fixture("v1-cpuset");
        assert_eq!(limit.cores, 2.0);
        assert!(matches!(limit.source, CpuLimitSource::Cpuset { .. }), "{limit:?}");
    }

    #[test]
    fn no_cgroup_files_leave_the_affinity_mask() {
        let limit = fixture("none");
        assert_eq!((limit.cores, limit.host_cpus), (3.0, 3));
        assert_eq!(limit.source, CpuLimitSource::Affinity);
        assert_eq!(limit.source.to_string(), "the CPUs of the affinity mask");
    }

    #[test]
    fn nothing_readable_falls_back_clearly() {
        let limit = CpuLimit::detect_in(Path::new("/nonexistent-tailguard-root"));
        assert!(limit.cores >= 1.0);
        assert!(limit.source.to_string().contains("no affinity list"), "{}", limit.source);
    }

    #[test]
    fn this_machine() {
        let limit = CpuLimit::detect();
        assert!(limit.cores > 0.0 && limit.cores <= limit.host_cpus as f64, "{limit:?}");
    }

    #[test]
    fn parsers() {
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("max 100000"), None);
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(count_cpu_list("0-3,8,10-11\n"), 7);
        assert_eq!(count_cpu_list("3-1,x"), 0);
        assert_eq!(unescape(r"/a\040b".to_owned()), "/a b");
        let mount =
            Mount::parse("30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate").unwrap();
        assert_eq!((mount.point.as_str(), mount.fs_type.as_str()), ("/sys/fs/cgroup", "cgroup2"));
        assert!(Mount::parse("22 1 8:1 / / rw - ext4 /dev/vda rw").is_none());
    }
}
