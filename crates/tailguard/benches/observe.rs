//! Observation costs.
//!
//! - `instrumented_poll/*`: one poll of a future that is always pending, bare, wrapped in our
//!   `Instrumented` and in tokio-metrics' `TaskMonitor`, measured in the same run; `*_self_wake`
//!   variants wake themselves each poll (as `yield_now` does), adding the wake path.
//! - `os_runnable/*`: reading the OS's runnable count from `/proc/loadavg` (open each time, or
//!   kept open) vs `/proc/stat`'s `procs_running`.
//! - After the criterion groups (only under `cargo bench`): the runtime probe's CPU cost at
//!   1 kHz, as extra process CPU time per second of wall time against an idle runtime.

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use tailguard::clock::process_cpu_time;
use tailguard::observe::run_queue::{LoadavgReader, read_loadavg_running, read_procs_running};
use tailguard::observe::runtime_probe::RuntimeProbe;
use tailguard::observe::{PollMonitor, PollMonitorConfig, ProbeConfig};

/// Never ready; wakes itself first when `self_wake`.
struct Pending {
    self_wake: bool,
}

impl Future for Pending {
    type Output = ();
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.self_wake {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

fn bench_polls<F: Future>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    future: F,
) {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    c.bench_function(name, |b| b.iter(|| black_box(future.as_mut().poll(&mut cx))));
}

fn instrumented_poll(c: &mut Criterion) {
    let mut group = c.benchmark_group("instrumented_poll");
    let ours = PollMonitor::new(PollMonitorConfig::default()).unwrap();
    let sampled = PollMonitor::new(PollMonitorConfig {
        cpu_sample_every: NonZeroU32::new(64),
        ..PollMonitorConfig::default()
    })
    .unwrap();
    let theirs = tokio_metrics::TaskMonitor::new();
    for self_wake in [false, true] {
        let suffix = if self_wake { "_self_wake" } else { "" };
        bench_polls(&mut group, &format!("bare{suffix}"), Pending { self_wake });
        bench_polls(&mut group, &format!("tailguard{suffix}"), ours.instrument(Pending { self_wake }));
        bench_polls(&mut group, &format!("tokio_metrics{suffix}"), theirs.instrument(Pending { self_wake }));
    }
    bench_polls(&mut group, "tailguard_cpu_every_64", sampled.instrument(Pending { self_wake: false }));
    group.finish();
}

fn os_runnable(c: &mut Criterion) {
    let mut group = c.benchmark_group("os_runnable");
    group.bench_function("loadavg_open_each_time", |b| b.iter(|| black_box(read_loadavg_running())));
    let mut reader = LoadavgReader::open();
    group.bench_function("loadavg_kept_open", |b| b.iter(|| black_box(reader.runnable())));
    group.bench_function("proc_stat_procs_running", |b| b.iter(|| black_box(read_procs_running())));
    group.finish();
}

/// Extra process CPU per second of wall time with a probe at `rate_hz` on an idle 2-worker runtime.
fn probe_cpu_cost(rate_hz: u32) {
    let seconds = 3;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let cpu_over = |d: Duration| {
        let start = process_cpu_time();
        std::thread::sleep(d);
        process_cpu_time() - start
    };
    std::thread::sleep(Duration::from_millis(300));
    let idle = cpu_over(Duration::from_secs(seconds));
    let probe = RuntimeProbe::start(runtime.handle(), ProbeConfig::with_rate_hz(rate_hz)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let probed = cpu_over(Duration::from_secs(seconds));
    let thread_cpu = probe.probe_thread_cpu();
    let ticks = probe.ticks();
    drop(probe);
    // The floor on this machine: a plain thread sleeping 1 ms at a time, doing nothing else.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sleeper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let sleeping = cpu_over(Duration::from_secs(seconds));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sleeper.join().unwrap();
    println!(
        "runtime_probe/floor_1khz_sleep_loop: a bare 1 ms sleep loop costs {:.3} % of one core",
        sleeping.saturating_sub(idle).as_secs_f64() / seconds as f64 * 100.0
    );
    let extra = probed.saturating_sub(idle).as_secs_f64() / seconds as f64;
    println!(
        "runtime_probe/cpu_cost_{rate_hz}hz: process CPU {:.3} ms/s idle, {:.3} ms/s probed => probe costs {:.3} % of \
         one core (probe thread alone: {:?} over {ticks} firings)",
        idle.as_secs_f64() * 1e3 / seconds as f64,
        probed.as_secs_f64() * 1e3 / seconds as f64,
        extra * 100.0,
        thread_cpu,
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = instrumented_poll, os_runnable
}

fn main() {
    benches();
    if std::env::args().any(|a| a == "--bench") {
        probe_cpu_cost(1_000);
        probe_cpu_cost(200);
    }
    Criterion::default().configure_from_args().final_summary();
}
