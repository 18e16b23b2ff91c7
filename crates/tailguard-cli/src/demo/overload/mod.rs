//! `tailguard demo --scenario overload`: foreground offered above capacity, without and with
//! the admission work queue ([`tailguard::admission`]).
//!
//! Three seeded Poisson streams, merged by time, offer the key-value service more than it can
//! serve: heartbeats (tenant 0, [`Priority::HIGH`], 1 % of capacity) and two tenants at normal
//! priority, A (tenant 1, weight 2) and B (tenant 2, weight 1), each offered half of
//! `--overload` times the calibrated capacity (65 % each by default). The same schedule runs
//! once per mode:
//!
//! - `no-queue`: each arrival spawns a task that calls the service at once. The runtime's
//!   queues grow without bound and every class waits in them alike.
//! - `queue`: each arrival is [submitted](WorkQueue::submit) to a [`WorkQueue`] and becomes a
//!   task only once admitted, at most `--max-wait` after its scheduled arrival; past that it is
//!   refused (counted as rejected, never as completed). A worker that finishes a request thus
//!   starts the next one, in the queue's order, on its own run queue. The slots follow the
//!   runnable tasks per worker: tokio's global queue plus the admitted requests
//!   ([`WorkQueueConfig::count_admitted`]), sampled every 1 ms. Tenants are weighted 2:1, and
//!   the permit is charged with the time the request's hops ran.
//!
//! Each mode runs `--warmup` and then its measured window of `--duration` on one continuous
//! schedule, so the backlog the warm-up builds is part of the overload. Every figure covers
//! events inside the window: arrivals scheduled in it (offered), completions and refusals that
//! happen in it, the latencies of those completions from their *scheduled* arrival (no
//! coordinated omission), and the requests left in flight when it ends (backlog). After the
//! window, dispatching stops, requests not yet started are dropped, and the mode waits (at most
//! [`DRAIN`]) for those in flight, so that modes never overlap.
mod analysis;
mod runner;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use self::analysis::{assess, summary_line};
use self::runner::{Setup, measure};
use super::args::DemoArgs;
use super::bench::Bench;
use super::progress::Progress;
use crate::error::CliError;
use crate::report::{self, DemoReport, OverloadMode, fmt_ms};
use crate::workload::arrivals::{Class, HEARTBEAT_LOAD, OverloadSchedule};

/// A capacity trial whose completions fall below this fraction of its offered rate found the
/// service saturated.
const SATURATED: f64 = 0.95;
/// Factor by which each capacity trial offers more than the previous one.
const TRIAL_STEP: f64 = 1.5;
/// Most capacity trials.
const TRIAL_ROUNDS: u64 = 3;
/// Unmeasured start of the capacity trial, long enough to build a backlog.
const TRIAL_WARMUP: Duration = Duration::from_millis(500);
/// Measured part of the capacity trial.
const TRIAL_WINDOW: Duration = Duration::from_secs(1);
/// Longest wait for the requests in flight after a mode's window.
pub const DRAIN: Duration = Duration::from_secs(5);
/// A request dispatched later than this after its scheduled arrival is a late start.
const LATE: Duration = Duration::from_millis(1);
/// How often the sampler reads the queue's slot count.
const SLOT_SAMPLE: Duration = Duration::from_millis(10);
/// How often the sampler reads the queue's run-queue signal (a snapshot takes its lock).
const SIGNAL_SAMPLE: Duration = Duration::from_millis(100);

/// How the foreground meets the overload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueMode {
    /// Every arrival calls the service at once.
    NoQueue,
    /// Every arrival waits for a slot of the work queue first.
    Queue,
}

impl QueueMode {
    /// Both modes, in the order they run.
    pub const ALL: [QueueMode; 2] = [QueueMode::NoQueue, QueueMode::Queue];

    /// The name reports use.
    pub fn name(self) -> &'static str {
        match self {
            QueueMode::NoQueue => "no-queue",
            QueueMode::Queue => "queue",
        }
    }
}

/// The note of a run cut short by Ctrl-C.
fn interrupted_note(overload: &report::Overload) -> String {
    let ran = match overload.modes.iter().find(|m| m.cut_short) {
        Some(mode) => format!("{} was cut short (its figures cover the window it ran)", mode.name),
        None => "no mode was cut short".to_owned(),
    };
    format!(
        "interrupted by Ctrl-C: {ran}, {} of {} modes did not run",
        QueueMode::ALL.len() - overload.modes.len(),
        QueueMode::ALL.len()
    )
}

/// Runs both modes of the overload scenario.
///
/// # Errors
///
/// An invalid schedule or queue setting, or a failure to start the sampler thread.
pub(super) fn run(
    bench: &Bench,
    args: &DemoArgs,
    progress: &Progress,
    report: &mut DemoReport,
) -> Result<(), CliError> {
    let duration = args.duration();
    progress.note("measuring the capacity of the saturated service…");
    let capacity = measure_capacity(bench, args, progress)?;
    let schedule =
        OverloadSchedule::for_load(capacity, args.overload, args.warmup + duration, args.seed, args.keys)?;
    progress.note(&format!(
        "capacity {capacity:.0} req/s saturated ({:.0} calibrated at 40 % load); offered: heartbeats {:.0}/s, \
         tenant A {:.0}/s, tenant B {:.0}/s",
        bench.rate_at_full_load,
        schedule.rate(Class::Heartbeat),
        schedule.rate(Class::TenantA),
        schedule.rate(Class::TenantB),
    ));
    let setup = Setup {
        bench,
        schedule: &schedule,
        warmup: args.warmup,
        duration,
        max_wait: args.max_wait,
        threshold: args.admission_threshold,
        interval: args.interval,
        quiet: args.quiet,
    };
    let mut overload = report::Overload {
        tenant_load: args.overload,
        heartbeat_load: HEARTBEAT_LOAD,
        capacity_rps: capacity,
        calibrated_rps: bench.rate_at_full_load,
        hop_bytes: bench.service.work().hash_bytes_per_hop,
        request_cpu_us: bench.cores / capacity.max(1e-9) * 1e6,
        max_wait_ms: args.max_wait.as_secs_f64() * 1e3,
        admission_threshold: args.admission_threshold,
        modes: Vec::new(),
    };
    for (index, mode) in QueueMode::ALL.into_iter().enumerate() {
        if bench.cancelled.load(Relaxed) {
            break;
        }
        if let Some(result) = run_mode(&setup, mode, index, progress)? {
            progress.finish(index, mode.name(), &summary_line(&result));
            overload.modes.push(result);
        }
    }
    report.settings.load = overload.tenant_load + overload.heartbeat_load;
    report.settings.rate_rps = report.settings.load * overload.capacity_rps;
    if bench.cancelled.load(Relaxed) {
        report.notes.push(interrupted_note(&overload));
    }
    report.notes.extend(assess(&overload));
    report.overload = Some(overload);
    Ok(())
}

/// Runs one mode; `None` when Ctrl-C came before its window began.
fn run_mode(
    setup: &Setup<'_>,
    mode: QueueMode,
    index: usize,
    progress: &Progress,
) -> Result<Option<OverloadMode>, CliError> {
    let started = match mode {
        QueueMode::NoQueue => "every request calls the service at once".to_owned(),
        QueueMode::Queue => format!(
            "requests wait for a queue slot, at most {} ms",
            fmt_ms(setup.max_wait.as_secs_f64() * 1e3)
        ),
    };
    progress.start(index, mode.name(), &started);
    measure(setup, mode, Some((index, progress.total())))
}

/// Measures the service's capacity: requests of every class completed per second with no
/// queue while a backlog exists.
///
/// The calibration's per-request cost is taken at 40 % load, where workers park and wake
/// between requests (a saturated runtime never parks and serves about a fifth more on the
/// 2-core VM), and it assumes the process gets every core (on a shared machine it may get half).
/// So the trial starts at the calibrated rate and, while the service keeps up (completes more
/// than [`SATURATED`] of what is offered), offers [`TRIAL_STEP`] times more, at most
/// [`TRIAL_ROUNDS`] times; the last round's completion rate is the capacity. Offering far more
/// than the capacity would understate it: the dispatcher's own CPU grows with the offered rate.
/// Falls back to the calibrated capacity if Ctrl-C cuts a trial short.
fn measure_capacity(bench: &Bench, args: &DemoArgs, progress: &Progress) -> Result<f64, CliError> {
    let calibrated = bench.rate_at_full_load;
    let mut offered_load = 1.0;
    let mut capacity = calibrated;
    for round in 0..TRIAL_ROUNDS {
        let schedule = OverloadSchedule::for_load(
            calibrated,
            offered_load - HEARTBEAT_LOAD,
            TRIAL_WARMUP + TRIAL_WINDOW,
            (!args.seed).wrapping_add(round),
            args.keys,
        )?;
        let setup = Setup {
            bench,
            schedule: &schedule,
            warmup: TRIAL_WARMUP,
            duration: TRIAL_WINDOW,
            max_wait: args.max_wait,
            threshold: args.admission_threshold,
            interval: args.interval,
            quiet: true,
        };
        let Some(trial) = measure(&setup, QueueMode::NoQueue, None)? else { break };
        if trial.cut_short || trial.throughput_rps <= 0.0 {
            break;
        }
        capacity = trial.throughput_rps;
        let offered: f64 = trial.classes.iter().map(|c| c.offered_rps).sum();
        progress.note(&format!("  offered {offered:.0} req/s: completed {capacity:.0} req/s"));
        if capacity < SATURATED * offered {
            break;
        }
        offered_load *= TRIAL_STEP;
    }
    Ok(capacity)
}
