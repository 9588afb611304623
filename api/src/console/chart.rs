//! Charts as inline SVG, drawn on the server: a line chart of series over time and a bar chart
//! of labelled values. Each has a text summary for screen readers and a table behind a
//! `<details>` for anyone who wants the numbers.

use maud::{Markup, html};

const W: f64 = 600.0;
const H: f64 = 180.0;
const PAD_L: f64 = 44.0;
const PAD_B: f64 = 22.0;
const PAD_T: f64 = 10.0;

/// One line of a line chart.
pub struct Series<'a> {
    /// Its name (legend and table).
    pub name: &'a str,
    /// One value per x label.
    pub values: Vec<f64>,
}

fn fmt(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// A line chart: `labels` along x (first, middle and last are drawn), up to three `series`.
pub fn lines(id: &str, caption: &str, labels: &[String], series: &[Series<'_>]) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let n = labels.len().max(2);
    let x = |i: usize| PAD_L + (W - PAD_L - 8.0) * i as f64 / (n - 1) as f64;
    let y = |v: f64| PAD_T + (H - PAD_T - PAD_B) * (1.0 - v / max);
    let summary = series
        .iter()
        .map(|s| {
            let total: f64 = s.values.iter().sum();
            let peak = s.values.iter().copied().fold(0.0_f64, f64::max);
            format!("{}: total {}, peak {}", s.name, fmt(total), fmt(peak))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let label_ids = [0, labels.len() / 2, labels.len().saturating_sub(1)];
    html! {
        figure id=(id) {
            figcaption { (caption) }
            svg.chart viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(format!("{caption}. {summary}")) {
                line.axis x1=(PAD_L) y1=(H - PAD_B) x2=(W) y2=(H - PAD_B) {}
                line.axis x1=(PAD_L) y1=(PAD_T) x2=(PAD_L) y2=(H - PAD_B) {}
                text x="4" y=(PAD_T + 10.0) { (fmt(max)) }
                text x="4" y=(H - PAD_B) { "0" }
                @for i in label_ids {
                    @if let Some(l) = labels.get(i) {
                        text x=(x(i) - 16.0) y=(H - 6.0) { (l) }
                    }
                }
                @for (k, s) in series.iter().enumerate() {
                    polyline class=(format!("s{k}")) points=(
                        s.values.iter().enumerate()
                            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                            .collect::<Vec<_>>().join(" ")
                    ) {}
                }
            }
            div.legend aria-hidden="true" {
                @for (k, s) in series.iter().enumerate() {
                    span class=(format!("k{k}")) { (s.name) }
                }
            }
            details {
                summary { "Numbers" }
                div.table-wrap {
                    table {
                        thead { tr { th scope="col" { "Time" } @for s in series { th.num scope="col" { (s.name) } } } }
                        tbody {
                            @for (i, l) in labels.iter().enumerate() {
                                tr {
                                    th scope="row" { (l) }
                                    @for s in series { td.num { (fmt(s.values.get(i).copied().unwrap_or(0.0))) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A horizontal bar chart of `rows` (label, value), longest first as given.
pub fn bars(id: &str, caption: &str, unit: &str, rows: &[(String, f64)]) -> Markup {
    let max = rows.iter().map(|r| r.1).fold(0.0_f64, f64::max).max(1.0);
    let row_h = 24.0;
    let h = (rows.len().max(1) as f64) * row_h + 8.0;
    let label_w = 220.0;
    let summary = rows
        .iter()
        .map(|(l, v)| format!("{l}: {}{unit}", fmt(*v)))
        .collect::<Vec<_>>()
        .join("; ");
    html! {
        figure id=(id) {
            figcaption { (caption) }
            @if rows.is_empty() {
                p.muted { "No data in this period." }
            } @else {
                svg.chart viewBox=(format!("0 0 {W} {h}")) role="img" aria-label=(format!("{caption}. {summary}")) {
                    @for (i, (l, v)) in rows.iter().enumerate() {
                        @let top = 4.0 + i as f64 * row_h;
                        text x="4" y=(top + 15.0) { (truncate(l, 34)) }
                        rect class=(format!("b{}", i % 2)) x=(label_w) y=(top + 3.0)
                            width=(format!("{:.1}", (W - label_w - 60.0) * v / max)) height=(row_h - 8.0) {}
                        text x=(label_w + (W - label_w - 60.0) * v / max + 4.0) y=(top + 15.0) { (fmt(*v)) (unit) }
                    }
                }
            }
        }
    }
}

/// `s` in at most `max` characters, cut in the middle (paths differ at both ends).
fn truncate(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let mut t: String = s.chars().take(head).collect();
    t.push('…');
    t.extend(s.chars().skip(n - tail));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_labels_keep_both_ends() {
        assert_eq!(truncate("/t/abcdefghij/0", 9), "/t/a…ij/0");
        assert_eq!(truncate("short", 9), "short");
    }
}
