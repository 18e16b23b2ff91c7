//! OS scheduling priority for elastic threads.
//!
//! Tokens bound how much CPU elastic work gets; OS priority decides who runs first when both
//! are runnable. The two combine: `SCHED_IDLE` (or nice 19) elastic threads under the token
//! bucket. A Go program cannot do this, because goroutines share OS threads.

use std::io;

/// An OS priority for the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadPriority {
    /// Linux `SCHED_IDLE`: runs only when nothing else wants the CPU.
    Idle,
    /// A nice value, -20 (highest) ..= 19 (lowest). Raising priority needs privileges.
    Nice(i32),
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
                // SAFETY: gettid has no preconditions and cannot fail.
                let tid = unsafe { libc::syscall(libc::SYS_gettid) };
                // On Linux, PRIO_PROCESS with a thread id sets that thread's nice value only.
                // SAFETY: plain system call on integers; `tid` is the calling thread's id.
                let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
                if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
            }
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
