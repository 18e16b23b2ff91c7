//! Grouped bar charts: one group per category, one bar per series.

use std::fmt::Write as _;

use super::axis::Axis;
use super::frame::*;
use super::*;

/// Bars of one series in a [`BarChart`]: one value per category (`None`: no bar).
#[derive(Clone, Debug)]
pub struct Bars {
    /// Legend text.
    pub name: String,
    /// Index into the palette.
    pub colour: usize,
    /// One value per category, in the chart's category order.
    pub values: Vec<Option<f64>>,
}

/// A grouped bar chart: one group per category, one bar per series within each group, each
/// bar labelled with its value.
#[derive(Clone, Debug)]
pub struct BarChart<'a> {
    /// Title above the plot.
    pub title: &'a str,
    /// Label beside the y axis.
    pub y_label: &'a str,
    /// Scale of the y axis (log bars rise from the axis' lowest power of ten).
    pub y_scale: Scale,
    /// Category names under the groups.
    pub categories: Vec<String>,
    /// The series, drawn side by side in each group.
    pub series: Vec<Bars>,
    /// How to print a bar's value above it.
    pub label: fn(f64) -> String,
}

impl BarChart<'_> {
    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let values = self.series.iter().flat_map(|bars| bars.values.iter().flatten().copied());
        let y = Axis::fit(self.y_scale, values);
        let py = |v: f64| TOP + (1.0 - y.frac(v).clamp(0.0, 1.0)) * PLOT_H;
        let mut s = open_svg(self.title);
        y_grid(&mut s, &y, py);
        frame(&mut s, None, self.y_label);
        let groups = self.categories.len().max(1) as f64;
        let group_w = PLOT_W / groups;
        let bar_w = group_w * 0.8 / self.series.len().max(1) as f64;
        let base = py(y.low);
        for (c, category) in self.categories.iter().enumerate() {
            let group_x = LEFT + c as f64 * group_w;
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                group_x + group_w / 2.0,
                TOP + PLOT_H + 16.0,
                escape(category)
            );
            for (i, bars) in self.series.iter().enumerate() {
                let Some(value) = bars.values.get(c).copied().flatten().filter(|&v| usable(v, self.y_scale))
                else {
                    continue;
                };
                let colour = PALETTE[bars.colour % PALETTE.len()];
                let x = group_x + group_w * 0.1 + i as f64 * bar_w;
                let top = py(value);
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{}: {}</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                    (bar_w - 2.0).max(1.0),
                    (base - top).max(0.0),
                    escape(&bars.name),
                    escape(&(self.label)(value)),
                    x + bar_w / 2.0,
                    top - 3.0,
                    escape(&(self.label)(value))
                );
            }
        }
        for (i, bars) in self.series.iter().enumerate() {
            let colour = PALETTE[bars.colour % PALETTE.len()];
            legend_entry(&mut s, i, self.series.len(), colour, Swatch::Bar, &bars.name);
        }
        s.push_str("</svg>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::svg::test_support::assert_distinct_ticks;

    #[test]
    fn bar_chart_draws_a_bar_per_value_and_skips_unusable_ones() {
        let chart = BarChart {
            title: "p99 <per class>",
            y_label: "ms",
            y_scale: Scale::Log,
            categories: vec!["heartbeat".into(), "tenant-a".into()],
            series: vec![
                Bars { name: "no-queue".into(), colour: 0, values: vec![Some(800.0), Some(900.0)] },
                // Zero cannot stand on a log axis, and None is no bar.
                Bars { name: "queue".into(), colour: 1, values: vec![Some(0.0), None] },
            ],
            label: |v| format!("{v:.0}"),
        };
        let svg = chart.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        // Two bars and two legend swatches, plus the plot frame.
        assert_eq!(svg.matches("<rect").count(), 2 + 2 + 1);
        assert!(svg.contains("p99 &lt;per class&gt;") && svg.contains(">900<"));
        assert!(svg.contains(">tenant-a<"));
        assert_distinct_ticks(&svg);
    }
}
