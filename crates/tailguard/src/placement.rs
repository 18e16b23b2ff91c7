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
//! [`pin_workers`] leaves the kernel no such choice: each worker may run only on a CPU of its
//! own among those this process may use, where a waking worker preempts idle-priority work at
//! once. The cost is the kernel's freedom to move a worker away from a CPU that other
//! normal-priority work keeps busy, so it suits a service that has its CPUs to itself (a
//! container's cpuset, a dedicated machine).
//!
//! ```
//! # #[cfg(feature = "tokio")] {
//! let mut builder = tokio::runtime::Builder::new_multi_thread();
//! let cpus = tailguard::placement::allowed_cpus()?;
//! let pins = tailguard::placement::pin_workers(&mut builder, cpus.len())?;
//! let runtime = builder.enable_all().build()?;
//! assert_eq!(pins.cpus().len(), cpus.len());
//! # drop(runtime);
//! # }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
#[cfg(all(feature = "tokio", not(loom)))]
use std::sync::Arc;
#[cfg(all(feature = "tokio", not(loom)))]
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

/// What [`pin_workers`] set up: which CPUs the workers take, and how many have taken theirs.
#[cfg(all(feature = "tokio", not(loom)))]
#[derive(Clone, Debug)]
pub struct PinnedWorkers {
    cpus: Vec<usize>,
    state: Arc<PinState>,
}

#[cfg(all(feature = "tokio", not(loom)))]
#[derive(Debug, Default)]
struct PinState {
    /// Workers that went idle for the first time: the next one takes `cpus[next % len]`.
    next: AtomicUsize,
    pinned: AtomicUsize,
    failed: AtomicUsize,
}

#[cfg(all(feature = "tokio", not(loom)))]
impl PinnedWorkers {
    /// The CPUs the workers take, in the order they first go idle.
    pub fn cpus(&self) -> &[usize] {
        &self.cpus
    }

    /// Workers pinned so far (a worker pins itself the first time it goes idle).
    pub fn pinned(&self) -> usize {
        self.state.pinned.load(Ordering::Acquire)
    }

    /// Workers that could not be pinned (the process's CPUs changed after [`pin_workers`]);
    /// they run wherever the kernel puts them.
    pub fn failed(&self) -> usize {
        self.state.failed.load(Ordering::Acquire)
    }
}

/// Gives `builder` `workers` worker threads and pins each to a CPU of its own: the `i`-th
/// worker to go idle for the first time takes the `i`-th CPU this process may use (round robin
/// when there are more workers than CPUs).
///
/// A worker pins itself in the runtime's park hook, which only the scheduler's workers run, so
/// the threads of the blocking pool keep the whole affinity mask; an idle runtime's workers
/// all park at once, and a busy one's within their first idle moment. A thread that takes over
/// a worker's queue after `block_in_place` takes the next CPU in the round. This sets the
/// builder's `worker_threads` and `on_thread_park`.
///
/// # Errors
///
/// `workers` is 0 ([`io::ErrorKind::InvalidInput`]), or the affinity mask cannot be read
/// ([`allowed_cpus`]).
#[cfg(all(feature = "tokio", not(loom)))]
pub fn pin_workers(builder: &mut tokio::runtime::Builder, workers: usize) -> io::Result<PinnedWorkers> {
    if workers == 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a runtime needs at least one worker"));
    }
    let allowed = allowed_cpus()?;
    if allowed.is_empty() {
        return Err(io::Error::other("the process may run on no CPU"));
    }
    let cpus: Vec<usize> = (0..workers).map(|i| allowed[i % allowed.len()]).collect();
    let pinned = PinnedWorkers { cpus: cpus.clone(), state: Arc::new(PinState::default()) };
    let state = Arc::clone(&pinned.state);
    builder.worker_threads(workers).on_thread_park(move || {
        thread_local! {
            static PINNED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        if PINNED.replace(true) {
            return;
        }
        let cpu = cpus[state.next.fetch_add(1, Ordering::Relaxed) % cpus.len()];
        let outcome = if pin_current_thread(cpu).is_ok() { &state.pinned } else { &state.failed };
        outcome.fetch_add(1, Ordering::Release);
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

    #[cfg(all(feature = "tokio", not(loom)))]
    #[test]
    fn workers_are_pinned_one_per_cpu_and_blocking_threads_are_not() {
        let allowed = allowed_cpus().unwrap();
        let workers = allowed.len() + 1;
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        let pins = pin_workers(&mut builder, workers).unwrap();
        assert_eq!(pins.cpus().len(), workers);
        assert_eq!(pins.cpus()[allowed.len()], allowed[0], "round robin past the last CPU");
        let runtime = builder.build().unwrap();
        // An idle runtime's workers park at once, and pin themselves when they do; the wait is
        // for that, bounded so that a worker that never parks fails the test instead of hanging.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while pins.pinned() + pins.failed() < workers {
            assert!(std::time::Instant::now() < deadline, "{} of {workers} pinned", pins.pinned());
            std::thread::yield_now();
        }
        assert_eq!(pins.failed(), 0);
        let seen: Vec<Vec<usize>> = runtime.block_on(async {
            let tasks: Vec<_> = (0..64).map(|_| tokio::spawn(async { allowed_cpus().unwrap() })).collect();
            let mut seen = Vec::new();
            for task in tasks {
                seen.push(task.await.unwrap());
            }
            seen
        });
        for cpus in &seen {
            assert!(
                cpus.len() == 1 && allowed.contains(&cpus[0]),
                "a task ran on a worker pinned to {cpus:?}"
            );
        }
        let blocking = runtime
            .block_on(async { tokio::task::spawn_blocking(|| allowed_cpus().unwrap()).await.unwrap() });
        assert_eq!(blocking, allowed, "a blocking-pool thread keeps the whole mask");
        let mut none = tokio::runtime::Builder::new_multi_thread();
        assert_eq!(pin_workers(&mut none, 0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
