//! `tailguard demo`: the foreground-vs-backup experiment.
//!
//! A key-value service on a tokio runtime serves an open-loop Poisson load while elastic work — a
//! backup in preemptible export requests and a paced catch-up scan — runs beside it, once per
//! mode: alone (`baseline`), flat out (`uncontrolled`), under a fixed CPU share (`static:<share>`),
//! at the lowest OS priority (`os-priority`), under tailguard's feedback control (`elastic`,
//! `elastic+os-priority`), and under a peer for comparison, TiKV's utilisation rule
//! (`utilization`, [`tailguard::elastic::utilization`]). The `adapt` scenario steps the
//! foreground load while the backup runs and compares the reference controller, the adaptive
//! one and the utilisation peer. The `overload` scenario offers
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

mod adapt;
mod args;
mod bench;
mod compare;
mod elastic;
mod machine;
mod meter;
mod mode;
mod overload;
mod plan;
mod progress;
mod rotation;
mod rounds;
pub(crate) mod stats;
mod step;
mod summary;
mod window;

use std::path::PathBuf;
use std::sync::atomic::Ordering;

pub use self::args::{DemoArgs, Scenario};
pub use self::bench::Interrupted;
use self::progress::Progress;
use crate::error::CliError;
use crate::report::{self, DemoReport, Machine, Settings};

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
    args.validate()?;
    // The scenario's plans, and the windows they make, before anything starts.
    let plans = match args.scenario {
        Scenario::Compare => compare::plans(args)?,
        Scenario::Adapt => adapt::plans(args),
        Scenario::Overload => Vec::new(),
    };
    let windows = match args.scenario {
        Scenario::Overload => overload::QueueMode::ALL.len(),
        Scenario::Compare | Scenario::Adapt => rounds::slots(&plans).len() * args.rounds.get() as usize,
    };
    let progress = Progress::new(windows, args.quiet);
    let bench = bench::set_up(args, &progress)?;
    let mut report = DemoReport {
        machine: Machine {
            cores: bench.cores,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        },
        settings: Settings {
            duration_secs: args.duration().as_secs_f64(),
            warmup_secs: args.warmup.as_secs_f64(),
            rounds: args.rounds.get(),
            statistic: args.statistic.name().to_owned(),
            load: args.load,
            rate_rps: bench.rate_at_full_load * args.load,
            keys: args.keys,
            seed: args.seed,
            target_p99_ms: args.target.as_secs_f64() * 1e3,
            elastic_on: args.elastic_on.to_string(),
            idle_by: args.idle_by.name().to_owned(),
            signal: args.signal.name().to_owned(),
            pin_workers: args.pin_workers,
            generator_priority: args.generator_priority.ran_as(bench.dispatch_priority).to_owned(),
            rerun_stolen: args.rerun_stolen(),
            stolen_over: Some(args.stolen_over),
            ..Settings::default()
        },
        ..DemoReport::default()
    };
    match args.scenario {
        Scenario::Compare => compare::run(&bench, args, &plans, &progress, &mut report)?,
        Scenario::Adapt => adapt::run(&bench, args, &plans, &progress, &mut report)?,
        Scenario::Overload => overload::run(&bench, args, &progress, &mut report)?,
    }
    if !bench.keep_backups {
        let _ = std::fs::remove_dir_all(&bench.backup_dir);
    }
    report.notes.extend(warnings(&report));
    if let Some(reason) = &bench.dispatch_refused {
        report.notes.push(format!(
            "the load generator ran at normal priority ({} refused: {reason}): a request's lag before \
             dispatch includes waits behind the service's threads, more with elastic work beside them \
             (docs/design-notes.md); run as root for --generator-priority realtime",
            args.generator_priority.name()
        ));
    }
    write_report(&report, args, &progress)?;
    if report.runs.iter().filter_map(|m| m.elastic.as_ref()).any(|e| e.verified == Some(false)) {
        return Err("a backup did not verify against the source data".into());
    }
    if bench.cancelled.load(Ordering::Relaxed) {
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
