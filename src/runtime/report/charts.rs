//! Line charts drawn with `plotters` into SVG text: a [`Chart`] (a title,
//! an axis label and named series of (step, value) points) in, a
//! self-contained `<svg>` out. Text is SVG `<text>` in the viewer's
//! sans-serif font, so nothing here reads system fonts.

use plotters::coord::Shift;
use plotters::prelude::*;

/// Distinguishable colours (Tableau 10), by series index.
pub const PALETTE: [(u8, u8, u8); 10] = [
    (0x4e, 0x79, 0xa7),
    (0xf2, 0x8e, 0x2b),
    (0x59, 0xa1, 0x4f),
    (0xe1, 0x57, 0x59),
    (0xb0, 0x7a, 0xa1),
    (0x76, 0xb7, 0xb2),
    (0x9c, 0x75, 0x5f),
    (0xed, 0xc9, 0x48),
    (0xff, 0x9d, 0xa7),
    (0xba, 0xb0, 0xac),
];

/// The colour of series `index`, as CSS.
pub fn css_color(index: usize) -> String {
    let (r, g, b) = PALETTE[index % PALETTE.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// One curve.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Index into [`PALETTE`].
    pub color: usize,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>, color: usize) -> Series {
        Series {
            label: label.into(),
            points: points
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
            color,
        }
    }
}

/// A chart of values over training steps.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub width: u32,
    pub height: u32,
    /// The end of the step axis (by default the last point's step), so the
    /// charts of one report share it.
    pub x_max: Option<f64>,
    /// Whether the legend is drawn inside the plot (standalone SVG files);
    /// pages draw it in HTML beside the chart instead (see `html::figure`).
    pub inside_legend: bool,
}

impl Chart {
    pub fn new(title: impl Into<String>, y_label: impl Into<String>, series: Vec<Series>) -> Chart {
        Chart {
            title: title.into(),
            y_label: y_label.into(),
            series: series.into_iter().filter(|s| !s.points.is_empty()).collect(),
            width: 560,
            height: 320,
            x_max: None,
            inside_legend: false,
        }
    }

    /// Whether the values span more than a factor of 20, all positive: then
    /// the value axis is logarithmic.
    pub fn log_scale(&self) -> bool {
        let (low, high) = self.y_bounds();
        low > 0.0 && high / low > 20.0
    }

    fn y_bounds(&self) -> (f64, f64) {
        let values = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)))
    }

    fn x_bounds(&self) -> (f64, f64) {
        let values = self.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let hi = self.x_max.map_or(hi, |m| hi.max(m));
        if !lo.is_finite() {
            return (0.0, self.x_max.unwrap_or(1.0).max(1.0));
        }
        let hi = hi.max(lo + 1.0);
        // A little room on the right, so the last dot is whole.
        (lo.min(0.0), hi + (hi - lo.min(0.0)) * 0.015)
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let mut text = String::new();
        {
            let root = SVGBackend::with_string(&mut text, (self.width, self.height)).into_drawing_area();
            if let Err(error) = self.draw(&root) {
                drop(root);
                return format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\"><text x=\"10\" y=\"20\">chart failed: {}</text></svg>", self.width, self.height, super::html::escape(&error));
            }
        }
        let colors: Vec<usize> = self.series.iter().map(|s| s.color).collect();
        mark_series(text, &colors)
    }

    fn draw(&self, root: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String> {
        self.draw_into(root)?;
        root.present().map_err(|e| e.to_string())
    }

    /// Draws the chart into `root` (a whole picture or one panel of it).
    fn draw_into(&self, root: &DrawingArea<SVGBackend<'_>, Shift>) -> Result<(), String> {
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let (x0, x1) = self.x_bounds();
        let (low, high) = self.y_bounds();
        let mut builder = ChartBuilder::on(root);
        builder
            .caption(&self.title, ("sans-serif", 17).into_font())
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64);
        // The legend goes where the curves end away from: top right for
        // falling curves, bottom right for rising ones.
        let rising = self
            .series
            .iter()
            .filter_map(|s| Some((s.points.first()?.1, s.points.last()?.1)))
            .map(|(first, last)| if last > first { 1 } else { -1 })
            .sum::<i32>()
            > 0;
        let position = if rising {
            SeriesLabelPosition::LowerRight
        } else {
            SeriesLabelPosition::UpperRight
        };
        macro_rules! plot {
            ($y_range:expr, $format:expr, $light:expr) => {{
                let mut chart = builder.build_cartesian_2d(x0..x1, $y_range).map_err(err)?;
                chart
                    .configure_mesh()
                    .x_desc("step")
                    .y_desc(&self.y_label)
                    .x_label_formatter(&|x| format!("{x:.0}"))
                    .y_label_formatter(&$format)
                    .label_style(("sans-serif", 13).into_font())
                    .axis_desc_style(("sans-serif", 14).into_font())
                    .light_line_style($light)
                    .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
                    .draw()
                    .map_err(err)?;
                for series in &self.series {
                    let (r, g, b) = PALETTE[series.color % PALETTE.len()];
                    let color = RGBColor(r, g, b);
                    chart
                        .draw_series(LineSeries::new(
                            series.points.iter().copied(),
                            color.stroke_width(2),
                        ))
                        .map_err(err)?
                        .label(&series.label)
                        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], color.filled()));
                    // Sparse curves (evaluations) get a dot at each point.
                    if series.points.len() <= 15 {
                        chart
                            .draw_series(series.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                            .map_err(err)?;
                    }
                }
                if self.inside_legend {
                    chart
                        .configure_series_labels()
                        .position(position)
                        .label_font(("sans-serif", 13).into_font())
                        .background_style(WHITE.mix(0.85))
                        .border_style(RGBColor(0xbb, 0xbb, 0xbb))
                        .draw()
                        .map_err(err)?;
                }
            }};
        }
        let light = RGBColor(0xee, 0xee, 0xee);
        if !low.is_finite() {
            plot!(0.0..1.0, |y: &f64| format!("{y:.1}"), light);
        } else if self.log_scale() {
            // A logarithmic axis has a tick at every digit of a decade:
            // only its labelled ones get grid lines.
            plot!(
                (low / 1.2..high * 1.2).log_scale(),
                |y: &f64| significant(*y),
                TRANSPARENT
            );
        } else {
            let pad = if high - low > high.abs().max(low.abs()) * 1e-9 {
                (high - low) * 0.06
            } else if high != 0.0 {
                high.abs() * 0.1
            } else {
                1.0
            };
            let (lo, hi) = (low - pad, high + pad);
            let format = tick_format(lo, hi);
            plot!(lo..hi, |y: &f64| format(*y), light);
        }
        Ok(())
    }
}

/// Several charts in one picture, `columns` side by side, with one legend
/// under them naming each (label, colour index) once — the panels of one
/// comparison share their colours. Each series' curve is a polyline of
/// class `series`.
pub fn panels_svg(charts: &[Chart], columns: usize, legend: &[(String, usize)]) -> String {
    let columns = columns.clamp(1, charts.len().max(1));
    let rows = charts.len().div_ceil(columns).max(1);
    let (panel_w, panel_h) = (520u32, 320u32);
    let width = panel_w * columns as u32;
    // The legend: entries laid out in rows across the width.
    let entry_width = |label: &str| 30 + 7 * label.chars().count() as u32 + 18;
    let mut lines: Vec<Vec<(&str, usize, u32)>> = vec![Vec::new()];
    let mut x = 12u32;
    for (label, color) in legend {
        let w = entry_width(label);
        if x + w > width && x > 12 {
            lines.push(Vec::new());
            x = 12;
        }
        lines.last_mut().expect("a line").push((label, *color, x));
        x += w;
    }
    let legend_h = 12 + 22 * lines.len() as u32;
    let height = panel_h * rows as u32 + legend_h;
    let mut text = String::new();
    let drawn = (|| -> Result<(), String> {
        let root = SVGBackend::with_string(&mut text, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (grid, key) = root.split_vertically(panel_h * rows as u32);
        let areas = grid.split_evenly((rows, columns));
        for (chart, area) in charts.iter().zip(&areas) {
            chart.draw_into(area)?;
        }
        for (i, line) in lines.iter().enumerate() {
            let y = 10 + 22 * i as i32;
            for &(label, color, x) in line {
                let (r, g, b) = PALETTE[color % PALETTE.len()];
                let x = x as i32;
                key.draw(&Rectangle::new(
                    [(x, y + 4), (x + 22, y + 12)],
                    RGBColor(r, g, b).filled(),
                ))
                .map_err(|e| e.to_string())?;
                key.draw(&Text::new(
                    label.to_string(),
                    (x + 30, y + 2),
                    ("sans-serif", 13).into_font(),
                ))
                .map_err(|e| e.to_string())?;
            }
        }
        root.present().map_err(|e| e.to_string())
    })();
    if let Err(error) = drawn {
        return format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\"><text x=\"10\" y=\"20\">chart failed: {}</text></svg>", super::html::escape(&error));
    }
    let colors: Vec<usize> = charts.iter().flat_map(|c| c.series.iter().map(|s| s.color)).collect();
    mark_series(text, &colors)
}

/// Marks the curves of these colours (axes and ticks are polylines too)
/// with `class="series"`, so a page's script and its readers can tell them
/// apart.
fn mark_series(mut text: String, colors: &[usize]) -> String {
    let mut done: Vec<usize> = Vec::new();
    for &color in colors {
        let color = color % PALETTE.len();
        if done.contains(&color) {
            continue;
        }
        done.push(color);
        let (r, g, b) = PALETTE[color];
        let plain =
            format!("<polyline fill=\"none\" opacity=\"1\" stroke=\"#{r:02X}{g:02X}{b:02X}\" stroke-width=\"2\"");
        let marked = plain.replace("<polyline ", "<polyline class=\"series\" ");
        text = text.replace(&plain, &marked);
    }
    text
}

/// Tick labels for a linear axis from `lo` to `hi`: as many decimals as
/// the ticks' spacing needs (all labels alike), scientific notation for
/// very small or large values.
pub fn tick_format(lo: f64, hi: f64) -> impl Fn(f64) -> String {
    // Plotters puts about ten ticks on an axis; err on the finer side.
    let step = ((hi - lo) / 12.0).abs().max(f64::MIN_POSITIVE);
    let magnitude = lo.abs().max(hi.abs());
    let scientific = !(1e-3..1e5).contains(&magnitude);
    let decimals = if scientific {
        ((magnitude / step).log10().ceil() as i64 - 1).clamp(0, 6) as usize
    } else {
        (-step.log10()).ceil().clamp(0.0, 9.0) as usize
    };
    move |y: f64| {
        if y == 0.0 {
            "0".to_string()
        } else if scientific {
            format!("{y:.decimals$e}")
        } else {
            format!("{y:.decimals$}")
        }
    }
}

/// A label for a logarithmic axis: only ticks at 1, 2 and 5 times a power
/// of ten are labelled (the others crowd near each decade's top), each
/// with its one significant digit.
pub fn significant(y: f64) -> String {
    let a = y.abs();
    let mantissa = a / 10f64.powf(a.log10().floor());
    if y == 0.0 {
        "0".into()
    } else if ![1.0, 2.0, 5.0, 10.0].iter().any(|m| (mantissa - m).abs() < 1e-6 * m) {
        String::new()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{y:.0e}")
    } else {
        let decimals = (-a.log10().floor() as i64).clamp(0, 6) as usize;
        format!("{y:.decimals$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each series is one polyline in its colour, with its legend entry
    /// (when the legend is inside) and a dot per point of sparse curves.
    #[test]
    fn a_chart_draws_one_polyline_per_series() {
        let train = Series::new("train", (1..=30).map(|s| (s as f64, 3.0 / s as f64)).collect(), 0);
        let val = Series::new("validation", vec![(10.0, 0.5), (20.0, 0.3), (30.0, f64::NAN)], 1);
        let mut chart = Chart::new("loss", "loss", vec![train, val]);
        chart.inside_legend = true;
        let svg = chart.svg();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("<polyline class=\"series\"").count(), 2, "{svg}");
        // The legend names both, beside a swatch of the curve's colour.
        assert!(
            svg.contains("\ntrain\n</text>") && svg.contains("\nvalidation\n</text>"),
            "{svg}"
        );
        assert_eq!(
            svg.matches(&format!("fill=\"{}\"", css_color(1).to_uppercase()))
                .count(),
            1 + 2,
            "{svg}"
        );
    }

    /// Labels have the digits that tell neighbouring ticks apart.
    #[test]
    fn tick_labels_have_the_digits_the_spacing_needs() {
        let loss = tick_format(0.0, 2.4);
        assert_eq!((loss(0.2), loss(2.0)), ("0.2".into(), "2.0".into()));
        let accuracy = tick_format(0.89, 0.94);
        assert_eq!((accuracy(0.895), accuracy(0.9)), ("0.895".into(), "0.900".into()));
        let lr = tick_format(0.0009, 0.0011);
        assert_eq!((lr(0.00095), lr(0.001)), ("0.00095".into(), "0.00100".into()));
        let tiny = tick_format(1e-6, 2e-5);
        assert_eq!((tiny(4e-6), tiny(1.6e-5)), ("4.0e-6".into(), "1.6e-5".into()));
        let perplexity = tick_format(109.4, 133.7);
        assert_eq!(perplexity(120.0), "120");
        assert_eq!(significant(0.02), "0.02");
        assert_eq!(significant(5.0), "5");
        assert_eq!(significant(2e-5), "2e-5");
        assert_eq!(significant(0.7), "");
    }
}
