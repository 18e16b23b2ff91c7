//! The priority and timer slack of a thread that dispatches requests open-loop on a schedule
//! (the load generator, the overload scenario's dispatcher).

use std::time::Duration;

use tailguard::elastic::{PriorityGuard, ThreadPriority};

/// The timer slack Linux gives a sleep of a thread of the normal policy by default: its wake
/// may come this much after the time asked for, so that nearby timers fire together.
pub const NORMAL_TIMER_SLACK: Duration = Duration::from_micros(50);

/// The calling thread held at a dispatcher's priority until dropped.
#[derive(Debug)]
pub struct Dispatcher {
    _priority: Option<PriorityGuard>,
}

impl Dispatcher {
    /// Holds the calling thread at `priority` (`None`: as it is) and returns what to add to each
    /// of its sleeps. Refused, it goes on at the thread's own priority: callers that must know
    /// ask first (`choices::GeneratorPriority::granted`).
    ///
    /// A real-time thread gets no timer slack from the kernel and would wake for nearly every
    /// arrival — a normal thread woke once per three or four at 20 % load — each wake
    /// preempting the service's threads (docs/design-notes.md), so it sleeps
    /// [`NORMAL_TIMER_SLACK`] longer and dispatches in the batches a normal thread did. Nothing
    /// is added to a normal thread's sleeps, whose slack is the kernel's.
    pub fn enter(priority: Option<ThreadPriority>) -> (Self, Duration) {
        let guard = priority.and_then(|priority| PriorityGuard::enter(priority).ok());
        let slack = match guard.as_ref().map(PriorityGuard::priority) {
            Some(ThreadPriority::Realtime(_)) => NORMAL_TIMER_SLACK,
            _ => Duration::ZERO,
        };
        (Dispatcher { _priority: guard }, slack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_time_dispatcher_sleeps_with_a_normal_threads_slack_and_gets_its_priority_back() {
        let (before, inside, slack, after) = std::thread::spawn(|| {
            let before = tailguard::elastic::current_thread_priority().unwrap();
            let (dispatcher, slack) = Dispatcher::enter(Some(ThreadPriority::Realtime(1)));
            let inside = tailguard::elastic::current_thread_priority().unwrap();
            drop(dispatcher);
            (before, inside, slack, tailguard::elastic::current_thread_priority().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!(after, before);
        if inside == ThreadPriority::Realtime(1) {
            assert_eq!(slack, NORMAL_TIMER_SLACK);
        } else {
            eprintln!("NOT RUN on this host: SCHED_FIFO refused; a normal dispatcher adds no slack");
            assert_eq!((inside, slack), (before, Duration::ZERO));
        }
        // A normal thread's sleeps get the kernel's slack: nothing is added.
        assert_eq!(Dispatcher::enter(None).1, Duration::ZERO);
    }
}
