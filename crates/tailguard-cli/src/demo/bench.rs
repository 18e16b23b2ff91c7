//! What every window of the demo shares: the foreground runtime, the store and the service, the
//! calibrated rate, the backup directory and the Ctrl-C flag.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tailguard::clock::process_cpu_time;
use tailguard::elastic::ThreadPriority;
use tailguard::histogram::{WindowConfig, WindowedHistogram};
use tailguard::observe::thread_probe::ThreadProbe;
use tailguard::observe::{PollMonitor, PollMonitorConfig, ProbeConfig, RuntimeProbe};

use super::args::DemoArgs;
use super::progress::Progress;
use crate::capacity;
use crate::choices::SignalChoice;
use crate::error::CliError;
use crate::workload::generator::{self, GeneratorConfig, RateSchedule};
use crate::workload::keyspace::KeyspaceConfig;
use crate::workload::service::{SelfMeasure, Service, WorkConfig};
use crate::workload::store::Store;

/// Everything the modes share.
pub struct Bench {
    pub runtime: tokio::runtime::Runtime,
    pub service: Arc<Service>,
    pub store: Arc<Store>,
    pub cores: f64,
    pub rate_at_full_load: f64,
    pub backup_dir: PathBuf,
    pub keep_backups: bool,
    pub cancelled: Arc<AtomicBool>,
    /// The latency beside the runtime probe's the limiters steer by: the request tasks'
    /// scheduling delays (`--signal tasks`), the requests' latency (`requests`), a thread
    /// probe's overshoot (`threads`); `None` with the probe alone.
    pub signal_window: Option<Arc<WindowedHistogram>>,
    /// The priority the load generator dispatches at (`--generator-priority`, when the OS
    /// granted it); `None`: the calling thread's own.
    pub dispatch_priority: Option<ThreadPriority>,
    /// Why the priority asked for was refused, when it was.
    pub dispatch_refused: Option<String>,
    /// The thread probe of `--signal threads`, running for the whole run.
    _thread_probe: Option<ThreadProbe>,
}

/// Builds the runtime, the store and the service, installs the Ctrl-C handler, and calibrates
/// the rate that makes up the whole machine.
///
/// # Errors
///
/// The runtime or the probe cannot start, or the backup directory cannot be created.
pub fn set_up(args: &DemoArgs, progress: &Progress) -> Result<Bench, CliError> {
    let limit = capacity::detect();
    capacity::log(&limit);
    let cores = limit.cores;
    let workers = args.workers.unwrap_or(capacity::whole_cpus(cores));
    let runtime = crate::choices::foreground_runtime(workers, "foreground", args.pin_workers)
        .map_err(|e| format!("cannot start the foreground runtime: {e}"))?;
    let (dispatch_priority, dispatch_refused) = args.generator_priority.granted();
    if let Some(reason) = &dispatch_refused {
        tracing::warn!(
            %reason,
            "the load generator runs at normal priority: its dispatch may wait behind the service's threads"
        );
    }
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
    let work = WorkConfig { hash_bytes_per_hop: args.hop_bytes() };
    // What the service measures of itself, or the thread probe, for `--signal`.
    let (measure, thread_probe) = match args.signal {
        SignalChoice::Probe => (SelfMeasure::default(), None),
        SignalChoice::Threads => (SelfMeasure::default(), Some(ThreadProbe::start(ProbeConfig::default())?)),
        SignalChoice::Tasks => {
            let tasks = Some(PollMonitor::new(PollMonitorConfig::default())?);
            (SelfMeasure { tasks, requests: None }, None)
        }
        SignalChoice::Requests => {
            let requests = Some(Arc::new(WindowedHistogram::new(WindowConfig::DEFAULT)?));
            (SelfMeasure { tasks: None, requests }, None)
        }
    };
    let signal_window = measure
        .tasks
        .as_ref()
        .map(|m| Arc::clone(m.scheduling_window()))
        .or(measure.requests.clone())
        .or(thread_probe.as_ref().map(|p| Arc::clone(p.window())));
    let service = Service::measured(runtime.handle().clone(), Arc::clone(&store), keyspace, work, measure);
    progress.note("calibrating the cost of a foreground request…");
    let calibration = generator::calibrate(&service, 20_000, 2 * workers, args.keys);
    // The closed-loop burst misses what the open-loop run also pays for (the generator's
    // dispatching, timers, the probe), so one open-loop trial at the estimated rate corrects it.
    let estimate = calibration.rate_for_load(args.load);
    let trial = Duration::from_millis(1500);
    let probe = RuntimeProbe::start(runtime.handle(), ProbeConfig::default())?;
    let cpu_before = process_cpu_time();
    let mut trial_config = GeneratorConfig::new(
        RateSchedule::constant(estimate)?,
        trial,
        args.seed ^ 0x0074_7269_616c,
        args.keys,
    );
    trial_config.dispatch_priority = dispatch_priority;
    let trial_report = generator::run(&service, &trial_config, Duration::from_secs(1), &|| {
        cancelled.load(Ordering::Relaxed)
    });
    let used = process_cpu_time().saturating_sub(cpu_before).as_secs_f64()
        / (trial_report.elapsed.as_secs_f64().max(1e-3) * cores);
    drop(probe);
    // A trial cut short by Ctrl-C measured nothing useful: keep the closed-loop estimate.
    let rate_at_full_load =
        if used > 0.0 && !trial_report.cancelled { estimate / used } else { calibration.rate_for_load(1.0) };
    progress.note(&format!(
        "{cores:.2} cores ({}); a request costs {:.1} µs of CPU in a closed loop, {:.1} µs open-loop with the probe; \
         {:.0} req/s is {:.0} % of the machine",
        limit.source,
        calibration.cpu_per_request.as_secs_f64() * 1e6,
        cores / rate_at_full_load * 1e6,
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
    Ok(Bench {
        runtime,
        service,
        store,
        cores,
        rate_at_full_load,
        backup_dir,
        keep_backups,
        cancelled,
        signal_window,
        dispatch_priority,
        dispatch_refused,
        _thread_probe: thread_probe,
    })
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
