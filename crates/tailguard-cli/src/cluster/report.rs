//! The cluster run's report: per node and for the whole backup, as a terminal table and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::load::{INTERVAL_SECONDS, WindowStats};
use super::split::KeyRange;
use super::verify::{PartsReport, Segment};
use super::watch::LimiterPoint;
use crate::report::P99_GOAL;

/// One node's results.
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
    /// the foreground alone moves (the run's noise floor).
    pub baseline_aa_ratio: Option<f64>,
    /// Whether the ratio meets the isolation goal (`P99_GOAL`).
    pub isolation_met: Option<bool>,
    /// Scheduling-latency p99 (median of the readings), seconds: baseline, during the node's part.
    pub scheduling_p99_seconds: (Option<f64>, Option<f64>),
    /// Mean elastic share during the node's part.
    pub mean_share: Option<f64>,
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
    /// Share and scheduling p99 over time.
    pub share_series: Vec<LimiterPoint>,
    /// Foreground p99 of each second of the run, seconds: `(start of the second, p99)`.
    pub foreground_p99_series: Vec<(f64, Option<f64>)>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterReport {
    /// Keys of the keyspace.
    pub keys: u64,
    /// Target foreground load, fraction of each node's measured capacity.
    pub load: f64,
    /// Seconds of the baseline window.
    pub baseline_seconds: f64,
    /// When the baseline started, seconds since the run's start.
    pub baseline_started_at: f64,
    /// When the backup started, seconds since the run's start.
    pub backup_started_at: f64,
    /// When the last part ended, seconds since the run's start.
    pub backup_ended_at: f64,
    /// Wall time of the whole backup, from the first start to the last part's end, seconds.
    pub backup_seconds: f64,
    /// How the parts were verified.
    pub verification: String,
    /// What the verification found (local nodes: every key, byte for byte).
    pub verified: Option<PartsReport>,
    /// The isolation goal: foreground p99 at most this many times the node's own baseline.
    pub p99_goal: f64,
    /// Per node.
    pub nodes: Vec<NodeReport>,
}

fn ms(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |s| format!("{:.2}", s * 1e3))
}

fn times(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"))
}

impl ClusterReport {
    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<4} {:>6} {:>13} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>5} {:>9} {:>9} {:>8}",
            "node",
            "cores",
            "keys",
            "share",
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
            "{:<4} {:>6} {:>13} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>5} {:>9} {:>9} {:>8}",
            "", "", "", "mean", "after s", "ms", "base ms", "bkup ms", "", "ratio", "", "keys/s", "MB/s", ""
        );
        for n in &self.nodes {
            let ratio = n.p99_ratio.map_or_else(
                || "-".to_owned(),
                |r| format!("{r:.2}{}", if r <= self.p99_goal { "" } else { "!" }),
            );
            let _ = writeln!(
                out,
                "{:<4} {:>6.2} {:>13} {:>7} {:>8} {:>9} {:>9} {:>9} {:>7} {:>7} {:>5} {:>9.0} {:>9.2} {:>8}",
                n.index,
                n.cores,
                format!("{}..{}", n.range.from, n.range.to),
                n.mean_share.map_or_else(|| "-".to_owned(), |s| format!("{:.1}%", s * 100.0)),
                n.share_settled_after_seconds.map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
                ms(n.scheduling_p99_seconds.1),
                ms(n.baseline.interval_p99_seconds),
                ms(n.during_backup.interval_p99_seconds),
                ratio,
                times(n.pooled_p99_ratio),
                times(n.baseline_aa_ratio),
                n.backup_keys_per_second,
                n.backup_mb_per_second,
                if n.killed_and_resumed { "resumed" } else { "no" },
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
                n.during_backup.errors,
            );
        }
        let rates: Vec<f64> = self.nodes.iter().map(|n| n.backup_keys_per_second).collect();
        if let (Some(max), Some(min)) =
            (rates.iter().copied().reduce(f64::max), rates.iter().copied().reduce(f64::min))
        {
            if min > 0.0 && rates.len() > 1 {
                let _ = writeln!(out, "backup rate, fastest over slowest node: {:.2}x", max / min);
            }
        }
        let _ = writeln!(
            out,
            "whole backup: {} keys in {:.1} s; {}",
            self.keys, self.backup_seconds, self.verification
        );
        let _ = writeln!(
            out,
            "isolation goal: foreground p99 at most {P99_GOAL}x the node's own baseline ('!' misses it); \
             fg p99: the median of its {INTERVAL_SECONDS} s intervals' p99s, as the demo's intervals statistic; \
             pooled: the whole windows' p99s; A/A: the baseline's second half over its first"
        );
        out
    }
}
