//! From measured windows to figures over rounds, and the verdicts read from them.
//!
//! Each mode ran once per round (the baseline twice). A mode's foreground p99 is compared with
//! the baseline's by one of three statistics ([`Statistic`]); each gives a ratio with a 95 %
//! bootstrap interval over rounds. The baseline against itself (the later of a round's two
//! baseline windows against the earlier) is the A/A line: the noise floor of the run. The idle
//! CPU that elastic work is measured against is what the machine left idle during the baseline
//! windows.

use clap::ValueEnum;
use tailguard::histogram::HistogramSnapshot;

use super::stats::{bootstrap, median, median_estimate};
use crate::report::{
    DemoReport, ElasticSummary, Estimate, IDLE_GOAL, ModeResult, ModeSummary, P99_GOAL, Ratios, fmt_pct,
};

/// The A/A interval within which a run counts as steady enough to judge by.
pub const STEADY: (f64, f64) = (0.8, 1.25);

/// How a mode's foreground p99 is compared with the baseline's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Statistic {
    /// Per round, the median of the window's per-interval (500 ms) p99s against the
    /// baselines'; the median over rounds. The steadiest across repeated runs on the project's
    /// VMs (docs/design-notes.md): a stall that lifts one interval's p99 moves it little.
    Intervals,
    /// Per round, the window's p99 against the baselines' of the same round; the median over
    /// rounds.
    Window,
    /// The p99 of every round's requests pooled, against the baseline's pooled; the interval
    /// comes from resampling the rounds.
    Pooled,
}

impl Statistic {
    /// The statistic's name, as `--statistic` takes it and the report shows it.
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Pooled => "pooled",
            Statistic::Window => "window",
            Statistic::Intervals => "intervals",
        }
    }
}

/// One measured window with the raw latencies its statistics need.
pub struct Measured {
    /// The window as reported.
    pub result: ModeResult,
    /// Every foreground latency of the window.
    pub latency: HistogramSnapshot,
}

/// The figures over rounds.
pub struct Summary {
    /// One per mode, in the order given.
    pub modes: Vec<ModeSummary>,
    /// The baseline against itself.
    pub noise: Option<Ratios>,
    /// The machine's idle CPU during the baseline windows, and where it was read.
    pub idle: Option<(f64, &'static str)>,
}

/// Summarises `runs` (in the order they ran) per mode of `names`, and fills in each run's
/// elastic share of the idle CPU.
pub fn summarize(names: &[String], runs: &mut [Measured]) -> Summary {
    let idle = idle_cpu(runs);
    if let Some((idle, _)) = idle {
        for run in runs.iter_mut() {
            if let Some(e) = run.result.elastic.as_mut() {
                e.idle_share_used = (idle > 0.0).then(|| e.cpu_share / idle);
            }
        }
    }
    let rounds = runs.iter().map(|r| r.result.round).max().unwrap_or(0) as usize;
    let by_round = |name: &str| -> Vec<Vec<&Measured>> {
        let mut grouped = vec![Vec::new(); rounds];
        for run in runs.iter().filter(|r| r.result.name == name && r.result.round >= 1) {
            grouped[run.result.round as usize - 1].push(run);
        }
        grouped
    };
    let baseline = by_round("baseline");
    let has_baseline = baseline.iter().any(|r| !r.is_empty());
    let uncontrolled = by_round("uncontrolled");
    let has_uncontrolled = uncontrolled.iter().any(|r| !r.is_empty());
    let noise = has_baseline.then(|| {
        // The later window of each round against the earlier; rounds with one are left out.
        let later: Vec<Vec<&Measured>> =
            baseline.iter().map(|r| r.get(1).into_iter().copied().collect()).collect();
        let earlier: Vec<Vec<&Measured>> =
            baseline.iter().map(|r| if r.len() > 1 { vec![r[0]] } else { Vec::new() }).collect();
        ratios(&later, &earlier)
    });
    let modes = names
        .iter()
        .map(|name| {
            let mine = by_round(name);
            let all: Vec<&ModeResult> = mine.iter().flatten().map(|m| &m.result).collect();
            let figure = |pick: fn(&ModeResult) -> f64| {
                median_estimate(&all.iter().map(|r| pick(r)).collect::<Vec<_>>())
            };
            let optional = |pick: fn(&ModeResult) -> Option<f64>| {
                let values: Vec<f64> = all.iter().filter_map(|r| pick(r)).collect();
                (!values.is_empty()).then(|| median_estimate(&values))
            };
            let elastic_runs: Vec<&crate::report::Elastic> =
                all.iter().filter_map(|r| r.elastic.as_ref()).collect();
            let elastic = (!elastic_runs.is_empty()).then(|| {
                let of = |pick: fn(&crate::report::Elastic) -> f64| {
                    median_estimate(&elastic_runs.iter().map(|e| pick(e)).collect::<Vec<_>>())
                };
                let of_optional = |pick: fn(&crate::report::Elastic) -> Option<f64>| {
                    let values: Vec<f64> = elastic_runs.iter().filter_map(|e| pick(e)).collect();
                    (!values.is_empty()).then(|| median_estimate(&values))
                };
                let verified: Vec<bool> = elastic_runs.iter().filter_map(|e| e.verified).collect();
                ElasticSummary {
                    keys_per_sec: of(|e| e.keys_per_sec),
                    scan_keys_per_sec: of(|e| e.scan_keys_per_sec),
                    cpu_share: of(|e| e.cpu_share),
                    accounted_over_measured: of_optional(|e| {
                        e.accounted_cpu_share.filter(|_| e.cpu_share > 0.0).map(|a| a / e.cpu_share)
                    }),
                    idle_share_used: of_optional(|e| e.idle_share_used),
                    mean_share: of_optional(|e| e.mean_share),
                    backups: elastic_runs.iter().map(|e| e.backups).sum(),
                    verified: (!verified.is_empty()).then(|| verified.iter().all(|&v| v)),
                }
            });
            ModeSummary {
                name: name.clone(),
                runs: all.len() as u32,
                throughput_rps: figure(|r| r.foreground.throughput_rps),
                p50_ms: figure(|r| r.foreground.p50_ms),
                p99_ms: figure(|r| r.foreground.p99_ms),
                p999_ms: figure(|r| r.foreground.p999_ms),
                max_ms: figure(|r| r.foreground.max_ms),
                sched_p99_ms: optional(|r| r.sched_p99_ms),
                machine_steal: optional(|r| r.machine_steal),
                p99_vs_baseline: has_baseline.then(|| ratios(&mine, &baseline)),
                lower_than_uncontrolled: (has_uncontrolled && name != "uncontrolled")
                    .then(|| ratios(&uncontrolled, &mine)),
                elastic,
                step: None,
            }
        })
        .collect();
    Summary { modes, noise, idle }
}

/// The idle CPU during the baseline windows: the mean of the machine's idle share over them,
/// or, where `/proc/stat` could not be read, what the process left of the machine.
fn idle_cpu(runs: &[Measured]) -> Option<(f64, &'static str)> {
    let baselines: Vec<&ModeResult> =
        runs.iter().map(|r| &r.result).filter(|r| r.name == "baseline").collect();
    if baselines.is_empty() {
        return None;
    }
    let machine: Vec<f64> = baselines.iter().filter_map(|r| r.machine_idle).collect();
    if machine.len() == baselines.len() {
        return Some((machine.iter().sum::<f64>() / machine.len() as f64, "/proc/stat"));
    }
    let process = baselines.iter().map(|r| 1.0 - r.process_cpu_share).sum::<f64>() / baselines.len() as f64;
    Some((process.max(0.0), "process"))
}

/// The foreground p99 of `top` over `bottom`'s, both grouped by round, by every statistic.
/// Only rounds where both sides ran count.
fn ratios(top: &[Vec<&Measured>], bottom: &[Vec<&Measured>]) -> Ratios {
    let rounds: Vec<usize> =
        (0..top.len().min(bottom.len())).filter(|&r| !top[r].is_empty() && !bottom[r].is_empty()).collect();
    if rounds.is_empty() {
        return Ratios::default();
    }
    // Each side of each round merged into one histogram, and its per-interval p99s.
    let pooled = |side: &[Vec<&Measured>]| -> Vec<HistogramSnapshot> {
        rounds
            .iter()
            .map(|&r| {
                let mut merged = HistogramSnapshot::empty();
                for run in &side[r] {
                    merged.merge(&run.latency);
                }
                merged
            })
            .collect()
    };
    let (top_h, bottom_h) = (pooled(top), pooled(bottom));
    let interval_level = |side: &[Vec<&Measured>], r: usize| {
        let p99s: Vec<f64> =
            side[r].iter().flat_map(|run| run.result.series.iter().filter_map(|p| p.fg_p99_ms)).collect();
        median(&p99s)
    };
    let window: Vec<f64> = (0..rounds.len()).map(|i| p99_ms(&top_h[i]) / p99_ms(&bottom_h[i])).collect();
    let intervals: Vec<f64> =
        rounds.iter().map(|&r| interval_level(top, r) / interval_level(bottom, r)).collect();
    let pooled_ratio = |draw: &[usize]| {
        let (mut t, mut b) = (HistogramSnapshot::empty(), HistogramSnapshot::empty());
        for &i in draw {
            t.merge(&top_h[i]);
            b.merge(&bottom_h[i]);
        }
        p99_ms(&t) / p99_ms(&b)
    };
    let all: Vec<usize> = (0..rounds.len()).collect();
    let (low, high) = bootstrap(rounds.len(), pooled_ratio);
    let point = pooled_ratio(&all);
    Ratios {
        pooled: point.is_finite().then_some(Estimate {
            median: point,
            low,
            high,
            rounds: rounds.len() as u32,
        }),
        window: finite(median_estimate(&window)),
        intervals: finite(median_estimate(&intervals)),
    }
}

fn finite(estimate: Estimate) -> Option<Estimate> {
    estimate.median.is_finite().then_some(estimate)
}

/// The p99 of a histogram in milliseconds; NaN when it is empty.
fn p99_ms(histogram: &HistogramSnapshot) -> f64 {
    histogram.p99().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn times(x: f64) -> String {
    format!("{x:.2}x")
}

/// Which side of a goal a median is on, and whether the interval settles it.
fn against(estimate: &Estimate, goal: f64, met: bool) -> String {
    let verdict = if met { "met" } else { "not met" };
    if estimate.straddles(goal) {
        format!("{verdict} by the median; the interval straddles the goal")
    } else if estimate.rounds > 1 {
        format!("{verdict}, the whole interval")
    } else {
        verdict.to_owned()
    }
}

/// Steal above which a window counts as the host's, in reports from before `--stolen-over` was
/// recorded: a baseline on the project's VMs steals 0–0.5 % when the host is quiet, and the
/// same baseline's p99 triples in windows with 10 % or more.
pub const STEAL_NOTE: f64 = 0.02;

/// A note naming the windows kept in which the host stole more than `--stolen-over` of the CPU
/// (or [`STEAL_NOTE`]), per mode, with the most stolen; `None` when none did (or steal was not
/// read).
pub fn steal_note(report: &DemoReport) -> Option<String> {
    let over = report.settings.stolen_over.unwrap_or(STEAL_NOTE);
    let stolen = |r: &&ModeResult| super::rounds::stolen(r, over);
    let most = report.runs.iter().filter(stolen).filter_map(|r| r.machine_steal).fold(0.0, f64::max);
    let per_mode: Vec<String> = report
        .modes
        .iter()
        .filter_map(|mode| {
            let runs = report.runs.iter().filter(|r| r.name == mode.name);
            let (total, hit) = runs.fold((0, 0), |(n, k), r| (n + 1, k + usize::from(stolen(&r))));
            (hit > 0).then(|| format!("{} {hit} of {total}", mode.name))
        })
        .collect();
    let rerun = match report.settings.rerun_stolen {
        0 => String::new(),
        1 => " after a rerun".to_owned(),
        n => format!(" after {n} reruns"),
    };
    (!per_mode.is_empty()).then(|| {
        format!(
            "host steal: the hypervisor took more than {} of the CPU in some windows{rerun} (up to {}: {}); their figures are the host's as much as the modes' — judge on a quieter run",
            fmt_pct(over),
            fmt_pct(most),
            per_mode.join(", ")
        )
    })
}

/// A note saying how many windows were measured again because the host stole from them, per
/// mode; `None` when none was.
pub fn rerun_note(report: &DemoReport) -> Option<String> {
    let over = report.settings.stolen_over.unwrap_or(STEAL_NOTE);
    let per_mode: Vec<String> = report
        .modes
        .iter()
        .filter_map(|mode| {
            let count = report.rerun.iter().filter(|w| w.name == mode.name).count();
            (count > 0).then(|| format!("{} {count}", mode.name))
        })
        .collect();
    (!per_mode.is_empty()).then(|| {
        let most = report.rerun.iter().map(|w| w.machine_steal).fold(0.0, f64::max);
        format!(
            "measured again: {} window(s) in which the host stole more than {} of the CPU (up to {}: {}); the figures are the reruns', the JSON keeps the windows set aside (`rerun`)",
            report.rerun.len(),
            fmt_pct(over),
            fmt_pct(most),
            per_mode.join(", ")
        )
    })
}

/// Whether a mode's elastic work is steered by a controller that the verdicts judge: tailguard's
/// (`elastic…`) or the utilisation peer (`utilization…`).
fn controlled(name: &str) -> bool {
    name.starts_with("elastic") || name.starts_with("utilization")
}

/// The verdicts of a compare run, computed on medians: the noise floor, then per controlled mode
/// (tailguard's and the utilisation peer) the two halves of the goal, the gain over uncontrolled
/// work and the place against the static frontier, and each elastic mode beside the peer.
pub fn verdicts(report: &DemoReport) -> Vec<String> {
    let mut notes = Vec::new();
    let statistic = &report.settings.statistic;
    let rounds = report.settings.rounds;
    if rounds <= 1 {
        notes.push("one round: no intervals, and one window's noise can exceed the effects; --rounds 5 gives figures worth quoting".to_owned());
    }
    if let Some(noise) = report.noise_floor() {
        let steady = noise.low >= STEADY.0 && noise.high <= STEADY.1;
        notes.push(format!(
            "noise floor: baseline against baseline {} over {} round(s) ({statistic} p99); {}",
            noise.render(times),
            noise.rounds,
            if steady {
                format!("within {}–{}: differences beyond it are effects", times(STEADY.0), times(STEADY.1))
            } else {
                format!(
                    "outside {}–{}: this run is too noisy to judge small differences (more rounds, or a quieter machine)",
                    times(STEADY.0),
                    times(STEADY.1)
                )
            }
        ));
    }
    notes.extend(rerun_note(report));
    notes.extend(steal_note(report));
    let peer = report.modes.iter().find(|m| m.name.starts_with("utilization") && m.elastic.is_some());
    let controlled_modes = report.modes.iter().filter(|m| controlled(&m.name));
    for mode in controlled_modes {
        let Some(e) = &mode.elastic else { continue };
        if let Some(ratio) = report.p99_vs_baseline(mode) {
            notes.push(format!(
                "{}: foreground p99 {} baseline (goal <= {}: {})",
                mode.name,
                ratio.render(times),
                times(P99_GOAL),
                against(&ratio, P99_GOAL, ratio.median <= P99_GOAL)
            ));
        }
        if let Some(idle) = e.idle_share_used {
            notes.push(format!(
                "{}: elastic work used {} of the idle CPU (goal >= {}: {})",
                mode.name,
                idle.render(fmt_pct),
                fmt_pct(IDLE_GOAL),
                against(&idle, IDLE_GOAL, idle.median >= IDLE_GOAL)
            ));
        }
        if let Some(ratio) = e.accounted_over_measured {
            notes.push(format!(
                "{}: the limiter accounted {} of the elastic CPU the work measured (each grant charged with its holder's own time)",
                mode.name,
                ratio.render(fmt_pct)
            ));
        }
        if let Some(lower) = report.lower_than_uncontrolled(mode) {
            notes.push(format!(
                "{}: foreground p99 {} lower than uncontrolled",
                mode.name,
                lower.render(times)
            ));
        }
        let p99 = |m: &ModeSummary| report.p99_vs_baseline(m).map_or(m.p99_ms.median, |r| r.median);
        let dominated_by: Vec<&str> = report
            .modes
            .iter()
            .filter(|m| m.name.starts_with("static:"))
            .filter(|m| {
                m.elastic
                    .as_ref()
                    .is_some_and(|s| p99(m) < p99(mode) && s.cpu_share.median > e.cpu_share.median)
            })
            .map(|m| m.name.as_str())
            .collect();
        let has_static = report.modes.iter().any(|m| m.name.starts_with("static:"));
        if has_static {
            notes.push(if dominated_by.is_empty() {
                format!(
                    "{}: on or beyond the static frontier (medians: no static share has both lower p99 and more elastic work done)",
                    mode.name
                )
            } else {
                format!(
                    "{}: behind the static frontier (medians): {} gave lower p99 and more elastic work done",
                    mode.name,
                    dominated_by.join(", ")
                )
            });
        }
        if let Some(peer) = peer.filter(|_| mode.name.starts_with("elastic")) {
            notes.push(beside_peer(report, mode, peer));
        }
    }
    notes
}

/// An elastic mode beside the utilisation peer, on medians: foreground p99 (against the
/// baseline where there is one) and elastic CPU, each with its interval.
fn beside_peer(report: &DemoReport, mode: &ModeSummary, peer: &ModeSummary) -> String {
    let p99 = |m: &ModeSummary| match report.p99_vs_baseline(m) {
        Some(ratio) => format!("{} baseline", ratio.render(times)),
        None => m.p99_ms.render(|ms| format!("{ms:.2} ms")),
    };
    let cpu =
        |m: &ModeSummary| m.elastic.as_ref().map_or_else(|| "-".to_owned(), |e| e.cpu_share.render(fmt_pct));
    format!(
        "{}: beside {} (the utilisation peer, TiKV's rule), medians: foreground p99 {} against {}, elastic CPU {} of the machine against {}",
        mode.name,
        peer.name,
        p99(mode),
        p99(peer),
        cpu(mode),
        cpu(peer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Elastic, Foreground, RerunWindow, SeriesPoint};
    use tailguard::histogram::Histogram;

    /// A window whose requests take `fast` µs, except 2 % that take `slow` µs (so its p99 is
    /// `slow`), with four interval p99s of `intervals`.
    fn window(
        name: &str,
        round: u32,
        fast: u64,
        slow: u64,
        intervals: f64,
        elastic: Option<f64>,
    ) -> Measured {
        let h = Histogram::new();
        h.record_n(fast * 1_000, 980);
        h.record_n(slow * 1_000, 20);
        let latency = h.snapshot();
        Measured {
            result: ModeResult {
                name: name.to_owned(),
                round,
                foreground: Foreground {
                    p99_ms: slow as f64 / 1e3,
                    throughput_rps: 1000.0,
                    ..Foreground::default()
                },
                process_cpu_share: 0.4,
                machine_idle: Some(0.5),
                elastic: elastic.map(|cpu| Elastic {
                    cpu_share: cpu,
                    verified: Some(true),
                    backups: 1,
                    ..Elastic::default()
                }),
                series: (0..4)
                    .map(|_| SeriesPoint { fg_p99_ms: Some(intervals), ..SeriesPoint::default() })
                    .collect(),
                ..ModeResult::default()
            },
            latency,
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn ratios_by_every_statistic_on_fixed_rounds() {
        // Three rounds: the baseline's p99 is 1 ms, the mode's 2, 3 and 2.5 ms (so 2x, 3x,
        // 2.5x); interval p99s 0.5 ms against 1.5 ms (3x) every round.
        let mut runs = Vec::new();
        for (round, slow) in [(1, 2000), (2, 3000), (3, 2500)] {
            runs.push(window("baseline", round, 100, 1000, 0.5, None));
            runs.push(window("elastic", round, 100, slow, 1.5, Some(0.3)));
            runs.push(window("baseline", round, 100, 1000, 0.5, None));
        }
        let summary = summarize(&names(&["baseline", "elastic"]), &mut runs);
        let elastic = &summary.modes[1];
        let r = elastic.p99_vs_baseline.as_ref().unwrap();
        let w = r.window.unwrap();
        assert!((w.median - 2.5).abs() < 0.1, "{w:?}");
        assert!(w.low <= 2.05 && w.high >= 2.95 && w.rounds == 3, "{w:?}");
        let i = r.intervals.unwrap();
        assert!((i.median - 3.0).abs() < 1e-9 && i.low == i.median && i.high == i.median, "{i:?}");
        // Pooled: 60 slow requests of 2, 3 and 2.5 ms among 3000 — the p99 (rank 2970) is in
        // the 2 ms group's upper part or the 2.5 ms group, against 1 ms.
        let p = r.pooled.unwrap();
        assert!(p.median >= 1.9 && p.median <= 3.1 && p.low <= p.median && p.median <= p.high, "{p:?}");
        // The A/A of identical baselines is 1 by every statistic.
        let noise = summary.noise.unwrap();
        for e in [noise.pooled, noise.window, noise.intervals] {
            let e = e.unwrap();
            assert!((e.median - 1.0).abs() < 1e-9 && (e.high - e.low).abs() < 1e-9, "{e:?}");
        }
        // Idle CPU from the baseline windows' machine idle: 0.3 / 0.5.
        assert_eq!(summary.idle, Some((0.5, "/proc/stat")));
        let idle = elastic.elastic.as_ref().unwrap().idle_share_used.unwrap();
        assert!((idle.median - 0.6).abs() < 1e-9);
        assert_eq!(summary.modes[0].runs, 6);
        assert!(summary.modes[0].elastic.is_none());
    }

    #[test]
    fn noise_floor_pairs_later_with_earlier_baseline() {
        let mut runs = Vec::new();
        for round in 1..=4 {
            runs.push(window("baseline", round, 100, 1000, 1.0, None));
            runs.push(window("baseline", round, 100, 1200, 1.2, None));
        }
        let noise = summarize(&names(&["baseline"]), &mut runs).noise.unwrap();
        // The histogram's buckets are a few percent wide; the interval p99s are exact.
        assert!((noise.window.unwrap().median - 1.2).abs() < 0.05, "{noise:?}");
        assert!((noise.intervals.unwrap().median - 1.2).abs() < 1e-9);
    }

    #[test]
    fn without_baseline_no_ratios_and_idle_falls_back_to_the_process() {
        let mut runs = vec![window("elastic", 1, 100, 1000, 1.0, Some(0.2))];
        let summary = summarize(&names(&["elastic"]), &mut runs);
        assert!(summary.noise.is_none() && summary.idle.is_none());
        assert!(summary.modes[0].p99_vs_baseline.is_none());
        let mut runs =
            vec![window("baseline", 1, 100, 1000, 1.0, None), window("elastic", 1, 100, 900, 1.0, Some(0.2))];
        runs[0].result.machine_idle = None;
        let summary = summarize(&names(&["baseline", "elastic"]), &mut runs);
        assert_eq!(summary.idle, Some((0.6, "process")));
    }

    #[test]
    fn verdicts_say_when_the_interval_straddles_the_goal() {
        let report = crate::report::fixtures::sample_report();
        let notes = verdicts(&report);
        // sample_report: elastic 1.38x [1.2–1.6] baseline, 75 % [65–80 %] of idle.
        assert!(
            notes.iter().any(|n| n.contains("elastic: foreground p99 1.38x [1.20x–1.60x] baseline")
                && n.contains("met by the median; the interval straddles")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.contains("of the idle CPU") && n.contains("straddles")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("lower than uncontrolled")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("on or beyond the static frontier")), "{notes:?}");
        assert!(
            notes.iter().any(|n| n.starts_with("noise floor") && n.contains("within 0.80x–1.25x")),
            "{notes:?}"
        );
        // No peer in the run: no line about it.
        assert!(!notes.iter().any(|n| n.contains("utilisation peer")), "{notes:?}");
    }

    #[test]
    fn windows_the_host_stole_from_are_named_per_mode() {
        let mut report = crate::report::fixtures::sample_report();
        for run in &mut report.runs {
            run.machine_steal = Some(0.004);
        }
        assert_eq!(steal_note(&report), None, "under --stolen-over is a quiet host");
        let elastic: Vec<usize> =
            (0..report.runs.len()).filter(|&i| report.runs[i].name == "elastic").collect();
        report.runs[elastic[0]].machine_steal = Some(0.12);
        let baseline = report.runs.iter().position(|r| r.name == "baseline").unwrap();
        report.runs[baseline].machine_steal = Some(0.01);
        let note = steal_note(&report).unwrap();
        assert!(
            note.contains("more than 0.5% of the CPU in some windows after 2 reruns (up to 12.0%: baseline 1 of 4, elastic 1 of 2)"),
            "{note}"
        );
        assert!(verdicts(&report).contains(&note));
        // A report from before the limit was recorded: 2 %, and no reruns.
        (report.settings.stolen_over, report.settings.rerun_stolen) = (None, 0);
        let note = steal_note(&report).unwrap();
        assert!(
            note.contains("more than 2.0% of the CPU in some windows (up to 12.0%: elastic 1 of 2)"),
            "{note}"
        );
    }

    #[test]
    fn windows_measured_again_are_counted_per_mode() {
        let mut report = crate::report::fixtures::sample_report();
        assert_eq!(rerun_note(&report), None);
        let stolen = |name: &str, steal: f64| RerunWindow {
            name: name.into(),
            round: 1,
            machine_steal: steal,
            fg_p99_ms: 3.0,
            elastic_cpu_share: None,
        };
        report.rerun = vec![stolen("baseline", 0.03), stolen("elastic", 0.2), stolen("baseline", 0.01)];
        let note = rerun_note(&report).unwrap();
        assert!(
            note.contains("3 window(s) in which the host stole more than 0.5% of the CPU (up to 20.0%: baseline 2, elastic 1)"),
            "{note}"
        );
        assert!(verdicts(&report).contains(&note));
    }

    #[test]
    fn the_utilization_peer_is_judged_and_set_beside_each_elastic_mode() {
        let mut report = crate::report::fixtures::sample_report();
        let mut peer = report.modes.iter().find(|m| m.name == "elastic").unwrap().clone();
        peer.name = "utilization".into();
        let ratio = Estimate { median: 2.5, low: 2.0, high: 3.0, rounds: 2 };
        peer.p99_vs_baseline =
            Some(Ratios { pooled: Some(ratio), window: Some(ratio), intervals: Some(ratio) });
        peer.elastic.as_mut().unwrap().cpu_share = Estimate { median: 0.6, low: 0.55, high: 0.65, rounds: 2 };
        report.modes.push(peer);
        let notes = verdicts(&report);
        // Judged against the same goals as tailguard's modes.
        assert!(
            notes.iter().any(|n| n.starts_with("utilization: foreground p99 2.50x [2.00x–3.00x] baseline")
                && n.contains("not met")),
            "{notes:?}"
        );
        assert!(notes.iter().any(|n| n.starts_with("utilization: elastic work used")), "{notes:?}");
        // And the elastic mode beside it.
        let beside = notes
            .iter()
            .find(|n| n.starts_with("elastic: beside utilization (the utilisation peer"))
            .expect("{notes:?}");
        assert!(
            beside
                .contains("foreground p99 1.38x [1.20x–1.60x] baseline against 2.50x [2.00x–3.00x] baseline"),
            "{beside}"
        );
        assert!(
            beside.contains("elastic CPU 45.0% [40.5%–49.5%] of the machine against 60.0% [55.0%–65.0%]"),
            "{beside}"
        );
    }
}
