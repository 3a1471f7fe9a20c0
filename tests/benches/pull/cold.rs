//! cold and direct: a cold pull by the CLI (download only) against curl
//! through the same proxy, in paired runs (`pairs::measure`), and curl
//! straight from the store; each plugin run then measures the warm pull
//! of the key it just pulled cold (warm.rs).

use std::path::Path;

use dragonfly_endpoint_testbed::{Mar, Origin};
use serde_json::json;

use crate::fixtures::{cli_pull, curl, fresh_dir, progress, write_config, Keys};
use crate::forms::settle;
use crate::pairs::{measure, timed};
use crate::stats::Row;
use crate::warm::Warm;
use crate::Args;

/// cold, direct and warm: the download alone (the CLI with `register_as:
/// mar`, nothing registered).
pub fn run(args: &Args, mar: &Mar, work: &Path, rows: &mut Vec<Row>) {
    let origin = Origin::start(1);
    let dragonfly = &origin.dragonfly;
    let proxy = dragonfly.proxy(1);
    let cfg = work.join("cfg-download");
    let mar_only = write_config(
        &cfg,
        "mar.json",
        &origin.s3,
        &proxy,
        json!({"register_as": "mar"}),
    );
    let streamed_warm = write_config(
        &cfg,
        "streamed.json",
        &origin.s3,
        &proxy,
        json!({"register_as": "mar", "download": {"hard_link": "off"}}),
    );
    let pids = [dragonfly.peer_pid(1), origin.s3.pid()];
    let (mut plugin_dl, mut direct) = (vec![], vec![]);
    let mut warm = Warm::default();
    let pairs = measure(
        args.pairs,
        |run| {
            // The plugin, cold.
            let key = origin.fresh(mar, &format!("cold-plugin-{run}.mar"));
            let store = fresh_dir(work, "store");
            settle();
            let mut report = serde_json::Value::Null;
            let sample = timed(&pids, || {
                report = cli_pull(&mar_only, &store, &key).1;
            });
            let download = &report["models"][0]["download"];
            assert_eq!(download["served_from"], "dragonfly", "{report:#}");
            plugin_dl.push(download["seconds"].as_f64().unwrap_or(f64::NAN));
            progress(&format!("  plugin cold: {:.2} s", sample.wall));
            // Warm: the key just pulled, whose task the peer now has.
            warm.run(&mar_only, &streamed_warm, work, &key);
            origin.discard(&key, mar.bytes);
            sample
        },
        |run| {
            // curl through the same proxy, cold.
            let key = origin.fresh(mar, &format!("cold-curl-{run}.mar"));
            let out = fresh_dir(work, "curl").join("a.mar");
            let url = origin.presign(&key);
            settle();
            let sample = timed(&pids, || {
                curl(&url, Some(&proxy), &out);
            });
            assert_eq!(
                std::fs::metadata(&out).map(|m| m.len()).ok(),
                Some(mar.bytes)
            );
            progress(&format!("  curl -x cold: {:.2} s", sample.wall));
            // Straight from the store: the physical limit.
            settle();
            direct.push(curl(&url, None, &out));
            origin.discard(&key, mar.bytes);
            sample
        },
    );
    // The warm-up pair's extra samples go: they ran before the first pair.
    plugin_dl.remove(0);
    direct.remove(0);
    warm.skip_first();
    let mb = args.size_mb;
    rows.push(Row::paired(
        "cold pull",
        format!("plugin CLI via dfdaemon, {mb} MiB (process wall)"),
        "curl -x same proxy".into(),
        &pairs,
        Some(1.0),
    ));
    let plugin: Vec<f64> = pairs.variant.iter().map(|s| s.wall).collect();
    let via_curl: Vec<f64> = pairs.baseline.iter().map(|s| s.wall).collect();
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "cold pull",
        variant: "plugin download only (report's seconds)".into(),
        unit: "s",
        values: plugin_dl,
        baseline: Some(("curl -x same proxy".into(), via_curl)),
        goal: "-".into(),
        met: None,
    });
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "physical limit",
        variant: "curl straight from the S3 server".into(),
        unit: "s",
        values: direct,
        baseline: Some(("plugin cold pull".into(), plugin)),
        goal: "reported".into(),
        met: None,
    });
    warm.rows(rows);
}
