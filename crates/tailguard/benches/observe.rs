//! Observation costs.
//!
//! - `instrumented_poll/*`: one poll of a future that is always pending, bare, wrapped in our
//!   `Instrumented` and in tokio-metrics' `TaskMonitor`, measured in the same run; `*_self_wake`
//!   variants wake themselves each poll (as `yield_now` does), adding the wake path.
//! - `os_runnable/*`: reading the OS's runnable count from `/proc/loadavg` (open each time, or
//!   kept open) vs `/proc/stat`'s `procs_running`.
//! - `cpu_cost/*`, after the criterion groups (only under `cargo bench`): the CPU cost of the
//!   runtime probe and of the run-queue sampler at 1 kHz and 200 Hz, and of a bare 1 ms sleep
//!   loop (the floor of any 1 kHz timer), as extra process CPU per second of wall time against
//!   an idle 2-worker runtime.

use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use tailguard::clock::process_cpu_time;
use tailguard::observe::run_queue::{
    LoadavgReader, RunQueueConfig, RunQueueSampler, read_loadavg_running, read_procs_running,
};
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

/// Extra process CPU, in % of one core, that the background work started by `start` costs on an
/// idle 2-worker runtime, against the same runtime alone, over `SECONDS` each.
fn cpu_cost<T>(name: &str, start: impl FnOnce(&tokio::runtime::Handle) -> T) {
    const SECONDS: u64 = 3;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let cpu_over = || {
        let start = process_cpu_time();
        std::thread::sleep(Duration::from_secs(SECONDS));
        process_cpu_time() - start
    };
    std::thread::sleep(Duration::from_millis(300));
    let idle = cpu_over();
    let running = start(runtime.handle());
    std::thread::sleep(Duration::from_millis(300));
    let busy = cpu_over();
    drop(running);
    let percent = busy.saturating_sub(idle).as_secs_f64() / SECONDS as f64 * 100.0;
    println!(
        "{name}: {percent:.3} % of one core (process CPU {:.3} ms/s idle, {:.3} ms/s with it)",
        idle.as_secs_f64() * 1e3 / SECONDS as f64,
        busy.as_secs_f64() * 1e3 / SECONDS as f64,
    );
}

/// A plain thread sleeping 1 ms at a time: the floor any 1 kHz timer pays on this machine.
struct SleepLoop(Arc<AtomicBool>, Option<std::thread::JoinHandle<()>>);

impl SleepLoop {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let for_thread = stop.clone();
        let thread = std::thread::spawn(move || {
            while !for_thread.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Self(stop, Some(thread))
    }
}

impl Drop for SleepLoop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
        if let Some(thread) = self.1.take() {
            thread.join().unwrap();
        }
    }
}

fn background_costs() {
    cpu_cost("cpu_cost/floor_sleep_loop_1000hz", |_| SleepLoop::start());
    for rate_hz in [1_000, 200] {
        cpu_cost(&format!("cpu_cost/runtime_probe_{rate_hz}hz"), |handle| {
            RuntimeProbe::start(handle, ProbeConfig::with_rate_hz(rate_hz)).unwrap()
        });
        cpu_cost(&format!("cpu_cost/runtime_probe_with_run_queue_{rate_hz}hz"), |handle| {
            RuntimeProbe::start_with_run_queue(handle, ProbeConfig::with_rate_hz(rate_hz)).unwrap()
        });
        cpu_cost(&format!("cpu_cost/run_queue_sampler_{rate_hz}hz"), |handle| {
            let config = RunQueueConfig { rate_hz, ..RunQueueConfig::default() };
            RunQueueSampler::start_with_runtime(config, handle).unwrap()
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = instrumented_poll, os_runnable
}

fn main() {
    benches();
    if std::env::args().any(|a| a == "--bench") {
        background_costs();
    }
    Criterion::default().configure_from_args().final_summary();
}
