//! `tailguard observe`: a live view of this machine's scheduling latency.
//!
//! Starts a tokio runtime (`--workers`, default 2) with the runtime probe (which also samples
//! run-queue depths at each firing), a thread probe and PSI, optionally a synthetic CPU-bound load (`--load N`), and prints
//! once per `--interval` the latency quantiles each source saw during that interval, the mean
//! run-queue depths and PSI's `some avg10`. Ends after `--duration` or on Ctrl-C.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tailguard::histogram::{HistogramSnapshot, WindowedHistogram};
use tailguard::observe::psi;
use tailguard::observe::run_queue::RunQueueTick;
use tailguard::observe::runtime_probe::RuntimeProbe;
use tailguard::observe::thread_probe::ThreadProbe;
use tailguard::observe::{PollMonitor, PollMonitorConfig, ProbeConfig};

use crate::duration::parse_duration;
use crate::error::CliError;

/// Flags of `tailguard observe`.
#[derive(Debug, Args)]
pub(crate) struct ObserveArgs {
    /// How long to watch, e.g. 30s or 5m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// How often to print a row, e.g. 1s or 500ms (10ms ..= 1h).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    interval: Duration,
    /// Start N CPU-bound busy loops as a synthetic load (0: watch the machine as it is).
    #[arg(long, default_value_t = 0)]
    load: usize,
    /// Where the synthetic load runs.
    #[arg(long, value_enum, default_value_t = LoadKind::Tasks)]
    load_kind: LoadKind,
    /// Probe rate in Hz (1 ..= 10000).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Worker threads of the probed tokio runtime (1 ..= 1024).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Print one JSON object per interval instead of a table.
    #[arg(long)]
    json: bool,
}

/// Where `--load` runs its busy loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LoadKind {
    /// Instrumented tasks on the probed runtime, each spinning 5 ms per poll: raises the runtime
    /// probe, and adds a `tasks` row with the tasks' own wake→poll delays.
    Tasks,
    /// Plain OS threads spinning: raises OS run-queue depth and the thread probe.
    Threads,
}

/// How long a load task holds its worker per poll.
const LOAD_SLICE: Duration = Duration::from_millis(5);

/// Runs the command.
pub(crate) fn run(args: &ObserveArgs) -> Result<(), CliError> {
    if !(Duration::from_millis(10)..=Duration::from_secs(3600)).contains(&args.interval) {
        return Err(
            format!("--interval {:?} is out of range: use 10ms ..= 1h (default 1s)", args.interval).into()
        );
    }
    if !(1..=1024).contains(&args.workers) {
        return Err(format!("--workers {} is out of range: use 1 ..= 1024 (default 2)", args.workers).into());
    }
    if args.load > 4096 {
        return Err(format!("--load {} is too many busy loops: use at most 4096", args.load).into());
    }
    let probe_config = ProbeConfig::with_rate_hz(args.rate);
    probe_config.validate().map_err(|e| format!("--rate: {e}"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .thread_name("tailguard-worker")
        .enable_all()
        .build()?;
    // The probe thread also samples run-queue depths at each firing: no sampler thread of its own.
    let runtime_probe = RuntimeProbe::start_with_run_queue(runtime.handle(), probe_config)?;
    let thread_probe = ThreadProbe::start(probe_config)?;

    let stop_load = Arc::new(AtomicBool::new(false));
    let monitor = PollMonitor::new(PollMonitorConfig::default())?;
    let load_threads = start_load(args, &runtime, &monitor, &stop_load)?;

    let (interrupt_tx, interrupt_rx) = mpsc::channel::<()>();
    runtime.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = interrupt_tx.send(());
        }
    });

    let mut sources: Vec<(&str, &WindowedHistogram)> =
        vec![("runtime", runtime_probe.window()), ("thread", thread_probe.window())];
    if args.load > 0 && args.load_kind == LoadKind::Tasks {
        // The load tasks are instrumented: their own wake→poll delays.
        sources.push(("tasks", monitor.scheduling_window()));
    }
    let run_queue_totals = || runtime_probe.run_queue_totals().unwrap_or_default();
    let mut previous_run_queue = run_queue_totals();
    let mut previous: Vec<HistogramSnapshot> =
        sources.iter().map(|(_, w)| w.cumulative().snapshot()).collect();
    if !args.json {
        print_header(args);
    }
    let start = Instant::now();
    let end = start + args.duration;
    let mut next_row = start + args.interval;
    loop {
        let wait = next_row.min(end).saturating_duration_since(Instant::now());
        let interrupted = match interrupt_rx.recv_timeout(wait) {
            Ok(()) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // The Ctrl-C task could not install its handler; keep going until --duration.
                std::thread::sleep(wait);
                false
            }
        };
        let now = Instant::now();
        let rows: Vec<(&str, HistogramSnapshot)> = sources
            .iter()
            .zip(previous.iter_mut())
            .map(|((name, window), prev)| {
                let current = window.cumulative().snapshot();
                let delta = current.since(prev);
                *prev = current;
                (*name, delta)
            })
            .collect();
        let row = Row {
            elapsed: now - start,
            rows,
            run_queue: {
                let totals = run_queue_totals();
                let interval = totals.since(&previous_run_queue);
                previous_run_queue = totals;
                interval
            },
            psi_some_avg10: psi::read_cpu_pressure().map(|p| p.some.avg10),
        };
        if args.json {
            row.print_json()
        } else {
            row.print_table()
        }
        if interrupted || now >= end {
            break;
        }
        next_row += args.interval;
    }

    stop_load.store(true, Ordering::Relaxed);
    for thread in load_threads {
        let _ = thread.join();
    }
    drop((runtime_probe, thread_probe));
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

fn start_load(
    args: &ObserveArgs,
    runtime: &tokio::runtime::Runtime,
    monitor: &PollMonitor,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, CliError> {
    let mut threads = Vec::new();
    for i in 0..args.load {
        let stop = stop.clone();
        match args.load_kind {
            LoadKind::Tasks => {
                runtime.spawn(monitor.instrument(async move {
                    while !stop.load(Ordering::Relaxed) {
                        spin(LOAD_SLICE);
                        tokio::task::yield_now().await;
                    }
                }));
            }
            LoadKind::Threads => {
                let thread =
                    std::thread::Builder::new().name(format!("tailguard-load-{i}")).spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            spin(LOAD_SLICE);
                        }
                    })?;
                threads.push(thread);
            }
        }
    }
    Ok(threads)
}

fn spin(for_how_long: Duration) {
    let start = Instant::now();
    while start.elapsed() < for_how_long {
        std::hint::spin_loop();
    }
}

fn print_header(args: &ObserveArgs) {
    let load = if args.load == 0 {
        "no synthetic load".to_string()
    } else {
        format!("--load {} {:?}", args.load, args.load_kind).to_lowercase()
    };
    println!(
        "tailguard observe: {} workers, probes at {} Hz, {load}; every {:?} for {:?} (Ctrl-C stops)",
        args.workers, args.rate, args.interval, args.duration
    );
    println!(
        "{:>7}  {:<8} {:>7} {:>9} {:>9} {:>9} {:>9}  {:>7} {:>9} {:>7}",
        "elapsed", "source", "samples", "p50", "p99", "p99.9", "max", "os runq", "tokio q/w", "psi10"
    );
}

struct Row<'a> {
    elapsed: Duration,
    rows: Vec<(&'a str, HistogramSnapshot)>,
    run_queue: Option<RunQueueTick>,
    psi_some_avg10: Option<f64>,
}

impl Row<'_> {
    fn print_table(&self) {
        let rq = self.run_queue.unwrap_or_default();
        for (name, h) in &self.rows {
            println!(
                "{:>6.1}s  {:<8} {:>7} {:>9} {:>9} {:>9} {:>9}  {:>7} {:>9} {:>7}",
                self.elapsed.as_secs_f64(),
                name,
                h.count(),
                human(h.p50()),
                human(h.p99()),
                human(h.p999()),
                human(h.max()),
                fixed(rq.os_runnable, 2),
                fixed(rq.tokio_global_queue_per_worker(), 2),
                self.psi_some_avg10.map_or_else(|| "-".into(), |v| format!("{v:.2}%")),
            );
        }
    }

    fn print_json(&self) {
        let micros = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e6);
        let sources: serde_json::Map<String, serde_json::Value> = self
            .rows
            .iter()
            .map(|(name, h)| {
                let value = serde_json::json!({
                    "samples": h.count(),
                    "p50_us": micros(h.p50()),
                    "p99_us": micros(h.p99()),
                    "p999_us": micros(h.p999()),
                    "max_us": micros(h.max()),
                });
                ((*name).to_string(), value)
            })
            .collect();
        let rq = self.run_queue.unwrap_or_default();
        let line = serde_json::json!({
            "elapsed_s": self.elapsed.as_secs_f64(),
            "scheduling_latency": sources,
            "run_queue": {
                "os_runnable_mean": rq.os_runnable,
                "tokio_global_queue_mean": rq.tokio_global_queue,
                "tokio_workers": rq.tokio_workers,
                "samples": rq.samples,
            },
            "psi_cpu_some_avg10_percent": self.psi_some_avg10,
        });
        println!("{line}");
    }
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

/// A duration in the unit that keeps it short: `850ns`, `12.3µs`, `4.56ms`, `1.20s`.
fn human(value: Option<Duration>) -> String {
    let Some(d) = value else { return "-".into() };
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        format!("{nanos}ns")
    } else if nanos < 1_000_000 {
        format!("{:.1}µs", nanos as f64 / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.2}ms", nanos as f64 / 1e6)
    } else {
        format!("{:.2}s", nanos as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ObserveArgs,
    }

    #[test]
    fn formats_durations_compactly() {
        assert_eq!(human(None), "-");
        assert_eq!(human(Some(Duration::from_nanos(850))), "850ns");
        assert_eq!(human(Some(Duration::from_nanos(12_345))), "12.3µs");
        assert_eq!(human(Some(Duration::from_micros(4_560))), "4.56ms");
        assert_eq!(human(Some(Duration::from_millis(1_200))), "1.20s");
    }

    #[test]
    fn runs_briefly_with_each_load_and_ends_on_its_own() {
        for kind in ["tasks", "threads"] {
            let w = Wrapper::try_parse_from([
                "x",
                "--duration",
                "60ms",
                "--interval",
                "20ms",
                "--load",
                "1",
                "--load-kind",
                kind,
                "--json",
            ])
            .unwrap();
            run(&w.args).unwrap();
        }
    }

    #[test]
    fn parses_flags_and_refuses_bad_ones() {
        let w = Wrapper::try_parse_from(["x", "--duration", "2m", "--load", "3", "--json"]).unwrap();
        assert_eq!(w.args.duration, Duration::from_secs(120));
        assert_eq!((w.args.load, w.args.json, w.args.rate), (3, true, 1000));
        assert!(Wrapper::try_parse_from(["x", "--interval", "10"]).is_err());

        let bad_rate = Wrapper::try_parse_from(["x", "--rate", "0"]).unwrap();
        let err = run(&bad_rate.args).unwrap_err().to_string();
        assert!(err.contains("--rate") && err.contains("1 ..= 10000 Hz"), "{err}");
        let bad_interval = Wrapper::try_parse_from(["x", "--interval", "1ms"]).unwrap();
        assert!(run(&bad_interval.args).unwrap_err().to_string().contains("10ms ..= 1h"));
        let bad_workers = Wrapper::try_parse_from(["x", "--workers", "0"]).unwrap();
        assert!(run(&bad_workers.args).unwrap_err().to_string().contains("--workers 0"));
    }
}
