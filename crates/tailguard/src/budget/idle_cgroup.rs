//! A cgroup of the lowest CPU weight for elastic threads: the operating system's help beside
//! the token bucket, where the process may create cgroups.
//!
//! `SCHED_IDLE` ([`ThreadPriority::Idle`](crate::elastic::ThreadPriority::Idle)) lowers each
//! elastic thread against every other thread of the machine. A cgroup does it for the elastic
//! threads as one group: [`IdleCgroup::create`] makes (or reuses) `tailguard-elastic` beneath
//! this process's own cgroup v1 `cpu` cgroup with `cpu.idle` set where the kernel has it (5.15
//! on: the group is an idle entity to the scheduler, with `SCHED_IDLE`'s weight, 3 against 1024
//! for a normal thread), else with `cpu.shares` at its minimum (2);
//! [`IdleCgroup::join_current_thread`] moves
//! the calling thread into it. Being beneath the process's cgroup, it stays under any quota that
//! binds the process.
//!
//! Only cgroup v1 is supported: v1's `tasks` file takes single threads, while cgroup v2 moves a
//! thread on its own only inside a threaded subtree, which would change how the whole process
//! is accounted. On a v2-only host [`IdleCgroup::create`] says so and `SCHED_IDLE` is the way.
//! Creating a cgroup needs write access to the `cpu` hierarchy (root, on these hosts); the
//! error names the directory and the reason. The group is left in place when the process exits
//! (a cgroup cannot be removed while threads are in it); the next process reuses it.
//!
//! ```no_run
//! use tailguard::budget::IdleCgroup;
//!
//! let group = IdleCgroup::create()?;
//! std::thread::spawn(move || {
//!     group.join_current_thread().expect("joins");
//!     // ... elastic work under the limiter ...
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::path::{Path, PathBuf};

use super::cgroup::{Mount, cgroup_line, read};

/// The lowest `cpu.shares` cgroup v1 accepts.
pub const MIN_CPU_SHARES: u64 = 2;

/// A cgroup v1 `cpu` cgroup of the lowest weight, beneath this process's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleCgroup {
    /// Its directory in the tree it was created in.
    dir: PathBuf,
    /// Its directory as the process sees it (without a fixture tree's root).
    shown: PathBuf,
    /// Whether `cpu.idle` was set (the kernel has it).
    idle: bool,
}

impl IdleCgroup {
    /// Name of the cgroup beneath the process's own.
    pub const NAME: &'static str = "tailguard-elastic";

    /// Creates (or reuses) the group for this process.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::Unsupported`] when the host has only cgroup v2, [`io::ErrorKind::NotFound`]
    /// when no cgroup v1 `cpu` controller is mounted, or the OS error of creating the directory or
    /// writing its weight (e.g. permission denied), with the path.
    pub fn create() -> io::Result<IdleCgroup> {
        Self::create_in(Path::new("/"))
    }

    /// Creates (or reuses) the group in a tree rooted at `root` (`proc/self/cgroup`,
    /// `proc/self/mountinfo` and the mount points they name under `root`): the real one is `/`;
    /// tests pass fixture trees.
    ///
    /// # Errors
    ///
    /// As [`create`](Self::create).
    pub fn create_in(root: &Path) -> io::Result<IdleCgroup> {
        let cgroups = read(root, "proc/self/cgroup")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "cannot read /proc/self/cgroup"))?;
        let mounts = read(root, "proc/self/mountinfo")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "cannot read /proc/self/mountinfo"))?;
        let mounts: Vec<Mount> = mounts.lines().filter_map(Mount::parse).collect();
        let own = cgroups
            .lines()
            .filter_map(cgroup_line)
            .find_map(|(_, controllers, path)| controllers.split(',').any(|c| c == "cpu").then_some(path));
        let mount = mounts.iter().find(|m| m.fs_type == "cgroup" && m.has_option("cpu"));
        let (Some(path), Some(mount)) = (own, mount) else {
            return Err(if mounts.iter().any(|m| m.fs_type == "cgroup2") {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "only cgroup v2 is mounted: it moves single threads only within a threaded subtree; \
                     use SCHED_IDLE for elastic threads instead",
                )
            } else {
                io::Error::new(io::ErrorKind::NotFound, "no cgroup v1 cpu controller is mounted")
            });
        };
        let parent = mount.dir_of(root, path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("this process's cpu cgroup {path} is not under its mount"),
            )
        })?;
        let dir = parent.join(Self::NAME);
        let shown = mount.shown(root, &dir);
        let context = |what: &str, e: io::Error| {
            io::Error::new(e.kind(), format!("cannot {what} {}: {e}", shown.display()))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(context("create the cgroup", e)),
        }
        // `cpu.idle` (kernel 5.15 on) shows in every cgroup of the hierarchy, the parent included.
        // It gives the group the idle weight itself, and the kernel then refuses `cpu.shares`.
        let idle = parent.join("cpu.idle").exists();
        if idle {
            std::fs::write(dir.join("cpu.idle"), "1").map_err(|e| context("set cpu.idle of", e))?;
        } else {
            std::fs::write(dir.join("cpu.shares"), MIN_CPU_SHARES.to_string())
                .map_err(|e| context("set cpu.shares of", e))?;
        }
        Ok(IdleCgroup { dir, shown, idle })
    }

    /// Moves the calling thread into the group (v1's `tasks` takes a thread id). Threads it
    /// spawns afterwards start in it too.
    ///
    /// # Errors
    ///
    /// The OS error of writing `tasks`, with the path.
    pub fn join_current_thread(&self) -> io::Result<()> {
        let tid = current_thread_id()?;
        std::fs::write(self.dir.join("tasks"), tid.to_string()).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot move thread {tid} into {}: {e}", self.shown.display()))
        })
    }

    /// The group's directory, as the process sees it.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Whether the group is also an idle entity (`cpu.idle` = 1), besides its minimum weight.
    pub fn idle(&self) -> bool {
        self.idle
    }
}

#[cfg(target_os = "linux")]
fn current_thread_id() -> io::Result<u64> {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    Ok(tid as u64)
}

#[cfg(not(target_os = "linux"))]
fn current_thread_id() -> io::Result<u64> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "cgroups are Linux only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree with `proc/self/cgroup` and `proc/self/mountinfo` and the directories they name.
    fn tree(cgroup: &str, mountinfo: &str, dirs: &[&str]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc/self")).unwrap();
        std::fs::write(root.path().join("proc/self/cgroup"), cgroup).unwrap();
        std::fs::write(root.path().join("proc/self/mountinfo"), mountinfo).unwrap();
        for dir in dirs {
            std::fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        root
    }

    const V1_MOUNTS: &str = "30 25 0:27 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                             31 25 0:28 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n";

    #[test]
    #[cfg(target_os = "linux")]
    fn v1_creates_the_group_beneath_the_own_cgroup_at_the_lowest_weight_and_moves_the_thread() {
        let root = tree("3:cpuset:/\n1:cpu:/node0\n", V1_MOUNTS, &["sys/fs/cgroup/cpu/node0"]);
        std::fs::write(root.path().join("sys/fs/cgroup/cpu/node0/cpu.idle"), "0").unwrap();
        let group = IdleCgroup::create_in(root.path()).unwrap();
        let dir = root.path().join("sys/fs/cgroup/cpu/node0/tailguard-elastic");
        assert_eq!(group.path(), Path::new("/sys/fs/cgroup/cpu/node0/tailguard-elastic"));
        assert_eq!(std::fs::read_to_string(dir.join("cpu.idle")).unwrap(), "1");
        // The kernel refuses `cpu.shares` in an idle group: it is not written.
        assert!(!dir.join("cpu.shares").exists());
        assert!(group.idle());
        group.join_current_thread().unwrap();
        let tid: u64 = std::fs::read_to_string(dir.join("tasks")).unwrap().parse().unwrap();
        assert_eq!(tid, current_thread_id().unwrap());
        // A second process reuses the group.
        assert_eq!(IdleCgroup::create_in(root.path()).unwrap(), group);
    }

    #[test]
    fn v1_without_cpu_idle_sets_the_weight_alone() {
        let root = tree("1:cpu:/\n", V1_MOUNTS, &["sys/fs/cgroup/cpu"]);
        let group = IdleCgroup::create_in(root.path()).unwrap();
        assert!(!group.idle());
        let dir = root.path().join("sys/fs/cgroup/cpu/tailguard-elastic");
        assert!(!dir.join("cpu.idle").exists());
        assert_eq!(std::fs::read_to_string(dir.join("cpu.shares")).unwrap(), "2");
    }

    #[test]
    fn v2_only_is_refused_with_the_reason_and_nothing_mounted_is_not_found() {
        let v2 = tree("0::/user.slice\n", "30 25 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", &[]);
        let error = IdleCgroup::create_in(v2.path()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
        assert!(error.to_string().contains("SCHED_IDLE"), "{error}");
        let none = tree("", "", &[]);
        assert_eq!(IdleCgroup::create_in(none.path()).unwrap_err().kind(), io::ErrorKind::NotFound);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(IdleCgroup::create_in(empty.path()).unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_cgroup_that_cannot_be_created_names_its_path() {
        // The own cgroup's directory is missing under the mount.
        let root = tree("1:cpu:/gone\n", V1_MOUNTS, &["sys/fs/cgroup/cpu"]);
        let error = IdleCgroup::create_in(root.path()).unwrap_err();
        assert!(error.to_string().contains("/gone"), "{error}");
        // A file where the cgroup's directory would be.
        let root = tree("1:cpu:/\n", V1_MOUNTS, &["sys/fs/cgroup/cpu"]);
        std::fs::write(root.path().join("sys/fs/cgroup/cpu/tailguard-elastic"), "").unwrap();
        let error = IdleCgroup::create_in(root.path()).unwrap_err();
        assert!(error.to_string().contains("/sys/fs/cgroup/cpu/tailguard-elastic"), "{error}");
    }
}
