//! Where the foreground's threads run: each runtime worker on a CPU of its own.
//!
//! Elastic work at `SCHED_IDLE` ([`ThreadPriority::Idle`](crate::elastic::ThreadPriority)) fills
//! every CPU the foreground leaves idle, which is what it is for. But Linux places a waking
//! thread by looking for an idle CPU, and with every CPU busy it may queue a runtime worker
//! behind the other worker on that worker's CPU, while the second CPU runs idle-priority work,
//! until load balancing moves one of them. `perf sched` on the project's 2-core VM, at 60 %
//! foreground load beside unlimited `SCHED_IDLE` backups, showed the two workers of the
//! foreground runtime sharing one CPU for up to 4 ms at a time while a `SCHED_IDLE` scan ran on
//! the other (docs/design-notes.md, "Runtime workers stacked on one CPU beside SCHED_IDLE
//! work").
//!
//! [`pin_workers`] leaves the kernel no such choice: worker `i` may run only on CPU `i` of the
//! CPUs this process may use, where a waking worker preempts idle-priority work at once. The
//! cost is the kernel's freedom to move a worker away from a CPU that other normal-priority
//! work keeps busy, so it suits a service that has its CPUs to itself (a container's cpuset, a
//! dedicated machine).
//!
//! ```
//! # #[cfg(feature = "tokio")] {
//! let mut builder = tokio::runtime::Builder::new_multi_thread();
//! let cpus = tailguard::placement::allowed_cpus()?;
//! let pins = tailguard::placement::pin_workers(&mut builder, cpus.len(), "service")?;
//! let runtime = builder.enable_all().build()?;
//! assert_eq!(pins.cpus().len(), cpus.len());
//! # drop(runtime);
//! # }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
#[cfg(feature = "tokio")]
use std::sync::Arc;
#[cfg(feature = "tokio")]
use std::sync::atomic::{AtomicUsize, Ordering};

/// The CPUs the calling thread may run on (its affinity mask), in increasing order.
///
/// # Errors
///
/// The OS error, or [`io::ErrorKind::Unsupported`] off Linux.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    sys::allowed_cpus()
}

/// Lets the calling thread run only on `cpu`.
///
/// # Errors
///
/// The OS error (`EINVAL` for a CPU the process may not use), or
/// [`io::ErrorKind::Unsupported`] off Linux.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    sys::pin_current_thread(cpu)
}

/// What [`pin_workers`] set up: which CPU each worker takes, and whether every worker took it.
#[cfg(feature = "tokio")]
#[derive(Clone, Debug)]
pub struct PinnedWorkers {
    cpus: Vec<usize>,
    failed: Arc<AtomicUsize>,
}

#[cfg(feature = "tokio")]
impl PinnedWorkers {
    /// The CPU of each worker, by the worker's index.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// How many workers could not be pinned when they started (the process's CPUs changed
    /// between [`pin_workers`] and the runtime's start); they run wherever the kernel puts them.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Gives `builder` `workers` worker threads, named `name-0`, `name-1`, …, and pins worker `i` to
/// the `i`-th CPU this process may use (round robin when there are more workers than CPUs).
///
/// Tokio starts a multi-thread runtime's workers first, so the threads numbered under `workers`
/// are the workers; threads its blocking pool starts later keep the whole affinity mask. A
/// worker that hands its work to another thread (`block_in_place`) leaves that thread unpinned.
/// This sets the builder's `worker_threads`, `thread_name_fn` and `on_thread_start`.
///
/// # Errors
///
/// `workers` is 0 ([`io::ErrorKind::InvalidInput`]), or the affinity mask cannot be read
/// ([`allowed_cpus`]).
#[cfg(feature = "tokio")]
pub fn pin_workers(
    builder: &mut tokio::runtime::Builder,
    workers: usize,
    name: &str,
) -> io::Result<PinnedWorkers> {
    if workers == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a runtime needs at least one worker"));
    }
    let allowed = allowed_cpus()?;
    if allowed.is_empty() {
        return Err(io::Error::other("the process may run on no CPU"));
    }
    let cpus: Vec<usize> = (0..workers).map(|i| allowed[i % allowed.len()]).collect();
    let pinned = PinnedWorkers { cpus: cpus.clone(), failed: Arc::new(AtomicUsize::new(0)) };
    let started = AtomicUsize::new(0);
    let prefix = format!("{name}-");
    let failed = Arc::clone(&pinned.failed);
    builder
        .worker_threads(workers)
        // Names are given on the spawning thread, in the order tokio starts its threads; the
        // hook below runs on each new thread, in whatever order they get going.
        .thread_name_fn({
            let prefix = prefix.clone();
            move || format!("{prefix}{}", started.fetch_add(1, Ordering::Relaxed))
        })
        .on_thread_start(move || {
            let index =
                std::thread::current().name().and_then(|n| n.strip_prefix(&prefix)?.parse::<usize>().ok());
            if let Some(&cpu) = index.and_then(|i| cpus.get(i))
                && pin_current_thread(cpu).is_err()
            {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        });
    Ok(pinned)
}

#[cfg(target_os = "linux")]
mod sys {
    use std::io;

    fn empty_set() -> libc::cpu_set_t {
        // SAFETY: cpu_set_t is a plain bit array, for which all zeroes is the empty set.
        unsafe { std::mem::zeroed() }
    }

    pub(super) fn allowed_cpus() -> io::Result<Vec<usize>> {
        let mut set = empty_set();
        // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
        let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: CPU_ISSET reads bit `cpu` of a valid set; every index is under CPU_SETSIZE.
        Ok((0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect())
    }

    pub(super) fn pin_current_thread(cpu: usize) -> io::Result<()> {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("no CPU {cpu}")));
        }
        let mut set = empty_set();
        // SAFETY: `cpu` is under CPU_SETSIZE (checked above), so the bit is inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is the calling thread.
        let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use std::io;

    pub(super) fn allowed_cpus() -> io::Result<Vec<usize>> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "CPU affinity is supported on Linux only"))
    }

    pub(super) fn pin_current_thread(_cpu: usize) -> io::Result<()> {
        allowed_cpus().map(drop)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_runs_on_its_cpu_only_and_a_cpu_out_of_range_is_refused() {
        let allowed = allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        let last = *allowed.last().unwrap();
        let (pinned, bad) = std::thread::spawn(move || {
            pin_current_thread(last).unwrap();
            (allowed_cpus().unwrap(), pin_current_thread(usize::MAX).unwrap_err().kind())
        })
        .join()
        .unwrap();
        assert_eq!(pinned, vec![last]);
        assert_eq!(bad, io::ErrorKind::InvalidInput);
        assert_eq!(allowed_cpus().unwrap(), allowed, "only the pinned thread changed");
    }

    #[cfg(feature = "tokio")]
    #[test]
    fn workers_are_pinned_one_per_cpu_and_blocking_threads_are_not() {
        let allowed = allowed_cpus().unwrap();
        let workers = allowed.len() + 1;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        let pins = pin_workers(&mut builder, workers, "pin-test").unwrap();
        assert_eq!(pins.cpus().len(), workers);
        assert_eq!(pins.cpus()[allowed.len()], allowed[0], "round robin past the last CPU");
        let runtime = builder.build().unwrap();
        // Every task runs on a worker, and a worker pins itself before it does any work.
        let seen: Vec<(String, Vec<usize>)> = runtime.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    tokio::spawn(async {
                        let thread = std::thread::current().name().unwrap_or_default().to_owned();
                        (thread, allowed_cpus().unwrap())
                    })
                })
                .collect();
            let mut seen = Vec::new();
            for task in tasks {
                seen.push(task.await.unwrap());
            }
            seen
        });
        for (thread, cpus) in &seen {
            let index: usize = thread.strip_prefix("pin-test-").unwrap().parse().unwrap();
            assert!(index < workers, "{thread}");
            assert_eq!(cpus, &vec![pins.cpus()[index]], "{thread}");
        }
        let blocking = runtime
            .block_on(async { tokio::task::spawn_blocking(|| allowed_cpus().unwrap()).await.unwrap() });
        assert_eq!(blocking, allowed, "a blocking-pool thread keeps the whole mask");
        assert_eq!(pins.failed(), 0);
        let mut none = tokio::runtime::Builder::new_multi_thread();
        assert_eq!(pin_workers(&mut none, 0, "x").unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
