//! warm: the key a cold run just pulled, again into an empty store; the
//! peer has the task and hard-links it, against the same pull streamed from
//! the peer's cache (`hard_link: off`).

use std::path::Path;

use crate::fixtures::{cli_pull, fresh_dir};
use crate::stats::{median, Row};

/// The warm samples, one per run.
#[derive(Default)]
pub struct Warm {
    link: Vec<f64>,
    /// The model's whole pull in the report: lock, HEAD, presign, link,
    /// ledger.
    link_call: Vec<f64>,
    link_wall: Vec<f64>,
    stream: Vec<f64>,
}

impl Warm {
    /// Warm: the task of `key`, this run's plugin key, is in the peer's
    /// cache; an empty store each time.
    pub fn run(&mut self, mar_only: &Path, streamed_warm: &Path, work: &Path, key: &str) {
        let store = fresh_dir(work, "store");
        let (wall, report) = cli_pull(mar_only, &store, key);
        let download = &report["models"][0]["download"];
        assert_eq!(download["hard_linked"], true, "{report:#}");
        self.link
            .push(download["seconds"].as_f64().unwrap_or(f64::NAN));
        self.link_call
            .push(report["models"][0]["seconds"].as_f64().unwrap_or(f64::NAN));
        self.link_wall.push(wall);
        let store = fresh_dir(work, "store");
        let (_, report) = cli_pull(streamed_warm, &store, key);
        let download = &report["models"][0]["download"];
        assert_eq!(download["served_from"], "dragonfly_cache", "{report:#}");
        self.stream
            .push(download["seconds"].as_f64().unwrap_or(f64::NAN));
    }

    /// Drops the samples of the warm-up pair.
    pub fn skip_first(&mut self) {
        for samples in [
            &mut self.link,
            &mut self.link_call,
            &mut self.link_wall,
            &mut self.stream,
        ] {
            if !samples.is_empty() {
                samples.remove(0);
            }
        }
    }

    pub fn rows(self, rows: &mut Vec<Row>) {
        let call_ms = median(&self.link_call) * 1e3;
        rows.push(Row {
            ratios: None,
            cpu: None,
            case: "warm pull",
            variant: "hard link, whole call (lock, HEAD, presign, link, ledger: the report's model seconds)".into(),
            unit: "s",
            values: self.link_call,
            baseline: Some(("streamed from the peer cache".into(), self.stream.clone())),
            goal: format!("<= 20 ms for 1 GiB (median {call_ms:.1} ms)"),
            met: Some(call_ms <= 20.0),
        });
        rows.push(Row {
            ratios: None,
            cpu: None,
            case: "warm pull",
            variant: "hard link alone (the report's download seconds)".into(),
            unit: "s",
            values: self.link,
            baseline: Some(("streamed from the peer cache".into(), self.stream.clone())),
            goal: "-".into(),
            met: None,
        });
        rows.push(Row {
            ratios: None,
            cpu: None,
            case: "warm pull",
            variant: "hard link, CLI process wall (process start and exit included)".into(),
            unit: "s",
            values: self.link_wall,
            baseline: Some(("streamed from the peer cache".into(), self.stream)),
            goal: "-".into(),
            met: None,
        });
    }
}
