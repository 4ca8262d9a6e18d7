//! Hand-written SVG plots for the web page: a [`sparkline`] (one series, no axes) and a
//! [`line_chart`] / [`bar_chart`] with axes, tick labels and one `<polyline>` (or bars) per
//! series. Pure: numbers in, SVG text out; no JavaScript, no charting crate.
//!
//! Every plot is `role="img"` with a `<title>` (its accessible name) and a `<desc>` that
//! states the values in words, so a screen reader gets the numbers, not only the picture.
//! Each data point carries its value in a `data-value` attribute and a `<title>` tooltip;
//! the structure tests (and the page's snapshot tests) read those back.
//!
//! Colours come from CSS classes (`series-0` … `series-7`, `axis`, `grid`): the page's
//! stylesheet picks them for light and dark mode.

use std::fmt::Write as _;

/// One named series of values (one value per x position; `None` where nothing is known).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// Escapes text for an SVG (XML) text node or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as the plots print it: integers without decimals, others with up to two.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Rounds `max` up to a "nice" axis top (1, 2, 2.5, 5 × 10^n), at least 1.
fn nice_top(max: f64) -> f64 {
    if !max.is_finite() || max <= 1.0 {
        return 1.0;
    }
    let exp = max.log10().floor();
    let base = 10f64.powf(exp);
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if max <= m * base + 1e-9 {
            return m * base;
        }
    }
    10.0 * base
}

fn coord(v: f64) -> String {
    format!("{v:.1}")
}

/// A sparkline: one series as a small line, no axes; the last value is marked. `label` is
/// the accessible name (`open drifts over the last 30 days`).
pub fn sparkline(label: &str, values: &[Option<f64>], width: u32, height: u32) -> String {
    let (w, h) = (f64::from(width.max(10)), f64::from(height.max(6)));
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    let max = known.iter().copied().fold(0.0_f64, f64::max);
    let top = if max <= 0.0 { 1.0 } else { max };
    let pad = 2.0;
    let n = values.len();
    let x = |i: usize| {
        if n <= 1 {
            w / 2.0
        } else {
            pad + (w - 2.0 * pad) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v / top);
    let mut out = String::new();
    let desc = describe(values);
    let _ = write!(
        out,
        r#"<svg class="sparkline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{l}"><title>{l}</title><desc>{d}</desc>"#,
        w = width.max(10),
        h = height.max(6),
        l = escape(label),
        d = escape(&desc),
    );
    for seg in segments(values) {
        let pts: Vec<String> = seg
            .iter()
            .map(|&(i, v)| format!("{},{}", coord(x(i)), coord(y(v))))
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="series series-0" fill="none" points="{}"/>"#,
            pts.join(" ")
        );
    }
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, v)| v.map(|v| (i, v)))
    {
        let _ = write!(
            out,
            r#"<circle class="last series-0" cx="{}" cy="{}" r="2" data-value="{}"><title>{}</title></circle>"#,
            coord(x(i)),
            coord(y(v)),
            fmt_num(v),
            fmt_num(v)
        );
    }
    out.push_str("</svg>");
    out
}

/// Runs of consecutive known values: a line is broken where a value is unknown.
fn segments(values: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) if v.is_finite() => cur.push((i, *v)),
            _ => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn describe(values: &[Option<f64>]) -> String {
    let known: Vec<f64> = values.iter().flatten().copied().collect();
    match (known.first(), known.last()) {
        (Some(first), Some(last)) => {
            let max = known.iter().copied().fold(f64::MIN, f64::max);
            format!(
                "from {} to {}, highest {}",
                fmt_num(*first),
                fmt_num(*last),
                fmt_num(max)
            )
        }
        _ => "no data".into(),
    }
}

/// Layout of the charts with axes.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    ymax: f64,
}

impl Frame {
    fn new(width: u32, height: u32, max: f64) -> Frame {
        Frame {
            w: f64::from(width.max(120)),
            h: f64::from(height.max(80)),
            left: 40.0,
            right: 10.0,
            top: 10.0,
            bottom: 28.0,
            ymax: nice_top(max),
        }
    }
    fn plot_w(&self) -> f64 {
        self.w - self.left - self.right
    }
    fn plot_h(&self) -> f64 {
        self.h - self.top - self.bottom
    }
    fn y(&self, v: f64) -> f64 {
        self.top + self.plot_h() * (1.0 - (v / self.ymax).clamp(0.0, 1.0))
    }

    /// The opening tag, title, description, the y axis with 5 ticks and grid lines, and the
    /// x axis with at most `max_labels` of the labels.
    fn open(&self, out: &mut String, title: &str, desc: &str, labels: &[String], xs: &[f64]) {
        let _ = write!(
            out,
            r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><title>{t}</title><desc>{d}</desc>"#,
            w = self.w,
            h = self.h,
            t = escape(title),
            d = escape(desc),
        );
        let base = self.top + self.plot_h();
        out.push_str(r#"<g class="axis y-axis">"#);
        let _ = write!(
            out,
            r#"<line x1="{l}" y1="{t}" x2="{l}" y2="{b}"/>"#,
            l = coord(self.left),
            t = coord(self.top),
            b = coord(base)
        );
        for k in 0..=4 {
            let v = self.ymax * f64::from(k) / 4.0;
            let y = self.y(v);
            let _ = write!(
                out,
                r#"<line class="grid" x1="{l}" y1="{y}" x2="{r}" y2="{y}"/><text class="tick" x="{tx}" y="{ty}" text-anchor="end" data-value="{v}">{v}</text>"#,
                l = coord(self.left),
                r = coord(self.w - self.right),
                y = coord(y),
                tx = coord(self.left - 4.0),
                ty = coord(y + 3.5),
                v = fmt_num(v),
            );
        }
        out.push_str("</g>");
        out.push_str(r#"<g class="axis x-axis">"#);
        let _ = write!(
            out,
            r#"<line x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>"#,
            l = coord(self.left),
            r = coord(self.w - self.right),
            b = coord(base)
        );
        // At most 7 labels, evenly spread, the last one always shown (replacing the one
        // before it when they would be too close).
        let n = labels.len();
        let step = n.div_ceil(6).max(1);
        let mut shown: Vec<usize> = (0..n).step_by(step).collect();
        if let Some(&last) = shown.last()
            && last + 1 != n
        {
            if (n - 1 - last) * 2 < step {
                shown.pop();
            }
            shown.push(n - 1);
        }
        for i in shown {
            let label = &labels[i];
            let x = xs.get(i).copied().unwrap_or(self.left);
            let _ = write!(
                out,
                r#"<text class="tick" x="{x}" y="{y}" text-anchor="middle">{t}</text>"#,
                x = coord(x),
                y = coord(base + 16.0),
                t = escape(label)
            );
        }
        out.push_str("</g>");
    }
}

/// A line chart: x positions labelled by `labels` (days), one polyline per series, a
/// legend. `title` is the accessible name.
pub fn line_chart(
    title: &str,
    labels: &[String],
    series: &[Series],
    width: u32,
    height: u32,
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .fold(0.0_f64, f64::max);
    let f = Frame::new(width, height, max);
    let n = labels.len();
    let xs: Vec<f64> = (0..n)
        .map(|i| {
            if n <= 1 {
                f.left + f.plot_w() / 2.0
            } else {
                f.left + f.plot_w() * i as f64 / (n - 1) as f64
            }
        })
        .collect();
    let desc = series
        .iter()
        .map(|s| format!("{}: {}", s.name, describe(&s.values)))
        .collect::<Vec<_>>()
        .join("; ");
    let mut out = String::new();
    f.open(&mut out, title, &desc, labels, &xs);
    for (k, s) in series.iter().enumerate() {
        let class = format!("series series-{}", k % 8);
        let _ = write!(
            out,
            r#"<g class="{class}" data-series="{}">"#,
            escape(&s.name)
        );
        for seg in segments(&s.values) {
            let pts: Vec<String> = seg
                .iter()
                .map(|&(i, v)| {
                    format!(
                        "{},{}",
                        coord(xs.get(i).copied().unwrap_or(f.left)),
                        coord(f.y(v))
                    )
                })
                .collect();
            let _ = write!(out, r#"<polyline fill="none" points="{}"/>"#, pts.join(" "));
        }
        for (i, v) in s.values.iter().enumerate() {
            if let Some(v) = v {
                let label = labels.get(i).map_or("", String::as_str);
                let _ = write!(
                    out,
                    r#"<circle cx="{}" cy="{}" r="2.5" data-value="{}"><title>{}: {} on {}</title></circle>"#,
                    coord(xs.get(i).copied().unwrap_or(f.left)),
                    coord(f.y(*v)),
                    fmt_num(*v),
                    escape(&s.name),
                    fmt_num(*v),
                    escape(label)
                );
            }
        }
        out.push_str("</g>");
    }
    legend(&mut out, &f, series.iter().map(|s| s.name.as_str()));
    out.push_str("</svg>");
    out
}

/// A grouped bar chart: one group of bars per label (weeks), one bar per series.
pub fn bar_chart(
    title: &str,
    labels: &[String],
    series: &[Series],
    width: u32,
    height: u32,
) -> String {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .fold(0.0_f64, f64::max);
    let f = Frame::new(width, height, max);
    let n = labels.len().max(1);
    let group_w = f.plot_w() / n as f64;
    let xs: Vec<f64> = (0..labels.len())
        .map(|i| f.left + group_w * (i as f64 + 0.5))
        .collect();
    let desc = series
        .iter()
        .map(|s| format!("{}: {}", s.name, describe(&s.values)))
        .collect::<Vec<_>>()
        .join("; ");
    let mut out = String::new();
    f.open(&mut out, title, &desc, labels, &xs);
    let k_count = series.len().max(1);
    let bar_w = (group_w * 0.8) / k_count as f64;
    let base = f.top + f.plot_h();
    for (k, s) in series.iter().enumerate() {
        let _ = write!(
            out,
            r#"<g class="series series-{}" data-series="{}">"#,
            k % 8,
            escape(&s.name)
        );
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let x = f.left + group_w * i as f64 + group_w * 0.1 + bar_w * k as f64;
            let y = f.y(*v);
            let label = labels.get(i).map_or("", String::as_str);
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" data-value="{}"><title>{}: {} in {}</title></rect>"#,
                coord(x),
                coord(y),
                coord(bar_w.max(0.5)),
                coord((base - y).max(0.0)),
                fmt_num(*v),
                escape(&s.name),
                fmt_num(*v),
                escape(label)
            );
        }
        out.push_str("</g>");
    }
    legend(&mut out, &f, series.iter().map(|s| s.name.as_str()));
    out.push_str("</svg>");
    out
}

fn legend<'a>(out: &mut String, f: &Frame, names: impl Iterator<Item = &'a str>) {
    out.push_str(r#"<g class="legend">"#);
    let mut x = f.left;
    for (k, name) in names.enumerate() {
        let _ = write!(
            out,
            r#"<rect class="series-{c} swatch" x="{x}" y="{y}" width="8" height="8"/><text x="{tx}" y="{ty}">{t}</text>"#,
            c = k % 8,
            x = coord(x),
            y = coord(f.h - 9.0),
            tx = coord(x + 11.0),
            ty = coord(f.h - 1.5),
            t = escape(name),
        );
        x += 16.0 + 6.5 * name.chars().count() as f64;
    }
    out.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not XML ({e}): {svg}"))
    }

    fn class_has(n: &roxmltree::Node<'_, '_>, c: &str) -> bool {
        n.attribute("class")
            .is_some_and(|v| v.split_whitespace().any(|x| x == c))
    }

    fn values_of(n: roxmltree::Node<'_, '_>, tag: &str) -> Vec<String> {
        n.descendants()
            .filter(|d| d.has_tag_name(tag))
            .filter_map(|d| d.attribute("data-value"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn sparkline_is_one_line_with_the_last_value_marked() {
        let svg = sparkline(
            "open drifts",
            &[Some(0.0), Some(2.0), None, Some(3.0), Some(1.0)],
            100,
            20,
        );
        let d = doc(&svg);
        let root = d.root_element();
        assert_eq!(root.attribute("role"), Some("img"));
        assert_eq!(
            root.children()
                .find(|c| c.has_tag_name("title"))
                .and_then(|t| t.text()),
            Some("open drifts")
        );
        // The unknown day breaks the line in two.
        let lines: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0].attribute("points").unwrap().split(' ').count(),
            2,
            "{svg}"
        );
        let last = root
            .descendants()
            .find(|n| n.has_tag_name("circle"))
            .unwrap();
        assert_eq!(last.attribute("data-value"), Some("1"));
        // The highest value touches the top padding, zero the bottom.
        let first_pt = lines[0].attribute("points").unwrap().split(' ').next();
        assert_eq!(first_pt, Some("2.0,18.0"));
        let top = lines[1].attribute("points").unwrap().split(' ').next();
        assert_eq!(top, Some("74.0,2.0"));
        assert!(
            root.descendants()
                .any(|n| n.has_tag_name("desc") && n.text() == Some("from 0 to 1, highest 3"))
        );
    }

    #[test]
    fn sparkline_without_data_says_so() {
        let svg = sparkline("x", &[None, None], 50, 10);
        let d = doc(&svg);
        assert!(!d.descendants().any(|n| n.has_tag_name("polyline")));
        assert!(
            d.descendants()
                .any(|n| n.has_tag_name("desc") && n.text() == Some("no data"))
        );
    }

    #[test]
    fn line_chart_has_axes_ticks_and_one_group_per_series() {
        let labels: Vec<String> = (1..=10).map(|d| format!("12-{d:02}")).collect();
        let series = vec![
            Series {
                name: "production".into(),
                values: (0..10).map(|i| Some(f64::from(i))).collect(),
            },
            Series {
                name: "staging <&>".into(),
                values: vec![None; 9].into_iter().chain([Some(4.5)]).collect(),
            },
        ];
        let svg = line_chart("Open drifts per day", &labels, &series, 600, 200);
        let d = doc(&svg);
        let root = d.root_element();
        let y_axis = root.descendants().find(|n| class_has(n, "y-axis")).unwrap();
        // Top of the y axis: 9 rounded up to 10; five ticks 0, 2.5, 5, 7.5, 10.
        assert_eq!(values_of(y_axis, "text"), ["0", "2.5", "5", "7.5", "10"]);
        let x_axis = root.descendants().find(|n| class_has(n, "x-axis")).unwrap();
        let xl: Vec<&str> = x_axis
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert!(xl.len() <= 7 && xl.len() >= 2, "{xl:?}");
        assert_eq!(xl.first(), Some(&"12-01"));
        assert_eq!(xl.last(), Some(&"12-10"));
        let groups: Vec<_> = root
            .descendants()
            .filter(|n| n.attribute("data-series").is_some())
            .collect();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[1].attribute("data-series"), Some("staging <&>"));
        assert_eq!(
            values_of(groups[0], "circle"),
            (0..10).map(|i| i.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(values_of(groups[1], "circle"), ["4.5"]);
        assert!(svg.contains("staging &lt;&amp;&gt;"));
        // Value 0 sits on the x axis (y = 200 - 28), value 10 at the top (y = 10).
        let pts = groups[0]
            .descendants()
            .find(|n| n.has_tag_name("polyline"))
            .and_then(|n| n.attribute("points"))
            .unwrap();
        assert!(pts.starts_with("40.0,172.0 "), "{pts}");
        let legend: Vec<&str> = root
            .descendants()
            .find(|n| class_has(n, "legend"))
            .unwrap()
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(legend, ["production", "staging <&>"]);
    }

    #[test]
    fn bar_chart_has_one_bar_per_known_value_with_heights_in_scale() {
        let labels: Vec<String> = ["W47", "W48", "W49"].map(String::from).to_vec();
        let series = vec![
            Series {
                name: "a".into(),
                values: vec![Some(1.0), Some(0.0), Some(4.0)],
            },
            Series {
                name: "b".into(),
                values: vec![Some(2.0), None, Some(3.0)],
            },
        ];
        let svg = bar_chart("Drifts opened per week", &labels, &series, 300, 128);
        let d = doc(&svg);
        let groups: Vec<_> = d
            .descendants()
            .filter(|n| n.attribute("data-series").is_some())
            .collect();
        assert_eq!(values_of(groups[0], "rect"), ["1", "0", "4"]);
        assert_eq!(values_of(groups[1], "rect"), ["2", "3"]);
        // Plot height 128 - 10 - 28 = 90; the highest value 4 gives an axis top of 5, so
        // value 4 is 72 high and 1 is 18.
        let heights: Vec<&str> = groups[0]
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .filter_map(|n| n.attribute("height"))
            .collect();
        assert_eq!(heights, ["18.0", "0.0", "72.0"]);
    }

    #[test]
    fn numbers_and_axis_tops() {
        assert_eq!(fmt_num(3.0), "3");
        assert_eq!(fmt_num(0.126), "0.13");
        assert_eq!(fmt_num(f64::NAN), "0");
        assert_eq!(nice_top(0.0), 1.0);
        assert_eq!(nice_top(3.0), 5.0);
        assert_eq!(nice_top(11.0), 20.0);
        assert_eq!(nice_top(240.0), 250.0);
    }
}
