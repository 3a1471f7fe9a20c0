//! cold and direct: a cold pull by the CLI (download only) against curl
//! through the same proxy and curl straight from the store; each run then
//! measures the warm pull of the key it just pulled cold (warm.rs).

use std::path::Path;

use dragonfly_endpoint_testbed::{Mar, Origin};
use serde_json::json;

use crate::fixtures::{cli_pull, curl, fresh_dir, progress, write_config, Keys};
use crate::stats::{median, Row};
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
    let (mut plugin, mut plugin_dl, mut via_curl, mut direct) = (vec![], vec![], vec![], vec![]);
    let mut warm = Warm::default();
    for run in 0..args.runs {
        progress(&format!("cold/direct/warm run {}/{}", run + 1, args.runs));
        // The plugin, cold.
        let key = origin.fresh(mar, &format!("cold-plugin-{run}.mar"));
        let store = fresh_dir(work, "store");
        let (wall, report) = cli_pull(&mar_only, &store, &key);
        let download = &report["models"][0]["download"];
        assert_eq!(download["served_from"], "dragonfly", "{report:#}");
        plugin.push(wall);
        plugin_dl.push(download["seconds"].as_f64().unwrap_or(f64::NAN));
        let warm_key = key;
        // curl through the same proxy, cold.
        let key = origin.fresh(mar, &format!("cold-curl-{run}.mar"));
        let out = fresh_dir(work, "curl").join("a.mar");
        via_curl.push(curl(&origin.presign(&key), Some(&proxy), &out));
        assert_eq!(
            std::fs::metadata(&out).map(|m| m.len()).ok(),
            Some(mar.bytes)
        );
        // Straight from the store: the physical limit.
        direct.push(curl(&origin.presign(&key), None, &out));

        // Warm: this run's plugin key, whose task the peer now has.
        warm.run(&mar_only, &streamed_warm, work, &warm_key);
    }
    let mb = args.size_mb;
    let cold_ratio = median(&plugin) / median(&via_curl);
    rows.push(Row {
        ratios: None,
        cpu: None,
        case: "cold pull",
        variant: format!("plugin CLI via dfdaemon, {mb} MiB (process wall)"),
        unit: "s",
        values: plugin.clone(),
        baseline: Some(("curl -x same proxy".into(), via_curl.clone())),
        goal: "ratio <= 1.05".into(),
        met: Some(cold_ratio <= 1.05),
    });
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
