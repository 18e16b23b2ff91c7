//! The cluster run's report: per node and for the whole backup, as a terminal table and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::load::{INTERVAL_SECONDS, WindowStats};
use super::split::KeyRange;
use super::verify::{PartsReport, Segment};
use super::watch::LimiterPoint;
use crate::demo::stats::median_estimate;
use crate::report::{Estimate, P99_GOAL};

/// One node in one round: its baseline, then its part of that round's backup.
#[derive(Clone, Debug, Serialize)]
pub struct NodeRound {
    /// Foreground alone.
    pub baseline: WindowStats,
    /// Foreground while the node's own part of the backup ran.
    pub during_backup: WindowStats,
    /// `during_backup.interval_p99 / baseline.interval_p99`: the median of the 500 ms intervals'
    /// p99s against the baseline's (the demo's `intervals` statistic).
    pub p99_ratio: Option<f64>,
    /// `during_backup.p99 / baseline.p99`: whole-window p99s, which one bad second sets.
    pub pooled_p99_ratio: Option<f64>,
    /// The baseline's second half against its first, by the statistic of `p99_ratio`: how far
    /// the foreground alone moves (the round's noise floor).
    pub baseline_aa_ratio: Option<f64>,
    /// Scheduling-latency p99 (median of the readings), seconds: baseline, during the node's part.
    pub scheduling_p99_seconds: (Option<f64>, Option<f64>),
    /// Mean elastic share during the node's part.
    pub mean_share: Option<f64>,
    /// CPU the node's process used during the baseline (its foreground, with the limiter's own
    /// probe and sampler), as a fraction of its cores.
    pub baseline_cpu_fraction: Option<f64>,
    /// CPU elastic work used under its grants during the node's part, fraction of its cores.
    pub elastic_cpu_fraction: Option<f64>,
    /// `elastic_cpu_fraction` over what the baseline left idle (`1 − baseline_cpu_fraction`):
    /// the demo's "of idle".
    pub elastic_of_idle: Option<f64>,
    /// Seconds after the backup's start at which the share settled.
    pub share_settled_after_seconds: Option<f64>,
    /// Keys per second of the node's backup (its jobs' running time).
    pub backup_keys_per_second: f64,
    /// Raw megabytes per second of the node's backup.
    pub backup_mb_per_second: f64,
    /// Seconds the node's jobs ran.
    pub backup_seconds: f64,
    /// Whether the node was killed mid-backup and its range resumed.
    pub killed_and_resumed: bool,
    /// The node's files.
    pub segments: Vec<Segment>,
}

/// One node's results: medians over the rounds with 95 % bootstrap intervals, and each round.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    /// Position in the cluster.
    pub index: usize,
    /// `http://host:port`.
    pub address: String,
    /// How a local node is confined (cgroup quota, CPUs); `None` for a node started elsewhere.
    pub confinement: Option<String>,
    /// Cores the node's limiter detected.
    pub cores: f64,
    /// Where that figure came from.
    pub cores_source: String,
    /// The node's part of the keyspace.
    pub range: KeyRange,
    /// Foreground rate offered, requests per second.
    pub offered_rate: f64,
    /// Foreground p99 during the node's part against its baseline, by the intervals statistic.
    pub p99_ratio: Option<Estimate>,
    /// Whether the median ratio meets the isolation goal (`P99_GOAL`).
    pub isolation_met: Option<bool>,
    /// The same by the whole windows' p99s.
    pub pooled_p99_ratio: Option<Estimate>,
    /// The baseline's second half against its first: the noise floor.
    pub baseline_aa_ratio: Option<Estimate>,
    /// Mean elastic share during the node's part.
    pub mean_share: Option<Estimate>,
    /// The node's CPU use during the baseline, fraction of its cores: what `--load` became.
    pub baseline_cpu_fraction: Option<Estimate>,
    /// Elastic CPU during the node's part over the CPU its baseline left idle.
    pub elastic_of_idle: Option<Estimate>,
    /// Seconds after the backup's start at which the share settled.
    pub share_settled_after_seconds: Option<Estimate>,
    /// Keys per second of the node's backup.
    pub backup_keys_per_second: Estimate,
    /// Each round.
    pub rounds: Vec<NodeRound>,
    /// Share and scheduling p99 over the whole run.
    pub share_series: Vec<LimiterPoint>,
    /// Foreground p99 of each second of the run, seconds: `(start of the second, p99)`.
    pub foreground_p99_series: Vec<(f64, Option<f64>)>,
}

/// One round of the whole run.
#[derive(Clone, Debug, Serialize)]
pub struct RoundReport {
    /// When the baseline started, seconds since the run's start.
    pub baseline_started_at: f64,
    /// When the backup started, seconds since the run's start.
    pub backup_started_at: f64,
    /// When the last part ended, seconds since the run's start.
    pub backup_ended_at: f64,
    /// Wall time of the round's backup, from its start to the last part's end, seconds.
    pub backup_seconds: f64,
    /// Backup rate of the node with the most cores over the one with the fewest (nodes of equal
    /// cores: the fastest over the slowest).
    pub rate_ratio: Option<f64>,
    /// How the round's parts were verified.
    pub verification: String,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterReport {
    /// Keys of the keyspace.
    pub keys: u64,
    /// Target foreground load, fraction of each node's measured capacity.
    pub load: f64,
    /// The foreground clients' priority as they ran (`realtime` or `normal`).
    pub generator_priority: String,
    /// Seconds of each baseline window.
    pub baseline_seconds: f64,
    /// Wall time of a whole backup, seconds.
    pub backup_seconds: Estimate,
    /// Backup rate of the node with the most cores over the one with the fewest (nodes of equal
    /// cores: the fastest over the slowest).
    pub rate_ratio: Option<Estimate>,
    /// What the verification found in the first round (local nodes: every key, byte for byte);
    /// every round's parts were verified the same way, or the run failed.
    pub verified: Option<PartsReport>,
    /// The isolation goal: foreground p99 at most this many times the node's own baseline.
    pub p99_goal: f64,
    /// Each round: a baseline, then a backup of the whole keyspace.
    pub rounds: Vec<RoundReport>,
    /// Per node.
    pub nodes: Vec<NodeReport>,
    /// Why the run ended before its last round (a signal), if it did.
    pub interrupted: Option<String>,
}

/// The median over rounds of the values there are, with its interval; `None` without any.
pub fn estimate(values: impl IntoIterator<Item = Option<f64>>) -> Option<Estimate> {
    let values: Vec<f64> = values.into_iter().flatten().filter(|v| v.is_finite()).collect();
    (!values.is_empty()).then(|| median_estimate(&values))
}

/// The backup rate of the node with the most cores over that of the node with the fewest (a
/// small node that ran faster is a ratio under 1, not a good one); where every node has the
/// same cores, the fastest over the slowest. `None` for one node or a node at zero.
pub fn rate_ratio(rates: &[f64], cores: &[f64]) -> Option<f64> {
    if rates.len() < 2 || rates.len() != cores.len() || rates.iter().any(|&r| r <= 0.0) {
        return None;
    }
    let biggest = (0..cores.len()).max_by(|&a, &b| cores[a].total_cmp(&cores[b]))?;
    let smallest = (0..cores.len()).min_by(|&a, &b| cores[a].total_cmp(&cores[b]))?;
    if cores[biggest] > cores[smallest] {
        return Some(rates[biggest] / rates[smallest]);
    }
    let max = rates.iter().copied().reduce(f64::max)?;
    let min = rates.iter().copied().reduce(f64::min)?;
    Some(max / min)
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |s| format!("{:.2}", s * 1e3))
}

fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "-".to_owned(), |f| format!("{:.1}%", f * 100.0))
}

fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

fn median(estimate: Option<Estimate>) -> Option<f64> {
    estimate.map(|e| e.median)
}

/// `median [low–high]` with `digits` decimals, or the median alone for one round.
fn with_interval(estimate: &Estimate, digits: usize) -> String {
    estimate.render(|v| format!("{v:.digits$}"))
}

impl ClusterReport {
    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<4} {:>6} {:>13} {:>6} {:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>5} {:>9} {:>9} {:>8}",
            "node",
            "cores",
            "keys",
            "fg CPU",
            "share",
            "elastic",
            "settled",
            "sched p99",
            "fg p99",
            "fg p99",
            "ratio",
            "pooled",
            "A/A",
            "backup",
            "backup",
            "killed"
        );
        let _ = writeln!(
            out,
            "{:<4} {:>6} {:>13} {:>6} {:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>5} {:>9} {:>9} {:>8}",
            "",
            "",
            "",
            "base",
            "mean",
            "of idle",
            "after s",
            "ms",
            "base ms",
            "bkup ms",
            "",
            "ratio",
            "",
            "keys/s",
            "MB/s",
            ""
        );
        for n in &self.nodes {
            // Medians over the rounds of each column.
            let of = |pick: &dyn Fn(&NodeRound) -> Option<f64>| median(estimate(n.rounds.iter().map(pick)));
            let ratio = median(n.p99_ratio).map_or_else(
                || "-".to_owned(),
                |r| format!("{r:.2}{}", if r <= self.p99_goal { "" } else { "!" }),
            );
            let _ = writeln!(
                out,
                "{:<4} {:>6.2} {:>13} {:>6} {:>7} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>5} {:>9.0} {:>9.2} {:>8}",
                n.index,
                n.cores,
                format!("{}..{}", n.range.from, n.range.to),
                percent(median(n.baseline_cpu_fraction)),
                percent(median(n.mean_share)),
                percent(median(n.elastic_of_idle)),
                median(n.share_settled_after_seconds).map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
                ms(of(&|r| r.scheduling_p99_seconds.1)),
                ms(of(&|r| r.baseline.interval_p99_seconds)),
                ms(of(&|r| r.during_backup.interval_p99_seconds)),
                ratio,
                times(median(n.pooled_p99_ratio)),
                times(median(n.baseline_aa_ratio)),
                n.backup_keys_per_second.median,
                of(&|r| Some(r.backup_mb_per_second)).unwrap_or(0.0),
                if n.rounds.iter().any(|r| r.killed_and_resumed) { "resumed" } else { "no" },
            );
        }
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "node {}: {} ({}), {}; {:.0} req/s offered, {} errors during the backup",
                n.index,
                n.address,
                n.cores_source,
                n.confinement.as_deref().unwrap_or("started elsewhere"),
                n.offered_rate,
                n.rounds.iter().map(|r| r.during_backup.errors).sum::<u64>(),
            );
        }
        if self.rounds.len() > 1 {
            for n in &self.nodes {
                let interval =
                    |e: Option<Estimate>| e.map_or_else(|| "-".to_owned(), |e| with_interval(&e, 2));
                let per_round: Vec<String> = n.rounds.iter().map(|r| times(r.p99_ratio)).collect();
                let _ = writeln!(
                    out,
                    "node {}: p99 ratio {} (rounds {}), A/A {}; settled after {} s",
                    n.index,
                    interval(n.p99_ratio),
                    per_round.join(", "),
                    interval(n.baseline_aa_ratio),
                    n.share_settled_after_seconds.map_or_else(|| "-".to_owned(), |e| with_interval(&e, 1)),
                );
            }
        }
        if let Some(ratio) = &self.rate_ratio {
            let _ = writeln!(
                out,
                "backup rate, the node of most cores over the node of fewest: {}x",
                with_interval(ratio, 2)
            );
        }
        let _ = writeln!(
            out,
            "whole backup: {} keys in {} s; {}",
            self.keys,
            with_interval(&self.backup_seconds, 1),
            self.rounds.first().map_or("", |r| r.verification.as_str())
        );
        if self.rounds.len() > 1 {
            let _ = writeln!(
                out,
                "{} rounds, each a {} s baseline and a backup of the whole keyspace; medians over rounds, [95 % bootstrap intervals]",
                self.rounds.len(),
                self.baseline_seconds
            );
        }
        let _ = writeln!(
            out,
            "isolation goal: foreground p99 at most {P99_GOAL}x the node's own baseline ('!' misses it); \
             fg p99: the median of its {INTERVAL_SECONDS} s intervals' p99s, as the demo's intervals statistic; \
             pooled: the whole windows' p99s; A/A: the baseline's second half over its first; \
             fg CPU: the node's CPU use in its baselines, of its cores; elastic: elastic CPU during the part, \
             of what the baseline left idle; foreground clients at {} priority",
            self.generator_priority
        );
        if let Some(interrupted) = &self.interrupted {
            let _ = writeln!(out, "{interrupted}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_ratio_is_the_biggest_node_over_the_smallest_and_needs_two_moving_nodes() {
        // By cores, whichever is faster: a small node that outran the big one is under 1.
        assert_eq!(rate_ratio(&[1000.0, 2500.0, 2000.0], &[0.5, 1.0, 2.0]), Some(2.0));
        assert_eq!(rate_ratio(&[3000.0, 1500.0], &[0.5, 1.0]), Some(0.5));
        // Nodes of equal cores: the fastest over the slowest.
        assert_eq!(rate_ratio(&[1000.0, 2500.0], &[1.0, 1.0]), Some(2.5));
        assert_eq!(rate_ratio(&[1000.0], &[1.0]), None);
        assert_eq!(rate_ratio(&[0.0, 1000.0], &[0.5, 1.0]), None);
        assert_eq!(rate_ratio(&[], &[]), None);
    }

    #[test]
    fn an_estimate_takes_the_values_there_are() {
        assert_eq!(estimate([None, None]), None);
        let e = estimate([Some(1.0), None, Some(3.0), Some(2.0), Some(f64::NAN)]).unwrap();
        assert_eq!((e.median, e.rounds), (2.0, 3));
        assert!(e.low <= 2.0 && e.high >= 2.0);
        assert_eq!(with_interval(&estimate([Some(1.5)]).unwrap(), 2), "1.50");
        assert!(with_interval(&e, 1).starts_with("2.0 ["), "{}", with_interval(&e, 1));
    }
}
