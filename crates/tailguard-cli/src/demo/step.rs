//! The adapt scenario's step response, read from each window's intervals.
//!
//! The foreground load steps up (20 % → 60 % of the machine) and down again while the backup
//! runs. From a window's intervals ([`SeriesPoint`]s, `--interval` each) [`response`] reads:
//!
//! - **recovery**: time from the step up until scheduling p99 is back under the target for two
//!   intervals in a row (0 when it never went over);
//! - **crossings**: intervals over the target per 10 s of the high phase after recovery — a
//!   controller in a limit cycle crosses every few seconds;
//! - **settle after the step down**: time from the step down until the share stays within 10 %
//!   of its settled level (the mean of the low phase's last third);
//! - **overrun**: pairs of consecutive intervals over which elastic CPU ran more than
//!   [`OVERRUN_GOAL`] of the machine above the share — a share that fell while grants issued at
//!   the old one still ran. A pair spans many ticks (1 s at the default `--interval`), so each
//!   is an overrun for longer than a tick. The elastic CPU of an interval is read from the
//!   elastic threads' CPU clocks (`demo/meter.rs`); counted once per 100 ms grant, as it was,
//!   it moved in steps of 0.1 of a 2-core machine per interval, as large as the goal.
//!
//! The target of an interval is the one the controller steered by (`target_ms`: the adaptive
//! controller's may be raised by the latency the machine has without elastic work), else the
//! configured one. [`verdicts`] judges the medians over rounds against the scenario's goals and
//! sets the adaptive controller beside the reference.

use super::stats::median_estimate;
use crate::report::{DemoReport, Estimate, ModeResult, ModeSummary, SeriesPoint, StepResponse, StepSummary};

/// Longest recovery after the step up the scenario accepts, seconds.
pub const RECOVERY_GOAL: f64 = 2.0;
/// Most intervals over target per 10 s after recovery: more is a limit cycle.
pub const CROSSINGS_GOAL: f64 = 1.0;
/// Longest time after the step down for the share to come within [`SETTLE_BAND`] of its level.
pub const SETTLE_GOAL: f64 = 5.0;
/// How close to its settled level the share must stay, as a fraction of that level.
pub const SETTLE_BAND: f64 = 0.1;
/// Most elastic CPU above the share, as a share of the machine, an interval may show.
pub const OVERRUN_GOAL: f64 = 0.05;
/// A change of the offered load between intervals larger than this is a step.
const STEP: f64 = 0.1;

/// The step response of one window's `series`; `None` without a step up. `target_ms` is the
/// configured target, for intervals that do not say which one the controller steered by.
pub fn response(series: &[SeriesPoint], target_ms: f64) -> Option<StepResponse> {
    let load = |i: usize| series[i].offered_load;
    let stepped = |i: usize, up: bool| match (load(i - 1), load(i)) {
        (Some(before), Some(after)) if up => after > before + STEP,
        (Some(before), Some(after)) => after < before - STEP,
        _ => false,
    };
    let up = (1..series.len()).find(|&i| stepped(i, true))?;
    let down = (up + 1..series.len()).find(|&i| stepped(i, false));
    let high_end = down.unwrap_or(series.len());
    // The end of the interval before the step is when the step came.
    let start = |i: usize| series[i - 1].t_secs;
    let over = |i: usize| {
        let target = series[i].target_ms.unwrap_or(target_ms);
        series[i].sched_p99_ms.is_some_and(|p99| p99 > target)
    };
    let under_from = (up..high_end).find(|&i| !over(i) && (i + 1 == high_end || !over(i + 1)));
    let crossings_per_10s = under_from.and_then(|from| {
        let secs = series[high_end - 1].t_secs - start(from);
        let over = (from..high_end).filter(|&i| over(i)).count();
        (secs > 0.0).then(|| over as f64 * 10.0 / secs)
    });
    let settle_after_down_secs = down.and_then(|down| {
        // Intervals without a reading of the share are left out.
        let shares: Vec<(f64, f64)> =
            series[down..].iter().filter_map(|p| Some((p.t_secs, p.share?))).collect();
        let tail = &shares[shares.len() * 2 / 3..];
        let settled = tail.iter().map(|(_, share)| share).sum::<f64>() / tail.len() as f64;
        (!tail.is_empty()).then(|| {
            let outside = shares.iter().rposition(|(_, s)| (s - settled).abs() > SETTLE_BAND * settled);
            outside.map_or(0.0, |i| shares[i].0 - start(down))
        })
    });
    let both: Vec<(f64, f64)> =
        series.iter().filter_map(|p| Some((p.share?, p.elastic_cpu_share?))).collect();
    let overruns = both
        .windows(2)
        .filter(|pair| (pair[0].1 + pair[1].1 - pair[0].0 - pair[1].0) / 2.0 > OVERRUN_GOAL)
        .count();
    Some(StepResponse {
        recovery_secs: under_from.map(|from| start(from) - start(up)),
        crossings_per_10s,
        settle_after_down_secs,
        overrun_pairs: overruns as u32,
        pairs: both.len().saturating_sub(1) as u32,
    })
}

/// The step response of each window in `report` and the medians per mode.
pub fn summarize(report: &mut DemoReport) {
    let target_ms = report.settings.target_p99_ms;
    for run in &mut report.runs {
        run.step = response(&run.series, target_ms);
    }
    let runs = &report.runs;
    for mode in &mut report.modes {
        let steps: Vec<StepResponse> =
            runs.iter().filter(|r| r.name == mode.name).filter_map(|r: &ModeResult| r.step).collect();
        if steps.is_empty() {
            continue;
        }
        let of = |pick: fn(&StepResponse) -> Option<f64>| {
            let values: Vec<f64> = steps.iter().filter_map(pick).collect();
            (!values.is_empty()).then(|| median_estimate(&values))
        };
        mode.step = Some(StepSummary {
            recovery_secs: of(|s| s.recovery_secs),
            crossings_per_10s: of(|s| s.crossings_per_10s),
            settle_after_down_secs: of(|s| s.settle_after_down_secs),
            overrun_pairs: median_estimate(
                &steps.iter().map(|s| f64::from(s.overrun_pairs)).collect::<Vec<_>>(),
            ),
        });
    }
}

/// The adapt scenario's verdicts on medians: each controller's step response against the
/// scenario's goals, then the adaptive controller beside the reference (foreground p99 no
/// worse, at least twice the elastic CPU: the same load schedule leaves both the same idle CPU).
pub fn verdicts(report: &DemoReport) -> Vec<String> {
    let mut notes: Vec<String> =
        super::summary::rerun_note(report).into_iter().chain(super::summary::steal_note(report)).collect();
    let secs = |s: f64| format!("{s:.1} s");
    for mode in &report.modes {
        let Some(step) = &mode.step else { continue };
        if mode.elastic.is_none() {
            // The foreground alone: the machine's own crossings, the floor for the controllers'.
            notes.push(format!(
                "{} (no elastic work): scheduling p99 over target after the step up for {}; then {} intervals over target per 10 s; foreground p99 {} ms — what the machine does alone through the same steps",
                mode.name,
                step.recovery_secs.map_or_else(|| "-".to_owned(), |r| r.render(secs)),
                step.crossings_per_10s.map_or_else(|| "-".to_owned(), |c| c.render(|x| format!("{x:.1}"))),
                mode.p99_ms.render(|x| format!("{x:.2}")),
            ));
            continue;
        }
        let within = |figure: &Option<Estimate>, limit: f64| {
            figure.map_or_else(
                || "not seen".to_owned(),
                |f| format!("in {} (goal <= {}: {})", f.render(secs), secs(limit), judged(&f, limit)),
            )
        };
        notes.push(format!(
            "{}: scheduling p99 back under target after the step up: {}; then {} intervals over target per 10 s{}; the share settled after the step down: {}; elastic CPU more than {:.2} of the machine above its share over {} of {} pairs of intervals (median window)",
            mode.name,
            within(&step.recovery_secs, RECOVERY_GOAL),
            step.crossings_per_10s.map_or_else(|| "-".to_owned(), |c| c.render(|x| format!("{x:.1}"))),
            step.crossings_per_10s.map_or_else(String::new, |c| format!(
                " (goal <= {CROSSINGS_GOAL:.0}: {})",
                judged(&c, CROSSINGS_GOAL)
            )),
            within(&step.settle_after_down_secs, SETTLE_GOAL),
            OVERRUN_GOAL,
            step.overrun_pairs.median,
            median_pairs(report, &mode.name),
        ));
    }
    let find = |suffix: &str| report.modes.iter().find(|m| m.name.ends_with(suffix));
    if let (Some(adaptive), Some(reference)) = (find("/adaptive"), find("/reference")) {
        notes.push(beside_reference(adaptive, reference));
    }
    notes
}

/// "met", "not met", or which way the median lies when the interval straddles `limit` (a
/// figure at most `limit` meets it).
fn judged(figure: &Estimate, limit: f64) -> &'static str {
    match (figure.median <= limit, figure.straddles(limit)) {
        (true, false) => "met",
        (false, false) => "not met",
        (true, true) => "met by the median; the interval straddles the goal",
        (false, true) => "not met by the median; the interval straddles the goal",
    }
}

/// The median number of pairs of intervals of `name`'s windows.
fn median_pairs(report: &DemoReport, name: &str) -> f64 {
    let counts: Vec<f64> = report
        .runs
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.step.map(|s| f64::from(s.pairs)))
        .collect();
    super::stats::median(&counts)
}

fn beside_reference(adaptive: &ModeSummary, reference: &ModeSummary) -> String {
    let ms = |x: f64| format!("{x:.2} ms");
    let cpu = |m: &ModeSummary| m.elastic.as_ref().map(|e| e.cpu_share.median);
    let p99_met = adaptive.p99_ms.median <= reference.p99_ms.median;
    let work = match (cpu(adaptive), cpu(reference)) {
        (Some(a), Some(r)) if r > 0.0 => format!(
            "elastic CPU {:.1} % of the machine against {:.1} %, {:.2}x (goal >= 2x: {})",
            a * 100.0,
            r * 100.0,
            a / r,
            if a >= 2.0 * r { "met" } else { "not met" }
        ),
        _ => "elastic CPU not measured".to_owned(),
    };
    format!(
        "{} beside {}, medians: foreground p99 {} against {} (goal: no worse: {}); {}",
        adaptive.name,
        reference.name,
        adaptive.p99_ms.render(ms),
        reference.p99_ms.render(ms),
        if p99_met { "met" } else { "not met" },
        work
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Intervals of 0.5 s: (offered load, scheduling p99 ms, share, elastic CPU).
    fn series(points: &[(f64, f64, f64, f64)]) -> Vec<SeriesPoint> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(load, p99, share, cpu))| SeriesPoint {
                t_secs: (i + 1) as f64 * 0.5,
                offered_load: Some(load),
                sched_p99_ms: Some(p99),
                share: Some(share),
                elastic_cpu_share: Some(cpu),
                target_ms: Some(1.0),
                ..SeriesPoint::default()
            })
            .collect()
    }

    #[test]
    fn recovery_crossings_settling_and_overrun_from_the_intervals() {
        let mut points = vec![(0.2, 0.3, 0.5, 0.5); 4];
        // Step up: over target for three intervals (the last with elastic CPU 0.15 above its
        // share), then under, with one crossing in the 5 s after.
        points.extend([(0.6, 3.0, 0.4, 0.42), (0.6, 2.0, 0.3, 0.32), (0.6, 1.5, 0.2, 0.35)]);
        points.extend([(0.6, 0.5, 0.2, 0.2); 4]);
        points.push((0.6, 1.2, 0.2, 0.2));
        points.extend([(0.6, 0.5, 0.2, 0.2); 5]);
        // Step down: the share climbs for 2 s, then holds at 0.5.
        points.extend([
            (0.2, 0.3, 0.3, 0.3),
            (0.2, 0.3, 0.35, 0.3),
            (0.2, 0.3, 0.4, 0.4),
            (0.2, 0.3, 0.44, 0.4),
        ]);
        points.extend([(0.2, 0.3, 0.5, 0.5); 8]);
        let step = response(&series(&points), 1.0).unwrap();
        assert_eq!(step.recovery_secs, Some(1.5));
        // One crossing in the ten intervals (5 s) from recovery to the step down.
        assert_eq!(step.crossings_per_10s, Some(2.0));
        // 0.44 is outside 10 % of 0.5; from the next interval on the share stays inside.
        assert_eq!(step.settle_after_down_secs, Some(2.0));
        // Elastic CPU 0.15 over its share in one interval: both pairs with it average over 0.05.
        assert_eq!((step.overrun_pairs, step.pairs), (2, points.len() as u32 - 1));
    }

    #[test]
    fn never_over_recovers_at_once_and_never_under_is_no_recovery() {
        let calm =
            series(&[(0.2, 0.3, 0.5, 0.5), (0.6, 0.4, 0.5, 0.5), (0.6, 0.4, 0.5, 0.5), (0.2, 0.3, 0.5, 0.5)]);
        let step = response(&calm, 1.0).unwrap();
        assert_eq!(step.recovery_secs, Some(0.0));
        assert_eq!(step.crossings_per_10s, Some(0.0));
        assert_eq!(step.settle_after_down_secs, Some(0.0));
        let stuck =
            series(&[(0.2, 0.3, 0.5, 0.5), (0.6, 2.0, 0.5, 0.5), (0.6, 0.5, 0.5, 0.5), (0.6, 2.0, 0.5, 0.5)]);
        let step = response(&stuck, 1.0).unwrap();
        assert_eq!(
            (step.recovery_secs, step.crossings_per_10s, step.settle_after_down_secs),
            (None, None, None)
        );
    }

    #[test]
    fn a_window_without_a_step_has_no_response_and_the_target_falls_back_to_the_configured_one() {
        assert_eq!(response(&series(&[(0.4, 0.3, 0.5, 0.5); 6]), 1.0), None);
        let mut points = series(&[(0.2, 0.3, 0.5, 0.5), (0.6, 1.5, 0.5, 0.5), (0.6, 0.5, 0.5, 0.5)]);
        for point in &mut points {
            point.target_ms = None;
        }
        assert_eq!(response(&points, 2.0).unwrap().recovery_secs, Some(0.0));
        assert_eq!(response(&points, 1.0).unwrap().recovery_secs, Some(0.5));
    }

    #[test]
    fn verdicts_judge_medians_and_set_the_adaptive_beside_the_reference() {
        let mut report = DemoReport::default();
        report.settings.target_p99_ms = 1.0;
        let slow = series(&[
            (0.2, 0.3, 0.5, 0.5),
            (0.6, 3.0, 0.5, 0.5),
            (0.6, 3.0, 0.5, 0.5),
            (0.6, 3.0, 0.5, 0.5),
            (0.6, 3.0, 0.5, 0.5),
            (0.6, 3.0, 0.5, 0.5),
            (0.6, 0.5, 0.2, 0.2),
            (0.6, 0.5, 0.2, 0.2),
        ]);
        let fast = series(&[(0.2, 0.3, 0.5, 0.5), (0.6, 0.5, 0.5, 0.5), (0.6, 0.5, 0.5, 0.5)]);
        for (name, series, p99, cpu) in
            [("adapt/reference", &slow, 2.0, 0.1), ("adapt/adaptive", &fast, 1.5, 0.3)]
        {
            report.runs.push(ModeResult {
                name: name.into(),
                series: series.clone(),
                ..ModeResult::default()
            });
            report.modes.push(ModeSummary {
                name: name.into(),
                p99_ms: Estimate { median: p99, low: p99, high: p99, rounds: 1 },
                elastic: Some(crate::report::ElasticSummary {
                    cpu_share: Estimate { median: cpu, low: cpu, high: cpu, rounds: 1 },
                    ..Default::default()
                }),
                ..ModeSummary::default()
            });
        }
        summarize(&mut report);
        let notes = verdicts(&report);
        assert!(notes[0].starts_with("adapt/reference: scheduling p99 back under target after the step up: in 2.5 s (goal <= 2.0 s: not met)"), "{}", notes[0]);
        assert!(notes[1].contains("after the step up: in 0.0 s (goal <= 2.0 s: met)"), "{}", notes[1]);
        assert!(notes[1].contains("the share settled after the step down: not seen"), "{}", notes[1]);
        assert!(
            notes[2].contains("foreground p99 1.50 ms against 2.00 ms (goal: no worse: met)"),
            "{}",
            notes[2]
        );
        assert!(notes[2].contains("3.00x (goal >= 2x: met)"), "{}", notes[2]);
    }

    #[test]
    fn the_baseline_s_crossings_are_the_machine_s_own() {
        let mut report = DemoReport::default();
        report.settings.target_p99_ms = 1.0;
        // The foreground alone crosses once in the high phase, after being under at the step.
        let alone =
            series(&[(0.2, 0.3, 0.5, 0.5), (0.6, 0.5, 0.5, 0.5), (0.6, 0.5, 0.5, 0.5), (0.6, 1.5, 0.5, 0.5)]);
        report.runs.push(ModeResult { name: "baseline".into(), series: alone, ..ModeResult::default() });
        report.modes.push(ModeSummary {
            name: "baseline".into(),
            p99_ms: Estimate { median: 0.8, low: 0.8, high: 0.8, rounds: 1 },
            ..ModeSummary::default()
        });
        summarize(&mut report);
        let notes = verdicts(&report);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("baseline (no elastic work): scheduling p99 over target after the step up for 0.0 s; then 6.7 intervals over target per 10 s; foreground p99 0.80 ms"), "{}", notes[0]);
        assert!(!notes[0].contains("share"), "no share to settle: {}", notes[0]);
    }
}
