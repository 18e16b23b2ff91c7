//! The terminal table.

use std::fmt::Write as _;

use super::DemoReport;
use super::Overload;
use super::facts::{mode_rows, overload_class_rows, overload_mode_rows, overload_settings, run_settings};

/// Renders the side-by-side comparison of every mode as a fixed-width text table, then the
/// overload scenario's tables when it ran, then the notes.
pub fn render_table(report: &DemoReport) -> String {
    let mut out = String::new();
    if !report.modes.is_empty() || report.overload.is_none() {
        out.push_str(&modes_table(report));
    }
    if let Some(overload) = &report.overload {
        out.push_str(&overload_tables(report, overload));
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

fn modes_table(report: &DemoReport) -> String {
    let (header, rows) = mode_rows(report);
    let mut out = aligned(&header, &rows, 1);
    let _ = writeln!(out, "\n{}", run_settings(report));
    out
}

/// The overload scenario: one row per mode and class, then one summary row per mode.
fn overload_tables(report: &DemoReport, overload: &Overload) -> String {
    let (header, rows) = overload_class_rows(overload);
    let mut out = aligned(&header, &rows, 2);
    out.push('\n');
    let (header, rows) = overload_mode_rows(overload);
    out.push_str(&aligned(&header, &rows, 1));
    let _ = writeln!(out, "\n{}", overload_settings(report, overload));
    out
}

/// A fixed-width table: the first `left` columns left-aligned, figures right-aligned.
fn aligned(header: &[&str], rows: &[Vec<String>], left: usize) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter().map(|r| r[c].chars().count()).chain([header[c].chars().count()]).max().unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        for (c, cell) in cells.iter().enumerate() {
            let gap = if c == 0 { "" } else { "  " };
            let _ = if c < left {
                write!(out, "{gap}{cell:<w$}", w = widths[c])
            } else {
                write!(out, "{gap}{cell:>w$}", w = widths[c])
            };
        }
        out.push('\n');
    };
    line(&mut out, header);
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    line(&mut out, &rule.iter().map(String::as_str).collect::<Vec<_>>());
    for row in rows {
        line(&mut out, &row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::sample_report;

    #[test]
    fn table_has_a_row_per_mode_and_aligned_columns() {
        let text = render_table(&sample_report());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("mode"));
        assert!(lines[2].starts_with("baseline"));
        assert!(lines[3].starts_with("uncontrolled"));
        // Header, rule and rows share one width (in characters: intervals hold an en dash).
        let width = |line: &str| line.chars().count();
        assert_eq!(width(lines[0]), width(lines[1]));
        assert_eq!(width(lines[1]), width(lines[4]));
        // Ratios against baseline with their intervals, and the elastic share of idle.
        assert!(lines[3].contains("15.00x [14.00x–16.00x]"), "{}", lines[3]);
        assert!(lines[4].contains("75.0% [65.0%–80.0%]"), "{}", lines[4]);
        assert!(text.contains("2 round(s)") && text.contains("60.0% idle"), "{text}");
        assert!(text.contains("note: a note <with> markup & such"));
        assert!(!text.contains("heartbeat"), "no overload tables without the scenario");
    }

    #[test]
    fn overload_tables_show_each_class_and_mode() {
        let mut report = sample_report();
        report.modes.clear();
        report.overload = Some(crate::report::fixtures::sample_overload());
        let text = render_table(&report);
        assert!(!text.contains("backup keys/s"), "no mode table for the overload scenario:\n{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("mode") && lines[0].contains("class"));
        assert_eq!(lines[0].len(), lines[1].len());
        let rows: Vec<&&str> = lines.iter().filter(|l| l.contains("tenant-a")).collect();
        assert_eq!(rows.len(), 2, "{text}");
        assert!(
            lines.iter().any(|l| l.starts_with("queue") && l.contains("2.00:1") && l.contains("-2.0%")),
            "{text}"
        );
        assert!(lines.iter().any(|l| l.starts_with("queue") && l.contains("8/7.5/12")), "{text}");
        assert!(lines.iter().any(|l| l.starts_with("no-queue") && l.contains("1.00:1")), "{text}");
        assert!(text.contains("A (weight 2) and B (weight 1)"));
        assert!(text.contains("note: a note"));
    }
}
