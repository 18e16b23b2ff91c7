//! OS scheduling priority for elastic threads, and for the few threads that must come first.
//!
//! Tokens bound how much CPU elastic work gets; OS priority decides who runs first when both
//! are runnable. The two combine: `SCHED_IDLE` (or nice 19) elastic threads under the token
//! bucket. A Go program cannot do this, because goroutines share OS threads.
//!
//! At the other end, [`ThreadPriority::Realtime`] puts a thread ahead of every thread of the
//! normal policy, the service's own runtime workers included: for a thread whose timing must
//! not depend on how busy the process is, such as a load generator that stands in for clients
//! on other machines (the demo's, `docs/design-notes.md`). Never for elastic work: a limiter
//! refuses it ([`ConfigError::ElasticPriority`](super::ConfigError::ElasticPriority)).

use std::io;

/// An OS priority for the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadPriority {
    /// Linux `SCHED_IDLE`: runs only when nothing else wants the CPU.
    Idle,
    /// The normal policy (`SCHED_OTHER`) at a nice value, -20 (highest) ..= 19 (lowest); it
    /// also takes a thread back from `SCHED_IDLE` or `Realtime`. Raising priority needs
    /// privileges.
    Nice(i32),
    /// Linux `SCHED_FIFO` at a priority of 1 (lowest) ..= 99: runs as soon as it is runnable,
    /// ahead of every thread of the normal policy, until it blocks. Needs `CAP_SYS_NICE` or an
    /// `RLIMIT_RTPRIO` at least this high. A thread spawned by a real-time thread inherits its
    /// policy: set it back ([`ThreadPriority::Nice`]) before spawning, or use
    /// [`PriorityGuard`].
    Realtime(u8),
    /// The process's [`IdleCgroup`](crate::budget::IdleCgroup): a cgroup v1 `cpu` cgroup that is
    /// idle to the scheduler (`cpu.idle`, or the lowest `cpu.shares`) beneath the process's own, created
    /// on first use and shared by every thread that asks. Needs write access to the `cpu`
    /// hierarchy and cgroup v1.
    IdleCgroup,
}

/// Sets the calling thread's OS priority.
///
/// # Errors
///
/// The OS error (e.g. permission denied for a negative nice value), or
/// [`io::ErrorKind::Unsupported`] off Linux or for a nice value outside -20 ..= 19.
pub fn set_current_thread_priority(priority: ThreadPriority) -> io::Result<()> {
    sys::set(priority)
}

/// The calling thread's scheduling policy and priority as a [`ThreadPriority`]: `Idle`,
/// `Realtime` (for `SCHED_FIFO` and `SCHED_RR`) or `Nice`. Membership of the idle cgroup is not
/// a policy and reads as the policy under it.
///
/// # Errors
///
/// The OS error, or [`io::ErrorKind::Unsupported`] off Linux or for a policy with no
/// [`ThreadPriority`] (`SCHED_BATCH`, `SCHED_DEADLINE`).
pub fn current_thread_priority() -> io::Result<ThreadPriority> {
    sys::current()
}

/// Holds the calling thread at a priority and puts back the one it had when dropped, also on
/// unwind: for a stretch of work that must run at another priority on a thread that goes on to
/// do other things (threads it spawns meanwhile inherit the priority).
///
/// ```no_run
/// use tailguard::elastic::{PriorityGuard, ThreadPriority};
///
/// // A load generator standing in for remote clients: its dispatch must not wait for a CPU
/// // behind the service's own threads.
/// match PriorityGuard::enter(ThreadPriority::Realtime(1)) {
///     Ok(_guard) => { /* dispatch requests; back at the old priority when `_guard` drops */ }
///     Err(error) => eprintln!("dispatching at normal priority: {error}"),
/// }
/// ```
#[derive(Debug)]
#[must_use = "the old priority comes back when the guard drops"]
pub struct PriorityGuard {
    priority: ThreadPriority,
    previous: ThreadPriority,
    /// The guard belongs to the thread it changed.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl PriorityGuard {
    /// Sets the calling thread's priority, remembering the one it replaces.
    ///
    /// # Errors
    ///
    /// Reading the current priority or setting the new one failed; the thread is unchanged.
    pub fn enter(priority: ThreadPriority) -> io::Result<Self> {
        let previous = current_thread_priority()?;
        set_current_thread_priority(priority)?;
        Ok(PriorityGuard { priority, previous, _not_send: std::marker::PhantomData })
    }

    /// The priority the guard holds the thread at.
    pub fn priority(&self) -> ThreadPriority {
        self.priority
    }
}

impl Drop for PriorityGuard {
    fn drop(&mut self) {
        // Going back to a policy the thread had is allowed unless it was raised by privilege
        // since lost; nothing better can be done about that here.
        let _ignored = set_current_thread_priority(self.previous);
    }
}

/// The process's idle cgroup, created by the first thread that asks; a failure is kept (with
/// its kind and message) so every later thread gets the same answer without retrying.
#[cfg(target_os = "linux")]
fn idle_cgroup() -> io::Result<&'static crate::budget::IdleCgroup> {
    static GROUP: std::sync::OnceLock<Result<crate::budget::IdleCgroup, (io::ErrorKind, String)>> =
        std::sync::OnceLock::new();
    GROUP
        .get_or_init(|| crate::budget::IdleCgroup::create().map_err(|e| (e.kind(), e.to_string())))
        .as_ref()
        .map_err(|(kind, message)| io::Error::new(*kind, message.clone()))
}

#[cfg(target_os = "linux")]
mod sys {
    use super::ThreadPriority;
    use std::io;

    pub(super) fn set(priority: ThreadPriority) -> io::Result<()> {
        match priority {
            ThreadPriority::Idle => {
                let param = libc::sched_param { sched_priority: 0 };
                // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 means
                // the calling thread, so no other thread's state is touched.
                let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
                if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
            }
            ThreadPriority::IdleCgroup => super::idle_cgroup()?.join_current_thread(),
            ThreadPriority::Nice(nice) => {
                if !(-20..=19).contains(&nice) {
                    return Err(io::Error::new(io::ErrorKind::Unsupported, "nice must be within -20 ..= 19"));
                }
                set_policy(libc::SCHED_OTHER, 0)?;
                // SAFETY: gettid has no preconditions and cannot fail.
                let tid = unsafe { libc::syscall(libc::SYS_gettid) };
                // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
                // SAFETY: plain system call on integers; `tid` is the calling thread's id.
                let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
                if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
            }
            ThreadPriority::Realtime(priority) => {
                if !(1..=99).contains(&priority) {
                    return Err(io::Error::new(
                        io::ErrorKind::Unsupported,
                        "a real-time priority must be within 1 ..= 99",
                    ));
                }
                set_policy(libc::SCHED_FIFO, i32::from(priority))
            }
        }
    }

    fn set_policy(policy: libc::c_int, priority: libc::c_int) -> io::Result<()> {
        let param = libc::sched_param { sched_priority: priority };
        // SAFETY: `param` is a valid sched_param that outlives the call; pid 0 means the
        // calling thread, so no other thread's state is touched.
        let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    pub(super) fn current() -> io::Result<ThreadPriority> {
        // SAFETY: pid 0 means the calling thread; the call only reads its policy.
        let policy = unsafe { libc::sched_getscheduler(0) };
        match policy {
            libc::SCHED_IDLE => Ok(ThreadPriority::Idle),
            libc::SCHED_FIFO | libc::SCHED_RR => {
                let mut param = libc::sched_param { sched_priority: 0 };
                // SAFETY: `param` is a valid, writable sched_param that outlives the call.
                let rc = unsafe { libc::sched_getparam(0, &mut param) };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(ThreadPriority::Realtime(u8::try_from(param.sched_priority).unwrap_or(99)))
            }
            libc::SCHED_OTHER => {
                // SAFETY: gettid has no preconditions and cannot fail.
                let tid = unsafe { libc::syscall(libc::SYS_gettid) };
                // getpriority returns -1 both as a nice value and on error: errno tells them
                // apart, so clear it first.
                // SAFETY: `__errno_location` returns the calling thread's errno, always valid.
                unsafe { *libc::__errno_location() = 0 };
                // SAFETY: plain system call on integers; `tid` is the calling thread's id.
                let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
                let error = io::Error::last_os_error();
                if nice == -1 && error.raw_os_error() != Some(0) {
                    Err(error)
                } else {
                    Ok(ThreadPriority::Nice(nice))
                }
            }
            -1 => Err(io::Error::last_os_error()),
            _ => Err(io::Error::new(io::ErrorKind::Unsupported, format!("scheduling policy {policy}"))),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    use super::ThreadPriority;
    use std::io;

    pub(super) fn set(_priority: ThreadPriority) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "thread priorities are supported on Linux only"))
    }

    pub(super) fn current() -> io::Result<ThreadPriority> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "thread priorities are supported on Linux only"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowering_priority_works_and_bad_nice_is_refused() {
        let outcome = std::thread::spawn(|| {
            let nice = set_current_thread_priority(ThreadPriority::Nice(19));
            let idle = set_current_thread_priority(ThreadPriority::Idle);
            let bad = set_current_thread_priority(ThreadPriority::Nice(40));
            (nice.is_ok(), idle.is_ok(), bad.is_err())
        })
        .join()
        .unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(outcome, (true, true, true));
        }
    }

    #[test]
    fn nice_takes_a_thread_back_from_sched_idle_and_is_read_back() {
        let (idle, back, now) = std::thread::spawn(|| {
            set_current_thread_priority(ThreadPriority::Idle).unwrap();
            let idle = current_thread_priority().unwrap();
            let back = set_current_thread_priority(ThreadPriority::Nice(5));
            (idle, back, current_thread_priority().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(idle, ThreadPriority::Idle);
        match back {
            Ok(()) => assert_eq!(now, ThreadPriority::Nice(5)),
            // Leaving SCHED_IDLE needs CAP_SYS_NICE or an RLIMIT_NICE of 20.
            Err(error) => {
                eprintln!("NOT RUN on this host: leaving SCHED_IDLE refused: {error}");
                assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied, "{error}");
                assert_eq!(now, ThreadPriority::Idle);
            }
        }
    }

    #[test]
    fn a_real_time_priority_out_of_range_is_refused() {
        for priority in [0, 100] {
            let error = set_current_thread_priority(ThreadPriority::Realtime(priority)).unwrap_err();
            assert_eq!(error.kind(), std::io::ErrorKind::Unsupported, "{priority}: {error}");
        }
    }

    #[test]
    fn a_priority_guard_puts_the_old_priority_back_also_on_unwind() {
        let outcome = std::thread::spawn(|| {
            set_current_thread_priority(ThreadPriority::Nice(19)).unwrap();
            let entered = match PriorityGuard::enter(ThreadPriority::Realtime(1)) {
                Ok(guard) => {
                    let inside = current_thread_priority().unwrap();
                    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        let _again = PriorityGuard::enter(ThreadPriority::Idle).unwrap();
                        panic!("unwinding through a guard");
                    }));
                    assert!(unwound.is_err());
                    let after_unwind = current_thread_priority().unwrap();
                    drop(guard);
                    Ok((inside, after_unwind))
                }
                Err(error) => Err(error),
            };
            (entered, current_thread_priority().unwrap())
        })
        .join()
        .unwrap();
        match outcome {
            (Ok((inside, after_unwind)), after) => {
                assert_eq!(inside, ThreadPriority::Realtime(1));
                assert_eq!(after_unwind, ThreadPriority::Realtime(1));
                assert_eq!(after, ThreadPriority::Nice(19));
            }
            // Without CAP_SYS_NICE or an RLIMIT_RTPRIO: the refusal leaves the thread as it was.
            (Err(error), after) => {
                eprintln!("NOT RUN on this host: SCHED_FIFO refused: {error}");
                assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied, "{error}");
                assert_eq!(after, ThreadPriority::Nice(19));
            }
        }
    }

    #[test]
    fn a_thread_that_joins_the_idle_cgroup_is_in_it_or_is_told_why_not() {
        let outcome = std::thread::spawn(|| {
            set_current_thread_priority(ThreadPriority::IdleCgroup)
                .map(|()| std::fs::read_to_string("/proc/thread-self/cgroup").unwrap_or_default())
        })
        .join()
        .unwrap();
        match outcome {
            Ok(cgroups) => assert!(cgroups.contains("/tailguard-elastic"), "{cgroups}"),
            // Not root, or cgroup v2 only: the fixture tests in `budget/idle_cgroup.rs` still
            // cover creating the group and moving a thread.
            Err(error) => {
                eprintln!("NOT RUN on this host: joining the idle cgroup: {error}");
                assert!(
                    matches!(
                        error.kind(),
                        std::io::ErrorKind::PermissionDenied
                            | std::io::ErrorKind::Unsupported
                            | std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::ReadOnlyFilesystem
                    ),
                    "{error}"
                );
            }
        }
    }
}
