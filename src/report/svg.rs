//! Line charts as inline SVG: axes with ticks and labels, a polyline per
//! series, a legend. No script, no external resource; every text escaped.

use super::html::escape;
use crate::units::plain_number as plain;

/// Colours of successive series (readable on white and in print).
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

/// One line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// About five round tick values covering `low..=high`.
pub fn ticks(low: f64, high: f64) -> Vec<f64> {
    if !(low.is_finite() && high.is_finite()) || high <= low {
        return vec![low];
    }
    let raw = (high - low) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let mut tick = (low / step).ceil() * step;
    let mut out = Vec::new();
    while tick <= high + step * 1e-9 && out.len() < 12 {
        out.push(tick);
        tick += step;
    }
    out
}

/// A short label for a tick value.
fn label(value: f64, format: fn(f64) -> String) -> String {
    format(value)
}

/// How a chart is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Chart<'a> {
    /// Its title.
    pub title: &'a str,
    /// What x is.
    pub x_label: &'a str,
    /// What y is.
    pub y_label: &'a str,
    /// Writes the y ticks (bytes, cores, plain numbers).
    pub y_format: fn(f64) -> String,
    /// The y axis starts at 0 (use of a resource).
    pub from_zero: bool,
    /// Each point a dot, unjoined (values of separate experiments).
    pub dots: bool,
}

impl<'a> Chart<'a> {
    /// A line chart of plain numbers.
    pub fn lines(title: &'a str, x_label: &'a str, y_label: &'a str) -> Chart<'a> {
        Chart {
            title,
            x_label,
            y_label,
            y_format: plain,
            from_zero: false,
            dots: false,
        }
    }
}

/// `chart` of `series`; `None` without any point.
pub fn line_chart(chart: &Chart, series: &[Series]) -> Option<String> {
    let Chart {
        title,
        x_label,
        y_label,
        y_format,
        from_zero,
        dots,
    } = *chart;
    let points = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for (x, y) in points {
        any = true;
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if !any {
        return None;
    }
    if from_zero && y0 > 0.0 {
        y0 = 0.0;
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        y0 -= pad;
        y1 += pad;
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
    let sy = |y: f64| TOP + plot_h - (y - y0) / (y1 - y0) * plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{}\">\n<title>{}</title>\n<text x=\"{LEFT}\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
        escape(title),
        escape(title),
        escape(title)
    );
    for y in ticks(y0, y1) {
        let py = sy(y);
        svg.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text>\n",
            WIDTH - RIGHT,
            LEFT - 4.0,
            py + 3.0,
            escape(&label(y, y_format))
        ));
    }
    for x in ticks(x0, x1) {
        let px = sx(x);
        svg.push_str(&format!(
            "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#999\"/><text x=\"{px:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{}</text>\n",
            TOP + plot_h,
            TOP + plot_h + 4.0,
            TOP + plot_h + 15.0,
            escape(&plain(x))
        ));
    }
    svg.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#999\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>\n<text x=\"12\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 {:.1})\">{}</text>\n",
        LEFT + plot_w / 2.0,
        HEIGHT - 6.0,
        escape(x_label),
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_label)
    ));
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        if path.len() == 1 || dots {
            for point in &path {
                svg.push_str(&format!(
                    "<circle cx=\"{}\" r=\"3\" fill=\"{colour}\"/>\n",
                    point.replace(',', "\" cy=\"")
                ));
            }
        } else {
            svg.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                path.join(" ")
            ));
        }
        if series.len() > 1 {
            let ly = TOP + 12.0 + 14.0 * i as f64;
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"10\" height=\"3\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\">{}</text>\n",
                WIDTH - RIGHT - 150.0,
                ly - 3.0,
                WIDTH - RIGHT - 136.0,
                ly + 1.0,
                escape(&s.label)
            ));
        }
    }
    svg.push_str("</svg>\n");
    Some(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            ticks(0.0, 1.0),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]
        );
        assert_eq!(ticks(3.0, 97.0), vec![20.0, 40.0, 60.0, 80.0]);
        assert_eq!(ticks(5.0, 5.0), vec![5.0]);
    }

    #[test]
    fn a_chart_escapes_its_text_and_draws_each_series() {
        let svg = line_chart(
            &Chart::lines("loss <script>", "step", "value"),
            &[
                Series {
                    label: "a&b".into(),
                    points: vec![(0.0, 1.0), (1.0, 0.5), (2.0, f64::NAN)],
                },
                Series {
                    label: "c".into(),
                    points: vec![(0.0, 0.9)],
                },
            ],
        )
        .expect("a chart");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.contains("loss &lt;script&gt;") && !svg.contains("<script>"));
        assert!(svg.contains("a&amp;b"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(line_chart(&Chart::lines("x", "x", "y"), &[]).is_none());
    }
}
