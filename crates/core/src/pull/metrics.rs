//! Counters of this process's pulls, in Prometheus' text format for
//! `GET /dragonfly/metrics`: pulls by outcome and status, bytes by where
//! they came from, pull and registration durations as histograms, pulls in
//! flight. Recorded by the pull as each model ends; a scrape never waits on
//! a pull.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::report::ModelReport;

/// Histogram buckets, in seconds: from a warm hard link to a cold
/// multi-GiB pull over a slow link.
const BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (bound, count) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            let count = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Default)]
struct Counters {
    /// (outcome, status) -> pulls.
    pulls: BTreeMap<(&'static str, u16), u64>,
    /// Where the bytes came from -> bytes.
    bytes: BTreeMap<&'static str, u64>,
    download: Histogram,
    register: Histogram,
}

pub struct Metrics {
    counters: Mutex<Counters>,
    in_flight: AtomicI64,
}

/// Where the bytes of a downloaded model came from, as the metric labels
/// them.
fn origin(report: &ModelReport) -> Option<&'static str> {
    let download = report.download.as_ref()?;
    if download.action != "downloaded" {
        return None;
    }
    use crate::transfer::dragonfly::ServedFrom;
    // A cold task linked into the store still came through the peer.
    Some(match (download.hard_linked, download.served_from) {
        (true, Some(ServedFrom::DragonflyCache)) => "hard_link",
        (false, Some(ServedFrom::DragonflyCache)) => "local_cache",
        (_, Some(ServedFrom::Source)) => "source",
        _ => "peer",
    })
}

impl Metrics {
    pub fn global() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(|| Metrics {
            counters: Mutex::new(Counters::default()),
            in_flight: AtomicI64::new(0),
        })
    }

    /// A model's pull starts; the guard counts it as in flight until it
    /// drops (also when the pull is cancelled).
    pub fn start(&'static self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// A model's pull ended with `report`.
    pub fn record(&self, report: &ModelReport) {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = if report.status < 300 { "ok" } else { "failed" };
        *counters.pulls.entry((outcome, report.status)).or_default() += 1;
        if let (Some(origin), Some(download)) = (origin(report), &report.download) {
            *counters.bytes.entry(origin).or_default() += download.bytes;
            counters.download.observe(download.seconds);
        }
        if let Some(seconds) = report.registration_seconds {
            counters.register.observe(seconds);
        }
    }

    pub fn render(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP dragonfly_endpoint_pulls_total Model pulls that ended, by outcome and HTTP status.\n");
        out.push_str("# TYPE dragonfly_endpoint_pulls_total counter\n");
        for ((outcome, status), count) in &counters.pulls {
            let _ = writeln!(
                out,
                "dragonfly_endpoint_pulls_total{{outcome=\"{outcome}\",status=\"{status}\"}} {count}"
            );
        }
        out.push_str("# HELP dragonfly_endpoint_bytes_total Bytes of downloaded archives, by where they came from.\n");
        out.push_str("# TYPE dragonfly_endpoint_bytes_total counter\n");
        for source in ["peer", "source", "local_cache", "hard_link"] {
            let bytes = counters.bytes.get(source).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "dragonfly_endpoint_bytes_total{{source=\"{source}\"}} {bytes}"
            );
        }
        out.push_str("# HELP dragonfly_endpoint_pull_duration_seconds Download time of a model, when it downloaded.\n");
        out.push_str("# TYPE dragonfly_endpoint_pull_duration_seconds histogram\n");
        counters
            .download
            .render(&mut out, "dragonfly_endpoint_pull_duration_seconds");
        out.push_str("# HELP dragonfly_endpoint_register_duration_seconds Registration time of a model with TorchServe.\n");
        out.push_str("# TYPE dragonfly_endpoint_register_duration_seconds histogram\n");
        counters
            .register
            .render(&mut out, "dragonfly_endpoint_register_duration_seconds");
        out.push_str("# HELP dragonfly_endpoint_pulls_in_flight Model pulls running now.\n");
        out.push_str("# TYPE dragonfly_endpoint_pulls_in_flight gauge\n");
        let _ = writeln!(
            out,
            "dragonfly_endpoint_pulls_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

/// Counts one pull as in flight while it lives.
pub struct InFlight(&'static Metrics);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pull::report::DownloadReport;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let metrics = Metrics {
            counters: Mutex::new(Counters::default()),
            in_flight: AtomicI64::new(0),
        };
        let mut ok = ModelReport::new("a", "a.mar", "s3://b/a.mar");
        ok.download = Some(DownloadReport {
            action: "downloaded",
            bytes: 100,
            seconds: 0.2,
            bytes_per_second: 500,
            served_from: Some(crate::transfer::dragonfly::ServedFrom::Dragonfly),
            task_id: None,
            attempts: 1,
            hard_linked: false,
            verified: Some("MD5"),
            files: None,
        });
        ok.registration_seconds = Some(1.5);
        metrics.record(&ok);
        let mut failed = ModelReport::new("b", "b.mar", "s3://b/b.mar");
        failed.status = 502;
        metrics.record(&failed);
        let text = metrics.render();
        for line in [
            "dragonfly_endpoint_pulls_total{outcome=\"ok\",status=\"200\"} 1",
            "dragonfly_endpoint_pulls_total{outcome=\"failed\",status=\"502\"} 1",
            "dragonfly_endpoint_bytes_total{source=\"peer\"} 100",
            "dragonfly_endpoint_bytes_total{source=\"source\"} 0",
            "dragonfly_endpoint_pull_duration_seconds_bucket{le=\"0.5\"} 1",
            "dragonfly_endpoint_pull_duration_seconds_bucket{le=\"0.1\"} 0",
            "dragonfly_endpoint_pull_duration_seconds_count 1",
            "dragonfly_endpoint_register_duration_seconds_bucket{le=\"2.5\"} 1",
            "dragonfly_endpoint_pulls_in_flight 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
