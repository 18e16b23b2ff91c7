//! One measured window: a plan's elastic work started, the foreground warmed up and measured
//! with a sampler beside it, the elastic work stopped and its backups verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tailguard::clock::process_cpu_time;
use tailguard::elastic::{ControllerKind, LatencySignal, MergedSignal, utilization};
use tailguard::histogram::{HistogramSnapshot, WindowedHistogram};
use tailguard::observe::RuntimeProbe;

use super::args::DemoArgs;
use super::bench::Bench;
use super::elastic::ElasticRun;
use super::machine::CpuTimes;
use super::plan::Plan;
use super::progress::Progress;
use super::summary::Measured;
use crate::choices::SignalChoice;
use crate::error::CliError;
use crate::report::{self, Foreground, LatencyPartsMs, ModeResult, SeriesPoint};
use crate::workload::generator::{self, GeneratorConfig, GeneratorReport, LatencyParts, RateSchedule};

/// The longest warm-up of the baseline: it has no limiter to settle, only the generator and the
/// probe's window.
pub const BASELINE_WARMUP: Duration = Duration::from_secs(1);

/// How long a window of `plan` warms up: `--warmup`, at most [`BASELINE_WARMUP`] without
/// elastic work, and for the utilisation peer at least one period and [`PEER_WARMUP_MARGIN`],
/// so that its window is measured after its first adjustment, not at its initial share.
fn warmup(args: &DemoArgs, plan: &Plan, runs_elastic: bool) -> Duration {
    match plan.controller {
        _ if !runs_elastic => args.warmup.min(BASELINE_WARMUP),
        ControllerKind::Utilization { period } => {
            args.warmup.max(period.max(utilization::MIN_PERIOD) + PEER_WARMUP_MARGIN)
        }
        _ => args.warmup,
    }
}

/// Beyond one period, the utilisation peer's warm-up covers its first tick (which starts the
/// period) and the start of its elastic work.
pub const PEER_WARMUP_MARGIN: Duration = Duration::from_millis(500);

/// What the window's latency controllers steer by: the probe; with `--signal tasks` the
/// service's request tasks merged with the probe (the same quantity, wake→poll, which the probe
/// keeps alive between requests); with `threads` a thread probe's overshoot merged with it; with
/// `requests` the service's request latency alone.
fn steering_signal(bench: &Bench, args: &DemoArgs, probe: &RuntimeProbe) -> Arc<dyn LatencySignal> {
    match (args.signal, &bench.signal_window) {
        (SignalChoice::Tasks | SignalChoice::Threads, Some(beside)) => {
            let beside: Arc<dyn LatencySignal> = Arc::clone(beside) as _;
            Arc::new(MergedSignal::new(vec![probe.signal(), beside]))
        }
        (SignalChoice::Requests, Some(requests)) => Arc::clone(requests) as _,
        _ => probe.signal(),
    }
}

/// Where one measured window stands in the run.
pub struct Window {
    /// Its number in the run, from 0.
    pub index: usize,
    /// Its round, from 0.
    pub round: usize,
    /// Its place in the round's order, from 0.
    pub position: usize,
    /// How progress names it.
    pub label: String,
}

/// One window as it ran.
pub struct WindowRun {
    pub measured: Measured,
    /// Ctrl-C ended the measurement early.
    pub cut_short: bool,
    /// Backups abandoned unfinished on Ctrl-C.
    pub abandoned: u64,
}

/// Runs one window: starts the plan's elastic work, warms up, measures the foreground for
/// `duration` with a sampler beside it, then stops the elastic work and verifies its backups.
///
/// # Errors
///
/// The probe, the sampler or the elastic work cannot start, or a backup fails.
pub fn run(
    bench: &Bench,
    args: &DemoArgs,
    plan: &Plan,
    duration: Duration,
    window: &Window,
    progress: &Progress,
) -> Result<WindowRun, CliError> {
    let (index, label) = (window.index, window.label.as_str());
    let probe =
        RuntimeProbe::start(bench.runtime.handle(), crate::choices::probe_config(args.probe_idle_rate))
            .map_err(|e| format!("--probe-idle-rate: {e}"))?;
    let schedule = match plan.loads[..] {
        [load] => RateSchedule::constant(load * bench.rate_at_full_load)?,
        _ => RateSchedule::from_loads(&plan.loads, bench.rate_at_full_load)?,
    };
    let mut gen_config =
        GeneratorConfig::new(schedule, duration, args.seed.wrapping_add(index as u64), args.keys);
    gen_config.interval = args.interval;
    gen_config.dispatch_priority = bench.dispatch_priority;
    let mut elastic = if plan.mode.runs_elastic() {
        Some(ElasticRun::start(bench, plan, window.round, args, steering_signal(bench, args, &probe))?)
    } else {
        None
    };
    let started = match &elastic {
        Some(run) if !run.first_backups().is_empty() => {
            format!("backups in progress: {}", run.first_backups().join(", "))
        }
        Some(_) => "elastic work running".to_owned(),
        None => "foreground only".to_owned(),
    };
    progress.start(index, label, &started);
    let cancelled = Arc::clone(&bench.cancelled);
    let warmup = warmup(args, plan, elastic.is_some());
    if warmup > Duration::ZERO {
        // Warm up: foreground and elastic work run, the limiter's window fills and its share
        // settles; nothing of this part is measured.
        progress.update(index, label, Duration::ZERO, duration, "warming up");
        let mut warm = gen_config.clone();
        warm.duration = warmup;
        warm.seed = !gen_config.seed;
        let cancelled = Arc::clone(&cancelled);
        generator::run(&bench.service, &warm, Duration::from_millis(500), &move || {
            cancelled.load(Ordering::Relaxed)
        });
    }
    if let Some(run) = elastic.as_mut() {
        run.begin_measurement();
    }
    // The measured window: process CPU, the machine's idle time and the scheduling latencies
    // are read at its two ends, nothing of the warm-up or the sampler's shutdown in between.
    let (cpu_before, machine_before) = (process_cpu_time(), CpuTimes::now());
    let sched_before = probe.window().cumulative().snapshot();
    let started = Instant::now();
    // The sampler reads the scheduling window, the limiter and the elastic meter once per interval
    // on its own thread while the generator runs on this one.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        let window = Arc::clone(probe.window());
        let beside = bench.signal_window.clone();
        let elastic = elastic.as_ref().map(ElasticRun::observer);
        let (interval, cores, name) = (args.interval, bench.cores, label.to_owned());
        let quiet_progress = Progress::new(progress.total(), args.quiet);
        std::thread::Builder::new().name("demo-sampler".into()).spawn(move || {
            let mut samples = Vec::new();
            let mut next = started + interval;
            let mut last_cpu = elastic.as_ref().map_or(0, |e| e.cpu_nanos());
            let mut last_sched = window.cumulative().snapshot();
            let mut last_beside = beside.as_ref().map(|w| w.cumulative().snapshot());
            let mut last_machine = CpuTimes::now();
            while sampling.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    continue;
                }
                next += interval;
                // The interval's own p99: the limiter's window would show it 2.5 s late.
                let sched_p99_ms = interval_p99_ms(&window, &mut last_sched);
                let signal_p99_ms = beside
                    .as_ref()
                    .zip(last_beside.as_mut())
                    .and_then(|(beside, last)| interval_p99_ms(beside, last));
                let cpu = elastic.as_ref().map_or(0, |e| e.cpu_nanos());
                let used = (cpu - last_cpu) as f64 / (interval.as_secs_f64() * 1e9 * cores);
                last_cpu = cpu;
                let limiter = elastic.as_ref().and_then(|e| e.limiter());
                let share = limiter.as_ref().map(|l| l.share);
                let machine = CpuTimes::now();
                let steal = last_machine.zip(machine).and_then(|(before, after)| after.steal_since(&before));
                last_machine = machine;
                samples.push(Sample {
                    sched_p99_ms,
                    signal_p99_ms,
                    share,
                    target_ms: limiter.as_ref().map(|l| l.working_target.as_secs_f64() * 1e3),
                    knee: limiter.as_ref().and_then(|l| l.knee),
                    elastic_cpu_share: elastic.as_ref().map(|_| used),
                    steal,
                });
                let detail = match share {
                    Some(share) => format!("share {:.0}%  elastic CPU {:.0}%", share * 100.0, used * 100.0),
                    None if elastic.is_some() => format!("elastic CPU {:.0}%", used * 100.0),
                    None => String::new(),
                };
                quiet_progress.update(index, &name, started.elapsed(), duration, &detail);
            }
            samples
        })?
    };
    let fg = generator::run(&bench.service, &gen_config, Duration::from_secs(2), &move || {
        cancelled.load(Ordering::Relaxed)
    });
    let wall = started.elapsed();
    let cpu_total = process_cpu_time().saturating_sub(cpu_before);
    let machine = machine_before.zip(CpuTimes::now());
    let machine_idle = machine.and_then(|(before, after)| after.idle_since(&before));
    let machine_steal = machine.and_then(|(before, after)| after.steal_since(&before));
    let sched = probe.window().cumulative().snapshot().since(&sched_before);
    if let Some(run) = elastic.as_mut() {
        run.end_measurement();
    }
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.join().map_err(|_| "the sampler thread panicked")?;
    let (mut abandoned, mut ticks) = (0, Vec::new());
    let elastic_result = match elastic {
        Some(run) => {
            let finished = run.finish(bench)?;
            (abandoned, ticks) = (finished.abandoned, finished.ticks);
            Some(finished.report)
        }
        None => None,
    };
    drop(probe);
    let window_figures = WindowFigures {
        sched_p99_ms: sched.p99().map(|d| d.as_secs_f64() * 1e3),
        process_cpu_share: cpu_total.as_secs_f64() / (wall.as_secs_f64().max(1e-9) * bench.cores),
        machine_idle,
        machine_steal,
    };
    let mut result = assemble(bench, plan, &fg, &samples, elastic_result, &window_figures);
    result.ticks = ticks;
    (result.round, result.position) = (window.round as u32 + 1, window.position as u32 + 1);
    Ok(WindowRun { measured: Measured { result, latency: fg.latency }, cut_short: fg.cancelled, abandoned })
}

/// The p99 of `window`'s samples since `last`, ms; `last` moves to now.
fn interval_p99_ms(window: &WindowedHistogram, last: &mut HistogramSnapshot) -> Option<f64> {
    let now = window.cumulative().snapshot();
    let p99 = now.since(last).p99();
    *last = now;
    p99.map(|d| d.as_secs_f64() * 1e3)
}

/// The parts of a latency in milliseconds.
fn parts_ms(parts: LatencyParts) -> LatencyPartsMs {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    LatencyPartsMs { lag: ms(parts.lag), queue: ms(parts.queue), served: ms(parts.served) }
}

/// What the sampler saw in one interval.
struct Sample {
    sched_p99_ms: Option<f64>,
    signal_p99_ms: Option<f64>,
    share: Option<f64>,
    target_ms: Option<f64>,
    knee: Option<f64>,
    elastic_cpu_share: Option<f64>,
    steal: Option<f64>,
}

/// Figures read at the two ends of a measured window.
struct WindowFigures {
    sched_p99_ms: Option<f64>,
    process_cpu_share: f64,
    machine_idle: Option<f64>,
    machine_steal: Option<f64>,
}

fn assemble(
    bench: &Bench,
    plan: &Plan,
    fg: &GeneratorReport,
    samples: &[Sample],
    elastic: Option<report::Elastic>,
    window: &WindowFigures,
) -> ModeResult {
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let latency = &fg.latency;
    let elastic_share = elastic.as_ref().map_or(0.0, |e| e.cpu_share);
    let shares: Vec<f64> = samples.iter().filter_map(|s| s.share).collect();
    let elastic = elastic.map(|mut e| {
        e.mean_share = (!shares.is_empty()).then(|| shares.iter().sum::<f64>() / shares.len() as f64);
        e
    });
    let series = fg
        .intervals
        .iter()
        .enumerate()
        .map(|(i, interval)| {
            let sample = samples.get(i);
            SeriesPoint {
                t_secs: (interval.start + interval.length).as_secs_f64(),
                fg_rps: interval.throughput_per_sec,
                fg_p50_ms: interval.latency.p50.map(|d| d.as_secs_f64() * 1e3),
                fg_p99_ms: interval.latency.p99.map(|d| d.as_secs_f64() * 1e3),
                sched_p99_ms: sample.and_then(|s| s.sched_p99_ms),
                share: sample.and_then(|s| s.share),
                elastic_cpu_share: sample.and_then(|s| s.elastic_cpu_share),
                steal: sample.and_then(|s| s.steal),
                target_ms: sample.and_then(|s| s.target_ms),
                knee: sample.and_then(|s| s.knee),
                signal_p99_ms: sample.and_then(|s| s.signal_p99_ms),
                fg_parts_p99_ms: Some(parts_ms(interval.parts)),
                offered_load: Some(interval.offered_rate_per_sec / bench.rate_at_full_load),
            }
        })
        .collect();
    ModeResult {
        name: plan.name.clone(),
        round: 1,
        position: 1,
        foreground: Foreground {
            requests: fg.completed,
            throughput_rps: fg.completed as f64 / fg.elapsed.as_secs_f64().max(1e-9),
            p50_ms: ms(latency.p50()),
            p99_ms: ms(latency.p99()),
            p999_ms: ms(latency.p999()),
            max_ms: ms(latency.max()),
            cpu_share: (window.process_cpu_share - elastic_share).max(0.0),
            offered: fg.offered,
            failed: fg.failed,
            late_starts: fg.late_starts,
            max_start_lag_ms: fg.max_start_lag.as_secs_f64() * 1e3,
            parts_p99_ms: Some(parts_ms(fg.parts)),
        },
        sched_p99_ms: window.sched_p99_ms,
        process_cpu_share: window.process_cpu_share,
        machine_idle: window.machine_idle,
        machine_steal: window.machine_steal,
        elastic,
        step: None,
        series,
        latency_cdf: cdf(latency),
        ticks: Vec::new(),
    }
}

/// The latency CDF at each non-empty bucket's upper bound, in milliseconds.
fn cdf(latency: &HistogramSnapshot) -> Vec<(f64, f64)> {
    let total = latency.count().max(1) as f64;
    let mut below = 0u64;
    latency
        .buckets()
        .map(|(_, high, count)| {
            below += count;
            (high as f64 / 1e6, below as f64 / total)
        })
        .collect()
}

/// One line on how a window went, for progress.
pub fn summary_line(mode: &ModeResult) -> String {
    let fg = &mode.foreground;
    let mut line = format!("p99 {} ms, {:.0} req/s", report::fmt_ms(fg.p99_ms), fg.throughput_rps);
    if let Some(e) = &mode.elastic {
        line.push_str(&format!(
            ", elastic CPU {}, {:.0} keys/s",
            report::fmt_pct(e.cpu_share),
            e.keys_per_sec
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_ends_at_one() {
        let h = tailguard::histogram::Histogram::new();
        for v in [1_000, 2_000, 3_000_000] {
            h.record(v);
        }
        let points = cdf(&h.snapshot());
        assert_eq!(points.len(), 3);
        assert!((points[2].1 - 1.0).abs() < 1e-12);
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }
}
