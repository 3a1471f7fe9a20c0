//! The fleet chart, drawn as SVG by the benchmark itself: time until the
//! last node has the archive, and what the store sent, against the number
//! of nodes, Dragonfly beside direct downloads.

use std::fmt::Write;
use std::path::Path;

use crate::fleet::Point;

const W: f64 = 420.0;
const H: f64 = 260.0;
const PAD: f64 = 48.0;

/// One panel: two lines (Dragonfly, direct) over the node counts.
fn panel(
    svg: &mut String,
    x0: f64,
    title: &str,
    unit: &str,
    series: [(&str, &str, Vec<f64>); 2],
    nodes: &[usize],
) {
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let max_n = *nodes.iter().max().unwrap_or(&1) as f64;
    let x = |n: usize| x0 + PAD + (n as f64 / max_n) * (W - 2.0 * PAD);
    let y = |v: f64| H - PAD - (v / max) * (H - 2.0 * PAD);
    let _ = write!(
        svg,
        r#"<text x="{}" y="20" font-size="14" text-anchor="middle">{title}</text>"#,
        x0 + W / 2.0
    );
    let _ = write!(
        svg,
        r#"<line x1="{0}" y1="{1}" x2="{2}" y2="{1}" stroke="black"/><line x1="{0}" y1="{1}" x2="{0}" y2="{3}" stroke="black"/>"#,
        x0 + PAD,
        H - PAD,
        x0 + W - PAD,
        PAD
    );
    for &n in nodes {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{n}</text>"#,
            x(n),
            H - PAD + 16.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">nodes</text>"#,
        x0 + W / 2.0,
        H - 8.0
    );
    for i in 0..=4 {
        let v = max * i as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{v:.1}</text>"#,
            x0 + PAD - 4.0,
            y(v) + 3.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="11" transform="rotate(-90 {0} {1})" text-anchor="middle">{unit}</text>"#,
        x0 + 12.0,
        H / 2.0
    );
    for (i, (label, color, values)) in series.iter().enumerate() {
        let points: Vec<String> = nodes
            .iter()
            .zip(values)
            .map(|(&n, &v)| format!("{:.1},{:.1}", x(n), y(v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(svg, r#"<circle cx="{px}" cy="{py}" r="3" fill="{color}"/>"#);
        }
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="11" fill="{color}">{label}</text>"#,
            x0 + PAD + 8.0,
            PAD + 14.0 * i as f64
        );
    }
}

/// Writes the two panels to `path`.
pub fn write(path: &Path, points: &[Point], archive_bytes: u64) {
    let nodes: Vec<usize> = points.iter().map(|p| p.nodes).collect();
    let medians: Vec<_> = points.iter().map(Point::medians).collect();
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"#,
        2.0 * W
    );
    panel(
        &mut svg,
        0.0,
        "time until the last node has it",
        "seconds",
        [
            (
                "Dragonfly",
                "#1f77b4",
                medians.iter().map(|m| m.0).collect(),
            ),
            ("direct", "#d62728", medians.iter().map(|m| m.1).collect()),
        ],
        &nodes,
    );
    panel(
        &mut svg,
        W,
        &format!(
            "bytes the store sent (archive {:.2} GiB)",
            gib(archive_bytes as f64)
        ),
        "GiB",
        [
            (
                "Dragonfly",
                "#1f77b4",
                medians.iter().map(|m| gib(m.2)).collect(),
            ),
            (
                "direct",
                "#d62728",
                medians.iter().map(|m| gib(m.3)).collect(),
            ),
        ],
        &nodes,
    );
    svg.push_str("</svg>\n");
    std::fs::write(path, svg).expect("write the chart");
}
