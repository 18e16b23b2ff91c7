//! The adapt scenario: the foreground load steps 20 % → 60 % → 20 % while the backup runs,
//! once under the reference controller, once under the adaptive one and once under the
//! utilisation peer (TiKV's rule, every `--utilization-period`), in rounds; each window's
//! response to the steps is read from its intervals and judged (`demo/step.rs`).

use tailguard::elastic::ControllerKind;

use super::args::DemoArgs;
use super::bench::Bench;
use super::mode::Mode;
use super::plan::Plan;
use super::progress::Progress;
use super::{rounds, step};
use crate::choices::ControllerChoice;
use crate::error::CliError;
use crate::report::DemoReport;

/// The foreground load of each phase, as a fraction of the machine.
pub const LOADS: [f64; 3] = [0.2, 0.6, 0.2];

/// The foreground alone through the same steps (`baseline`, twice per round as in the
/// compare scenario: its A/A pair), then one plan per controller, each stepping the load through
/// [`LOADS`]: the reference, the adaptive (both at SCHED_IDLE too with `--os-priority`, named
/// `adapt+os-priority/…`), and the utilisation peer. The baseline's step response is the
/// machine's own: how often scheduling p99 crosses the target at 60 % load with no elastic work.
pub fn plans(args: &DemoArgs) -> Vec<Plan> {
    let baseline = Plan {
        name: BASELINE.to_owned(),
        mode: Mode::Baseline,
        placement: args.elastic_on,
        controller: ControllerKind::Reference,
        loads: LOADS.to_vec(),
    };
    let controllers =
        [ControllerChoice::Reference, ControllerChoice::Adaptive, ControllerChoice::Utilization]
            .into_iter()
            .map(|choice| Plan {
                name: match choice {
                    ControllerChoice::Utilization => format!("adapt/{}", choice.name()),
                    _ if args.os_priority => format!("adapt+os-priority/{}", choice.name()),
                    _ => format!("adapt/{}", choice.name()),
                },
                mode: match choice {
                    ControllerChoice::Utilization => Mode::Utilization,
                    _ => Mode::Elastic { os_priority: args.os_priority },
                },
                placement: args.elastic_on,
                controller: match choice {
                    ControllerChoice::Utilization => {
                        ControllerKind::Utilization { period: args.utilization_period }
                    }
                    _ => choice.kind(),
                },
                loads: LOADS.to_vec(),
            });
    std::iter::once(baseline).chain(controllers).collect()
}

/// The name of the adapt scenario's baseline.
pub const BASELINE: &str = "baseline";

/// Runs the rounds and adds their figures to `report`.
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
    step::summarize(report);
    report.notes.extend(step::verdicts(report));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::args::tests::demo_args;

    #[test]
    fn os_priority_puts_the_latency_controllers_at_sched_idle_and_names_them_so() {
        let plain = plans(&demo_args(&["--scenario", "adapt"]));
        let names: Vec<&str> = plain.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["baseline", "adapt/reference", "adapt/adaptive", "adapt/utilization"]);
        assert!(plain.iter().all(|p| !p.mode.os_priority()));
        assert_eq!(plain[0].mode, Mode::Baseline, "the foreground alone, through the same steps");
        let idle = plans(&demo_args(&["--scenario", "adapt", "--os-priority"]));
        let names: Vec<&str> = idle.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["baseline", "adapt+os-priority/reference", "adapt+os-priority/adaptive", "adapt/utilization"]
        );
        assert_eq!(idle.iter().map(|p| p.mode.os_priority()).collect::<Vec<_>>(), [false, true, true, false]);
        assert!(idle.iter().all(|p| p.loads == LOADS));
    }
}
