//! Line charts: one polyline per series over time or latency.

use std::fmt::Write as _;

use super::axis::Axis;
use super::frame::*;
use super::*;

/// A named series of points; `None` y values break the line.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Index into the palette, so one mode keeps its colour across charts.
    pub colour: usize,
    /// `(x, y)` points in order of x.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A line chart.
#[derive(Clone, Debug)]
pub struct Chart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label under the x axis.
    pub x_label: &'a str,
    /// Label beside the y axis.
    pub y_label: &'a str,
    /// Scale of the x axis.
    pub x_scale: Scale,
    /// Scale of the y axis.
    pub y_scale: Scale,
    /// Named series; `None` y values break the line.
    pub series: Vec<Series>,
    /// A horizontal reference line (e.g. the target), with its label.
    pub reference: Option<(f64, &'a str)>,
}

impl Chart<'_> {
    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let points = || self.series.iter().flat_map(|line| line.points.iter());
        let x = Axis::fit(self.x_scale, points().map(|p| p.0));
        let y = Axis::fit(self.y_scale, points().filter_map(|p| p.1).chain(self.reference.map(|(v, _)| v)));
        let px = |v: f64| LEFT + x.frac(v) * PLOT_W;
        let py = |v: f64| TOP + (1.0 - y.frac(v)) * PLOT_H;
        let mut s = open_svg(self.title);
        y_grid(&mut s, &y, py);
        x_grid(&mut s, &x, px);
        frame(&mut s, Some(self.x_label), self.y_label);
        if let Some((value, label)) = self.reference.filter(|&(v, _)| usable(v, self.y_scale)) {
            horizontal_reference(&mut s, py(value), label);
        }
        for (i, line) in self.series.iter().enumerate() {
            let colour = PALETTE[line.colour % PALETTE.len()];
            let mut path = String::new();
            let mut pen_down = false;
            for &(xv, yv) in &line.points {
                match yv {
                    Some(yv) if usable(xv, self.x_scale) && usable(yv, self.y_scale) => {
                        let _ =
                            write!(path, "{}{:.1},{:.1} ", if pen_down { 'L' } else { 'M' }, px(xv), py(yv));
                        pen_down = true;
                    }
                    _ => pen_down = false,
                }
            }
            let _ = write!(
                s,
                r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="1.6"><title>{}</title></path>"#,
                path.trim_end(),
                escape(&line.name)
            );
            legend_entry(&mut s, i, self.series.len(), colour, Swatch::Line, &line.name);
        }
        s.push_str("</svg>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::svg::test_support::{assert_distinct_ticks, tick_texts};

    #[test]
    fn chart_draws_a_path_per_series_and_breaks_on_gaps() {
        let chart = Chart {
            title: "p99 <latency>",
            x_label: "s",
            y_label: "ms",
            x_scale: Scale::Linear,
            y_scale: Scale::Log,
            series: vec![
                Series {
                    name: "a".into(),
                    colour: 0,
                    points: vec![(0.0, Some(1.0)), (1.0, None), (2.0, Some(3.0)), (3.0, Some(4.0))],
                },
                Series { name: "b&c".into(), colour: 1, points: vec![(0.0, Some(0.5))] },
            ],
            reference: Some((1.0, "target")),
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("p99 &lt;latency&gt;"));
        assert!(svg.contains("b&amp;c"));
        // The gap at x=1 starts a new sub-path: two moves in series a.
        let a_path = svg.split("<path d=\"").nth(1).unwrap();
        assert_eq!(a_path.split('"').next().unwrap().matches('M').count(), 2);
        assert_eq!(tick_texts(&svg, "y-tick"), ["0.1", "1", "10"]);
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn chart_labels_a_throughput_axis_in_thousands() {
        let chart = Chart {
            title: "throughput",
            x_label: "requests/s",
            y_label: "ms",
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: vec![Series {
                name: "a".into(),
                colour: 0,
                points: vec![(15_000.0, Some(0.0001)), (20_000.0, Some(0.0003))],
            }],
            reference: None,
        };
        let svg = chart.render();
        assert_eq!(tick_texts(&svg, "x-tick"), ["0", "5k", "10k", "15k", "20k"]);
        assert_eq!(tick_texts(&svg, "y-tick"), ["0", "1e-4", "2e-4", "3e-4"]);
        assert_distinct_ticks(&svg);
    }

    #[test]
    fn empty_chart_still_renders() {
        let chart = Chart {
            title: "empty",
            x_label: "",
            y_label: "",
            x_scale: Scale::Log,
            y_scale: Scale::Linear,
            series: vec![],
            reference: None,
        };
        let svg = chart.render();
        assert!(svg.contains("</svg>"));
        assert_distinct_ticks(&svg);
    }
}
