//! The self-contained HTML page: the comparison table and the plots, inline SVG, no scripts and
//! no external resources.

use std::fmt::Write as _;

use super::svg::{Chart, Scale, Series, escape};
use super::{DemoReport, ModeResult, SeriesPoint, fmt_ms, fmt_pct};

const STYLE: &str = "body{font-family:sans-serif;margin:24px;max-width:1400px;color:#222}\
table{border-collapse:collapse;font-size:13px}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}.charts{display:flex;flex-wrap:wrap;gap:16px}\
.bad{color:#c00;font-weight:bold}code{background:#f4f4f4;padding:1px 4px}";

/// Renders the report as one HTML page.
pub fn render_html(report: &DemoReport) -> String {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tailguard demo</title>\
         <style>{STYLE}</style></head><body><h1>tailguard demo</h1>"
    );
    let s = &report.settings;
    let _ = write!(
        page,
        "<p>{} cores ({}), {:.0} s per mode, foreground load {} ({:.0} req/s offered), {} keys, seed {}, \
         target scheduling p99 {} ms, elastic work on <code>{}</code>.</p>",
        report.machine.cores,
        escape(&report.machine.os),
        s.duration_secs,
        fmt_pct(s.load),
        s.rate_rps,
        s.keys,
        s.seed,
        fmt_ms(s.target_p99_ms),
        escape(&s.elastic_on)
    );
    page.push_str(&summary_table(report));
    if !report.notes.is_empty() {
        page.push_str("<ul>");
        for note in &report.notes {
            let _ = write!(page, "<li>{}</li>", escape(note));
        }
        page.push_str("</ul>");
    }
    page.push_str("<h2>Over time</h2><div class=\"charts\">");
    let time_chart =
        |title: &'static str, y_label: &'static str, y_scale, pick: fn(&SeriesPoint) -> Option<f64>| Chart {
            title,
            x_label: "seconds since the mode started",
            y_label,
            x_scale: Scale::Linear,
            y_scale,
            series: series_of(&report.modes, pick),
            reference: None,
        };
    page.push_str(&time_chart("Foreground p99 latency", "ms", Scale::Log, |p| p.fg_p99_ms).render());
    let mut sched = time_chart("Scheduling latency p99 (window)", "ms", Scale::Log, |p| p.sched_p99_ms);
    sched.reference = Some((s.target_p99_ms, "target"));
    page.push_str(&sched.render());
    page.push_str(
        &time_chart("Elastic share allowed", "share of all cores", Scale::Linear, |p| p.share).render(),
    );
    page.push_str(
        &time_chart("Elastic CPU used", "share of all cores", Scale::Linear, |p| p.elastic_cpu_share)
            .render(),
    );
    page.push_str(
        &time_chart("Foreground throughput", "requests/s", Scale::Linear, |p| Some(p.fg_rps)).render(),
    );
    let varies = report.modes.iter().any(|m| {
        let loads: Vec<f64> = m.series.iter().filter_map(|p| p.offered_load).collect();
        loads.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-9)
    });
    if varies {
        page.push_str(
            &time_chart("Offered foreground load", "share of the machine", Scale::Linear, |p| p.offered_load)
                .render(),
        );
    }
    page.push_str("</div><h2>Latency distribution</h2><div class=\"charts\">");
    let cdf = Chart {
        title: "Foreground latency CDF",
        x_label: "latency (ms, log scale)",
        y_label: "fraction of requests",
        x_scale: Scale::Log,
        y_scale: Scale::Linear,
        series: cdf_series(&report.modes, Some),
        reference: None,
    };
    page.push_str(&cdf.render());
    let tail = Chart {
        title: "Foreground latency tail (1 - CDF)",
        x_label: "latency (ms, log scale)",
        y_label: "fraction slower",
        x_scale: Scale::Log,
        y_scale: Scale::Log,
        series: cdf_series(&report.modes, |y| (y < 1.0).then_some(1.0 - y)),
        reference: None,
    };
    page.push_str(&tail.render());
    page.push_str("</div></body></html>\n");
    page
}

fn series_of(modes: &[ModeResult], pick: fn(&SeriesPoint) -> Option<f64>) -> Vec<Series> {
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

/// One series per mode from its latency CDF, each fraction mapped by `y`.
fn cdf_series(modes: &[ModeResult], y: fn(f64) -> Option<f64>) -> Vec<Series> {
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

fn summary_table(report: &DemoReport) -> String {
    let mut t = String::from(
        "<table><tr><th>mode</th><th>fg req/s</th><th>p50 ms</th><th>p99 ms</th><th>p99.9 ms</th>\
         <th>max ms</th><th>p99 &times; baseline</th><th>sched p99 ms</th><th>backup keys/s</th>\
         <th>elastic CPU</th><th>of idle CPU</th><th>mean share</th><th>backups</th></tr>",
    );
    let dash = || "-".to_owned();
    for mode in &report.modes {
        let fg = &mode.foreground;
        let e = mode.elastic.as_ref();
        let verified = match e.map(|e| (e.verified, e.backups)) {
            Some((Some(true), n)) => format!("{n} verified"),
            Some((Some(false), _)) => "<span class=\"bad\">NOT VERIFIED</span>".to_owned(),
            _ => dash(),
        };
        let _ = write!(
            t,
            "<tr><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{verified}</td></tr>",
            escape(&mode.name),
            fg.throughput_rps,
            fmt_ms(fg.p50_ms),
            fmt_ms(fg.p99_ms),
            fmt_ms(fg.p999_ms),
            fmt_ms(fg.max_ms),
            report.p99_vs_baseline(mode).map_or_else(dash, |r| format!("{r:.2}&times;")),
            mode.sched_p99_ms.map_or_else(dash, fmt_ms),
            e.map_or_else(dash, |e| format!("{:.0}", e.keys_per_sec)),
            e.map_or_else(dash, |e| fmt_pct(e.cpu_share)),
            e.map_or_else(dash, |e| fmt_pct(e.idle_share_used)),
            e.and_then(|e| e.mean_share).map_or_else(dash, fmt_pct),
        );
    }
    t.push_str("</table>");
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_report;

    #[test]
    fn page_is_self_contained_and_has_every_plot() {
        let html = render_html(&sample_report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script"), "no scripts");
        assert!(!html.contains("src=\"http"), "no external resources");
        // Five time series, two distribution charts; the offered load never varies here.
        assert_eq!(html.matches("<svg").count(), 7);
        assert!(html.contains("Scheduling latency p99"));
        assert!(html.contains("a note &lt;with&gt; markup &amp; such"));
        assert_eq!(html.matches("<tr>").count(), 1 + 4);
    }

    #[test]
    fn varying_load_adds_its_plot() {
        let mut report = sample_report();
        report.modes[2].series[5].offered_load = Some(0.6);
        assert_eq!(render_html(&report).matches("<svg").count(), 8);
    }
}
