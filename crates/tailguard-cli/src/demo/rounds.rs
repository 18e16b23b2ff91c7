//! Rounds of windows, shared by the compare and adapt scenarios: every plan once per round and
//! the baseline twice, in a rotating order ([`rotation`](super::rotation)), then the figures
//! over rounds ([`summary`](super::summary)).

use std::sync::atomic::{AtomicBool, Ordering};

use super::args::DemoArgs;
use super::bench::Bench;
use super::mode::Mode;
use super::plan::Plan;
use super::progress::Progress;
use super::window::{self, Window, WindowRun};
use super::{rotation, summary};
use crate::error::CliError;
use crate::report::{self, DemoReport, ModeResult, RerunWindow};

/// Whether the hypervisor stole more than `over` of the machine's CPU time during `window`.
pub fn stolen(window: &ModeResult, over: f64) -> bool {
    window.machine_steal.is_some_and(|steal| steal > over)
}

/// When a window is measured again: the host stole more than `over` of the CPU during it, and
/// fewer than `most` reruns were made; never after Ctrl-C.
struct Reruns<'a> {
    most: u32,
    over: f64,
    cancelled: &'a AtomicBool,
}

impl Reruns<'_> {
    /// Measures `window` with `measure`, and again while it was stolen from, up to `most`
    /// times; returns the last attempt, whose abandoned backups count those of the attempts
    /// set aside, and records each attempt set aside in `rerun`.
    fn measure(
        &self,
        window: &Window,
        progress: &Progress,
        rerun: &mut Vec<RerunWindow>,
        mut measure: impl FnMut() -> Result<WindowRun, CliError>,
    ) -> Result<WindowRun, CliError> {
        let (mut attempt, mut abandoned) = (0, 0);
        loop {
            attempt += 1;
            let mut run = measure()?;
            let result = &run.measured.result;
            let again = attempt <= self.most
                && !run.cut_short
                && !self.cancelled.load(Ordering::Relaxed)
                && stolen(result, self.over);
            if !again {
                run.abandoned += abandoned;
                return Ok(run);
            }
            abandoned += run.abandoned;
            let line = format!(
                "{}; the host stole {} of the CPU: measuring it again ({attempt} of {})",
                window::summary_line(result),
                report::fmt_pct(result.machine_steal.unwrap_or(0.0)),
                self.most
            );
            progress.finish(window.index, &window.label, &line);
            rerun.push(RerunWindow::of(result));
        }
    }
}

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
    let reruns = Reruns { most: args.rerun_stolen(), over: args.stolen_over, cancelled: &bench.cancelled };
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
            let run = reruns.measure(&window, progress, &mut report.rerun, || {
                window::run(bench, args, plan, duration, &window, progress)
            })?;
            abandoned += run.abandoned;
            progress.finish(index, &window.label, &window::summary_line(&run.measured.result));
            if run.cut_short {
                cut_short = Some(window.label.clone());
            }
            measured.push(run.measured);
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

#[cfg(test)]
mod tests {
    use tailguard::histogram::Histogram;

    use super::*;
    use crate::demo::summary::Measured;
    use crate::report::Foreground;

    /// Measures a window whose attempts show `steals`, in turn, allowing `most` reruns; returns
    /// the steal of the attempt kept, the abandoned backups and the steals set aside.
    fn attempts(steals: &[f64], most: u32, cancelled: bool) -> (f64, u64, Vec<f64>) {
        let cancelled = AtomicBool::new(cancelled);
        let reruns = Reruns { most, over: 0.005, cancelled: &cancelled };
        let window = Window { index: 0, round: 0, position: 0, label: "elastic".into() };
        let mut next = steals.iter();
        let mut rerun = Vec::new();
        let kept = reruns
            .measure(&window, &Progress::new(1, true), &mut rerun, || {
                let steal = *next.next().expect("no more attempts than allowed");
                let result = ModeResult {
                    name: "elastic".into(),
                    round: 1,
                    machine_steal: Some(steal),
                    foreground: Foreground { p99_ms: 100.0 * steal, ..Foreground::default() },
                    ..ModeResult::default()
                };
                let measured = Measured { result, latency: Histogram::new().snapshot() };
                Ok(WindowRun { measured, cut_short: false, abandoned: 1 })
            })
            .unwrap();
        let aside = rerun.iter().map(|w| w.machine_steal).collect();
        (kept.measured.result.machine_steal.unwrap(), kept.abandoned, aside)
    }

    #[test]
    fn a_stolen_window_is_measured_again_until_quiet_or_out_of_reruns() {
        assert_eq!(attempts(&[0.004], 2, false), (0.004, 1, vec![]), "quiet: kept");
        assert_eq!(attempts(&[0.03, 0.001], 2, false), (0.001, 2, vec![0.03]));
        assert_eq!(attempts(&[0.03, 0.02, 0.01], 2, false), (0.01, 3, vec![0.03, 0.02]), "the last kept");
        assert_eq!(attempts(&[0.03], 0, false), (0.03, 1, vec![]), "--rerun-stolen 0");
        assert_eq!(attempts(&[0.03], 2, true), (0.03, 1, vec![]), "not after Ctrl-C");
    }
}
