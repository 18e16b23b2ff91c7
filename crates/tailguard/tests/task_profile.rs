//! Tracked tasks and both profilers, driven by a manual clock on a current-thread runtime.
#![cfg(feature = "tokio")]

use std::time::Duration;

use tailguard::clock::ManualClock;
use tailguard::task::{self, Builder, ProfileMode, Registry, TaskState};
use tokio::sync::oneshot;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime")
}

#[test]
fn profiles_show_each_task_with_its_frames_state_and_times() {
    let clock = ManualClock::new();
    let registry = Registry::with_clock(clock.shared());
    runtime().block_on(async {
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for i in 0..3u64 {
            let (tx, rx) = oneshot::channel::<()>();
            senders.push(tx);
            let clock = clock.clone();
            handles.push(Builder::new().name("worker").registry(&registry).spawn(async move {
                let _outer = task::frame("serve");
                let _inner = task::frame("wait");
                task::set_value(i + 1);
                clock.advance(Duration::from_micros(10)); // 10 µs inside this poll
                let _ = rx.await;
            }));
        }
        let (_keep, rx) = oneshot::channel::<()>();
        let other = Builder::new().registry(&registry).spawn(async move {
            let _ = rx.await;
        });
        // Spawned, not yet polled: scheduled, never polled.
        let before = registry.profile();
        assert_eq!(before.tasks.len(), 4);
        assert!(before.tasks.iter().all(|t| t.state == TaskState::Scheduled && t.polls == 0));
        assert!(before.tasks.iter().all(|t| t.since_last_poll.is_none()));

        clock.advance(Duration::from_millis(1)); // every task waits 1 ms to be polled
        tokio::task::yield_now().await;
        clock.advance(Duration::from_millis(2));

        for profile in [registry.profile(), registry.profile_stop_the_world()] {
            assert_eq!(profile.tasks.len(), 4, "{profile}");
            let ids: Vec<u64> = profile.tasks.iter().map(|t| t.id).collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, unique ids: {ids:?}");
            let workers: Vec<_> =
                profile.tasks.iter().filter(|t| t.name.as_deref() == Some("worker")).collect();
            assert_eq!(workers.len(), 3);
            for (i, t) in workers.iter().enumerate() {
                assert_eq!(t.frames, ["serve", "wait"]);
                assert_eq!(t.value, i as u64 + 1);
                assert_eq!(t.state, TaskState::Idle);
                assert_eq!(t.polls, 1);
                assert_eq!(t.running, Duration::from_micros(10));
                assert!(t.total_scheduling_delay >= Duration::from_millis(1));
                assert_eq!(t.total_scheduling_delay, t.max_scheduling_delay);
                assert!(t.since_last_poll.unwrap() >= Duration::from_millis(2));
                assert!(t.location.file().ends_with("task_profile.rs"));
            }
            let groups = profile.groups();
            assert_eq!(groups.len(), 2);
            assert_eq!((groups[0].count, groups[0].idle), (3, 3));
            assert_eq!(groups[0].frames, ["serve", "wait"]);
            assert_eq!(groups[1].count, 1);
            let text = profile.to_string();
            assert!(text.contains("3 @ serve > wait"), "{text}");
            assert!(text.contains("1 @ (no frames)"), "{text}");
            assert!(text.contains("name \"worker\""), "{text}");
            let json = profile.to_json();
            assert_eq!(json.matches("\"id\":").count(), 4);
            assert!(json.contains("\"frames\":[\"serve\",\"wait\"]"), "{json}");
            assert!(json.contains("\"state\":\"idle\""), "{json}");
        }
        assert_eq!(registry.profile().mode, ProfileMode::LowPause);
        assert_eq!(registry.profile_stop_the_world().mode, ProfileMode::StopTheWorld);
        // The manual clock does not move during a profile.
        assert_eq!(registry.profile().longest_pause, Duration::ZERO);

        // A wake-up makes a task scheduled.
        senders.pop().unwrap().send(()).unwrap();
        let profile = registry.profile();
        assert_eq!(profile.tasks.iter().filter(|t| t.state == TaskState::Scheduled).count(), 1);

        for tx in senders {
            tx.send(()).unwrap();
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(registry.len(), 1);
        other.abort();
        let _ = other.await;
        assert!(registry.is_empty());
        assert!(registry.profile().tasks.is_empty());
    });
}

#[test]
fn panicking_and_aborted_tasks_leave_the_registry() {
    let registry = Registry::new();
    runtime().block_on(async {
        let panicked = Builder::new().registry(&registry).spawn(async {
            let _frame = task::frame("about to panic");
            panic!("boom");
        });
        assert!(panicked.await.unwrap_err().is_panic());
        let never = Builder::new().registry(&registry).spawn(std::future::pending::<()>());
        tokio::task::yield_now().await;
        assert_eq!(registry.len(), 1);
        never.abort();
        assert!(never.await.unwrap_err().is_cancelled());
        assert!(registry.is_empty());
    });
    // Dropping the runtime drops never-polled tasks too.
    let rt = runtime();
    rt.block_on(async {
        for _ in 0..10 {
            Builder::new().registry(&registry).spawn(std::future::pending::<()>());
        }
    });
    assert_eq!(registry.len(), 10);
    drop(rt);
    assert!(registry.is_empty());
}

#[test]
fn tasks_spawned_after_the_cut_are_excluded_and_a_profiling_task_shows_as_running() {
    let registry = Registry::new();
    runtime().block_on(async {
        let r = registry.clone();
        let profiler = Builder::new().name("profiler").registry(&registry).spawn(async move {
            let _frame = task::frame("profiling");
            let first = r.profile();
            // Spawned after the first cut: absent from it, present in the next.
            let late = Builder::new().registry(&r).spawn(std::future::pending::<()>());
            let second = r.profile_stop_the_world();
            late.abort();
            (first, second)
        });
        let (first, second) = profiler.await.unwrap();
        assert_eq!(first.tasks.len(), 1);
        assert_eq!(first.tasks[0].state, TaskState::Running);
        assert_eq!(first.tasks[0].frames, ["profiling"]);
        assert!(first.tasks.iter().all(|t| t.id < first.cut_id));
        assert_eq!(second.tasks.len(), 2);
        assert_eq!(second.tasks[1].state, TaskState::Scheduled);
    });
}

#[test]
fn global_spawn_and_profile_work_without_a_registry() {
    runtime().block_on(async {
        let (tx, rx) = oneshot::channel::<()>();
        let h = task::spawn(async move {
            let _frame = task::frame("global-test-frame");
            let _ = rx.await;
        });
        tokio::task::yield_now().await;
        let profile = task::profile();
        assert_eq!(profile.tasks.iter().filter(|t| t.frames == ["global-test-frame"]).count(), 1);
        let profile = task::profile_stop_the_world();
        assert_eq!(profile.tasks.iter().filter(|t| t.frames == ["global-test-frame"]).count(), 1);
        tx.send(()).unwrap();
        h.await.unwrap();
    });
    assert!(task::current().is_none());
}

#[test]
fn registry_memory_returns_to_its_start_level_after_many_tasks() {
    let registry = Registry::new();
    let start = registry.memory_bytes();
    let rt = runtime();
    rt.block_on(async {
        for _ in 0..20 {
            let mut handles = Vec::with_capacity(5_000);
            for _ in 0..5_000 {
                handles
                    .push(Builder::new().registry(&registry).spawn(async { tokio::task::yield_now().await }));
            }
            assert!(registry.memory_bytes() > start);
            for h in handles {
                h.await.unwrap();
            }
            assert_eq!(registry.memory_bytes(), start);
        }
    });
}
