//! The cluster run's HTML page: the table, and each node's share, scheduling p99 and foreground
//! p99 over time.

use std::fmt::Write as _;

use super::report::{ClusterReport, NodeReport};
use crate::report::{Chart, PAGE_STYLE, Scale, Series, escape};

/// Points `(seconds since the run's start, value)` of one node's series; `None` breaks the line.
type Points = Vec<(f64, Option<f64>)>;

/// A self-contained page.
pub fn render(report: &ClusterReport) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tailguard cluster</title>\
         <style>{PAGE_STYLE}</style></head><body><h1>tailguard cluster</h1><pre>{}</pre>",
        escape(&report.table())
    );
    let rounds: Vec<String> = report
        .rounds
        .iter()
        .map(|r| {
            format!(
                "baseline from {:.1} s, backup {:.1}–{:.1} s",
                r.baseline_started_at, r.backup_started_at, r.backup_ended_at
            )
        })
        .collect();
    let x_label = format!("seconds since the run started ({})", rounds.join("; "));
    let series = |pick: &dyn Fn(&NodeReport) -> Points| -> Vec<Series> {
        report
            .nodes
            .iter()
            .map(|n| Series {
                name: format!("node {} ({} cores)", n.index, n.cores),
                colour: n.index,
                points: pick(n),
            })
            .collect()
    };
    let charts = [
        Chart {
            title: "Elastic share allowed",
            x_label: &x_label,
            y_label: "share of the node's cores",
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: series(&|n| n.share_series.iter().map(|p| (p.at, Some(p.share))).collect()),
            reference: None,
        },
        Chart {
            title: "Scheduling latency p99 (controller's window)",
            x_label: &x_label,
            y_label: "ms",
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            series: series(&|n| {
                n.share_series.iter().map(|p| (p.at, p.p99_seconds.map(|s| s * 1e3))).collect()
            }),
            reference: None,
        },
        Chart {
            title: "Foreground p99 per second",
            x_label: &x_label,
            y_label: "ms",
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            series: series(&|n| {
                n.foreground_p99_series.iter().map(|&(at, p)| (at, p.map(|s| s * 1e3))).collect()
            }),
            reference: None,
        },
    ];
    page.push_str("<div class=\"charts\">");
    for chart in &charts {
        page.push_str(&chart.render());
    }
    page.push_str("</div></body></html>\n");
    page
}
