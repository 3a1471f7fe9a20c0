//! The result table: one row per variant with its baseline, printed as
//! Markdown (median, min, max, the ratio of the medians, the goal) and
//! written as JSON lines for --json.

use std::io::Write;
use std::path::Path;

use serde_json::json;

/// One line of the result table.
pub struct Row {
    pub case: &'static str,
    pub variant: String,
    pub unit: &'static str,
    pub values: Vec<f64>,
    pub baseline: Option<(String, Vec<f64>)>,
    pub goal: String,
    /// Whether the goal holds, from the medians (None: reported only).
    pub met: Option<bool>,
    /// Per-pair ratios (`pairs::measure`): the ratio is their median, the
    /// spread their range. None: the ratio of the medians.
    pub ratios: Option<Vec<f64>>,
    /// CPU seconds per run, of the variant and of the baseline.
    pub cpu: Option<(Vec<f64>, Vec<f64>)>,
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

impl Row {
    /// A row of paired runs: wall times, the baseline's, per-pair ratios
    /// and CPU seconds; the goal is met when the median ratio is at most
    /// `goal`.
    pub fn paired(
        case: &'static str,
        variant: String,
        baseline: String,
        pairs: &crate::pairs::Pairs,
        goal: Option<f64>,
    ) -> Row {
        let walls = |s: &[crate::pairs::Sample]| s.iter().map(|s| s.wall).collect::<Vec<_>>();
        let cpus = |s: &[crate::pairs::Sample]| s.iter().map(|s| s.cpu).collect::<Vec<_>>();
        let ratios = pairs.ratios();
        Row {
            case,
            variant,
            unit: "s",
            values: walls(&pairs.variant),
            baseline: Some((baseline, walls(&pairs.baseline))),
            goal: goal.map_or("-".into(), |g| format!("ratio <= {g}")),
            met: goal.map(|g| median(&ratios) <= g),
            ratios: Some(ratios),
            cpu: Some((cpus(&pairs.variant), cpus(&pairs.baseline))),
        }
    }

    fn ratio(&self) -> Option<f64> {
        if let Some(ratios) = &self.ratios {
            return Some(median(ratios));
        }
        self.baseline
            .as_ref()
            .map(|(_, base)| median(&self.values) / median(base))
    }

    /// `0.52 (0.49-0.55, 5 pairs)` for paired rows, the plain ratio else.
    fn ratio_text(&self) -> String {
        match (&self.ratios, self.ratio()) {
            (Some(r), Some(m)) => {
                format!("{m:.2} ({:.2}-{:.2}, {} pairs)", min(r), max(r), r.len())
            }
            (None, Some(m)) => format!("{m:.2}"),
            (_, None) => "-".into(),
        }
    }

    /// `3.1 s vs 6.0 s` CPU (medians), or `-`.
    fn cpu_text(&self) -> String {
        match &self.cpu {
            Some((v, b)) => format!("{:.1} s vs {:.1} s", median(v), median(b)),
            None => "-".into(),
        }
    }
}

pub fn print_table(rows: &[Row]) {
    println!();
    println!("| case | variant | median | min | max | baseline (median) | ratio | CPU (variant vs baseline) | goal | met |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let fmt = |v: f64, unit: &str| match unit {
        "s" if v < 0.1 => format!("{:.1} ms", v * 1e3),
        "s" => format!("{v:.2} s"),
        "MiB" => format!("{v:.0} MiB"),
        "x" => format!("{v:.3}x"),
        _ => format!("{v:.2} {unit}"),
    };
    for row in rows {
        let baseline = match &row.baseline {
            Some((label, base)) => format!("{label}: {}", fmt(median(base), row.unit)),
            None => "-".into(),
        };
        let ratio = row.ratio_text();
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.case,
            row.variant,
            fmt(median(&row.values), row.unit),
            fmt(min(&row.values), row.unit),
            fmt(max(&row.values), row.unit),
            baseline,
            ratio,
            row.cpu_text(),
            row.goal,
            met
        );
    }
}

pub fn write_json(path: &Path, rows: &[Row]) {
    let mut file = std::fs::File::create(path).expect("--json file");
    for row in rows {
        let line = json!({
            "case": row.case,
            "variant": row.variant,
            "unit": row.unit,
            "values": row.values,
            "median": median(&row.values),
            "baseline": row.baseline.as_ref().map(|(l, v)| json!({"label": l, "values": v, "median": median(v)})),
            "ratio": row.ratio(),
            "ratios": row.ratios,
            "cpu": row.cpu.as_ref().map(|(v, b)| json!({"variant": v, "baseline": b})),
            "goal": row.goal,
            "met": row.met,
        });
        writeln!(file, "{line}").expect("write --json");
    }
}
