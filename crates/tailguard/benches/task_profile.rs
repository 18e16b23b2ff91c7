//! Task profile costs.
//!
//! - `pause table` (printed first, only under `cargo bench`): for 1k, 10k, 100k and 1M live,
//!   idle tracked tasks on a 2-worker runtime, the longest pause (the interval during which no
//!   tracked task can start a poll) and the total time of the low-pause and the stop-the-world
//!   profile, medians over a few profiles each, every profile starting with cold caches. Set
//!   `TASK_PROFILE_MAX` to stop at a smaller count.
//! - `task_poll/*`: one poll of an always-pending future, bare and wrapped in `Tracked`
//!   (gate + barrier + poll bookkeeping + two clock reads), the same with a manual clock, and
//!   the barrier alone, with no profile running; with the `tracing` feature, `Tracked` over
//!   `capture::Scheduled` (the stack a service puts on a request hop), plain and waking itself.
//!
//! Figures on the project's 2-core VM (`cargo bench --bench task_profile -- --warm-up-time 1
//! --measurement-time 3`): low-pause pause 5.0 / 5.5 / 4.9 / 5.6 µs for 1k / 10k / 100k / 1M
//! tasks against 0.23 / 2.0 / 21 / 409 ms stopping the world; total time 0.38 / 3.5 / 35 /
//! 558 ms against 0.37 / 3.1 / 35 / 542 ms. Polls: bare 0.83 ns, tracked 71 ns (13.8 ns with a
//! manual clock), barrier alone 0.95 ns.

use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::Criterion;
use tailguard::clock::ManualClock;
use tailguard::task::{Builder, Registry, TaskProfile};

/// Never ready, never wakes.
struct Pending;

impl Future for Pending {
    type Output = ();
    #[inline]
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

/// Never ready; wakes itself each poll (as `yield_now` does).
#[cfg(feature = "tracing")]
struct SelfWake;

#[cfg(feature = "tracing")]
impl Future for SelfWake {
    type Output = ();
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

fn task_poll(c: &mut Criterion) {
    let mut group = c.benchmark_group("task_poll");
    let mut cx = Context::from_waker(Waker::noop());
    let mut bare = pin!(Pending);
    group.bench_function("bare", |b| b.iter(|| black_box(bare.as_mut().poll(&mut cx))));
    let registry = Registry::new();
    let tracked = Builder::new().registry(&registry).track(Pending);
    let task = tracked.task();
    let mut tracked = pin!(tracked);
    group.bench_function("tracked", |b| b.iter(|| black_box(tracked.as_mut().poll(&mut cx))));
    // The same with a manual clock: the tracking work without the two OS clock reads.
    let manual = Registry::with_clock(ManualClock::new().shared());
    let mut tracked_manual = pin!(Builder::new().registry(&manual).track(Pending));
    group.bench_function("tracked_manual_clock", |b| {
        b.iter(|| black_box(tracked_manual.as_mut().poll(&mut cx)))
    });
    #[cfg(feature = "tracing")]
    {
        // The stack a service puts on each request hop: a tracked task over a capture-scheduled
        // future, both on the system clock; plain, and waking itself each poll.
        use tailguard::capture::Scheduled;
        let mut stacked = pin!(Builder::new().registry(&registry).track(Scheduled::new(Pending)));
        group.bench_function("tracked_over_scheduled", |b| {
            b.iter(|| black_box(stacked.as_mut().poll(&mut cx)))
        });
        let mut stacked_wake = pin!(Builder::new().registry(&registry).track(Scheduled::new(SelfWake)));
        group.bench_function("tracked_over_scheduled_self_wake", |b| {
            b.iter(|| black_box(stacked_wake.as_mut().poll(&mut cx)))
        });
    }
    // Make the task's record word current (a profile ran once), as in a long-lived program.
    drop(registry.profile());
    group.bench_function("barrier_only", |b| b.iter(|| black_box(&task).__barrier()));
    group.finish();
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// Writes one byte per cache line of a 64 MiB buffer, so every profile starts with cold caches,
/// as the first after a while would. (Warm, the low-pause cut takes under 1 µs at 1k tasks; the
/// profile of a larger registry evicts what the next cut touches, which made the warm pause
/// look as if it grew with the count until it reached the cold figure.)
fn evict_caches(junk: &mut [u8]) {
    for (i, byte) in junk.iter_mut().enumerate().step_by(64) {
        *byte = byte.wrapping_add(i as u8);
    }
    black_box(junk);
}

fn pause_table() {
    let max: usize = std::env::var("TASK_PROFILE_MAX").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let registry = Registry::new();
    let polled = Arc::new(AtomicU64::new(0));
    println!("task profile: pause and total time, medians (2-worker runtime, idle tasks)");
    println!(
        "{:>9} | {:>22} {:>14} | {:>14} {:>14} | {:>9}",
        "tasks", "low-pause pause (max)", "low-pause total", "stw pause", "stw total", "build"
    );
    let mut live = 0usize;
    let mut junk = vec![0u8; 64 << 20];
    for count in [1_000usize, 10_000, 100_000, 1_000_000] {
        if count > max {
            break;
        }
        let build = std::time::Instant::now();
        for _ in live..count {
            let polled = Arc::clone(&polled);
            rt.spawn(Builder::new().registry(&registry).track(async move {
                polled.fetch_add(1, Ordering::Relaxed);
                std::future::pending::<()>().await;
            }));
        }
        live = count;
        // Wait until every task has run up to its await (idle), without sleeping in a loop of
        // guesses: poll the counter.
        while polled.load(Ordering::Relaxed) < count as u64 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let build = build.elapsed();
        let reps = if count >= 1_000_000 { 3 } else { 7 };
        let mut runs: Vec<(TaskProfile, TaskProfile)> = Vec::new();
        for _ in 0..reps {
            evict_caches(&mut junk);
            let low_pause = registry.profile();
            evict_caches(&mut junk);
            runs.push((low_pause, registry.profile_stop_the_world()));
        }
        assert!(runs.iter().all(|(a, b)| a.tasks.len() == count && b.tasks.len() == count));
        let lp_pause_max = runs.iter().map(|r| r.0.longest_pause).max().unwrap_or_default();
        let lp_pause = median(runs.iter().map(|r| r.0.longest_pause).collect());
        let lp_total = median(runs.iter().map(|r| r.0.elapsed).collect());
        let stw_pause = median(runs.iter().map(|r| r.1.longest_pause).collect());
        let stw_total = median(runs.iter().map(|r| r.1.elapsed).collect());
        println!(
            "{count:>9} | {:>22} {:>14} | {:>14} {:>14} | {:>9}",
            format!("{lp_pause:.1?} ({lp_pause_max:.0?})"),
            format!("{lp_total:.1?}"),
            format!("{stw_pause:.1?}"),
            format!("{stw_total:.1?}"),
            format!("{build:.1?}")
        );
        drop(runs);
    }
    let teardown = std::time::Instant::now();
    drop(rt);
    assert!(registry.is_empty());
    println!("teardown of {live} tasks: {:.1?}", teardown.elapsed());
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // `cargo test --benches` runs this with `--bench` absent: skip the slow table there.
    if std::env::args().any(|a| a == "--bench") {
        pause_table();
    }
    task_poll(&mut c);
    c.final_summary();
}
