//! The compare scenario: every mode side by side at a constant foreground load, in rounds, with
//! the verdicts read from the medians.

use clap::ValueEnum;
use tailguard::elastic::ControllerKind;

use super::args::DemoArgs;
use super::bench::Bench;
use super::mode::Mode;
use super::plan::Plan;
use super::progress::Progress;
use super::{rounds, summary};
use crate::choices::Placement;
use crate::error::CliError;
use crate::report::DemoReport;

/// The compare scenario's plans: the modes of `--modes`, each once.
///
/// # Errors
///
/// A mode that does not parse, with what was expected.
pub fn plans(args: &DemoArgs) -> Result<Vec<Plan>, CliError> {
    Ok(parse_modes(&args.modes, args.elastic_on)?
        .into_iter()
        .map(|(name, mode, placement)| Plan {
            name,
            mode,
            placement,
            controller: match mode {
                Mode::Static(share) => ControllerKind::Fixed(share),
                Mode::Utilization => ControllerKind::Utilization { period: args.utilization_period },
                _ => args.controller.kind(),
            },
            loads: vec![args.load],
        })
        .collect())
}

/// Runs the rounds and adds their figures and the verdicts to `report`.
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
    rounds::run(bench, args, plans, progress, report)?;
    report.notes.extend(summary::verdicts(report));
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_with_their_placement_each_once() {
        let modes = parse_modes(Mode::DEFAULTS, Placement::Threads).unwrap();
        assert_eq!(modes.len(), 9);
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
    fn the_utilization_mode_plans_tikvs_rule_at_the_period_given() {
        let args = super::super::args::tests::demo_args(&["--modes", "elastic,utilization@runtime"]);
        let planned = plans(&args).unwrap();
        assert_eq!(planned[0].controller, ControllerKind::Adaptive);
        assert_eq!(planned[1].name, "utilization@runtime");
        assert_eq!(planned[1].mode, Mode::Utilization);
        assert_eq!(planned[1].placement, Placement::Runtime);
        assert_eq!(planned[1].controller, ControllerKind::utilization());
        let args =
            super::super::args::tests::demo_args(&["--modes", "utilization", "--utilization-period", "3s"]);
        assert_eq!(
            plans(&args).unwrap()[0].controller,
            ControllerKind::Utilization { period: std::time::Duration::from_secs(3) }
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
}
