//! The self-contained HTML page: the comparison table and the plots, inline SVG, no scripts and
//! no external resources.

use std::fmt::Write as _;

use super::facts::{
    Rows, mode_rows, overload_class_rows, overload_mode_rows, overload_settings, run_settings,
};
use super::svg::{BarChart, Bars, Chart, Point, Scale, Scatter, Series, escape};
use super::{DemoReport, ModeResult, Overload, SeriesPoint, TickPoint, fmt_ms, fmt_pct};

/// The pages' style sheet.
pub const PAGE_STYLE: &str = "body{font-family:sans-serif;margin:24px;max-width:1400px;color:#222}\
table{border-collapse:collapse;font-size:13px}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}.charts{display:flex;flex-wrap:wrap;gap:16px}\
.bad{color:#c00;font-weight:bold}code{background:#f4f4f4;padding:1px 4px}";

/// Renders the report as one HTML page.
pub fn render_html(report: &DemoReport) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tailguard demo</title>\
         <style>{PAGE_STYLE}</style></head><body><h1>tailguard demo</h1>"
    );
    let modes = !report.modes.is_empty() || report.overload.is_none();
    let s = &report.settings;
    if modes {
        let _ = write!(page, "<p>{}.</p>", escape(&run_settings(report)));
        page.push_str(&table(mode_rows(report)));
    }
    if !report.notes.is_empty() {
        page.push_str("<ul>");
        for note in &report.notes {
            let _ = write!(page, "<li>{}</li>", escape(note));
        }
        page.push_str("</ul>");
    }
    if let Some(overload) = &report.overload {
        page.push_str(&overload_section(report, overload));
    }
    if !modes {
        page.push_str("</body></html>\n");
        return page;
    }
    if let Some(scatter) = render_scatter(report) {
        page.push_str("<h2>Elastic work against foreground latency</h2><div class=\"charts\">");
        page.push_str(&scatter);
        page.push_str("</div>");
    }
    // One window per mode: the one whose p99 is the median of its rounds.
    let typical: Vec<&ModeResult> = report.typical_runs();
    let rounds_note =
        if s.rounds > 1 { " (each mode's window with the median p99 of its rounds)" } else { "" };
    let _ = write!(page, "<h2>Over time{rounds_note}</h2><div class=\"charts\">");
    let time_chart =
        |title: &'static str, y_label: &'static str, y_scale, pick: fn(&SeriesPoint) -> Option<f64>| Chart {
            title,
            x_label: "seconds since the mode started",
            y_label,
            x_scale: Scale::Linear,
            y_scale,
            series: series_of(&typical, pick),
            reference: None,
        };
    page.push_str(&time_chart("Foreground p99 latency", "ms", Scale::Log, |p| p.fg_p99_ms).render());
    let mut sched = time_chart("Scheduling latency p99 (per interval)", "ms", Scale::Log, |p| p.sched_p99_ms);
    sched.reference = Some((s.target_p99_ms, "target"));
    page.push_str(&sched.render());
    page.push_str(
        &time_chart("Elastic share allowed", "share of all cores", Scale::Linear, |p| p.share).render(),
    );
    let ticks = tick_series(&typical);
    if !ticks.is_empty() {
        let chart = Chart {
            title: "Elastic share at every controller tick, and the knee",
            x_label: "seconds since measurement began (the warm-up before 0)",
            y_label: "share of all cores",
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: ticks,
            reference: None,
        };
        page.push_str(&chart.render());
    }
    page.push_str(
        &time_chart("Elastic CPU used", "share of all cores", Scale::Linear, |p| p.elastic_cpu_share)
            .render(),
    );
    page.push_str(
        &time_chart("Foreground throughput", "requests/s", Scale::Linear, |p| Some(p.fg_rps)).render(),
    );
    let varies = typical.iter().any(|m| {
        let loads: Vec<f64> = m.series.iter().filter_map(|p| p.offered_load).collect();
        loads.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-9)
    });
    if varies {
        page.push_str(
            &time_chart("Offered foreground load", "share of the machine", Scale::Linear, |p| p.offered_load)
                .render(),
        );
    }
    let _ = write!(page, "</div><h2>Latency distribution{rounds_note}</h2><div class=\"charts\">");
    let cdf = Chart {
        title: "Foreground latency CDF",
        x_label: "latency (ms, log scale)",
        y_label: "fraction of requests",
        x_scale: Scale::Log,
        y_scale: Scale::Linear,
        series: cdf_series(&typical, Some),
        reference: None,
    };
    page.push_str(&cdf.render());
    let tail = Chart {
        title: "Foreground latency tail (1 - CDF)",
        x_label: "latency (ms, log scale)",
        y_label: "fraction slower",
        x_scale: Scale::Log,
        y_scale: Scale::Log,
        series: cdf_series(&typical, |y| (y < 1.0).then_some(1.0 - y)),
        reference: None,
    };
    page.push_str(&tail.render());
    page.push_str("</div></body></html>\n");
    page
}

/// Every mode as a point: the elastic work it let through against the foreground p99 it cost
/// (medians over rounds with their intervals), the static sweep's frontier through the static
/// modes, and the goals. Against the baseline when it ran (elastic share of idle CPU, p99 ×
/// baseline; the baseline itself at 0 with the A/A interval), otherwise in absolute figures.
pub fn render_scatter(report: &DemoReport) -> Option<String> {
    let relative = report.modes.iter().any(|m| m.name == "baseline") && report.settings.idle_cpu.is_some();
    let range = |e: &super::Estimate| {
        (e.rounds > 1 && e.low.is_finite() && e.high.is_finite()).then_some((e.low, e.high))
    };
    let mut points = Vec::new();
    for (colour, mode) in report.modes.iter().enumerate() {
        let (x, y) = match (&mode.elastic, relative) {
            (Some(e), true) => (e.idle_share_used, report.p99_vs_baseline(mode)),
            (Some(e), false) => (Some(e.cpu_share), Some(mode.p99_ms)),
            // The baseline is 1× by definition; its bar is the A/A interval, the noise floor.
            (None, true) => {
                let one = super::Estimate { median: 1.0, low: 1.0, high: 1.0, rounds: 1 };
                let noise =
                    report.noise_floor().map_or(one, |noise| super::Estimate { median: 1.0, ..noise });
                (Some(super::Estimate { median: 0.0, ..one }), Some(noise))
            }
            (None, false) => continue,
        };
        let (Some(x), Some(y)) = (x, y) else { continue };
        // Shares as percentages, so the axis reads like the table.
        let pct = |e: super::Estimate| super::Estimate {
            median: e.median * 100.0,
            low: e.low * 100.0,
            high: e.high * 100.0,
            ..e
        };
        let x = pct(x);
        points.push((
            mode.name.starts_with("static:") || mode.name == "baseline",
            Point {
                name: mode.name.clone(),
                colour,
                x: x.median,
                y: y.median,
                x_range: range(&x),
                y_range: range(&y),
            },
        ));
    }
    if points.iter().filter(|(_, p)| p.name != "baseline").count() == 0 {
        return None;
    }
    let mut frontier: Vec<(f64, f64)> =
        points.iter().filter(|(on_sweep, _)| *on_sweep).map(|(_, p)| (p.x, p.y)).collect();
    frontier.sort_by(|a, b| a.0.total_cmp(&b.0));
    let chart = Scatter {
        title: if relative {
            "Elastic work done against foreground p99 (medians, 95 % intervals)"
        } else {
            "Elastic CPU against foreground p99 (medians, 95 % intervals)"
        },
        x_label: if relative { "elastic CPU, % of the idle CPU" } else { "elastic CPU, % of the machine" },
        y_label: if relative { "foreground p99 × baseline (log)" } else { "foreground p99 ms (log)" },
        x_scale: Scale::Linear,
        y_scale: Scale::Log,
        points: points.into_iter().map(|(_, p)| p).collect(),
        frontier: (frontier.len() >= 2).then(|| ("static sweep".to_owned(), frontier)),
        x_reference: relative.then_some((super::IDLE_GOAL * 100.0, "goal: 70 % of idle")),
        y_reference: relative.then_some((super::P99_GOAL, "goal: 1.5× baseline")),
    };
    Some(chart.render())
}

fn series_of(modes: &[&ModeResult], pick: fn(&SeriesPoint) -> Option<f64>) -> Vec<Series> {
    modes
        .iter()
        .enumerate()
        .filter(|(_, m)| m.series.iter().any(|p| pick(p).is_some()))
        .map(|(i, m)| Series {
            name: m.name.clone(),
            colour: i,
            points: m.series.iter().map(|p| (p.t_secs, pick(p))).collect(),
        })
        .collect()
}

/// Per mode with a limiter, its share at every tick, and the adaptive controller's knee while it
/// remembered one (a line of its own, in the mode's colour).
fn tick_series(modes: &[&ModeResult]) -> Vec<Series> {
    let mut out = Vec::new();
    for (i, mode) in modes.iter().enumerate().filter(|(_, m)| !m.ticks.is_empty()) {
        let line = |what: &str, pick: fn(&TickPoint) -> Option<f64>| Series {
            name: format!("{} {what}", mode.name),
            colour: i,
            points: mode.ticks.iter().map(|t| (t.t_secs, pick(t))).collect(),
        };
        out.push(line("share", |t| Some(t.share)));
        if mode.ticks.iter().any(|t| t.knee.is_some()) {
            out.push(line("knee", |t| t.knee));
        }
    }
    out
}

/// One series per mode from its latency CDF, each fraction mapped by `y`.
fn cdf_series(modes: &[&ModeResult], y: fn(f64) -> Option<f64>) -> Vec<Series> {
    modes
        .iter()
        .enumerate()
        .map(|(i, m)| Series {
            name: m.name.clone(),
            colour: i,
            points: m.latency_cdf.iter().map(|&(x, fraction)| (x, y(fraction))).collect(),
        })
        .collect()
}

/// The overload scenario: its settings, the per-class and per-mode tables, and bar charts of
/// per-class p99 and per-tenant CPU against the weights.
fn overload_section(report: &DemoReport, overload: &Overload) -> String {
    let mut t = String::from("<h2>Overload</h2>");
    let _ = write!(t, "<p>{}.</p>", escape(&overload_settings(report, overload)));
    t.push_str(&table(overload_class_rows(overload)));
    t.push_str("<p></p>");
    t.push_str(&table(overload_mode_rows(overload)));
    t.push_str("<div class=\"charts\">");
    let categories: Vec<String> = overload
        .modes
        .first()
        .map(|m| m.classes.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let p99 = BarChart {
        title: "p99 latency per class",
        y_label: "ms (log scale)",
        y_scale: Scale::Log,
        series: overload
            .modes
            .iter()
            .enumerate()
            .map(|(i, mode)| Bars {
                name: mode.name.clone(),
                colour: i,
                values: categories.iter().map(|name| mode.class(name).and_then(|c| c.p99_ms)).collect(),
            })
            .collect(),
        categories,
        label: fmt_ms,
    };
    t.push_str(&p99.render());
    let tenants: Vec<String> = overload
        .modes
        .first()
        .map(|m| m.tenants.iter().map(|t| format!("tenant {} (weight {})", t.name, t.weight)).collect())
        .unwrap_or_default();
    let mut series: Vec<Bars> = overload
        .modes
        .iter()
        .enumerate()
        .map(|(i, mode)| Bars {
            name: mode.name.clone(),
            colour: i,
            values: mode.tenants.iter().map(|t| Some(t.tenants_cpu_fraction)).collect(),
        })
        .collect();
    if let Some(mode) = overload.modes.first() {
        series.push(Bars {
            name: "weights".to_owned(),
            colour: 6,
            values: mode.tenants.iter().map(|t| Some(t.weight_share)).collect(),
        });
    }
    let cpu = BarChart {
        title: "CPU per tenant against its weight",
        y_label: "share of the two tenants' CPU",
        y_scale: Scale::Linear,
        categories: tenants,
        series,
        label: fmt_pct,
    };
    t.push_str(&cpu.render());
    t.push_str("</div>");
    t
}

/// An HTML table of facts; a cell that says a backup did not verify stands out.
fn table((header, rows): Rows) -> String {
    let mut t = String::from("<table><tr>");
    for cell in header {
        let _ = write!(t, "<th>{}</th>", escape(cell));
    }
    t.push_str("</tr>");
    for row in rows {
        t.push_str("<tr>");
        for cell in row {
            let class = if cell == "NOT VERIFIED" { " class=\"bad\"" } else { "" };
            let _ = write!(t, "<td{class}>{}</td>", escape(&cell));
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::sample_report;

    #[test]
    fn page_is_self_contained_and_has_every_plot() {
        let html = render_html(&sample_report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script"), "no scripts");
        assert!(!html.contains("src=\"http"), "no external resources");
        // The scatter, five time series and the ticks, two distribution charts; the offered
        // load never varies here.
        assert_eq!(html.matches("<svg").count(), 9);
        // The ticks of the modes with a limiter, with the knee where one was remembered.
        assert!(html.contains("Elastic share at every controller tick"));
        assert!(html.contains("elastic share") && html.contains("elastic knee"), "{html}");
        assert!(html.contains("Elastic work done against foreground p99"));
        // Uncontrolled, elastic and static:0.25 as points, the baseline with the A/A interval.
        assert_eq!(html.matches("class=\"point\"").count(), 4, "{html}");
        assert!(html.contains("Scheduling latency p99"));
        assert!(html.contains("a note &lt;with&gt; markup &amp; such"));
        assert_eq!(html.matches("<tr>").count(), 1 + 4);
        assert!(html.contains("1.38x [1.20x–1.60x]"), "the table shows intervals");
    }

    #[test]
    fn varying_load_adds_its_plot() {
        let mut report = sample_report();
        for run in report.runs.iter_mut().filter(|r| r.name == "elastic") {
            run.series[5].offered_load = Some(0.6);
        }
        assert_eq!(render_html(&report).matches("<svg").count(), 10);
    }

    #[test]
    fn overload_page_has_its_tables_and_bar_charts_only() {
        let mut report = sample_report();
        report.modes.clear();
        report.overload = Some(crate::report::fixtures::sample_overload());
        let html = render_html(&report);
        assert!(html.contains("<h2>Overload</h2>") && html.ends_with("</body></html>\n"));
        assert!(!html.contains("Over time"), "no time series without modes");
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("p99 latency per class") && html.contains("CPU per tenant against its weight"));
        // Six class rows and two mode rows, each under its header.
        assert_eq!(html.matches("<tr>").count(), 1 + 6 + 1 + 2);
        assert!(html.contains("2.00:1") && html.contains("tenant a (weight 2)"));
    }
}
