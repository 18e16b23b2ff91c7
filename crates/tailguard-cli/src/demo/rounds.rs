//! Rounds of windows, shared by the compare and adapt scenarios: every plan once per round and
//! the baseline twice, in a rotating order ([`rotation`](super::rotation)), then the figures
//! over rounds ([`summary`](super::summary)).

use std::sync::atomic::Ordering;

use super::args::DemoArgs;
use super::bench::Bench;
use super::mode::Mode;
use super::plan::Plan;
use super::progress::Progress;
use super::window::{self, Window};
use super::{rotation, summary};
use crate::error::CliError;
use crate::report::DemoReport;

/// The windows of one round: the index of each plan once, the baseline's twice (its A/A
/// pair).
pub fn slots(plans: &[Plan]) -> Vec<usize> {
    (0..plans.len()).chain(plans.iter().position(|p| p.mode == Mode::Baseline)).collect()
}

/// Runs `args.rounds` rounds of `plans` and puts every window, the figures per mode, the noise
/// floor and the idle CPU into `report`; after Ctrl-C, a note of what did not run.
///
/// # Errors
///
/// A window that cannot start (a thread, the probe, a limiter) or a failed backup.
pub fn run(
    bench: &Bench,
    args: &DemoArgs,
    plans: &[Plan],
    progress: &Progress,
    report: &mut DemoReport,
) -> Result<(), CliError> {
    let slots = slots(plans);
    let rounds = args.rounds.get() as usize;
    let duration = args.duration();
    let (mut measured, mut abandoned, mut cut_short) = (Vec::new(), 0, None);
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
            let run = window::run(bench, args, plan, duration, &window, progress)?;
            progress.finish(index, &window.label, &window::summary_line(&run.measured.result));
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
    if bench.cancelled.load(Ordering::Relaxed) {
        let planned = slots.len() * rounds;
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
    Ok(())
}
