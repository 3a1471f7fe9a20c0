//! fleet: three nodes (a dfdaemon and a CLI each) pull one archive at
//! once; what the object store sent and the wall time, against three
//! direct downloads.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dragonfly_endpoint_testbed::{Mar, Origin};
use serde_json::json;

use crate::fixtures::{cli_pull, curl, fresh_dir, progress, write_config, Keys};
use crate::stats::{median, Row};
use crate::Args;

/// fleet: 3 nodes (a dfdaemon and a CLI each) pull one archive at once.
pub fn run(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let origin = Origin::start(3);
    let dragonfly = &origin.dragonfly;
    let configs: Vec<PathBuf> = (1..=3)
        .map(|i| {
            write_config(
                &work.join("cfg-fleet"),
                &format!("node{i}.json"),
                &origin.s3,
                &dragonfly.proxy(i),
                json!({"register_as": "mar"}),
            )
        })
        .collect();
    let (mut wall, mut sent, mut direct_wall, mut direct_sent) = (vec![], vec![], vec![], vec![]);
    for run in 0..args.runs {
        progress(&format!("fleet run {}/{}", run + 1, args.runs));
        let key = origin.fresh(mar, &format!("fleet-{run}.mar"));
        let before = origin.s3.sent_bytes();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for (i, config) in configs.iter().enumerate() {
                let store = fresh_dir(work, &format!("fleet-store-{i}"));
                let key = key.clone();
                scope.spawn(move || cli_pull(config, &store, &key));
            }
        });
        wall.push(started.elapsed().as_secs_f64());
        sent.push((origin.s3.sent_bytes() - before) as f64 / mar.bytes as f64);

        let key = origin.fresh(mar, &format!("fleet-direct-{run}.mar"));
        let before = origin.s3.sent_bytes();
        let started = Instant::now();
        std::thread::scope(|scope| {
            for i in 0..3 {
                let url = origin.presign(&key);
                let out = fresh_dir(work, &format!("fleet-direct-{i}")).join("a.mar");
                scope.spawn(move || curl(&url, None, &out));
            }
        });
        direct_wall.push(started.elapsed().as_secs_f64());
        direct_sent.push((origin.s3.sent_bytes() - before) as f64 / mar.bytes as f64);
    }
    let sent_median = median(&sent);
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "fleet",
        variant: "object store sent, 3 nodes via Dragonfly (x archive size)".into(),
        unit: "x",
        values: sent,
        baseline: Some(("3 nodes direct".into(), direct_sent)),
        goal: "<= 1.1 x size".into(),
        met: Some(sent_median <= 1.1),
    });
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "fleet",
        variant: "wall time, 3 nodes via Dragonfly".into(),
        unit: "s",
        values: wall,
        baseline: Some(("3 nodes direct (curl)".into(), direct_wall)),
        goal: "reported".into(),
        met: None,
    });
}
