//! The terminal table.

use std::fmt::Write as _;

use super::{DemoReport, fmt_ms, fmt_pct};

/// Renders the side-by-side comparison of every mode as a fixed-width text table.
pub fn render_table(report: &DemoReport) -> String {
    let header = [
        "mode",
        "fg req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "p99 x base",
        "sched p99",
        "backup keys/s",
        "elastic CPU",
        "of idle",
        "mean share",
        "backups",
    ];
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(report.modes.len());
    for mode in &report.modes {
        let fg = &mode.foreground;
        let elastic = mode.elastic.as_ref();
        rows.push(vec![
            mode.name.clone(),
            format!("{:.0}", fg.throughput_rps),
            fmt_ms(fg.p50_ms),
            fmt_ms(fg.p99_ms),
            fmt_ms(fg.p999_ms),
            fmt_ms(fg.max_ms),
            report.p99_vs_baseline(mode).map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x")),
            mode.sched_p99_ms.map_or_else(|| "-".to_owned(), fmt_ms),
            elastic.map_or_else(|| "-".to_owned(), |e| format!("{:.0}", e.keys_per_sec)),
            elastic.map_or_else(|| "-".to_owned(), |e| fmt_pct(e.cpu_share)),
            elastic.map_or_else(|| "-".to_owned(), |e| fmt_pct(e.idle_share_used)),
            elastic.and_then(|e| e.mean_share).map_or_else(|| "-".to_owned(), fmt_pct),
            match elastic.map(|e| (e.verified, e.backups)) {
                Some((Some(true), n)) => format!("{n} ok"),
                Some((Some(false), _)) => "NO".to_owned(),
                _ => "-".to_owned(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        for (c, cell) in cells.iter().enumerate() {
            // The mode column is left-aligned, figures right-aligned.
            let _ = if c == 0 {
                write!(out, "{cell:<w$}", w = widths[c])
            } else {
                write!(out, "  {cell:>w$}", w = widths[c])
            };
        }
        out.push('\n');
    };
    line(&mut out, &header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    line(&mut out, &rule.iter().map(String::as_str).collect::<Vec<_>>());
    for row in &rows {
        line(&mut out, &row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let s = &report.settings;
    let _ = writeln!(
        out,
        "\n{} cores ({}); {:.0} s per mode; foreground load {} ({:.0} req/s offered); {} keys; seed {}; \
         target sched p99 {} ms; elastic work on {}",
        report.machine.cores,
        report.machine.os,
        s.duration_secs,
        fmt_pct(s.load),
        s.rate_rps,
        s.keys,
        s.seed,
        fmt_ms(s.target_p99_ms),
        s.elastic_on,
    );
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_report;

    #[test]
    fn table_has_a_row_per_mode_and_aligned_columns() {
        let text = render_table(&sample_report());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("mode"));
        assert!(lines[2].starts_with("baseline"));
        assert!(lines[3].starts_with("uncontrolled"));
        // Header, rule and rows share one width.
        assert_eq!(lines[0].len(), lines[1].len());
        assert_eq!(lines[1].len(), lines[4].len());
        // Ratios against baseline: 12.0 / 0.8.
        assert!(lines[3].contains("15.00x"), "{}", lines[3]);
        assert!(text.contains("note: a note <with> markup & such"));
    }
}
