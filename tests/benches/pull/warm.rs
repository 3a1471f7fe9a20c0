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
        self.link_wall.push(wall);
        let store = fresh_dir(work, "store");
        let (_, report) = cli_pull(streamed_warm, &store, key);
        let download = &report["models"][0]["download"];
        assert_eq!(download["served_from"], "dragonfly_cache", "{report:#}");
        self.stream
            .push(download["seconds"].as_f64().unwrap_or(f64::NAN));
    }

    pub fn rows(self, rows: &mut Vec<Row>) {
        let link_ms = median(&self.link) * 1e3;
        rows.push(Row {
            ratios: None,
            cpu: None,
            case: "warm pull",
            variant: "hard link from the peer cache (report's seconds)".into(),
            unit: "s",
            values: self.link,
            baseline: Some(("streamed from the peer cache".into(), self.stream.clone())),
            goal: format!("<= 20 ms for 1 GiB (median {link_ms:.1} ms)"),
            met: Some(link_ms <= 20.0),
        });
        rows.push(Row {
            ratios: None,
            cpu: None,
            case: "warm pull",
            variant: "hard link, CLI process wall (start, HEAD, presign, link)".into(),
            unit: "s",
            values: self.link_wall,
            baseline: Some(("streamed from the peer cache".into(), self.stream)),
            goal: "-".into(),
            met: None,
        });
    }
}
