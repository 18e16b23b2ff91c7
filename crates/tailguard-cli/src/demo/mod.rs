//! `tailguard demo`: the foreground-vs-backup experiment.
//!
//! A key-value service on a tokio runtime serves an open-loop Poisson load while elastic work — a
//! backup in preemptible export requests and a paced catch-up scan — runs beside it, once per
//! mode: alone (`baseline`), flat out (`uncontrolled`), under a fixed CPU share (`static:<share>`),
//! at the lowest OS priority (`os-priority`), and under tailguard's feedback control (`elastic`,
//! `elastic+os-priority`). The `adapt` scenario steps the foreground load while the backup runs
//! and compares the reference controller with the adaptive one. The `overload` scenario offers
//! the foreground more than the machine can serve, without and with the admission work queue
//! ([`overload`]). The report goes to the terminal, and optionally to JSON and a self-contained
//! HTML page.
//!
//! One window of a few seconds is noisier than the effects it would show (on the 2-core VMs the
//! same baseline's p99 has differed 5x between two windows), so the compare and adapt scenarios
//! run in rounds (`--rounds`): every mode once per round in a rotating order ([`rotation`]), the
//! baseline twice so that its two windows give the run's noise floor, and every figure is a
//! median over rounds with a bootstrap interval ([`summary`]).
//!
//! Ctrl-C stops the run at once: the mode in progress ends, its backups in progress are abandoned
//! (an unfinished backup only ever exists as `NAME.partial`, which is removed), complete backups
//! are verified as usual, the report of the modes run so far is printed and written, and the
//! command exits with status 130. A second Ctrl-C exits immediately, leaving at most `.partial`
//! files, which `tailguard restore` refuses.

mod elastic;
mod machine;
mod meter;
mod mode;
mod overload;
mod progress;
mod rotation;
mod stats;
mod summary;

use std::io::IsTerminal;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use tailguard::clock::process_cpu_time;
use tailguard::elastic::ControllerKind;
use tailguard::observe::{ProbeConfig, RuntimeProbe};

use crate::CliError;
use crate::duration::parse_duration;
use crate::report::{self, DemoReport, Foreground, Machine, ModeResult, SeriesPoint, Settings};
use crate::workload::generator::{self, GeneratorConfig, GeneratorReport, RateSchedule};
use crate::workload::keyspace::KeyspaceConfig;
use crate::workload::service::{Service, WorkConfig};
use crate::workload::store::Store;
use tailguard::histogram::HistogramSnapshot;

use self::elastic::ElasticRun;
pub use self::elastic::Placement;
use self::machine::CpuTimes;
pub use self::mode::Mode;
use self::progress::Progress;
use self::summary::{Measured, Statistic};

/// Arguments of `tailguard demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// What to run: the mode comparison, the load-step scenario that compares controllers, or
    /// foreground overload without and with the admission work queue.
    #[arg(long, value_enum, default_value_t = Scenario::Compare)]
    scenario: Scenario,
    /// Measurement time per mode and round (default 3s for compare, 30s for adapt, 10s for
    /// overload).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Rounds of the compare and adapt scenarios: every mode runs once per round, the baseline
    /// twice, in an order that rotates from round to round; figures are medians over rounds
    /// with 95 % intervals. 5 rounds give figures worth quoting.
    #[arg(long, default_value_t = NonZeroU32::new(DEFAULT_ROUNDS).unwrap())]
    rounds: NonZeroU32,
    /// How foreground p99 is compared with the baseline's in the verdicts: the median of each
    /// round's per-interval p99s (the steadiest across repeated runs), each round's whole
    /// window, or all rounds' requests pooled.
    #[arg(long, value_enum, default_value_t = Statistic::Intervals)]
    statistic: Statistic,
    /// Comma-separated modes for the compare scenario.
    #[arg(long, default_value = Mode::DEFAULTS)]
    modes: String,
    /// Foreground load as a fraction of the whole machine (calibrated at start). The overload
    /// scenario sets its load with --overload instead.
    #[arg(long, default_value_t = generator::DEFAULT_LOAD)]
    load: f64,
    /// Overload scenario: offered load of the two tenants together, as a multiple of the
    /// service's capacity, measured at start (1.3: 65 % each); heartbeats add 1 %.
    #[arg(long, default_value_t = overload::DEFAULT_TENANT_LOAD)]
    overload: f64,
    /// Overload scenario: longest a request waits for an admission slot, from its scheduled
    /// arrival, before the queue refuses it.
    #[arg(long, default_value = "250ms", value_parser = parse_duration)]
    max_wait: Duration,
    /// Overload scenario: runnable tasks per worker (tokio's global queue plus admitted
    /// requests) at or above which the queue takes a slot away; slots settle near
    /// threshold × workers / 2.
    #[arg(long, default_value_t = overload::DEFAULT_THRESHOLD)]
    admission_threshold: f64,
    /// Keys in the store.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Mean value size in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Bytes hashed at each of a foreground request's four hops: its CPU cost (default 4 KiB,
    /// ~25 µs of CPU per request on the 2-core VM; 16 KiB, ~90 µs, for overload).
    #[arg(long)]
    hop_bytes: Option<usize>,
    /// Where elastic work runs: on threads of its own, or as tasks in the foreground runtime.
    #[arg(long, value_enum, default_value_t = Placement::Threads)]
    elastic_on: Placement,
    /// Target p99 scheduling latency of the limiter.
    #[arg(long, default_value = "1ms", value_parser = parse_duration)]
    target: Duration,
    /// Controller of the elastic modes in the compare scenario.
    #[arg(long, value_enum, default_value_t = ControllerChoice::Adaptive)]
    controller: ControllerChoice,
    /// Seed of the keyspace and the request schedule.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Time each mode runs before it is measured: the limiter's window fills and its share
    /// settles. The baseline, which has no limiter, warms up for at most 1s.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// CPU time granted to one elastic export request (the limiter's grant size); uncontrolled
    /// requests run for as long in wall time.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    grant: Duration,
    /// Elastic threads under a grant give the CPU away (sched_yield) after every this much CPU,
    /// so a foreground thread made runnable behind one waits about this long at most, not a
    /// whole OS time slice (elastic work placed on threads; 0s: never).
    #[arg(long, default_value = "250us", value_parser = parse_duration)]
    elastic_yield: Duration,
    /// Length of one point of the time series.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    interval: Duration,
    /// Worker threads of the foreground runtime (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// Keep the last complete backup of each worker in this directory (for `tailguard restore`);
    /// by default backups go to a temporary directory that is removed.
    #[arg(long)]
    backup_dir: Option<PathBuf>,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a self-contained HTML page with plots to this file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// Render a report written earlier with --json (table, and --html / --scatter if given)
    /// instead of running the experiment.
    #[arg(long, value_name = "JSON")]
    from_json: Option<PathBuf>,
    /// Write the compare scenario's scatter (elastic work against foreground p99, every mode,
    /// the static frontier) to this file as SVG.
    #[arg(long)]
    scatter: Option<PathBuf>,
    /// Print no progress, only the final table.
    #[arg(long)]
    quiet: bool,
}

/// The experiment to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Every mode side by side at a constant foreground load.
    Compare,
    /// Foreground load steps 20 % → 60 % → 20 % while the backup runs; reference vs adaptive
    /// controller.
    Adapt,
    /// Foreground offered above capacity (two tenants weighted 2:1 and a high-priority
    /// heartbeat class), without and with the admission work queue; no elastic work.
    Overload,
}

/// Which feedback controller the elastic modes use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ControllerChoice {
    /// CockroachDB's rule and constants: tiny steps.
    Reference,
    /// tailguard's controller: steps scaled with the error.
    Adaptive,
}

impl ControllerChoice {
    pub fn kind(self) -> ControllerKind {
        match self {
            ControllerChoice::Reference => ControllerKind::Reference,
            ControllerChoice::Adaptive => ControllerKind::Adaptive,
        }
    }
}

/// One mode to run: how, under which name, and at what foreground load.
struct Plan {
    name: String,
    mode: Mode,
    /// Where its elastic work runs.
    placement: Placement,
    controller: ControllerKind,
    loads: Vec<f64>,
}

/// Everything the modes share.
struct Bench {
    runtime: tokio::runtime::Runtime,
    service: Arc<Service>,
    store: Arc<Store>,
    cores: usize,
    rate_at_full_load: f64,
    backup_dir: PathBuf,
    keep_backups: bool,
    cancelled: Arc<AtomicBool>,
}

/// The run was cut short by Ctrl-C (SIGINT) after printing what it had; the command exits with
/// status 130 (128 + SIGINT), as a shell reports a process the signal ended.
#[derive(Debug, thiserror::Error)]
#[error("interrupted by Ctrl-C: the report covers the modes run so far, unfinished backups were removed")]
pub struct Interrupted;

impl Interrupted {
    /// The exit status of an interrupted command.
    pub const EXIT_STATUS: u8 = 130;
}

/// Rounds of a default run: a median and a (min–max) interval at about 1.5 times the length of
/// a single pass; `--rounds 5` gives figures worth quoting.
const DEFAULT_ROUNDS: u32 = 2;

/// The longest warm-up of the baseline: it has no limiter to settle, only the generator and the
/// probe's window.
const BASELINE_WARMUP: Duration = Duration::from_secs(1);

/// Runs `tailguard demo`.
///
/// # Errors
///
/// [`Interrupted`] after Ctrl-C (the report of the modes run so far is printed first); any
/// other error ends the run.
pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    if let Some(path) = &args.from_json {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let report: DemoReport = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a report written by `demo --json`: {e}", path.display()))?;
        return write_report(&report, args, &Progress::new(0, args.quiet));
    }
    let plans = plan(args)?;
    let duration = args.duration.unwrap_or(match args.scenario {
        Scenario::Compare => Duration::from_secs(3),
        Scenario::Adapt => Duration::from_secs(30),
        Scenario::Overload => overload::DEFAULT_DURATION,
    });
    if duration < Duration::from_secs(1)
        || args.interval < Duration::from_millis(50)
        || args.interval > duration
    {
        return Err("--duration must be at least 1s, and --interval between 50ms and the duration".into());
    }
    if !(args.load > 0.0 && args.load <= 1.0) {
        return Err(format!(
            "--load {} is out of range: give a fraction of the machine in (0, 1]",
            args.load
        )
        .into());
    }
    if args.keys == 0 || args.value_size == 0 || args.hop_bytes == Some(0) {
        return Err("--keys, --value-size and --hop-bytes must be at least 1".into());
    }
    if args.scenario == Scenario::Overload {
        overload::validate(args)?;
    }
    // The windows of one round: every plan once, the baseline twice (its A/A pair).
    let slots: Vec<usize> =
        (0..plans.len()).chain(plans.iter().position(|p| p.mode == Mode::Baseline)).collect();
    let rounds = args.rounds.get() as usize;
    let total = if args.scenario == Scenario::Overload {
        overload::QueueMode::ALL.len()
    } else {
        slots.len() * rounds
    };
    let progress = Progress::new(total, args.quiet);
    let bench = set_up(args, &progress)?;
    let mut report = DemoReport {
        machine: Machine {
            cores: bench.cores,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        },
        settings: Settings {
            duration_secs: duration.as_secs_f64(),
            warmup_secs: args.warmup.as_secs_f64(),
            rounds: args.rounds.get(),
            statistic: args.statistic.name().to_owned(),
            load: args.load,
            rate_rps: bench.rate_at_full_load * args.load,
            keys: args.keys,
            seed: args.seed,
            target_p99_ms: args.target.as_secs_f64() * 1e3,
            elastic_on: args.elastic_on.to_string(),
            ..Settings::default()
        },
        ..DemoReport::default()
    };
    if args.scenario == Scenario::Overload {
        let result = overload::run(&bench, args, duration, &progress)?;
        report.settings.load = result.tenant_load + result.heartbeat_load;
        report.settings.rate_rps = report.settings.load * result.capacity_rps;
        report.overload = Some(result);
    }
    let (mut measured, mut abandoned, mut cut_short) = (Vec::new(), 0, None);
    let planned = if args.scenario == Scenario::Overload { 0 } else { total };
    'rounds: for round in 0..rounds {
        for (position, slot) in rotation::order(slots.len(), round).into_iter().enumerate() {
            if bench.cancelled.load(Ordering::Relaxed) {
                break 'rounds;
            }
            let plan = &plans[slots[slot]];
            let index = measured.len();
            let label =
                if rounds > 1 { format!("{} (round {})", plan.name, round + 1) } else { plan.name.clone() };
            let window = Window { index, round, position, label };
            let run = run_mode(&bench, args, plan, duration, &window, &progress)?;
            progress.finish(index, &window.label, &summary_line(&run.measured.result));
            if run.cut_short {
                cut_short = Some(window.label.clone());
            }
            measured.push(run.measured);
            abandoned += run.abandoned;
        }
    }
    let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    let summary = summary::summarize(&names, &mut measured);
    report.settings.idle_cpu = summary.idle.map(|(idle, _)| idle);
    report.settings.idle_source = summary.idle.map_or_else(String::new, |(_, source)| source.to_owned());
    report.noise = summary.noise;
    // Modes that did not run (Ctrl-C) have no figures to show.
    report.modes = summary.modes.into_iter().filter(|m| m.runs > 0).collect();
    report.runs = measured.into_iter().map(|m| m.result).collect();
    let interrupted = bench.cancelled.load(Ordering::Relaxed);
    if let (true, Some(result)) = (interrupted, &report.overload) {
        report.notes.push(overload::interrupted_note(result));
    } else if interrupted {
        let ran = match cut_short {
            Some(name) => format!("{name} was cut short (its figures cover the time it ran)"),
            None => "no window was cut short".to_owned(),
        };
        report.notes.push(format!(
            "interrupted by Ctrl-C: {ran}, {} of {planned} windows did not run; {abandoned} unfinished {} abandoned and removed",
            planned - report.runs.len(),
            if abandoned == 1 { "backup was" } else { "backups were" }
        ));
    }
    if !bench.keep_backups {
        let _ = std::fs::remove_dir_all(&bench.backup_dir);
    }
    if args.scenario == Scenario::Compare {
        report.notes.extend(summary::verdicts(&report));
    }
    report.notes.extend(warnings(&report));
    if let Some(result) = &report.overload {
        report.notes.extend(overload::assess(result));
    }
    write_report(&report, args, &progress)?;
    if report.runs.iter().filter_map(|m| m.elastic.as_ref()).any(|e| e.verified == Some(false)) {
        return Err("a backup did not verify against the source data".into());
    }
    if interrupted {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// Prints the table and writes the files asked for: JSON, HTML, the scatter as SVG.
fn write_report(report: &DemoReport, args: &DemoArgs, progress: &Progress) -> Result<(), CliError> {
    println!("{}", report::render_table(report));
    let write = |path: &PathBuf, contents: String| -> Result<(), CliError> {
        std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        progress.note(&format!("wrote {}", path.display()));
        Ok(())
    };
    if let Some(path) = args.json.as_ref().filter(|_| args.from_json.is_none()) {
        write(path, serde_json::to_string_pretty(report)?)?;
    }
    if let Some(path) = &args.html {
        write(path, report::render_html(report))?;
    }
    if let Some(path) = &args.scatter {
        let svg = report::render_scatter(report)
            .ok_or("--scatter: the report has no mode with elastic work to draw")?;
        write(path, svg)?;
    }
    Ok(())
}

/// Where one measured window stands in the run.
struct Window {
    /// Its number in the run, from 0.
    index: usize,
    /// Its round, from 0.
    round: usize,
    /// Its place in the round's order, from 0.
    position: usize,
    /// How progress names it.
    label: String,
}

fn plan(args: &DemoArgs) -> Result<Vec<Plan>, CliError> {
    Ok(match args.scenario {
        Scenario::Compare => parse_modes(&args.modes, args.elastic_on)?
            .into_iter()
            .map(|(name, mode, placement)| Plan {
                name,
                mode,
                placement,
                controller: match mode {
                    Mode::Static(share) => ControllerKind::Fixed(share),
                    _ => args.controller.kind(),
                },
                loads: vec![args.load],
            })
            .collect(),
        Scenario::Adapt => [ControllerChoice::Reference, ControllerChoice::Adaptive]
            .into_iter()
            .map(|choice| Plan {
                name: format!(
                    "adapt/{}",
                    choice.to_possible_value().map_or("?".into(), |v| v.get_name().to_owned())
                ),
                mode: Mode::Elastic { os_priority: false },
                placement: args.elastic_on,
                controller: choice.kind(),
                loads: vec![0.2, 0.6, 0.2],
            })
            .collect(),
        // One schedule, run without and with the work queue (`overload::run`).
        Scenario::Overload => Vec::new(),
    })
}

/// Parses `--modes`: modes, each optionally with `@threads` or `@runtime` for where its elastic
/// work runs (default `default_placement`), so that one run can compare both. Each mode is
/// kept once, under the name it was given.
fn parse_modes(list: &str, default_placement: Placement) -> Result<Vec<(String, Mode, Placement)>, CliError> {
    let mut modes: Vec<(String, Mode, Placement)> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (text, placement) = match entry.split_once('@') {
            Some((mode, placement)) => {
                let placement = Placement::from_str(placement, false).map_err(|_| {
                    format!("bad mode {entry:?}: the placement after @ is threads or runtime")
                })?;
                (mode, Some(placement))
            }
            None => (entry, None),
        };
        let mode: Mode = text.parse()?;
        if placement.is_some() && !mode.runs_elastic() {
            return Err(format!("bad mode {entry:?}: the baseline runs no elastic work to place").into());
        }
        let name = if placement.is_some() { entry.to_owned() } else { mode.to_string() };
        if !modes.iter().any(|(existing, ..)| *existing == name) {
            // Each mode once: the rounds repeat it, and the baseline's second window is added
            // by the run.
            modes.push((name, mode, placement.unwrap_or(default_placement)));
        }
    }
    if modes.is_empty() {
        return Err(format!("no modes given in {list:?}").into());
    }
    Ok(modes)
}

/// Bytes hashed per hop of a foreground request, as given or the scenario's default.
fn hop_bytes(args: &DemoArgs) -> usize {
    args.hop_bytes.unwrap_or(match args.scenario {
        Scenario::Overload => overload::DEFAULT_HOP_BYTES,
        Scenario::Compare | Scenario::Adapt => WorkConfig::default().hash_bytes_per_hop,
    })
}

fn set_up(args: &DemoArgs, progress: &Progress) -> Result<Bench, CliError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers = args.workers.unwrap_or(cores).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("foreground")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the foreground runtime: {e}"))?;
    let cancelled = Arc::new(AtomicBool::new(false));
    {
        // The first Ctrl-C stops the run in order; a second one exits at once.
        let cancelled = Arc::clone(&cancelled);
        let quiet = args.quiet;
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return; // no signal handling here: Ctrl-C keeps its default, immediate exit
            }
            cancelled.store(true, Ordering::Relaxed);
            if !quiet {
                // On a terminal, end the progress line that is being rewritten in place.
                let end_line = if std::io::stderr().is_terminal() { "\n" } else { "" };
                eprintln!("{end_line}interrupted: stopping (press Ctrl-C again to exit at once)…");
            }
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "tailguard: interrupted twice: exiting now; unfinished backups stay as .partial files"
                );
                std::process::exit(i32::from(Interrupted::EXIT_STATUS));
            }
        });
    }
    progress.note(&format!("building {} keys of ~{} B (seed {})…", args.keys, args.value_size, args.seed));
    let keyspace = KeyspaceConfig { keys: args.keys, mean_value_bytes: args.value_size, seed: args.seed };
    let store = Arc::new(Store::populate(&keyspace, 16));
    let work = WorkConfig { hash_bytes_per_hop: hop_bytes(args) };
    let service = Service::new(runtime.handle().clone(), Arc::clone(&store), keyspace, work);
    progress.note("calibrating the cost of a foreground request…");
    let calibration = generator::calibrate(&service, 20_000, 2 * workers, args.keys);
    // The closed-loop burst misses what the open-loop run also pays for (the generator's
    // dispatching, timers, the probe), so one open-loop trial at the estimated rate corrects it.
    let estimate = calibration.rate_for_load(args.load);
    let trial = Duration::from_millis(1500);
    let probe = RuntimeProbe::start(runtime.handle(), ProbeConfig::default())?;
    let cpu_before = process_cpu_time();
    let trial_config = GeneratorConfig::new(
        RateSchedule::constant(estimate)?,
        trial,
        args.seed ^ 0x0074_7269_616c,
        args.keys,
    );
    let trial_report = generator::run(&service, &trial_config, Duration::from_secs(1), &|| {
        cancelled.load(Ordering::Relaxed)
    });
    let used = process_cpu_time().saturating_sub(cpu_before).as_secs_f64()
        / (trial_report.elapsed.as_secs_f64().max(1e-3) * cores as f64);
    drop(probe);
    // A trial cut short by Ctrl-C measured nothing useful: keep the closed-loop estimate.
    let rate_at_full_load =
        if used > 0.0 && !trial_report.cancelled { estimate / used } else { calibration.rate_for_load(1.0) };
    progress.note(&format!(
        "{} cores; a request costs {:.1} µs of CPU in a closed loop, {:.1} µs open-loop with the probe; \
         {:.0} req/s is {:.0} % of the machine",
        cores,
        calibration.cpu_per_request.as_secs_f64() * 1e6,
        cores as f64 / rate_at_full_load * 1e6,
        rate_at_full_load * args.load,
        args.load * 100.0
    ));
    let keep_backups = args.backup_dir.is_some();
    let backup_dir = args
        .backup_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("tailguard-demo-{}", std::process::id())));
    std::fs::create_dir_all(&backup_dir)
        .map_err(|e| format!("cannot create {}: {e}", backup_dir.display()))?;
    Ok(Bench { runtime, service, store, cores, rate_at_full_load, backup_dir, keep_backups, cancelled })
}

/// One window as it ran.
struct ModeRun {
    measured: Measured,
    /// Ctrl-C ended the measurement early.
    cut_short: bool,
    /// Backups abandoned unfinished on Ctrl-C.
    abandoned: u64,
}

fn run_mode(
    bench: &Bench,
    args: &DemoArgs,
    plan: &Plan,
    duration: Duration,
    window: &Window,
    progress: &Progress,
) -> Result<ModeRun, CliError> {
    let (index, label) = (window.index, window.label.as_str());
    let probe = RuntimeProbe::start(bench.runtime.handle(), ProbeConfig::default())?;
    let schedule = match plan.loads[..] {
        [load] => RateSchedule::constant(load * bench.rate_at_full_load)?,
        _ => RateSchedule::from_loads(&plan.loads, bench.rate_at_full_load)?,
    };
    let mut gen_config =
        GeneratorConfig::new(schedule, duration, args.seed.wrapping_add(index as u64), args.keys);
    gen_config.interval = args.interval;
    let mut elastic = if plan.mode.runs_elastic() {
        Some(ElasticRun::start(bench, plan, window.round, args, probe.window())?)
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
    let warmup = if elastic.is_some() { args.warmup } else { args.warmup.min(BASELINE_WARMUP) };
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
        let elastic = elastic.as_ref().map(ElasticRun::observer);
        let (interval, cores, name) = (args.interval, bench.cores, label.to_owned());
        let quiet_progress = Progress::new(progress.total(), args.quiet);
        std::thread::Builder::new().name("demo-sampler".into()).spawn(move || {
            let mut samples = Vec::new();
            let mut next = started + interval;
            let mut last_cpu = elastic.as_ref().map_or(0, |e| e.cpu_nanos());
            let mut last_sched = window.cumulative().snapshot();
            let mut last_machine = CpuTimes::now();
            while sampling.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::sleep((next - now).min(Duration::from_millis(50)));
                    continue;
                }
                next += interval;
                // The interval's own p99: the limiter's window would show it 2.5 s late.
                let sched = window.cumulative().snapshot();
                let interval_sched = sched.since(&last_sched);
                last_sched = sched;
                let cpu = elastic.as_ref().map_or(0, |e| e.cpu_nanos());
                let used = (cpu - last_cpu) as f64 / (interval.as_secs_f64() * 1e9 * cores as f64);
                last_cpu = cpu;
                let share = elastic.as_ref().and_then(|e| e.share());
                let machine = CpuTimes::now();
                let steal = last_machine.zip(machine).and_then(|(before, after)| after.steal_since(&before));
                last_machine = machine;
                samples.push(Sample {
                    sched_p99_ms: interval_sched.p99().map(|d| d.as_secs_f64() * 1e3),
                    share,
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
    let mut abandoned = 0;
    let elastic_result = match elastic {
        Some(run) => {
            let finished = run.finish(bench)?;
            abandoned = finished.abandoned;
            Some(finished.report)
        }
        None => None,
    };
    drop(probe);
    let window_figures = WindowFigures {
        sched_p99_ms: sched.p99().map(|d| d.as_secs_f64() * 1e3),
        process_cpu_share: cpu_total.as_secs_f64() / (wall.as_secs_f64().max(1e-9) * bench.cores as f64),
        machine_idle,
        machine_steal,
    };
    let mut result = assemble(bench, plan, &fg, &samples, elastic_result, &window_figures);
    (result.round, result.position) = (window.round as u32 + 1, window.position as u32 + 1);
    Ok(ModeRun { measured: Measured { result, latency: fg.latency }, cut_short: fg.cancelled, abandoned })
}

/// What the sampler saw in one interval.
struct Sample {
    sched_p99_ms: Option<f64>,
    share: Option<f64>,
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
        },
        sched_p99_ms: window.sched_p99_ms,
        process_cpu_share: window.process_cpu_share,
        machine_idle: window.machine_idle,
        machine_steal: window.machine_steal,
        elastic,
        series,
        latency_cdf: cdf(latency),
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

fn summary_line(mode: &ModeResult) -> String {
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

/// Warnings about windows whose load was not what was planned, and about a machine that left
/// the baseline too little idle CPU to measure elastic work against.
fn warnings(report: &DemoReport) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(idle) = report.settings.idle_cpu.filter(|&idle| idle < 0.2) {
        notes.push(format!(
            "the machine was only {} idle during the baseline windows (other processes, or a load too high): \
             shares of the idle CPU are not meaningful",
            report::fmt_pct(idle)
        ));
    }
    for run in &report.runs {
        let fg = &run.foreground;
        let name = format!("{} (round {})", run.name, run.round);
        if fg.offered > 0 && fg.late_starts * 100 > fg.offered {
            notes.push(format!(
                "{name}: the generator started {} of {} requests late (up to {:.1} ms); their latency still counts from the schedule",
                fg.late_starts, fg.offered, fg.max_start_lag_ms
            ));
        }
        if fg.failed > 0 {
            notes.push(format!("{name}: {} requests failed or were still in flight at the end", fg.failed));
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_with_their_placement_each_once() {
        let modes = parse_modes(Mode::DEFAULTS, Placement::Threads).unwrap();
        assert_eq!(modes.len(), 8);
        let names: Vec<&str> = modes.iter().map(|(name, ..)| name.as_str()).collect();
        assert_eq!(names.join(","), Mode::DEFAULTS);
        let modes =
            parse_modes("baseline, elastic@threads,elastic@runtime,elastic,baseline", Placement::Runtime)
                .unwrap();
        let got: Vec<(&str, Placement)> = modes.iter().map(|(name, _, at)| (name.as_str(), *at)).collect();
        assert_eq!(
            got,
            [
                ("baseline", Placement::Runtime),
                ("elastic@threads", Placement::Threads),
                ("elastic@runtime", Placement::Runtime),
                ("elastic", Placement::Runtime),
            ]
        );
    }

    #[test]
    fn bad_mode_lists_say_why() {
        let error = |list: &str| parse_modes(list, Placement::Threads).unwrap_err().to_string();
        assert!(error("baseline,static:2").contains("within (0, 1]"));
        assert!(error("elastic@gpu").contains("threads or runtime"));
        assert!(error("baseline@runtime").contains("no elastic work"));
        assert!(error(" , ").contains("no modes"));
    }

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
